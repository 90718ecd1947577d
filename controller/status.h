/*
 * status.h - building an AssetMaterialization's status, and reading what
 * the controller needs from a worker pod's status.
 *
 * The reconciler works on a copy of the current status and compares it
 * with the original before writing (no write when nothing changed, so a
 * reconcile of a settled object costs no API call and triggers no watch
 * event). Conditions follow metav1.Condition through kobj_cond_set:
 * lastTransitionTime only moves when the condition's status flips, and
 * every condition carries the generation it was computed for.
 *
 * Pod readers are lenient: a field of the wrong type reads as absent, since
 * pods come from the API server and the controller must not fail on a
 * surprising one. Strings are borrowed from the pod.
 *
 * Pure functions, any thread. jansson rule: parameters are borrowed;
 * setters copy what they store.
 */
#ifndef TERRANE_STATUS_H
#define TERRANE_STATUS_H

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

/* Phases (status.phase) */
#define PHASE_PENDING "Pending"
#define PHASE_WAITING "Waiting"
#define PHASE_RUNNING "Running"
#define PHASE_SUCCEEDED "Succeeded"
#define PHASE_FAILED "Failed"

/* Condition types */
#define COND_READY "Ready"
#define COND_UPSTREAM_READY "UpstreamReady"
#define COND_SCHEDULED "Scheduled"
#define COND_STALE "Stale"
/* True exactly when phase is Failed, with the same reason and message as
 * Ready: `kubectl wait --for=condition=Failed` ends on a failure, as it
 * does for a Job. */
#define COND_FAILED "Failed"

/* --- building the status -------------------------------------------------------- */

/* 0 or CERR_NOMEM (CERR_INVALID for a reason that is not CamelCase: a bug). */
int status_cond(json_t *st, const char *type, bool status, const char *reason, const char *message,
                long long generation, time_t now);
int status_set_str(json_t *st, const char *key, const char *value); /* NULL value deletes */
int status_set_int(json_t *st, const char *key, long long value);
int status_set_time(json_t *st, const char *key, time_t t);
/* The same for a decision that sets many fields and checks once: the
 * first failure sticks in *rc (later ones do not replace it); a NULL
 * message is "". reconcile.c and source.c name them cond/set_str/... */
void status_keep_cond(int *rc, json_t *st, const char *type, bool status, const char *reason,
                      const char *message, long long generation, time_t now);
void status_keep_str(int *rc, json_t *st, const char *key, const char *value);
void status_keep_int(int *rc, json_t *st, const char *key, long long value);
void status_keep_time(int *rc, json_t *st, const char *key, time_t t);
/* The same on a decision's context c with fields st (the status being
 * built), gen, rc and in->now (reconcile.c, source.c). */
#define STATUS_KEEP_COND(c, type, v, reason, msg)                                                  \
    status_keep_cond(&(c)->rc, (c)->st, type, v, reason, msg, (c)->gen, (c)->in->now)
#define STATUS_KEEP_STR(c, key, v) status_keep_str(&(c)->rc, (c)->st, key, v)
#define STATUS_KEEP_INT(c, key, v) status_keep_int(&(c)->rc, (c)->st, key, v)
#define STATUS_KEEP_TIME(c, key, t) status_keep_time(&(c)->rc, (c)->st, key, t)
const char *status_str(const json_t *st, const char *key);
long long status_int(const json_t *st, const char *key);
/* The reason of condition type, or "" when absent. */
const char *status_cond_reason(const json_t *st, const char *type);
bool status_cond_true(const json_t *st, const char *type);

/* --- worker pods ------------------------------------------------------------------- */

/* status.phase, "" when absent. */
const char *pod_phase(const json_t *pod);
bool pod_terminal(const json_t *pod);    /* Succeeded or Failed */
bool pod_active(const json_t *pod);      /* not terminal and not being deleted */
const char *pod_node(const json_t *pod); /* spec.nodeName or NULL */
/* The first container's state.terminated object, or NULL. */
const json_t *pod_terminated(const json_t *pod);
/* When the pod finished: terminated.finishedAt, else the Ready condition's
 * lastTransitionTime, else metadata.creationTimestamp; 0 when none parses. */
time_t pod_finished_at(const json_t *pod);
/* The PodScheduled=False message (e.g. "0/3 nodes are available: ..."), or
 * NULL when the pod is scheduled or has no such condition. */
const char *pod_unschedulable_message(const json_t *pod);
/* The first container's waiting reason and message (ImagePullBackOff, ...). */
const char *pod_waiting_reason(const json_t *pod, const char **message);
/* Preemption, eviction, node loss: condition DisruptionTarget=True, or
 * status.reason Preempted / Evicted / Shutdown / Terminated / NodeLost /
 * UnexpectedAdmissionError (the kubelet's reasons for pods it failed
 * without the container failing on its own). */
bool pod_disrupted(const json_t *pod, const char **why);
/* metadata.annotations[key] as a non-negative integer, or -1. */
long long pod_annotation_int(const json_t *pod, const char *key);

#endif
