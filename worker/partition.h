/*
 * partition.h - the task's partition (proto/schema/task.v1.json
 * #/$defs/partition): its key, index, and the tile window or time window.
 *
 * partition_decode checks the object's shape and formats (no I/O);
 * partition_check_input checks, once the input is open, that the tile's full
 * size is the input's. partition_read_window gives the window an operation
 * reads: the core plus the halo, clipped to the raster. Strings are owned by
 * the partition (partition_free).
 */
#ifndef TERRANE_PARTITION_H
#define TERRANE_PARTITION_H

#include <cJSON.h>
#include <gdal.h>
#include <stdbool.h>

#define PARTITION_KEY_MAX 128

typedef struct partition_tile {
    int col, row;
    int xoff, yoff, xsize, ysize; /* the core, in the full raster */
    int halo;
    int width, height; /* the full raster */
} partition_tile;

typedef struct partition {
    char *key;
    long long index;
    bool has_tile;
    partition_tile tile;
    char *start, *end; /* time window, NULL when absent */
} partition;

/* A pixel window. */
typedef struct partition_window {
    int x, y, w, h;
} partition_window;

/* Decodes v (the task's "partition" member) into *out; errors name
 * partition.<field>. */
int partition_decode(const cJSON *v, partition *out);
/* True when key is a valid partition key (segments of [A-Za-z0-9._:-]
 * joined by '/', none empty, "." or "..", at most 128 characters). */
bool partition_key_valid(const char *key);
/* The tile's width/height must be the input's (field names the input). */
int partition_check_input(const partition_tile *t, int width, int height, const char *field);
/* The core window, and the core grown by halo pixels (clipped). */
partition_window partition_core(const partition_tile *t);
partition_window partition_read_window(const partition_tile *t, int halo);
/* gt shifted to the window's top-left pixel. */
void partition_window_gt(const double gt[6], partition_window w, double out[6]);
/* An in-memory VRT of src's core window (gdal_translate -srcwin), for
 * per-pixel operations; src must outlive *out (both GDALClose). */
int partition_open_core(GDALDatasetH src, const partition_tile *t, GDALDatasetH *out);
void partition_free(partition *p);

#endif
