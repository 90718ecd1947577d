/*
 * reconcile.h - the AssetMaterialization state machine, as a pure decision.
 *
 * reconcile_decide looks at one materialization, its direct upstreams
 * and its worker pods, all as the informer caches hold them, whether the
 * dependency graph puts it on a cycle (depgraph.h), plus the time, and
 * returns a
 * plan: the status to write (or none when it would not change), at most one
 * pod to create, pods to delete, Events to record once the status is
 * written, and when to look again. It performs no I/O, so every branch is
 * unit-tested with hand-made objects; the manager (manager.h) gathers the
 * inputs and carries the plan out. Level-triggered: the decision depends
 * only on what is observed, never on what an earlier reconcile did, so a
 * restarted controller continues where the last one stopped.
 *
 * See the table below.
 *
 * Pods: finished pods are deleted pod_gc_delay after they finished, except
 * the latest attempt while its outcome is still needed; failed pods are
 * kept (keep_failed_pods) until the materialization succeeds. Active pods
 * of another data version or generation are superseded and deleted.
 *
 * Ownership: the plan owns what it holds (reconcile_plan_clear frees it);
 * inputs are borrowed. Any thread; the config is shared read-only.
 */
/* clang-format off */
/*
 *  situation                                phase / Ready reason      action
 *  ---------------------------------------  ------------------------  --------------------------
 *  AM gone                                  -                         delete its pods
 *  AM being deleted                         -                         delete its pods (data kept)
 *  pod owned by an older AM of that name    -                         delete it
 *  spec invalid                             Failed / InvalidSpec      delete active pods; no retry
 *  on a dependency cycle                    Failed / DependencyCycle  delete active pods
 *  an upstream does not exist               Waiting / UpstreamMissing wait for its add event
 *  an upstream has not succeeded (for its   Waiting / UpstreamNotReady wait for its status event
 *    generation); Manual with an output:    Succeeded / Materialized  keep the output
 *  output's data version current, same gen  Succeeded / Materialized  GC pods; Stale=False
 *  upstream changed, refreshPolicy Manual   Succeeded / Materialized  Stale=True, keep the output
 *  upstream changed (OnUpstreamChange),     (go on below)             Stale=True UpstreamChanged
 *    spec changed (generation), no output
 *  tag names an unknown pool                Failed / UnknownPool      -
 *  failed for good for this version + gen   Failed / BadInput or      GC pods, nothing else
 *                                             RetriesExhausted
 *  latest pod Pending, unscheduled          Pending / Materializing   copy PodScheduled message
 *  latest pod Running (or bound)            Running / Materializing   -
 *  latest pod being deleted                 (unchanged)               wait for its delete event
 *  latest pod Succeeded, valid Result       Succeeded / Materialized  record output, lineage
 *  latest pod Succeeded, invalid Result     as an Internal failure
 *  latest pod Failed: disrupted (preempted, Pending / Materializing   next attempt now, not
 *    evicted, node lost)                                                counted as a retry
 *  latest pod Failed: OOMKilled             Pending / Materializing   next attempt on the pool's
 *                                                                       oomEscalation (counted)
 *  latest pod Failed: exit 65 / BadInput    Failed / BadInput         no retry
 *  latest pod Failed: other, retries left   Pending / RetryBackoff    next attempt after
 *                                                                       backoff x 2^retries
 *  latest pod Failed: other, none left      Failed / RetriesExhausted -
 *  no pod yet for this data version + gen   Pending / Materializing   create attempt 1
 *  status knows a pod the cache lacks       (unchanged)               create it again, same name
 *    (not yet seen, or vanished)                                        (AlreadyExists: adopted)
 *
 */
/* clang-format on */
#ifndef TERRANE_RECONCILE_H
#define TERRANE_RECONCILE_H

#include "lib/jschema.h"
#include "podspec.h"
#include "pools.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef struct {
    const pools *pools;
    const jschema *task_schema;   /* task.v1.json */
    const jschema *result_schema; /* result.v1.json (with task.v1.json for its $refs) */
    const podspec_config *pod;
    const char *worker_version; /* part of every data version */
    long pod_gc_delay_s;
    bool keep_failed_pods;
} reconcile_config;

typedef struct {
    const char *namespace_, *name; /* the key, also when am is NULL */
    const json_t *am;              /* NULL: gone */
    /* The materializations this decision may read: am's direct upstreams
     * that exist (others given are ignored; a name of from: not among
     * them is a missing upstream). */
    const json_t *const *ams;
    size_t n_ams;
    /* am is on a dependency cycle: the cycle "a -> b -> a"; NULL: it is
     * not (the caller's graph answers this, so nothing here depends on
     * the size of the namespace). */
    const char *cycle;
    /* am's spec decoded and validated (speccache.h), or its validation
     * error; both NULL: decoded here. */
    const struct am_spec *spec;
    const jschema_error *spec_error;
    const json_t *const *pods; /* pods labelled terrane.io/materialization for this name */
    size_t n_pods;
    time_t now;
    /* Partition pods running per pool over all assets (pools' maxPartitionPods), or NULL. */
    const struct poolcount *pool_pods;
} reconcile_input;

typedef struct {
    char *name, *uid; /* uid is a delete precondition */
    const char *why;  /* "superseded", "finished", "orphaned", "owner deleted" */
} reconcile_delete;

typedef struct {
    const char *type; /* "Normal" or "Warning" */
    char *reason;     /* CamelCase, owned: a reason may come from a decoded result */
    char *message;
} reconcile_event;

typedef struct {
    json_t *status; /* new status, or NULL when unchanged */
    json_t *create; /* pod to create, or NULL */
    reconcile_delete *deletes;
    size_t n_deletes;
    reconcile_event *events; /* record after the status is written */
    size_t n_events;
    long requeue_after_s; /* 0: no timed requeue */
    /* For metrics, reported after the status write like the events: an
     * attempt that ended in this plan (its pool, and how: "Succeeded",
     * "OOMKilled", "Preempted", "Evicted", "Failed"), and whether a new
     * attempt follows because of it. */
    bool attempt_ended;
    bool retried;
    const char *ended_pool; /* borrowed from the pools configuration */
    const char *ended_how;
    const char *outcome; /* for logs: "up-to-date", "create-pod", "waiting", ... */
    char changed[256];   /* for logs: the status fields that changed */
    /* After the status write: ask this AssetSource for an observation
     * with this value of terrane.io/observe (srcchange.h); owned. */
    char *observe_source, *observe_token;
} reconcile_plan;

/* 0 with *out filled, or CERR_NOMEM (the plan is then empty). Decisions
 * about an invalid spec or bad data are plans, not errors. */
int reconcile_decide(const reconcile_config *cfg, const reconcile_input *in, reconcile_plan *out);
void reconcile_plan_clear(reconcile_plan *p);

/* Plan building, shared with the AssetSource decision (source.h): append
 * a delete of pod (none for a pod being deleted or already listed) or an
 * Event (message copied). 0 or CERR_NOMEM. */
int reconcile_add_delete(reconcile_delete **ds, size_t *n, const json_t *pod, const char *why);
int reconcile_add_event(reconcile_event **evs, size_t *n, const char *type, const char *reason,
                        const char *message);
void reconcile_free_actions(reconcile_delete *ds, size_t n_deletes, reconcile_event *evs,
                            size_t n_events);

#endif
