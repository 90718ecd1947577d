/*
 * ratelimit.h - rate limiters: per-key exponential backoff and a token
 * bucket, and the two combined as the work queue's default limiter.
 *
 * Semantics follow client-go's workqueue limiters, which operators know:
 *  - backoff (ItemExponentialFailureRateLimiter): the nth failure of a key
 *    waits base * 2^(n-1), capped at max; forget resets the key.
 *  - bucket (golang.org/x/time/rate as BucketRateLimiter uses it): tokens
 *    refill at qps per second up to burst; each request takes one and may
 *    drive the balance negative, so waiting requests queue up in order.
 *  - ratelimit (DefaultControllerRateLimiter, a MaxOfRateLimiter): the
 *    longer of the two delays; defaults 5 ms / 1000 s / 10 qps / burst 100.
 * The bucket alone is also the Kubernetes client's QPS/burst limiter
 * (ratelimit_bucket_wait before each request).
 *
 * All handles are thread-safe (each has its own mutex). Times are
 * nanoseconds on CLOCK_MONOTONIC; the *_at variants take "now" explicitly
 * so tests need no sleeping. Keys are copied.
 */
#ifndef KUBE_RATELIMIT_H
#define KUBE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define RATELIMIT_MS (1000000ull)
#define RATELIMIT_S (1000000000ull)
#define RATELIMIT_DEFAULT_BASE (5 * RATELIMIT_MS)
#define RATELIMIT_DEFAULT_MAX (1000 * RATELIMIT_S)
#define RATELIMIT_DEFAULT_QPS 10.0
#define RATELIMIT_DEFAULT_BURST 100u

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t ratelimit_now(void);

/* --- per-key exponential backoff ------------------------------------------ */
typedef struct ratelimit_backoff ratelimit_backoff;

/* NULL when out of memory. base_ns and max_ns must be > 0. */
ratelimit_backoff *ratelimit_backoff_new(uint64_t base_ns, uint64_t max_ns);
void ratelimit_backoff_free(ratelimit_backoff *b);
/* Records one more failure of key and stores in *delay_ns how long to wait
 * before retrying it. 0, or CERR_NOMEM (then *delay_ns is max_ns, the safe
 * answer). */
int ratelimit_backoff_when(ratelimit_backoff *b, const char *key, uint64_t *delay_ns);
void ratelimit_backoff_forget(ratelimit_backoff *b, const char *key);
unsigned ratelimit_backoff_failures(ratelimit_backoff *b, const char *key);

/* --- token bucket ------------------------------------------------------------ */
typedef struct ratelimit_bucket ratelimit_bucket;

/* qps > 0, burst >= 1; the bucket starts full. NULL on bad arguments or
 * out of memory. */
ratelimit_bucket *ratelimit_bucket_new(double qps, unsigned burst);
void ratelimit_bucket_free(ratelimit_bucket *b);
/* Takes one token (possibly borrowed from the future) and returns how long
 * the caller must wait before using it: 0 when one was available. */
uint64_t ratelimit_bucket_reserve_at(ratelimit_bucket *b, uint64_t now_ns);
uint64_t ratelimit_bucket_reserve(ratelimit_bucket *b);
/* Takes a token only if one is available now. */
bool ratelimit_bucket_try_at(ratelimit_bucket *b, uint64_t now_ns);
/* Reserves a token and sleeps until it may be used (the client-side QPS
 * limit before each API request). */
void ratelimit_bucket_wait(ratelimit_bucket *b);

/* --- combined limiter (the work queue's) -------------------------------------- */
typedef struct ratelimit ratelimit;

/* qps <= 0 disables the bucket. NULL when out of memory. */
ratelimit *ratelimit_new(uint64_t base_ns, uint64_t max_ns, double qps, unsigned burst);
/* 5 ms, 1000 s, 10 qps, burst 100. */
ratelimit *ratelimit_new_default(void);
void ratelimit_free(ratelimit *r);
/* max(backoff delay of key, bucket delay). 0 or CERR_NOMEM (then *delay_ns
 * is still a usable delay). */
int ratelimit_when_at(ratelimit *r, const char *key, uint64_t now_ns, uint64_t *delay_ns);
int ratelimit_when(ratelimit *r, const char *key, uint64_t *delay_ns);
void ratelimit_forget(ratelimit *r, const char *key);
unsigned ratelimit_num_requeues(ratelimit *r, const char *key);

#endif
