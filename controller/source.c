/*
 * source.c - the AssetSource decision (see source.h).
 */
#include "source.h"

#include "dataversion.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "podspec.h"
#include "rerun.h"
#include "srcchange.h"
#include "status.h"
#include "terrane_proto.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MSG_MAX 1024
#define BACKOFF_MIN_S 10
#define BACKOFF_MAX_S 600

typedef struct {
    const reconcile_config *cfg;
    const source_input *in;
    source_plan *plan;
    const json_t *old; /* current status or NULL */
    json_t *st;
    long long gen, n, finished;
    cron_expr *cron;
    const char *sched_error;
    char sched_msg[MSG_MAX];
    int rc;
} sctx;

static void oom(sctx *c)
{
    if (!c->rc) c->rc = cerr_oom();
}

static const char *jstr(const json_t *o, const char *k1, const char *k2)
{
    const json_t *v = json_object_get(o, k1);
    if (k2) v = json_object_get(v, k2);
    return json_string_value(v);
}

static long long jint(const json_t *o, const char *k1, const char *k2, long long dflt)
{
    const json_t *v = json_object_get(o, k1);
    if (k2) v = json_object_get(v, k2);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static void add_event(sctx *c, const char *type, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_event(sctx *c, const char *type, const char *reason, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (reconcile_add_event(&c->plan->events, &c->plan->n_events, type, reason, msg)) oom(c);
}

static void add_delete(sctx *c, const json_t *pod, const char *why)
{
    if (reconcile_add_delete(&c->plan->deletes, &c->plan->n_deletes, pod, why)) oom(c);
}

static void requeue_at(sctx *c, time_t t)
{
    long s = (long)(t - c->in->now);
    if (s < 1) s = 1;
    if (!c->plan->requeue_after_s || s < c->plan->requeue_after_s) c->plan->requeue_after_s = s;
}

/* status shorthands (status.h): the first failure sticks in c->rc */
#define cond STATUS_KEEP_COND
#define set_str STATUS_KEEP_STR
#define set_int STATUS_KEEP_INT
#define set_time STATUS_KEEP_TIME

static time_t status_time(const json_t *st, const char *k)
{
    struct timespec ts;
    const char *s = jstr(st, k, NULL);
    return s && !kobj_time_parse(s, &ts) ? ts.tv_sec : 0;
}

/* --- names --------------------------------------------------------------------------------- */

void source_pod_name(const char *name, long long n, char *out, size_t size)
{
    char suffix[32];
    snprintf(suffix, sizeof suffix, "-obs-%lld", n);
    size_t len = strlen(name);
    if (len + strlen(suffix) <= PODSPEC_NAME_MAX && !strchr(name, '.')) {
        snprintf(out, size, "%s%s", name, suffix);
        return;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[11];
    if (!EVP_Digest(name, len, md, &mdlen, EVP_sha256(), NULL)) memset(md, 0, 5);
    for (int i = 0; i < 5; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    size_t keep = PODSPEC_NAME_MAX - strlen(suffix) - 11;
    char prefix[PODSPEC_NAME_MAX + 1];
    snprintf(prefix, sizeof prefix, "%.*s", (int)keep, name);
    for (char *p = prefix; *p; p++)
        if (*p == '.') *p = '-';
    size_t pl = strlen(prefix);
    while (pl && prefix[pl - 1] == '-')
        prefix[--pl] = '\0';
    snprintf(out, size, "%s-%s%s", prefix, hex, suffix);
}

int source_observation_dv(const char *uid, long long n, char out[72])
{
    char buf[512];
    int len = snprintf(buf, sizeof buf, "observe%c%s%c%lld", 0, uid ? uid : "", 0, n);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (len < 0 || (size_t)len >= sizeof buf ||
        !EVP_Digest(buf, (size_t)len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return cerr_set(CERR_INVALID, "observation data version: bad uid");
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* --- the schedule ---------------------------------------------------------------------------- */

/* The next scheduled observation after an observation finished at t; 0
 * for none (no spec.observe). */
static time_t next_due(const sctx *c, time_t t)
{
    const json_t *obs = json_object_get(json_object_get(c->in->src, "spec"), "observe");
    long long iv = jint(obs, "intervalSeconds", NULL, 0);
    if (iv > 0) return t + (time_t)iv;
    if (c->cron) return cron_next(c->cron, c->in->zone, t);
    return 0;
}

/* --- the observation pod -----------------------------------------------------------------------
 */

static json_t *observe_command(const json_t *cmd)
{
    if (!json_is_array(cmd) || !json_array_size(cmd))
        return json_pack("[s, s]", "terrane-worker", "observe");
    json_t *c = json_deep_copy(cmd);
    if (!c) return NULL;
    size_t n = json_array_size(c);
    const char *last = json_string_value(json_array_get(c, n - 1));
    int rc = last && !strcmp(last, "run") ? json_array_set_new(c, n - 1, json_string("observe"))
                                          : json_array_append_new(c, json_string("observe"));
    if (rc) {
        json_decref(c);
        return NULL;
    }
    return c;
}

static void create_pod(sctx *c, long long n)
{
    const json_t *src = c->in->src, *spec = json_object_get(src, "spec");
    const char *pool_req = jstr(spec, "observe", "pool");
    const pool *p = pool_req ? pools_find(c->cfg->pools, pool_req) : pools_default(c->cfg->pools);
    char dv[72], name[PODSPEC_NAME_MAX + 1], label[64], num[24];
    if (!p) p = pools_default(c->cfg->pools);
    if (source_observation_dv(kobj_uid(src), n, dv)) return;
    source_pod_name(c->in->name, n, name, sizeof name);
    podspec_materialization_label(c->in->name, label, sizeof label);
    snprintf(num, sizeof num, "%lld", n);
    json_t *task = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{}, s:[{s:s, s:s}], s:{s:s}, "
        "s:i}",
        "apiVersion", "terrane.io/v1", "kind", "Task", "namespace", c->in->namespace_, "name",
        c->in->name, "assetKey", jstr(spec, "assetKey", NULL), "dataVersion", dv, "operation",
        "observe", "params", "inputs", "name", "source", "uri", jstr(spec, "uri", NULL), "output",
        "uri", jstr(spec, "listing", "uri"), "attempt", 1);
    if (!task) return oom(c);
    long long max = jint(spec, "observe", "maxObjects", 0);
    if (max > 0 &&
        json_object_set_new(json_object_get(task, "params"), "maxObjects", json_integer(max))) {
        json_decref(task);
        return oom(c);
    }
    podspec_attempt a = {.namespace_ = c->in->namespace_,
                         .am_name = c->in->name,
                         .am_uid = kobj_uid(src),
                         .generation = c->gen,
                         .asset_key = jstr(spec, "assetKey", NULL),
                         .data_version = dv,
                         .attempt = 1,
                         .attempts = (int)n,
                         .retries = 0,
                         .pool = p,
                         .task = task};
    json_t *pod = NULL;
    int rc = podspec_build(c->cfg->pod, &a, &pod);
    json_decref(task);
    if (rc) {
        if (rc == CERR_NOMEM) return oom(c);
        cond(c, COND_OBSERVED, false, "InvalidSpec", cerr_message());
        return;
    }
    /* A materialization pod's shape, relabelled: a source's pod is found
     * by terrane.io/source, never by terrane.io/materialization (an AM of
     * the same name must not see it). */
    json_t *meta = json_object_get(pod, "metadata");
    json_t *labels = json_object_get(meta, "labels"), *ann = json_object_get(meta, "annotations");
    json_t *owner = json_array_get(json_object_get(meta, "ownerReferences"), 0);
    json_t *ctr = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
    json_t *cmd = observe_command(c->cfg->pod->command);
    json_object_del(labels, PODSPEC_L_MATERIALIZATION);
    json_object_del(labels, PODSPEC_L_DATA_VERSION);
    json_object_del(labels, PODSPEC_L_ATTEMPT);
    json_object_del(ann, PODSPEC_A_ATTEMPTS);
    json_object_del(ann, PODSPEC_A_RETRIES);
    /* the command first: json_object_set_new takes it even when it fails */
    if (!cmd || json_object_set_new(ctr, "command", cmd) ||
        json_object_set_new(meta, "name", json_string(name)) ||
        json_object_set_new(labels, SOURCE_L_SOURCE, json_string(label)) ||
        json_object_set_new(ann, SOURCE_A_OBSERVATION, json_string(num)) ||
        json_object_set_new(owner, "kind", json_string(SOURCE_KIND))) {
        json_decref(pod);
        return oom(c);
    }
    c->plan->create = pod;
}

/* --- recording an outcome --------------------------------------------------------------------- */

static json_t *pod_result(const sctx *c, const json_t *pod)
{
    const json_t *t = pod_terminated(pod);
    const json_t *m = t ? json_object_get(t, "message") : NULL;
    if (!json_is_string(m) || !json_string_length(m) ||
        json_string_length(m) > TERRANE_TERMINATION_MAX)
        return NULL;
    json_t *doc = json_loadb(json_string_value(m), json_string_length(m), 0, NULL);
    jschema_error err;
    if (doc && c->cfg->result_schema && jschema_validate(c->cfg->result_schema, doc, &err)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static bool transient_code(const char *code)
{
    static const char *const BAD[] = {
        "SourceNotFound",  "SourceAccessDenied", "SourceTooLarge", "SourceUnversioned",
        "InputNotAllowed", "InvalidTask",        "S3ClientError",  NULL};
    for (size_t i = 0; BAD[i]; i++)
        if (!strcmp(code, BAD[i])) return false;
    return true;
}

static void record_success(sctx *c, const json_t *obs, time_t fin)
{
    const char *dv = jstr(obs, "dataVersion", NULL), *old = status_str(c->old, "dataVersion");
    long long count = jint(obs, "objectCount", NULL, 0), bytes = jint(obs, "bytes", NULL, 0);
    char o12[DV_SHORT_LEN + 1] = "none", n12[DV_SHORT_LEN + 1] = "";
    if (old) dv_short(old, o12);
    dv_short(dv, n12);
    bool changed = !old || strcmp(old, dv);
    set_str(c, "dataVersion", dv);
    set_str(c, "shortDataVersion", n12);
    set_int(c, "objectCount", count);
    set_int(c, "bytes", bytes);
    set_str(c, "listing", jstr(obs, "listing", NULL));
    set_time(c, "observedAt", fin);
    if (changed) set_time(c, "lastChangedAt", fin);
    const json_t *object = json_object_get(obs, "object");
    if (json_is_object(object) ? json_object_set(c->st, "object", (json_t *)object)
                               : (json_object_del(c->st, "object"), 0))
        oom(c);
    char msg[128];
    snprintf(msg, sizeof msg, "%lld objects, %lld bytes", count, bytes);
    set_str(c, "message", msg);
    cond(c, COND_OBSERVED, true, "Observed", msg);
    if (count > 0)
        cond(c, COND_AVAILABLE, true, "Observed", msg);
    else {
        char m2[MSG_MAX];
        snprintf(m2, sizeof m2, "no object matches %s",
                 jstr(json_object_get(c->in->src, "spec"), "uri", NULL));
        cond(c, COND_AVAILABLE, false, "NoObjects", m2);
    }
    json_object_del(c->st, "consecutiveFailures");
    if (changed) {
        add_event(c, "Normal", "SourceChanged", "data version %s → %s: %lld objects", o12, n12,
                  count);
        c->plan->changed = true;
    }
}

static void record(sctx *c, const json_t *pod)
{
    time_t fin = pod_finished_at(pod);
    if (!fin) fin = c->in->now;
    json_t *res = pod_result(c, pod);
    const char *code = NULL, *why = NULL;
    char buf[MSG_MAX];
    const json_t *obs = json_object_get(res, "observation");
    const char *d = NULL;
    if (res && !strcmp(pod_phase(pod), "Succeeded") && obs &&
        dv_valid(jstr(obs, "dataVersion", NULL))) {
        record_success(c, obs, fin);
        c->plan->observed = "succeeded";
    } else {
        if (pod_disrupted(pod, &d)) {
            code = "PodDisrupted";
            snprintf(buf, sizeof buf, "pod %s was disrupted (%s)", kobj_name(pod),
                     d ? d : "DisruptionTarget");
        } else if (jstr(res, "error", "code")) {
            code = jstr(res, "error", "code");
            snprintf(buf, sizeof buf, "%s",
                     jstr(res, "error", "message") ? jstr(res, "error", "message") : code);
        } else {
            const json_t *t = pod_terminated(pod);
            code = "Internal";
            snprintf(buf, sizeof buf, "pod %s failed without a result (%s, exit %lld)",
                     kobj_name(pod),
                     t && jstr(t, "reason", NULL) ? jstr(t, "reason", NULL) : "Error",
                     jint(t, "exitCode", NULL, -1));
        }
        why = buf;
        c->plan->observed = code;
        set_str(c, "message", why);
        if (!transient_code(code)) {
            cond(c, COND_OBSERVED, true, "Observed", why);
            cond(c, COND_AVAILABLE, false, code, why);
            json_object_del(c->st, "consecutiveFailures");
            add_event(c, "Warning", code, "%s", why);
        } else {
            long long f = jint(c->old, "consecutiveFailures", NULL, 0) + 1;
            set_int(c, "consecutiveFailures", f);
            cond(c, COND_OBSERVED, false, code, why);
            add_event(c, "Warning", "ObservationFailed", "%s: %s", code, why);
        }
    }
    c->plan->observed_seconds =
        (double)jint(json_object_get(res, "timings"), "totalMs", NULL, 0) / 1e3;
    /* c->plan->observed points into res or a literal: keep literals only */
    if (code && c->plan->observed == code) {
        static const char *const KNOWN[] = {
            "SourceNotFound",         "SourceAccessDenied", "SourceTooLarge",
            "SourceUnversioned",      "InputNotAllowed",    "InvalidTask",
            "S3ClientError",          "SourceUnavailable",  "S3ServerError",
            "CredentialsUnavailable", "ScratchUnavailable", "OutOfMemory",
            "PodDisrupted",           "Internal",           NULL};
        c->plan->observed = "other";
        for (size_t i = 0; KNOWN[i]; i++)
            if (!strcmp(code, KNOWN[i])) c->plan->observed = KNOWN[i];
    }
    long long pg = pod_annotation_int(pod, PODSPEC_A_GENERATION);
    set_int(c, "observedGeneration", pg >= 0 ? pg : c->gen);
    set_int(c, "finishedObservation", c->n);
    set_str(c, "podName", kobj_name(pod));
    time_t next = next_due(c, fin);
    long long f = jint(c->st, "consecutiveFailures", NULL, 0);
    if (f > 0) {
        long b = BACKOFF_MIN_S;
        for (long long i = 1; i < f && b < BACKOFF_MAX_S; i++)
            b *= 2;
        if (b > BACKOFF_MAX_S) b = BACKOFF_MAX_S;
        if (!next || fin + b < next) next = fin + b;
    }
    if (next)
        set_time(c, "nextObservationAt", next);
    else
        json_object_del(c->st, "nextObservationAt");
    c->finished = c->n;
    json_decref(res);
}

/* --- freshness -----------------------------------------------------------------------------------
 */

static void freshness(sctx *c)
{
    long long max = jint(json_object_get(json_object_get(c->in->src, "spec"), "freshness"),
                         "maxLagSeconds", NULL, 0);
    if (max <= 0) {
        kobj_cond_remove(c->st, COND_FRESH);
        return;
    }
    time_t seen = status_time(c->st, "observedAt"), changed = status_time(c->st, "lastChangedAt");
    if (!seen) return;
    time_t now = c->in->now;
    char msg[MSG_MAX];
    bool was = !status_cond_reason(c->old, COND_FRESH)[0] || status_cond_true(c->old, COND_FRESH);
    if (now - seen > max) {
        snprintf(msg, sizeof msg, "last observed %llds ago (maxLagSeconds %lld)",
                 (long long)(now - seen), max);
        cond(c, COND_FRESH, false, "NotObserved", msg);
    } else if (changed && now - changed > max) {
        snprintf(msg, sizeof msg, "data version unchanged for %llds (maxLagSeconds %lld)",
                 (long long)(now - changed), max);
        cond(c, COND_FRESH, false, "NotChanged", msg);
    } else {
        snprintf(msg, sizeof msg, "changed %llds ago (maxLagSeconds %lld)",
                 (long long)(now - (changed ? changed : seen)), max);
        cond(c, COND_FRESH, true, "Fresh", msg);
        time_t until = (changed ? changed : seen) + (time_t)max + 1;
        if (seen + max + 1 < until) until = seen + (time_t)max + 1;
        requeue_at(c, until);
        return;
    }
    if (was) add_event(c, "Warning", "NotFresh", "%s", msg);
}

/* --- the decision
 * --------------------------------------------------------------------------------- */

static bool owned(const sctx *c, const json_t *pod)
{
    kobj_owner_ref ref;
    return kobj_controller_ref(pod, &ref) == 0 && !strcmp(ref.kind, SOURCE_KIND) && ref.uid &&
           kobj_uid(c->in->src) && !strcmp(ref.uid, kobj_uid(c->in->src));
}

static void decide(sctx *c)
{
    const source_input *in = c->in;
    const json_t *src = in->src, *spec = json_object_get(src, "spec");
    if (!src || kobj_is_deleting(src)) {
        for (size_t i = 0; i < in->n_pods; i++)
            if (pod_active(in->pods[i])) add_delete(c, in->pods[i], "owner deleted");
        c->plan->outcome = "gone";
        return;
    }
    c->old = json_object_get(src, "status");
    if (!json_is_object(c->old)) c->old = NULL;
    if (!(c->st = c->old ? json_deep_copy(c->old) : json_object())) return oom(c);
    c->gen = kobj_generation(src);
    c->n = jint(c->old, "observation", NULL, 0);
    c->finished = jint(c->old, "finishedObservation", NULL, 0);
    const char *sched = jstr(spec, "observe", "schedule");
    if (in->zone_error)
        c->sched_error = in->zone_error;
    else if (sched && cron_parse(sched, &c->cron)) {
        if (cerr_code() == CERR_NOMEM) return oom(c);
        snprintf(c->sched_msg, sizeof c->sched_msg, "spec.observe.schedule: %s", cerr_message());
        c->sched_error = c->sched_msg;
    }

    char want[PODSPEC_NAME_MAX + 1];
    source_pod_name(in->name, c->n, want, sizeof want);
    const json_t *current = NULL;
    for (size_t i = 0; i < in->n_pods; i++) {
        const json_t *pod = in->pods[i];
        if (!owned(c, pod)) {
            add_delete(c, pod, "orphaned");
            continue;
        }
        if (!strcmp(kobj_name(pod), want)) {
            current = pod;
            continue;
        }
        if (pod_active(pod)) {
            add_delete(c, pod, "superseded");
        } else if (pod_terminal(pod)) {
            time_t gc = pod_finished_at(pod) + c->cfg->pod_gc_delay_s;
            if (gc <= in->now)
                add_delete(c, pod, "finished");
            else
                requeue_at(c, gc);
        }
    }

    if (c->sched_error) {
        cond(c, COND_OBSERVED, false, "InvalidSchedule", c->sched_error);
        json_object_del(c->st, "nextObservationAt");
        c->plan->outcome = "invalid-schedule";
    } else if (c->n > c->finished) {
        if (!current) {
            create_pod(c, c->n); /* AlreadyExists: adopted */
            c->plan->outcome = "create-pod";
        } else if (pod_terminal(current)) {
            record(c, current);
            c->plan->outcome = "recorded";
            time_t gc = pod_finished_at(current) + c->cfg->pod_gc_delay_s;
            requeue_at(c, gc);
        } else {
            c->plan->outcome = "observing";
        }
    } else if (current && pod_terminal(current)) {
        time_t gc = pod_finished_at(current) + c->cfg->pod_gc_delay_s;
        if (gc <= in->now)
            add_delete(c, current, "finished");
        else
            requeue_at(c, gc);
    }

    if (!c->sched_error && c->n <= c->finished && !c->plan->create) {
        const char *rerun = rerun_requested(src, c->old);
        const char *asked = srcchange_requested(src, c->old); /* a reader's SourceChanged */
        time_t next = status_time(c->st, "nextObservationAt");
        bool due = c->n == 0 || jint(c->st, "observedGeneration", NULL, -1) != c->gen || rerun ||
                   asked || (next && next <= in->now);
        if (due) {
            c->n++;
            set_int(c, "observation", c->n);
            char name[PODSPEC_NAME_MAX + 1];
            source_pod_name(in->name, c->n, name, sizeof name);
            set_str(c, "podName", name);
            if (rerun) set_str(c, RERUN_TOKEN, rerun);
            if (asked) set_str(c, SRCCHANGE_TOKEN, asked);
            create_pod(c, c->n);
            c->plan->outcome = "observe";
            if (!c->plan->create) c->n--; /* InvalidSpec: not started */
            if (!c->plan->create) set_int(c, "observation", c->n);
        } else if (next) {
            requeue_at(c, next);
            if (!c->plan->outcome) c->plan->outcome = "scheduled";
        }
    }
    if (!c->plan->outcome) c->plan->outcome = "up-to-date";
    freshness(c);
}

int source_decide(const reconcile_config *cfg, const source_input *in, source_plan *out)
{
    memset(out, 0, sizeof *out);
    sctx c = {.cfg = cfg, .in = in, .plan = out};
    decide(&c);
    cron_free(c.cron);
    if (c.rc) {
        json_decref(c.st);
        source_plan_clear(out);
        return c.rc;
    }
    if (c.st && (!c.old ? json_object_size(c.st) > 0 : !json_equal(c.old, c.st))) {
        out->status = c.st;
        c.st = NULL;
    } else if (out->n_events && !out->create) {
        /* nothing written: the Events of a status that did not change
         * were recorded when it did */
        reconcile_free_actions(NULL, 0, out->events, out->n_events);
        out->events = NULL;
        out->n_events = 0;
    }
    json_decref(c.st);
    return 0;
}

void source_plan_clear(source_plan *p)
{
    json_decref(p->status);
    json_decref(p->create);
    reconcile_free_actions(p->deletes, p->n_deletes, p->events, p->n_events);
    memset(p, 0, sizeof *p);
}
