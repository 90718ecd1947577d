/*
 * cog.h - the shared COG output options and writing a COG.
 *
 * All raster operations end in a Cloud Optimized GeoTIFF written with GDAL's
 * COG driver, so they share one set of options (proto/README.md):
 * compression, level, predictor, blockSize, overviewResampling, bigtiff,
 * nodata; an operation may also take "overviews" (bool, default true: false
 * writes none; hydro_io.h). Output is deterministic for identical input and options (no
 * timestamps are written), which makes equal data versions give equal bytes.
 */
#ifndef TERRANE_COG_H
#define TERRANE_COG_H

#include "params.h"

#include <cpl_string.h>
#include <gdal.h>

/* The COG options as params; terminated by {NULL}. */
extern const param_spec cog_param_specs[];

/* Appends the creation options for params to list ("COMPRESS=DEFLATE", ...),
 * as -co pairs when as_argv ("-co", "COMPRESS=DEFLATE"); also "-of COG"
 * first when as_argv. Returns the new list (CSLDestroy). */
char **cog_options(const cJSON *params, char **list, bool as_argv);
/* Adds "-a_nodata <v>" when params.nodata is set, to an argv list. */
char **cog_nodata_argv(const cJSON *params, char **argv);

/* Cross-field checks params_check cannot express, without I/O: blockSize a
 * multiple of 16, level within the chosen compression's range (and only
 * with DEFLATE or ZSTD), no predictor without compression. Errors name the
 * param. Every operation with cog_options calls it from its validate. */
int cog_check_params(const cJSON *params);

/* Writes src as a COG at path using GDALTranslate with the options in params. */
int cog_write(GDALDatasetH src, const cJSON *params, const char *path, GDALProgressFunc progress,
              void *progress_arg);
/* Same, naming input_field ("inputs[0].uri", may be NULL) when reading the
 * source data fails (a truncated or corrupt file is bad input). */
int cog_write_from(GDALDatasetH src, const cJSON *params, const char *path, const char *input_field,
                   GDALProgressFunc progress, void *progress_arg);

/* Sets the error after a GDAL processing step failed that read input data
 * (input_field, may be NULL) and wrote out_path in scratch, and returns -1.
 * Classifies from GDAL's last error: out of memory and a full scratch disk
 * are Transient, HTTP/S3 trouble is Transient, anything else is bad input
 * data (InputInvalid). what says which step ("writing the COG"). */
int cog_gdal_fail(const char *input_field, const char *out_path, const char *what);

#endif
