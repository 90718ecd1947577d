/*
 * kube.h - a Kubernetes REST client over libcurl.
 *
 * Configuration comes from the in-cluster service account (token, CA,
 * namespace under /var/run/secrets/kubernetes.io/serviceaccount, and
 * KUBERNETES_SERVICE_HOST/PORT) or from a kubeconfig file (kubeconfig.c).
 * TLS peer and host verification are always on when the server is https.
 * Every request passes a client-side token bucket (QPS/burst, like
 * client-go's), a 429 is retried after its Retry-After (bounded), and
 * connections are reused across requests and threads (a curl share handle).
 *
 * Thread safety: a kube_client is used by many threads at once (informers,
 * reconcile workers, the lease elector); every function here may be called
 * concurrently.
 *
 * Errors: functions return 0 or a CERR_* code (cerr.h) with the message set,
 * including the API server's Status message ("assetmaterializations
 * \"x\" not found"): 404 CERR_NOTFOUND, 409 CERR_CONFLICT (stale
 * resourceVersion or AlreadyExists: kube_last_reason tells which), 410
 * CERR_GONE, 429/5xx CERR_AGAIN, 400/422 CERR_INVALID, 401/403
 * CERR_FORBIDDEN.
 *
 * jansson rule: json_t * parameters are borrowed; every **out is a new
 * reference owned by the caller (json_decref).
 */
#ifndef KUBE_KUBE_H
#define KUBE_KUBE_H

#include "kube/kubeconfig.h"
#include "kube/watch.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

/* A resource type: group "" is the core API. */
typedef struct kube_resource {
    const char *group;
    const char *version;
    const char *plural;
    const char *kind;
    bool namespaced;
} kube_resource;

extern const kube_resource KUBE_PODS;
extern const kube_resource KUBE_EVENTS;
extern const kube_resource KUBE_LEASES;
extern const kube_resource KUBE_CONFIGMAPS;

typedef struct kube_client kube_client;

int kube_client_new(const kube_config *cfg, kube_client **out);
void kube_client_free(kube_client *c);

/* Observer for metrics: called after every request with the verb (GET,
 * LIST, WATCH, POST, PUT, PATCH, DELETE), the HTTP status (0: no response)
 * and the latency. Set before use; may be NULL. */
typedef void (*kube_observe_fn)(void *ctx, const char *verb, int http_code, double seconds);
void kube_client_set_observer(kube_client *c, kube_observe_fn fn, void *ctx);

/* The reason of the last failed request on this thread ("AlreadyExists",
 * "Conflict", "NotFound", ...), or "". */
const char *kube_last_reason(void);

/* Bounds every later call on this thread (retries and Retry-After waits
 * included) to timeout_ms, below the client's timeout_ms; 0 removes the
 * bound. A call that would outlast it fails with CERR_TIMEOUT. The lease
 * elector uses it so that a hung request cannot outlast its renew deadline. */
void kube_set_thread_timeout(long timeout_ms);

int kube_get(kube_client *c, const kube_resource *r, const char *ns, const char *name,
             json_t **out);
/* Lists all pages (limit/continue); ns NULL = all namespaces; selectors may be NULL.
 * *out is the List object with all items and the list's resourceVersion. */
int kube_list(kube_client *c, const kube_resource *r, const char *ns, const char *label_selector,
              const char *field_selector, json_t **out);
/* The same list, one page at a time, so that only one page is in memory:
 * fn gets each page's List object (borrowed; metadata.resourceVersion is
 * the snapshot's, "continue" removed), restart true when the pages given
 * so far must be forgotten (an expired continue token: the list starts
 * again unpaginated). A non-zero return from fn stops and is returned. */
typedef int (*kube_page_fn)(void *ctx, json_t *page, bool restart);
int kube_list_pages(kube_client *c, const kube_resource *r, const char *ns,
                    const char *label_selector, const char *field_selector, kube_page_fn fn,
                    void *ctx);
/* For create, update, update_status and patch, *out is the object the
 * server returned; out NULL: the response body is not decoded (a writer
 * that only needs to know it succeeded saves decoding an object the watch
 * brings anyway). */
int kube_create(kube_client *c, const kube_resource *r, const char *ns, const json_t *obj,
                json_t **out);
/* PUT of the whole object; its metadata.resourceVersion makes it conditional. */
int kube_update(kube_client *c, const kube_resource *r, const json_t *obj, json_t **out);
/* PUT to the status subresource. */
int kube_update_status(kube_client *c, const kube_resource *r, const json_t *obj, json_t **out);

typedef enum { KUBE_PATCH_MERGE, KUBE_PATCH_JSON, KUBE_PATCH_STRATEGIC } kube_patch_type;
int kube_patch(kube_client *c, const kube_resource *r, const char *ns, const char *name,
               kube_patch_type type, const json_t *patch, bool status_subresource, json_t **out);
/* DELETE; uid (may be NULL) becomes a precondition, so a re-created object of
 * the same name is never deleted by mistake. propagation: "Background" etc. or NULL. */
int kube_delete(kube_client *c, const kube_resource *r, const char *ns, const char *name,
                const char *uid, const char *propagation);

/* Streams a watch (allowWatchBookmarks=true) from resource_version, calling
 * cb for each event (watch.h), until the server ends the stream (returns 0),
 * timeout_s passes (server-side timeoutSeconds), cb returns non-zero (that
 * value is returned), *stop becomes true (CERR_SHUTDOWN), or an error.
 * An ERROR event with code 410 makes it return CERR_GONE. */
typedef int (*kube_watch_fn)(void *ctx, const watch_event *ev);
int kube_watch(kube_client *c, const kube_resource *r, const char *ns, const char *label_selector,
               const char *resource_version, int timeout_s, kube_watch_fn cb, void *ctx,
               const atomic_bool *stop);

#endif
