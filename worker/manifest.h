/*
 * manifest.h - the lineage manifest, written last for each data version.
 *
 *   {"apiVersion":"terrane.io/v1","kind":"Manifest","namespace","assetKey",
 *    "dataVersion","operation","params","inputs":[{name,uri,assetKey,dataVersion}],
 *    "files":[{name,uri,checksum,sizeBytes,mediaType,etag}],"stacItem",
 *    "worker":{"version","gdalVersion"},"createdAt"}
 *
 * Its presence at <prefix>/manifest.json is what makes a publication
 * complete; publish_lookup reads it back to answer a repeated task from
 * cache. The manifest is read from storage someone else may write to, so
 * manifest_parse checks every field it uses and caps every length.
 * cJSON values returned through **out belong to the caller (cJSON_Delete).
 */
#ifndef TERRANE_MANIFEST_H
#define TERRANE_MANIFEST_H

#include "stac.h"
#include "task.h"

#include <cJSON.h>

#define MANIFEST_KIND "Manifest"
/* Largest manifest publish_lookup reads: a few inputs and four files take
 * a few KiB; anything near this is not ours. */
#define MANIFEST_MAX_BYTES (1u << 20)

/* Builds the manifest for files (files[0] primary). */
int manifest_build(const task *t, const stac_file *files, size_t n_files, const char *stac_href,
                   const char *created, cJSON **out);

/* The primary file of a parsed manifest. */
typedef struct manifest_primary {
    char name[256];
    char uri[1024];
    char checksum[72];
    unsigned long long size;
    char media_type[96];
    char etag[128]; /* "" when the manifest has none */
    char stac_item[1024];
} manifest_primary;

/* Parses len bytes read from where (a URI, for messages), checks that it
 * describes t's asset key and data version, and fills *p from files[0].
 * Returns 0, or -1 with the error set (class Internal, code OutputFailed:
 * a manifest we cannot trust is treated as absent by the caller). */
int manifest_parse(const task *t, const char *json, size_t len, const char *where,
                   manifest_primary *p);

#endif
