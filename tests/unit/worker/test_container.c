/*
 * Unit tests: the container operation (op_container.h), its fetch step
 * (fetch.h) and its publish-outputs step (outputs.h), on local directories.
 * S3 and the example's real code are covered by
 * tests/integration/test_container_steps.sh and test_container_pod.sh.
 *
 * Checked here: params and naming rules; fetch copying and verifying, a
 * checksum mismatch leaving nothing behind; publishing every file with the
 * system's sha256sum, GeoTIFFs as COGs, item.json with the other files as
 * assets and metadata.json merged, a manifest listing everything with the
 * primary first; hidden files skipped, symbolic links and reserved names
 * refused, empty outputs; and nothing published when any allocation fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "worker/fixture.h"

#include "err.h"
#include "fetch.h"
#include "log.h"
#include "mem.h"
#include "op_container.h"
#include "outputs.h"
#include "result.h"
#include "task.h"
#include "terrane_proto.h"

#include <cJSON.h>
#include <cpl_conv.h>
#include <gdal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char tmpdir[256], raster[512], work[512];
static int case_no;

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0755);
    *slash = '/';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_all(const char *path)
{
    return fixture_slurp(path, NULL);
}

static void sha256sum(const char *path, char out[72])
{
    assert_int_equal(fixture_sha256_multihash(path, out, 72), 0);
}

/* A container task; inputs is a JSON array, params a JSON object. */
static task *make_task(const char *params, const char *inputs, const char *out)
{
    char *json = mem_printf("{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Task\",\"namespace\":"
                            "\"hydro\",\"assetKey\":\"ml/model\",\"dataVersion\":\"sha256:" HEX
                            "\",\"operation\":\"container\",\"params\":%s,\"inputs\":%s,"
                            "\"output\":{\"uri\":\"%s\"}}",
                            params, inputs, out);
    task *t = NULL;
    assert_non_null(json);
    if (task_decode(json, strlen(json), &t) != 0) fail_msg("decode: %s", err_get_message());
    mem_free(json);
    return t;
}

static int validate(const char *params, const char *inputs)
{
    task *t = make_task(params, inputs, "/tmp/out");
    err_clear();
    int rc = task_validate(t);
    task_free(t);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    fixture_gdal_init();
    if (!fixture_tmpdir(tmpdir, sizeof tmpdir, "test_container")) return -1;
    log_set_level(LOG_ERROR);
    snprintf(raster, sizeof raster, "%s/src.tif", tmpdir);
    return fixture_make_raster(raster, 32, 16);
}

static int group_teardown(void **state)
{
    (void)state;
    fixture_rmtree(tmpdir);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    err_clear();
    snprintf(work, sizeof work, "%s/case%d", tmpdir, ++case_no);
    char p[600];
    mkdir(work, 0755);
    snprintf(p, sizeof p, "%s/outputs", work);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/scratch", work);
    mkdir(p, 0755);
    return 0;
}

static void params_and_names(void **state)
{
    (void)state;
    const char *in = "[{\"name\":\"dem\",\"uri\":\"/data/dem.tif\"}]";
    assert_int_equal(
        validate("{\"image\":\"reg.example.com/ml/flood:1.2\",\"command\":[\"python3\"],"
                 "\"args\":[\"train\"],\"env\":[{\"name\":\"SEED\",\"value\":\"7\"}],"
                 "\"workingDir\":\"/app\",\"primaryOutput\":\"model/w.bin\"}",
                 in),
        0);
    assert_int_equal(validate("{\"image\":\"flood@sha256:" HEX "\"}", in), 0);
    static const struct {
        const char *params, *field;
    } bad[] = {
        {"{}", "params.image"},
        {"{\"image\":\"Flood:1\"}", "params.image"},
        {"{\"image\":\"flood@sha256:abc\"}", "params.image"},
        {"{\"image\":\"f\",\"command\":\"python3 x\"}", "params.command"},
        {"{\"image\":\"f\",\"args\":[1]}", "params.args"},
        {"{\"image\":\"f\",\"env\":[{\"name\":\"TERRANE_OUTPUT_DIR\",\"value\":\"/x\"}]}",
         "params.env"},
        {"{\"image\":\"f\",\"env\":[{\"name\":\"A-B\",\"value\":\"x\"}]}", "params.env"},
        {"{\"image\":\"f\",\"env\":[{\"name\":\"A\"}]}", "params.env"},
        {"{\"image\":\"f\",\"workingDir\":\"app\"}", "params.workingDir"},
        {"{\"image\":\"f\",\"primaryOutput\":\"../etc/passwd\"}", "params.primaryOutput"},
        {"{\"image\":\"f\",\"primaryOutput\":\"/abs\"}", "params.primaryOutput"},
        {"{\"image\":\"f\",\"primaryOutput\":\"a//b\"}", "params.primaryOutput"},
        {"{\"image\":\"f\",\"gpu\":true}", "params.gpu"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (validate(bad[i].params, in) == 0) fail_msg("accepted %s", bad[i].params);
        assert_string_equal(err_get_field(), bad[i].field);
        assert_int_equal(err_exit_code(), TERRANE_EXIT_BAD_INPUT);
    }
    assert_int_not_equal(validate("{\"image\":\"f\"}", "[{\"name\":\"dem\",\"uri\":\"/a.tif\"},"
                                                       "{\"name\":\"DEM\",\"uri\":\"/b.tif\"}]"),
                         0);
    assert_string_equal(err_get_field(), "inputs[1].name");

    /* a tile partition: the user's code computes the window */
    char *tiled = mem_printf(
        "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Task\",\"namespace\":\"hydro\","
        "\"assetKey\":\"ml/risk\",\"dataVersion\":\"sha256:" HEX "\",\"operation\":"
        "\"container\",\"params\":{\"image\":\"f\"},\"inputs\":%s,\"output\":{\"uri\":"
        "\"/tmp/out\"},\"partition\":{\"key\":\"r000c001\",\"index\":1,\"tile\":{\"col\":1,"
        "\"row\":0,\"xoff\":16,\"yoff\":0,\"xsize\":16,\"ysize\":16,\"halo\":0,\"width\":32,"
        "\"height\":16}}}",
        in);
    task *tt = NULL;
    assert_non_null(tiled);
    assert_int_equal(task_decode(tiled, strlen(tiled), &tt), 0);
    assert_int_equal(task_validate(tt), 0);
    task_free(tt);
    mem_free(tiled);

    task_input in1 = {.name = "slope", .uri = "s3://b/p/asset.tif?versionId=3"};
    char buf[200];
    container_input_file(&in1, buf, sizeof buf);
    assert_string_equal(buf, "asset.tif");
    container_input_env(&in1, buf, sizeof buf);
    assert_string_equal(buf, "TERRANE_INPUT_SLOPE");
    task_input in2 = {.name = "x", .uri = "https://h/dir/"};
    container_input_file(&in2, buf, sizeof buf);
    assert_string_equal(buf, "data");
    task_input in3 = {.name = "x", .uri = "https://h/a/b%20c.tif"};
    container_input_file(&in3, buf, sizeof buf);
    assert_string_equal(buf, "data");

    assert_string_equal(outputs_media_type("risk.TIF"),
                        "image/tiff; application=geotiff; profile=cloud-optimized");
    assert_string_equal(outputs_media_type("metrics.json"), "application/json");
    assert_string_equal(outputs_media_type("model.pkl"), "application/octet-stream");
    assert_string_equal(outputs_media_type("v1.0/model"), "application/octet-stream");
}

static void fetch_verifies(void **state)
{
    (void)state;
    char sum[72], inputs[1400], dir[600], got[1024], src[300], cmd[1024];
    /* Inputs may not live under /dev (where the tests' tmpfs is). */
    snprintf(src, sizeof src, "/tmp/test_container_src.XXXXXX");
    assert_non_null(mkdtemp(src));
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/src.tif'", raster, src);
    assert_int_equal(system(cmd), 0);
    size_t sl = strlen(src);
    snprintf(src + sl, sizeof src - sl, "/src.tif");
    sha256sum(src, sum);
    snprintf(inputs, sizeof inputs,
             "[{\"name\":\"dem\",\"uri\":\"%s\",\"assetKey\":\"lux/dem\",\"checksum\":\"%s\"}]",
             src, sum);
    snprintf(dir, sizeof dir, "%s/inputs", work);
    task *t = make_task("{\"image\":\"f\"}", inputs, "/tmp/out");
    if (fetch_inputs(t, dir) != 0) fail_msg("fetch: %s", err_get_message());
    snprintf(got, sizeof got, "%s/dem/src.tif", dir);
    char sum2[72];
    sha256sum(got, sum2);
    assert_string_equal(sum, sum2);
    task_free(t);

    /* A recorded checksum the bytes do not have. */
    sum[10] = sum[10] == '0' ? '1' : '0';
    snprintf(inputs, sizeof inputs, "[{\"name\":\"other\",\"uri\":\"%s\",\"checksum\":\"%s\"}]",
             src, sum);
    t = make_task("{\"image\":\"f\"}", inputs, "/tmp/out");
    assert_int_not_equal(fetch_inputs(t, dir), 0);
    assert_string_equal(err_get_code(), "ChecksumMismatch");
    assert_string_equal(err_get_field(), "inputs[0].checksum");
    assert_int_equal(err_exit_code(), TERRANE_EXIT_BAD_INPUT);
    snprintf(got, sizeof got, "%s/other", dir);
    assert_int_equal(rmdir(got), 0); /* empty: no file and no temporary left */
    task_free(t);

    /* A missing input is bad input naming its URI field. */
    err_clear();
    snprintf(inputs, sizeof inputs, "[{\"name\":\"gone\",\"uri\":\"%s.gone\"}]", src);
    t = make_task("{\"image\":\"f\"}", inputs, "/tmp/out");
    assert_int_not_equal(fetch_inputs(t, dir), 0);
    assert_string_equal(err_get_field(), "inputs[0].uri");
    assert_int_equal(err_exit_code(), TERRANE_EXIT_BAD_INPUT);
    task_free(t);
    src[sl] = '\0';
    fixture_rmtree(src);
}

static task *case_task(const char *params)
{
    char pub[600];
    snprintf(pub, sizeof pub, "%s/pub", work);
    return make_task(params, "[{\"name\":\"dem\",\"uri\":\"/data/dem.tif\"}]", pub);
}

/* Publishes work/outputs to work/pub for t; returns the rc and fills r. */
static int publish_task(const task *t, result *r)
{
    char out[600], scratch[600];
    snprintf(out, sizeof out, "%s/outputs", work);
    snprintf(scratch, sizeof scratch, "%s/scratch", work);
    memset(r, 0, sizeof *r);
    return outputs_publish(t, out, scratch, r);
}

static int publish_case(const char *params, result *r)
{
    task *t = case_task(params);
    int rc = publish_task(t, r);
    task_free(t);
    return rc;
}

static char *prefix(void)
{
    return mem_printf("%s/pub/hydro/ml/model/" HEX, work);
}

static void publishes_everything(void **state)
{
    (void)state;
    char out[600], cmd[4096], path[1200], sum[72];
    snprintf(out, sizeof out, "%s/outputs", work);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/risk.tif'", raster, out);
    assert_int_equal(system(cmd), 0);
    write_file(out, "model.pkl", "weights");
    write_file(out, "metrics.json", "{\"auc\":0.9}");
    write_file(out, "tiles/a.csv", "x,y\n");
    write_file(out, ".cache/skip", "x");
    write_file(out, "metadata.json", "{\"mlflow:runId\":\"r1\",\"datetime\":\"overridden?\"}");
    result r;
    if (publish_case("{\"image\":\"f\"}", &r) != 0) fail_msg("publish: %s", err_get_message());
    char *pfx = prefix();
    snprintf(path, sizeof path, "%s/risk.tif", pfx);
    assert_string_equal(r.output_uri, path); /* first GeoTIFF: the primary */
    assert_string_equal(r.media_type, "image/tiff; application=geotiff; profile=cloud-optimized");
    sha256sum(path, sum);
    assert_string_equal(r.checksum, sum);
    assert_int_equal(r.n_files, 5);
    assert_string_equal(r.metadata, "{\"mlflow:runId\":\"r1\",\"datetime\":\"overridden?\"}");
    snprintf(path, sizeof path, "%s/.cache/skip", pfx);
    assert_int_not_equal(access(path, F_OK), 0);

    snprintf(path, sizeof path, "%s/item.json", pfx);
    char *text = read_all(path);
    cJSON *item = cJSON_Parse(text);
    assert_non_null(item);
    cJSON *assets = cJSON_GetObjectItem(item, "assets"),
          *props = cJSON_GetObjectItem(item, "properties");
    assert_non_null(cJSON_GetObjectItem(assets, "risk.tif"));
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(assets, "tiles/a.csv"), "type")->valuestring,
        "text/csv");
    assert_string_equal(cJSON_GetObjectItem(props, "mlflow:runId")->valuestring, "r1");
    assert_string_not_equal(cJSON_GetObjectItem(props, "datetime")->valuestring, "overridden?");
    assert_non_null(cJSON_GetObjectItem(item, "bbox")); /* the raster's footprint */
    cJSON_Delete(item);
    mem_free(text);

    snprintf(path, sizeof path, "%s/manifest.json", pfx);
    text = read_all(path);
    cJSON *m = cJSON_Parse(text);
    assert_non_null(m);
    assert_int_equal(cJSON_GetObjectItem(m, "fileCount")->valueint, 5);
    cJSON *files = cJSON_GetObjectItem(m, "files");
    assert_int_equal(cJSON_GetArraySize(files), 5);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(files, 0), "name")->valuestring,
                        "risk.tif");
    cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        snprintf(path, sizeof path, "%s/%s", pfx, cJSON_GetObjectItem(f, "name")->valuestring);
        sha256sum(path, sum);
        assert_string_equal(cJSON_GetObjectItem(f, "checksum")->valuestring, sum);
    }
    cJSON_Delete(m);
    mem_free(text);
    mem_free(pfx);
}

static void second_raster_gets_its_item(void **state)
{
    (void)state;
    char out[600], cmd[4096], path[1200];
    snprintf(out, sizeof out, "%s/outputs", work);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/a.tif' && cp '%s' '%s/b.tiff'", raster, out, raster,
             out);
    assert_int_equal(system(cmd), 0);
    result r;
    if (publish_case("{\"image\":\"f\",\"primaryOutput\":\"b.tiff\"}", &r) != 0)
        fail_msg("publish: %s", err_get_message());
    char *pfx = prefix();
    snprintf(path, sizeof path, "%s/b.tiff", pfx);
    assert_string_equal(r.output_uri, path);
    snprintf(path, sizeof path, "%s/items/a.tif.json", pfx);
    char *text = read_all(path);
    cJSON *item = cJSON_Parse(text);
    assert_non_null(item);
    assert_non_null(strstr(cJSON_GetObjectItem(item, "id")->valuestring, "-a-tif"));
    cJSON_Delete(item);
    mem_free(text);
    mem_free(pfx);
}

static void refusals(void **state)
{
    (void)state;
    char out[600], link_path[700];
    result r;
    snprintf(out, sizeof out, "%s/outputs", work);
    assert_int_not_equal(publish_case("{\"image\":\"f\"}", &r), 0);
    assert_string_equal(err_get_code(), "NoOutputs");
    assert_int_equal(err_exit_code(), TERRANE_EXIT_BAD_INPUT);

    err_clear();
    write_file(out, "metadata.json", "{}");
    assert_int_not_equal(publish_case("{\"image\":\"f\"}", &r), 0);
    assert_string_equal(err_get_code(), "NoOutputs");

    err_clear();
    write_file(out, "metadata.json", "[1, 2]");
    write_file(out, "x.bin", "x");
    assert_int_not_equal(publish_case("{\"image\":\"f\"}", &r), 0);
    assert_non_null(strstr(err_get_message(), "metadata.json is not a JSON object"));

    err_clear();
    write_file(out, "metadata.json", "{}");
    assert_int_not_equal(publish_case("{\"image\":\"f\",\"primaryOutput\":\"nope.bin\"}", &r), 0);
    assert_string_equal(err_get_field(), "params.primaryOutput");

    err_clear();
    snprintf(link_path, sizeof link_path, "%s/token", out);
    assert_int_equal(symlink("/etc/passwd", link_path), 0);
    assert_int_not_equal(publish_case("{\"image\":\"f\"}", &r), 0);
    assert_non_null(strstr(err_get_message(), "token is not a regular file"));
    unlink(link_path);

    err_clear();
    write_file(out, "manifest.json", "{}");
    assert_int_not_equal(publish_case("{\"image\":\"f\"}", &r), 0);
    assert_non_null(strstr(err_get_message(), "a name Terrane writes itself"));
    char *pfx = prefix();
    snprintf(link_path, sizeof link_path, "%s/x.bin", pfx);
    assert_int_not_equal(access(link_path, F_OK), 0);
    mem_free(pfx);
}

/* Every allocation failing in turn: an error, nothing published, no leak. */
static void nothing_published_on_any_allocation_failure(void **state)
{
    (void)state;
    char out[600], cmd[4096], path[1200];
    snprintf(out, sizeof out, "%s/outputs", work);
    /* One raster: each COG conversion and footprint costs tens of ms, and
     * this runs once per allocation. Further rasters' Items are above. */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/risk.tif'", raster, out);
    assert_int_equal(system(cmd), 0);
    write_file(out, "model.pkl", "weights");
    write_file(out, "metadata.json", "{\"k\":1}");
    char *pfx = prefix();
    task *t = case_task("{\"image\":\"f\"}");
    int failures = 0;
    for (unsigned long n = 1; n < 5000; n++) {
        result r;
        err_clear();
        mem_fail_at(n);
        int rc = publish_task(t, &r);
        mem_fail_at(0);
        snprintf(path, sizeof path, "%s/manifest.json", pfx);
        if (rc == 0) {
            assert_int_equal(access(path, F_OK), 0);
            break;
        }
        failures++;
        assert_true(err_is_set());
        assert_int_not_equal(access(path, F_OK), 0);
        static const char *const names[] = {"item.json", "risk.tif", "model.pkl", "metadata.json"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", pfx, names[i]);
            if (access(path, F_OK) == 0) fail_msg("allocation %lu: %s left behind", n, names[i]);
        }
    }
    assert_true(failures > 20);
    task_free(t);
    mem_free(pfx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(params_and_names, setup),
        cmocka_unit_test_setup(fetch_verifies, setup),
        cmocka_unit_test_setup(publishes_everything, setup),
        cmocka_unit_test_setup(second_raster_gets_its_item, setup),
        cmocka_unit_test_setup(refusals, setup),
        cmocka_unit_test_setup(nothing_published_on_any_allocation_failure, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
