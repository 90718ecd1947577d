/*
 * ratelimit.c - exponential backoff per key, token bucket, and their max.
 */
#include "kube/ratelimit.h"

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/strmap.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

uint64_t ratelimit_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * RATELIMIT_S + (uint64_t)ts.tv_nsec;
}

/* --- backoff ----------------------------------------------------------------- */

struct ratelimit_backoff {
    pthread_mutex_t mu;
    uint64_t base, max;
    strmap *failures; /* key -> (uintptr_t) failure count */
};

ratelimit_backoff *ratelimit_backoff_new(uint64_t base_ns, uint64_t max_ns)
{
    ratelimit_backoff *b = cmem_calloc(1, sizeof *b);
    if (!b) return NULL;
    b->failures = strmap_new(0);
    if (!b->failures) {
        cmem_free(b);
        return NULL;
    }
    pthread_mutex_init(&b->mu, NULL);
    b->base = base_ns ? base_ns : 1;
    b->max = max_ns >= b->base ? max_ns : b->base;
    return b;
}

void ratelimit_backoff_free(ratelimit_backoff *b)
{
    if (!b) return;
    strmap_free(b->failures);
    pthread_mutex_destroy(&b->mu);
    cmem_free(b);
}

/* base * 2^exp, saturating at max without overflowing. */
static uint64_t backoff_delay(uint64_t base, uint64_t max, uintptr_t exp)
{
    uint64_t d = base;
    for (uintptr_t i = 0; i < exp; i++) {
        if (d > max / 2) return max;
        d *= 2;
    }
    return d < max ? d : max;
}

int ratelimit_backoff_when(ratelimit_backoff *b, const char *key, uint64_t *delay_ns)
{
    pthread_mutex_lock(&b->mu);
    uintptr_t n = (uintptr_t)strmap_lookup(b->failures, key);
    int rc = strmap_put(b->failures, key, (void *)(n + 1));
    /* Without memory to record the failure, answer the cap: never a hot
     * retry loop. */
    *delay_ns = rc ? b->max : backoff_delay(b->base, b->max, n);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

void ratelimit_backoff_forget(ratelimit_backoff *b, const char *key)
{
    pthread_mutex_lock(&b->mu);
    strmap_remove(b->failures, key, NULL);
    pthread_mutex_unlock(&b->mu);
}

unsigned ratelimit_backoff_failures(ratelimit_backoff *b, const char *key)
{
    pthread_mutex_lock(&b->mu);
    uintptr_t n = (uintptr_t)strmap_lookup(b->failures, key);
    pthread_mutex_unlock(&b->mu);
    return n > UINT32_MAX ? UINT32_MAX : (unsigned)n;
}

/* --- token bucket ------------------------------------------------------------- */

struct ratelimit_bucket {
    pthread_mutex_t mu;
    double qps, burst;
    double tokens;    /* may be negative: reservations waiting for refills */
    uint64_t last_ns; /* time tokens was last brought up to date */
    bool started;
};

ratelimit_bucket *ratelimit_bucket_new(double qps, unsigned burst)
{
    if (!(qps > 0) || !isfinite(qps) || burst < 1) return NULL;
    ratelimit_bucket *b = cmem_calloc(1, sizeof *b);
    if (!b) return NULL;
    pthread_mutex_init(&b->mu, NULL);
    b->qps = qps;
    b->burst = burst;
    b->tokens = burst;
    return b;
}

void ratelimit_bucket_free(ratelimit_bucket *b)
{
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    cmem_free(b);
}

static void refill(ratelimit_bucket *b, uint64_t now)
{
    if (!b->started) {
        b->started = true;
        b->last_ns = now;
        return;
    }
    if (now <= b->last_ns) return; /* time never runs backwards for the bucket */
    b->tokens += (double)(now - b->last_ns) * b->qps / 1e9;
    if (b->tokens > b->burst) b->tokens = b->burst;
    b->last_ns = now;
}

uint64_t ratelimit_bucket_reserve_at(ratelimit_bucket *b, uint64_t now_ns)
{
    pthread_mutex_lock(&b->mu);
    refill(b, now_ns);
    b->tokens -= 1;
    uint64_t wait = 0;
    if (b->tokens < 0) {
        double ns = ceil(-b->tokens / b->qps * 1e9);
        wait = ns >= 1.8e19 ? UINT64_MAX : (uint64_t)ns;
    }
    pthread_mutex_unlock(&b->mu);
    return wait;
}

uint64_t ratelimit_bucket_reserve(ratelimit_bucket *b)
{
    return ratelimit_bucket_reserve_at(b, ratelimit_now());
}

bool ratelimit_bucket_try_at(ratelimit_bucket *b, uint64_t now_ns)
{
    pthread_mutex_lock(&b->mu);
    refill(b, now_ns);
    bool ok = b->tokens >= 1;
    if (ok) b->tokens -= 1;
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void ratelimit_bucket_wait(ratelimit_bucket *b)
{
    uint64_t wait = ratelimit_bucket_reserve(b);
    if (!wait) return;
    struct timespec ts = {.tv_sec = (time_t)(wait / RATELIMIT_S),
                          .tv_nsec = (long)(wait % RATELIMIT_S)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* --- combined ----------------------------------------------------------------- */

struct ratelimit {
    ratelimit_backoff *backoff;
    ratelimit_bucket *bucket; /* NULL: no overall limit */
};

ratelimit *ratelimit_new(uint64_t base_ns, uint64_t max_ns, double qps, unsigned burst)
{
    ratelimit *r = cmem_calloc(1, sizeof *r);
    if (!r) return NULL;
    r->backoff = ratelimit_backoff_new(base_ns, max_ns);
    if (!r->backoff) goto fail;
    if (qps > 0) {
        r->bucket = ratelimit_bucket_new(qps, burst ? burst : 1);
        if (!r->bucket) goto fail;
    }
    return r;
fail:
    ratelimit_free(r);
    return NULL;
}

ratelimit *ratelimit_new_default(void)
{
    return ratelimit_new(RATELIMIT_DEFAULT_BASE, RATELIMIT_DEFAULT_MAX, RATELIMIT_DEFAULT_QPS,
                         RATELIMIT_DEFAULT_BURST);
}

void ratelimit_free(ratelimit *r)
{
    if (!r) return;
    ratelimit_backoff_free(r->backoff);
    ratelimit_bucket_free(r->bucket);
    cmem_free(r);
}

int ratelimit_when_at(ratelimit *r, const char *key, uint64_t now_ns, uint64_t *delay_ns)
{
    int rc = ratelimit_backoff_when(r->backoff, key, delay_ns);
    if (r->bucket) {
        uint64_t d = ratelimit_bucket_reserve_at(r->bucket, now_ns);
        if (d > *delay_ns) *delay_ns = d;
    }
    return rc;
}

int ratelimit_when(ratelimit *r, const char *key, uint64_t *delay_ns)
{
    return ratelimit_when_at(r, key, ratelimit_now(), delay_ns);
}

void ratelimit_forget(ratelimit *r, const char *key)
{
    ratelimit_backoff_forget(r->backoff, key);
}

unsigned ratelimit_num_requeues(ratelimit *r, const char *key)
{
    return ratelimit_backoff_failures(r->backoff, key);
}
