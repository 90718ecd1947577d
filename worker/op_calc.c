/*
 * op_calc.c - the `calc` operation: band math over rasters on one grid.
 *
 * params.expression is compiled with expr.h against the task's input names;
 * every (input, band) it mentions is read window by window as Float64, the
 * program is evaluated over the window in chunks on the pod's threads (one
 * compiled copy of the program per thread), and the result goes to an
 * uncompressed, tiled GeoTIFF in scratch, which cog_write then turns into the
 * published COG. Memory is the window buffers (bounded by CALC_BUDGET_BYTES
 * whatever the raster size) plus GDAL's block cache.
 *
 * Output nodata: params.nodata when given ("none" writes no nodata value and
 * leaves masked pixels 0); otherwise a default per output type that a
 * computed value rarely hits: -9999 for Float32 and Float64, the type's
 * minimum for signed integers (-32768, -2147483648) and its maximum for
 * unsigned ones (255, 65535, 4294967295). Integer outputs round half away
 * from zero and saturate at the type's range; when the nodata value is the
 * type's minimum or maximum (as the defaults are), valid values saturate one
 * short of it so that they never read back as nodata. Float32 values beyond
 * its range are nodata. A valid value that happens to equal a nodata value
 * chosen elsewhere in the range reads back as nodata: choose it accordingly.
 *
 * Input nodata: a band's nodata value, or its mask band (alpha, internal
 * mask) when it has one instead; see expr.h for how nodata propagates.
 */
#include "cog.h"
#include "err.h"
#include "expr.h"
#include "input.h"
#include "mem.h"
#include "op.h"
#include "partition.h"
#include "podres.h"
#include "terrane_proto.h"
#include "tpool.h"

#include <cpl_error.h>
#include <cpl_vsi.h>
#include <float.h>
#include <math.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <string.h>

/* Rows per window, equal to the scratch GeoTIFF's tile size so every window
 * fills whole tiles and GDAL never has to re-read a partly written one. */
#define CALC_TILE 256
/* Upper bound for the window buffers (values and masks of every variable
 * and of the result); wide rasters get windows narrower than a full row. */
#define CALC_BUDGET_BYTES (16u * 1024 * 1024)
/* Two grids agree when every corner of one lies within this many pixels of
 * the other's: floating-point noise in geotransforms, not real shifts. */
#define CALC_GRID_TOL_PX 1e-3
#define CALC_DEFAULT_TYPE "Float32"
#define CALC_TMP_NAME "calc-tmp.tif"

static const char *const output_types[] = {"Byte",  "UInt16",  "Int16",   "UInt32",
                                           "Int32", "Float32", "Float64", NULL};

static const param_spec calc_params[] = {
    {"expression", PARAM_STRING, true, NULL, 0, 0, EXPR_MAX_LEN},
    {"outputType", PARAM_ENUM, false, output_types},
    {NULL},
};

/* How one variable's nodata is found. */
enum { MASK_NONE, MASK_VALUE, MASK_BAND };

typedef struct calc_var {
    size_t input;
    GDALRasterBandH band;
    int mask_kind;
    double nodata;
    GDALRasterBandH mask_band;
    double *vals;
    unsigned char *mask; /* NULL for MASK_NONE */
} calc_var;

static int compile(const task *t, expr **out)
{
    const char *names[TASK_MAX_INPUTS];
    size_t n = t->n_inputs < TASK_MAX_INPUTS ? t->n_inputs : TASK_MAX_INPUTS;
    for (size_t i = 0; i < n; i++)
        names[i] = t->inputs[i].name;
    return expr_compile(params_str(t->params, "expression", ""), names, n, out);
}

static GDALDataType output_type(const task *t)
{
    return GDALGetDataTypeByName(params_str(t->params, "outputType", CALC_DEFAULT_TYPE));
}

static double default_nodata(GDALDataType dt)
{
    switch (dt) {
    case GDT_Byte:
        return 255;
    case GDT_UInt16:
        return 65535;
    case GDT_Int16:
        return -32768;
    case GDT_UInt32:
        return 4294967295.0;
    case GDT_Int32:
        return -2147483648.0;
    default:
        return -9999;
    }
}

/* The output nodata; false when params.nodata is "none". */
static bool output_nodata(const task *t, GDALDataType dt, double *v)
{
    const cJSON *nd = cJSON_GetObjectItemCaseSensitive(t->params, "nodata");
    if (cJSON_IsString(nd)) return false;
    *v = cJSON_IsNumber(nd) ? nd->valuedouble : default_nodata(dt);
    return true;
}

static int calc_validate(const task *t)
{
    expr *e = NULL;
    GDALDataType dt = output_type(t);
    const cJSON *nd = cJSON_GetObjectItemCaseSensitive(t->params, "nodata");
    bool used[TASK_MAX_INPUTS] = {false};
    int rc = -1;

    if (compile(t, &e) < 0) goto cleanup;
    if (expr_n_vars(e) == 0) {
        err_set(ERR_BAD_INPUT, ERR_EXPRESSION, EXPR_FIELD,
                "expression: uses no input, so there is no grid to compute on");
        goto cleanup;
    }
    for (size_t i = 0; i < expr_n_vars(e); i++)
        used[expr_var_at(e, i)->input] = true;
    /* An input the expression never reads would still enter the data
     * version and the lineage; that is a mistake in the task, not intent. */
    for (size_t i = 0; i < t->n_inputs && i < TASK_MAX_INPUTS; i++) {
        if (!used[i]) {
            char field[48];
            snprintf(field, sizeof field, "inputs[%zu].name", i);
            err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                    "%s: input '%s' is not used by params.expression", field, t->inputs[i].name);
            goto cleanup;
        }
    }
    /* Same check cog_write makes against the source, made here without I/O
     * because the output type is known from the params. */
    if (cJSON_IsNumber(nd)) {
        int clamped = 0, rounded = 0;
        GDALAdjustValueToDataType(dt, nd->valuedouble, &clamped, &rounded);
        if (clamped || rounded) {
            err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.nodata",
                    "params.nodata: %g cannot be represented in outputType %s", nd->valuedouble,
                    GDALGetDataTypeName(dt));
            goto cleanup;
        }
    }
    if (cog_check_params(t->params) < 0) goto cleanup;
    rc = 0;
cleanup:
    expr_free(e);
    return rc;
}

static void input_field(size_t i, char *buf, size_t cap)
{
    snprintf(buf, cap, "inputs[%zu].uri", i);
}

/* Largest pixel distance between the corners of grid b and where grid a puts
 * them; HUGE_VAL when a cannot be inverted. */
static double grid_distance(const double a[6], const double b[6], int w, int h)
{
    double inv[6], worst = 0;
    const double corners[4][2] = {{0, 0}, {w, 0}, {0, h}, {w, h}};
    if (!GDALInvGeoTransform((double *)a, inv)) return HUGE_VAL;
    for (int i = 0; i < 4; i++) {
        double px = corners[i][0], py = corners[i][1];
        double x = b[0] + px * b[1] + py * b[2], y = b[3] + px * b[4] + py * b[5];
        double ax = inv[0] + x * inv[1] + y * inv[2], ay = inv[3] + x * inv[4] + y * inv[5];
        double d = fmax(fabs(ax - px), fabs(ay - py));
        if (!(d <= worst)) worst = d; /* NaN counts as worst */
    }
    return worst;
}

/* Checks that ds (input i) is on ref's grid (input r). */
static int check_grid(const task *t, GDALDatasetH ref, size_t r, GDALDatasetH ds, size_t i)
{
    char field[48];
    double ga[6], gb[6];
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    bool has_a, has_b;
    OGRSpatialReferenceH sa = GDALGetSpatialRef(ref), sb = GDALGetSpatialRef(ds);

    input_field(i, field, sizeof field);
    /* The CRS first: it is the root cause when sizes differ as well. */
    if ((sa == NULL) != (sb == NULL) || (sa && !OSRIsSame(sa, sb)))
        return err_set(ERR_BAD_INPUT, ERR_CRS_MISMATCH, field,
                       "%s: %s is not in the CRS of inputs[%zu] (%s); calc needs its inputs on "
                       "one grid (reproject with warp first)",
                       field, t->inputs[i].name, r, t->inputs[r].name);
    if (w != GDALGetRasterXSize(ref) || h != GDALGetRasterYSize(ref))
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                       "%s: %s is %dx%d pixels but inputs[%zu] (%s) is %dx%d; calc needs its "
                       "inputs on one grid",
                       field, t->inputs[i].name, w, h, r, t->inputs[r].name,
                       GDALGetRasterXSize(ref), GDALGetRasterYSize(ref));
    has_a = GDALGetGeoTransform(ref, ga) == CE_None;
    has_b = GDALGetGeoTransform(ds, gb) == CE_None;
    if (has_a != has_b || (has_a && grid_distance(ga, gb, w, h) > CALC_GRID_TOL_PX))
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                       "%s: %s does not have the geotransform of inputs[%zu] (%s); calc needs "
                       "its inputs on one grid",
                       field, t->inputs[i].name, r, t->inputs[r].name);
    return 0;
}

static void setup_mask(calc_var *v)
{
    int flags = GDALGetMaskFlags(v->band);
    int has = 0;
    v->mask_kind = MASK_NONE;
    if (flags & GMF_ALL_VALID) return;
    if (flags & GMF_NODATA) {
        v->nodata = GDALGetRasterNoDataValue(v->band, &has);
        /* Float32 pixels read as doubles are exact floats, so the nodata
         * value must be rounded the same way to compare equal. */
        if (GDALGetRasterDataType(v->band) == GDT_Float32 && fabs(v->nodata) <= FLT_MAX)
            v->nodata = (double)(float)v->nodata;
        v->mask_kind = MASK_VALUE;
        return;
    }
    v->mask_band = GDALGetMaskBand(v->band);
    v->mask_kind = v->mask_band ? MASK_BAND : MASK_NONE;
}

/* Reads variable v's window and fills its mask (1 = nodata). */
static int read_var(calc_var *v, int x0, int y0, int w, int h)
{
    char field[48];
    size_t n = (size_t)w * (size_t)h;
    CPLErrorReset();
    if (GDALRasterIO(v->band, GF_Read, x0, y0, w, h, v->vals, w, h, GDT_Float64, 0, 0) != CE_None)
        goto fail;
    if (v->mask_kind == MASK_VALUE) {
        double nd = v->nodata;
        for (size_t i = 0; i < n; i++)
            v->mask[i] = v->vals[i] == nd;
        /* NaN nodata never compares equal; expr treats NaN as nodata anyway. */
    } else if (v->mask_kind == MASK_BAND) {
        if (GDALRasterIO(v->mask_band, GF_Read, x0, y0, w, h, v->mask, w, h, GDT_Byte, 0, 0) !=
            CE_None)
            goto fail;
        for (size_t i = 0; i < n; i++)
            v->mask[i] = v->mask[i] == 0;
    }
    return 0;
fail:
    input_field(v->input, field, sizeof field);
    return cog_gdal_fail(field, NULL, "reading the input");
}

/* Window width: whole rows when they fit the budget, else a multiple of the
 * tile size. */
static int window_width(int width, size_t n_vars)
{
    /* values (8) + mask (1) per pixel for each variable and for the result */
    size_t per_col = (size_t)CALC_TILE * 9 * (n_vars + 1);
    size_t cols = CALC_BUDGET_BYTES / per_col;
    cols = cols / CALC_TILE * CALC_TILE;
    if (cols < CALC_TILE) cols = CALC_TILE;
    return (size_t)width <= cols ? width : (int)cols;
}

/* How computed values become output pixels. */
typedef struct out_format {
    GDALDataType dt;
    bool is_int;
    double lo, hi; /* integer types: the type's range */
    bool has_nodata;
    double nodata;
} out_format;

static out_format make_format(GDALDataType dt, bool has_nodata, double nodata)
{
    out_format f = {.dt = dt, .has_nodata = has_nodata, .nodata = nodata};
    switch (dt) {
    case GDT_Byte:
        f.lo = 0, f.hi = 255;
        break;
    case GDT_UInt16:
        f.lo = 0, f.hi = 65535;
        break;
    case GDT_Int16:
        f.lo = -32768, f.hi = 32767;
        break;
    case GDT_UInt32:
        f.lo = 0, f.hi = 4294967295.0;
        break;
    case GDT_Int32:
        f.lo = -2147483648.0, f.hi = 2147483647.0;
        break;
    default:
        return f;
    }
    f.is_int = true;
    return f;
}

/* Rounds and saturates valid values in place (so GDAL's conversion to the
 * output type is exact) and writes the nodata value under the mask. */
static void to_output(const out_format *f, double *v, unsigned char *mask, size_t n)
{
    double fill = f->has_nodata ? f->nodata : 0;
    for (size_t i = 0; i < n; i++) {
        double x = v[i];
        if (!mask[i] && f->is_int) {
            x = fmin(fmax(round(x), f->lo), f->hi);
            if (f->has_nodata && x == f->nodata)
                x = x == f->hi ? f->hi - 1 : x == f->lo ? f->lo + 1 : x;
        } else if (!mask[i] && f->dt == GDT_Float32 && fabs(x) > FLT_MAX) {
            /* Float32 cannot hold what Float64 overflowed into: nodata
             * rather than a silent infinity. */
            if (f->has_nodata)
                mask[i] = 1;
            else
                x = x > 0 ? FLT_MAX : -FLT_MAX;
        }
        v[i] = mask[i] ? fill : x;
    }
}

/* Evaluating one window on the pod's threads: each worker has its own
 * compiled copy of the expression (an expr keeps its scratch buffers) and
 * its own pointer arrays into the window's variables. Pixels are
 * independent, so any split gives the same values. */
#define CALC_CHUNK (64u * 1024)

typedef struct calc_eval {
    expr **exprs;         /* one per worker */
    const double ***vals; /* [worker][var] */
    const unsigned char ***masks;
    calc_var *vars;
    size_t nv, n;
    double *res;
    unsigned char *res_mask;
    const out_format *fmt;
} calc_eval;

static int eval_chunk(size_t i, int worker, void *arg)
{
    calc_eval *c = arg;
    size_t off = i * CALC_CHUNK, len = c->n - off < CALC_CHUNK ? c->n - off : CALC_CHUNK;
    const double **vals = c->vals[worker];
    const unsigned char **masks = c->masks[worker];
    for (size_t v = 0; v < c->nv; v++) {
        vals[v] = c->vars[v].vals + off;
        masks[v] = c->vars[v].mask ? c->vars[v].mask + off : NULL;
    }
    expr_eval(c->exprs[worker], vals, masks, len, c->res + off, c->res_mask + off);
    to_output(c->fmt, c->res + off, c->res_mask + off, len);
    return 0;
}

static int create_scratch(const char *path, GDALDatasetH ref, GDALDataType dt, bool has_nodata,
                          double nodata, GDALDatasetH *out)
{
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    /* Uncompressed and tiled like the windows: this file lives for seconds
     * and is read once by the COG writer, so speed beats size. */
    const char *opts[] = {"TILED=YES",     "BLOCKXSIZE=256",   "BLOCKYSIZE=256",
                          "COMPRESS=NONE", "BIGTIFF=IF_SAFER", NULL};
    double gt[6];
    OGRSpatialReferenceH srs = GDALGetSpatialRef(ref);
    *out = NULL;
    if (!drv) return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "GTiff driver missing");
    CPLErrorReset();
    *out = GDALCreate(drv, path, GDALGetRasterXSize(ref), GDALGetRasterYSize(ref), 1, dt,
                      (char **)opts);
    if (!*out) return cog_gdal_fail(NULL, path, "creating the calc scratch file");
    if (GDALGetGeoTransform(ref, gt) == CE_None) GDALSetGeoTransform(*out, gt);
    if (srs) GDALSetSpatialRef(*out, srs);
    if (has_nodata) GDALSetRasterNoDataValue(GDALGetRasterBand(*out, 1), nodata);
    return 0;
}

static int calc_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    expr *e = NULL;
    GDALDatasetH ds[TASK_MAX_INPUTS] = {NULL};
    GDALDatasetH whole[TASK_MAX_INPUTS] = {NULL}; /* under a tile's window, ds[i] */
    GDALDatasetH tmp = NULL;
    GDALRasterBandH out_band;
    calc_var *vars = NULL;
    int threads = podres_threads() < TPOOL_MAX_THREADS ? podres_threads() : TPOOL_MAX_THREADS;
    calc_eval ev = {0};
    double *res = NULL;
    unsigned char *res_mask = NULL;
    char *tmp_path = NULL, *cog_path = NULL;
    void *scaled = NULL;
    GDALProgressFunc progress = ctx->progress ? ctx->progress : GDALDummyProgress;
    GDALDataType dt = output_type(t);
    double nodata = 0;
    bool has_nodata = output_nodata(t, dt, &nodata);
    out_format fmt = make_format(dt, has_nodata, nodata);
    size_t nv, ref = 0, n_win;
    int width, height, win_w;
    unsigned long long done = 0, total;
    int rc = -1;

    if (compile(t, &e) < 0) goto cleanup;
    nv = expr_n_vars(e);
    if (nv == 0) {
        err_set(ERR_BAD_INPUT, ERR_EXPRESSION, EXPR_FIELD, "expression: uses no input");
        goto cleanup;
    }
    vars = mem_calloc(nv, sizeof *vars);
    ev.exprs = mem_calloc((size_t)threads, sizeof *ev.exprs);
    ev.vals = mem_calloc((size_t)threads, sizeof *ev.vals);
    ev.masks = mem_calloc((size_t)threads, sizeof *ev.masks);
    if (!vars || !ev.exprs || !ev.vals || !ev.masks) {
        err_oom();
        goto cleanup;
    }
    ev.exprs[0] = e;
    for (int k = 0; k < threads; k++) {
        if (k > 0 && compile(t, &ev.exprs[k]) < 0) goto cleanup;
        ev.vals[k] = mem_calloc(nv, sizeof *ev.vals[k]);
        ev.masks[k] = mem_calloc(nv, sizeof *ev.masks[k]);
        if (!ev.vals[k] || !ev.masks[k]) {
            err_oom();
            goto cleanup;
        }
    }

    /* Open every input the expression reads once, on the first one's grid. */
    ref = expr_var_at(e, 0)->input;
    for (size_t i = 0; i < nv; i++) {
        const expr_var *xv = expr_var_at(e, i);
        size_t in = xv->input;
        if (!ds[in]) {
            if (input_open_raster(t, &t->inputs[in], &ds[in]) < 0) goto cleanup;
            if (in != ref && check_grid(t, ds[ref], ref, ds[in], in) < 0) goto cleanup;
            if (t->has_partition && t->partition.has_tile) {
                /* Per-pixel: the core only, whatever the halo. */
                whole[in] = ds[in];
                ds[in] = NULL;
                if (partition_check_input(&t->partition.tile, GDALGetRasterXSize(whole[in]),
                                          GDALGetRasterYSize(whole[in]), t->inputs[in].uri) < 0 ||
                    partition_open_core(whole[in], &t->partition.tile, &ds[in]) < 0)
                    goto cleanup;
            }
        }
        if (xv->band > GDALGetRasterCount(ds[in])) {
            int nb = GDALGetRasterCount(ds[in]);
            err_set(ERR_BAD_INPUT, ERR_EXPRESSION, EXPR_FIELD,
                    "expression: offset %zu: input '%s' has %d band%s, there is no band %d",
                    xv->offset, t->inputs[in].name, nb, nb == 1 ? "" : "s", xv->band);
            goto cleanup;
        }
        vars[i].input = in;
        vars[i].band = GDALGetRasterBand(ds[in], xv->band);
        setup_mask(&vars[i]);
    }

    width = GDALGetRasterXSize(ds[ref]);
    height = GDALGetRasterYSize(ds[ref]);
    win_w = window_width(width, nv);
    n_win = (size_t)win_w * CALC_TILE;
    for (size_t i = 0; i < nv; i++) {
        vars[i].vals = mem_malloc(n_win * sizeof *vars[i].vals);
        if (!vars[i].vals) {
            err_oom();
            goto cleanup;
        }
        if (vars[i].mask_kind != MASK_NONE && !(vars[i].mask = mem_malloc(n_win))) {
            err_oom();
            goto cleanup;
        }
    }
    res = mem_malloc(n_win * sizeof *res);
    res_mask = mem_malloc(n_win);
    tmp_path = mem_printf("%s/%s", ctx->scratch, CALC_TMP_NAME);
    cog_path = mem_printf("%s/%s", ctx->scratch, TERRANE_OBJ_COG);
    if (!res || !res_mask || !tmp_path || !cog_path) {
        err_oom();
        goto cleanup;
    }
    if (create_scratch(tmp_path, ds[ref], dt, has_nodata, nodata, &tmp) < 0) goto cleanup;
    out_band = GDALGetRasterBand(tmp, 1);

    /* Half the progress for computing, half for the COG writer. */
    scaled = GDALCreateScaledProgress(0.0, 0.5, progress, ctx->progress_arg);
    total = (unsigned long long)width * (unsigned long long)height;
    for (int y0 = 0; y0 < height; y0 += CALC_TILE) {
        int h = height - y0 < CALC_TILE ? height - y0 : CALC_TILE;
        for (int x0 = 0; x0 < width; x0 += win_w) {
            int w = width - x0 < win_w ? width - x0 : win_w;
            size_t n = (size_t)w * (size_t)h;
            for (size_t i = 0; i < nv; i++)
                if (read_var(&vars[i], x0, y0, w, h) < 0) goto cleanup;
            ev = (calc_eval){.exprs = ev.exprs,
                             .vals = ev.vals,
                             .masks = ev.masks,
                             .vars = vars,
                             .nv = nv,
                             .n = n,
                             .res = res,
                             .res_mask = res_mask,
                             .fmt = &fmt};
            if (tpool_for(threads, (n + CALC_CHUNK - 1) / CALC_CHUNK, eval_chunk, &ev) < 0)
                goto cleanup;
            CPLErrorReset();
            if (GDALRasterIO(out_band, GF_Write, x0, y0, w, h, res, w, h, GDT_Float64, 0, 0) !=
                CE_None) {
                cog_gdal_fail(NULL, tmp_path, "writing the calc result");
                goto cleanup;
            }
            done += n;
            if (!GDALScaledProgress((double)done / (double)total, NULL, scaled)) {
                err_set(ERR_TRANSIENT, ERR_INTERNAL_CODE, NULL, "calc: cancelled");
                goto cleanup;
            }
        }
    }
    CPLErrorReset();
    GDALFlushCache(tmp);
    if (CPLGetLastErrorType() == CE_Failure) {
        cog_gdal_fail(NULL, tmp_path, "writing the calc result");
        goto cleanup;
    }
    GDALDestroyScaledProgress(scaled);
    scaled = GDALCreateScaledProgress(0.5, 1.0, progress, ctx->progress_arg);
    if (cog_write(tmp, t->params, cog_path, GDALScaledProgress, scaled) < 0) goto cleanup;
    if (op_result_add(out, cog_path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0) goto cleanup;
    rc = 0;
cleanup:
    if (scaled) GDALDestroyScaledProgress(scaled);
    if (tmp) {
        GDALClose(tmp);
        VSIUnlink(tmp_path); /* scratch goes away later; free the space now */
    }
    for (size_t i = 0; i < TASK_MAX_INPUTS; i++) {
        if (ds[i]) GDALClose(ds[i]);
        if (whole[i]) GDALClose(whole[i]);
    }
    for (size_t i = 0; vars && i < nv; i++) {
        mem_free(vars[i].vals);
        mem_free(vars[i].mask);
    }
    mem_free(vars);
    for (int k = 0; k < threads; k++) {
        if (k > 0 && ev.exprs) expr_free(ev.exprs[k]);
        if (ev.vals) mem_free(ev.vals[k]);
        if (ev.masks) mem_free(ev.masks[k]);
    }
    mem_free(ev.exprs);
    mem_free(ev.vals);
    mem_free(ev.masks);
    mem_free(res);
    mem_free(res_mask);
    mem_free(tmp_path);
    mem_free(cog_path);
    expr_free(e);
    return rc;
}

const op_def op_calc = {
    .name = "calc",
    .params = calc_params,
    .cog_options = true,
    .tiles = true,
    .validate = calc_validate,
    .run = calc_run,
};
