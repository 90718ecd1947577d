/*
 * partmap.h - how an asset reads the partitions of a partitioned upstream
 * (spec.inputs[].partitionMapping), and the data version that follows from
 * what it reads.
 *
 * Per-partition inputs of a partitioned asset, resolved for one partition:
 *   - a templated from: ("raw-{date}", "dem-{key}"): the upstream named by
 *     the key (an AssetSource or an unpartitioned AssetMaterialization), so
 *     one day's source changing changes only that day's partition;
 *   - Identity from a partitioned AssetMaterialization partitioned the same
 *     way (equal spec.partitions): partition k reads the upstream's
 *     partition k (its asset.tif and item.json under the upstream
 *     partition's data version), as soon as that one is materialized;
 *   - LastN {count: N} from an upstream partitioned by one time dimension of
 *     the same cadence and timezone as the reader's: partition D reads the
 *     upstream's windows D-N+1 .. D (those that exist: the upstream's first
 *     windows read fewer), found by D's key, so the two may start apart.
 * An unpartitioned asset reads a partitioned upstream AllToOne (explicitly,
 * or by default unless the upstream is a tiles dimension alone, which is
 * assembled into one COG and read as that): every partition existing now,
 * at most PARTMAP_ALL_MAX, each materialized at its current version.
 * Other inputs (external URIs, unpartitioned upstreams) are the same for
 * every partition and enter the asset's data version as before.
 *
 * LastN and AllToOne read several upstream partitions through one input:
 * the task gets one input per upstream partition in partition order,
 * oldest first (partmap_expand_task): AllToOne names each <input>_<key>
 * (characters a name cannot hold as '_': days_2026_11_30), LastN names them
 * by lag, <input>_0 the reader's own window, <input>_1 the one before, so
 * one calc expression serves every partition. The input's data version
 * folds in every partition read:
 *   v = part_data_version(upstream dv, "AllToOne" | "LastN:<N>");
 *   for each read, oldest first: v = H(H(v, key), partition dv)
 * so one changed day changes it once, whatever the count.
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
 * has a change time (a source's status.lastChangedAt; for an upstream
 * partition the latest change time of what feeds it; for LastN the latest
 * of its windows'). The status records one watermark,
 * status.partitions.inputsAsOf: a materialized partition whose inputs
 * changed after it is materialized again, and an upstream's partition is
 * ready only once the upstream's watermark covers its change. Change times
 * have one-second resolution; an observation takes longer than that, so
 * two changes of one source never share a second.
 *
 * Pure; any thread. Strings in a partmap_input are borrowed from the
 * objects the lookup returned, or held in its buffers; the partitions of a
 * LastN or AllToOne read are its own (partmap_input_clear frees them, and a
 * partmap_input starts zeroed).
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
/* Partitions one AllToOne input reads. Each becomes a task input of some
 * 300 bytes, and the task travels in the pod's environment (at most
 * TERRANE_TASK_MAX, 128 KiB): a reader over the cap, or whose task would
 * be larger, fails with a status message saying so. */
#define PARTMAP_ALL_MAX 1024

/* Finds an AssetMaterialization or AssetSource of the namespace by name
 * (borrowed), NULL when there is none. */
typedef const json_t *(*partmap_find)(void *ctx, const char *name);

typedef enum { PARTMAP_ONE, PARTMAP_ALL, PARTMAP_LAST_N } partmap_kind;

/* One upstream partition a LastN or AllToOne input reads. */
typedef struct {
    char key[PART_KEY_MAX + 1];
    char dv[DV_LEN + 1]; /* the upstream partition's data version */
    char *uri, *item;    /* its asset and STAC Item (owned) */
} partmap_part;

typedef struct {
    bool per_partition;  /* false: the input is the same for every partition */
    partmap_kind kind;   /* ONE: uri (and stac_item) is what is read */
    partmap_part *parts; /* ALL, LAST_N: what is read, oldest first (owned) */
    size_t n_parts;
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

/* Frees the partitions out holds (it stays usable, zeroed). NULL is fine. */
void partmap_input_clear(partmap_input *in);

/* Resolves input for partition pi of an asset partitioned as partitions,
 * at now (out zeroed or used before). 0 ready (out filled), 1 not yet (why
 * says what it waits for), 2 the mapping is invalid (why says why: an
 * identity upstream partitioned differently, LastN across other cadences,
 * AllToOne on a partitioned asset), CERR_NOMEM. */
int partmap_resolve(partmap_find find, void *ctx, const json_t *partitions, const json_t *input,
                    const part_info *pi, time_t now, partmap_input *out, char *why, size_t size);

/* true when input, of an unpartitioned asset, reads every partition of up
 * (an AssetMaterialization with spec.partitions): its partitionMapping is
 * AllToOne, or it has none and up is not a tiles dimension alone (which is
 * assembled and read as its one COG). Any other partitionMapping on a
 * partitioned upstream is refused by partmap_resolve_all. */
bool partmap_reads_all(const json_t *input, const json_t *up);

/* Resolves such an input at now: 0 every partition of up is materialized
 * at its current version (out->parts, out->data_version the fold), 1 not
 * yet (why), 2 refused (why: over PARTMAP_ALL_MAX, another mapping),
 * CERR_NOMEM. */
int partmap_resolve_all(partmap_find find, void *ctx, const json_t *input, const json_t *up,
                        time_t now, partmap_input *out, char *why, size_t size);

/* Replaces the task input at index at (input m, named name) by one input
 * per partition m reads, named as above. 0; 2 a name is too long or taken
 * (why); CERR_NOMEM. An m of kind ONE leaves the task as it is. */
int partmap_expand_task(json_t *task, size_t at, const char *name, const partmap_input *m,
                        char *why, size_t size);

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
