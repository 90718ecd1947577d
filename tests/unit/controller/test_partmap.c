/*
 * test_partmap.c - per-partition inputs: a templated from: naming one
 * AssetSource per day, the partition data version folded from it (a
 * changed source changes only its day's version), waiting for a missing
 * source, refusals (a differently partitioned Identity upstream, AllToOne
 * on a partitioned asset), and the upstream names the executor gathers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partmap.h"

#include <stdio.h>
#include <string.h>

#define PARTS                                                                                      \
    "[{\"name\":\"day\",\"time\":{\"start\":\"2026-11-01\",\"end\":\"2026-11-04\","                \
    "\"cadence\":\"daily\"}}]"

static json_t *objs[8];
static size_t n_objs;

static const json_t *find(void *ctx, const char *name)
{
    (void)ctx;
    for (size_t i = 0; i < n_objs; i++)
        if (!strcmp(
                json_string_value(json_object_get(json_object_get(objs[i], "metadata"), "name")),
                name))
            return objs[i];
    return NULL;
}

static json_t *source(const char *name, char hexdigit, const char *changed)
{
    char dv[DV_LEN + 1];
    snprintf(dv, sizeof dv, "sha256:%064d", 0);
    memset(dv + 7, hexdigit, 64);
    json_t *j = json_pack("{s:s,s:{s:s,s:s},s:{s:s,s:s},s:{s:s,s:s,s:i,s:{s:s},s:[{s:s,s:s}]}}",
                          "kind", "AssetSource", "metadata", "name", name, "namespace", "ns",
                          "spec", "uri", "s3://raw/x.tif", "assetKey", "raw/x", "status",
                          "dataVersion", dv, "lastChangedAt", changed, "objectCount", 1, "object",
                          "etag", "e", "conditions", "type", "Available", "status", "True");
    assert_non_null(j);
    return j;
}

static void templated_source_per_day(void **state)
{
    (void)state;
    json_t *parts = json_loads(PARTS, 0, NULL),
           *in = json_pack("{s:s,s:s}", "name", "src", "from", "raw-{date}");
    json_t *inputs = json_pack("[O]", in);
    part_plan *pp = NULL;
    assert_int_equal(part_plan_decode(parts, &pp, NULL), 0);
    n_objs = 0;
    objs[n_objs++] = source("raw-2026-11-01", 'a', "2026-11-05T00:00:00Z");
    objs[n_objs++] = source("raw-2026-11-02", 'b', "2026-11-05T00:00:00Z");
    const char *adv = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    assert_true(partmap_per_partition(in, NULL));
    part_info pi;
    partmap_input m;
    char why[256], v0[DV_LEN + 1], v1[DV_LEN + 1], v1b[DV_LEN + 1], plain[DV_LEN + 1];
    assert_int_equal(part_plan_at(pp, 0, 2000000000, &pi), 0);
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, &m, why, sizeof why), 0);
    assert_string_equal(m.name, "raw-2026-11-01");
    assert_true(m.per_partition);
    assert_int_equal(partmap_partition_dv(adv, pi.key, inputs, &m, 1, v0), 0);
    assert_int_equal(part_data_version(adv, pi.key, plain), 0);
    assert_string_not_equal(v0, plain); /* the source's version is folded in */
    assert_int_equal(part_plan_at(pp, 1, 2000000000, &pi), 0);
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, &m, why, sizeof why), 0);
    assert_int_equal(partmap_partition_dv(adv, pi.key, inputs, &m, 1, v1), 0);
    assert_string_not_equal(v0, v1);
    assert_true(m.changed_at > 0);
    /* day 2's source changes: its version changes */
    json_decref(objs[1]);
    objs[1] = source("raw-2026-11-02", 'c', "2026-11-06T00:00:00Z");
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, &m, why, sizeof why), 0);
    assert_int_equal(partmap_partition_dv(adv, pi.key, inputs, &m, 1, v1b), 0);
    assert_string_not_equal(v1, v1b);
    /* day 3 has no source yet: it waits */
    assert_int_equal(part_plan_at(pp, 2, 2000000000, &pi), 0);
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, &m, why, sizeof why), 1);
    assert_non_null(strstr(why, "raw-2026-11-03"));
    for (size_t i = 0; i < n_objs; i++)
        json_decref(objs[i]);
    n_objs = 0;
    part_plan_free(pp);
    json_decref(in);
    json_decref(inputs);
    json_decref(parts);
}

static int count_name(void *ctx, const char *name)
{
    (void)name;
    (*(int *)ctx)++;
    return 0;
}

static void refusals_and_names(void **state)
{
    (void)state;
    json_t *parts = json_loads(PARTS, 0, NULL);
    json_t *up = json_pack("{s:s,s:{s:s,s:s},s:{s:[{s:s,s:{s:[s]}}]}}", "kind",
                           "AssetMaterialization", "metadata", "name", "up", "namespace", "ns",
                           "spec", "partitions", "name", "b", "static", "keys", "x");
    n_objs = 0;
    objs[n_objs++] = up;
    part_plan *pp = NULL;
    assert_int_equal(part_plan_decode(parts, &pp, NULL), 0);
    part_info pi;
    partmap_input m;
    char why[256];
    assert_int_equal(part_plan_at(pp, 0, 2000000000, &pi), 0);
    json_t *in = json_pack("{s:s,s:s}", "name", "u", "from", "up");
    assert_true(partmap_per_partition(in, up));
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, &m, why, sizeof why), 2);
    assert_non_null(strstr(why, "partitioned the same way"));
    json_decref(in);
    in = json_pack("{s:s,s:s,s:{s:s}}", "name", "u", "from", "up", "partitionMapping", "type",
                   "AllToOne");
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, &m, why, sizeof why), 2);
    assert_non_null(strstr(why, "not supported yet"));
    json_decref(in);
    json_t *am = json_pack("{s:{s:O,s:[{s:s,s:s},{s:s,s:s}]}}", "spec", "partitions", parts,
                           "inputs", "name", "a", "from", "raw-{date}", "name", "b", "from", "up");
    int n = 0;
    assert_int_equal(partmap_each_upstream(am, 2000000000, count_name, &n), 0);
    assert_int_equal(n, 3 + 1);
    json_decref(am);
    json_decref(up);
    n_objs = 0;
    part_plan_free(pp);
    json_decref(parts);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(templated_source_per_day),
        cmocka_unit_test(refusals_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
