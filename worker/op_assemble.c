/*
 * op_assemble.c - the `assemble` and `collection` operations: the end of a
 * partitioned asset.
 *
 * assemble copies each tile's pixels into its window of one full-size
 * scratch GeoTIFF (uncompressed, as terrain's), whose geotransform, CRS and
 * nodata are the grid's and the tiles', and writes it with cog_write under
 * the tiled operation's COG options: the same path the unpartitioned
 * operation's pixels take to its COG, so the two COGs are equal pixel for
 * pixel (and, with the same options, byte for byte; tests/integration).
 * Every tile is checked against the checksum its manifest recorded and
 * against its window's size before a pixel is copied. With
 * params.collection (default true) it also publishes collection.json, a
 * STAC Collection whose Items are the tiles' (collection.h).
 *
 * collection publishes only the Collection, for time and static partitions.
 */
#include "collection.h"
#include "cog.h"
#include "err.h"
#include "grid.h"
#include "hash.h"
#include "input.h"
#include "mem.h"
#include "op.h"
#include "terrane_proto.h"

#include <cpl_vsi.h>
#include <stdio.h>
#include <string.h>

#define ASSEMBLE_TMP_NAME "assemble-tmp.tif"
#define ASSEMBLE_SCRATCH_TILE 256

static const param_spec assemble_params[] = {
    {"grid", PARAM_ANY, true},
    {"collection", PARAM_BOOL},
    {NULL},
};

static const param_spec collection_params[] = {
    {"title", PARAM_STRING, false, NULL, 0, 0, 256},
    {NULL},
};

static int assemble_validate(const task *t)
{
    grid g;
    char key[32], field[48];
    if (grid_decode(cJSON_GetObjectItemCaseSensitive(t->params, "grid"), "params.grid", &g) < 0)
        return -1;
    size_t n = (size_t)g.cols * (size_t)g.rows;
    if (n > TASK_MAX_INPUTS_PARTITIONS || n != t->n_inputs)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "inputs",
                       "inputs: the grid has %zu tiles (at most %d assemble), the task %zu inputs",
                       n, TASK_MAX_INPUTS_PARTITIONS, t->n_inputs);
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "r%03zuc%03zu", i / (size_t)g.cols, i % (size_t)g.cols);
        if (strcmp(t->inputs[i].name, key) != 0) {
            snprintf(field, sizeof field, "inputs[%zu].name", i);
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                           "%s: \"%s\", but tile %zu in row-major order is %s", field,
                           t->inputs[i].name, i, key);
        }
        if (!t->inputs[i].checksum) {
            snprintf(field, sizeof field, "inputs[%zu].checksum", i);
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                           "%s: required for a tile (its manifest's checksum)", field);
        }
    }
    return cog_check_params(t->params);
}

static int create_mosaic(const grid *g, GDALDatasetH tile0, const char *path, GDALDatasetH *out)
{
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    char bx[24], by[24];
    snprintf(bx, sizeof bx, "BLOCKXSIZE=%d", ASSEMBLE_SCRATCH_TILE);
    snprintf(by, sizeof by, "BLOCKYSIZE=%d", ASSEMBLE_SCRATCH_TILE);
    const char *opts[] = {"TILED=YES", bx, by, "COMPRESS=NONE", "BIGTIFF=IF_SAFER", NULL};
    int bands = GDALGetRasterCount(tile0);
    if (!drv) return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "GTiff driver missing");
    if (bands < 1)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, "inputs[0].uri",
                       "inputs[0].uri: the tile has no band");
    GDALDataType dt = GDALGetRasterDataType(GDALGetRasterBand(tile0, 1));
    CPLErrorReset();
    *out = GDALCreate(drv, path, g->width, g->height, bands, dt, (char **)opts);
    if (!*out) return cog_gdal_fail(NULL, path, "creating the assembly scratch file");
    GDALSetGeoTransform(*out, (double *)g->gt);
    OGRSpatialReferenceH srs = GDALGetSpatialRef(tile0);
    if (srs) GDALSetSpatialRef(*out, srs);
    for (int b = 1; b <= bands; b++) {
        int has = 0;
        double nd = GDALGetRasterNoDataValue(GDALGetRasterBand(tile0, b), &has);
        if (has) GDALSetRasterNoDataValue(GDALGetRasterBand(*out, b), nd);
    }
    return 0;
}

/* Checks tile i's bytes against its checksum, opens it and copies its
 * pixels into their window of dst (created from tile 0). */
static int copy_tile(const task *t, const grid *g, size_t i, const char *tmp_path,
                     GDALDatasetH *dst)
{
    const task_input *in = &t->inputs[i];
    char field[48], sum[HASH_MULTIHASH_LEN];
    unsigned long long size = 0;
    GDALDatasetH src = NULL;
    char *gpath = NULL;
    void *buf = NULL;
    int rc = -1, x0, y0, x1, y1;
    int col = (int)(i % (size_t)g->cols), row = (int)(i / (size_t)g->cols);

    snprintf(field, sizeof field, "inputs[%zu].uri", i);
    if (input_check_reachable(in->uri, field) < 0) goto cleanup;
    if (!(gpath = input_gdal_path(in->uri))) {
        err_oom();
        goto cleanup;
    }
    if (hash_path(gpath, in->uri, sum, &size) < 0) goto cleanup;
    if (strcmp(sum, in->checksum) != 0) {
        err_set(ERR_BAD_INPUT, ERR_CHECKSUM_MISMATCH, field,
                "%s: checksum %s, but the tile's manifest recorded %s", field, sum, in->checksum);
        goto cleanup;
    }
    if (input_open_raster(t, in, &src) < 0) goto cleanup;
    grid_tile(g, col, row, &x0, &y0, &x1, &y1);
    int w = x1 - x0, h = y1 - y0;
    if (GDALGetRasterXSize(src) != w || GDALGetRasterYSize(src) != h) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                "%s: tile %s is %dx%d, its window in the grid %dx%d", field, in->name,
                GDALGetRasterXSize(src), GDALGetRasterYSize(src), w, h);
        goto cleanup;
    }
    if (!*dst && create_mosaic(g, src, tmp_path, dst) < 0) goto cleanup;
    int bands = GDALGetRasterCount(*dst);
    if (GDALGetRasterCount(src) != bands) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field, "%s: %d bands, tile 0 has %d", field,
                GDALGetRasterCount(src), bands);
        goto cleanup;
    }
    GDALDataType dt = GDALGetRasterDataType(GDALGetRasterBand(*dst, 1));
    if (!(buf = mem_malloc((size_t)w * (size_t)h * (size_t)GDALGetDataTypeSizeBytes(dt)))) {
        err_oom();
        goto cleanup;
    }
    for (int b = 1; b <= bands; b++) {
        CPLErrorReset();
        if (GDALRasterIO(GDALGetRasterBand(src, b), GF_Read, 0, 0, w, h, buf, w, h, dt, 0, 0) !=
            CE_None) {
            cog_gdal_fail(field, NULL, "reading a tile");
            goto cleanup;
        }
        if (GDALRasterIO(GDALGetRasterBand(*dst, b), GF_Write, x0, y0, w, h, buf, w, h, dt, 0, 0) !=
            CE_None) {
            cog_gdal_fail(NULL, tmp_path, "writing the assembly");
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    mem_free(buf);
    mem_free(gpath);
    if (src) GDALClose(src);
    return rc;
}

static int assemble_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    GDALDatasetH dst = NULL;
    char *path = NULL, *tmp_path = NULL, *col_path = NULL;
    GDALProgressFunc progress = ctx->progress ? ctx->progress : GDALDummyProgress;
    void *scaled = NULL;
    grid g;
    int rc = -1;

    if (grid_decode(cJSON_GetObjectItemCaseSensitive(t->params, "grid"), "params.grid", &g) < 0)
        goto cleanup;
    path = mem_printf("%s/%s", ctx->scratch, TERRANE_OBJ_COG);
    tmp_path = mem_printf("%s/%s", ctx->scratch, ASSEMBLE_TMP_NAME);
    col_path = mem_printf("%s/%s", ctx->scratch, COLLECTION_OBJ);
    if (!path || !tmp_path || !col_path) {
        err_oom();
        goto cleanup;
    }
    for (size_t i = 0; i < t->n_inputs; i++) {
        if (copy_tile(t, &g, i, tmp_path, &dst) < 0) goto cleanup;
        if (!progress(0.5 * (double)(i + 1) / (double)t->n_inputs, NULL, ctx->progress_arg)) {
            err_set(ERR_TRANSIENT, ERR_INTERNAL_CODE, NULL, "assemble: cancelled");
            goto cleanup;
        }
    }
    CPLErrorReset();
    GDALFlushCache(dst);
    if (CPLGetLastErrorType() == CE_Failure) {
        cog_gdal_fail(NULL, tmp_path, "writing the assembly");
        goto cleanup;
    }
    scaled = GDALCreateScaledProgress(0.5, 1.0, progress, ctx->progress_arg);
    if (cog_write_from(dst, t->params, path, NULL, GDALScaledProgress, scaled) < 0) goto cleanup;
    if (op_result_add(out, path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0) goto cleanup;
    if (params_bool(t->params, "collection", true)) {
        if (collection_write(t, NULL, col_path) < 0) goto cleanup;
        if (op_result_add(out, col_path, COLLECTION_OBJ, COLLECTION_MEDIA, "metadata", false) < 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    if (scaled) GDALDestroyScaledProgress(scaled);
    if (dst) {
        GDALClose(dst);
        VSIUnlink(tmp_path);
    }
    mem_free(col_path);
    mem_free(tmp_path);
    mem_free(path);
    return rc;
}

static int collection_validate(const task *t)
{
    char field[48];
    for (size_t i = 0; i < t->n_inputs; i++)
        if (!t->inputs[i].stac_item) {
            snprintf(field, sizeof field, "inputs[%zu].stacItem", i);
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                           "%s: required (the partition's STAC Item)", field);
        }
    return 0;
}

static int collection_run(const op_ctx *ctx, op_result *out)
{
    char *path = mem_printf("%s/%s", ctx->scratch, COLLECTION_OBJ);
    int rc = -1;
    if (!path) return err_oom();
    if (collection_write(ctx->task, params_str(ctx->task->params, "title", NULL), path) == 0 &&
        op_result_add(out, path, COLLECTION_OBJ, COLLECTION_MEDIA, "metadata", false) == 0)
        rc = 0;
    mem_free(path);
    return rc;
}

const op_def op_assemble = {
    .name = "assemble",
    .params = assemble_params,
    .cog_options = true,
    .max_inputs = TASK_MAX_INPUTS_PARTITIONS,
    .validate = assemble_validate,
    .run = assemble_run,
};

const op_def op_collection = {
    .name = "collection",
    .params = collection_params,
    .max_inputs = TASK_MAX_INPUTS_PARTITIONS,
    .validate = collection_validate,
    .run = collection_run,
};
