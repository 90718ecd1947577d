/*
 * test_graph.c - dependency resolution: missing upstreams, cycles (with
 * the path text for the status), topological order, transitive
 * dependents, a 100,000-long chain (no recursion, no quadratic time), and
 * allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "graph.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add(graph *g, const char *name, const char *ups)
{
    /* ups: space-separated upstream names */
    const char *list[16];
    char buf[256];
    size_t n = 0;
    snprintf(buf, sizeof buf, "%s", ups ? ups : "");
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
        list[n++] = t;
    if (graph_add(g, name, list, n)) fail_msg("graph_add %s: %s", name, cerr_message());
}

/* Joins names with "," for comparison. */
static void join(const char **names, size_t n, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strncat(out, names[i], size - strlen(out) - 1);
        if (i + 1 < n) strncat(out, ",", size - strlen(out) - 1);
    }
}

static void assert_missing(graph *g, const char *name, const char *want)
{
    const char **m;
    size_t n;
    char got[256];
    assert_int_equal(graph_missing(g, name, &m, &n), 0);
    join(m, n, got, sizeof got);
    if (strcmp(got, want)) fail_msg("missing(%s) = \"%s\", want \"%s\"", name, got, want);
    cmem_free(m);
}

static void assert_cycle(graph *g, const char *name, const char *want)
{
    char *path = (char *)"x";
    assert_int_equal(graph_cycle(g, name, &path), 0);
    if (!want) {
        assert_null(path);
        assert_false(graph_on_cycle(g, name));
        return;
    }
    assert_true(graph_on_cycle(g, name));
    if (!path || strcmp(path, want))
        fail_msg("cycle(%s) = \"%s\", want \"%s\"", name, path ? path : "(none)", want);
    cmem_free(path);
}

static void assert_dependents(graph *g, const char *name, const char *want)
{
    const char **d;
    size_t n;
    char got[256];
    assert_int_equal(graph_dependents(g, name, &d, &n), 0);
    join(d, n, got, sizeof got);
    if (strcmp(got, want)) fail_msg("dependents(%s) = \"%s\", want \"%s\"", name, got, want);
    cmem_free(d);
}

static void assert_topo(graph *g, const char *want)
{
    const char **o;
    size_t n;
    char got[512];
    assert_int_equal(graph_topo_order(g, &o, &n), 0);
    join(o, n, got, sizeof got);
    if (strcmp(got, want)) fail_msg("topo = \"%s\", want \"%s\"", got, want);
    cmem_free(o);
}

static void missing_upstreams(void **state)
{
    (void)state;
    graph *g = graph_new();
    add(g, "slope", "dem cog-x mask cog-x");
    add(g, "dem", NULL);
    assert_missing(g, "slope", "cog-x,mask"); /* in order, each once */
    assert_missing(g, "dem", "");
    const char **m;
    size_t n;
    assert_int_equal(graph_missing(g, "nope", &m, &n), CERR_NOTFOUND);
    /* Adding the upstream later resolves it. */
    add(g, "mask", NULL);
    assert_missing(g, "slope", "cog-x");
    assert_true(graph_has(g, "mask"));
    assert_false(graph_has(g, "cog-x"));
    assert_int_equal(graph_len(g), 3);
    graph_free(g);
}

static void cycles_are_found_and_spelled(void **state)
{
    (void)state;
    graph *g = graph_new();
    add(g, "a", "b");
    add(g, "b", "c");
    add(g, "c", "a");
    add(g, "self", "self");
    add(g, "d", "a");   /* downstream of the cycle, not on it */
    add(g, "e", "x");   /* missing upstream, no cycle */
    add(g, "f", "g c"); /* f -> c is into the cycle */
    add(g, "g", NULL);
    assert_cycle(g, "a", "a -> b -> c -> a");
    assert_cycle(g, "b", "b -> c -> a -> b");
    assert_cycle(g, "c", "c -> a -> b -> c");
    assert_cycle(g, "self", "self -> self");
    assert_cycle(g, "d", NULL);
    assert_cycle(g, "e", NULL);
    assert_cycle(g, "f", NULL);
    assert_false(graph_on_cycle(g, "unknown"));
    char *p;
    assert_int_equal(graph_cycle(g, "unknown", &p), CERR_NOTFOUND);
    /* Cyclic nodes and all that depend on them are left out of the order. */
    assert_topo(g, "e,g");
    graph_free(g);
}

static void shortest_cycle_is_reported(void **state)
{
    (void)state;
    /* a -> b -> c -> d -> a and a shortcut a -> d: the short way is shown. */
    graph *g = graph_new();
    add(g, "a", "b d");
    add(g, "b", "c");
    add(g, "c", "d");
    add(g, "d", "a");
    assert_cycle(g, "a", "a -> d -> a");
    assert_cycle(g, "b", "b -> c -> d -> a -> b");
    graph_free(g);
}

static void topological_order(void **state)
{
    (void)state;
    graph *g = graph_new();
    /* inserted dependents first: the order must still put upstreams first */
    add(g, "stats", "slope catchments");
    add(g, "slope", "dem");
    add(g, "hillshade", "dem");
    add(g, "dem", "raw");
    add(g, "raw", NULL);
    add(g, "catchments", NULL);
    assert_topo(g, "raw,catchments,dem,slope,hillshade,stats");
    graph_free(g);
}

static void transitive_dependents(void **state)
{
    (void)state;
    graph *g = graph_new();
    add(g, "dem", NULL);
    add(g, "slope", "dem");
    add(g, "aspect", "dem");
    add(g, "stats", "slope aspect");
    add(g, "report", "stats");
    add(g, "other", NULL);
    assert_dependents(g, "dem", "slope,aspect,stats,report"); /* nearest first */
    assert_dependents(g, "slope", "stats,report");
    assert_dependents(g, "report", "");
    assert_dependents(g, "other", "");
    const char **d;
    size_t n;
    assert_int_equal(graph_dependents(g, "nope", &d, &n), CERR_NOTFOUND);
    graph_free(g);

    /* On a cycle the node itself is not its own dependent. */
    g = graph_new();
    add(g, "a", "b");
    add(g, "b", "a");
    add(g, "c", "b");
    assert_dependents(g, "a", "b,c");
    graph_free(g);
}

static void rejects_bad_nodes(void **state)
{
    (void)state;
    graph *g = graph_new();
    add(g, "a", NULL);
    const char *ups[] = {"b", ""};
    assert_int_equal(graph_add(g, "a", NULL, 0), CERR_CONFLICT);
    assert_int_equal(graph_add(g, "", NULL, 0), CERR_INVALID);
    assert_int_equal(graph_add(g, NULL, NULL, 0), CERR_INVALID);
    assert_int_equal(graph_add(g, "x", ups, 2), CERR_INVALID);
    assert_int_equal(graph_len(g), 1);
    const char **o;
    size_t n;
    assert_int_equal(graph_topo_order(g, &o, &n), 0);
    assert_int_equal(n, 1);
    cmem_free(o);
    graph_free(g);

    g = graph_new(); /* empty graph */
    assert_int_equal(graph_topo_order(g, &o, &n), 0);
    assert_int_equal(n, 0);
    assert_null(o);
    graph_free(g);
}

#define CHAIN 100000

static void long_chain(void **state)
{
    (void)state;
    graph *g = graph_new();
    char name[32], up[32];
    /* n0 <- n1 <- ... <- n99999, added last first to defeat any luck. */
    for (int i = CHAIN - 1; i >= 0; i--) {
        snprintf(name, sizeof name, "n%d", i);
        snprintf(up, sizeof up, "n%d", i - 1);
        const char *ups[] = {up};
        assert_int_equal(graph_add(g, name, ups, i ? 1 : 0), 0);
    }
    assert_false(graph_on_cycle(g, "n0"));
    assert_false(graph_on_cycle(g, "n50000"));
    const char **o;
    size_t n;
    assert_int_equal(graph_topo_order(g, &o, &n), 0);
    assert_int_equal(n, CHAIN);
    for (int i = 0; i < CHAIN; i += 9973) {
        snprintf(name, sizeof name, "n%d", i);
        assert_string_equal(o[i], name);
    }
    cmem_free(o);
    assert_int_equal(graph_dependents(g, "n0", &o, &n), 0);
    assert_int_equal(n, CHAIN - 1);
    assert_string_equal(o[0], "n1");
    assert_string_equal(o[CHAIN - 2], "n99999");
    cmem_free(o);
    graph_free(g);

    /* Close it into one 100,000-long cycle. */
    g = graph_new();
    for (int i = 0; i < CHAIN; i++) {
        snprintf(name, sizeof name, "n%d", i);
        snprintf(up, sizeof up, "n%d", (i + 1) % CHAIN);
        const char *ups[] = {up};
        assert_int_equal(graph_add(g, name, ups, 1), 0);
    }
    assert_true(graph_on_cycle(g, "n777"));
    char *path;
    assert_int_equal(graph_cycle(g, "n0", &path), 0);
    assert_non_null(path);
    assert_int_equal(strncmp(path, "n0 -> n1 -> n2 -> ", 18), 0);
    assert_non_null(strstr(path, "-> n99999 -> n0"));
    size_t arrows = 0;
    for (const char *p = path; (p = strstr(p, " -> ")); p += 4)
        arrows++;
    assert_int_equal(arrows, CHAIN);
    cmem_free(path);
    assert_int_equal(graph_topo_order(g, &o, &n), 0);
    assert_int_equal(n, 0);
    graph_free(g);
}

static void out_of_memory(void **state)
{
    (void)state;
    int failed = 0;
    for (unsigned long k = 1; k < 500; k++) {
        long live = cmem_live();
        graph *g = NULL;
        char *path = NULL;
        const char **o = NULL;
        size_t n;
        int rc = 0;
        cmem_fail_at(k);
        g = graph_new();
        if (!g) rc = CERR_NOMEM;
        const char *ab[] = {"b"}, *ba[] = {"a", "zz"};
        if (!rc) rc = graph_add(g, "a", ab, 1);
        if (!rc) rc = graph_add(g, "b", ba, 2);
        if (!rc) rc = graph_cycle(g, "a", &path);
        if (!rc) rc = graph_dependents(g, "a", &o, &n);
        cmem_free(o);
        o = NULL;
        if (!rc) rc = graph_missing(g, "b", &o, &n);
        cmem_free(o);
        o = NULL;
        if (!rc) rc = graph_topo_order(g, &o, &n);
        cmem_fail_at(0);
        if (!rc) {
            assert_string_equal(path, "a -> b -> a");
            cmem_free(path);
            cmem_free(o);
            graph_free(g);
            assert_int_equal(cmem_live(), live);
            break;
        }
        assert_int_equal(rc, CERR_NOMEM);
        cmem_free(path);
        graph_free(g);
        assert_int_equal(cmem_live(), live);
        failed++;
    }
    assert_true(failed > 10);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(missing_upstreams),
        cmocka_unit_test(cycles_are_found_and_spelled),
        cmocka_unit_test(shortest_cycle_is_reported),
        cmocka_unit_test(topological_order),
        cmocka_unit_test(transitive_dependents),
        cmocka_unit_test(rejects_bad_nodes),
        cmocka_unit_test(long_chain),
        cmocka_unit_test(out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
