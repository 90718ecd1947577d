/*
 * stac.h - the STAC Item (STAC 1.0.0) describing a published asset.
 *
 * One Item per data version, written next to the files as item.json. It
 * carries the footprint in EPSG:4326 (geometry, bbox), the projection
 * (v2.0.0: proj:code), file (v2.1.0), processing (v1.2.0) and raster
 * (v1.1.0) extensions, one STAC asset per published
 * file (href, type, roles, file:checksum, file:size) and lineage as
 * `derived_from` links to each input's own Item (or the input's URI for
 * external sources). Raster fields are read by opening the scratch copy of
 * each COG with GDAL; a GeoJSON output contributes its layer extent.
 *
 * The Item is metadata: its timestamps differ between runs, while the
 * published data files are byte-identical for a data version.
 * Main thread only (GDAL handles). cJSON values returned through **out
 * belong to the caller (cJSON_Delete).
 */
#ifndef TERRANE_STAC_H
#define TERRANE_STAC_H

#include "task.h"

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* One published file, as the Item and the manifest describe it. All
 * strings are borrowed. */
typedef struct stac_file {
    const char *name; /* object name under the data-version prefix */
    const char *href; /* final URI (s3://... or local path) */
    const char *media_type;
    const char *role;     /* STAC asset role, e.g. "data" */
    const char *checksum; /* multihash hex */
    unsigned long long size;
    const char *etag;       /* S3 ETag after upload, or NULL (local) */
    const char *local_path; /* scratch copy GDAL can open, or NULL */
    bool is_cog;
} stac_file;

#define STAC_VERSION "1.0.0"
#define STAC_MEDIA_ITEM "application/geo+json"
#define STAC_EXT_PROJECTION "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
#define STAC_EXT_FILE "https://stac-extensions.github.io/file/v2.1.0/schema.json"
#define STAC_EXT_PROCESSING "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
#define STAC_EXT_RASTER "https://stac-extensions.github.io/raster/v1.1.0/schema.json"

/* Builds the Item for files (files[0] is the primary output). self_href is
 * the Item's own URI; created an RFC 3339 UTC timestamp. */
int stac_item_build(const task *t, const stac_file *files, size_t n_files, const char *self_href,
                    const char *created, cJSON **out);

/* The Item id: the asset key with '/' turned into '-', then '-' and the
 * first 12 hex digits of the data version. Writes at most cap bytes. */
void stac_item_id(const task *t, char *buf, size_t cap);

/* A media type for a URI, by its extension ("image/tiff; application=geotiff"
 * for .tif); NULL when unknown. */
const char *stac_media_type_for_uri(const char *uri);

#endif
