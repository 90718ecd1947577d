/* Unit tests: task decoding, envelope checks and allocation-failure paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "err.h"
#include "mem.h"
#include "op.h"
#include "task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DV "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char *good =
    "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Task\",\"namespace\":\"hydro\","
    "\"name\":\"dem-slope\",\"assetKey\":\"hydrology/dem_slope\",\"dataVersion\":\"" DV "\","
    "\"operation\":\"terrain\",\"params\":{\"mode\":\"slope\",\"scale\":111120},"
    "\"inputs\":[{\"name\":\"dem\",\"uri\":\"s3://assets/x/asset.tif\",\"assetKey\":\"hydrology/"
    "dem\",\"dataVersion\":\"" DV "\",\"stacItem\":\"s3://assets/x/item.json\"}],"
    "\"output\":{\"uri\":\"s3://assets/hydro/\"},\"attempt\":2}";

static int setup(void **state)
{
    (void)state;
    mem_init();
    err_clear();
    setenv("TERRANE_ALLOWED_BUCKETS", "*", 1);
    return 0;
}

static void decode_good(void **state)
{
    (void)state;
    task *t = NULL;
    assert_int_equal(task_decode(good, strlen(good), &t), 0);
    assert_non_null(t);
    assert_string_equal(t->namespace_, "hydro");
    assert_string_equal(t->asset_key, "hydrology/dem_slope");
    assert_string_equal(t->operation, "terrain");
    assert_ptr_equal(t->op, op_find("terrain"));
    assert_int_equal(t->n_inputs, 1);
    assert_string_equal(t->inputs[0].name, "dem");
    assert_string_equal(t->inputs[0].data_version, DV);
    assert_string_equal(t->output_uri, "s3://assets/hydro"); /* trailing slash dropped */
    assert_int_equal(t->attempt, 2);
    assert_string_equal(task_data_version_hex(t), &DV[7]);
    assert_ptr_equal(task_input_find(t, "dem"), &t->inputs[0]);
    assert_null(task_input_find(t, "nope"));
    task_free(t);
}

/* Replaces the first occurrence of from in good by to, decodes, and checks
 * the error names field. */
static void expect_field(const char *from, const char *to, const char *field)
{
    char doc[4096];
    const char *at = strstr(good, from);
    assert_non_null(at);
    snprintf(doc, sizeof doc, "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
    task *t = NULL;
    err_clear();
    int rc = task_decode(doc, strlen(doc), &t);
    if (rc == 0) {
        rc = task_validate(t);
        task_free(t);
    } else {
        assert_null(t);
    }
    if (rc == 0 || strcmp(err_get_field(), field) != 0)
        fail_msg("replacing %s by %s: expected an error naming %s, got rc=%d field=%s msg=%s", from,
                 to, field, rc, err_get_field(), err_get_message());
    assert_int_equal(err_get_class(), ERR_BAD_INPUT);
    assert_non_null(strstr(err_get_message(), field));
}

static void envelope_errors(void **state)
{
    (void)state;
    expect_field("terrane.io/v1", "terrane.io/v2", "apiVersion");
    expect_field("\"Task\"", "\"Result\"", "kind");
    expect_field("\"hydro\"", "\"Hydro_NS\"", "namespace");
    expect_field("\"dem-slope\"", "\"Dem Slope\"", "name");
    expect_field("hydrology/dem_slope", "../etc/passwd", "assetKey");
    expect_field("hydrology/dem_slope", "a//b", "assetKey");
    expect_field("hydrology/dem_slope", "a/./b", "assetKey");
    expect_field("\"dataVersion\":\"sha256:0123", "\"dataVersion\":\"md5:0123", "dataVersion");
    expect_field("\"terrain\"", "\"teRRain\"", "operation");
    expect_field("{\"mode\":\"slope\",\"scale\":111120}", "[\"slope\"]", "params");
    expect_field("\"name\":\"dem\"", "\"name\":\"1dem\"", "inputs[0].name");
    expect_field("\"uri\":\"s3://assets/x/asset.tif\"", "\"uri\":7", "inputs[0].uri");
    expect_field("\"uri\":\"s3://assets/x/asset.tif\"", "\"uri\":\"file:///etc/passwd\"",
                 "inputs[0].uri");
    expect_field("\"uri\":\"s3://assets/x/asset.tif\"", "\"uri\":\"/vsicurl/http://x/y\"",
                 "inputs[0].uri");
    expect_field("\"stacItem\"", "\"stacitem\"", "inputs[0].stacitem");
    expect_field("\"attempt\":2", "\"attempt\":0", "attempt");
    expect_field("\"attempt\":2", "\"attempt\":2,\"extra\":1", "extra");
    expect_field("\"output\":{\"uri\":\"s3://assets/hydro/\"}", "\"output\":{}", "output.uri");
    expect_field("\"output\":{\"uri\":\"s3://assets/hydro/\"}",
                 "\"output\":{\"uri\":\"s3://Bad_Bucket/x\"}", "output.uri");
    expect_field("\"scale\":111120", "\"scale\":\"big\"", "params.scale");
    expect_field("\"scale\":111120", "\"scael\":1", "params.scael");
    expect_field("\"mode\":\"slope\"", "\"mode\":\"curvature\"", "params.mode");
    expect_field("\"mode\":\"slope\",", "", "params.mode");
}

static void duplicate_input_names(void **state)
{
    (void)state;
    expect_field("}],", "},{\"name\":\"dem\",\"uri\":\"s3://assets/y.tif\"}],", "inputs[1].name");
}

static void invalid_json_names_offset(void **state)
{
    (void)state;
    task *t = NULL;
    const char *doc = "{\"apiVersion\": \"terrane.io/v1\", \"kind\": }";
    assert_int_equal(task_decode(doc, strlen(doc), &t), -1);
    assert_null(t);
    assert_string_equal(err_get_field(), "task");
    assert_non_null(strstr(err_get_message(), "at byte 40"));
    /* trailing garbage after the document */
    char buf[4096];
    snprintf(buf, sizeof buf, "%s xyz", good);
    assert_int_equal(task_decode(buf, strlen(buf), &t), -1);
    /* embedded NUL */
    assert_int_equal(task_decode("{}\0{}", 5, &t), -1);
    assert_non_null(strstr(err_get_message(), "NUL"));
}

static void too_large(void **state)
{
    (void)state;
    size_t n = 200 * 1024;
    char *big = malloc(n);
    memset(big, ' ', n);
    task *t = NULL;
    assert_int_equal(task_decode(big, n, &t), -1);
    assert_non_null(strstr(err_get_message(), "limit"));
    free(big);
}

static void asset_keys(void **state)
{
    (void)state;
    assert_true(task_asset_key_valid("a"));
    assert_true(task_asset_key_valid("hydrology/dem_slope.v2"));
    assert_true(task_asset_key_valid("a/..b/c"));
    assert_false(task_asset_key_valid(""));
    assert_false(task_asset_key_valid("/a"));
    assert_false(task_asset_key_valid("a/"));
    assert_false(task_asset_key_valid("a/../b"));
    assert_false(task_asset_key_valid(".."));
    assert_false(task_asset_key_valid("a b"));
    assert_false(task_asset_key_valid("a\\b"));
}

/* Every allocation made while decoding can fail: the decoder must report
 * out-of-memory (or an error) and leak nothing (checked under ASan). */
static void allocation_failures(void **state)
{
    (void)state;
    unsigned long before = mem_count();
    task *t = NULL;
    assert_int_equal(task_decode(good, strlen(good), &t), 0);
    task_free(t);
    unsigned long needed = mem_count() - before;
    assert_true(needed > 10);
    for (unsigned long i = 1; i <= needed; i++) {
        t = NULL;
        err_clear();
        mem_fail_at(i);
        int rc = task_decode(good, strlen(good), &t);
        mem_fail_at(0);
        if (rc == 0) {
            task_free(t);
            fail_msg("allocation %lu of %lu failed but decode succeeded", i, needed);
        }
        assert_null(t);
        assert_true(err_is_set());
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(decode_good, setup),
        cmocka_unit_test_setup(envelope_errors, setup),
        cmocka_unit_test_setup(duplicate_input_names, setup),
        cmocka_unit_test_setup(invalid_json_names_offset, setup),
        cmocka_unit_test_setup(too_large, setup),
        cmocka_unit_test_setup(asset_keys, setup),
        cmocka_unit_test_setup(allocation_failures, setup),
    };
    return cmocka_run_group_tests_name("task", tests, NULL, NULL);
}
