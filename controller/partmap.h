/*
 * partmap.h - how a partitioned asset's partition reads its upstreams
 * (spec.inputs[].partitionMapping), and the partition data version that
 * follows from what it reads.
 *
 * Per-partition inputs, resolved for one partition key:
 *   - a templated from: ("raw-{date}", "dem-{key}"): the upstream named by
 *     the key (an AssetSource or an unpartitioned AssetMaterialization), so
 *     one day's source changing changes only that day's partition;
 *   - Identity from a partitioned AssetMaterialization partitioned the same
 *     way (equal spec.partitions): partition k reads the upstream's
 *     partition k (its asset.tif and item.json under the upstream
 *     partition's data version), as soon as that one is materialized.
 * Other inputs (external URIs, unpartitioned upstreams) are the same for
 * every partition and enter the asset's data version as before.
 *
 * Data version of a partition: H(asset dv, key) (partition.h) without
 * per-partition inputs, else that folded with each per-partition input's
 * name and data version in input order:
 *   v = part_data_version(asset dv, key);
 *   for each: v = part_data_version(part_data_version(v, name), input dv)
 * The upstream partition's own version is computed the same way from its
 * spec and status (recursively, at most PARTMAP_DEPTH_MAX upstreams deep),
 * so nothing per partition is stored anywhere.
 *
 * Change detection without per-partition state: each per-partition input
 * has a change time (a source's status.lastChangedAt; for an identity
 * upstream the latest change time of what feeds its partition). The status
 * records one watermark, status.partitions.inputsAsOf: a materialized
 * partition whose inputs changed after it is materialized again, and an
 * identity upstream's partition is ready only once the upstream's
 * watermark covers its change. Change times have one-second resolution;
 * an observation takes longer than that, so two changes of one source
 * never share a second.
 *
 * Pure; any thread. Strings in a partmap_input are borrowed from the
 * objects the lookup returned, or held in its buffers.
 */
#ifndef TERRANE_PARTMAP_H
#define TERRANE_PARTMAP_H

#include "dataversion.h"
#include "partition.h"

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

#define PARTMAP_DEPTH_MAX 16
#define PARTMAP_URI_MAX 2048
#define PARTMAP_WATERMARK "inputsAsOf"

/* Finds an AssetMaterialization or AssetSource of the namespace by name
 * (borrowed), NULL when there is none. */
typedef const json_t *(*partmap_find)(void *ctx, const char *name);

typedef struct {
    bool per_partition; /* false: the input is the same for every partition */
    const char *uri, *asset_key, *data_version, *stac_item;
    const json_t *observed;
    time_t changed_at; /* 0: unknown or never */
    char name[254];    /* the upstream's name, the template expanded */
    char dv[DV_LEN + 1];
    char uri_buf[PARTMAP_URI_MAX + 1], item_buf[PARTMAP_URI_MAX + 1];
} partmap_input;

/* true when from has a {placeholder}. */
bool partmap_is_template(const char *from);

/* true when input (a spec.inputs[] item) reads per partition given its
 * upstream up (the object from: names, NULL for a template or a missing
 * one). */
bool partmap_per_partition(const json_t *input, const json_t *up);

/* Resolves input for partition pi of an asset partitioned as partitions.
 * 0 ready (out filled), 1 not yet (why says what it waits for), 2 the
 * mapping is invalid (why says why: an identity upstream partitioned
 * differently, LastN or AllToOne on a partitioned asset), CERR_NOMEM. */
int partmap_resolve(partmap_find find, void *ctx, const json_t *partitions, const json_t *input,
                    const part_info *pi, partmap_input *out, char *why, size_t size);

/* The data version of partition key of an asset with data version
 * asset_dv, from its resolved inputs (those not per_partition are
 * skipped). 0; CERR_INVALID. */
int partmap_partition_dv(const char *asset_dv, const char *key, const json_t *inputs,
                         const partmap_input *ins, size_t n, char out[DV_LEN + 1]);

/* Calls each(ctx, name) for the names am's partitions may read through
 * from: as written, and templates expanded for every partition existing
 * at now (the executor gathers these and, for partitioned ones, their own
 * upstreams). Stops at the first non-zero return and returns it. */
int partmap_each_upstream(const json_t *am, time_t now, int (*each)(void *ctx, const char *name),
                          void *ctx);

/* The watermark of a status.partitions object, 0 when absent. */
time_t partmap_watermark(const json_t *partitions);

#endif
