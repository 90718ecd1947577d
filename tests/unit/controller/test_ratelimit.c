/*
 * test_ratelimit.c - per-key exponential backoff, token bucket and their
 * combination as the work queue uses it. Times are passed explicitly
 * (the *_at functions): nothing here sleeps or measures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "kube/ratelimit.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#define MS RATELIMIT_MS
#define S RATELIMIT_S

static void backoff_doubles_from_5ms_and_caps_at_1000s(void **state)
{
    (void)state;
    ratelimit_backoff *b = ratelimit_backoff_new(RATELIMIT_DEFAULT_BASE, RATELIMIT_DEFAULT_MAX);
    assert_non_null(b);
    uint64_t expect = 5 * MS, d;
    for (unsigned i = 0; i < 40; i++) {
        assert_int_equal(ratelimit_backoff_when(b, "ns/a", &d), 0);
        assert_int_equal(d, expect);
        assert_int_equal(ratelimit_backoff_failures(b, "ns/a"), i + 1);
        expect = expect * 2 > 1000 * S ? 1000 * S : expect * 2;
    }
    /* 5 ms * 2^17 = 655.36 s is the last uncapped delay; the 19th is capped. */
    ratelimit_backoff_forget(b, "ns/a");
    for (int i = 0; i < 18; i++)
        ratelimit_backoff_when(b, "ns/a", &d);
    assert_int_equal(d, 5 * MS << 17);
    ratelimit_backoff_when(b, "ns/a", &d);
    assert_int_equal(d, 1000 * S);
    ratelimit_backoff_free(b);
}

static void backoff_survives_huge_failure_counts(void **state)
{
    (void)state;
    ratelimit_backoff *b = ratelimit_backoff_new(1, UINT64_MAX);
    uint64_t d = 0;
    for (int i = 0; i < 200; i++)
        ratelimit_backoff_when(b, "k", &d);
    assert_int_equal(d, UINT64_MAX); /* saturates, never wraps to a short delay */
    ratelimit_backoff_free(b);
}

static void forget_resets_one_key_only(void **state)
{
    (void)state;
    ratelimit_backoff *b = ratelimit_backoff_new(5 * MS, 1000 * S);
    uint64_t d;
    for (int i = 0; i < 3; i++) {
        ratelimit_backoff_when(b, "a", &d);
        ratelimit_backoff_when(b, "b", &d);
    }
    assert_int_equal(d, 20 * MS);
    ratelimit_backoff_forget(b, "a");
    assert_int_equal(ratelimit_backoff_failures(b, "a"), 0);
    assert_int_equal(ratelimit_backoff_failures(b, "b"), 3);
    ratelimit_backoff_when(b, "a", &d);
    assert_int_equal(d, 5 * MS);
    ratelimit_backoff_when(b, "b", &d);
    assert_int_equal(d, 40 * MS);
    ratelimit_backoff_forget(b, "never-seen"); /* harmless */
    ratelimit_backoff_free(b);
}

static void backoff_out_of_memory_answers_the_cap(void **state)
{
    (void)state;
    ratelimit_backoff *b = ratelimit_backoff_new(5 * MS, 1000 * S);
    uint64_t d = 0;
    cmem_fail_at(1);
    assert_int_equal(ratelimit_backoff_when(b, "new-key", &d), CERR_NOMEM);
    cmem_fail_at(0);
    assert_int_equal(d, 1000 * S);
    assert_int_equal(ratelimit_backoff_failures(b, "new-key"), 0);
    ratelimit_backoff_free(b);
}

static void bucket_allows_burst_then_paces_at_qps(void **state)
{
    (void)state;
    ratelimit_bucket *b = ratelimit_bucket_new(10.0, 100);
    assert_non_null(b);
    uint64_t t0 = 1000 * S;
    for (int i = 0; i < 100; i++)
        assert_int_equal(ratelimit_bucket_reserve_at(b, t0), 0);
    /* The bucket is empty: each further request waits one more 100 ms. */
    assert_int_equal(ratelimit_bucket_reserve_at(b, t0), 100 * MS);
    assert_int_equal(ratelimit_bucket_reserve_at(b, t0), 200 * MS);
    /* 1 s later 10 tokens have come back, 2 of them already promised. */
    assert_int_equal(ratelimit_bucket_reserve_at(b, t0 + S), 0);
    for (int i = 0; i < 7; i++)
        assert_int_equal(ratelimit_bucket_reserve_at(b, t0 + S), 0);
    assert_int_equal(ratelimit_bucket_reserve_at(b, t0 + S), 100 * MS);
    ratelimit_bucket_free(b);
}

static void bucket_never_holds_more_than_burst(void **state)
{
    (void)state;
    ratelimit_bucket *b = ratelimit_bucket_new(10.0, 5);
    uint64_t t0 = 5 * S;
    assert_true(ratelimit_bucket_try_at(b, t0));
    /* An hour idle refills to burst (5), not to 36000. */
    uint64_t t1 = t0 + 3600 * S;
    for (int i = 0; i < 5; i++)
        assert_true(ratelimit_bucket_try_at(b, t1));
    assert_false(ratelimit_bucket_try_at(b, t1));
    /* try does not borrow: the next token is 100 ms away, not 200. */
    assert_false(ratelimit_bucket_try_at(b, t1 + 50 * MS));
    assert_true(ratelimit_bucket_try_at(b, t1 + 100 * MS));
    /* A clock going backwards adds nothing. */
    assert_false(ratelimit_bucket_try_at(b, t0));
    ratelimit_bucket_free(b);
}

static void bucket_rejects_bad_parameters(void **state)
{
    (void)state;
    assert_null(ratelimit_bucket_new(0, 10));
    assert_null(ratelimit_bucket_new(-1, 10));
    assert_null(ratelimit_bucket_new(10, 0));
}

static void bucket_wait_takes_a_token(void **state)
{
    (void)state;
    /* Burst 2 at one token per 1000 s: two waits return at once and leave
     * the bucket empty. */
    ratelimit_bucket *b = ratelimit_bucket_new(0.001, 2);
    ratelimit_bucket_wait(b);
    ratelimit_bucket_wait(b);
    assert_false(ratelimit_bucket_try_at(b, ratelimit_now()));
    ratelimit_bucket_free(b);
    /* 100000 qps, burst 1: the second wait sleeps about 10 us and returns. */
    b = ratelimit_bucket_new(100000.0, 1);
    ratelimit_bucket_wait(b);
    ratelimit_bucket_wait(b);
    ratelimit_bucket_free(b);
}

static void combined_takes_the_longer_delay(void **state)
{
    (void)state;
    ratelimit *r = ratelimit_new_default();
    assert_non_null(r);
    uint64_t t0 = 10 * S, d;
    char key[32];
    /* 100 distinct keys: the burst covers them, backoff says 5 ms. */
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "ns/k%d", i);
        assert_int_equal(ratelimit_when_at(r, key, t0, &d), 0);
        assert_int_equal(d, 5 * MS);
    }
    /* The 101st: the bucket's 100 ms beats the backoff's 5 ms. */
    assert_int_equal(ratelimit_when_at(r, "ns/other", t0, &d), 0);
    assert_int_equal(d, 100 * MS);
    /* Much later the bucket is full again and the backoff decides. */
    uint64_t t1 = t0 + 3600 * S;
    for (int i = 0; i < 11; i++)
        ratelimit_when_at(r, "ns/k0", t1, &d);
    assert_int_equal(d, 5 * MS << 11);
    assert_int_equal(ratelimit_num_requeues(r, "ns/k0"), 12);
    ratelimit_forget(r, "ns/k0");
    assert_int_equal(ratelimit_num_requeues(r, "ns/k0"), 0);
    ratelimit_free(r);
}

static void combined_without_bucket(void **state)
{
    (void)state;
    ratelimit *r = ratelimit_new(1 * MS, 8 * MS, 0, 0);
    uint64_t d;
    for (int i = 0; i < 1000; i++)
        ratelimit_when_at(r, "k", 0, &d);
    assert_int_equal(d, 8 * MS);
    assert_int_equal(ratelimit_num_requeues(r, "k"), 1000);
    ratelimit_free(r);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backoff_doubles_from_5ms_and_caps_at_1000s),
        cmocka_unit_test(backoff_survives_huge_failure_counts),
        cmocka_unit_test(forget_resets_one_key_only),
        cmocka_unit_test(backoff_out_of_memory_answers_the_cap),
        cmocka_unit_test(bucket_allows_burst_then_paces_at_qps),
        cmocka_unit_test(bucket_never_holds_more_than_burst),
        cmocka_unit_test(bucket_rejects_bad_parameters),
        cmocka_unit_test(bucket_wait_takes_a_token),
        cmocka_unit_test(combined_takes_the_longer_delay),
        cmocka_unit_test(combined_without_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
