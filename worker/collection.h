/*
 * collection.h - a STAC Collection (STAC 1.0.0) over the Items of a
 * partitioned asset's partitions: the tiles of an assembled asset, or the
 * days of a time-partitioned one.
 *
 * collection_write reads each input's Item (at most COLLECTION_ITEM_MAX
 * bytes, an untrusted document: collection_item_merge is fuzzed), unions
 * their bboxes and time ranges into the Collection's extent, links each
 * Item (rel "item", href its URI) and writes the Collection to path.
 * Main thread only (GDAL VSI). No ownership crosses this interface.
 */
#ifndef TERRANE_COLLECTION_H
#define TERRANE_COLLECTION_H

#include "task.h"

#include <stdbool.h>
#include <stddef.h>

#define COLLECTION_OBJ "collection.json"
#define COLLECTION_MEDIA "application/json"
#define COLLECTION_ITEM_MAX (1024 * 1024)

typedef struct collection_extent {
    bool has_bbox;
    double bbox[4];          /* west, south, east, north */
    char start[40], end[40]; /* RFC 3339; "" when none seen */
} collection_extent;

/* Merges one Item's bbox and datetime / start_datetime / end_datetime into
 * e. Errors (not JSON, no Feature, a malformed bbox) name field. */
int collection_item_merge(const char *json, size_t len, const char *field, collection_extent *e);
/* Builds the Collection of t's inputs' Items and writes it to path; title
 * NULL means the asset key. */
int collection_write(const task *t, const char *title, const char *path);

#endif
