/*
 * test_partall.c - an unpartitioned asset reading every partition of a
 * daily asset (AllToOne), through reconcile_decide: it starts one pod once
 * every partition is materialized, the task carrying one input per
 * partition named by key; its lineage names the upstream with the folded
 * version and the count; one changed day makes it wait for that day and
 * then run exactly once more; another mapping, and a task too large for a
 * pod's environment, fail with the reason in the status.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cfgfixtures.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jschema.h"
#include "partfixtures.h"
#include "partmap.h"
#include "partstate.h"
#include "pools.h"
#include "reconcile.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char POOLS[] =
    "{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"nodeSelector\":{\"terrane.io/pool\":"
    "\"cpu\"},\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"1Gi\"}}}}}";

#define UDV "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define NOW 2000000000L
#define DAYS10                                                                                     \
    "[{\"name\":\"day\",\"time\":{\"start\":\"2026-11-01\",\"end\":\"2026-11-11\","                \
    "\"cadence\":\"daily\"}}]"

FX_CONFIG_GROUP(POOLS, false)

typedef struct {
    json_t *ams[16]; /* [0] the reader, [1] the upstream, then the sources */
    size_t n;
    json_t *pods[8];
    size_t n_pods;
    size_t creates;
    reconcile_plan plan;
} world;

static void world_init(world *w, const char *mapping, const char *partitions, uint64_t total,
                       bool daily)
{
    char spec[512];
    memset(w, 0, sizeof *w);
    snprintf(spec, sizeof spec,
             "{\"assetKey\":\"forecast/november\",\"operation\":\"mosaic\",\"inputs\":[{\"name\":"
             "\"days\",\"from\":\"daily\"%s}],\"output\":{\"uri\":\"s3://assets\"}}",
             mapping);
    w->ams[w->n++] = json_pack(
        "{s:s,s:s,s:{s:s,s:s,s:s,s:i,s:s},s:o}", "apiVersion", "terrane.io/v1alpha1", "kind",
        "AssetMaterialization", "metadata", "name", "november", "namespace", "hydro", "uid",
        "uid-november", "generation", 1, "resourceVersion", "1", "spec", json_loads(spec, 0, NULL));
    json_t *pj = json_loads(partitions, 0, NULL);
    w->ams[w->n++] =
        fx_upstream("hydro", "daily", "forecast/daily", pj, total, UDV, "2026-11-20T00:00:00Z",
                    daily ? "from" : "uri", daily ? "raw-{date}" : "s3://raw/{key}.tif");
    json_decref(pj);
    assert_non_null(w->ams[w->n - 1]);
    for (int d = 1; d <= 10; d++) {
        char name[32];
        snprintf(name, sizeof name, "raw-2026-11-%02d", d);
        w->ams[w->n++] = fx_source("hydro", name, "0123456789"[d - 1], "2026-11-15T00:00:00Z");
    }
}

static void world_free(world *w)
{
    reconcile_plan_clear(&w->plan);
    for (size_t i = 0; i < w->n; i++)
        json_decref(w->ams[i]);
    for (size_t i = 0; i < w->n_pods; i++)
        json_decref(w->pods[i]);
}

/* One decision for the reader: status written back, its pod created. */
static reconcile_plan *step(world *w)
{
    reconcile_plan_clear(&w->plan);
    reconcile_input in = {.namespace_ = "hydro",
                          .name = "november",
                          .am = w->ams[0],
                          .ams = (const json_t *const *)w->ams + 1,
                          .n_ams = w->n - 1,
                          .pods = (const json_t *const *)w->pods,
                          .n_pods = w->n_pods,
                          .now = NOW};
    assert_int_equal(reconcile_decide(&g_cfg, &in, &w->plan), 0);
    if (w->plan.status) json_object_set(w->ams[0], "status", w->plan.status);
    if (w->plan.create) {
        json_t *pod = json_deep_copy(w->plan.create);
        json_object_set_new(json_object_get(pod, "metadata"), "uid", json_string(kobj_name(pod)));
        json_object_set_new(pod, "status", json_pack("{s:s}", "phase", "Pending"));
        assert_true(w->n_pods < 8);
        w->pods[w->n_pods++] = pod;
        w->creates++;
    }
    return &w->plan;
}

static const char *status_of(const world *w, const char *key)
{
    return json_string_value(json_object_get(json_object_get(w->ams[0], "status"), key));
}

static json_t *task_of(const json_t *pod)
{
    const json_t *env = json_object_get(
        json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0), "env");
    for (size_t i = 0; i < json_array_size(env); i++) {
        const json_t *e = json_array_get(env, i);
        if (!strcmp(json_string_value(json_object_get(e, "name")), "TERRANE_TASK"))
            return json_loads(json_string_value(json_object_get(e, "value")), 0, NULL);
    }
    return NULL;
}

static void succeed(json_t *pod)
{
    const char *dv = json_string_value(
        json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"),
                        "terrane.io/data-version"));
    char *r = cmem_printf(
        "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Result\",\"status\":\"Succeeded\","
        "\"assetKey\":\"forecast/november\",\"dataVersion\":\"%s\",\"output\":{\"uri\":\"s3://"
        "assets/hydro/forecast/november/%s/asset.tif\",\"checksum\":\"1220%064d\",\"sizeBytes\":"
        "1234,\"mediaType\":\"image/tiff; application=geotiff; profile=cloud-optimized\","
        "\"stacItem\":\"s3://assets/hydro/forecast/november/%s/item.json\",\"manifest\":\"s3://"
        "assets/hydro/forecast/november/%s/manifest.json\"},"
        "\"cacheHit\":false,\"timings\":{\"totalMs\":10,\"computeMs\":8,\"publishMs\":2},"
        "\"worker\":{\"version\":\"0.1.0\",\"gdalVersion\":\"3.6.2\"}}",
        dv, dv + 7, 0, dv + 7, dv + 7);
    json_t *term =
        json_pack("{s:i,s:s,s:s,s:s,s:s}", "exitCode", 0, "reason", "Completed", "startedAt",
                  "2026-11-20T00:00:01Z", "finishedAt", "2026-11-20T00:00:09Z", "message", r);
    cmem_free(r);
    json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string("cpu-1"));
    json_object_set_new(pod, "status",
                        json_pack("{s:s,s:[{s:s,s:{s:o}}]}", "phase", "Succeeded",
                                  "containerStatuses", "name", "worker", "state", "terminated",
                                  term));
}

static void reads_every_partition_once(void **state)
{
    (void)state;
    world w;
    world_init(&w, "", DAYS10, 10, true);
    reconcile_plan *p = step(&w);
    assert_string_equal(p->outcome, "create-pod");
    json_t *task = task_of(w.pods[0]);
    assert_non_null(task);
    const json_t *ti = json_object_get(task, "inputs");
    assert_int_equal(json_array_size(ti), 10);
    for (size_t i = 0; i < 10; i++) {
        char want[32];
        snprintf(want, sizeof want, "days_2026_11_%02zu", i + 1);
        const json_t *e = json_array_get(ti, i);
        assert_string_equal(json_string_value(json_object_get(e, "name")), want);
        assert_non_null(strstr(json_string_value(json_object_get(e, "uri")),
                               "s3://assets/hydro/forecast/daily/"));
        assert_string_equal(json_string_value(json_object_get(e, "assetKey")), "forecast/daily");
    }
    json_decref(task);
    succeed(w.pods[0]);
    step(&w);
    if (strcmp(status_of(&w, "phase"), "Succeeded")) fail_msg("%s", status_of(&w, "message"));
    const json_t *lin =
        json_array_get(json_object_get(json_object_get(w.ams[0], "status"), "lineage"), 0);
    assert_string_equal(json_string_value(json_object_get(lin, "from")), "daily");
    assert_string_equal(json_string_value(json_object_get(lin, "assetKey")), "forecast/daily");
    assert_int_equal(json_integer_value(json_object_get(lin, "partitions")), 10);
    assert_null(json_object_get(lin, "uri"));
    const char *fold = json_string_value(json_object_get(lin, "dataVersion"));
    assert_non_null(fold);
    assert_string_not_equal(fold, UDV);
    char dv1[DV_LEN + 1];
    snprintf(dv1, sizeof dv1, "%s", status_of(&w, "dataVersion"));
    p = step(&w);
    assert_string_equal(p->outcome, "up-to-date");
    /* day 5 changes: the reader waits for that day, naming it */
    json_decref(w.ams[6]);
    w.ams[6] = fx_source("hydro", "raw-2026-11-05", 'f', "2026-11-21T00:00:00Z");
    p = step(&w);
    assert_null(p->create);
    assert_string_equal(status_of(&w, "phase"), "Waiting");
    assert_non_null(strstr(status_of(&w, "message"), "partition 2026-11-05 of upstream daily"));
    step(&w); /* again: still waiting, nothing started */
    assert_int_equal(w.creates, 1);
    /* the upstream has it again: one new version, one pod */
    json_object_set_new(json_object_get(json_object_get(w.ams[1], "status"), "partitions"),
                        PARTMAP_WATERMARK, json_string("2026-11-22T00:00:00Z"));
    p = step(&w);
    assert_string_equal(p->outcome, "create-pod");
    assert_int_equal(w.creates, 2);
    assert_string_not_equal(kobj_name(w.pods[1]), kobj_name(w.pods[0]));
    succeed(w.pods[1]);
    step(&w);
    step(&w);
    assert_int_equal(w.creates, 2);
    assert_string_equal(status_of(&w, "phase"), "Succeeded");
    assert_string_not_equal(status_of(&w, "dataVersion"), dv1);
    world_free(&w);
}

static void refusals(void **state)
{
    (void)state;
    world w;
    world_init(&w, ",\"partitionMapping\":{\"type\":\"Identity\"}", DAYS10, 10, true);
    step(&w);
    assert_int_equal(w.creates, 0);
    assert_string_equal(status_of(&w, "phase"), "Failed");
    assert_non_null(strstr(status_of(&w, "message"), "input days: from daily: partitionMapping "
                                                     "Identity needs this asset partitioned"));
    world_free(&w);
    /* 400 partitions: under the cap, but a task over what a pod's
     * environment carries */
    json_t *keys = json_array();
    for (int i = 0; i < 400; i++) {
        char k[16];
        snprintf(k, sizeof k, "basin%d", i);
        json_array_append_new(keys, json_string(k));
    }
    json_t *sp = json_pack("[{s:s,s:{s:o}}]", "name", "basin", "static", "keys", keys);
    char *text = json_dumps(sp, 0);
    world_init(&w, "", text, 400, false);
    step(&w);
    assert_int_equal(w.creates, 0);
    if (strcmp(status_of(&w, "phase"), "Failed")) fail_msg("%s", status_of(&w, "message"));
    assert_non_null(strstr(status_of(&w, "message"), "reading 400 partitions makes a task of"));
    assert_non_null(strstr(status_of(&w, "message"), "more than the 131072 a worker accepts"));
    world_free(&w);
    cmem_free(text);
    json_decref(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_every_partition_once),
        cmocka_unit_test(refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
