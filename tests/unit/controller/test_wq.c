/*
 * test_wq.c - the work queue: deduplication, the dirty/processing rule,
 * delayed adds, rate-limited re-adds, shutdown with blocked getters, drain,
 * metrics, out-of-memory behaviour, and a multi-threaded invariant check.
 * No assertion depends on timing; delays are short so the suite is fast.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/wq.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS RATELIMIT_MS

static wq *new_queue(void)
{
    wq *q = wq_new("test", NULL);
    assert_non_null(q);
    return q;
}

/* Gets a key and checks it; returns the borrowed key for wq_done. */
static const char *get_expect(wq *q, const char *want)
{
    const char *k = NULL;
    assert_int_equal(wq_get(q, &k), 0);
    assert_non_null(k);
    assert_string_equal(k, want);
    return k;
}

static void dedups_while_queued(void **state)
{
    (void)state;
    wq *q = new_queue();
    assert_int_equal(wq_add(q, "ns/a"), 0);
    assert_int_equal(wq_add(q, "ns/b"), 0);
    assert_int_equal(wq_add(q, "ns/a"), 0);
    assert_int_equal(wq_add(q, "ns/a"), 0);
    assert_int_equal(wq_len(q), 2);
    wq_done(q, get_expect(q, "ns/a"));
    wq_done(q, get_expect(q, "ns/b"));
    assert_int_equal(wq_len(q), 0);
    wq_stats st;
    wq_stats_get(q, &st);
    assert_int_equal(st.adds, 2); /* duplicates are not counted */
    assert_int_equal(st.latency_count, 2);
    assert_int_equal(st.work_count, 2);
    assert_int_equal(st.processing, 0);
    wq_free(q);
}

static void fifo_order(void **state)
{
    (void)state;
    wq *q = new_queue();
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        wq_add(q, key);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        wq_done(q, get_expect(q, key));
    }
    wq_free(q);
}

static void readded_while_processing_comes_back_after_done(void **state)
{
    (void)state;
    wq *q = new_queue();
    wq_add(q, "ns/a");
    const char *k = get_expect(q, "ns/a");
    /* Changes arrive during the reconcile: not handed to a second worker... */
    wq_add(q, "ns/a");
    wq_add(q, "ns/a");
    assert_int_equal(wq_len(q), 0);
    wq_add(q, "ns/b");
    assert_int_equal(wq_len(q), 1);
    wq_stats st;
    wq_stats_get(q, &st);
    assert_int_equal(st.processing, 1);
    /* ...but queued again, once, when the first one is done. */
    assert_int_equal(wq_done(q, k), 0);
    assert_int_equal(wq_len(q), 2);
    wq_done(q, get_expect(q, "ns/b"));
    wq_done(q, get_expect(q, "ns/a"));
    assert_int_equal(wq_len(q), 0);
    wq_free(q);
}

static void done_without_get_is_an_error(void **state)
{
    (void)state;
    wq *q = new_queue();
    assert_int_equal(wq_done(q, "ns/nope"), CERR_NOTFOUND);
    assert_non_null(strstr(cerr_message(), "ns/nope"));
    wq_add(q, "ns/a");
    assert_int_equal(wq_done(q, "ns/a"), CERR_NOTFOUND); /* queued, not processing */
    const char *k = get_expect(q, "ns/a");
    assert_int_equal(wq_done(q, k), 0);
    assert_int_equal(wq_done(q, "ns/a"), CERR_NOTFOUND); /* twice */
    wq_free(q);
}

static void delayed_adds_come_out_in_deadline_order(void **state)
{
    (void)state;
    wq *q = new_queue();
    wq_add(q, "now");
    assert_int_equal(wq_add_after(q, "c", 30 * MS), 0);
    assert_int_equal(wq_add_after(q, "a", 10 * MS), 0);
    assert_int_equal(wq_add_after(q, "b", 20 * MS), 0);
    /* Deadline order, however late the getter comes. */
    wq_done(q, get_expect(q, "now"));
    wq_done(q, get_expect(q, "a"));
    wq_done(q, get_expect(q, "b"));
    wq_done(q, get_expect(q, "c"));
    wq_stats st;
    wq_stats_get(q, &st);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.adds, 4);
    wq_free(q);
}

static void delayed_add_keeps_the_earlier_deadline(void **state)
{
    (void)state;
    wq *q = new_queue();
    wq_add_after(q, "x", 3600ull * RATELIMIT_S);
    wq_add_after(q, "y", 3600ull * RATELIMIT_S);
    assert_int_equal(wq_len(q), 0);
    wq_stats st;
    wq_stats_get(q, &st);
    assert_int_equal(st.waiting, 2);
    /* An earlier deadline replaces the hour... */
    wq_add_after(q, "x", 1 * MS);
    /* ...a later one does not replace an earlier one. */
    wq_add_after(q, "x", 7200ull * RATELIMIT_S);
    wq_done(q, get_expect(q, "x")); /* would block for an hour if it were wrong */
    wq_stats_get(q, &st);
    assert_int_equal(st.waiting, 1);
    wq_free(q); /* frees the key still waiting */
}

static void zero_delay_is_an_add(void **state)
{
    (void)state;
    wq *q = new_queue();
    wq_add_after(q, "x", 0);
    assert_int_equal(wq_len(q), 1);
    wq_free(q);
}

static void delayed_key_already_queued_is_not_duplicated(void **state)
{
    (void)state;
    wq *q = new_queue();
    wq_add(q, "x");
    wq_add_after(q, "x", 100 * MS); /* long enough to fire after the first get */
    const char *k = get_expect(q, "x");
    wq_done(q, k);
    /* The delayed add fires later and queues x again, exactly once. */
    k = get_expect(q, "x");
    wq_done(q, k);
    assert_int_equal(wq_len(q), 0);
    wq_stats st;
    wq_stats_get(q, &st);
    assert_int_equal(st.waiting, 0);
    wq_free(q);
}

static void rate_limited_adds_back_off_and_forget_resets(void **state)
{
    (void)state;
    /* 1 ms base so the test stays fast; no overall bucket. */
    wq *q = wq_new("rl", ratelimit_new(1 * MS, 1000 * MS, 0, 0));
    assert_non_null(q);
    for (unsigned i = 1; i <= 3; i++) {
        assert_int_equal(wq_add_rate_limited(q, "ns/a"), 0);
        assert_int_equal(wq_num_requeues(q, "ns/a"), i);
        wq_done(q, get_expect(q, "ns/a"));
    }
    wq_stats st;
    wq_stats_get(q, &st);
    assert_int_equal(st.retries, 3);
    wq_forget(q, "ns/a");
    assert_int_equal(wq_num_requeues(q, "ns/a"), 0);
    assert_string_equal(wq_name(q), "rl");
    wq_free(q);
}

typedef struct {
    wq *q;
    int rc;
    atomic_int *started;
} getter_arg;

static void *getter(void *p)
{
    getter_arg *a = p;
    const char *k;
    atomic_fetch_add(a->started, 1);
    a->rc = wq_get(a->q, &k);
    return NULL;
}

static void shutdown_wakes_blocked_getters(void **state)
{
    (void)state;
    wq *q = new_queue();
    atomic_int started = 0;
    pthread_t th[4];
    getter_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (getter_arg){.q = q, .rc = 1, .started = &started};
        assert_int_equal(pthread_create(&th[i], NULL, getter, &args[i]), 0);
    }
    while (atomic_load(&started) < 4)
        sched_yield();
    /* Whether or not they are already asleep in wq_get, they must return. */
    wq_shut_down(q);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, CERR_SHUTDOWN);
    }
    assert_true(wq_shutting_down(q));
    wq_free(q);
}

static void shutdown_hands_out_queued_keys_then_stops(void **state)
{
    (void)state;
    wq *q = new_queue();
    wq_add(q, "a");
    wq_add(q, "b");
    wq_add_after(q, "later", 1 * MS);
    wq_shut_down(q);
    assert_int_equal(wq_add(q, "c"), 0); /* ignored */
    assert_int_equal(wq_add_after(q, "d", 1), 0);
    assert_int_equal(wq_add_rate_limited(q, "e"), 0);
    wq_done(q, get_expect(q, "a"));
    wq_done(q, get_expect(q, "b"));
    const char *k = "x";
    assert_int_equal(wq_get(q, &k), CERR_SHUTDOWN);
    assert_null(k);
    wq_stats st;
    wq_stats_get(q, &st);
    assert_int_equal(st.waiting, 0); /* the delayed key was dropped */
    assert_int_equal(st.depth, 0);
    wq_free(q);
}

typedef struct {
    wq *q;
    atomic_int finished;
} drain_arg;

static void *drainer(void *p)
{
    drain_arg *a = p;
    wq_shut_down_with_drain(a->q);
    atomic_store(&a->finished, 1);
    return NULL;
}

static void drain_waits_for_processing(void **state)
{
    (void)state;
    wq *q = new_queue();
    wq_add(q, "a");
    const char *k = get_expect(q, "a");
    drain_arg a = {.q = q};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, drainer, &a), 0);
    while (!wq_shutting_down(q))
        sched_yield();
    /* Shut down but "a" is still being processed: the drainer must wait. */
    assert_int_equal(atomic_load(&a.finished), 0);
    assert_int_equal(wq_done(q, k), 0);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&a.finished), 1);
    wq_free(q);
}

typedef struct {
    int latency, work;
} observed;

static void observe(void *ctx, wq_metric m, double seconds)
{
    observed *o = ctx;
    assert_true(seconds >= 0);
    if (m == WQ_QUEUE_LATENCY)
        o->latency++;
    else if (m == WQ_WORK_DURATION)
        o->work++;
}

static void observer_sees_each_get_and_done(void **state)
{
    (void)state;
    wq *q = new_queue();
    observed o = {0};
    wq_set_observer(q, observe, &o);
    wq_add(q, "a");
    wq_add(q, "b");
    const char *a = get_expect(q, "a");
    assert_int_equal(o.latency, 1);
    assert_int_equal(o.work, 0);
    wq_stats st;
    wq_stats_get(q, &st);
    assert_int_equal(st.processing, 1);
    assert_int_equal(st.depth, 1);
    assert_true(st.unfinished_work >= 0 && st.longest_running <= st.unfinished_work);
    wq_done(q, a);
    wq_done(q, get_expect(q, "b"));
    assert_int_equal(o.latency, 2);
    assert_int_equal(o.work, 2);
    wq_stats_get(q, &st);
    assert_true(st.latency_sum >= 0 && st.work_sum >= 0);
    assert_int_equal(st.unfinished_work, 0);
    wq_free(q);
}

static void out_of_memory_leaves_the_queue_consistent(void **state)
{
    (void)state;
    wq *q = new_queue();
    long live = cmem_live();
    int failures = 0;
    /* Fail each allocation of a first add in turn. */
    for (unsigned long n = 1; n < 20; n++) {
        cmem_fail_at(n);
        int rc = wq_add(q, "ns/a-new-key");
        cmem_fail_at(0);
        if (rc == 0) break;
        failures++;
        assert_int_equal(rc, CERR_NOMEM);
        assert_int_equal(wq_len(q), 0);
    }
    assert_true(failures > 0);
    assert_int_equal(wq_len(q), 1);
    wq_done(q, get_expect(q, "ns/a-new-key"));
    wq_free(q);
    /* The queue's own blocks are all gone (nothing leaked on the way). */
    assert_true(cmem_live() < live);
}

/* --- concurrency: never the same key in two workers, nothing lost --------- */

#define NKEYS 64
#define NPROD 3
#define NWORK 4
#define ROUNDS 2000

typedef struct {
    wq *q;
    atomic_int busy[NKEYS];     /* 1 while a worker holds the key */
    atomic_int gen[NKEYS];      /* bumped by producers before each add */
    atomic_int seen_gen[NKEYS]; /* generation a worker saw when starting */
    atomic_int violations;
} stress;

typedef struct {
    stress *s;
    unsigned seed;
} producer_arg;

static void *producer(void *p)
{
    producer_arg *a = p;
    stress *s = a->s;
    unsigned r = a->seed;
    char key[16];
    for (int i = 0; i < ROUNDS; i++) {
        r = r * 1103515245u + 12345u;
        int k = (int)((r >> 8) % NKEYS);
        snprintf(key, sizeof key, "ns/k%d", k);
        atomic_fetch_add(&s->gen[k], 1);
        if (i % 7 == 0)
            wq_add_after(s->q, key, (r >> 20) % 3 * 100000);
        else
            wq_add(s->q, key);
    }
    return NULL;
}

static void *worker(void *p)
{
    stress *s = p;
    const char *key;
    while (wq_get(s->q, &key) == 0) {
        int k = atoi(key + 4);
        if (atomic_exchange(&s->busy[k], 1) != 0) atomic_fetch_add(&s->violations, 1);
        /* Everything added before this point is covered by this run. */
        atomic_store(&s->seen_gen[k], atomic_load(&s->gen[k]));
        sched_yield();
        atomic_store(&s->busy[k], 0);
        wq_done(s->q, key);
    }
    return NULL;
}

static void concurrent_producers_and_workers(void **state)
{
    (void)state;
    static stress s;
    memset(&s, 0, sizeof s);
    s.q = new_queue();
    pthread_t prod[NPROD], work[NWORK];
    producer_arg pa[NPROD];
    for (int i = 0; i < NWORK; i++)
        assert_int_equal(pthread_create(&work[i], NULL, worker, &s), 0);
    for (int i = 0; i < NPROD; i++) {
        pa[i] = (producer_arg){.s = &s, .seed = (unsigned)i + 1};
        assert_int_equal(pthread_create(&prod[i], NULL, producer, &pa[i]), 0);
    }
    for (int i = 0; i < NPROD; i++)
        pthread_join(prod[i], NULL);
    /* Let the delayed adds (at most 0.2 ms) fire, then wait for quiet. */
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
    for (;;) {
        wq_stats st;
        wq_stats_get(s.q, &st);
        if (st.depth == 0 && st.waiting == 0 && st.processing == 0) break;
        sched_yield();
    }
    wq_shut_down_with_drain(s.q);
    for (int i = 0; i < NWORK; i++)
        pthread_join(work[i], NULL);
    assert_int_equal(atomic_load(&s.violations), 0);
    /* Every key's last change was seen by a run that started after it. */
    for (int k = 0; k < NKEYS; k++)
        if (atomic_load(&s.gen[k]))
            assert_int_equal(atomic_load(&s.seen_gen[k]), atomic_load(&s.gen[k]));
    wq_free(s.q);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dedups_while_queued),
        cmocka_unit_test(fifo_order),
        cmocka_unit_test(readded_while_processing_comes_back_after_done),
        cmocka_unit_test(done_without_get_is_an_error),
        cmocka_unit_test(delayed_adds_come_out_in_deadline_order),
        cmocka_unit_test(delayed_add_keeps_the_earlier_deadline),
        cmocka_unit_test(zero_delay_is_an_add),
        cmocka_unit_test(delayed_key_already_queued_is_not_duplicated),
        cmocka_unit_test(rate_limited_adds_back_off_and_forget_resets),
        cmocka_unit_test(shutdown_wakes_blocked_getters),
        cmocka_unit_test(shutdown_hands_out_queued_keys_then_stops),
        cmocka_unit_test(drain_waits_for_processing),
        cmocka_unit_test(observer_sees_each_get_and_done),
        cmocka_unit_test(out_of_memory_leaves_the_queue_consistent),
        cmocka_unit_test(concurrent_producers_and_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
