/*
 * test_partfan.c - the decision for partitioned assets, driven as a small
 * simulated cluster: backfill in index order bounded by maxParallel and by
 * PARTFAN_CREATES_MAX, deterministic pod names and partition labels, URI
 * templates per partition, success recorded before its pod is collected, a
 * transient failure retried as the next attempt, bad input recorded without
 * a retry while the others go on, the rerun annotation starting only the
 * failed partitions under new attempt numbers, a decision from status and
 * pods alone after a restart, superseded pods collected, and an open-ended
 * dimension without closed windows; LastN from a daily upstream (task
 * inputs by lag, one changed day re-running exactly the N readers of it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partfan.h"
#include "partfixtures.h"
#include "partition.h"
#include "pools.h"
#include "spec.h"
#include "terrane_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char POOLS[] =
    "{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"nodeSelector\":{\"terrane.io/pool\":"
    "\"cpu\"},\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"1Gi\"}}}}}";

static pools *g_pools;
static podspec_config g_pod = {.image = "terrane-worker:test"};
static reconcile_config g_cfg;

/* 2026-12-01T00:00:00Z */
#define NOW 1796083200L

static int setup(void **state)
{
    (void)state;
    cmem_init();
    assert_int_equal(pools_load_bytes(POOLS, strlen(POOLS), &g_pools), 0);
    g_cfg = (reconcile_config){.pools = g_pools, .pod = &g_pod, .worker_version = "0.1.0"};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pools_free(g_pools);
    return 0;
}

typedef struct {
    json_t *am;
    json_t *pods[64];
    size_t n_pods;
    am_spec *spec;
    partfan_plan plan;
    json_t *ups[16]; /* upstreams and sources the decision may read */
    size_t n_ups;
    size_t created; /* pods created so far */
} world;

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v) fail_msg("test JSON: %s: %s", e.text, text);
    return v;
}

static void world_init(world *w, int days, int max_parallel, int retries)
{
    char spec[1024];
    memset(w, 0, sizeof *w);
    snprintf(spec, sizeof spec,
             "{\"assetKey\":\"forecast/"
             "daily\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"src\",\"uri\":"
             "\"s3://raw/daily/{year}/"
             "{date}.tif\"}],\"partitions\":[{\"name\":\"day\",\"time\":{\"start\":"
             "\"2026-11-01\",\"end\":\"2026-11-%02d\",\"cadence\":\"daily\"}}],\"maxParallel\":%d,"
             "\"retries\":{\"limit\":%d},\"output\":{\"uri\":\"s3://assets\"}}",
             days + 1, max_parallel, retries);
    w->am = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:i,s:s,s:{}},s:o}", "apiVersion",
                      "terrane.io/v1alpha1", "kind", "AssetMaterialization", "metadata", "name",
                      "daily", "namespace", "hydro", "uid", "uid-daily", "generation", 1,
                      "resourceVersion", "1", "annotations", "spec", parse(spec));
    assert_non_null(w->am);
}

static void world_free(world *w)
{
    partfan_plan_clear(&w->plan);
    spec_free(w->spec);
    for (size_t i = 0; i < w->n_pods; i++)
        json_decref(w->pods[i]);
    for (size_t i = 0; i < w->n_ups; i++)
        json_decref(w->ups[i]);
    json_decref(w->am);
}

/* One decision, then what the executor does: create the pods, write the
 * status, delete the pods it names. */
static void step(world *w)
{
    partfan_plan_clear(&w->plan);
    spec_free(w->spec);
    w->spec = NULL;
    assert_int_equal(spec_decode(w->am, NULL, &w->spec, NULL), 0);
    reconcile_input in = {.namespace_ = "hydro",
                          .name = "daily",
                          .am = w->am,
                          .spec = w->spec,
                          .pods = (const json_t *const *)w->pods,
                          .n_pods = w->n_pods,
                          .ams = (const json_t *const *)w->ups,
                          .n_ams = w->n_ups,
                          .now = NOW};
    assert_true(partfan_applies(&in));
    assert_int_equal(partfan_decide(&g_cfg, &in, &w->plan), 0);
    for (size_t i = 0; i < w->plan.n_creates; i++) {
        const char *name = kobj_name(w->plan.creates[i]);
        bool exists = false;
        for (size_t k = 0; k < w->n_pods; k++)
            exists |= !strcmp(kobj_name(w->pods[k]), name);
        if (exists) continue; /* AlreadyExists */
        assert_true(w->n_pods < 64);
        json_t *p = json_deep_copy(w->plan.creates[i]);
        json_object_set_new(json_object_get(p, "metadata"), "uid", json_string(name));
        json_object_set_new(p, "status", json_pack("{s:s}", "phase", "Pending"));
        w->pods[w->n_pods++] = p;
        w->created++;
    }
    if (w->plan.status) json_object_set(w->am, "status", w->plan.status);
    for (size_t i = 0; i < w->plan.n_deletes; i++)
        for (size_t k = 0; k < w->n_pods; k++)
            if (!strcmp(kobj_name(w->pods[k]), w->plan.deletes[i].name)) {
                json_decref(w->pods[k]);
                w->pods[k] = w->pods[--w->n_pods];
                break;
            }
}

static const json_t *parts(const world *w)
{
    return json_object_get(json_object_get(w->am, "status"), "partitions");
}

static long long pcount(const world *w, const char *k)
{
    return json_integer_value(json_object_get(parts(w), k));
}

static const char *phase(const world *w)
{
    return json_string_value(json_object_get(json_object_get(w->am, "status"), "phase"));
}

static const char *pod_key(const json_t *p)
{
    return json_string_value(json_object_get(
        json_object_get(json_object_get(p, "metadata"), "annotations"), PART_A_KEY));
}

static long long pod_attempt(const json_t *p)
{
    const char *a = json_string_value(json_object_get(
        json_object_get(json_object_get(p, "metadata"), "annotations"), "terrane.io/attempts"));
    return a ? atoll(a) : -1;
}

/* The worker finishes every pod that runs: exit 0, or code for day key. */
static void finish_pods(world *w, const char *fail_key, int fail_code)
{
    for (size_t i = 0; i < w->n_pods; i++) {
        json_t *st = json_object_get(w->pods[i], "status");
        if (strcmp(json_string_value(json_object_get(st, "phase")), "Pending")) continue;
        bool fail = fail_key && !strcmp(pod_key(w->pods[i]), fail_key);
        json_t *term =
            json_pack("{s:i,s:s}", "exitCode", fail ? fail_code : 0, "message",
                      fail ? "{\"error\":{\"class\":\"x\",\"message\":\"no such object\"}}" : "{}");
        json_object_set_new(st, "phase", json_string(fail ? "Failed" : "Succeeded"));
        json_object_set_new(
            st, "containerStatuses",
            json_pack("[{s:s,s:{s:o}}]", "name", "worker", "state", "terminated", term));
    }
}

static size_t running_pods(const world *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n_pods; i++)
        n += !strcmp(
            json_string_value(json_object_get(json_object_get(w->pods[i], "status"), "phase")),
            "Pending");
    return n;
}

static void backfill_in_order_bounded(void **state)
{
    (void)state;
    world w;
    world_init(&w, 10, 3, 2);
    step(&w);
    assert_int_equal(w.plan.n_creates, 3);
    assert_string_equal(pod_key(w.plan.creates[0]), "2026-11-01");
    assert_string_equal(pod_key(w.plan.creates[2]), "2026-11-03");
    /* the task reads the day's object */
    const char *task = NULL;
    const json_t *env = json_object_get(
        json_array_get(json_object_get(json_object_get(w.plan.creates[1], "spec"), "containers"),
                       0),
        "env");
    for (size_t i = 0; i < json_array_size(env); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(env, i), "name")),
                    "TERRANE_TASK"))
            task = json_string_value(json_object_get(json_array_get(env, i), "value"));
    assert_non_null(task);
    assert_non_null(strstr(task, "s3://raw/daily/2026/2026-11-02.tif"));
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(w.plan.creates[1], "metadata"), "labels"), PART_LABEL)),
        "2026-11-02");
    char want[80];
    const char *dv =
        json_string_value(json_object_get(json_object_get(w.am, "status"), "dataVersion"));
    assert_int_equal(part_pod_name("daily", dv, "2026-11-02", 1, want, sizeof want), 0);
    assert_string_equal(kobj_name(w.plan.creates[1]), want);
    assert_string_equal(phase(&w), "Running");
    assert_string_equal(json_string_value(json_object_get(parts(&w), "summary")), "0/10");
    /* a repeated decision starts nothing more */
    step(&w);
    assert_int_equal(w.plan.n_creates, 0);
    assert_int_equal(running_pods(&w), 3);
    int rounds = 0;
    while (strcmp(phase(&w), "Succeeded") && rounds++ < 20) {
        finish_pods(&w, NULL, 0);
        step(&w);
        assert_true(running_pods(&w) <= 3);
    }
    assert_string_equal(phase(&w), "Succeeded");
    assert_int_equal(pcount(&w, "succeeded"), 10);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(parts(&w), "materialized"), 0), "ranges")),
        "0-9");
    step(&w); /* the recorded pods are collected */
    assert_int_equal(w.n_pods, 0);
    assert_null(w.plan.status);
    world_free(&w);
}

static void failures_retries_and_rerun(void **state)
{
    (void)state;
    world w;
    world_init(&w, 5, 5, 1);
    step(&w);
    assert_int_equal(w.plan.n_creates, 5);
    finish_pods(&w, "2026-11-03", TERRANE_EXIT_TRANSIENT);
    step(&w);
    /* the transient failure retries as attempt 2; the others are recorded */
    assert_int_equal(w.plan.n_creates, 1);
    assert_string_equal(pod_key(w.plan.creates[0]), "2026-11-03");
    assert_int_equal(pod_attempt(w.plan.creates[0]), 2);
    assert_int_equal(pcount(&w, "succeeded"), 4);
    finish_pods(&w, "2026-11-03", TERRANE_EXIT_TRANSIENT);
    step(&w);
    step(&w);
    assert_int_equal(w.plan.n_creates, 0);
    assert_string_equal(phase(&w), "Failed");
    assert_int_equal(pcount(&w, "failed"), 1);
    const json_t *f0 = json_array_get(json_object_get(parts(&w), "failures"), 0);
    assert_string_equal(json_string_value(json_object_get(f0, "key")), "2026-11-03");
    assert_int_equal(json_integer_value(json_object_get(f0, "attempts")), 2);
    assert_non_null(strstr(json_string_value(json_object_get(f0, "message")), "no such object"));
    assert_int_equal(w.n_pods, 0);

    /* a restart: only the status remains; nothing new starts */
    step(&w);
    assert_int_equal(w.plan.n_creates, 0);

    /* the rerun annotation: only the failed day, under a new attempt number */
    json_object_set_new(json_object_get(json_object_get(w.am, "metadata"), "annotations"),
                        PARTFAN_A_RERUN, json_string("1"));
    step(&w);
    assert_int_equal(w.plan.n_creates, 1);
    assert_string_equal(pod_key(w.plan.creates[0]), "2026-11-03");
    assert_int_equal(pod_attempt(w.plan.creates[0]), 3);
    step(&w);
    assert_int_equal(w.plan.n_creates, 0); /* the same annotation value acts once */
    finish_pods(&w, NULL, 0);
    step(&w);
    assert_string_equal(phase(&w), "Succeeded");
    assert_int_equal(pcount(&w, "failed"), 0);
    world_free(&w);
}

static void bad_input_is_not_retried(void **state)
{
    (void)state;
    world w;
    world_init(&w, 3, 3, 3);
    step(&w);
    finish_pods(&w, "2026-11-02", TERRANE_EXIT_BAD_INPUT);
    step(&w);
    assert_int_equal(w.plan.n_creates, 0);
    assert_int_equal(pcount(&w, "failed"), 1);
    assert_int_equal(pcount(&w, "succeeded"), 2);
    assert_string_equal(phase(&w), "Failed");
    world_free(&w);
}

static void superseded_and_open_ended(void **state)
{
    (void)state;
    world w;
    world_init(&w, 4, 2, 0);
    step(&w);
    assert_int_equal(w.n_pods, 2);
    /* a spec change makes a new asset data version: the old pods go */
    json_object_set_new(json_object_get(w.am, "spec"), "params",
                        json_pack("{s:s}", "compression", "ZSTD"));
    step(&w);
    assert_int_equal(w.plan.n_deletes, 2);
    world_free(&w);

    world_init(&w, 1, 2, 0);
    json_object_set_new(
        json_object_get(w.am, "spec"), "partitions",
        parse("[{\"name\":\"day\",\"time\":{\"start\":\"2026-12-05\",\"cadence\":\"daily\"}}]"));
    step(&w);
    assert_int_equal(w.plan.n_creates, 0);
    assert_string_equal(phase(&w), "Pending");
    assert_true(w.plan.requeue_after_s > 0);
    world_free(&w);
}

static void creates_per_decision_are_capped(void **state)
{
    (void)state;
    world w;
    world_init(&w, 30, 10000, 0);
    json_object_set_new(
        json_object_get(w.am, "spec"), "partitions",
        parse("[{\"name\":\"day\",\"time\":{\"start\":\"2026-11-01\",\"end\":\"2026-11-21\","
              "\"cadence\":\"daily\"}},{\"name\":\"b\",\"static\":{\"keys\":[\"a\",\"b\",\"c\","
              "\"d\",\"e\"]}}]"));
    spec_free(w.spec);
    w.spec = NULL;
    assert_int_equal(spec_decode(w.am, NULL, &w.spec, NULL), 0);
    reconcile_input in = {
        .namespace_ = "hydro", .name = "daily", .am = w.am, .spec = w.spec, .now = NOW};
    assert_int_equal(partfan_decide(&g_cfg, &in, &w.plan), 0);
    assert_int_equal(w.plan.n_creates, PARTFAN_CREATES_MAX);
    assert_string_equal(pod_key(w.plan.creates[0]), "2026-11-01/a");
    assert_string_equal(pod_key(w.plan.creates[6]), "2026-11-02/b");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(w.plan.status, "partitions"), "total")),
        100);
    world_free(&w);
}

#define UDV "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static json_t *source(int day, char hexdigit, const char *changed)
{
    char name[32];
    snprintf(name, sizeof name, "raw-2026-11-%02d", day);
    json_t *j = fx_source("hydro", name, hexdigit, changed);
    assert_non_null(j);
    return j;
}

static size_t task_inputs(const json_t *pod, const char *const *names, size_t n)
{
    const json_t *env = json_object_get(
        json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0), "env");
    json_t *task = NULL;
    for (size_t i = 0; i < json_array_size(env); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(env, i), "name")),
                    "TERRANE_TASK"))
            task = json_loads(json_string_value(json_object_get(json_array_get(env, i), "value")),
                              0, NULL);
    const json_t *ins = json_object_get(task, "inputs");
    size_t got = json_array_size(ins);
    for (size_t i = 0; i < n && i < got; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(ins, i), "name")),
                            names[i]);
    json_decref(task);
    return got;
}

/* A weekly-ish reader (LastN 3 over the upstream's days): 10 pods, then one
 * changed day re-runs exactly the 3 partitions reading it, once the
 * upstream has materialized that day again. */
static void last_n_reruns_its_readers(void **state)
{
    (void)state;
    world w;
    world_init(&w, 10, 4, 1);
    json_t *sp = json_object_get(w.am, "spec");
    json_object_set_new(sp, "inputs",
                        json_pack("[{s:s,s:s,s:{s:s,s:i}}]", "name", "src", "from", "raw-daily",
                                  "partitionMapping", "type", "LastN", "count", 3));
    w.ups[w.n_ups++] =
        fx_upstream("hydro", "raw-daily", "raw/daily", json_object_get(sp, "partitions"), 10, UDV,
                    "2026-11-20T00:00:00Z", "from", "raw-{date}");
    assert_non_null(w.ups[0]);
    for (int d = 1; d <= 10; d++)
        w.ups[w.n_ups++] = source(d, "0123456789"[d - 1], "2026-11-15T00:00:00Z");
    int rounds = 0;
    step(&w);
    const char *first[] = {"src_0"};
    assert_int_equal(task_inputs(w.plan.creates[0], first, 1), 1); /* the first day reads one */
    const char *three[] = {"src_2", "src_1", "src_0"};
    assert_int_equal(task_inputs(w.plan.creates[3], three, 3), 3);
    while (strcmp(phase(&w), "Succeeded") && rounds++ < 20) {
        finish_pods(&w, NULL, 0);
        step(&w);
    }
    assert_string_equal(phase(&w), "Succeeded");
    assert_int_equal(w.created, 10);
    step(&w);
    /* day 5's source changes: its readers 5, 6, 7 wait for the upstream */
    json_decref(w.ups[5]);
    w.ups[5] = source(5, 'f', "2026-11-21T00:00:00Z");
    step(&w);
    assert_int_equal(w.plan.n_creates, 0);
    assert_int_equal(pcount(&w, "succeeded"), 7);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(w.am, "status"), "message")),
               "3 waiting for upstreams"));
    json_object_set_new(json_object_get(json_object_get(w.ups[0], "status"), "partitions"),
                        "inputsAsOf", json_string("2026-11-22T00:00:00Z"));
    step(&w);
    assert_int_equal(w.plan.n_creates, 3);
    assert_string_equal(pod_key(w.plan.creates[0]), "2026-11-05");
    assert_string_equal(pod_key(w.plan.creates[2]), "2026-11-07");
    rounds = 0;
    while (strcmp(phase(&w), "Succeeded") && rounds++ < 20) {
        finish_pods(&w, NULL, 0);
        step(&w);
    }
    step(&w);
    step(&w);
    assert_string_equal(phase(&w), "Succeeded");
    assert_int_equal(w.created, 13);
    world_free(&w);
}

/* The attempt logic the partitions and the tile flow's stages share. */
static json_t *failed_pod(const char *attempts, int code, const char *message, const char *reason,
                          const char *pod_reason)
{
    json_t *pod = parse("{\"metadata\":{\"name\":\"p-1\",\"annotations\":{}},"
                        "\"status\":{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":"
                        "\"worker\",\"state\":{\"terminated\":{}}}]}}");
    json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
    if (attempts) json_object_set_new(ann, PODSPEC_A_ATTEMPTS, json_string(attempts));
    json_t *t = json_object_get(
        json_object_get(
            json_array_get(json_object_get(json_object_get(pod, "status"), "containerStatuses"), 0),
            "state"),
        "terminated");
    json_object_set_new(t, "exitCode", json_integer(code));
    if (message) json_object_set_new(t, "message", json_string(message));
    if (reason) json_object_set_new(t, "reason", json_string(reason));
    if (pod_reason)
        json_object_set_new(json_object_get(pod, "status"), "reason", json_string(pod_reason));
    return pod;
}

static void attempt_of_a_failed_pod(void **state)
{
    (void)state;
    partfan_attempt_info ai;
    char cause[64];
    /* no annotation: attempt 1; a transient failure with retries left */
    json_t *pod = failed_pod(NULL, TERRANE_EXIT_TRANSIENT,
                             "{\"error\":{\"message\":\"S3 PUT: 503\"}}", "Error", NULL);
    partfan_attempt(pod, 0, 1, &ai, cause, sizeof cause);
    assert_int_equal(ai.attempt, 1);
    assert_int_equal(ai.exit_code, TERRANE_EXIT_TRANSIENT);
    assert_false(ai.last);
    assert_string_equal(cause, "S3 PUT: 503");
    json_decref(pod);
    /* the retries spent: attempt 2 of limit 1 is the last; the reason without a result */
    pod = failed_pod("2", TERRANE_EXIT_TRANSIENT, "not json", "OOMKilled", NULL);
    partfan_attempt(pod, 0, 1, &ai, cause, sizeof cause);
    assert_int_equal(ai.attempt, 2);
    assert_true(ai.last);
    assert_string_equal(cause, "OOMKilled");
    /* ... unless a rerun's base moves the count */
    partfan_attempt(pod, 2, 1, &ai, cause, sizeof cause);
    assert_false(ai.last);
    json_decref(pod);
    /* bad input is never retried, whatever is left */
    pod = failed_pod("1", TERRANE_EXIT_BAD_INPUT, NULL, NULL, NULL);
    partfan_attempt(pod, 0, 5, &ai, cause, sizeof cause);
    assert_true(ai.last);
    assert_string_equal(cause, "");
    json_decref(pod);
    /* a disrupted pod retries past the limit */
    pod = failed_pod("9", 137, NULL, "Error", "Evicted");
    partfan_attempt(pod, 0, 1, &ai, cause, sizeof cause);
    assert_false(ai.last);
    assert_int_equal(ai.attempt, 9);
    json_decref(pod);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backfill_in_order_bounded),
        cmocka_unit_test(failures_retries_and_rerun),
        cmocka_unit_test(bad_input_is_not_retried),
        cmocka_unit_test(superseded_and_open_ended),
        cmocka_unit_test(creates_per_decision_are_capped),
        cmocka_unit_test(last_n_reruns_its_readers),
        cmocka_unit_test(attempt_of_a_failed_pod),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
