/*
 * test_httpd.c - the metrics and health server, through real HTTP with
 * libcurl on loopback: /metrics (content type, body equal to the registry's
 * rendering, large bodies in several chunks), /healthz, /readyz flipping
 * between 503 and 200, 404, HEAD, 405, keep-alive, oversized requests,
 * address parsing and bind errors, stopping with idle connections, and the
 * Kubernetes client's requests counted with their host.
 *
 * With TERRANE_HTTPD_SERVE=FILE the suite also serves the controller's
 * metrics (with TERRANE_HTTPD_SERVE_N materializations recorded, default 3)
 * on 127.0.0.1, writes the port to FILE, records the materializations once
 * FILE.go exists, and keeps serving until FILE is removed (at most 300 s):
 * tests/integration/test_metrics_promtool.sh points a real Prometheus at it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctlmetrics.h"
#include "kube/kube.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/httpd.h"
#include "lib/metrics.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

#include "controller/http_client.h"

/* The value of header name (lower case, with the colon) in r, or "". */
static const char *header(const reply *r, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = r->headers.p; p && *p;) {
        const char *end = strstr(p, "\r\n");
        if (!end) break;
        size_t n = strlen(name);
        if ((size_t)(end - p) > n && !strncasecmp(p, name, n)) {
            const char *v = p + n;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(end - v), v);
            break;
        }
        p = end + 2;
    }
    return out;
}

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
    ctlm_shutdown();
    return 0;
}

typedef struct {
    atomic_bool ready;
} readiness;

static bool ready_cb(void *ctx, char *reason, size_t cap)
{
    readiness *r = ctx;
    if (atomic_load(&r->ready)) return true;
    snprintf(reason, cap, "informers not synced (pods)");
    return false;
}

static httpd *start(metrics_registry *reg, readiness *rd)
{
    httpd *h = NULL;
    httpd_config cfg = {
        .addr = "127.0.0.1:0", .registry = reg, .ready = rd ? ready_cb : NULL, .ready_ctx = rd};
    int rc = httpd_start(&cfg, &h);
    if (rc) fail_msg("httpd_start: %s", cerr_message());
    assert_true(httpd_port(h) > 0);
    return h;
}

/* --- tests ------------------------------------------------------------------ */

static void serves_metrics(void **state)
{
    (void)state;
    metrics_registry *reg = metrics_registry_new(0);
    metrics_family *c;
    assert_int_equal(metrics_counter_new(reg, "t_requests_total", "requests", L("path"), &c), 0);
    metrics_inc(metrics_with(c, "/a\"b"));
    httpd *h = start(reg, NULL);
    int port = httpd_port(h);

    reply r = request("GET", port, "/metrics");
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    char v[128];
    assert_string_equal(header(&r, "content-type:", v, sizeof v),
                        "text/plain; version=0.0.4; charset=utf-8");
    char *want = NULL;
    size_t len = 0;
    assert_int_equal(metrics_render(reg, &want, &len), 0);
    assert_int_equal(r.body.len, len);
    assert_string_equal(r.body.p, want);
    assert_non_null(strstr(r.body.p, "t_requests_total{path=\"/a\\\"b\"} 1\n"));
    cmem_free(want);
    reply_free(&r);

    /* Updates show in the next scrape. */
    metrics_add(metrics_with(c, "/a\"b"), 4);
    r = request("GET", port, "/metrics");
    assert_non_null(strstr(r.body.p, "t_requests_total{path=\"/a\\\"b\"} 5\n"));
    reply_free(&r);
    httpd_stop(h);
    metrics_registry_free(reg);
}

static void large_exposition_in_chunks(void **state)
{
    (void)state;
    metrics_registry *reg = metrics_registry_new(0);
    metrics_family *g;
    assert_int_equal(metrics_gauge_new(reg, "t_big", "many series", L("key"), &g), 0);
    char key[64];
    for (int i = 0; i < 1500; i++) {
        snprintf(key, sizeof key, "some/fairly/long/asset/key/number/%05d", i);
        metrics_set(metrics_with(g, key), i);
    }
    httpd *h = start(reg, NULL);
    char *want = NULL;
    size_t len = 0;
    assert_int_equal(metrics_render(reg, &want, &len), 0);
    assert_true(len > 3 * 16384);
    reply r = request("GET", httpd_port(h), "/metrics");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, len);
    assert_memory_equal(r.body.p, want, len);
    cmem_free(want);
    reply_free(&r);
    httpd_stop(h);
    metrics_registry_free(reg);
}

static void health_and_readiness(void **state)
{
    (void)state;
    readiness rd;
    atomic_init(&rd.ready, false);
    httpd *h = start(NULL, &rd);
    int port = httpd_port(h);
    char v[128];

    reply r = request("GET", port, "/healthz");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.p, "ok");
    assert_string_equal(header(&r, "content-type:", v, sizeof v), "text/plain; charset=utf-8");
    reply_free(&r);

    r = request("GET", port, "/readyz");
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body.p, "not ready: informers not synced (pods)\n");
    reply_free(&r);

    atomic_store(&rd.ready, true);
    r = request("GET", port, "/readyz");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.p, "ok");
    reply_free(&r);

    atomic_store(&rd.ready, false);
    r = request("GET", port, "/readyz?verbose");
    assert_int_equal(r.status, 503);
    reply_free(&r);

    r = request("GET", port, "/healthz?verbose=1");
    assert_int_equal(r.status, 200);
    reply_free(&r);

    /* No registry: no /metrics. */
    r = request("GET", port, "/metrics");
    assert_int_equal(r.status, 404);
    reply_free(&r);
    httpd_stop(h);
}

static void not_found_head_and_methods(void **state)
{
    (void)state;
    metrics_registry *reg = metrics_registry_new(0);
    readiness rd;
    atomic_init(&rd.ready, false);
    httpd *h = start(reg, &rd);
    int port = httpd_port(h);
    char v[128];

    const char *missing[] = {"/", "/nope", "/metricsx", "/metrics/", "/healthz/x", "/READYZ"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        reply r = request("GET", port, missing[i]);
        assert_int_equal(r.status, 404);
        assert_string_equal(r.body.p, "404 page not found\n");
        reply_free(&r);
    }

    /* HEAD: same status and headers, no body. */
    reply g = request("GET", port, "/metrics");
    reply r = request("HEAD", port, "/metrics");
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_null(r.body.p);
    char want[32];
    snprintf(want, sizeof want, "%zu", g.body.len);
    assert_string_equal(header(&r, "content-length:", v, sizeof v), want);
    assert_string_equal(header(&r, "content-type:", v, sizeof v),
                        "text/plain; version=0.0.4; charset=utf-8");
    reply_free(&r);
    reply_free(&g);
    r = request("HEAD", port, "/readyz");
    assert_int_equal(r.status, 503);
    assert_null(r.body.p);
    reply_free(&r);
    r = request("HEAD", port, "/nope");
    assert_int_equal(r.status, 404);
    reply_free(&r);

    /* Other methods: 405 with Allow. */
    const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        r = request(methods[i], port, "/metrics");
        assert_int_equal(r.status, 405);
        assert_string_equal(header(&r, "allow:", v, sizeof v), "GET, HEAD");
        reply_free(&r);
    }
    r = request("POST", port, "/healthz");
    assert_int_equal(r.rc, CURLE_OK);
    assert_string_equal(r.body.p, "method not allowed\n");
    reply_free(&r);
    /* A large body is not read to its end: the connection is cut. */
    size_t big = 1 << 20;
    char *data = malloc(big);
    memset(data, 'x', big);
    CURL *c = curl_easy_init();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)big);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    assert_true(cc != CURLE_OK || status == 405);
    curl_easy_cleanup(c);
    free(data);
    reply_free(&r);
    /* Still serving. */
    r = request("GET", port, "/healthz");
    assert_int_equal(r.status, 200);
    reply_free(&r);
    httpd_stop(h);
    metrics_registry_free(reg);
}

static void keep_alive_and_oversized_requests(void **state)
{
    (void)state;
    metrics_registry *reg = metrics_registry_new(0);
    httpd *h = start(reg, NULL);
    int port = httpd_port(h);

    CURL *c = curl_easy_init();
    const char *paths[] = {"/metrics", "/healthz", "/nope", "/readyz", "/metrics"};
    for (int i = 0; i < 5; i++) {
        reply r = request_on(c, i == 3 ? "HEAD" : "GET", port, paths[i], NULL);
        assert_int_equal(r.rc, CURLE_OK);
        long conns = -1;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
        assert_int_equal(conns, i == 0 ? 1 : 0); /* one connection for all five */
        reply_free(&r);
    }
    curl_easy_cleanup(c);

    /* Headers far over the 4 KiB bound are refused, not buffered. */
    char *big = malloc(20000);
    strcpy(big, "X-Big: ");
    memset(big + 7, 'a', 19990);
    big[19997] = '\0';
    struct curl_slist *hl = curl_slist_append(NULL, big);
    reply r = request_on(NULL, "GET", port, "/metrics", hl);
    assert_true(r.rc != CURLE_OK || r.status >= 400);
    reply_free(&r);
    curl_slist_free_all(hl);
    char *long_path = malloc(10000);
    strcpy(long_path, "/");
    memset(long_path + 1, 'p', 9000);
    long_path[9001] = '\0';
    r = request("GET", port, long_path);
    assert_true(r.rc != CURLE_OK || r.status >= 400);
    reply_free(&r);
    free(long_path);
    free(big);

    r = request("GET", port, "/healthz");
    assert_int_equal(r.status, 200);
    reply_free(&r);
    httpd_stop(h);
    metrics_registry_free(reg);
}

typedef struct {
    int port;
    int ok;
} scraper;

static void *scrape_loop(void *p)
{
    scraper *s = p;
    for (int i = 0; i < 40; i++) {
        reply r = request("GET", s->port, "/metrics");
        if (r.rc == CURLE_OK && r.status == 200 && r.body.p &&
            strstr(r.body.p, "# TYPE t_busy_total counter"))
            s->ok++;
        reply_free(&r);
    }
    return NULL;
}

static void concurrent_scrapes(void **state)
{
    (void)state;
    metrics_registry *reg = metrics_registry_new(0);
    metrics_family *c;
    assert_int_equal(metrics_counter_new(reg, "t_busy_total", "busy", NULL, &c), 0);
    httpd *h = start(reg, NULL);
    pthread_t th[4];
    scraper s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (scraper){httpd_port(h), 0};
        pthread_create(&th[i], NULL, scrape_loop, &s[i]);
    }
    for (int i = 0; i < 20000; i++)
        metrics_inc(metrics_get(c, NULL));
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(s[i].ok, 40);
    }
    httpd_stop(h);
    metrics_registry_free(reg);
}

static void addresses(void **state)
{
    (void)state;
    char host[64];
    int port = -1;
    assert_int_equal(httpd_parse_addr(":8080", host, sizeof host, &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 8080);
    assert_int_equal(httpd_parse_addr("127.0.0.1:0", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 0);
    assert_int_equal(httpd_parse_addr("[::1]:9090", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9090);
    assert_int_equal(httpd_parse_addr("localhost:65535", host, sizeof host, &port), 0);
    const char *bad[] = {"",     "8080", "host",    ":",      ":99999", ":-1",
                         ":80a", "[::1", "[::1]80", "::1:80", "a:b:80", ":123456"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(httpd_parse_addr(bad[i], host, sizeof host, &port), CERR_INVALID);
        httpd *h = (httpd *)1;
        assert_int_equal(httpd_start(&(httpd_config){.addr = bad[i]}, &h), CERR_INVALID);
        assert_null(h);
    }
    httpd *h = NULL;
    assert_int_equal(httpd_start(&(httpd_config){.addr = "no-such-host.invalid:0"}, &h),
                     CERR_INVALID);
}

static bool ipv6_loopback(void)
{
    FILE *f = fopen("/proc/net/if_inet6", "r");
    char line[256];
    bool found = false;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "00000000000000000000000000000001", 32)) found = true;
    if (f) fclose(f);
    return found;
}

static void bind_errors_and_interfaces(void **state)
{
    (void)state;
    httpd *a = start(NULL, NULL), *b = NULL;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", httpd_port(a));
    assert_int_equal(httpd_start(&(httpd_config){.addr = addr}, &b), CERR_IO);
    assert_null(b);
    assert_non_null(strstr(cerr_message(), addr));
    httpd_stop(a);

    /* ":0" listens on every interface, loopback included; "localhost" too. */
    const char *addrs[] = {":0", "localhost:0"};
    for (int i = 0; i < 2; i++) {
        httpd *h = NULL;
        assert_int_equal(httpd_start(&(httpd_config){.addr = addrs[i]}, &h), 0);
        reply r = request("GET", httpd_port(h), "/healthz");
        assert_int_equal(r.status, 200);
        reply_free(&r);
        if (i == 0 && ipv6_loopback()) { /* dual-stack: IPv6 too */
            char url[64];
            snprintf(url, sizeof url, "http://[::1]:%d/healthz", httpd_port(h));
            CURL *c = curl_easy_init();
            curl_easy_setopt(c, CURLOPT_URL, url);
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
            assert_int_equal(curl_easy_perform(c), CURLE_OK);
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
            assert_int_equal(r.status, 200);
            curl_easy_cleanup(c);
            reply_free(&r);
        }
        httpd_stop(h);
    }
}

/* httpd_stop returns with an idle keep-alive connection and with a client
 * that sent half a request. */
static void stops_with_open_connections(void **state)
{
    (void)state;
    httpd *h = start(NULL, NULL);
    int port = httpd_port(h);
    CURL *c = curl_easy_init();
    reply r = request_on(c, "GET", port, "/healthz", NULL);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(write(fd, "GET /heal", 9), 9);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    httpd_stop(h);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 3);
    close(fd);
    curl_easy_cleanup(c);
    httpd_stop(NULL);
}

/* The Kubernetes client's requests, counted with the server's host:port. */
static void kube_requests_counted(void **state)
{
    (void)state;
    assert_int_equal(ctlm_init(NULL), 0);
    httpd *h = start(ctlm_registry(), NULL);
    char server[128], host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", httpd_port(h));
    snprintf(server, sizeof server, "http://%s/", host);
    kube_config cfg = {.server = server, .timeout_ms = 5000};
    kube_client *kc = NULL;
    assert_int_equal(kube_client_new(&cfg, &kc), 0);
    assert_int_equal(ctlm_kube_attach(kc, server), 0);
    json_t *obj = NULL;
    assert_true(kube_get(kc, &KUBE_PODS, "hydro", "p", &obj) < 0); /* our server says 404 */
    assert_null(obj);
    kube_client_free(kc);

    reply r = request("GET", httpd_port(h), "/metrics");
    char want[160];
    snprintf(want, sizeof want,
             "rest_client_requests_total{code=\"404\",host=\"%s\",method=\"GET\"} 1\n", host);
    assert_non_null(strstr(r.body.p, want));
    snprintf(want, sizeof want,
             "rest_client_request_duration_seconds_count{verb=\"GET\",host=\"%s\"} 1\n", host);
    assert_non_null(strstr(r.body.p, want));
    reply_free(&r);
    httpd_stop(h);
    ctlm_shutdown();
}

/* Serves a populated controller registry for a real Prometheus. */
static void serve_for_prometheus(void **state)
{
    (void)state;
    const char *file = getenv("TERRANE_HTTPD_SERVE");
    assert_non_null(file);
    const char *ns = getenv("TERRANE_HTTPD_SERVE_N");
    int n = ns ? atoi(ns) : 3;
    assert_int_equal(
        ctlm_init(&(ctlm_config){.pools = L("cpu", "highmem"), .operations = L("cog", "terrain")}),
        0);
    ctlm_set_leader("terrane-controller", true);
    httpd *h = start(ctlm_registry(), NULL);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f, "%d\n", httpd_port(h));
    fclose(f);
    assert_int_equal(rename(tmp, file), 0);
    /* The first scrapes see zeros; the materializations finish once FILE.go
     * exists (the test creates it after Prometheus has scraped the zeros). */
    char go[4096];
    snprintf(go, sizeof go, "%s.go", file);
    for (int i = 0; i < 3000 && access(go, F_OK) != 0 && access(file, F_OK) == 0; i++)
        usleep(100 * 1000);
    for (int i = 0; i < n; i++) {
        ctlm_reconcile_begin();
        ctlm_materialization_finished(&(ctlm_materialization){.pool = i % 2 ? "highmem" : "cpu",
                                                              .operation = "terrain",
                                                              .result = CTLM_SUCCEEDED,
                                                              .seconds = 2.0 + i});
        ctlm_reconcile_end(CTLM_RECONCILE_SUCCESS, 0.01);
    }
    for (int i = 0; i < 3000 && access(file, F_OK) == 0; i++)
        usleep(100 * 1000);
    httpd_stop(h);
    ctlm_shutdown();
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(serves_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(large_exposition_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(health_and_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(not_found_head_and_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(keep_alive_and_oversized_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_scrapes, setup, teardown),
        cmocka_unit_test_setup_teardown(addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(bind_errors_and_interfaces, setup, teardown),
        cmocka_unit_test_setup_teardown(stops_with_open_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(kube_requests_counted, setup, teardown),
    };
    /* A helper for another suite, run only when it asks (TERRANE_HTTPD_SERVE), not a test
     * that would otherwise report itself as skipped. */
    const struct CMUnitTest helper[] = {
        cmocka_unit_test_setup_teardown(serve_for_prometheus, setup, teardown)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (getenv("TERRANE_HTTPD_SERVE")) rc += cmocka_run_group_tests(helper, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
