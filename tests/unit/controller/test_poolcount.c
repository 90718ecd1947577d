/*
 * test_poolcount.c - partition pods counted per pool from pod events, the
 * pool field maxPartitionPods, and the backfill stopping at a pool's cap
 * counted over all assets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cmem.h"
#include "partfan.h"
#include "poolcount.h"
#include "pools.h"
#include "spec.h"

#include <string.h>

static json_t *pod(const char *pname, const char *partition, const char *phase, bool deleting)
{
    json_t *p = json_pack("{s:{s:s,s:{s:s}},s:{s:s}}", "metadata", "name", "p", "labels",
                          "terrane.io/pool", pname, "status", "phase", phase);
    if (partition)
        json_object_set_new(json_object_get(json_object_get(p, "metadata"), "labels"),
                            "terrane.io/partition", json_string(partition));
    if (deleting)
        json_object_set_new(json_object_get(p, "metadata"), "deletionTimestamp",
                            json_string("2026-12-01T00:00:00Z"));
    return p;
}

static void counts_from_events(void **state)
{
    (void)state;
    cmem_init();
    poolcount *pc = poolcount_new();
    json_t *a = pod("cpu", "r000c000", "Pending", false),
           *b = pod("cpu", "r000c001", "Running", false);
    json_t *c = pod("gpu", "2026-11-01", "Pending", false),
           *plain = pod("cpu", NULL, "Pending", false);
    json_t *a_done = pod("cpu", "r000c000", "Succeeded", false);
    json_t *b_del = pod("cpu", "r000c001", "Running", true);
    poolcount_observe(pc, NULL, a);
    poolcount_observe(pc, NULL, b);
    poolcount_observe(pc, NULL, c);
    poolcount_observe(pc, NULL, plain); /* not a partition's pod */
    assert_int_equal(poolcount_get(pc, "cpu"), 2);
    assert_int_equal(poolcount_get(pc, "gpu"), 1);
    assert_int_equal(poolcount_get(pc, "highmem"), 0);
    poolcount_observe(pc, a, a_done); /* finished */
    assert_int_equal(poolcount_get(pc, "cpu"), 1);
    poolcount_observe(pc, a_done, NULL); /* deleted once finished: no change */
    poolcount_observe(pc, b, b_del);     /* being deleted */
    assert_int_equal(poolcount_get(pc, "cpu"), 0);
    poolcount_observe(pc, b_del, NULL);
    poolcount_observe(pc, c, NULL);
    assert_int_equal(poolcount_get(pc, "cpu"), 0);
    assert_int_equal(poolcount_get(pc, "gpu"), 0);
    json_t *v[] = {a, b, c, plain, a_done, b_del};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        json_decref(v[i]);
    poolcount_free(pc);
}

static void pool_field(void **state)
{
    (void)state;
    pools *ps = NULL;
    const char *ok = "{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"maxPartitionPods\":3},"
                     "\"gpu\":{}}}";
    assert_int_equal(pools_load_bytes(ok, strlen(ok), &ps), 0);
    assert_int_equal(pool_max_partition_pods(pools_find(ps, "cpu")), 3);
    assert_int_equal(pool_max_partition_pods(pools_find(ps, "gpu")), 0);
    pools_free(ps);
    const char *bad[] = {
        "{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"maxPartitionPods\":-1}}}",
        "{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"maxPartitionPods\":\"3\"}}}",
        "{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"maxPartitionPods\":2000000}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ps = NULL;
        assert_int_not_equal(pools_load_bytes(bad[i], strlen(bad[i]), &ps), 0);
        assert_null(ps);
    }
}

/* A daily asset with maxParallel 5 on a pool capped at 3 of which 2 are
 * taken by other assets' partition pods: one pod starts. */
static void backfill_stops_at_the_pool_cap(void **state)
{
    (void)state;
    pools *ps = NULL;
    const char *cfgs = "{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"maxPartitionPods\":3}}}";
    assert_int_equal(pools_load_bytes(cfgs, strlen(cfgs), &ps), 0);
    podspec_config pod_cfg = {.image = "terrane-worker:test"};
    reconcile_config cfg = {.pools = ps, .pod = &pod_cfg, .worker_version = "0.1.0"};
    json_t *am = json_loads(
        "{\"apiVersion\":\"terrane.io/v1alpha1\",\"kind\":\"AssetMaterialization\",\"metadata\":"
        "{\"name\":\"daily\",\"namespace\":\"hydro\",\"uid\":\"u\",\"generation\":1},\"spec\":{"
        "\"assetKey\":\"f/daily\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"src\",\"uri\":"
        "\"s3://raw/{date}.tif\"}],\"partitions\":[{\"name\":\"day\",\"time\":{\"start\":"
        "\"2026-11-01\",\"end\":\"2026-11-11\",\"cadence\":\"daily\"}}],\"maxParallel\":5,"
        "\"output\":{\"uri\":\"s3://assets\"}}}",
        0, NULL);
    assert_non_null(am);
    am_spec *spec = NULL;
    assert_int_equal(spec_decode(am, NULL, &spec, NULL), 0);
    poolcount *pc = poolcount_new();
    json_t *other[] = {pod("cpu", "x1", "Running", false), pod("cpu", "x2", "Pending", false)};
    for (size_t i = 0; i < 2; i++)
        poolcount_observe(pc, NULL, other[i]);
    reconcile_input in = {.namespace_ = "hydro",
                          .name = "daily",
                          .am = am,
                          .spec = spec,
                          .now = 1796083200L,
                          .pool_pods = pc};
    partfan_plan plan;
    assert_int_equal(partfan_decide(&cfg, &in, &plan), 0);
    assert_int_equal(plan.n_creates, 1);
    partfan_plan_clear(&plan);
    /* the pool full: none; without the count: maxParallel */
    json_t *third = pod("cpu", "x3", "Running", false);
    poolcount_observe(pc, NULL, third);
    assert_int_equal(partfan_decide(&cfg, &in, &plan), 0);
    assert_int_equal(plan.n_creates, 0);
    partfan_plan_clear(&plan);
    in.pool_pods = NULL;
    assert_int_equal(partfan_decide(&cfg, &in, &plan), 0);
    assert_int_equal(plan.n_creates, 5);
    partfan_plan_clear(&plan);
    json_decref(third);
    for (size_t i = 0; i < 2; i++)
        json_decref(other[i]);
    poolcount_free(pc);
    spec_free(spec);
    json_decref(am);
    pools_free(ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_from_events),
        cmocka_unit_test(pool_field),
        cmocka_unit_test(backfill_stops_at_the_pool_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
