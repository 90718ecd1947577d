/*
 * test_emf.c - the controller's CloudWatch Embedded Metric Format lines:
 * the structure the specification requires (every declared metric present
 * as a number, dimensions as strings), escaping of awkward asset keys,
 * optional metrics left out together with their declarations, one whole
 * line per write even from many threads, and allocation failures.
 *
 * With TERRANE_EMF_DUMP=FILE the suite also writes sample lines to FILE for
 * tests/lib/emf_check.py (tests/integration/test_metrics_promtool.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/emf.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int setup(void **state)
{
    (void)state;
    cmem_init();
    cmem_fail_at(0);
    return 0;
}

static json_t *parse(const char *line)
{
    json_error_t err;
    json_t *doc = json_loads(line, 0, &err);
    if (!doc) fail_msg("not JSON (%s): %s", err.text, line);
    return doc;
}

/* The specification's structure, and the declared metric names joined by
 * commas into names. */
static void check_structure(const json_t *doc, char *names, size_t cap)
{
    json_t *aws = json_object_get(doc, "_aws");
    assert_true(json_is_object(aws));
    assert_true(json_is_integer(json_object_get(aws, "Timestamp")));
    json_t *cwm = json_object_get(aws, "CloudWatchMetrics");
    assert_true(json_is_array(cwm));
    assert_int_equal(json_array_size(cwm), 1);
    json_t *d = json_array_get(cwm, 0);
    assert_string_equal(json_string_value(json_object_get(d, "Namespace")), EMF_NAMESPACE);
    json_t *dims = json_object_get(d, "Dimensions");
    assert_int_equal(json_array_size(dims), 1);
    json_t *set = json_array_get(dims, 0);
    assert_int_equal(json_array_size(set), 2);
    for (size_t i = 0; i < 2; i++) {
        const char *k = json_string_value(json_array_get(set, i));
        assert_non_null(k);
        assert_true(json_is_string(json_object_get(doc, k)));
    }
    assert_string_equal(json_string_value(json_array_get(set, 0)), "Pool");
    assert_string_equal(json_string_value(json_array_get(set, 1)), "Operation");
    names[0] = '\0';
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(d, "Metrics"), i, m)
    {
        const char *name = json_string_value(json_object_get(m, "Name"));
        assert_non_null(name);
        assert_non_null(json_string_value(json_object_get(m, "Unit")));
        assert_true(json_is_number(json_object_get(doc, name)));
        if (i) strncat(names, ",", cap - strlen(names) - 1);
        strncat(names, name, cap - strlen(names) - 1);
    }
}

static const char *unit_of(const json_t *doc, const char *name)
{
    json_t *defs = json_object_get(
        json_array_get(json_object_get(json_object_get(doc, "_aws"), "CloudWatchMetrics"), 0),
        "Metrics");
    size_t i;
    json_t *m;
    json_array_foreach(defs, i, m)
    {
        if (!strcmp(json_string_value(json_object_get(m, "Name")), name))
            return json_string_value(json_object_get(m, "Unit"));
    }
    return NULL;
}

static void succeeded_line(void **state)
{
    (void)state;
    emf_materialization m = {.pool = "highmem",
                             .operation = "terrain",
                             .result = "succeeded",
                             .duration_s = 12.25,
                             .attempts = 2,
                             .output_bytes = 123456789012ULL,
                             .namespace_ = "hydro",
                             .name = "dem-slope",
                             .asset_key = "hydrology/dem_slope",
                             .data_version = "sha256:abc",
                             .timestamp_ms = 1714557600123LL};
    char *line = NULL;
    assert_int_equal(emf_materialization_render(&m, &line), 0);
    assert_null(strchr(line, '\n'));
    json_t *doc = parse(line);
    char names[256];
    check_structure(doc, names, sizeof names);
    assert_string_equal(
        names, "MaterializationDuration,Materializations,Failures,CacheHits,Attempts,OutputBytes");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "_aws"), "Timestamp")),
                     1714557600123LL);
    assert_string_equal(json_string_value(json_object_get(doc, "Pool")), "highmem");
    assert_string_equal(json_string_value(json_object_get(doc, "Operation")), "terrain");
    assert_true(json_number_value(json_object_get(doc, "MaterializationDuration")) == 12.25);
    assert_int_equal(json_integer_value(json_object_get(doc, "Materializations")), 1);
    assert_int_equal(json_integer_value(json_object_get(doc, "Failures")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "CacheHits")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "Attempts")), 2);
    assert_int_equal(json_integer_value(json_object_get(doc, "OutputBytes")), 123456789012LL);
    assert_string_equal(unit_of(doc, "MaterializationDuration"), "Seconds");
    assert_string_equal(unit_of(doc, "OutputBytes"), "Bytes");
    assert_string_equal(unit_of(doc, "Attempts"), "Count");
    assert_string_equal(json_string_value(json_object_get(doc, "namespace")), "hydro");
    assert_string_equal(json_string_value(json_object_get(doc, "name")), "dem-slope");
    assert_string_equal(json_string_value(json_object_get(doc, "assetKey")), "hydrology/dem_slope");
    assert_string_equal(json_string_value(json_object_get(doc, "dataVersion")), "sha256:abc");
    assert_string_equal(json_string_value(json_object_get(doc, "result")), "succeeded");
    /* _aws comes first, so a human reading the log sees what the line is. */
    assert_true(!strncmp(line, "{\"_aws\":{", 9));
    json_decref(doc);
    cmem_free(line);
}

static void failed_and_cache_hit_lines(void **state)
{
    (void)state;
    char *line = NULL, names[256];
    emf_materialization f = {.pool = "cpu",
                             .operation = "cog",
                             .result = "failed",
                             .duration_s = 3,
                             .output_bytes = 99,
                             .timestamp_ms = 1};
    assert_int_equal(emf_materialization_render(&f, &line), 0);
    json_t *doc = parse(line);
    check_structure(doc, names, sizeof names);
    /* No output, no OutputBytes; attempts unknown (0), no Attempts. */
    assert_string_equal(names, "MaterializationDuration,Materializations,Failures,CacheHits");
    assert_null(json_object_get(doc, "OutputBytes"));
    assert_null(json_object_get(doc, "Attempts"));
    assert_int_equal(json_integer_value(json_object_get(doc, "Failures")), 1);
    assert_null(json_object_get(doc, "assetKey")); /* NULL properties are left out */
    json_decref(doc);
    cmem_free(line);

    emf_materialization h = {
        .pool = "cpu", .operation = "cog", .result = "cache_hit", .attempts = 1, .output_bytes = 5};
    assert_int_equal(emf_materialization_render(&h, &line), 0);
    doc = parse(line);
    check_structure(doc, names, sizeof names);
    assert_int_equal(json_integer_value(json_object_get(doc, "CacheHits")), 1);
    assert_int_equal(json_integer_value(json_object_get(doc, "Failures")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "OutputBytes")), 5);
    /* Timestamp 0 means now. */
    long long ts = json_integer_value(json_object_get(json_object_get(doc, "_aws"), "Timestamp"));
    assert_true(llabs(ts - (long long)time(NULL) * 1000) < 60000);
    json_decref(doc);
    cmem_free(line);
}

static void awkward_strings(void **state)
{
    (void)state;
    const char *key = "a\"b\\c\nd\te\x01 caf\xc3\xa9 </script>";
    emf_materialization m = {.pool = NULL,
                             .operation = "",
                             .result = "succeeded",
                             .duration_s = NAN,
                             .asset_key = key,
                             .namespace_ = "x\xff\xfey",
                             .timestamp_ms = 5};
    char *line = NULL, names[256];
    assert_int_equal(emf_materialization_render(&m, &line), 0);
    assert_null(strchr(line, '\n'));
    assert_null(strchr(line, '\t'));
    assert_null(strchr(line, '\x01'));
    json_t *doc = parse(line);
    check_structure(doc, names, sizeof names);
    assert_string_equal(json_string_value(json_object_get(doc, "assetKey")), key);
    assert_string_equal(json_string_value(json_object_get(doc, "Pool")), "unknown");
    assert_string_equal(json_string_value(json_object_get(doc, "Operation")), "unknown");
    /* Not UTF-8: replaced, the line is still valid JSON. */
    assert_string_equal(json_string_value(json_object_get(doc, "namespace")), "(not UTF-8)");
    /* NaN is not JSON: a duration that is not a number becomes 0. */
    assert_true(json_number_value(json_object_get(doc, "MaterializationDuration")) == 0);
    json_decref(doc);
    cmem_free(line);
}

static void write_one_line(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    emf_materialization m = {.pool = "gpu",
                             .operation = "warp",
                             .result = "succeeded",
                             .duration_s = 1,
                             .attempts = 1,
                             .output_bytes = 1};
    assert_int_equal(emf_materialization_write(f, &m), 0);
    assert_int_equal(emf_materialization_write(f, &m), 0);
    rewind(f);
    char buf[4096];
    int lines = 0;
    while (fgets(buf, sizeof buf, f)) {
        size_t n = strlen(buf);
        assert_true(n > 1 && buf[n - 1] == '\n');
        json_decref(parse(buf));
        lines++;
    }
    assert_int_equal(lines, 2);
    fclose(f);
    /* A stream that cannot be written: CERR_IO. */
    FILE *ro = fopen("/dev/null", "r");
    assert_int_equal(emf_materialization_write(ro, &m), CERR_IO);
    fclose(ro);
}

typedef struct {
    FILE *f;
    int id;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    char key[600];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    key[0] = (char)('a' + a->id);
    for (int i = 0; i < 200; i++) {
        emf_materialization m = {.pool = "cpu",
                                 .operation = "cog",
                                 .result = "succeeded",
                                 .duration_s = i,
                                 .attempts = 1,
                                 .asset_key = key};
        if (emf_materialization_write(a->f, &m) != 0) return (void *)1;
    }
    return NULL;
}

static void concurrent_writers_never_interleave(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    pthread_t th[4];
    writer_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (writer_arg){f, i};
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        assert_null(rc);
    }
    rewind(f);
    char buf[8192];
    int lines = 0;
    while (fgets(buf, sizeof buf, f)) {
        json_t *doc = parse(buf);
        assert_int_equal(strlen(json_string_value(json_object_get(doc, "assetKey"))), 599);
        json_decref(doc);
        lines++;
    }
    assert_int_equal(lines, 800);
    fclose(f);
}

static void allocation_failures(void **state)
{
    (void)state;
    emf_materialization m = {.pool = "cpu",
                             .operation = "cog",
                             .result = "succeeded",
                             .duration_s = 1,
                             .attempts = 1,
                             .asset_key = "k",
                             .namespace_ = "n",
                             .name = "x",
                             .data_version = "d"};
    long live = cmem_live();
    for (unsigned long n = 1;; n++) {
        unsigned long before = cmem_count();
        char *line = NULL;
        cmem_fail_at(n);
        int rc = emf_materialization_render(&m, &line);
        cmem_fail_at(0);
        if (cmem_count() - before < n) {
            assert_int_equal(rc, 0);
            cmem_free(line);
            break;
        }
        assert_int_equal(rc, CERR_NOMEM);
        assert_null(line);
        assert_int_equal(cmem_live(), live);
        assert_true(n < 1000);
    }
    assert_int_equal(cmem_live(), live);
}

static void dump_samples(void **state)
{
    (void)state;
    const char *path = getenv("TERRANE_EMF_DUMP");
    assert_non_null(path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    emf_materialization lines[] = {
        {.pool = "highmem",
         .operation = "terrain",
         .result = "succeeded",
         .duration_s = 12.3,
         .attempts = 1,
         .output_bytes = 4096,
         .namespace_ = "hydro",
         .name = "dem-slope",
         .asset_key = "hydrology/dem_slope",
         .data_version = "sha256:00"},
        {.pool = "cpu",
         .operation = "cog",
         .result = "failed",
         .duration_s = 600,
         .attempts = 4,
         .namespace_ = "hydro",
         .name = "bad",
         .asset_key = "a\"b\\c\nd"},
        {.pool = "gpu",
         .operation = "calc",
         .result = "cache_hit",
         .duration_s = 0.5,
         .attempts = 1,
         .output_bytes = 1},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        assert_int_equal(emf_materialization_write(f, &lines[i]), 0);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(succeeded_line, setup),
        cmocka_unit_test_setup(failed_and_cache_hit_lines, setup),
        cmocka_unit_test_setup(awkward_strings, setup),
        cmocka_unit_test_setup(write_one_line, setup),
        cmocka_unit_test_setup(concurrent_writers_never_interleave, setup),
        cmocka_unit_test_setup(allocation_failures, setup),
    };
    /* A helper for another suite, run only when it asks (TERRANE_EMF_DUMP), not a test
     * that would otherwise report itself as skipped. */
    const struct CMUnitTest helper[] = {cmocka_unit_test_setup(dump_samples, setup)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (getenv("TERRANE_EMF_DUMP")) rc += cmocka_run_group_tests(helper, NULL, NULL);
    return rc;
}
