/*
 * partall.h - an unpartitioned asset reading every partition of a
 * partitioned upstream (partitionMapping AllToOne, partmap.h): a mosaic of
 * every tile, a yearly statistic over daily partitions, a STAC Collection of
 * a daily asset (operation collection).
 *
 * reconcile.c asks here, input by input, before its usual upstream check:
 *   - such an input is ready once every partition existing now is
 *     materialized at its current version (a failed or re-running one
 *     keeps the asset Waiting, with the partition named in the message);
 *   - its data version is the fold of every partition's version, so one
 *     changed day is one new version of the reader and one run, whatever
 *     the count;
 *   - its task input is replaced by one input per partition, oldest first,
 *     named <input>_<key>; a task larger than a worker accepts
 *     (TERRANE_TASK_MAX) is refused with the count and size;
 *   - its lineage entry names the upstream (from, assetKey) with the folded
 *     version and the partition count.
 * Any other mapping on a partitioned upstream is an invalid spec for an
 * unpartitioned asset, said in the status.
 *
 * One partall lives for one decision (reconcile.c's rctx); not
 * thread-safe. Strings are borrowed from the decision's objects or held
 * here.
 */
#ifndef TERRANE_PARTALL_H
#define TERRANE_PARTALL_H

#include "reconcile.h"
#include "taskdoc.h"

#include <jansson.h>
#include <stddef.h>

typedef struct partall partall;

typedef enum { PARTALL_NO, PARTALL_READY, PARTALL_WAIT, PARTALL_INVALID } partall_state;

void partall_free(partall *pa);

/* Input i of in's spec, with upstream up: PARTALL_NO when it is not read
 * AllToOne (decided as any upstream), else whether it is ready, waits or
 * is refused (msg says why). *pa is created on first need. Negative:
 * CERR_NOMEM. */
int partall_check(partall **pa, const reconcile_input *in, size_t i, const json_t *up, char *msg,
                  size_t size);

/* For a ready AllToOne input i: its folded data version in out, no uri,
 * Item or checksum (the task gets the partitions). Others untouched. */
void partall_resolved(const partall *pa, size_t i, taskdoc_input *out);

/* Expands each ready AllToOne input of task (built from spec, inputs in
 * spec order). 0; CERR_INVALID with the message set (a name, the task's
 * size); CERR_NOMEM. */
int partall_expand(const partall *pa, const am_spec *spec, json_t *task);

/* Adds "partitions": count to lineage entry e of input i when AllToOne. 0
 * or CERR_NOMEM. */
int partall_lineage(const partall *pa, size_t i, json_t *e);

#endif
