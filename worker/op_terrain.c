/*
 * op_terrain.c - the `terrain` operation: gdaldem's hillshade, slope,
 * aspect, TRI, TPI and roughness on one band of one raster.
 *
 * GDAL's algorithm (GDALDEMProcessing) runs on one core, and written straight
 * to the COG driver it runs twice: the driver reads its source once for the
 * overviews and once for the full-resolution tiles. So the raster is cut in
 * strips of whole rows, each read with a halo of one row above and below
 * (the 3x3 window every mode uses) into an in-memory dataset, and
 * GDALDEMProcessing computes each strip on one of the pod's threads
 * (tpool.h); the strips' inner rows go to one in-memory raster when it
 * fits a quarter of the pod's memory (TERRAIN_MEM_SHARE), else to an
 * uncompressed scratch GeoTIFF, and cog_write turns that into the COG with
 * the task's options. In memory saves writing and reading back the whole
 * result through the page cache, most of what the worker spent beyond
 * gdaldem itself. This is the
 * decomposition tile partitions use across pods, inside one pod. A halo row
 * is an edge row of its strip and is dropped; the raster's own first and
 * last rows are edges of their strips as they are of the raster, so edges
 * (nodata, or -compute_edges) come out as gdaldem makes them. Every pixel
 * comes from the same GDAL code on the same 3x3 window, whatever the thread
 * count, and the COG is byte-identical to `gdaldem <mode> -of COG` with the
 * same options (tests/integration, bench/).
 *
 * A tile partition (partition.h) is the same decomposition across pods: the
 * job's window is the tile's core instead of the whole raster, each strip
 * reads one more column left and right too (clipped to the raster, as rows
 * are), and the scratch file, hence the COG, is the core with the tile's
 * geotransform. A neighbour's pixel is read where the core has one, and
 * the raster's own edges are edges of the strips that touch them, so every
 * pixel equals the unpartitioned run's.
 */
#include "cog.h"
#include "err.h"
#include "input.h"
#include "mem.h"
#include "op.h"
#include "partition.h"
#include "podres.h"
#include "terrane_proto.h"
#include "tpool.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal_utils.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const modes[] = {"hillshade", "slope",     "aspect", "TRI",
                                    "TPI",       "roughness", NULL};
static const char *const slope_formats[] = {"degree", "percent", NULL};
static const char *const algs[] = {"Horn", "ZevenbergenThorne", NULL};

static const param_spec terrain_params[] = {
    {"mode", PARAM_ENUM, true, modes},
    {"band", PARAM_INT, false, NULL, 1, 65535},
    {"scale", PARAM_NUMBER},
    {"zFactor", PARAM_NUMBER},
    {"azimuth", PARAM_NUMBER, false, NULL, 0, 360},
    {"altitude", PARAM_NUMBER, false, NULL, 0, 90},
    {"slopeFormat", PARAM_ENUM, false, slope_formats},
    {"alg", PARAM_ENUM, false, algs},
    {"computeEdges", PARAM_BOOL},
    {NULL},
};

/* Which params gdaldem accepts in which mode (its usage text); a param the
 * mode ignores is an error rather than silently dropped. */
static const struct {
    const char *param;
    const char *const modes[4];
} param_modes[] = {
    {"scale", {"hillshade", "slope", NULL}}, {"zFactor", {"hillshade", NULL}},
    {"azimuth", {"hillshade", NULL}},        {"altitude", {"hillshade", NULL}},
    {"slopeFormat", {"slope", NULL}},        {"alg", {"hillshade", "slope", "aspect"}},
};

static int terrain_validate(const task *t)
{
    const char *mode = params_str(t->params, "mode", "");
    char field[64];

    if (!op_single_input(t, NULL)) return -1;
    for (size_t i = 0; i < sizeof param_modes / sizeof param_modes[0]; i++) {
        if (!params_has(t->params, param_modes[i].param)) continue;
        bool ok = false;
        char list[64] = "";
        size_t pos = 0;
        for (size_t k = 0; k < 4 && param_modes[i].modes[k]; k++) {
            if (!strcmp(param_modes[i].modes[k], mode)) ok = true;
            pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%s", k ? ", " : "",
                                    param_modes[i].modes[k]);
        }
        if (!ok) {
            snprintf(field, sizeof field, "params.%s", param_modes[i].param);
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                           "%s: not used by mode %s (only by %s)", field, mode, list);
        }
    }
    if (params_has(t->params, "scale") && !(params_num(t->params, "scale", 1) > 0))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.scale",
                       "params.scale: must be greater than 0 (ratio of vertical to horizontal "
                       "units, e.g. 111120 for metres over degrees)");
    /* gdaldem fixes the output nodata (0 for hillshade, -9999 otherwise) and
     * has no option to change it. */
    if (params_has(t->params, "nodata"))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.nodata",
                       "params.nodata: not supported by terrain (the output nodata is 0 for "
                       "hillshade and -9999 for the other modes)");
    /* hillshade is Byte, everything else Float32. */
    if (params_int(t->params, "predictor", 1) == 3 && !strcmp(mode, "hillshade"))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.predictor",
                       "params.predictor: 3 (floating point) does not apply to hillshade, whose "
                       "output is Byte");
    if (t->has_partition && t->partition.has_tile && t->partition.tile.halo < 1)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "partition.tile.halo",
                       "partition.tile.halo: terrain needs a halo of at least 1 pixel (its 3x3 "
                       "window), got %d",
                       t->partition.tile.halo);
    return cog_check_params(t->params);
}

static char **add_num(char **argv, const char *flag, double v)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    argv = CSLAddString(argv, flag);
    return CSLAddString(argv, buf);
}

/* The gdaldem argument list for params, computing into a MEM dataset of one
 * band (the strip holds only the chosen band, so no -b). */
static char **terrain_argv(const cJSON *params)
{
    char **argv = CSLAddString(NULL, "-of");
    argv = CSLAddString(argv, "MEM");
    if (params_has(params, "scale")) argv = add_num(argv, "-s", params_num(params, "scale", 1));
    if (params_has(params, "zFactor")) argv = add_num(argv, "-z", params_num(params, "zFactor", 1));
    if (params_has(params, "azimuth"))
        argv = add_num(argv, "-az", params_num(params, "azimuth", 315));
    if (params_has(params, "altitude"))
        argv = add_num(argv, "-alt", params_num(params, "altitude", 45));
    if (!strcmp(params_str(params, "slopeFormat", "degree"), "percent"))
        argv = CSLAddString(argv, "-p");
    if (params_has(params, "alg")) {
        argv = CSLAddString(argv, "-alg");
        argv = CSLAddString(argv, params_str(params, "alg", "Horn"));
    }
    if (params_bool(params, "computeEdges", false)) argv = CSLAddString(argv, "-compute_edges");
    return argv;
}

/* Rows per strip: about four strips per thread so uneven strips even out,
 * a multiple of 16, at most 256 (the scratch file's tile height) and at
 * most what fits TERRAIN_STRIP_BUDGET for the strip's input and output. */
#define TERRAIN_STRIP_BUDGET (48u * 1024 * 1024)
#define TERRAIN_SCRATCH_TILE 256
#define TERRAIN_TMP_NAME "terrain-tmp.tif"
/* The result stays in memory when it is at most this share of the pod's
 * memory limit, or of TERRAIN_MEM_NO_LIMIT when none is known. */
#define TERRAIN_MEM_SHARE 4
#define TERRAIN_MEM_NO_LIMIT (4ull << 30)

static int strip_rows(int width, int height, int threads, int src_bytes)
{
    long rows = (height + 4L * threads - 1) / (4L * threads);
    rows = (rows + 15) / 16 * 16;
    long fit = (long)(TERRAIN_STRIP_BUDGET / ((size_t)width * (size_t)(src_bytes + 4) * 2));
    fit = fit / 16 * 16;
    if (rows > fit) rows = fit;
    if (rows > TERRAIN_SCRATCH_TILE) rows = TERRAIN_SCRATCH_TILE;
    if (rows < 16) rows = 16;
    return (int)rows;
}

/* Shared by the strip computations. The source and the scratch file are
 * GDAL handles, which one thread at a time may use: io guards both (and the
 * progress counter). Reading and writing are small next to the algorithm. */
typedef struct terrain_job {
    const char *mode;
    char **argv;
    const char *field;    /* "inputs[0].uri" */
    const char *tmp_path; /* scratch GeoTIFF */
    GDALRasterBandH src_band;
    GDALDataType src_type;
    int src_has_nodata;
    double src_nodata;
    OGRSpatialReferenceH srs; /* borrowed from the source */
    bool has_gt;
    double gt[6];            /* of the whole raster */
    int x0, y0;              /* the window's top-left pixel in the raster */
    int width, height, rows; /* the window's size (the raster's, untiled) */
    int full_w, full_h;      /* the raster's size */
    GDALDatasetH dst;        /* created from strip 0's output */
    GDALRasterBandH dst_band;
    bool in_memory;  /* dst is a MEM dataset over result */
    void *result;    /* width x height pixels of the output type */
    size_t dt_bytes; /* the output type's size */
    pthread_mutex_t io;
    int done_rows;
    GDALProgressFunc progress;
    void *progress_arg;
} terrain_job;

/* The result's geotransform: the window's (the whole raster's, untiled). */
static void set_window_gt(terrain_job *j)
{
    if (!j->has_gt) return;
    double gt[6];
    partition_window_gt(j->gt, (partition_window){j->x0, j->y0, j->width, j->height}, gt);
    GDALSetGeoTransform(j->dst, gt);
}

/* A MEM dataset over j->result, like the scratch file but in memory. */
static int create_in_memory(terrain_job *j, GDALRasterBandH like)
{
    GDALDataType dt = GDALGetRasterDataType(like);
    GDALDriverH drv = GDALGetDriverByName("MEM");
    char ptr[64];
    char *opts[] = {ptr, NULL};
    int has = 0;
    double nd = GDALGetRasterNoDataValue(like, &has);
    j->dt_bytes = (size_t)GDALGetDataTypeSizeBytes(dt);
    if (!drv) return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "MEM driver missing");
    if (!(j->result = mem_malloc((size_t)j->width * (size_t)j->height * j->dt_bytes)))
        return err_oom();
    snprintf(ptr, sizeof ptr, "DATAPOINTER=%p", j->result);
    if (!(j->dst = GDALCreate(drv, "", j->width, j->height, 0, dt, NULL)) ||
        GDALAddBand(j->dst, dt, opts) != CE_None) {
        if (j->dst) GDALClose(j->dst);
        j->dst = NULL;
        mem_free(j->result);
        j->result = NULL;
        return err_oom();
    }
    set_window_gt(j);
    if (j->srs) GDALSetSpatialRef(j->dst, j->srs);
    j->dst_band = GDALGetRasterBand(j->dst, 1);
    if (has) GDALSetRasterNoDataValue(j->dst_band, nd);
    return 0;
}

static int create_scratch(terrain_job *j, GDALRasterBandH like)
{
    if (j->in_memory) return create_in_memory(j, like);
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    char bx[16], by[16];
    snprintf(bx, sizeof bx, "BLOCKXSIZE=%d", TERRAIN_SCRATCH_TILE);
    snprintf(by, sizeof by, "BLOCKYSIZE=%d", TERRAIN_SCRATCH_TILE);
    /* Uncompressed: it lives for seconds and is read once by the COG writer. */
    const char *opts[] = {"TILED=YES", bx, by, "COMPRESS=NONE", "BIGTIFF=IF_SAFER", NULL};
    int has = 0;
    double nd = GDALGetRasterNoDataValue(like, &has);
    if (!drv) return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "GTiff driver missing");
    CPLErrorReset();
    j->dst = GDALCreate(drv, j->tmp_path, j->width, j->height, 1, GDALGetRasterDataType(like),
                        (char **)opts);
    if (!j->dst) return cog_gdal_fail(NULL, j->tmp_path, "creating the terrain scratch file");
    set_window_gt(j);
    if (j->srs) GDALSetSpatialRef(j->dst, j->srs);
    j->dst_band = GDALGetRasterBand(j->dst, 1);
    if (has) GDALSetRasterNoDataValue(j->dst_band, nd);
    return 0;
}

/* Computes strip i: the window's rows [y0, y0 + rows) from source rows and
 * columns with the halo (ys, xs: raster coordinates of what is read). */
static int terrain_strip(size_t i, int worker, void *arg)
{
    terrain_job *j = arg;
    int y0 = (int)i * j->rows, ay = j->y0 + y0;
    int rows = j->height - y0 < j->rows ? j->height - y0 : j->rows;
    int ys = ay > 0 ? ay - 1 : 0;
    int ye = ay + rows < j->full_h ? ay + rows + 1 : j->full_h;
    int xs = j->x0 > 0 ? j->x0 - 1 : 0;
    int xe = j->x0 + j->width < j->full_w ? j->x0 + j->width + 1 : j->full_w;
    int hs = ye - ys, ws = xe - xs, w = j->width;
    GDALDatasetH in = NULL, out = NULL;
    GDALDEMProcessingOptions *opts = NULL;
    void *buf = NULL;
    int rc = -1, usage_error = 0;
    CPLErr e;
    (void)worker;

    size_t px = (size_t)ws * (size_t)hs;
    size_t sz = (size_t)GDALGetDataTypeSizeBytes(j->src_type);
    if (!(buf = mem_malloc(px * (sz > 4 ? sz : 4)))) return err_oom();
    pthread_mutex_lock(&j->io);
    CPLErrorReset();
    e = GDALRasterIO(j->src_band, GF_Read, xs, ys, ws, hs, buf, ws, hs, j->src_type, 0, 0);
    pthread_mutex_unlock(&j->io);
    if (e != CE_None) {
        cog_gdal_fail(j->field, NULL, "reading the input");
        goto cleanup;
    }
    GDALDriverH mem = GDALGetDriverByName("MEM");
    char ptr[64];
    char *band_opts[] = {ptr, NULL};
    snprintf(ptr, sizeof ptr, "DATAPOINTER=%p", buf); /* the strip as read, no copy */
    if (!mem || !(in = GDALCreate(mem, "", ws, hs, 0, j->src_type, NULL)) ||
        GDALAddBand(in, j->src_type, band_opts) != CE_None) {
        err_oom();
        goto cleanup;
    }
    if (j->has_gt) {
        /* The strip's own origin; the pixel size (what the slope uses) is
         * the raster's. */
        double gt[6];
        partition_window_gt(j->gt, (partition_window){xs, ys, ws, hs}, gt);
        GDALSetGeoTransform(in, gt);
    }
    GDALRasterBandH in_band = GDALGetRasterBand(in, 1);
    if (j->src_has_nodata) GDALSetRasterNoDataValue(in_band, j->src_nodata);
    if (!(opts = GDALDEMProcessingOptionsNew(j->argv, NULL))) {
        err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "gdaldem options rejected");
        goto cleanup;
    }
    CPLErrorReset();
    out = GDALDEMProcessing("", in, j->mode, NULL, opts, &usage_error);
    if (!out) {
        char what[48];
        snprintf(what, sizeof what, "computing %s", j->mode);
        cog_gdal_fail(j->field, NULL, what);
        goto cleanup;
    }
    GDALRasterBandH out_band = GDALGetRasterBand(out, 1);
    GDALDataType dt = GDALGetRasterDataType(out_band);
    /* The strip's inner rows, without the halo: straight into the result
     * in memory (strips are disjoint rows), else through buf (at least 4
     * bytes a pixel, the widest output type) into the scratch file. */
    pthread_mutex_lock(&j->io);
    int ok = j->dst || create_scratch(j, out_band) == 0;
    pthread_mutex_unlock(&j->io);
    if (!ok) goto cleanup;
    void *rows_to = j->in_memory ? (char *)j->result + (size_t)y0 * (size_t)w * j->dt_bytes : buf;
    if (GDALRasterIO(out_band, GF_Read, j->x0 - xs, ay - ys, w, rows, rows_to, w, rows, dt, 0, 0) !=
        CE_None) {
        err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "reading a computed strip");
        goto cleanup;
    }
    pthread_mutex_lock(&j->io);
    if (ok && !j->in_memory) {
        CPLErrorReset();
        e = GDALRasterIO(j->dst_band, GF_Write, 0, y0, w, rows, buf, w, rows, dt, 0, 0);
        if (e != CE_None) {
            cog_gdal_fail(NULL, j->tmp_path, "writing the terrain result");
            ok = 0;
        }
    }
    int go_on = 1;
    if (ok) {
        j->done_rows += rows;
        go_on = j->progress((double)j->done_rows / j->height, NULL, j->progress_arg);
    }
    pthread_mutex_unlock(&j->io);
    if (!ok) goto cleanup;
    if (!go_on) {
        err_set(ERR_TRANSIENT, ERR_INTERNAL_CODE, NULL, "terrain: cancelled");
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (out) GDALClose(out);
    if (opts) GDALDEMProcessingOptionsFree(opts);
    if (in) GDALClose(in);
    mem_free(buf);
    return rc;
}

static int terrain_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    const task_input *in = NULL;
    GDALDatasetH src = NULL;
    char *path = NULL, *tmp_path = NULL;
    void *scaled = NULL;
    GDALProgressFunc progress = ctx->progress ? ctx->progress : GDALDummyProgress;
    char field[48];
    int rc = -1;
    terrain_job j = {.mode = params_str(t->params, "mode", ""), .field = field};
    bool lock_init = false;

    if (!(in = op_single_input(t, NULL))) goto cleanup;
    snprintf(field, sizeof field, "inputs[%d].uri", task_input_index(t, in));
    if (input_open_raster(t, in, &src) < 0) goto cleanup;
    int band = params_int(t->params, "band", 1);
    if (band > GDALGetRasterCount(src)) {
        err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.band",
                "params.band: %d, but %s has %d band(s)", band, in->uri, GDALGetRasterCount(src));
        goto cleanup;
    }
    path = mem_printf("%s/%s", ctx->scratch, TERRANE_OBJ_COG);
    tmp_path = mem_printf("%s/%s", ctx->scratch, TERRAIN_TMP_NAME);
    if (!path || !tmp_path) {
        err_oom();
        goto cleanup;
    }
    j.src_band = GDALGetRasterBand(src, band);
    j.src_type = GDALGetRasterDataType(j.src_band);
    /* gdaldem reads integer and floating-point rasters in their own type
     * (int or float arithmetic); complex ones it does not handle either. */
    if (GDALDataTypeIsComplex(j.src_type)) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                "%s: terrain needs real-valued data, %s is %s", field, in->uri,
                GDALGetDataTypeName(j.src_type));
        goto cleanup;
    }
    j.src_nodata = GDALGetRasterNoDataValue(j.src_band, &j.src_has_nodata);
    j.srs = GDALGetSpatialRef(src);
    j.has_gt = GDALGetGeoTransform(src, j.gt) == CE_None;
    j.full_w = j.width = GDALGetRasterXSize(src);
    j.full_h = j.height = GDALGetRasterYSize(src);
    if (t->has_partition && t->partition.has_tile) {
        const partition_tile *tile = &t->partition.tile;
        if (partition_check_input(tile, j.full_w, j.full_h, in->uri) < 0) goto cleanup;
        j.x0 = tile->xoff;
        j.y0 = tile->yoff;
        j.width = tile->xsize;
        j.height = tile->ysize;
    }
    j.rows = strip_rows(j.width, j.height, podres_threads(), GDALGetDataTypeSizeBytes(j.src_type));
    j.tmp_path = tmp_path;
    unsigned long long limit = podres_get()->limits.memory;
    j.in_memory = (unsigned long long)j.width * (unsigned long long)j.height * 4 <=
                  (limit ? limit : TERRAIN_MEM_NO_LIMIT) / TERRAIN_MEM_SHARE;
    j.argv = terrain_argv(t->params);
    pthread_mutex_init(&j.io, NULL);
    lock_init = true;

    /* Half the progress for computing, half for the COG writer. */
    scaled = GDALCreateScaledProgress(0.0, 0.5, progress, ctx->progress_arg);
    j.progress = GDALScaledProgress;
    j.progress_arg = scaled;
    size_t n = (size_t)((j.height + j.rows - 1) / j.rows);
    if (tpool_for(podres_threads(), n, terrain_strip, &j) < 0) goto cleanup;
    CPLErrorReset();
    GDALFlushCache(j.dst);
    if (CPLGetLastErrorType() == CE_Failure) {
        cog_gdal_fail(NULL, tmp_path, "writing the terrain result");
        goto cleanup;
    }
    GDALDestroyScaledProgress(scaled);
    scaled = GDALCreateScaledProgress(0.5, 1.0, progress, ctx->progress_arg);
    if (cog_write_from(j.dst, t->params, path, field, GDALScaledProgress, scaled) < 0) goto cleanup;
    if (op_result_add(out, path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0) goto cleanup;
    rc = 0;
cleanup:
    if (scaled) GDALDestroyScaledProgress(scaled);
    if (j.dst) {
        GDALClose(j.dst);
        if (!j.in_memory) VSIUnlink(tmp_path); /* scratch goes away later; free the space now */
    }
    mem_free(j.result);
    if (lock_init) pthread_mutex_destroy(&j.io);
    if (src) GDALClose(src);
    CSLDestroy(j.argv);
    mem_free(tmp_path);
    mem_free(path);
    return rc;
}

const op_def op_terrain = {
    .name = "terrain",
    .params = terrain_params,
    .cog_options = true,
    .tiles = true,
    .validate = terrain_validate,
    .run = terrain_run,
};
