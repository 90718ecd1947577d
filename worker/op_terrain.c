/*
 * op_terrain.c - the `terrain` operation: gdaldem's hillshade, slope,
 * aspect, TRI, TPI and roughness on one band of one raster.
 *
 * GDALDEMProcessing writes straight to the COG driver with the task's COG
 * options as -co, exactly what `gdaldem <mode> -of COG -co ...` does, so the
 * operation costs what the command line tool costs (bench/) and gives the
 * same pixels (tests/integration).
 */
#include "cog.h"
#include "err.h"
#include "input.h"
#include "mem.h"
#include "op.h"
#include "terrane_proto.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal_utils.h>
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
    return cog_check_params(t->params);
}

static char **add_num(char **argv, const char *flag, double v)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    argv = CSLAddString(argv, flag);
    return CSLAddString(argv, buf);
}

/* The gdaldem argument list for params, after the COG options. */
static char **terrain_argv(const cJSON *params)
{
    char **argv = cog_options(params, NULL, true);
    if (params_has(params, "band")) argv = add_num(argv, "-b", params_int(params, "band", 1));
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

static int terrain_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    const task_input *in = NULL;
    const char *mode = params_str(t->params, "mode", "");
    GDALDatasetH src = NULL, dst = NULL;
    GDALDEMProcessingOptions *opts = NULL;
    char **argv = NULL;
    char *path = NULL, *old_pam = NULL;
    bool pam_set = false;
    char field[48];
    int rc = -1, usage_error = 0;

    if (!(in = op_single_input(t, NULL))) goto cleanup;
    snprintf(field, sizeof field, "inputs[%d].uri", task_input_index(t, in));
    if (input_open_raster(t, in, &src) < 0) goto cleanup;
    int band = params_int(t->params, "band", 1);
    if (band > GDALGetRasterCount(src)) {
        err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.band",
                "params.band: %d, but %s has %d band(s)", band, in->uri, GDALGetRasterCount(src));
        goto cleanup;
    }
    if (!(path = mem_printf("%s/%s", ctx->scratch, TERRANE_OBJ_COG))) {
        err_oom();
        goto cleanup;
    }
    argv = terrain_argv(t->params);
    if (!(opts = GDALDEMProcessingOptionsNew(argv, NULL))) {
        err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "gdaldem options rejected");
        goto cleanup;
    }
    GDALDEMProcessingOptionsSetProgress(opts, ctx->progress, ctx->progress_arg);

    /* As in cog_write: no .aux.xml sidecar, only asset.tif is published. */
    const char *pam = CPLGetThreadLocalConfigOption("GDAL_PAM_ENABLED", NULL);
    if (pam && !(old_pam = mem_strdup(pam))) {
        err_oom();
        goto cleanup;
    }
    CPLSetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO");
    pam_set = true;
    CPLErrorReset();
    dst = GDALDEMProcessing(path, src, mode, NULL, opts, &usage_error);
    if (!dst) {
        char what[48];
        snprintf(what, sizeof what, "computing %s", mode);
        cog_gdal_fail(field, path, what);
        VSIUnlink(path);
        goto cleanup;
    }
    if (op_result_add(out, path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0) goto cleanup;
    rc = 0;
cleanup:
    if (dst) GDALClose(dst);
    if (pam_set) CPLSetThreadLocalConfigOption("GDAL_PAM_ENABLED", old_pam);
    if (opts) GDALDEMProcessingOptionsFree(opts);
    if (src) GDALClose(src);
    CSLDestroy(argv);
    mem_free(old_pam);
    mem_free(path);
    return rc;
}

const op_def op_terrain = {
    .name = "terrain",
    .params = terrain_params,
    .cog_options = true,
    .validate = terrain_validate,
    .run = terrain_run,
};
