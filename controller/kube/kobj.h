/*
 * kobj.h - small decoders and accessors for Kubernetes objects held as
 * jansson values: object metadata, ownerReferences, status conditions
 * (metav1.Condition), metav1.Status error bodies, and RFC 3339 times.
 *
 * The objects come from the API server, i.e. from bytes anyone with write
 * access to a resource shaped: every accessor checks types, and a field of
 * the wrong type reads as absent (NULL / 0) in the lenient accessors, or
 * fails with CERR_INVALID naming the field path in the strict decoders
 * (kobj_meta_decode, kobj_owner_ref_at). Pure functions, any thread.
 *
 * jansson reference rule for this module: every json_t * parameter is
 * borrowed (the caller keeps its reference). Returned strings and json_t
 * pointers are borrowed from the object passed in and stay valid while that
 * object lives and the field is not changed, except kobj_owner_ref_new,
 * which returns a new reference the caller owns. Setters (kobj_cond_set)
 * modify the object in place and never steal a reference from the caller.
 */
#ifndef KUBE_KOBJ_H
#define KUBE_KOBJ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* --- metadata --------------------------------------------------------------- */

/* Lenient accessors: NULL (0) when absent or of the wrong type. */
const char *kobj_namespace(const json_t *obj);
const char *kobj_name(const json_t *obj);
const char *kobj_uid(const json_t *obj);
const char *kobj_resource_version(const json_t *obj);
long long kobj_generation(const json_t *obj);
const char *kobj_deletion_timestamp(const json_t *obj);
bool kobj_is_deleting(const json_t *obj);     /* deletionTimestamp set */
const json_t *kobj_labels(const json_t *obj); /* an object, or NULL */
const char *kobj_label(const json_t *obj, const char *key);

/* The cache key "namespace/name" ("name" for cluster-scoped objects), as
 * client-go's MetaNamespaceKeyFunc. 0, CERR_INVALID (no name), or
 * CERR_TOOBIG (buf too small; then buf holds ""). */
int kobj_key(const json_t *obj, char *buf, size_t size);

typedef struct {
    const char *namespace_, *name, *uid, *resource_version; /* NULL when absent */
    const char *deletion_timestamp;                         /* NULL when absent */
    long long generation;                                   /* 0 when absent */
    const json_t *labels, *annotations;                     /* objects or NULL */
    const json_t *owner_references;                         /* array or NULL */
} kobj_meta;

/* Strict: every present field must have its type (labels: string values).
 * 0, or CERR_INVALID with a message naming the path ("metadata.labels.app:
 * expected string, got integer"); *out is zeroed first. */
int kobj_meta_decode(const json_t *obj, kobj_meta *out);

/* --- ownerReferences -------------------------------------------------------- */

typedef struct {
    const char *api_version, *kind, *name, *uid;
    bool controller, block_owner_deletion;
} kobj_owner_ref;

size_t kobj_owner_ref_count(const json_t *obj);
/* 0; CERR_NOTFOUND past the end; CERR_INVALID when the entry lacks a string
 * apiVersion, kind, name or uid or has a non-boolean flag (message names
 * "metadata.ownerReferences[i].field"). */
int kobj_owner_ref_at(const json_t *obj, size_t i, kobj_owner_ref *out);
/* The valid entry with controller: true; CERR_NOTFOUND when there is none. */
int kobj_controller_ref(const json_t *obj, kobj_owner_ref *out);
/* A new ownerReferences entry (new reference); NULL when out of memory. */
json_t *kobj_owner_ref_new(const kobj_owner_ref *ref);

/* --- conditions (metav1.Condition in status.conditions) ------------------------ */

typedef struct {
    const char *type;   /* CamelCase, e.g. "Ready" */
    const char *status; /* "True", "False" or "Unknown" */
    const char *reason; /* CamelCase, required by metav1.Condition */
    const char *message;
    long long observed_generation;
    const char *last_transition_time; /* RFC 3339; NULL in set: use now */
} kobj_condition;

/* Finds the condition of type in status (the object's .status). 0 or
 * CERR_NOTFOUND. Entries that are not objects or whose type is not a string
 * are skipped; fields of the wrong type read as NULL / 0. */
int kobj_cond_get(const json_t *status, const char *type, kobj_condition *out);
bool kobj_cond_is_true(const json_t *status, const char *type);
/* Sets a condition as apimachinery's meta.SetStatusCondition does: a new
 * condition is appended with lastTransitionTime = c->last_transition_time
 * or now; an existing one keeps its lastTransitionTime unless its status
 * changes; reason, message and observedGeneration are always updated.
 * status.conditions is created (or replaced when not an array). *changed
 * (if non-NULL) tells whether anything changed, so callers can skip a
 * status write. 0, CERR_INVALID (empty type, status not True/False/Unknown,
 * reason not CamelCase, message over 32768 bytes, status not an object), or
 * CERR_NOMEM (status may then be partly updated). */
int kobj_cond_set(json_t *status, const kobj_condition *c, time_t now, bool *changed);
/* 0 when removed, CERR_NOTFOUND when there was none. */
int kobj_cond_remove(json_t *status, const char *type);

/* --- metav1.Status ---------------------------------------------------------------- */

typedef struct {
    int code;           /* HTTP status code, 0 when absent */
    const char *status; /* "Success" / "Failure" or NULL */
    const char *reason; /* "NotFound", "Conflict", "Expired", ... or NULL */
    const char *message;
} kobj_status;

/* 0, or CERR_INVALID when obj is not an object or has a kind other than
 * "Status". Fields of the wrong type read as absent. */
int kobj_status_decode(const json_t *obj, kobj_status *out);
/* The CERR_* code for an HTTP status: 400/422 INVALID, 401/403 FORBIDDEN,
 * 404 NOTFOUND, 408 TIMEOUT, 409 CONFLICT, 410 GONE, 429/500/502/503/504
 * AGAIN (the retryable ones), anything else IO. */
int kobj_http_cerr(int http_code);
/* The code for a Status: reason "Expired" or "Gone" means GONE even
 * without a code; otherwise kobj_http_cerr(code). */
int kobj_status_cerr(const kobj_status *st);
/* Sets the thread's error from a Status ("Conflict (409): the object has
 * been modified") and returns kobj_status_cerr(st). */
int kobj_status_set_error(const kobj_status *st);

/* --- RFC 3339 times -------------------------------------------------------------- */

#define KOBJ_TIME_LEN 21      /* "2006-01-02T15:04:05Z" + NUL (metav1.Time) */
#define KOBJ_MICROTIME_LEN 28 /* "2006-01-02T15:04:05.000000Z" + NUL (metav1.MicroTime) */

/* UTC, seconds: metav1.Time's wire format. 0, or CERR_INVALID for years
 * outside 0..9999. */
int kobj_time_format(time_t t, char out[KOBJ_TIME_LEN]);
/* UTC, microseconds: metav1.MicroTime's (Lease renewTime). */
int kobj_microtime_format(const struct timespec *ts, char out[KOBJ_MICROTIME_LEN]);
/* Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" (T and Z in
 * either case, 1..9 fraction digits), checking every range. 0 or
 * CERR_INVALID. */
int kobj_time_parse(const char *s, struct timespec *out);

#endif
