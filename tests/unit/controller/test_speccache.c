/*
 * test_speccache.c - the spec cache: an entry owns its copy of the spec
 * (the object it came from can go), {} params become NULL, hits on the
 * same generation and a fresh decode on a new one, an entry held across
 * its replacement, invalid specs cached with their error, forget, and
 * allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jschema.h"
#include "speccache.h"

#include <stdbool.h>
#include <string.h>

static const char task_schema_json[] =
#include "task_schema.inc"
    ;

static jschema *g_task;

static int setup(void **state)
{
    (void)state;
    cmem_init();
    const char *t[] = {task_schema_json};
    assert_int_equal(jschema_new_text(t, 1, &g_task), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jschema_free(g_task);
    return 0;
}

#define SLOPE                                                                                      \
    "{\"assetKey\":\"hydrology/dem_slope\",\"operation\":\"terrain\",\"params\":{\"mode\":"        \
    "\"slope\"},\"inputs\":[{\"name\":\"dem\",\"from\":\"dem-cog\"}],\"output\":{\"uri\":"         \
    "\"s3://assets\"},\"tags\":{\"pool\":\"cpu\"},\"retries\":{\"limit\":5}}"
#define COG                                                                                        \
    "{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"params\":{},\"inputs\":[{\"name\":\"dem\","     \
    "\"uri\":\"s3://raw/d.tif\"}],\"output\":{\"uri\":\"s3://assets\"}}"

static json_t *am_with(const char *uid, int generation, const char *spec)
{
    json_error_t e;
    json_t *s = json_loads(spec, 0, &e);
    if (!s) fail_msg("spec JSON: %s", e.text);
    json_t *am = json_pack("{s:{s:s, s:s, s:s, s:i}, s:o}", "metadata", "name", "dem-slope",
                           "namespace", "hydro", "uid", uid, "generation", generation, "spec", s);
    assert_non_null(am);
    return am;
}

static void owns_its_copy(void **state)
{
    (void)state;
    speccache *c = speccache_new(g_task);
    assert_non_null(c);
    json_t *am = am_with("u1", 2, SLOPE);
    const spec_entry *e = NULL;
    assert_int_equal(speccache_get(c, am, &e), 0);
    json_decref(am); /* the entry needs nothing of the object */
    assert_non_null(e->spec);
    assert_null(e->err);
    const am_spec *s = e->spec;
    assert_string_equal(s->name, "dem-slope");
    assert_string_equal(s->namespace_, "hydro");
    assert_int_equal(s->generation, 2);
    assert_string_equal(s->asset_key, "hydrology/dem_slope");
    assert_string_equal(s->operation, "terrain");
    assert_string_equal(s->output_uri, "s3://assets");
    assert_int_equal(s->n_inputs, 1);
    assert_string_equal(s->inputs[0].name, "dem");
    assert_string_equal(s->inputs[0].from, "dem-cog");
    assert_null(s->inputs[0].uri);
    assert_string_equal(json_string_value(json_object_get(s->params, "mode")), "slope");
    assert_string_equal(json_string_value(json_object_get(s->tags, "pool")), "cpu");
    assert_null(s->resources);
    assert_null(s->partitions);
    assert_int_equal(s->retry_limit, 5);
    speccache_put(c, e);
    speccache_free(c);
}

static void empty_params_are_null(void **state)
{
    (void)state;
    speccache *c = speccache_new(g_task);
    json_t *am = am_with("u1", 1, COG);
    const spec_entry *e = NULL;
    assert_int_equal(speccache_get(c, am, &e), 0);
    json_decref(am);
    assert_non_null(e->spec);
    assert_null(e->spec->params);
    assert_string_equal(e->spec->inputs[0].uri, "s3://raw/d.tif");
    assert_null(e->spec->inputs[0].from);
    speccache_put(c, e);
    speccache_free(c);
}

static void hits_and_generations(void **state)
{
    (void)state;
    speccache *c = speccache_new(g_task);
    json_t *a1 = am_with("u1", 1, COG), *a2 = am_with("u1", 2, SLOPE);
    const spec_entry *e1 = NULL, *again = NULL, *e2 = NULL;
    assert_int_equal(speccache_get(c, a1, &e1), 0);
    assert_int_equal(speccache_get(c, a1, &again), 0);
    assert_ptr_equal(e1, again);
    speccache_stats st;
    speccache_stats_get(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 1);
    /* a new generation replaces the entry; the one held stays readable */
    assert_int_equal(speccache_get(c, a2, &e2), 0);
    assert_ptr_not_equal(e1, e2);
    assert_string_equal(e1->spec->operation, "cog");
    assert_string_equal(e2->spec->operation, "terrain");
    speccache_put(c, e1);
    speccache_put(c, again);
    /* an older generation read late does not replace the newer entry */
    const spec_entry *late = NULL;
    assert_int_equal(speccache_get(c, a1, &late), 0);
    assert_string_equal(late->spec->operation, "terrain");
    speccache_put(c, late);
    speccache_put(c, e2);
    speccache_forget(c, "u1");
    speccache_stats_get(c, &st);
    assert_int_equal(st.entries, 0);
    json_decref(a1);
    json_decref(a2);
    speccache_free(c);
}

static void invalid_spec_is_an_entry(void **state)
{
    (void)state;
    speccache *c = speccache_new(g_task);
    json_t *am = am_with("u1", 1,
                         "{\"assetKey\":\"a/b\",\"operation\":\"terrain\",\"params\":{\"mode\":"
                         "\"nope\"},\"inputs\":[{\"name\":\"dem\",\"from\":\"up\"}],\"output\":{"
                         "\"uri\":\"s3://assets\"}}");
    const spec_entry *e = NULL, *again = NULL;
    assert_int_equal(speccache_get(c, am, &e), 0);
    assert_null(e->spec);
    assert_non_null(e->err);
    assert_string_equal(e->err->path, "spec.params.mode");
    assert_int_equal(speccache_get(c, am, &again), 0);
    assert_ptr_equal(e, again);
    speccache_put(c, e);
    speccache_put(c, again);
    json_decref(am);
    speccache_free(c);
}

static void out_of_memory(void **state)
{
    (void)state;
    json_t *am = am_with("u1", 1, SLOPE);
    long live = cmem_live();
    unsigned long n;
    for (n = 1;; n++) {
        speccache *c = speccache_new(g_task);
        assert_non_null(c);
        const spec_entry *e = NULL;
        unsigned long before = cmem_count();
        cmem_fail_at(n);
        int rc = speccache_get(c, am, &e);
        cmem_fail_at(0);
        bool reached = cmem_count() - before >= n;
        if (!rc) {
            assert_non_null(e->spec);
            assert_string_equal(e->spec->asset_key, "hydrology/dem_slope");
        }
        speccache_put(c, e);
        speccache_free(c);
        assert_int_equal(cmem_live(), live);
        if (!reached) {
            assert_int_equal(rc, 0);
            break;
        }
        if (rc) assert_int_equal(rc, CERR_NOMEM);
    }
    assert_true(n > 10);
    json_decref(am);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(owns_its_copy),        cmocka_unit_test(empty_params_are_null),
        cmocka_unit_test(hits_and_generations), cmocka_unit_test(invalid_spec_is_an_entry),
        cmocka_unit_test(out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
