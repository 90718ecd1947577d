/*
 * Unit tests: the STAC Item (stac.h) built from small rasters and vectors
 * written to a temporary directory: required STAC 1.0.0 structure, footprint
 * in EPSG:4326, projection / raster / file / processing fields, lineage
 * links, and every allocation failure reported without leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "worker/fixture.h"

#include "err.h"
#include "mem.h"
#include "op.h"
#include "stac.h"
#include "task.h"

#include <cJSON.h>
#include <cpl_conv.h>
#include <cpl_error.h>
#include <ftw.h>
#include <gdal.h>
#include <math.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DV "sha256:" HEX
#define SUM "1220" HEX

static char tmpdir[256];
static char utm[512], custom[512], nogeo[512], geojson[512];

/* width x height Byte raster; srs_def NULL: no georeferencing at all. */
static int make_raster(const char *path, const char *srs_def, const double *gt, int nodata)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, 20, 10, 2, GDT_Byte, NULL);
    if (!ds) return -1;
    if (srs_def) {
        OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
        OSRSetFromUserInput(srs, srs_def);
        GDALSetSpatialRef(ds, srs);
        OSRDestroySpatialReference(srs);
        GDALSetGeoTransform(ds, (double *)gt);
    }
    if (nodata >= 0) GDALSetRasterNoDataValue(GDALGetRasterBand(ds, 1), nodata);
    GDALClose(ds);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    fixture_gdal_init();
    if (!fixture_tmpdir(tmpdir, sizeof tmpdir, "test_stac")) return -1;
    snprintf(utm, sizeof utm, "%s/utm.tif", tmpdir);
    snprintf(custom, sizeof custom, "%s/custom.tif", tmpdir);
    snprintf(nogeo, sizeof nogeo, "%s/nogeo.tif", tmpdir);
    snprintf(geojson, sizeof geojson, "%s/zones.geojson", tmpdir);
    /* UTM 31N around 3°E 40.6°N, 30 m pixels */
    const double gt_utm[6] = {500000, 30, 0, 4500000, 0, -30};
    const double gt_custom[6] = {1000, 10, 0, 2000, 0, -10};
    if (make_raster(utm, "EPSG:32631", gt_utm, 255) < 0 ||
        make_raster(custom,
                    "+proj=tmerc +lat_0=0 +lon_0=10.5 +k=0.9995 +x_0=0 +y_0=0 +ellps=GRS80 "
                    "+units=m +no_defs",
                    gt_custom, -1) < 0 ||
        make_raster(nogeo, NULL, NULL, -1) < 0)
        return -1;
    FILE *f = fopen(geojson, "w");
    if (!f) return -1;
    fputs("{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":"
          "{\"id\":1},\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[[6.0,49.5],[6.5,49.5],"
          "[6.5,50.0],[6.0,50.0],[6.0,49.5]]]}}]}",
          f);
    fclose(f);
    return 0;
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
    return 0;
}

/* An upstream asset input (with its STAC Item) and an external one. */
static task *make_task(void)
{
    const char *json =
        "{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Task\",\"namespace\":\"hydro\","
        "\"assetKey\":\"hydrology/dem_slope\",\"dataVersion\":\"" DV "\",\"operation\":\"terrain\","
        "\"params\":{\"mode\":\"slope\"},\"inputs\":["
        "{\"name\":\"dem\",\"uri\":\"s3://assets/up/asset.tif\",\"assetKey\":\"hydrology/dem\","
        "\"dataVersion\":\"" DV "\",\"stacItem\":\"s3://assets/up/item.json\"},"
        "{\"name\":\"mask\",\"uri\":\"s3://raw/catchments.gpkg\"}],"
        "\"output\":{\"uri\":\"s3://assets/hydro\"},\"attempt\":1}";
    task *t = NULL;
    assert_int_equal(task_decode(json, strlen(json), &t), 0);
    return t;
}

static stac_file cog_file(const char *local)
{
    return (stac_file){.name = "asset.tif",
                       .href = "s3://assets/hydro/x/asset.tif",
                       .media_type = MEDIA_COG,
                       .role = "data",
                       .checksum = SUM,
                       .size = 1234,
                       .local_path = local,
                       .is_cog = true};
}

static cJSON *get(const cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) fail_msg("missing %s", k);
    return v;
}

static bool has_string(const cJSON *arr, const char *s)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) if (cJSON_IsString(e) && !strcmp(e->valuestring, s)) return true;
    return false;
}

/* Checks the structure every STAC 1.0.0 Item must have. */
static void check_item_structure(const cJSON *item)
{
    assert_string_equal(get(item, "type")->valuestring, "Feature");
    assert_string_equal(get(item, "stac_version")->valuestring, "1.0.0");
    assert_true(cJSON_IsArray(get(item, "stac_extensions")));
    assert_true(cJSON_IsString(get(item, "id")));
    const cJSON *g = get(item, "geometry");
    assert_true(cJSON_IsNull(g) || cJSON_IsObject(g));
    if (cJSON_IsObject(g))
        assert_int_equal(cJSON_GetArraySize(get(item, "bbox")), 4);
    else
        assert_null(cJSON_GetObjectItem(item, "bbox"));
    const cJSON *props = get(item, "properties");
    assert_true(cJSON_IsString(get(props, "datetime")));
    assert_true(cJSON_IsArray(get(item, "links")));
    assert_true(cJSON_IsObject(get(item, "assets")));
    const cJSON *a;
    cJSON_ArrayForEach(a, get(item, "assets")) assert_true(cJSON_IsString(get(a, "href")));
}

static void item_for_utm_cog(void **state)
{
    (void)state;
    task *t = make_task();
    stac_file f = cog_file(utm);
    cJSON *item = NULL;
    assert_int_equal(
        stac_item_build(t, &f, 1, "s3://assets/hydro/x/item.json", "2026-11-24T05:00:00Z", &item),
        0);
    check_item_structure(item);
    assert_string_equal(get(item, "id")->valuestring, "hydrology-dem_slope-0123456789ab");

    const cJSON *exts = get(item, "stac_extensions");
    assert_true(has_string(exts, STAC_EXT_PROJECTION));
    assert_true(has_string(exts, STAC_EXT_FILE));
    assert_true(has_string(exts, STAC_EXT_PROCESSING));
    assert_true(has_string(exts, STAC_EXT_RASTER));

    /* Footprint: 600 m x 300 m at 3°E, 40.65°N, closed and counterclockwise. */
    const cJSON *bbox = get(item, "bbox");
    double w = cJSON_GetArrayItem(bbox, 0)->valuedouble,
           s = cJSON_GetArrayItem(bbox, 1)->valuedouble;
    double e = cJSON_GetArrayItem(bbox, 2)->valuedouble,
           n = cJSON_GetArrayItem(bbox, 3)->valuedouble;
    assert_true(fabs(w - 3.0) < 1e-6 && e > 3.005 && e < 3.01); /* x = 500000 is 3°E */
    assert_true(s > 40.6 && n < 40.7 && s < n);
    const cJSON *ring = cJSON_GetArrayItem(get(get(item, "geometry"), "coordinates"), 0);
    int np = cJSON_GetArraySize(ring);
    assert_true(np >= 5);
    const cJSON *first = cJSON_GetArrayItem(ring, 0), *last = cJSON_GetArrayItem(ring, np - 1);
    assert_true(cJSON_GetArrayItem(first, 0)->valuedouble ==
                cJSON_GetArrayItem(last, 0)->valuedouble);
    assert_true(cJSON_GetArrayItem(first, 1)->valuedouble ==
                cJSON_GetArrayItem(last, 1)->valuedouble);
    double area2 = 0;
    for (int i = 0; i + 1 < np; i++) {
        const cJSON *p = cJSON_GetArrayItem(ring, i), *q = cJSON_GetArrayItem(ring, i + 1);
        double x0 = cJSON_GetArrayItem(p, 0)->valuedouble,
               y0 = cJSON_GetArrayItem(p, 1)->valuedouble;
        double x1 = cJSON_GetArrayItem(q, 0)->valuedouble,
               y1 = cJSON_GetArrayItem(q, 1)->valuedouble;
        assert_true(x0 >= w - 1e-9 && x0 <= e + 1e-9 && y0 >= s - 1e-9 && y0 <= n + 1e-9);
        area2 += x0 * y1 - x1 * y0;
    }
    assert_true(area2 > 0);

    const cJSON *props = get(item, "properties");
    assert_string_equal(get(props, "datetime")->valuestring, "2026-11-24T05:00:00Z");
    assert_string_equal(get(props, "terrane:assetKey")->valuestring, "hydrology/dem_slope");
    assert_string_equal(get(props, "terrane:dataVersion")->valuestring, DV);
    assert_string_equal(get(get(props, "processing:software"), "terrane-worker")->valuestring,
                        TERRANE_VERSION);
    assert_string_equal(get(get(props, "processing:software"), "GDAL")->valuestring,
                        GDALVersionInfo("RELEASE_NAME"));
    assert_non_null(strstr(get(props, "processing:lineage")->valuestring, "terrain"));
    assert_string_equal(get(props, "proj:code")->valuestring, "EPSG:32631");
    assert_null(cJSON_GetObjectItem(props, "proj:epsg")); /* projection v1; v2 has proj:code */
    assert_true(has_string(get(item, "stac_extensions"),
                           "https://stac-extensions.github.io/projection/v2.0.0/schema.json"));
    assert_true(has_string(get(item, "stac_extensions"),
                           "https://stac-extensions.github.io/processing/v1.2.0/schema.json"));
    assert_string_equal(get(props, "processing:datetime")->valuestring,
                        get(props, "datetime")->valuestring);
    const cJSON *shape = get(props, "proj:shape");
    assert_int_equal(cJSON_GetArrayItem(shape, 0)->valueint, 10); /* rows first */
    assert_int_equal(cJSON_GetArrayItem(shape, 1)->valueint, 20);
    const cJSON *tr = get(props, "proj:transform");
    const double want_tr[6] = {30, 0, 500000, 0, -30, 4500000};
    for (int i = 0; i < 6; i++)
        assert_true(cJSON_GetArrayItem(tr, i)->valuedouble == want_tr[i]);
    const cJSON *pb = get(props, "proj:bbox");
    const double want_pb[4] = {500000, 4499700, 500600, 4500000};
    for (int i = 0; i < 4; i++)
        assert_true(cJSON_GetArrayItem(pb, i)->valuedouble == want_pb[i]);

    const cJSON *asset = get(get(item, "assets"), "asset.tif");
    assert_string_equal(get(asset, "href")->valuestring, "s3://assets/hydro/x/asset.tif");
    assert_string_equal(get(asset, "type")->valuestring, MEDIA_COG);
    assert_true(has_string(get(asset, "roles"), "data"));
    assert_string_equal(get(asset, "file:checksum")->valuestring, SUM);
    assert_int_equal(get(asset, "file:size")->valueint, 1234);
    const cJSON *bands = get(asset, "raster:bands");
    assert_int_equal(cJSON_GetArraySize(bands), 2);
    assert_string_equal(get(cJSON_GetArrayItem(bands, 0), "data_type")->valuestring, "uint8");
    assert_int_equal(get(cJSON_GetArrayItem(bands, 0), "nodata")->valueint, 255);
    /* GeoTIFF keeps one nodata value for all bands. */
    assert_int_equal(get(cJSON_GetArrayItem(bands, 1), "nodata")->valueint, 255);
    assert_true(get(cJSON_GetArrayItem(bands, 0), "spatial_resolution")->valuedouble == 30);

    /* self, then lineage: the upstream's Item, the external source's data. */
    const cJSON *links = get(item, "links");
    assert_int_equal(cJSON_GetArraySize(links), 3);
    const cJSON *l0 = cJSON_GetArrayItem(links, 0), *l1 = cJSON_GetArrayItem(links, 1),
                *l2 = cJSON_GetArrayItem(links, 2);
    assert_string_equal(get(l0, "rel")->valuestring, "self");
    assert_string_equal(get(l0, "href")->valuestring, "s3://assets/hydro/x/item.json");
    assert_string_equal(get(l1, "rel")->valuestring, "derived_from");
    assert_string_equal(get(l1, "href")->valuestring, "s3://assets/up/item.json");
    assert_string_equal(get(l1, "type")->valuestring, STAC_MEDIA_ITEM);
    assert_string_equal(get(l2, "rel")->valuestring, "derived_from");
    assert_string_equal(get(l2, "href")->valuestring, "s3://raw/catchments.gpkg");
    assert_string_equal(get(l2, "type")->valuestring, "application/geopackage+sqlite3");

    cJSON_Delete(item);
    task_free(t);
}

static void item_for_crs_without_epsg(void **state)
{
    (void)state;
    task *t = make_task();
    stac_file f = cog_file(custom);
    cJSON *item = NULL;
    assert_int_equal(stac_item_build(t, &f, 1, "self", "2026-11-24T05:00:00Z", &item), 0);
    check_item_structure(item);
    const cJSON *props = get(item, "properties");
    assert_true(cJSON_IsNull(get(props, "proj:code")));
    assert_non_null(strstr(get(props, "proj:wkt2")->valuestring, "Transverse Mercator"));
    assert_true(cJSON_IsObject(get(props, "proj:projjson")));
    /* 10.5°E central meridian, near the equator */
    double w = cJSON_GetArrayItem(get(item, "bbox"), 0)->valuedouble;
    assert_true(fabs(w - 10.5) < 0.1);
    cJSON_Delete(item);
    task_free(t);
}

static void item_without_georeferencing(void **state)
{
    (void)state;
    task *t = make_task();
    stac_file f = cog_file(nogeo);
    cJSON *item = NULL;
    assert_int_equal(stac_item_build(t, &f, 1, "self", "2026-11-24T05:00:00Z", &item), 0);
    check_item_structure(item);
    assert_true(cJSON_IsNull(get(item, "geometry")));
    assert_false(has_string(get(item, "stac_extensions"), STAC_EXT_PROJECTION));
    cJSON_Delete(item);
    task_free(t);
}

/* zonal-stats style: a GeoJSON primary output and a CSV; no rasters. */
static void item_for_vector_outputs(void **state)
{
    (void)state;
    task *t = make_task();
    stac_file f[2] = {{.name = "zones.geojson",
                       .href = "s3://a/zones.geojson",
                       .media_type = MEDIA_GEOJSON,
                       .role = "data",
                       .checksum = SUM,
                       .size = 10,
                       .local_path = geojson},
                      {.name = "stats.csv",
                       .href = "s3://a/stats.csv",
                       .media_type = MEDIA_CSV,
                       .role = "data",
                       .checksum = SUM,
                       .size = 20,
                       .local_path = NULL}};
    cJSON *item = NULL;
    assert_int_equal(stac_item_build(t, f, 2, "self", "2026-11-24T05:00:00Z", &item), 0);
    check_item_structure(item);
    const cJSON *bbox = get(item, "bbox");
    const double want[4] = {6.0, 49.5, 6.5, 50.0};
    for (int i = 0; i < 4; i++)
        assert_true(fabs(cJSON_GetArrayItem(bbox, i)->valuedouble - want[i]) < 1e-9);
    assert_false(has_string(get(item, "stac_extensions"), STAC_EXT_RASTER));
    assert_non_null(cJSON_GetObjectItem(get(item, "assets"), "stats.csv"));
    cJSON_Delete(item);
    task_free(t);
}

static void unreadable_cog_is_an_error(void **state)
{
    (void)state;
    task *t = make_task();
    stac_file f = cog_file("/nonexistent/asset.tif");
    cJSON *item = NULL;
    assert_int_equal(stac_item_build(t, &f, 1, "self", "2026-11-24T05:00:00Z", &item), -1);
    assert_null(item);
    assert_int_equal(err_get_class(), ERR_INTERNAL);
    task_free(t);
}

static void every_allocation_failure(void **state)
{
    (void)state;
    task *t = make_task();
    stac_file f = cog_file(utm);
    int failures = 0;
    for (unsigned long n = 1; n < 5000; n++) {
        cJSON *item = NULL;
        err_clear();
        mem_fail_at(n);
        int rc = stac_item_build(t, &f, 1, "self", "2026-11-24T05:00:00Z", &item);
        mem_fail_at(0);
        if (rc == 0) {
            cJSON_Delete(item);
            break;
        }
        failures++;
        assert_null(item);
        assert_true(err_is_set());
    }
    assert_true(failures > 20);
    task_free(t);
}

static void helpers(void **state)
{
    (void)state;
    assert_string_equal(stac_media_type_for_uri("s3://b/dem.TIF"),
                        "image/tiff; application=geotiff");
    assert_string_equal(stac_media_type_for_uri("https://h/x.geojson"), "application/geo+json");
    assert_null(stac_media_type_for_uri("s3://b.x/noext"));
    task *t = make_task();
    char id[16];
    stac_item_id(t, id, sizeof id); /* truncated, still terminated */
    assert_int_equal(strlen(id), 15);
    task_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(item_for_utm_cog, setup),
        cmocka_unit_test_setup(item_for_crs_without_epsg, setup),
        cmocka_unit_test_setup(item_without_georeferencing, setup),
        cmocka_unit_test_setup(item_for_vector_outputs, setup),
        cmocka_unit_test_setup(unreadable_cog_is_an_error, setup),
        cmocka_unit_test_setup(every_allocation_failure, setup),
        cmocka_unit_test_setup(helpers, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
