/*
 * manager.c - informers, queue, workers, leader election, shutdown (see
 * manager.h).
 *
 * Threads: one per informer (handlers run there and only enqueue), the
 * lease elector's, the event recorder's, N reconcile workers, and the
 * caller's thread in manager_run, which waits for signals. The dependents
 * index has its own mutex; the leader gate is a mutex and condition
 * variable the workers wait on.
 */
#include "manager.h"

#include "crd.h"
#include "ctlmetrics.h"
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
#include "spec.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEY_MAX 512
#define MAX_UPSTREAMS 64

typedef struct {
    char **v;
    size_t n, cap;
} strlist;

typedef struct {
    const json_t **v;
    size_t n, cap;
    const char *label; /* pods: the terrane.io/materialization value wanted */
    int rc;
} objvec;

struct manager {
    manager_config cfg;
    kube_config *kcfg;
    kube_client *client;
    informer *ams, *pods;
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
    atomic_ulong reconciles;

    pthread_mutex_t dep_mu;
    strmap *deps; /* "ns/upstream" -> strlist * of dependent names */
    strmap *ups;  /* "ns/name" -> strlist * of its upstream names */

    manager_observer_fn observe; /* the UI's change hook, or NULL */
    void *observe_ctx;
};

void manager_set_observer(manager *m, manager_observer_fn fn, void *ctx)
{
    m->observe = fn;
    m->observe_ctx = ctx;
}

kube_client *manager_client(manager *m)
{
    return m->client;
}

informer *manager_assets(manager *m)
{
    return m->ams;
}

informer *manager_pods(manager *m)
{
    return m->pods;
}

static void observe(manager *m, bool pod, const json_t *obj, bool deleted)
{
    if (m->observe) m->observe(m->observe_ctx, pod, obj, deleted);
}

unsigned long manager_reconciles(const manager *m)
{
    return atomic_load(&((manager *)m)->reconciles);
}

/* --- small helpers ------------------------------------------------------------------ */

static void strlist_free(strlist *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++)
        cmem_free(l->v[i]);
    cmem_free(l->v);
    cmem_free(l);
}

static int strlist_add(strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s)) return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        char **v = cmem_reallocarray(l->v, cap, sizeof *v);
        if (!v) return cerr_oom();
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = cmem_strdup(s))) return cerr_oom();
    l->n++;
    return 0;
}

static void strlist_del(strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i], s)) continue;
        cmem_free(l->v[i]);
        l->v[i] = l->v[--l->n];
        return;
    }
}

static bool make_key(const char *ns, const char *name, char *key)
{
    int n = snprintf(key, KEY_MAX, "%s/%s", ns ? ns : "", name ? name : "");
    return name && n > 0 && n < KEY_MAX;
}

static void enqueue(manager *m, const char *ns, const char *name)
{
    char key[KEY_MAX];
    if (make_key(ns, name, key) && wq_add(m->queue, key))
        clog_error("enqueue failed", "{s:s, s:s}", "key", key, "error", cerr_message());
}

/* --- the dependents index ------------------------------------------------------------- */

/* Replaces the upstream edges of ns/name with ups (n names). */
static void dep_set(manager *m, const char *ns, const char *name, const char *const *ups, size_t n)
{
    char key[KEY_MAX], ukey[KEY_MAX];
    if (!make_key(ns, name, key)) return;
    pthread_mutex_lock(&m->dep_mu);
    strlist *old = NULL;
    strmap_remove(m->ups, key, (void **)&old);
    for (size_t i = 0; old && i < old->n; i++) {
        strlist *d = make_key(ns, old->v[i], ukey) ? strmap_lookup(m->deps, ukey) : NULL;
        if (!d) continue;
        strlist_del(d, name);
        if (!d->n) {
            strmap_remove(m->deps, ukey, NULL);
            strlist_free(d);
        }
    }
    strlist_free(old);
    strlist *mine = n ? cmem_calloc(1, sizeof *mine) : NULL;
    for (size_t i = 0; mine && i < n; i++) {
        if (!make_key(ns, ups[i], ukey)) continue;
        strlist *d = strmap_lookup(m->deps, ukey);
        if (!d) {
            d = cmem_calloc(1, sizeof *d);
            if (!d || strmap_put(m->deps, ukey, d)) {
                cmem_free(d);
                goto oom;
            }
        }
        if (strlist_add(d, name) || strlist_add(mine, ups[i])) goto oom;
    }
    if (mine && strmap_put(m->ups, key, mine)) goto oom;
    pthread_mutex_unlock(&m->dep_mu);
    return;
oom:
    /* The index only speeds up reacting to upstream changes; the
     * informer resync still reconciles everything. */
    strlist_free(mine);
    pthread_mutex_unlock(&m->dep_mu);
    clog_warn("dependents index: out of memory", "{s:s}", "key", key);
}

static void enqueue_dependents(manager *m, const char *ns, const char *name)
{
    char key[KEY_MAX];
    if (!make_key(ns, name, key)) return;
    pthread_mutex_lock(&m->dep_mu);
    strlist *d = strmap_lookup(m->deps, key);
    for (size_t i = 0; d && i < d->n; i++)
        enqueue(m, ns, d->v[i]);
    pthread_mutex_unlock(&m->dep_mu);
}

static void index_am(manager *m, const json_t *am)
{
    const char *ups[MAX_UPSTREAMS];
    size_t total, n = spec_upstreams(am, ups, MAX_UPSTREAMS, &total);
    dep_set(m, kobj_namespace(am), kobj_name(am), ups, n);
}

/* --- informer handlers ------------------------------------------------------------------ */

static void am_add(void *ctx, const json_t *obj)
{
    manager *m = ctx;
    index_am(m, obj);
    enqueue(m, kobj_namespace(obj), kobj_name(obj));
    /* dependents waiting with UpstreamMissing */
    enqueue_dependents(m, kobj_namespace(obj), kobj_name(obj));
    observe(m, false, obj, false);
}

static bool str_differs(const json_t *a, const json_t *b, const char *key)
{
    const json_t *x = json_is_object(a) ? json_object_get(a, key) : NULL;
    const json_t *y = json_is_object(b) ? json_object_get(b, key) : NULL;
    return !((!x && !y) || (x && y && json_equal(x, y)));
}

static void am_update(void *ctx, const json_t *old, const json_t *obj)
{
    manager *m = ctx;
    enqueue(m, kobj_namespace(obj), kobj_name(obj));
    if (old == obj) return; /* resync */
    observe(m, false, obj, false);
    index_am(m, obj);
    const json_t *os = json_object_get(old, "status"), *ns = json_object_get(obj, "status");
    if (str_differs(os, ns, "phase") || str_differs(os, ns, "dataVersion") ||
        str_differs(os, ns, "observedGeneration") || kobj_generation(old) != kobj_generation(obj) ||
        kobj_is_deleting(old) != kobj_is_deleting(obj))
        enqueue_dependents(m, kobj_namespace(obj), kobj_name(obj));
}

static void am_delete(void *ctx, const json_t *obj)
{
    manager *m = ctx;
    dep_set(m, kobj_namespace(obj), kobj_name(obj), NULL, 0);
    enqueue(m, kobj_namespace(obj), kobj_name(obj));
    enqueue_dependents(m, kobj_namespace(obj), kobj_name(obj));
    observe(m, false, obj, true);
}

/* The cache keeps no managedFields: nothing here reads them, and with
 * thousands of objects they are most of the memory. */
static json_t *am_transform(void *ctx, json_t *obj)
{
    (void)ctx;
    json_t *meta = json_object_get(obj, "metadata");
    if (json_is_object(meta)) json_object_del(meta, "managedFields");
    return obj;
}

static void pod_enqueue_owner(manager *m, const json_t *pod)
{
    kobj_owner_ref ref;
    if (kobj_controller_ref(pod, &ref) == 0 && !strcmp(ref.kind, "AssetMaterialization"))
        enqueue(m, kobj_namespace(pod), ref.name);
}

static void pod_add(void *ctx, const json_t *obj)
{
    pod_enqueue_owner(ctx, obj);
    observe(ctx, true, obj, false);
}

static void pod_update(void *ctx, const json_t *old, const json_t *obj)
{
    pod_enqueue_owner(ctx, obj);
    if (old != obj) observe(ctx, true, obj, false);
}

static void pod_delete(void *ctx, const json_t *obj)
{
    pod_enqueue_owner(ctx, obj);
    observe(ctx, true, obj, true);
}

/* Pods are cached with only what the reconciler reads: the spec's Task
 * (up to 128 KiB per pod) and the rest of the spec stay out. */
static json_t *pod_transform(void *ctx, json_t *obj)
{
    (void)ctx;
    static const char *const meta_keys[] = {"name",
                                            "namespace",
                                            "uid",
                                            "resourceVersion",
                                            "creationTimestamp",
                                            "deletionTimestamp",
                                            "labels",
                                            "annotations",
                                            "ownerReferences",
                                            NULL};
    json_t *slim = json_object(), *meta = json_object();
    const json_t *om = json_object_get(obj, "metadata");
    if (!slim || !meta || json_object_set_new(slim, "metadata", meta)) goto keep;
    for (size_t i = 0; meta_keys[i]; i++) {
        json_t *v = json_object_get(om, meta_keys[i]);
        if (v && json_object_set(meta, meta_keys[i], v)) goto keep;
    }
    const json_t *spec = json_object_get(obj, "spec");
    json_t *node = json_object_get(spec, "nodeName");
    if (node && json_object_set_new(slim, "spec", json_pack("{s:O}", "nodeName", node))) goto keep;
    json_t *st = json_object_get(obj, "status");
    if (st && json_object_set(slim, "status", st)) goto keep;
    json_decref(obj);
    return slim;
keep:
    json_decref(slim);
    return obj; /* out of memory: cache it whole rather than not at all */
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

/* --- reconcile worker ----------------------------------------------------------------------- */

static int vec_push(objvec *v, const json_t *obj)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        const json_t **nv = cmem_reallocarray(v->v, cap, sizeof *nv);
        if (!nv) return v->rc = cerr_oom();
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = json_incref((json_t *)obj);
    return 0;
}

static void vec_clear(objvec *v)
{
    for (size_t i = 0; i < v->n; i++)
        json_decref((json_t *)v->v[i]);
    cmem_free(v->v);
    memset(v, 0, sizeof *v);
}

static int collect_all(void *ctx, const json_t *obj)
{
    return vec_push(ctx, obj);
}

static int collect_pods(void *ctx, const json_t *obj)
{
    objvec *v = ctx;
    const char *l = kobj_label(obj, PODSPEC_L_MATERIALIZATION);
    return l && !strcmp(l, v->label) ? vec_push(v, obj) : 0;
}

static double elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Carries out a plan. Returns 0, or non-zero when the key must be retried
 * with backoff. */
static int apply(manager *m, const char *key, const char *ns, const json_t *am,
                 const reconcile_plan *p, bool *wrote)
{
    int retry = 0, rc;
    *wrote = false;
    for (size_t i = 0; i < p->n_deletes; i++) {
        const reconcile_delete *d = &p->deletes[i];
        rc = kube_delete(m->client, &KUBE_PODS, ns, d->name, d->uid, "Background");
        if (rc == 0)
            clog_info("pod deleted", "{s:s, s:s, s:s}", "key", key, "pod", d->name, "why", d->why);
        else if (rc != CERR_NOTFOUND && rc != CERR_CONFLICT) {
            /* NotFound: already gone; Conflict: the uid precondition failed,
             * a new pod of that name is not ours to delete */
            clog_warn("pod delete failed", "{s:s, s:s, s:s}", "key", key, "pod", d->name, "error",
                      cerr_message());
            retry = 1;
        }
    }
    if (p->create) {
        json_t *created = NULL;
        const char *name = kobj_name(p->create);
        rc = kube_create(m->client, &KUBE_PODS, ns, p->create, &created);
        json_decref(created);
        if (rc == 0) {
            clog_info("pod created", "{s:s, s:s, s:s, s:s}", "key", key, "pod", name, "pool",
                      kobj_label(p->create, PODSPEC_L_POOL), "attempt",
                      kobj_label(p->create, PODSPEC_L_ATTEMPT));
        } else if (rc == CERR_CONFLICT && !strcmp(kube_last_reason(), "AlreadyExists")) {
            /* the deterministic name exists: it is this attempt, adopt it */
            clog_info("pod exists, adopted", "{s:s, s:s}", "key", key, "pod", name);
        } else {
            clog_error("pod create failed", "{s:s, s:s, s:s}", "key", key, "pod", name, "error",
                       cerr_message());
            if (am)
                events_record(m->events, am, "Warning", "PodCreateFailed", "creating pod %s: %s",
                              name, cerr_message());
            return 1;
        }
    }
    if (p->status && am) {
        json_t *obj = json_copy((json_t *)am), *updated = NULL;
        if (!obj || json_object_set(obj, "status", p->status)) {
            json_decref(obj);
            cerr_oom();
            return 1;
        }
        rc = kube_update_status(m->client, &CRD_ASSETMATERIALIZATIONS, obj, &updated);
        json_decref(obj);
        json_decref(updated);
        if (rc == CERR_CONFLICT) {
            /* the object changed since the cache saw it: decide again on
             * the newer one, never overwrite it */
            clog_debug("status conflict", "{s:s}", "key", key);
            return 1;
        }
        if (rc == CERR_NOTFOUND) return 0;
        if (rc) {
            clog_warn("status update failed", "{s:s, s:s}", "key", key, "error", cerr_message());
            return 1;
        }
        *wrote = true;
    }
    if (am && (*wrote || !p->status))
        for (size_t i = 0; i < p->n_events; i++)
            events_record(m->events, am, p->events[i].type, p->events[i].reason, "%s",
                          p->events[i].message);
    return retry;
}

static ctlm_reason attempt_reason(const char *how)
{
    if (!how || !strcmp(how, "Failed")) return CTLM_REASON_FAILED;
    if (!strcmp(how, "Succeeded")) return CTLM_REASON_SUCCEEDED;
    if (!strcmp(how, "OOMKilled")) return CTLM_REASON_OOMKILLED;
    if (!strcmp(how, "Preempted")) return CTLM_REASON_PREEMPTED;
    return CTLM_REASON_EVICTED;
}

/* An attempt that ended, and the retry it causes, counted once: after the
 * status write that records them (a conflict decides again). */
static void observe_attempt(const reconcile_plan *p)
{
    if (p->attempt_ended && p->ended_pool)
        ctlm_attempt_finished(p->ended_pool, attempt_reason(p->ended_how));
    if (p->retried) ctlm_retry(attempt_reason(p->ended_how));
}

/* A materialization that reached Succeeded or Failed with this status
 * write (or a new data version there) is counted once. */
static void observe_transition(const json_t *am, const json_t *st)
{
    const json_t *old = json_object_get(am, "status");
    const char *phase = json_string_value(json_object_get(st, "phase"));
    if (!phase || (strcmp(phase, "Succeeded") && strcmp(phase, "Failed"))) return;
    const char *old_phase = json_string_value(json_object_get(old, "phase"));
    const char *dv = json_string_value(json_object_get(st, "dataVersion"));
    const char *old_dv = json_string_value(json_object_get(old, "dataVersion"));
    if (old_phase && !strcmp(old_phase, phase) &&
        (dv == old_dv || (dv && old_dv && !strcmp(dv, old_dv))))
        return;
    const json_t *out = json_object_get(st, "output");
    struct timespec t0, t1;
    double secs = 0;
    if (!kobj_time_parse(json_string_value(json_object_get(st, "startedAt")), &t0) &&
        !kobj_time_parse(json_string_value(json_object_get(st, "finishedAt")), &t1))
        secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ctlm_materialization mat = {
        .pool = json_string_value(json_object_get(st, "pool")),
        .operation = json_string_value(json_object_get(json_object_get(am, "spec"), "operation")),
        .result = !strcmp(phase, "Failed")                         ? CTLM_FAILED
                  : json_is_true(json_object_get(out, "cacheHit")) ? CTLM_CACHE_HIT
                                                                   : CTLM_SUCCEEDED,
        .seconds = secs,
        .namespace_ = kobj_namespace(am),
        .name = kobj_name(am),
        .asset_key = json_string_value(json_object_get(json_object_get(am, "spec"), "assetKey")),
        .data_version = dv,
        .attempts = (unsigned)json_integer_value(json_object_get(st, "attempts")),
        .output_bytes = (unsigned long long)json_integer_value(json_object_get(out, "sizeBytes"))};
    ctlm_materialization_finished(&mat);
}

static ctlm_reconcile_result process(manager *m, const char *key)
{
    ctlm_reconcile_result result = CTLM_RECONCILE_SUCCESS;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char ns[KEY_MAX], name[KEY_MAX], label[64];
    const char *slash = strchr(key, '/');
    if (!slash || (size_t)(slash - key) >= sizeof ns) {
        wq_forget(m->queue, key);
        return CTLM_RECONCILE_SUCCESS;
    }
    memcpy(ns, key, (size_t)(slash - key));
    ns[slash - key] = '\0';
    snprintf(name, sizeof name, "%s", slash + 1);
    podspec_materialization_label(name, label, sizeof label);

    json_t *am = informer_get(m->ams, ns, name);
    objvec ams = {0}, pods = {.label = label};
    reconcile_plan plan = {0};
    int rc;
    if ((rc = informer_each(m->ams, ns, collect_all, &ams)) ||
        (rc = informer_each(m->pods, ns, collect_pods, &pods)))
        goto retry;
    reconcile_input in = {.namespace_ = ns,
                          .name = name,
                          .am = am,
                          .ams = ams.v,
                          .n_ams = ams.n,
                          .pods = pods.v,
                          .n_pods = pods.n,
                          .now = time(NULL)};
    if ((rc = reconcile_decide(&m->cfg.reconcile, &in, &plan))) goto retry;
    bool wrote;
    if ((rc = apply(m, key, ns, am, &plan, &wrote))) goto retry_quiet;
    if (wrote) observe_transition(am, plan.status);
    if (wrote || !plan.status) observe_attempt(&plan);
    atomic_fetch_add(&m->reconciles, 1);
    clog_info("reconcile", "{s:s, s:s, s:f, s:b, s:s, s:i, s:i, s:i}", "key", key, "outcome",
              plan.outcome, "ms", elapsed_ms(&t0), "statusWritten", wrote, "changed", plan.changed,
              "created", plan.create ? 1 : 0, "deleted", (int)plan.n_deletes, "requeueAfter",
              (int)plan.requeue_after_s);
    wq_forget(m->queue, key);
    if (plan.requeue_after_s > 0) {
        wq_add_after(m->queue, key, (uint64_t)plan.requeue_after_s * RATELIMIT_S);
        result = CTLM_RECONCILE_REQUEUE_AFTER;
    }
    goto done;
retry:
    clog_error("reconcile failed", "{s:s, s:s}", "key", key, "error", cerr_message());
retry_quiet:
    result = cerr_code() == CERR_CONFLICT ? CTLM_RECONCILE_REQUEUE : CTLM_RECONCILE_ERROR;
    atomic_fetch_add(&m->reconciles, 1);
    clog_info("reconcile", "{s:s, s:s, s:f, s:s}", "key", key, "outcome", "retry", "ms",
              elapsed_ms(&t0), "error", cerr_message());
    wq_add_rate_limited(m->queue, key);
done:
    reconcile_plan_clear(&plan);
    vec_clear(&ams);
    vec_clear(&pods);
    json_decref(am);
    return result;
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
            ctlm_reconcile_result r = process(m, key);
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
    pthread_mutex_init(&m->dep_mu, NULL);
    if (!(m->deps = strmap_new(0)) || !(m->ups = strmap_new(0))) goto oom;

    rc = cfg->kubeconfig ? kube_config_load(cfg->kubeconfig, cfg->context, &m->kcfg)
                         : kube_config_in_cluster(getenv("TERRANE_SA_DIR"), &m->kcfg);
    if (rc) {
        cerr_prefix("%s", cfg->kubeconfig ? cfg->kubeconfig : "in-cluster configuration");
        goto fail;
    }
    if (cfg->qps > 0) m->kcfg->qps = cfg->qps;
    if (cfg->burst > 0) m->kcfg->burst = cfg->burst;
    cmem_free(m->kcfg->user_agent);
    if (!(m->kcfg->user_agent = cmem_strdup("terrane-controller/" TERRANE_VERSION))) goto oom;
    if ((rc = kube_client_new(m->kcfg, &m->client))) goto fail;
    if ((rc = ctlm_kube_attach(m->client, m->kcfg->server))) goto fail;

    char host[256] = "terrane-controller";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    m->identity = cfg->identity && cfg->identity[0] ? cmem_strdup(cfg->identity)
                                                    : cmem_printf("%s_%ld", host, (long)getpid());
    m->lease_ns = cmem_strdup(cfg->lease_namespace && cfg->lease_namespace[0] ? cfg->lease_namespace
                              : m->kcfg->namespace_ && m->kcfg->namespace_[0] ? m->kcfg->namespace_
                                                                              : "default");
    if (!m->identity || !m->lease_ns) goto oom;
    m->cfg.identity = m->identity;

    if (!(m->queue = wq_new("assetmaterialization", NULL))) goto oom;
    if ((rc = ctlm_workqueue_attach(m->queue))) goto fail;
    ctlm_set_max_concurrent_reconciles(cfg->workers);
    if ((rc = events_new(m->client, "terrane-controller", m->identity, &m->events))) goto fail;
    informer_handlers ah = {.on_add = am_add,
                            .on_update = am_update,
                            .on_delete = am_delete,
                            .transform = am_transform,
                            .ctx = m};
    informer_handlers ph = {.on_add = pod_add,
                            .on_update = pod_update,
                            .on_delete = pod_delete,
                            .transform = pod_transform,
                            .ctx = m};
    if ((rc = informer_new(m->client, &CRD_ASSETMATERIALIZATIONS, cfg->namespace_, NULL,
                           cfg->resync_s, &ah, &m->ams)) ||
        (rc = informer_new(m->client, &KUBE_PODS, cfg->namespace_,
                           PODSPEC_MANAGED_BY "=" PODSPEC_MANAGER, cfg->resync_s, &ph, &m->pods)) ||
        (rc = ctlm_informer_attach(m->ams, "assetmaterializations")) ||
        (rc = ctlm_informer_attach(m->pods, "pods")))
        goto fail;
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
    if (!informer_has_synced(m->ams) || !informer_has_synced(m->pods)) {
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
    long running[64], pending[64];
    long stale;
} census;

static int count_pod(void *ctx, const json_t *pod)
{
    census *c = ctx;
    const pools *ps = c->m->cfg.reconcile.pools;
    const char *pname = kobj_label(pod, PODSPEC_L_POOL);
    const char *phase = json_string_value(json_object_get(json_object_get(pod, "status"), "phase"));
    for (size_t i = 0; pname && phase && i < pools_count(ps) && i < 64; i++) {
        if (strcmp(pool_name(pools_at(ps, i)), pname)) continue;
        if (!strcmp(phase, "Running"))
            c->running[i]++;
        else if (!strcmp(phase, "Pending"))
            c->pending[i]++;
    }
    return 0;
}

static int count_stale(void *ctx, const json_t *am)
{
    census *c = ctx;
    kobj_condition cond;
    if (kobj_cond_get(json_object_get(am, "status"), COND_STALE, &cond) == 0 && cond.status &&
        !strcmp(cond.status, "True"))
        c->stale++;
    return 0;
}

/* A metrics collector: worker pods per pool and phase, and stale assets,
 * counted from the caches at each scrape. */
static void sample_cluster(void *ctx)
{
    census c = {.m = ctx};
    informer_each(c.m->pods, NULL, count_pod, &c);
    informer_each(c.m->ams, NULL, count_stale, &c);
    const pools *ps = c.m->cfg.reconcile.pools;
    for (size_t i = 0; i < pools_count(ps) && i < 64; i++)
        ctlm_set_pods(pool_name(pools_at(ps, i)), c.running[i], c.pending[i]);
    ctlm_set_stale(c.stale);
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
    if (informer_start(m->ams) || informer_start(m->pods)) {
        clog_error("cannot start informers", "{s:s}", "error", cerr_message());
        return 1;
    }
    /* Reconcile only on complete caches: a partial cache would look like
     * missing pods and upstreams. */
    bool synced = false;
    while (!synced) {
        synced = informer_wait_synced(m->ams, 0) && informer_wait_synced(m->pods, 0);
        if (!synced && wait_signal(200)) goto shutdown;
    }
    clog_info("caches synced", "{s:i, s:i}", "assetmaterializations", (int)informer_len(m->ams),
              "pods", (int)informer_len(m->pods));
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
    informer_stop(m->ams);
    informer_stop(m->pods);
    httpd_stop(m->http); /* last: probes and scrapes work until the end */
    m->http = NULL;
    clog_info("stopped", "{s:i, s:i}", "reconciles", (int)atomic_load(&m->reconciles), "exitCode",
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
    ctlm_workqueue_detach(m->queue);
    ctlm_informer_detach(m->ams);
    ctlm_informer_detach(m->pods);
    lease_free(m->lease);
    informer_free(m->ams);
    informer_free(m->pods);
    events_free(m->events);
    wq_free(m->queue);
    kube_client_free(m->client);
    kube_config_free(m->kcfg);
    if (m->deps) {
        size_t pos = 0;
        const char *k;
        void *v;
        while (strmap_next(m->deps, &pos, &k, &v))
            strlist_free(v);
        strmap_free(m->deps);
    }
    if (m->ups) {
        size_t pos = 0;
        const char *k;
        void *v;
        while (strmap_next(m->ups, &pos, &k, &v))
            strlist_free(v);
        strmap_free(m->ups);
    }
    cmem_free(m->threads);
    cmem_free(m->identity);
    cmem_free(m->lease_ns);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->dep_mu);
    cmem_free(m);
}
