/*
 * test_parttiles.c - the tile flow of a tiled asset, driven as a small
 * simulated cluster: the grid probe pod and its recorded grid (which enters
 * the data version), one pod per tile with partition.tile in its task, the
 * succeeded tile pods kept until the assembly, one assemble pod over the
 * tiles in row-major order, its output recorded and the pods collected; a
 * tile whose pod is lost before the assembly runs again; an OOMKilled tile
 * retries alone on the pool's oomEscalation; a failed probe fails the asset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/kobj.h"
#include "lib/cmem.h"
#include "partfan.h"
#include "partition.h"
#include "parttiles.h"
#include "pools.h"
#include "spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char POOLS[] =
    "{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"resources\":{\"requests\":{\"memory\":"
    "\"1Gi\"}},\"oomEscalation\":\"highmem\"},\"highmem\":{\"resources\":{\"requests\":{"
    "\"memory\":\"8Gi\"}}}}}";
static const char GRID[] =
    "{\"width\":512,\"height\":512,\"bands\":1,\"dataType\":\"Float32\",\"geoTransform\":[0,1,0,"
    "0,0,-1],\"crs\":\"EPSG:3857\",\"tileWidth\":256,\"tileHeight\":256,\"cols\":2,\"rows\":2,"
    "\"halo\":1,\"offsetX\":0,\"offsetY\":0,\"digest\":"
    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}";

static pools *g_pools;
static podspec_config g_pod = {.image = "terrane-worker:test"};
static reconcile_config g_cfg;

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
    size_t created;
    am_spec *spec;
    partfan_plan plan;
} world;

static void world_init(world *w)
{
    memset(w, 0, sizeof *w);
    json_error_t e;
    json_t *spec = json_loads(
        "{\"assetKey\":\"terrain/slope\",\"operation\":\"terrain\",\"params\":{\"mode\":\"slope\","
        "\"compression\":\"ZSTD\"},\"inputs\":[{\"name\":\"dem\",\"uri\":\"s3://raw/dem.tif\"}],"
        "\"partitions\":[{\"name\":\"tile\",\"tiles\":{\"tileSize\":[256,256],\"halo\":1}}],"
        "\"maxParallel\":2,\"retries\":{\"limit\":1},\"output\":{\"uri\":\"s3://assets\"}}",
        0, &e);
    assert_non_null(spec);
    w->am = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:i,s:s,s:{}},s:o}", "apiVersion",
                      "terrane.io/v1alpha1", "kind", "AssetMaterialization", "metadata", "name",
                      "slope", "namespace", "hydro", "uid", "uid-slope", "generation", 1,
                      "resourceVersion", "1", "annotations", "spec", spec);
    assert_non_null(w->am);
}

static void world_free(world *w)
{
    partfan_plan_clear(&w->plan);
    spec_free(w->spec);
    for (size_t i = 0; i < w->n_pods; i++)
        json_decref(w->pods[i]);
    json_decref(w->am);
}

/* One decision, then what the executor does with it. */
static void step(world *w)
{
    partfan_plan_clear(&w->plan);
    spec_free(w->spec);
    w->spec = NULL;
    assert_int_equal(spec_decode(w->am, NULL, &w->spec, NULL), 0);
    reconcile_input in = {.namespace_ = "hydro",
                          .name = "slope",
                          .am = w->am,
                          .spec = w->spec,
                          .pods = (const json_t *const *)w->pods,
                          .n_pods = w->n_pods,
                          .now = 1796083200L};
    assert_int_equal(partfan_decide(&g_cfg, &in, &w->plan), 0);
    for (size_t i = 0; i < w->plan.n_creates; i++) {
        const char *name = kobj_name(w->plan.creates[i]);
        bool exists = false;
        for (size_t k = 0; k < w->n_pods; k++)
            exists |= !strcmp(kobj_name(w->pods[k]), name);
        if (exists) continue;
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

static const char *st_str(const world *w, const char *k)
{
    return json_string_value(json_object_get(json_object_get(w->am, "status"), k));
}

static const char *task_of(const json_t *pod)
{
    const json_t *env = json_object_get(
        json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0), "env");
    for (size_t i = 0; i < json_array_size(env); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(env, i), "name")),
                    "TERRANE_TASK"))
            return json_string_value(json_object_get(json_array_get(env, i), "value"));
    return NULL;
}

/* Ends a pending pod: its result by role (grid, tile output, assembly). */
static void end_pod(json_t *pod, const char *phase, const char *reason)
{
    json_t *st = json_object_get(pod, "status");
    const char *role = parttiles_role(pod);
    char msg[1024];
    const char *key = json_string_value(json_object_get(
        json_object_get(json_object_get(pod, "metadata"), "annotations"), PART_A_KEY));
    if (role && !strcmp(role, "grid"))
        snprintf(msg, sizeof msg, "{\"grid\":%s}", GRID);
    else
        snprintf(msg, sizeof msg,
                 "{\"output\":{\"uri\":\"s3://assets/%s/asset.tif\",\"checksum\":\"1220%s\","
                 "\"stacItem\":\"s3://assets/%s/item.json\"}}",
                 key ? key : "whole", key ? key : "w", key ? key : "whole");
    bool ok = !strcmp(phase, "Succeeded");
    json_t *term = json_pack("{s:i,s:s}", "exitCode", ok ? 0 : 137, "message", ok ? msg : "{}");
    if (reason) json_object_set_new(term, "reason", json_string(reason));
    json_object_set_new(st, "phase", json_string(phase));
    json_object_set_new(
        st, "containerStatuses",
        json_pack("[{s:s,s:{s:o}}]", "name", "worker", "state", "terminated", term));
}

static size_t finish_all(world *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n_pods; i++)
        if (!strcmp(
                json_string_value(json_object_get(json_object_get(w->pods[i], "status"), "phase")),
                "Pending")) {
            end_pod(w->pods[i], "Succeeded", NULL);
            n++;
        }
    return n;
}

static void probe_tiles_assemble(void **state)
{
    (void)state;
    world w;
    world_init(&w);
    step(&w);
    /* 1. the probe: one grid pod on the primary input with the tiles as params */
    assert_int_equal(w.plan.n_creates, 1);
    assert_string_equal(parttiles_role(w.plan.creates[0]), "grid");
    const char *t = task_of(w.plan.creates[0]);
    assert_non_null(strstr(t, "\"operation\":\"grid\""));
    assert_non_null(strstr(t, "\"tileSize\":[256,256]"));
    assert_string_equal(st_str(&w, "phase"), "Pending");
    char probe_dv[80];
    snprintf(probe_dv, sizeof probe_dv, "%s",
             json_string_value(json_object_get(
                 json_object_get(json_object_get(w.pods[0], "metadata"), "annotations"),
                 "terrane.io/data-version")));
    step(&w); /* running: nothing new */
    assert_int_equal(w.plan.n_creates, 0);
    assert_int_equal(w.created, 1);
    finish_all(&w);
    /* 2. the grid recorded, the probe collected, maxParallel tiles started */
    step(&w);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(json_object_get(w.am, "status"), "partitions"), "grid"),
            "dataVersion")),
        probe_dv);
    /* the grid enters the data version */
    assert_string_not_equal(st_str(&w, "dataVersion"), probe_dv);
    assert_int_equal(w.n_pods, 2);
    for (size_t i = 0; i < w.n_pods; i++) {
        assert_null(parttiles_role(w.pods[i]));
        assert_non_null(strstr(task_of(w.pods[i]), "\"tile\":{"));
    }
    assert_true(strstr(task_of(w.pods[0]), "\"key\":\"r000c000\"") ||
                strstr(task_of(w.pods[1]), "\"key\":\"r000c000\""));
    for (int round = 0; round < 2; round++) {
        finish_all(&w);
        step(&w);
    }
    /* 3. every tile done: one assemble pod over the four, tile pods kept */
    json_t *asm_pod = NULL;
    for (size_t i = 0; i < w.n_pods; i++)
        if (parttiles_role(w.pods[i])) asm_pod = w.pods[i];
    assert_non_null(asm_pod);
    assert_int_equal(w.n_pods, 5);
    t = task_of(asm_pod);
    assert_non_null(strstr(t, "\"operation\":\"assemble\""));
    assert_non_null(strstr(t, "\"compression\":\"ZSTD\""));
    assert_null(strstr(t, "\"mode\""));
    const char *r0 = strstr(t, "r000c000"), *r1 = strstr(t, "r000c001"),
               *r2 = strstr(t, "r001c000");
    assert_true(r0 && r1 && r2 && r0 < r1 && r1 < r2);
    assert_string_equal(st_str(&w, "phase"), "Running");
    finish_all(&w);
    step(&w);
    assert_string_equal(st_str(&w, "phase"), "Succeeded");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(w.am, "status"), "output"), "uri")),
                        "s3://assets/whole/asset.tif");
    assert_int_equal(w.n_pods, 0); /* tiles and assembly collected */
    assert_int_equal(w.created, 1 + 4 + 1);
    step(&w); /* a restarted controller: nothing to do */
    assert_int_equal(w.plan.n_creates, 0);
    assert_string_equal(st_str(&w, "phase"), "Succeeded");
    world_free(&w);
}

static void lost_tile_runs_again(void **state)
{
    (void)state;
    world w;
    world_init(&w);
    for (int round = 0; round < 3; round++) {
        step(&w);
        finish_all(&w);
    }
    /* all four tiles succeeded; lose one pod before the assembly ends */
    step(&w);
    json_t *asm_pod = NULL;
    for (size_t i = 0; i < w.n_pods; i++)
        if (parttiles_role(w.pods[i])) asm_pod = w.pods[i];
    if (asm_pod) { /* the assembly started already: drop it and a tile */
        for (size_t k = 0; k < w.n_pods; k++)
            if (w.pods[k] == asm_pod) {
                json_decref(w.pods[k]);
                w.pods[k] = w.pods[--w.n_pods];
                break;
            }
    }
    for (size_t k = 0; k < w.n_pods; k++)
        if (!parttiles_role(w.pods[k])) {
            json_decref(w.pods[k]);
            w.pods[k] = w.pods[--w.n_pods];
            break;
        }
    step(&w);
    assert_int_equal(w.plan.n_creates, 1);
    assert_null(parttiles_role(w.plan.creates[0]));
    assert_string_equal(st_str(&w, "phase"), "Running");
    finish_all(&w);
    step(&w);
    finish_all(&w);
    step(&w);
    assert_string_equal(st_str(&w, "phase"), "Succeeded");
    world_free(&w);
}

static const char *pod_pool(const json_t *pod)
{
    return kobj_label(pod, "terrane.io/pool");
}

static void oom_escalates_one_tile(void **state)
{
    (void)state;
    world w;
    world_init(&w);
    step(&w);
    finish_all(&w);
    step(&w); /* two tiles */
    assert_int_equal(w.n_pods, 2);
    end_pod(w.pods[0], "Failed", "OOMKilled");
    end_pod(w.pods[1], "Succeeded", NULL);
    step(&w);
    size_t high = 0, cpu = 0;
    for (size_t i = 0; i < w.plan.n_creates; i++) {
        const char *p = pod_pool(w.plan.creates[i]);
        if (!strcmp(p, "highmem")) {
            high++;
            assert_non_null(strstr(kobj_name(w.plan.creates[i]), "-2"));
        } else {
            cpu++;
        }
    }
    assert_int_equal(high, 1); /* the OOMKilled tile, attempt 2, on highmem */
    assert_int_equal(cpu, 1);  /* the next tile stays on cpu */
    world_free(&w);
}

static void failed_probe_fails_the_asset(void **state)
{
    (void)state;
    world w;
    world_init(&w);
    step(&w);
    end_pod(w.pods[0], "Failed", NULL);
    step(&w); /* retries.limit 1: a second probe */
    assert_int_equal(w.plan.n_creates, 1);
    assert_string_equal(parttiles_role(w.plan.creates[0]), "grid");
    end_pod(w.pods[0], "Failed", NULL);
    step(&w);
    assert_string_equal(st_str(&w, "phase"), "Failed");
    world_free(&w);
}

static void grid_helpers(void **state)
{
    (void)state;
    part_grid g;
    json_t *grid = json_loads(GRID, 0, NULL);
    assert_int_equal(parttiles_grid_decode(grid, &g), 0);
    assert_int_equal(g.cols, 2);
    json_object_set_new(grid, "offsetX", json_integer(-10));
    assert_int_not_equal(parttiles_grid_decode(grid, &g), 0);
    char a[DV_LEN + 1], b[DV_LEN + 1];
    const char *dv = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    assert_int_equal(parttiles_tiled_dv(dv, grid, a), 0);
    json_object_set_new(
        grid, "digest",
        json_string("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"));
    assert_int_equal(parttiles_tiled_dv(dv, grid, b), 0);
    assert_string_not_equal(a, b);
    json_t *params = json_pack("{s:s,s:i,s:s}", "mode", "slope", "blockSize", 256, "x", "y");
    json_t *ap = parttiles_assemble_params(params, grid);
    assert_non_null(json_object_get(ap, "grid"));
    assert_non_null(json_object_get(ap, "blockSize"));
    assert_null(json_object_get(ap, "mode"));
    assert_true(json_is_true(json_object_get(ap, "collection")));
    json_decref(ap);
    json_decref(params);
    json_decref(grid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(probe_tiles_assemble),   cmocka_unit_test(lost_tile_runs_again),
        cmocka_unit_test(oom_escalates_one_tile), cmocka_unit_test(failed_probe_fails_the_asset),
        cmocka_unit_test(grid_helpers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
