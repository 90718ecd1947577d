/*
 * srcchange.h - a worker's SourceChanged handled as news, not as a
 * failure. The worker checks that every observed input still is the
 * version its observation recorded (worker/srccheck.h) and fails with
 * SourceChanged (Transient, 75) when the bytes changed in between. A
 * retry cannot help (the task names the old version), and waiting for the
 * source's schedule is slow: the materialization asks for an observation
 * of that source at once (annotation terrane.io/observe = the failed
 * pod's name, a value that acts once) and waits, Waiting with
 * UpstreamReady=False reason SourceChanged, without spending its retry
 * budget. The observation's new data version gives the asset a new data
 * version and a first attempt. When the observation finds the same
 * version after all (the object was put back), the failure is an ordinary
 * transient one: counted, with backoff (so nothing loops).
 *
 * What the materialization waits for is kept in its status as
 * status.sourceChanged {pod, source, observation}: the failed pod, the
 * source, and the source's status.observation when it was asked; an
 * observation numbered higher has started since, so once it is finished
 * (finishedObservation) the answer is in. A controller killed between
 * the status write and the annotation asks again (same value).
 *
 * Pure, except srcchange_request (one API call). Strings are borrowed.
 */
#ifndef TERRANE_SRCCHANGE_H
#define TERRANE_SRCCHANGE_H

#include "kube/kube.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SRCCHANGE_ANNOTATION "terrane.io/observe"
#define SRCCHANGE_TOKEN "observeToken"   /* AssetSource status: the value acted on */
#define SRCCHANGE_STATUS "sourceChanged" /* AssetMaterialization status record */
#define SRCCHANGE_REASON "SourceChanged"

/* The AssetSource side: the annotation's value when it asks for an
 * observation (it differs from status.observeToken), else NULL. */
const char *srcchange_requested(const json_t *src, const json_t *status);

typedef enum {
    SRCCHANGE_NO,      /* not a SourceChanged of a source input: an ordinary failure */
    SRCCHANGE_OBSERVE, /* write the record, then ask the source (srcchange_request) */
    SRCCHANGE_WAIT,    /* its observation runs or is asked for: wait */
    SRCCHANGE_RETRY,   /* observed again since, same version: an ordinary failure */
} srcchange_step;

typedef struct {
    srcchange_step step;
    const json_t *source; /* the source read by the changed input */
    json_t *record;       /* OBSERVE/WAIT: the status.sourceChanged to keep (owned) */
    bool ask;             /* patch the source's annotation with the pod's name */
} srcchange_plan;

/* After pod (terminated, failed) of a materialization reported result:
 * when its error is SourceChanged for task input inputs[k] (error.field)
 * and ups[k] (the upstream of each input of the spec, NULL for none; the
 * task's inputs are the spec's, in order, so n_ups = 0 when some input
 * was expanded into several) is an AssetSource, what to do, given the
 * status's current record (NULL: none). The cached pod has no task to
 * look the input up in. 0, or CERR_NOMEM. */
int srcchange_decide(const json_t *pod, const json_t *result, const json_t *const *ups,
                     size_t n_ups, const json_t *record, srcchange_plan *out);
void srcchange_plan_clear(srcchange_plan *p);

/* Merge-patches terrane.io/observe=token onto the AssetSource ns/name.
 * 0 (also when it is gone), or the API's error. */
int srcchange_request(kube_client *client, const char *ns, const char *name, const char *token);

#endif
