/*
 * op_hydro.c - the hydrology operations: fill, flow-direction,
 * flow-accumulation, streams, watershed, basins, twi and hand.
 *
 * They share their plumbing, so they share this file: inputs are found by
 * fixed names (dem, direction, accumulation, weight, points, streams; the
 * single-raster operations take any one input), grids are read whole into
 * memory (hydro_io.h), the algorithms are hydro.h's, and every raster
 * result is a COG (asset.tif) with the task's COG options. Output nodata is
 * fixed per product (proto/README.md), so the nodata option is refused.
 * watershed, basins and streams also write GeoJSON (polygons, lines); the
 * primary param says which file is the asset's primary output, so a
 * zonal-stats downstream can take the catchment polygons as its zones.
 *
 * Direction rasters carry TERRANE_FLOW_ENCODING metadata; operations
 * reading them use it unless params.encoding says otherwise.
 */
#include "cog.h"
#include "err.h"
#include "hydro.h"
#include "hydro_io.h"
#include "input.h"
#include "mem.h"
#include "op.h"
#include "terrane_proto.h"

#include <math.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <string.h>

#define OBJ_CATCHMENTS "catchments.geojson"
#define OBJ_BASINS "basins.geojson"
#define OBJ_STREAMS "streams.geojson"

#define NODATA_F32 (-9999.0)

/* Whether the COG gets overviews (hydro_cog_params); each product has its
 * default: none for codes and counts, which no resampling keeps meaningful. */
#define HYDRO_PARAM_OVERVIEWS                                                                      \
    {                                                                                              \
        "overviews", PARAM_BOOL, false                                                             \
    }

static const char *const d8_methods[] = {"d8", "dinf", NULL};
static const char *const encodings[] = {"esri", "grass", NULL};
static const char *const units[] = {"cells", "area", NULL};
static const char *const primaries[] = {"raster", "vector", NULL};

/* ---- shared checks -------------------------------------------------------- */

/* Fails unless every input's name is in names (NULL-terminated) and every
 * name before the first optional one (index n_required) is present. */
static int check_inputs(const task *t, const char *const *names, size_t n_required)
{
    for (size_t i = 0; i < t->n_inputs; i++) {
        bool known = false;
        for (size_t k = 0; names[k]; k++)
            known |= !strcmp(names[k], t->inputs[i].name);
        if (!known) {
            char field[48], list[128] = "";
            size_t pos = 0;
            for (size_t k = 0; names[k]; k++)
                pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%s", k ? ", " : "",
                                        names[k]);
            snprintf(field, sizeof field, "inputs[%zu].name", i);
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                           "%s: %s takes inputs named %s, not '%s'", field, t->operation, list,
                           t->inputs[i].name);
        }
    }
    for (size_t k = 0; k < n_required; k++)
        if (!task_input_find(t, names[k]))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "inputs",
                           "inputs: %s needs an input named '%s'", t->operation, names[k]);
    return 0;
}

static int check_common(const task *t)
{
    if (params_has(t->params, "nodata"))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.nodata",
                       "params.nodata: not supported by %s (its output nodata is fixed)",
                       t->operation);
    return cog_check_params(t->params);
}

static hydro_encoding param_encoding(const task *t, GDALDatasetH ds)
{
    const char *e = params_str(t->params, "encoding", NULL);
    if (e) return strcmp(e, "grass") ? HYDRO_ENC_ESRI : HYDRO_ENC_GRASS;
    return hydro_dirs_encoding(ds, HYDRO_ENC_ESRI);
}

/* Puts field on an input-data error hydro.h set without one. */
static void name_field(const char *field)
{
    char msg[512];
    if (strcmp(err_get_code(), ERR_INPUT_INVALID) || err_get_field()[0]) return;
    snprintf(msg, sizeof msg, "%s", err_get_message());
    err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field, "%s: %s", field, msg);
}

static void progress(const op_ctx *ctx, double f)
{
    if (ctx->progress) ctx->progress(f, NULL, ctx->progress_arg);
}

/* ---- opened inputs ------------------------------------------------------------ */

typedef struct in_raster {
    GDALDatasetH ds;
    hydro_raster r;
    bool open;
} in_raster;

/* Opens the input named name (or in, when given) and describes its grid;
 * when like is given, the grid must be the same. */
static int open_in(const task *t, const task_input *in, const char *name, const in_raster *like,
                   in_raster *out)
{
    char field[48];
    memset(out, 0, sizeof *out);
    if (!in) in = task_input_find(t, name);
    if (!in) return 0;
    snprintf(field, sizeof field, "inputs[%d].uri", task_input_index(t, in));
    if (input_open_raster(t, in, &out->ds) < 0) return -1;
    if (hydro_raster_open(out->ds, field, &out->r) < 0) return -1;
    out->open = true;
    if (like && hydro_raster_same_grid(&like->r, &out->r) < 0) return -1;
    return 0;
}

static void close_in(in_raster *in)
{
    if (in->ds) GDALClose(in->ds);
    hydro_raster_free(&in->r);
    memset(in, 0, sizeof *in);
}

static int check_band(const task *t, const in_raster *in)
{
    int band = params_int(t->params, "band", 1);
    if (band > GDALGetRasterCount(in->ds))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.band",
                       "params.band: %d, but %s has %d band(s)", band, in->r.field,
                       GDALGetRasterCount(in->ds));
    return 0;
}

static char *scratch_path(const op_ctx *ctx, const char *name)
{
    char *p = mem_printf("%s/%s", ctx->scratch, name);
    if (!p) err_oom();
    return p;
}

/* Writes a float grid with NaN as NODATA_F32. */
static int write_f32(const op_ctx *ctx, const hydro_raster *r, float *v, char **meta,
                     bool overviews, const char *path)
{
    size_t n = r->g.w * r->g.h;
    for (size_t i = 0; i < n; i++)
        if (isnan(v[i])) v[i] = (float)NODATA_F32;
    return hydro_write_cog(r, v, GDT_Float32, true, NODATA_F32, meta, overviews, ctx->task->params,
                           path, ctx->progress, ctx->progress_arg);
}

/* Adds the raster and the vector file in the order params.primary asks. */
static int add_outputs(const task *t, op_result *out, const char *cog, const char *vec,
                       const char *vec_name)
{
    bool vector_first = !strcmp(params_str(t->params, "primary", "raster"), "vector");
    if (vector_first && op_result_add(out, vec, vec_name, MEDIA_GEOJSON, "data", false) < 0)
        return -1;
    if (op_result_add(out, cog, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0) return -1;
    if (!vector_first && op_result_add(out, vec, vec_name, MEDIA_GEOJSON, "data", false) < 0)
        return -1;
    return 0;
}

/* ---- fill ------------------------------------------------------------------ */

static const char *const fill_methods[] = {"fill", "breach", NULL};

static const param_spec fill_params[] = {
    {"band", PARAM_INT, false, NULL, 1, 65535},
    {"epsilon", PARAM_NUMBER, false, NULL, 0, 1e6},
    {"method", PARAM_ENUM, false, fill_methods},
    {"breachLength", PARAM_INT, false, NULL, 0, 1e6},
    HYDRO_PARAM_OVERVIEWS,
    {NULL},
};

static int fill_validate(const task *t)
{
    if (!op_single_input(t, NULL)) return -1;
    if (params_has(t->params, "breachLength") &&
        strcmp(params_str(t->params, "method", "fill"), "breach"))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.breachLength",
                       "params.breachLength: only with method breach");
    return check_common(t);
}

static int fill_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    in_raster dem = {0};
    float *z = NULL;
    char *path = NULL;
    size_t raised = 0;
    int rc = -1, has_nd = 0;

    if (open_in(t, op_single_input(t, NULL), NULL, NULL, &dem) < 0 || check_band(t, &dem) < 0)
        goto cleanup;
    int band = params_int(t->params, "band", 1);
    double nd = GDALGetRasterNoDataValue(GDALGetRasterBand(dem.ds, band), &has_nd);
    if (hydro_read_float(dem.ds, band, &dem.r, &z) < 0) goto cleanup;
    progress(ctx, 0.2);
    double eps = params_num(t->params, "epsilon", 0);
    if (!strcmp(params_str(t->params, "method", "fill"), "breach")) {
        if (hydro_breach(&dem.r.g, z, (unsigned)params_int(t->params, "breachLength", 0), eps,
                         &raised) < 0)
            goto cleanup;
    } else if (hydro_fill(&dem.r.g, z, eps, &raised) < 0) {
        goto cleanup;
    }
    progress(ctx, 0.6);
    if (has_nd) {
        size_t n = dem.r.g.w * dem.r.g.h;
        for (size_t i = 0; i < n; i++)
            if (isnan(z[i])) z[i] = (float)nd;
    }
    char raised_s[48];
    snprintf(raised_s, sizeof raised_s, "TERRANE_CHANGED_CELLS=%zu", raised);
    char *meta[] = {raised_s, NULL};
    if (!(path = scratch_path(ctx, TERRANE_OBJ_COG)) ||
        hydro_write_cog(&dem.r, z, GDT_Float32, has_nd, nd, meta, true, t->params, path,
                        ctx->progress, ctx->progress_arg) < 0 ||
        op_result_add(out, path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    close_in(&dem);
    mem_free(z);
    mem_free(path);
    return rc;
}

const op_def op_fill = {
    .name = "fill",
    .params = fill_params,
    .cog_options = true,
    .validate = fill_validate,
    .run = fill_run,
};

/* ---- flow-direction ------------------------------------------------------------ */

static const param_spec fdir_params[] = {
    {"band", PARAM_INT, false, NULL, 1, 65535},
    {"method", PARAM_ENUM, false, d8_methods},
    {"encoding", PARAM_ENUM, false, encodings},
    HYDRO_PARAM_OVERVIEWS,
    {NULL},
};

static int fdir_validate(const task *t)
{
    if (!op_single_input(t, NULL)) return -1;
    if (params_has(t->params, "encoding") && !strcmp(params_str(t->params, "method", "d8"), "dinf"))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.encoding",
                       "params.encoding: D8 codes only; method dinf writes angles in radians");
    return check_common(t);
}

static int fdir_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    in_raster dem = {0};
    float *z = NULL, *angle = NULL;
    uint8_t *dir = NULL;
    int16_t *codes = NULL;
    char *path = NULL;
    size_t sinks = 0;
    int rc = -1;
    bool dinf = !strcmp(params_str(t->params, "method", "d8"), "dinf");
    const char *enc_name = params_str(t->params, "encoding", "esri");
    hydro_encoding enc = strcmp(enc_name, "grass") ? HYDRO_ENC_ESRI : HYDRO_ENC_GRASS;

    if (open_in(t, op_single_input(t, NULL), NULL, NULL, &dem) < 0 || check_band(t, &dem) < 0)
        goto cleanup;
    const hydro_grid *g = &dem.r.g;
    size_t n = g->w * g->h;
    if (hydro_read_float(dem.ds, params_int(t->params, "band", 1), &dem.r, &z) < 0) goto cleanup;
    progress(ctx, 0.2);
    if (!(dir = mem_malloc(n ? n : 1))) {
        err_oom();
        goto cleanup;
    }
    if (hydro_d8(g, z, dir, &sinks) < 0) goto cleanup;
    progress(ctx, 0.5);
    if (!(path = scratch_path(ctx, TERRANE_OBJ_COG))) goto cleanup;
    char sinks_s[48], enc_s[48];
    snprintf(sinks_s, sizeof sinks_s, "TERRANE_SINKS=%zu", sinks);
    if (dinf) {
        char *meta[] = {sinks_s, "TERRANE_FLOW_ENCODING=dinf", NULL};
        if (!(angle = mem_malloc(n * sizeof *angle + 1))) {
            err_oom();
            goto cleanup;
        }
        mem_free(z);
        z = NULL;
        /* hydro_dinf needs the elevations again: reread rather than keep
         * two float grids. */
        if (hydro_read_float(dem.ds, params_int(t->params, "band", 1), &dem.r, &z) < 0 ||
            hydro_dinf(g, z, dir, angle) < 0 ||
            write_f32(ctx, &dem.r, angle, meta, false, path) < 0)
            goto cleanup;
    } else {
        snprintf(enc_s, sizeof enc_s, "TERRANE_FLOW_ENCODING=%s", enc_name);
        char *meta[] = {sinks_s, enc_s, NULL};
        mem_free(z);
        z = NULL;
        if (enc == HYDRO_ENC_GRASS && !(codes = mem_malloc(n * sizeof *codes + 1))) {
            err_oom();
            goto cleanup;
        }
        for (size_t y = 0; y < g->h; y++)
            for (size_t x = 0; x < g->w; x++) {
                size_t i = y * g->w + x;
                uint8_t d = dir[i];
                bool off = false;
                if (d < 8) {
                    int64_t nx = (int64_t)x + hydro_dcol[d], ny = (int64_t)y + hydro_drow[d];
                    off = nx < 0 || ny < 0 || nx >= (int64_t)g->w || ny >= (int64_t)g->h ||
                          dir[ny * (int64_t)g->w + nx] == HYDRO_NODATA;
                }
                if (enc == HYDRO_ENC_GRASS)
                    codes[i] =
                        d == HYDRO_NODATA ? INT16_MIN : (int16_t)hydro_dir_encode(d, off, enc);
            }
        if (enc == HYDRO_ENC_ESRI) {
            for (size_t i = 0; i < n; i++)
                if (dir[i] != HYDRO_NODATA) dir[i] = (uint8_t)hydro_dir_encode(dir[i], false, enc);
            if (hydro_write_cog(&dem.r, dir, GDT_Byte, true, 255, meta, false, t->params, path,
                                ctx->progress, ctx->progress_arg) < 0)
                goto cleanup;
        } else if (hydro_write_cog(&dem.r, codes, GDT_Int16, true, INT16_MIN, meta, false,
                                   t->params, path, ctx->progress, ctx->progress_arg) < 0) {
            goto cleanup;
        }
    }
    if (op_result_add(out, path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0) goto cleanup;
    rc = 0;
cleanup:
    close_in(&dem);
    mem_free(z);
    mem_free(angle);
    mem_free(dir);
    mem_free(codes);
    mem_free(path);
    return rc;
}

const op_def op_flow_direction = {
    .name = "flow-direction",
    .params = fdir_params,
    .cog_options = true,
    .validate = fdir_validate,
    .run = fdir_run,
};

/* ---- flow-accumulation ------------------------------------------------------------ */

static const param_spec facc_params[] = {
    {"method", PARAM_ENUM, false, d8_methods},
    {"encoding", PARAM_ENUM, false, encodings},
    {"units", PARAM_ENUM, false, units},
    HYDRO_PARAM_OVERVIEWS,
    {NULL},
};

static const char *const facc_inputs[] = {"direction", "weight", NULL};

static int facc_validate(const task *t)
{
    if (check_inputs(t, facc_inputs, 1) < 0) return -1;
    if (params_has(t->params, "encoding") && !strcmp(params_str(t->params, "method", "d8"), "dinf"))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.encoding",
                       "params.encoding: D8 codes only; method dinf reads angles in radians");
    return check_common(t);
}

/* Converts acc in place to UInt32 at the front of the same buffer, 0 for
 * nodata: value i lands on bytes 4i.., which only overlap values already
 * read. Stored with memcpy, so no pointer of another type aliases acc. */
static void *to_u32(double *acc, size_t n)
{
    unsigned char *out = (unsigned char *)acc;
    for (size_t i = 0; i < n; i++) {
        double v = acc[i];
        uint32_t u = isnan(v) ? 0 : v >= UINT32_MAX ? UINT32_MAX : (uint32_t)v;
        memcpy(out + i * sizeof u, &u, sizeof u);
    }
    return out;
}

static int facc_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    in_raster dirs = {0}, weight = {0};
    uint8_t *dir = NULL;
    float *angle = NULL;
    double *acc = NULL, *w = NULL;
    char *path = NULL;
    int rc = -1;
    bool dinf = !strcmp(params_str(t->params, "method", "d8"), "dinf");
    bool area = !strcmp(params_str(t->params, "units", "cells"), "area");

    if (open_in(t, NULL, "direction", NULL, &dirs) < 0 ||
        open_in(t, NULL, "weight", &dirs, &weight) < 0)
        goto cleanup;
    const hydro_grid *g = &dirs.r.g;
    size_t n = g->w * g->h;
    if (dinf ? hydro_read_float(dirs.ds, 1, &dirs.r, &angle)
             : hydro_read_dirs(dirs.ds, &dirs.r, param_encoding(t, dirs.ds), &dir))
        goto cleanup;
    if (weight.open) {
        if (hydro_read_double(weight.ds, 1, &weight.r, &w) < 0) goto cleanup;
        acc = w;
        w = NULL;
    } else if (!(acc = mem_malloc(n * sizeof *acc + 1))) {
        err_oom();
        goto cleanup;
    }
    for (size_t y = 0; y < g->h; y++)
        for (size_t x = 0; x < g->w; x++) {
            size_t i = y * g->w + x;
            bool valid = dinf ? !isnan(angle[i]) : dir[i] != HYDRO_NODATA;
            double own = weight.open ? (isnan(acc[i]) ? 0 : acc[i]) : 1;
            if (area) own *= g->dx[y] * g->dy;
            acc[i] = valid ? own : NAN;
        }
    progress(ctx, 0.3);
    if ((dinf ? hydro_accumulate_dinf(g, angle, acc) : hydro_accumulate_d8(g, dir, acc)) < 0) {
        name_field(dirs.r.field);
        goto cleanup;
    }
    progress(ctx, 0.6);
    mem_free(dir);
    mem_free(angle);
    dir = NULL;
    angle = NULL;
    char *meta[] = {area ? "TERRANE_ACCUMULATION_UNITS=m2" : "TERRANE_ACCUMULATION_UNITS=cells",
                    NULL};
    if (!(path = scratch_path(ctx, TERRANE_OBJ_COG))) goto cleanup;
    if (!dinf && !area && !weight.open) {
        if (hydro_write_cog(&dirs.r, to_u32(acc, n), GDT_UInt32, true, 0, meta, false, t->params,
                            path, ctx->progress, ctx->progress_arg) < 0)
            goto cleanup;
    } else {
        for (size_t i = 0; i < n; i++)
            if (isnan(acc[i])) acc[i] = -1;
        if (hydro_write_cog(&dirs.r, acc, GDT_Float64, true, -1, meta, false, t->params, path,
                            ctx->progress, ctx->progress_arg) < 0)
            goto cleanup;
    }
    if (op_result_add(out, path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0) goto cleanup;
    rc = 0;
cleanup:
    close_in(&dirs);
    close_in(&weight);
    mem_free(dir);
    mem_free(angle);
    mem_free(acc);
    mem_free(w);
    mem_free(path);
    return rc;
}

const op_def op_flow_accumulation = {
    .name = "flow-accumulation",
    .params = facc_params,
    .cog_options = true,
    .validate = facc_validate,
    .run = facc_run,
};

/* ---- streams ------------------------------------------------------------------ */

static const param_spec streams_params[] = {
    {"threshold", PARAM_NUMBER, true, NULL, 0, 1e15},
    {"encoding", PARAM_ENUM, false, encodings},
    {"primary", PARAM_ENUM, false, primaries},
    HYDRO_PARAM_OVERVIEWS,
    {NULL},
};

static const char *const streams_inputs[] = {"direction", "accumulation", NULL};

static int streams_validate(const task *t)
{
    if (check_inputs(t, streams_inputs, 2) < 0) return -1;
    if (!(params_num(t->params, "threshold", 0) > 0))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.threshold",
                       "params.threshold: must be greater than 0 (in the accumulation's units)");
    return check_common(t);
}

static int streams_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    in_raster dirs = {0}, accin = {0};
    uint8_t *dir = NULL, *order = NULL;
    double *acc = NULL;
    char *cog = NULL, *vec = NULL;
    hydro_lines *lines = NULL;
    int rc = -1;

    if (open_in(t, NULL, "direction", NULL, &dirs) < 0 ||
        open_in(t, NULL, "accumulation", &dirs, &accin) < 0)
        goto cleanup;
    const hydro_grid *g = &dirs.r.g;
    size_t n = g->w * g->h;
    if (hydro_read_dirs(dirs.ds, &dirs.r, param_encoding(t, dirs.ds), &dir) < 0 ||
        hydro_read_double(accin.ds, 1, &accin.r, &acc) < 0)
        goto cleanup;
    if (!(order = mem_malloc(n ? n : 1))) {
        err_oom();
        goto cleanup;
    }
    if (hydro_strahler(g, dir, acc, params_num(t->params, "threshold", 1), order) < 0) goto cleanup;
    mem_free(acc);
    acc = NULL;
    progress(ctx, 0.4);
    if (!(cog = scratch_path(ctx, TERRANE_OBJ_COG)) || !(vec = scratch_path(ctx, OBJ_STREAMS)))
        goto cleanup;
    if (hydro_lines_open(&dirs.r, vec, &lines) < 0 ||
        hydro_stream_segments(g, dir, order, hydro_lines_add, lines) < 0)
        goto cleanup;
    rc = hydro_lines_close(lines);
    lines = NULL;
    if (rc < 0) goto cleanup;
    rc = -1;
    char *meta[] = {"TERRANE_STREAM_VALUES=strahler", NULL};
    if (hydro_write_cog(&dirs.r, order, GDT_Byte, true, 0, meta, false, t->params, cog,
                        ctx->progress, ctx->progress_arg) < 0 ||
        add_outputs(t, out, cog, vec, OBJ_STREAMS) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    hydro_lines_close(lines);
    close_in(&dirs);
    close_in(&accin);
    mem_free(dir);
    mem_free(order);
    mem_free(acc);
    mem_free(cog);
    mem_free(vec);
    return rc;
}

const op_def op_streams = {
    .name = "streams",
    .params = streams_params,
    .cog_options = true,
    .validate = streams_validate,
    .run = streams_run,
};

/* ---- watershed and basins ----------------------------------------------------------- */

static const param_spec watershed_params[] = {
    {"snapDistance", PARAM_NUMBER, false, NULL, 0, 1e12},
    {"encoding", PARAM_ENUM, false, encodings},
    {"primary", PARAM_ENUM, false, primaries},
    HYDRO_PARAM_OVERVIEWS,
    {NULL},
};

static const char *const watershed_inputs[] = {"direction", "points", "accumulation", NULL};

static int watershed_validate(const task *t)
{
    if (check_inputs(t, watershed_inputs, 2) < 0) return -1;
    if (params_num(t->params, "snapDistance", 0) > 0 && !task_input_find(t, "accumulation"))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "inputs",
                       "inputs: snapping pour points (params.snapDistance > 0) needs an input "
                       "named 'accumulation'");
    return check_common(t);
}

/* Labels the cell of each pour point with its 1-based feature number. */
static int place_points(const task *t, const hydro_raster *r, const double *acc, uint32_t *label)
{
    const task_input *in = task_input_find(t, "points");
    GDALDatasetH ds = NULL;
    OGRSpatialReferenceH rs = NULL;
    OGRCoordinateTransformationH ct = NULL;
    OGRFeatureH f = NULL;
    char field[48];
    int rc = -1;
    uint32_t id = 0;
    double snap = params_num(t->params, "snapDistance", 0);
    unsigned radius = (unsigned)ceil(snap / fabs(r->gt[1]) - 1e-9);

    snprintf(field, sizeof field, "inputs[%d].uri", task_input_index(t, in));
    if (input_open_vector(t, in, &ds) < 0) goto cleanup;
    OGRLayerH layer = GDALDatasetGetLayer(ds, 0);
    if (!layer) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field, "%s: no layer", field);
        goto cleanup;
    }
    OGRSpatialReferenceH ps = OGR_L_GetSpatialRef(layer);
    if (ps && r->wkt && (rs = OSRNewSpatialReference(r->wkt))) {
        OSRSetAxisMappingStrategy(rs, OAMS_TRADITIONAL_GIS_ORDER);
        OGRSpatialReferenceH pc = OSRClone(ps);
        OSRSetAxisMappingStrategy(pc, OAMS_TRADITIONAL_GIS_ORDER);
        if (!OSRIsSame(pc, rs)) ct = OCTNewCoordinateTransformation(pc, rs);
        OSRDestroySpatialReference(pc);
    }
    OGR_L_ResetReading(layer);
    while ((f = OGR_L_GetNextFeature(layer))) {
        OGRGeometryH geom = OGR_F_GetGeometryRef(f);
        id++;
        if (!geom || wkbFlatten(OGR_G_GetGeometryType(geom)) != wkbPoint) {
            err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field, "%s: feature %u is not a point", field,
                    id);
            goto cleanup;
        }
        double x = OGR_G_GetX(geom, 0), y = OGR_G_GetY(geom, 0), zz = 0;
        if (ct && !OCTTransform(ct, 1, &x, &y, &zz)) {
            err_set(ERR_BAD_INPUT, ERR_CRS_MISMATCH, field,
                    "%s: point %u cannot be transformed to the raster's CRS", field, id);
            goto cleanup;
        }
        double col = floor((x - r->gt[0]) / r->gt[1]), row = floor((y - r->gt[3]) / r->gt[5]);
        if (col < 0 || row < 0 || col >= (double)r->g.w || row >= (double)r->g.h) {
            err_set(ERR_BAD_INPUT, ERR_EMPTY_INTERSECTION, field,
                    "%s: point %u (%.10g, %.10g) lies outside the raster", field, id, x, y);
            goto cleanup;
        }
        uint32_t cell = (uint32_t)((size_t)row * r->g.w + (size_t)col);
        if (acc && radius) cell = hydro_snap(&r->g, acc, cell, radius);
        label[cell] = id;
        OGR_F_Destroy(f);
        f = NULL;
    }
    if (!id) {
        err_set(ERR_BAD_INPUT, ERR_EMPTY_INTERSECTION, field, "%s: no pour points", field);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (f) OGR_F_Destroy(f);
    if (ct) OCTDestroyCoordinateTransformation(ct);
    if (rs) OSRDestroySpatialReference(rs);
    if (ds) GDALClose(ds);
    return rc;
}

/* Writes labels as the COG and as polygons, in params.primary's order. */
static int write_labels(const op_ctx *ctx, const hydro_raster *r, uint32_t *label,
                        const char *vec_name, op_result *out)
{
    char *cog = scratch_path(ctx, TERRANE_OBJ_COG), *vec = scratch_path(ctx, vec_name);
    int rc = -1;
    if (!cog || !vec) goto cleanup;
    progress(ctx, 0.5);
    if (hydro_write_polygons(r, label, vec_name[0] == 'c' ? "catchments" : "basins", vec) < 0)
        goto cleanup;
    if (hydro_write_cog(r, label, GDT_UInt32, true, 0, NULL, true, ctx->task->params, cog,
                        ctx->progress, ctx->progress_arg) < 0 ||
        add_outputs(ctx->task, out, cog, vec, vec_name) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    mem_free(cog);
    mem_free(vec);
    return rc;
}

static int watershed_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    in_raster dirs = {0}, accin = {0};
    uint8_t *dir = NULL;
    uint32_t *label = NULL;
    double *acc = NULL;
    int rc = -1;

    if (open_in(t, NULL, "direction", NULL, &dirs) < 0 ||
        open_in(t, NULL, "accumulation", &dirs, &accin) < 0)
        goto cleanup;
    const hydro_grid *g = &dirs.r.g;
    if (hydro_read_dirs(dirs.ds, &dirs.r, param_encoding(t, dirs.ds), &dir) < 0) goto cleanup;
    if (accin.open && hydro_read_double(accin.ds, 1, &accin.r, &acc) < 0) goto cleanup;
    if (!(label = mem_calloc(g->w * g->h + 1, sizeof *label))) {
        err_oom();
        goto cleanup;
    }
    if (place_points(t, &dirs.r, acc, label) < 0) goto cleanup;
    mem_free(acc);
    acc = NULL;
    if (hydro_watershed(g, dir, label) < 0) goto cleanup;
    mem_free(dir);
    dir = NULL;
    if (write_labels(ctx, &dirs.r, label, OBJ_CATCHMENTS, out) < 0) goto cleanup;
    rc = 0;
cleanup:
    close_in(&dirs);
    close_in(&accin);
    mem_free(dir);
    mem_free(label);
    mem_free(acc);
    return rc;
}

const op_def op_watershed = {
    .name = "watershed",
    .params = watershed_params,
    .cog_options = true,
    .validate = watershed_validate,
    .run = watershed_run,
};

static const param_spec basins_params[] = {
    {"encoding", PARAM_ENUM, false, encodings},
    {"primary", PARAM_ENUM, false, primaries},
    HYDRO_PARAM_OVERVIEWS,
    {NULL},
};

static int basins_validate(const task *t)
{
    if (!op_single_input(t, NULL)) return -1;
    return check_common(t);
}

static int basins_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    in_raster dirs = {0};
    uint8_t *dir = NULL;
    uint32_t *label = NULL;
    int rc = -1;

    if (open_in(t, op_single_input(t, NULL), NULL, NULL, &dirs) < 0) goto cleanup;
    const hydro_grid *g = &dirs.r.g;
    if (hydro_read_dirs(dirs.ds, &dirs.r, param_encoding(t, dirs.ds), &dir) < 0) goto cleanup;
    if (!(label = mem_malloc((g->w * g->h + 1) * sizeof *label))) {
        err_oom();
        goto cleanup;
    }
    if (hydro_basins(g, dir, label, NULL) < 0) goto cleanup;
    mem_free(dir);
    dir = NULL;
    if (write_labels(ctx, &dirs.r, label, OBJ_BASINS, out) < 0) goto cleanup;
    rc = 0;
cleanup:
    close_in(&dirs);
    mem_free(dir);
    mem_free(label);
    return rc;
}

const op_def op_basins = {
    .name = "basins",
    .params = basins_params,
    .cog_options = true,
    .validate = basins_validate,
    .run = basins_run,
};

/* ---- twi and hand ------------------------------------------------------------------ */

static const param_spec twi_params[] = {
    {"band", PARAM_INT, false, NULL, 1, 65535},
    HYDRO_PARAM_OVERVIEWS,
    {NULL},
};

static const char *const twi_inputs[] = {"dem", "accumulation", NULL};

static int twi_validate(const task *t)
{
    if (check_inputs(t, twi_inputs, 2) < 0) return -1;
    return check_common(t);
}

static int twi_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    in_raster dem = {0}, accin = {0};
    float *z = NULL, *twi = NULL;
    double *acc = NULL;
    char *path = NULL;
    int rc = -1;

    if (open_in(t, NULL, "dem", NULL, &dem) < 0 || check_band(t, &dem) < 0 ||
        open_in(t, NULL, "accumulation", &dem, &accin) < 0)
        goto cleanup;
    size_t n = dem.r.g.w * dem.r.g.h;
    if (hydro_read_float(dem.ds, params_int(t->params, "band", 1), &dem.r, &z) < 0 ||
        hydro_read_double(accin.ds, 1, &accin.r, &acc) < 0)
        goto cleanup;
    if (!(twi = mem_malloc(n * sizeof *twi + 1))) {
        err_oom();
        goto cleanup;
    }
    if (hydro_twi(&dem.r.g, z, acc, twi) < 0) goto cleanup;
    if (!(path = scratch_path(ctx, TERRANE_OBJ_COG)) ||
        write_f32(ctx, &dem.r, twi, NULL, true, path) < 0 ||
        op_result_add(out, path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    close_in(&dem);
    close_in(&accin);
    mem_free(z);
    mem_free(twi);
    mem_free(acc);
    mem_free(path);
    return rc;
}

const op_def op_twi = {
    .name = "twi",
    .params = twi_params,
    .cog_options = true,
    .validate = twi_validate,
    .run = twi_run,
};

static const param_spec hand_params[] = {
    {"band", PARAM_INT, false, NULL, 1, 65535},
    {"encoding", PARAM_ENUM, false, encodings},
    HYDRO_PARAM_OVERVIEWS,
    {NULL},
};

static const char *const hand_inputs[] = {"dem", "direction", "streams", NULL};

static int hand_validate(const task *t)
{
    if (check_inputs(t, hand_inputs, 3) < 0) return -1;
    return check_common(t);
}

static int hand_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    in_raster dem = {0}, dirs = {0}, str = {0};
    float *z = NULL, *hand = NULL, *sv = NULL;
    uint8_t *dir = NULL, *stream = NULL;
    char *path = NULL;
    int rc = -1;

    if (open_in(t, NULL, "dem", NULL, &dem) < 0 || check_band(t, &dem) < 0 ||
        open_in(t, NULL, "direction", &dem, &dirs) < 0 ||
        open_in(t, NULL, "streams", &dem, &str) < 0)
        goto cleanup;
    size_t n = dem.r.g.w * dem.r.g.h;
    if (hydro_read_float(str.ds, 1, &str.r, &sv) < 0) goto cleanup;
    if (!(stream = mem_malloc(n + 1))) {
        err_oom();
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        stream[i] = !isnan(sv[i]) && sv[i] != 0;
    mem_free(sv);
    sv = NULL;
    if (hydro_read_dirs(dirs.ds, &dirs.r, param_encoding(t, dirs.ds), &dir) < 0 ||
        hydro_read_float(dem.ds, params_int(t->params, "band", 1), &dem.r, &z) < 0)
        goto cleanup;
    if (!(hand = mem_malloc(n * sizeof *hand + 1))) {
        err_oom();
        goto cleanup;
    }
    if (hydro_hand(&dem.r.g, z, dir, stream, hand) < 0) goto cleanup;
    if (!(path = scratch_path(ctx, TERRANE_OBJ_COG)) ||
        write_f32(ctx, &dem.r, hand, NULL, true, path) < 0 ||
        op_result_add(out, path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    close_in(&dem);
    close_in(&dirs);
    close_in(&str);
    mem_free(z);
    mem_free(hand);
    mem_free(sv);
    mem_free(dir);
    mem_free(stream);
    mem_free(path);
    return rc;
}

const op_def op_hand = {
    .name = "hand",
    .params = hand_params,
    .cog_options = true,
    .validate = hand_validate,
    .run = hand_run,
};
