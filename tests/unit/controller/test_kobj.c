/*
 * test_kobj.c - Kubernetes object accessors: metadata (lenient and
 * strict), ownerReferences, conditions with metav1.Condition's
 * lastTransitionTime rule, metav1.Status decoding, RFC 3339 times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <string.h>

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    if (!j) fail_msg("bad test JSON at %d: %s", e.position, e.text);
    return j;
}

static void assert_error_contains(const char *needle)
{
    if (!strstr(cerr_message(), needle))
        fail_msg("error message \"%s\" does not contain \"%s\"", cerr_message(), needle);
}

/* --- metadata ---------------------------------------------------------------- */

static const char am[] =
    "{\"apiVersion\":\"terrane.io/v1alpha1\",\"kind\":\"AssetMaterialization\","
    "\"metadata\":{\"namespace\":\"hydro\",\"name\":\"dem-slope\",\"uid\":\"u-1\","
    "\"resourceVersion\":\"42\",\"generation\":3,\"labels\":{\"app\":\"t\"},"
    "\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"c\",\"uid\":\"u-"
    "0\"},"
    "{\"apiVersion\":\"terrane.io/"
    "v1alpha1\",\"kind\":\"AssetMaterialization\",\"name\":\"dem-cog\","
    "\"uid\":\"u-2\",\"controller\":true,\"blockOwnerDeletion\":true}]},"
    "\"status\":{}}";

static void metadata_accessors(void **state)
{
    (void)state;
    json_t *o = parse(am);
    assert_string_equal(kobj_namespace(o), "hydro");
    assert_string_equal(kobj_name(o), "dem-slope");
    assert_string_equal(kobj_uid(o), "u-1");
    assert_string_equal(kobj_resource_version(o), "42");
    assert_int_equal(kobj_generation(o), 3);
    assert_string_equal(kobj_label(o, "app"), "t");
    assert_null(kobj_label(o, "nope"));
    assert_false(kobj_is_deleting(o));
    char key[64];
    assert_int_equal(kobj_key(o, key, sizeof key), 0);
    assert_string_equal(key, "hydro/dem-slope");
    assert_int_equal(kobj_key(o, key, 8), CERR_TOOBIG);
    assert_string_equal(key, "");
    kobj_meta m;
    assert_int_equal(kobj_meta_decode(o, &m), 0);
    assert_string_equal(m.name, "dem-slope");
    assert_int_equal(m.generation, 3);
    assert_non_null(m.labels);
    assert_null(m.annotations);
    assert_int_equal(json_array_size(m.owner_references), 2);
    json_decref(o);
}

static void metadata_of_wrong_types_reads_as_absent(void **state)
{
    (void)state;
    const char *docs[] = {
        ("{\"metadata\":{\"namespace\":1,\"name\":[],\"uid\":{},\"resourceVersion\":7,"
         "\"generation\":\"3\",\"labels\":[\"a\"],\"deletionTimestamp\":false}}"),
        "{\"metadata\":\"x\"}",
        "{\"metadata\":null}",
        "[]",
        "\"str\"",
        "{}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_t *o = parse(docs[i]);
        assert_null(kobj_namespace(o));
        assert_null(kobj_name(o));
        assert_null(kobj_uid(o));
        assert_null(kobj_resource_version(o));
        assert_int_equal(kobj_generation(o), 0);
        assert_null(kobj_labels(o));
        assert_null(kobj_label(o, "a"));
        assert_false(kobj_is_deleting(o));
        assert_int_equal(kobj_owner_ref_count(o), 0);
        char key[16];
        assert_int_equal(kobj_key(o, key, sizeof key), CERR_INVALID);
        json_decref(o);
    }
    assert_null(kobj_name(NULL));
}

static void cluster_scoped_key_is_the_name(void **state)
{
    (void)state;
    json_t *o = parse(
        "{\"metadata\":{\"name\":\"node-1\",\"deletionTimestamp\":\"2024-01-01T00:00:00Z\"}}");
    char key[32];
    assert_int_equal(kobj_key(o, key, sizeof key), 0);
    assert_string_equal(key, "node-1");
    assert_true(kobj_is_deleting(o));
    json_decref(o);
}

static void strict_decode_names_the_field(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *msg;
    } cases[] = {
        {"[]", "object: expected object, got array"},
        {"{}", "metadata: expected object, got nothing"},
        {"{\"metadata\":{\"name\":5}}", "metadata.name: expected string, got integer"},
        {"{\"metadata\":{\"resourceVersion\":5.5}}",
         "metadata.resourceVersion: expected string, got real"},
        {"{\"metadata\":{\"generation\":\"1\"}}",
         "metadata.generation: expected integer, got string"},
        {"{\"metadata\":{\"labels\":{\"app\":1}}}",
         "metadata.labels.app: expected string, got integer"},
        {"{\"metadata\":{\"annotations\":[]}}", "metadata.annotations: expected object, got array"},
        {"{\"metadata\":{\"ownerReferences\":{}}}",
         "metadata.ownerReferences: expected array, got object"},
        {"{\"metadata\":{\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"K\",\"name\":\"n\"}"
         "]}}",
         "metadata.ownerReferences[0].uid: expected non-empty string, got nothing"},
        {"{\"metadata\":{\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"K\",\"name\":\"n\","
         "\"uid\":\"u\","
         "\"controller\":\"yes\"}]}}",
         "metadata.ownerReferences[0].controller: expected boolean, got string"},
        {"{\"metadata\":{\"ownerReferences\":[1]}}",
         "metadata.ownerReferences[0]: expected object, got integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = parse(cases[i].doc);
        kobj_meta m;
        cerr_clear();
        assert_int_equal(kobj_meta_decode(o, &m), CERR_INVALID);
        assert_null(m.name);
        assert_error_contains(cases[i].msg);
        json_decref(o);
    }
}

static void owner_references(void **state)
{
    (void)state;
    json_t *o = parse(am);
    assert_int_equal(kobj_owner_ref_count(o), 2);
    kobj_owner_ref r;
    assert_int_equal(kobj_owner_ref_at(o, 0, &r), 0);
    assert_string_equal(r.kind, "ConfigMap");
    assert_false(r.controller);
    assert_int_equal(kobj_owner_ref_at(o, 2, &r), CERR_NOTFOUND);
    assert_int_equal(kobj_controller_ref(o, &r), 0);
    assert_string_equal(r.name, "dem-cog");
    assert_string_equal(r.uid, "u-2");
    assert_true(r.block_owner_deletion);

    json_t *n = kobj_owner_ref_new(&r);
    assert_non_null(n);
    assert_string_equal(json_string_value(json_object_get(n, "kind")), "AssetMaterialization");
    assert_true(json_is_true(json_object_get(n, "controller")));
    json_decref(n);
    kobj_owner_ref partial = {.kind = "Pod", .name = "p"};
    n = kobj_owner_ref_new(&partial);
    assert_null(json_object_get(n, "uid")); /* left out, not null */
    json_decref(n);
    json_decref(o);

    o = parse("{\"metadata\":{\"ownerReferences\":[{\"controller\":true},{\"apiVersion\":\"v1\","
              "\"kind\":\"K\",\"name\":\"n\",\"uid\":\"u\",\"controller\":false}]}}");
    assert_int_equal(kobj_controller_ref(o, &r), CERR_NOTFOUND); /* invalid one is not taken */
    json_decref(o);
}

/* --- conditions ------------------------------------------------------------- */

#define T0 ((time_t)1700000000) /* 2023-11-14T22:13:20Z */
#define T1 (T0 + 60)

static void condition_new_gets_now(void **state)
{
    (void)state;
    json_t *st = json_object();
    kobj_condition c = {.type = "Ready",
                        .status = "False",
                        .reason = "Waiting",
                        .message = "upstream dem-cog",
                        .observed_generation = 2};
    bool changed = false;
    assert_int_equal(kobj_cond_set(st, &c, T0, &changed), 0);
    assert_true(changed);
    kobj_condition got;
    assert_int_equal(kobj_cond_get(st, "Ready", &got), 0);
    assert_string_equal(got.status, "False");
    assert_string_equal(got.reason, "Waiting");
    assert_string_equal(got.message, "upstream dem-cog");
    assert_int_equal(got.observed_generation, 2);
    assert_string_equal(got.last_transition_time, "2023-11-14T22:13:20Z");
    assert_false(kobj_cond_is_true(st, "Ready"));
    assert_int_equal(kobj_cond_get(st, "Scheduled", &got), CERR_NOTFOUND);
    json_decref(st);
}

static void transition_time_changes_only_with_status(void **state)
{
    (void)state;
    json_t *st = json_object();
    kobj_condition c = {.type = "Ready", .status = "False", .reason = "Waiting", .message = "a"};
    bool changed;
    kobj_condition got;
    kobj_cond_set(st, &c, T0, &changed);

    /* Same status, new reason and message: updated, time kept. */
    c.reason = "Running";
    c.message = "pod p-1";
    c.observed_generation = 5;
    assert_int_equal(kobj_cond_set(st, &c, T1, &changed), 0);
    assert_true(changed);
    kobj_cond_get(st, "Ready", &got);
    assert_string_equal(got.reason, "Running");
    assert_int_equal(got.observed_generation, 5);
    assert_string_equal(got.last_transition_time, "2023-11-14T22:13:20Z");

    /* Nothing different: not changed, so no status write is needed. */
    assert_int_equal(kobj_cond_set(st, &c, T1 + 60, &changed), 0);
    assert_false(changed);

    /* Status flips: new time. */
    c.status = "True";
    c.reason = "Succeeded";
    assert_int_equal(kobj_cond_set(st, &c, T1, &changed), 0);
    assert_true(changed);
    kobj_cond_get(st, "Ready", &got);
    assert_string_equal(got.last_transition_time, "2023-11-14T22:14:20Z");
    assert_true(kobj_cond_is_true(st, "Ready"));

    /* An explicit time wins over now. */
    c.status = "Unknown";
    c.last_transition_time = "2020-01-01T00:00:00Z";
    kobj_cond_set(st, &c, T1, &changed);
    kobj_cond_get(st, "Ready", &got);
    assert_string_equal(got.last_transition_time, "2020-01-01T00:00:00Z");

    /* A second type is independent and appended. */
    kobj_condition s = {
        .type = "Scheduled", .status = "True", .reason = "PodCreated", .message = ""};
    kobj_cond_set(st, &s, T0, NULL);
    assert_int_equal(json_array_size(json_object_get(st, "conditions")), 2);
    kobj_cond_get(st, "Ready", &got);
    assert_string_equal(got.status, "Unknown");

    assert_int_equal(kobj_cond_remove(st, "Ready"), 0);
    assert_int_equal(kobj_cond_remove(st, "Ready"), CERR_NOTFOUND);
    assert_int_equal(json_array_size(json_object_get(st, "conditions")), 1);
    json_decref(st);
}

static void condition_validation(void **state)
{
    (void)state;
    json_t *st = json_object();
    static const struct {
        kobj_condition c;
        const char *msg;
    } bad[] = {
        {{.type = "", .status = "True", .reason = "R"}, "type"},
        {{.type = NULL, .status = "True", .reason = "R"}, "type"},
        {{.type = "Ready", .status = "true", .reason = "R"},
         "status must be True, False or Unknown"},
        {{.type = "Ready", .status = "True", .reason = ""}, "not CamelCase"},
        {{.type = "Ready", .status = "True", .reason = NULL}, "not CamelCase"},
        {{.type = "Ready", .status = "True", .reason = "has space"}, "not CamelCase"},
        {{.type = "Ready", .status = "True", .reason = "1Digit"}, "not CamelCase"},
        {{.type = "Ready", .status = "True", .reason = "Trailing:"}, "not CamelCase"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(kobj_cond_set(st, &bad[i].c, T0, NULL), CERR_INVALID);
        assert_error_contains(bad[i].msg);
    }
    kobj_condition ok = {.type = "Ready", .status = "True", .reason = "Done:With_Parts,1"};
    assert_int_equal(kobj_cond_set(st, &ok, T0, NULL), 0);
    assert_int_equal(json_array_size(json_object_get(st, "conditions")), 1);
    json_t *arr = json_array();
    assert_int_equal(kobj_cond_set(arr, &ok, T0, NULL), CERR_INVALID);
    json_decref(arr);
    json_decref(st);
}

static void conditions_of_wrong_types(void **state)
{
    (void)state;
    /* Junk entries are skipped by get and left alone by set. */
    json_t *st = parse("{\"conditions\":[1,\"x\",{\"type\":5},{\"type\":\"Ready\",\"status\":true,"
                       "\"observedGeneration\":\"2\",\"reason\":[]}]}");
    kobj_condition got;
    assert_int_equal(kobj_cond_get(st, "Ready", &got), 0);
    assert_null(got.status);
    assert_null(got.reason);
    assert_int_equal(got.observed_generation, 0);
    assert_false(kobj_cond_is_true(st, "Ready"));
    kobj_condition c = {.type = "Ready",
                        .status = "True",
                        .reason = "Ok",
                        .message = "m",
                        .observed_generation = 1};
    bool changed;
    assert_int_equal(kobj_cond_set(st, &c, T0, &changed), 0);
    assert_true(changed);
    assert_int_equal(kobj_cond_get(st, "Ready", &got), 0);
    assert_string_equal(got.status, "True");
    assert_string_equal(got.last_transition_time, "2023-11-14T22:13:20Z");
    assert_int_equal(got.observed_generation, 1);
    assert_int_equal(json_array_size(json_object_get(st, "conditions")), 4);
    json_decref(st);

    /* conditions that is not an array is replaced. */
    st = parse("{\"conditions\":{\"Ready\":true}}");
    assert_int_equal(kobj_cond_get(st, "Ready", &got), CERR_NOTFOUND);
    assert_int_equal(kobj_cond_set(st, &c, T0, NULL), 0);
    assert_true(json_is_array(json_object_get(st, "conditions")));
    assert_true(kobj_cond_is_true(st, "Ready"));
    json_decref(st);
    assert_int_equal(kobj_cond_get(NULL, "Ready", &got), CERR_NOTFOUND);
}

static void condition_set_out_of_memory_does_not_leak(void **state)
{
    (void)state;
    kobj_condition c = {.type = "Ready", .status = "True", .reason = "Ok", .message = "m"};
    int failed = 0;
    for (unsigned long n = 1; n < 50; n++) {
        json_t *st = json_object();
        long live = cmem_live();
        cmem_fail_at(n);
        int rc = kobj_cond_set(st, &c, T0, NULL);
        cmem_fail_at(0);
        json_decref(st);
        assert_true(cmem_live() < live); /* st and all it held are gone */
        if (rc == 0) break;
        assert_int_equal(rc, CERR_NOMEM);
        failed++;
    }
    assert_true(failed > 0);
}

/* --- metav1.Status ------------------------------------------------------------ */

static void status_decoding_and_codes(void **state)
{
    (void)state;
    json_t *o =
        parse("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":"
              "\"Operation cannot be fulfilled: the object has been modified\",\"reason\":"
              "\"Conflict\",\"code\":409}");
    kobj_status st;
    assert_int_equal(kobj_status_decode(o, &st), 0);
    assert_int_equal(st.code, 409);
    assert_string_equal(st.reason, "Conflict");
    assert_int_equal(kobj_status_cerr(&st), CERR_CONFLICT);
    assert_int_equal(kobj_status_set_error(&st), CERR_CONFLICT);
    assert_error_contains("Conflict (409): Operation cannot be fulfilled");
    json_decref(o);

    o = parse("{\"kind\":\"Status\",\"reason\":\"Expired\"}");
    kobj_status_decode(o, &st);
    assert_int_equal(st.code, 0);
    assert_int_equal(kobj_status_cerr(&st), CERR_GONE);
    json_decref(o);

    o = parse("{\"kind\":\"Pod\",\"code\":500}");
    assert_int_equal(kobj_status_decode(o, &st), CERR_INVALID);
    json_decref(o);
    o = parse("{\"code\":99999,\"reason\":1,\"message\":null}");
    assert_int_equal(kobj_status_decode(o, &st), 0);
    assert_int_equal(st.code, 0);
    assert_null(st.reason);
    assert_int_equal(kobj_status_set_error(&st), CERR_IO);
    assert_error_contains("Failure (0): no message");
    json_decref(o);
    assert_int_equal(kobj_status_decode(NULL, &st), CERR_INVALID);

    static const int codes[][2] = {
        {400, CERR_INVALID},  {422, CERR_INVALID}, {401, CERR_FORBIDDEN}, {403, CERR_FORBIDDEN},
        {404, CERR_NOTFOUND}, {408, CERR_TIMEOUT}, {409, CERR_CONFLICT},  {410, CERR_GONE},
        {429, CERR_AGAIN},    {500, CERR_AGAIN},   {503, CERR_AGAIN},     {504, CERR_AGAIN},
        {418, CERR_IO},       {0, CERR_IO},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_int_equal(kobj_http_cerr(codes[i][0]), codes[i][1]);
}

/* --- time ------------------------------------------------------------------- */

static void time_format_and_parse(void **state)
{
    (void)state;
    char buf[KOBJ_TIME_LEN];
    assert_int_equal(kobj_time_format(0, buf), 0);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    assert_int_equal(kobj_time_format(T0, buf), 0);
    assert_string_equal(buf, "2023-11-14T22:13:20Z");
    assert_int_equal(kobj_time_format((time_t)951782400, buf), 0); /* leap day 2000 */
    assert_string_equal(buf, "2000-02-29T00:00:00Z");

    struct timespec ts = {.tv_sec = T0, .tv_nsec = 123456789};
    char mbuf[KOBJ_MICROTIME_LEN];
    assert_int_equal(kobj_microtime_format(&ts, mbuf), 0);
    assert_string_equal(mbuf, "2023-11-14T22:13:20.123456Z");

    static const struct {
        const char *s;
        long long sec;
        long nsec;
    } good[] = {
        {"1970-01-01T00:00:00Z", 0, 0},
        {"2023-11-14T22:13:20Z", 1700000000, 0},
        {"2023-11-14t22:13:20z", 1700000000, 0},
        {"2023-11-14T23:13:20+01:00", 1700000000, 0},
        {"2023-11-14T17:43:20-04:30", 1700000000, 0},
        {"2023-11-14T22:13:20.5Z", 1700000000, 500000000},
        {"2023-11-14T22:13:20.123456789Z", 1700000000, 123456789},
        {"2024-02-29T00:00:00Z", 1709164800, 0},
        {"1969-12-31T23:59:59Z", -1, 0},
        {"2100-03-01T00:00:00Z", 4107542400LL, 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct timespec got;
        if (kobj_time_parse(good[i].s, &got)) fail_msg("%s: %s", good[i].s, cerr_message());
        assert_int_equal(got.tv_sec, good[i].sec);
        assert_int_equal(got.tv_nsec, good[i].nsec);
    }
    static const char *bad[] = {
        "",
        "2023-11-14",
        "2023-11-14T22:13:20",
        "2023-11-14 22:13:20Z",
        "2023-13-01T00:00:00Z",
        "2023-00-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2023-04-31T00:00:00Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:60:00Z",
        "2023-11-14T22:13:60Z",
        "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20.1234567890Z",
        "2023-11-14T22:13:20+0100",
        "2023-11-14T22:13:20+24:00",
        "2023-11-14T22:13:20Zjunk",
        "20231-11-14T22:13:20Z",
        "2023-1a-14T22:13:20Z",
        "-023-11-14T22:13:20Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct timespec got;
        if (kobj_time_parse(bad[i], &got) != CERR_INVALID) fail_msg("accepted \"%s\"", bad[i]);
    }
    struct timespec got;
    assert_int_equal(kobj_time_parse(NULL, &got), CERR_INVALID);

    /* Round trip over a range of times. */
    for (long long t = -86400LL * 366 * 3; t < 86400LL * 366 * 80; t += 86400LL * 37 + 3607) {
        assert_int_equal(kobj_time_format((time_t)t, buf), 0);
        assert_int_equal(kobj_time_parse(buf, &got), 0);
        assert_int_equal(got.tv_sec, t);
    }
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metadata_accessors),
        cmocka_unit_test(metadata_of_wrong_types_reads_as_absent),
        cmocka_unit_test(cluster_scoped_key_is_the_name),
        cmocka_unit_test(strict_decode_names_the_field),
        cmocka_unit_test(owner_references),
        cmocka_unit_test(condition_new_gets_now),
        cmocka_unit_test(transition_time_changes_only_with_status),
        cmocka_unit_test(condition_validation),
        cmocka_unit_test(conditions_of_wrong_types),
        cmocka_unit_test(condition_set_out_of_memory_does_not_leak),
        cmocka_unit_test(status_decoding_and_codes),
        cmocka_unit_test(time_format_and_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
