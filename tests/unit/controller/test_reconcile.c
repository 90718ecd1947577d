/*
 * test_reconcile.c - the reconcile decision, branch by branch, on hand-made
 * AssetMaterializations and pods, without an API server: each test plays
 * the part of the cluster (creating the planned pod, moving it through its
 * phases, writing the planned status back) and checks the next decision.
 * Also: idempotence (the same observation gives the same plan and no
 * status write), and allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cfgfixtures.h"
#include "dataversion.h"
#include "depgraph.h"
#include "implicitsrc.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jschema.h"
#include "pools.h"
#include "reconcile.h"
#include "spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char POOLS[] =
    "{\"defaultPool\":\"cpu\",\"pools\":{"
    "\"cpu\":{\"nodeSelector\":{\"terrane.io/"
    "pool\":\"cpu\"},\"resources\":{\"requests\":{\"cpu\":\"1\","
    "\"memory\":\"1Gi\"}},\"oomEscalation\":\"highmem\"},"
    "\"highmem\":{\"nodeSelector\":{\"terrane.io/pool\":\"highmem\"},\"resources\":{\"requests\":{"
    "\"memory\":\"8Gi\"}}}}}";

#define T0 1700000000L /* "now" at the start of every test */

FX_CONFIG_GROUP(POOLS, true)

/* --- the simulated cluster ---------------------------------------------------------- */

typedef struct {
    json_t *ams[8];
    size_t n_ams;
    json_t *srcs[8]; /* the sources of uri: inputs (implicitsrc.h) */
    size_t n_srcs;
    json_t *pods[16];
    size_t n_pods;
    time_t now;
    reconcile_plan plan;
} world;

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v) fail_msg("test JSON: %s: %s", e.text, text);
    return v;
}

/* The source of input i of am as the controller creates it, observed with
 * this ETag (a data version derived from it), or not yet (etag NULL). */
static json_t *input_source(const json_t *am, size_t i, const char *etag)
{
    am_spec *s = NULL;
    json_t *src = NULL;
    assert_int_equal(spec_decode(am, NULL, &s, NULL), 0);
    assert_int_equal(implicitsrc_build(am, s, i, NULL, &src), 0);
    spec_free(s);
    json_object_set_new(json_object_get(src, "metadata"), "uid", json_string("uid-src"));
    if (etag) {
        char dv[80];
        unsigned h = 5381;
        for (const char *p = etag; *p; p++)
            h = h * 33 + (unsigned char)*p;
        snprintf(dv, sizeof dv, "sha256:%064x", h);
        json_object_set_new(src, "status",
                            json_pack("{s:s, s:{s:s, s:i}, s:[{s:s, s:s, s:s, s:s, s:s}]}",
                                      "dataVersion", dv, "object", "etag", etag, "sizeBytes", 1024,
                                      "conditions", "type", "Available", "status", "True", "reason",
                                      "Observed", "message", "1 object", "lastTransitionTime",
                                      "2023-11-14T22:13:20Z"));
    }
    return src;
}

/* Every s3:// or https:// input of am gets its observed source. */
static void add_input_sources(world *w, const json_t *am, const char *etag)
{
    am_spec *s = NULL;
    if (spec_decode(am, NULL, &s, NULL)) return; /* an invalid spec is decided without them */
    for (size_t i = 0; i < s->n_inputs; i++)
        if (implicitsrc_applies(s, i)) w->srcs[w->n_srcs++] = input_source(am, i, etag);
    spec_free(s);
}

/* Adds an AssetMaterialization with the given spec (JSON text). */
static json_t *add_am(world *w, const char *name, const char *spec)
{
    char uid[64];
    snprintf(uid, sizeof uid, "uid-%s", name);
    json_t *am = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:i, s:s}, s:o}", "apiVersion",
                           "terrane.io/v1alpha1", "kind", "AssetMaterialization", "metadata",
                           "name", name, "namespace", "hydro", "uid", uid, "generation", 1,
                           "resourceVersion", "1", "spec", parse(spec));
    assert_non_null(am);
    w->ams[w->n_ams++] = am;
    add_input_sources(w, am, "etag-1");
    return am;
}

static json_t *find_am(world *w, const char *name)
{
    for (size_t i = 0; i < w->n_ams; i++)
        if (!strcmp(kobj_name(w->ams[i]), name)) return w->ams[i];
    return NULL;
}

static void world_free(world *w)
{
    for (size_t i = 0; i < w->n_ams; i++)
        json_decref(w->ams[i]);
    for (size_t i = 0; i < w->n_pods; i++)
        json_decref(w->pods[i]);
    for (size_t i = 0; i < w->n_srcs; i++)
        json_decref(w->srcs[i]);
    reconcile_plan_clear(&w->plan);
}

/* Runs the decision for name; the plan stays in w->plan. */
static reconcile_plan *decide(world *w, const char *name)
{
    const json_t *pods[16];
    size_t n = 0;
    for (size_t i = 0; i < w->n_pods; i++) {
        const char *l = kobj_label(w->pods[i], "terrane.io/materialization");
        if (l && !strcmp(l, name)) pods[n++] = w->pods[i];
    }
    reconcile_plan_clear(&w->plan);
    /* the cycle from the graph the manager keeps, built from the world */
    depgraph *g = depgraph_new();
    assert_non_null(g);
    for (size_t i = 0; i < w->n_ams; i++) {
        const char *ups[8];
        char keys[8][96], key[96];
        size_t total, k = spec_upstreams(w->ams[i], ups, 8, &total);
        for (size_t j = 0; j < k; j++) {
            snprintf(keys[j], sizeof keys[j], "hydro/%s", ups[j]);
            ups[j] = keys[j];
        }
        snprintf(key, sizeof key, "hydro/%s", kobj_name(w->ams[i]));
        assert_int_equal(depgraph_set(g, key, ups, k), 0);
    }
    char key[96], *cycle = NULL;
    bool on = false;
    snprintf(key, sizeof key, "hydro/%s", name);
    assert_int_equal(depgraph_cycle(g, key, &on, &cycle, 1024), 0);
    depgraph_free(g);
    const json_t *ups[16];
    size_t nups = 0;
    for (size_t i = 0; i < w->n_ams; i++)
        ups[nups++] = w->ams[i];
    for (size_t i = 0; i < w->n_srcs; i++)
        ups[nups++] = w->srcs[i];
    reconcile_input in = {.namespace_ = "hydro",
                          .name = name,
                          .am = find_am(w, name),
                          .ams = ups,
                          .n_ams = nups,
                          .cycle = cycle,
                          .pods = pods,
                          .n_pods = n,
                          .now = w->now ? w->now : T0};
    assert_int_equal(reconcile_decide(&g_cfg, &in, &w->plan), 0);
    cmem_free(cycle);
    return &w->plan;
}

/* Writes the planned status back, as the API server would. */
static void write_status(world *w, const char *name)
{
    json_t *am = find_am(w, name);
    if (w->plan.status) json_object_set(am, "status", w->plan.status);
}

/* Creates the planned pod (Pending, unscheduled) and returns it. */
static json_t *create_pod(world *w)
{
    assert_non_null(w->plan.create);
    json_t *pod = json_deep_copy(w->plan.create);
    json_object_set_new(json_object_get(pod, "metadata"), "uid", json_string(kobj_name(pod)));
    json_object_set_new(json_object_get(pod, "metadata"), "creationTimestamp",
                        json_string("2023-11-14T22:13:20Z"));
    json_object_set_new(pod, "status", json_pack("{s:s}", "phase", "Pending"));
    w->pods[w->n_pods++] = pod;
    return pod;
}

/* One reconcile with the cluster's reaction: status written, pod created. */
static reconcile_plan *step(world *w, const char *name, json_t **created)
{
    reconcile_plan *p = decide(w, name);
    write_status(w, name);
    if (p->create) {
        json_t *pod = create_pod(w);
        if (created) *created = pod;
    } else if (created) {
        *created = NULL;
    }
    return p;
}

static void pod_running(json_t *pod, const char *node)
{
    json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string(node));
    json_object_set_new(pod, "status",
                        json_pack("{s:s, s:[{s:{s:{s:s}}}]}", "phase", "Running",
                                  "containerStatuses", "state", "running", "startedAt",
                                  "2023-11-14T22:13:21Z"));
}

static void pod_unschedulable(json_t *pod, const char *msg)
{
    json_object_set_new(pod, "status",
                        json_pack("{s:s, s:[{s:s, s:s, s:s, s:s}]}", "phase", "Pending",
                                  "conditions", "type", "PodScheduled", "status", "False", "reason",
                                  "Unschedulable", "message", msg));
}

/* Terminates the pod: phase, exit code, reason, termination message,
 * finishedAt = T0 + 10 s. */
static void pod_done(json_t *pod, const char *phase, int code, const char *reason,
                     const char *message)
{
    json_t *term =
        json_pack("{s:i, s:s, s:s, s:s}", "exitCode", code, "reason", reason, "startedAt",
                  "2023-11-14T22:13:21Z", "finishedAt", "2023-11-14T22:13:30Z");
    if (message) json_object_set_new(term, "message", json_string(message));
    json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string("cpu-1"));
    json_object_set_new(pod, "status",
                        json_pack("{s:s, s:[{s:s, s:{s:o}}]}", "phase", phase, "containerStatuses",
                                  "name", "worker", "state", "terminated", term));
}

static const char *ann(const json_t *pod, const char *key)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"), key));
}

/* A valid Succeeded Result for the pod's data version. */
static char *success_result(const json_t *pod, const char *asset_key, bool cache_hit)
{
    const char *dv = ann(pod, "terrane.io/data-version");
    char *prefix = cmem_printf("s3://assets/hydro/%s/%s", asset_key, dv + 7);
    char *r = cmem_printf(
        "{\"apiVersion\":\"terrane.io/"
        "v1\",\"kind\":\"Result\",\"status\":\"Succeeded\",\"assetKey\":\"%s\","
        "\"dataVersion\":\"%s\",\"output\":{\"uri\":\"%s/asset.tif\",\"checksum\":\"1220%064d\","
        "\"sizeBytes\":1234,\"mediaType\":\"image/tiff; application=geotiff; "
        "profile=cloud-optimized\","
        "\"stacItem\":\"%s/item.json\",\"manifest\":\"%s/manifest.json\"},\"cacheHit\":%s,"
        "\"timings\":{\"totalMs\":10,\"computeMs\":8,\"publishMs\":2},\"worker\":{\"version\":\"0."
        "1.0\","
        "\"gdalVersion\":\"3.6.2\"}}",
        asset_key, dv, prefix, 0, prefix, prefix, cache_hit ? "true" : "false");
    cmem_free(prefix);
    return r;
}

static char *failure_result(const json_t *pod, const char *asset_key, const char *cls,
                            const char *code, const char *msg)
{
    return cmem_printf(
        "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Result\",\"status\":\"Failed\","
        "\"assetKey\":\"%s\",\"dataVersion\":\"%s\",\"error\":{\"class\":\"%s\",\"code\":\"%s\","
        "\"message\":\"%s\",\"field\":\"inputs[0].uri\"},\"worker\":{\"version\":\"0.1.0\","
        "\"gdalVersion\":\"3.6.2\"}}",
        asset_key, ann(pod, "terrane.io/data-version"), cls, code, msg);
}

static void succeed(json_t *pod, const char *asset_key)
{
    char *r = success_result(pod, asset_key, false);
    pod_done(pod, "Succeeded", 0, "Completed", r);
    cmem_free(r);
}

/* Status accessors on the AM as last written. */
static const char *st_str(world *w, const char *name, const char *key)
{
    return json_string_value(json_object_get(json_object_get(find_am(w, name), "status"), key));
}

static long long st_int(world *w, const char *name, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(find_am(w, name), "status"), key));
}

static const char *cond_field(world *w, const char *name, const char *type, const char *field)
{
    const json_t *conds =
        json_object_get(json_object_get(find_am(w, name), "status"), "conditions");
    for (size_t i = 0; i < json_array_size(conds); i++) {
        const json_t *c = json_array_get(conds, i);
        if (!strcmp(json_string_value(json_object_get(c, "type")), type))
            return json_string_value(json_object_get(c, field));
    }
    return NULL;
}

static bool has_event(const reconcile_plan *p, const char *type, const char *reason,
                      const char *needle)
{
    for (size_t i = 0; i < p->n_events; i++)
        if (!strcmp(p->events[i].type, type) && !strcmp(p->events[i].reason, reason) &&
            (!needle || strstr(p->events[i].message, needle)))
            return true;
    return false;
}

static const char *task_env(const json_t *pod)
{
    const json_t *env = json_object_get(
        json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0), "env");
    for (size_t i = 0; i < json_array_size(env); i++) {
        const json_t *e = json_array_get(env, i);
        if (!strcmp(json_string_value(json_object_get(e, "name")), "TERRANE_TASK"))
            return json_string_value(json_object_get(e, "value"));
    }
    return NULL;
}

#define COG_SPEC                                                                                   \
    "{\"assetKey\":\"hydrology/"                                                                   \
    "dem_cog\",\"operation\":\"cog\",\"params\":{\"compression\":\"DEFLATE\"},"                    \
    "\"inputs\":[{\"name\":\"dem\",\"uri\":\"s3://raw/elev.tif\"}],\"output\":{\"uri\":\"s3://"    \
    "assets\"}}"
#define SLOPE_SPEC                                                                                 \
    "{\"assetKey\":\"hydrology/"                                                                   \
    "dem_slope\",\"operation\":\"terrain\",\"params\":{\"mode\":\"slope\"},"                       \
    "\"inputs\":[{\"name\":\"dem\",\"from\":\"dem-cog\"}],\"output\":{\"uri\":\"s3://assets\"},"   \
    "\"tags\":{\"terrane.io/pool\":\"highmem\"}}"

/* Brings dem-cog to Succeeded; returns its pod. */
static json_t *materialize_cog(world *w)
{
    json_t *pod;
    step(w, "dem-cog", &pod);
    assert_non_null(pod);
    succeed(pod, "hydrology/dem_cog");
    step(w, "dem-cog", NULL);
    assert_string_equal(st_str(w, "dem-cog", "phase"), "Succeeded");
    return pod;
}

/* --- tests -------------------------------------------------------------------------- */

/* The plan's account of an ended attempt, for metrics. */
static void expect_attempt(const reconcile_plan *p, bool ended, const char *how, bool retried,
                           const char *pname)
{
    assert_int_equal(p->attempt_ended, ended);
    assert_int_equal(p->retried, retried);
    if (how) assert_string_equal(p->ended_how, how);
    if (pname) assert_string_equal(p->ended_pool, pname);
}

static void first_attempt_and_success(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    reconcile_plan *p = decide(&w, "dem-cog");
    assert_string_equal(p->outcome, "create-pod");
    assert_non_null(p->create);
    assert_non_null(p->status);
    assert_true(has_event(p, "Normal", "PodCreated", "attempt 1"));
    const char *name = kobj_name(p->create);
    assert_true(strncmp(name, "dem-cog-", 8) == 0);
    assert_true(strlen(name) == strlen("dem-cog-") + 12 + 2 &&
                !strcmp(name + strlen(name) - 2, "-1"));
    write_status(&w, "dem-cog");
    json_t *pod = create_pod(&w);
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Pending");
    assert_string_equal(cond_field(&w, "dem-cog", "Ready", "reason"), "Materializing");
    assert_string_equal(cond_field(&w, "dem-cog", "Scheduled", "status"), "True");
    assert_int_equal(st_int(&w, "dem-cog", "attempts"), 1);
    assert_int_equal(st_int(&w, "dem-cog", "retries"), 0);
    assert_int_equal(st_int(&w, "dem-cog", "observedGeneration"), 1);
    assert_string_equal(st_str(&w, "dem-cog", "targetDataVersion"),
                        ann(pod, "terrane.io/data-version"));
    assert_string_equal(st_str(&w, "dem-cog", "pool"), "cpu");

    /* the task in the pod is the spec's, with the data version */
    json_t *task = parse(task_env(pod));
    assert_string_equal(json_string_value(json_object_get(task, "dataVersion")),
                        ann(pod, "terrane.io/data-version"));
    assert_string_equal(json_string_value(json_object_get(task, "assetKey")), "hydrology/dem_cog");
    assert_string_equal(json_string_value(json_object_get(task, "namespace")), "hydro");
    assert_int_equal(json_integer_value(json_object_get(task, "attempt")), 1);
    json_decref(task);

    /* unscheduled: Pending with the scheduler's words */
    pod_unschedulable(pod, "0/1 nodes are available: 1 Insufficient memory.");
    p = step(&w, "dem-cog", NULL);
    assert_null(p->create);
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Pending");
    assert_non_null(strstr(st_str(&w, "dem-cog", "message"), "Insufficient memory"));

    pod_running(pod, "cpu-1");
    p = step(&w, "dem-cog", NULL);
    assert_string_equal(p->outcome, "running");
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Running");
    assert_non_null(strstr(st_str(&w, "dem-cog", "message"), "cpu-1"));
    /* nothing changed: no write, no Event */
    p = decide(&w, "dem-cog");
    assert_null(p->status);
    assert_int_equal(p->n_events, 0);
    expect_attempt(p, false, NULL, false, NULL);

    succeed(pod, "hydrology/dem_cog");
    p = step(&w, "dem-cog", NULL);
    assert_string_equal(p->outcome, "succeeded");
    expect_attempt(p, true, "Succeeded", false, "cpu");
    assert_true(has_event(p, "Normal", "Materialized", "asset.tif"));
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Succeeded");
    assert_string_equal(cond_field(&w, "dem-cog", "Ready", "status"), "True");
    assert_string_equal(cond_field(&w, "dem-cog", "Ready", "reason"), "Materialized");
    assert_string_equal(cond_field(&w, "dem-cog", "Failed", "status"), "False");
    assert_string_equal(cond_field(&w, "dem-cog", "Stale", "status"), "False");
    assert_string_equal(st_str(&w, "dem-cog", "dataVersion"), ann(pod, "terrane.io/data-version"));
    assert_int_equal(strlen(st_str(&w, "dem-cog", "shortDataVersion")), 12);
    assert_string_equal(st_str(&w, "dem-cog", "node"), "cpu-1");
    assert_string_equal(st_str(&w, "dem-cog", "finishedAt"), "2023-11-14T22:13:30Z");
    const json_t *st = json_object_get(find_am(&w, "dem-cog"), "status");
    const json_t *out = json_object_get(st, "output");
    assert_int_equal(json_integer_value(json_object_get(out, "sizeBytes")), 1234);
    assert_true(json_is_false(json_object_get(out, "cacheHit")));
    assert_non_null(strstr(json_string_value(json_object_get(out, "manifest")), "manifest.json"));
    const json_t *lin = json_array_get(json_object_get(st, "lineage"), 0);
    assert_string_equal(json_string_value(json_object_get(lin, "input")), "dem");
    assert_string_equal(json_string_value(json_object_get(lin, "uri")), "s3://raw/elev.tif");

    /* settled: no write; the finished pod goes after the GC delay */
    p = decide(&w, "dem-cog");
    assert_string_equal(p->outcome, "up-to-date");
    assert_null(p->status);
    assert_int_equal(p->n_deletes, 0);
    assert_int_equal(p->requeue_after_s, 70); /* finished at T0+10, deleted 60 s later */
    w.now = T0 + 3600;
    p = decide(&w, "dem-cog");
    assert_int_equal(p->n_deletes, 1);
    assert_string_equal(p->deletes[0].name, kobj_name(pod));
    assert_string_equal(p->deletes[0].uid, kobj_name(pod));
    assert_string_equal(p->deletes[0].why, "finished");
    world_free(&w);
}

/* A pod created but not yet in the cache, or gone before it finished, is
 * created again under the same name: never a second attempt. */
static void status_ahead_of_cache(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    reconcile_plan *p = decide(&w, "dem-cog");
    char *first = cmem_strdup(kobj_name(p->create));
    write_status(&w, "dem-cog");
    /* the informer has not delivered the pod yet */
    p = decide(&w, "dem-cog");
    assert_string_equal(p->outcome, "ensure-pod");
    assert_non_null(p->create);
    assert_string_equal(kobj_name(p->create), first);
    assert_null(p->status); /* same attempt, same counters */
    cmem_free(first);
    world_free(&w);
}

static void same_observation_same_plan(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    reconcile_plan *p = decide(&w, "dem-cog");
    char *a = json_dumps(p->create, JSON_SORT_KEYS);
    char *s1 = json_dumps(p->status, JSON_SORT_KEYS);
    p = decide(&w, "dem-cog");
    char *b = json_dumps(p->create, JSON_SORT_KEYS);
    char *s2 = json_dumps(p->status, JSON_SORT_KEYS);
    assert_string_equal(a, b);
    assert_string_equal(s1, s2);
    cmem_free(a);
    cmem_free(b);
    cmem_free(s1);
    cmem_free(s2);
    world_free(&w);
}

static void invalid_spec(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "bad",
           "{\"assetKey\":\"a/b\",\"operation\":\"terrain\",\"params\":{\"mode\":\"slop\"},"
           "\"inputs\":[{\"name\":\"dem\",\"uri\":\"s3://raw/"
           "elev.tif\"}],\"output\":{\"uri\":\"s3://assets\"}}");
    reconcile_plan *p = step(&w, "bad", NULL);
    assert_null(p->create);
    assert_string_equal(st_str(&w, "bad", "phase"), "Failed");
    assert_string_equal(cond_field(&w, "bad", "Ready", "reason"), "InvalidSpec");
    assert_string_equal(cond_field(&w, "bad", "Failed", "status"), "True");
    assert_string_equal(cond_field(&w, "bad", "Failed", "reason"), "InvalidSpec");
    assert_non_null(
        strstr(st_str(&w, "bad", "message"), "spec.params.mode: must be one of: hillshade, slope"));
    assert_true(has_event(p, "Warning", "InvalidSpec", "spec.params.mode"));
    p = decide(&w, "bad"); /* no retry loop: nothing to write */
    assert_null(p->status);
    assert_null(p->create);
    assert_int_equal(p->requeue_after_s, 0);
    world_free(&w);
}

static void upstreams(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-slope", SLOPE_SPEC);
    /* missing */
    reconcile_plan *p = step(&w, "dem-slope", NULL);
    assert_null(p->create);
    assert_string_equal(st_str(&w, "dem-slope", "phase"), "Waiting");
    assert_string_equal(cond_field(&w, "dem-slope", "UpstreamReady", "reason"), "UpstreamMissing");
    assert_non_null(
        strstr(st_str(&w, "dem-slope", "message"), "\"dem-cog\" (input dem) does not exist"));
    assert_int_equal(p->requeue_after_s, 0); /* no polling: the upstream's add event wakes it */
    /* present, not ready */
    add_am(&w, "dem-cog", COG_SPEC);
    json_t *cog_pod;
    step(&w, "dem-cog", &cog_pod);
    p = step(&w, "dem-slope", NULL);
    assert_null(p->create);
    assert_string_equal(cond_field(&w, "dem-slope", "UpstreamReady", "reason"), "UpstreamNotReady");
    assert_string_equal(cond_field(&w, "dem-slope", "Ready", "status"), "False");
    /* ready: the task reads the upstream's output and version */
    succeed(cog_pod, "hydrology/dem_cog");
    step(&w, "dem-cog", NULL);
    json_t *pod;
    p = step(&w, "dem-slope", &pod);
    assert_non_null(pod);
    assert_string_equal(cond_field(&w, "dem-slope", "UpstreamReady", "status"), "True");
    assert_string_equal(kobj_label(pod, "terrane.io/pool"), "highmem");
    json_t *task = parse(task_env(pod));
    const json_t *in = json_array_get(json_object_get(task, "inputs"), 0);
    const json_t *cog_st = json_object_get(find_am(&w, "dem-cog"), "status");
    assert_string_equal(
        json_string_value(json_object_get(in, "uri")),
        json_string_value(json_object_get(json_object_get(cog_st, "output"), "uri")));
    assert_string_equal(json_string_value(json_object_get(in, "dataVersion")),
                        json_string_value(json_object_get(cog_st, "dataVersion")));
    assert_string_equal(json_string_value(json_object_get(in, "assetKey")), "hydrology/dem_cog");
    assert_non_null(strstr(json_string_value(json_object_get(in, "stacItem")), "item.json"));
    json_decref(task);
    succeed(pod, "hydrology/dem_slope");
    step(&w, "dem-slope", NULL);
    const json_t *lin = json_array_get(
        json_object_get(json_object_get(find_am(&w, "dem-slope"), "status"), "lineage"), 0);
    assert_string_equal(json_string_value(json_object_get(lin, "from")), "dem-cog");
    assert_string_equal(json_string_value(json_object_get(lin, "dataVersion")),
                        json_string_value(json_object_get(cog_st, "dataVersion")));
    world_free(&w);
}

static void dependency_cycle(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "a",
           "{\"assetKey\":\"t/a\",\"operation\":\"terrain\",\"params\":{\"mode\":\"slope\"},"
           "\"inputs\":[{\"name\":\"x\",\"from\":\"b\"}],\"output\":{\"uri\":\"s3://assets\"}}");
    add_am(&w, "b",
           "{\"assetKey\":\"t/b\",\"operation\":\"terrain\",\"params\":{\"mode\":\"slope\"},"
           "\"inputs\":[{\"name\":\"x\",\"from\":\"a\"}],\"output\":{\"uri\":\"s3://assets\"}}");
    reconcile_plan *p = step(&w, "a", NULL);
    assert_null(p->create);
    assert_string_equal(st_str(&w, "a", "phase"), "Failed");
    assert_string_equal(cond_field(&w, "a", "Ready", "reason"), "DependencyCycle");
    assert_non_null(strstr(st_str(&w, "a", "message"), "a -> b -> a"));
    assert_true(has_event(p, "Warning", "DependencyCycle", NULL));
    p = decide(&w, "a");
    assert_null(p->status);
    world_free(&w);
}

/* A plain uri: input is read through its own observed source: no pod
 * before the first observation, nor with the source of an earlier asset
 * of that name; the observed version in the Task; new bytes (a new ETag)
 * give a new data version, so no cache hit for the old output. */
static void uri_input_observed(void **state)
{
    (void)state;
    world w = {0};
    json_t *am = add_am(&w, "dem-cog", COG_SPEC);
    json_t *observed = w.srcs[0];
    /* not observed yet: waits, names the input and its source */
    w.srcs[0] = input_source(am, 0, NULL);
    reconcile_plan *p = step(&w, "dem-cog", NULL);
    assert_null(p->create);
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Waiting");
    assert_non_null(strstr(st_str(&w, "dem-cog", "message"),
                           "observing input dem (s3://raw/elev.tif, source dem-cog-in-dem)"));
    /* observed missing: Failed (BadInput) with the observation's words, no pod */
    json_object_set_new(w.srcs[0], "status",
                        json_pack("{s:[{s:s, s:s, s:s, s:s, s:s}]}", "conditions", "type",
                                  "Available", "status", "False", "reason", "SourceNotFound",
                                  "message", "inputs[0].uri: s3://raw/elev.tif does not exist",
                                  "lastTransitionTime", "2023-11-14T22:13:20Z"));
    p = step(&w, "dem-cog", NULL);
    assert_null(p->create);
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Failed");
    assert_string_equal(cond_field(&w, "dem-cog", "Ready", "reason"), "BadInput");
    assert_non_null(strstr(st_str(&w, "dem-cog", "message"), "s3://raw/elev.tif does not exist"));
    /* a source owned by an earlier asset of this name says nothing */
    json_decref(w.srcs[0]);
    w.srcs[0] = json_deep_copy(observed);
    json_object_set_new(
        json_array_get(json_object_get(json_object_get(w.srcs[0], "metadata"), "ownerReferences"),
                       0),
        "uid", json_string("uid-of-the-deleted-one"));
    p = step(&w, "dem-cog", NULL);
    assert_null(p->create);
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Waiting");
    /* observed: the pod reads exactly that version */
    json_decref(w.srcs[0]);
    w.srcs[0] = observed;
    json_t *pod;
    step(&w, "dem-cog", &pod);
    assert_non_null(pod);
    json_t *task = parse(task_env(pod));
    json_t *in = json_array_get(json_object_get(task, "inputs"), 0);
    assert_string_equal(json_string_value(json_object_get(in, "uri")), "s3://raw/elev.tif");
    assert_string_equal(json_string_value(json_object_get(json_object_get(in, "observed"), "etag")),
                        "etag-1");
    assert_string_equal(json_string_value(json_object_get(in, "assetKey")),
                        "hydrology/dem_cog/inputs/dem");
    json_decref(task);
    succeed(pod, "hydrology/dem_cog");
    step(&w, "dem-cog", NULL);
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Succeeded");
    char *old_dv = cmem_strdup(st_str(&w, "dem-cog", "dataVersion"));
    const json_t *lin = json_array_get(
        json_object_get(json_object_get(find_am(&w, "dem-cog"), "status"), "lineage"), 0);
    assert_string_equal(
        json_string_value(json_object_get(lin, "dataVersion")),
        json_string_value(json_object_get(json_object_get(observed, "status"), "dataVersion")));
    /* the object is overwritten and observed again: Stale, a new pod */
    w.srcs[0] = input_source(am, 0, "etag-2");
    json_decref(observed);
    p = step(&w, "dem-cog", &pod);
    assert_non_null(pod);
    assert_string_equal(cond_field(&w, "dem-cog", "Stale", "status"), "True");
    assert_string_not_equal(ann(pod, "terrane.io/data-version"), old_dv);
    cmem_free(old_dv);
    world_free(&w);
}

/* from: naming both an AssetMaterialization and an AssetSource: neither
 * is guessed. */
static void ambiguous_upstream(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    add_am(&w, "dem-slope", SLOPE_SPEC);
    materialize_cog(&w);
    w.srcs[w.n_srcs++] = parse("{\"apiVersion\":\"terrane.io/v1alpha1\",\"kind\":\"AssetSource\","
                               "\"metadata\":{\"name\":\"dem-cog\",\"namespace\":\"hydro\"},"
                               "\"spec\":{\"uri\":\"s3://raw/elev.tif\",\"assetKey\":\"lux/x\"}}");
    reconcile_plan *p = step(&w, "dem-slope", NULL);
    assert_null(p->create);
    assert_string_equal(st_str(&w, "dem-slope", "phase"), "Waiting");
    assert_string_equal(cond_field(&w, "dem-slope", "UpstreamReady", "reason"),
                        "AmbiguousUpstream");
    assert_non_null(strstr(st_str(&w, "dem-slope", "message"), "names both"));
    world_free(&w);
}

static void upstream_change(void **state)
{
    (void)state;
    for (int manual = 0; manual < 2; manual++) {
        world w = {0};
        add_am(&w, "dem-cog", COG_SPEC);
        json_t *slope = add_am(&w, "dem-slope", SLOPE_SPEC);
        if (manual)
            json_object_set_new(json_object_get(slope, "spec"), "refreshPolicy",
                                json_string("Manual"));
        materialize_cog(&w);
        json_t *pod;
        step(&w, "dem-slope", &pod);
        succeed(pod, "hydrology/dem_slope");
        step(&w, "dem-slope", NULL);
        char *old_dv = cmem_strdup(st_str(&w, "dem-slope", "dataVersion"));
        /* the upstream's spec changes and it re-materializes */
        json_t *cog = find_am(&w, "dem-cog");
        json_object_set_new(json_object_get(json_object_get(cog, "spec"), "params"), "compression",
                            json_string("ZSTD"));
        json_object_set_new(json_object_get(cog, "metadata"), "generation", json_integer(2));
        json_t *cog_pod;
        reconcile_plan *p = step(&w, "dem-cog", &cog_pod);
        assert_non_null(cog_pod);
        assert_string_equal(cond_field(&w, "dem-cog", "Stale", "reason"), "SpecChanged");
        /* while the upstream runs, the downstream waits */
        p = step(&w, "dem-slope", NULL);
        assert_string_equal(cond_field(&w, "dem-slope", "UpstreamReady", "status"), "False");
        succeed(cog_pod, "hydrology/dem_cog");
        step(&w, "dem-cog", NULL);
        p = step(&w, "dem-slope", &pod);
        assert_true(has_event(p, "Normal", "UpstreamChanged", NULL));
        assert_string_equal(cond_field(&w, "dem-slope", "Stale", "status"), "True");
        assert_string_equal(cond_field(&w, "dem-slope", "Stale", "reason"), "UpstreamChanged");
        if (manual) {
            assert_null(pod);
            assert_string_equal(st_str(&w, "dem-slope", "phase"), "Succeeded");
            assert_string_equal(cond_field(&w, "dem-slope", "Ready", "status"), "True");
            assert_non_null(strstr(st_str(&w, "dem-slope", "message"), "stale"));
            assert_string_equal(st_str(&w, "dem-slope", "dataVersion"), old_dv);
            assert_null(decide(&w, "dem-slope")->status);
        } else {
            assert_non_null(pod);
            assert_string_not_equal(ann(pod, "terrane.io/data-version"), old_dv);
            assert_string_equal(st_str(&w, "dem-slope", "phase"), "Pending");
            succeed(pod, "hydrology/dem_slope");
            step(&w, "dem-slope", NULL);
            assert_string_equal(cond_field(&w, "dem-slope", "Stale", "status"), "False");
            assert_string_not_equal(st_str(&w, "dem-slope", "dataVersion"), old_dv);
        }
        cmem_free(old_dv);
        world_free(&w);
    }
}

/* A spec change that keeps the data version (output.uri) still runs again,
 * and its pod gets a fresh attempt number (names never collide). */
static void generation_change_same_data_version(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    json_t *first = materialize_cog(&w);
    json_t *cog = find_am(&w, "dem-cog");
    json_object_set_new(json_object_get(json_object_get(cog, "spec"), "output"), "uri",
                        json_string("s3://assets/v2"));
    json_object_set_new(json_object_get(cog, "metadata"), "generation", json_integer(2));
    json_t *pod;
    reconcile_plan *p = step(&w, "dem-cog", &pod);
    assert_non_null(pod);
    assert_string_equal(ann(pod, "terrane.io/data-version"), ann(first, "terrane.io/data-version"));
    assert_string_equal(kobj_label(pod, "terrane.io/attempt"), "2");
    assert_string_equal(ann(pod, "terrane.io/generation"), "2");
    assert_string_equal(ann(pod, "terrane.io/attempts"), "1");
    assert_int_equal(st_int(&w, "dem-cog", "attempts"), 1);
    assert_int_equal(p->n_deletes, 0); /* the old pod is finished: it waits for the GC delay */
    world_free(&w);
}

static void oom_escalates(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    json_t *pod, *pod2;
    step(&w, "dem-cog", &pod);
    pod_done(pod, "Failed", 137, "OOMKilled", NULL);
    reconcile_plan *p = step(&w, "dem-cog", &pod2);
    assert_non_null(pod2);
    assert_true(has_event(p, "Warning", "OOMKilled", "retrying on pool highmem"));
    expect_attempt(p, true, "OOMKilled", true, "cpu");
    assert_string_equal(kobj_label(pod2, "terrane.io/pool"), "highmem");
    assert_string_equal(kobj_label(pod2, "terrane.io/attempt"), "2");
    assert_string_equal(ann(pod2, "terrane.io/retries"), "1");
    assert_int_equal(st_int(&w, "dem-cog", "retries"), 1);
    assert_int_equal(st_int(&w, "dem-cog", "attempts"), 2);
    assert_string_equal(st_str(&w, "dem-cog", "pool"), "highmem");
    /* highmem has no bigger pool: the next OOM retries there */
    pod_done(pod2, "Failed", 137, "OOMKilled", NULL);
    json_t *pod3;
    step(&w, "dem-cog", &pod3);
    assert_string_equal(kobj_label(pod3, "terrane.io/pool"), "highmem");
    world_free(&w);

    /* with no retries left it fails for good */
    world w2 = {0};
    add_am(
        &w2, "dem-cog",
        "{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":"
        "\"s3://raw/elev.tif\"}],\"output\":{\"uri\":\"s3://assets\"},\"retries\":{\"limit\":0}}");
    step(&w2, "dem-cog", &pod);
    pod_done(pod, "Failed", 137, "OOMKilled", NULL);
    p = step(&w2, "dem-cog", &pod2);
    assert_null(pod2);
    assert_string_equal(cond_field(&w2, "dem-cog", "Ready", "reason"), "RetriesExhausted");
    assert_string_equal(cond_field(&w2, "dem-cog", "Failed", "status"), "True");
    assert_true(has_event(p, "Warning", "RetriesExhausted", "OOMKilled"));
    expect_attempt(p, true, "OOMKilled", false, "cpu");
    world_free(&w2);
}

static void disruption_is_free(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    json_t *pod, *pod2;
    step(&w, "dem-cog", &pod);
    pod_done(pod, "Failed", 143, "Error", NULL);
    json_t *st = json_object_get(pod, "status");
    json_object_set_new(st, "reason", json_string("Preempted"));
    json_object_set_new(st, "conditions",
                        json_pack("[{s:s, s:s, s:s}]", "type", "DisruptionTarget", "status", "True",
                                  "reason", "PreemptionByScheduler"));
    reconcile_plan *p = step(&w, "dem-cog", &pod2);
    assert_non_null(pod2);
    assert_true(has_event(p, "Warning", "Disrupted", "not counted"));
    expect_attempt(p, true, "Preempted", true, "cpu");
    assert_int_equal(st_int(&w, "dem-cog", "retries"), 0);
    assert_int_equal(st_int(&w, "dem-cog", "attempts"), 2);
    assert_string_equal(kobj_label(pod2, "terrane.io/pool"), "cpu");
    world_free(&w);
}

static void bad_input_is_final(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    json_t *pod, *pod2;
    step(&w, "dem-cog", &pod);
    char *r = failure_result(pod, "hydrology/dem_cog", "BadInput", "InputUnreadable",
                             "inputs[0].uri: s3://raw/elev.tif does not exist");
    pod_done(pod, "Failed", 65, "Error", r);
    cmem_free(r);
    reconcile_plan *p = step(&w, "dem-cog", &pod2);
    assert_null(pod2);
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Failed");
    assert_string_equal(cond_field(&w, "dem-cog", "Ready", "reason"), "BadInput");
    assert_non_null(strstr(st_str(&w, "dem-cog", "message"), "does not exist"));
    /* the worker's message starts with its field: not repeated */
    assert_non_null(strstr(st_str(&w, "dem-cog", "message"),
                           "InputUnreadable: inputs[0].uri: s3://raw/elev.tif does not exist"));
    assert_null(strstr(st_str(&w, "dem-cog", "message"), "inputs[0].uri: inputs[0].uri"));
    assert_true(has_event(p, "Warning", "BadInput", NULL));
    expect_attempt(p, true, "Failed", false, "cpu");
    /* stays failed, keeps the pod for post-mortems, no requeue */
    p = decide(&w, "dem-cog");
    expect_attempt(p, false, NULL, false, NULL);
    assert_null(p->status);
    assert_null(p->create);
    assert_int_equal(p->n_deletes, 0);
    /* exit code 65 alone (no result) is bad input as well */
    world w2 = {0};
    add_am(&w2, "dem-cog", COG_SPEC);
    step(&w2, "dem-cog", &pod);
    pod_done(pod, "Failed", 65, "Error", "fatal: cannot decode");
    step(&w2, "dem-cog", &pod2);
    assert_null(pod2);
    assert_string_equal(cond_field(&w2, "dem-cog", "Ready", "reason"), "BadInput");
    world_free(&w);
    world_free(&w2);
}

/* terrane.io/rerun: a Failed asset gets a new attempt with a fresh retry
 * budget, once per annotation value. */
static void rerun_annotation(void **state)
{
    (void)state;
    world w = {0};
    json_t *am = add_am(&w, "dem-cog", COG_SPEC);
    json_t *pod, *pod2;
    step(&w, "dem-cog", &pod);
    char *r = failure_result(pod, "hydrology/dem_cog", "BadInput", "InputUnreadable",
                             "inputs[0].uri: s3://raw/elev.tif does not exist");
    pod_done(pod, "Failed", 65, "Error", r);
    step(&w, "dem-cog", &pod2);
    assert_null(pod2);
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Failed");
    json_object_set_new(json_object_get(am, "metadata"), "annotations",
                        json_pack("{s:s}", "terrane.io/rerun", "1700000000"));
    reconcile_plan *p = step(&w, "dem-cog", &pod2);
    assert_non_null(pod2);
    assert_true(has_event(p, "Normal", "Rerun", "fresh retry budget"));
    assert_string_equal(st_str(&w, "dem-cog", "rerunToken"), "1700000000");
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Pending");
    assert_int_equal(st_int(&w, "dem-cog", "retries"), 0);
    assert_int_equal(st_int(&w, "dem-cog", "attempts"), 2);
    assert_string_not_equal(kobj_name(pod2), kobj_name(pod));
    /* fails again: Failed, and the same value does not re-run it */
    pod_done(pod2, "Failed", 65, "Error", r);
    cmem_free(r);
    json_t *pod3;
    step(&w, "dem-cog", &pod3);
    assert_null(pod3);
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Failed");
    p = decide(&w, "dem-cog");
    assert_null(p->create);
    world_free(&w);
}

#define MODEL_SPEC                                                                                 \
    "{\"assetKey\":\"lux/flood_model\",\"operation\":\"container\",\"container\":{\"image\":"      \
    "\"ml:1\",\"args\":[\"train\"]},\"inputs\":[{\"name\":\"dem\",\"from\":\"dem-cog\"}],"         \
    "\"output\":{\"uri\":\"s3://assets\"},\"retries\":{\"limit\":2,\"backoffSeconds\":5}}"

/* Fails a container asset's pod at init step `failed` (0 fetch, 1 user):
 * the steps before it exited 0, publish-outputs never started. */
static void step_failed(json_t *pod, int failed, int code, const char *reason, const char *msg)
{
    static const char *const names[] = {"fetch", "user"};
    json_t *list = json_array();
    for (int i = 0; i <= failed; i++) {
        json_t *t =
            json_pack("{s:i, s:s, s:s}", "exitCode", i == failed ? code : 0, "reason",
                      i == failed ? reason : "Completed", "finishedAt", "2023-11-14T22:13:30Z");
        if (i == failed && msg) json_object_set_new(t, "message", json_string(msg));
        json_array_append_new(
            list, json_pack("{s:s, s:{s:o}}", "name", names[i], "state", "terminated", t));
    }
    json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string("cpu-1"));
    json_object_set_new(pod, "status",
                        json_pack("{s:s, s:o, s:[{s:s, s:{s:{s:s}}}]}", "phase", "Failed",
                                  "initContainerStatuses", list, "containerStatuses", "name",
                                  "worker", "state", "waiting", "reason", "PodInitializing"));
}

/* A fresh world with dem-cog materialized and the model's first pod. */
static json_t *model_attempt(world *w)
{
    memset(w, 0, sizeof *w);
    add_am(w, "dem-cog", COG_SPEC);
    materialize_cog(w);
    add_am(w, "model", MODEL_SPEC);
    json_t *pod;
    step(w, "model", &pod);
    assert_non_null(pod);
    return pod;
}

static void container_steps(void **state)
{
    (void)state;
    world w;
    json_t *pod = model_attempt(&w), *pod2, *pod3;
    reconcile_plan *p = &w.plan;
    assert_true(has_event(p, "Warning", "ImageNotPinned", "ml:1"));
    const json_t *init = json_object_get(json_object_get(pod, "spec"), "initContainers");
    assert_int_equal(json_array_size(init), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(init, 1), "image")),
                        "ml:1");
    json_t *task = json_loads(task_env(pod), 0, NULL);
    const json_t *in0 = json_array_get(json_object_get(task, "inputs"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(task, "params"), "image")), "ml:1");
    const json_t *cs = json_object_get(
        json_object_get(json_object_get(find_am(&w, "dem-cog"), "status"), "output"), "checksum");
    assert_string_equal(json_string_value(json_object_get(in0, "checksum")), json_string_value(cs));
    json_decref(task);

    /* the user's container OOMKilled: the next attempt on highmem */
    step_failed(pod, 1, 137, "OOMKilled", NULL);
    p = step(&w, "model", &pod2);
    assert_non_null(pod2);
    assert_true(has_event(p, "Warning", "OOMKilled", "step user of pod"));
    assert_string_equal(kobj_label(pod2, "terrane.io/pool"), "highmem");

    /* exit 1 of the user's code: backoff, its log's end in the message */
    step_failed(pod2, 1, 1, "Error", "loading\nConnectionError: licence server\n");
    p = step(&w, "model", &pod3);
    assert_null(pod3);
    assert_string_equal(cond_field(&w, "model", "Ready", "reason"), "RetryBackoff");
    assert_non_null(strstr(st_str(&w, "model", "message"), "step user of pod model-"));
    assert_non_null(strstr(st_str(&w, "model", "message"),
                           "exited with code 1: loading | ConnectionError: licence server"));

    /* exit 65 of the user's code: final */
    world_free(&w);
    pod = model_attempt(&w);
    step_failed(pod, 1, 65, "Error", "labels have one class only\n");
    step(&w, "model", &pod2);
    assert_null(pod2);
    assert_string_equal(cond_field(&w, "model", "Ready", "reason"), "BadInput");
    assert_non_null(strstr(st_str(&w, "model", "message"),
                           "exited with code 65 (bad input): labels have one class only"));

    /* the fetch step's failed Result: a checksum mismatch is final */
    world_free(&w);
    pod = model_attempt(&w);
    char *r = failure_result(pod, "lux/flood_model", "BadInput", "ChecksumMismatch",
                             "the bytes differ from the recorded checksum");
    step_failed(pod, 0, 65, "Error", r);
    cmem_free(r);
    step(&w, "model", &pod2);
    assert_null(pod2);
    assert_string_equal(cond_field(&w, "model", "Ready", "reason"), "BadInput");
    assert_non_null(strstr(st_str(&w, "model", "message"), "step fetch of pod"));
    assert_non_null(strstr(st_str(&w, "model", "message"), "ChecksumMismatch"));

    /* success: the user's imageID and the Result's container fields */
    world_free(&w);
    pod = model_attempt(&w);
    succeed(pod, "lux/flood_model");
    json_t *st = json_object_get(pod, "status");
    json_object_set_new(st, "initContainerStatuses",
                        json_pack("[{s:s}, {s:s, s:s}]", "name", "fetch", "name", "user", "imageID",
                                  "ml@sha256:abc"));
    json_t *res = json_loads(
        json_string_value(json_object_get(
            json_object_get(
                json_object_get(json_array_get(json_object_get(st, "containerStatuses"), 0),
                                "state"),
                "terminated"),
            "message")),
        0, NULL);
    json_object_set_new(json_object_get(res, "output"), "files", json_integer(3));
    char *text = json_dumps(res, JSON_COMPACT);
    json_object_set_new(
        json_object_get(
            json_object_get(json_array_get(json_object_get(st, "containerStatuses"), 0), "state"),
            "terminated"),
        "message", json_string(text));
    cmem_free(text);
    json_decref(res);
    step(&w, "model", NULL);
    assert_string_equal(st_str(&w, "model", "phase"), "Succeeded");
    const json_t *out = json_object_get(json_object_get(find_am(&w, "model"), "status"), "output");
    assert_string_equal(json_string_value(json_object_get(out, "imageID")), "ml@sha256:abc");
    assert_int_equal(json_integer_value(json_object_get(out, "files")), 3);
    world_free(&w);
}

static void transient_backoff_then_exhausted(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog",
           "{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":"
           "\"s3://raw/elev.tif\"}],\"output\":{\"uri\":\"s3://assets\"},"
           "\"retries\":{\"limit\":2,\"backoffSeconds\":30}}");
    json_t *pod, *next;
    step(&w, "dem-cog", &pod);
    char *r = failure_result(pod, "a/b", "Transient", "S3ServerError", "s3://assets: 503");
    pod_done(pod, "Failed", 75, "Error", r);
    cmem_free(r);
    /* finished at T0+10; backoff 30 s: retry at T0+40 */
    w.now = T0 + 15;
    reconcile_plan *p = step(&w, "dem-cog", &next);
    assert_null(next);
    assert_string_equal(p->outcome, "backoff");
    assert_int_equal(p->requeue_after_s, 25);
    assert_string_equal(cond_field(&w, "dem-cog", "Ready", "reason"), "RetryBackoff");
    assert_string_equal(cond_field(&w, "dem-cog", "Failed", "status"), "False");
    assert_true(has_event(p, "Warning", "AttemptFailed", "S3ServerError"));
    expect_attempt(p, true, "Failed", false, "cpu");
    w.now = T0 + 20; /* still waiting: nothing new to write or tell */
    p = decide(&w, "dem-cog");
    assert_null(p->status);
    assert_int_equal(p->n_events, 0);
    assert_int_equal(p->requeue_after_s, 20);
    expect_attempt(p, false, NULL, false, NULL);
    w.now = T0 + 41;
    p = step(&w, "dem-cog", &next);
    assert_non_null(next);
    /* the end was counted when the backoff began; now only the retry */
    expect_attempt(p, false, "Failed", true, "cpu");
    assert_int_equal(st_int(&w, "dem-cog", "retries"), 1);
    assert_string_equal(ann(next, "terrane.io/retries"), "1");
    /* second failure: backoff doubles to 60 s */
    pod_done(next, "Failed", 70, "Error", NULL);
    w.now = T0 + 41;
    p = step(&w, "dem-cog", &pod);
    assert_null(pod);
    assert_int_equal(p->requeue_after_s, 10 + 60 - 41);
    w.now = T0 + 100;
    step(&w, "dem-cog", &pod);
    assert_non_null(pod);
    assert_int_equal(st_int(&w, "dem-cog", "retries"), 2);
    /* third failure: limit 2 reached */
    pod_done(pod, "Failed", 75, "Error", NULL);
    p = step(&w, "dem-cog", &next);
    assert_null(next);
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Failed");
    assert_string_equal(cond_field(&w, "dem-cog", "Ready", "reason"), "RetriesExhausted");
    assert_non_null(strstr(st_str(&w, "dem-cog", "message"), "retries exhausted (2 of 2)"));
    assert_null(decide(&w, "dem-cog")->create);
    world_free(&w);
}

/* The source as its controller leaves it: observation n started and
 * finished up to f, the terrane.io/observe value it acted on. */
static void source_progress(json_t *src, long long n, long long f, const char *token)
{
    json_t *st = json_object_get(src, "status");
    json_object_set_new(st, "observation", json_integer(n));
    json_object_set_new(st, "finishedObservation", json_integer(f));
    if (token) {
        json_object_set_new(st, "observeToken", json_string(token));
        json_object_set_new(json_object_get(src, "metadata"), "annotations",
                            json_pack("{s:s}", "terrane.io/observe", token));
    }
}

/* dem-cog's first attempt fails with SourceChanged; returns the pod. */
static json_t *source_changed_attempt(world *w)
{
    add_am(w, "dem-cog",
           "{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"dem\",\"uri\":"
           "\"s3://raw/elev.tif\"}],\"output\":{\"uri\":\"s3://assets\"},"
           "\"retries\":{\"limit\":1,\"backoffSeconds\":30}}");
    source_progress(w->srcs[0], 1, 1, NULL);
    json_t *pod;
    step(w, "dem-cog", &pod);
    assert_non_null(pod);
    char *r = failure_result(pod, "a/b", "Transient", "SourceChanged",
                             "inputs[0].uri: s3://raw/elev.tif changed since it was observed");
    pod_done(pod, "Failed", 75, "Error", r);
    cmem_free(r);
    return pod;
}

/* SourceChanged: the source is observed at once, the asset waits without
 * spending a retry, and the new version starts a first attempt. */
static void source_changed_observes_now(void **state)
{
    (void)state;
    world w = {0};
    json_t *pod = source_changed_attempt(&w), *next;
    w.now = T0 + 15;
    reconcile_plan *p = step(&w, "dem-cog", &next);
    assert_null(next);
    assert_string_equal(p->outcome, "observe-source");
    assert_int_equal(p->requeue_after_s, 0); /* no backoff: the source's news wakes it */
    assert_string_equal(p->observe_source, "dem-cog-in-dem");
    assert_string_equal(p->observe_token, kobj_name(pod));
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Waiting");
    assert_string_equal(cond_field(&w, "dem-cog", "Ready", "reason"), "SourceChanged");
    assert_string_equal(cond_field(&w, "dem-cog", "UpstreamReady", "reason"), "SourceChanged");
    assert_non_null(strstr(st_str(&w, "dem-cog", "message"), "not counted against retries"));
    assert_int_equal(st_int(&w, "dem-cog", "retries"), 0);
    assert_true(has_event(p, "Normal", "SourceChanged", "observing source dem-cog-in-dem"));
    expect_attempt(p, true, "Failed", false, "cpu");
    const json_t *rec =
        json_object_get(json_object_get(find_am(&w, "dem-cog"), "status"), "sourceChanged");
    assert_string_equal(json_string_value(json_object_get(rec, "pod")), kobj_name(pod));
    assert_int_equal(json_integer_value(json_object_get(rec, "observation")), 1);
    /* the patch was lost: asked again, nothing else changes */
    p = decide(&w, "dem-cog");
    assert_null(p->status);
    assert_int_equal(p->n_events, 0);
    assert_string_equal(p->observe_token, kobj_name(pod));
    /* the source took it: observation 2 runs; wait, do not ask again */
    source_progress(w.srcs[0], 2, 1, kobj_name(pod));
    w.now = T0 + 100; /* long past the 30 s backoff: still no retry */
    p = decide(&w, "dem-cog");
    assert_null(p->create);
    assert_null(p->observe_source);
    assert_string_equal(p->outcome, "observe-source");
    /* observation 2 found the new bytes: a new data version, a first attempt */
    const char *dv1 = st_str(&w, "dem-cog", "targetDataVersion");
    char *old_dv = cmem_strdup(dv1);
    json_decref(w.srcs[0]);
    w.srcs[0] = input_source(find_am(&w, "dem-cog"), 0, "etag-2");
    source_progress(w.srcs[0], 2, 2, kobj_name(pod));
    p = step(&w, "dem-cog", &next);
    assert_non_null(next);
    assert_string_not_equal(ann(next, "terrane.io/data-version"), old_dv);
    assert_string_equal(ann(next, "terrane.io/retries"), "0");
    assert_int_equal(st_int(&w, "dem-cog", "retries"), 0);
    assert_null(
        json_object_get(json_object_get(find_am(&w, "dem-cog"), "status"), "sourceChanged"));
    cmem_free(old_dv);
    succeed(next, "a/b");
    step(&w, "dem-cog", NULL);
    assert_string_equal(st_str(&w, "dem-cog", "phase"), "Succeeded");
    world_free(&w);
}

/* Observed again and still the same version (the object was put back):
 * an ordinary transient failure, with its backoff and retry count. */
static void source_changed_same_version(void **state)
{
    (void)state;
    world w = {0};
    json_t *pod = source_changed_attempt(&w), *next;
    w.now = T0 + 15;
    step(&w, "dem-cog", &next);
    assert_null(next);
    source_progress(w.srcs[0], 2, 2, kobj_name(pod));
    reconcile_plan *p = step(&w, "dem-cog", &next);
    assert_null(next);
    assert_string_equal(p->outcome, "backoff");
    assert_null(p->observe_source);
    assert_string_equal(cond_field(&w, "dem-cog", "Ready", "reason"), "RetryBackoff");
    w.now = T0 + 41;
    step(&w, "dem-cog", &next);
    assert_non_null(next);
    assert_int_equal(st_int(&w, "dem-cog", "retries"), 1);
    /* and the retry's own SourceChanged is news again */
    char *r = failure_result(next, "a/b", "Transient", "SourceChanged",
                             "inputs[0].uri: s3://raw/elev.tif changed since it was observed");
    pod_done(next, "Failed", 75, "Error", r);
    cmem_free(r);
    p = step(&w, "dem-cog", NULL);
    assert_string_equal(p->outcome, "observe-source");
    assert_string_equal(p->observe_token, kobj_name(next));
    world_free(&w);
}

/* A pod that succeeded without a valid Result, or with another data
 * version's, is a failed attempt. */
static void untrusted_results(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    json_t *pod, *next;
    step(&w, "dem-cog", &pod);
    pod_done(pod, "Succeeded", 0, "Completed", "{\"not\":\"a result\"}");
    reconcile_plan *p = step(&w, "dem-cog", &next);
    assert_string_equal(p->outcome, "backoff");
    assert_non_null(strstr(st_str(&w, "dem-cog", "message"), "invalid result"));
    world_free(&w);

    world w2 = {0};
    add_am(&w2, "dem-cog", COG_SPEC);
    step(&w2, "dem-cog", &pod);
    char *r = success_result(pod, "hydrology/dem_cog", false);
    char *dv = strstr(r, "sha256:");
    dv[7] = dv[7] == 'a' ? 'b' : 'a';
    pod_done(pod, "Succeeded", 0, "Completed", r);
    cmem_free(r);
    p = step(&w2, "dem-cog", &next);
    assert_string_equal(p->outcome, "backoff");
    assert_non_null(strstr(st_str(&w2, "dem-cog", "message"), "expected"));
    world_free(&w2);
}

static void unknown_pool(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "x",
           "{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":"
           "\"s3://raw/elev.tif\"}],\"output\":{\"uri\":\"s3://assets\"},\"tags\":{\"terrane.io/"
           "pool\":\"gpux\"}}");
    reconcile_plan *p = step(&w, "x", NULL);
    assert_null(p->create);
    assert_string_equal(cond_field(&w, "x", "Ready", "reason"), "UnknownPool");
    assert_non_null(strstr(st_str(&w, "x", "message"), "(pools: cpu, highmem)"));
    world_free(&w);
}

static void pods_of_others_and_superseded(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    json_t *pod;
    step(&w, "dem-cog", &pod);
    pod_running(pod, "cpu-1");
    /* the spec changes while the pod runs: it is superseded */
    json_t *cog = find_am(&w, "dem-cog");
    json_object_set_new(json_object_get(json_object_get(cog, "spec"), "params"), "compression",
                        json_string("LZW"));
    json_object_set_new(json_object_get(cog, "metadata"), "generation", json_integer(2));
    json_t *next;
    reconcile_plan *p = step(&w, "dem-cog", &next);
    assert_non_null(next);
    assert_int_equal(p->n_deletes, 1);
    assert_string_equal(p->deletes[0].name, kobj_name(pod));
    assert_string_equal(p->deletes[0].why, "superseded");
    /* a pod of an earlier object of the same name is deleted */
    json_t *ref =
        json_array_get(json_object_get(json_object_get(next, "metadata"), "ownerReferences"), 0);
    json_object_set_new(ref, "uid", json_string("uid-of-an-old-object"));
    p = decide(&w, "dem-cog");
    bool orphan = false;
    for (size_t i = 0; i < p->n_deletes; i++)
        if (!strcmp(p->deletes[i].name, kobj_name(next)) && !strcmp(p->deletes[i].why, "orphaned"))
            orphan = true;
    assert_true(orphan);
    world_free(&w);
}

static void owner_gone_or_deleting(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    json_t *pod;
    step(&w, "dem-cog", &pod);
    json_t *am = find_am(&w, "dem-cog");
    json_object_set_new(json_object_get(am, "metadata"), "deletionTimestamp",
                        json_string("2023-11-14T22:14:00Z"));
    reconcile_plan *p = decide(&w, "dem-cog");
    assert_string_equal(p->outcome, "deleting");
    assert_int_equal(p->n_deletes, 1);
    assert_null(p->status);
    /* gone */
    json_decref(w.ams[0]);
    w.n_ams = 0;
    p = decide(&w, "dem-cog");
    assert_string_equal(p->outcome, "gone");
    assert_int_equal(p->n_deletes, 1);
    world_free(&w);
}

static void failed_pods_gc(void **state)
{
    (void)state;
    /* keep-failed-pods=false: a failed attempt goes after the delay, but
     * never the latest one while its retry is pending */
    g_cfg.keep_failed_pods = false;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    json_t *pod, *next;
    step(&w, "dem-cog", &pod);
    pod_done(pod, "Failed", 75, "Error", NULL);
    w.now = T0 + 3600; /* long after: the backoff is over too */
    reconcile_plan *p = step(&w, "dem-cog", &next);
    assert_non_null(next);
    assert_int_equal(p->n_deletes, 0); /* still the latest when the plan was made */
    p = decide(&w, "dem-cog");
    assert_int_equal(p->n_deletes, 1);
    assert_string_equal(p->deletes[0].name, kobj_name(pod));
    g_cfg.keep_failed_pods = true;
    /* keep-failed-pods=true: kept until success, then deleted */
    world w2 = {0};
    add_am(&w2, "dem-cog", COG_SPEC);
    step(&w2, "dem-cog", &pod);
    pod_done(pod, "Failed", 75, "Error", NULL);
    w2.now = T0 + 3600;
    step(&w2, "dem-cog", &next);
    p = decide(&w2, "dem-cog");
    assert_int_equal(p->n_deletes, 0);
    succeed(next, "hydrology/dem_cog");
    step(&w2, "dem-cog", NULL);
    p = decide(&w2, "dem-cog");
    bool failed_deleted = false;
    for (size_t i = 0; i < p->n_deletes; i++)
        if (!strcmp(p->deletes[i].name, kobj_name(pod))) failed_deleted = true;
    assert_true(failed_deleted);
    world_free(&w);
    world_free(&w2);
}

/* Every allocation failing in turn: NOMEM and an empty plan, no leaks. */
static void out_of_memory(void **state)
{
    (void)state;
    world w = {0};
    add_am(&w, "dem-cog", COG_SPEC);
    add_am(&w, "dem-slope", SLOPE_SPEC);
    materialize_cog(&w);
    reconcile_plan_clear(&w.plan);
    long live = cmem_live();
    const json_t *none[1];
    reconcile_input in = {.namespace_ = "hydro",
                          .name = "dem-slope",
                          .am = find_am(&w, "dem-slope"),
                          .ams = (const json_t *const *)w.ams,
                          .n_ams = w.n_ams,
                          .pods = none,
                          .n_pods = 0,
                          .now = T0};
    unsigned long n;
    for (n = 1;; n++) {
        reconcile_plan p;
        unsigned long before = cmem_count();
        cmem_fail_at(n);
        int rc = reconcile_decide(&g_cfg, &in, &p);
        cmem_fail_at(0);
        bool reached = cmem_count() - before >= n;
        if (rc) {
            assert_int_equal(rc, CERR_NOMEM);
            assert_null(p.status);
            assert_null(p.create);
        }
        reconcile_plan_clear(&p);
        assert_int_equal(cmem_live(), live);
        if (!reached) {
            assert_int_equal(rc, 0);
            break;
        }
    }
    assert_true(n > 50);
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_attempt_and_success),
        cmocka_unit_test(uri_input_observed),
        cmocka_unit_test(ambiguous_upstream),
        cmocka_unit_test(status_ahead_of_cache),
        cmocka_unit_test(same_observation_same_plan),
        cmocka_unit_test(invalid_spec),
        cmocka_unit_test(upstreams),
        cmocka_unit_test(dependency_cycle),
        cmocka_unit_test(upstream_change),
        cmocka_unit_test(generation_change_same_data_version),
        cmocka_unit_test(oom_escalates),
        cmocka_unit_test(disruption_is_free),
        cmocka_unit_test(bad_input_is_final),
        cmocka_unit_test(rerun_annotation),
        cmocka_unit_test(transient_backoff_then_exhausted),
        cmocka_unit_test(source_changed_observes_now),
        cmocka_unit_test(source_changed_same_version),
        cmocka_unit_test(untrusted_results),
        cmocka_unit_test(unknown_pool),
        cmocka_unit_test(pods_of_others_and_superseded),
        cmocka_unit_test(owner_gone_or_deleting),
        cmocka_unit_test(failed_pods_gc),
        cmocka_unit_test(container_steps),
        cmocka_unit_test(out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
