/*
 * Unit tests: publishing to a local output directory (publish.h) and
 * reading it back as a cache hit. No network: S3 publishing is covered by
 * tests/integration/test_publish.sh against a real S3 server.
 *
 * Checked here: the content-addressed layout, the checksum against the
 * system's sha256sum, item.json and manifest.json beside the data, no
 * temporary files left, rollback when any step fails (a write that cannot
 * land, every allocation failure in turn), and lookup hit / miss /
 * incomplete / tampered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "worker/fixture.h"

#include "err.h"
#include "hash.h"
#include "log.h"
#include "manifest.h"
#include "mem.h"
#include "op.h"
#include "publish.h"
#include "result.h"
#include "task.h"
#include "terrane_proto.h"

#include <cJSON.h>
#include <cpl_conv.h>
#include <cpl_error.h>
#include <dirent.h>
#include <ftw.h>
#include <gdal.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DV "sha256:" HEX

static char tmpdir[256];
static char raster[512];
static char outdir[512];
static int case_no;

static int group_setup(void **state)
{
    (void)state;
    /* On tmpfs when there is one: the loop over every allocation failure
     * publishes (and fsyncs) hundreds of times. */
    fixture_gdal_init();
    if (!fixture_tmpdir(tmpdir, sizeof tmpdir, "test_publish")) return -1;
    log_set_level(LOG_ERROR);
    snprintf(raster, sizeof raster, "%s/scratch.tif", tmpdir);
    return fixture_make_raster(raster, 16, 8); /* stands in for an operation's COG */
}

static int group_teardown(void **state)
{
    (void)state;
    fixture_rmtree(tmpdir);
    return 0;
}

/* Each test publishes under its own output directory. */
static int setup(void **state)
{
    (void)state;
    err_clear();
    snprintf(outdir, sizeof outdir, "%s/out%d", tmpdir, ++case_no);
    return 0;
}

static task *make_task(const char *output_uri, const char *dv)
{
    char *json = mem_printf(
        "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Task\",\"namespace\":\"hydro\","
        "\"assetKey\":\"hydrology/dem_cog\",\"dataVersion\":\"%s\",\"operation\":\"cog\","
        "\"params\":{\"compression\":\"DEFLATE\"},"
        "\"inputs\":[{\"name\":\"dem\",\"uri\":\"s3://raw/dem.tif\"}],"
        "\"output\":{\"uri\":\"%s\"},\"attempt\":1}",
        dv, output_uri);
    task *t = NULL;
    assert_non_null(json);
    assert_int_equal(task_decode(json, strlen(json), &t), 0);
    mem_free(json);
    return t;
}

static void one_file(op_result *files, const char *path)
{
    memset(files, 0, sizeof *files);
    assert_int_equal(op_result_add(files, path, TERRANE_OBJ_COG, MEDIA_COG, "data", true), 0);
}

static char *prefix_of(const char *out)
{
    return mem_printf("%s/hydro/hydrology/dem_cog/" HEX, out);
}

static bool exists(const char *dir, const char *name)
{
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

/* Names in dir other than . and ..; -1 if dir is missing. */
static int count_entries(const char *dir, bool *has_tmp)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (has_tmp) *has_tmp = false;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (has_tmp && strstr(e->d_name, ".tmp-")) *has_tmp = true;
        n++;
    }
    closedir(d);
    return n;
}

static void sha256sum_multihash(const char *path, char out[HASH_MULTIHASH_LEN])
{
    assert_int_equal(fixture_sha256_multihash(path, out, HASH_MULTIHASH_LEN), 0);
}

static cJSON *read_json(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    return j;
}

static void publish_layout_and_checksum(void **state)
{
    (void)state;
    task *t = make_task(outdir, DV);
    op_result files;
    result r = {0};
    char *prefix = prefix_of(outdir), want[HASH_MULTIHASH_LEN], path[1024];
    bool has_tmp = true;
    one_file(&files, raster);

    if (publish(t, &files, &r) != 0) fail_msg("publish: %s", err_get_message());
    assert_false(err_is_set());

    snprintf(path, sizeof path, "%s/%s", prefix, TERRANE_OBJ_COG);
    assert_string_equal(r.output_uri, path);
    snprintf(path, sizeof path, "%s/%s", prefix, TERRANE_OBJ_STAC);
    assert_string_equal(r.stac_item, path);
    snprintf(path, sizeof path, "%s/%s", prefix, TERRANE_OBJ_MANIFEST);
    assert_string_equal(r.manifest, path);
    assert_string_equal(r.media_type, MEDIA_COG);

    /* The published bytes are the scratch file's, hashed as sha256sum does. */
    sha256sum_multihash(r.output_uri, want);
    assert_string_equal(r.checksum, want);
    sha256sum_multihash(raster, want);
    assert_string_equal(r.checksum, want);
    struct stat st;
    assert_int_equal(stat(raster, &st), 0);
    assert_int_equal(r.size_bytes, (unsigned long long)st.st_size);

    assert_int_equal(count_entries(prefix, &has_tmp), 3);
    assert_false(has_tmp);

    cJSON *m = read_json(prefix, TERRANE_OBJ_MANIFEST);
    cJSON *f0 = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "files"), 0);
    assert_string_equal(cJSON_GetObjectItem(m, "kind")->valuestring, "Manifest");
    assert_string_equal(cJSON_GetObjectItem(m, "dataVersion")->valuestring, DV);
    assert_string_equal(cJSON_GetObjectItem(m, "stacItem")->valuestring, r.stac_item);
    assert_string_equal(cJSON_GetObjectItem(f0, "checksum")->valuestring, r.checksum);
    assert_string_equal(cJSON_GetObjectItem(f0, "uri")->valuestring, r.output_uri);
    assert_int_equal((long long)cJSON_GetObjectItem(f0, "sizeBytes")->valuedouble,
                     (long long)r.size_bytes);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "inputs"), 0), "uri")
            ->valuestring,
        "s3://raw/dem.tif");
    cJSON_Delete(m);

    cJSON *item = read_json(prefix, TERRANE_OBJ_STAC);
    cJSON *asset = cJSON_GetObjectItem(cJSON_GetObjectItem(item, "assets"), TERRANE_OBJ_COG);
    assert_string_equal(cJSON_GetObjectItem(asset, "file:checksum")->valuestring, r.checksum);
    cJSON_Delete(item);

    op_result_free(&files);
    mem_free(prefix);
    task_free(t);
}

/* A step after the data file fails: everything written is removed, and
 * the manifest never appears. blocker is made a directory so the rename
 * onto it fails. */
static void rollback_when(const char *blocker, int expect_left)
{
    task *t = make_task(outdir, DV);
    op_result files;
    result r = {0};
    char *prefix = prefix_of(outdir), p[1024];
    one_file(&files, raster);
    snprintf(p, sizeof p, "%s/%s", prefix, blocker);
    char *cmd = mem_printf("mkdir -p '%s'", p);
    assert_int_equal(system(cmd), 0);
    mem_free(cmd);

    assert_int_equal(publish(t, &files, &r), -1);
    assert_int_equal(err_get_class(), ERR_INTERNAL);
    assert_string_equal(err_get_code(), ERR_OUTPUT);
    assert_non_null(strstr(err_get_message(), blocker));
    assert_false(exists(prefix, TERRANE_OBJ_COG));
    assert_false(strcmp(blocker, TERRANE_OBJ_STAC) != 0 && exists(prefix, TERRANE_OBJ_STAC));
    bool has_tmp = true;
    /* Only the blocking directory remains. */
    assert_int_equal(count_entries(prefix, &has_tmp), expect_left);
    assert_false(has_tmp);
    assert_string_equal(r.output_uri, "");

    op_result_free(&files);
    mem_free(prefix);
    task_free(t);
}

static void rollback_when_item_fails(void **state)
{
    (void)state;
    rollback_when(TERRANE_OBJ_STAC, 1);
}

static void rollback_when_manifest_fails(void **state)
{
    (void)state;
    rollback_when(TERRANE_OBJ_MANIFEST, 1);
}

static void output_not_a_directory(void **state)
{
    (void)state;
    char file[600];
    snprintf(file, sizeof file, "%s/plain-file", tmpdir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    task *t = make_task(file, DV); /* a regular file where a directory must be */
    op_result files;
    result r = {0};
    one_file(&files, raster);
    assert_int_equal(publish(t, &files, &r), -1);
    assert_string_equal(err_get_code(), ERR_OUTPUT);
    assert_non_null(strstr(err_get_message(), "create directory"));
    op_result_free(&files);
    task_free(t);
}

static void missing_scratch_file(void **state)
{
    (void)state;
    char gone[600];
    snprintf(gone, sizeof gone, "%s/never-written.csv", tmpdir);
    task *t = make_task(outdir, DV);
    op_result files = {0};
    result r = {0};
    char *prefix = prefix_of(outdir);
    assert_int_equal(op_result_add(&files, gone, "stats.csv", MEDIA_CSV, "data", false), 0);
    assert_int_equal(publish(t, &files, &r), -1);
    assert_int_equal(err_get_class(), ERR_TRANSIENT);
    assert_string_equal(err_get_code(), ERR_SCRATCH);
    assert_true(count_entries(prefix, NULL) <= 0);
    op_result_free(&files);
    mem_free(prefix);
    task_free(t);
}

/* An operation that missed a failed write leaves a truncated COG: it is
 * refused before anything is uploaded. */
static void truncated_cog_not_published(void **state)
{
    (void)state;
    char cut[600], cmd[1400];
    snprintf(cut, sizeof cut, "%s/truncated.tif", tmpdir);
    snprintf(cmd, sizeof cmd, "head -c 16 '%s' > '%s'", raster, cut);
    assert_int_equal(system(cmd), 0);
    task *t = make_task(outdir, DV);
    op_result files;
    result r = {0};
    char *prefix = prefix_of(outdir);
    one_file(&files, cut);
    assert_int_equal(publish(t, &files, &r), -1);
    assert_int_equal(err_get_class(), ERR_INTERNAL); /* scratch is not full here */
    assert_string_equal(err_get_code(), ERR_OUTPUT);
    assert_non_null(strstr(err_get_message(), "truncated.tif"));
    assert_int_equal(count_entries(prefix, NULL), -1); /* not even the directory */
    op_result_free(&files);
    mem_free(prefix);
    task_free(t);
}

/* Output names become object keys: none may clash with item.json or
 * manifest.json, climb out of the prefix, or repeat. Checked before any
 * upload. */
static void bad_output_names(void **state)
{
    (void)state;
    static const char *const names[][2] = {{TERRANE_OBJ_STAC, NULL},
                                           {TERRANE_OBJ_MANIFEST, NULL},
                                           {"../escape.tif", NULL},
                                           {".hidden", NULL},
                                           {"", NULL},
                                           {"a.csv", "a.csv"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        task *t = make_task(outdir, DV);
        op_result files = {0};
        result r = {0};
        char *prefix = prefix_of(outdir);
        err_clear();
        assert_int_equal(op_result_add(&files, raster, names[i][0], MEDIA_CSV, "data", false), 0);
        if (names[i][1])
            assert_int_equal(op_result_add(&files, raster, names[i][1], MEDIA_CSV, "data", false),
                             0);
        assert_int_equal(publish(t, &files, &r), -1);
        assert_int_equal(err_get_class(), ERR_INTERNAL);
        assert_int_equal(count_entries(prefix, NULL), -1);
        op_result_free(&files);
        mem_free(prefix);
        task_free(t);
    }
}

/* Every allocation in publish failing in turn: an error, no partial
 * publication, no leak (ASan checks the last part). */
static void rollback_on_every_allocation_failure(void **state)
{
    (void)state;
    op_result files;
    one_file(&files, raster);
    int failures = 0;
    for (unsigned long n = 1; n < 2000; n++) {
        task *t = make_task(outdir, DV);
        char *prefix = prefix_of(outdir);
        result r = {0};
        err_clear();
        mem_fail_at(n);
        int rc = publish(t, &files, &r);
        mem_fail_at(0);
        if (rc == 0) {
            /* n is past the last allocation: done, and it published. */
            assert_true(exists(prefix, TERRANE_OBJ_MANIFEST));
            mem_free(prefix);
            task_free(t);
            break;
        }
        failures++;
        assert_true(err_is_set());
        assert_false(exists(prefix, TERRANE_OBJ_MANIFEST));
        assert_false(exists(prefix, TERRANE_OBJ_STAC));
        assert_false(exists(prefix, TERRANE_OBJ_COG));
        mem_free(prefix);
        task_free(t);
    }
    assert_true(failures > 10);
    op_result_free(&files);
}

static void lookup_miss_hit_incomplete(void **state)
{
    (void)state;
    task *t = make_task(outdir, DV);
    op_result files;
    result r = {0}, r2 = {0};
    bool hit = true;
    char *prefix = prefix_of(outdir), p[1024];
    one_file(&files, raster);

    assert_int_equal(publish_lookup(t, &r2, &hit), 0); /* nothing yet */
    assert_false(hit);
    assert_int_equal(publish(t, &files, &r), 0);

    assert_int_equal(publish_lookup(t, &r2, &hit), 0);
    assert_true(hit);
    assert_string_equal(r2.output_uri, r.output_uri);
    assert_string_equal(r2.checksum, r.checksum);
    assert_int_equal(r2.size_bytes, r.size_bytes);
    assert_string_equal(r2.media_type, r.media_type);
    assert_string_equal(r2.stac_item, r.stac_item);
    assert_string_equal(r2.manifest, r.manifest);

    /* Another data version under the same asset key: its own prefix, a miss. */
    task *other =
        make_task(outdir, "sha256:"
                          "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    memset(&r2, 0, sizeof r2);
    assert_int_equal(publish_lookup(other, &r2, &hit), 0);
    assert_false(hit);
    task_free(other);

    /* Objects without a manifest (an interrupted attempt) are no hit, and
     * publishing again completes them. */
    snprintf(p, sizeof p, "%s/%s", prefix, TERRANE_OBJ_MANIFEST);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(publish_lookup(t, &r2, &hit), 0);
    assert_false(hit);
    assert_false(err_is_set());
    assert_int_equal(publish(t, &files, &r2), 0);
    assert_string_equal(r2.checksum, r.checksum);
    assert_int_equal(publish_lookup(t, &r2, &hit), 0);
    assert_true(hit);

    op_result_free(&files);
    mem_free(prefix);
    task_free(t);
}

static void lookup_rejects_tampered(void **state)
{
    (void)state;
    task *t = make_task(outdir, DV);
    op_result files;
    result r = {0}, r2 = {0};
    bool hit = true;
    char *prefix = prefix_of(outdir), p[1024];
    one_file(&files, raster);
    assert_int_equal(publish(t, &files, &r), 0);

    /* Same size, different bytes: the checksum check catches it. */
    FILE *f = fopen(r.output_uri, "r+b");
    assert_non_null(f);
    fseek(f, -1, SEEK_END);
    int c = fgetc(f);
    fseek(f, -1, SEEK_END);
    fputc(c ^ 0xff, f);
    fclose(f);
    assert_int_equal(publish_lookup(t, &r2, &hit), 0);
    assert_false(hit);
    assert_false(err_is_set());

    /* A manifest that is not JSON is ignored, not an error. */
    assert_int_equal(publish(t, &files, &r), 0);
    snprintf(p, sizeof p, "%s/%s", prefix, TERRANE_OBJ_MANIFEST);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs("{\"apiVersion\":", f);
    fclose(f);
    assert_int_equal(publish_lookup(t, &r2, &hit), 0);
    assert_false(hit);
    assert_false(err_is_set());

    /* A manifest for another data version at this prefix is not trusted. */
    f = fopen(p, "w");
    fputs("{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Manifest\",\"assetKey\":\"hydrology/"
          "dem_cog\",\"dataVersion\":\"sha256:ffff\",\"files\":[]}",
          f);
    fclose(f);
    assert_int_equal(publish_lookup(t, &r2, &hit), 0);
    assert_false(hit);

    op_result_free(&files);
    mem_free(prefix);
    task_free(t);
}

static void manifest_parse_checks(void **state)
{
    (void)state;
    task *t = make_task(outdir, DV);
    manifest_primary p;
    const char *good =
        "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Manifest\",\"assetKey\":\"hydrology/"
        "dem_cog\",\"dataVersion\":\"" DV "\",\"files\":[{\"name\":\"asset.tif\",\"uri\":\"s3://a/"
        "asset.tif\",\"checksum\":\"1220" HEX "\",\"sizeBytes\":12,\"mediaType\":\"image/tiff\","
        "\"etag\":\"\\\"abc\\\"\"}],\"stacItem\":\"s3://a/item.json\"}";
    assert_int_equal(manifest_parse(t, good, strlen(good), "m", &p), 0);
    assert_string_equal(p.name, "asset.tif");
    assert_int_equal(p.size, 12);
    assert_string_equal(p.etag, "\"abc\"");
    assert_string_equal(p.stac_item, "s3://a/item.json");

    static const char *const bad[] = {
        "[]", "{\"apiVersion\":\"terrane.io/v2\",\"kind\":\"Manifest\"}",
        /* checksum not a multihash */
        "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Manifest\",\"assetKey\":\"hydrology/"
        "dem_cog\",\"dataVersion\":\"" DV "\",\"files\":[{\"name\":\"asset.tif\",\"uri\":\"u\","
        "\"checksum\":\"" HEX "\",\"sizeBytes\":12,\"mediaType\":\"m\"}],\"stacItem\":\"s\"}",
        /* negative size */
        "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Manifest\",\"assetKey\":\"hydrology/"
        "dem_cog\",\"dataVersion\":\"" DV "\",\"files\":[{\"name\":\"asset.tif\",\"uri\":\"u\","
        "\"checksum\":\"1220" HEX "\",\"sizeBytes\":-1,\"mediaType\":\"m\"}],\"stacItem\":\"s\"}",
        /* no stacItem */
        "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Manifest\",\"assetKey\":\"hydrology/"
        "dem_cog\",\"dataVersion\":\"" DV "\",\"files\":[{\"name\":\"asset.tif\",\"uri\":\"u\","
        "\"checksum\":\"1220" HEX "\",\"sizeBytes\":1,\"mediaType\":\"m\"}]}",
        NULL};
    for (int i = 0; bad[i]; i++) {
        err_clear();
        assert_int_equal(manifest_parse(t, bad[i], strlen(bad[i]), "m", &p), -1);
        assert_string_equal(err_get_code(), ERR_OUTPUT);
    }
    task_free(t);
}

static void hash_known_vectors(void **state)
{
    (void)state;
    char out[HASH_MULTIHASH_LEN];
    hash_ctx *h = hash_new();
    assert_non_null(h);
    assert_int_equal(hash_update(h, "abc", 3), 0);
    assert_int_equal(hash_final(h, out), 0);
    hash_free(h);
    /* FIPS 180-2 test vector for "abc" */
    assert_string_equal(out,
                        "1220ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(hash_is_multihash(out));
    assert_false(hash_is_multihash("1220ABCD"));
    assert_false(hash_is_multihash(HEX));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(publish_layout_and_checksum, setup),
        cmocka_unit_test_setup(rollback_when_item_fails, setup),
        cmocka_unit_test_setup(rollback_when_manifest_fails, setup),
        cmocka_unit_test_setup(output_not_a_directory, setup),
        cmocka_unit_test_setup(missing_scratch_file, setup),
        cmocka_unit_test_setup(truncated_cog_not_published, setup),
        cmocka_unit_test_setup(bad_output_names, setup),
        cmocka_unit_test_setup(rollback_on_every_allocation_failure, setup),
        cmocka_unit_test_setup(lookup_miss_hit_incomplete, setup),
        cmocka_unit_test_setup(lookup_rejects_tampered, setup),
        cmocka_unit_test_setup(manifest_parse_checks, setup),
        cmocka_unit_test(hash_known_vectors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
