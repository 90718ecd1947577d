/*
 * parttiles.h - the tile flow of a tiled asset (a tiles dimension in
 * spec.partitions): grid probe -> one pod per tile -> one assemble pod.
 *
 *   1. Probe. One pod runs operation grid on the asset's primary input with
 *      the tiles dimension as params; its result.grid is recorded in
 *      status.partitions.grid = {dataVersion, result} for the asset data
 *      version it was probed at. The grid enters the data version: the tiled
 *      asset's data version is H(asset data version, "grid:" digest), so a
 *      changed grid is a new version of every tile and of the assembly.
 *   2. Tiles. partfan.c fans the tiles out like any partition (maxParallel,
 *      retries, OOM escalation), the task carrying partition.tile. A
 *      succeeded tile pod is kept until the assembly is recorded: its
 *      termination message holds the tile's uri and checksum, which the
 *      assemble task needs and the status has no room for (4096 x 100 B).
 *      A tile recorded materialized whose pod is gone runs again (its
 *      output is the same data version: a cache hit).
 *   3. Assembly. Once every tile is materialized, one pod runs operation
 *      assemble over the tiles in row-major order; its output becomes
 *      status.output and status.partitions.assembled the data version it
 *      was assembled at. Then the tile pods are collected.
 *
 * Kill -9 safe: the probe and assemble pods are named like partitions
 * (part_pod_name with the pseudo-keys "grid" and "assemble", which no
 * partition key can be: tile keys are r<row>c<col>), so a create repeated
 * by a restarted controller is an AlreadyExists; everything else is read
 * back from the pods and the status.
 *
 * Only a tiles dimension on its own is assembled; tiles crossed with time or
 * static dimensions fan out but publish no single COG (one per combination
 * would be needed) and say so in the status message.
 *
 * Pure: any thread. jansson rule: inputs borrowed, outputs new references.
 */
#ifndef TERRANE_PARTTILES_H
#define TERRANE_PARTTILES_H

#include "dataversion.h"
#include "partfan.h"
#include "partition.h"
#include "partrange.h"
#include "pools.h"
#include "reconcile.h"
#include "spec.h"
#include "taskdoc.h"

#include <jansson.h>
#include <stdbool.h>

#define PARTTILES_A_ROLE "terrane.io/partition-role"
#define PARTTILES_ROLE_GRID "grid"
#define PARTTILES_ROLE_ASSEMBLE "assemble"
#define PARTTILES_ASSEMBLE_MAX 4096 /* inputs of one assemble task (proto/README.md) */

/* What a stage pod is built from (owned by the caller, borrowed). */
typedef struct {
    const reconcile_config *cfg;
    const reconcile_input *in;
    const am_spec *s;
    const taskdoc_input *ins; /* resolved inputs, parallel to s->inputs */
    const pool *pool;
} parttiles_ctx;

/* The role of a probe or assemble pod, or NULL for a partition's pod. */
const char *parttiles_role(const json_t *pod);

/* The grid task's params: the tiles dimension's tileSize, halo, origin,
 * cellSize. NULL when partitions has no tiles dimension or on OOM. */
json_t *parttiles_grid_params(const json_t *partitions);

/* The grid of a finished probe pod's result (its termination message).
 * 0 with *grid (new reference) and *g; CERR_INVALID with the message set
 * when the message has no usable grid (a CRS grid with offsets, which the
 * tile enumeration does not take, is one). */
int parttiles_grid_result(const json_t *pod, json_t **grid, part_grid *g);
/* A recorded grid (status.partitions.grid.result) into g: 0 or CERR_INVALID. */
int parttiles_grid_decode(const json_t *grid, part_grid *g);

/* The tiled asset data version H(dv, "grid:" digest of grid). 0 or
 * CERR_INVALID. */
int parttiles_tiled_dv(const char *dv, const json_t *grid, char out[DV_LEN + 1]);

/* A probe or assemble pod: operation op with params, inputs (a JSON array
 * of task inputs, or NULL for the asset's primary input), at data version
 * dv (whose 12 hex name the pod) and attempt. 0 with *out; CERR_NOMEM;
 * CERR_INVALID. */
int parttiles_stage_pod(const parttiles_ctx *c, const char *role, const json_t *params,
                        const json_t *inputs, const char *dv, int attempt, json_t **out);

/* The assemble task's params: the grid, collection, and the tiled
 * operation's COG options out of the asset's params. */
json_t *parttiles_assemble_params(const json_t *asset_params, const json_t *grid);

/* The assemble inputs from the succeeded tile pods of data version dv:
 * pods[i] with annotation terrane.io/partition-index. *inputs gets the
 * array in row-major order when every tile 0..total-1 has a usable pod;
 * otherwise *inputs is NULL and missing (a prange, caller's) the tiles
 * without one. 0; CERR_NOMEM. */
int parttiles_assemble_inputs(const json_t *const *pods, size_t n, const char *dv, uint64_t total,
                              json_t **inputs, prange *missing);

/* What a stage decided. */
typedef enum { PARTTILES_READY, PARTTILES_WAIT, PARTTILES_FAILED } parttiles_state;

/* Stage 1, the probe, for asset data version dv. The grid recorded in
 * old_grid (status.partitions.grid) for dv, or the probe pod's result, is
 * set on pp and *rec (new reference) is what status.partitions.grid holds
 * next; tiled_dv gets parttiles_tiled_dv. Otherwise the probe pod is
 * created, awaited or retried (plan) and msg says what happens. Probe pods
 * once recorded or superseded are deleted. 0 with *state; CERR_NOMEM. */
int parttiles_probe(const parttiles_ctx *c, const char *dv, const json_t *old_grid, part_plan *pp,
                    partfan_plan *plan, json_t **rec, char tiled_dv[DV_LEN + 1],
                    parttiles_state *state, char *msg, size_t size);

/* Stage 3, once every one of total tiles is materialized at tiled data
 * version dv. assembled is status.partitions.assembled from the last
 * decision. READY: the assembly is recorded (st.output set when it just
 * finished) and the tile and assemble pods are deleted. WAIT: the assemble
 * pod is created or running, or the tiles in rerun (caller's, filled here)
 * have lost their pods and must run again. FAILED: msg says why. 0 with
 * *state; CERR_NOMEM. */
int parttiles_assemble(const parttiles_ctx *c, const char *dv, const char *assembled,
                       const json_t *grid, uint64_t total, json_t *st, partfan_plan *plan,
                       prange *rerun, parttiles_state *state, char *msg, size_t size);

#endif
