/*
 * op_grid.c - the `grid` operation and the tile grid (grid.h).
 *
 * The controller never reads rasters, so before it fans a tiled asset out it
 * runs one grid task: the worker opens the input (GDALOpen reads the header;
 * no block is read), computes the grid and answers it in the result, which
 * stays far below the 4096-byte termination message. Nothing is published.
 * The digest is SHA-256 of the grid's canonical JSON (every field but the
 * digest, in the schema's order, compact, each number spelt by grid_num)
 * so that the controller can put it into the asset's data version without
 * canonicalising JSON. The result carries that same text verbatim.
 */
#include "grid.h"

#include "err.h"
#include "hash.h"
#include "input.h"
#include "mem.h"
#include "op.h"

#include <cpl_conv.h>
#include <math.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const param_spec grid_params[] = {
    {"tileSize", PARAM_ANY},
    {"halo", PARAM_INT, false, NULL, 0, 4096},
    {"origin", PARAM_ANY},
    {"cellSize", PARAM_ANY},
    {NULL},
};

/* [a, b] of numbers into out; integers when integral; positive when pos. */
static int get_pair(const cJSON *params, const char *name, bool integral, bool pos, double out[2])
{
    char field[32];
    snprintf(field, sizeof field, "params.%s", name);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: must be an array of two %s",
                       field, integral ? "integers" : "numbers");
    for (int i = 0; i < 2; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!isfinite(d) || (integral && (d != floor(d) || d < 16 || d > 1048576)) ||
            (pos && !(d > 0)))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: must be two %s", field,
                           integral ? "integers in 16..1048576"
                           : pos    ? "positive numbers"
                                    : "finite numbers");
        out[i] = d;
    }
    return 0;
}

static int grid_validate(const task *t)
{
    double a[2];
    bool ts = params_has(t->params, "tileSize");
    bool crs = params_has(t->params, "origin") || params_has(t->params, "cellSize");
    if (ts == crs)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, ts ? "params.origin" : "params.tileSize",
                       "params: give tileSize, or origin and cellSize, not both");
    if (ts) return get_pair(t->params, "tileSize", true, true, a);
    if (get_pair(t->params, "origin", false, false, a) < 0) return -1;
    if (get_pair(t->params, "cellSize", false, true, a) < 0) return -1;
    return op_single_input(t, NULL) ? 0 : -1;
}

/* v / step as an integer, when it is one to 1e-6 of a pixel. */
static bool whole(double v, double step, long long *out)
{
    double q = v / step, r = floor(q + 0.5);
    if (fabs(q - r) > 1e-6 || fabs(r) > 1e12) return false;
    *out = (long long)r;
    return true;
}

int grid_compute(const cJSON *params, grid *g)
{
    double p[2];
    g->halo = params_int(params, "halo", 0);
    g->offset_x = g->offset_y = 0;
    if (params_has(params, "tileSize")) {
        if (get_pair(params, "tileSize", true, true, p) < 0) return -1;
        g->tile_width = (int)p[0];
        g->tile_height = (int)p[1];
    } else {
        double o[2], c[2];
        long long tw, th, px, py;
        if (get_pair(params, "origin", false, false, o) < 0) return -1;
        if (get_pair(params, "cellSize", false, true, c) < 0) return -1;
        if (g->gt[2] != 0 || g->gt[4] != 0)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.origin",
                           "params.origin: a grid in the CRS needs a north-up raster (its "
                           "geotransform is rotated)");
        if (!whole(c[0], fabs(g->gt[1]), &tw) || !whole(c[1], fabs(g->gt[5]), &th) || tw < 1 ||
            th < 1 || tw > 1048576 || th > 1048576)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.cellSize",
                           "params.cellSize: [%.17g, %.17g] is not a whole number of pixels of "
                           "%.17g x %.17g",
                           c[0], c[1], fabs(g->gt[1]), fabs(g->gt[5]));
        if (!whole(o[0] - g->gt[0], g->gt[1], &px) || !whole(o[1] - g->gt[3], g->gt[5], &py))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.origin",
                           "params.origin: [%.17g, %.17g] is not on a pixel corner of the raster",
                           o[0], o[1]);
        long long mx = ((px % tw) + tw) % tw, my = ((py % th) + th) % th;
        g->tile_width = (int)tw;
        g->tile_height = (int)th;
        g->offset_x = mx ? (int)(mx - tw) : 0;
        g->offset_y = my ? (int)(my - th) : 0;
    }
    long long cols = ((long long)g->width - g->offset_x + g->tile_width - 1) / g->tile_width;
    long long rows = ((long long)g->height - g->offset_y + g->tile_height - 1) / g->tile_height;
    if (cols * rows > GRID_MAX_TILES)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM,
                       params_has(params, "tileSize") ? "params.tileSize" : "params.cellSize",
                       "the grid would have %lld x %lld tiles, over %d", cols, rows,
                       GRID_MAX_TILES);
    g->cols = (int)cols;
    g->rows = (int)rows;
    return 0;
}

void grid_tile(const grid *g, int col, int row, int *x0, int *y0, int *x1, int *y1)
{
    long long a = (long long)g->offset_x + (long long)col * g->tile_width;
    long long b = (long long)g->offset_y + (long long)row * g->tile_height;
    *x0 = a < 0 ? 0 : (int)a;
    *y0 = b < 0 ? 0 : (int)b;
    *x1 = a + g->tile_width > g->width ? g->width : (int)(a + g->tile_width);
    *y1 = b + g->tile_height > g->height ? g->height : (int)(b + g->tile_height);
}

/* The shortest of %.15g, %.16g, %.17g that strtod reads back as exactly v
 * (bit for bit; -0 is spelt 0, which a JSON reader may take for the integer
 * 0): one spelling per number. Every grid number the worker prints goes
 * through here, the result's as the digest's, so no JSON printer between
 * the grid task and assemble can round a digit away (cJSON's own printer
 * accepts %.15g when it reads back within DBL_EPSILON, not exactly). */
void grid_num(double v, char out[GRID_NUM_MAX])
{
    if (v == 0) v = 0; /* -0 */
    for (int p = 15; p <= 17; p++) {
        snprintf(out, GRID_NUM_MAX, "%.*g", p, v);
        double back = strtod(out, NULL);
        if (!(back < v) && !(back > v)) return; /* reads back as v (no -Wfloat-equal) */
    }
}

/* The canonical JSON without the digest, closing brace left off. */
static int canonical(const grid *g, char *buf, size_t cap)
{
    char n0[GRID_NUM_MAX], n1[GRID_NUM_MAX], n2[GRID_NUM_MAX], n3[GRID_NUM_MAX], n4[GRID_NUM_MAX],
        n5[GRID_NUM_MAX];
    grid_num(g->gt[0], n0);
    grid_num(g->gt[1], n1);
    grid_num(g->gt[2], n2);
    grid_num(g->gt[3], n3);
    grid_num(g->gt[4], n4);
    grid_num(g->gt[5], n5);
    int n = snprintf(buf, cap,
                     "{\"width\":%d,\"height\":%d,\"bands\":%d,\"dataType\":\"%s\","
                     "\"geoTransform\":[%s,%s,%s,%s,%s,%s],\"crs\":\"%s\","
                     "\"tileWidth\":%d,\"tileHeight\":%d,\"cols\":%d,\"rows\":%d,\"halo\":%d,"
                     "\"offsetX\":%d,\"offsetY\":%d",
                     g->width, g->height, g->bands, g->data_type, n0, n1, n2, n3, n4, n5, g->crs,
                     g->tile_width, g->tile_height, g->cols, g->rows, g->halo, g->offset_x,
                     g->offset_y);
    return n < 0 || (size_t)n + 80 > cap ? -1 : n;
}

static int digest_of(const char *s, size_t n, char out[65])
{
    char mh[HASH_MULTIHASH_LEN];
    hash_ctx *h = hash_new();
    if (!h) return err_oom();
    int rc = hash_update(h, s, n) == 0 && hash_final(h, mh) == 0 ? 0 : -1;
    hash_free(h);
    if (rc < 0) return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "hashing the grid failed");
    memcpy(out, mh + 4, 64);
    out[64] = '\0';
    return 0;
}

int grid_json(grid *g, char *buf, size_t cap)
{
    int n = canonical(g, buf, cap);
    if (n < 0) return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "grid JSON too long");
    /* The digest is of the document closed right here. */
    buf[n] = '}';
    if (digest_of(buf, (size_t)n + 1, g->digest) < 0) return -1;
    snprintf(buf + n, cap - (size_t)n, ",\"digest\":\"%s\"}", g->digest);
    return 0;
}

static int get_int(const cJSON *v, const char *name, const char *field, int min, int *out)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(v, name);
    if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < min ||
        e->valuedouble > 1e9)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s.%s: must be an integer >= %d",
                       field, name, min);
    *out = (int)e->valuedouble;
    return 0;
}

static int get_s(const cJSON *v, const char *name, const char *field, char *out, size_t cap)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(v, name);
    if (!cJSON_IsString(e) || strlen(e->valuestring) >= cap)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                       "%s.%s: must be a string of at most %zu characters", field, name, cap - 1);
    snprintf(out, cap, "%s", e->valuestring);
    return 0;
}

int grid_decode(const cJSON *v, const char *field, grid *g)
{
    static const char *const names[] = {
        "width", "height", "bands", "dataType", "geoTransform", "crs",    "tileWidth", "tileHeight",
        "cols",  "rows",   "halo",  "offsetX",  "offsetY",      "digest", NULL};
    char want[65], buf[GRID_JSON_MAX];
    memset(g, 0, sizeof *g);
    if (!cJSON_IsObject(v))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: must be an object", field);
    const cJSON *m;
    cJSON_ArrayForEach(m, v)
    {
        bool known = false;
        for (size_t i = 0; names[i]; i++)
            if (!strcmp(names[i], m->string)) known = true;
        if (!known)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s.%.48s: unknown field",
                           field, m->string);
    }
    if (get_int(v, "width", field, 1, &g->width) < 0 ||
        get_int(v, "height", field, 1, &g->height) < 0 ||
        get_int(v, "bands", field, 0, &g->bands) < 0 ||
        get_int(v, "tileWidth", field, 1, &g->tile_width) < 0 ||
        get_int(v, "tileHeight", field, 1, &g->tile_height) < 0 ||
        get_int(v, "cols", field, 1, &g->cols) < 0 || get_int(v, "rows", field, 1, &g->rows) < 0 ||
        get_int(v, "halo", field, 0, &g->halo) < 0 ||
        get_s(v, "dataType", field, g->data_type, sizeof g->data_type) < 0 ||
        get_s(v, "crs", field, g->crs, sizeof g->crs) < 0 ||
        get_s(v, "digest", field, want, sizeof want) < 0)
        return -1;
    const cJSON *ox = cJSON_GetObjectItemCaseSensitive(v, "offsetX");
    const cJSON *oy = cJSON_GetObjectItemCaseSensitive(v, "offsetY");
    if (!cJSON_IsNumber(ox) || !cJSON_IsNumber(oy) || ox->valuedouble > 0 || oy->valuedouble > 0 ||
        ox->valuedouble <= -g->tile_width || oy->valuedouble <= -g->tile_height)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                       "%s: offsetX and offsetY must be integers in (-tile size, 0]", field);
    g->offset_x = (int)ox->valuedouble;
    g->offset_y = (int)oy->valuedouble;
    const cJSON *gt = cJSON_GetObjectItemCaseSensitive(v, "geoTransform");
    if (!cJSON_IsArray(gt) || cJSON_GetArraySize(gt) != 6)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                       "%s.geoTransform: must be six numbers", field);
    for (int i = 0; i < 6; i++) {
        const cJSON *e = cJSON_GetArrayItem(gt, i);
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                           "%s.geoTransform: must be six numbers", field);
        g->gt[i] = e->valuedouble;
    }
    if ((long long)g->cols * g->rows > GRID_MAX_TILES)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: more than %d tiles", field,
                       GRID_MAX_TILES);
    if (grid_json(g, buf, sizeof buf) < 0) return -1;
    if (strcmp(want, g->digest) != 0) {
        char dfield[64];
        snprintf(dfield, sizeof dfield, "%s.digest", field);
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, dfield,
                       "%s.digest: %.64s is not the digest of the grid (%s)", field, want,
                       g->digest);
    }
    return 0;
}

/* "EPSG:4326" when the CRS has an authority code, else a hash of its WKT. */
static int crs_name(OGRSpatialReferenceH srs, char *out, size_t cap)
{
    out[0] = '\0';
    if (!srs) return 0;
    const char *auth = OSRGetAuthorityName(srs, NULL), *code = OSRGetAuthorityCode(srs, NULL);
    if (auth && code) {
        snprintf(out, cap, "%s:%s", auth, code);
        return 0;
    }
    char *wkt = NULL;
    const char *opts[] = {"FORMAT=WKT2_2019", NULL};
    if (OSRExportToWktEx(srs, &wkt, opts) != OGRERR_NONE || !wkt) {
        CPLFree(wkt);
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, "inputs[0].uri",
                       "inputs[0].uri: its CRS cannot be written as WKT");
    }
    char hex[65];
    int rc = digest_of(wkt, strlen(wkt), hex);
    CPLFree(wkt);
    if (rc == 0) snprintf(out, cap, "wkt-sha256:%s", hex);
    return rc;
}

int op_grid_compute(const task *t, char *json, size_t cap)
{
    GDALDatasetH src = NULL;
    grid g = {0};
    int rc = -1;
    const task_input *in = op_single_input(t, NULL);
    if (!in || input_open_raster(t, in, &src) < 0) goto cleanup;
    g.width = GDALGetRasterXSize(src);
    g.height = GDALGetRasterYSize(src);
    g.bands = GDALGetRasterCount(src);
    snprintf(g.data_type, sizeof g.data_type, "%s",
             g.bands ? GDALGetDataTypeName(GDALGetRasterDataType(GDALGetRasterBand(src, 1)))
                     : "Unknown");
    if (GDALGetGeoTransform(src, g.gt) != CE_None) {
        /* GDAL's default: pixel coordinates, y downwards. */
        double id[6] = {0, 1, 0, 0, 0, 1};
        memcpy(g.gt, id, sizeof id);
    }
    if (crs_name(GDALGetSpatialRef(src), g.crs, sizeof g.crs) < 0) goto cleanup;
    if (grid_compute(t->params, &g) < 0) goto cleanup;
    rc = grid_json(&g, json, cap);
cleanup:
    if (src) GDALClose(src);
    return rc;
}

const op_def op_grid = {
    .name = "grid",
    .params = grid_params,
    .validate = grid_validate, /* no run: cmd_run calls op_grid_compute */
};
