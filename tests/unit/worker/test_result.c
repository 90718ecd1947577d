/* Unit tests: the result document always fits the termination message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "err.h"
#include "mem.h"
#include "result.h"
#include "terrane_proto.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    mem_init();
    err_clear();
    return 0;
}

static void success_document(void **state)
{
    (void)state;
    result r = {.asset_key = "a/b",
                .data_version = "sha256:00",
                .size_bytes = 123456789012ULL,
                .cache_hit = true,
                .total_ms = 5};
    snprintf(r.output_uri, sizeof r.output_uri, "s3://x/a/b/00/asset.tif");
    snprintf(r.checksum, sizeof r.checksum, "1220%064d", 0);
    char buf[TERRANE_TERMINATION_MAX];
    size_t n = result_render(&r, buf, sizeof buf);
    assert_true(n > 0 && n < sizeof buf);
    cJSON *doc = cJSON_Parse(buf);
    assert_non_null(doc);
    assert_string_equal(cJSON_GetObjectItem(doc, "status")->valuestring, "Succeeded");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "cacheHit")));
    cJSON *out = cJSON_GetObjectItem(doc, "output");
    assert_true(cJSON_GetObjectItem(out, "sizeBytes")->valuedouble == 123456789012.0);
    assert_null(cJSON_GetObjectItem(doc, "error"));
    cJSON_Delete(doc);
}

static void long_error_is_shortened(void **state)
{
    (void)state;
    char longmsg[1400];
    memset(longmsg, 'x', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    /* quotes and control characters expand when escaped */
    for (size_t i = 0; i < sizeof longmsg - 1; i += 3)
        longmsg[i] = i % 2 ? '"' : '\x01';
    err_set(ERR_TRANSIENT, ERR_S3_SERVER, "output.uri", "%s", longmsg);
    result r = {.asset_key = "a", .data_version = "sha256:00"};
    char buf[TERRANE_TERMINATION_MAX];
    size_t n = result_render(&r, buf, sizeof buf);
    assert_true(n < TERRANE_TERMINATION_MAX);
    cJSON *doc = cJSON_Parse(buf);
    assert_non_null(doc);
    cJSON *e = cJSON_GetObjectItem(doc, "error");
    assert_string_equal(cJSON_GetObjectItem(e, "class")->valuestring, "Transient");
    assert_string_equal(cJSON_GetObjectItem(e, "code")->valuestring, ERR_S3_SERVER);
    assert_string_equal(cJSON_GetObjectItem(e, "field")->valuestring, "output.uri");
    assert_null(cJSON_GetObjectItem(doc, "output"));
    cJSON_Delete(doc);
}

static void exit_codes(void **state)
{
    (void)state;
    assert_int_equal(err_exit_code(), TERRANE_EXIT_OK);
    err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, NULL, "x");
    assert_int_equal(err_exit_code(), TERRANE_EXIT_BAD_INPUT);
    err_set(ERR_TRANSIENT, ERR_S3_SERVER, NULL, "x");
    assert_int_equal(err_exit_code(), TERRANE_EXIT_TRANSIENT);
    err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "x");
    assert_int_equal(err_exit_code(), TERRANE_EXIT_INTERNAL);
    err_prefix("upload %s", "s3://b/k");
    assert_string_equal(err_get_message(), "upload s3://b/k: x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(success_document, setup),
        cmocka_unit_test_setup(long_error_is_shortened, setup),
        cmocka_unit_test_setup(exit_codes, setup),
    };
    return cmocka_run_group_tests_name("result", tests, NULL, NULL);
}
