/*
 * manager.h - wires the controller together and runs it (controller-
 * runtime's Manager in C).
 *
 * Owns the Kubernetes client, two informers (AssetMaterializations in all
 * namespaces or one; worker pods selected by
 * app.kubernetes.io/managed-by=terrane-controller), the work queue, the
 * Event recorder, the leader elector and N reconcile worker threads.
 * Informer handlers only enqueue "namespace/name" keys: an
 * AssetMaterialization's own events enqueue it; a pod's events enqueue its
 * controller owner; an AssetMaterialization that appears, disappears or
 * changes its phase, data version or generation also enqueues its
 * dependents (those whose inputs name it in from:), found through an index
 * kept by the handlers.
 *
 * Informers run on every replica so a standby's caches are warm; reconcile
 * workers run only while this replica holds the Lease. Losing the Lease
 * ends the process with status 1 (as controller-runtime does), so a
 * replica never reconciles without leading. A worker takes a key, gathers
 * the object, its namespace's AssetMaterializations and its pods from the
 * caches, asks reconcile_decide for a plan and carries it out: pod
 * deletions (with the pod's uid as a precondition), the pod creation (an
 * AlreadyExists pod is adopted), the status through the status subresource
 * with the resourceVersion read (409 Conflict requeues, never overwrites),
 * then the plan's Events. API errors requeue with per-key exponential
 * backoff; timed requeues use wq_add_after.
 *
 * manager_run blocks until SIGTERM or SIGINT (which the caller must have
 * blocked in every thread, see main.c), then shuts down gracefully: the
 * queue stops handing out work, in-flight reconciles get shutdown_timeout_s
 * to finish, the Lease is released so a standby takes over at once, and
 * queued Events are flushed.
 */
#ifndef TERRANE_MANAGER_H
#define TERRANE_MANAGER_H

#include "kube/informer.h"
#include "kube/kube.h"
#include "reconcile.h"

#include <stdbool.h>

typedef struct {
    const char *kubeconfig; /* NULL: in-cluster configuration */
    const char *context;    /* kubeconfig context, NULL: current */
    const char *namespace_; /* NULL: all namespaces */
    int workers;            /* reconcile threads */
    bool leader_elect;
    const char *lease_name, *lease_namespace, *identity;
    int lease_duration_s, renew_deadline_s, retry_period_s;
    double qps; /* 0: the client's default */
    unsigned burst;
    int resync_s;             /* informer resync period */
    int shutdown_timeout_s;   /* bound on in-flight reconciles at shutdown */
    const char *metrics_addr; /* "host:port" of /metrics, /healthz, /readyz; NULL: none */
    reconcile_config reconcile;
} manager_config;

typedef struct manager manager;

/* Creates the client and everything else, starts nothing. 0 or a CERR_*
 * code with the message set. */
int manager_new(const manager_config *cfg, manager **out);
/* Runs until a termination signal (0) or lost leadership (1); returns the
 * process exit status. */
int manager_run(manager *m);
void manager_free(manager *m);

/* For the lineage UI (uisource.h), which reads the manager's caches: the
 * client and the two informers (borrowed, valid until manager_free), and
 * an observer the informer handlers call after their own work (pod: false
 * for an AssetMaterialization; obj borrowed for the call). Set the
 * observer before manager_run. */
typedef void (*manager_observer_fn)(void *ctx, bool pod, const json_t *obj, bool deleted);
void manager_set_observer(manager *m, manager_observer_fn fn, void *ctx);
kube_client *manager_client(manager *m);
informer *manager_assets(manager *m);
informer *manager_pods(manager *m);

/* Reconciles so far (for logs and tests). */
unsigned long manager_reconciles(const manager *m);

#endif
