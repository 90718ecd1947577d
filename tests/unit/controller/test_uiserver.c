/*
 * test_uiserver.c - the lineage UI's listener through real HTTP (libcurl)
 * and a real websocket handshake on loopback: the embedded page and bundle,
 * the security headers (Content-Security-Policy naming the S3 endpoint,
 * nosniff, no framing), the API documents, 400/404/405, the websocket's
 * hello and a pushed change (an asset updated, one deleted), and upgrades
 * refused without an Origin, from another origin or on another path; bad
 * addresses and S3 endpoints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "uiapi.h"
#include "uiserver.h"
#include "uisource.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- a source over one array of assets -------------------------------------------------------- */

static json_t *g_assets;

static int each(void *impl, uisrc_kind kind, const char *ns, uisrc_each_fn fn, void *ctx)
{
    (void)impl;
    if (kind != UISRC_ASSETS) return 0;
    size_t i;
    json_t *o;
    json_array_foreach(g_assets, i, o)
    {
        if (ns && strcmp(kobj_namespace(o), ns)) continue;
        int rc = fn(ctx, o);
        if (rc) return rc;
    }
    return 0;
}

static json_t *get(void *impl, uisrc_kind kind, const char *ns, const char *name)
{
    (void)impl;
    if (kind != UISRC_ASSETS) return NULL;
    size_t i;
    json_t *o;
    json_array_foreach(g_assets, i, o) if (!strcmp(kobj_namespace(o), ns) &&
                                           !strcmp(kobj_name(o), name)) return json_incref(o);
    return NULL;
}

static const uisource_ops OPS = {.each = each, .get = get};

static json_t *asset(const char *name, const char *phase)
{
    json_t *o =
        json_pack("{s:{s:s, s:s, s:I}, s:{s:s, s:s, s:[]}, s:{s:s}}", "metadata", "name", name,
                  "namespace", "hydro", "generation", (json_int_t)1, "spec", "assetKey", "lux/x",
                  "operation", "cog", "inputs", "status", "phase", phase);
    assert_non_null(o);
    return o;
}

typedef struct {
    uisource *src;
    uiapi *api;
    uiserver *srv;
    int port;
} fixture;

static int setup(void **state)
{
    fixture *x = calloc(1, sizeof *x);
    g_assets = json_array();
    json_array_append_new(g_assets, asset("dem", "Succeeded"));
    json_array_append_new(g_assets, asset("slope", "Running"));
    assert_int_equal(uisource_from(&OPS, NULL, &x->src), 0);
    assert_int_equal(uiapi_new(x->src, &x->api), 0);
    uiserver_config c = {
        .addr = "127.0.0.1:0", .api = x->api, .s3_endpoint = "http://127.0.0.1:4568"};
    assert_int_equal(uiserver_start(&c, &x->srv), 0);
    x->port = uiserver_port(x->srv);
    assert_true(x->port > 0);
    size_t i;
    json_t *o;
    json_array_foreach(g_assets, i, o) uiserver_notify(x->srv, UISRC_ASSETS, o, false);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fixture *x = *state;
    uiserver_stop(x->srv);
    uiapi_free(x->api);
    uisource_free(x->src);
    json_decref(g_assets);
    free(x);
    return 0;
}

/* --- HTTP with libcurl ------------------------------------------------------------------------ */

#include "controller/http_client.h"

static reply http(int port, const char *method, const char *path)
{
    reply r = request(method, port, path);
    assert_int_equal(r.rc, CURLE_OK);
    if (!r.body.p) r.body.p = calloc(1, 1);
    return r;
}

static bool has_header(const reply *r, const char *line)
{
    return r->headers.p && strcasestr(r->headers.p, line) != NULL;
}

static void test_page(void **state)
{
    fixture *x = *state;
    reply r = http(x->port, "GET", "/ui/");
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "content-type: text/html"));
    assert_non_null(strstr(r.body.p, "<script src=\"app.js\"></script>"));
    assert_true(has_header(&r, "content-security-policy: default-src 'none'; script-src 'self'"));
    assert_true(has_header(&r, "connect-src 'self' http://127.0.0.1:4568;"));
    assert_true(has_header(&r, "x-content-type-options: nosniff"));
    assert_true(has_header(&r, "x-frame-options: DENY"));
    reply_free(&r);
    r = http(x->port, "GET", "/ui/app.js");
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "content-type: text/javascript"));
    assert_true(r.body.len > 10000); /* the bundle, layout and GeoTIFF libraries included */
    reply_free(&r);
    r = http(x->port, "GET", "/ui/app.css");
    assert_int_equal(r.status, 200);
    reply_free(&r);
    r = http(x->port, "GET", "/");
    assert_int_equal(r.status, 302);
    assert_true(has_header(&r, "location: /ui/"));
    reply_free(&r);
    r = http(x->port, "GET", "/ui/../etc/passwd");
    assert_true(r.status == 404 || r.status == 400 || r.status == 403);
    reply_free(&r);
}

static void test_api(void **state)
{
    fixture *x = *state;
    reply r = http(x->port, "GET", "/api/v1/assets");
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "content-type: application/json"));
    json_t *doc = json_loads(r.body.p, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "assets")), 2);
    assert_true(json_is_integer(json_object_get(doc, "seq")));
    json_decref(doc);
    reply_free(&r);
    r = http(x->port, "GET", "/api/v1/assets?namespace=elsewhere");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.p, "\"assets\":[]"));
    reply_free(&r);
    r = http(x->port, "GET", "/api/v1/assets?namespace=Bad%20NS");
    assert_int_equal(r.status, 400);
    reply_free(&r);
    r = http(x->port, "GET", "/api/v1/namespaces/hydro/assets/slope");
    assert_int_equal(r.status, 200);
    doc = json_loads(r.body.p, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "asset"), "phase")),
                        "Running");
    json_decref(doc);
    reply_free(&r);
    r = http(x->port, "GET", "/api/v1/namespaces/hydro/assets/none");
    assert_int_equal(r.status, 404);
    reply_free(&r);
    r = http(x->port, "GET", "/api/v1/namespaces/hydro/assets/UPPER");
    assert_int_equal(r.status, 400);
    reply_free(&r);
    r = http(x->port, "GET", "/api/v1/config");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.p, "\"s3Endpoint\":\"http://127.0.0.1:4568\""));
    reply_free(&r);
    const char *methods[] = {"POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < 4; i++) {
        r = http(x->port, methods[i], "/api/v1/assets");
        assert_int_equal(r.status, 405);
        assert_true(has_header(&r, "allow: GET, HEAD"));
        reply_free(&r);
    }
    r = http(x->port, "GET", "/api/v1/watch");
    assert_int_equal(r.status, 400);
    reply_free(&r);
}

/* --- the websocket ------------------------------------------------------------------------------
 */

static int ws_connect(int port, const char *path, const char *origin, char *status, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[1024], orig[300] = "";
    if (origin) snprintf(orig, sizeof orig, "Origin: %s\r\n", origin);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: terrane-ui.v1\r\n%s\r\n",
                     path, port, orig);
    assert_int_equal(write(fd, req, (size_t)n), n);
    /* the response head, byte by byte so no frame is swallowed */
    size_t len = 0;
    char head[2048];
    while (len < sizeof head - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) break;
        ssize_t got = read(fd, head + len, 1);
        if (got <= 0) break;
        len++;
        head[len] = '\0';
        if (len >= 4 && !memcmp(head + len - 4, "\r\n\r\n", 4)) break;
    }
    head[len] = '\0';
    snprintf(status, cap, "%.12s", len > 12 ? head : "closed");
    return fd;
}

/* One text message (frames joined); NULL on timeout or close. */
static char *ws_read(int fd)
{
    char *msg = NULL;
    size_t mlen = 0;
    for (;;) {
        unsigned char h[10];
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0 || read(fd, h, 2) != 2) break;
        uint64_t n = h[1] & 0x7f;
        if (n == 126) {
            if (read(fd, h + 2, 2) != 2) break;
            n = ((uint64_t)h[2] << 8) | h[3];
        } else if (n == 127) {
            if (read(fd, h + 2, 8) != 8) break;
            n = 0;
            for (int i = 2; i < 10; i++)
                n = (n << 8) | h[i];
        }
        msg = realloc(msg, mlen + n + 1);
        size_t got = 0;
        while (got < n) {
            ssize_t r = read(fd, msg + mlen + got, (size_t)(n - got));
            if (r <= 0) {
                free(msg);
                return NULL;
            }
            got += (size_t)r;
        }
        mlen += n;
        msg[mlen] = '\0';
        if ((h[0] & 0x0f) == 8) break; /* close */
        if (h[0] & 0x80) return msg;   /* FIN */
    }
    free(msg);
    return NULL;
}

static void test_websocket(void **state)
{
    fixture *x = *state;
    char origin[64], st[32];
    snprintf(origin, sizeof origin, "http://127.0.0.1:%d", x->port);
    int fd = ws_connect(x->port, "/api/v1/watch", origin, st, sizeof st);
    assert_string_equal(st, "HTTP/1.1 101");
    char *m = ws_read(fd);
    assert_non_null(m);
    assert_non_null(strstr(m, "\"type\":\"hello\""));
    free(m);

    /* slope turns Failed, dem disappears: one message carries both */
    json_t *slope = json_array_get(g_assets, 1), *dem = json_incref(json_array_get(g_assets, 0));
    json_object_set_new(json_object_get(slope, "status"), "phase", json_string("Failed"));
    json_array_remove(g_assets, 0);
    unsigned long before = uiserver_seq(x->srv);
    uiserver_notify(x->srv, UISRC_ASSETS, slope, false);
    uiserver_notify(x->srv, UISRC_ASSETS, dem, true);
    json_decref(dem);
    /* the two may come in one message or two */
    bool saw_slope = false, saw_dem = false;
    while (!saw_slope || !saw_dem) {
        m = ws_read(fd);
        assert_non_null(m);
        json_t *doc = json_loads(m, 0, NULL);
        free(m);
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(doc, "type")), "changes");
        assert_true(json_integer_value(json_object_get(doc, "seq")) > (json_int_t)before);
        json_t *a = json_array_get(json_object_get(doc, "assets"), 0);
        if (a) {
            assert_string_equal(json_string_value(json_object_get(a, "name")), "slope");
            assert_string_equal(json_string_value(json_object_get(a, "phase")), "Failed");
            saw_slope = true;
        }
        json_t *d = json_array_get(json_object_get(doc, "deleted"), 0);
        if (d) {
            assert_string_equal(json_string_value(json_object_get(d, "name")), "dem");
            saw_dem = true;
        }
        json_decref(doc);
    }
    close(fd);

    /* the list agrees, and says which message it includes */
    reply r = http(x->port, "GET", "/api/v1/assets");
    json_t *doc = json_loads(r.body.p, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(doc, "assets")), 1);
    assert_int_equal(json_integer_value(json_object_get(doc, "seq")),
                     (json_int_t)uiserver_seq(x->srv));
    json_decref(doc);
    reply_free(&r);
}

static void test_websocket_refused(void **state)
{
    fixture *x = *state;
    char st[32], own[64];
    snprintf(own, sizeof own, "http://127.0.0.1:%d", x->port);
    const char *bad[] = {NULL, "http://evil.example", "null", "http://127.0.0.1:1",
                         "https://127.0.0.1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = ws_connect(x->port, "/api/v1/watch", bad[i], st, sizeof st);
        if (!strcmp(st, "HTTP/1.1 101"))
            fail_msg("origin %s was accepted", bad[i] ? bad[i] : "(none)");
        close(fd);
    }
    int fd = ws_connect(x->port, "/ui/", own, st, sizeof st);
    if (!strcmp(st, "HTTP/1.1 101")) fail_msg("an upgrade on /ui/ was accepted");
    close(fd);
}

static void test_config_errors(void **state)
{
    (void)state;
    uiserver *s = NULL;
    uiserver_config c = {.addr = "nohost", .api = NULL};
    assert_int_equal(uiserver_start(&c, &s), CERR_INVALID);
    c.addr = "127.0.0.1:0";
    c.s3_endpoint = "ftp://x";
    assert_int_equal(uiserver_start(&c, &s), CERR_INVALID);
    c.s3_endpoint = "http://x'; script-src *";
    assert_int_equal(uiserver_start(&c, &s), CERR_INVALID);
    assert_null(s);
    /* a port in use */
    uiserver *a = NULL, *b = NULL;
    c.s3_endpoint = NULL;
    assert_int_equal(uiserver_start(&c, &a), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", uiserver_port(a));
    c.addr = addr;
    assert_int_equal(uiserver_start(&c, &b), CERR_IO);
    uiserver_stop(a);
    uiserver_stop(NULL);
}

int main(void)
{
    cmem_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_websocket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_websocket_refused, setup, teardown),
        cmocka_unit_test(test_config_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
