/*
 * uiapi.h - the lineage UI's JSON documents, built from a uisource (the
 * caches): no Kubernetes API call per request.
 *
 *   uiapi_assets   GET /api/v1/assets[?namespace=NS]
 *                  {"assets": [summary...]} - every asset with what the graph
 *                  draws: identity, phase, stale, pool, data version, edges
 *   uiapi_asset    GET /api/v1/namespaces/NS/assets/NAME
 *                  {"asset": summary, "metadata", "spec", "status",
 *                   "downstream": [...], "pods": [...], "events": [...],
 *                   "history": [...]}
 *
 * A summary is {"kind", "namespace", "name", "key", "operation", "phase",
 * "stale", "pool", "dataVersion", "generation", "observedGeneration",
 * "reason", "message", "upstreams": [names], "sources": [URIs],
 * "output"}; "kind" says AssetMaterialization so that other kinds of node
 * (sources, partitioned assets) can join the same graph.
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

/* The summary of one AssetMaterialization (a new reference, NULL when out
 * of memory). */
json_t *uiapi_summary(const json_t *am);

/* The summary of ns/name from the cache: 0, or CERR_NOTFOUND. */
int uiapi_summary_of(uiapi *a, const char *ns, const char *name, json_t **out);
/* The AssetMaterialization a cached pod belongs to (its
 * terrane.io/materialization owner) into name: 0, or CERR_NOTFOUND. */
int uiapi_pod_owner(uiapi *a, const char *ns, const char *pod, char *name, size_t cap);

/* ns NULL: every namespace. */
int uiapi_assets(uiapi *a, const char *ns, json_t **out);
/* CERR_NOTFOUND when the cache has no such asset. */
int uiapi_asset(uiapi *a, const char *ns, const char *name, json_t **out);

/* Records an asset's current data version in its history (deleted: forgets
 * the asset). */
void uiapi_observe(uiapi *a, const json_t *am, bool deleted);

#endif
