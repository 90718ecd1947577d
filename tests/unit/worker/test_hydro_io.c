/* Unit tests: hydrology grids in and out of GDAL (hydro_io.h) with
 * in-memory datasets built here: cell sizes of projected and geographic
 * grids, refused geotransforms, direction codes and their errors, COGs,
 * catchment polygons and stream lines read back with OGR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "err.h"
#include "fixture.h"
#include "hydro_io.h"
#include "mem.h"
#include "params.h"

#include <cpl_conv.h>
#include <gdal.h>
#include <math.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/terrane-hydro-io-XXXXXX";

static int group_setup(void **state)
{
    (void)state;
    GDALAllRegister();
    mem_init();
    CPLSetErrorHandler(fixture_quiet_gdal);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    fixture_rmtree(tmpdir);
    return 0;
}

/* A w x h MEM raster of type, EPSG code epsg (0: none), origin (x0, y0),
 * square pixels of px map units. */
static GDALDatasetH mem_raster(int w, int h, GDALDataType type, int epsg, double x0, double y0,
                               double px)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("MEM"), "", w, h, 1, type, NULL);
    double gt[6] = {x0, px, 0, y0, 0, -px};
    GDALSetGeoTransform(ds, gt);
    if (epsg) {
        OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
        char *wkt = NULL;
        OSRImportFromEPSG(srs, epsg);
        OSRExportToWkt(srs, &wkt);
        GDALSetProjection(ds, wkt);
        CPLFree(wkt);
        OSRDestroySpatialReference(srs);
    }
    return ds;
}

static void cell_sizes(void **state)
{
    (void)state;
    hydro_raster r;
    GDALDatasetH ds = mem_raster(4, 3, GDT_Float32, 32632, 500000, 5000000, 25);
    assert_int_equal(hydro_raster_open(ds, "inputs[0].uri", &r), 0);
    assert_float_equal(r.g.dy, 25, 0);
    for (size_t y = 0; y < 3; y++)
        assert_float_equal(r.g.dx[y], 25, 0);
    hydro_raster_free(&r);
    GDALClose(ds);

    /* Geographic, 0.5 degree cells from 60 N: rows centred on 59.75,
     * 59.25 and 58.75 degrees. */
    ds = mem_raster(4, 3, GDT_Float32, 4326, 10, 60, 0.5);
    assert_int_equal(hydro_raster_open(ds, "inputs[0].uri", &r), 0);
    double deg = HYDRO_EARTH_RADIUS * M_PI / 180 * 0.5;
    assert_float_equal(r.g.dy, deg, 1e-6);
    assert_float_equal(r.g.dx[0], deg * cos(59.75 * M_PI / 180), 1e-6);
    assert_float_equal(r.g.dx[2], deg * cos(58.75 * M_PI / 180), 1e-6);
    assert_true(r.g.dx[0] < r.g.dx[2]);
    hydro_raster_free(&r);
    GDALClose(ds);
}

static void refused_grids(void **state)
{
    (void)state;
    hydro_raster r;
    GDALDatasetH ds = mem_raster(4, 3, GDT_Float32, 32632, 0, 0, 1);
    double gt[6] = {0, 1, 0.1, 0, 0, -1};
    GDALSetGeoTransform(ds, gt);
    err_clear();
    assert_int_equal(hydro_raster_open(ds, "inputs[1].uri", &r), -1);
    assert_string_equal(err_get_field(), "inputs[1].uri");
    assert_non_null(strstr(err_get_message(), "rotated"));
    hydro_raster_free(&r);
    GDALClose(ds);

    /* 2^32 cells or more: refused before anything is allocated. */
    ds = GDALCreate(GDALGetDriverByName("MEM"), "", 70000, 70000, 0, GDT_Byte, NULL);
    err_clear();
    assert_int_equal(hydro_raster_open(ds, "inputs[0].uri", &r), -1);
    assert_non_null(strstr(err_get_message(), "2^32"));
    hydro_raster_free(&r);
    GDALClose(ds);

    /* Two grids that differ. */
    hydro_raster a, b;
    GDALDatasetH da = mem_raster(4, 3, GDT_Float32, 32632, 0, 0, 1);
    GDALDatasetH db = mem_raster(4, 3, GDT_Float32, 32632, 1, 0, 1);
    assert_int_equal(hydro_raster_open(da, "inputs[0].uri", &a), 0);
    assert_int_equal(hydro_raster_open(db, "inputs[1].uri", &b), 0);
    err_clear();
    assert_int_equal(hydro_raster_same_grid(&a, &b), -1);
    assert_string_equal(err_get_code(), ERR_CRS_MISMATCH);
    assert_string_equal(err_get_field(), "inputs[1].uri");
    assert_int_equal(hydro_raster_same_grid(&a, &a), 0);
    hydro_raster_free(&a);
    hydro_raster_free(&b);
    GDALClose(da);
    GDALClose(db);
}

static void direction_codes(void **state)
{
    (void)state;
    /* 3 x 2, esri: E E S / 64 255(nodata) 1; the east column's E points off
     * the grid and the last E into nothing, so both become outlets. */
    uint8_t codes[6] = {1, 1, 4, 64, 255, 1};
    GDALDatasetH ds = mem_raster(3, 2, GDT_Byte, 32632, 0, 0, 10);
    GDALRasterBandH b = GDALGetRasterBand(ds, 1);
    GDALSetRasterNoDataValue(b, 255);
    assert_int_equal(GDALRasterIO(b, GF_Write, 0, 0, 3, 2, codes, 3, 2, GDT_Byte, 0, 0), CE_None);
    hydro_raster r;
    uint8_t *dir = NULL;
    assert_int_equal(hydro_raster_open(ds, "inputs[0].uri", &r), 0);
    assert_int_equal(hydro_dirs_encoding(ds, HYDRO_ENC_GRASS), HYDRO_ENC_GRASS);
    GDALSetMetadataItem(ds, "TERRANE_FLOW_ENCODING", "esri", NULL);
    assert_int_equal(hydro_dirs_encoding(ds, HYDRO_ENC_GRASS), HYDRO_ENC_ESRI);
    assert_int_equal(hydro_read_dirs(ds, &r, HYDRO_ENC_ESRI, &dir), 0);
    assert_int_equal(dir[0], 0);
    assert_int_equal(dir[1], 0);
    assert_int_equal(dir[2], 2); /* S, to the last cell, which is valid */
    assert_int_equal(dir[3], 6); /* N */
    assert_int_equal(dir[4], HYDRO_NODATA);
    assert_int_equal(dir[5], HYDRO_OUT); /* E off the grid */
    mem_free(dir);
    dir = NULL;

    /* A code that is not esri's: the error names the cell. */
    codes[4] = 3;
    assert_int_equal(GDALRasterIO(b, GF_Write, 0, 0, 3, 2, codes, 3, 2, GDT_Byte, 0, 0), CE_None);
    err_clear();
    assert_int_equal(hydro_read_dirs(ds, &r, HYDRO_ENC_ESRI, &dir), -1);
    assert_null(dir);
    assert_string_equal(err_get_code(), ERR_INPUT_INVALID);
    assert_non_null(strstr(err_get_message(), "row 1, column 1"));
    hydro_raster_free(&r);
    GDALClose(ds);
}

static void cog_defaults(void **state)
{
    (void)state;
    cJSON *empty = cJSON_CreateObject();
    /* A surface: ZSTD level 1, floating-point predictor, overviews. */
    cJSON *p = hydro_cog_params(empty, GDT_Float32, true);
    assert_non_null(p);
    assert_string_equal(params_str(p, "compression", ""), "ZSTD");
    assert_int_equal(params_int(p, "level", 0), 1);
    assert_int_equal(params_int(p, "predictor", 0), 3);
    assert_true(params_bool(p, "overviews", false));
    cJSON_Delete(p);
    /* Codes: ZSTD level 1, no predictor, no overviews. */
    p = hydro_cog_params(empty, GDT_Byte, false);
    assert_string_equal(params_str(p, "compression", ""), "ZSTD");
    assert_false(params_has(p, "predictor"));
    assert_false(params_bool(p, "overviews", true));
    cJSON_Delete(p);
    /* What the task says wins: its compression without a level, its
     * overviews. */
    cJSON *given = cJSON_Parse("{\"compression\":\"DEFLATE\",\"overviews\":true}");
    p = hydro_cog_params(given, GDT_Float32, false);
    assert_string_equal(params_str(p, "compression", ""), "DEFLATE");
    assert_false(params_has(p, "level"));
    assert_false(params_has(p, "predictor"));
    assert_true(params_bool(p, "overviews", false));
    cJSON_Delete(p);
    cJSON_Delete(given);

    /* Written: ZSTD, and overviews only where asked for. */
    enum { W = 1200, H = 1000 };
    uint8_t *v = mem_calloc((size_t)W * H, 1);
    assert_non_null(v);
    for (size_t i = 0; i < (size_t)W * H; i++)
        v[i] = (uint8_t)(1u << (i % 8));
    GDALDatasetH ds = mem_raster(W, H, GDT_Byte, 32632, 0, 0, 10);
    hydro_raster r;
    char path[300];
    assert_int_equal(hydro_raster_open(ds, "inputs[0].uri", &r), 0);
    for (int ovr = 0; ovr <= 1; ovr++) {
        snprintf(path, sizeof path, "%s/codes%d.tif", tmpdir, ovr);
        assert_int_equal(
            hydro_write_cog(&r, v, GDT_Byte, true, 255, NULL, ovr, empty, path, NULL, NULL), 0);
        GDALDatasetH back = GDALOpen(path, GA_ReadOnly);
        assert_non_null(back);
        GDALRasterBandH b = GDALGetRasterBand(back, 1);
        assert_string_equal(GDALGetMetadataItem(back, "COMPRESSION", "IMAGE_STRUCTURE"), "ZSTD");
        assert_string_equal(GDALGetMetadataItem(back, "LAYOUT", "IMAGE_STRUCTURE"), "COG");
        if (ovr)
            assert_true(GDALGetOverviewCount(b) > 0);
        else
            assert_int_equal(GDALGetOverviewCount(b), 0);
        uint8_t got[16];
        assert_int_equal(GDALRasterIO(b, GF_Read, 0, 0, 16, 1, got, 16, 1, GDT_Byte, 0, 0),
                         CE_None);
        assert_memory_equal(got, v, sizeof got);
        GDALClose(back);
    }
    hydro_raster_free(&r);
    GDALClose(ds);
    mem_free(v);
    cJSON_Delete(empty);
}

static void cog_round_trip(void **state)
{
    (void)state;
    float v[6] = {1, 2, 3, 4, -9999, 6};
    char path[300];
    cJSON *params = cJSON_CreateObject();
    GDALDatasetH ds = mem_raster(3, 2, GDT_Float32, 32632, 0, 0, 10);
    hydro_raster r;
    char *meta[] = {"TERRANE_TEST=1", NULL};
    assert_int_equal(hydro_raster_open(ds, "inputs[0].uri", &r), 0);
    snprintf(path, sizeof path, "%s/out.tif", tmpdir);
    assert_int_equal(
        hydro_write_cog(&r, v, GDT_Float32, true, -9999, meta, true, params, path, NULL, NULL), 0);
    GDALDatasetH back = GDALOpen(path, GA_ReadOnly);
    assert_non_null(back);
    float got[6];
    int has = 0;
    assert_int_equal(
        GDALRasterIO(GDALGetRasterBand(back, 1), GF_Read, 0, 0, 3, 2, got, 3, 2, GDT_Float32, 0, 0),
        CE_None);
    assert_memory_equal(got, v, sizeof v);
    assert_float_equal(GDALGetRasterNoDataValue(GDALGetRasterBand(back, 1), &has), -9999, 0);
    assert_true(has);
    assert_string_equal(GDALGetMetadataItem(back, "TERRANE_TEST", NULL), "1");
    GDALClose(back);

    /* Read back through hydro_read_float: nodata becomes NaN. */
    back = GDALOpen(path, GA_ReadOnly);
    float *f = NULL;
    assert_int_equal(hydro_read_float(back, 1, &r, &f), 0);
    assert_true(isnan(f[4]));
    assert_float_equal(f[5], 6, 0);
    mem_free(f);
    GDALClose(back);
    hydro_raster_free(&r);
    GDALClose(ds);
    cJSON_Delete(params);
}

static void polygons_and_lines(void **state)
{
    (void)state;
    /* 4 x 2 cells of 10 m: label 1 on the west half, 2 on the east, one
     * cell unlabelled. */
    uint32_t label[8] = {1, 1, 2, 2, 1, 1, 2, 0};
    char path[300], lpath[300];
    GDALDatasetH ds = mem_raster(4, 2, GDT_UInt32, 32632, 500000, 5000000, 10);
    hydro_raster r;
    assert_int_equal(hydro_raster_open(ds, "inputs[0].uri", &r), 0);
    snprintf(path, sizeof path, "%s/catchments.geojson", tmpdir);
    assert_int_equal(hydro_write_polygons(&r, label, "catchments", path), 0);
    GDALDatasetH vec = GDALOpenEx(path, GDAL_OF_VECTOR, NULL, NULL, NULL);
    assert_non_null(vec);
    OGRLayerH layer = GDALDatasetGetLayer(vec, 0);
    assert_int_equal(OGR_L_GetFeatureCount(layer, TRUE), 2);
    OGRFeatureH f;
    double total = 0;
    while ((f = OGR_L_GetNextFeature(layer))) {
        int id = OGR_F_GetFieldAsInteger(f, OGR_F_GetFieldIndex(f, "id"));
        double area = OGR_F_GetFieldAsDouble(f, OGR_F_GetFieldIndex(f, "area"));
        assert_float_equal(area, id == 1 ? 400 : 300, 1e-9);
        total += area;
        /* RFC 7946: longitude/latitude, here near 9 E, 45 N. */
        OGREnvelope env;
        OGR_G_GetEnvelope(OGR_F_GetGeometryRef(f), &env);
        assert_true(env.MinX > 8.9 && env.MaxX < 9.1 && env.MinY > 45 && env.MaxY < 45.2);
        OGR_F_Destroy(f);
    }
    assert_float_equal(total, 700, 1e-9);
    GDALClose(vec);

    snprintf(lpath, sizeof lpath, "%s/streams.geojson", tmpdir);
    hydro_lines *l = NULL;
    uint32_t cells[3] = {0, 1, 6};
    assert_int_equal(hydro_lines_open(&r, lpath, &l), 0);
    assert_int_equal(hydro_lines_add(cells, 3, 2, l), 0);
    assert_int_equal(hydro_lines_close(l), 0);
    vec = GDALOpenEx(lpath, GDAL_OF_VECTOR, NULL, NULL, NULL);
    layer = GDALDatasetGetLayer(vec, 0);
    f = OGR_L_GetNextFeature(layer);
    assert_non_null(f);
    assert_int_equal(OGR_F_GetFieldAsInteger(f, OGR_F_GetFieldIndex(f, "order")), 2);
    assert_int_equal(OGR_F_GetFieldAsInteger(f, OGR_F_GetFieldIndex(f, "id")), 1);
    assert_int_equal(OGR_G_GetPointCount(OGR_F_GetGeometryRef(f)), 3);
    OGR_F_Destroy(f);
    GDALClose(vec);
    hydro_raster_free(&r);
    GDALClose(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cell_sizes),      cmocka_unit_test(refused_grids),
        cmocka_unit_test(direction_codes), cmocka_unit_test(cog_round_trip),
        cmocka_unit_test(cog_defaults),    cmocka_unit_test(polygons_and_lines),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
