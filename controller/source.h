/*
 * source.h - the AssetSource state machine, as a pure decision (like
 * reconcile.h for AssetMaterializations): one source, its observation
 * pods as the cache holds them, its schedule's time zone and the time in;
 * a plan out. No I/O; sourceexec.c gathers and applies. The contract it
 * implements is proto/README.md, "Sources".
 *
 * Observations are numbered: status.observation is the current or last
 * one, status.finishedObservation the last one whose outcome is in the
 * status. Starting observation N+1 is a status write (observation = N+1)
 * *followed* by the creation of pod <name>-obs-<N+1>, so the plan's
 * status must be written before its pod is created; a controller killed
 * in between finds observation > finishedObservation and creates the same
 * pod name again (AlreadyExists: adopted), so no observation ever has two
 * pods.
 */
/* clang-format off */
/*
 *  situation                                   action
 *  ------------------------------------------  ----------------------------------------------
 *  source gone or being deleted                delete its active pods
 *  pod owned by another source of that name    delete it
 *  observation in flight, pod not in cache     create it again (same name)
 *  observation in flight, pod active           wait for its events
 *  observation in flight, pod finished         record: Succeeded (data version, counts, object,
 *                                                Observed, Available, SourceChanged Event),
 *                                                SourceNotFound/SourceAccessDenied/other BadInput
 *                                                (Available=False), transient (Observed=False,
 *                                                backoff); nextObservationAt
 *  idle: first, new generation, new            observation N+1: status, then pod
 *    terrane.io/rerun value, or due
 *  idle, not due                               requeue at nextObservationAt
 *  schedule or time zone invalid               Observed=False InvalidSchedule; nothing runs
 *  spec.freshness                              Fresh (NotChanged / NotObserved / Fresh),
 *                                                NotFresh Event on the way down, requeue
 *  finished pods of recorded observations      deleted pod_gc_delay after they finished
 */
/* clang-format on */
#ifndef TERRANE_SOURCE_H
#define TERRANE_SOURCE_H

#include "cron.h"
#include "reconcile.h"

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

#define SOURCE_KIND "AssetSource"
#define SOURCE_L_SOURCE "terrane.io/source"
#define SOURCE_A_OBSERVATION "terrane.io/observation"
/* Work-queue keys of sources: "src:namespace/name" (a namespace has no ':'). */
#define SOURCE_KEY_PREFIX "src:"

#define COND_AVAILABLE "Available"
#define COND_OBSERVED "Observed"
#define COND_FRESH "Fresh"

typedef struct {
    const char *namespace_, *name; /* the key, also when src is NULL */
    const json_t *src;             /* NULL: gone */
    const json_t *const *pods;     /* labelled terrane.io/source for this name */
    size_t n_pods;
    const cron_zone *zone;  /* spec.observe.timeZone, NULL: UTC */
    const char *zone_error; /* the time zone could not be loaded, or NULL */
    time_t now;
} source_input;

typedef struct {
    json_t *status; /* write first; NULL when unchanged */
    json_t *create; /* then create this pod, or NULL */
    reconcile_delete *deletes;
    size_t n_deletes;
    reconcile_event *events; /* record after the status is written */
    size_t n_events;
    long requeue_after_s;
    const char *outcome; /* for logs */
    /* Metrics, counted once the status is written: an observation's
     * outcome ("succeeded" or the error code), its duration, a change. */
    const char *observed;
    double observed_seconds;
    bool changed;
} source_plan;

/* Uses cfg's pools, result schema, pod configuration and GC delay. 0, or
 * CERR_NOMEM (the plan is then empty). */
int source_decide(const reconcile_config *cfg, const source_input *in, source_plan *out);
void source_plan_clear(source_plan *p);

/* The pod name of observation n (at most PODSPEC_NAME_MAX + 1 bytes). */
void source_pod_name(const char *name, long long n, char *out, size_t size);
/* The observation's task data version: sha256("observe\0" uid "\0" n). */
int source_observation_dv(const char *uid, long long n, char out[72]);

#endif
