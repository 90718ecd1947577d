/*
 * executor.h - one reconcile of one key: gather the inputs from the
 * caches, ask reconcile_decide for a plan, carry it out.
 *
 * Inputs, each read by key or by index, never by scanning a namespace:
 * the object, its decoded spec (speccache.h), its direct upstreams, its
 * pods (by their terrane.io/materialization label) and whether the
 * dependency graph puts it on a cycle. The plan is carried out in order:
 * pod deletions (with the pod's uid as a precondition), the pod creation
 * (an AlreadyExists pod is adopted), the status through the status
 * subresource with the resourceVersion read (409 Conflict requeues, never
 * overwrites), then the plan's Events. What the plan reports for metrics
 * (a materialization finished, an attempt ended) is counted once its
 * status is written, even when a later step fails and the key is retried.
 * API errors requeue with per-key exponential backoff; timed requeues use
 * wq_add_after (see retries.h).
 *
 * Any number of worker threads call executor_process at once; the
 * executor is read-only after executor_new.
 */
#ifndef TERRANE_EXECUTOR_H
#define TERRANE_EXECUTOR_H

#include "caches.h"
#include "ctlmetrics.h"
#include "kube/events.h"
#include "kube/kube.h"
#include "kube/wq.h"
#include "reconcile.h"

#include <stdatomic.h>

typedef struct {
    kube_client *client;
    event_recorder *events;
    wq *queue;
    caches *caches;
    const reconcile_config *reconcile;
} executor_config;

typedef struct executor executor;

/* Everything in cfg is borrowed and outlives the executor. */
int executor_new(const executor_config *cfg, executor **out);
void executor_free(executor *x);

/* Reconciles key ("namespace/name"), requeueing it as the outcome says. */
ctlm_reconcile_result executor_process(executor *x, const char *key);
/* Reconciles so far. */
unsigned long executor_reconciles(executor *x);

#endif
