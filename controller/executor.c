/*
 * executor.c - gather, decide, apply (see executor.h).
 */
#include "executor.h"

#include "crd.h"
#include "implicitsrc.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/clog.h"
#include "lib/cmem.h"
#include "objvec.h"
#include "partfan.h"
#include "partmap.h"
#include "podspec.h"
#include "sourceexec.h"
#include "spec.h"
#include "speccache.h"
#include "srcchange.h"
#include "statuspatch.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define KEY_MAX 512
#define CYCLE_PATH_MAX 900 /* the status message has room for about 1 KiB */

struct executor {
    executor_config cfg;
    atomic_ulong reconciles;
};

int executor_new(const executor_config *cfg, executor **out)
{
    executor *x = cmem_calloc(1, sizeof *x);
    *out = NULL;
    if (!x) return cerr_oom();
    x->cfg = *cfg;
    *out = x;
    return 0;
}

void executor_free(executor *x)
{
    cmem_free(x);
}

unsigned long executor_reconciles(executor *x)
{
    return atomic_load(&x->reconciles);
}

/* The inputs of one decision, each by key or index. */
typedef struct {
    executor *m;
    const char *ns;
    objvec *ups;
} pgather;

static int gather_one(void *ctx, const char *name)
{
    pgather *g = ctx;
    for (size_t i = 0; i < g->ups->n; i++)
        if (!strcmp(kobj_name(g->ups->v[i]) ? kobj_name(g->ups->v[i]) : "", name)) return 0;
    json_t *up = informer_get(caches_ams(g->m->cfg.caches), g->ns, name);
    if (!up) up = informer_get(caches_sources(g->m->cfg.caches), g->ns, name);
    if (!up) return 0;
    int rc = objvec_push(g->ups, up);
    json_decref(up);
    return rc;
}

/* A partitioned asset reads per partition (partmap.h): the upstreams its
 * templates name, and the upstreams of its partitioned upstreams, which
 * their partitions' data versions derive from. */
static int gather_partition_upstreams(executor *m, const char *ns, const json_t *am, objvec *ups)
{
    pgather g = {m, ns, ups};
    int rc = partmap_each_upstream(am, time(NULL), gather_one, &g);
    for (size_t i = 0; !rc && i < ups->n; i++)
        if (json_object_get(json_object_get(ups->v[i], "spec"), "partitions"))
            rc = partmap_each_upstream(ups->v[i], time(NULL), gather_one, &g);
    return rc;
}

static int gather(executor *m, const char *ns, const char *name, const char *label,
                  const json_t *am, const spec_entry **spec, objvec *ups, char **cycle,
                  objvec *pods)
{
    int rc;
    if ((rc = caches_each_pod_of(m->cfg.caches, ns, label, objvec_collect, pods)) ||
        (rc = pods->rc))
        return rc;
    if (!am || kobj_is_deleting(am)) return 0;
    if ((rc = speccache_get(caches_specs(m->cfg.caches), am, spec))) return rc;
    if (!(*spec)->spec) return 0; /* invalid: decided without upstreams */
    const am_spec *s = (*spec)->spec;
    for (size_t i = 0; i < s->n_inputs; i++) {
        if (implicitsrc_applies(s, i)) {
            char iname[IMPLICITSRC_NAME_MAX + 1];
            implicitsrc_name(name, s->inputs[i].name, iname, sizeof iname);
            json_t *src = informer_get(caches_sources(m->cfg.caches), ns, iname);
            rc = src ? objvec_push(ups, src) : 0;
            json_decref(src);
            if (rc) return rc;
            continue;
        }
        if (!s->inputs[i].from) continue;
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = s->inputs[k].from && !strcmp(s->inputs[k].from, s->inputs[i].from);
        if (dup) continue;
        /* both kinds: both go in, and the decision reports AmbiguousUpstream */
        json_t *up = informer_get(caches_ams(m->cfg.caches), ns, s->inputs[i].from);
        json_t *src = informer_get(caches_sources(m->cfg.caches), ns, s->inputs[i].from);
        rc = up ? objvec_push(ups, up) : 0;
        if (!rc && src) rc = objvec_push(ups, src);
        json_decref(up);
        json_decref(src);
        if (rc) return rc;
    }
    /* a partitioned asset, or one reading a partitioned upstream (partall.h) */
    bool part = s->partitions != NULL;
    for (size_t i = 0; i < ups->n && !part; i++)
        part = json_object_get(json_object_get(ups->v[i], "spec"), "partitions") != NULL;
    if (part && (rc = gather_partition_upstreams(m, ns, am, ups))) return rc;
    if ((rc = implicitsrc_ensure(m->cfg.client, caches_sources(m->cfg.caches),
                                 m->cfg.reconcile->pools, am, s)))
        return rc;
    return caches_cycle(m->cfg.caches, ns, name, cycle, CYCLE_PATH_MAX);
}

static double elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Writes status through the status subresource with the resourceVersion
 * read. 0 written (*wrote), 1 retry, 2 the object is gone. */
static int write_status(executor *m, const char *key, const json_t *am, json_t *status, bool *wrote)
{
    /* only what changed, with the read's uid and resourceVersion as
     * preconditions; the whole object when a merge patch cannot say it */
    json_t *patch = NULL, *obj = NULL;
    int rc = statuspatch_build(am, status, &patch);
    if (rc == 0)
        rc = kube_patch(m->cfg.client, &CRD_ASSETMATERIALIZATIONS, kobj_namespace(am),
                        kobj_name(am), KUBE_PATCH_MERGE, patch, true, NULL);
    else if (rc == 1 &&
             (!(obj = json_copy((json_t *)am)) || json_object_set(obj, "status", status)))
        rc = cerr_oom();
    else if (rc == 1)
        rc = kube_update_status(m->cfg.client, &CRD_ASSETMATERIALIZATIONS, obj, NULL);
    json_decref(patch);
    json_decref(obj);
    if (rc == CERR_NOMEM) return 1;
    if (rc == CERR_CONFLICT) {
        /* the object changed since the cache saw it: decide again on
         * the newer one, never overwrite it */
        clog_debug("status conflict", "{s:s}", "key", key);
        return 1;
    }
    if (rc == CERR_NOTFOUND) return 2;
    if (rc) {
        clog_warn("status update failed", "{s:s, s:s}", "key", key, "error", cerr_message());
        return 1;
    }
    *wrote = true;
    return 0;
}

/* Carries out a plan. Returns 0, or non-zero when the key must be retried
 * with backoff. */
static int apply(executor *m, const char *key, const char *ns, const json_t *am,
                 const reconcile_plan *p, bool *wrote)
{
    int retry = 0, rc;
    *wrote = false;
    for (size_t i = 0; i < p->n_deletes; i++) {
        const reconcile_delete *d = &p->deletes[i];
        rc = kube_delete(m->cfg.client, &KUBE_PODS, ns, d->name, d->uid, "Background");
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
        const char *name = kobj_name(p->create);
        ctlm_pod_create_sent();
        rc = kube_create(m->cfg.client, &KUBE_PODS, ns, p->create, NULL);
        if (rc == 0) {
            ctlm_pod_created();
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
                events_record(m->cfg.events, am, "Warning", "PodCreateFailed",
                              "creating pod %s: %s", name, cerr_message());
            return 1;
        }
    }
    if (p->status && am) {
        int w = write_status(m, key, am, p->status, wrote);
        if (w != 0) return w == 1;
    }
    if (am && (*wrote || !p->status))
        for (size_t i = 0; i < p->n_events; i++)
            events_record(m->cfg.events, am, p->events[i].type, p->events[i].reason, "%s",
                          p->events[i].message);
    if (p->observe_source &&
        srcchange_request(m->cfg.client, ns, p->observe_source, p->observe_token)) {
        clog_warn("asking for an observation failed", "{s:s, s:s, s:s}", "key", key, "source",
                  p->observe_source, "error", cerr_message());
        retry = 1;
    }
    return retry;
}

/* A partitioned asset's plan (partfan.h): pods, then the status that
 * records finished partitions, then the deletes of pods it recorded. */
static int apply_partitions(executor *m, const char *key, const char *ns, const json_t *am,
                            const partfan_plan *p, bool *wrote)
{
    int rc;
    *wrote = false;
    for (size_t i = 0; i < p->n_creates; i++) {
        rc = kube_create(m->cfg.client, &KUBE_PODS, ns, p->creates[i], NULL);
        if (rc && !(rc == CERR_CONFLICT && !strcmp(kube_last_reason(), "AlreadyExists"))) {
            clog_error("pod create failed", "{s:s, s:s, s:s}", "key", key, "pod",
                       kobj_name(p->creates[i]), "error", cerr_message());
            return 1;
        }
    }
    if (p->status) {
        int w = write_status(m, key, am, p->status, wrote);
        if (w != 0) return w == 1;
    }
    for (size_t i = 0; i < p->n_deletes; i++) {
        rc = kube_delete(m->cfg.client, &KUBE_PODS, ns, p->deletes[i].name, p->deletes[i].uid,
                         "Background");
        if (rc && rc != CERR_NOTFOUND && rc != CERR_CONFLICT) return 1;
    }
    return 0;
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

ctlm_reconcile_result executor_process(executor *m, const char *key)
{
    ctlm_reconcile_result result = CTLM_RECONCILE_SUCCESS;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!strncmp(key, SOURCE_KEY_PREFIX, strlen(SOURCE_KEY_PREFIX))) {
        atomic_fetch_add(&m->reconciles, 1);
        return sourceexec_process(&m->cfg, key + strlen(SOURCE_KEY_PREFIX));
    }
    char ns[KEY_MAX], name[KEY_MAX], label[64];
    const char *slash = strchr(key, '/');
    if (!slash || (size_t)(slash - key) >= sizeof ns) {
        wq_forget(m->cfg.queue, key);
        return CTLM_RECONCILE_SUCCESS;
    }
    memcpy(ns, key, (size_t)(slash - key));
    ns[slash - key] = '\0';
    snprintf(name, sizeof name, "%s", slash + 1);
    podspec_materialization_label(name, label, sizeof label);

    json_t *am = informer_get(caches_ams(m->cfg.caches), ns, name);
    objvec ups = {0}, pods = {0};
    reconcile_plan plan = {0};
    const spec_entry *spec = NULL;
    char *cycle = NULL;
    int rc;
    if (gather(m, ns, name, label, am, &spec, &ups, &cycle, &pods)) goto retry;
    reconcile_input in = {.namespace_ = ns,
                          .name = name,
                          .am = am,
                          .ams = ups.v,
                          .n_ams = ups.n,
                          .cycle = cycle,
                          .spec = spec ? spec->spec : NULL,
                          .spec_error = spec ? spec->err : NULL,
                          .pods = pods.v,
                          .n_pods = pods.n,
                          .now = time(NULL),
                          .pool_pods = caches_pool_pods(m->cfg.caches)};
    bool wrote;
    if (partfan_applies(&in)) {
        partfan_plan pp;
        if (partfan_decide(m->cfg.reconcile, &in, &pp)) goto retry;
        rc = apply_partitions(m, key, ns, am, &pp, &wrote);
        plan.outcome = pp.outcome;
        plan.requeue_after_s = pp.requeue_after_s;
        snprintf(plan.changed, sizeof plan.changed, "creates=%zu deletes=%zu", pp.n_creates,
                 pp.n_deletes);
        partfan_plan_clear(&pp);
    } else {
        if (reconcile_decide(m->cfg.reconcile, &in, &plan)) goto retry;
        rc = apply(m, key, ns, am, &plan, &wrote);
    }
    /* Counted once the status that records them is written, whatever
     * failed after it (a pod delete): the retry will not write it again. */
    if (wrote) observe_transition(am, plan.status);
    if (wrote || (!plan.status && !rc)) observe_attempt(&plan);
    if (rc) goto retry_quiet;
    atomic_fetch_add(&m->reconciles, 1);
    clog_info("reconcile", "{s:s, s:s, s:f, s:b, s:s, s:i, s:i, s:i}", "key", key, "outcome",
              plan.outcome, "ms", elapsed_ms(&t0), "statusWritten", wrote, "changed", plan.changed,
              "created", plan.create ? 1 : 0, "deleted", (int)plan.n_deletes, "requeueAfter",
              (int)plan.requeue_after_s);
    wq_forget(m->cfg.queue, key);
    if (plan.requeue_after_s > 0) {
        wq_add_after(m->cfg.queue, key, (uint64_t)plan.requeue_after_s * RATELIMIT_S);
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
    wq_add_rate_limited(m->cfg.queue, key);
done:
    reconcile_plan_clear(&plan);
    objvec_clear(&ups);
    objvec_clear(&pods);
    speccache_put(caches_specs(m->cfg.caches), spec);
    cmem_free(cycle);
    json_decref(am);
    return result;
}
