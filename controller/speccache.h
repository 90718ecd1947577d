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
 * An entry is one allocation: the am_spec with its own copy of every
 * string it names (name, namespace, keys, URIs, inputs), and references to
 * the spec's JSON subtrees that reconcile reads (params, tags, resources,
 * partitions; each NULL when absent or an empty object). Nothing else of
 * the object is kept: about 300 bytes for a typical spec. Entries are
 * reference-counted: speccache_get returns one that stays valid until
 * speccache_put, even if a newer generation replaces it meanwhile. Thread-safe (one mutex).
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
