/* Unit tests: the task's partition, the tile grid and its digest, and the
 * partition Items merged into a Collection's extent (partition.h, grid.h,
 * collection.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "collection.h"
#include "err.h"
#include "grid.h"
#include "mem.h"
#include "partition.h"
#include "result.h"
#include "terrane_proto.h"

#include <cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    mem_init();
    err_clear();
    return 0;
}

static int decode(const char *json, partition *p)
{
    cJSON *v = cJSON_Parse(json);
    assert_non_null(v);
    err_clear();
    int rc = partition_decode(v, p);
    cJSON_Delete(v);
    return rc;
}

#define TILE                                                                                       \
    "\"tile\":{\"col\":1,\"row\":0,\"xoff\":%d,\"yoff\":0,\"xsize\":%d,\"ysize\":10,\"halo\":%d,"  \
    "\"width\":100,\"height\":10}"

static void decodes_tile_and_window(void **state)
{
    (void)state;
    partition p;
    char buf[512];
    snprintf(buf, sizeof buf, "{\"key\":\"r000c001\",\"index\":1," TILE "}", 50, 50, 2);
    assert_int_equal(decode(buf, &p), 0);
    assert_string_equal(p.key, "r000c001");
    assert_true(p.has_tile);
    partition_window w = partition_read_window(&p.tile, p.tile.halo);
    /* Grown by 2 on the left; clipped at the raster's right, top, bottom. */
    assert_int_equal(w.x, 48);
    assert_int_equal(w.w, 52);
    assert_int_equal(w.y, 0);
    assert_int_equal(w.h, 10);
    assert_int_equal(partition_check_input(&p.tile, 100, 10, "u"), 0);
    assert_int_equal(partition_check_input(&p.tile, 101, 10, "u"), -1);
    assert_string_equal(err_get_field(), "partition.tile");
    double gt[6] = {1000, 10, 0, 2000, 0, -10}, out[6];
    partition_window_gt(gt, partition_core(&p.tile), out);
    assert_true(out[0] == 1500 && out[3] == 2000 && out[1] == 10 && out[5] == -10);
    partition_free(&p);

    assert_int_equal(decode("{\"key\":\"basin-a/2026-11-30\",\"index\":3,\"window\":{\"start\":"
                            "\"2026-11-30T00:00:00Z\",\"end\":\"2026-12-01T00:00:00Z\"}}",
                            &p),
                     0);
    assert_string_equal(p.start, "2026-11-30T00:00:00Z");
    assert_false(p.has_tile);
    partition_free(&p);
}

static void rejects_with_the_field(void **state)
{
    (void)state;
    partition p;
    char buf[512];
    static const struct {
        const char *json, *field;
    } cases[] = {
        {"{\"index\":1}", "partition.key"},
        {"{\"key\":\"a/../b\",\"index\":1}", "partition.key"},
        {"{\"key\":\"a b\",\"index\":1}", "partition.key"},
        {"{\"key\":\"a\",\"index\":-1}", "partition.index"},
        {"{\"key\":\"a\",\"index\":1.5}", "partition.index"},
        {"{\"key\":\"a\",\"index\":1,\"shard\":2}", "partition.shard"},
        {"{\"key\":\"a\",\"index\":1,\"window\":{\"start\":\"2026-11-30\",\"end\":\"x\"}}",
         "partition.window.start"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(decode(cases[i].json, &p), -1);
        assert_string_equal(err_get_field(), cases[i].field);
        partition_free(&p);
    }
    /* A core outside the raster. */
    snprintf(buf, sizeof buf, "{\"key\":\"r000c001\",\"index\":1," TILE "}", 60, 50, 1);
    assert_int_equal(decode(buf, &p), -1);
    assert_string_equal(err_get_field(), "partition.tile");
    partition_free(&p);
    assert_false(partition_key_valid(""));
    assert_false(partition_key_valid("a//b"));
    assert_true(partition_key_valid("basin-a/2026-11-30T00:00"));
}

static grid raster(void)
{
    grid g = {.width = 1001, .height = 1001, .bands = 1};
    snprintf(g.data_type, sizeof g.data_type, "Float32");
    snprintf(g.crs, sizeof g.crs, "EPSG:32632");
    double gt[6] = {300000, 10, 0, 5600000, 0, -10};
    memcpy(g.gt, gt, sizeof gt);
    return g;
}

static void grid_in_pixels_and_in_the_crs(void **state)
{
    (void)state;
    grid g = raster();
    cJSON *p = cJSON_Parse("{\"tileSize\":[256,256],\"halo\":1}");
    assert_int_equal(grid_compute(p, &g), 0);
    assert_int_equal(g.cols, 4);
    assert_int_equal(g.rows, 4);
    int x0, y0, x1, y1;
    grid_tile(&g, 3, 3, &x0, &y0, &x1, &y1);
    assert_int_equal(x0, 768);
    assert_int_equal(x1, 1001); /* the edge tile is cut */
    cJSON_Delete(p);

    g = raster();
    p = cJSON_Parse("{\"origin\":[299000,5601000],\"cellSize\":[4000,4000]}");
    assert_int_equal(grid_compute(p, &g), 0);
    assert_int_equal(g.tile_width, 400);
    assert_int_equal(g.offset_x, -100);
    assert_int_equal(g.offset_y, -100);
    assert_int_equal(g.cols, 3);
    grid_tile(&g, 0, 0, &x0, &y0, &x1, &y1);
    assert_int_equal(x0, 0);
    assert_int_equal(x1, 300);
    cJSON_Delete(p);

    /* Not a whole number of pixels; not on a pixel corner. */
    g = raster();
    p = cJSON_Parse("{\"origin\":[299000,5601000],\"cellSize\":[4005,4000]}");
    assert_int_equal(grid_compute(p, &g), -1);
    assert_string_equal(err_get_field(), "params.cellSize");
    cJSON_Delete(p);
    g = raster();
    p = cJSON_Parse("{\"origin\":[299003,5601000],\"cellSize\":[4000,4000]}");
    assert_int_equal(grid_compute(p, &g), -1);
    assert_string_equal(err_get_field(), "params.origin");
    cJSON_Delete(p);
}

static void digest_round_trip(void **state)
{
    (void)state;
    grid g = raster(), back;
    char json[GRID_JSON_MAX];
    cJSON *p = cJSON_Parse("{\"tileSize\":[512,512],\"halo\":1}");
    assert_int_equal(grid_compute(p, &g), 0);
    cJSON_Delete(p);
    assert_int_equal(grid_json(&g, json, sizeof json), 0);
    assert_int_equal(strlen(g.digest), 64);
    /* Numbers in their shortest exact spelling. */
    assert_non_null(strstr(json, "\"geoTransform\":[300000,10,0,5600000,0,-10]"));
    cJSON *v = cJSON_Parse(json);
    assert_int_equal(grid_decode(v, "params.grid", &back), 0);
    assert_string_equal(back.digest, g.digest);
    /* Any change of a field is a different digest. */
    cJSON_ReplaceItemInObject(v, "halo", cJSON_CreateNumber(2));
    assert_int_equal(grid_decode(v, "params.grid", &back), -1);
    assert_string_equal(err_get_field(), "params.grid.digest");
    cJSON_Delete(v);
}

/* Geotransforms whose numbers cJSON's printer would round (it accepts a
 * %.15g spelling that reads back within DBL_EPSILON): the Olinda DEM's own
 * (olinda_dem_utm25s.tif), terra's elev.tif, thirds, 0.1 + 0.2, a negative
 * zero, a subnormal and the largest double. The grid result carries the
 * canonical text verbatim; a reader that parses it and prints it again in
 * %.17g (jansson, the controller) hands assemble the same doubles, so the
 * digest assemble recomputes is the one the grid task reported. */
static void awkward_geotransforms_round_trip(void **state)
{
    (void)state;
    static const double gts[][6] = {
        {288776.25000080315, 89.99406734945116, 0, 9120760.750028737, 0, -89.99406734945116},
        {5.741666666666666, 0.008333333333333337, 0, 50.19166666666666, 0, -0.008333333333333333},
        {1.0 / 3, 2.0 / 3, 1e-17, -1.0 / 3, 0.1 + 0.2, -1.0 / 7},
        {-0.0, 1, -0.0, 0, -0.0, -1},
        {4.9406564584124654e-324, 1e-300, 0, DBL_MAX, 0, -2.2250738585072014e-308},
        {-180.00000000000003, 0.0083333333333333332, 0, 90.000000000000014, 0, -0.0083333333333},
    };
    for (size_t i = 0; i < sizeof gts / sizeof gts[0]; i++) {
        grid g = raster(), back;
        memcpy(g.gt, gts[i], sizeof g.gt);
        char json[GRID_JSON_MAX], buf[TERRANE_TERMINATION_MAX], again[GRID_JSON_MAX];
        cJSON *p = cJSON_Parse("{\"tileSize\":[256,256],\"halo\":1}");
        assert_int_equal(grid_compute(p, &g), 0);
        cJSON_Delete(p);
        assert_int_equal(grid_json(&g, json, sizeof json), 0);
        /* every number is the one spelling, and reads back bit for bit */
        for (int k = 0; k < 6; k++) {
            char n[GRID_NUM_MAX];
            grid_num(g.gt[k], n);
            double d = strtod(n, NULL), want = g.gt[k] == 0 ? 0 : g.gt[k];
            assert_memory_equal(&d, &want, sizeof d);
            assert_non_null(strstr(json, n));
        }
        result r = {.grid = json};
        size_t len = result_render(&r, buf, sizeof buf);
        assert_true(len > 0);
        assert_non_null(strstr(buf, json)); /* verbatim */
        cJSON *doc = cJSON_Parse(buf);
        cJSON *gj = cJSON_GetObjectItemCaseSensitive(doc, "grid");
        assert_int_equal(grid_decode(gj, "params.grid", &back), 0);
        assert_string_equal(back.digest, g.digest);
        /* what the controller writes into the assemble task: %.17g */
        const cJSON *gt = cJSON_GetObjectItemCaseSensitive(gj, "geoTransform");
        int n = snprintf(again, sizeof again, "[");
        for (int k = 0; k < 6; k++)
            n += snprintf(again + n, sizeof again - (size_t)n, "%s%.17g", k ? "," : "",
                          cJSON_GetArrayItem(gt, k)->valuedouble);
        snprintf(again + n, sizeof again - (size_t)n, "]");
        cJSON_ReplaceItemInObject(gj, "geoTransform", cJSON_Parse(again));
        assert_int_equal(grid_decode(gj, "params.grid", &back), 0);
        assert_string_equal(back.digest, g.digest);
        cJSON_Delete(doc);
    }
}

static void items_merge_into_an_extent(void **state)
{
    (void)state;
    collection_extent e = {0};
    const char *a = "{\"type\":\"Feature\",\"bbox\":[1,2,3,4],\"properties\":{\"start_datetime\":"
                    "\"2026-11-02T00:00:00Z\",\"end_datetime\":\"2026-11-03T00:00:00Z\"}}";
    const char *b = "{\"type\":\"Feature\",\"bbox\":[0,3,2,5],\"properties\":{\"datetime\":"
                    "\"2026-11-01T12:00:00Z\"}}";
    assert_int_equal(collection_item_merge(a, strlen(a), "f", &e), 0);
    assert_int_equal(collection_item_merge(b, strlen(b), "f", &e), 0);
    assert_true(e.bbox[0] == 0 && e.bbox[1] == 2 && e.bbox[2] == 3 && e.bbox[3] == 5);
    assert_string_equal(e.start, "2026-11-01T12:00:00Z");
    assert_string_equal(e.end, "2026-11-03T00:00:00Z");
    const char *bad = "{\"type\":\"Feature\",\"bbox\":[1,2,3]}";
    assert_int_equal(collection_item_merge(bad, strlen(bad), "inputs[2].stacItem", &e), -1);
    assert_string_equal(err_get_field(), "inputs[2].stacItem");
    assert_int_equal(collection_item_merge("[", 1, "f", &e), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(decodes_tile_and_window, setup),
        cmocka_unit_test_setup(rejects_with_the_field, setup),
        cmocka_unit_test_setup(grid_in_pixels_and_in_the_crs, setup),
        cmocka_unit_test_setup(awkward_geotransforms_round_trip, setup),
        cmocka_unit_test_setup(digest_round_trip, setup),
        cmocka_unit_test_setup(items_merge_into_an_extent, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
