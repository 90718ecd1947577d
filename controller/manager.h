/*
 * manager.h - wires the controller together and runs it (controller-
 * runtime's Manager in C).
 *
 * Owns the Kubernetes client, the caches (caches.h: informers, indexes,
 * dependency graph, decoded specs, and the handlers that enqueue keys),
 * the work queue, the Event recorder, the leader elector, the executor
 * (executor.h: one reconcile) and N reconcile worker threads.
 *
 * Informers run on every replica so a standby's caches are warm; reconcile
 * workers run only while this replica holds the Lease. Losing the Lease
 * ends the process with status 1 (as controller-runtime does), so a
 * replica never reconciles without leading.
 *
 * manager_run blocks until SIGTERM or SIGINT (which the caller must have
 * blocked in every thread, see main.c), then shuts down gracefully: the
 * queue stops handing out work, in-flight reconciles get shutdown_timeout_s
 * to finish, the Lease is released so a standby takes over at once, and
 * queued Events are flushed.
 */
#ifndef TERRANE_MANAGER_H
#define TERRANE_MANAGER_H

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

/* Reconciles so far (for logs and tests). */
unsigned long manager_reconciles(const manager *m);

/* The caches, for other readers in the process (caches.h says how to read
 * them and be told of changes). Valid from manager_new to manager_free. */
struct caches;
struct caches *manager_caches(manager *m);
/* The Kubernetes client (borrowed, valid until manager_free), for other
 * readers that keep informers of their own (the lineage UI's Events). */
struct kube_client;
struct kube_client *manager_client(manager *m);

#endif
