/*
 * test_cmem.c - the allocation wrapper (failure injection, counters,
 * jansson hook) and the per-thread error slot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"

#include <jansson.h>
#include <pthread.h>
#include <string.h>

static void fail_at_fails_exactly_the_nth(void **state)
{
    (void)state;
    unsigned long start = cmem_count();
    cmem_fail_at(3);
    void *a = cmem_malloc(8), *b = cmem_calloc(2, 8), *c = cmem_malloc(8), *d = cmem_malloc(8);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);
    assert_non_null(d);
    assert_int_equal(cmem_count() - start, 4);
    cmem_free(a);
    cmem_free(b);
    cmem_free(d);
    cmem_fail_at(0);
    void *e = cmem_malloc(1);
    assert_non_null(e);
    cmem_free(e);
}

static void failures_are_counted_per_thread(void **state)
{
    (void)state;
    unsigned long f = cmem_failures();
    cmem_fail_at(1);
    assert_null(cmem_strdup("x"));
    assert_int_equal(cmem_failures(), f + 1);
    cmem_fail_at(0);
}

static void live_blocks_and_helpers(void **state)
{
    (void)state;
    long live = cmem_live();
    char *s = cmem_strdup("hello");
    char *t = cmem_strndup("hello", 3);
    char *u = cmem_printf("%s-%d", "n", 42);
    assert_string_equal(s, "hello");
    assert_string_equal(t, "hel");
    assert_string_equal(u, "n-42");
    assert_int_equal(cmem_live(), live + 3);
    s = cmem_realloc(s, 100); /* a realloc is not a new block */
    assert_non_null(s);
    assert_string_equal(s, "hello");
    assert_int_equal(cmem_live(), live + 3);
    cmem_free(s);
    cmem_free(t);
    cmem_free(u);
    cmem_free(NULL);
    assert_int_equal(cmem_live(), live);
    assert_null(cmem_strdup(NULL));
    assert_null(cmem_calloc(SIZE_MAX / 2, 4));
    assert_null(cmem_reallocarray(NULL, SIZE_MAX / 2, 4));

    /* realloc failure leaves the block alone */
    char *v = cmem_strdup("keep");
    cmem_fail_at(1);
    assert_null(cmem_realloc(v, 1000));
    cmem_fail_at(0);
    assert_string_equal(v, "keep");
    cmem_free(v);
}

static void jansson_allocates_here(void **state)
{
    (void)state;
    long live = cmem_live();
    json_t *j = json_pack("{s:[i,i], s:s}", "a", 1, 2, "b", "text");
    assert_non_null(j);
    assert_true(cmem_live() > live);
    json_decref(j);
    assert_int_equal(cmem_live(), live);
    cmem_fail_at(1);
    assert_null(json_object());
    cmem_fail_at(0);
}

static void *other_thread(void *arg)
{
    (void)arg;
    cerr_set(CERR_GONE, "other thread");
    return NULL;
}

static void error_slot(void **state)
{
    (void)state;
    cerr_clear();
    assert_int_equal(cerr_code(), CERR_OK);
    assert_string_equal(cerr_message(), "");
    assert_int_equal(cerr_set(CERR_INVALID, "spec.params.%s: unknown parameter", "slopeFormt"),
                     CERR_INVALID);
    cerr_prefix("hydro/%s", "dem-slope");
    assert_string_equal(cerr_message(),
                        "hydro/dem-slope: spec.params.slopeFormt: unknown parameter");
    assert_int_equal(cerr_code(), CERR_INVALID);
    assert_int_equal(cerr_oom(), CERR_NOMEM);
    assert_string_equal(cerr_message(), "out of memory");

    /* each thread has its own slot */
    pthread_t t;
    pthread_create(&t, NULL, other_thread, NULL);
    pthread_join(t, NULL);
    assert_int_equal(cerr_code(), CERR_NOMEM);

    /* a long prefix on a long message is cut, never overflows */
    char big[2000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cerr_set(CERR_IO, "%s", big);
    cerr_prefix("%s", big);
    assert_true(strlen(cerr_message()) < 1024);
    assert_int_equal(strncmp(cerr_message(), "mmmm", 4), 0);

    static const int codes[] = {CERR_OK,     CERR_ERROR,  CERR_NOTFOUND, CERR_CONFLICT,
                                CERR_GONE,   CERR_AGAIN,  CERR_INVALID,  CERR_NOMEM,
                                CERR_IO,     CERR_TOOBIG, CERR_SHUTDOWN, CERR_FORBIDDEN,
                                CERR_TIMEOUT};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_true(codes[i] <= 0);
        assert_string_not_equal(cerr_name(codes[i]), "Unknown");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(cerr_name(codes[i]), cerr_name(codes[j]));
    }
    assert_string_equal(cerr_name(CERR_GONE), "Gone");
    assert_string_equal(cerr_name(-999), "Unknown");
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fail_at_fails_exactly_the_nth),
        cmocka_unit_test(failures_are_counted_per_thread),
        cmocka_unit_test(live_blocks_and_helpers),
        cmocka_unit_test(jansson_allocates_here),
        cmocka_unit_test(error_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
