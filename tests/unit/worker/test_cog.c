/*
 * Unit tests: the COG options (cog.h), writing COGs, classifying GDAL
 * failures, and each raster operation's run on small local rasters made
 * here (no network): outputs are COGs, byte-identical across runs, and
 * every allocation failure on the way is reported and leaks nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "worker/fixture.h"

#include "cog.h"
#include "podres.h"
#include "err.h"
#include "mem.h"
#include "op.h"
#include "params.h"
#include "task.h"
#include "terrane_proto.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <ftw.h>
#include <gdal.h>
#include <math.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static int group_setup(void **state)
{
    (void)state;
    fixture_gdal_init();
    /* Not on tmpfs (fixture_tmpdir): the worker refuses inputs under /dev. */
    snprintf(tmpdir, sizeof tmpdir, "%s/test_cog.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    fixture_rmtree(tmpdir);
    return 0;
}

static cJSON *parse(const char *json)
{
    cJSON *p = cJSON_Parse(json);
    if (!p) fail_msg("bad test JSON %s", json);
    return p;
}

static bool list_has(char **list, const char *item)
{
    return CSLFindString(list, item) >= 0;
}

static void options_defaults(void **state)
{
    (void)state;
    cJSON *p = parse("{}");
    char **o = cog_options(p, NULL, false);
    assert_true(list_has(o, "COMPRESS=DEFLATE"));
    assert_true(list_has(o, "PREDICTOR=NO"));
    assert_true(list_has(o, "BLOCKSIZE=512"));
    assert_true(list_has(o, "OVERVIEW_RESAMPLING=NEAREST"));
    assert_true(list_has(o, "BIGTIFF=IF_SAFER"));
    /* The pod's threads (podres.h), never ALL_CPUS (the node's cores). */
    char threads[32];
    snprintf(threads, sizeof threads, "NUM_THREADS=%d", podres_threads());
    assert_true(list_has(o, threads));
    assert_int_equal(CSLFindString(o, "NUM_THREADS=ALL_CPUS"), -1);
    assert_int_equal(CSLPartialFindString(o, "LEVEL="), -1);
    assert_int_equal(CSLPartialFindString(o, "OVERVIEWS="), -1);
    assert_int_equal(CSLFindString(o, "-co"), -1);
    CSLDestroy(o);

    /* argv form: "-of COG" first, then -co pairs, appended to a list. */
    char **argv = CSLAddString(NULL, "-q");
    argv = cog_options(p, argv, true);
    assert_string_equal(argv[0], "-q");
    assert_string_equal(argv[1], "-of");
    assert_string_equal(argv[2], "COG");
    for (int i = 3; argv[i]; i += 2) {
        assert_string_equal(argv[i], "-co");
        assert_non_null(argv[i + 1]);
        assert_non_null(strchr(argv[i + 1], '='));
    }
    CSLDestroy(argv);
    cJSON_Delete(p);
}

static void options_explicit(void **state)
{
    (void)state;
    cJSON *p = parse("{\"compression\":\"ZSTD\",\"level\":19,\"predictor\":3,\"blockSize\":256,"
                     "\"overviewResampling\":\"cubicspline\",\"bigtiff\":\"YES\"}");
    char **o = cog_options(p, NULL, false);
    assert_true(list_has(o, "COMPRESS=ZSTD"));
    assert_true(list_has(o, "LEVEL=19"));
    assert_true(list_has(o, "PREDICTOR=FLOATING_POINT"));
    assert_true(list_has(o, "BLOCKSIZE=256"));
    assert_true(list_has(o, "OVERVIEW_RESAMPLING=CUBICSPLINE"));
    assert_true(list_has(o, "OVERVIEWS=IGNORE_EXISTING"));
    assert_true(list_has(o, "BIGTIFF=YES"));
    CSLDestroy(o);
    cJSON_Delete(p);

    p = parse("{\"predictor\":2}");
    o = cog_options(p, NULL, false);
    assert_true(list_has(o, "PREDICTOR=STANDARD"));
    CSLDestroy(o);
    cJSON_Delete(p);
}

static void nodata_argv(void **state)
{
    (void)state;
    struct {
        const char *params, *want;
    } cases[] = {
        {"{\"nodata\":\"none\"}", "none"},
        {"{\"nodata\":-9999}", "-9999"},
        {"{\"nodata\":0.1}", "0.1"},
        {"{\"nodata\":-3.4028234663852886e+38}", "-3.4028234663852886e+38"},
        {"{\"nodata\":255}", "255"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *p = parse(cases[i].params);
        char **argv = cog_nodata_argv(p, NULL);
        assert_int_equal(CSLCount(argv), 2);
        assert_string_equal(argv[0], "-a_nodata");
        assert_string_equal(argv[1], cases[i].want);
        CSLDestroy(argv);
        cJSON_Delete(p);
    }
    cJSON *p = parse("{\"compression\":\"LZW\"}");
    assert_null(cog_nodata_argv(p, NULL));
    cJSON_Delete(p);
}

static void check_params_cross_field(void **state)
{
    (void)state;
    struct {
        const char *params, *field; /* field NULL: accepted */
    } cases[] = {
        {"{}", NULL},
        {"{\"blockSize\":16}", NULL},
        {"{\"blockSize\":4096}", NULL},
        {"{\"blockSize\":520}", "params.blockSize"},
        {"{\"level\":12}", NULL},
        {"{\"level\":13}", "params.level"},
        {"{\"compression\":\"ZSTD\",\"level\":22}", NULL},
        {"{\"compression\":\"LZW\",\"level\":1}", "params.level"},
        {"{\"compression\":\"NONE\",\"predictor\":1}", NULL},
        {"{\"compression\":\"NONE\",\"predictor\":3}", "params.predictor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *p = parse(cases[i].params);
        err_clear();
        int rc = params_check(p, NULL, cog_param_specs);
        assert_int_equal(rc, 0);
        rc = cog_check_params(p);
        if (!cases[i].field) {
            if (rc != 0) fail_msg("%s rejected: %s", cases[i].params, err_get_message());
        } else {
            if (rc == 0) fail_msg("%s accepted", cases[i].params);
            assert_string_equal(err_get_field(), cases[i].field);
            assert_string_equal(err_get_code(), ERR_INVALID_PARAM);
        }
        cJSON_Delete(p);
    }
}

/* A w x h single-band raster with a smooth surface, georeferenced in
 * EPSG:epsg (0: no CRS) at lon x0, lat 50.2; a striped GTiff at path. */
static void make_raster_crs(const char *path, int w, int h, GDALDataType dt, double x0, bool nodata,
                            int epsg)
{
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    GDALDatasetH ds = GDALCreate(drv, path, w, h, 1, dt, NULL);
    assert_non_null(ds);
    double gt[6] = {x0, 0.01, 0, 50.2, 0, -0.01};
    GDALSetGeoTransform(ds, gt);
    if (epsg) {
        OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
        OSRImportFromEPSG(srs, epsg);
        GDALSetSpatialRef(ds, srs);
        OSRDestroySpatialReference(srs);
    }
    float *row = malloc(sizeof *row * (size_t)w);
    GDALRasterBandH b = GDALGetRasterBand(ds, 1);
    if (nodata) GDALSetRasterNoDataValue(b, -32768);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++)
            row[x] = (float)(200.0 + 100.0 * sin(x * 0.05) * cos(y * 0.07) + (x + y) % 7);
        assert_int_equal(GDALRasterIO(b, GF_Write, 0, y, w, 1, row, w, 1, GDT_Float32, 0, 0),
                         CE_None);
    }
    free(row);
    GDALClose(ds);
}

static void make_raster(const char *path, int w, int h, GDALDataType dt, double x0, bool nodata)
{
    make_raster_crs(path, w, h, dt, x0, nodata, 4326);
}

static void assert_is_cog(const char *path, const char *compression, int block)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    assert_non_null(ds);
    const char *layout = GDALGetMetadataItem(ds, "LAYOUT", "IMAGE_STRUCTURE");
    assert_non_null(layout);
    assert_string_equal(layout, "COG");
    const char *comp = GDALGetMetadataItem(ds, "COMPRESSION", "IMAGE_STRUCTURE");
    if (!strcmp(compression, "NONE"))
        assert_null(comp);
    else
        assert_string_equal(comp, compression);
    int bx, by;
    GDALGetBlockSize(GDALGetRasterBand(ds, 1), &bx, &by);
    assert_int_equal(bx, block);
    assert_int_equal(by, block);
    GDALClose(ds);
}

static void write_deterministic(void **state)
{
    (void)state;
    char src[512], a[512], b[512], aux[600];
    snprintf(src, sizeof src, "%s/det_src.tif", tmpdir);
    snprintf(a, sizeof a, "%s/det_a.tif", tmpdir);
    snprintf(b, sizeof b, "%s/det_b.tif", tmpdir);
    make_raster(src, 700, 600, GDT_Float32, 5.7, true);
    const char *params[] = {
        "{}",
        "{\"compression\":\"ZSTD\",\"level\":9,\"predictor\":3,\"blockSize\":256}",
        "{\"compression\":\"LZW\",\"predictor\":2,\"overviewResampling\":\"average\"}",
        "{\"compression\":\"NONE\",\"blockSize\":128,\"nodata\":-1}",
    };
    const char *comp[] = {"DEFLATE", "ZSTD", "LZW", "NONE"};
    const int block[] = {512, 256, 512, 128};
    for (size_t i = 0; i < 4; i++) {
        cJSON *p = parse(params[i]);
        GDALDatasetH ds = GDALOpen(src, GA_ReadOnly);
        err_clear();
        if (cog_write(ds, p, a, NULL, NULL) != 0) fail_msg("%s: %s", params[i], err_get_message());
        if (cog_write(ds, p, b, NULL, NULL) != 0) fail_msg("%s: %s", params[i], err_get_message());
        GDALClose(ds);
        assert_is_cog(a, comp[i], block[i]);
        size_t la = 0, lb = 0;
        char *da = fixture_slurp(a, &la), *db = fixture_slurp(b, &lb);
        assert_non_null(da);
        assert_non_null(db);
        assert_int_equal(la, lb);
        if (memcmp(da, db, la) != 0) fail_msg("%s: two runs differ", params[i]);
        mem_free(da);
        mem_free(db);
        snprintf(aux, sizeof aux, "%s.aux.xml", a);
        assert_int_not_equal(access(aux, F_OK), 0);
        cJSON_Delete(p);
    }
    /* nodata from params replaces the source's. */
    GDALDatasetH ds = GDALOpen(a, GA_ReadOnly);
    int has = 0;
    assert_true(GDALGetRasterNoDataValue(GDALGetRasterBand(ds, 1), &has) == -1.0);
    assert_true(has);
    GDALClose(ds);
}

static void write_rejects_type_mismatch(void **state)
{
    (void)state;
    char src[512], out[512];
    snprintf(src, sizeof src, "%s/int16.tif", tmpdir);
    snprintf(out, sizeof out, "%s/int16_cog.tif", tmpdir);
    make_raster(src, 64, 64, GDT_Int16, 5.7, false);
    GDALDatasetH ds = GDALOpen(src, GA_ReadOnly);

    cJSON *p = parse("{\"predictor\":3}");
    err_clear();
    assert_int_equal(cog_write(ds, p, out, NULL, NULL), -1);
    assert_string_equal(err_get_field(), "params.predictor");
    assert_int_equal(err_get_class(), ERR_BAD_INPUT);
    cJSON_Delete(p);

    p = parse("{\"nodata\":40000}");
    err_clear();
    assert_int_equal(cog_write(ds, p, out, NULL, NULL), -1);
    assert_string_equal(err_get_field(), "params.nodata");
    cJSON_Delete(p);

    p = parse("{\"nodata\":0.5}");
    err_clear();
    assert_int_equal(cog_write(ds, p, out, NULL, NULL), -1);
    assert_string_equal(err_get_field(), "params.nodata");
    cJSON_Delete(p);

    p = parse("{\"nodata\":-32768,\"predictor\":2}");
    err_clear();
    assert_int_equal(cog_write(ds, p, out, NULL, NULL), 0);
    cJSON_Delete(p);
    GDALClose(ds);
}

/* A file cut short after its header: opens, then fails while reading. */
static void write_truncated_input_is_bad_input(void **state)
{
    (void)state;
    char src[512], cut[512], out[512];
    snprintf(src, sizeof src, "%s/whole.tif", tmpdir);
    snprintf(cut, sizeof cut, "%s/cut.tif", tmpdir);
    snprintf(out, sizeof out, "%s/cut_cog.tif", tmpdir);
    make_raster(src, 300, 300, GDT_Float32, 5.7, false);
    size_t len = 0;
    char *data = fixture_slurp(src, &len);
    assert_non_null(data);
    FILE *f = fopen(cut, "wb");
    fwrite(data, 1, len / 2, f);
    fclose(f);
    mem_free(data);
    GDALDatasetH ds = GDALOpen(cut, GA_ReadOnly);
    assert_non_null(ds);
    cJSON *p = parse("{}");
    err_clear();
    assert_int_equal(cog_write_from(ds, p, out, "inputs[0].uri", NULL, NULL), -1);
    assert_int_equal(err_get_class(), ERR_BAD_INPUT);
    assert_string_equal(err_get_code(), ERR_INPUT_INVALID);
    assert_string_equal(err_get_field(), "inputs[0].uri");
    assert_int_not_equal(access(out, F_OK), 0); /* no partial output left */
    cJSON_Delete(p);
    GDALClose(ds);
}

static void gdal_fail_classes(void **state)
{
    (void)state;
    char out[512];
    snprintf(out, sizeof out, "%s/x.tif", tmpdir);
    struct {
        CPLErrorNum no;
        const char *msg;
        err_class cls;
        const char *code, *field;
    } cases[] = {
        {CPLE_OutOfMemory, "cannot allocate", ERR_TRANSIENT, ERR_NO_MEMORY, ""},
        {CPLE_HttpResponse, "HTTP response code: 503", ERR_TRANSIENT, ERR_INPUT_UNREADABLE,
         "inputs[2].uri"},
        {CPLE_AppDefined, "Request failed: HTTP error code 500", ERR_TRANSIENT,
         ERR_INPUT_UNREADABLE, "inputs[2].uri"},
        {CPLE_AWSAccessDenied, "Access Denied", ERR_BAD_INPUT, ERR_INPUT_UNREADABLE,
         "inputs[2].uri"},
        {CPLE_AWSInvalidCredentials, "bad key", ERR_TRANSIENT, ERR_CREDENTIALS, "inputs[2].uri"},
        {CPLE_NoWriteAccess, "cannot write", ERR_TRANSIENT, ERR_SCRATCH, ""},
        {CPLE_AppDefined, "x.tif: No space left on device", ERR_TRANSIENT, ERR_SCRATCH, ""},
        {CPLE_UserInterrupt, "interrupted", ERR_TRANSIENT, ERR_INTERNAL_CODE, ""},
        {CPLE_AppDefined, "TIFFReadEncodedStrip() failed", ERR_BAD_INPUT, ERR_INPUT_INVALID,
         "inputs[2].uri"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CPLErrorReset();
        CPLError(CE_Failure, cases[i].no, "%s", cases[i].msg);
        err_clear();
        assert_int_equal(cog_gdal_fail("inputs[2].uri", out, "testing"), -1);
        if (err_get_class() != cases[i].cls || strcmp(err_get_code(), cases[i].code) != 0)
            fail_msg("case %zu: got %s/%s: %s", i, err_class_name(err_get_class()), err_get_code(),
                     err_get_message());
        assert_string_equal(err_get_field(), cases[i].field);
    }
    /* No input to blame: the field says "inputs". */
    CPLError(CE_Failure, CPLE_AppDefined, "corrupt");
    cog_gdal_fail(NULL, out, "testing");
    assert_string_equal(err_get_field(), "inputs");
    CPLErrorReset();
}

/* --- each operation's run on local files -------------------------------- */

/* A polygon layer (GeoJSON) around lon/lat box, in EPSG:4326. */
static void make_polygon(const char *path, double x0, double y0, double x1, double y1)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":"
            "{\"id\":1},\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[[%g,%g],[%g,%g],"
            "[%g,%g],[%g,%g],[%g,%g]]]}}]}\n",
            x0, y0, x1, y0, x1, y1, x0, y1, x0, y0);
    fclose(f);
}

static task *make_task(const char *op, const char *params, const char *inputs)
{
    char json[8192];
    task *t = NULL;
    snprintf(json, sizeof json,
             "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Task\",\"namespace\":\"test\","
             "\"assetKey\":\"test/%s\",\"dataVersion\":\"sha256:"
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
             "\"operation\":\"%s\",\"params\":%s,\"inputs\":%s,"
             "\"output\":{\"uri\":\"%s/out\"},\"attempt\":1}",
             op, op, params, inputs, tmpdir);
    err_clear();
    if (task_decode(json, strlen(json), &t) != 0 || task_validate(t) != 0)
        fail_msg("task %s %s: %s", op, params, err_get_message());
    return t;
}

/* Runs t in a fresh scratch directory; returns run's result, fills out. */
static int run_in_scratch(const task *t, char *scratch, size_t cap, op_result *out)
{
    snprintf(scratch, cap, "%s/scratch.XXXXXX", tmpdir);
    if (!mkdtemp(scratch)) fail_msg("mkdtemp");
    op_ctx ctx = {.task = t,
                  .scratch = scratch,
                  .progress = GDALDummyProgress,
                  .progress_arg = (void *)t->operation};
    memset(out, 0, sizeof *out);
    err_clear();
    return t->op->run(&ctx, out);
}

/* Runs the task once for real (output must be a COG named asset.tif), then
 * again failing each allocation in turn until the run gets through: each
 * failure must be reported as an error (ASan checks nothing leaks). */
static void run_op(const char *op, const char *params, const char *inputs, const char *comp)
{
    char scratch[512];
    op_result out;
    task *t = make_task(op, params, inputs);
    if (run_in_scratch(t, scratch, sizeof scratch, &out) != 0)
        fail_msg("%s %s: [%s] %s", op, params, err_get_field(), err_get_message());
    assert_int_equal(out.n_files, 1);
    assert_string_equal(out.files[0].name, TERRANE_OBJ_COG);
    assert_string_equal(out.files[0].media_type, MEDIA_COG);
    assert_string_equal(out.files[0].role, "data");
    assert_true(out.files[0].is_cog);
    assert_is_cog(out.files[0].path, comp, 512);
    /* Only asset.tif is left in scratch (no temporaries, no sidecars). */
    char listing[600];
    snprintf(listing, sizeof listing, "%s/warp.tif", scratch);
    assert_int_not_equal(access(listing, F_OK), 0);
    snprintf(listing, sizeof listing, "%s.aux.xml", out.files[0].path);
    assert_int_not_equal(access(listing, F_OK), 0);
    op_result_free(&out);

    unsigned long n;
    for (n = 1; n < 200; n++) {
        mem_fail_at(n);
        int rc = run_in_scratch(t, scratch, sizeof scratch, &out);
        mem_fail_at(0);
        op_result_free(&out);
        if (rc == 0) break;
        if (!err_is_set()) fail_msg("%s: allocation %lu failed without an error", op, n);
    }
    /* The run allocates, and eventually gets through. */
    assert_in_range(n, 2, 199);
    task_free(t);
}

static void ops_run(void **state)
{
    (void)state;
    char a[512], b[512], poly[512], far[512], inputs[2048];
    snprintf(a, sizeof a, "%s/run_a.tif", tmpdir);
    snprintf(b, sizeof b, "%s/run_b.tif", tmpdir);
    snprintf(poly, sizeof poly, "%s/poly.geojson", tmpdir);
    snprintf(far, sizeof far, "%s/far.geojson", tmpdir);
    make_raster(a, 120, 100, GDT_Float32, 5.7, true);
    make_raster(b, 120, 100, GDT_Float32, 6.9, true);
    make_polygon(poly, 5.9, 49.6, 6.2, 50.0);
    make_polygon(far, 20.0, 10.0, 21.0, 11.0);

    snprintf(inputs, sizeof inputs, "[{\"name\":\"dem\",\"uri\":\"%s\"}]", a);
    run_op("cog", "{\"compression\":\"ZSTD\"}", inputs, "ZSTD");
    run_op("terrain", "{\"mode\":\"slope\",\"scale\":111120}", inputs, "DEFLATE");
    run_op("terrain", "{\"mode\":\"hillshade\",\"compression\":\"LZW\"}", inputs, "LZW");
    run_op("warp", "{\"dstCrs\":\"EPSG:3035\",\"resolution\":500}", inputs, "DEFLATE");

    snprintf(inputs, sizeof inputs,
             "[{\"name\":\"dem\",\"uri\":\"%s\"},{\"name\":\"zones\",\"uri\":\"%s\"}]", a, poly);
    run_op("warp", "{\"cutline\":\"zones\",\"dstCrs\":\"EPSG:32632\",\"resolution\":250}", inputs,
           "DEFLATE");

    snprintf(inputs, sizeof inputs,
             "[{\"name\":\"a\",\"uri\":\"%s\"},{\"name\":\"b\",\"uri\":\"%s\"}]", a, b);
    run_op("mosaic", "{}", inputs, "DEFLATE");
}

/* The operations with their own threads (terrain strips, calc chunks) and
 * GDAL's (compression, overviews, warping), on 3 threads: the same runs as
 * ops_run including every failed allocation on whichever thread it hits,
 * and the same bytes as with one thread. */
static void ops_run_threaded(void **state)
{
    (void)state;
    char a[512], inputs[2048], scratch[512];
    const char *cases[][2] = {{"terrain", "{\"mode\":\"slope\",\"scale\":111120}"},
                              {"terrain", "{\"mode\":\"TPI\",\"computeEdges\":true}"},
                              {"calc", "{\"expression\":\"sqrt(abs(dem)) * 2\"}"},
                              {"cog", "{\"compression\":\"ZSTD\"}"}};
    snprintf(a, sizeof a, "%s/run_t.tif", tmpdir);
    make_raster(a, 120, 100, GDT_Float32, 5.7, true);
    snprintf(inputs, sizeof inputs, "[{\"name\":\"dem\",\"uri\":\"%s\"}]", a);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *bytes[2] = {NULL, NULL};
        size_t len[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            cJSON *sizing = cJSON_Parse(k ? "{\"threads\":3}" : "{\"threads\":1}");
            assert_int_equal(podres_init(sizing), 0);
            cJSON_Delete(sizing);
            op_result out;
            task *t = make_task(cases[i][0], cases[i][1], inputs);
            if (run_in_scratch(t, scratch, sizeof scratch, &out) != 0)
                fail_msg("%s %s: %s", cases[i][0], cases[i][1], err_get_message());
            bytes[k] = fixture_slurp(out.files[0].path, &len[k]);
            assert_non_null(bytes[k]);
            op_result_free(&out);
            task_free(t);
        }
        if (len[0] != len[1] || memcmp(bytes[0], bytes[1], len[0]) != 0)
            fail_msg("%s %s: 1 and 3 threads give different files", cases[i][0], cases[i][1]);
        mem_free(bytes[0]);
        mem_free(bytes[1]);
        run_op(cases[i][0], cases[i][1], inputs, !strcmp(cases[i][0], "cog") ? "ZSTD" : "DEFLATE");
    }
    cJSON *one = cJSON_Parse("{\"threads\":1}");
    podres_init(one);
    cJSON_Delete(one);
}

static void expect_run_error(const char *op, const char *params, const char *inputs, err_class cls,
                             const char *code, const char *field)
{
    char scratch[512];
    op_result out;
    task *t = make_task(op, params, inputs);
    if (run_in_scratch(t, scratch, sizeof scratch, &out) == 0)
        fail_msg("%s %s succeeded", op, params);
    op_result_free(&out);
    if (err_get_class() != cls || strcmp(err_get_code(), code) != 0 ||
        strcmp(err_get_field(), field) != 0)
        fail_msg("%s %s: got %s/%s field '%s': %s", op, params, err_class_name(err_get_class()),
                 err_get_code(), err_get_field(), err_get_message());
    task_free(t);
}

static void ops_run_errors(void **state)
{
    (void)state;
    char a[512], nocrs[512], poly[512], far[512], pts[512], other[512], inputs[2048];
    snprintf(a, sizeof a, "%s/err_a.tif", tmpdir);
    snprintf(nocrs, sizeof nocrs, "%s/err_nocrs.tif", tmpdir);
    snprintf(other, sizeof other, "%s/err_other.tif", tmpdir);
    snprintf(poly, sizeof poly, "%s/err_poly.geojson", tmpdir);
    snprintf(far, sizeof far, "%s/err_far.geojson", tmpdir);
    snprintf(pts, sizeof pts, "%s/err_pts.geojson", tmpdir);
    make_raster(a, 120, 100, GDT_Float32, 5.7, true);
    make_polygon(poly, 5.9, 49.6, 6.2, 50.0);
    make_polygon(far, 20.0, 10.0, 21.0, 11.0);
    FILE *f = fopen(pts, "w");
    fprintf(f, "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\","
               "\"properties\":{},\"geometry\":{\"type\":\"Point\",\"coordinates\":[6,50]}}]}\n");
    fclose(f);
    /* The same grid without a CRS, and in another CRS. */
    make_raster_crs(nocrs, 120, 100, GDT_Float32, 5.7, true, 0);
    make_raster_crs(other, 120, 100, GDT_Float32, 5.7, true, 3035);

    snprintf(inputs, sizeof inputs, "[{\"name\":\"dem\",\"uri\":\"%s\"}]", nocrs);
    expect_run_error("warp", "{\"dstCrs\":\"EPSG:3035\"}", inputs, ERR_BAD_INPUT, ERR_CRS_MISMATCH,
                     "inputs[0].uri");
    snprintf(inputs, sizeof inputs, "[{\"name\":\"dem\",\"uri\":\"%s\"}]", a);
    expect_run_error("warp", "{\"dstCrs\":\"EPSG:999999\"}", inputs, ERR_BAD_INPUT,
                     ERR_INVALID_PARAM, "params.dstCrs");
    expect_run_error("terrain", "{\"mode\":\"slope\",\"band\":2}", inputs, ERR_BAD_INPUT,
                     ERR_INVALID_PARAM, "params.band");
    /* Metres meant, degrees-sized number given: refused before any work. */
    expect_run_error("warp", "{\"dstCrs\":\"EPSG:3035\",\"resolution\":0.00001}", inputs,
                     ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.resolution");

    snprintf(inputs, sizeof inputs,
             "[{\"name\":\"zones\",\"uri\":\"%s\"},{\"name\":\"dem\",\"uri\":\"%s\"}]", far, a);
    expect_run_error("warp", "{\"cutline\":\"zones\"}", inputs, ERR_BAD_INPUT,
                     ERR_EMPTY_INTERSECTION, "inputs[0].uri");
    snprintf(inputs, sizeof inputs,
             "[{\"name\":\"dem\",\"uri\":\"%s\"},{\"name\":\"zones\",\"uri\":\"%s\"}]", a, pts);
    expect_run_error("warp", "{\"cutline\":\"zones\"}", inputs, ERR_BAD_INPUT, ERR_INPUT_INVALID,
                     "inputs[1].uri");
    snprintf(inputs, sizeof inputs,
             "[{\"name\":\"dem\",\"uri\":\"%s\"},{\"name\":\"zones\",\"uri\":\"%s\"}]", nocrs,
             poly);
    expect_run_error("warp", "{\"cutline\":\"zones\"}", inputs, ERR_BAD_INPUT, ERR_CRS_MISMATCH,
                     "inputs[0].uri");

    snprintf(inputs, sizeof inputs,
             "[{\"name\":\"a\",\"uri\":\"%s\"},{\"name\":\"b\",\"uri\":\"%s\"}]", a, other);
    expect_run_error("mosaic", "{}", inputs, ERR_BAD_INPUT, ERR_CRS_MISMATCH, "inputs[1].uri");
    snprintf(inputs, sizeof inputs,
             "[{\"name\":\"a\",\"uri\":\"%s\"},{\"name\":\"b\",\"uri\":\"%s\"}]", a, nocrs);
    expect_run_error("mosaic", "{}", inputs, ERR_BAD_INPUT, ERR_CRS_MISMATCH, "inputs[1].uri");
    snprintf(inputs, sizeof inputs,
             "[{\"name\":\"a\",\"uri\":\"%s\"},{\"name\":\"b\",\"uri\":\"%s/missing.tif\"}]", a,
             tmpdir);
    expect_run_error("mosaic", "{}", inputs, ERR_BAD_INPUT, ERR_INPUT_UNREADABLE, "inputs[1].uri");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(options_defaults),
        cmocka_unit_test(options_explicit),
        cmocka_unit_test(nodata_argv),
        cmocka_unit_test(check_params_cross_field),
        cmocka_unit_test(write_deterministic),
        cmocka_unit_test(write_rejects_type_mismatch),
        cmocka_unit_test(write_truncated_input_is_bad_input),
        cmocka_unit_test(gdal_fail_classes),
        cmocka_unit_test(ops_run),
        cmocka_unit_test(ops_run_threaded),
        cmocka_unit_test(ops_run_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
