/*
 * uiapi.h - the lineage UI's JSON documents, built from a uisource (the
 * caches): no Kubernetes API call per request.
 *
 *   uiapi_assets_text   GET /api/v1/assets[?namespace=NS]
 *                  {"seq", "assets": [summary...]} - every asset with what the
 *                  graph draws: identity, phase, stale, pool, data version,
 *                  edges
 *   uiapi_asset    GET /api/v1/namespaces/NS/assets/NAME
 *                  {"asset": summary, "metadata", "spec", "status",
 *                   "downstream": [...], "pods": [...], "events": [...],
 *                   "history": [...]}; the asset's "upstreamSources" names
 *                  the upstreams that are AssetSources
 *   uiapi_source   GET /api/v1/namespaces/NS/sources/NAME
 *                  {"source": source summary, "metadata", "spec", "status",
 *                   "downstream", "pods" (observations), "events", "history"}
 *
 * The list holds AssetSources too (first: the lineage's roots), their
 * summary with "kind": "AssetSource", "phase" Observing (an observation in
 * flight), Available or Unavailable (the Available condition) or Pending,
 * "version", "reason" and "message" (the Available condition's / the
 * status's), "objectCount", "bytes", "observedAt", "lastChangedAt", "fresh"
 * (only with spec.freshness) and no upstreams; the full one adds "uri",
 * "dataVersion", "generation", "observedGeneration", "observation",
 * "finishedObservation", "nextObservationAt", "listing",
 * "consecutiveFailures" and "freshness" (the Fresh condition's message).
 * A source's history lists the data versions it was seen to change to.
 *
 * A summary is what the graph draws, kept small because the page loads one
 * per asset: {"namespace", "name", "key", "phase", "stale" (only when true),
 * "pool", "version" (12 hex digits of the data version), "reason",
 * "message" (the status's, else the Ready condition's), "upstreams": [names]}. The full one
 * (the detail's "asset") adds "kind", "operation", "dataVersion",
 * "generation", "observedGeneration", "output" and "sources" (external
 * input URIs). A summary without "kind" is an AssetMaterialization; other
 * kinds of node (sources, partitioned assets) join the same graph with
 * their own "kind" and badges.
 *
 * What is never in a document: pod specs (environment, command: the
 * manager's cache does not even hold them), Secrets, the
 * last-applied-configuration annotation, managedFields. Strings are the
 * cluster's as they are; the page renders every one of them as text.
 *
 * The data-version history of an asset is what this process has seen
 * (uiapi_observe from the change stream, newest first, at most
 * UIAPI_HISTORY_MAX entries): the status holds only the current version.
 *
 * Threads: every function may be called from any thread.
 * jansson rule: every **out is a new reference owned by the caller.
 */
#ifndef TERRANE_UIAPI_H
#define TERRANE_UIAPI_H

#include "uisource.h"

#include <jansson.h>

#define UIAPI_HISTORY_MAX 20
#define UIAPI_EVENTS_MAX 50

typedef struct uiapi uiapi;

int uiapi_new(uisource *src, uiapi **out);
void uiapi_free(uiapi *a);

/* The summary of one AssetMaterialization, the list's or (full) the
 * detail's: a new reference, NULL when out of memory. */
json_t *uiapi_summary(const json_t *am, bool full);

/* The summary of ns/name from the cache: 0, or CERR_NOTFOUND. */
int uiapi_summary_of(uiapi *a, const char *ns, const char *name, json_t **out);
/* The AssetMaterialization a cached pod belongs to (its
 * terrane.io/materialization owner) into name: 0, or CERR_NOTFOUND. */
int uiapi_pod_owner(uiapi *a, const char *ns, const char *pod, char *name, size_t cap);

/* {"seq": seq, "assets": [...]} as text (*out the caller's, cmem_free), ns
 * NULL: every namespace. The summaries are the ones uiapi_observe made
 * when each asset last changed, so a list of 10,000 assets is one copy of
 * prepared text, not 10,000 documents built again. */
int uiapi_assets_text(uiapi *a, const char *ns, unsigned long seq, char **out, size_t *len);
/* CERR_NOTFOUND when the cache has no such asset. */
int uiapi_asset(uiapi *a, const char *ns, const char *name, json_t **out);

/* Takes in a change of an asset (every add, update and delete, from the
 * informer's handlers): its summary for the list, and its data version for
 * the history (deleted: forgets the asset). */
void uiapi_observe(uiapi *a, const json_t *am, bool deleted);

/* The same for AssetSources. */
json_t *uiapi_source_summary(const json_t *src, bool full);
int uiapi_source_summary_of(uiapi *a, const char *ns, const char *name, json_t **out);
int uiapi_source(uiapi *a, const char *ns, const char *name, json_t **out);
void uiapi_observe_source(uiapi *a, const json_t *src, bool deleted);

#endif
