/*
 * zonal.h - zonal statistics of one raster band over polygons: the engine of
 * the zonal-stats operation (op_zonal_stats.c), kept apart from the task
 * plumbing so unit tests can drive it with in-memory datasets.
 *
 * Cell rule: a cell belongs to a polygon when its CENTRE lies inside it, as
 * GDAL's rasterizer decides (ALL_TOUCHED off): a centre exactly on an edge
 * shared by two polygons counts for one of them, never both. Overlapping
 * features each count the cells they cover. Nodata cells (the band's nodata
 * value or mask band) and non-finite values are ignored.
 *
 * Each polygon is rasterized over its bounding window only, in tiles of at
 * most tile x tile cells, so memory stays bounded for polygons covering a
 * whole continent. Accumulation is in double: a compensated (Neumaier) sum
 * and Welford's mean and M2 for the population standard deviation.
 *
 * Output, in layer order, numbers as the shortest decimal that reads back to
 * the same double (%.15g, else %.17g), so equal inputs give equal bytes:
 *   GeoJSON FeatureCollection, geometries in EPSG:4326 longitude/latitude
 *   (RFC 7946; 7 decimals), or untransformed when the zones have no CRS;
 *   properties {<key>: value, count: n, min: ..., ...}; stats are null when
 *   count is 0.
 *   CSV (RFC 4180 quoting, LF line ends): <key>,count,min,... one row per
 *   feature, empty fields for null.
 * Called from the run thread only.
 */
#ifndef TERRANE_ZONAL_H
#define TERRANE_ZONAL_H

#include <gdal.h>
#include <ogr_api.h>
#include <stdbool.h>

/* Statistics, in their output order. */
#define ZONAL_COUNT (1u << 0)
#define ZONAL_MIN (1u << 1)
#define ZONAL_MAX (1u << 2)
#define ZONAL_MEAN (1u << 3)
#define ZONAL_SUM (1u << 4)
#define ZONAL_STDDEV (1u << 5)
#define ZONAL_ALL 0x3fu
#define ZONAL_N_STATS 6

/* Default tile edge for rasterizing one polygon, in cells. */
#define ZONAL_TILE 512

/* "count", "min", ... for bit i; NULL past the end. */
const char *zonal_stat_name(unsigned i);

typedef struct zonal_acc {
    unsigned long long count;
    double min, max;
    double sum, comp; /* Neumaier: the true sum is sum + comp */
    double mean, m2;  /* Welford */
} zonal_acc;

void zonal_acc_init(zonal_acc *a);
void zonal_acc_add(zonal_acc *a, double v);
/* Values of a finished accumulator; meaningful only when count > 0. */
double zonal_acc_sum(const zonal_acc *a);
double zonal_acc_mean(const zonal_acc *a);
double zonal_acc_stddev(const zonal_acc *a);

/* Adds to acc the valid cells of band (1-based) of raster whose centre lies
 * in geom. geom must be in the raster's CRS and polygonal (no curves).
 * *overlaps is set when geom's envelope overlaps the raster at all.
 * tile 0 means ZONAL_TILE. raster_field names the raster in read errors. */
int zonal_polygon(GDALDatasetH raster, int band, OGRGeometryH geom, unsigned tile,
                  const char *raster_field, zonal_acc *acc, bool *overlaps);

typedef struct zonal_job {
    GDALDatasetH raster;
    /* Further handles on the same raster, one per extra thread (GDAL handles
     * are one thread's at a time): zones are computed n_more + 1 at a time. */
    GDALDatasetH *more_rasters;
    int n_more;
    int band;                 /* 1-based, checked by the caller */
    GDALDatasetH zones;       /* its first layer is used */
    const char *key;          /* attribute copied to the output */
    unsigned stats;           /* ZONAL_* bits */
    const char *raster_field; /* "inputs[0].uri", for errors */
    const char *zones_field;  /* "inputs[1].uri" */
    const char *geojson_path; /* files to write */
    const char *csv_path;
    unsigned tile;             /* 0: ZONAL_TILE */
    GDALProgressFunc progress; /* may be NULL */
    void *progress_arg;
} zonal_job;

/* Computes the statistics of every feature and writes both files, in the
 * layer's order: features are read in batches, their zones computed on the
 * threads (one raster handle each, one zone per thread at a time, so each
 * zone's sums are added in the same order whatever the thread count), and
 * written in order. Errors:
 * params.key missing from the layer, zones_field when the layer is not
 * polygons, EmptyIntersection when no feature overlaps the raster. */
int zonal_run(const zonal_job *job);

#endif
