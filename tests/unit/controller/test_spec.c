/*
 * test_spec.c - AssetMaterialization spec decoding and validation: defaults,
 * a table of invalid specs with the field and message each must report
 * (structure, params through the task schema, task rules, quantities,
 * retries), the task-path to spec-field mapping, the lenient upstream
 * reader, and allocation failures.
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

#include <stdio.h>
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

/* An AssetMaterialization around a spec given as JSON text. */
static json_t *am_with(const char *spec)
{
    json_error_t e;
    json_t *s = json_loads(spec, 0, &e);
    if (!s) fail_msg("spec JSON: %s", e.text);
    json_t *am = json_pack("{s:{s:s, s:s, s:i}, s:o}", "metadata", "name", "dem-slope", "namespace",
                           "hydro", "generation", 3, "spec", s);
    assert_non_null(am);
    return am;
}

static void decodes_with_defaults(void **state)
{
    (void)state;
    json_t *am = am_with(
        "{\"assetKey\":\"hydrology/dem_slope\",\"operation\":\"terrain\",\"params\":{\"mode\":"
        "\"slope\"},\"inputs\":[{\"name\":\"dem\",\"from\":\"dem-cog\"},{\"name\":\"mask\","
        "\"uri\":\"s3://raw/m.gpkg\"}],\"output\":{\"uri\":\"s3://assets\"},\"unknownField\":1}");
    /* terrain reads one raster: use the structure only first */
    am_spec *s = NULL;
    assert_int_equal(spec_decode(am, NULL, &s, NULL), 0);
    assert_string_equal(s->name, "dem-slope");
    assert_string_equal(s->namespace_, "hydro");
    assert_int_equal(s->generation, 3);
    assert_string_equal(s->asset_key, "hydrology/dem_slope");
    assert_int_equal(s->n_inputs, 2);
    assert_string_equal(s->inputs[0].from, "dem-cog");
    assert_null(s->inputs[0].uri);
    assert_string_equal(s->inputs[1].uri, "s3://raw/m.gpkg");
    assert_int_equal(s->retry_limit, 3);
    assert_int_equal(s->backoff_seconds, 30);
    assert_int_equal(s->max_parallel, SPEC_MAX_PARALLEL_DEFAULT);
    assert_null(s->partitions);
    assert_int_equal(s->inputs[0].mapping, SPEC_MAP_IDENTITY);
    assert_int_equal(s->refresh, SPEC_REFRESH_ON_UPSTREAM_CHANGE);
    assert_null(s->tags);
    spec_free(s);
    json_decref(am);

    am = am_with(
        "{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"s3://"
        "raw/"
        "e.tif\"}],\"output\":{\"uri\":\"s3://assets/x\"},\"tags\":{\"terrane.io/pool\":\"gpu\"},"
        "\"resources\":{\"cpu\":2,\"memory\":\"8Gi\"},\"retries\":{\"limit\":0,\"backoffSeconds\":"
        "5},"
        "\"refreshPolicy\":\"Manual\"}");
    assert_int_equal(spec_decode(am, g_task, &s, NULL), 0);
    assert_null(s->params);
    assert_int_equal(s->retry_limit, 0);
    assert_int_equal(s->backoff_seconds, 5);
    assert_int_equal(s->refresh, SPEC_REFRESH_MANUAL);
    assert_non_null(s->tags);
    assert_non_null(s->resources);
    spec_free(s);
    json_decref(am);
}

typedef struct {
    const char *spec;
    const char *field;
    const char *message;
} bad_case;

#define IN_DEM "\"inputs\":[{\"name\":\"dem\",\"uri\":\"s3://raw/elev.tif\"}]"
#define OUT "\"output\":{\"uri\":\"s3://assets\"}"
#define COG(extra) "{\"assetKey\":\"a/b\",\"operation\":\"cog\"," IN_DEM "," OUT extra "}"

static const bad_case BAD[] = {
    {"{\"operation\":\"cog\"," IN_DEM "," OUT "}", "spec.assetKey", "is required"},
    {"{\"assetKey\":7,\"operation\":\"cog\"," IN_DEM "," OUT "}", "spec.assetKey",
     "must be a string, got integer"},
    {"{\"assetKey\":\"a//b\",\"operation\":\"cog\"," IN_DEM "," OUT "}", "spec.assetKey",
     "is not valid"},
    {"{\"assetKey\":\"a/../b\",\"operation\":\"cog\"," IN_DEM "," OUT "}", "spec.assetKey",
     "is not valid"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"blur\"," IN_DEM "," OUT "}", "spec.operation",
     "must be one of: cog, warp"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"terrain\",\"params\":{\"mode\":\"slop\"}," IN_DEM
     "," OUT "}",
     "spec.params.mode", "must be one of: hillshade, slope, aspect, TRI, TPI, roughness"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"terrain\",\"params\":{}," IN_DEM "," OUT "}",
     "spec.params.mode", "is required"},
    {"{\"assetKey\":\"a/"
     "b\",\"operation\":\"terrain\",\"params\":{\"mode\":\"slope\",\"slopeFormt\":\"degree\"}"
     "," IN_DEM "," OUT "}",
     "spec.params.slopeFormt", "unknown field"},
    {"{\"assetKey\":\"a/"
     "b\",\"operation\":\"terrain\",\"params\":{\"mode\":\"aspect\",\"scale\":2}," IN_DEM "," OUT
     "}",
     "spec.params.scale", "must not be present: scale is for hillshade and slope only"},
    {COG(",\"params\":{\"compression\":\"LZW\",\"level\":3}"), "spec.params.level",
     "must not be present: LZW and NONE have no compression level"},
    {COG(",\"params\":{\"blockSize\":100}"), "spec.params.blockSize", "multiple of 16"},
    {COG(",\"params\":[1]"), "spec.params", "must be an object, got array"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[]," OUT "}", "spec.inputs",
     "at least 1 item"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\"," OUT "}", "spec.inputs", "at least 1 item"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"a\",\"uri\":\"s3://raw/"
     "x\"},{\"name\":"
     "\"b\",\"uri\":\"s3://raw/y\"}]," OUT "}",
     "spec.inputs", "at most 1 item"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"s3://raw/"
     "x\",\"from\":\"u\"}]," OUT "}",
     "spec.inputs[0]", "needs exactly one of from and uri"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\"}]," OUT "}",
     "spec.inputs[0]", "needs exactly one of from and uri"},
    {"{\"assetKey\":\"a/"
     "b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"from\":\"Dem_Cog\"}]," OUT "}",
     "spec.inputs[0].from", "is not the name of an AssetMaterialization"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"1d\",\"uri\":\"s3://raw/"
     "x\"}]," OUT "}",
     "spec.inputs[0].name", "is not valid"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"http://h/"
     "x\"}]," OUT "}",
     "spec.inputs[0].uri", "\"http://h/x\": plain http is not allowed, use https://"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"/vsicurl/"
     "x\"}]," OUT "}",
     "spec.inputs[0].uri", "GDAL virtual file system paths (/vsi...) are not allowed"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"http://"
     "169.254.169.254/latest/meta-data/\"}]," OUT "}",
     "spec.inputs[0].uri", "link-local and instance-metadata addresses are never allowed"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"file:///"
     "etc/passwd\"}]," OUT "}",
     "spec.inputs[0].uri", "this scheme is not allowed"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"/proc/self/"
     "environ\"}]," OUT "}",
     "spec.inputs[0].uri", "paths under /proc, /dev and /sys are never allowed"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"s3://Raw/"
     "x\"}]," OUT "}",
     "spec.inputs[0].uri", "expected s3://bucket/key with a valid bucket name"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"https://"
     "u:p@h.example.com/x\"}]," OUT "}",
     "spec.inputs[0].uri", "user information (user@) is not allowed"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"s3://raw/a/"
     "../b\"}]," OUT "}",
     "spec.inputs[0].uri", "'..' segments are not allowed"},
    {"{\"assetKey\":\"a/"
     "b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"uri\":\"elev.tif\"}]," OUT "}",
     "spec.inputs[0].uri", "expected s3://bucket/key, https://host/path or an absolute path"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"mosaic\",\"inputs\":[{\"name\":\"d\",\"uri\":\"s3://"
     "raw/x\"},{\"name\":"
     "\"d\",\"from\":\"up\"}]," OUT "}",
     "spec.inputs[1].name", "duplicate input name \"d\""},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\"," IN_DEM "}", "spec.output.uri", "is required"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\"," IN_DEM ",\"output\":{\"uri\":\"https://h/x\"}}",
     "spec.output.uri", "is not valid"},
    {COG(",\"tags\":{\"terrane.io/pool\":1}"), "spec.tags.terrane.io/pool", "must be a string"},
    {COG(",\"resources\":{\"memory\":\"8 GB\"}"), "spec.resources.memory",
     "is not a Kubernetes quantity"},
    {COG(",\"resources\":{\"gpu\":\"1\"}"), "spec.resources.gpu", "unknown field (cpu, memory)"},
    {COG(",\"resources\":{\"cpu\":\"0\"}"), "spec.resources.cpu", "must be greater than zero"},
    {COG(",\"retries\":{\"limit\":21}"), "spec.retries.limit", "between 0 and 20"},
    {COG(",\"retries\":{\"backoffSeconds\":0}"), "spec.retries.backoffSeconds",
     "between 1 and 3600"},
    {COG(",\"retries\":{\"limit\":\"3\"}"), "spec.retries.limit", "must be an integer"},
    {COG(",\"refreshPolicy\":\"Always\""), "spec.refreshPolicy",
     "must be one of: OnUpstreamChange, Manual"},
    /* partitions */
    {COG(",\"maxParallel\":0"), "spec.maxParallel", "between 1 and 10000"},
    {COG(",\"partitions\":[{\"name\":\"d\",\"time\":{\"start\":\"2026-11-01\","
         "\"cadence\":\"daily\",\"timezone\":\"Mars/Olympus\"}}]"),
     "spec.partitions[0].time.timezone", "an IANA time zone"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"d\",\"from\":"
     "\"up\",\"partitionMapping\":{\"type\":\"LastN\"}}]," OUT "}",
     "spec.inputs[0].partitionMapping", "count is required for LastN"},
    /* task rules */
    {"{\"assetKey\":\"a/"
     "b\",\"operation\":\"warp\",\"params\":{\"cutline\":\"mask\"},\"inputs\":[{\"name\":\"d\","
     "\"uri\":\"s3://raw/x\"},{\"name\":\"m\",\"uri\":\"s3://raw/y\"}]," OUT "}",
     "spec.params.cutline", "\"mask\" is not the name of an input"},
    {"{\"assetKey\":\"a/"
     "b\",\"operation\":\"zonal-stats\",\"params\":{\"raster\":\"d\",\"zones\":\"d\",\"key\":"
     "\"NAME\"},\"inputs\":[{\"name\":\"d\",\"from\":\"up\"}]," OUT "}",
     "spec.params.zones", "raster and zones must name different inputs"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"calc\",\"params\":{\"expression\":\"a * "
     "2\"},\"inputs\":[{\"name\":"
     "\"a\",\"uri\":\"s3://raw/x\"},{\"name\":\"b\",\"from\":\"up\"}]," OUT "}",
     "spec.inputs[1].name", "input \"b\" is not used by params.expression"},
    /* a calc reading several partitions through one input: LastN's names are by lag,
     * an AllToOne expression needs the names under the input's prefix */
    {"{\"assetKey\":\"a/b\",\"operation\":\"calc\",\"params\":{\"expression\":\"src + "
     "1\"},\"inputs\":[{\"name\":\"src\",\"from\":\"up\",\"partitionMapping\":{\"type\":"
     "\"LastN\",\"count\":2}}]," OUT "}",
     "spec.params.expression", "unknown input 'src' (inputs: src_1, src_0)"},
    {"{\"assetKey\":\"a/b\",\"operation\":\"calc\",\"params\":{\"expression\":\"pi * "
     "2\"},\"inputs\":[{\"name\":\"days\",\"from\":\"up\",\"partitionMapping\":{\"type\":"
     "\"AllToOne\"}}]," OUT "}",
     "spec.inputs[0].name", "input \"days\" is not used by params.expression"},
};

/* The calc expressions of crds/examples/partitions.yaml: one input per
 * partition read. */
static void partition_inputs_of_calc(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "{\"assetKey\":\"a/b\",\"operation\":\"calc\",\"params\":{\"expression\":\"src_2 + "
        "src_1 + src_0\"},\"inputs\":[{\"name\":\"src\",\"from\":\"up\",\"partitionMapping\":{"
        "\"type\":\"LastN\",\"count\":3}}]," OUT "}",
        "{\"assetKey\":\"a/b\",\"operation\":\"calc\",\"params\":{\"expression\":"
        "\"days_2026_11_01 + days_2026_11_02 * k\"},\"inputs\":[{\"name\":\"days\",\"from\":"
        "\"up\",\"partitionMapping\":{\"type\":\"AllToOne\"}},{\"name\":\"k\",\"uri\":"
        "\"s3://raw/k.tif\"}]," OUT "}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        json_t *am = am_with(ok[i]);
        am_spec *s = NULL;
        jschema_error err;
        if (spec_decode(am, g_task, &s, &err))
            fail_msg("case %zu: %s: %s", i, err.path, err.message);
        assert_int_equal(s->n_inputs, i + 1);
        spec_free(s);
        json_decref(am);
    }
}

static void invalid_specs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        json_t *am = am_with(BAD[i].spec);
        am_spec *s = NULL;
        jschema_error err;
        int rc = spec_decode(am, g_task, &s, &err);
        if (rc != CERR_INVALID) fail_msg("case %zu (%s): accepted", i, BAD[i].field);
        assert_null(s);
        if (strcmp(err.path, BAD[i].field))
            fail_msg("case %zu: field %s, expected %s (%s)", i, err.path, BAD[i].field,
                     err.message);
        if (!strstr(err.message, BAD[i].message))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.message, BAD[i].message);
        /* the thread's error says both */
        char want[JSCHEMA_PATH_MAX + JSCHEMA_MESSAGE_MAX + 4];
        snprintf(want, sizeof want, "%s: %s", err.path, err.message);
        assert_string_equal(cerr_message(), want);
        json_decref(am);
    }
}

static void not_an_object(void **state)
{
    (void)state;
    am_spec *s = NULL;
    jschema_error err;
    json_t *am =
        json_pack("{s:{s:s, s:s}, s:s}", "metadata", "name", "x", "namespace", "n", "spec", "nope");
    assert_int_equal(spec_decode(am, g_task, &s, &err), CERR_INVALID);
    assert_string_equal(err.path, "spec");
    json_decref(am);
    am = json_pack("{s:{s:s, s:s}}", "metadata", "name", "x", "namespace", "n");
    assert_int_equal(spec_decode(am, g_task, &s, &err), CERR_INVALID);
    assert_string_equal(err.message, "is required");
    json_decref(am);
    am = json_pack("{s:{}}", "metadata");
    assert_int_equal(spec_decode(am, g_task, &s, NULL), CERR_INVALID);
    json_decref(am);
}

static void task_paths(void **state)
{
    (void)state;
    json_t *am = am_with(
        "{\"assetKey\":\"a/b\",\"operation\":\"zonal-stats\",\"inputs\":[{\"name\":\"r\",\"from\":"
        "\"up\"},{\"name\":\"z\",\"uri\":\"s3://raw/z\"}]," OUT "}");
    am_spec *s = NULL;
    assert_int_equal(spec_decode(am, NULL, &s, NULL), 0);
    static const char *const map[][2] = {
        {"", "spec"},
        {"params", "spec.params"},
        {"params.mode", "spec.params.mode"},
        {"params.resolution[1]", "spec.params.resolution[1]"},
        {"inputs", "spec.inputs"},
        {"inputs[0].uri", "spec.inputs[0].from"},
        {"inputs[0].dataVersion", "spec.inputs[0].from"},
        {"inputs[0].name", "spec.inputs[0].name"},
        {"inputs[1].uri", "spec.inputs[1].uri"},
        {"assetKey", "spec.assetKey"},
        {"output.uri", "spec.output.uri"},
        {"namespace", "metadata.namespace"},
        {"name", "metadata.name"},
        {"dataVersion", "task.dataVersion"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        char out[128];
        spec_field_of_task_path(s, map[i][0], out, sizeof out);
        assert_string_equal(out, map[i][1]);
    }
    spec_free(s);
    json_decref(am);
}

static void upstream_names(void **state)
{
    (void)state;
    /* lenient: wrong entries are skipped, the rest of the spec may be invalid */
    json_t *am = am_with("{\"inputs\":[{\"name\":\"a\",\"from\":\"x\"},7,{\"from\":3},{\"name\":"
                         "\"b\",\"from\":\"y\"},"
                         "{\"name\":\"c\",\"uri\":\"s3://q/r\"},{\"from\":\"\"}]}");
    const char *ups[1];
    size_t total;
    assert_int_equal(spec_upstreams(am, ups, 1, &total), 1);
    assert_int_equal(total, 2);
    assert_string_equal(ups[0], "x");
    json_decref(am);
    assert_true(spec_is_dns_subdomain("dem-cog.v2"));
    assert_false(spec_is_dns_subdomain("Dem"));
    assert_false(spec_is_dns_subdomain("-a"));
    assert_false(spec_is_dns_subdomain("a-"));
    assert_false(spec_is_dns_subdomain(""));
}

static void out_of_memory(void **state)
{
    (void)state;
    json_t *am = am_with(
        "{\"assetKey\":\"a/"
        "b\",\"operation\":\"zonal-stats\",\"params\":{\"raster\":\"r\",\"zones\":"
        "\"z\",\"key\":\"NAME_2\"},\"inputs\":[{\"name\":\"r\",\"from\":\"up\"},{\"name\":\"z\","
        "\"uri\":\"s3://raw/z.shp\"}]," OUT "}");
    long live = cmem_live();
    unsigned long n;
    for (n = 1;; n++) {
        am_spec *s = NULL;
        unsigned long before = cmem_count();
        cmem_fail_at(n);
        int rc = spec_decode(am, g_task, &s, NULL);
        cmem_fail_at(0);
        bool reached = cmem_count() - before >= n;
        spec_free(s);
        assert_int_equal(cmem_live(), live);
        if (!reached) {
            assert_int_equal(rc, 0);
            break;
        }
        if (rc != CERR_NOMEM) fail_msg("n=%lu: %d %s", n, rc, cerr_message());
    }
    assert_true(n > 10);
    json_decref(am);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decodes_with_defaults),
        cmocka_unit_test(invalid_specs),
        cmocka_unit_test(not_an_object),
        cmocka_unit_test(task_paths),
        cmocka_unit_test(upstream_names),
        cmocka_unit_test(out_of_memory),
        cmocka_unit_test(partition_inputs_of_calc),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
