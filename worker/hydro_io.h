/*
 * hydro_io.h - moving hydrology grids between GDAL datasets and memory for
 * the hydrology operations (op_hydro.c): a raster band into a float, double
 * or direction array on a hydro_grid, an array back out as a COG, a label
 * array as polygons and stream segments as lines (GeoJSON in the raster's
 * CRS).
 *
 * Cell sizes: a projected raster's pixel size times its linear unit; a
 * geographic one's on a sphere of radius HYDRO_EARTH_RADIUS, so dx shrinks
 * with the cosine of each row's latitude. Rotated or sheared geotransforms
 * are refused. Arrays are the caller's (mem_free); the hydro_grid's dx array
 * belongs to the hydro_raster. Called from the run thread only.
 */
#ifndef TERRANE_HYDRO_IO_H
#define TERRANE_HYDRO_IO_H

#include "hydro.h"

#include <cJSON.h>
#include <gdal.h>
#include <stdbool.h>
#include <stdint.h>

#define HYDRO_EARTH_RADIUS 6371008.8 /* metres, IUGG mean radius */

/* The grid of one input raster: size, georeferencing and cell sizes. */
typedef struct hydro_raster {
    hydro_grid g;
    double gt[6];
    char *wkt;      /* CRS as WKT, or NULL */
    double *dx;     /* g.dx */
    char field[48]; /* "inputs[i].uri" of the raster */
} hydro_raster;

/* Describes ds (field names it in errors). Fails on a rotated geotransform
 * or a grid of 2^32 - 1 cells or more. */
int hydro_raster_open(GDALDatasetH ds, const char *field, hydro_raster *out);
void hydro_raster_free(hydro_raster *r);
/* Fails naming other's field unless other has the same size and
 * geotransform as r (to a thousandth of a cell). */
int hydro_raster_same_grid(const hydro_raster *r, const hydro_raster *other);

/* Reads band (1-based) as float, NaN for nodata and masked cells. */
int hydro_read_float(GDALDatasetH ds, int band, const hydro_raster *r, float **out);
/* Reads band as double, NaN for nodata and masked cells. */
int hydro_read_double(GDALDatasetH ds, int band, const hydro_raster *r, double **out);
/* Reads D8 codes in enc into directions (hydro.h), HYDRO_NODATA for nodata;
 * a code that is none of enc's fails naming r's field. */
int hydro_read_dirs(GDALDatasetH ds, const hydro_raster *r, hydro_encoding enc, uint8_t **out);
/* The encoding a direction raster records in its TERRANE_FLOW_ENCODING
 * metadata item, or dflt. */
hydro_encoding hydro_dirs_encoding(GDALDatasetH ds, hydro_encoding dflt);

/* The COG options a hydrology product of type is written with: params,
 * plus the hydrology defaults where params is silent: without a compression
 * in params ZSTD level 1, with the floating-point predictor (3) for a
 * Float32 surface (overviews true); overviews (params.overviews, bool) as
 * given. A new object (cJSON_Delete), or NULL with the error set. */
cJSON *hydro_cog_params(const cJSON *params, GDALDataType type, bool overviews);

/* Writes data (w x h values of type, on r's grid) as a COG at path with
 * hydro_cog_params(params, type, overviews). nodata is set when has_nodata;
 * meta is a NULL-terminated KEY=VALUE list (may be NULL). data is not
 * freed. */
int hydro_write_cog(const hydro_raster *r, void *data, GDALDataType type, bool has_nodata,
                    double nodata, char **meta, bool overviews, const cJSON *params,
                    const char *path, GDALProgressFunc progress, void *progress_arg);

/* Writes the regions of equal non-zero label (8-connected) as a GeoJSON
 * FeatureCollection of polygons with an integer property "id" and the
 * region's area in square metres ("area"). */
int hydro_write_polygons(const hydro_raster *r, uint32_t *label, const char *layer,
                         const char *path);

/* A GeoJSON writer of stream segments: LineStrings through cell centres
 * with properties "id" (1.. in writing order) and "order" (Strahler). */
typedef struct hydro_lines hydro_lines;
int hydro_lines_open(const hydro_raster *r, const char *path, hydro_lines **out);
/* A hydro_segment_fn (arg: the hydro_lines). */
int hydro_lines_add(const uint32_t *cells, size_t n, unsigned order, void *arg);
/* Closes and frees; returns -1 when writing failed. NULL is a no-op. */
int hydro_lines_close(hydro_lines *l);

#endif
