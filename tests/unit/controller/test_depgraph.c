/*
 * test_depgraph.c - the incremental dependency graph: cycles found as
 * edges arrive and forgotten as they go, placeholders for missing
 * upstreams, a 100,000-long chain added in either order (no recursion, no
 * quadratic time: the test would take minutes otherwise), a 10,000-node
 * cycle, and allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "depgraph.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void set(depgraph *g, const char *key, const char *ups)
{
    /* ups: space-separated upstream keys */
    const char *list[16];
    char buf[256];
    size_t n = 0;
    snprintf(buf, sizeof buf, "%s", ups ? ups : "");
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
        list[n++] = t;
    if (depgraph_set(g, key, list, n)) fail_msg("depgraph_set %s: %s", key, cerr_message());
}

static bool on_cycle(depgraph *g, const char *key)
{
    bool on;
    assert_int_equal(depgraph_cycle(g, key, &on, NULL, 0), 0);
    return on;
}

static void expect_path(depgraph *g, const char *key, const char *want)
{
    bool on;
    char *path = NULL;
    assert_int_equal(depgraph_cycle(g, key, &on, &path, 1024), 0);
    assert_true(on);
    assert_non_null(path);
    assert_string_equal(path, want);
    cmem_free(path);
}

static void cycles_come_and_go(void **state)
{
    (void)state;
    depgraph *g = depgraph_new();
    set(g, "ns/a", "ns/b");
    set(g, "ns/b", "ns/c");
    assert_false(on_cycle(g, "ns/a"));
    assert_int_equal(depgraph_cyclic_edges(g), 0);
    set(g, "ns/c", "ns/a"); /* closes a -> b -> c -> a */
    assert_int_equal(depgraph_cyclic_edges(g), 1);
    assert_true(on_cycle(g, "ns/a") && on_cycle(g, "ns/b") && on_cycle(g, "ns/c"));
    expect_path(g, "ns/a", "a -> b -> c -> a");
    expect_path(g, "ns/c", "c -> a -> b -> c");
    /* a reader of the cycle is not on it */
    set(g, "ns/d", "ns/a");
    assert_false(on_cycle(g, "ns/d"));
    /* the same name in another namespace is another node */
    set(g, "other/a", "other/b");
    assert_false(on_cycle(g, "other/a"));
    /* c stops reading a: the cycle is gone, whichever edge was cyclic */
    set(g, "ns/c", "ns/x");
    assert_int_equal(depgraph_cyclic_edges(g), 0);
    assert_false(on_cycle(g, "ns/a") || on_cycle(g, "ns/b") || on_cycle(g, "ns/c"));
    /* closing it again through another edge, then deleting a node */
    set(g, "ns/x", "ns/a");
    assert_true(on_cycle(g, "ns/x"));
    expect_path(g, "ns/x", "x -> a -> b -> c -> x");
    depgraph_remove(g, "ns/b");
    assert_false(on_cycle(g, "ns/a") || on_cycle(g, "ns/x"));
    assert_int_equal(depgraph_cyclic_edges(g), 0);
    depgraph_free(g);
}

static void self_loop_and_two_cycles(void **state)
{
    (void)state;
    depgraph *g = depgraph_new();
    set(g, "ns/s", "ns/s ns/s");
    expect_path(g, "ns/s", "s -> s");
    /* two cycles sharing a node: p <-> q and q <-> r */
    set(g, "ns/p", "ns/q");
    set(g, "ns/q", "ns/p ns/r");
    set(g, "ns/r", "ns/q");
    assert_true(on_cycle(g, "ns/p") && on_cycle(g, "ns/q") && on_cycle(g, "ns/r"));
    expect_path(g, "ns/r", "r -> q -> r");
    set(g, "ns/q", "ns/r"); /* p <-> q broken, q <-> r stays */
    assert_false(on_cycle(g, "ns/p"));
    assert_true(on_cycle(g, "ns/q") && on_cycle(g, "ns/r"));
    set(g, "ns/s", NULL);
    assert_false(on_cycle(g, "ns/s"));
    depgraph_free(g);
}

static void placeholders_are_collected(void **state)
{
    (void)state;
    long live = cmem_live();
    depgraph *g = depgraph_new();
    set(g, "ns/a", "ns/missing ns/b");
    assert_int_equal(depgraph_len(g), 3);
    /* a diamond is no cycle */
    set(g, "ns/b", "ns/c ns/d");
    set(g, "ns/c", "ns/e");
    set(g, "ns/d", "ns/e");
    assert_false(on_cycle(g, "ns/a") || on_cycle(g, "ns/e"));
    depgraph_remove(g, "ns/a");
    assert_int_equal(depgraph_len(g), 4); /* b c d e: missing went with its only reader */
    depgraph_remove(g, "ns/b");
    depgraph_remove(g, "ns/c");
    depgraph_remove(g, "ns/d");
    assert_int_equal(depgraph_len(g), 0);
    assert_false(on_cycle(g, "ns/nothing"));
    assert_int_equal(depgraph_set(g, "", NULL, 0), CERR_INVALID);
    depgraph_free(g);
    assert_int_equal(cmem_live(), live);
}

/* The process's CPU time: linear against quadratic is work done, which a
 * loaded machine (2 cores shared, sanitizers) does not stretch as it
 * stretches the wall clock. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define CHAIN 100000
#define RING 10000

static void key_of(char *buf, size_t size, int i)
{
    snprintf(buf, size, "ns/n-%d", i);
}

/* n-i reads n-(i-1); added upstream first (forward) or last (reverse),
 * then closed into a ring or not. */
static void chain(depgraph *g, int n, bool reverse)
{
    char key[32], up[32];
    for (int k = 0; k < n; k++) {
        int i = reverse ? n - 1 - k : k;
        key_of(key, sizeof key, i);
        key_of(up, sizeof up, i - 1);
        const char *ups[1] = {up};
        assert_int_equal(depgraph_set(g, key, ups, i ? 1 : 0), 0);
    }
}

static void long_chain_either_order(void **state)
{
    (void)state;
    for (int reverse = 0; reverse < 2; reverse++) {
        double t0 = now_s();
        depgraph *g = depgraph_new();
        chain(g, CHAIN, reverse);
        char key[32];
        for (int i = 0; i < CHAIN; i += 997) {
            key_of(key, sizeof key, i);
            assert_false(on_cycle(g, key));
        }
        assert_int_equal(depgraph_len(g), CHAIN);
        depgraph_free(g);
        /* linear: well under a second; quadratic would be minutes */
        assert_true(now_s() - t0 < 10);
    }
}

static void ring_of_ten_thousand(void **state)
{
    (void)state;
    double t0 = now_s();
    depgraph *g = depgraph_new();
    chain(g, RING, false);
    char key[32], up[32];
    key_of(key, sizeof key, 0);
    key_of(up, sizeof up, RING - 1);
    const char *ups[1] = {up};
    assert_int_equal(depgraph_set(g, key, ups, 1), 0); /* n-0 reads n-9999: a ring */
    assert_int_equal(depgraph_cyclic_edges(g), 1);
    /* every node asks, as every reconcile would: answered from the marks */
    for (int i = 0; i < RING; i++) {
        key_of(key, sizeof key, i);
        bool on;
        char *path = NULL;
        assert_int_equal(depgraph_cycle(g, key, &on, &path, 200), 0);
        assert_true(on);
        assert_non_null(path);
        char want[48];
        snprintf(want, sizeof want, "n-%d -> ", i);
        assert_true(!strncmp(path, want, strlen(want)));
        assert_non_null(strstr(path, " -> ... -> "));
        assert_true(strlen(path) < 260);
        cmem_free(path);
    }
    /* a reader of the ring is not on it */
    set(g, "ns/reader", "ns/n-5000");
    assert_false(on_cycle(g, "ns/reader"));
    /* breaking the ring anywhere ends it for all */
    key_of(key, sizeof key, 5000);
    depgraph_remove(g, key);
    for (int i = 0; i < RING; i += 101) {
        key_of(key, sizeof key, i);
        assert_false(on_cycle(g, key));
    }
    depgraph_free(g);
    assert_true(now_s() - t0 < 10);
}

static void out_of_memory(void **state)
{
    (void)state;
    int failed = 0;
    for (unsigned long k = 1; k < 400; k++) {
        long live = cmem_live();
        depgraph *g = depgraph_new();
        if (!g) {
            failed++;
            continue;
        }
        cmem_fail_at(k);
        const char *a[] = {"ns/b"}, *b[] = {"ns/c"}, *c[] = {"ns/a"};
        int rc = depgraph_set(g, "ns/a", a, 1);
        if (!rc) rc = depgraph_set(g, "ns/b", b, 1);
        if (!rc) rc = depgraph_set(g, "ns/c", c, 1);
        bool on = false;
        char *path = NULL;
        if (!rc) rc = depgraph_cycle(g, "ns/a", &on, &path, 100);
        cmem_fail_at(0);
        if (rc) {
            assert_int_equal(rc, CERR_NOMEM);
            failed++;
        } else if (on) {
            /* every allocation succeeded: the whole answer */
            assert_non_null(path);
            assert_string_equal(path, "a -> b -> c -> a");
        }
        cmem_free(path);
        depgraph_free(g);
        assert_int_equal(cmem_live(), live);
    }
    assert_true(failed > 5);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cycles_come_and_go),         cmocka_unit_test(self_loop_and_two_cycles),
        cmocka_unit_test(placeholders_are_collected), cmocka_unit_test(long_chain_either_order),
        cmocka_unit_test(ring_of_ten_thousand),       cmocka_unit_test(out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
