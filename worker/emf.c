/*
 * emf.c - the worker's Embedded Metric Format line (see emf.h).
 *
 * Built with cJSON so every string is escaped; the metric declarations and
 * their values are added together so a declared metric is never missing.
 */
#include "emf.h"

#include "mem.h"

#include <cJSON.h>
#include <gdal.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#ifndef TERRANE_VERSION
#define TERRANE_VERSION "unknown"
#endif

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* {"Name":name,"Unit":unit} into defs and name:value into root. */
static bool add_metric(cJSON *defs, cJSON *root, const char *name, const char *unit, double value)
{
    cJSON *d = cJSON_CreateObject();
    if (!d) return false;
    cJSON_AddItemToArray(defs, d);
    return cJSON_AddStringToObject(d, "Name", name) && cJSON_AddStringToObject(d, "Unit", unit) &&
           cJSON_AddNumberToObject(root, name, value);
}

char *emf_worker_render(const char *operation, const char *result, long total_ms, long compute_ms,
                        long publish_ms, unsigned long long bytes_written, double cells,
                        int threads, unsigned long long cache_mb, long long timestamp_ms)
{
    char *out = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *aws = cJSON_AddObjectToObject(root, "_aws");
    if (!aws || !cJSON_AddNumberToObject(aws, "Timestamp",
                                         (double)(timestamp_ms > 0 ? timestamp_ms : now_ms())))
        goto done;
    cJSON *directives = cJSON_AddArrayToObject(aws, "CloudWatchMetrics");
    cJSON *directive = cJSON_CreateObject();
    if (!directives || !directive) {
        cJSON_Delete(directive);
        goto done;
    }
    cJSON_AddItemToArray(directives, directive);
    if (!cJSON_AddStringToObject(directive, "Namespace", EMF_WORKER_NAMESPACE)) goto done;
    cJSON *dims = cJSON_AddArrayToObject(directive, "Dimensions");
    cJSON *set = cJSON_CreateArray();
    if (!dims || !set) {
        cJSON_Delete(set);
        goto done;
    }
    cJSON_AddItemToArray(dims, set);
    cJSON *dim = cJSON_CreateString("Operation");
    if (!dim) goto done;
    cJSON_AddItemToArray(set, dim);
    cJSON *defs = cJSON_AddArrayToObject(directive, "Metrics");
    if (!defs) goto done;

    if (!cJSON_AddStringToObject(root, "Operation",
                                 operation && *operation ? operation : "unknown"))
        goto done;
    if (!add_metric(defs, root, "Duration", "Milliseconds", (double)total_ms) ||
        !add_metric(defs, root, "ComputeDuration", "Milliseconds", (double)compute_ms) ||
        !add_metric(defs, root, "PublishDuration", "Milliseconds", (double)publish_ms) ||
        !add_metric(defs, root, "BytesWritten", "Bytes", (double)bytes_written))
        goto done;
    if (cells > 0 && compute_ms > 0 && isfinite(cells) &&
        !add_metric(defs, root, "CellsPerSecond", "Count/Second",
                    cells * 1000.0 / (double)compute_ms))
        goto done;
    if (threads > 0 && (!add_metric(defs, root, "Threads", "Count", (double)threads) ||
                        !add_metric(defs, root, "GdalCacheMB", "Megabytes", (double)cache_mb)))
        goto done;
    if (!cJSON_AddStringToObject(root, "result", result && *result ? result : "unknown") ||
        !cJSON_AddStringToObject(root, "workerVersion", TERRANE_VERSION))
        goto done;
    out = cJSON_PrintUnformatted(root);
done:
    cJSON_Delete(root);
    return out;
}

int emf_worker_run(const char *operation, const char *result, long total_ms, long compute_ms,
                   long publish_ms, unsigned long long bytes_written, double cells, int threads,
                   unsigned long long cache_mb, FILE *out)
{
    char *line = emf_worker_render(operation, result, total_ms, compute_ms, publish_ms,
                                   bytes_written, cells, threads, cache_mb, 0);
    if (!line) return -1;
    size_t n = strlen(line);
    char *full = mem_realloc(line, n + 2);
    if (!full) {
        mem_free(line);
        return -1;
    }
    full[n] = '\n';
    full[n + 1] = '\0';
    size_t w = fwrite(full, 1, n + 1, out);
    int f = fflush(out);
    mem_free(full);
    return w == n + 1 && f == 0 ? 0 : -1;
}

double emf_raster_cells(const char *path)
{
    if (!path) return 0;
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    if (!ds) return 0;
    double cells = (double)GDALGetRasterXSize(ds) * (double)GDALGetRasterYSize(ds);
    GDALClose(ds);
    return cells;
}
