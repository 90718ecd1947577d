/*
 * log.c - JSON log lines on stderr.
 */
#include "log.h"

#include "terrane_proto.h"

#include <cpl_error.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#define LINE_MAX_BYTES 8192

static log_level min_level = LOG_INFO;
static char ctx_asset[256];
static char ctx_dv[80];
static int last_decile = -1;

static const char *level_name(log_level l)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    return names[l];
}

/* Appends s as a JSON string body (no quotes) to buf at *pos, bounded. */
static void append_escaped(char *buf, size_t cap, size_t *pos, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; s && *s && *pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = (char)c;
        } else if (c == '\n') {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = 'n';
        } else if (c < 0x20) {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = 'u';
            buf[(*pos)++] = '0';
            buf[(*pos)++] = '0';
            buf[(*pos)++] = hex[c >> 4];
            buf[(*pos)++] = hex[c & 15];
        } else {
            buf[(*pos)++] = (char)c;
        }
    }
}

static void append_raw(char *buf, size_t cap, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    if (*pos + n + 2 >= cap) n = cap > *pos + 2 ? cap - *pos - 2 : 0;
    memcpy(buf + *pos, s, n);
    *pos += n;
}

static void append_field(char *buf, size_t cap, size_t *pos, const char *k, const char *v)
{
    append_raw(buf, cap, pos, ",\"");
    append_escaped(buf, cap, pos, k);
    append_raw(buf, cap, pos, "\":\"");
    append_escaped(buf, cap, pos, v);
    append_raw(buf, cap, pos, "\"");
}

static size_t begin_line(char *buf, size_t cap, log_level lvl, const char *msg)
{
    struct timeval tv;
    struct tm tm;
    char ts[40];
    size_t pos = 0;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    pos += (size_t)snprintf(buf, cap, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"", ts,
                            (long)(tv.tv_usec / 1000), level_name(lvl));
    append_escaped(buf, cap, &pos, msg);
    append_raw(buf, cap, &pos, "\"");
    if (ctx_asset[0]) append_field(buf, cap, &pos, "assetKey", ctx_asset);
    if (ctx_dv[0]) append_field(buf, cap, &pos, "dataVersion", ctx_dv);
    return pos;
}

static void end_line(char *buf, size_t pos)
{
    buf[pos++] = '}';
    buf[pos++] = '\n';
    buf[pos] = '\0';
    fputs(buf, stderr);
    fflush(stderr);
}

static void gdal_handler(CPLErr cls, CPLErrorNum num, const char *msg)
{
    char buf[LINE_MAX_BYTES], code[16];
    log_level lvl = cls >= CE_Failure ? LOG_ERROR : cls == CE_Warning ? LOG_WARN : LOG_DEBUG;
    if (lvl < min_level) return;
    size_t pos = begin_line(buf, sizeof buf - 4, lvl, msg);
    snprintf(code, sizeof code, "%d", (int)num);
    append_field(buf, sizeof buf - 4, &pos, "source", "gdal");
    append_field(buf, sizeof buf - 4, &pos, "cplErr", code);
    end_line(buf, pos);
}

void log_init(void)
{
    const char *lvl = getenv(TERRANE_ENV_LOG_LEVEL);
    if (lvl) {
        if (!strcasecmp(lvl, "debug"))
            min_level = LOG_DEBUG;
        else if (!strcasecmp(lvl, "warn"))
            min_level = LOG_WARN;
        else if (!strcasecmp(lvl, "error"))
            min_level = LOG_ERROR;
    }
    CPLSetErrorHandler(gdal_handler);
}

void log_set_level(log_level lvl)
{
    min_level = lvl;
}

void log_set_context(const char *asset_key, const char *data_version)
{
    snprintf(ctx_asset, sizeof ctx_asset, "%s", asset_key ? asset_key : "");
    snprintf(ctx_dv, sizeof ctx_dv, "%s", data_version ? data_version : "");
}

void log_kv(log_level lvl, const char *msg, ...)
{
    char buf[LINE_MAX_BYTES];
    va_list ap;
    if (lvl < min_level) return;
    size_t pos = begin_line(buf, sizeof buf - 4, lvl, msg);
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        append_field(buf, sizeof buf - 4, &pos, k, v ? v : "");
    }
    va_end(ap);
    end_line(buf, pos);
}

void log_msg(log_level lvl, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    if (lvl < min_level) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_kv(lvl, msg, (const char *)NULL);
}

void log_progress_reset(void)
{
    last_decile = -1;
}

int log_progress(double complete, const char *gdal_msg, void *arg)
{
    (void)gdal_msg;
    int decile = (int)(complete * 10.0 + 1e-9);
    if (decile > 10) decile = 10;
    if (decile <= last_decile) return 1;
    last_decile = decile;
    char pct[16];
    snprintf(pct, sizeof pct, "%d", decile * 10);
    log_kv(LOG_INFO, "progress", "stage", arg ? (const char *)arg : "run", "percent", pct,
           (const char *)NULL);
    return 1;
}
