/*
 * test_partmap.c - per-partition inputs: a templated from: naming one
 * AssetSource per day, the partition data version folded from it (a
 * changed source changes only its day's version), waiting for a missing
 * source, refusals (a differently partitioned Identity upstream, AllToOne
 * on a partitioned asset), the upstream names the executor gathers; LastN
 * windows (the first ones shorter, one changed day changing exactly the N
 * readers of it, which wait until the upstream has it again, task inputs
 * named by lag) and AllToOne (every partition folded into one version,
 * waiting, inputs named by key, the cap, the mappings it refuses).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partfixtures.h"
#include "partmap.h"
#include "partstate.h"

#include <stdio.h>
#include <string.h>

#define PARTS                                                                                      \
    "[{\"name\":\"day\",\"time\":{\"start\":\"2026-11-01\",\"end\":\"2026-11-04\","                \
    "\"cadence\":\"daily\"}}]"

static json_t *objs[64];
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
    json_t *j = fx_source("ns", name, hexdigit, changed);
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
    partmap_input m = {0};
    char why[256], v0[DV_LEN + 1], v1[DV_LEN + 1], v1b[DV_LEN + 1], plain[DV_LEN + 1];
    assert_int_equal(part_plan_at(pp, 0, 2000000000, &pi), 0);
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, 2000000000, &m, why, sizeof why),
                     0);
    assert_string_equal(m.name, "raw-2026-11-01");
    assert_true(m.per_partition);
    assert_int_equal(partmap_partition_dv(adv, pi.key, inputs, &m, 1, v0), 0);
    assert_int_equal(part_data_version(adv, pi.key, plain), 0);
    assert_string_not_equal(v0, plain); /* the source's version is folded in */
    assert_int_equal(part_plan_at(pp, 1, 2000000000, &pi), 0);
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, 2000000000, &m, why, sizeof why),
                     0);
    assert_int_equal(partmap_partition_dv(adv, pi.key, inputs, &m, 1, v1), 0);
    assert_string_not_equal(v0, v1);
    assert_true(m.changed_at > 0);
    /* day 2's source changes: its version changes */
    json_decref(objs[1]);
    objs[1] = source("raw-2026-11-02", 'c', "2026-11-06T00:00:00Z");
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, 2000000000, &m, why, sizeof why),
                     0);
    assert_int_equal(partmap_partition_dv(adv, pi.key, inputs, &m, 1, v1b), 0);
    assert_string_not_equal(v1, v1b);
    /* day 3 has no source yet: it waits */
    assert_int_equal(part_plan_at(pp, 2, 2000000000, &pi), 0);
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, 2000000000, &m, why, sizeof why),
                     1);
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
    partmap_input m = {0};
    char why[256];
    assert_int_equal(part_plan_at(pp, 0, 2000000000, &pi), 0);
    json_t *in = json_pack("{s:s,s:s}", "name", "u", "from", "up");
    assert_true(partmap_per_partition(in, up));
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, 2000000000, &m, why, sizeof why),
                     2);
    assert_non_null(strstr(why, "partitioned the same way"));
    json_decref(in);
    in = json_pack("{s:s,s:s,s:{s:s}}", "name", "u", "from", "up", "partitionMapping", "type",
                   "AllToOne");
    assert_int_equal(partmap_resolve(find, NULL, parts, in, &pi, 2000000000, &m, why, sizeof why),
                     2);
    assert_non_null(strstr(why, "is for an unpartitioned asset"));
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

#define UDV "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define DAYS10                                                                                     \
    "[{\"name\":\"day\",\"time\":{\"start\":\"2026-11-01\",\"end\":\"2026-11-11\","                \
    "\"cadence\":\"daily\"}}]"

/* A daily asset over 10 days reading raw-{date}, every partition
 * materialized at UDV, its watermark at mark. */
static json_t *daily_upstream(const char *partitions, uint64_t total, const char *mark)
{
    json_t *pj = json_loads(partitions, 0, NULL);
    json_t *up =
        fx_upstream("ns", "daily", "forecast/daily", pj, total, UDV, mark, "from", "raw-{date}");
    json_decref(pj);
    assert_non_null(up);
    return up;
}

static void set_mark(json_t *up, const char *mark)
{
    json_object_set_new(json_object_get(json_object_get(up, "status"), "partitions"),
                        PARTMAP_WATERMARK, json_string(mark));
}

/* The world: the upstream, then the sources of its 10 days. */
static void daily_world(void)
{
    n_objs = 0;
    objs[n_objs++] = daily_upstream(DAYS10, 10, "2026-11-20T00:00:00Z");
    for (int d = 1; d <= 10; d++) {
        char name[32];
        snprintf(name, sizeof name, "raw-2026-11-%02d", d);
        objs[n_objs++] = source(name, "0123456789"[d - 1], "2026-11-15T00:00:00Z");
    }
}

static void world_clear(void)
{
    for (size_t i = 0; i < n_objs; i++)
        json_decref(objs[i]);
    n_objs = 0;
}

#define LATER 2000000000

/* Reader partition k of partitions reading input: rc, and its data version. */
static int reader_dv(const json_t *partitions, const json_t *input, uint64_t k, partmap_input *m,
                     char dv[DV_LEN + 1], char *why, size_t size)
{
    part_plan *pp = NULL;
    part_info pi;
    json_t *inputs = json_pack("[O]", input);
    assert_int_equal(part_plan_decode(partitions, &pp, NULL), 0);
    assert_int_equal(part_plan_at(pp, k, LATER, &pi), 0);
    int rc = partmap_resolve(find, NULL, partitions, input, &pi, LATER, m, why, size);
    if (rc == 0) assert_int_equal(partmap_partition_dv(UDV, pi.key, inputs, m, 1, dv), 0);
    part_plan_free(pp);
    json_decref(inputs);
    return rc;
}

static void last_n_windows(void **state)
{
    (void)state;
    daily_world();
    json_t *parts = json_loads(DAYS10, 0, NULL);
    json_t *in = json_pack("{s:s,s:s,s:{s:s,s:i}}", "name", "src", "from", "daily",
                           "partitionMapping", "type", "LastN", "count", 3);
    partmap_input m = {0};
    char why[320], before[10][DV_LEN + 1], after[DV_LEN + 1];
    for (uint64_t k = 0; k < 10; k++) {
        assert_int_equal(reader_dv(parts, in, k, &m, before[k], why, sizeof why), 0);
        assert_int_equal(m.kind, PARTMAP_LAST_N);
        /* the first windows read those that exist */
        assert_int_equal(m.n_parts, k < 2 ? k + 1 : 3);
        char want[16];
        snprintf(want, sizeof want, "2026-11-%02d", (int)k + 1);
        assert_string_equal(m.parts[m.n_parts - 1].key, want);
        assert_non_null(strstr(m.parts[0].uri, "s3://assets/ns/forecast/daily/"));
        assert_non_null(strstr(m.parts[0].item, "/item.json"));
        if (k == 4) {
            /* the task: one input per window, oldest first, named by lag */
            json_t *task = json_pack("{s:[{s:s},{s:s}]}", "inputs", "name", "src", "name", "mask");
            assert_int_equal(partmap_expand_task(task, 0, "src", &m, why, sizeof why), 0);
            const json_t *ti = json_object_get(task, "inputs");
            assert_int_equal(json_array_size(ti), 4);
            const char *names[] = {"src_2", "src_1", "src_0", "mask"};
            for (size_t i = 0; i < 4; i++)
                assert_string_equal(
                    json_string_value(json_object_get(json_array_get(ti, i), "name")), names[i]);
            assert_string_equal(
                json_string_value(json_object_get(json_array_get(ti, 2), "dataVersion")),
                m.parts[2].dv);
            json_decref(task);
        }
    }
    for (uint64_t k = 1; k < 10; k++)
        assert_string_not_equal(before[k - 1], before[k]);
    /* day 5's source changes: the three partitions reading it (5, 6, 7)
     * wait for the upstream to have it again, the others keep their version */
    json_decref(objs[5]);
    objs[5] = source("raw-2026-11-05", 'f', "2026-11-21T00:00:00Z");
    int waiting = 0, changed = 0;
    for (uint64_t k = 0; k < 10; k++) {
        int rc = reader_dv(parts, in, k, &m, after, why, sizeof why);
        if (k >= 4 && k <= 6) {
            assert_int_equal(rc, 1);
            assert_non_null(strstr(why, "partition 2026-11-05 of upstream daily"));
            assert_true(m.changed_at > 1795000000); /* the change time, also while waiting */
            waiting++;
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(after, before[k]);
        }
    }
    assert_int_equal(waiting, 3);
    set_mark(objs[0], "2026-11-22T00:00:00Z"); /* the upstream re-materialized it */
    for (uint64_t k = 0; k < 10; k++) {
        assert_int_equal(reader_dv(parts, in, k, &m, after, why, sizeof why), 0);
        changed += strcmp(after, before[k]) != 0;
        if (k >= 4 && k <= 6) assert_string_not_equal(after, before[k]);
    }
    assert_int_equal(changed, 3);
    /* a reader starting later reads full windows; one starting before the
     * upstream, or of another cadence, is refused */
    json_t *late = json_loads("[{\"name\":\"day\",\"time\":{\"start\":\"2026-11-03\",\"end\":"
                              "\"2026-11-11\",\"cadence\":\"daily\"}}]",
                              0, NULL);
    assert_int_equal(reader_dv(late, in, 0, &m, after, why, sizeof why), 0);
    assert_int_equal(m.n_parts, 3);
    assert_string_equal(m.parts[0].key, "2026-11-01");
    json_t *early = json_loads("[{\"name\":\"day\",\"time\":{\"start\":\"2026-10-30\",\"end\":"
                               "\"2026-11-11\",\"cadence\":\"daily\"}}]",
                               0, NULL);
    assert_int_equal(reader_dv(early, in, 0, &m, after, why, sizeof why), 2);
    assert_non_null(strstr(why, "no window 2026-10-30"));
    json_t *weekly = json_loads("[{\"name\":\"week\",\"time\":{\"start\":\"2026-11-02\",\"end\":"
                                "\"2026-11-30\",\"cadence\":\"weekly\"}}]",
                                0, NULL);
    assert_int_equal(reader_dv(weekly, in, 0, &m, after, why, sizeof why), 2);
    assert_non_null(strstr(why, "same cadence and timezone"));
    partmap_input_clear(&m);
    json_decref(late);
    json_decref(early);
    json_decref(weekly);
    json_decref(in);
    json_decref(parts);
    world_clear();
}

static void all_to_one(void **state)
{
    (void)state;
    daily_world();
    json_t *in = json_pack("{s:s,s:s}", "name", "days", "from", "daily");
    partmap_input m = {0};
    char why[320], v0[DV_LEN + 1];
    assert_true(partmap_reads_all(in, objs[0]));
    assert_int_equal(partmap_resolve_all(find, NULL, in, objs[0], LATER, &m, why, sizeof why), 0);
    assert_int_equal(m.kind, PARTMAP_ALL);
    assert_int_equal(m.n_parts, 10);
    assert_string_equal(m.asset_key, "forecast/daily");
    memcpy(v0, m.data_version, sizeof v0);
    assert_string_not_equal(v0, UDV);
    json_t *task = json_pack("{s:[{s:s}]}", "inputs", "name", "days");
    assert_int_equal(partmap_expand_task(task, 0, "days", &m, why, sizeof why), 0);
    const json_t *ti = json_object_get(task, "inputs");
    assert_int_equal(json_array_size(ti), 10);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ti, 0), "name")),
                        "days_2026_11_01");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ti, 9), "name")),
                        "days_2026_11_10");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ti, 9), "assetKey")),
                        "forecast/daily");
    json_decref(task);
    /* one day changes: the reader waits for it, then has one new version */
    json_decref(objs[5]);
    objs[5] = source("raw-2026-11-05", 'f', "2026-11-21T00:00:00Z");
    assert_int_equal(partmap_resolve_all(find, NULL, in, objs[0], LATER, &m, why, sizeof why), 1);
    assert_non_null(strstr(why, "partition 2026-11-05 of upstream daily"));
    set_mark(objs[0], "2026-11-22T00:00:00Z");
    assert_int_equal(partmap_resolve_all(find, NULL, in, objs[0], LATER, &m, why, sizeof why), 0);
    assert_string_not_equal(m.data_version, v0);
    /* a partition of the upstream not materialized: waiting, and how many */
    json_t *pj = json_object_get(json_object_get(objs[0], "status"), "partitions");
    partstate *ps = partstate_new();
    assert_int_equal(partstate_load(ps, pj, UDV), 0);
    partstate_forget(ps, 2);
    partstate_forget(ps, 7);
    json_t *pj2 = partstate_json(ps);
    json_object_set_new(pj2, PARTMAP_WATERMARK, json_string("2026-11-22T00:00:00Z"));
    json_object_set_new(json_object_get(objs[0], "status"), "partitions", pj2);
    partstate_free(ps);
    assert_int_equal(partmap_resolve_all(find, NULL, in, objs[0], LATER, &m, why, sizeof why), 1);
    assert_non_null(strstr(why, "partition 2026-11-03 of upstream daily (and 1 more"));
    /* another mapping is refused for an unpartitioned reader */
    json_t *ident = json_pack("{s:s,s:s,s:{s:s}}", "name", "days", "from", "daily",
                              "partitionMapping", "type", "Identity");
    assert_true(partmap_reads_all(ident, objs[0]));
    assert_int_equal(partmap_resolve_all(find, NULL, ident, objs[0], LATER, &m, why, sizeof why),
                     2);
    assert_non_null(strstr(why, "needs this asset partitioned"));
    /* a tiled asset alone is read as its assembled COG unless asked */
    json_t *tiled = json_pack("{s:s,s:{s:s},s:{s:[{s:s,s:{s:[i,i]}}]}}", "kind",
                              "AssetMaterialization", "metadata", "name", "daily", "spec",
                              "partitions", "name", "t", "tiles", "tileSize", 256, 256);
    assert_false(partmap_reads_all(in, tiled));
    json_t *all = json_pack("{s:s,s:s,s:{s:s}}", "name", "days", "from", "daily",
                            "partitionMapping", "type", "AllToOne");
    assert_true(partmap_reads_all(all, tiled));
    /* more partitions than the cap: refused, saying so */
    json_t *keys = json_array();
    for (int i = 0; i <= PARTMAP_ALL_MAX; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        json_array_append_new(keys, json_string(k));
    }
    json_t *sp = json_pack("[{s:s,s:{s:o}}]", "name", "key", "static", "keys", keys);
    char *text = json_dumps(sp, 0);
    json_t *big = daily_upstream(text, 0, "2026-11-22T00:00:00Z");
    assert_int_equal(partmap_resolve_all(find, NULL, all, big, LATER, &m, why, sizeof why), 2);
    assert_non_null(strstr(why, "at most 1024 partitions and the upstream has 1025"));
    cmem_free(text);
    partmap_input_clear(&m);
    json_decref(big);
    json_decref(sp);
    json_decref(all);
    json_decref(tiled);
    json_decref(ident);
    json_decref(in);
    world_clear();
}

/* Every allocation of a LastN resolution and its expansion failing in
 * turn: CERR_NOMEM, nothing leaked. */
static void out_of_memory(void **state)
{
    (void)state;
    daily_world();
    json_t *parts = json_loads(DAYS10, 0, NULL);
    json_t *in = json_pack("{s:s,s:s,s:{s:s,s:i}}", "name", "src", "from", "daily",
                           "partitionMapping", "type", "LastN", "count", 3);
    part_plan *pp = NULL;
    part_info pi;
    assert_int_equal(part_plan_decode(parts, &pp, NULL), 0);
    assert_int_equal(part_plan_at(pp, 5, LATER, &pi), 0);
    char why[320];
    for (unsigned long n = 1;; n++) {
        partmap_input m = {0};
        long live = cmem_live();
        json_t *task = json_pack("{s:[{s:s}]}", "inputs", "name", "src");
        cmem_fail_at(n);
        int rc = partmap_resolve(find, NULL, parts, in, &pi, LATER, &m, why, sizeof why);
        if (!rc) rc = partmap_expand_task(task, 0, "src", &m, why, sizeof why);
        cmem_fail_at(0);
        partmap_input_clear(&m);
        json_decref(task);
        assert_int_equal(cmem_live(), live);
        if (!rc) break;
        if (rc != CERR_NOMEM) fail_msg("allocation %lu: rc %d: %s", n, rc, why);
        cerr_clear();
    }
    part_plan_free(pp);
    json_decref(in);
    json_decref(parts);
    world_clear();
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(templated_source_per_day),
        cmocka_unit_test(refusals_and_names),
        cmocka_unit_test(last_n_windows),
        cmocka_unit_test(all_to_one),
        cmocka_unit_test(out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
