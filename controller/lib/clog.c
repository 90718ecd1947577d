/*
 * clog.c - JSON log lines (see clog.h).
 */
#include "lib/clog.h"

#include "lib/cmem.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = CLOG_INFO;
static atomic_int out_fd = -1;
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const NAMES[] = {"debug", "info", "warn", "error"};

void clog_set_level(clog_level level)
{
    atomic_store(&min_level, (int)level);
}

bool clog_parse_level(const char *name, clog_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (name && strcmp(name, NAMES[i]) == 0) {
            *out = (clog_level)i;
            return true;
        }
    }
    if (name && strcmp(name, "warning") == 0) {
        *out = CLOG_WARN;
        return true;
    }
    return false;
}

bool clog_enabled(clog_level level)
{
    return (int)level >= atomic_load(&min_level);
}

void clog_set_fd(int fd)
{
    atomic_store(&out_fd, fd);
}

static void write_all(const char *buf, size_t n)
{
    int fd = atomic_load(&out_fd);
    if (fd < 0) fd = STDERR_FILENO;
    pthread_mutex_lock(&write_lock);
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w <= 0) break; /* nowhere left to report it */
        buf += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&write_lock);
}

void clog_log(clog_level level, const char *msg, const char *fields, ...)
{
    if (!clog_enabled(level)) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* RFC 3339 in UTC with milliseconds, enough for logs: "...:05.123Z" */
    struct tm tm;
    char day[24] = "0000-00-00T00:00:00", when[32];
    if (gmtime_r(&ts.tv_sec, &tm)) strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when, sizeof when, "%s.%03ldZ", day, ts.tv_nsec / 1000000L);
    json_t *line =
        json_pack("{s:s, s:s, s:s}", "ts", when, "level", NAMES[level], "msg", msg ? msg : "");
    if (line && fields) {
        va_list ap;
        va_start(ap, fields);
        json_error_t err;
        json_t *extra = json_vpack_ex(&err, 0, fields, ap);
        va_end(ap);
        if (extra) json_object_update(line, extra);
        json_decref(extra);
    }
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    if (text) {
        size_t n = strlen(text);
        text[n] = '\n'; /* json_dumps' terminator becomes the newline */
        write_all(text, n + 1);
        cmem_free(text);
        return;
    }
    /* msg with JSON's special characters replaced, so the line still parses */
    char safe[301];
    size_t k = 0;
    for (const char *p = msg ? msg : ""; *p && k < sizeof safe - 1; p++)
        safe[k++] = (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) ? '?' : *p;
    safe[k] = '\0';
    char fallback[512];
    int n = snprintf(fallback, sizeof fallback,
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"(out of memory) %s\"}\n", when,
                     NAMES[level], safe);
    if (n > 0) write_all(fallback, (size_t)n < sizeof fallback ? (size_t)n : sizeof fallback - 1);
}
