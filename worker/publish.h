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

#endif
