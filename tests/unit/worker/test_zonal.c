/* Unit tests: zonal statistics (zonal.h) on in-memory rasters and polygons
 * built here, with every expected statistic worked out by hand.
 *
 * The raster is 10 x 10 cells of 1 x 1 map units, top-left corner at (0, 10),
 * so cell (row r, col c) covers x in [c, c+1], y in [9-r, 10-r] and holds
 * the value 10 r + c; 99 (the bottom-right cell) is its nodata value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "err.h"
#include "mem.h"
#include "zonal.h"

#include <cJSON.h>
#include <cpl_conv.h>
#include <gdal.h>
#include <math.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/terrane-zonal-XXXXXX";
static char gj_path[256], csv_path[256];

static int group_setup(void **state)
{
    (void)state;
    GDALAllRegister();
    mem_init();
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(gj_path, sizeof gj_path, "%s/stats.geojson", tmpdir);
    snprintf(csv_path, sizeof csv_path, "%s/stats.csv", tmpdir);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(gj_path);
    unlink(csv_path);
    rmdir(tmpdir);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    err_clear();
    return 0;
}

static OGRSpatialReferenceH srs_epsg(int code)
{
    OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
    assert_int_equal(OSRImportFromEPSG(s, code), OGRERR_NONE);
    OSRSetAxisMappingStrategy(s, OAMS_TRADITIONAL_GIS_ORDER);
    return s;
}

/* The 10 x 10 raster described above, in EPSG:4326 when epsg is set. */
static GDALDatasetH make_raster(int epsg, bool with_nodata)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("MEM"), "", 10, 10, 1, GDT_Float64, NULL);
    double gt[6] = {0, 1, 0, 10, 0, -1}, v[100];
    assert_non_null(ds);
    for (int i = 0; i < 100; i++)
        v[i] = i;
    assert_int_equal(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, 10, 10, v, 10, 10,
                                  GDT_Float64, 0, 0),
                     CE_None);
    GDALSetGeoTransform(ds, gt);
    if (with_nodata) GDALSetRasterNoDataValue(GDALGetRasterBand(ds, 1), 99);
    if (epsg) {
        OGRSpatialReferenceH s = srs_epsg(epsg);
        GDALSetSpatialRef(ds, s);
        OSRRelease(s);
    }
    return ds;
}

static OGRGeometryH wkt_geom(const char *wkt)
{
    OGRGeometryH g = NULL;
    char *p = (char *)wkt;
    assert_int_equal(OGR_G_CreateFromWkt(&p, NULL, &g), OGRERR_NONE);
    return g;
}

typedef struct poly_case {
    const char *wkt;
    bool overlaps;
    unsigned long long count;
    double min, max, sum;
    const double *cells; /* for the mean and stddev, computed two-pass */
} poly_case;

static const double square_cells[] = {52, 53, 54, 62, 63, 64, 72, 73, 74, -1};
static const double triangle_cells[] = {90, 91, 92, 93, 80, 81, 82, 70, 71, 60, -1};
static const double one_zero[] = {0, -1};
static const double one_ninety[] = {90, -1};

static void reference_moments(const double *cells, double *mean, double *sd)
{
    double s = 0, q = 0;
    int n = 0;
    for (; cells[n] >= 0; n++)
        s += cells[n];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        q += (cells[i] - *mean) * (cells[i] - *mean);
    *sd = sqrt(q / n);
}

static void check_acc(const char *what, const zonal_acc *a, const poly_case *c)
{
    double mean = 0, sd = 0;
    if (a->count != c->count) fail_msg("%s: count %llu, want %llu", what, a->count, c->count);
    if (!c->count) return;
    if (a->min != c->min || a->max != c->max || zonal_acc_sum(a) != c->sum)
        fail_msg("%s: min %g max %g sum %g", what, a->min, a->max, zonal_acc_sum(a));
    if (c->cells) {
        reference_moments(c->cells, &mean, &sd);
        if (fabs(zonal_acc_mean(a) - mean) > 1e-12 * fabs(mean))
            fail_msg("%s: mean %.17g, want %.17g", what, zonal_acc_mean(a), mean);
        if (fabs(zonal_acc_stddev(a) - sd) > 1e-12 * fmax(sd, 1))
            fail_msg("%s: stddev %.17g, want %.17g", what, zonal_acc_stddev(a), sd);
    }
}

static void accumulator(void **state)
{
    (void)state;
    zonal_acc a;
    zonal_acc_init(&a);
    assert_true(a.count == 0);
    for (int i = 1; i <= 10; i++)
        zonal_acc_add(&a, i);
    assert_true(a.count == 10 && a.min == 1 && a.max == 10);
    assert_true(zonal_acc_sum(&a) == 55 && zonal_acc_mean(&a) == 5.5);
    assert_true(fabs(zonal_acc_stddev(&a) - sqrt(8.25)) < 1e-15);

    /* A large offset loses nothing with Welford and a compensated sum. */
    zonal_acc_init(&a);
    for (int i = 1; i <= 4; i++)
        zonal_acc_add(&a, 1e9 + i);
    assert_true(zonal_acc_mean(&a) == 1e9 + 2.5);
    assert_true(fabs(zonal_acc_stddev(&a) - sqrt(1.25)) < 1e-12);

    /* 1 + 1e100 - 1e100 ... : the compensation keeps the small terms. */
    zonal_acc_init(&a);
    zonal_acc_add(&a, 1);
    zonal_acc_add(&a, 1e100);
    zonal_acc_add(&a, 1);
    zonal_acc_add(&a, -1e100);
    assert_true(zonal_acc_sum(&a) == 2);

    zonal_acc_init(&a);
    zonal_acc_add(&a, -7);
    assert_true(a.min == -7 && a.max == -7 && zonal_acc_stddev(&a) == 0);
}

static void polygons_by_cell_centre(void **state)
{
    (void)state;
    static const poly_case cases[] = {
        /* cols 2..4, rows 5..7 */
        {"POLYGON((2 2,5 2,5 5,2 5,2 2))", true, 9, 52, 74, 567, square_cells},
        /* centres (i+.5, j+.5) with i+j <= 3 */
        {"POLYGON((0 0,4.2 0,0 4.2,0 0))", true, 10, 60, 93, 810, triangle_cells},
        /* everything but the hole (44, 45, 54, 55) and the nodata cell */
        {"POLYGON((0 0,10 0,10 10,0 10,0 0),(4 4,6 4,6 6,4 6,4 4))", true, 95, 0, 98,
         4950 - 198 - 99, NULL},
        /* top-left cell and the nodata cell */
        {"MULTIPOLYGON(((0 9,1 9,1 10,0 10,0 9)),((9 0,10 0,10 1,9 1,9 0)))", true, 1, 0, 0, 0,
         one_zero},
        {"POLYGON((20 20,30 20,30 30,20 30,20 20))", false, 0, 0, 0, 0, NULL},
        {"POLYGON((-5 -5,1 -5,1 1,-5 1,-5 -5))", true, 1, 90, 90, 90, one_ninety},
        /* inside one cell, but off its centre */
        {"POLYGON((0.1 0.1,0.4 0.1,0.4 0.4,0.1 0.4,0.1 0.1))", true, 0, 0, 0, 0, NULL},
    };
    static const unsigned tiles[] = {0, 1, 2, 3, 7};
    GDALDatasetH ds = make_raster(0, true);
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char what[128];
            zonal_acc a;
            bool overlaps = !cases[i].overlaps;
            OGRGeometryH g = wkt_geom(cases[i].wkt);
            snprintf(what, sizeof what, "%s (tile %u)", cases[i].wkt, tiles[t]);
            zonal_acc_init(&a);
            assert_int_equal(zonal_polygon(ds, 1, g, tiles[t], "inputs[0].uri", &a, &overlaps), 0);
            if (overlaps != cases[i].overlaps) fail_msg("%s: overlaps %d", what, overlaps);
            check_acc(what, &a, &cases[i]);
            OGR_G_DestroyGeometry(g);
        }
    }
    GDALClose(ds);
}

/* Nodata through a mask band and through NaN cells, not a nodata value. */
static void mask_band_and_nan(void **state)
{
    (void)state;
    GDALDatasetH ds = make_raster(0, false);
    GDALRasterBandH b = GDALGetRasterBand(ds, 1), m;
    unsigned char valid[100];
    double nan_v = NAN;
    zonal_acc a;
    bool overlaps;
    OGRGeometryH g = wkt_geom("POLYGON((2 2,5 2,5 5,2 5,2 2))");
    static const double rest[] = {53, 54, 62, 64, 72, 73, 74, -1};
    const poly_case want = {NULL, true, 7, 53, 74, 567 - 52 - 63, rest};

    assert_int_equal(GDALCreateMaskBand(b, GMF_PER_DATASET), CE_None);
    m = GDALGetMaskBand(b);
    memset(valid, 255, sizeof valid);
    valid[52] = 0;
    assert_int_equal(GDALRasterIO(m, GF_Write, 0, 0, 10, 10, valid, 10, 10, GDT_Byte, 0, 0),
                     CE_None);
    assert_int_equal(GDALRasterIO(b, GF_Write, 3, 6, 1, 1, &nan_v, 1, 1, GDT_Float64, 0, 0),
                     CE_None); /* 63 */
    zonal_acc_init(&a);
    assert_int_equal(zonal_polygon(ds, 1, g, 0, "inputs[0].uri", &a, &overlaps), 0);
    check_acc("mask band", &a, &want);
    OGR_G_DestroyGeometry(g);
    GDALClose(ds);
}

static GDALDatasetH make_zones(int epsg, OGRwkbGeometryType type, OGRLayerH *layer)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("Memory"), "", 0, 0, 0, GDT_Unknown, NULL);
    OGRSpatialReferenceH s = epsg ? srs_epsg(epsg) : NULL;
    OGRFieldDefnH f;
    assert_non_null(ds);
    *layer = GDALDatasetCreateLayer(ds, "zones", s, type, NULL);
    assert_non_null(*layer);
    f = OGR_Fld_Create("name", OFTString);
    OGR_L_CreateField(*layer, f, TRUE);
    OGR_Fld_Destroy(f);
    f = OGR_Fld_Create("id", OFTInteger);
    OGR_L_CreateField(*layer, f, TRUE);
    OGR_Fld_Destroy(f);
    if (s) OSRRelease(s);
    return ds;
}

static void add_zone(OGRLayerH layer, const char *name, int id, const char *wkt)
{
    OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(layer));
    if (name) OGR_F_SetFieldString(f, 0, name);
    OGR_F_SetFieldInteger(f, 1, id);
    if (wkt) {
        OGRGeometryH g = wkt_geom(wkt);
        OGR_F_SetGeometryDirectly(f, g);
    }
    assert_int_equal(OGR_L_CreateFeature(layer, f), OGRERR_NONE);
    OGR_F_Destroy(f);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    long n;
    char *s;
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
    s[n] = '\0';
    fclose(fp);
    return s;
}

static zonal_job job_for(GDALDatasetH raster, GDALDatasetH zones, const char *key, unsigned stats)
{
    zonal_job j = {
        .raster = raster,
        .band = 1,
        .zones = zones,
        .key = key,
        .stats = stats,
        .raster_field = "inputs[0].uri",
        .zones_field = "inputs[1].uri",
        .geojson_path = gj_path,
        .csv_path = csv_path,
    };
    return j;
}

static GDALDatasetH four_zones(int epsg)
{
    OGRLayerH l;
    GDALDatasetH z = make_zones(epsg, wkbPolygon, &l);
    add_zone(l, "A", 1, "POLYGON((2 2,5 2,5 5,2 5,2 2))");
    add_zone(l, "B \"q\", x", 2, "POLYGON((0 0,4.2 0,0 4.2,0 0))");
    add_zone(l, NULL, 3, "POLYGON((20 20,30 20,30 30,20 30,20 20))");
    add_zone(l, "D", 4, NULL);
    return z;
}

static void run_writes_csv_and_geojson(void **state)
{
    (void)state;
    GDALDatasetH r = make_raster(4326, true), z = four_zones(4326);
    zonal_job j =
        job_for(r, z, "name", ZONAL_COUNT | ZONAL_MIN | ZONAL_MAX | ZONAL_MEAN | ZONAL_SUM);
    char *csv, *gj;
    cJSON *doc, *feats, *p;

    assert_int_equal(zonal_run(&j), 0);
    csv = slurp(csv_path);
    assert_string_equal(csv, "name,count,min,max,mean,sum\n"
                             "A,9,52,74,63,567\n"
                             "\"B \"\"q\"\", x\",10,60,93,81,810\n"
                             ",0,,,,\n"
                             "D,0,,,,\n");
    free(csv);

    /* All statistics, checked through a JSON parser. */
    j.stats = ZONAL_ALL;
    assert_int_equal(zonal_run(&j), 0);
    gj = slurp(gj_path);
    doc = cJSON_Parse(gj);
    assert_non_null(doc);
    assert_string_equal(cJSON_GetObjectItem(doc, "type")->valuestring, "FeatureCollection");
    feats = cJSON_GetObjectItem(doc, "features");
    assert_int_equal(cJSON_GetArraySize(feats), 4);
    p = cJSON_GetObjectItem(cJSON_GetArrayItem(feats, 0), "properties");
    assert_string_equal(cJSON_GetObjectItem(p, "name")->valuestring, "A");
    assert_true(cJSON_GetObjectItem(p, "count")->valuedouble == 9);
    assert_true(cJSON_GetObjectItem(p, "min")->valuedouble == 52);
    assert_true(cJSON_GetObjectItem(p, "max")->valuedouble == 74);
    assert_true(cJSON_GetObjectItem(p, "mean")->valuedouble == 63);
    assert_true(cJSON_GetObjectItem(p, "sum")->valuedouble == 567);
    assert_true(fabs(cJSON_GetObjectItem(p, "stddev")->valuedouble - sqrt(606.0 / 9)) < 1e-12);
    p = cJSON_GetObjectItem(cJSON_GetArrayItem(feats, 1), "properties");
    assert_string_equal(cJSON_GetObjectItem(p, "name")->valuestring, "B \"q\", x");
    p = cJSON_GetObjectItem(cJSON_GetArrayItem(feats, 2), "properties");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(p, "name")));
    assert_true(cJSON_GetObjectItem(p, "count")->valuedouble == 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(p, "min")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(p, "stddev")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(feats, 3), "geometry")));
    {
        cJSON *g = cJSON_GetObjectItem(cJSON_GetArrayItem(feats, 0), "geometry");
        cJSON *ring = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "coordinates"), 0);
        assert_string_equal(cJSON_GetObjectItem(g, "type")->valuestring, "Polygon");
        assert_int_equal(cJSON_GetArraySize(ring), 5);
        assert_true(cJSON_GetArrayItem(cJSON_GetArrayItem(ring, 1), 0)->valuedouble == 5);
        assert_true(cJSON_GetArrayItem(cJSON_GetArrayItem(ring, 1), 1)->valuedouble == 2);
    }
    cJSON_Delete(doc);
    /* Same input, same bytes. */
    assert_int_equal(zonal_run(&j), 0);
    {
        char *again = slurp(gj_path);
        assert_string_equal(gj, again);
        free(again);
    }
    free(gj);

    /* An integer key is written as a number. */
    j.key = "id";
    j.stats = ZONAL_COUNT;
    assert_int_equal(zonal_run(&j), 0);
    csv = slurp(csv_path);
    assert_string_equal(csv, "id,count\n1,9\n2,10\n3,0\n4,0\n");
    free(csv);
    gj = slurp(gj_path);
    assert_non_null(strstr(gj, "\"properties\":{\"id\":1,\"count\":9}"));
    free(gj);
    GDALClose(z);
    GDALClose(r);
}

/* Zones in Web Mercator over a raster in EPSG:4326: a lon/lat rectangle is a
 * rectangle in Mercator too, so the cells are the square's. */
static void zones_are_reprojected(void **state)
{
    (void)state;
    GDALDatasetH r = make_raster(4326, true), z;
    OGRLayerH l;
    OGRSpatialReferenceH s4326 = srs_epsg(4326), s3857 = srs_epsg(3857);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(s4326, s3857);
    OGRGeometryH g = wkt_geom("POLYGON((2 2,5 2,5 5,2 5,2 2))");
    char *wkt = NULL, *csv, *gj;
    zonal_job j;
    cJSON *doc, *pt;

    assert_int_equal(OGR_G_Transform(g, ct), OGRERR_NONE);
    assert_int_equal(OGR_G_ExportToWkt(g, &wkt), OGRERR_NONE);
    z = make_zones(3857, wkbPolygon, &l);
    add_zone(l, "A", 1, wkt);
    j = job_for(r, z, "name", ZONAL_COUNT | ZONAL_SUM);
    assert_int_equal(zonal_run(&j), 0);
    csv = slurp(csv_path);
    assert_string_equal(csv, "name,count,sum\nA,9,567\n");
    free(csv);
    /* The GeoJSON is back in longitude/latitude, 7 decimals. */
    gj = slurp(gj_path);
    doc = cJSON_Parse(gj);
    assert_non_null(doc);
    pt = cJSON_GetArrayItem(
        cJSON_GetArrayItem(
            cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "features"), 0),
                                    "geometry"),
                "coordinates"),
            0),
        2);
    assert_true(fabs(cJSON_GetArrayItem(pt, 0)->valuedouble - 5) < 1e-7);
    assert_true(fabs(cJSON_GetArrayItem(pt, 1)->valuedouble - 5) < 1e-7);
    cJSON_Delete(doc);
    free(gj);
    CPLFree(wkt);
    OGR_G_DestroyGeometry(g);
    OCTDestroyCoordinateTransformation(ct);
    OSRRelease(s4326);
    OSRRelease(s3857);
    GDALClose(z);
    GDALClose(r);
}

static void expect_error(zonal_job *j, const char *code, const char *field, const char *msg)
{
    err_clear();
    assert_int_equal(zonal_run(j), -1);
    assert_int_equal(err_get_class(), ERR_BAD_INPUT);
    assert_string_equal(err_get_code(), code);
    assert_string_equal(err_get_field(), field);
    if (!strstr(err_get_message(), msg)) fail_msg("want '%s' in '%s'", msg, err_get_message());
}

static void errors(void **state)
{
    (void)state;
    GDALDatasetH r = make_raster(4326, true), z;
    OGRLayerH l;
    zonal_job j;

    z = four_zones(4326);
    j = job_for(r, z, "NAME", ZONAL_ALL);
    expect_error(&j, "InvalidParam", "params.key",
                 "params.key: layer 'zones' of inputs[1].uri has no attribute 'NAME' (attributes: "
                 "name, id)");
    GDALClose(z);

    z = make_zones(4326, wkbPoint, &l);
    add_zone(l, "p", 1, "POINT(1 1)");
    j = job_for(r, z, "name", ZONAL_ALL);
    expect_error(&j, "InputInvalid", "inputs[1].uri",
                 "has Point geometries; zones must be polygons");
    GDALClose(z);

    z = make_zones(4326, wkbUnknown, &l);
    add_zone(l, "a", 1, "POLYGON((2 2,5 2,5 5,2 5,2 2))");
    add_zone(l, "l", 2, "LINESTRING(1 1,2 2)");
    j = job_for(r, z, "name", ZONAL_ALL);
    expect_error(&j, "InputInvalid", "inputs[1].uri", "feature 1 is a LINESTRING");
    GDALClose(z);

    z = make_zones(4326, wkbPolygon, &l);
    add_zone(l, "far", 1, "POLYGON((20 20,30 20,30 30,20 30,20 20))");
    add_zone(l, "none", 2, NULL);
    j = job_for(r, z, "name", ZONAL_ALL);
    expect_error(&j, "EmptyIntersection", "inputs[1].uri", "no zone overlaps the raster");
    GDALClose(z);

    z = make_zones(4326, wkbPolygon, &l);
    j = job_for(r, z, "name", ZONAL_ALL);
    expect_error(&j, "EmptyIntersection", "inputs[1].uri", "has no features");
    GDALClose(z);
    GDALClose(r);
}

/* Every allocation through mem.h may fail: reported as out of memory,
 * nothing leaked (ASan), and the run succeeds once allocations do. */
static void allocation_failures(void **state)
{
    (void)state;
    GDALDatasetH r = make_raster(4326, true), z = four_zones(4326);
    zonal_job j = job_for(r, z, "name", ZONAL_ALL);
    int failures = 0;
    for (unsigned long nth = 1; nth < 200; nth++) {
        err_clear();
        mem_fail_at(nth);
        int rc = zonal_run(&j);
        mem_fail_at(0);
        if (rc == 0) break;
        failures++;
        assert_string_equal(err_get_code(), "OutOfMemory");
    }
    assert_true(failures >= 3);
    GDALClose(z);
    GDALClose(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(accumulator, setup),
        cmocka_unit_test_setup(polygons_by_cell_centre, setup),
        cmocka_unit_test_setup(mask_band_and_nan, setup),
        cmocka_unit_test_setup(run_writes_csv_and_geojson, setup),
        cmocka_unit_test_setup(zones_are_reprojected, setup),
        cmocka_unit_test_setup(errors, setup),
        cmocka_unit_test_setup(allocation_failures, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
