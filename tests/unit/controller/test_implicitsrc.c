/*
 * test_implicitsrc.c - the names and objects of the sources of plain uri:
 * inputs: readable when they can be, distinct and valid when not, owned
 * by exactly one materialization.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "implicitsrc.h"
#include "kube/kobj.h"
#include "lib/cmem.h"
#include "spec.h"

#include <string.h>

static json_t *am_with(const char *name, const char *uid, const char *inputs)
{
    json_error_t e;
    json_t *in = json_loads(inputs, 0, &e);
    assert_non_null(in);
    json_t *am =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:i, s:{s:s}}, s:{s:s, s:s, s:o, "
                  "s:{s:s}}}",
                  "apiVersion", "terrane.io/v1alpha1", "kind", "AssetMaterialization", "metadata",
                  "name", name, "namespace", "hydro", "uid", uid, "generation", 1, "annotations",
                  "terrane.io/rerun", "t1", "spec", "assetKey", "lux/dem_cog", "operation", "cog",
                  "inputs", in, "output", "uri", "s3://assets");
    assert_non_null(am);
    return am;
}

static void names(void **state)
{
    (void)state;
    char a[IMPLICITSRC_NAME_MAX + 1], b[IMPLICITSRC_NAME_MAX + 1];
    implicitsrc_name("dem-cog", "dem", a, sizeof a);
    assert_string_equal(a, "dem-cog-in-dem");
    /* '_' is no DNS character: changed, so a hash keeps a_b and a-b apart */
    implicitsrc_name("dem-cog", "raw_dem", a, sizeof a);
    implicitsrc_name("dem-cog", "raw-dem", b, sizeof b);
    assert_string_equal(b, "dem-cog-in-raw-dem");
    assert_int_equal(strncmp(a, "dem-cog-in-raw-dem-", 19), 0);
    assert_int_equal(strlen(a), 19 + 10);
    /* too long: cut, still valid and at most 253 */
    char longname[254];
    memset(longname, 'x', 250);
    longname[250] = '\0';
    implicitsrc_name(longname, "dem", a, sizeof a);
    assert_true(strlen(a) <= IMPLICITSRC_NAME_MAX);
    assert_true(spec_is_dns_subdomain(a));
    implicitsrc_name(longname, "dem2", b, sizeof b);
    assert_string_not_equal(a, b);
}

static void build_and_owner(void **state)
{
    (void)state;
    json_t *am = am_with("dem-cog", "uid-1",
                         "[{\"name\":\"dem\",\"uri\":\"s3://raw/elev.tif\"},"
                         "{\"name\":\"local\",\"uri\":\"/data/x.tif\"}]");
    am_spec *s = NULL;
    assert_int_equal(spec_decode(am, NULL, &s, NULL), 0);
    assert_true(implicitsrc_applies(s, 0));
    assert_false(implicitsrc_applies(s, 1)); /* nothing to observe a path with */
    json_t *src = NULL;
    assert_int_equal(implicitsrc_build(am, s, 0, NULL, &src), 0);
    assert_string_equal(kobj_name(src), "dem-cog-in-dem");
    /* no pool: no observe at all (the default pool, observed on creation) */
    assert_null(json_object_get(json_object_get(src, "spec"), "observe"));
    assert_string_equal(kobj_namespace(src), "hydro");
    const json_t *spec = json_object_get(src, "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "uri")), "s3://raw/elev.tif");
    assert_string_equal(json_string_value(json_object_get(spec, "assetKey")),
                        "lux/dem_cog/inputs/dem");
    assert_string_equal(json_string_value(json_object_get(json_object_get(spec, "listing"), "uri")),
                        "s3://assets");
    assert_string_equal(kobj_label(src, IMPLICITSRC_L_FOR), "dem-cog");
    assert_true(implicitsrc_owned(src, am));
    json_t *other = am_with("dem-cog", "uid-2", "[]");
    assert_false(implicitsrc_owned(src, other)); /* a re-created asset of that name */
    assert_false(implicitsrc_owned(src, NULL));
    json_decref(other);
    json_decref(src);
    spec_free(s);
    json_decref(am);
}

/* The asset's pool: its sources are observed where its pods run, with a
 * pool and no schedule (valid for the AssetSource CRD). */
static void pool_of_the_asset(void **state)
{
    (void)state;
    static const char POOLS[] = "{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{},\"highmem\":{}}}";
    pools *ps = NULL;
    assert_int_equal(pools_load_bytes(POOLS, strlen(POOLS), &ps), 0);
    json_t *am = am_with("dem-cog", "uid-1", "[{\"name\":\"dem\",\"uri\":\"s3://raw/e.tif\"}]");
    am_spec *s = NULL;
    assert_int_equal(spec_decode(am, NULL, &s, NULL), 0);
    assert_string_equal(implicitsrc_pool(ps, s), "cpu"); /* no tag: the default pool */
    spec_free(s);
    json_object_set_new(json_object_get(am, "spec"), "tags",
                        json_pack("{s:s}", "terrane.io/pool", "highmem"));
    assert_int_equal(spec_decode(am, NULL, &s, NULL), 0);
    const char *pname = implicitsrc_pool(ps, s);
    assert_string_equal(pname, "highmem");
    json_t *src = NULL;
    assert_int_equal(implicitsrc_build(am, s, 0, pname, &src), 0);
    const json_t *obs = json_object_get(json_object_get(src, "spec"), "observe");
    assert_string_equal(json_string_value(json_object_get(obs, "pool")), "highmem");
    assert_int_equal(json_object_size(obs), 1); /* no schedule */
    json_decref(src);
    spec_free(s);
    json_object_set_new(json_object_get(am, "spec"), "tags",
                        json_pack("{s:s}", "terrane.io/pool", "nowhere"));
    assert_int_equal(spec_decode(am, NULL, &s, NULL), 0);
    assert_null(implicitsrc_pool(ps, s)); /* the asset fails UnknownPool */
    spec_free(s);
    json_decref(am);
    pools_free(ps);
}

static void out_of_memory(void **state)
{
    (void)state;
    json_t *am = am_with("dem-cog", "uid-1", "[{\"name\":\"dem\",\"uri\":\"s3://raw/e.tif\"}]");
    am_spec *s = NULL;
    assert_int_equal(spec_decode(am, NULL, &s, NULL), 0);
    long live = cmem_live();
    for (unsigned long n = 1; n < 64; n++) {
        json_t *src = NULL;
        cmem_fail_at(n);
        int rc = implicitsrc_build(am, s, 0, "highmem", &src);
        cmem_fail_at(0);
        if (rc) assert_null(src);
        json_decref(src);
        assert_int_equal(cmem_live(), live);
        if (!rc) break;
    }
    spec_free(s);
    json_decref(am);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {cmocka_unit_test(names), cmocka_unit_test(build_and_owner),
                                       cmocka_unit_test(pool_of_the_asset),
                                       cmocka_unit_test(out_of_memory)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
