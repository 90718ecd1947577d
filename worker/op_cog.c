/*
 * op_cog.c - the `cog` operation: one raster in, the same raster out as a
 * Cloud Optimized GeoTIFF with the task's COG options.
 *
 * It is gdal_translate -of COG and nothing more, so its output can be
 * compared pixel for pixel with the command line tool (tests/integration,
 * bench/). A tile partition is the core window of the input (a -srcwin
 * VRT), so the tiles' pixels are exactly the unpartitioned COG's.
 */
#include "cog.h"
#include "err.h"
#include "input.h"
#include "mem.h"
#include "op.h"
#include "partition.h"
#include "terrane_proto.h"

#include <stdio.h>

static const param_spec cog_params[] = {{NULL}};

static int cog_validate(const task *t)
{
    if (!op_single_input(t, NULL)) return -1;
    return cog_check_params(t->params);
}

static int cog_run(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    const task_input *in = NULL;
    GDALDatasetH src = NULL, win = NULL;
    char *path = NULL;
    char field[48];
    int rc = -1;

    if (!(in = op_single_input(t, NULL))) goto cleanup;
    snprintf(field, sizeof field, "inputs[%d].uri", task_input_index(t, in));
    if (input_open_raster(t, in, &src) < 0) goto cleanup;
    if (t->has_partition && t->partition.has_tile &&
        (partition_check_input(&t->partition.tile, GDALGetRasterXSize(src), GDALGetRasterYSize(src),
                               in->uri) < 0 ||
         partition_open_core(src, &t->partition.tile, &win) < 0))
        goto cleanup;
    if (!(path = mem_printf("%s/%s", ctx->scratch, TERRANE_OBJ_COG))) {
        err_oom();
        goto cleanup;
    }
    if (cog_write_from(win ? win : src, t->params, path, field, ctx->progress, ctx->progress_arg) <
        0)
        goto cleanup;
    if (op_result_add(out, path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0) goto cleanup;
    rc = 0;
cleanup:
    if (win) GDALClose(win);
    if (src) GDALClose(src);
    mem_free(path);
    return rc;
}

const op_def op_cog = {
    .name = "cog",
    .params = cog_params,
    .cog_options = true,
    .tiles = true,
    .validate = cog_validate,
    .run = cog_run,
};
