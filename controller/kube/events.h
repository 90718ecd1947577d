/*
 * events.h - recording Kubernetes Events (core/v1) about objects.
 *
 * Events are sent by a background thread from a bounded queue, so a
 * reconcile never waits on them; when the queue is full, events are dropped
 * and counted. Repeats of the same (object, type, reason, message) within
 * ten minutes update the existing Event's count and lastTimestamp instead of
 * creating a new one, as the API conventions ask.
 */
#ifndef KUBE_EVENTS_H
#define KUBE_EVENTS_H

#include "kube/kube.h"

#include <jansson.h>

typedef struct event_recorder event_recorder;

/* component: "terrane-controller"; host: reporting instance. */
int events_new(kube_client *c, const char *component, const char *host, event_recorder **out);
/* type: "Normal" or "Warning"; reason CamelCase. obj is borrowed (its
 * apiVersion, kind, namespace, name, uid, resourceVersion are copied). */
void events_record(event_recorder *r, const json_t *obj, const char *type, const char *reason,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Flushes what is queued (bounded wait) and stops the thread. */
void events_free(event_recorder *r);
unsigned long events_dropped(event_recorder *r);

#endif
