/*
 * test_dataversion.c - canonical JSON and data versions: independence from
 * key order and input order, number normalisation, string escaping, the
 * documented test vector (its hash computed independently), validation,
 * and no leaks on allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dataversion.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <string.h>

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j) fail_msg("bad test JSON \"%s\": %s", s, e.text);
    return j;
}

static void assert_canonical(const char *in, const char *want)
{
    json_t *j = parse(in);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(dv_canonical(j, &out, &len), 0);
    if (strcmp(out, want) != 0) fail_msg("canonical(%s) = %s, want %s", in, out, want);
    assert_int_equal(len, strlen(want));
    cmem_free(out);
    json_decref(j);
}

static const char DV_A[] =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static void dv_of(const char *params, const dv_input *in, size_t n, char out[DV_LEN + 1])
{
    json_t *p = params ? parse(params) : NULL;
    if (dv_compute("terrain", p, in, n, "0.1.0", out)) fail_msg("dv_compute: %s", cerr_message());
    json_decref(p);
}

static void canonical_forms(void **state)
{
    (void)state;
    assert_canonical("{\"b\":1,\"a\":{\"d\":[3,2,1],\"c\":null}}",
                     "{\"a\":{\"c\":null,\"d\":[3,2,1]},\"b\":1}");
    assert_canonical("{ \"x\" : [ true , false ] }", "{\"x\":[true,false]}");
    assert_canonical("{}", "{}");
    assert_canonical("[]", "[]");
    /* byte order of UTF-8 keys; a prefix sorts first */
    assert_canonical("{\"\\u00e9\":1,\"z\":2,\"Z\":3,\"ab\":4,\"a\":5}",
                     "{\"Z\":3,\"a\":5,\"ab\":4,\"z\":2,\"\xc3\xa9\":1}");
    /* strings: minimal escaping */
    assert_canonical("\"a\\/b \\u00e9 \\\" \\\\ \\n\\t\\r\\b\\f \\u0001 \\u001f \\u007f\"",
                     "\"a/b \xc3\xa9 \\\" \\\\ \\n\\t\\r\\b\\f \\u0001 \\u001f \x7f\"");
    assert_canonical("\"nul\\u0000byte\"", "\"nul\\u0000byte\"");
    /* numbers */
    assert_canonical(
        "[1, 1.0, 1e0, 10e-1, 100E-2, -0.0, 0, -3, 2.50, 0.1, 1.5e-7, 1e300, 123456789.25]",
        "[1,1,1,1,1,0,0,-3,2.5,0.1,1.5e-7,1e300,123456789.25]");
    /* integral reals of magnitude 2^63 and more keep the %g form */
    assert_canonical("[1e21, -1e22, 9007199254740993, 0.30000000000000004, 5e-324]",
                     "[1e21,-1e22,9007199254740993,0.30000000000000004,5e-324]");
}

static void test_vector(void **state)
{
    (void)state;
    /* The example in dataversion.h; the hash was computed with Python's
     * hashlib over the canonical string below, not with this code. */
    const char *canon =
        "{\"codeVersion\":\"0.1.0\",\"format\":1,\"inputs\":[{\"dataVersion\":"
        "\"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
        "\"name\":\"dem\"},{\"name\":\"mask\",\"uri\":\"s3://raw/catchments.gpkg\"}],"
        "\"operation\":\"terrain\",\"params\":{\"mode\":\"slope\",\"scale\":1}}";
    json_t *doc =
        parse("{\"params\":{\"scale\":1,\"mode\":\"slope\"},\"operation\":\"terrain\","
              "\"inputs\":[{\"name\":\"dem\",\"dataVersion\":\"sha256:"
              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},"
              "{\"uri\":\"s3://raw/"
              "catchments.gpkg\",\"name\":\"mask\"}],\"format\":1,\"codeVersion\":\"0.1.0\"}");
    char *out;
    assert_int_equal(dv_canonical(doc, &out, NULL), 0);
    assert_string_equal(out, canon);
    cmem_free(out);
    json_decref(doc);

    dv_input in[] = {{.name = "mask", .uri = "s3://raw/catchments.gpkg"},
                     {.name = "dem", .data_version = DV_A}};
    char dv[DV_LEN + 1];
    dv_of("{\"scale\": 1.0, \"mode\": \"slope\"}", in, 2, dv);
    assert_string_equal(dv,
                        "sha256:d004177eec7652f26fab489a3927daadbd8be1a18cd5e44af55db231700a326b");
    assert_true(dv_valid(dv));
    char s[DV_SHORT_LEN + 1];
    assert_int_equal(dv_short(dv, s), 0);
    assert_string_equal(s, "d004177eec76");
}

static void independent_of_key_order_and_number_spelling(void **state)
{
    (void)state;
    dv_input in[] = {{.name = "dem", .data_version = DV_A}};
    char a[DV_LEN + 1], b[DV_LEN + 1], c[DV_LEN + 1];
    dv_of("{\"mode\":\"slope\",\"scale\":1,\"opts\":{\"x\":0.5,\"y\":[1,2]}}", in, 1, a);
    dv_of("{\"opts\":{\"y\":[1.0,2e0],\"x\":5e-1},\"scale\":1.0,\"mode\":\"slope\"}", in, 1, b);
    dv_of("{ \"scale\" : 10E-1 , \"opts\" : { \"x\" : 0.50 , \"y\" : [ 1 , 2 ] } , \"mode\" : "
          "\"slope\" }",
          in, 1, c);
    assert_string_equal(a, b);
    assert_string_equal(a, c);
    /* but array order and values matter */
    dv_of("{\"mode\":\"slope\",\"scale\":1,\"opts\":{\"x\":0.5,\"y\":[2,1]}}", in, 1, b);
    assert_string_not_equal(a, b);
    dv_of("{\"mode\":\"slope\",\"scale\":1.000001,\"opts\":{\"x\":0.5,\"y\":[1,2]}}", in, 1, b);
    assert_string_not_equal(a, b);
    dv_of("{\"mode\":\"slope\",\"scale\":\"1\",\"opts\":{\"x\":0.5,\"y\":[1,2]}}", in, 1, b);
    assert_string_not_equal(a, b);
}

static void independent_of_input_order(void **state)
{
    (void)state;
    dv_input in1[] = {{.name = "a", .data_version = DV_A},
                      {.name = "b", .uri = "s3://x/b.tif"},
                      {.name = "c", .uri = "s3://x/c.tif"}};
    dv_input in2[] = {in1[2], in1[0], in1[1]};
    char x[DV_LEN + 1], y[DV_LEN + 1];
    dv_of("{}", in1, 3, x);
    dv_of("{}", in2, 3, y);
    assert_string_equal(x, y);
    assert_string_equal(in2[0].name, "c"); /* the caller's array is untouched */
    /* swapping which input gets which source changes it */
    dv_input in3[] = {{.name = "a", .data_version = DV_A},
                      {.name = "b", .uri = "s3://x/c.tif"},
                      {.name = "c", .uri = "s3://x/b.tif"}};
    dv_of("{}", in3, 3, y);
    assert_string_not_equal(x, y);
}

static void every_ingredient_counts(void **state)
{
    (void)state;
    dv_input up[] = {{.name = "dem", .data_version = DV_A}};
    dv_input up2[] = {
        {.name = "dem",
         .data_version =
             "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}};
    dv_input ext[] = {{.name = "dem", .uri = DV_A}}; /* same string, but a uri */
    dv_input renamed[] = {{.name = "elevation", .data_version = DV_A}};
    char base[DV_LEN + 1], other[DV_LEN + 1];
    dv_of("{}", up, 1, base);
    dv_of("{}", up2, 1, other);
    assert_string_not_equal(base, other);
    dv_of("{}", ext, 1, other);
    assert_string_not_equal(base, other);
    dv_of("{}", renamed, 1, other);
    assert_string_not_equal(base, other);
    dv_of(NULL, up, 1, other); /* no params is the same as {} */
    assert_string_equal(base, other);
    assert_int_equal(dv_compute("warp", NULL, up, 1, "0.1.0", other), 0);
    assert_string_not_equal(base, other);
    assert_int_equal(dv_compute("terrain", NULL, up, 1, "0.1.1", other), 0);
    assert_string_not_equal(base, other);
    /* an upstream's uri is ignored when its data version is known */
    dv_input both[] = {{.name = "dem", .data_version = DV_A, .uri = "s3://anything"}};
    dv_of("{}", both, 1, other);
    assert_string_equal(base, other);
    /* stable across calls */
    dv_of("{}", up, 1, other);
    assert_string_equal(base, other);
}

static void invalid_arguments(void **state)
{
    (void)state;
    char dv[DV_LEN + 1];
    dv_input ok[] = {{.name = "a", .uri = "s3://b/k"}};
    dv_input dup[] = {{.name = "a", .uri = "s3://b/k"}, {.name = "a", .data_version = DV_A}};
    dv_input noname[] = {{.name = "", .uri = "s3://b/k"}};
    dv_input nosrc[] = {{.name = "a"}};
    json_t *arr = json_array();
    assert_int_equal(dv_compute("", NULL, ok, 1, "v", dv), CERR_INVALID);
    assert_int_equal(dv_compute(NULL, NULL, ok, 1, "v", dv), CERR_INVALID);
    assert_int_equal(dv_compute("op", NULL, ok, 1, "", dv), CERR_INVALID);
    assert_int_equal(dv_compute("op", arr, ok, 1, "v", dv), CERR_INVALID);
    assert_int_equal(dv_compute("op", NULL, dup, 2, "v", dv), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "input name a used twice"));
    assert_int_equal(dv_compute("op", NULL, noname, 1, "v", dv), CERR_INVALID);
    assert_int_equal(dv_compute("op", NULL, nosrc, 1, "v", dv), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "neither data version nor uri"));
    assert_string_equal(dv, "");
    assert_int_equal(dv_compute("op", NULL, NULL, 0, "v", dv), 0); /* no inputs is fine */
    assert_true(dv_valid(dv));
    json_decref(arr);

    /* nesting beyond the limit is refused, not a stack overflow */
    json_t *deep = json_array(), *cur = deep;
    for (int i = 0; i < 3000; i++) {
        json_t *n = json_array();
        json_array_append_new(cur, n);
        cur = n;
    }
    char *out = NULL;
    assert_int_equal(dv_canonical(deep, &out, NULL), CERR_INVALID);
    assert_null(out);
    json_decref(deep);
}

static void validity_and_short_form(void **state)
{
    (void)state;
    char s[DV_SHORT_LEN + 1];
    assert_true(dv_valid(DV_A));
    assert_false(dv_valid(NULL));
    assert_false(dv_valid("sha256:"));
    assert_false(
        dv_valid("sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_false(dv_valid("sha1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_false(
        dv_valid("sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_int_equal(
        dv_short("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", s), 0);
    assert_string_equal(s, "0123456789ab");
    assert_int_equal(dv_short("nope", s), CERR_INVALID);
    assert_string_equal(s, "");
}

static void out_of_memory_does_not_leak(void **state)
{
    (void)state;
    json_t *p = parse("{\"b\":[1,2,{\"c\":\"d\"}],\"a\":0.5}");
    dv_input in[] = {{.name = "y", .uri = "s3://b/y"}, {.name = "x", .data_version = DV_A}};
    char want[DV_LEN + 1], dv[DV_LEN + 1];
    assert_int_equal(dv_compute("op", p, in, 2, "v", want), 0);
    int failed = 0;
    for (unsigned long n = 1; n < 200; n++) {
        long live = cmem_live();
        cmem_fail_at(n);
        int rc = dv_compute("op", p, in, 2, "v", dv);
        cmem_fail_at(0);
        assert_int_equal(cmem_live(), live);
        if (rc == 0) {
            assert_string_equal(dv, want);
            break;
        }
        assert_true(rc == CERR_NOMEM || rc == CERR_INVALID); /* jansson's pack may say either */
        failed++;
    }
    assert_true(failed > 3);
    json_decref(p);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canonical_forms),
        cmocka_unit_test(test_vector),
        cmocka_unit_test(independent_of_key_order_and_number_spelling),
        cmocka_unit_test(independent_of_input_order),
        cmocka_unit_test(every_ingredient_counts),
        cmocka_unit_test(invalid_arguments),
        cmocka_unit_test(validity_and_short_form),
        cmocka_unit_test(out_of_memory_does_not_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
