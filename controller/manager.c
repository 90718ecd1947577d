/*
 * manager.c - the lifecycle: wiring, the leader gate, the reconcile
 * workers, the metrics census and shutdown (see manager.h). What the
 * caches hold and how events become keys is caches.c; what one reconcile
 * does is executor.c.
 *
 * Threads: one per informer (handlers run there and only enqueue), the
 * lease elector's, the event recorder's, N reconcile workers, and the
 * caller's thread in manager_run, which waits for signals. The leader
 * gate is a mutex and condition variable the workers wait on.
 */
#include "manager.h"

#include "caches.h"
#include "crd.h"
#include "ctlmetrics.h"
#include "executor.h"
#include "sourcemetrics.h"
#include "lib/httpd.h"
#include "status.h"

#include "kube/events.h"
#include "kube/informer.h"
#include "kube/kobj.h"
#include "kube/kube.h"
#include "kube/lease.h"
#include "kube/ratelimit.h"
#include "kube/wq.h"
#include "lib/cerr.h"
#include "lib/clog.h"
#include "lib/cmem.h"
#include "lib/strmap.h"
#include "podspec.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct manager {
    manager_config cfg;
    kube_config *kcfg;
    kube_client *client;
    caches *caches;
    executor *exec;
    wq *queue;
    event_recorder *events;
    lease_elector *lease;
    httpd *http;
    bool collecting; /* sample_cluster registered with the metrics registry */
    char *identity, *lease_ns;

    pthread_t *threads;
    size_t nthreads;
    bool threads_joined;

    pthread_mutex_t mu; /* leader gate */
    pthread_cond_t cv;
    bool leading, stopping;
    atomic_bool lost; /* leadership lost: exit 1 */
    atomic_bool halt; /* workers: stop taking work */
};

unsigned long manager_reconciles(const manager *m)
{
    return m->exec ? executor_reconciles(m->exec) : 0;
}

kube_client *manager_client(manager *m)
{
    return m->client;
}

caches *manager_caches(manager *m)
{
    return m->caches;
}

/* --- leader election callbacks ------------------------------------------------------------- */

static const char *lease_name(const manager *m)
{
    return m->cfg.lease_name && m->cfg.lease_name[0] ? m->cfg.lease_name : "terrane-controller";
}

static void started_leading(void *ctx)
{
    manager *m = ctx;
    clog_info("started leading", "{s:s}", "identity", m->identity);
    ctlm_set_leader(lease_name(m), true);
    pthread_mutex_lock(&m->mu);
    m->leading = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void stopped_leading(void *ctx)
{
    manager *m = ctx;
    pthread_mutex_lock(&m->mu);
    bool stopping = m->stopping;
    m->leading = false;
    pthread_mutex_unlock(&m->mu);
    ctlm_set_leader(lease_name(m), false);
    if (stopping) return;
    /* As controller-runtime: a replica that lost the Lease exits, so it
     * never acts on a cache while another replica leads. */
    clog_error("leader election lost", "{s:s}", "identity", m->identity);
    atomic_store(&m->halt, true);
    atomic_store(&m->lost, true);
}

static void new_leader(void *ctx, const char *identity)
{
    manager *m = ctx;
    if (identity && strcmp(identity, m->identity))
        clog_info("new leader", "{s:s, s:s}", "leader", identity, "identity", m->identity);
}

/* --- reconcile workers ------------------------------------------------------------------------ */

static double elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void *worker_main(void *arg)
{
    manager *m = arg;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        while (!m->leading && !m->stopping)
            pthread_cond_wait(&m->cv, &m->mu);
        bool stop = m->stopping;
        pthread_mutex_unlock(&m->mu);
        if (stop) break;
        const char *key;
        if (wq_get(m->queue, &key)) break;
        if (!atomic_load(&m->halt)) {
            struct timespec t0;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            ctlm_reconcile_begin();
            ctlm_reconcile_result r = executor_process(m->exec, key);
            ctlm_reconcile_end(r, elapsed_ms(&t0) / 1e3);
        }
        wq_done(m->queue, key);
    }
    return NULL;
}

/* --- lifecycle ---------------------------------------------------------------------------------
 */

int manager_new(const manager_config *cfg, manager **out)
{
    manager *m = NULL;
    int rc;
    *out = NULL;
    if (!(m = cmem_calloc(1, sizeof *m))) return cerr_oom();
    m->cfg = *cfg;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);

    rc = cfg->kubeconfig ? kube_config_load(cfg->kubeconfig, cfg->context, &m->kcfg)
                         : kube_config_in_cluster(getenv("TERRANE_SA_DIR"), &m->kcfg);
    if (rc) {
        cerr_prefix("%s", cfg->kubeconfig ? cfg->kubeconfig : "in-cluster configuration");
        goto fail;
    }
    if (cfg->qps > 0) m->kcfg->qps = cfg->qps;
    if (cfg->burst > 0) m->kcfg->burst = cfg->burst;
    char host[256] = "terrane-controller";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    m->identity = cfg->identity && cfg->identity[0] ? cmem_strdup(cfg->identity)
                                                    : cmem_printf("%s_%ld", host, (long)getpid());
    if (!m->identity) goto oom;
    /* The identity in the User-Agent (client-go's "name/version (comment)"),
     * so the API server's audit log tells replicas apart. */
    cmem_free(m->kcfg->user_agent);
    if (!(m->kcfg->user_agent =
              cmem_printf("terrane-controller/" TERRANE_VERSION " (%s)", m->identity)))
        goto oom;
    if ((rc = kube_client_new(m->kcfg, &m->client))) goto fail;
    if ((rc = ctlm_kube_attach(m->client, m->kcfg->server))) goto fail;

    m->lease_ns = cmem_strdup(cfg->lease_namespace && cfg->lease_namespace[0] ? cfg->lease_namespace
                              : m->kcfg->namespace_ && m->kcfg->namespace_[0] ? m->kcfg->namespace_
                                                                              : "default");
    if (!m->identity || !m->lease_ns) goto oom;
    m->cfg.identity = m->identity;

    if (!(m->queue = wq_new("assetmaterialization", NULL))) goto oom;
    if ((rc = ctlm_workqueue_attach(m->queue))) goto fail;
    ctlm_set_max_concurrent_reconciles(cfg->workers);
    if ((rc = events_new(m->client, "terrane-controller", m->identity, &m->events))) goto fail;
    if ((rc = caches_new(m->client, cfg->namespace_, cfg->resync_s, m->queue,
                         cfg->reconcile.task_schema, &m->caches)))
        goto fail;
    executor_config xc = {.client = m->client,
                          .events = m->events,
                          .queue = m->queue,
                          .caches = m->caches,
                          .reconcile = &m->cfg.reconcile};
    if ((rc = executor_new(&xc, &m->exec))) goto fail;
    if (cfg->leader_elect) {
        lease_config lc = {.ns = m->lease_ns,
                           .name = cfg->lease_name && cfg->lease_name[0] ? cfg->lease_name
                                                                         : "terrane-controller",
                           .identity = m->identity,
                           .lease_duration_s = cfg->lease_duration_s,
                           .renew_deadline_s = cfg->renew_deadline_s,
                           .retry_period_s = cfg->retry_period_s,
                           .on_started_leading = started_leading,
                           .on_stopped_leading = stopped_leading,
                           .on_new_leader = new_leader,
                           .ctx = m};
        if ((rc = lease_new(m->client, &lc, &m->lease))) goto fail;
        ctlm_set_leader(lc.name, false);
    }
    *out = m;
    return 0;
oom:
    rc = cerr_oom();
fail:
    manager_free(m);
    return rc;
}

/* /readyz: caches complete and, with leader election, leading or a
 * standby whose elector runs (losing the Lease ends the process). */
static bool ready(void *ctx, char *reason, size_t cap)
{
    manager *m = ctx;
    if (!caches_synced(m->caches)) {
        snprintf(reason, cap, "informers not synced");
        return false;
    }
    pthread_mutex_lock(&m->mu);
    bool ok = !m->stopping;
    pthread_mutex_unlock(&m->mu);
    if (!ok) snprintf(reason, cap, "shutting down");
    return ok;
}

typedef struct {
    manager *m;
    long *running, *pending; /* per pool, in the configuration's order */
    strmap *pool_index;      /* pool name -> index + 1 */
    long stale;
} census;

static int count_pod(void *ctx, const json_t *pod)
{
    census *c = ctx;
    const char *pname = kobj_label(pod, PODSPEC_L_POOL);
    const char *phase = json_string_value(json_object_get(json_object_get(pod, "status"), "phase"));
    uintptr_t i = pname && phase ? (uintptr_t)strmap_lookup(c->pool_index, pname) : 0;
    if (!i) return 0;
    if (!strcmp(phase, "Running"))
        c->running[i - 1]++;
    else if (!strcmp(phase, "Pending"))
        c->pending[i - 1]++;
    return 0;
}

/* A metrics collector: worker pods per pool and phase, and stale assets,
 * counted from the caches at each scrape, for every pool however many. */
static void sample_cluster(void *ctx)
{
    census c = {.m = ctx};
    const pools *ps = c.m->cfg.reconcile.pools;
    size_t n = pools_count(ps);
    c.running = cmem_calloc(n ? n : 1, sizeof *c.running);
    c.pending = cmem_calloc(n ? n : 1, sizeof *c.pending);
    c.pool_index = strmap_new(0);
    for (size_t i = 0; c.pool_index && i < n; i++)
        if (strmap_put(c.pool_index, pool_name(pools_at(ps, i)), (void *)(uintptr_t)(i + 1))) {
            strmap_free(c.pool_index);
            c.pool_index = NULL;
        }
    if (!c.running || !c.pending || !c.pool_index) {
        clog_warn("metrics census: out of memory", NULL); /* the gauges keep their values */
        goto done;
    }
    informer_each(caches_pods(c.m->caches), NULL, count_pod, &c);
    c.stale = caches_stale(c.m->caches); /* counted as they change: no scan of every AM */
    for (size_t i = 0; i < n; i++)
        ctlm_set_pods(pool_name(pools_at(ps, i)), c.running[i], c.pending[i]);
    ctlm_set_stale(c.stale);
done:
    cmem_free(c.running);
    cmem_free(c.pending);
    strmap_free(c.pool_index);
}

/* Waits up to ms for a termination signal; true when one arrived. */
static bool wait_signal(long ms)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    int sig = sigtimedwait(&set, NULL, &ts);
    if (sig > 0) {
        clog_info("signal received, shutting down", "{s:s}", "signal",
                  sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return true;
    }
    return false;
}

int manager_run(manager *m)
{
    int status = 0;
    clog_info("starting", "{s:s, s:s, s:i, s:b, s:s}", "identity", m->identity, "namespace",
              m->cfg.namespace_ ? m->cfg.namespace_ : "(all)", "workers", m->cfg.workers,
              "leaderElect", m->cfg.leader_elect, "workerVersion", m->cfg.reconcile.worker_version);
    if (m->cfg.metrics_addr) {
        httpd_config hc = {.addr = m->cfg.metrics_addr,
                           .registry = ctlm_registry(),
                           .ready = ready,
                           .ready_ctx = m};
        if (httpd_start(&hc, &m->http)) {
            clog_error("cannot serve metrics", "{s:s}", "error", cerr_message());
            return 1;
        }
        clog_info("serving metrics and probes", "{s:s, s:i}", "addr", m->cfg.metrics_addr, "port",
                  httpd_port(m->http));
    }
    if (ctlm_registry() && metrics_add_collector(ctlm_registry(), sample_cluster, m) == 0)
        m->collecting = true;
    if (srcm_start(m->caches))
        clog_warn("source metrics not registered", "{s:s}", "error", cerr_message());
    if (caches_start(m->caches)) {
        clog_error("cannot start informers", "{s:s}", "error", cerr_message());
        return 1;
    }
    /* Reconcile only on complete caches: a partial cache would look like
     * missing pods and upstreams. */
    bool synced = false;
    while (!synced) {
        synced = caches_synced(m->caches);
        if (!synced && wait_signal(200)) goto shutdown;
    }
    clog_info("caches synced", "{s:i, s:i}", "assetmaterializations",
              (int)informer_len(caches_ams(m->caches)), "pods",
              (int)informer_len(caches_pods(m->caches)));
    m->threads = cmem_calloc((size_t)m->cfg.workers, sizeof *m->threads);
    if (!m->threads) {
        clog_error("out of memory", NULL);
        status = 1;
        goto shutdown;
    }
    for (int i = 0; i < m->cfg.workers; i++) {
        if (pthread_create(&m->threads[i], NULL, worker_main, m)) {
            clog_error("cannot start worker thread", "{s:s}", "error", strerror(errno));
            status = 1;
            goto shutdown;
        }
        m->nthreads++;
    }
    if (m->lease) {
        clog_info("waiting for leadership", "{s:s, s:s}", "lease",
                  m->cfg.lease_name && m->cfg.lease_name[0] ? m->cfg.lease_name
                                                            : "terrane-controller",
                  "namespace", m->lease_ns);
        if (lease_start(m->lease)) {
            clog_error("cannot start leader election", "{s:s}", "error", cerr_message());
            status = 1;
            goto shutdown;
        }
    } else {
        started_leading(m);
    }
    while (!wait_signal(500)) {
        if (atomic_load(&m->lost)) {
            status = 1;
            break;
        }
    }
shutdown:
    /* stop taking work; let in-flight reconciles finish (bounded) */
    atomic_store(&m->halt, true);
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    wq_shut_down(m->queue);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += m->cfg.shutdown_timeout_s > 0 ? m->cfg.shutdown_timeout_s : 30;
    size_t joined = 0;
    for (size_t i = 0; i < m->nthreads; i++)
        if (pthread_timedjoin_np(m->threads[i], NULL, &deadline) == 0) joined++;
    m->threads_joined = joined == m->nthreads;
    if (!m->threads_joined)
        clog_warn("reconciles still running at the shutdown deadline", "{s:i}", "running",
                  (int)(m->nthreads - joined));
    if (m->lease) lease_stop(m->lease, true); /* a standby takes over at once */
    caches_stop(m->caches);
    httpd_stop(m->http); /* last: probes and scrapes work until the end */
    m->http = NULL;
    clog_info("stopped", "{s:i, s:i}", "reconciles", (int)manager_reconciles(m), "exitCode",
              status);
    return status;
}

void manager_free(manager *m)
{
    if (!m) return;
    if (m->nthreads && !m->threads_joined)
        return; /* workers may still use it: the process is ending */
    httpd_stop(m->http);
    if (m->collecting) metrics_remove_collector(ctlm_registry(), sample_cluster, m);
    srcm_stop();
    ctlm_workqueue_detach(m->queue);
    lease_free(m->lease);
    executor_free(m->exec);
    caches_free(m->caches);
    events_free(m->events);
    wq_free(m->queue);
    kube_client_free(m->client);
    kube_config_free(m->kcfg);
    cmem_free(m->threads);
    cmem_free(m->identity);
    cmem_free(m->lease_ns);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    cmem_free(m);
}
