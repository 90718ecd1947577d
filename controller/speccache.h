/*
 * speccache.h - decoded and validated specs, once per (uid, generation).
 *
 * Decoding a spec validates its params against the task schema (every
 * regex and rule of task.v1.json), which costs more than the rest of a
 * reconcile. A spec changes only with metadata.generation, so the result
 * (the am_spec, or the validation error) is kept per object uid and
 * reused until the generation moves; status writes, which are most of
 * the updates, never re-validate.
 *
 * An entry holds what it was decoded from (the object's name, namespace,
 * uid and generation, and its spec subtree, shared with the informer's
 * cache, which never changes it), since an am_spec borrows its strings. Entries are
 * reference-counted: speccache_get returns one that stays valid until speccache_put, even if a
 * newer generation replaces it meanwhile. Thread-safe (one mutex).
 */
#ifndef TERRANE_SPECCACHE_H
#define TERRANE_SPECCACHE_H

#include "lib/jschema.h"
#include "spec.h"

#include <jansson.h>

typedef struct speccache speccache;

typedef struct spec_entry {
    const am_spec *spec;      /* NULL when the spec is invalid */
    const jschema_error *err; /* when invalid: the field and what is wrong */
} spec_entry;

typedef struct {
    unsigned long hits, misses, entries;
} speccache_stats;

/* task_schema as for spec_decode (borrowed, outlives the cache). NULL when
 * out of memory. */
speccache *speccache_new(const jschema *task_schema);
void speccache_free(speccache *c);

/* The entry for am (decoding it on a miss). 0 with *out, or CERR_NOMEM
 * (nothing is cached then). An invalid spec is an entry, not an error. */
int speccache_get(speccache *c, const json_t *am, const spec_entry **out);
void speccache_put(speccache *c, const spec_entry *e);
/* Drops the entry of uid (the object was deleted). */
void speccache_forget(speccache *c, const char *uid);
void speccache_stats_get(speccache *c, speccache_stats *out);

#endif
