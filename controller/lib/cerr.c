/*
 * cerr.c - per-thread last error.
 */
#include "lib/cerr.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    int code;
    char message[1024];
} cerr_state;

static _Thread_local cerr_state last;

void cerr_vset(int code, const char *fmt, va_list ap)
{
    last.code = code;
    vsnprintf(last.message, sizeof last.message, fmt, ap);
}

void cerr_prefix(const char *fmt, ...)
{
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* "<prefix>: <old message>", cutting the old message's tail if need be */
    size_t pl = strlen(prefix), ml = strlen(last.message), room = sizeof last.message - 1;
    if (pl + 2 > room) pl = room - 2;
    if (ml > room - pl - 2) ml = room - pl - 2;
    memmove(last.message + pl + 2, last.message, ml);
    memcpy(last.message, prefix, pl);
    memcpy(last.message + pl, ": ", 2);
    last.message[pl + 2 + ml] = '\0';
}

void cerr_clear(void)
{
    last.code = CERR_OK;
    last.message[0] = '\0';
}

int cerr_code(void)
{
    return last.code;
}

const char *cerr_message(void)
{
    return last.message;
}

const char *cerr_name(int code)
{
    switch (code) {
    case CERR_OK:
        return "OK";
    case CERR_ERROR:
        return "Error";
    case CERR_NOTFOUND:
        return "NotFound";
    case CERR_CONFLICT:
        return "Conflict";
    case CERR_GONE:
        return "Gone";
    case CERR_AGAIN:
        return "Again";
    case CERR_INVALID:
        return "Invalid";
    case CERR_NOMEM:
        return "NoMemory";
    case CERR_IO:
        return "IO";
    case CERR_TOOBIG:
        return "TooBig";
    case CERR_SHUTDOWN:
        return "Shutdown";
    case CERR_FORBIDDEN:
        return "Forbidden";
    case CERR_TIMEOUT:
        return "Timeout";
    default:
        return "Unknown";
    }
}
