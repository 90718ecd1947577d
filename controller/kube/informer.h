/*
 * informer.h - a shared informer: list, then watch, into a local cache.
 *
 * One thread per informer lists the resource (optionally one namespace and a
 * label selector), replaces its cache, then watches from the list's
 * resourceVersion with bookmarks. A watch that ends is resumed from the last
 * seen resourceVersion; 410 Gone (or an ERROR event) relists; failures back
 * off exponentially (up to 30 s). Handlers run on the informer's thread and
 * must be quick (enqueue a key, nothing more). On relist, objects that
 * vanished get on_delete, changed ones on_update.
 *
 * A transform hook may strip objects before caching (managedFields, pod spec
 * details the controller never reads) to keep memory low with many objects.
 *
 * Indexes (client-go's Indexer): an index function maps an object to any
 * number of string values; the informer keeps, for every value, the set of
 * cached objects that have it, current on every add, update, delete and
 * relist, under the same lock as the cache. Reading an index costs what it
 * returns, not the size of the cache. Every informer has the index
 * INFORMER_INDEX_NAMESPACE (metadata.namespace), which informer_each uses.
 * More handler sets can be added before the start (informer_add_handlers),
 * so another part of the process can follow changes without owning the
 * informer.
 *
 * Compact mode (informer_set_compact) caches each object as its compact
 * JSON text instead of a jansson tree, about a seventh of the memory; every
 * read (informer_get, informer_each, the handlers' old object) decodes it,
 * a few microseconds per object.
 *
 * jansson rule: handlers receive borrowed objects valid for the call;
 * informer_get returns a new reference (in compact mode a tree of the
 * caller's own).
 */
#ifndef KUBE_INFORMER_H
#define KUBE_INFORMER_H

#include "kube/kube.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct informer_handlers {
    void (*on_add)(void *ctx, const json_t *obj);
    void (*on_update)(void *ctx, const json_t *old_obj, const json_t *new_obj);
    void (*on_delete)(void *ctx, const json_t *last_known);
    /* Optional: takes a new reference to obj and returns the reference to cache. */
    json_t *(*transform)(void *ctx, json_t *obj);
    void *ctx;
} informer_handlers;

typedef struct informer_stats {
    unsigned long lists;          /* successful lists (1 + relists) */
    unsigned long watch_restarts; /* watches re-opened after ending or failing */
    unsigned long gone;           /* 410 Gone answers */
    unsigned long events;         /* watch events applied */
} informer_stats;

typedef struct informer informer;

/* The values an index function returns, collected by the informer. */
typedef struct informer_values informer_values;
/* Adds a value (copied; duplicates are kept once). 0 or CERR_NOMEM. */
int informer_values_add(informer_values *v, const char *value);
/* Values of obj for one index (client-go's IndexFunc). Called on the
 * informer's thread, with obj borrowed, outside the cache lock. 0, or a
 * CERR_* code (the object is then left out of this index). */
typedef int (*informer_index_fn)(void *ctx, const json_t *obj, informer_values *out);

#define INFORMER_INDEX_NAMESPACE "namespace"

/* ns NULL: all namespaces. resync_s > 0: every resync_s seconds, on_update(obj, obj)
 * for every cached object (level-triggered safety net). */
int informer_new(kube_client *c, const kube_resource *r, const char *ns, const char *label_selector,
                 int resync_s, const informer_handlers *h, informer **out);
/* Before informer_start: a named index (at most INFORMER_MAX_INDEXES,
 * INFORMER_INDEX_NAMESPACE included). 0, CERR_INVALID or CERR_NOMEM. */
#define INFORMER_MAX_INDEXES 8
int informer_add_index(informer *inf, const char *name, informer_index_fn fn, void *ctx);
/* Before informer_start: cache packed texts (on) or jansson trees (off,
 * the default). 0 or CERR_INVALID (already started). */
int informer_set_compact(informer *inf, bool on);
/* Before informer_start: one more set of handlers, called after those of
 * informer_new in the order added (its transform is ignored). At most
 * INFORMER_MAX_HANDLERS sets in all. 0 or CERR_INVALID. */
#define INFORMER_MAX_HANDLERS 4
int informer_add_handlers(informer *inf, const informer_handlers *h);
int informer_start(informer *inf);
/* Stops the thread and waits for it. */
void informer_stop(informer *inf);
void informer_free(informer *inf);

bool informer_has_synced(informer *inf);
/* Blocks until synced or timeout_ms passes; true when synced. */
bool informer_wait_synced(informer *inf, long timeout_ms);

/* Cached object or NULL; a new reference. */
json_t *informer_get(informer *inf, const char *ns, const char *name);
/* Calls fn on each cached object (in ns, or all when NULL) under a read lock;
 * fn must not call back into the informer. Stops early when fn returns non-zero. */
int informer_each(informer *inf, const char *ns, int (*fn)(void *ctx, const json_t *obj),
                  void *ctx);
/* Calls fn on each cached object whose index has value, under a read lock
 * (the same rules as informer_each). CERR_NOTFOUND for an unknown index;
 * 0 when no object has the value. */
int informer_each_indexed(informer *inf, const char *index, const char *value,
                          int (*fn)(void *ctx, const json_t *obj), void *ctx);
/* How many cached objects have value in index (0 for an unknown index). */
size_t informer_index_count(informer *inf, const char *index, const char *value);
size_t informer_len(informer *inf);
void informer_stats_get(informer *inf, informer_stats *out);

#endif
