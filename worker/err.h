/*
 * err.h - the worker's last-error slot (libgit2's git_error_set, per thread).
 *
 * The failure is described where it happens: its class (decides the exit code
 * and whether the controller retries), a stable CamelCase code from the
 * contract, the offending field ("params.mode", "inputs[1].uri") when there is
 * one, and a message saying what failed and why. Functions that fail set it
 * and return a negative value; callers up the stack add nothing or wrap it
 * with err_prefix, and main reports it once.
 */
#ifndef TERRANE_ERR_H
#define TERRANE_ERR_H

#include <stdbool.h>

typedef enum {
    ERR_NONE = 0,
    ERR_BAD_INPUT, /* the task, its params or its input data: never retried */
    ERR_TRANSIENT, /* S3, network, scratch space: retried */
    ERR_INTERNAL, /* a bug, or a misconfigured installation (denied output bucket): retried, counted
                     apart */
} err_class;

/* Stable codes (proto/schema/result.v1.json lists them). */
#define ERR_INVALID_TASK "InvalidTask"
#define ERR_INVALID_PARAM "InvalidParam"
#define ERR_INPUT_NOT_ALLOWED "InputNotAllowed"
#define ERR_INPUT_UNREADABLE "InputUnreadable"
#define ERR_INPUT_INVALID "InputInvalid"
#define ERR_CRS_MISMATCH "CRSMismatch"
#define ERR_EMPTY_INTERSECTION "EmptyIntersection"
#define ERR_EXPRESSION "InvalidExpression"
#define ERR_SCRATCH "ScratchUnavailable"
#define ERR_S3_CLIENT "S3ClientError"
#define ERR_S3_SERVER "S3ServerError"
#define ERR_CREDENTIALS "CredentialsUnavailable"
#define ERR_OUTPUT "OutputFailed"
#define ERR_NO_MEMORY "OutOfMemory"
#define ERR_CHECKSUM_MISMATCH "ChecksumMismatch"
#define ERR_NO_OUTPUTS "NoOutputs"
#define ERR_INTERNAL_CODE "Internal"
#define ERR_POD_STATUS "PodStatusUnavailable" /* its own pod from the API: Transient */
/* Sources (observe.c, srccheck.c). */
#define ERR_SOURCE_NOT_FOUND "SourceNotFound"         /* 404: BadInput */
#define ERR_SOURCE_ACCESS_DENIED "SourceAccessDenied" /* 401/403: BadInput */
#define ERR_SOURCE_UNAVAILABLE "SourceUnavailable"    /* 429/5xx/network after retries: Transient */
#define ERR_SOURCE_TOO_LARGE "SourceTooLarge"         /* over params.maxObjects: BadInput */
#define ERR_SOURCE_UNVERSIONED "SourceUnversioned"    /* https without ETag or Last-Modified */
#define ERR_SOURCE_CHANGED "SourceChanged"            /* not the observed version: Transient */

/* Sets the error; returns -1 so callers can write `return err_set(...)`.
 * field may be NULL. */
int err_set(err_class cls, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Like err_set, appending ": <GDAL's last error message>" when GDAL has one. */
int err_set_gdal(err_class cls, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Out of memory: TRANSIENT, since a retry (possibly on a bigger pool) may succeed. */
int err_oom(void);
/* Prefixes the current message with "<prefix>: ". */
void err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void err_clear(void);

bool err_is_set(void);
err_class err_get_class(void);
const char *err_get_code(void);            /* "" when unset */
const char *err_get_field(void);           /* "" when none */
const char *err_get_message(void);         /* "" when unset */
const char *err_class_name(err_class cls); /* "BadInput", "Transient", "Internal" */
/* The process exit code for the current error (proto/terrane_proto.h). */
int err_exit_code(void);

#endif
