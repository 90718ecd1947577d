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
 * jansson rule: handlers receive borrowed objects valid for the call;
 * informer_get returns a new reference.
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

/* ns NULL: all namespaces. resync_s > 0: every resync_s seconds, on_update(obj, obj)
 * for every cached object (level-triggered safety net). */
int informer_new(kube_client *c, const kube_resource *r, const char *ns, const char *label_selector,
                 int resync_s, const informer_handlers *h, informer **out);
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
size_t informer_len(informer *inf);
void informer_stats_get(informer *inf, informer_stats *out);

#endif
