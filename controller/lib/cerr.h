/*
 * cerr.h - the controller's last-error slot, one per thread (libgit2's
 * git_error_set).
 *
 * Functions that act return 0 on success or one of the negative CERR_* codes
 * below, and set the message where the failure happens: what failed and why,
 * naming the offending field, key or byte offset. Callers branch on the code
 * (a 409 CONFLICT re-reads, a 410 GONE relists, AGAIN backs off) and report
 * the message once, or wrap it with cerr_prefix. Every thread has its own
 * slot, so reconcile workers never see each other's errors; the message is
 * only valid on the thread that set it, until the next cerr_set there.
 */
#ifndef LIB_CERR_H
#define LIB_CERR_H

#include <stdarg.h>

#define CERR_OK 0
#define CERR_ERROR (-1)      /* anything without a better code */
#define CERR_NOTFOUND (-2)   /* object, key or pool does not exist (HTTP 404) */
#define CERR_CONFLICT (-3)   /* stale resourceVersion or duplicate (HTTP 409) */
#define CERR_GONE (-4)       /* resourceVersion too old: relist (HTTP 410) */
#define CERR_AGAIN (-5)      /* transient: retry later (HTTP 429, 5xx) */
#define CERR_INVALID (-6)    /* malformed input: spec, JSON, config (HTTP 400, 422) */
#define CERR_NOMEM (-7)      /* an allocation failed */
#define CERR_IO (-8)         /* file, socket or unexpected HTTP status */
#define CERR_TOOBIG (-9)     /* input exceeds a configured cap */
#define CERR_SHUTDOWN (-10)  /* the component is shutting down */
#define CERR_FORBIDDEN (-11) /* authentication or authorization (HTTP 401, 403) */
#define CERR_TIMEOUT (-12)   /* a deadline passed */

/* Sets code and message (cerr_set's va_list form). */
void cerr_vset(int code, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Sets code and message; returns code so callers can write
 * `return cerr_set(CERR_INVALID, "pools.%s: ...", name);`. Inline, so a
 * reader of one file (the compiler, the static analyzer) sees the failure
 * code it returns and that out-parameters are not set on that path. */
static inline __attribute__((format(printf, 2, 3))) int cerr_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cerr_vset(code, fmt, ap);
    va_end(ap);
    return code;
}
/* The code written out where cerr_set is called, evaluated once: the static
 * analyzer does not follow calls of variadic functions, so without it every
 * `return cerr_set(CERR_INVALID, ...)` could be a success to it, with the
 * out-parameters of that path unset. `(cerr_set)` is the function: cppcheck
 * reads the bare name there as a use of cerr_code_ before it is set. */
#define cerr_set(code, ...)                                                                        \
    __extension__({                                                                                \
        int cerr_code_ = (code);                                                                   \
        (void)(cerr_set)(cerr_code_, __VA_ARGS__);                                                 \
        cerr_code_;                                                                                \
    })
/* CERR_NOMEM with message "out of memory"; returns CERR_NOMEM. */
static inline int cerr_oom(void)
{
    return cerr_set(CERR_NOMEM, "out of memory");
}
/* Prefixes the current message with "<prefix>: ", keeping the code. */
void cerr_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cerr_clear(void);

int cerr_code(void);            /* CERR_OK when unset */
const char *cerr_message(void); /* "" when unset; borrowed, valid until the next set */
/* Stable name of a code: "NotFound", "Conflict", "Gone", ...; "Unknown" for
 * codes not listed above. */
const char *cerr_name(int code);

#endif
