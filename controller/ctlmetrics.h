/*
 * ctlmetrics.h - the controller's metrics: one process-wide registry with
 * every series terrane-controller exposes on /metrics, and the calls that
 * feed them.
 *
 * Names follow controller-runtime and client-go (same names, labels and
 * buckets) where the meaning is the same, so existing dashboards and
 * alerts work; everything Terrane-specific is under terrane_. The
 * reconciler and manager call the ctlm_* functions below; the work queue,
 * informers and Kubernetes client are sampled or hooked through their own
 * metrics interfaces (wq_set_observer / wq_stats_get, informer_stats_get,
 * kube_client_set_observer) once attached. Every ctlm_* call is a cheap
 * no-op before ctlm_init and after ctlm_shutdown, so code and tests that
 * never initialise metrics need no special case.
 *
 * Threads: ctlm_init and ctlm_shutdown from main, before any other thread
 * starts and after all have stopped (and after kube_client_free, whose
 * observer points into this module). Everything else from any thread.
 *
 * Cardinality: label values come from bounded sets (results, reasons, pool
 * and operation names from the configuration, verbs, codes); each family
 * is capped anyway (ctlm_config.max_series) and refused series are counted
 * in terrane_metrics_series_dropped_total{metric}.
 *
 *  series                                        type       labels
 *    fed by; notes
 *  --------------------------------------------  ---------  ------------------------
 *  controller_runtime_reconcile_total            counter    controller, result
 *    ctlm_reconcile_end; result: success, error, requeue, requeue_after
 *  controller_runtime_reconcile_errors_total     counter    controller
 *    ctlm_reconcile_end with CTLM_RECONCILE_ERROR
 *  controller_runtime_reconcile_time_seconds     histogram  controller
 *    ctlm_reconcile_end; controller-runtime's 40 buckets, 0.005 .. 60
 *  controller_runtime_max_concurrent_reconciles  gauge      controller
 *    ctlm_set_max_concurrent_reconciles
 *  controller_runtime_active_workers             gauge      controller
 *    ctlm_reconcile_begin / ctlm_reconcile_end
 *  workqueue_depth                               gauge      name
 *    wq_stats_get at each scrape (ctlm_workqueue_attach)
 *  workqueue_adds_total                          counter    name
 *    wq_stats_get at each scrape
 *  workqueue_retries_total                       counter    name
 *    wq_stats_get at each scrape
 *  workqueue_queue_duration_seconds              histogram  name
 *    the queue's observer; client-go's buckets 1e-08 .. 10, x10
 *  workqueue_work_duration_seconds               histogram  name
 *    the queue's observer; client-go's buckets 1e-08 .. 10, x10
 *  workqueue_unfinished_work_seconds             gauge      name
 *    wq_stats_get at each scrape
 *  workqueue_longest_running_processor_seconds   gauge      name
 *    wq_stats_get at each scrape
 *  rest_client_requests_total                    counter    code, host, method
 *    the client's observer (ctlm_kube_attach); code: HTTP status or "<error>";
 *    method: the HTTP method (LIST and WATCH are GETs)
 *  rest_client_request_duration_seconds          histogram  verb, host
 *    the client's observer, watches excluded (they last minutes); client-go's
 *    buckets 0.005 .. 60
 *  leader_election_master_status                 gauge      name
 *    ctlm_set_leader: 1 while this replica holds the Lease, else 0
 *  terrane_materializations_total                counter    pool, operation, result
 *    ctlm_materialization_finished; result: succeeded, failed, cache_hit
 *  terrane_materialization_duration_seconds      histogram  operation, pool
 *    ctlm_materialization_finished (succeeded and failed, not cache hits);
 *    buckets 0.5 1 2.5 5 10 30 60 120 300 600 1800 3600
 *  terrane_event_to_pod_create_seconds           histogram  controller
 *    ctlm_pod_created, from when the key became due in the work queue (an
 *    event's add, or a retry's deadline) to the create request (ctlm_pod_create_sent);
 *    buckets 0.0005 .. 10
 *  terrane_worker_pods                           gauge      pool, phase
 *    ctlm_set_pods; phase: running, pending
 *  terrane_attempts_total                        counter    pool, reason
 *    ctlm_attempt_finished; reason: Succeeded, OOMKilled, Preempted, Evicted, Failed
 *  terrane_retries_total                         counter    reason
 *    ctlm_retry; reason: OOMKilled, Preempted, Evicted, Failed
 *  terrane_stale_assets                          gauge      -
 *    ctlm_set_stale
 *  terrane_informer_watch_restarts_total         counter    resource
 *    informer_stats_get at each scrape (ctlm_informer_attach)
 *  terrane_informer_relists_total                counter    resource
 *    informer_stats_get at each scrape: lists after the first
 *  terrane_informer_synced                       gauge      resource
 *    informer_has_synced at each scrape
 *  terrane_informer_cached_objects               gauge      resource
 *    informer_len at each scrape
 *  terrane_source_observations_total             counter    namespace, result
 *    sourcemetrics.h (srcm_observed); result: succeeded or the worker's error code
 *  terrane_source_observation_duration_seconds   histogram  -
 *    sourcemetrics.h; buckets 0.1 .. 300
 *  terrane_source_changes_total                  counter    namespace
 *    sourcemetrics.h: observations that found a new source data version
 *  terrane_asset_freshness_lag_seconds           gauge      namespace, asset
 *    sourcemetrics.h at each scrape: now - lastChangedAt of sources with spec.freshness
 *  terrane_build_info                            gauge      version, commit
 *    ctlm_init; always 1
 *  terrane_metrics_series_dropped_total          counter    metric
 *    the registry, when a family is at its series cap
 *  process_cpu_seconds_total                     counter    -
 *  process_resident_memory_bytes                 gauge      -
 *  process_virtual_memory_bytes                  gauge      -
 *  process_open_fds, process_max_fds             gauge      -
 *  process_start_time_seconds                    gauge      -
 *    /proc/self at each scrape (the standard process metrics)
 *
 * With ctlm_config.emf_out set, ctlm_materialization_finished also writes
 * one CloudWatch Embedded Metric Format line (emf.h) per materialization.
 */
#ifndef TERRANE_CTLMETRICS_H
#define TERRANE_CTLMETRICS_H

#include "kube/informer.h"
#include "kube/kube.h"
#include "kube/wq.h"
#include "lib/metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct ctlm_config {
    const char *controller; /* the controller label; NULL: "assetmaterialization" */
    const char *version;    /* NULL: TERRANE_VERSION */
    const char *commit;     /* NULL: TERRANE_COMMIT when defined, else "unknown" */
    size_t max_series;      /* per family; 0: METRICS_DEFAULT_MAX_SERIES */
    FILE *emf_out;          /* EMF lines (normally stdout); NULL: none */
    /* Known pool and operation names (NULL-terminated; optional): their
     * series start at 0, so increase() and rate() count the first event
     * too instead of taking it as the series' starting value. */
    const char *const *pools;
    const char *const *operations;
} ctlm_config;

/* 0, or CERR_NOMEM / CERR_INVALID (already initialised). cfg may be NULL. */
int ctlm_init(const ctlm_config *cfg);
/* Detaches whatever is still attached and frees the registry. */
void ctlm_shutdown(void);
/* The registry to serve on /metrics (httpd_config.registry), or NULL
 * before ctlm_init. Borrowed. */
metrics_registry *ctlm_registry(void);

/* --- reconcile workers (manager) --- */
typedef enum {
    CTLM_RECONCILE_SUCCESS,       /* done, nothing to requeue */
    CTLM_RECONCILE_ERROR,         /* failed; requeued rate-limited */
    CTLM_RECONCILE_REQUEUE,       /* requeued rate-limited without an error (a 409 Conflict) */
    CTLM_RECONCILE_REQUEUE_AFTER, /* succeeded with a timed requeue (plan.requeue_after_s) */
} ctlm_reconcile_result;

void ctlm_set_max_concurrent_reconciles(int workers);
/* Around each reconcile: begin after wq_get returned a key, end with the
 * outcome and the seconds the reconcile took. */
void ctlm_reconcile_begin(void);
void ctlm_reconcile_end(ctlm_reconcile_result result, double seconds);

/* --- components (manager) --- */
/* Installs the queue's observer (histograms) and samples wq_stats_get at
 * every scrape. Detach before wq_free. 0 or CERR_NOMEM. */
int ctlm_workqueue_attach(wq *q);
void ctlm_workqueue_detach(wq *q);
/* Samples the informer at every scrape; resource labels it ("pods",
 * "assetmaterializations"; copied). Detach before informer_free. */
int ctlm_informer_attach(informer *inf, const char *resource);
void ctlm_informer_detach(informer *inf);
/* Installs ctlm_kube_observe on the client with server's host[:port] as the
 * host label ("https://10.0.0.1:443" -> "10.0.0.1:443"). 0 or CERR_NOMEM. */
int ctlm_kube_attach(kube_client *c, const char *server);
/* A kube_observe_fn; ctx is a host string that outlives the client (what
 * ctlm_kube_attach installs; exposed for tests and custom wiring). */
void ctlm_kube_observe(void *ctx, const char *verb, int http_code, double seconds);
/* From the lease callbacks: on_started_leading -> true, on_stopped_leading
 * -> false; at start with false when leader election is on. */
void ctlm_set_leader(const char *lease_name, bool leading);
/* The reconcile running on this thread sends a pod create now; then the
 * create succeeded: observes terrane_event_to_pod_create_seconds, from when
 * its key became due in an attached work queue (the observer of wq_get
 * notes it per thread) to the request (the controller's own latency). */
void ctlm_pod_create_sent(void);
void ctlm_pod_created(void);

/* --- materializations (reconciler/manager, once per transition) --- */
typedef enum { CTLM_SUCCEEDED, CTLM_FAILED, CTLM_CACHE_HIT } ctlm_outcome;
typedef enum {
    CTLM_REASON_SUCCEEDED, /* attempts only */
    CTLM_REASON_OOMKILLED,
    CTLM_REASON_PREEMPTED,
    CTLM_REASON_EVICTED,
    CTLM_REASON_FAILED, /* any other failure */
} ctlm_reason;

typedef struct ctlm_materialization {
    const char *pool, *operation; /* labels */
    ctlm_outcome result;
    double seconds; /* first attempt created -> finished */
    /* EMF only (too many values for Prometheus labels); may be NULL/0. */
    const char *namespace_, *name, *asset_key, *data_version;
    unsigned attempts;
    unsigned long long output_bytes;
} ctlm_materialization;

/* A materialization reached Succeeded (with its output: result
 * CTLM_SUCCEEDED, or CTLM_CACHE_HIT when the worker found the data version
 * already published) or Failed for good. Call once, after the status write
 * recording the transition succeeded, so a conflict-and-retry does not
 * count twice. */
void ctlm_materialization_finished(const ctlm_materialization *m);
/* A worker pod ended (its outcome was recorded in the status). */
void ctlm_attempt_finished(const char *pool, ctlm_reason reason);
/* A new attempt was started because the previous one ended for reason. */
void ctlm_retry(ctlm_reason reason);
/* Worker pods per pool, counted from the pod cache: running and pending
 * replace the previous counts. Simplest from a collector, which runs at
 * each scrape: metrics_add_collector(ctlm_registry(), fn, ctx) (remove it
 * before ctx goes away). */
void ctlm_set_pods(const char *pool, long running, long pending);
/* Materializations currently with condition Stale=True (same collector). */
void ctlm_set_stale(long n);

/* Label spellings ("success", "cache_hit", "OOMKilled", ...). */
const char *ctlm_reconcile_result_name(ctlm_reconcile_result r);
const char *ctlm_outcome_name(ctlm_outcome o);
const char *ctlm_reason_name(ctlm_reason r);

#endif
