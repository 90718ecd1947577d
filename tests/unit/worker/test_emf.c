/*
 * test_emf.c - the worker's Embedded Metric Format line: namespace,
 * dimension and units as specified, every declared metric present as a
 * number, CellsPerSecond left out together with its declaration when it
 * cannot be computed, one line per call, the error slot untouched, cells
 * read from a raster, and allocation failures.
 *
 * With TERRANE_EMF_DUMP=FILE the suite also writes sample lines to FILE for
 * tests/lib/emf_check.py (tests/integration/test_metrics_promtool.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "emf.h"
#include "err.h"
#include "mem.h"

#include <cJSON.h>
#include <gdal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int setup(void **state)
{
    (void)state;
    mem_init();
    mem_fail_at(0);
    err_clear();
    return 0;
}

static const char *unit_of(const cJSON *doc, const char *name)
{
    const cJSON *d = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "_aws"), "CloudWatchMetrics"), 0);
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(d, "Metrics"))
    {
        if (!strcmp(cJSON_GetObjectItem(m, "Name")->valuestring, name))
            return cJSON_GetObjectItem(m, "Unit")->valuestring;
    }
    return NULL;
}

/* The specification's structure; returns the number of declared metrics. */
static int check_structure(const cJSON *doc)
{
    const cJSON *aws = cJSON_GetObjectItem(doc, "_aws");
    assert_true(cJSON_IsObject(aws));
    const cJSON *ts = cJSON_GetObjectItem(aws, "Timestamp");
    assert_true(cJSON_IsNumber(ts));
    assert_true(ts->valuedouble == (double)(long long)ts->valuedouble);
    const cJSON *cwm = cJSON_GetObjectItem(aws, "CloudWatchMetrics");
    assert_int_equal(cJSON_GetArraySize(cwm), 1);
    const cJSON *d = cJSON_GetArrayItem(cwm, 0);
    assert_string_equal(cJSON_GetObjectItem(d, "Namespace")->valuestring, EMF_WORKER_NAMESPACE);
    const cJSON *dims = cJSON_GetObjectItem(d, "Dimensions");
    assert_int_equal(cJSON_GetArraySize(dims), 1);
    const cJSON *set = cJSON_GetArrayItem(dims, 0);
    assert_int_equal(cJSON_GetArraySize(set), 1);
    assert_string_equal(cJSON_GetArrayItem(set, 0)->valuestring, "Operation");
    assert_true(cJSON_IsString(cJSON_GetObjectItem(doc, "Operation")));
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(d, "Metrics"))
    {
        const char *name = cJSON_GetObjectItem(m, "Name")->valuestring;
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(doc, name)));
        assert_true(cJSON_IsString(cJSON_GetObjectItem(m, "Unit")));
        n++;
    }
    return n;
}

static void full_line(void **state)
{
    (void)state;
    char *line = emf_worker_render("terrain", "succeeded", 5120, 4000, 1100, 123456789ULL, 1e7, 2,
                                   384, 1714557600123LL);
    assert_non_null(line);
    assert_null(strchr(line, '\n'));
    assert_true(!strncmp(line, "{\"_aws\":{\"Timestamp\":1714557600123,", 35));
    cJSON *doc = cJSON_Parse(line);
    assert_non_null(doc);
    assert_int_equal(check_structure(doc), 7);
    assert_string_equal(cJSON_GetObjectItem(doc, "Operation")->valuestring, "terrain");
    assert_true(cJSON_GetObjectItem(doc, "Threads")->valuedouble == 2);
    assert_true(cJSON_GetObjectItem(doc, "GdalCacheMB")->valuedouble == 384);
    assert_string_equal(unit_of(doc, "Threads"), "Count");
    assert_string_equal(unit_of(doc, "GdalCacheMB"), "Megabytes");
    assert_true(cJSON_GetObjectItem(doc, "Duration")->valuedouble == 5120);
    assert_true(cJSON_GetObjectItem(doc, "ComputeDuration")->valuedouble == 4000);
    assert_true(cJSON_GetObjectItem(doc, "PublishDuration")->valuedouble == 1100);
    assert_true(cJSON_GetObjectItem(doc, "BytesWritten")->valuedouble == 123456789.0);
    assert_true(cJSON_GetObjectItem(doc, "CellsPerSecond")->valuedouble == 2.5e6);
    assert_string_equal(unit_of(doc, "Duration"), "Milliseconds");
    assert_string_equal(unit_of(doc, "ComputeDuration"), "Milliseconds");
    assert_string_equal(unit_of(doc, "PublishDuration"), "Milliseconds");
    assert_string_equal(unit_of(doc, "BytesWritten"), "Bytes");
    assert_string_equal(unit_of(doc, "CellsPerSecond"), "Count/Second");
    assert_string_equal(cJSON_GetObjectItem(doc, "result")->valuestring, "succeeded");
    assert_string_equal(cJSON_GetObjectItem(doc, "workerVersion")->valuestring, TERRANE_VERSION);
    cJSON_Delete(doc);
    mem_free(line);
}

static void cells_per_second_omitted_when_unknown(void **state)
{
    (void)state;
    struct {
        double cells;
        long compute_ms;
    } cases[] = {{0, 100}, {1e6, 0}, {-1, 100}};
    for (int i = 0; i < 3; i++) {
        char *line = emf_worker_render("cog", "cache_hit", 10, cases[i].compute_ms, 0, 0,
                                       cases[i].cells, 0, 0, 1714557600123LL);
        assert_non_null(line);
        assert_null(strstr(line, "CellsPerSecond")); /* neither declared nor valued */
        assert_null(strstr(line, "Threads"));        /* not sized: threads 0 */
        cJSON *doc = cJSON_Parse(line);
        assert_int_equal(check_structure(doc), 4);
        cJSON_Delete(doc);
        mem_free(line);
    }
    /* Odd names are escaped, missing ones become "unknown". */
    char *line = emf_worker_render("we\"ird\\op\n", NULL, 1, 1, 0, 0, 0, 0, 0, 0);
    cJSON *doc = cJSON_Parse(line);
    assert_non_null(doc);
    assert_string_equal(cJSON_GetObjectItem(doc, "Operation")->valuestring, "we\"ird\\op\n");
    assert_string_equal(cJSON_GetObjectItem(doc, "result")->valuestring, "unknown");
    check_structure(doc);
    cJSON_Delete(doc);
    mem_free(line);
    line = emf_worker_render(NULL, "failed", 1, 1, 0, 0, 0, 0, 0, 0);
    doc = cJSON_Parse(line);
    assert_string_equal(cJSON_GetObjectItem(doc, "Operation")->valuestring, "unknown");
    cJSON_Delete(doc);
    mem_free(line);
}

static void run_writes_one_line_and_keeps_errors(void **state)
{
    (void)state;
    /* A failed run: its error must survive the metrics line. */
    err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "task", "bad task");
    FILE *f = tmpfile();
    assert_int_equal(emf_worker_run("warp", "failed", 30, 20, 0, 0, 0, 0, 0, f), 0);
    assert_int_equal(emf_worker_run("warp", "succeeded", 30, 20, 10, 100, 400, 2, 64, f), 0);
    assert_true(err_is_set());
    assert_string_equal(err_get_message(), "bad task");
    rewind(f);
    char buf[4096];
    int lines = 0;
    while (fgets(buf, sizeof buf, f)) {
        assert_true(buf[strlen(buf) - 1] == '\n');
        cJSON *doc = cJSON_Parse(buf);
        assert_non_null(doc);
        check_structure(doc);
        cJSON_Delete(doc);
        lines++;
    }
    assert_int_equal(lines, 2);
    fclose(f);
    FILE *ro = fopen("/dev/null", "r");
    assert_int_equal(emf_worker_run("warp", "failed", 1, 1, 1, 1, 1, 1, 1, ro), -1);
    fclose(ro);
}

static void raster_cells(void **state)
{
    (void)state;
    GDALAllRegister();
    char path[] = "/tmp/terrane-emf-XXXXXX.tif";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    close(fd);
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    GDALDatasetH ds = GDALCreate(drv, path, 70, 50, 2, GDT_Byte, NULL);
    assert_non_null(ds);
    GDALClose(ds);
    assert_true(emf_raster_cells(path) == 3500.0);
    unlink(path);
    assert_true(emf_raster_cells("/nonexistent/x.tif") == 0);
    assert_true(emf_raster_cells(NULL) == 0);
}

static void allocation_failures(void **state)
{
    (void)state;
    for (unsigned long n = 1;; n++) {
        unsigned long before = mem_count();
        mem_fail_at(n);
        char *line = emf_worker_render("cog", "succeeded", 1, 2, 3, 4, 5, 2, 64, 6);
        mem_fail_at(0);
        if (mem_count() - before < n) {
            assert_non_null(line); /* no failure this time: every point was covered */
            mem_free(line);
            break;
        }
        assert_null(line);
        assert_true(n < 1000);
    }
}

static void dump_samples(void **state)
{
    (void)state;
    const char *path = getenv("TERRANE_EMF_DUMP");
    assert_non_null(path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(
        emf_worker_run("terrain", "succeeded", 5120, 4000, 1100, 123456, 1e7, 2, 384, f), 0);
    assert_int_equal(emf_worker_run("cog", "cache_hit", 300, 0, 0, 0, 0, 2, 384, f), 0);
    assert_int_equal(emf_worker_run("zonal-stats", "failed", 90, 80, 0, 0, 0, 0, 0, f), 0);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(full_line, setup),
        cmocka_unit_test_setup(cells_per_second_omitted_when_unknown, setup),
        cmocka_unit_test_setup(run_writes_one_line_and_keeps_errors, setup),
        cmocka_unit_test_setup(raster_cells, setup),
        cmocka_unit_test_setup(allocation_failures, setup),
    };
    /* A helper for another suite, run only when it asks (TERRANE_EMF_DUMP), not a test
     * that would otherwise report itself as skipped. */
    const struct CMUnitTest helper[] = {cmocka_unit_test_setup(dump_samples, setup)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (getenv("TERRANE_EMF_DUMP")) rc += cmocka_run_group_tests(helper, NULL, NULL);
    return rc;
}
