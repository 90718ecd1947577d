/*
 * test_tpool.c - the parallel for loop: every item runs exactly once
 * whatever the thread count, a worker index is never used by two threads at
 * once, and a failing item's error (set on a worker thread, err.h being per
 * thread) reaches the caller.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "mem.h"
#include "tpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#define N_ITEMS 1000

typedef struct counts {
    atomic_int runs[N_ITEMS];
    atomic_int busy[TPOOL_MAX_THREADS]; /* 1 while a worker index is in use */
    atomic_int overlap;                 /* times an index was found busy */
    atomic_int max_worker;
    size_t fail_at; /* item that fails, or N_ITEMS for none */
} counts;

static int count_item(size_t i, int worker, void *arg)
{
    counts *c = arg;
    if (atomic_exchange(&c->busy[worker], 1)) atomic_fetch_add(&c->overlap, 1);
    int m = atomic_load(&c->max_worker);
    while (worker > m && !atomic_compare_exchange_weak(&c->max_worker, &m, worker)) {
    }
    atomic_fetch_add(&c->runs[i], 1);
    /* Give the other threads a turn while this index is busy. */
    sched_yield();
    atomic_store(&c->busy[worker], 0);
    if (i == c->fail_at)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, "inputs[0].uri",
                       "inputs[0].uri: item %zu is broken", i);
    return 0;
}

static void every_item_once(void **state)
{
    (void)state;
    const int thread_counts[] = {0, 1, 2, 3, 7, 64, 500};
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        static counts c;
        memset(&c, 0, sizeof c);
        c.fail_at = N_ITEMS;
        assert_int_equal(tpool_for(thread_counts[t], N_ITEMS, count_item, &c), 0);
        assert_false(err_is_set());
        for (int i = 0; i < N_ITEMS; i++)
            assert_int_equal(atomic_load(&c.runs[i]), 1);
        assert_int_equal(atomic_load(&c.overlap), 0);
        int limit = thread_counts[t] < 1 ? 1 : thread_counts[t];
        if (limit > TPOOL_MAX_THREADS) limit = TPOOL_MAX_THREADS;
        assert_true(atomic_load(&c.max_worker) < limit);
    }
}

static void fewer_items_than_threads(void **state)
{
    (void)state;
    static counts c;
    memset(&c, 0, sizeof c);
    c.fail_at = N_ITEMS;
    assert_int_equal(tpool_for(8, 3, count_item, &c), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&c.runs[i]), 1);
    assert_true(atomic_load(&c.max_worker) < 3);
    assert_int_equal(tpool_for(4, 0, count_item, &c), 0); /* nothing to do */
}

static void error_reaches_the_caller(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 4; threads++) {
        static counts c;
        memset(&c, 0, sizeof c);
        c.fail_at = 517;
        err_clear();
        assert_int_equal(tpool_for(threads, N_ITEMS, count_item, &c), -1);
        assert_true(err_is_set());
        assert_int_equal(err_get_class(), ERR_BAD_INPUT);
        assert_string_equal(err_get_code(), ERR_INPUT_INVALID);
        assert_string_equal(err_get_field(), "inputs[0].uri");
        assert_string_equal(err_get_message(), "inputs[0].uri: item 517 is broken");
        /* Nothing ran twice; every item handed out before the failing one
         * ran; with one thread nothing after it did (with more, others may
         * run on while the failing item is still in flight). */
        int ran = 0;
        for (int i = 0; i < N_ITEMS; i++) {
            assert_true(atomic_load(&c.runs[i]) <= 1);
            ran += atomic_load(&c.runs[i]);
        }
        assert_true(ran >= 518);
        if (threads == 1) assert_int_equal(ran, 518);
        err_clear();
    }
}

int main(void)
{
    mem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_item_once),
        cmocka_unit_test(fewer_items_than_threads),
        cmocka_unit_test(error_reaches_the_caller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
