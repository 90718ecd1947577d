/*
 * test_taskdoc.c - building the worker's Task from a spec and resolved
 * inputs (checked against task.v1.json), and the task rules beyond JSON
 * Schema on the contract's golden documents: every valid task passes them,
 * and each invalid document that only a rule rejects is rejected in the
 * field its .field file names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jschema.h"
#include "spec.h"
#include "taskdoc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char task_schema_json[] =
#include "task_schema.inc"
    ;

#define DV_A "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DV_B "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

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

static json_t *am_with(const char *spec)
{
    json_t *s = json_loads(spec, 0, NULL);
    assert_non_null(s);
    return json_pack("{s:{s:s, s:s, s:i}, s:o}", "metadata", "name", "slope-by-commune",
                     "namespace", "hydro", "generation", 1, "spec", s);
}

#define ZONAL_SPEC                                                                                 \
    "{\"assetKey\":\"hydrology/"                                                                   \
    "slope_by_commune\",\"operation\":\"zonal-stats\",\"params\":{\"raster\":"                     \
    "\"slope\",\"zones\":\"communes\",\"key\":\"NAME_2\"},\"inputs\":[{\"name\":\"slope\","        \
    "\"from\":"                                                                                    \
    "\"dem-slope\"},{\"name\":\"communes\",\"uri\":\"s3://raw/"                                    \
    "lux.shp\"}],\"output\":{\"uri\":\"s3://assets\"}}"

static void builds_the_task(void **state)
{
    (void)state;
    json_t *am = am_with(ZONAL_SPEC);
    am_spec *s = NULL;
    assert_int_equal(spec_decode(am, g_task, &s, NULL), 0);
    taskdoc_input ins[2] = {
        {.uri = "s3://assets/hydro/hydrology/dem_slope/aaaa/asset.tif",
         .asset_key = "hydrology/dem_slope",
         .data_version = DV_A,
         .stac_item = "s3://assets/hydro/hydrology/dem_slope/aaaa/item.json"},
        {.uri = "s3://raw/lux.shp"},
    };
    json_t *task = NULL;
    assert_int_equal(taskdoc_build(s, ins, DV_B, 3, &task), 0);
    jschema_error err;
    if (taskdoc_validate(g_task, task, &err)) fail_msg("%s: %s", err.path, err.message);
    json_t *want = json_loads(
        "{\"apiVersion\":\"terrane.io/"
        "v1\",\"kind\":\"Task\",\"namespace\":\"hydro\",\"name\":\"slope-by-commune\","
        "\"assetKey\":\"hydrology/slope_by_commune\",\"dataVersion\":\"" DV_B
        "\",\"operation\":\"zonal-stats\","
        "\"params\":{\"raster\":\"slope\",\"zones\":\"communes\",\"key\":\"NAME_2\"},\"inputs\":["
        "{\"name\":\"slope\",\"uri\":\"s3://assets/hydro/hydrology/dem_slope/aaaa/"
        "asset.tif\",\"assetKey\":"
        "\"hydrology/dem_slope\",\"dataVersion\":\"" DV_A "\",\"stacItem\":"
        "\"s3://assets/hydro/hydrology/dem_slope/aaaa/item.json\"},{\"name\":\"communes\",\"uri\":"
        "\"s3://raw/lux.shp\"}],\"output\":{\"uri\":\"s3://assets\"},\"attempt\":3}",
        0, NULL);
    assert_non_null(want);
    if (!json_equal(want, task)) {
        char *got = json_dumps(task, JSON_SORT_KEYS);
        fail_msg("task: %s", got);
    }
    /* params are copied, not shared with the spec */
    assert_ptr_not_equal(json_object_get(task, "params"), s->params);
    json_decref(want);
    json_decref(task);
    spec_free(s);
    json_decref(am);

    /* absent params become {} */
    am = am_with(
        "{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"s3://"
        "raw/e.tif\"}],"
        "\"output\":{\"uri\":\"s3://assets\"}}");
    assert_int_equal(spec_decode(am, g_task, &s, NULL), 0);
    taskdoc_input one = {.uri = "s3://raw/e.tif"};
    assert_int_equal(taskdoc_build(s, &one, DV_A, 1, &task), 0);
    assert_true(json_is_object(json_object_get(task, "params")));
    assert_int_equal(json_object_size(json_object_get(task, "params")), 0);
    assert_int_equal(taskdoc_validate(g_task, task, NULL), 0);
    json_decref(task);
    spec_free(s);
    json_decref(am);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = cmem_malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r'))
        b[--n] = '\0';
    fclose(f);
    return b;
}

/* Runs the rules over a directory of examples: valid ones must pass;
 * invalid ones that the schema accepts must fail in their .field. */
static void rules_on_examples(void **state)
{
    (void)state;
    const char *root = getenv("TERRANE_ROOT");
    int rule_rejected = 0;
    for (int valid = 1; valid >= 0; valid--) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/proto/examples/task/%s", root && *root ? root : ".",
                 valid ? "valid" : "invalid");
        DIR *d = opendir(dir);
        if (!d) fail_msg("cannot open %s (set TERRANE_ROOT)", dir);
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n < 6 || strcmp(e->d_name + n - 5, ".json")) continue;
            char path[1400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            char *text = read_file(path);
            json_t *doc = json_loads(text, 0, NULL);
            assert_non_null(doc);
            jschema_error err;
            int schema_rc = jschema_validate(g_task, doc, NULL);
            int rc = taskdoc_check_rules(doc, &err);
            if (valid) {
                if (rc) fail_msg("%s: %s: %s", e->d_name, err.path, err.message);
            } else if (schema_rc == 0) {
                char fpath[1400];
                snprintf(fpath, sizeof fpath, "%.*s.field", (int)(strlen(path) - 5), path);
                char *field = read_file(fpath);
                if (rc != CERR_INVALID) fail_msg("%s: the rules accept it", e->d_name);
                if (strcmp(err.path, field))
                    fail_msg("%s: %s, expected %s", e->d_name, err.path, field);
                rule_rejected++;
                cmem_free(field);
            }
            json_decref(doc);
            cmem_free(text);
        }
        closedir(d);
    }
    assert_int_equal(rule_rejected, 8);
}

/* calc: an input counts as used when its name is an identifier token, not
 * part of a number and not a function call; a name that is no input's is
 * reported first (params.expression), an unused input after
 * (inputs[i].name). */
static void expression_names(void **state)
{
    (void)state;
    static const struct {
        const char *expr, *inputs, *error_path, *message;
    } cases[] = {
        {"(l7[4] - l7[3]) / (l7[4] + l7[3])", "l7", "", ""},
        {"a * 1e-3", "a,e", "inputs[1].name", "input \"e\" is not used"},
        {"a * 1e-3 + e", "a,e", "", ""},
        {"sqrt(x)", "x,sqrt", "inputs[1].name", ""},
        {"sqrt(x)", "x", "", ""},
        {"sqrt (x)", "x,sqrt", "inputs[1].name", ""}, /* a call, as the worker reads it */
        {"where(isnodata(dem), nodata, dem * pi)", "dem", "", ""}, /* the constants */
        {"ab + 2", "a", "params.expression", "unknown input 'ab' (inputs: a)"},
        {".5 * b", "b", "", ""},
        {"3.e2 + c_1", "c_1", "", ""},
        {"where(mask > 0 and not (dem < 0 or dem > 9), dem, -9999)", "mask,dem", "", ""},
        {"elevation > 200", "dem", "params.expression", "unknown input 'elevation' (inputs: dem)"},
        {"dem > 200", "dem,mask", "inputs[1].name", "input \"mask\" is not used"},
        {"elevation > 200 + dem", "dem,mask", "params.expression",
         "unknown input 'elevation' (inputs: dem, mask)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *ins = json_array();
        char names[64];
        snprintf(names, sizeof names, "%s", cases[i].inputs);
        for (char *save = NULL, *t = strtok_r(names, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(ins, json_pack("{s:s, s:s}", "name", t, "uri", "s3://raw/x"));
        json_t *task = json_pack("{s:s, s:{s:s}, s:o}", "operation", "calc", "params", "expression",
                                 cases[i].expr, "inputs", ins);
        jschema_error err;
        memset(&err, 0, sizeof err);
        int rc = taskdoc_check_rules(task, &err);
        if ((rc == 0) != !*cases[i].error_path || (rc && strcmp(err.path, cases[i].error_path)) ||
            (rc && !strstr(err.message, cases[i].message)))
            fail_msg("\"%s\" with inputs %s: got %d %s: %s, expected %s: %s", cases[i].expr,
                     cases[i].inputs, rc, err.path, err.message, cases[i].error_path,
                     cases[i].message);
        json_decref(task);
    }
}

static void out_of_memory(void **state)
{
    (void)state;
    json_t *am = am_with(ZONAL_SPEC);
    am_spec *s = NULL;
    assert_int_equal(spec_decode(am, NULL, &s, NULL), 0);
    taskdoc_input ins[2] = {{.uri = "s3://bucket-a/b",
                             .asset_key = "k/x",
                             .data_version = DV_A,
                             .stac_item = "s3://bucket-a/c"},
                            {.uri = "s3://raw/lux.shp"}};
    long live = cmem_live();
    unsigned long n;
    for (n = 1;; n++) {
        json_t *task = NULL;
        unsigned long before = cmem_count();
        cmem_fail_at(n);
        int rc = taskdoc_build(s, ins, DV_B, 1, &task);
        cmem_fail_at(0);
        bool reached = cmem_count() - before >= n;
        if (rc == 0 && taskdoc_validate(g_task, task, NULL))
            fail_msg("n=%lu: %s %s", n, cerr_message(), json_dumps(task, 0));
        json_decref(task);
        assert_int_equal(cmem_live(), live);
        if (!reached) break;
        assert_int_equal(rc, CERR_NOMEM);
        assert_null(task);
    }
    assert_true(n > 10);
    spec_free(s);
    json_decref(am);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builds_the_task),
        cmocka_unit_test(rules_on_examples),
        cmocka_unit_test(expression_names),
        cmocka_unit_test(out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
