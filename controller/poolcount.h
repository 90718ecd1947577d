/*
 * poolcount.h - partition pods running per node pool, over all assets: what
 * a pool's maxPartitionPods (pools.h) is checked against.
 *
 * Fed by the pod informer's events (caches.c): a pod counts while it has
 * the label terrane.io/partition, a terrane.io/pool label, no terminal phase
 * and no deletionTimestamp. Being informer-driven, the count lags the
 * creates of decisions in flight: concurrent decisions of several assets can
 * overshoot a cap by what they start before their pods are observed (each
 * decision bounds its own creates by the room it saw), and it settles as the
 * events arrive. At most POOLCOUNT_POOLS pool names are tracked (pool names
 * come from the configuration); a pool beyond them reads as 0.
 *
 * Thread-safe (one mutex): events on the informer's thread, reads from
 * the reconcile workers.
 */
#ifndef TERRANE_POOLCOUNT_H
#define TERRANE_POOLCOUNT_H

#include <jansson.h>

#define POOLCOUNT_POOLS 64

typedef struct poolcount poolcount;

poolcount *poolcount_new(void); /* NULL on allocation failure */
void poolcount_free(poolcount *pc);
/* A pod event: old is the pod before (NULL on add), obj after (NULL on
 * delete). */
void poolcount_observe(poolcount *pc, const json_t *old, const json_t *obj);
/* Partition pods counted on pool now. */
long poolcount_get(const poolcount *pc, const char *pool);

#endif
