/*
 * ctlmetrics.c - the controller's series (see the table in ctlmetrics.h).
 *
 * One process-wide instance: the reconciler calls ctlm_* from deep inside
 * without threading a handle through. Series with fixed labels are looked
 * up once at init and kept; the rest are looked up per call (a hash lookup
 * under the family's mutex).
 *
 * Attached queues and informers are kept in lists until ctlm_shutdown,
 * even after detach: a work queue calls its observer outside its lock with
 * a context it copied, so the context must outlive any call in flight.
 * Detach only stops the scrape-time sampling, under the same mutex the
 * collector holds, so the caller may free the component right after.
 */
#include "ctlmetrics.h"

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/emf.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef TERRANE_VERSION
#define TERRANE_VERSION "unknown"
#endif
#ifndef TERRANE_COMMIT
#define TERRANE_COMMIT "unknown"
#endif

/* controller-runtime's reconcile_time_seconds buckets. */
static const double RECONCILE_BUCKETS[] = {
    0.005, 0.01, 0.025, 0.05, 0.1,  0.15, 0.2,  0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6,
    0.7,   0.8,  0.9,   1.0,  1.25, 1.5,  1.75, 2.0,  2.5, 3.0,  3.5, 4.0,  4.5, 5,
    6,     7,    8,     9,    10,   15,   20,   25,   30,  40,   50,  60};
/* client-go's rest_client_request_duration_seconds buckets. */
static const double REST_BUCKETS[] = {0.005, 0.025, 0.1, 0.25, 0.5,  1.0,
                                      2.0,   4.0,   8.0, 15.0, 30.0, 60.0};
/* Materializations take seconds to hours. */
static const double MATERIALIZATION_BUCKETS[] = {0.5, 1,   2.5, 5,   10,   30,
                                                 60,  120, 300, 600, 1800, 3600};
/* A watch event to the pod it causes: milliseconds when all goes well. */
static const double EVENT_TO_POD_BUCKETS[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05,
                                              0.1,    0.25,  0.5,   1,     2.5,  5,     10};
#define N(a) (sizeof(a) / sizeof((a)[0]))
#define WQ_BUCKETS 10 /* client-go: ExponentialBuckets(10e-9, 10, 10) */

typedef struct wq_entry {
    struct wq_entry *next;
    wq *q; /* NULL once detached */
    metrics_series *depth, *adds, *retries, *unfinished, *longest;
    metrics_series *queue_latency, *work_duration; /* the observer's context */
} wq_entry;

typedef struct inf_entry {
    struct inf_entry *next;
    informer *inf; /* NULL once detached */
    metrics_series *restarts, *relists, *synced, *cached;
} inf_entry;

typedef struct host_entry {
    struct host_entry *next;
    char host[]; /* the kube observer's context */
} host_entry;

typedef struct ctlm {
    metrics_registry *reg;
    char *controller;
    FILE *emf_out;
    pthread_mutex_t mu; /* the lists below */
    wq_entry *queues;
    inf_entry *informers;
    host_entry *hosts;

    metrics_family *reconcile_total, *reconcile_errors, *reconcile_time, *max_concurrent,
        *active_workers;
    metrics_family *wq_depth, *wq_adds, *wq_retries, *wq_queue_duration, *wq_work_duration,
        *wq_unfinished, *wq_longest;
    metrics_family *rest_requests, *rest_duration;
    metrics_family *leader;
    metrics_family *materializations, *materialization_duration, *worker_pods, *attempts, *retries,
        *stale;
    metrics_family *inf_restarts, *inf_relists, *inf_synced, *inf_cached;
    metrics_family *build_info;
    metrics_family *p_cpu, *p_rss, *p_vsize, *p_fds, *p_max_fds, *p_start;

    /* Fixed-label series, looked up once. */
    metrics_family *event_to_pod;
    metrics_series *rec_result[4], *rec_errors, *rec_time, *rec_max, *rec_active, *event_to_pod_s;
    metrics_series *stale_s;
    metrics_series *cpu_s, *rss_s, *vsize_s, *fds_s, *max_fds_s, *start_s;
} ctlm;

static ctlm *G;

static const char *const RECONCILE_RESULTS[] = {"success", "error", "requeue", "requeue_after"};
static const char *const OUTCOMES[] = {"succeeded", "failed", "cache_hit"};
static const char *const REASONS[] = {"Succeeded", "OOMKilled", "Preempted", "Evicted", "Failed"};

const char *ctlm_reconcile_result_name(ctlm_reconcile_result r)
{
    return (unsigned)r < N(RECONCILE_RESULTS) ? RECONCILE_RESULTS[r] : "error";
}

const char *ctlm_outcome_name(ctlm_outcome o)
{
    return (unsigned)o < N(OUTCOMES) ? OUTCOMES[o] : "failed";
}

const char *ctlm_reason_name(ctlm_reason r)
{
    return (unsigned)r < N(REASONS) ? REASONS[r] : "Failed";
}

/* --- process metrics, read at scrape time from /proc --------------------- */

static void sample_process(ctlm *c)
{
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char line[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char *ok = fgets(line, sizeof line, f);
        fclose(f);
        /* Fields after the command name, which is in parentheses and may
         * contain spaces: state is field 3, utime 14, stime 15, starttime
         * 22, vsize 23, rss 24 (proc(5)). */
        char *p = ok ? strrchr(line, ')') : NULL;
        unsigned long long v[22] = {0};
        if (p && ticks > 0) {
            p += 2;
            int field = 3;
            char *save = NULL;
            for (char *tok = strtok_r(p, " ", &save); tok && field <= 24;
                 tok = strtok_r(NULL, " ", &save), field++)
                v[field - 3] = strtoull(tok, NULL, 10);
            metrics_set(c->cpu_s, (double)(v[14 - 3] + v[15 - 3]) / (double)ticks);
            metrics_set(c->vsize_s, (double)v[23 - 3]);
            metrics_set(c->rss_s, (double)v[24 - 3] * (double)page);
            /* Start time: boot time (btime in /proc/stat) + starttime ticks. */
            FILE *s = fopen("/proc/stat", "r");
            if (s) {
                while (fgets(line, sizeof line, s)) {
                    if (!strncmp(line, "btime ", 6)) {
                        double boot = strtod(line + 6, NULL);
                        metrics_set(c->start_s, boot + (double)v[22 - 3] / (double)ticks);
                        break;
                    }
                }
                fclose(s);
            }
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') n++;
        closedir(d);
        metrics_set(c->fds_s, (double)(n - 1)); /* minus the directory's own fd */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metrics_set(c->max_fds_s, rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
}

/* Runs at the start of every scrape (metrics_render). */
static void collect(void *ctx)
{
    ctlm *c = ctx;
    pthread_mutex_lock(&c->mu);
    for (wq_entry *e = c->queues; e; e = e->next) {
        if (!e->q) continue;
        wq_stats st;
        wq_stats_get(e->q, &st);
        metrics_set(e->depth, (double)st.depth);
        metrics_set(e->adds, (double)st.adds);
        metrics_set(e->retries, (double)st.retries);
        metrics_set(e->unfinished, st.unfinished_work);
        metrics_set(e->longest, st.longest_running);
    }
    for (inf_entry *e = c->informers; e; e = e->next) {
        if (!e->inf) continue;
        informer_stats st;
        informer_stats_get(e->inf, &st);
        metrics_set(e->restarts, (double)st.watch_restarts);
        metrics_set(e->relists, st.lists > 1 ? (double)(st.lists - 1) : 0);
        metrics_set(e->synced, informer_has_synced(e->inf) ? 1 : 0);
        metrics_set(e->cached, (double)informer_len(e->inf));
    }
    pthread_mutex_unlock(&c->mu);
    sample_process(c);
}

/* --- init / shutdown ---------------------------------------------------------- */

static void ctlm_free(ctlm *c)
{
    if (!c) return;
    if (c->reg) metrics_remove_collector(c->reg, collect, c);
    while (c->queues) {
        wq_entry *e = c->queues;
        c->queues = e->next;
        cmem_free(e);
    }
    while (c->informers) {
        inf_entry *e = c->informers;
        c->informers = e->next;
        cmem_free(e);
    }
    while (c->hosts) {
        host_entry *e = c->hosts;
        c->hosts = e->next;
        cmem_free(e);
    }
    metrics_registry_free(c->reg);
    cmem_free(c->controller);
    pthread_mutex_destroy(&c->mu);
    cmem_free(c);
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static int register_all(ctlm *c)
{
    metrics_registry *r = c->reg;
    double wq_buckets[WQ_BUCKETS];
    metrics_exponential_buckets(10e-9, 10, WQ_BUCKETS, wq_buckets);
    int rc;
#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((rc = (x)) < 0) return rc;                                                             \
    } while (0)

    /* controller-runtime */
    TRY(metrics_counter_new(r, "controller_runtime_reconcile_total",
                            "Total number of reconciliations per controller and result.",
                            L("controller", "result"), &c->reconcile_total));
    TRY(metrics_counter_new(r, "controller_runtime_reconcile_errors_total",
                            "Total number of reconciliation errors per controller.",
                            L("controller"), &c->reconcile_errors));
    TRY(metrics_histogram_new(r, "controller_runtime_reconcile_time_seconds",
                              "Length of time per reconciliation per controller.", L("controller"),
                              RECONCILE_BUCKETS, N(RECONCILE_BUCKETS), &c->reconcile_time));
    TRY(metrics_gauge_new(r, "controller_runtime_max_concurrent_reconciles",
                          "Maximum number of concurrent reconciles per controller.",
                          L("controller"), &c->max_concurrent));
    TRY(metrics_gauge_new(r, "controller_runtime_active_workers",
                          "Number of reconcile workers currently busy per controller.",
                          L("controller"), &c->active_workers));

    /* client-go workqueue */
    TRY(metrics_gauge_new(r, "workqueue_depth", "Current depth of the work queue.", L("name"),
                          &c->wq_depth));
    TRY(metrics_counter_new(r, "workqueue_adds_total",
                            "Total number of adds handled by the work queue.", L("name"),
                            &c->wq_adds));
    TRY(metrics_counter_new(
        r, "workqueue_retries_total",
        "Total number of retries (rate-limited adds) handled by the work queue.", L("name"),
        &c->wq_retries));
    TRY(metrics_histogram_new(r, "workqueue_queue_duration_seconds",
                              "How long in seconds an item stays in the work queue before being "
                              "handed to a worker.",
                              L("name"), wq_buckets, WQ_BUCKETS, &c->wq_queue_duration));
    TRY(metrics_histogram_new(r, "workqueue_work_duration_seconds",
                              "How long in seconds processing an item from the work queue takes.",
                              L("name"), wq_buckets, WQ_BUCKETS, &c->wq_work_duration));
    TRY(metrics_gauge_new(r, "workqueue_unfinished_work_seconds",
                          "Seconds of work in progress not yet observed by work_duration; large "
                          "values indicate stuck workers.",
                          L("name"), &c->wq_unfinished));
    TRY(metrics_gauge_new(r, "workqueue_longest_running_processor_seconds",
                          "How many seconds the longest running worker of the queue has been "
                          "running.",
                          L("name"), &c->wq_longest));

    /* client-go REST client */
    TRY(metrics_counter_new(r, "rest_client_requests_total",
                            "Number of HTTP requests to the API server, partitioned by status "
                            "code, method and host.",
                            L("code", "host", "method"), &c->rest_requests));
    TRY(metrics_histogram_new(r, "rest_client_request_duration_seconds",
                              "Request latency in seconds, by verb and host (watches excluded).",
                              L("verb", "host"), REST_BUCKETS, N(REST_BUCKETS), &c->rest_duration));

    /* client-go leader election */
    TRY(metrics_gauge_new(r, "leader_election_master_status",
                          "1 when this replica holds the named Lease, 0 when it is a standby.",
                          L("name"), &c->leader));

    /* Terrane */
    TRY(metrics_counter_new(r, "terrane_materializations_total",
                            "Materializations finished, by pool, operation and result "
                            "(succeeded, failed, cache_hit).",
                            L("pool", "operation", "result"), &c->materializations));
    TRY(metrics_histogram_new(r, "terrane_materialization_duration_seconds",
                              "Seconds from a materialization's first attempt to its success or "
                              "final failure.",
                              L("operation", "pool"), MATERIALIZATION_BUCKETS,
                              N(MATERIALIZATION_BUCKETS), &c->materialization_duration));
    TRY(metrics_histogram_new(r, "terrane_event_to_pod_create_seconds",
                              "Seconds from the moment a key became due in the work queue (the "
                              "watch event that enqueued it, or its retry deadline) to the "
                              "create request of the pod its reconcile created (the API "
                              "server's time excluded).",
                              L("controller"), EVENT_TO_POD_BUCKETS, N(EVENT_TO_POD_BUCKETS),
                              &c->event_to_pod));
    TRY(metrics_gauge_new(r, "terrane_worker_pods",
                          "Worker pods by pool and phase (running, pending).", L("pool", "phase"),
                          &c->worker_pods));
    TRY(metrics_counter_new(r, "terrane_attempts_total",
                            "Worker pod attempts that ended, by pool and how they ended "
                            "(Succeeded, OOMKilled, Preempted, Evicted, Failed).",
                            L("pool", "reason"), &c->attempts));
    TRY(metrics_counter_new(r, "terrane_retries_total",
                            "New attempts started because the previous one ended with reason.",
                            L("reason"), &c->retries));
    TRY(metrics_gauge_new(r, "terrane_stale_assets",
                          "Materializations whose upstream data changed since they were "
                          "materialized (condition Stale=True).",
                          NULL, &c->stale));
    TRY(metrics_counter_new(r, "terrane_informer_watch_restarts_total",
                            "Watches re-opened after ending or failing, per resource.",
                            L("resource"), &c->inf_restarts));
    TRY(metrics_counter_new(r, "terrane_informer_relists_total",
                            "Lists after the first (410 Gone, watch errors), per resource.",
                            L("resource"), &c->inf_relists));
    TRY(metrics_gauge_new(r, "terrane_informer_synced",
                          "1 once the informer's cache holds a complete list, per resource.",
                          L("resource"), &c->inf_synced));
    TRY(metrics_gauge_new(r, "terrane_informer_cached_objects",
                          "Objects in the informer's cache, per resource.", L("resource"),
                          &c->inf_cached));
    TRY(metrics_gauge_new(r, "terrane_build_info",
                          "Always 1; labels carry the controller's version and commit.",
                          L("version", "commit"), &c->build_info));

    /* Process metrics (standard names of every Prometheus client). */
    TRY(metrics_counter_new(r, "process_cpu_seconds_total",
                            "Total user and system CPU time spent in seconds.", NULL, &c->p_cpu));
    TRY(metrics_gauge_new(r, "process_resident_memory_bytes", "Resident memory size in bytes.",
                          NULL, &c->p_rss));
    TRY(metrics_gauge_new(r, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL,
                          &c->p_vsize));
    TRY(metrics_gauge_new(r, "process_open_fds", "Number of open file descriptors.", NULL,
                          &c->p_fds));
    TRY(metrics_gauge_new(r, "process_max_fds", "Maximum number of open file descriptors.", NULL,
                          &c->p_max_fds));
    TRY(metrics_gauge_new(r, "process_start_time_seconds",
                          "Start time of the process since unix epoch in seconds.", NULL,
                          &c->p_start));
#undef TRY
    return 0;
}

/* Series of known label values start at 0 (best effort: a refused or
 * failed one is simply created on first use). */
static void precreate(ctlm *c, const ctlm_config *cfg)
{
    for (size_t r = 1; r < N(REASONS); r++)
        metrics_with(c->retries, REASONS[r]);
    for (size_t p = 0; cfg->pools && cfg->pools[p]; p++) {
        const char *pool = cfg->pools[p];
        metrics_with(c->worker_pods, pool, "running");
        metrics_with(c->worker_pods, pool, "pending");
        for (size_t r = 0; r < N(REASONS); r++)
            metrics_with(c->attempts, pool, REASONS[r]);
        for (size_t o = 0; cfg->operations && cfg->operations[o]; o++) {
            const char *op = cfg->operations[o];
            for (size_t r = 0; r < N(OUTCOMES); r++)
                metrics_with(c->materializations, pool, op, OUTCOMES[r]);
            metrics_with(c->materialization_duration, op, pool);
        }
    }
}

int ctlm_init(const ctlm_config *cfg)
{
    static const ctlm_config defaults = {0};
    if (!cfg) cfg = &defaults;
    if (G) return cerr_set(CERR_INVALID, "metrics: already initialised");
    ctlm *c = cmem_calloc(1, sizeof *c);
    if (!c) return cerr_oom();
    pthread_mutex_init(&c->mu, NULL);
    int rc = CERR_NOMEM;
    c->emf_out = cfg->emf_out;
    c->controller = cmem_strdup(cfg->controller ? cfg->controller : "assetmaterialization");
    c->reg = metrics_registry_new(cfg->max_series);
    if (!c->controller || !c->reg) goto fail;
    if ((rc = register_all(c)) < 0) goto fail;

    for (size_t i = 0; i < N(RECONCILE_RESULTS); i++)
        c->rec_result[i] = metrics_with(c->reconcile_total, c->controller, RECONCILE_RESULTS[i]);
    c->rec_errors = metrics_with(c->reconcile_errors, c->controller);
    c->rec_time = metrics_with(c->reconcile_time, c->controller);
    c->event_to_pod_s = metrics_with(c->event_to_pod, c->controller);
    c->rec_max = metrics_with(c->max_concurrent, c->controller);
    c->rec_active = metrics_with(c->active_workers, c->controller);
    c->stale_s = metrics_get(c->stale, NULL);
    c->cpu_s = metrics_get(c->p_cpu, NULL);
    c->rss_s = metrics_get(c->p_rss, NULL);
    c->vsize_s = metrics_get(c->p_vsize, NULL);
    c->fds_s = metrics_get(c->p_fds, NULL);
    c->max_fds_s = metrics_get(c->p_max_fds, NULL);
    c->start_s = metrics_get(c->p_start, NULL);
    metrics_series *bi = metrics_with(c->build_info, cfg->version ? cfg->version : TERRANE_VERSION,
                                      cfg->commit ? cfg->commit : TERRANE_COMMIT);
    rc = CERR_NOMEM;
    if (!c->rec_result[3] || !c->rec_errors || !c->rec_time || !c->rec_max || !c->rec_active ||
        !c->stale_s || !c->cpu_s || !c->rss_s || !c->vsize_s || !c->fds_s || !c->max_fds_s ||
        !c->start_s || !bi)
        goto fail;
    for (size_t i = 0; i < N(RECONCILE_RESULTS); i++)
        if (!c->rec_result[i]) goto fail;
    metrics_set(bi, 1);
    precreate(c, cfg);
    if ((rc = metrics_add_collector(c->reg, collect, c)) < 0) goto fail;
    G = c;
    return 0;
fail:
    ctlm_free(c);
    return rc == CERR_NOMEM ? cerr_oom() : rc;
}

void ctlm_shutdown(void)
{
    ctlm *c = G;
    G = NULL;
    ctlm_free(c);
}

metrics_registry *ctlm_registry(void)
{
    return G ? G->reg : NULL;
}

/* --- reconcile workers ------------------------------------------------------------ */

void ctlm_set_max_concurrent_reconciles(int workers)
{
    if (G) metrics_set(G->rec_max, workers);
}

void ctlm_reconcile_begin(void)
{
    if (G) metrics_add(G->rec_active, 1);
}

void ctlm_reconcile_end(ctlm_reconcile_result result, double seconds)
{
    ctlm *c = G;
    if (!c) return;
    metrics_add(c->rec_active, -1);
    if ((unsigned)result >= N(RECONCILE_RESULTS)) result = CTLM_RECONCILE_ERROR;
    metrics_inc(c->rec_result[result]);
    if (result == CTLM_RECONCILE_ERROR) metrics_inc(c->rec_errors);
    metrics_observe(c->rec_time, seconds);
}

/* --- work queue -------------------------------------------------------------------- */

/* When the key this thread took last from a work queue became due, and
 * when its reconcile sent a pod create (monotonic seconds; 0: none), for
 * ctlm_pod_created. */
static _Thread_local double tl_due_s, tl_sent_s;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ctlm_pod_create_sent(void)
{
    tl_sent_s = mono_s();
}

void ctlm_pod_created(void)
{
    ctlm *c = G;
    if (!c || tl_due_s <= 0 || tl_sent_s <= 0 || tl_sent_s < tl_due_s) return;
    metrics_observe(c->event_to_pod_s, tl_sent_s - tl_due_s);
    tl_sent_s = 0; /* once per create request */
}

static void wq_observe(void *ctx, wq_metric metric, double seconds)
{
    wq_entry *e = ctx;
    if (metric == WQ_QUEUE_LATENCY) tl_due_s = mono_s() - seconds;
    metrics_observe(metric == WQ_QUEUE_LATENCY ? e->queue_latency : e->work_duration, seconds);
}

int ctlm_workqueue_attach(wq *q)
{
    ctlm *c = G;
    if (!c || !q) return 0;
    const char *name = wq_name(q);
    wq_entry *e = cmem_calloc(1, sizeof *e);
    if (!e) return cerr_oom();
    e->q = q;
    e->depth = metrics_with(c->wq_depth, name);
    e->adds = metrics_with(c->wq_adds, name);
    e->retries = metrics_with(c->wq_retries, name);
    e->unfinished = metrics_with(c->wq_unfinished, name);
    e->longest = metrics_with(c->wq_longest, name);
    e->queue_latency = metrics_with(c->wq_queue_duration, name);
    e->work_duration = metrics_with(c->wq_work_duration, name);
    pthread_mutex_lock(&c->mu);
    e->next = c->queues;
    c->queues = e;
    pthread_mutex_unlock(&c->mu);
    wq_set_observer(q, wq_observe, e);
    return 0;
}

void ctlm_workqueue_detach(wq *q)
{
    ctlm *c = G;
    if (!c || !q) return;
    wq_set_observer(q, NULL, NULL);
    pthread_mutex_lock(&c->mu);
    for (wq_entry *e = c->queues; e; e = e->next)
        if (e->q == q) e->q = NULL;
    pthread_mutex_unlock(&c->mu);
}

/* --- informers ----------------------------------------------------------------------- */

int ctlm_informer_attach(informer *inf, const char *resource)
{
    ctlm *c = G;
    if (!c || !inf) return 0;
    if (!resource) resource = "unknown";
    inf_entry *e = cmem_calloc(1, sizeof *e);
    if (!e) return cerr_oom();
    e->inf = inf;
    e->restarts = metrics_with(c->inf_restarts, resource);
    e->relists = metrics_with(c->inf_relists, resource);
    e->synced = metrics_with(c->inf_synced, resource);
    e->cached = metrics_with(c->inf_cached, resource);
    pthread_mutex_lock(&c->mu);
    e->next = c->informers;
    c->informers = e;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void ctlm_informer_detach(informer *inf)
{
    ctlm *c = G;
    if (!c || !inf) return;
    pthread_mutex_lock(&c->mu);
    for (inf_entry *e = c->informers; e; e = e->next)
        if (e->inf == inf) e->inf = NULL;
    pthread_mutex_unlock(&c->mu);
}

/* --- Kubernetes client ----------------------------------------------------------------- */

int ctlm_kube_attach(kube_client *cl, const char *server)
{
    ctlm *c = G;
    if (!c || !cl) return 0;
    const char *h = server ? server : "";
    const char *scheme = strstr(h, "://");
    if (scheme) h = scheme + 3;
    size_t n = strcspn(h, "/?#");
    host_entry *e = cmem_malloc(sizeof *e + n + 1);
    if (!e) return cerr_oom();
    memcpy(e->host, h, n);
    e->host[n] = '\0';
    pthread_mutex_lock(&c->mu);
    e->next = c->hosts;
    c->hosts = e;
    pthread_mutex_unlock(&c->mu);
    kube_client_set_observer(cl, ctlm_kube_observe, e->host);
    return 0;
}

void ctlm_kube_observe(void *ctx, const char *verb, int http_code, double seconds)
{
    ctlm *c = G;
    if (!c) return;
    const char *host = ctx ? ctx : "";
    if (!verb) verb = "GET";
    bool watch = !strcmp(verb, "WATCH");
    /* client-go labels the HTTP method; LIST and WATCH are GETs. */
    const char *method = watch || !strcmp(verb, "LIST") ? "GET" : verb;
    char code[16];
    if (http_code > 0)
        snprintf(code, sizeof code, "%d", http_code);
    else
        snprintf(code, sizeof code, "<error>");
    metrics_inc(metrics_with(c->rest_requests, code, host, method));
    if (!watch) metrics_observe(metrics_with(c->rest_duration, method, host), seconds);
}

void ctlm_set_leader(const char *lease_name, bool leading)
{
    if (G) metrics_set(metrics_with(G->leader, lease_name ? lease_name : ""), leading ? 1 : 0);
}

/* --- materializations --------------------------------------------------------------------- */

static const char *label(const char *s)
{
    return s && *s ? s : "unknown";
}

void ctlm_materialization_finished(const ctlm_materialization *m)
{
    ctlm *c = G;
    if (!c || !m) return;
    const char *pool = label(m->pool), *op = label(m->operation);
    ctlm_outcome o = (unsigned)m->result < N(OUTCOMES) ? m->result : CTLM_FAILED;
    metrics_inc(metrics_with(c->materializations, pool, op, OUTCOMES[o]));
    if (o != CTLM_CACHE_HIT)
        metrics_observe(metrics_with(c->materialization_duration, op, pool), m->seconds);
    if (c->emf_out) {
        emf_materialization e = {.pool = pool,
                                 .operation = op,
                                 .result = OUTCOMES[o],
                                 .duration_s = m->seconds,
                                 .attempts = m->attempts,
                                 .output_bytes = m->output_bytes,
                                 .namespace_ = m->namespace_,
                                 .name = m->name,
                                 .asset_key = m->asset_key,
                                 .data_version = m->data_version};
        emf_materialization_write(c->emf_out, &e); /* metrics never fail a reconcile */
    }
}

void ctlm_attempt_finished(const char *pool, ctlm_reason reason)
{
    if (G) metrics_inc(metrics_with(G->attempts, label(pool), ctlm_reason_name(reason)));
}

void ctlm_retry(ctlm_reason reason)
{
    if (G) metrics_inc(metrics_with(G->retries, ctlm_reason_name(reason)));
}

void ctlm_set_pods(const char *pool, long running, long pending)
{
    ctlm *c = G;
    if (!c) return;
    metrics_set(metrics_with(c->worker_pods, label(pool), "running"), (double)running);
    metrics_set(metrics_with(c->worker_pods, label(pool), "pending"), (double)pending);
}

void ctlm_set_stale(long n)
{
    if (G) metrics_set(G->stale_s, (double)n);
}
