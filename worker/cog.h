/*
 * cog.h - the shared COG output options and writing a COG.
 *
 * All raster operations end in a Cloud Optimized GeoTIFF written with GDAL's
 * COG driver, so they share one set of options (proto/README.md):
 * compression, level, predictor, blockSize, overviewResampling, bigtiff,
 * nodata. Output is deterministic for identical input and options (no
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

/* Writes src as a COG at path using GDALTranslate with the options in params. */
int cog_write(GDALDatasetH src, const cJSON *params, const char *path, GDALProgressFunc progress,
              void *progress_arg);

#endif
