/*
 * partstate.h - the compact partition record of an asset's status
 * (status.partitions), read back on every reconcile so that a restarted
 * controller continues where the last one stopped.
 *
 * What is stored is of constant size whatever the partition count:
 *   total, summary ("n/m"), pending, running, succeeded, failed (counts);
 *   materialized: [{dataVersion, ranges}] for the current asset data
 *     version and the one before (ranges: partrange.h text or bitmap);
 *   failedRanges: the failed partition indices (a rerun annotation clears
 *     them); failures: the first PARTSTATE_FAILURES_MAX failed partitions
 *     in index order, each {key, index, attempts, message <= 256 bytes}.
 * Worst case at 100,000 partitions: two bitmaps and the failed bitmap of
 * 16,668 bytes each plus the failures, under 56 KB (tested).
 *
 * What is not stored is derived: running partitions are the pods that exist
 * (the pod index in caches.c counts them per state), a partition's data
 * version is H(asset dv, key) (partition.h). Memory: the run lists (16 bytes
 * per run) and the failure list; nothing per partition.
 *
 * Not thread-safe; one reconcile owns one partstate. jansson rule:
 * partstate_load borrows, partstate_json returns a new reference.
 */
#ifndef TERRANE_PARTSTATE_H
#define TERRANE_PARTSTATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define PARTSTATE_FAILURES_MAX 16
#define PARTSTATE_MESSAGE_MAX 256

typedef struct partstate partstate;

partstate *partstate_new(void);
void partstate_free(partstate *ps);
/* Reads status.partitions (may be NULL) for asset data version dv: the
 * ranges recorded for dv become the materialized set, the ones of another
 * version are kept as the previous version's. A malformed record is
 * dropped (logged by the caller from the thread's error) and rebuilt:
 * CERR_INVALID, ps is then empty for dv and still usable. */
int partstate_load(partstate *ps, const json_t *partitions, const char *dv);
/* Counts the caller derives each reconcile. */
void partstate_set_total(partstate *ps, uint64_t total);
void partstate_set_running(partstate *ps, uint64_t running);
/* Partition index materialized at the current data version (its failure,
 * if any, is cleared). 0 or CERR_NOMEM. */
int partstate_succeeded(partstate *ps, uint64_t index);
/* Partition index failed for good (bad input or retries exhausted). */
int partstate_failed(partstate *ps, uint64_t index, const char *key, int attempts,
                     const char *message);
/* Partition index is neither materialized nor failed any more (its
 * inputs changed, partmap.h). */
void partstate_forget(partstate *ps, uint64_t index);
/* Forgets every failure (the rerun-failed annotation). */
void partstate_clear_failed(partstate *ps);
bool partstate_is_done(const partstate *ps, uint64_t index);
bool partstate_is_failed(const partstate *ps, uint64_t index);
uint64_t partstate_done_count(const partstate *ps);
uint64_t partstate_failed_count(const partstate *ps);
/* The smallest index >= from neither materialized nor failed: the next one
 * to start in backfill order. */
uint64_t partstate_next(const partstate *ps, uint64_t from);
/* status.partitions. NULL on allocation failure. */
json_t *partstate_json(const partstate *ps);

#endif
