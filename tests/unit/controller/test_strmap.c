/*
 * test_strmap.c - the string map, checked against a simple reference
 * (an array) under a long random sequence of puts and removes, which
 * exercises growth and backward-shift deletion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void basics(void **state)
{
    (void)state;
    strmap *m = strmap_new(0);
    int a = 1, b = 2;
    assert_false(strmap_get(m, "x", NULL));
    assert_false(strmap_remove(m, "x", NULL));
    assert_int_equal(strmap_put(m, "ns/a", &a), 0);
    assert_int_equal(strmap_put(m, "ns/b", &b), 0);
    assert_int_equal(strmap_put(m, "ns/null", NULL), 0);
    assert_int_equal(strmap_len(m), 3);
    assert_ptr_equal(strmap_lookup(m, "ns/a"), &a);
    void *v = &a;
    assert_true(strmap_get(m, "ns/null", &v));
    assert_null(v);
    assert_int_equal(strmap_put(m, "ns/a", &b), 0); /* replace */
    assert_int_equal(strmap_len(m), 3);
    assert_ptr_equal(strmap_lookup(m, "ns/a"), &b);
    assert_true(strmap_remove(m, "ns/a", &v));
    assert_ptr_equal(v, &b);
    assert_null(strmap_lookup(m, "ns/a"));
    assert_int_equal(strmap_len(m), 2);
    /* the map copied the key */
    char key[8] = "temp";
    strmap_put(m, key, &a);
    strcpy(key, "gone");
    assert_ptr_equal(strmap_lookup(m, "temp"), &a);
    assert_true(strmap_put(m, "", &a) == 0 && strmap_lookup(m, "") == &a);
    size_t pos = 0, n = 0;
    const char *k;
    while (strmap_next(m, &pos, &k, &v))
        n++;
    assert_int_equal(n, strmap_len(m));
    strmap_free(m);
    strmap_free(NULL);
}

#define N 2000

static void random_operations_match_a_reference(void **state)
{
    (void)state;
    strmap *m = strmap_new(0);
    static char keys[N][16];
    static int present[N];
    memset(present, 0, sizeof present);
    for (int i = 0; i < N; i++)
        snprintf(keys[i], sizeof keys[i], "ns/k%d", i);
    unsigned r = 7;
    size_t count = 0;
    for (int step = 0; step < 200000; step++) {
        r = r * 1103515245u + 12345u;
        int i = (int)((r >> 8) % N);
        if ((r >> 4) % 3) {
            if (!present[i]) count++;
            present[i] = step + 1;
            assert_int_equal(strmap_put(m, keys[i], (void *)(intptr_t)(step + 1)), 0);
        } else {
            void *old;
            bool had = strmap_remove(m, keys[i], &old);
            assert_int_equal(had, present[i] != 0);
            if (had) {
                assert_int_equal((intptr_t)old, present[i]);
                count--;
            }
            present[i] = 0;
        }
        if (step % 10007 == 0) {
            for (int j = 0; j < N; j++) {
                void *v = NULL;
                bool has = strmap_get(m, keys[j], &v);
                assert_int_equal(has, present[j] != 0);
                if (has) assert_int_equal((intptr_t)v, present[j]);
            }
        }
    }
    assert_int_equal(strmap_len(m), count);
    size_t pos = 0, seen = 0;
    const char *k;
    void *v;
    while (strmap_next(m, &pos, &k, &v)) {
        int i = atoi(k + 4);
        assert_int_equal((intptr_t)v, present[i]);
        seen++;
    }
    assert_int_equal(seen, count);
    strmap_free(m);
}

static void borrowed_keys(void **state)
{
    (void)state;
    strmap *m = strmap_new(STRMAP_BORROW_KEYS);
    static const char k1[] = "a", k2[] = "b";
    long live = cmem_live();
    strmap_put(m, k1, (void *)1);
    strmap_put(m, k2, (void *)2);
    const char *k;
    size_t pos = 0;
    while (strmap_next(m, &pos, &k, NULL))
        assert_true(k == k1 || k == k2);     /* not copies */
    assert_int_equal(cmem_live(), live + 1); /* only the slot table */
    strmap_free(m);
}

static void out_of_memory_leaves_the_map_unchanged(void **state)
{
    (void)state;
    strmap *m = strmap_new(0);
    char key[16];
    int failures = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cmem_fail_at(1);
        int rc = strmap_put(m, key, NULL);
        cmem_fail_at(0);
        if (rc) {
            assert_int_equal(rc, CERR_NOMEM);
            assert_false(strmap_get(m, key, NULL));
            failures++;
        }
        assert_int_equal(strmap_put(m, key, NULL), 0);
    }
    assert_int_equal(failures, 100); /* every put of a new key allocates */
    assert_int_equal(strmap_len(m), 100);
    strmap_free(m);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(basics),
        cmocka_unit_test(random_operations_match_a_reference),
        cmocka_unit_test(borrowed_keys),
        cmocka_unit_test(out_of_memory_leaves_the_map_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
