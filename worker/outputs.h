/*
 * outputs.h - the last step of a container asset's pod: publishing /outputs.
 *
 *   terrane-worker publish-outputs [--task FILE] [--outputs DIR]
 *
 * Everything the user's code wrote below the outputs directory is published
 * under the task's data-version prefix, as the raster operations publish
 * (publish.h): content-addressed, a SHA-256 per file hashed while it is
 * uploaded, the manifest last. Files whose name ends in .tif/.tiff are
 * GeoTIFF rasters and are rewritten as COGs (cog.h) first. Each raster gets
 * a STAC Item: the primary output's is item.json and also lists the other
 * (non-raster) files as assets with their media types (at most
 * TERRANE_ITEM_ASSETS_MAX of them); further rasters get items/<name>.json.
 * An optional metadata.json object is merged into item.json's properties
 * (keys the Item already has win) and, compact and at most
 * TERRANE_METADATA_RESULT_MAX bytes, carried in the result.
 *
 * In a pod (selfpod.h) the digest the kubelet reported for the user's
 * container is read first and recorded as the manifest's "imageID" and the
 * Item's terrane:imageID; that read failing fails the step (Transient).
 *
 * Memory is bounded by the number of file names (they are sorted for a
 * deterministic order), not by their contents or the manifest: manifest
 * entries are spooled to scratch as the files are published. Hidden names
 * (a segment starting with '.') are skipped; symbolic links, devices and
 * other non-regular files are refused, so the step never publishes what the
 * user's code could not write itself. Main thread only.
 */
#ifndef TERRANE_OUTPUTS_H
#define TERRANE_OUTPUTS_H

#include "result.h"
#include "task.h"

/* The pod's container running the user's image (controller/podctr.h). */
#define OUTPUTS_USER_CONTAINER "user"

/* Publishes dir for t using scratch (a private directory) for COGs and
 * spools. Fills r (output fields, n_files, metadata). An empty dir fails
 * with NoOutputs (BadInput). */
int outputs_publish(const task *t, const char *dir, const char *scratch, result *r);

/* A media type for an output file name, by extension; never NULL
 * ("application/octet-stream" when unknown). */
const char *outputs_media_type(const char *name);
/* True when name ends in .tif or .tiff (any case). */
bool outputs_is_geotiff(const char *name);

#endif
