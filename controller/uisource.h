/*
 * uisource.h - what the lineage UI reads: the controller's caches behind a
 * small interface, so the UI never calls the Kubernetes API per page view.
 *
 * Four kinds of cached object: AssetMaterializations, their worker and
 * observation pods (already stripped to metadata, nodeName and status by the
 * caches), the Events about them and AssetSources (the lineage's roots). A
 * source lists one kind (one namespace or all), gets one object by namespace
 * and name, lists an asset's direct dependents and the pods of an asset or
 * of an AssetSource (through the caches' indexes: no scan of the namespace),
 * and tells one subscriber about every change. uisource_new builds the
 * source over the controller's caches (caches.h: it adds its handlers to
 * their three informers) and an Events informer of its own; tests build one over plain
 * arrays with uisource_from (the same interface, no cluster).
 *
 * Threads: each/get may be called from any thread; the subscriber is called
 * on the informer threads and must be quick (uiserver_notify is).
 *
 * jansson rule: each's callback gets borrowed objects valid for the call;
 * get returns a new reference.
 */
#ifndef TERRANE_UISOURCE_H
#define TERRANE_UISOURCE_H

#include "kube/informer.h"
#include "kube/kube.h"

#include <jansson.h>

typedef enum { UISRC_ASSETS, UISRC_PODS, UISRC_EVENTS, UISRC_SOURCES, UISRC_KINDS } uisrc_kind;

/* obj: the new state, or the last known one when deleted. */
typedef void (*uisrc_change_fn)(void *ctx, uisrc_kind kind, const json_t *obj, bool deleted);
typedef int (*uisrc_each_fn)(void *ctx, const json_t *obj);

typedef struct uisource_ops {
    int (*each)(void *impl, uisrc_kind kind, const char *ns, uisrc_each_fn fn, void *ctx);
    json_t *(*get)(void *impl, uisrc_kind kind, const char *ns, const char *name);
    /* Optional (NULL: each, filtered): the assets whose inputs name ns/name
     * in from:, and the pods of asset ns/name. */
    int (*each_dependent)(void *impl, const char *ns, const char *name, uisrc_each_fn fn,
                          void *ctx);
    int (*each_pod_of)(void *impl, const char *ns, const char *name, uisrc_each_fn fn, void *ctx);
    /* Optional (NULL: each, filtered): the observation pods of AssetSource
     * ns/name (labelled terrane.io/source). */
    int (*each_pod_of_source)(void *impl, const char *ns, const char *name, uisrc_each_fn fn,
                              void *ctx);
} uisource_ops;

typedef struct uisource uisource;

struct caches;
/* Over the caches, before caches_start (it adds handlers to their
 * informers), with an Events informer of its own on client, in ns or all
 * namespaces. The caches must outlive the source; uisource_start/stop run
 * the Events informer. */
int uisource_new(kube_client *client, const char *ns, struct caches *caches, uisource **out);
int uisource_start(uisource *s);
void uisource_stop(uisource *s);

/* Over any implementation (tests). */
int uisource_from(const uisource_ops *ops, void *impl, uisource **out);
void uisource_free(uisource *s);

int uisource_each(uisource *s, uisrc_kind kind, const char *ns, uisrc_each_fn fn, void *ctx);
json_t *uisource_get(uisource *s, uisrc_kind kind, const char *ns, const char *name);
int uisource_each_dependent(uisource *s, const char *ns, const char *name, uisrc_each_fn fn,
                            void *ctx);
int uisource_each_pod_of(uisource *s, const char *ns, const char *name, uisrc_each_fn fn,
                         void *ctx);
int uisource_each_pod_of_source(uisource *s, const char *ns, const char *name, uisrc_each_fn fn,
                                void *ctx);

/* One subscriber (the UI server); set it before the informers start. */
void uisource_subscribe(uisource *s, uisrc_change_fn fn, void *ctx);
/* Reports a change to the subscriber (the handlers uisource_new adds call
 * it; a source made with uisource_from is told by its owner). */
void uisource_changed(uisource *s, uisrc_kind kind, const json_t *obj, bool deleted);

#endif
