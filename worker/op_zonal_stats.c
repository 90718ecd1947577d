/*
 * op_zonal_stats.c - the `zonal-stats` operation: statistics of one raster
 * band per polygon of a zones layer (catchments, communes), GDAL 3.6 having
 * no such algorithm.
 *
 * The task plumbing lives here (params, inputs, output files); the cell rule,
 * accumulation and file formats are zonal.h's. Outputs, both role "data":
 * stats.geojson (primary; zones in EPSG:4326 with their statistics) and
 * stats.csv (the same table without geometry).
 */
#include "err.h"
#include "input.h"
#include "mem.h"
#include "op.h"
#include "podres.h"
#include "tpool.h"
#include "zonal.h"

#include <stdio.h>
#include <string.h>

#define ZONAL_GEOJSON_NAME "stats.geojson"
#define ZONAL_CSV_NAME "stats.csv"

static const char *const stat_choices[] = {"count", "min", "max", "mean", "sum", "stddev", NULL};

static const param_spec zonal_params[] = {
    {"raster", PARAM_STRING, true, NULL, 0, 0, 63},
    {"zones", PARAM_STRING, true, NULL, 0, 0, 63},
    {"key", PARAM_STRING, true, NULL, 0, 0, 255},
    {"band", PARAM_INT, false, NULL, 1, 65535},
    {"stats", PARAM_ENUM_LIST, false, stat_choices},
    PODRES_PARAM_THREADS,
    PODRES_PARAM_CACHE_MB,
    {NULL},
};

/* The ZONAL_* bits of params.stats; all of them when absent. */
static unsigned stats_bits(const cJSON *params)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(params, "stats");
    const cJSON *it;
    unsigned bits = 0;
    if (!cJSON_IsArray(list)) return ZONAL_ALL;
    cJSON_ArrayForEach(it, list)
    {
        for (unsigned s = 0; s < ZONAL_N_STATS; s++)
            if (cJSON_IsString(it) && !strcmp(it->valuestring, zonal_stat_name(s))) bits |= 1u << s;
    }
    return bits ? bits : ZONAL_ALL;
}

/* The input a param names, or NULL with the error set on that param. */
static const task_input *named_input(const task *t, const char *param)
{
    char field[32];
    const char *name = params_str(t->params, param, "");
    const task_input *in = task_input_find(t, name);
    if (!in) {
        snprintf(field, sizeof field, "params.%s", param);
        err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: no input is named '%s'", field, name);
    }
    return in;
}

static int zonal_validate(const task *t)
{
    const task_input *raster, *zones;
    const char *key = params_str(t->params, "key", "");
    unsigned bits = stats_bits(t->params);

    if (!(raster = named_input(t, "raster")) || !(zones = named_input(t, "zones"))) return -1;
    if (raster == zones)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.zones",
                       "params.zones: names the same input as params.raster");
    for (size_t i = 0; i < t->n_inputs; i++) {
        if (&t->inputs[i] != raster && &t->inputs[i] != zones) {
            char field[48];
            snprintf(field, sizeof field, "inputs[%zu].name", i);
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                           "%s: input '%s' is neither params.raster nor params.zones", field,
                           t->inputs[i].name);
        }
    }
    if (!key[0])
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.key", "params.key: empty");
    /* The key becomes a GeoJSON property next to the statistics. */
    for (unsigned s = 0; s < ZONAL_N_STATS; s++)
        if ((bits & (1u << s)) && !strcmp(key, zonal_stat_name(s)))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.key",
                           "params.key: '%s' clashes with the statistic of that name", key);
    return 0;
}

static int zonal_run_op(const op_ctx *ctx, op_result *out)
{
    const task *t = ctx->task;
    const task_input *rin, *zin;
    GDALDatasetH raster = NULL, zones = NULL;
    GDALDatasetH more[TPOOL_MAX_THREADS - 1] = {NULL};
    int n_more = 0;
    char raster_field[48], zones_field[48];
    char *gj_path = NULL, *csv_path = NULL;
    int band = params_int(t->params, "band", 1), rc = -1;
    zonal_job job;

    if (!(rin = named_input(t, "raster")) || !(zin = named_input(t, "zones"))) goto cleanup;
    snprintf(raster_field, sizeof raster_field, "inputs[%d].uri", task_input_index(t, rin));
    snprintf(zones_field, sizeof zones_field, "inputs[%d].uri", task_input_index(t, zin));
    if (input_open_raster(t, rin, &raster) < 0 || input_open_vector(t, zin, &zones) < 0)
        goto cleanup;
    if (band > GDALGetRasterCount(raster)) {
        err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.band",
                "params.band: %s has %d band(s), there is no band %d", raster_field,
                GDALGetRasterCount(raster), band);
        goto cleanup;
    }
    /* One more handle on the raster per extra thread: zones are computed
     * in parallel, each thread reading through its own. */
    for (; n_more < podres_threads() - 1 && n_more < TPOOL_MAX_THREADS - 1; n_more++)
        if (input_open_raster(t, rin, &more[n_more]) < 0) goto cleanup;
    gj_path = mem_printf("%s/%s", ctx->scratch, ZONAL_GEOJSON_NAME);
    csv_path = mem_printf("%s/%s", ctx->scratch, ZONAL_CSV_NAME);
    if (!gj_path || !csv_path) {
        err_oom();
        goto cleanup;
    }
    job = (zonal_job){
        .raster = raster,
        .more_rasters = more,
        .n_more = n_more,
        .band = band,
        .zones = zones,
        .key = params_str(t->params, "key", ""),
        .stats = stats_bits(t->params),
        .raster_field = raster_field,
        .zones_field = zones_field,
        .geojson_path = gj_path,
        .csv_path = csv_path,
        .progress = ctx->progress,
        .progress_arg = ctx->progress_arg,
    };
    if (zonal_run(&job) < 0) goto cleanup;
    if (op_result_add(out, gj_path, ZONAL_GEOJSON_NAME, MEDIA_GEOJSON, "data", false) < 0 ||
        op_result_add(out, csv_path, ZONAL_CSV_NAME, MEDIA_CSV, "data", false) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    if (raster) GDALClose(raster);
    for (int k = 0; k < n_more; k++)
        GDALClose(more[k]);
    if (zones) GDALClose(zones);
    mem_free(gj_path);
    mem_free(csv_path);
    return rc;
}

const op_def op_zonal_stats = {
    .name = "zonal-stats",
    .params = zonal_params,
    .cog_options = false,
    .validate = zonal_validate,
    .run = zonal_run_op,
};
