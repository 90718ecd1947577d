/*
 * test_metrics.c - the Prometheus registry (metrics.h) and the controller's
 * series (ctlmetrics.h): exact exposition text with escaping, number
 * formatting, cumulative histogram buckets, the cardinality cap, name
 * validation, ordering, collectors, concurrent updates during scrapes, and
 * every allocation failing in turn without leaks.
 *
 * With TERRANE_METRICS_DUMP=FILE the suite also writes a sample of the
 * controller's full exposition (every family, awkward label values) to
 * FILE, for tests/integration/test_metrics_promtool.sh to lint with
 * `promtool check metrics`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crd.h"
#include "caches.h"
#include "ctlmetrics.h"
#include "kube/wq.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/metrics.h"
#include "sourcemetrics.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static int setup(void **state)
{
    (void)state;
    cmem_init();
    cmem_fail_at(0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ctlm_shutdown(); /* a failed ctlm test must not leave the next one initialised */
    return 0;
}

static char *render(metrics_registry *r)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(metrics_render(r, &text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* Asserts that text has line as one whole line. */
static void assert_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return;
    }
    fprintf(stderr, "--- exposition:\n%s--- end\n", text);
    fail_msg("line not found: %s", line);
}

/* The value of the sample whose name and labels are series. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == ' ') return strtod(p + n + 1, NULL);
    fprintf(stderr, "--- exposition:\n%s--- end\n", text);
    fail_msg("no sample %s", series);
    return 0;
}

static void assert_no_line_prefix(const char *text, const char *prefix)
{
    for (const char *p = text; (p = strstr(p, prefix)); p++)
        if (p == text || p[-1] == '\n') fail_msg("unexpected line starting %s", prefix);
}

/* --- numbers ---------------------------------------------------------------- */

static void number_formatting(void **state)
{
    (void)state;
    struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {-0.0, "-0"},
        {1, "1"},
        {-1.5, "-1.5"},
        {10, "10"},
        {100000, "100000"},
        {1e6, "1e+06"},
        {1234567, "1.234567e+06"},
        {0.005, "0.005"},
        {0.0001, "0.0001"},
        {0.00001, "1e-05"},
        {1e-8, "1e-08"},
        {0.1 + 0.2, "0.30000000000000004"},
        {2.5, "2.5"},
        {123456789012.0, "1.23456789012e+11"},
        {1e21, "1e+21"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = metrics_format_double(cases[i].v, buf);
        assert_string_equal(buf, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
    /* Every finite double reads back exactly. */
    unsigned long long x = 88172645463325252ULL;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (!isfinite(d)) continue;
        metrics_format_double(d, buf);
        assert_true(strtod(buf, NULL) == d);
        double small = (double)(x % 100000000) / 1000.0;
        metrics_format_double(small, buf);
        assert_true(strtod(buf, NULL) == small);
    }
}

static void exponential_buckets_match_client_go(void **state)
{
    (void)state;
    double b[10];
    metrics_exponential_buckets(10e-9, 10, 10, b);
    const char *want[] = {"1e-08",
                          "1e-07",
                          "1e-06",
                          "9.999999999999999e-06",
                          "9.999999999999999e-05",
                          "0.001",
                          "0.01",
                          "0.1",
                          "1",
                          "10"};
    char buf[32];
    for (int i = 0; i < 10; i++) {
        metrics_format_double(b[i], buf);
        assert_string_equal(buf, want[i]);
    }
}

/* --- exposition ----------------------------------------------------------------- */

static void exposition_exact(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new(0);
    assert_non_null(r);
    metrics_family *c, *g, *h;
    /* Registered out of order: rendering sorts by name. */
    assert_int_equal(metrics_gauge_new(r, "test_temperature_celsius", "A gauge.", NULL, &g), 0);
    assert_int_equal(metrics_counter_new(r, "test_events_total",
                                         "Events with \\ backslash\nand \"quotes\".",
                                         L("asset", "kind"), &c),
                     0);
    double b[] = {0.5, 1, 2.5};
    assert_int_equal(
        metrics_histogram_new(r, "test_duration_seconds", "A histogram.", L("op"), b, 3, &h), 0);

    metrics_inc(metrics_with(c, "plain", "x"));
    /* an asset key a"b\c followed by a newline and d */
    metrics_add(metrics_with(c, "a\"b\\c\nd", "x"), 2);
    metrics_set(metrics_get(g, NULL), -1.5);
    metrics_series *hs = metrics_with(h, "warp");
    double obs[] = {0.25, 0.5, 0.75, 1, 3};
    for (int i = 0; i < 5; i++)
        metrics_observe(hs, obs[i]);

    char *text = render(r);
    static const char want[] =
        "# HELP test_duration_seconds A histogram.\n"
        "# TYPE test_duration_seconds histogram\n"
        "test_duration_seconds_bucket{op=\"warp\",le=\"0.5\"} 2\n"
        "test_duration_seconds_bucket{op=\"warp\",le=\"1\"} 4\n"
        "test_duration_seconds_bucket{op=\"warp\",le=\"2.5\"} 4\n"
        "test_duration_seconds_bucket{op=\"warp\",le=\"+Inf\"} 5\n"
        "test_duration_seconds_sum{op=\"warp\"} 5.5\n"
        "test_duration_seconds_count{op=\"warp\"} 5\n"
        "# HELP test_events_total Events with \\\\ backslash\\nand \"quotes\".\n"
        "# TYPE test_events_total counter\n"
        "test_events_total{asset=\"a\\\"b\\\\c\\nd\",kind=\"x\"} 2\n"
        "test_events_total{asset=\"plain\",kind=\"x\"} 1\n"
        "# HELP test_temperature_celsius A gauge.\n"
        "# TYPE test_temperature_celsius gauge\n"
        "test_temperature_celsius -1.5\n";
    /* The registry's own family sorts first ("terrane_" < "test_"). */
    assert_true(
        !strncmp(text, "# HELP " METRICS_DROPPED_NAME " ", 7 + strlen(METRICS_DROPPED_NAME) + 1));
    const char *rest = strstr(text, "# HELP test_duration_seconds");
    assert_non_null(rest);
    assert_string_equal(rest, want);
    assert_line(text, "# TYPE " METRICS_DROPPED_NAME " counter");
    cmem_free(text);
    metrics_registry_free(r);
}

static void histogram_buckets_cumulative(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new(0);
    metrics_family *h;
    double b[] = {1, 2, 4, INFINITY}; /* a trailing +Inf is accepted and implied */
    assert_int_equal(metrics_histogram_new(r, "h_seconds", "h", NULL, b, 4, &h), 0);
    metrics_series *s = metrics_get(h, NULL);
    char *text = render(r);
    /* An unobserved histogram shows every bucket at 0. */
    assert_line(text, "h_seconds_bucket{le=\"1\"} 0");
    assert_line(text, "h_seconds_bucket{le=\"+Inf\"} 0");
    assert_line(text, "h_seconds_sum 0");
    assert_line(text, "h_seconds_count 0");
    cmem_free(text);

    /* Bounds are inclusive: 1 is in le="1", 4 in le="4", 5 only in +Inf. */
    double obs[] = {0, 1, 1.5, 2, 3, 4, 5, 100, -1, NAN};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        metrics_observe(s, obs[i]);
    assert_int_equal(metrics_hist_count(s), 9); /* NaN ignored */
    text = render(r);
    assert_line(text, "h_seconds_bucket{le=\"1\"} 3");
    assert_line(text, "h_seconds_bucket{le=\"2\"} 5");
    assert_line(text, "h_seconds_bucket{le=\"4\"} 7");
    assert_line(text, "h_seconds_bucket{le=\"+Inf\"} 9");
    assert_line(text, "h_seconds_sum 115.5");
    assert_line(text, "h_seconds_count 9");
    assert_null(strstr(text, "le=\"+Inf\"} 9\nh_seconds_bucket")); /* +Inf is last */
    cmem_free(text);

    /* Counters refuse decrements and NaN; gauges go both ways; observe
     * and add do not cross types. */
    metrics_family *c, *g;
    assert_int_equal(metrics_counter_new(r, "c_total", "c", NULL, &c), 0);
    assert_int_equal(metrics_gauge_new(r, "g", "g", NULL, &g), 0);
    metrics_series *cs = metrics_get(c, NULL), *gs = metrics_get(g, NULL);
    metrics_add(cs, 2.5);
    metrics_add(cs, -1);
    metrics_add(cs, NAN);
    metrics_observe(cs, 7);
    assert_true(metrics_value(cs) == 2.5);
    metrics_set(cs, 10); /* mirroring an external count */
    assert_true(metrics_value(cs) == 10);
    metrics_add(gs, -3);
    metrics_inc(gs);
    assert_true(metrics_value(gs) == -2);
    metrics_add(s, 5);
    metrics_set(s, 5);
    assert_int_equal(metrics_hist_count(s), 9);
    assert_true(metrics_value(s) == 0);
    /* NULL everywhere is a no-op. */
    metrics_inc(NULL);
    metrics_add(NULL, 1);
    metrics_set(NULL, 1);
    metrics_observe(NULL, 1);
    assert_null(metrics_get(NULL, NULL));
    assert_null(metrics_with(NULL));
    metrics_registry_free(r);
}

static void cardinality_cap(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new(3);
    metrics_family *f;
    assert_int_equal(metrics_counter_new(r, "assets_total", "per asset", L("asset"), &f), 0);
    char key[32];
    int created = 0;
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "k%d", i);
        metrics_series *s = metrics_with(f, key);
        if (s) created++;
        metrics_inc(s);
    }
    assert_int_equal(created, 3);
    /* Existing series keep working at the cap; a refused one stays refused. */
    assert_non_null(metrics_with(f, "k0"));
    metrics_inc(metrics_with(f, "k0"));
    assert_null(metrics_with(f, "k4"));
    char *text = render(r);
    assert_line(text, "assets_total{asset=\"k0\"} 2");
    assert_line(text, "assets_total{asset=\"k2\"} 1");
    assert_null(strstr(text, "k3"));
    /* k3 and k4 refused once each in the loop, k4 once more. */
    assert_line(text, METRICS_DROPPED_NAME "{metric=\"assets_total\"} 3");
    cmem_free(text);
    metrics_registry_free(r);
}

static void registration_errors(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new(0);
    metrics_family *f = (metrics_family *)1;
    double b[] = {1, 2};
    double bad_b[] = {1, 1};
    double nan_b[] = {1, NAN};
    assert_int_equal(metrics_counter_new(r, "1abc", "x", NULL, &f), CERR_INVALID);
    assert_null(f);
    assert_non_null(strstr(cerr_message(), "1abc"));
    assert_int_equal(metrics_counter_new(r, "", "x", NULL, &f), CERR_INVALID);
    assert_int_equal(metrics_counter_new(r, "a-b", "x", NULL, &f), CERR_INVALID);
    assert_int_equal(metrics_counter_new(r, "ok_total", NULL, NULL, &f), CERR_INVALID);
    assert_int_equal(metrics_counter_new(r, "ok_total", "x", L("__reserved"), &f), CERR_INVALID);
    assert_int_equal(metrics_counter_new(r, "ok_total", "x", L("a:b"), &f), CERR_INVALID);
    assert_int_equal(metrics_counter_new(r, "ok_total", "x", L("a", "a"), &f), CERR_INVALID);
    assert_int_equal(
        metrics_counter_new(r, "ok_total", "x", L("a", "b", "c", "d", "e", "f", "g", "h", "i"), &f),
        CERR_INVALID);
    assert_int_equal(metrics_histogram_new(r, "h_seconds", "x", L("le"), b, 2, &f), CERR_INVALID);
    assert_int_equal(metrics_histogram_new(r, "h_seconds", "x", NULL, bad_b, 2, &f), CERR_INVALID);
    assert_int_equal(metrics_histogram_new(r, "h_seconds", "x", NULL, nan_b, 2, &f), CERR_INVALID);
    assert_int_equal(metrics_counter_new(r, "ns:ok_total", "x", L("le"), &f),
                     0); /* le is fine here */
    assert_int_equal(metrics_counter_new(r, "ns:ok_total", "x", NULL, &f), CERR_CONFLICT);
    assert_int_equal(metrics_gauge_new(r, METRICS_DROPPED_NAME, "x", NULL, &f), CERR_CONFLICT);
    /* A histogram without buckets has only +Inf. */
    assert_int_equal(metrics_histogram_new(r, "h0_seconds", "x", NULL, NULL, 0, &f), 0);
    metrics_observe(metrics_get(f, NULL), 3);
    char *text = render(r);
    assert_line(text, "h0_seconds_bucket{le=\"+Inf\"} 1");
    cmem_free(text);
    metrics_registry_free(r);
}

static void ordering_is_stable(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new(0);
    metrics_family *b, *a;
    assert_int_equal(metrics_gauge_new(r, "zz_b", "b", L("x", "y"), &b), 0);
    assert_int_equal(metrics_gauge_new(r, "aa_a", "a", NULL, &a), 0);
    metrics_set(metrics_with(b, "2", "a"), 1);
    metrics_set(metrics_with(b, "1", "b"), 2);
    metrics_set(metrics_with(b, "1", "a"), 3);
    metrics_set(metrics_with(b, "10", ""), 4);
    metrics_set(metrics_get(a, NULL), 5);
    char *t1 = render(r);
    const char *pa = strstr(t1, "# HELP aa_a"), *pd = strstr(t1, "# HELP " METRICS_DROPPED_NAME),
               *pb = strstr(t1, "# HELP zz_b");
    assert_true(pa && pd && pb && pa < pd && pd < pb);
    const char *l1 = strstr(t1, "zz_b{x=\"1\",y=\"a\"} 3"),
               *l2 = strstr(t1, "zz_b{x=\"1\",y=\"b\"} 2"),
               *l3 = strstr(t1, "zz_b{x=\"10\",y=\"\"} 4"),
               *l4 = strstr(t1, "zz_b{x=\"2\",y=\"a\"} 1");
    assert_true(l1 && l2 && l3 && l4 && l1 < l2 && l2 < l3 && l3 < l4);
    char *t2 = render(r);
    assert_string_equal(t1, t2);
    cmem_free(t1);
    cmem_free(t2);
    metrics_registry_free(r);
}

static int collected;
static void collector_fn(void *ctx)
{
    collected++;
    metrics_set(ctx, collected);
}

/* A collector mirroring a set of objects: the series of an object that went
 * away is not rendered, one that comes back is rendered again. */
static const char *mirrored[3];
static metrics_family *mirror_fam;

static void mirror_fn(void *ctx)
{
    (void)ctx;
    metrics_hide_all(mirror_fam);
    for (size_t i = 0; i < 3; i++)
        if (mirrored[i]) metrics_set(metrics_with(mirror_fam, mirrored[i]), (double)(i + 1));
}

static void hidden_series_not_rendered(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new(0);
    static const char *const L[] = {"asset", NULL};
    assert_int_equal(metrics_gauge_new(r, "lag", "per object", L, &mirror_fam), 0);
    assert_int_equal(metrics_add_collector(r, mirror_fn, NULL), 0);
    mirrored[0] = "a";
    mirrored[1] = "b";
    mirrored[2] = NULL;
    char *t = render(r);
    assert_line(t, "lag{asset=\"a\"} 1");
    assert_line(t, "lag{asset=\"b\"} 2");
    cmem_free(t);
    mirrored[0] = NULL; /* "a" deleted */
    t = render(r);
    assert_null(strstr(t, "asset=\"a\""));
    assert_line(t, "lag{asset=\"b\"} 2");
    cmem_free(t);
    mirrored[1] = NULL; /* all gone: the family's header only */
    t = render(r);
    assert_null(strstr(t, "lag{"));
    assert_line(t, "# TYPE lag gauge");
    cmem_free(t);
    mirrored[0] = "a"; /* back */
    t = render(r);
    assert_line(t, "lag{asset=\"a\"} 1");
    assert_null(strstr(t, "asset=\"b\""));
    cmem_free(t);
    metrics_remove_collector(r, mirror_fn, NULL);
    metrics_hide_all(NULL);
    metrics_registry_free(r);
}

static void collectors_run_at_render(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new(0);
    metrics_family *g;
    assert_int_equal(metrics_gauge_new(r, "sampled", "sampled at scrape", NULL, &g), 0);
    metrics_series *s = metrics_get(g, NULL);
    collected = 0;
    assert_int_equal(metrics_add_collector(r, collector_fn, s), 0);
    char *t = render(r);
    assert_line(t, "sampled 1");
    cmem_free(t);
    t = render(r);
    assert_line(t, "sampled 2");
    cmem_free(t);
    metrics_remove_collector(r, collector_fn, s);
    t = render(r);
    assert_line(t, "sampled 2");
    cmem_free(t);
    assert_int_equal(collected, 2);
    metrics_registry_free(r);
}

/* --- concurrency ------------------------------------------------------------------ */

typedef struct {
    metrics_family *c, *h;
    int id;
} worker_arg;

#define THREADS 4
#define ROUNDS 20000

static void *updater(void *p)
{
    worker_arg *a = p;
    char key[8];
    snprintf(key, sizeof key, "t%d", a->id % 2);
    for (int i = 0; i < ROUNDS; i++) {
        metrics_inc(metrics_with(a->c, key));
        metrics_observe(metrics_with(a->h, key), (double)(i % 4));
    }
    return NULL;
}

/* Each histogram in a scrape is consistent: its +Inf bucket equals its
 * count and the buckets never decrease. */
static void check_consistent(const char *text)
{
    for (const char *p = strstr(text, "hist_seconds_bucket{"); p;) {
        unsigned long long prev = 0, v = 0;
        const char *line = p;
        for (;;) {
            const char *sp = strchr(line, ' ');
            v = strtoull(sp + 1, NULL, 10);
            assert_true(v >= prev);
            prev = v;
            bool inf = strstr(line, "le=\"+Inf\"") && strstr(line, "le=\"+Inf\"") < sp;
            line = strchr(line, '\n') + 1;
            if (inf) break;
        }
        line = strchr(line, '\n') + 1; /* _sum */
        assert_true(!strncmp(line, "hist_seconds_count{", 19));
        assert_int_equal(strtoull(strchr(line, ' ') + 1, NULL, 10), v);
        p = strstr(line, "hist_seconds_bucket{");
    }
}

static void concurrent_updates_and_scrapes(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new(0);
    metrics_family *c, *h;
    double b[] = {0.5, 1.5, 2.5};
    assert_int_equal(metrics_counter_new(r, "ops_total", "ops", L("t"), &c), 0);
    assert_int_equal(metrics_histogram_new(r, "hist_seconds", "h", L("t"), b, 3, &h), 0);
    pthread_t th[THREADS];
    worker_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_arg){c, h, i};
        assert_int_equal(pthread_create(&th[i], NULL, updater, &args[i]), 0);
    }
    for (int i = 0; i < 50; i++) {
        char *t = render(r);
        check_consistent(t);
        cmem_free(t);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    char *t = render(r);
    char want[128];
    snprintf(want, sizeof want, "ops_total{t=\"t0\"} %d", ROUNDS * THREADS / 2);
    assert_line(t, want);
    snprintf(want, sizeof want, "hist_seconds_count{t=\"t1\"} %d", ROUNDS * THREADS / 2);
    assert_line(t, want);
    /* values 0,1,2,3 in turn: a quarter each */
    snprintf(want, sizeof want, "hist_seconds_bucket{t=\"t1\",le=\"0.5\"} %d",
             ROUNDS * THREADS / 8);
    assert_line(t, want);
    check_consistent(t);
    cmem_free(t);
    metrics_registry_free(r);
}

/* --- out of memory -------------------------------------------------------------------- */

static int build_and_render(void)
{
    metrics_registry *r = metrics_registry_new(0);
    if (!r) return CERR_NOMEM;
    metrics_family *c = NULL, *h = NULL;
    double b[] = {1, 2};
    int rc = metrics_counter_new(r, "c_total", "c", L("a", "b"), &c);
    if (!rc) rc = metrics_histogram_new(r, "h_seconds", "h", L("a"), b, 2, &h);
    char key[16];
    for (int i = 0; !rc && i < 40; i++) {
        snprintf(key, sizeof key, "v%d", i);
        metrics_inc(metrics_with(c, key, "x\"y"));
        metrics_observe(metrics_with(h, key), i);
    }
    if (!rc) {
        char *text = NULL;
        size_t len;
        rc = metrics_render(r, &text, &len);
        cmem_free(text);
    }
    metrics_registry_free(r);
    return rc;
}

static void every_allocation_failure(void **state)
{
    (void)state;
    long live = cmem_live();
    for (unsigned long n = 1;; n++) {
        unsigned long before = cmem_count();
        cmem_fail_at(n);
        int rc = build_and_render();
        cmem_fail_at(0);
        assert_int_equal(cmem_live(), live);
        /* A failed series creation is silent (the update is dropped); a
         * failed registration or render says CERR_NOMEM. */
        assert_true(rc == 0 || rc == CERR_NOMEM);
        if (cmem_count() - before < n) {
            assert_int_equal(rc, 0); /* nothing failed this time: all covered */
            break;
        }
        assert_true(n < 100000);
    }
}

/* --- the controller's series ------------------------------------------------------------- */

static char *ctlm_render(void)
{
    metrics_registry *r = ctlm_registry();
    assert_non_null(r);
    return render(r);
}

static void ctlm_noop_without_init(void **state)
{
    (void)state;
    assert_null(ctlm_registry());
    ctlm_reconcile_begin();
    ctlm_reconcile_end(CTLM_RECONCILE_SUCCESS, 0.1);
    ctlm_retry(CTLM_REASON_OOMKILLED);
    ctlm_set_stale(3);
    ctlm_kube_observe("h", "GET", 200, 0.1);
    ctlm_materialization_finished(&(ctlm_materialization){.pool = "cpu"});
    assert_int_equal(ctlm_workqueue_attach(NULL), 0);
}

static void ctlm_reconcile_series(void **state)
{
    (void)state;
    assert_int_equal(ctlm_init(&(ctlm_config){.version = "1.2.3", .commit = "abc"}), 0);
    assert_int_equal(ctlm_init(NULL), CERR_INVALID);
    ctlm_set_max_concurrent_reconciles(4);
    ctlm_reconcile_begin();
    ctlm_reconcile_begin();
    char *t = ctlm_render();
    assert_line(t, "controller_runtime_active_workers{controller=\"assetmaterialization\"} 2");
    assert_line(
        t, "controller_runtime_max_concurrent_reconciles{controller=\"assetmaterialization\"} 4");
    /* Every result exists from the start, at 0. */
    assert_line(t, "controller_runtime_reconcile_total{controller=\"assetmaterialization\",result="
                   "\"requeue_after\"} 0");
    assert_line(t, "terrane_build_info{version=\"1.2.3\",commit=\"abc\"} 1");
    cmem_free(t);
    ctlm_reconcile_end(CTLM_RECONCILE_SUCCESS, 0.004);
    ctlm_reconcile_end(CTLM_RECONCILE_ERROR, 0.3);
    t = ctlm_render();
    assert_line(t, "controller_runtime_active_workers{controller=\"assetmaterialization\"} 0");
    assert_line(t, "controller_runtime_reconcile_total{controller=\"assetmaterialization\",result="
                   "\"success\"} 1");
    assert_line(t, "controller_runtime_reconcile_total{controller=\"assetmaterialization\",result="
                   "\"error\"} 1");
    assert_line(t,
                "controller_runtime_reconcile_errors_total{controller=\"assetmaterialization\"} 1");
    assert_line(t, "controller_runtime_reconcile_time_seconds_bucket{controller="
                   "\"assetmaterialization\",le=\"0.005\"} 1");
    assert_line(t, "controller_runtime_reconcile_time_seconds_bucket{controller="
                   "\"assetmaterialization\",le=\"0.3\"} 2");
    assert_line(t, "controller_runtime_reconcile_time_seconds_bucket{controller="
                   "\"assetmaterialization\",le=\"60\"} 2");
    assert_line(
        t,
        "controller_runtime_reconcile_time_seconds_count{controller=\"assetmaterialization\"} 2");
    /* process metrics are sampled */
    assert_no_line_prefix(t, "process_resident_memory_bytes 0\n");
    assert_non_null(strstr(t, "\nprocess_resident_memory_bytes "));
    assert_non_null(strstr(t, "\nprocess_start_time_seconds 1"));
    cmem_free(t);
    ctlm_shutdown();
    assert_null(ctlm_registry());
}

static void ctlm_workqueue_series(void **state)
{
    (void)state;
    assert_int_equal(ctlm_init(NULL), 0);
    /* A retry delay of an hour: ns/c stays waiting, not in the depth, however
     * slowly the test runs (Valgrind). */
    wq *q = wq_new("assetmaterialization",
                   ratelimit_new(3600ull * 1000000000ull, 3600ull * 1000000000ull, 1000, 1000));
    assert_non_null(q);
    assert_int_equal(ctlm_workqueue_attach(q), 0);
    wq_add(q, "ns/a");
    wq_add(q, "ns/b");
    wq_add(q, "ns/a");
    const char *k = NULL;
    assert_int_equal(wq_get(q, &k), 0);
    wq_done(q, k);
    wq_add_rate_limited(q, "ns/c");
    char *t = ctlm_render();
    assert_line(t, "workqueue_depth{name=\"assetmaterialization\"} 1");
    assert_line(t, "workqueue_adds_total{name=\"assetmaterialization\"} 2");
    assert_line(t, "workqueue_retries_total{name=\"assetmaterialization\"} 1");
    assert_line(t, "workqueue_queue_duration_seconds_count{name=\"assetmaterialization\"} 1");
    assert_line(t, "workqueue_work_duration_seconds_count{name=\"assetmaterialization\"} 1");
    assert_line(t, "workqueue_unfinished_work_seconds{name=\"assetmaterialization\"} 0");
    assert_line(t, "workqueue_longest_running_processor_seconds{name=\"assetmaterialization\"} 0");
    assert_non_null(strstr(
        t, "workqueue_queue_duration_seconds_bucket{name=\"assetmaterialization\",le=\"1e-08\"} "));
    assert_non_null(strstr(t, "workqueue_work_duration_seconds_bucket{name="
                              "\"assetmaterialization\",le=\"9.999999999999999e-06\"} "));
    assert_line(
        t, "workqueue_work_duration_seconds_bucket{name=\"assetmaterialization\",le=\"+Inf\"} 1");
    cmem_free(t);
    /* A key in progress shows up in the unfinished-work gauges. */
    assert_int_equal(wq_get(q, &k), 0);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    t = ctlm_render();
    assert_true(
        sample(t, "workqueue_longest_running_processor_seconds{name=\"assetmaterialization\"}") >=
        0.02);
    assert_true(sample(t, "workqueue_unfinished_work_seconds{name=\"assetmaterialization\"}") >=
                0.02);
    cmem_free(t);
    wq_done(q, k);
    t = ctlm_render();
    double adds = sample(t, "workqueue_adds_total{name=\"assetmaterialization\"}");
    double works =
        sample(t, "workqueue_work_duration_seconds_count{name=\"assetmaterialization\"}");
    cmem_free(t);
    /* Detached: neither sampled nor observed any more; the queue can go. */
    ctlm_workqueue_detach(q);
    wq_add(q, "ns/d");
    assert_int_equal(wq_get(q, &k), 0);
    wq_done(q, k);
    t = ctlm_render();
    assert_true(sample(t, "workqueue_adds_total{name=\"assetmaterialization\"}") == adds);
    assert_true(sample(t, "workqueue_work_duration_seconds_count{name=\"assetmaterialization\"}") ==
                works);
    cmem_free(t);
    wq_shut_down(q);
    wq_free(q);
    ctlm_shutdown();
}

/* A pod created by a reconcile: the seconds since its key became due in
 * the queue (added, then waiting 30 ms before and after wq_get). */
static void ctlm_event_to_pod_series(void **state)
{
    (void)state;
    assert_int_equal(ctlm_init(NULL), 0);
    wq *q = wq_new("assetmaterialization", NULL);
    assert_non_null(q);
    assert_int_equal(ctlm_workqueue_attach(q), 0);
    char *t = ctlm_render();
    assert_line(t,
                "terrane_event_to_pod_create_seconds_count{controller=\"assetmaterialization\"} 0");
    cmem_free(t);
    wq_add(q, "ns/a");
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    const char *k = NULL;
    assert_int_equal(wq_get(q, &k), 0);
    nanosleep(&ts, NULL);
    ctlm_pod_create_sent();
    nanosleep(&ts, NULL); /* the API's time: not counted */
    ctlm_pod_created();
    wq_done(q, k);
    t = ctlm_render();
    assert_line(t,
                "terrane_event_to_pod_create_seconds_count{controller=\"assetmaterialization\"} 1");
    assert_line(t, "terrane_event_to_pod_create_seconds_bucket{controller="
                   "\"assetmaterialization\",le=\"0.05\"} 0");
    double sum =
        sample(t, "terrane_event_to_pod_create_seconds_sum{controller=\"assetmaterialization\"}");
    assert_true(sum >= 0.06 && sum < 10);
    cmem_free(t);
    /* the create request is observed once; nothing without a new one */
    ctlm_pod_created();
    t = ctlm_render();
    assert_line(t,
                "terrane_event_to_pod_create_seconds_count{controller=\"assetmaterialization\"} 1");
    cmem_free(t);
    ctlm_workqueue_detach(q);
    wq_shut_down(q);
    wq_free(q);
    ctlm_shutdown();
    ctlm_pod_created(); /* without metrics: nothing */
}

/* An informer that never started: synced 0, nothing listed or cached. */
static void ctlm_informer_series(void **state)
{
    (void)state;
    assert_int_equal(ctlm_init(NULL), 0);
    kube_config cfg = {.server = "http://127.0.0.1:1"};
    kube_client *c = NULL;
    informer *inf = NULL;
    assert_int_equal(kube_client_new(&cfg, &c), 0);
    assert_int_equal(informer_new(c, &KUBE_PODS, NULL, NULL, 0, NULL, &inf), 0);
    assert_int_equal(ctlm_informer_attach(inf, "pods"), 0);
    char *t = ctlm_render();
    assert_line(t, "terrane_informer_synced{resource=\"pods\"} 0");
    assert_line(t, "terrane_informer_relists_total{resource=\"pods\"} 0");
    assert_line(t, "terrane_informer_watch_restarts_total{resource=\"pods\"} 0");
    assert_line(t, "terrane_informer_cached_objects{resource=\"pods\"} 0");
    cmem_free(t);
    ctlm_informer_detach(inf);
    informer_free(inf);
    t = ctlm_render(); /* no longer sampled: must not touch the freed informer */
    cmem_free(t);
    ctlm_shutdown();
    kube_client_free(c);
}

static void ctlm_rest_client_series(void **state)
{
    (void)state;
    assert_int_equal(ctlm_init(NULL), 0);
    char host[] = "10.0.0.1:443";
    ctlm_kube_observe(host, "LIST", 200, 0.02);
    ctlm_kube_observe(host, "GET", 404, 0.002);
    ctlm_kube_observe(host, "WATCH", 200, 300);
    ctlm_kube_observe(host, "PATCH", 0, 1.5);
    char *t = ctlm_render();
    assert_line(t,
                "rest_client_requests_total{code=\"200\",host=\"10.0.0.1:443\",method=\"GET\"} 2");
    assert_line(t,
                "rest_client_requests_total{code=\"404\",host=\"10.0.0.1:443\",method=\"GET\"} 1");
    assert_line(
        t, "rest_client_requests_total{code=\"<error>\",host=\"10.0.0.1:443\",method=\"PATCH\"} 1");
    /* The watch's five minutes are not a request latency. */
    assert_line(t,
                "rest_client_request_duration_seconds_count{verb=\"GET\",host=\"10.0.0.1:443\"} 2");
    assert_line(t, "rest_client_request_duration_seconds_bucket{verb=\"GET\",host=\"10.0.0.1:443\","
                   "le=\"0.005\"} 1");
    assert_line(t, "rest_client_request_duration_seconds_bucket{verb=\"PATCH\",host=\"10.0.0.1:"
                   "443\",le=\"2\"} 1");
    cmem_free(t);
    ctlm_shutdown();
}

static void ctlm_materialization_series(void **state)
{
    (void)state;
    FILE *emf = tmpfile();
    assert_non_null(emf);
    assert_int_equal(ctlm_init(&(ctlm_config){.emf_out = emf,
                                              .pools = L("cpu", "highmem"),
                                              .operations = L("cog", "terrain")}),
                     0);
    char *t = ctlm_render();
    /* Known pools and operations start at 0. */
    assert_line(t, "terrane_materializations_total{pool=\"highmem\",operation=\"terrain\",result="
                   "\"cache_hit\"} 0");
    assert_line(t, "terrane_worker_pods{pool=\"cpu\",phase=\"pending\"} 0");
    assert_line(t, "terrane_attempts_total{pool=\"cpu\",reason=\"OOMKilled\"} 0");
    assert_line(t, "terrane_retries_total{reason=\"Evicted\"} 0");
    assert_line(t,
                "terrane_materialization_duration_seconds_count{operation=\"cog\",pool=\"cpu\"} 0");
    cmem_free(t);

    ctlm_materialization_finished(&(ctlm_materialization){.pool = "highmem",
                                                          .operation = "terrain",
                                                          .result = CTLM_SUCCEEDED,
                                                          .seconds = 42,
                                                          .namespace_ = "hydro",
                                                          .name = "dem-slope",
                                                          .asset_key = "a\"b\\c\nd",
                                                          .data_version = "sha256:00",
                                                          .attempts = 2,
                                                          .output_bytes = 1234});
    ctlm_materialization_finished(&(ctlm_materialization){
        .pool = "cpu", .operation = "cog", .result = CTLM_CACHE_HIT, .seconds = 1});
    ctlm_materialization_finished(&(ctlm_materialization){
        .pool = "cpu", .operation = "cog", .result = CTLM_FAILED, .seconds = 4000});
    ctlm_attempt_finished("highmem", CTLM_REASON_OOMKILLED);
    ctlm_attempt_finished("highmem", CTLM_REASON_SUCCEEDED);
    ctlm_retry(CTLM_REASON_OOMKILLED);
    ctlm_set_pods("cpu", 3, 2);
    ctlm_set_stale(7);
    ctlm_set_leader("terrane-controller", true);
    t = ctlm_render();
    assert_line(t, "terrane_materializations_total{pool=\"highmem\",operation=\"terrain\",result="
                   "\"succeeded\"} 1");
    assert_line(
        t, "terrane_materializations_total{pool=\"cpu\",operation=\"cog\",result=\"cache_hit\"} 1");
    assert_line(
        t, "terrane_materializations_total{pool=\"cpu\",operation=\"cog\",result=\"failed\"} 1");
    assert_line(t, "terrane_materialization_duration_seconds_bucket{operation=\"terrain\",pool="
                   "\"highmem\",le=\"30\"} 0");
    assert_line(t, "terrane_materialization_duration_seconds_bucket{operation=\"terrain\",pool="
                   "\"highmem\",le=\"60\"} 1");
    /* The cache hit is not timed; the failure (4000 s) is, above every bucket. */
    assert_line(t,
                "terrane_materialization_duration_seconds_count{operation=\"cog\",pool=\"cpu\"} 1");
    assert_line(t, "terrane_materialization_duration_seconds_bucket{operation=\"cog\",pool=\"cpu\","
                   "le=\"3600\"} 0");
    assert_line(t, "terrane_attempts_total{pool=\"highmem\",reason=\"OOMKilled\"} 1");
    assert_line(t, "terrane_attempts_total{pool=\"highmem\",reason=\"Succeeded\"} 1");
    assert_line(t, "terrane_retries_total{reason=\"OOMKilled\"} 1");
    assert_line(t, "terrane_worker_pods{pool=\"cpu\",phase=\"running\"} 3");
    assert_line(t, "terrane_worker_pods{pool=\"cpu\",phase=\"pending\"} 2");
    assert_line(t, "terrane_stale_assets 7");
    assert_line(t, "leader_election_master_status{name=\"terrane-controller\"} 1");
    cmem_free(t);
    ctlm_set_leader("terrane-controller", false);
    t = ctlm_render();
    assert_line(t, "leader_election_master_status{name=\"terrane-controller\"} 0");
    cmem_free(t);
    ctlm_shutdown();

    /* One EMF line per materialization, the asset key escaped. */
    rewind(emf);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, emf)) {
        n++;
        json_error_t err;
        json_t *doc = json_loads(line, 0, &err);
        assert_non_null(doc);
        if (n == 1) {
            assert_string_equal(json_string_value(json_object_get(doc, "assetKey")), "a\"b\\c\nd");
            assert_string_equal(json_string_value(json_object_get(doc, "Pool")), "highmem");
            assert_int_equal(json_integer_value(json_object_get(doc, "Attempts")), 2);
        }
        json_decref(doc);
    }
    assert_int_equal(n, 3);
    fclose(emf);
}

/* A sample of everything the controller exposes, for promtool. */
static void ctlm_dump_sample(void **state)
{
    (void)state;
    const char *path = getenv("TERRANE_METRICS_DUMP");
    assert_non_null(path);
    assert_int_equal(ctlm_init(&(ctlm_config){.pools = L("cpu", "highmem", "gpu"),
                                              .operations = L("cog", "terrain")}),
                     0);
    wq *q = wq_new("assetmaterialization", NULL);
    ctlm_workqueue_attach(q);
    kube_config cfg = {.server = "http://127.0.0.1:1"};
    kube_client *c = NULL;
    informer *inf = NULL;
    assert_int_equal(kube_client_new(&cfg, &c), 0);
    assert_int_equal(informer_new(c, &CRD_ASSETMATERIALIZATIONS, NULL, NULL, 0, NULL, &inf), 0);
    ctlm_informer_attach(inf, "assetmaterializations");
    wq_add(q, "hydro/dem");
    const char *k;
    wq_get(q, &k);
    wq_done(q, k);
    ctlm_set_max_concurrent_reconciles(4);
    ctlm_reconcile_begin();
    ctlm_reconcile_end(CTLM_RECONCILE_REQUEUE_AFTER, 0.012);
    ctlm_kube_observe("127.0.0.1:6443", "LIST", 200, 0.03);
    ctlm_kube_observe("127.0.0.1:6443", "POST", 0, 0.5);
    ctlm_set_leader("terrane-controller", true);
    ctlm_materialization_finished(&(ctlm_materialization){
        .pool = "cpu", .operation = "terrain", .result = CTLM_SUCCEEDED, .seconds = 12.5});
    /* A label value with every character the format escapes. */
    ctlm_materialization_finished(&(ctlm_materialization){
        .pool = "odd\"pool\\name\nx", .operation = "cog", .result = CTLM_FAILED, .seconds = 3});
    ctlm_attempt_finished("cpu", CTLM_REASON_PREEMPTED);
    ctlm_retry(CTLM_REASON_PREEMPTED);
    ctlm_set_pods("gpu", 1, 4);
    ctlm_set_stale(2);
    /* The source metrics (sourcemetrics.h) over empty caches: the lag gauge
     * has no series here, its family is still exposed. */
    caches *cs = NULL;
    assert_int_equal(caches_new(c, NULL, 0, q, NULL, &cs), 0);
    assert_int_equal(srcm_start(cs), 0);
    srcm_observed("hydro", "succeeded", 0.8, true);
    srcm_observed("hydro", "SourceNotFound", 0.2, false);
    char *t = ctlm_render();
    srcm_stop();
    caches_free(cs);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(t, f);
    fclose(f);
    cmem_free(t);
    ctlm_workqueue_detach(q);
    wq_free(q);
    ctlm_informer_detach(inf);
    informer_free(inf);
    ctlm_shutdown();
    kube_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(number_formatting, setup, teardown),
        cmocka_unit_test_setup_teardown(exponential_buckets_match_client_go, setup, teardown),
        cmocka_unit_test_setup_teardown(exposition_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(histogram_buckets_cumulative, setup, teardown),
        cmocka_unit_test_setup_teardown(cardinality_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(registration_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(ordering_is_stable, setup, teardown),
        cmocka_unit_test_setup_teardown(collectors_run_at_render, setup, teardown),
        cmocka_unit_test_setup_teardown(hidden_series_not_rendered, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_updates_and_scrapes, setup, teardown),
        cmocka_unit_test_setup_teardown(every_allocation_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(ctlm_noop_without_init, setup, teardown),
        cmocka_unit_test_setup_teardown(ctlm_reconcile_series, setup, teardown),
        cmocka_unit_test_setup_teardown(ctlm_workqueue_series, setup, teardown),
        cmocka_unit_test_setup_teardown(ctlm_event_to_pod_series, setup, teardown),
        cmocka_unit_test_setup_teardown(ctlm_informer_series, setup, teardown),
        cmocka_unit_test_setup_teardown(ctlm_rest_client_series, setup, teardown),
        cmocka_unit_test_setup_teardown(ctlm_materialization_series, setup, teardown),
    };
    /* A helper for another suite, run only when it asks (TERRANE_METRICS_DUMP), not a test
     * that would otherwise report itself as skipped. */
    const struct CMUnitTest helper[] = {
        cmocka_unit_test_setup_teardown(ctlm_dump_sample, setup, teardown)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (getenv("TERRANE_METRICS_DUMP")) rc += cmocka_run_group_tests(helper, NULL, NULL);
    return rc;
}
