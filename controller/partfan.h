/*
 * partfan.h - the decision for a partitioned asset (spec.partitions): which
 * partition pods to start, which finished ones to record and collect, and
 * the status with its compact partition record (partstate.h).
 *
 * Level-triggered like reconcile.h: everything is derived from the object's
 * status and the pods that exist, so a restarted controller continues where
 * the last one stopped. A finished pod is recorded in the status first and
 * deleted only by a later decision that sees it recorded, so a kill between
 * the two loses nothing; pod names are deterministic per (asset, asset data
 * version, partition key, attempt), so a create repeated after a kill is an
 * AlreadyExists, never a duplicate.
 *
 * Backfill: partitions start in index order (oldest window first), at most
 * spec.maxParallel running at once and at most PARTFAN_CREATES_MAX started
 * per decision; a failed partition is recorded and the others go on; a
 * transient failure retries the partition (attempt + 1) up to
 * spec.retries.limit; the annotation terrane.io/rerun-failed (any new value)
 * runs the failed partitions again. An OOMKilled attempt retries on its
 * pool's oomEscalation, for that partition alone.
 *
 * Covered here: time and static dimensions with external inputs (URI
 * templates), unpartitioned upstreams, per-partition inputs (partmap.h:
 * templated from: names, Identity or LastN from a partitioned upstream,
 * a LastN input expanded to one task input per window), whose changes
 * re-run only the partitions they feed; tiles with the probe and
 * the assembly of parttiles.h (each task carries its partition object).
 *
 * Pure: any thread. jansson rule: inputs borrowed, the plan owns its
 * objects.
 */
#ifndef TERRANE_PARTFAN_H
#define TERRANE_PARTFAN_H

#include "reconcile.h"

#define PARTFAN_CREATES_MAX 64
#define PARTFAN_A_RERUN "terrane.io/rerun-failed"
/* On a partition pod: the partition's data version (its task's). */
#define PARTFAN_A_DATA_VERSION "terrane.io/partition-data-version"

typedef struct {
    json_t *status;   /* new status, or NULL when unchanged */
    json_t **creates; /* pods to create, in partition order */
    size_t n_creates;
    reconcile_delete *deletes; /* pods to delete after the status is written */
    size_t n_deletes;
    long requeue_after_s;
    const char *outcome;
} partfan_plan;

/* true when in's spec has partitions: the decision is partfan_decide's. */
bool partfan_applies(const reconcile_input *in);
/* 0 with *out filled; CERR_NOMEM. */
int partfan_decide(const reconcile_config *cfg, const reconcile_input *in, partfan_plan *out);
void partfan_plan_clear(partfan_plan *p);
/* Adds a pod to create (the plan takes the reference, also on failure) or
 * one to delete (copied). 0 or CERR_NOMEM. */
int partfan_add_create(partfan_plan *p, json_t *pod);
int partfan_add_delete(partfan_plan *p, const json_t *pod, const char *why);

/* A finished, failed pod of a partitioned asset (a partition's, or the tile
 * flow's probe or assembly, parttiles.h), read once for both. */
typedef struct {
    long long attempt;   /* its attempt annotation, at least 1 */
    long long exit_code; /* -1 without a termination record */
    bool last;           /* no attempt follows: exit 65 (bad input), or the
                            retries are spent; a disrupted pod always retries */
} partfan_attempt_info;

/* Fills *out for pod (base: attempts before the current run, see rerun;
 * retry_limit: spec.retries.limit) and, in cause, the worker's error message,
 * else the container's termination reason, else "" (the caller's words). */
void partfan_attempt(const json_t *pod, int base, int retry_limit, partfan_attempt_info *out,
                     char *cause, size_t size);

#endif
