/*
 * err.c - per-thread last error.
 */
#include "err.h"

#include "terrane_proto.h"

#include <cpl_error.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    err_class cls;
    char code[48];
    char field[128];
    char message[1536];
} err_state;

static _Thread_local err_state last;

static void set_common(err_class cls, const char *code, const char *field)
{
    last.cls = cls;
    snprintf(last.code, sizeof last.code, "%s", code ? code : ERR_INTERNAL_CODE);
    snprintf(last.field, sizeof last.field, "%s", field ? field : "");
}

int(err_set)(err_class cls, const char *code, const char *field, const char *fmt, ...)
{
    va_list ap;
    set_common(cls, code, field);
    va_start(ap, fmt);
    vsnprintf(last.message, sizeof last.message, fmt, ap);
    va_end(ap);
    return -1;
}

int(err_set_gdal)(err_class cls, const char *code, const char *field, const char *fmt, ...)
{
    va_list ap;
    char gdal_msg[1024];
    snprintf(gdal_msg, sizeof gdal_msg, "%s", CPLGetLastErrorMsg());
    set_common(cls, code, field);
    va_start(ap, fmt);
    vsnprintf(last.message, sizeof last.message, fmt, ap);
    va_end(ap);
    if (gdal_msg[0]) {
        size_t n = strlen(last.message);
        snprintf(last.message + n, sizeof last.message - n, ": %s", gdal_msg);
    }
    return -1;
}

int(err_oom)(void)
{
    return err_set(ERR_TRANSIENT, ERR_NO_MEMORY, NULL, "out of memory");
}

void err_prefix(const char *fmt, ...)
{
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix - 2, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t plen = strlen(prefix), cap = sizeof last.message;
    memcpy(prefix + plen, ": ", 3);
    plen += 2;
    size_t mlen = strnlen(last.message, cap - 1);
    if (plen + mlen >= cap) mlen = cap - 1 - plen;
    memmove(last.message + plen, last.message, mlen);
    memcpy(last.message, prefix, plen);
    last.message[plen + mlen] = '\0';
}

void err_clear(void)
{
    memset(&last, 0, sizeof last);
}

bool err_is_set(void)
{
    return last.cls != ERR_NONE;
}

err_class err_get_class(void)
{
    return last.cls;
}

const char *err_get_code(void)
{
    return last.code;
}

const char *err_get_field(void)
{
    return last.field;
}

const char *err_get_message(void)
{
    return last.message;
}

const char *err_class_name(err_class cls)
{
    switch (cls) {
    case ERR_BAD_INPUT:
        return "BadInput";
    case ERR_TRANSIENT:
        return "Transient";
    case ERR_INTERNAL:
        return "Internal";
    default:
        return "None";
    }
}

int err_exit_code(void)
{
    switch (last.cls) {
    case ERR_NONE:
        return TERRANE_EXIT_OK;
    case ERR_BAD_INPUT:
        return TERRANE_EXIT_BAD_INPUT;
    case ERR_TRANSIENT:
        return TERRANE_EXIT_TRANSIENT;
    default:
        return TERRANE_EXIT_INTERNAL;
    }
}
