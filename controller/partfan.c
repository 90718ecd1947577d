/*
 * partfan.c - decisions for partitioned assets (see partfan.h).
 */
#include "partfan.h"

#include "dataversion.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partition.h"
#include "partmap.h"
#include "partrange.h"
#include "partstate.h"
#include "poolcount.h"
#include "parttiles.h"
#include "spec.h"
#include "status.h"
#include "taskdoc.h"
#include "terrane_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_MAX 512

bool partfan_applies(const reconcile_input *in)
{
    return in->am && in->spec && in->spec->partitions;
}

void partfan_plan_clear(partfan_plan *p)
{
    json_decref(p->status);
    for (size_t i = 0; i < p->n_creates; i++)
        json_decref(p->creates[i]);
    cmem_free(p->creates);
    for (size_t i = 0; i < p->n_deletes; i++) {
        cmem_free(p->deletes[i].name);
        cmem_free(p->deletes[i].uid);
    }
    cmem_free(p->deletes);
    memset(p, 0, sizeof *p);
}

static const char *ann(const json_t *o, const char *key)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(o, "metadata"), "annotations"), key));
}

static char *dup(const char *s)
{
    size_t n = strlen(s ? s : "");
    char *d = cmem_malloc(n + 1);
    if (d) memcpy(d, s ? s : "", n + 1);
    return d;
}

int partfan_add_delete(partfan_plan *p, const json_t *pod, const char *why)
{
    reconcile_delete *v = cmem_reallocarray(p->deletes, p->n_deletes + 1, sizeof *v);
    if (!v) return cerr_oom();
    p->deletes = v;
    reconcile_delete *d = &v[p->n_deletes];
    d->name = dup(kobj_name(pod));
    d->uid = dup(kobj_uid(pod));
    d->why = why;
    if (!d->name || !d->uid) {
        cmem_free(d->name);
        cmem_free(d->uid);
        return cerr_oom();
    }
    p->n_deletes++;
    return 0;
}

int partfan_add_create(partfan_plan *p, json_t *pod)
{
    json_t **v = cmem_reallocarray(p->creates, p->n_creates + 1, sizeof *v);
    if (!v) {
        json_decref(pod);
        return cerr_oom();
    }
    p->creates = v;
    v[p->n_creates++] = pod;
    return 0;
}

static const json_t *find_am(const reconcile_input *in, const char *name)
{
    for (size_t i = 0; i < in->n_ams; i++)
        if (!strcmp(kobj_name(in->ams[i]) ? kobj_name(in->ams[i]) : "", name)) return in->ams[i];
    return NULL;
}

typedef struct {
    const reconcile_config *cfg;
    const reconcile_input *in;
    const am_spec *s;
    partfan_plan *plan;
    json_t *st;
    char dv[DV_LEN + 1];
    taskdoc_input *ins;
    dv_input *dvins;
    const pool *pool;
    part_plan *pp;
    partstate *ps;
    prange *busy;
    int base;       /* attempts before the current run: reruns * (retries.limit + 1) */
    bool keep_done; /* tiles before their assembly: succeeded pods hold the outputs */
    /* per-partition inputs (partmap.h) */
    const json_t *inputs_json; /* spec.inputs, parallel to s->inputs */
    bool *pp_in;               /* input i reads per partition */
    bool has_pp;
    partmap_input *pins;
    time_t mark; /* the watermark written back */
} fctx;

static const json_t *find_up(void *ctx, const char *name)
{
    return find_am(ctx, name);
}

/* Partition pi's per-partition inputs and data version: 0 ready, 1 an
 * input is not ready yet, 2 the mapping is invalid (msg says why); *changed
 * is the latest change of its per-partition inputs, also when waiting. */
static int partition_inputs(fctx *c, const part_info *pi, char pdv[DV_LEN + 1], time_t *changed,
                            char *msg, size_t size)
{
    int worst = 0;
    *changed = 0;
    if (!c->has_pp) return part_data_version(c->dv, pi->key, pdv);
    for (size_t i = 0; i < c->s->n_inputs; i++) {
        c->pins[i].per_partition = false;
        if (!c->pp_in[i]) continue;
        char why[MSG_MAX - 80];
        int rc = partmap_resolve(find_up, (void *)c->in, c->s->partitions,
                                 json_array_get(c->inputs_json, i), pi, c->in->now, &c->pins[i],
                                 why, sizeof why);
        if (rc < 0) return rc;
        if (c->pins[i].changed_at > *changed) *changed = c->pins[i].changed_at;
        if (rc > worst) {
            worst = rc;
            snprintf(msg, size, "input %s: %s", c->s->inputs[i].name, why);
        }
    }
    if (worst) return worst;
    return partmap_partition_dv(c->dv, pi->key, c->inputs_json, c->pins, c->s->n_inputs, pdv);
}

/* The status fields every outcome sets. */
static int set_common(fctx *c, const char *phase, bool ready, const char *reason, const char *msg)
{
    long long gen = kobj_generation(c->in->am);
    if (status_set_str(c->st, "phase", phase) || status_set_int(c->st, "observedGeneration", gen) ||
        status_set_str(c->st, "message", msg) ||
        status_cond(c->st, COND_READY, ready, reason, msg, gen, c->in->now) ||
        status_cond(c->st, COND_FAILED, !strcmp(phase, PHASE_FAILED), reason, msg, gen, c->in->now))
        return cerr_oom();
    return 0;
}

/* Upstreams ready and inputs resolved: 1 when waiting (status set), 0 ready. */
static int resolve_inputs(fctx *c, char *msg, size_t size)
{
    const am_spec *s = c->s;
    if (s->n_inputs) {
        c->ins = cmem_calloc(s->n_inputs, sizeof *c->ins);
        c->dvins = cmem_calloc(s->n_inputs, sizeof *c->dvins);
        c->pp_in = cmem_calloc(s->n_inputs, sizeof *c->pp_in);
        c->pins = cmem_calloc(s->n_inputs, sizeof *c->pins);
        if (!c->ins || !c->dvins || !c->pp_in || !c->pins) return cerr_oom();
    }
    c->inputs_json = json_object_get(json_object_get(c->in->am, "spec"), "inputs");
    for (size_t i = 0; i < s->n_inputs; i++) {
        c->dvins[i].name = s->inputs[i].name;
        if (!s->inputs[i].from) {
            c->ins[i].uri = s->inputs[i].uri;
            c->dvins[i].uri = s->inputs[i].uri; /* the template: the key enters per partition */
            continue;
        }
        const json_t *up = find_am(c->in, s->inputs[i].from);
        if (partmap_per_partition(json_array_get(c->inputs_json, i), up)) {
            /* the mapping enters the asset's version, the upstream's
             * partition each partition's */
            c->pp_in[i] = c->has_pp = true;
            c->dvins[i].uri = s->inputs[i].from;
            continue;
        }
        const json_t *ust = up ? json_object_get(up, "status") : NULL;
        if (up && json_object_get(json_object_get(up, "spec"), "partitions")) {
            snprintf(msg, size,
                     "input %s: upstream %s is partitioned; partition mappings are not decided yet",
                     s->inputs[i].name, s->inputs[i].from);
            return 1;
        }
        const char *phase = status_str(ust, "phase"), *udv = status_str(ust, "dataVersion");
        const json_t *out = json_object_get(ust, "output");
        const char *uri = json_string_value(json_object_get(out, "uri"));
        if (!up || !phase || strcmp(phase, PHASE_SUCCEEDED) || !dv_valid(udv) || !uri ||
            status_int(ust, "observedGeneration") != kobj_generation(up)) {
            snprintf(msg, size, "waiting for upstream %s", s->inputs[i].from);
            return 1;
        }
        c->ins[i].uri = uri;
        c->ins[i].data_version = udv;
        c->ins[i].asset_key =
            json_string_value(json_object_get(json_object_get(up, "spec"), "assetKey"));
        c->ins[i].stac_item = json_string_value(json_object_get(out, "stacItem"));
        c->dvins[i].data_version = udv;
    }
    return 0;
}

/* The asset data version: the operation, params and inputs as for an
 * unpartitioned asset, with spec.partitions beside the params. */
static int asset_dv(fctx *c)
{
    json_t *p = c->s->params
                    ? json_pack("{s:O,s:O}", "params", c->s->params, "partitions", c->s->partitions)
                    : json_pack("{s:{},s:O}", "params", "partitions", c->s->partitions);
    if (!p) return cerr_oom();
    int rc =
        dv_compute(c->s->operation, p, c->dvins, c->s->n_inputs, c->cfg->worker_version, c->dv);
    json_decref(p);
    return rc;
}

/* The worker's error message of a failed pod, or a summary. */
void partfan_attempt(const json_t *pod, int base, int retry_limit, partfan_attempt_info *out,
                     char *cause, size_t size)
{
    const json_t *t = pod_terminated(pod);
    const json_t *ec = t ? json_object_get(t, "exitCode") : NULL;
    out->exit_code = json_is_integer(ec) ? json_integer_value(ec) : -1;
    out->attempt = pod_annotation_int(pod, PODSPEC_A_ATTEMPTS);
    if (out->attempt < 1) out->attempt = 1;
    out->last = out->exit_code == TERRANE_EXIT_BAD_INPUT ||
                (!pod_disrupted(pod, NULL) && out->attempt - base > retry_limit);
    const char *m = t ? json_string_value(json_object_get(t, "message")) : NULL;
    json_t *r = m ? json_loads(m, 0, NULL) : NULL;
    const char *em = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
    const char *reason = t ? json_string_value(json_object_get(t, "reason")) : NULL;
    snprintf(cause, size, "%s", em ? em : reason ? reason : "");
    json_decref(r);
}

static int build_pod(fctx *c, const part_info *pi, int attempt, json_t **out, const pool *pl)
{
    char pdv[DV_LEN + 1], name[PODSPEC_NAME_MAX + 8], lv[64], idx[24];
    char **uris = NULL;
    taskdoc_input *ins = NULL;
    json_t *task = NULL, *pod = NULL;
    int rc = 0;
    *out = NULL;
    char why[MSG_MAX];
    time_t changed;
    rc = partition_inputs(c, pi, pdv, &changed, why, sizeof why);
    if (rc == 1) { /* waits for an upstream partition: the reason for the status */
        cerr_set(CERR_AGAIN, "%s", why);
        return 1;
    }
    if (rc == 2) return cerr_set(CERR_INVALID, "%s", why);
    if (rc) return rc;
    /* with per-partition inputs the asset's version does not say what the
     * partition read: its own version names the pod */
    if ((rc = part_pod_name(kobj_name(c->in->am), c->has_pp ? pdv : c->dv, pi->key, attempt, name,
                            sizeof name)))
        return rc;
    if (c->s->n_inputs) {
        ins = cmem_calloc(c->s->n_inputs, sizeof *ins);
        uris = cmem_calloc(c->s->n_inputs, sizeof *uris);
        if (!ins || !uris) {
            rc = cerr_oom();
            goto done;
        }
    }
    for (size_t i = 0; i < c->s->n_inputs; i++) {
        ins[i] = c->ins[i];
        if (c->pp_in && c->pp_in[i]) {
            const partmap_input *m = &c->pins[i];
            ins[i] = (taskdoc_input){.uri = m->uri,
                                     .asset_key = m->asset_key,
                                     .data_version = m->data_version,
                                     .stac_item = m->stac_item,
                                     .observed = m->observed};
            continue;
        }
        if (c->s->inputs[i].from) continue;
        if (!(uris[i] = cmem_malloc(2048 + 1))) {
            rc = cerr_oom();
            goto done;
        }
        if ((rc = part_substitute(c->ins[i].uri, pi, uris[i], 2048 + 1))) goto done;
        ins[i].uri = uris[i];
    }
    if ((rc = taskdoc_build(c->s, ins, pdv, attempt, &task))) goto done;
    /* LastN inputs: one task input per window read; from the last input
     * back, so the earlier ones keep their index */
    for (size_t i = c->s->n_inputs; c->pp_in && i-- > 0;) {
        if (!c->pp_in[i]) continue;
        rc = partmap_expand_task(task, i, c->s->inputs[i].name, &c->pins[i], why, sizeof why);
        if (rc == 2) rc = cerr_set(CERR_INVALID, "%s", why);
        if (rc) goto done;
    }
    if (json_object_set_new(task, "partition", part_task_json(pi))) {
        rc = cerr_oom();
        goto done;
    }
    podspec_attempt a = {.namespace_ = c->in->namespace_,
                         .am_name = kobj_name(c->in->am),
                         .am_uid = kobj_uid(c->in->am),
                         .generation = kobj_generation(c->in->am),
                         .asset_key = c->s->asset_key,
                         .data_version = pdv,
                         .attempt = attempt,
                         .attempts = attempt,
                         .retries = attempt - 1 - c->base,
                         .pool = pl,
                         .resources = c->s->resources,
                         .task = task};
    if ((rc = podspec_build(c->cfg->pod, &a, &pod))) goto done;
    json_t *meta = json_object_get(pod, "metadata");
    json_t *labels = json_object_get(meta, "labels"),
           *annots = json_object_get(meta, "annotations");
    part_label_value(pi->key, lv);
    snprintf(idx, sizeof idx, "%llu", (unsigned long long)pi->index);
    if (!labels || !annots || json_object_set_new(meta, "name", json_string(name)) ||
        json_object_set_new(labels, PART_LABEL, json_string(lv)) ||
        json_object_set_new(annots, PART_A_KEY, json_string(pi->key)) ||
        json_object_set_new(annots, PART_A_INDEX, json_string(idx)) ||
        json_object_set_new(annots, PARTFAN_A_DATA_VERSION, json_string(pdv)) ||
        /* the asset's version, which the status records; the task has the partition's */
        json_object_set_new(annots, PODSPEC_A_DATA_VERSION, json_string(c->dv))) {
        rc = cerr_oom();
        goto done;
    }
    *out = pod;
    pod = NULL;
done:
    for (size_t i = 0; uris && i < c->s->n_inputs; i++)
        cmem_free(uris[i]);
    cmem_free(uris);
    cmem_free(ins);
    json_decref(task);
    json_decref(pod);
    return rc;
}

/* The pool of a partition's next attempt: the failed pod's pool, or its
 * oomEscalation after an OOM kill (that partition only: the others keep
 * starting on the asset's pool). */
static const pool *retry_pool(const fctx *c, const json_t *pod)
{
    const char *name = kobj_label(pod, PODSPEC_L_POOL);
    const pool *p = name ? pools_find(c->cfg->pools, name) : NULL;
    if (!p) p = c->pool;
    const json_t *t = pod_terminated(pod);
    const char *reason = t ? json_string_value(json_object_get(t, "reason")) : NULL;
    if (reason && !strcmp(reason, "OOMKilled") && pool_escalation(p)) return pool_escalation(p);
    return p;
}

/* One pod of this asset: recorded, retried, or counted as running. */
static int observe_pod(fctx *c, const json_t *pod, uint64_t total, uint64_t *running)
{
    const char *pdv = ann(pod, PODSPEC_A_DATA_VERSION), *key = ann(pod, PART_A_KEY);
    const char *sidx = ann(pod, PART_A_INDEX);
    uint64_t index;
    if (!pdv || strcmp(pdv, c->dv) || !key || !sidx ||
        part_plan_index_of(c->pp, key, c->in->now, &index) || index >= total ||
        strtoull(sidx, NULL, 10) != index)
        /* another version, or not one of ours any more: collect it */
        return kobj_is_deleting(pod) ? 0 : partfan_add_delete(c->plan, pod, "superseded");
    if (kobj_is_deleting(pod)) return 0;
    int rc;
    if (c->has_pp) {
        /* started for inputs that have changed since: superseded */
        const char *ppdv = ann(pod, PARTFAN_A_DATA_VERSION);
        part_info cur;
        char now_dv[DV_LEN + 1], why[MSG_MAX];
        time_t changed;
        if ((rc = part_plan_at(c->pp, index, c->in->now, &cur))) return rc;
        rc = partition_inputs(c, &cur, now_dv, &changed, why, sizeof why);
        if (rc < 0) return rc;
        if (rc == 0 && ppdv && strcmp(ppdv, now_dv))
            return partfan_add_delete(c->plan, pod, "superseded");
    }
    long long attempt = pod_annotation_int(pod, PODSPEC_A_ATTEMPTS);
    if (attempt < 1) attempt = 1;
    const char *phase = pod_phase(pod);
    /* a finished attempt of a run before the last rerun: only collected */
    if (attempt <= c->base && pod_terminal(pod))
        return partfan_add_delete(c->plan, pod, "superseded");
    if (!pod_terminal(pod)) {
        (*running)++;
        return prange_add(c->busy, index);
    }
    /* A newer attempt of this partition supersedes this pod. */
    if (prange_has(c->busy, index)) return partfan_add_delete(c->plan, pod, "retried");
    if ((rc = prange_add(c->busy, index))) return rc; /* older attempts are only collected */
    if (!strcmp(phase, "Succeeded")) {
        if (partstate_is_done(c->ps, index))
            return c->keep_done ? 0 : partfan_add_delete(c->plan, pod, "finished");
        return partstate_succeeded(c->ps, index);
    }
    if (partstate_is_failed(c->ps, index)) return partfan_add_delete(c->plan, pod, "finished");
    partfan_attempt_info ai;
    char cause[MSG_MAX - 160], msg[MSG_MAX];
    partfan_attempt(pod, c->base, c->s->retry_limit, &ai, cause, sizeof cause);
    if (ai.last) {
        snprintf(msg, sizeof msg, "pod %s: %s", kobj_name(pod),
                 *cause ? cause : "failed without a result");
        return partstate_failed(c->ps, index, key, (int)attempt, msg);
    }
    /* Retry: the next attempt's pod, unless it exists (then it is busy). */
    part_info pi;
    json_t *next = NULL;
    if ((rc = part_plan_at(c->pp, index, c->in->now, &pi))) return rc;
    if ((rc = build_pod(c, &pi, (int)attempt + 1, &next, retry_pool(c, pod))))
        return rc == 1 ? 0 : rc;
    (*running)++;
    if ((rc = partfan_add_create(c->plan, next))) return rc;
    return partfan_add_delete(c->plan, pod, "retried");
}

/* New partition pods the pool's maxPartitionPods leaves room for (the
 * count is over all assets, this one's running pods included). */
static size_t pool_room(const fctx *c)
{
    long cap = pool_max_partition_pods(c->pool);
    if (!cap || !c->in->pool_pods) return SIZE_MAX;
    long busy = poolcount_get(c->in->pool_pods, pool_name(c->pool));
    return busy >= cap ? 0 : (size_t)(cap - busy);
}

/* The assembly (parttiles.h); tiles whose pods are gone run again. */
static int assemble(fctx *c, const parttiles_ctx *tc, const json_t *grid, const char *assembled,
                    uint64_t total, uint64_t *running, parttiles_state *as, char *msg, size_t size)
{
    prange *lost = prange_new();
    if (!lost) return cerr_oom();
    int rc =
        parttiles_assemble(tc, c->dv, assembled, grid, total, c->st, c->plan, lost, as, msg, size);
    for (uint64_t i = 0; !rc && i < total; i++) {
        if (!prange_has(lost, i) || prange_has(c->busy, i)) continue;
        if (*running >= (uint64_t)c->s->max_parallel) break;
        part_info pi;
        json_t *pod = NULL;
        if ((rc = part_plan_at(c->pp, i, c->in->now, &pi))) break;
        if ((rc = build_pod(c, &pi, c->base + 1, &pod, c->pool))) {
            if (rc != 1) break;
            rc = 0; /* its per-partition inputs are not ready yet */
            continue;
        }
        if ((rc = partfan_add_create(c->plan, pod))) break;
        (*running)++;
    }
    prange_free(lost);
    return rc;
}

static int newest_first(const void *a, const void *b)
{
    long long x = pod_annotation_int(*(const json_t *const *)a, PODSPEC_A_ATTEMPTS);
    long long y = pod_annotation_int(*(const json_t *const *)b, PODSPEC_A_ATTEMPTS);
    return x < y ? 1 : x > y ? -1 : 0;
}

int partfan_decide(const reconcile_config *cfg, const reconcile_input *in, partfan_plan *out)
{
    fctx c = {.cfg = cfg, .in = in, .s = in->spec, .plan = out};
    const json_t **order = NULL;
    json_t *grid_rec = NULL;
    const char *assembled = NULL;
    char msg[MSG_MAX], wait_why[MSG_MAX] = "";
    int rc = 0;
    memset(out, 0, sizeof *out);
    const json_t *old = json_object_get(in->am, "status");
    c.st = old ? json_deep_copy(old) : json_object();
    if (!c.st) return cerr_oom();
    if (kobj_is_deleting(in->am)) {
        out->outcome = "deleting";
        goto done; /* the garbage collector removes the pods with their owner */
    }
    if (part_plan_decode(c.s->partitions, &c.pp, NULL) ||
        pools_select(cfg->pools, c.s->tags, &c.pool)) {
        snprintf(msg, sizeof msg, "%s", cerr_message());
        cerr_clear();
        rc = set_common(&c, PHASE_FAILED, false, "InvalidSpec", msg);
        out->outcome = "invalid";
        goto done;
    }
    rc = resolve_inputs(&c, msg, sizeof msg);
    if (rc < 0) goto done;
    if (rc == 1) {
        rc = set_common(&c, PHASE_WAITING, false, "UpstreamNotReady", msg);
        if (!rc && status_cond(c.st, COND_UPSTREAM_READY, false, "UpstreamNotReady", msg,
                               kobj_generation(in->am), in->now))
            rc = cerr_oom();
        out->outcome = "waiting";
        goto done;
    }
    if ((rc = asset_dv(&c))) goto done;
    const json_t *oldparts = json_object_get(old, "partitions");
    parttiles_ctx tc = {.cfg = cfg, .in = in, .s = c.s, .ins = c.ins, .pool = c.pool};
    if (part_plan_has_tiles(c.pp)) {
        parttiles_state ts;
        char tdv[DV_LEN + 1];
        if ((rc = parttiles_probe(&tc, c.dv, json_object_get(oldparts, "grid"), c.pp, out,
                                  &grid_rec, tdv, &ts, msg, sizeof msg)))
            goto done;
        if (ts != PARTTILES_READY) {
            bool failed = ts == PARTTILES_FAILED;
            rc = set_common(&c, failed ? PHASE_FAILED : PHASE_PENDING, false,
                            failed ? "GridFailed" : "GridPending", msg);
            out->outcome = failed ? "grid-failed" : out->n_creates ? "create-pods" : "grid-pending";
            goto done;
        }
        memcpy(c.dv, tdv, sizeof tdv);
        c.keep_done = part_plan_dims(c.pp) == 1; /* tiles alone are assembled */
    }
    char dvs[DV_SHORT_LEN + 1];
    dv_short(c.dv, dvs);
    if (status_set_str(c.st, "dataVersion", c.dv) ||
        status_set_str(c.st, "shortDataVersion", dvs) ||
        status_set_str(c.st, "pool", pool_name(c.pool)) ||
        status_cond(c.st, COND_UPSTREAM_READY, true, "UpstreamsReady",
                    "all upstreams have succeeded", kobj_generation(in->am), in->now)) {
        rc = cerr_oom();
        goto done;
    }
    if (!(c.ps = partstate_new()) || !(c.busy = prange_new())) {
        rc = cerr_oom();
        goto done;
    }
    if (partstate_load(c.ps, oldparts, c.dv)) cerr_clear(); /* a malformed record is rebuilt */
    /* The rerun annotation: a value not seen before clears the failures. */
    const char *rerun = ann(in->am, PARTFAN_A_RERUN);
    const char *seen = json_string_value(json_object_get(oldparts, "rerunFailed"));
    long long reruns = json_integer_value(json_object_get(oldparts, "reruns"));
    if (rerun && (!seen || strcmp(seen, rerun))) {
        partstate_clear_failed(c.ps);
        reruns++;
    }
    /* A rerun's attempts continue the numbering, so its pods get names no
     * earlier pod had. */
    c.base = (int)reruns * (c.s->retry_limit + 1);
    if (c.base + c.s->retry_limit + 1 > 999) c.base = 0; /* pod names hold three digits */
    uint64_t total = part_plan_count(c.pp, in->now), running = 0, waiting = 0;
    partstate_set_total(c.ps, total);
    /* Partitions whose per-partition inputs changed after the watermark are
     * materialized again (partmap.h). */
    if (c.has_pp) {
        time_t mark = partmap_watermark(oldparts);
        c.mark = mark;
        for (uint64_t k = 0; k < total; k++) {
            part_info pi;
            char pdv[DV_LEN + 1];
            time_t changed;
            if ((rc = part_plan_at(c.pp, k, in->now, &pi))) goto done;
            if ((rc = partition_inputs(&c, &pi, pdv, &changed, msg, sizeof msg)) < 0) goto done;
            if (changed > c.mark) c.mark = changed;
            if (changed > mark) partstate_forget(c.ps, k);
        }
    }
    for (size_t i = 0; i < in->n_pods; i++) {
        /* the newest attempts first mark their partitions busy */
        if (parttiles_role(in->pods[i])) continue; /* the tile flow's probe and assembly */
        if (!pod_terminal(in->pods[i]) && (rc = observe_pod(&c, in->pods[i], total, &running)))
            goto done;
    }
    /* Then the finished ones, newest attempt first, so an older attempt
     * never retries a partition a newer one already decided. */
    if (in->n_pods) {
        if (!(order = cmem_calloc(in->n_pods, sizeof *order))) {
            rc = cerr_oom();
            goto done;
        }
        size_t n = 0;
        for (size_t i = 0; i < in->n_pods; i++)
            if (pod_terminal(in->pods[i]) && !parttiles_role(in->pods[i])) order[n++] = in->pods[i];
        qsort(order, n, sizeof *order, newest_first);
        for (size_t i = 0; i < n; i++)
            if ((rc = observe_pod(&c, order[i], total, &running))) goto done;
    }
    /* Backfill in index order up to maxParallel and the pool's cap. */
    uint64_t from = 0;
    size_t started = 0, room = pool_room(&c);
    while (running < (uint64_t)c.s->max_parallel && started < PARTFAN_CREATES_MAX &&
           started < room) {
        uint64_t i = partstate_next(c.ps, from);
        if (i >= total) break;
        from = i + 1;
        if (prange_has(c.busy, i)) continue;
        part_info pi;
        json_t *pod = NULL;
        if ((rc = part_plan_at(c.pp, i, in->now, &pi))) goto done;
        if ((rc = build_pod(&c, &pi, c.base + 1, &pod, c.pool))) {
            if (rc == CERR_NOMEM) goto done;
            if (rc == 1) { /* an upstream partition is not ready yet */
                if (!waiting++) snprintf(wait_why, sizeof wait_why, "%s", cerr_message());
                cerr_clear();
                continue;
            }
            /* this partition cannot run (its URI template): record it */
            snprintf(msg, sizeof msg, "%s", cerr_message());
            cerr_clear();
            if ((rc = partstate_failed(c.ps, i, pi.key, 0, msg))) goto done;
            continue;
        }
        if ((rc = partfan_add_create(out, pod))) goto done;
        running++;
        started++;
    }
    /* Tiles: once all are materialized, the assembly. */
    parttiles_state as = PARTTILES_WAIT;
    char amsg[MSG_MAX] = "";
    if (c.keep_done && total && partstate_done_count(c.ps) == total &&
        (rc = assemble(&c, &tc, json_object_get(grid_rec, "result"),
                       json_string_value(json_object_get(oldparts, "assembled")), total, &running,
                       &as, amsg, sizeof amsg)))
        goto done;
    if (as == PARTTILES_READY) assembled = c.dv;
    partstate_set_running(c.ps, running);
    json_t *pj = partstate_json(c.ps);
    char mark[KOBJ_TIME_LEN];
    if (pj && c.has_pp && c.mark && !kobj_time_format(c.mark, mark) &&
        json_object_set_new(pj, PARTMAP_WATERMARK, json_string(mark))) {
        rc = cerr_oom();
        goto done;
    }
    if (!pj || (rerun && json_object_set_new(pj, "rerunFailed", json_string(rerun))) ||
        (grid_rec && json_object_set(pj, "grid", grid_rec)) ||
        (assembled && json_object_set_new(pj, "assembled", json_string(assembled))) ||
        (reruns && json_object_set_new(pj, "reruns", json_integer(reruns))) ||
        json_object_set_new(c.st, "partitions", pj)) {
        rc = cerr_oom();
        goto done;
    }
    uint64_t done_n = partstate_done_count(c.ps), failed = partstate_failed_count(c.ps);
    snprintf(msg, sizeof msg, "%llu/%llu partitions materialized, %llu running, %llu failed",
             (unsigned long long)done_n, (unsigned long long)total, (unsigned long long)running,
             (unsigned long long)failed);
    if (waiting)
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg),
                 ", %llu waiting for upstreams (%.200s)", (unsigned long long)waiting, wait_why);
    if (total == 0)
        rc = set_common(&c, PHASE_PENDING, false, "NoPartitionsYet",
                        "no partition window has closed yet");
    else if (done_n == total && c.keep_done && as == PARTTILES_FAILED)
        rc = set_common(&c, PHASE_FAILED, false, "AssemblyFailed", amsg);
    else if (done_n == total && c.keep_done && as == PARTTILES_WAIT)
        rc = set_common(&c, PHASE_RUNNING, false, "Assembling", amsg);
    else if (done_n == total && c.keep_done)
        rc = set_common(&c, PHASE_SUCCEEDED, true, "Materialized", amsg);
    else if (done_n == total)
        rc = set_common(&c, PHASE_SUCCEEDED, true, "Materialized", msg);
    else if (done_n + failed == total && !running)
        rc = set_common(&c, PHASE_FAILED, false, "PartitionsFailed", msg);
    else
        rc = set_common(&c, PHASE_RUNNING, false, "Materializing", msg);
    out->outcome = out->n_creates ? "create-pods" : running ? "running" : "up-to-date";
    /* Open-ended windows: look again when the next one may have closed. */
    out->requeue_after_s = 60;
done:
    if (rc == 0 && !json_equal(c.st, (json_t *)(old ? old : json_object_get(in->am, "status")))) {
        out->status = c.st;
        c.st = NULL;
    }
    json_decref(c.st);
    json_decref(grid_rec);
    cmem_free(order);
    cmem_free(c.ins);
    cmem_free(c.dvins);
    cmem_free(c.pp_in);
    for (size_t i = 0; c.pins && i < c.s->n_inputs; i++)
        partmap_input_clear(&c.pins[i]);
    cmem_free(c.pins);
    part_plan_free(c.pp);
    partstate_free(c.ps);
    prange_free(c.busy);
    if (rc) partfan_plan_clear(out);
    return rc < 0 ? rc : 0;
}
