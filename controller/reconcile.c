/*
 * reconcile.c - the AssetMaterialization decision (see reconcile.h for the
 * table of situations and outcomes).
 *
 * The decision works on a copy of the status. Every branch ends in
 * finish(), which stamps observedGeneration, derives shortDataVersion,
 * adds the Event for a phase transition, and drops the new status (and
 * the Events) when nothing changed. Counters that must survive a restart
 * mid-attempt (attempts, retries) are also written on each pod as
 * annotations, so the latest pod and the status together always tell how
 * far the materialization got, whichever was written last.
 */
#include "reconcile.h"

#include "dataversion.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partall.h"
#include "podctr.h"
#include "spec.h"
#include "rerun.h"
#include "implicitsrc.h"
#include "sourceread.h"
#include "srcchange.h"
#include "status.h"
#include "taskdoc.h"
#include "terrane_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BACKOFF_S (24 * 3600)
#define MSG_MAX 1024

/* Status fields of this controller beyond the CRD sketch: which data
 * version and generation the attempts count for, and which generation
 * produced the output. */
#define S_TARGET_DV "targetDataVersion"
#define S_TARGET_GEN "targetGeneration"
#define S_OUTPUT_GEN "outputGeneration"

/* Ready reasons */
#define R_MATERIALIZED "Materialized"
#define R_MATERIALIZING "Materializing"
#define R_RETRY_BACKOFF "RetryBackoff"
#define R_INVALID_SPEC "InvalidSpec"
#define R_CYCLE "DependencyCycle"
#define R_UP_MISSING "UpstreamMissing"
#define R_UP_NOT_READY "UpstreamNotReady"
#define R_AMBIGUOUS "AmbiguousUpstream"
#define R_UNKNOWN_POOL "UnknownPool"
#define R_BAD_INPUT "BadInput"
#define R_EXHAUSTED "RetriesExhausted"

typedef enum { FAIL_OTHER, FAIL_OOM, FAIL_DISRUPTED, FAIL_BAD_INPUT } fail_kind;

typedef struct {
    const reconcile_config *cfg;
    const reconcile_input *in;
    reconcile_plan *plan;
    const json_t *am;
    const char *uid;
    long long gen;
    const json_t *old; /* the current status: an object or NULL */
    json_t *st;        /* the status being built */
    const am_spec *spec;
    am_spec *own_spec;  /* decoded here when the caller had none */
    const json_t **ups; /* per input: the upstream AM, or NULL for uri inputs */
    partall *all;       /* inputs reading every partition of an upstream (partall.h) */
    char dv[DV_LEN + 1];
    bool have_dv;
    const json_t **mine; /* pods owned by this AM */
    size_t n_mine;
    const json_t *protect; /* the latest attempt while its outcome is still needed */
    bool succeeded;        /* the AM has a current output: failed pods may go */
    bool keep_active;      /* do not delete active pods of other targets (waiting) */
    int rc;                /* first allocation failure */
} rctx;

/* --- plan building ---------------------------------------------------------------- */

static void oom(rctx *c)
{
    if (!c->rc) c->rc = cerr_oom();
}

int reconcile_add_delete(reconcile_delete **ds, size_t *n, const json_t *pod, const char *why)
{
    const char *name = kobj_name(pod);
    if (!name || kobj_is_deleting(pod)) return 0;
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*ds)[i].name, name)) return 0;
    reconcile_delete *d = cmem_reallocarray(*ds, *n + 1, sizeof *d);
    if (!d) return cerr_oom();
    *ds = d;
    d = &d[*n];
    d->name = cmem_strdup(name);
    d->uid = kobj_uid(pod) ? cmem_strdup(kobj_uid(pod)) : NULL;
    d->why = why;
    if (!d->name || (kobj_uid(pod) && !d->uid)) {
        cmem_free(d->name);
        cmem_free(d->uid);
        return cerr_oom();
    }
    (*n)++;
    return 0;
}

int reconcile_add_event(reconcile_event **evs, size_t *n, const char *type, const char *reason,
                        const char *message)
{
    reconcile_event *e = cmem_reallocarray(*evs, *n + 1, sizeof *e);
    if (!e) return cerr_oom();
    *evs = e;
    e = &e[*n];
    e->type = type;
    if (!(e->reason = cmem_strdup(reason))) return cerr_oom();
    if (!(e->message = cmem_strdup(message))) {
        cmem_free(e->reason);
        return cerr_oom();
    }
    (*n)++;
    return 0;
}

void reconcile_free_actions(reconcile_delete *ds, size_t n_deletes, reconcile_event *evs,
                            size_t n_events)
{
    for (size_t i = 0; i < n_deletes; i++) {
        cmem_free(ds[i].name);
        cmem_free(ds[i].uid);
    }
    cmem_free(ds);
    for (size_t i = 0; i < n_events; i++) {
        cmem_free(evs[i].reason);
        cmem_free(evs[i].message);
    }
    cmem_free(evs);
}

static void add_delete(rctx *c, const json_t *pod, const char *why)
{
    if (reconcile_add_delete(&c->plan->deletes, &c->plan->n_deletes, pod, why)) oom(c);
}

static void add_event(rctx *c, const char *type, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_event(rctx *c, const char *type, const char *reason, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (reconcile_add_event(&c->plan->events, &c->plan->n_events, type, reason, msg)) oom(c);
}

static void requeue_in(rctx *c, long seconds)
{
    if (seconds < 1) seconds = 1;
    if (!c->plan->requeue_after_s || seconds < c->plan->requeue_after_s)
        c->plan->requeue_after_s = seconds;
}

/* --- status shorthands ----------------------------------------------------------------- */

/* status shorthands (status.h): the first failure sticks in c->rc */
#define cond STATUS_KEEP_COND
#define set_str STATUS_KEEP_STR
#define set_int STATUS_KEEP_INT
#define set_time STATUS_KEEP_TIME

/* phase, Ready, Failed and the summary message together: they always agree. */
static void state(rctx *c, const char *phase, bool ready, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void state(rctx *c, const char *phase, bool ready, const char *reason, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    set_str(c, "phase", phase);
    set_str(c, "message", msg);
    cond(c, COND_READY, ready, reason, msg);
    cond(c, COND_FAILED, !strcmp(phase, PHASE_FAILED), reason, msg);
}

static const char *old_str(const rctx *c, const char *key)
{
    return status_str(c->old, key);
}

static bool warning_reason(const char *reason)
{
    static const char *const w[] = {R_INVALID_SPEC, R_CYCLE,     R_UNKNOWN_POOL,
                                    R_BAD_INPUT,    R_EXHAUSTED, NULL};
    for (size_t i = 0; w[i]; i++)
        if (!strcmp(reason, w[i])) return true;
    return false;
}

/* The top-level fields (and condition types) that differ, for logs: a
 * status written on every reconcile shows here at once. */
static void describe_changes(const json_t *old, const json_t *st, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)st, k, v)
    {
        const json_t *o = old ? json_object_get(old, k) : NULL;
        if (o && json_equal(o, v)) continue;
        if (!strcmp(k, "conditions") && json_is_array(v)) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                const json_t *cv = json_array_get(v, i);
                const char *t = json_string_value(json_object_get(cv, "type"));
                const json_t *match = NULL;
                for (size_t j = 0; o && t && j < json_array_size(o); j++) {
                    const json_t *x = json_array_get(o, j);
                    const char *xt = json_string_value(json_object_get(x, "type"));
                    if (xt && !strcmp(xt, t)) match = x;
                }
                if (match && json_equal(match, cv)) continue;
                int n =
                    snprintf(buf + off, size - off, "%sconditions.%s", off ? "," : "", t ? t : "?");
                if (n < 0 || (size_t)n >= size - off) return;
                off += (size_t)n;
            }
            continue;
        }
        int n = snprintf(buf + off, size - off, "%s%s", off ? "," : "", k);
        if (n < 0 || (size_t)n >= size - off) return;
        off += (size_t)n;
    }
}

/* Stamps the status, adds the transition Event, and keeps the status (and
 * the Events) only when something changed. */
static void finish(rctx *c)
{
    reconcile_plan *p = c->plan;
    set_int(c, "observedGeneration", c->gen);
    const char *dv = status_str(c->st, "dataVersion");
    char dv12[DV_SHORT_LEN + 1];
    if (dv && dv_short(dv, dv12) == 0) set_str(c, "shortDataVersion", dv12);
    const char *old_phase = old_str(c, "phase"), *phase = status_str(c->st, "phase");
    const char *old_reason = status_cond_reason(c->old, COND_READY);
    const char *reason = status_cond_reason(c->st, COND_READY);
    bool moved = !old_phase || !phase || strcmp(old_phase, phase) || strcmp(old_reason, reason);
    /* Materializing and RetryBackoff have their own, more precise Events
     * (PodCreated, AttemptFailed). */
    if (moved && phase && *reason && strcmp(reason, R_MATERIALIZING) &&
        strcmp(reason, R_RETRY_BACKOFF)) {
        const char *msg = status_str(c->st, "message");
        add_event(c, warning_reason(reason) ? "Warning" : "Normal", reason, "%s",
                  msg ? msg : phase);
    }
    json_t *empty = c->old ? NULL : json_object();
    bool same = json_equal(c->old ? c->old : empty, c->st);
    json_decref(empty);
    if (!c->old && !empty) same = false;
    if (same) {
        reconcile_free_actions(NULL, 0, p->events, p->n_events);
        p->events = NULL;
        p->n_events = 0;
        return;
    }
    describe_changes(c->old, c->st, p->changed, sizeof p->changed);
    p->status = c->st;
    c->st = NULL;
}

/* --- pods ------------------------------------------------------------------------------ */

static const char *ann(const json_t *pod, const char *key)
{
    const json_t *a = json_object_get(json_object_get(pod, "metadata"), "annotations");
    const json_t *v = json_is_object(a) ? json_object_get(a, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool is_target(const rctx *c, const json_t *pod)
{
    if (!c->have_dv) return false;
    const char *dv = ann(pod, PODSPEC_A_DATA_VERSION);
    return dv && !strcmp(dv, c->dv) && pod_annotation_int(pod, PODSPEC_A_GENERATION) == c->gen;
}

static long long label_int(const json_t *pod, const char *key)
{
    const char *v = kobj_label(pod, key);
    if (!v || !*v) return -1;
    char *end;
    long long n = strtoll(v, &end, 10);
    return *end ? -1 : n;
}

/* Deletes what is no longer wanted: active pods of another data version
 * or generation (unless waiting), finished pods after the delay. */
static void collect_garbage(rctx *c)
{
    time_t now = c->in->now;
    for (size_t i = 0; i < c->n_mine; i++) {
        const json_t *pod = c->mine[i];
        if (kobj_is_deleting(pod) || pod == c->protect) continue;
        if (!pod_terminal(pod)) {
            if (!c->keep_active && !is_target(c, pod)) add_delete(c, pod, "superseded");
            continue;
        }
        bool failed = !strcmp(pod_phase(pod), "Failed");
        if (failed && c->cfg->keep_failed_pods) {
            /* kept for post-mortems until the materialization succeeds */
            if (c->succeeded) add_delete(c, pod, "finished");
            continue;
        }
        time_t due = pod_finished_at(pod) + c->cfg->pod_gc_delay_s;
        if (due <= now)
            add_delete(c, pod, "finished");
        else
            requeue_in(c, (long)(due - now));
    }
}

/* --- results -------------------------------------------------------------------------- */

/* The Result in the pod's termination message: 0 with *out (a new
 * reference) when it is a valid Result document, else CERR_INVALID with
 * why. */
static int message_result(const rctx *c, const json_t *m, json_t **out, char *why, size_t size)
{
    *out = NULL;
    if (!json_is_string(m) || !json_string_length(m)) {
        snprintf(why, size, "no result in the termination message");
        return CERR_INVALID;
    }
    if (json_string_length(m) > TERRANE_TERMINATION_MAX) {
        snprintf(why, size, "termination message longer than %d bytes", TERRANE_TERMINATION_MAX);
        return CERR_INVALID;
    }
    json_error_t e;
    json_t *doc = json_loadb(json_string_value(m), json_string_length(m), 0, &e);
    if (!doc) {
        snprintf(why, size, "termination message is not a result (%s)", e.text);
        return CERR_INVALID;
    }
    jschema_error err;
    int rc = jschema_validate(c->cfg->result_schema, doc, &err);
    if (rc) {
        json_decref(doc);
        if (rc == CERR_NOMEM) return rc;
        snprintf(why, size, "invalid result: %.200s%s%.500s", err.path, err.path[0] ? ": " : "",
                 err.message);
        return CERR_INVALID;
    }
    *out = doc;
    return 0;
}

static int pod_result(const rctx *c, const json_t *pod, json_t **out, char *why, size_t size)
{
    const json_t *t = pod_terminated(pod);
    return message_result(c, t ? json_object_get(t, "message") : NULL, out, why, size);
}

static const char *jstr(const json_t *o, const char *path1, const char *key)
{
    const json_t *v = path1 ? json_object_get(o, path1) : o;
    v = json_is_object(v) ? json_object_get(v, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void describe_result_error(const json_t *result, char *why, size_t size);

/* A container asset's step that failed before the worker container: the
 * fetch step's failed Result, or the user's exit code, OOM kill and log. */
static fail_kind classify_step(const rctx *c, const json_t *pod, const podctr_failure *f, char *why,
                               size_t size)
{
    bool oom = f->reason && !strcmp(f->reason, "OOMKilled");
    bool bad = f->exit_code == TERRANE_EXIT_BAD_INPUT;
    json_t *result = NULL;
    char detail[MSG_MAX / 2] = "";
    if (!strcmp(f->step, PODCTR_FETCH) && f->message) {
        json_t *m = json_string(f->message);
        char rwhy[256];
        if (message_result(c, m, &result, rwhy, sizeof rwhy) == 0) {
            const char *cls = jstr(result, "error", "class");
            bad = bad || (cls && !strcmp(cls, "BadInput"));
            describe_result_error(result, detail, sizeof detail);
        }
        json_decref(m);
        json_decref(result);
    } else if (f->message) {
        podctr_log_tail(f->message, detail, sizeof detail);
    }
    if (oom)
        snprintf(why, size, "step %s of pod %s was OOMKilled", f->step, kobj_name(pod));
    else
        snprintf(why, size, "step %s of pod %s exited with code %lld%s%s%s", f->step,
                 kobj_name(pod), f->exit_code, bad ? " (bad input)" : "", detail[0] ? ": " : "",
                 detail);
    return oom ? FAIL_OOM : bad ? FAIL_BAD_INPUT : FAIL_OTHER;
}

/* Why a failed pod failed, in a few words, and what kind of failure. */
static fail_kind classify(const rctx *c, const json_t *pod, char *why, size_t size)
{
    const char *d = NULL;
    if (pod_disrupted(pod, &d)) {
        snprintf(why, size, "pod %s was disrupted (%s)", kobj_name(pod),
                 d ? d : "DisruptionTarget");
        return FAIL_DISRUPTED;
    }
    podctr_failure f;
    if (podctr_failed_step(pod, &f)) return classify_step(c, pod, &f, why, size);
    const json_t *t = pod_terminated(pod);
    const char *reason = t ? jstr(t, NULL, "reason") : NULL;
    const json_t *ec = t ? json_object_get(t, "exitCode") : NULL;
    long long code = json_is_integer(ec) ? json_integer_value(ec) : -1;
    if (reason && !strcmp(reason, "OOMKilled")) {
        snprintf(why, size, "pod %s was OOMKilled", kobj_name(pod));
        return FAIL_OOM;
    }
    json_t *result = NULL;
    char rwhy[256];
    int rc = pod_result(c, pod, &result, rwhy, sizeof rwhy);
    const char *cls = NULL, *emsg = NULL;
    if (rc == 0) {
        cls = jstr(result, "error", "class");
        emsg = jstr(result, "error", "message");
    }
    fail_kind kind = (code == TERRANE_EXIT_BAD_INPUT || (cls && !strcmp(cls, "BadInput")))
                         ? FAIL_BAD_INPUT
                         : FAIL_OTHER;
    if (emsg)
        describe_result_error(result, why, size);
    else if (code >= 0)
        snprintf(why, size, "pod %s exited with code %lld (%s)", kobj_name(pod), code,
                 reason ? reason : "Error");
    else {
        const char *pr = jstr(pod, "status", "reason"), *pm = jstr(pod, "status", "message");
        snprintf(why, size, "pod %s failed%s%s%s%s", kobj_name(pod), pr ? " (" : "", pr ? pr : "",
                 pr ? ")" : "", pm ? pm : "");
    }
    json_decref(result);
    return kind;
}

/* "<code>: <field>: <message>" of a failed Result. */
static void describe_result_error(const json_t *result, char *why, size_t size)
{
    const char *ecode = jstr(result, "error", "code"), *emsg = jstr(result, "error", "message");
    const char *field = jstr(result, "error", "field");
    /* The worker's messages usually start with their field already. */
    if (field && emsg && !strncmp(emsg, field, strlen(field)) && emsg[strlen(field)] == ':')
        field = NULL;
    snprintf(why, size, "%s%s%s%s%s", ecode ? ecode : "", ecode ? ": " : "", field ? field : "",
             field ? ": " : "", emsg ? emsg : "failed");
}

/* Records, for metrics, how the attempt in pod ended. */
static void attempt_ended(rctx *c, const pool *p, const char *how, bool retried)
{
    c->plan->attempt_ended = true;
    c->plan->retried = retried;
    c->plan->ended_pool = p ? pool_name(p) : NULL;
    c->plan->ended_how = how;
}

/* "Preempted" or "Evicted" (node loss and shutdowns count as evictions). */
static const char *disruption_kind(const json_t *pod)
{
    const char *d = NULL;
    pod_disrupted(pod, &d);
    return d && strstr(d, "Preempt") ? "Preempted" : "Evicted";
}

/* --- decision steps ----------------------------------------------------------------------- */

static void decide_gone(rctx *c, bool deleting)
{
    for (size_t i = 0; i < c->in->n_pods; i++)
        add_delete(c, c->in->pods[i], deleting ? "owner deleted" : "owner gone");
    c->plan->outcome = deleting ? "deleting" : "gone";
}

/* An upstream counts once it has succeeded for its current spec. */
static bool upstream_ready(const json_t *up, const char **why, const char **reason)
{
    if (sourceread_is(up)) return sourceread_ready(up, reason, why);
    const json_t *st = json_object_get(up, "status");
    const char *phase = status_str(st, "phase");
    if (kobj_is_deleting(up)) {
        *why = "being deleted";
        return false;
    }
    if (!phase || strcmp(phase, PHASE_SUCCEEDED)) {
        /* not its phase: the message would change (and be written) with
         * every step of the upstream */
        *why = phase && !strcmp(phase, PHASE_FAILED) ? "it failed" : "it has not succeeded yet";
        return false;
    }
    if (status_int(st, "observedGeneration") != kobj_generation(up)) {
        *why = "its spec changed";
        return false;
    }
    const json_t *out = json_object_get(st, "output");
    if (!dv_valid(status_str(st, "dataVersion")) || !jstr(out, NULL, "uri")) {
        *why = "no output recorded";
        return false;
    }
    return true;
}

static const json_t *find_am(const rctx *c, const char *name)
{
    for (size_t i = 0; i < c->in->n_ams; i++) {
        const char *n = kobj_name(c->in->ams[i]);
        if (n && !strcmp(n, name)) return c->in->ams[i];
    }
    return NULL;
}

/* Another upstream of up's name but of the other kind (from: names
 * either; both at once is ambiguous). */
static const json_t *find_other_kind(const rctx *c, const json_t *up)
{
    const char *name = kobj_name(up);
    for (size_t i = 0; i < c->in->n_ams; i++) {
        const json_t *o = c->in->ams[i];
        const char *n = kobj_name(o);
        if (o != up && n && name && !strcmp(n, name) && sourceread_is(o) != sourceread_is(up))
            return o;
    }
    return NULL;
}

/* The dependency cycle the caller's graph found, and missing upstreams
 * (from: names absent from the inputs). 1 when the decision is made
 * (status set), 0 to go on. */
static int check_graph(rctx *c)
{
    if (c->in->cycle) {
        state(c, PHASE_FAILED, false, R_CYCLE, "dependency cycle: %s", c->in->cycle);
        cond(c, COND_UPSTREAM_READY, false, R_CYCLE, status_str(c->st, "message"));
        c->plan->outcome = "cycle";
        return 1;
    }
    const char *missing = NULL, *input = "";
    size_t nmissing = 0;
    for (size_t i = 0; i < c->spec->n_inputs; i++) {
        const char *from = c->spec->inputs[i].from;
        if (!from || find_am(c, from)) continue;
        bool seen = false; /* each name once, as inputs may share one */
        for (size_t k = 0; k < i && !seen; k++)
            seen = c->spec->inputs[k].from && !strcmp(c->spec->inputs[k].from, from);
        if (seen) continue;
        if (!nmissing++) {
            missing = from;
            input = c->spec->inputs[i].name;
        }
    }
    if (!nmissing) return 0;
    state(c, PHASE_WAITING, false, R_UP_MISSING,
          "upstream AssetMaterialization \"%s\" (input %s) does not exist in namespace %s%s",
          missing, input, c->spec->namespace_, nmissing > 1 ? " (and others)" : "");
    cond(c, COND_UPSTREAM_READY, false, R_UP_MISSING, status_str(c->st, "message"));
    c->plan->outcome = "waiting";
    return 1;
}

/* Whether the status holds an output made for the current generation. */
static bool has_output(const rctx *c)
{
    return dv_valid(old_str(c, "dataVersion")) && jstr(c->old, "output", "uri") &&
           status_int(c->old, S_OUTPUT_GEN) == c->gen;
}

/* Upstreams exist and are not cyclic: are they ready? 1 when decided. */
static int check_upstreams_ready(rctx *c)
{
    size_t n = c->spec->n_inputs, nups = 0;
    for (size_t i = 0; i < n; i++) {
        char implicit[IMPLICITSRC_NAME_MAX + 1];
        const char *upname = c->spec->inputs[i].from;
        if (!upname && implicitsrc_applies(c->spec, i)) {
            /* a uri: input is read through its own source (implicitsrc.h) */
            implicitsrc_name(c->spec->name, c->spec->inputs[i].name, implicit, sizeof implicit);
            upname = implicit;
        }
        if (!upname) continue;
        nups++;
        const json_t *up = find_am(c, upname);
        const char *why = NULL, *reason = R_UP_NOT_READY;
        if (up && c->spec->inputs[i].from && find_other_kind(c, up)) {
            char amb[MSG_MAX];
            snprintf(amb, sizeof amb,
                     "input %s: from: %s names both an AssetMaterialization and an AssetSource "
                     "in namespace %s; rename one",
                     c->spec->inputs[i].name, upname, c->spec->namespace_);
            cond(c, COND_UPSTREAM_READY, false, R_AMBIGUOUS, amb);
            state(c, PHASE_WAITING, false, R_AMBIGUOUS, "%s", amb);
            c->plan->outcome = "waiting";
            return 1;
        }
        if (up && !c->spec->inputs[i].from && !implicitsrc_owned(up, c->in->am)) up = NULL;
        c->ups[i] = up;
        char allmsg[MSG_MAX];
        int all = up && c->spec->inputs[i].from
                      ? partall_check(&c->all, c->in, i, up, allmsg, sizeof allmsg)
                      : PARTALL_NO;
        if (all < 0) {
            oom(c);
            return 1;
        }
        if (all == PARTALL_INVALID) {
            state(c, PHASE_FAILED, false, R_INVALID_SPEC, "input %s: %s", c->spec->inputs[i].name,
                  allmsg);
            cond(c, COND_UPSTREAM_READY, false, R_INVALID_SPEC, status_str(c->st, "message"));
            c->plan->outcome = "invalid";
            return 1;
        }
        if (all == PARTALL_READY || (all == PARTALL_NO && up && upstream_ready(up, &why, &reason)))
            continue;
        if (all == PARTALL_WAIT) why = allmsg;
        bool missing = !c->spec->inputs[i].from && implicitsrc_missing(up, &why);
        char msg[MSG_MAX];
        if (c->spec->inputs[i].from)
            snprintf(msg, sizeof msg, "waiting for upstream \"%s\" (input %s): %s",
                     c->spec->inputs[i].from, c->spec->inputs[i].name, why ? why : "missing");
        else
            snprintf(msg, sizeof msg, "observing input %s (%s, source %s): %s",
                     c->spec->inputs[i].name, c->spec->inputs[i].uri, upname,
                     why ? why : "not observed yet");
        cond(c, COND_UPSTREAM_READY, false, reason, msg);
        if (missing) {
            /* nothing observes it again unless asked (terrane.io/rerun,
             * which the executor copies onto the source): final, as a
             * worker's BadInput */
            const char *rerun = rerun_requested(c->in->am, c->old);
            if (rerun) {
                set_str(c, RERUN_TOKEN, rerun);
                add_event(c, "Normal", "Rerun", "terrane.io/rerun=%s: observing input %s again",
                          rerun, c->spec->inputs[i].name);
                state(c, PHASE_WAITING, false, R_UP_NOT_READY, "%s; observing it again", msg);
                c->plan->outcome = "waiting";
                return 1;
            }
            state(c, PHASE_FAILED, false, R_BAD_INPUT, "%s", msg);
            c->plan->outcome = "bad-input";
            return 1;
        }
        if (c->spec->refresh == SPEC_REFRESH_MANUAL && has_output(c)) {
            state(c, PHASE_SUCCEEDED, true, R_MATERIALIZED,
                  "%s; refreshPolicy Manual keeps the current output", msg);
            c->succeeded = true;
        } else {
            state(c, PHASE_WAITING, false, R_UP_NOT_READY, "%s", msg);
        }
        c->plan->outcome = "waiting";
        return 1;
    }
    cond(c, COND_UPSTREAM_READY, true, "UpstreamsReady",
         nups ? "every upstream has succeeded" : "no upstream inputs");
    return 0;
}

static int compute_dv(rctx *c)
{
    size_t n = c->spec->n_inputs;
    dv_input *ins = n ? cmem_calloc(n, sizeof *ins) : NULL;
    if (n && !ins) {
        oom(c);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        ins[i].name = c->spec->inputs[i].name;
        ins[i].uri = c->spec->inputs[i].uri;
        if (c->ups[i])
            ins[i].data_version = status_str(json_object_get(c->ups[i], "status"), "dataVersion");
        taskdoc_input r = {.data_version = ins[i].data_version};
        partall_resolved(c->all, i, &r);
        ins[i].data_version = r.data_version;
    }
    int rc = dv_compute(c->spec->operation, c->spec->params, ins, n, c->cfg->worker_version, c->dv);
    cmem_free(ins);
    if (rc == CERR_NOMEM) {
        oom(c);
        return 1;
    }
    if (rc) {
        state(c, PHASE_FAILED, false, R_INVALID_SPEC, "%s", cerr_message());
        c->plan->outcome = "invalid";
        return 1;
    }
    c->have_dv = true;
    return 0;
}

/* The resolved inputs, for the Task and the lineage. */
static void resolved_input(const rctx *c, size_t i, taskdoc_input *out)
{
    memset(out, 0, sizeof *out);
    const json_t *up = c->ups[i];
    if (!up) {
        out->uri = c->spec->inputs[i].uri;
        return;
    }
    if (sourceread_is(up)) {
        sourceread_input(up, &out->uri, &out->asset_key, &out->data_version, &out->observed);
        return;
    }
    const json_t *st = json_object_get(up, "status");
    const json_t *spec = json_object_get(up, "spec");
    out->uri = jstr(st, "output", "uri");
    out->stac_item = jstr(st, "output", "stacItem");
    out->checksum = jstr(st, "output", "checksum");
    out->data_version = status_str(st, "dataVersion");
    out->asset_key = jstr(spec, NULL, "assetKey");
    partall_resolved(c->all, i, out);
}

static json_t *lineage(rctx *c)
{
    json_t *list = json_array();
    if (!list) return NULL;
    for (size_t i = 0; i < c->spec->n_inputs; i++) {
        taskdoc_input r;
        resolved_input(c, i, &r);
        json_t *e = json_pack("{s:s}", "input", c->spec->inputs[i].name);
        if (!e || json_array_append_new(list, e)) goto fail;
        if (r.uri && json_object_set_new(e, "uri", json_string(r.uri))) goto fail;
        if ((c->spec->inputs[i].from || c->ups[i]) &&
            ((c->spec->inputs[i].from &&
              json_object_set_new(e, "from", json_string(c->spec->inputs[i].from))) ||
             (r.asset_key && json_object_set_new(e, "assetKey", json_string(r.asset_key))) ||
             (r.data_version &&
              json_object_set_new(e, "dataVersion", json_string(r.data_version))) ||
             partall_lineage(c->all, i, e)))
            goto fail;
    }
    return list;
fail:
    json_decref(list);
    return NULL;
}

/* Invalid spec found late (the resolved Task, or the pod): Failed. */
static void invalid_late(rctx *c, const char *field, const char *msg)
{
    state(c, PHASE_FAILED, false, R_INVALID_SPEC, "%s%s%s", field ? field : "", field ? ": " : "",
          msg);
    c->plan->outcome = "invalid";
}

/* Creates attempt number `attempt` (its pod's name) as the `attempts`-th
 * pod of this materialization with `retries` counted retries. */
static void create_pod(rctx *c, const pool *p, int attempt, int attempts, int retries)
{
    size_t n = c->spec->n_inputs;
    taskdoc_input *ins = n ? cmem_calloc(n, sizeof *ins) : NULL;
    json_t *task = NULL, *pod = NULL;
    if (n && !ins) return oom(c);
    for (size_t i = 0; i < n; i++)
        resolved_input(c, i, &ins[i]);
    int rc = taskdoc_build(c->spec, ins, c->dv, attempts, &task);
    cmem_free(ins);
    if (rc) return oom(c);
    if ((rc = partall_expand(c->all, c->spec, task))) {
        json_decref(task);
        if (rc == CERR_NOMEM) return oom(c);
        char why[MSG_MAX];
        snprintf(why, sizeof why, "%s", cerr_message());
        cerr_clear();
        return invalid_late(c, NULL, why);
    }
    jschema_error err;
    rc = taskdoc_validate(c->cfg->task_schema, task, &err);
    if (rc == CERR_INVALID) {
        char field[JSCHEMA_PATH_MAX];
        spec_field_of_task_path(c->spec, err.path, field, sizeof field);
        /* an upstream's recorded output is what failed, or the spec itself */
        invalid_late(c, field, err.message);
        json_decref(task);
        return;
    }
    if (rc) {
        json_decref(task);
        return oom(c);
    }
    podspec_attempt a = {.namespace_ = c->spec->namespace_,
                         .am_name = c->spec->name,
                         .am_uid = c->uid,
                         .generation = c->gen,
                         .asset_key = c->spec->asset_key,
                         .data_version = c->dv,
                         .attempt = attempt,
                         .attempts = attempts,
                         .retries = retries,
                         .pool = p,
                         .resources = c->spec->resources,
                         .task = task};
    rc = podspec_build(c->cfg->pod, &a, &pod);
    json_decref(task);
    if (rc == CERR_NOMEM) return oom(c);
    if (rc) return invalid_late(c, NULL, cerr_message());
    const char *name = kobj_name(pod);
    char dv12[DV_SHORT_LEN + 1];
    dv_short(c->dv, dv12);
    c->plan->create = pod;
    set_str(c, S_TARGET_DV, c->dv);
    set_int(c, S_TARGET_GEN, c->gen);
    set_int(c, "attempts", attempts);
    set_int(c, "retries", retries);
    set_str(c, "podName", name);
    set_str(c, "pool", pool_name(p));
    cond(c, COND_SCHEDULED, true, "PodCreated", "");
    state(c, PHASE_PENDING, false, R_MATERIALIZING,
          "materializing data version %s: pod %s created on pool %s (attempt %d)", dv12, name,
          pool_name(p), attempts);
    if (status_str(c->st, "message"))
        cond(c, COND_SCHEDULED, true, "PodCreated", status_str(c->st, "message"));
    add_event(c, "Normal", "PodCreated",
              "created pod %s on pool %s for data version %s (attempt %d)", name, pool_name(p),
              dv12, attempts);
    const char *image = podctr_unpinned_image(c->spec);
    if (image)
        add_event(c, "Warning", "ImageNotPinned",
                  "spec.container.image %.300s names a tag, not a digest: the tag can move to "
                  "other code without a new data version; use image@sha256:<digest>",
                  image);
    c->plan->outcome = "create-pod";
}

/* The pool of a pod's label, or fallback. */
static const pool *pod_pool(const rctx *c, const json_t *pod, const pool *fallback)
{
    const char *name = pod ? kobj_label(pod, PODSPEC_L_POOL) : NULL;
    const pool *p = name ? pools_find(c->cfg->pools, name) : NULL;
    return p ? p : fallback;
}

/* The next unused attempt number for this data version. */
static int next_attempt_number(const rctx *c)
{
    char dv12[DV_SHORT_LEN + 1];
    long long max = 0;
    dv_short(c->dv, dv12);
    for (size_t i = 0; i < c->n_mine; i++) {
        const char *l = kobj_label(c->mine[i], PODSPEC_L_DATA_VERSION);
        long long a = label_int(c->mine[i], PODSPEC_L_ATTEMPT);
        if (l && !strcmp(l, dv12) && a > max) max = a;
    }
    return (int)max + 1;
}

/* The attempt number at the end of a pod name this controller built, or 0. */
static int attempt_of_name(const rctx *c, const char *name)
{
    const char *dash = name ? strrchr(name, '-') : NULL;
    if (!dash) return 0;
    char *end;
    long n = strtol(dash + 1, &end, 10);
    char again[PODSPEC_NAME_MAX + 1];
    if (*end || n < 1 || n > 100000 ||
        podspec_name(c->spec->name, c->dv, (int)n, again, sizeof again) || strcmp(again, name))
        return 0;
    return (int)n;
}

/* Succeeded, with the same message whether just recorded or found. */
static void materialized(rctx *c, const char *uri, bool cache_hit)
{
    char dv12[DV_SHORT_LEN + 1];
    dv_short(c->dv, dv12);
    state(c, PHASE_SUCCEEDED, true, R_MATERIALIZED, "materialized %s (data version %s%s)",
          uri ? uri : "?", dv12, cache_hit ? ", cache hit" : "");
}

static void record_success(rctx *c, const json_t *pod, const json_t *result)
{
    const json_t *o = json_object_get(result, "output");
    json_t *lin = lineage(c);
    json_t *out = json_pack(
        "{s:O*, s:O*, s:O*, s:O*, s:O*, s:O*, s:b}", "uri", json_object_get(o, "uri"), "checksum",
        json_object_get(o, "checksum"), "sizeBytes", json_object_get(o, "sizeBytes"), "mediaType",
        json_object_get(o, "mediaType"), "stacItem", json_object_get(o, "stacItem"), "manifest",
        json_object_get(o, "manifest"), "cacheHit",
        json_is_true(json_object_get(result, "cacheHit")));
    if (!lin || !out || podctr_output_fields(pod, o, out)) {
        json_decref(lin);
        json_decref(out);
        return oom(c);
    }
    /* json_object_set_new takes the reference also when it fails */
    if (json_object_set_new(c->st, "output", out)) {
        json_decref(lin);
        return oom(c);
    }
    if (json_object_set_new(c->st, "lineage", lin)) return oom(c);
    set_str(c, "dataVersion", c->dv);
    set_int(c, S_OUTPUT_GEN, c->gen);
    set_str(c, "node", pod_node(pod));
    time_t fin = pod_finished_at(pod);
    set_time(c, "finishedAt", fin ? fin : c->in->now);
    materialized(c, jstr(o, NULL, "uri"), json_is_true(json_object_get(result, "cacheHit")));
    cond(c, COND_STALE, false, "UpToDate", "the output matches the current spec and upstreams");
    c->plan->outcome = "succeeded";
}

static void fail_for_good(rctx *c, const json_t *pod, const char *reason, const char *msg)
{
    time_t fin = pod ? pod_finished_at(pod) : 0;
    set_time(c, "finishedAt", fin ? fin : c->in->now);
    state(c, PHASE_FAILED, false, reason, "%s", msg);
    c->plan->outcome = "failed";
}

/* A SourceChanged failure of the latest pod: observe its source now and
 * wait, not counted against retries (srcchange.h). true when decided. */
static bool source_changed(rctx *c, const json_t *pod, const pool *p, const char *why)
{
    json_t *result = NULL;
    char rwhy[256];
    srcchange_plan sp = {0};
    if (pod_result(c, pod, &result, rwhy, sizeof rwhy) == CERR_NOMEM ||
        (result && srcchange_decide(pod, result, c->ups, c->all ? 0 : c->spec->n_inputs,
                                    json_object_get(c->old, SRCCHANGE_STATUS), &sp))) {
        json_decref(result);
        oom(c);
        return true;
    }
    json_decref(result);
    if (sp.step != SRCCHANGE_OBSERVE && sp.step != SRCCHANGE_WAIT) return false;
    const char *src = kobj_name(sp.source);
    if (json_object_set_new(c->st, SRCCHANGE_STATUS, sp.record)) oom(c);
    sp.record = NULL;
    if (sp.ask && (!(c->plan->observe_source = cmem_strdup(src)) ||
                   !(c->plan->observe_token = cmem_strdup(kobj_name(pod)))))
        oom(c);
    if (sp.step == SRCCHANGE_OBSERVE) attempt_ended(c, p, "Failed", false);
    /* the Ready transition's Event (finish) says it once */
    char msg[MSG_MAX];
    snprintf(msg, sizeof msg, "%.700s; observing source %.253s again (not counted against retries)",
             why, src);
    cond(c, COND_UPSTREAM_READY, false, SRCCHANGE_REASON, msg);
    state(c, PHASE_WAITING, false, SRCCHANGE_REASON, "%s", msg);
    c->plan->outcome = "observe-source";
    srcchange_plan_clear(&sp);
    return true;
}

/* The materialization needs the output of data version c->dv. */
static void materialize(rctx *c)
{
    const pool *spool = NULL;
    int rc = pools_select(c->cfg->pools, c->spec->tags, &spool);
    if (rc == CERR_NOMEM) return oom(c);
    if (rc) {
        state(c, PHASE_FAILED, false, rc == CERR_NOTFOUND ? R_UNKNOWN_POOL : R_INVALID_SPEC, "%s",
              cerr_message());
        cond(c, COND_SCHEDULED, false, rc == CERR_NOTFOUND ? R_UNKNOWN_POOL : R_INVALID_SPEC,
             status_str(c->st, "message"));
        c->plan->outcome = "invalid";
        return;
    }
    char dv12[DV_SHORT_LEN + 1];
    dv_short(c->dv, dv12);
    const char *tdv = old_str(c, S_TARGET_DV);
    bool same = tdv && !strcmp(tdv, c->dv) && status_int(c->old, S_TARGET_GEN) == c->gen;
    const char *reason = status_cond_reason(c->old, COND_READY);
    const char *old_phase = old_str(c, "phase");
    if (same && old_phase && !strcmp(old_phase, PHASE_FAILED) &&
        (!strcmp(reason, R_BAD_INPUT) || !strcmp(reason, R_EXHAUSTED))) {
        /* failed for good for this data version and spec: a new
         * generation or upstream version starts over, or a new
         * terrane.io/rerun value (rerun.h) with a fresh retry budget */
        const char *rerun = rerun_requested(c->in->am, c->old);
        if (!rerun) {
            c->plan->outcome = "failed";
            return;
        }
        set_str(c, RERUN_TOKEN, rerun);
        add_event(c, "Normal", "Rerun", "terrane.io/rerun=%s: a new attempt with %s", rerun,
                  "a fresh retry budget");
        create_pod(c, spool, next_attempt_number(c), (int)status_int(c->old, "attempts") + 1, 0);
        return;
    }
    long long attempts = same ? status_int(c->old, "attempts") : 0;
    long long retries = same ? status_int(c->old, "retries") : 0;
    if (!same) set_time(c, "startedAt", c->in->now);
    if (!same) json_object_del(c->st, SRCCHANGE_STATUS);

    /* the latest pod of this target */
    const json_t *latest = NULL;
    long long latest_attempts = -1;
    for (size_t i = 0; i < c->n_mine; i++) {
        const json_t *pod = c->mine[i];
        if (!is_target(c, pod)) continue;
        long long a = pod_annotation_int(pod, PODSPEC_A_ATTEMPTS);
        if (a > latest_attempts ||
            (a == latest_attempts &&
             label_int(pod, PODSPEC_L_ATTEMPT) > label_int(latest, PODSPEC_L_ATTEMPT))) {
            latest = pod;
            latest_attempts = a;
        }
    }
    if (latest) {
        long long r = pod_annotation_int(latest, PODSPEC_A_RETRIES);
        if (latest_attempts > attempts) attempts = latest_attempts;
        if (r > retries) retries = r;
        set_int(c, "attempts", attempts);
        set_int(c, "retries", retries);
        set_str(c, S_TARGET_DV, c->dv);
        set_int(c, S_TARGET_GEN, c->gen);
    }

    /* The status knows a newer pod than the cache: it was just created and
     * is not in the cache yet, or it vanished before finishing. Creating it
     * again under its deterministic name is idempotent (AlreadyExists) and
     * replaces a vanished one without counting a retry. */
    const char *known = same ? old_str(c, "podName") : NULL;
    if (known && (!latest || latest_attempts < status_int(c->old, "attempts"))) {
        int n = attempt_of_name(c, known);
        if (n > 0) {
            const pool *p = pools_find(c->cfg->pools, old_str(c, "pool") ? old_str(c, "pool") : "");
            c->protect = latest;
            create_pod(c, p ? p : spool, n, (int)status_int(c->old, "attempts"),
                       (int)status_int(c->old, "retries"));
            c->plan->outcome = "ensure-pod";
            return;
        }
    }
    c->protect = latest;

    if (!latest) {
        create_pod(c, spool, next_attempt_number(c), (int)attempts + 1, (int)retries);
        return;
    }
    const char *name = kobj_name(latest);
    set_str(c, "podName", name);
    set_str(c, "pool", kobj_label(latest, PODSPEC_L_POOL));
    if (!pod_terminal(latest)) {
        cond(c, COND_SCHEDULED, true, "PodCreated", "");
        if (kobj_is_deleting(latest)) {
            c->plan->outcome = "wait-pod-deleted";
            return;
        }
        const char *unsched = pod_unschedulable_message(latest);
        const char *wmsg = NULL, *wreason = pod_waiting_reason(latest, &wmsg), *smsg, *sreason;
        if (podctr_current_step(latest, &sreason, &smsg) && sreason) {
            wreason = sreason; /* a step's image cannot be pulled, ... */
            wmsg = smsg;
        }
        if (unsched) {
            state(c, PHASE_PENDING, false, R_MATERIALIZING,
                  "materializing data version %s: pod %s is not scheduled yet: %s", dv12, name,
                  unsched);
        } else if (wreason && strcmp(wreason, "ContainerCreating") &&
                   strcmp(wreason, "PodInitializing")) {
            state(c, PHASE_PENDING, false, R_MATERIALIZING,
                  "materializing data version %s: pod %s: %s%s%s", dv12, name, wreason,
                  wmsg ? ": " : "", wmsg ? wmsg : "");
        } else if (!pod_node(latest)) {
            state(c, PHASE_PENDING, false, R_MATERIALIZING,
                  "materializing data version %s: pod %s is waiting to be scheduled", dv12, name);
        } else {
            state(c, PHASE_RUNNING, false, R_MATERIALIZING,
                  "materializing data version %s in pod %s on node %s (attempt %lld)", dv12, name,
                  pod_node(latest), attempts);
            set_str(c, "node", pod_node(latest));
        }
        cond(c, COND_SCHEDULED, true, "PodCreated", status_str(c->st, "message"));
        c->plan->outcome = "running";
        return;
    }

    char why[MSG_MAX];
    fail_kind kind;
    if (!strcmp(pod_phase(latest), "Succeeded")) {
        json_t *result = NULL;
        rc = pod_result(c, latest, &result, why, sizeof why);
        if (rc == CERR_NOMEM) return oom(c);
        const char *rstatus = result ? jstr(result, NULL, "status") : NULL;
        const char *rdv = result ? jstr(result, NULL, "dataVersion") : NULL;
        if (result && rstatus && !strcmp(rstatus, "Succeeded") && rdv && !strcmp(rdv, c->dv)) {
            attempt_ended(c, pod_pool(c, latest, spool), "Succeeded", false);
            record_success(c, latest, result);
            json_decref(result);
            return;
        }
        if (result) {
            snprintf(why, sizeof why, "pod %s reported %s for data version %.20s, expected %.20s",
                     name, rstatus ? rstatus : "?", rdv ? rdv : "?", c->dv);
            json_decref(result);
        } else {
            char tmp[MSG_MAX];
            snprintf(tmp, sizeof tmp, "pod %.63s succeeded but %.900s", name, why);
            memcpy(why, tmp, sizeof why);
        }
        kind = FAIL_OTHER; /* an Internal failure of the worker: retried */
    } else {
        kind = classify(c, latest, why, sizeof why);
        if (kind == FAIL_OTHER && source_changed(c, latest, pod_pool(c, latest, spool), why))
            return;
    }

    const pool *cur = pod_pool(c, latest, spool);
    int limit = c->spec->retry_limit;
    switch (kind) {
    case FAIL_BAD_INPUT:
        attempt_ended(c, cur, "Failed", false);
        fail_for_good(c, latest, R_BAD_INPUT, why);
        return;
    case FAIL_DISRUPTED:
        attempt_ended(c, cur, disruption_kind(latest), true);
        add_event(c, "Warning", "Disrupted", "%s; retrying (not counted against retries)", why);
        create_pod(c, cur, next_attempt_number(c), (int)attempts + 1, (int)retries);
        return;
    case FAIL_OOM: {
        if (retries >= limit) {
            char msg[MSG_MAX];
            snprintf(msg, sizeof msg, "%s on pool %s; retries exhausted (%lld of %d)", why,
                     pool_name(cur), retries, limit);
            attempt_ended(c, cur, "OOMKilled", false);
            fail_for_good(c, latest, R_EXHAUSTED, msg);
            return;
        }
        attempt_ended(c, cur, "OOMKilled", true);
        const pool *bigger = pool_escalation(cur);
        const pool *next = bigger ? bigger : cur;
        add_event(c, "Warning", "OOMKilled",
                  "%s on pool %s; retrying on pool %s (retry %lld of %d)", why, pool_name(cur),
                  pool_name(next), retries + 1, limit);
        create_pod(c, next, next_attempt_number(c), (int)attempts + 1, (int)retries + 1);
        return;
    }
    case FAIL_OTHER:
        break;
    }
    if (retries >= limit) {
        char msg[MSG_MAX];
        snprintf(msg, sizeof msg, "%s; retries exhausted (%lld of %d)", why, retries, limit);
        attempt_ended(c, cur, "Failed", false);
        fail_for_good(c, latest, R_EXHAUSTED, msg);
        return;
    }
    /* The attempt's end is counted once: when the backoff starts, or at the
     * retry itself when the backoff had already passed when it was seen. */
    bool backing_off = !strcmp(status_cond_reason(c->old, COND_READY), R_RETRY_BACKOFF) &&
                       !strcmp(old_str(c, "podName") ? old_str(c, "podName") : "", name);
    long delay = (long)c->spec->backoff_seconds;
    for (long long i = 0; i < retries && delay < MAX_BACKOFF_S; i++)
        delay *= 2;
    if (delay > MAX_BACKOFF_S) delay = MAX_BACKOFF_S;
    time_t at = pod_finished_at(latest) + delay;
    if (at > c->in->now) {
        char when[KOBJ_TIME_LEN];
        kobj_time_format(at, when);
        state(c, PHASE_PENDING, false, R_RETRY_BACKOFF,
              "attempt %lld failed: %s; retry %lld of %d at %s", attempts, why, retries + 1, limit,
              when);
        if (!backing_off) {
            attempt_ended(c, cur, "Failed", false);
            add_event(c, "Warning", "AttemptFailed", "attempt %lld failed: %s; retrying in %lds",
                      attempts, why, (long)(at - c->in->now));
        }
        requeue_in(c, (long)(at - c->in->now));
        c->plan->outcome = "backoff";
        return;
    }
    attempt_ended(c, cur, "Failed", true);
    c->plan->attempt_ended = !backing_off;
    create_pod(c, cur, next_attempt_number(c), (int)attempts + 1, (int)retries + 1);
}

static void decide(rctx *c)
{
    const reconcile_input *in = c->in;
    c->uid = kobj_uid(c->am);
    c->gen = kobj_generation(c->am);
    const json_t *old = json_object_get(c->am, "status");
    c->old = json_is_object(old) ? old : NULL;
    c->st = c->old ? json_deep_copy(c->old) : json_object();
    if (!c->st) return oom(c);

    /* pods of an earlier object of the same name are not ours */
    c->mine = in->n_pods ? cmem_calloc(in->n_pods, sizeof *c->mine) : NULL;
    if (in->n_pods && !c->mine) return oom(c);
    for (size_t i = 0; i < in->n_pods; i++) {
        kobj_owner_ref ref;
        const json_t *pod = in->pods[i];
        if (kobj_controller_ref(pod, &ref) == 0 && c->uid && !strcmp(ref.uid, c->uid))
            c->mine[c->n_mine++] = pod;
        else
            add_delete(c, pod, "orphaned");
    }

    jschema_error own_err;
    const jschema_error *err = in->spec_error;
    if (in->spec) {
        c->spec = in->spec;
    } else if (!err) {
        int rc = spec_decode(c->am, c->cfg->task_schema, &c->own_spec, &own_err);
        if (rc == CERR_NOMEM) return oom(c);
        c->spec = c->own_spec;
        if (rc) err = &own_err;
    }
    if (err) {
        state(c, PHASE_FAILED, false, R_INVALID_SPEC, "%s: %s", err->path, err->message);
        c->plan->outcome = "invalid";
        collect_garbage(c);
        return finish(c);
    }
    if (c->spec->n_inputs) {
        c->ups = cmem_calloc(c->spec->n_inputs, sizeof *c->ups);
        if (!c->ups) return oom(c);
    }
    if (check_graph(c)) {
        if (!c->rc && strcmp(c->plan->outcome, "cycle")) c->keep_active = true;
        collect_garbage(c);
        return finish(c);
    }
    if (check_upstreams_ready(c)) {
        c->keep_active = true;
        collect_garbage(c);
        return finish(c);
    }
    if (compute_dv(c)) {
        collect_garbage(c);
        return finish(c);
    }
    const char *odv = old_str(c, "dataVersion");
    char old12[DV_SHORT_LEN + 1] = "", new12[DV_SHORT_LEN + 1];
    dv_short(c->dv, new12);
    if (odv) dv_short(odv, old12);
    if (odv && has_output(c) && !strcmp(odv, c->dv)) { /* has_output implies odv */
        materialized(c, jstr(c->old, "output", "uri"),
                     json_is_true(json_object_get(json_object_get(c->old, "output"), "cacheHit")));
        cond(c, COND_STALE, false, "UpToDate", "the output matches the current spec and upstreams");
        c->succeeded = true;
        c->plan->outcome = "up-to-date";
        collect_garbage(c);
        return finish(c);
    }
    if (has_output(c)) {
        char msg[MSG_MAX];
        /* same generation, other data version: an upstream (or the worker
         * version, which is part of it) changed */
        snprintf(msg, sizeof msg, "an upstream changed: data version %s is now %s", old12, new12);
        if (!status_cond_true(c->old, COND_STALE))
            add_event(c, "Normal", "UpstreamChanged", "%s%s", msg,
                      c->spec->refresh == SPEC_REFRESH_MANUAL
                          ? " (refreshPolicy Manual: not re-materialized)"
                          : "; re-materializing");
        cond(c, COND_STALE, true, "UpstreamChanged", msg);
        if (c->spec->refresh == SPEC_REFRESH_MANUAL) {
            state(c, PHASE_SUCCEEDED, true, R_MATERIALIZED,
                  "stale: %s; refreshPolicy Manual keeps %s", msg, jstr(c->old, "output", "uri"));
            c->succeeded = true;
            c->plan->outcome = "stale";
            collect_garbage(c);
            return finish(c);
        }
    } else {
        bool older = jstr(c->old, "output", "uri") != NULL;
        cond(c, COND_STALE, false, older ? "SpecChanged" : "NotMaterialized",
             older ? "the spec changed since the output was made" : "no output yet");
    }
    materialize(c);
    if (!c->rc) {
        collect_garbage(c);
        finish(c);
    }
}

int reconcile_decide(const reconcile_config *cfg, const reconcile_input *in, reconcile_plan *out)
{
    memset(out, 0, sizeof *out);
    out->outcome = "none";
    rctx c = {.cfg = cfg, .in = in, .plan = out, .am = in->am};
    if (!in->am || kobj_is_deleting(in->am)) {
        /* Published data is never deleted: only pods go. */
        decide_gone(&c, in->am != NULL);
    } else {
        decide(&c);
    }
    json_decref(c.st);
    spec_free(c.own_spec);
    cmem_free(c.ups);
    partall_free(c.all);
    cmem_free(c.mine);
    if (c.rc) {
        reconcile_plan_clear(out);
        return c.rc;
    }
    return 0;
}

void reconcile_plan_clear(reconcile_plan *p)
{
    if (!p) return;
    json_decref(p->status);
    json_decref(p->create);
    reconcile_free_actions(p->deletes, p->n_deletes, p->events, p->n_events);
    cmem_free(p->observe_source);
    cmem_free(p->observe_token);
    memset(p, 0, sizeof *p);
    p->outcome = "none";
}
