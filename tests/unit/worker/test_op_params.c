/*
 * Unit tests: params and cross-field validation of the raster operations
 * cog, warp, mosaic and terrain, through the operation table exactly as
 * `terrane-worker validate` runs it (params_check with the op's spec and the
 * COG options, then the op's validate). No I/O: the input URIs point at a
 * bucket that exists nowhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cog.h"
#include "err.h"
#include "mem.h"
#include "op.h"
#include "params.h"
#include "task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    mem_init();
    err_clear();
    unsetenv("TERRANE_ALLOWED_BUCKETS");
    unsetenv("TERRANE_ALLOW_LOCAL_PATHS");
    return 0;
}

#define ONE_RASTER "[{\"name\":\"dem\",\"uri\":\"s3://nowhere/dem.tif\"}]"
#define RASTER_AND_ZONES                                                                           \
    "[{\"name\":\"dem\",\"uri\":\"s3://nowhere/dem.tif\"},"                                        \
    "{\"name\":\"zones\",\"uri\":\"s3://nowhere/lux.shp\"}]"
#define TWO_RASTERS                                                                                \
    "[{\"name\":\"a\",\"uri\":\"s3://nowhere/a.tif\"},{\"name\":\"b\",\"uri\":\"s3://nowhere/"     \
    "b.tif\"}]"

/* Decodes a task for op with params and inputs (JSON text) and validates
 * it; returns task_validate's result (decode must succeed). */
static int check(const char *op, const char *params, const char *inputs)
{
    char json[8192];
    task *t = NULL;
    snprintf(json, sizeof json,
             "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Task\",\"namespace\":\"test\","
             "\"assetKey\":\"test/%s\",\"dataVersion\":\"sha256:"
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
             "\"operation\":\"%s\",\"params\":%s,\"inputs\":%s,"
             "\"output\":{\"uri\":\"s3://assets/out\"},\"attempt\":1}",
             op, op, params, inputs);
    err_clear();
    if (task_decode(json, strlen(json), &t) != 0)
        fail_msg("task for %s %s did not decode: %s", op, params, err_get_message());
    assert_ptr_equal(t->op, op_find(op));
    int rc = task_validate(t);
    task_free(t);
    return rc;
}

static void accepts(const char *op, const char *params, const char *inputs)
{
    if (check(op, params, inputs) != 0)
        fail_msg("%s %s rejected: [%s] %s", op, params, err_get_field(), err_get_message());
}

/* Rejected with an error naming field (and, when given, mentioning needle). */
static void rejects(const char *op, const char *params, const char *inputs, const char *field,
                    const char *needle)
{
    if (check(op, params, inputs) == 0) fail_msg("%s %s accepted", op, params);
    if (strcmp(err_get_field(), field) != 0)
        fail_msg("%s %s: field '%s', expected '%s' (%s)", op, params, err_get_field(), field,
                 err_get_message());
    assert_int_equal(err_get_class(), ERR_BAD_INPUT);
    if (needle && !strstr(err_get_message(), needle))
        fail_msg("%s %s: message '%s' lacks '%s'", op, params, err_get_message(), needle);
}

static void table_has_raster_ops(void **state)
{
    (void)state;
    const char *names[] = {"cog", "warp", "mosaic", "terrain"};
    for (size_t i = 0; i < 4; i++) {
        const op_def *op = op_find(names[i]);
        assert_non_null(op);
        assert_true(op->cog_options);
        assert_non_null(op->validate);
        assert_non_null(op->run);
    }
}

static void cog_params(void **state)
{
    (void)state;
    accepts("cog", "{}", ONE_RASTER);
    accepts("cog",
            "{\"compression\":\"ZSTD\",\"level\":22,\"predictor\":2,\"blockSize\":256,"
            "\"overviewResampling\":\"average\",\"bigtiff\":\"YES\",\"nodata\":-9999}",
            ONE_RASTER);
    accepts("cog", "{\"compression\":\"DEFLATE\",\"level\":12,\"predictor\":3}", ONE_RASTER);
    accepts("cog", "{\"compression\":\"LZW\",\"predictor\":2,\"nodata\":\"none\"}", ONE_RASTER);
    accepts("cog", "{\"compression\":\"NONE\",\"blockSize\":16}", ONE_RASTER);
    accepts("cog", "{\"blockSize\":4096,\"bigtiff\":\"IF_SAFER\"}", ONE_RASTER);

    rejects("cog", "{\"compresion\":\"ZSTD\"}", ONE_RASTER, "params.compresion", "unknown");
    rejects("cog", "{\"compression\":\"JPEG\"}", ONE_RASTER, "params.compression", "DEFLATE");
    rejects("cog", "{\"compression\":\"zstd\"}", ONE_RASTER, "params.compression", NULL);
    rejects("cog", "{\"level\":\"9\"}", ONE_RASTER, "params.level", "integer");
    rejects("cog", "{\"level\":1.5}", ONE_RASTER, "params.level", "integer");
    rejects("cog", "{\"level\":13}", ONE_RASTER, "params.level", "[1, 12]");
    rejects("cog", "{\"compression\":\"ZSTD\",\"level\":23}", ONE_RASTER, "params.level", NULL);
    rejects("cog", "{\"compression\":\"LZW\",\"level\":5}", ONE_RASTER, "params.level",
            "has no level");
    rejects("cog", "{\"compression\":\"NONE\",\"level\":1}", ONE_RASTER, "params.level", NULL);
    rejects("cog", "{\"predictor\":0}", ONE_RASTER, "params.predictor", NULL);
    rejects("cog", "{\"predictor\":4}", ONE_RASTER, "params.predictor", NULL);
    rejects("cog", "{\"compression\":\"NONE\",\"predictor\":2}", ONE_RASTER, "params.predictor",
            "needs compression");
    rejects("cog", "{\"blockSize\":8}", ONE_RASTER, "params.blockSize", "range");
    rejects("cog", "{\"blockSize\":8192}", ONE_RASTER, "params.blockSize", "range");
    rejects("cog", "{\"blockSize\":100}", ONE_RASTER, "params.blockSize", "multiple of 16");
    rejects("cog", "{\"blockSize\":\"512\"}", ONE_RASTER, "params.blockSize", NULL);
    rejects("cog", "{\"overviewResampling\":\"near\"}", ONE_RASTER, "params.overviewResampling",
            "nearest");
    rejects("cog", "{\"bigtiff\":true}", ONE_RASTER, "params.bigtiff", NULL);
    rejects("cog", "{\"nodata\":\"nan\"}", ONE_RASTER, "params.nodata", "none");
    rejects("cog", "{\"nodata\":[0]}", ONE_RASTER, "params.nodata", NULL);

    rejects("cog", "{}", TWO_RASTERS, "inputs", "exactly one");
    rejects("cog", "{}", "[]", "inputs", "exactly one");
}

static void warp_params(void **state)
{
    (void)state;
    accepts("warp", "{\"dstCrs\":\"EPSG:3035\",\"resolution\":500}", ONE_RASTER);
    accepts("warp",
            "{\"dstCrs\":\"epsg:32632\",\"resolution\":[30,60],\"resampling\":\"bilinear\"}",
            ONE_RASTER);
    accepts("warp", "{\"dstCrs\":\"OGC:CRS84\"}", ONE_RASTER);
    accepts("warp", "{\"dstCrs\":\"EPSG:4326+5773\"}", ONE_RASTER);
    accepts("warp", "{\"dstCrs\":\"+proj=utm +zone=32 +datum=WGS84 +units=m +no_defs\"}",
            ONE_RASTER);
    accepts("warp",
            "{\"dstCrs\":\"GEOGCRS[\\\"WGS 84\\\",DATUM[\\\"World Geodetic System 1984\\\","
            "ELLIPSOID[\\\"WGS 84\\\",6378137,298.257223563]],CS[ellipsoidal,2],"
            "AXIS[\\\"lat\\\",north],AXIS[\\\"lon\\\",east],ANGLEUNIT[\\\"degree\\\",0."
            "0174532925199433]]\"}",
            ONE_RASTER);
    accepts("warp", "{\"resampling\":\"nearest\",\"compression\":\"ZSTD\"}", ONE_RASTER);
    accepts("warp", "{\"cutline\":\"zones\"}", RASTER_AND_ZONES);
    accepts("warp", "{\"cutline\":\"zones\",\"cropToCutline\":false,\"dstCrs\":\"EPSG:3035\"}",
            RASTER_AND_ZONES);

    /* Forms that would make GDAL read a file or the network. */
    rejects("warp", "{\"dstCrs\":\"/etc/passwd\"}", ONE_RASTER, "params.dstCrs", "EPSG");
    rejects("warp", "{\"dstCrs\":\"http://example.com/crs.wkt\"}", ONE_RASTER, "params.dstCrs",
            NULL);
    rejects("warp", "{\"dstCrs\":\"https://example.com/crs\"}", ONE_RASTER, "params.dstCrs", NULL);
    rejects("warp", "{\"dstCrs\":\"DICT:/etc/passwd,1\"}", ONE_RASTER, "params.dstCrs", NULL);
    rejects("warp", "{\"dstCrs\":\"EPSG:/etc/passwd\"}", ONE_RASTER, "params.dstCrs", NULL);
    rejects("warp", "{\"dstCrs\":\"+init=epsg:4326\"}", ONE_RASTER, "params.dstCrs", NULL);
    rejects("warp", "{\"dstCrs\":\"+proj=longlat +init=/etc/x\"}", ONE_RASTER, "params.dstCrs",
            NULL);
    rejects("warp", "{\"dstCrs\":\"EPSG:\"}", ONE_RASTER, "params.dstCrs", NULL);
    rejects("warp", "{\"dstCrs\":\"\"}", ONE_RASTER, "params.dstCrs", NULL);
    rejects("warp", "{\"dstCrs\":3035}", ONE_RASTER, "params.dstCrs", "string");

    rejects("warp", "{\"resolution\":0}", ONE_RASTER, "params.resolution", "greater than 0");
    rejects("warp", "{\"resolution\":[10,-10]}", ONE_RASTER, "params.resolution", NULL);
    rejects("warp", "{\"resolution\":[10,10,10]}", ONE_RASTER, "params.resolution", NULL);
    rejects("warp", "{\"resolution\":\"10m\"}", ONE_RASTER, "params.resolution", NULL);
    rejects("warp", "{\"resampling\":\"near\"}", ONE_RASTER, "params.resampling", "nearest");
    rejects("warp", "{\"cutline\":\"zone\"}", RASTER_AND_ZONES, "params.cutline", "no input named");
    rejects("warp", "{\"cutline\":7}", RASTER_AND_ZONES, "params.cutline", NULL);
    rejects("warp", "{\"cropToCutline\":true}", ONE_RASTER, "params.cropToCutline",
            "params.cutline");
    rejects("warp", "{\"cutline\":\"zones\",\"cropToCutline\":\"yes\"}", RASTER_AND_ZONES,
            "params.cropToCutline", NULL);
    rejects("warp", "{\"blockSize\":24}", ONE_RASTER, "params.blockSize", NULL);
    rejects("warp", "{\"dstCRS\":\"EPSG:3035\"}", ONE_RASTER, "params.dstCRS", "unknown");
    /* Without a cutline both inputs are rasters: one too many. */
    rejects("warp", "{}", RASTER_AND_ZONES, "inputs", "exactly one");
}

static void mosaic_params(void **state)
{
    (void)state;
    accepts("mosaic", "{}", ONE_RASTER);
    accepts("mosaic", "{\"resampling\":\"average\",\"compression\":\"LZW\"}", TWO_RASTERS);
    rejects("mosaic", "{\"resampling\":\"near\"}", TWO_RASTERS, "params.resampling", NULL);
    rejects("mosaic", "{\"mode\":\"slope\"}", TWO_RASTERS, "params.mode", "unknown");
    rejects("mosaic", "{\"level\":30}", TWO_RASTERS, "params.level", NULL);
    rejects("mosaic", "{}", "[]", "inputs", "at least one");
}

static void terrain_params(void **state)
{
    (void)state;
    const char *modes[] = {"hillshade", "slope", "aspect", "TRI", "TPI", "roughness"};
    char p[256];
    for (size_t i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "{\"mode\":\"%s\",\"band\":1,\"computeEdges\":true}", modes[i]);
        accepts("terrain", p, ONE_RASTER);
    }
    accepts("terrain",
            "{\"mode\":\"slope\",\"slopeFormat\":\"percent\",\"scale\":111120,"
            "\"alg\":\"ZevenbergenThorne\",\"predictor\":3,\"compression\":\"ZSTD\"}",
            ONE_RASTER);
    accepts("terrain",
            "{\"mode\":\"hillshade\",\"azimuth\":0,\"altitude\":90,\"zFactor\":2,\"scale\":1,"
            "\"alg\":\"Horn\",\"predictor\":2}",
            ONE_RASTER);
    accepts("terrain", "{\"mode\":\"aspect\",\"alg\":\"Horn\"}", ONE_RASTER);

    rejects("terrain", "{}", ONE_RASTER, "params.mode", "required");
    rejects("terrain", "{\"mode\":\"Slope\"}", ONE_RASTER, "params.mode", "hillshade");
    rejects("terrain", "{\"mode\":\"color-relief\"}", ONE_RASTER, "params.mode", NULL);
    rejects("terrain", "{\"mode\":\"slope\",\"slopeFormt\":\"percent\"}", ONE_RASTER,
            "params.slopeFormt", "unknown parameter");
    rejects("terrain", "{\"mode\":\"slope\",\"azimuth\":315}", ONE_RASTER, "params.azimuth",
            "hillshade");
    rejects("terrain", "{\"mode\":\"aspect\",\"altitude\":45}", ONE_RASTER, "params.altitude",
            NULL);
    rejects("terrain", "{\"mode\":\"slope\",\"zFactor\":2}", ONE_RASTER, "params.zFactor", NULL);
    rejects("terrain", "{\"mode\":\"aspect\",\"scale\":2}", ONE_RASTER, "params.scale", NULL);
    rejects("terrain", "{\"mode\":\"hillshade\",\"azimuth\":400}", ONE_RASTER, "params.azimuth",
            "range");
    rejects("terrain", "{\"mode\":\"hillshade\",\"altitude\":-1}", ONE_RASTER, "params.altitude",
            NULL);
    rejects("terrain", "{\"mode\":\"hillshade\",\"azimuth\":\"north\"}", ONE_RASTER,
            "params.azimuth", "number");
    rejects("terrain", "{\"mode\":\"aspect\",\"slopeFormat\":\"percent\"}", ONE_RASTER,
            "params.slopeFormat", "slope");
    rejects("terrain", "{\"mode\":\"slope\",\"slopeFormat\":\"radian\"}", ONE_RASTER,
            "params.slopeFormat", NULL);
    rejects("terrain", "{\"mode\":\"TRI\",\"alg\":\"Horn\"}", ONE_RASTER, "params.alg", NULL);
    rejects("terrain", "{\"mode\":\"slope\",\"alg\":\"horn\"}", ONE_RASTER, "params.alg", NULL);
    rejects("terrain", "{\"mode\":\"slope\",\"scale\":0}", ONE_RASTER, "params.scale",
            "greater than 0");
    rejects("terrain", "{\"mode\":\"slope\",\"scale\":-1}", ONE_RASTER, "params.scale", NULL);
    rejects("terrain", "{\"mode\":\"slope\",\"band\":0}", ONE_RASTER, "params.band", NULL);
    rejects("terrain", "{\"mode\":\"slope\",\"band\":1.5}", ONE_RASTER, "params.band", NULL);
    rejects("terrain", "{\"mode\":\"slope\",\"computeEdges\":\"true\"}", ONE_RASTER,
            "params.computeEdges", NULL);
    rejects("terrain", "{\"mode\":\"slope\",\"nodata\":0}", ONE_RASTER, "params.nodata", "-9999");
    rejects("terrain", "{\"mode\":\"hillshade\",\"predictor\":3}", ONE_RASTER, "params.predictor",
            "Byte");
    rejects("terrain", "{\"mode\":\"slope\",\"blockSize\":1000}", ONE_RASTER, "params.blockSize",
            NULL);
    rejects("terrain", "{\"mode\":\"slope\"}", TWO_RASTERS, "inputs", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(table_has_raster_ops, setup),
        cmocka_unit_test_setup(cog_params, setup),
        cmocka_unit_test_setup(warp_params, setup),
        cmocka_unit_test_setup(mosaic_params, setup),
        cmocka_unit_test_setup(terrain_params, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
