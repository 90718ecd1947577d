/*
 * publish.h - content-addressed, atomic publishing of an operation's files.
 *
 * Layout: <output.uri>/<namespace>/<assetKey>/<dataVersion hex>/
 *   asset.tif (or the op's files), item.json (STAC Item), manifest.json.
 * Each file is read once from scratch, SHA-256 hashed while it is uploaded
 * (S3 through GDAL's /vsis3/, or a local directory written via a temporary
 * name and renamed); then the STAC Item; the manifest last, so a manifest's
 * presence means the asset is complete. On any failure everything written
 * so far for this data version is removed again.
 */
#ifndef TERRANE_PUBLISH_H
#define TERRANE_PUBLISH_H

#include "hash.h"
#include "op.h"
#include "result.h"
#include "task.h"

#include <stdbool.h>

/* Looks for a complete earlier publication of t's data version: the
 * manifest exists and its checksum matches the primary object's. On a hit
 * fills r's output fields and sets *hit. Errors only on I/O failure other
 * than "not found". */
int publish_lookup(const task *t, result *r, bool *hit);
/* Publishes files (files->files[0] is the primary output). Fills r. */
int publish(const task *t, const op_result *files, result *r);

/* ---- many files: the container operation's outputs (outputs.h) ---------
 * The same destinations, upload path and S3 error handling as publish(),
 * one file at a time, so a caller can publish any number of files with
 * bounded memory and decide itself what the Item and manifest say. */
typedef struct publish_dest publish_dest;

/* Opens t's data-version prefix for writing. *out is the caller's
 * (publish_dest_close). */
int publish_dest_open(const task *t, publish_dest **out);
/* The prefix's URI (borrowed): <output.uri>/<namespace>/<assetKey>/<hex>. */
const char *publish_dest_uri(const publish_dest *d);
/* Publishes the local file at path as name ('/'-separated, checked by the
 * caller) below the prefix, hashed in the same pass. Fills checksum, *size
 * and etag (S3's ETag, "" when unknown or local). */
int publish_dest_put_file(publish_dest *d, const task *t, const char *path, const char *name,
                          const char *media_type, char checksum[HASH_MULTIHASH_LEN],
                          unsigned long long *size, char *etag, size_t etag_cap);
/* Removes name below the prefix again, after a failure; logs, never fails. */
void publish_dest_remove(publish_dest *d, const char *name);
void publish_dest_close(publish_dest *d);

#endif
