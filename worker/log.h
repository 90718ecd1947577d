/*
 * log.h - structured log lines on stderr, one JSON object per line.
 *
 *   {"ts":"2026-11-24T05:01:02.123Z","level":"info","msg":"published",
 *    "assetKey":"hydrology/dem_slope","uri":"s3://..."}
 *
 * stdout is reserved for the result document. log_init also routes GDAL's
 * own warnings and errors here (as level warn/error, "source":"gdal").
 * Single-threaded use; lines are written with one fputs so they do not tear.
 */
#ifndef TERRANE_LOG_H
#define TERRANE_LOG_H

#include <stdbool.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Reads TERRANE_LOG_LEVEL (debug|info|warn|error, default info). */
void log_init(void);
void log_set_level(log_level lvl);
/* Fields added to every following line (NULL clears one). Copied. */
void log_set_context(const char *asset_key, const char *data_version);

/* msg plus string fields given as key, value pairs, NULL-terminated. */
void log_kv(log_level lvl, const char *msg, ...) __attribute__((sentinel));
/* printf-style message, no fields. */
void log_msg(log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A GDALProgressFunc. arg is the stage name (const char *). Logs
 * {"msg":"progress","stage":...,"percent":N} each time another 10% is
 * passed, and at 100%. Never cancels. */
int log_progress(double complete, const char *gdal_msg, void *arg);
/* Resets the progress throttle, for a new stage. */
void log_progress_reset(void);

#endif
