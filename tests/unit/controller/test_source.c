/*
 * test_source.c - the AssetSource decision, row by row of source.h's
 * table, on hand-made sources and pods: each test plays the cluster
 * (writing the planned status, creating the planned pod, finishing it
 * with a worker Result) and checks the next decision. Also: a controller
 * restart between the status write and the pod creation, idempotence,
 * the schedule (interval, cron in a time zone, missed times), freshness,
 * and allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cfgfixtures.h"
#include "cron.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jschema.h"
#include "pools.h"
#include "rerun.h"
#include "srcchange.h"
#include "source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char POOLS[] = "{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{},\"edge\":{"
                            "\"nodeSelector\":{\"terrane.io/pool\":\"edge\"}}}}";

#define T0 1764720000L /* 2025-12-03T00:00:00Z */
#define DV_A "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DV_B "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

FX_CONFIG_GROUP(POOLS, false)

typedef struct {
    json_t *src;
    json_t *pods[16];
    size_t n_pods;
    time_t now;
    const cron_zone *zone;
    source_plan plan;
} world;

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v) fail_msg("test JSON: %s: %s", e.text, text);
    return v;
}

static void new_source(world *w, const char *extra_spec)
{
    char spec[1024];
    snprintf(spec, sizeof spec,
             "{\"assetKey\":\"lux/raw_dem\",\"uri\":\"s3://raw/elev.tif\","
             "\"listing\":{\"uri\":\"s3://assets/sources\"}%s%s}",
             extra_spec ? "," : "", extra_spec ? extra_spec : "");
    w->src = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:i, s:s}, s:o}", "apiVersion",
                       "terrane.io/v1alpha1", "kind", "AssetSource", "metadata", "name", "raw-dem",
                       "namespace", "hydro", "uid", "uid-src", "generation", 1, "resourceVersion",
                       "1", "spec", parse(spec));
    assert_non_null(w->src);
    w->now = T0;
}

static void world_free(world *w)
{
    json_decref(w->src);
    for (size_t i = 0; i < w->n_pods; i++)
        json_decref(w->pods[i]);
    source_plan_clear(&w->plan);
}

static source_plan *decide(world *w)
{
    source_plan_clear(&w->plan);
    source_input in = {.namespace_ = "hydro",
                       .name = "raw-dem",
                       .src = w->src,
                       .pods = (const json_t *const *)w->pods,
                       .n_pods = w->n_pods,
                       .zone = w->zone,
                       .now = w->now};
    assert_int_equal(source_decide(&g_cfg, &in, &w->plan), 0);
    return &w->plan;
}

/* The cluster's part: status written, then the pod created (Pending). */
static json_t *apply(world *w)
{
    if (w->plan.status) json_object_set(w->src, "status", w->plan.status);
    if (!w->plan.create) return NULL;
    json_t *pod = json_deep_copy(w->plan.create);
    json_object_set_new(json_object_get(pod, "metadata"), "uid", json_string(kobj_name(pod)));
    json_object_set_new(pod, "status", json_pack("{s:s}", "phase", "Pending"));
    w->pods[w->n_pods++] = pod;
    return pod;
}

static const char *st_str(const world *w, const char *k)
{
    return json_string_value(json_object_get(json_object_get(w->src, "status"), k));
}

static long long st_int(const world *w, const char *k)
{
    return json_integer_value(json_object_get(json_object_get(w->src, "status"), k));
}

static const char *cond_reason(const world *w, const char *type, const char **status)
{
    json_t *cs = json_object_get(json_object_get(w->src, "status"), "conditions");
    size_t i;
    json_t *c;
    json_array_foreach(cs, i, c)
    {
        if (!strcmp(json_string_value(json_object_get(c, "type")), type)) {
            if (status) *status = json_string_value(json_object_get(c, "status"));
            return json_string_value(json_object_get(c, "reason"));
        }
    }
    if (status) *status = NULL;
    return NULL;
}

/* Finishes pod at w->now with result (JSON text) and the exit code. */
static void finish(world *w, json_t *pod, const char *result, int code)
{
    char fin[KOBJ_TIME_LEN];
    kobj_time_format(w->now, fin);
    json_object_set_new(pod, "status",
                        json_pack("{s:s, s:[{s:s, s:{s:{s:i, s:s, s:s, s:s}}}]}", "phase",
                                  code ? "Failed" : "Succeeded", "containerStatuses", "name",
                                  "worker", "state", "terminated", "exitCode", code, "reason",
                                  code ? "Error" : "Completed", "finishedAt", fin, "message",
                                  result));
}

static char *ok_result(const char *dv, int count)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Result\",\"status\":\"Succeeded\","
             "\"assetKey\":\"lux/raw_dem\",\"dataVersion\":\"%s\",\"observation\":{"
             "\"dataVersion\":\"%s\",\"objectCount\":%d,\"bytes\":%d,"
             "\"listing\":\"s3://assets/sources/hydro/lux/raw_dem/observations/x.jsonl\"%s},"
             "\"timings\":{\"totalMs\":68,\"computeMs\":68,\"publishMs\":0},"
             "\"worker\":{\"version\":\"0.1.0\",\"gdalVersion\":\"3.6.2\"}}",
             DV_A, dv, count, count * 100,
             count == 1 ? ",\"object\":{\"etag\":\"7b00\",\"sizeBytes\":100}" : "");
    return buf;
}

static const char *err_result(const char *code, const char *cls)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Result\",\"status\":\"Failed\","
             "\"assetKey\":\"lux/raw_dem\",\"dataVersion\":\"%s\",\"error\":{\"code\":\"%s\","
             "\"class\":\"%s\",\"message\":\"inputs[0].uri: s3://raw/elev.tif does not exist "
             "(HTTP 404)\"},\"worker\":{\"version\":\"0.1.0\",\"gdalVersion\":\"3.6.2\"}}",
             DV_A, code, cls);
    return buf;
}

static bool has_event(const source_plan *p, const char *reason)
{
    for (size_t i = 0; i < p->n_events; i++)
        if (!strcmp(p->events[i].reason, reason)) return true;
    return false;
}

/* --- tests ------------------------------------------------------------------------------------ */

/* A new source, observed once (DV_A) and recorded. */
static void observed_once(world *w, const char *extra_spec)
{
    new_source(w, extra_spec);
    decide(w);
    json_t *pod = apply(w);
    finish(w, pod, ok_result(DV_A, 1), 0);
    decide(w);
    apply(w);
}

static void test_first_observation_and_pod(void **state)
{
    (void)state;
    world w = {0};
    new_source(&w, "\"observe\":{\"intervalSeconds\":600,\"pool\":\"edge\",\"maxObjects\":50}");
    source_plan *p = decide(&w);
    assert_non_null(p->status);
    assert_non_null(p->create);
    json_t *pod = apply(&w);
    assert_int_equal(st_int(&w, "observation"), 1);
    assert_string_equal(kobj_name(pod), "raw-dem-obs-1");
    assert_string_equal(kobj_label(pod, SOURCE_L_SOURCE), "raw-dem");
    assert_null(kobj_label(pod, "terrane.io/materialization"));
    assert_string_equal(kobj_label(pod, "terrane.io/pool"), "edge");
    kobj_owner_ref ref;
    assert_int_equal(kobj_controller_ref(pod, &ref), 0);
    assert_string_equal(ref.kind, "AssetSource");
    json_t *ctr = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(ctr, "command"), 1)),
                        "observe");
    json_t *env = json_array_get(json_object_get(ctr, "env"), 0);
    json_t *task = parse(json_string_value(json_object_get(env, "value")));
    assert_string_equal(json_string_value(json_object_get(task, "operation")), "observe");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(task, "params"), "maxObjects")), 50);
    char dv[72];
    assert_int_equal(source_observation_dv("uid-src", 1, dv), 0);
    assert_string_equal(json_string_value(json_object_get(task, "dataVersion")), dv);
    json_decref(task);

    /* running: nothing to do, nothing written */
    p = decide(&w);
    assert_null(p->status);
    assert_null(p->create);
    assert_string_equal(p->outcome, "observing");

    /* done: recorded */
    w.now += 5;
    finish(&w, pod, ok_result(DV_A, 1), 0);
    p = decide(&w);
    assert_non_null(p->status);
    assert_null(p->create);
    assert_string_equal(p->observed, "succeeded");
    assert_true(p->changed);
    assert_true(has_event(p, "SourceChanged"));
    apply(&w);
    assert_string_equal(st_str(&w, "dataVersion"), DV_A);
    assert_string_equal(st_str(&w, "shortDataVersion"), "aaaaaaaaaaaa");
    assert_int_equal(st_int(&w, "finishedObservation"), 1);
    assert_int_equal(st_int(&w, "objectCount"), 1);
    const char *s;
    assert_string_equal(cond_reason(&w, COND_AVAILABLE, &s), "Observed");
    assert_string_equal(s, "True");
    char next[KOBJ_TIME_LEN];
    kobj_time_format(T0 + 5 + 600, next);
    assert_string_equal(st_str(&w, "nextObservationAt"), next);

    /* settled: no write, requeue at the next observation */
    p = decide(&w);
    assert_null(p->status);
    assert_null(p->create);
    assert_int_equal(p->requeue_after_s, 60); /* the pod's GC comes first */
    w.now = T0 + 5 + 61;
    p = decide(&w);
    assert_int_equal(p->n_deletes, 1);
    assert_int_equal(p->requeue_after_s, 600 - 61);

    /* due: observation 2, same data version: no change, no Event */
    w.now = T0 + 5 + 600;
    p = decide(&w);
    assert_non_null(p->create);
    pod = apply(&w);
    assert_string_equal(kobj_name(pod), "raw-dem-obs-2");
    w.now += 3;
    finish(&w, pod, ok_result(DV_A, 1), 0);
    p = decide(&w);
    assert_false(p->changed);
    assert_false(has_event(p, "SourceChanged"));
    world_free(&w);
}

static void test_restart_between_status_and_pod(void **state)
{
    (void)state;
    world w = {0};
    new_source(&w, NULL);
    source_plan *p = decide(&w);
    assert_non_null(p->create);
    /* only the status reached the API server */
    json_object_set(w.src, "status", p->status);
    p = decide(&w);
    assert_non_null(p->create);
    assert_string_equal(kobj_name(p->create), "raw-dem-obs-1");
    assert_string_equal(p->outcome, "create-pod");
    assert_int_equal(json_integer_value(json_object_get(
                         p->status ? p->status : json_object_get(w.src, "status"), "observation")),
                     1);
    apply(&w);
    /* and the pod the cache now has is that one: no second */
    p = decide(&w);
    assert_null(p->create);
    world_free(&w);
}

static void test_rerun_and_generation(void **state)
{
    (void)state;
    world w = {0};
    observed_once(&w, NULL);
    json_t *pod = NULL;
    assert_null(st_str(&w, "nextObservationAt")); /* no spec.observe */
    source_plan *p = decide(&w);
    assert_null(p->create);
    json_object_set_new(json_object_get(w.src, "metadata"), "annotations",
                        json_pack("{s:s}", RERUN_ANNOTATION, "t1"));
    p = decide(&w);
    assert_non_null(p->create);
    pod = apply(&w);
    assert_string_equal(st_str(&w, "rerunToken"), "t1");
    finish(&w, pod, ok_result(DV_B, 1), 0);
    p = decide(&w);
    assert_true(p->changed);
    apply(&w);
    p = decide(&w);
    assert_null(p->create); /* the same token: once */
    json_object_set_new(json_object_get(w.src, "metadata"), "generation", json_integer(2));
    p = decide(&w);
    assert_non_null(p->create);
    world_free(&w);
}

/* terrane.io/observe (a reader's SourceChanged, srcchange.h): observed
 * now, once per value, and the value kept apart from terrane.io/rerun. */
static void test_observe_annotation(void **state)
{
    (void)state;
    world w = {0};
    observed_once(&w, "\"observe\":{\"intervalSeconds\":3600}");
    assert_null(decide(&w)->create); /* next one in an hour */
    json_object_set_new(json_object_get(w.src, "metadata"), "annotations",
                        json_pack("{s:s}", SRCCHANGE_ANNOTATION, "dem-cog-abc-1"));
    source_plan *p = decide(&w);
    assert_non_null(p->create);
    apply(&w);
    assert_int_equal(st_int(&w, "observation"), 2);
    assert_string_equal(st_str(&w, SRCCHANGE_TOKEN), "dem-cog-abc-1");
    assert_null(st_str(&w, RERUN_TOKEN));
    finish(&w, w.pods[w.n_pods - 1], ok_result(DV_B, 1), 0);
    p = decide(&w);
    assert_true(p->changed);
    apply(&w);
    assert_int_equal(st_int(&w, "finishedObservation"), 2);
    assert_null(decide(&w)->create); /* the same value: once */
    json_object_set_new(json_object_get(w.src, "metadata"), "annotations",
                        json_pack("{s:s}", SRCCHANGE_ANNOTATION, "dem-cog-abc-2"));
    assert_non_null(decide(&w)->create);
    world_free(&w);
}

static void test_failures(void **state)
{
    (void)state;
    world w = {0};
    new_source(&w, "\"observe\":{\"intervalSeconds\":3600}");
    decide(&w);
    json_t *pod = apply(&w);
    finish(&w, pod, err_result("SourceNotFound", "BadInput"), 65);
    source_plan *p = decide(&w);
    assert_string_equal(p->observed, "SourceNotFound");
    apply(&w);
    const char *s;
    assert_string_equal(cond_reason(&w, COND_AVAILABLE, &s), "SourceNotFound");
    assert_string_equal(s, "False");
    assert_string_equal(cond_reason(&w, COND_OBSERVED, &s), "Observed");
    char next[KOBJ_TIME_LEN];
    kobj_time_format(T0 + 3600, next);
    assert_string_equal(st_str(&w, "nextObservationAt"), next); /* no retry before */

    /* transient: Observed=False, back off 10 s, 20 s, ... */
    w.now = T0 + 3600;
    decide(&w);
    pod = apply(&w);
    finish(&w, pod, err_result("SourceUnavailable", "Transient"), 75);
    decide(&w);
    apply(&w);
    assert_string_equal(cond_reason(&w, COND_OBSERVED, &s), "SourceUnavailable");
    assert_string_equal(s, "False");
    assert_string_equal(cond_reason(&w, COND_AVAILABLE, NULL), "SourceNotFound"); /* unchanged */
    kobj_time_format(T0 + 3600 + 10, next);
    assert_string_equal(st_str(&w, "nextObservationAt"), next);
    w.now = T0 + 3610;
    decide(&w);
    pod = apply(&w);
    finish(&w, pod, err_result("SourceUnavailable", "Transient"), 75);
    decide(&w);
    apply(&w);
    kobj_time_format(T0 + 3610 + 20, next);
    assert_string_equal(st_str(&w, "nextObservationAt"), next);
    assert_int_equal(st_int(&w, "consecutiveFailures"), 2);

    /* a pod dead without a result */
    w.now = T0 + 3630;
    decide(&w);
    pod = apply(&w);
    finish(&w, pod, "", 139);
    source_plan *q = decide(&w);
    assert_string_equal(q->observed, "Internal");
    apply(&w);
    /* then empty: NoObjects */
    w.now = T0 + 3630 + 40;
    decide(&w);
    pod = apply(&w);
    finish(&w, pod, ok_result(DV_B, 0), 0);
    decide(&w);
    apply(&w);
    assert_string_equal(cond_reason(&w, COND_AVAILABLE, &s), "NoObjects");
    assert_null(json_object_get(json_object_get(w.src, "status"), "consecutiveFailures"));
    world_free(&w);
}

static void test_cron_schedule(void **state)
{
    (void)state;
    world w = {0};
    cron_zone *z = NULL;
    assert_int_equal(cron_zone_load(NULL, "Europe/Luxembourg", &z), 0);
    w.zone = z;
    new_source(&w, "\"observe\":{\"schedule\":\"0 6 * * *\",\"timeZone\":\"Europe/Luxembourg\"}");
    decide(&w);
    json_t *pod = apply(&w);
    finish(&w, pod, ok_result(DV_A, 1), 0);
    decide(&w);
    apply(&w);
    assert_string_equal(st_str(&w, "nextObservationAt"), "2025-12-03T05:00:00Z");
    /* the controller was down for three days: one observation */
    w.now = T0 + 3 * 86400 + 7200;
    source_plan *p = decide(&w);
    assert_non_null(p->create);
    pod = apply(&w);
    finish(&w, pod, ok_result(DV_A, 1), 0);
    decide(&w);
    apply(&w);
    assert_string_equal(st_str(&w, "nextObservationAt"), "2025-12-06T05:00:00Z");
    p = decide(&w);
    assert_null(p->create);
    cron_zone_free(z);
    world_free(&w);

    world v = {0};
    new_source(&v, "\"observe\":{\"schedule\":\"61 * * * *\"}");
    p = decide(&v);
    assert_null(p->create);
    apply(&v);
    assert_string_equal(cond_reason(&v, COND_OBSERVED, NULL), "InvalidSchedule");
    world_free(&v);
}

static void test_freshness(void **state)
{
    (void)state;
    world w = {0};
    observed_once(&w, "\"observe\":{\"intervalSeconds\":60},\"freshness\":{\"maxLagSeconds\":100}");
    json_t *pod = NULL;
    const char *s;
    assert_string_equal(cond_reason(&w, COND_FRESH, &s), "Fresh");
    /* observed again and again, never changed */
    for (int i = 0; i < 3; i++) {
        w.now += 60;
        bool ev = has_event(decide(&w), "NotFresh");
        pod = apply(&w);
        finish(&w, pod, ok_result(DV_A, 1), 0);
        ev = has_event(decide(&w), "NotFresh") || ev;
        apply(&w);
        assert_true(ev == (i == 1)); /* once, when it turns False */
    }
    assert_string_equal(cond_reason(&w, COND_FRESH, &s), "NotChanged");
    assert_string_equal(s, "False");
    world_free(&w);
}

static void test_gone_and_orphans(void **state)
{
    (void)state;
    world w = {0};
    new_source(&w, NULL);
    decide(&w);
    json_t *pod = apply(&w);
    json_object_set_new(json_object_get(w.src, "metadata"), "uid", json_string("uid-new"));
    (void)pod;
    source_plan *p = decide(&w);
    assert_int_equal(p->n_deletes, 1);
    assert_string_equal(p->deletes[0].why, "orphaned");
    json_decref(w.src);
    w.src = NULL;
    source_input in = {.namespace_ = "hydro",
                       .name = "raw-dem",
                       .pods = (const json_t *const *)w.pods,
                       .n_pods = w.n_pods,
                       .now = w.now};
    source_plan_clear(&w.plan);
    assert_int_equal(source_decide(&g_cfg, &in, &w.plan), 0);
    assert_int_equal(w.plan.n_deletes, 1);
    world_free(&w);
}

static void test_names(void **state)
{
    (void)state;
    char out[64];
    source_pod_name("raw-dem", 12, out, sizeof out);
    assert_string_equal(out, "raw-dem-obs-12");
    source_pod_name("a.b", 1, out, sizeof out);
    assert_non_null(strstr(out, "-obs-1"));
    assert_null(strchr(out, '.'));
    char longname[200];
    memset(longname, 'x', 199);
    longname[199] = '\0';
    source_pod_name(longname, 123456789, out, sizeof out);
    assert_true(strlen(out) <= 63);
    assert_non_null(strstr(out, "-obs-123456789"));
}

static void test_oom(void **state)
{
    (void)state;
    for (unsigned long n = 1; n < 400; n++) {
        world w = {0};
        new_source(&w, "\"observe\":{\"schedule\":\"@hourly\"}");
        source_input in = {.namespace_ = "hydro", .name = "raw-dem", .src = w.src, .now = T0};
        cmem_fail_at(n);
        int rc = source_decide(&g_cfg, &in, &w.plan);
        cmem_fail_at(0);
        if (rc == 0) {
            assert_non_null(w.plan.create);
            world_free(&w);
            return;
        }
        assert_int_equal(rc, CERR_NOMEM);
        assert_null(w.plan.status);
        assert_null(w.plan.create);
        world_free(&w);
    }
    fail_msg("source_decide never succeeded");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_observation_and_pod),
        cmocka_unit_test(test_restart_between_status_and_pod),
        cmocka_unit_test(test_rerun_and_generation),
        cmocka_unit_test(test_observe_annotation),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_cron_schedule),
        cmocka_unit_test(test_freshness),
        cmocka_unit_test(test_gone_and_orphans),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
