/*
 * caches.h - what the controller knows of the cluster: the informers, their
 * indexes, the dependency graph and the decoded specs, kept current by the
 * informers' event handlers, which also decide what to reconcile next.
 *
 * Three informers: AssetMaterializations (all namespaces or one),
 * AssetSources (enqueued as "src:ns/name", see source.h) and worker
 * pods (selected by app.kubernetes.io/managed-by=terrane-controller). Each
 * has the namespace index; AssetMaterializations are also indexed by each
 * upstream they name (CACHES_INDEX_UPSTREAM, value "ns/upstream": the
 * direct dependents of an object), pods by their terrane.io/materialization
 * label (CACHES_INDEX_MATERIALIZATION, value "ns/label") and by their
 * terrane.io/source label (CACHES_INDEX_SOURCE). The handlers keep
 * the dependency graph (depgraph.h) in step and enqueue keys
 * ("namespace/name"): an AssetMaterialization's own events enqueue it; a
 * pod's events enqueue its controller owner; an AssetMaterialization that
 * appears, disappears or changes its phase, data version or generation
 * also enqueues its direct dependents, read from the index. Nothing a
 * handler does depends on the size of the namespace.
 *
 * Reading (any thread, for the reconciler and for anything else served
 * by the process): caches_ams / caches_pods give the informers, read with
 * informer_get (by key), informer_each (by namespace, NULL for all) and
 * informer_each_indexed (by index value); objects are borrowed for the
 * callback or, from informer_get, a new reference, and never modified.
 * To be told of changes, add handlers to an informer with
 * informer_add_handlers before caches_start; they run on the informer's
 * thread after the cache and its indexes changed and must be quick.
 *
 * Informers run on every replica so a standby's caches are warm.
 */
#ifndef TERRANE_CACHES_H
#define TERRANE_CACHES_H

#include "kube/informer.h"
#include "kube/kube.h"
#include "kube/wq.h"
#include "lib/jschema.h"
#include "poolcount.h"
#include "speccache.h"

#include <stdbool.h>

#define CACHES_INDEX_UPSTREAM "upstream"
#define CACHES_INDEX_MATERIALIZATION "materialization"
#define CACHES_INDEX_SOURCE "source"

typedef struct caches caches;

/* ns NULL: all namespaces. queue and task_schema are borrowed and outlive
 * the caches. Starts nothing. */
int caches_new(kube_client *client, const char *ns, int resync_s, wq *queue,
               const jschema *task_schema, caches **out);
int caches_start(caches *c);
void caches_stop(caches *c);
void caches_free(caches *c);
bool caches_synced(caches *c);

informer *caches_ams(caches *c);
informer *caches_pods(caches *c);
informer *caches_sources(caches *c); /* AssetSources (source.h) */
/* AssetMaterializations in the cache with Stale=True, counted by the
 * handlers as they change (no scan). */
long caches_stale(caches *c);
speccache *caches_specs(caches *c);
/* Partition pods running per node pool (poolcount.h). */
const poolcount *caches_pool_pods(caches *c);

/* Whether ns/name is on a dependency cycle; *path as depgraph_cycle (at
 * most about max_path bytes, the caller frees). 0 or CERR_NOMEM. */
int caches_cycle(caches *c, const char *ns, const char *name, char **path, size_t max_path);

/* Calls fn on each pod labelled for the materialization label value
 * (podspec_materialization_label) in ns. */
int caches_each_pod_of(caches *c, const char *ns, const char *label,
                       int (*fn)(void *ctx, const json_t *obj), void *ctx);

/* The same for observation pods, by their terrane.io/source label. */
int caches_each_pod_of_source(caches *c, const char *ns, const char *label,
                              int (*fn)(void *ctx, const json_t *obj), void *ctx);

#endif
