/*
 * srccheck.h - reading exactly the version of a source that was observed.
 *
 * An input of a task may carry what an observation saw of it
 * (inputs[i].observed: etag, versionId, lastModified, sizeBytes). The data
 * version of the task was computed from that observation, so the worker
 * must not publish an output made from other bytes. GDAL 3.6's /vsis3/ can
 * neither send If-Match nor read a versionId, so the object is checked with
 * a HEAD before it is opened (input.c calls srccheck_input) and again after
 * the operation has read everything (main.c calls srccheck_all): an object
 * replaced in between, during or before the read fails the task with
 * SourceChanged, class Transient (exit 75), and the asset waits for the next
 * observation instead of publishing under the wrong data version.
 */
#ifndef TERRANE_SRCCHECK_H
#define TERRANE_SRCCHECK_H

#include "task.h"

/* Checks one input; 0 when it has no observed version or still matches.
 * Errors name "inputs[i].uri": SourceChanged (Transient) for a different
 * or removed object, SourceAccessDenied (BadInput) for 401/403,
 * SourceUnavailable (Transient) for 429/5xx after retries. */
int srccheck_input(const task *t, const task_input *in);
/* srccheck_input for every input, in order; stops at the first failure. */
int srccheck_all(const task *t);
/* True when some input carries an observed version. */
bool srccheck_needed(const task *t);

#endif
