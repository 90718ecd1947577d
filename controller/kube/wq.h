/*
 * wq.h - the deduplicating, rate-limited work queue between informers and
 * reconcile workers (client-go's workqueue semantics).
 *
 * Keys are strings, normally "namespace/name". A key is in the queue at most
 * once however often it is added (dirty set). A key being processed is never
 * handed to a second worker: adding it again marks it dirty, and wq_done
 * puts it back in the queue (processing set), so a change that arrives
 * during a reconcile is never lost and never reconciled concurrently.
 * wq_add_after delays an add (a timer heap, earliest deadline first; a key
 * already waiting keeps the earlier deadline); wq_add_rate_limited delays it
 * by the queue's ratelimit (per-key exponential backoff 5 ms .. 1000 s and
 * an overall 10 qps / burst 100 bucket by default); wq_forget resets the
 * key's backoff once it succeeds.
 *
 * Threads: any thread may add; reconcile workers block in wq_get. The queue
 * has no thread of its own: delayed keys are moved to the queue by whichever
 * thread next calls into it, and a worker blocked in wq_get sleeps until
 * the earliest deadline. After wq_shut_down adds are ignored, delayed keys
 * are dropped, and wq_get keeps handing out the keys still queued and then
 * returns CERR_SHUTDOWN to every caller (waking blocked ones).
 *
 * Metrics (for Prometheus later): wq_stats_get returns the gauges and
 * counters of client-go's workqueue metrics (depth, adds, retries, sums and
 * counts of queue latency and work duration, unfinished work, longest
 * running processor), and wq_set_observer installs a hook receiving each
 * queue-latency and work-duration observation, for histograms.
 */
#ifndef KUBE_WQ_H
#define KUBE_WQ_H

#include "kube/ratelimit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wq wq;

typedef enum {
    WQ_QUEUE_LATENCY, /* seconds from add (or deadline) to wq_get */
    WQ_WORK_DURATION, /* seconds from wq_get to wq_done */
} wq_metric;

/* Called without the queue's lock held, on the thread of wq_get / wq_done. */
typedef void (*wq_observe_fn)(void *ctx, wq_metric metric, double seconds);

typedef struct {
    size_t depth;      /* keys ready in the queue */
    size_t waiting;    /* keys delayed by add_after / add_rate_limited */
    size_t processing; /* keys handed out and not done */
    uint64_t adds;     /* adds that were not duplicates */
    uint64_t retries;  /* wq_add_rate_limited calls */
    uint64_t latency_count;
    double latency_sum; /* seconds */
    uint64_t work_count;
    double work_sum;        /* seconds */
    double unfinished_work; /* seconds of work in progress, summed */
    double longest_running; /* seconds the oldest in-progress key has run */
} wq_stats;

/* name labels the metrics ("assetmaterialization"; copied). rl is taken
 * over by the queue, also on failure; NULL selects ratelimit_new_default().
 * NULL when out of memory. */
wq *wq_new(const char *name, ratelimit *rl);
/* Only when no thread uses the queue any more. NULL is a no-op. */
void wq_free(wq *q);
const char *wq_name(const wq *q);

/* 0, or CERR_NOMEM. After shut down the key is dropped and 0 returned. */
int wq_add(wq *q, const char *key);
int wq_add_after(wq *q, const char *key, uint64_t delay_ns);
/* Counts a retry and adds the key after the rate limiter's delay. */
int wq_add_rate_limited(wq *q, const char *key);
void wq_forget(wq *q, const char *key);
unsigned wq_num_requeues(wq *q, const char *key);

/* Blocks until a key is ready or the queue is shut down and empty. 0 with
 * *key set, or CERR_SHUTDOWN. *key is borrowed from the queue and stays
 * valid until the caller passes it to wq_done; copy it to keep it longer. */
int wq_get(wq *q, const char **key);
/* Ends processing of key: re-queues it if it was added meanwhile. 0, or
 * CERR_NOTFOUND when key was not being processed. */
int wq_done(wq *q, const char *key);

void wq_shut_down(wq *q);
/* Shuts down, then waits until no key is being processed any more. */
void wq_shut_down_with_drain(wq *q);
bool wq_shutting_down(wq *q);

/* Keys ready in the queue (the depth gauge). */
size_t wq_len(wq *q);
void wq_set_observer(wq *q, wq_observe_fn fn, void *ctx);
void wq_stats_get(wq *q, wq_stats *out);

#endif
