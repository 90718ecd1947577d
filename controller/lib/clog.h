/*
 * clog.h - structured log lines: one JSON object per line on stderr.
 *
 *   {"ts":"2024-05-01T10:00:00.123Z","level":"info","msg":"reconciled",
 *    "key":"hydro/dem-slope","result":"create-pod","ms":1.2}
 *
 * The shape follows what log shippers on Kubernetes expect (one JSON
 * object per line, RFC 3339 UTC time in "ts", "level", "msg"), so Fluent
 * Bit or the CloudWatch agent parse fields without configuration. Extra
 * fields are given as a jansson pack format and its arguments
 * ("{s:s, s:i}", "key", key, "attempt", n). Any thread may log; a line is
 * written with one write(2) under a mutex, so lines never interleave. When
 * memory runs out the line degrades to the message alone, never lost.
 */
#ifndef LIB_CLOG_H
#define LIB_CLOG_H

#include <stdbool.h>

typedef enum { CLOG_DEBUG, CLOG_INFO, CLOG_WARN, CLOG_ERROR } clog_level;

void clog_set_level(clog_level level);
/* "debug", "info", "warn" (or "warning"), "error"; false when unknown. */
bool clog_parse_level(const char *name, clog_level *out);
bool clog_enabled(clog_level level);
/* Redirects output (tests); fd -1 restores stderr. */
void clog_set_fd(int fd);

/* fields: a json_pack format building an object, or NULL. */
void clog_log(clog_level level, const char *msg, const char *fields, ...);

#define clog_debug(...) clog_log(CLOG_DEBUG, __VA_ARGS__)
#define clog_info(...) clog_log(CLOG_INFO, __VA_ARGS__)
#define clog_warn(...) clog_log(CLOG_WARN, __VA_ARGS__)
#define clog_error(...) clog_log(CLOG_ERROR, __VA_ARGS__)

#endif
