/*
 * wq.c - work queue: FIFO ring of ready keys, timer heap of delayed keys,
 * one record per known key (see wq.h for the semantics).
 *
 * Every key the queue knows has one wq_item, indexed by q->items, alive
 * while the key is dirty (wants processing), processing, or waiting in the
 * heap. The ring and the heap hold item pointers and always have room for
 * every item, reserved when an item is created, so that the only
 * allocation happens in wq_add*: wq_get and wq_done never fail for memory.
 */
#include "kube/wq.h"

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/strmap.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#define NOT_WAITING ((size_t)-1)

typedef struct {
    char *key;
    bool dirty;      /* wants (another) processing */
    bool processing; /* handed out by wq_get, not done yet */
    size_t heap_idx; /* position in q->heap, or NOT_WAITING */
    uint64_t ready_ns, seq;
    uint64_t queued_ns;  /* start of queue latency */
    uint64_t started_ns; /* start of work duration */
} wq_item;

struct wq {
    pthread_mutex_t mu;
    pthread_cond_t cond;    /* getters: a key is ready, shut down, or a new deadline */
    pthread_cond_t drained; /* processing became empty */
    char *name;
    ratelimit *rl;
    strmap *items; /* key (borrowed from the item) -> wq_item */

    wq_item **ring; /* ready keys, FIFO */
    size_t ring_cap, ring_head, ring_len;
    wq_item **heap; /* delayed keys, min-heap on (ready_ns, seq) */
    size_t heap_cap, heap_len;
    uint64_t seq;

    size_t nprocessing;
    bool shutting_down;

    wq_observe_fn observe;
    void *observe_ctx;
    uint64_t adds, retries, latency_count, work_count;
    double latency_sum, work_sum;
};

static uint64_t now_ns(void)
{
    return ratelimit_now();
}

/* --- ring ------------------------------------------------------------------- */

static int ring_reserve(wq *q, size_t need)
{
    if (q->ring_cap >= need) return 0;
    size_t ncap = q->ring_cap ? q->ring_cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    wq_item **n = cmem_reallocarray(NULL, ncap, sizeof *n);
    if (!n) return cerr_oom();
    for (size_t i = 0; i < q->ring_len; i++)
        n[i] = q->ring[(q->ring_head + i) % q->ring_cap];
    cmem_free(q->ring);
    q->ring = n;
    q->ring_cap = ncap;
    q->ring_head = 0;
    return 0;
}

static void ring_push(wq *q, wq_item *it)
{
    q->ring[(q->ring_head + q->ring_len) % q->ring_cap] = it;
    q->ring_len++;
}

static wq_item *ring_pop(wq *q)
{
    wq_item *it = q->ring[q->ring_head];
    q->ring_head = (q->ring_head + 1) % q->ring_cap;
    q->ring_len--;
    return it;
}

/* --- heap ------------------------------------------------------------------- */

static bool heap_less(const wq_item *a, const wq_item *b)
{
    return a->ready_ns < b->ready_ns || (a->ready_ns == b->ready_ns && a->seq < b->seq);
}

static void heap_set(wq *q, size_t i, wq_item *it)
{
    q->heap[i] = it;
    it->heap_idx = i;
}

static void heap_up(wq *q, size_t i)
{
    wq_item *it = q->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(it, q->heap[p])) break;
        heap_set(q, i, q->heap[p]);
        i = p;
    }
    heap_set(q, i, it);
}

static void heap_down(wq *q, size_t i)
{
    wq_item *it = q->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->heap_len) break;
        if (c + 1 < q->heap_len && heap_less(q->heap[c + 1], q->heap[c])) c++;
        if (!heap_less(q->heap[c], it)) break;
        heap_set(q, i, q->heap[c]);
        i = c;
    }
    heap_set(q, i, it);
}

static wq_item *heap_pop(wq *q)
{
    wq_item *top = q->heap[0];
    q->heap_len--;
    if (q->heap_len) {
        heap_set(q, 0, q->heap[q->heap_len]);
        heap_down(q, 0);
    }
    top->heap_idx = NOT_WAITING;
    return top;
}

static int heap_reserve(wq *q, size_t need)
{
    if (q->heap_cap >= need) return 0;
    size_t ncap = q->heap_cap ? q->heap_cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    wq_item **n = cmem_reallocarray(q->heap, ncap, sizeof *n);
    if (!n) return cerr_oom();
    q->heap = n;
    q->heap_cap = ncap;
    return 0;
}

/* --- items -------------------------------------------------------------------- */

static void item_free(wq_item *it)
{
    if (!it) return;
    cmem_free(it->key);
    cmem_free(it);
}

/* The item for key, created when new. Caller holds the lock. */
static int item_get(wq *q, const char *key, wq_item **out)
{
    wq_item *it = strmap_lookup(q->items, key);
    if (it) {
        *out = it;
        return 0;
    }
    /* Room in the ring and the heap for every item, so that pushes never fail. */
    size_t need = strmap_len(q->items) + 1;
    if (ring_reserve(q, need) || heap_reserve(q, need)) return CERR_NOMEM;
    it = cmem_calloc(1, sizeof *it);
    if (!it) return cerr_oom();
    it->heap_idx = NOT_WAITING;
    it->key = cmem_strdup(key);
    if (!it->key || strmap_put(q->items, it->key, it)) {
        item_free(it);
        return cerr_oom();
    }
    *out = it;
    return 0;
}

/* Forgets an item nobody needs any more. */
static void item_release(wq *q, wq_item *it)
{
    if (it->dirty || it->processing || it->heap_idx != NOT_WAITING) return;
    strmap_remove(q->items, it->key, NULL);
    item_free(it);
}

static void add_locked(wq *q, wq_item *it, uint64_t now)
{
    if (it->dirty) return;
    it->dirty = true;
    it->queued_ns = now;
    q->adds++;
    if (it->processing) return; /* wq_done re-queues it */
    ring_push(q, it);
    pthread_cond_signal(&q->cond);
}

/* Moves delayed keys whose deadline has passed into the queue. */
static void promote(wq *q, uint64_t now)
{
    if (q->shutting_down) return;
    while (q->heap_len && q->heap[0]->ready_ns <= now) {
        wq_item *it = heap_pop(q);
        add_locked(q, it, it->ready_ns);
    }
}

/* --- API ------------------------------------------------------------------------ */

wq *wq_new(const char *name, ratelimit *rl)
{
    wq *q = cmem_calloc(1, sizeof *q);
    if (!q) {
        ratelimit_free(rl);
        return NULL;
    }
    q->rl = rl ? rl : ratelimit_new_default();
    q->name = cmem_strdup(name ? name : "");
    q->items = strmap_new(STRMAP_BORROW_KEYS);
    if (!q->rl || !q->name || !q->items) {
        ratelimit_free(q->rl);
        cmem_free(q->name);
        strmap_free(q->items);
        cmem_free(q);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &ca);
    pthread_cond_init(&q->drained, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&q->mu, NULL);
    return q;
}

void wq_free(wq *q)
{
    if (!q) return;
    size_t pos = 0;
    void *v;
    while (strmap_next(q->items, &pos, NULL, &v))
        item_free(v);
    strmap_free(q->items);
    cmem_free(q->ring);
    cmem_free(q->heap);
    ratelimit_free(q->rl);
    cmem_free(q->name);
    pthread_cond_destroy(&q->cond);
    pthread_cond_destroy(&q->drained);
    pthread_mutex_destroy(&q->mu);
    cmem_free(q);
}

const char *wq_name(const wq *q)
{
    return q->name;
}

/* Queues key now (delay_ns 0) or in the delay heap, keeping an earlier
 * deadline the key already has. */
static int add(wq *q, const char *key, uint64_t delay_ns)
{
    int rc = 0;
    wq_item *it = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->shutting_down) goto out;
    uint64_t now = now_ns();
    promote(q, now);
    rc = item_get(q, key, &it);
    if (rc) goto out;
    if (delay_ns == 0) {
        add_locked(q, it, now);
        goto out;
    }
    uint64_t ready = now + delay_ns < now ? UINT64_MAX : now + delay_ns;
    if (it->heap_idx != NOT_WAITING) {
        if (ready < it->ready_ns) { /* keep the earlier deadline */
            it->ready_ns = ready;
            heap_up(q, it->heap_idx);
        }
    } else {
        it->ready_ns = ready;
        it->seq = q->seq++;
        q->heap[q->heap_len] = it;
        it->heap_idx = q->heap_len++;
        heap_up(q, it->heap_idx);
    }
    /* A getter may be sleeping until a later deadline. */
    pthread_cond_signal(&q->cond);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int wq_add(wq *q, const char *key)
{
    return add(q, key, 0);
}

int wq_add_after(wq *q, const char *key, uint64_t delay_ns)
{
    return add(q, key, delay_ns);
}

int wq_add_rate_limited(wq *q, const char *key)
{
    if (wq_shutting_down(q)) return 0;
    uint64_t delay;
    int rc = ratelimit_when(q->rl, key, &delay); /* a usable delay even on failure */
    pthread_mutex_lock(&q->mu);
    q->retries++;
    pthread_mutex_unlock(&q->mu);
    int rc2 = wq_add_after(q, key, delay);
    return rc2 ? rc2 : rc;
}

void wq_forget(wq *q, const char *key)
{
    ratelimit_forget(q->rl, key);
}

unsigned wq_num_requeues(wq *q, const char *key)
{
    return ratelimit_num_requeues(q->rl, key);
}

static void deadline_to_timespec(uint64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / RATELIMIT_S);
    ts->tv_nsec = (long)(ns % RATELIMIT_S);
}

int wq_get(wq *q, const char **key)
{
    uint64_t now;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        now = now_ns();
        promote(q, now);
        if (q->ring_len) break;
        if (q->shutting_down) {
            pthread_mutex_unlock(&q->mu);
            *key = NULL;
            return cerr_set(CERR_SHUTDOWN, "work queue %s is shutting down", q->name);
        }
        if (q->heap_len) {
            struct timespec ts;
            deadline_to_timespec(q->heap[0]->ready_ns, &ts);
            pthread_cond_timedwait(&q->cond, &q->mu, &ts);
        } else {
            pthread_cond_wait(&q->cond, &q->mu);
        }
    }
    wq_item *it = ring_pop(q);
    it->dirty = false;
    it->processing = true;
    it->started_ns = now;
    q->nprocessing++;
    double latency = now > it->queued_ns ? (double)(now - it->queued_ns) / 1e9 : 0.0;
    q->latency_count++;
    q->latency_sum += latency;
    wq_observe_fn fn = q->observe;
    void *ctx = q->observe_ctx;
    /* More ready keys: make sure another sleeping getter looks. */
    if (q->ring_len) pthread_cond_signal(&q->cond);
    *key = it->key;
    pthread_mutex_unlock(&q->mu);
    if (fn) fn(ctx, WQ_QUEUE_LATENCY, latency);
    return 0;
}

int wq_done(wq *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    wq_item *it = strmap_lookup(q->items, key);
    if (!it || !it->processing) {
        pthread_mutex_unlock(&q->mu);
        return cerr_set(CERR_NOTFOUND, "work queue %s: key %s is not being processed", q->name,
                        key);
    }
    uint64_t now = now_ns();
    double took = now > it->started_ns ? (double)(now - it->started_ns) / 1e9 : 0.0;
    q->work_count++;
    q->work_sum += took;
    it->processing = false;
    q->nprocessing--;
    if (it->dirty) {
        ring_push(q, it);
        pthread_cond_signal(&q->cond);
    } else {
        item_release(q, it); /* key may dangle from here on */
    }
    if (q->nprocessing == 0) pthread_cond_broadcast(&q->drained);
    wq_observe_fn fn = q->observe;
    void *ctx = q->observe_ctx;
    pthread_mutex_unlock(&q->mu);
    if (fn) fn(ctx, WQ_WORK_DURATION, took);
    return 0;
}

static void shut_down_locked(wq *q)
{
    if (!q->shutting_down) {
        q->shutting_down = true;
        /* Delayed keys are dropped: nobody will process them. */
        while (q->heap_len)
            item_release(q, heap_pop(q));
    }
    pthread_cond_broadcast(&q->cond);
}

void wq_shut_down(wq *q)
{
    pthread_mutex_lock(&q->mu);
    shut_down_locked(q);
    pthread_mutex_unlock(&q->mu);
}

void wq_shut_down_with_drain(wq *q)
{
    pthread_mutex_lock(&q->mu);
    shut_down_locked(q);
    while (q->nprocessing > 0)
        pthread_cond_wait(&q->drained, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

bool wq_shutting_down(wq *q)
{
    pthread_mutex_lock(&q->mu);
    bool s = q->shutting_down;
    pthread_mutex_unlock(&q->mu);
    return s;
}

size_t wq_len(wq *q)
{
    pthread_mutex_lock(&q->mu);
    promote(q, now_ns());
    size_t n = q->ring_len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void wq_set_observer(wq *q, wq_observe_fn fn, void *ctx)
{
    pthread_mutex_lock(&q->mu);
    q->observe = fn;
    q->observe_ctx = ctx;
    pthread_mutex_unlock(&q->mu);
}

void wq_stats_get(wq *q, wq_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&q->mu);
    uint64_t now = now_ns();
    promote(q, now);
    out->depth = q->ring_len;
    out->waiting = q->heap_len;
    out->processing = q->nprocessing;
    out->adds = q->adds;
    out->retries = q->retries;
    out->latency_count = q->latency_count;
    out->latency_sum = q->latency_sum;
    out->work_count = q->work_count;
    out->work_sum = q->work_sum;
    if (q->nprocessing) {
        size_t pos = 0;
        void *v;
        while (strmap_next(q->items, &pos, NULL, &v)) {
            const wq_item *it = v;
            if (!it->processing || now <= it->started_ns) continue;
            double s = (double)(now - it->started_ns) / 1e9;
            out->unfinished_work += s;
            if (s > out->longest_running) out->longest_running = s;
        }
    }
    pthread_mutex_unlock(&q->mu);
}
