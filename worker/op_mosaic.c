/*
 * op_mosaic.c - the `mosaic` operation: many rasters on one CRS into one COG.
 *
 * The inputs are opened through the allowlist (input.h) and handed to
 * GDALBuildVRT as open datasets, so the in-memory VRT refers to them and
 * never to a path: no VRT text from a task is ever parsed. Where inputs
 * overlap, the later one in the task's input list wins (VRT source order).
 *
 * GDALBuildVRT skips an input that does not fit (other CRS, band count or
 * data type) with only a warning; a silently missing tile would be a wrong
 * asset, so every input is checked first and the error names it, and
 * -strict is passed as a second line of defence.
 */
#include "cog.h"
#include "err.h"
#include "input.h"
#include "mem.h"
#include "op.h"
#include "terrane_proto.h"

#include <cpl_string.h>
#include <gdal_utils.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <string.h>

static const char *const resamplings[] = {"nearest", "bilinear", "cubic", "cubicspline", "lanczos",
                                          "average", "mode",     "rms",   NULL};

static const param_spec mosaic_params[] = {
    {"resampling", PARAM_ENUM, false, resamplings},
    {NULL},
};

static int mosaic_validate(const task *t)
{
    if (t->n_inputs < 1)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "inputs",
                       "inputs: mosaic needs at least one raster input");
    return cog_check_params(t->params);
}

static void input_field(char *buf, size_t cap, size_t i)
{
    snprintf(buf, cap, "inputs[%zu].uri", i);
}

/* Checks that input i can join the mosaic of input 0. */
static int check_compatible(const task *t, GDALDatasetH *ds, size_t i)
{
    char field[48];
    double gt[6];
    input_field(field, sizeof field, i);
    const char *uri = t->inputs[i].uri;

    if (GDALGetGeoTransform(ds[i], gt) != CE_None)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                       "%s: %s has no geotransform, so it cannot be placed in a mosaic", field,
                       uri);
    if (gt[2] != 0 || gt[4] != 0)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                       "%s: %s has a rotated geotransform, which a mosaic cannot hold (warp it "
                       "first)",
                       field, uri);
    if (i == 0) return 0;

    OGRSpatialReferenceH a = GDALGetSpatialRef(ds[0]), b = GDALGetSpatialRef(ds[i]);
    if ((a == NULL) != (b == NULL) || (a && !OSRIsSame(a, b)))
        return err_set(ERR_BAD_INPUT, ERR_CRS_MISMATCH, field,
                       "%s: %s is in a different CRS than inputs[0] (%s); warp the inputs to one "
                       "CRS first",
                       field, uri, t->inputs[0].uri);
    int nb = GDALGetRasterCount(ds[i]), nb0 = GDALGetRasterCount(ds[0]);
    if (nb != nb0)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                       "%s: %s has %d band(s), inputs[0] has %d", field, uri, nb, nb0);
    for (int b_i = 1; b_i <= nb; b_i++) {
        GDALDataType dt = GDALGetRasterDataType(GDALGetRasterBand(ds[i], b_i));
        GDALDataType dt0 = GDALGetRasterDataType(GDALGetRasterBand(ds[0], b_i));
        if (dt != dt0)
            return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                           "%s: band %d of %s is %s, band %d of inputs[0] is %s", field, b_i, uri,
                           GDALGetDataTypeName(dt), b_i, GDALGetDataTypeName(dt0));
    }
    return 0;
}

/* After a failed read the COG step cannot tell which input broke; GDAL's
 * message names the file, so look for each input's GDAL path in it. */
static int blame_input(const task *t, const char *path)
{
    const char *msg = CPLGetLastErrorMsg();
    for (size_t i = 0; i < t->n_inputs; i++) {
        char *gpath = input_gdal_path(t->inputs[i].uri);
        bool hit = gpath && strstr(msg, gpath);
        mem_free(gpath);
        if (hit) {
            char field[48];
            input_field(field, sizeof field, i);
            return cog_gdal_fail(field, path, "writing the mosaic");
        }
    }
    return -1;
}

static int mosaic_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    GDALDatasetH *ds = NULL, vrt = NULL;
    GDALBuildVRTOptions *opts = NULL;
    char **argv = NULL;
    char *path = NULL;
    int rc = -1, usage_error = 0;

    if (!(ds = mem_calloc(t->n_inputs, sizeof *ds))) {
        err_oom();
        goto cleanup;
    }
    for (size_t i = 0; i < t->n_inputs; i++) {
        if (input_open_raster(t, &t->inputs[i], &ds[i]) < 0) goto cleanup;
        if (check_compatible(t, ds, i) < 0) goto cleanup;
    }
    argv = CSLAddString(argv, "-strict");
    argv = CSLAddString(argv, "-r");
    argv = CSLAddString(argv, params_str(t->params, "resampling", "nearest"));
    if (!(opts = GDALBuildVRTOptionsNew(argv, NULL))) {
        err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "mosaic options rejected");
        goto cleanup;
    }
    CPLErrorReset();
    /* "" = an anonymous in-memory VRT. */
    vrt = GDALBuildVRT("", (int)t->n_inputs, ds, NULL, opts, &usage_error);
    if (!vrt) {
        err_set_gdal(ERR_BAD_INPUT, ERR_INPUT_INVALID, "inputs", "inputs: cannot build the mosaic");
        goto cleanup;
    }
    if (!(path = mem_printf("%s/%s", ctx->scratch, TERRANE_OBJ_COG))) {
        err_oom();
        goto cleanup;
    }
    if (cog_write_from(vrt, t->params, path, NULL, ctx->progress, ctx->progress_arg) < 0) {
        if (!strcmp(err_get_code(), ERR_INPUT_INVALID) ||
            !strcmp(err_get_code(), ERR_INPUT_UNREADABLE))
            blame_input(t, path);
        goto cleanup;
    }
    if (op_result_add(out, path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0) goto cleanup;
    rc = 0;
cleanup:
    /* The VRT holds references to the inputs: close it before them. */
    if (vrt) GDALClose(vrt);
    for (size_t i = 0; ds && i < t->n_inputs; i++)
        if (ds[i]) GDALClose(ds[i]);
    if (opts) GDALBuildVRTOptionsFree(opts);
    CSLDestroy(argv);
    mem_free(ds);
    mem_free(path);
    return rc;
}

const op_def op_mosaic = {
    .name = "mosaic",
    .params = mosaic_params,
    .cog_options = true,
    .validate = mosaic_validate,
    .run = mosaic_run,
};
