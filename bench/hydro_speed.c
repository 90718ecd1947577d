/*
 * hydro_speed.c - the hydrology algorithms alone (hydro.h), timed on one
 * core: bench_hydrology.sh builds it against the worker's objects.
 *
 *   hydro_speed DEM.tif
 *
 * Reads band 1 (untimed), then times hydro_fill (epsilon 0), hydro_d8,
 * hydro_d8_normalize + hydro_accumulate_d8 and hydro_basins, each on CPU
 * time of this thread, and prints one line per step:
 *   <step> <cells> <seconds> <cells per second>
 * and a line "sinks <n>" (0 proves the filled DEM fully drains).
 */
#include "hydro.h"
#include "mem.h"

#include <gdal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void report(const char *step, size_t n, double s)
{
    printf("%s %zu %.3f %.0f\n", step, n, s, (double)n / s);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hydro_speed DEM.tif\n");
        return 2;
    }
    mem_init();
    GDALAllRegister();
    GDALDatasetH ds = GDALOpen(argv[1], GA_ReadOnly);
    if (!ds) return 1;
    size_t w = (size_t)GDALGetRasterXSize(ds), h = (size_t)GDALGetRasterYSize(ds), n = w * h;
    GDALRasterBandH b = GDALGetRasterBand(ds, 1);
    int has_nd = 0;
    double nd = GDALGetRasterNoDataValue(b, &has_nd), gt[6];
    GDALGetGeoTransform(ds, gt);
    float *z = mem_malloc(n * sizeof *z);
    uint8_t *dir = mem_malloc(n);
    double *dx = mem_malloc(h * sizeof *dx);
    if (!z || !dir || !dx) return 1;
    if (GDALRasterIO(b, GF_Read, 0, 0, (int)w, (int)h, z, (int)w, (int)h, GDT_Float32, 0, 0))
        return 1;
    GDALClose(ds);
    for (size_t i = 0; i < n; i++)
        if (has_nd && z[i] == (float)nd) z[i] = NAN;
    for (size_t y = 0; y < h; y++) dx[y] = fabs(gt[1]);
    hydro_grid g = {.w = w, .h = h, .dx = dx, .dy = fabs(gt[5])};

    double t = cpu_now();
    if (hydro_fill(&g, z, 0, NULL) < 0) return 1;
    report("fill", n, cpu_now() - t);
    size_t sinks = 0;
    t = cpu_now();
    if (hydro_d8(&g, z, dir, &sinks) < 0) return 1;
    report("d8", n, cpu_now() - t);
    mem_free(z);
    double *acc = mem_malloc(n * sizeof *acc);
    if (!acc) return 1;
    for (size_t i = 0; i < n; i++) acc[i] = 1;
    t = cpu_now();
    hydro_d8_normalize(&g, dir);
    if (hydro_accumulate_d8(&g, dir, acc) < 0) return 1;
    report("accumulation", n, cpu_now() - t);
    mem_free(acc);
    uint32_t *label = mem_malloc(n * sizeof *label);
    if (!label) return 1;
    t = cpu_now();
    hydro_basins(&g, dir, label, NULL);
    report("basins", n, cpu_now() - t);
    printf("sinks %zu\n", sinks);
    mem_free(label);
    mem_free(dir);
    mem_free(dx);
    return 0;
}
