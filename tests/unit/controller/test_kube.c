/*
 * test_kube.c - the Kubernetes client layer: kube.c (requests, retries,
 * caps, errors, lists, watches), informer.c, events.c and lease.c.
 *
 * Two groups:
 *  - scripted: an HTTP/1.1 server on loopback, in this process (a thread
 *    per connection), answers each test's script: Status errors, 429 with
 *    Retry-After, 5xx, oversized bodies, chunked watch streams split at odd
 *    places, a stream cut mid-line, a watch that hangs until the client
 *    goes away. No network beyond 127.0.0.1.
 *  - kubesim: the same layer against tests/kubesim, when KUBESIM_URL is set
 *    (tests/integration/test_client_kubesim.sh starts kubesim and runs this
 *    binary so). Then only that group runs; without it, only the scripted
 *    one does and the kubesim group is skipped.
 *
 * The few timing assertions are lower bounds (a 429 waited at least its
 * Retry-After, the QPS limit spaced requests at least so far apart) or
 * generous upper bounds on promptness (a stop ends a hanging watch within
 * two seconds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crd.h"
#include "kube/events.h"
#include "kube/informer.h"
#include "kube/kobj.h"
#include "kube/kube.h"
#include "kube/lease.h"
#include "kube/ratelimit.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    return (double)ratelimit_now() / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* Polls cond (an expression) every 10 ms for up to ms milliseconds. */
#define WAIT_FOR(cond, ms)                                                                         \
    do {                                                                                           \
        double until_ = now_s() + (ms) / 1000.0;                                                   \
        while (!(cond) && now_s() < until_)                                                        \
            sleep_ms(10);                                                                          \
    } while (0)

/* ========================================================================================
 * A scripted HTTP/1.1 server
 * ======================================================================================== */

typedef struct {
    char method[16];
    char target[2048]; /* path?query */
    char headers[8192];
    char *body;
    size_t body_len;
    bool close; /* the handler asks to close the connection afterwards */
    int conn;   /* connection number, from 1 */
} http_req;

typedef struct tsrv tsrv;
typedef void (*handler_fn)(tsrv *s, int fd, http_req *req);

#define MAX_LOG 4096

struct tsrv {
    int lfd, port;
    pthread_t accept_thread;
    atomic_bool stop;
    handler_fn handler;
    void *ctx;
    pthread_mutex_t mu;
    int nreq, nconn, active;
    char *targets[MAX_LOG];
    char *methods[MAX_LOG];
    char *hdrs[MAX_LOG];
    char *bodies[MAX_LOG];
    /* handler state, free for tests to use under mu */
    int state;
    atomic_int gate; /* handlers may wait while it is non-zero */
};

typedef struct {
    tsrv *s;
    int fd, conn;
} conn_arg;

static bool send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void reply(int fd, int code, const char *extra_headers, const char *body)
{
    char head[1024];
    size_t blen = body ? strlen(body) : 0;
    snprintf(head, sizeof head,
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
             code, blen, extra_headers ? extra_headers : "");
    send_all(fd, head, strlen(head));
    if (blen) send_all(fd, body, blen);
}

static void reply_status(int fd, int code, const char *reason, const char *message,
                         const char *extra)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
             "\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}",
             message, reason, code);
    reply(fd, code, extra, body);
}

static void stream_start(int fd)
{
    const char *h =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    send_all(fd, h, strlen(h));
}

static void chunk(int fd, const char *data, size_t len)
{
    char h[32];
    snprintf(h, sizeof h, "%zx\r\n", len);
    send_all(fd, h, strlen(h));
    send_all(fd, data, len);
    send_all(fd, "\r\n", 2);
}

static void chunk_str(int fd, const char *s)
{
    chunk(fd, s, strlen(s));
}

static void stream_end(int fd)
{
    send_all(fd, "0\r\n\r\n", 5);
}

/* Waits until the client closes the connection, the server stops, or ms
 * pass (ms < 0: no limit). True when the client went away. */
static bool wait_client_gone(tsrv *s, int fd, long ms)
{
    double until = ms >= 0 ? now_s() + ms / 1000.0 : 1e300;
    while (!atomic_load(&s->stop) && now_s() < until) {
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
        if (poll(&p, 1, 20) > 0) {
            char b[256];
            if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
            if (recv(fd, b, sizeof b, MSG_DONTWAIT) == 0) return true;
        }
    }
    return false;
}

static const char *query_param(const http_req *r, const char *key, char *out, size_t n)
{
    const char *q = strchr(r->target, '?');
    size_t kl = strlen(key);
    out[0] = '\0';
    while (q) {
        q++;
        if (strncmp(q, key, kl) == 0 && q[kl] == '=') {
            size_t l = strcspn(q + kl + 1, "&");
            if (l >= n) l = n - 1;
            memcpy(out, q + kl + 1, l);
            out[l] = '\0';
            return out;
        }
        q = strchr(q, '&');
    }
    return NULL;
}

static void *conn_main(void *arg)
{
    conn_arg *a = arg;
    tsrv *s = a->s;
    int fd = a->fd;
    char *buf = malloc(65536);
    size_t have = 0;
    for (;;) {
        /* Read one request head. */
        char *end = NULL;
        while (!(end = have ? memmem(buf, have, "\r\n\r\n", 4) : NULL)) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (atomic_load(&s->stop)) goto done;
            if (poll(&p, 1, 50) <= 0) continue;
            ssize_t n = recv(fd, buf + have, 65535 - have, 0);
            if (n <= 0) goto done;
            have += (size_t)n;
            if (have >= 65535) goto done;
        }
        http_req *req = calloc(1, sizeof *req);
        req->conn = a->conn;
        size_t head_len = (size_t)(end - buf) + 4;
        char *line_end = memmem(buf, head_len, "\r\n", 2);
        char line[4096];
        size_t ll =
            (size_t)(line_end - buf) < sizeof line - 1 ? (size_t)(line_end - buf) : sizeof line - 1;
        memcpy(line, buf, ll);
        line[ll] = '\0';
        sscanf(line, "%15s %2047s", req->method, req->target);
        size_t hl = head_len - ll - 2;
        if (hl >= sizeof req->headers) hl = sizeof req->headers - 1;
        memcpy(req->headers, line_end + 2, hl);
        req->headers[hl] = '\0';
        size_t clen = 0;
        const char *cl = strcasestr(req->headers, "Content-Length:");
        if (cl) clen = strtoul(cl + 15, NULL, 10);
        memmove(buf, buf + head_len, have - head_len);
        have -= head_len;
        req->body = malloc(clen + 1);
        size_t got = 0;
        while (got < clen) {
            if (have) {
                size_t take = have < clen - got ? have : clen - got;
                memcpy(req->body + got, buf, take);
                memmove(buf, buf + take, have - take);
                have -= take;
                got += take;
                continue;
            }
            ssize_t n = recv(fd, buf, 65535, 0);
            if (n <= 0) {
                free(req->body);
                free(req);
                goto done;
            }
            have = (size_t)n;
        }
        req->body[clen] = '\0';
        req->body_len = clen;
        pthread_mutex_lock(&s->mu);
        if (s->nreq < MAX_LOG) {
            s->targets[s->nreq] = strdup(req->target);
            s->methods[s->nreq] = strdup(req->method);
            s->hdrs[s->nreq] = strdup(req->headers);
            s->bodies[s->nreq] = strdup(req->body);
        }
        s->nreq++;
        pthread_mutex_unlock(&s->mu);
        s->handler(s, fd, req);
        bool close_it = req->close;
        free(req->body);
        free(req);
        if (close_it) break;
    }
done:
    free(buf);
    close(fd);
    pthread_mutex_lock(&s->mu);
    s->active--;
    pthread_mutex_unlock(&s->mu);
    free(a);
    return NULL;
}

static void *accept_main(void *arg)
{
    tsrv *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        /* Replies go out in two writes (head, body): without this, Nagle
         * holds the body until the client's delayed ACK, 40 ms a request. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_arg *a = malloc(sizeof *a);
        a->s = s;
        a->fd = fd;
        pthread_mutex_lock(&s->mu);
        a->conn = ++s->nconn;
        s->active++;
        pthread_mutex_unlock(&s->mu);
        pthread_t t;
        pthread_create(&t, NULL, conn_main, a);
        pthread_detach(t);
    }
    return NULL;
}

static tsrv *srv_start(handler_fn h, void *ctx)
{
    tsrv *s = calloc(1, sizeof *s);
    s->handler = h;
    s->ctx = ctx;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s->lfd, 64), 0);
    socklen_t sl = sizeof sa;
    getsockname(s->lfd, (struct sockaddr *)&sa, &sl);
    s->port = ntohs(sa.sin_port);
    pthread_create(&s->accept_thread, NULL, accept_main, s);
    return s;
}

static void srv_stop(tsrv *s)
{
    if (!s) return;
    atomic_store(&s->stop, true);
    atomic_store(&s->gate, 0);
    pthread_join(s->accept_thread, NULL);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&s->mu);
        int active = s->active;
        pthread_mutex_unlock(&s->mu);
        if (!active) break;
        sleep_ms(10);
    }
    close(s->lfd);
    for (int i = 0; i < s->nreq && i < MAX_LOG; i++) {
        free(s->targets[i]);
        free(s->methods[i]);
        free(s->hdrs[i]);
        free(s->bodies[i]);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int srv_nreq(tsrv *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->nreq;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* The server's log as the test thread may read it: taking the lock orders
 * the connection threads' writes before our reads (for helgrind, too). */
static tsrv *logged(tsrv *s)
{
    pthread_mutex_lock(&s->mu);
    pthread_mutex_unlock(&s->mu);
    return s;
}

static void srv_set(tsrv *s, int state, void *ctx)
{
    pthread_mutex_lock(&s->mu);
    s->state = state;
    if (ctx) s->ctx = ctx;
    pthread_mutex_unlock(&s->mu);
}

static kube_client *client_for(tsrv *s, double qps, unsigned burst, const char *token_file)
{
    char server[64];
    snprintf(server, sizeof server, "http://127.0.0.1:%d", s->port);
    kube_config cfg = {.server = server,
                       .token = "tok",
                       .qps = qps,
                       .burst = burst,
                       .timeout_ms = 5000,
                       .user_agent = "test-agent/" TERRANE_VERSION};
    cfg.token_file = (char *)token_file;
    kube_client *c = NULL;
    int rc = kube_client_new(&cfg, &c);
    if (rc) fail_msg("kube_client_new: %s", cerr_message());
    return c;
}

static int setup(void **state)
{
    (void)state;
    cmem_init();
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* ========================================================================================
 * Requests
 * ======================================================================================== */

typedef struct {
    int calls;
    char verbs[64][8];
    int codes[64];
} observed;

static void observe(void *ctx, const char *verb, int code, double secs)
{
    observed *o = ctx;
    (void)secs;
    if (o->calls < 64) {
        snprintf(o->verbs[o->calls], sizeof o->verbs[0], "%s", verb);
        o->codes[o->calls] = code;
    }
    o->calls++;
}

static void h_echo(tsrv *s, int fd, http_req *r)
{
    (void)s;
    char body[4096];
    if (!strcmp(r->method, "GET"))
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p1\","
                 "\"namespace\":\"ns1\","
                 "\"resourceVersion\":\"7\"}}");
    else
        snprintf(body, sizeof body, "%s", r->body_len ? r->body : "{}");
    reply(fd, !strcmp(r->method, "POST") ? 201 : 200, NULL, body);
}

static void get_sends_headers_and_decodes(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_echo, NULL);
    kube_client *c = client_for(s, 1000, 1000, NULL);
    observed o = {0};
    kube_client_set_observer(c, observe, &o);
    long live = cmem_live();
    json_t *obj = NULL;
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "p1", &obj), 0);
    assert_string_equal(kobj_resource_version(obj), "7");
    json_decref(obj);
    assert_string_equal(logged(s)->targets[0], "/api/v1/namespaces/ns1/pods/p1");
    assert_string_equal(logged(s)->methods[0], "GET");
    assert_non_null(strcasestr(logged(s)->hdrs[0], "Accept: application/json\r\n"));
    assert_non_null(
        strcasestr(logged(s)->hdrs[0], "User-Agent: test-agent/" TERRANE_VERSION "\r\n"));
    assert_non_null(strcasestr(logged(s)->hdrs[0], "Authorization: Bearer tok\r\n"));
    assert_int_equal(o.calls, 1);
    assert_string_equal(o.verbs[0], "GET");
    assert_int_equal(o.codes[0], 200);

    /* A custom resource's status subresource, and names that need escaping. */
    json_t *am =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s}}", "apiVersion", "terrane.io/v1alpha1",
                  "kind", "AssetMaterialization", "metadata", "name", "dem slope", "namespace",
                  "hydro", "resourceVersion", "5", "status", "phase", "Running");
    assert_int_equal(kube_update_status(c, &CRD_ASSETMATERIALIZATIONS, am, &obj), 0);
    assert_string_equal(
        logged(s)->targets[1],
        "/apis/terrane.io/v1alpha1/namespaces/hydro/assetmaterializations/dem%20slope/status");
    assert_string_equal(logged(s)->methods[1], "PUT");
    assert_non_null(strstr(logged(s)->bodies[1], "\"resourceVersion\":\"5\""));
    assert_non_null(strcasestr(logged(s)->hdrs[1], "Content-Type: application/json\r\n"));
    json_decref(obj);
    assert_int_equal(kube_update(c, &CRD_ASSETMATERIALIZATIONS, am, NULL), 0);
    assert_string_equal(
        logged(s)->targets[2],
        "/apis/terrane.io/v1alpha1/namespaces/hydro/assetmaterializations/dem%20slope");
    assert_int_equal(kube_create(c, &CRD_ASSETMATERIALIZATIONS, NULL, am, &obj), 0);
    assert_string_equal(logged(s)->targets[3],
                        "/apis/terrane.io/v1alpha1/namespaces/hydro/assetmaterializations");
    assert_string_equal(logged(s)->methods[3], "POST");
    json_decref(obj);
    json_decref(am);

    /* Patches carry their media type; DELETE carries DeleteOptions. */
    json_t *patch = json_pack("{s:{s:s}}", "metadata", "name", "x");
    assert_int_equal(kube_patch(c, &KUBE_PODS, "ns1", "p1", KUBE_PATCH_MERGE, patch, false, NULL),
                     0);
    assert_non_null(
        strcasestr(logged(s)->hdrs[4], "Content-Type: application/merge-patch+json\r\n"));
    assert_string_equal(logged(s)->methods[4], "PATCH");
    assert_int_equal(
        kube_patch(c, &KUBE_PODS, "ns1", "p1", KUBE_PATCH_STRATEGIC, patch, false, NULL), 0);
    assert_non_null(
        strcasestr(logged(s)->hdrs[5], "Content-Type: application/strategic-merge-patch+json\r\n"));
    json_decref(patch);
    patch =
        json_pack("[{s:s, s:s, s:s}]", "op", "replace", "path", "/status/phase", "value", "Failed");
    assert_int_equal(
        kube_patch(c, &CRD_ASSETMATERIALIZATIONS, "hydro", "a", KUBE_PATCH_JSON, patch, true, NULL),
        0);
    assert_non_null(
        strcasestr(logged(s)->hdrs[6], "Content-Type: application/json-patch+json\r\n"));
    assert_string_equal(
        logged(s)->targets[6],
        "/apis/terrane.io/v1alpha1/namespaces/hydro/assetmaterializations/a/status");
    json_decref(patch);
    assert_int_equal(kube_delete(c, &KUBE_PODS, "ns1", "p1", "uid-1", "Background"), 0);
    assert_string_equal(logged(s)->methods[7], "DELETE");
    json_t *opts = json_loads(logged(s)->bodies[7], 0, NULL);
    assert_non_null(opts);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(opts, "preconditions"), "uid")), "uid-1");
    assert_string_equal(json_string_value(json_object_get(opts, "propagationPolicy")),
                        "Background");
    json_decref(opts);

    /* Keep-alive: all of it on one connection (the handle pool keeps it). */
    assert_int_equal(logged(s)->nconn, 1);

    /* Arguments that cannot make a path fail before any request. */
    int n = srv_nreq(s);
    assert_int_equal(kube_get(c, &KUBE_PODS, NULL, "p1", &obj), CERR_INVALID);
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "..", &obj), CERR_INVALID);
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "", &obj), CERR_INVALID);
    assert_int_equal(srv_nreq(s), n);
    assert_int_equal(cmem_live(), live);
    kube_client_free(c);
    srv_stop(s);
}

static void h_errors(tsrv *s, int fd, http_req *r)
{
    (void)s;
    if (strstr(r->target, "/gone"))
        reply_status(fd, 404, "NotFound", "pods \\\"gone\\\" not found", NULL);
    else if (!strcmp(r->method, "POST"))
        reply_status(fd, 409, "AlreadyExists", "pods \\\"x\\\" already exists", NULL);
    else if (!strcmp(r->method, "PUT"))
        reply_status(
            fd, 409, "Conflict",
            "Operation cannot be fulfilled on pods \\\"x\\\": the object has been modified", NULL);
    else if (strstr(r->target, "/expired"))
        reply_status(fd, 410, "Expired", "too old resource version: 1 (5)", NULL);
    else if (strstr(r->target, "/denied"))
        reply_status(fd, 403, "Forbidden", "pods is forbidden: User cannot get", NULL);
    else if (strstr(r->target, "/bad"))
        reply_status(fd, 422, "Invalid", "Pod \\\"bad\\\" is invalid", NULL);
    else if (strstr(r->target, "/html"))
        reply(fd, 418, "Content-Type: text/html\r\n", "<html>\n<b>teapot</b></html>");
    else if (strstr(r->target, "/notjson"))
        reply(fd, 200, NULL, "{\"a\": ");
    else if (strstr(r->target, "/array"))
        reply(fd, 200, NULL, "[1,2]");
    else
        reply(fd, 200, NULL, "{}");
}

static void status_errors_map_to_codes_and_reasons(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_errors, NULL);
    kube_client *c = client_for(s, 1000, 1000, NULL);
    long live = cmem_live();
    json_t *obj = NULL,
           *pod = json_pack("{s:{s:s, s:s}}", "metadata", "name", "x", "namespace", "ns1");

    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "gone", &obj), CERR_NOTFOUND);
    assert_null(obj);
    assert_string_equal(kube_last_reason(), "NotFound");
    assert_non_null(
        strstr(cerr_message(),
               "GET /api/v1/namespaces/ns1/pods/gone: NotFound (404): pods \"gone\" not found"));

    assert_int_equal(kube_create(c, &KUBE_PODS, "ns1", pod, &obj), CERR_CONFLICT);
    assert_string_equal(kube_last_reason(), "AlreadyExists");
    assert_int_equal(kube_update(c, &KUBE_PODS, pod, &obj), CERR_CONFLICT);
    assert_string_equal(kube_last_reason(), "Conflict");
    assert_non_null(strstr(cerr_message(), "the object has been modified"));

    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "expired", &obj), CERR_GONE);
    assert_string_equal(kube_last_reason(), "Expired");
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "denied", &obj), CERR_FORBIDDEN);
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "bad", &obj), CERR_INVALID);
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "html", &obj), CERR_IO);
    assert_non_null(strstr(cerr_message(), "HTTP 418: <html> <b>teapot</b></html>"));
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "notjson", &obj), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "invalid JSON in the response"));
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "array", &obj), CERR_INVALID);
    assert_null(obj);

    /* A success clears the reason. */
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "fine", &obj), 0);
    assert_string_equal(kube_last_reason(), "");
    json_decref(obj);
    json_decref(pod);
    assert_int_equal(cmem_live(), live);
    kube_client_free(c);
    srv_stop(s);
}

/* 429 with Retry-After: n, then 200. ctx: the Retry-After value as a string. */
static void h_throttle_once(tsrv *s, int fd, http_req *r)
{
    (void)r;
    pthread_mutex_lock(&s->mu);
    int st = s->state++;
    pthread_mutex_unlock(&s->mu);
    if (st == 0) {
        char extra[64];
        snprintf(extra, sizeof extra, "Retry-After: %s\r\n", (const char *)s->ctx);
        reply_status(fd, 429, "TooManyRequests", "Too many requests, please try again later.",
                     extra);
    } else {
        reply(fd, 200, NULL, "{\"metadata\":{\"name\":\"p1\"}}");
    }
}

static void retry_after_429_is_honoured(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_throttle_once, "1");
    kube_client *c = client_for(s, 1000, 1000, NULL);
    observed o = {0};
    kube_client_set_observer(c, observe, &o);
    json_t *obj = NULL;
    double t0 = now_s();
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "p1", &obj), 0);
    double took = now_s() - t0;
    json_decref(obj);
    assert_true(took >= 1.0);
    assert_int_equal(srv_nreq(s), 2);
    assert_int_equal(o.calls, 2);
    assert_int_equal(o.codes[0], 429);
    assert_int_equal(o.codes[1], 200);

    /* Any verb: a 429 was not processed by the server. */
    srv_set(s, 0, NULL);
    json_t *pod = json_pack("{s:{s:s}}", "metadata", "name", "p1");
    assert_int_equal(kube_create(c, &KUBE_PODS, "ns1", pod, NULL), 0);
    assert_int_equal(srv_nreq(s), 4);

    /* A thread deadline shorter than the Retry-After gives up at once. */
    srv_set(s, 0, NULL);
    kube_set_thread_timeout(500);
    t0 = now_s();
    assert_int_equal(kube_create(c, &KUBE_PODS, "ns1", pod, NULL), CERR_AGAIN);
    assert_true(now_s() - t0 < 0.9);
    kube_set_thread_timeout(0);
    json_decref(pod);
    kube_client_free(c);
    srv_stop(s);
}

static void h_always(tsrv *s, int fd, http_req *r)
{
    (void)r;
    int code = atoi(s->ctx);
    if (code == 429)
        reply_status(fd, 429, "TooManyRequests", "slow down", "Retry-After: 0\r\n");
    else
        reply_status(fd, code, code == 503 ? "ServiceUnavailable" : "InternalError", "boom", NULL);
}

static void persistent_429_and_5xx_give_up(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_always, "429");
    kube_client *c = client_for(s, 1000, 1000, NULL);
    json_t *obj = NULL;
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "p1", &obj), CERR_AGAIN);
    assert_string_equal(kube_last_reason(), "TooManyRequests");
    assert_int_equal(srv_nreq(s), 6); /* 1 + 5 retries */
    kube_client_free(c);
    srv_stop(s);

    s = srv_start(h_always, "500");
    c = client_for(s, 1000, 1000, NULL);
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "p1", &obj), CERR_AGAIN);
    assert_int_equal(srv_nreq(s), 3); /* reads: 1 + 2 retries */
    json_t *pod = json_pack("{s:{s:s}}", "metadata", "name", "p1");
    assert_int_equal(kube_create(c, &KUBE_PODS, "ns1", pod, NULL), CERR_AGAIN);
    assert_int_equal(srv_nreq(s), 4); /* writes: never repeated on 5xx */
    json_decref(pod);
    kube_client_free(c);
    srv_stop(s);
}

static void h_503_then_ok(tsrv *s, int fd, http_req *r)
{
    (void)r;
    pthread_mutex_lock(&s->mu);
    int st = s->state++;
    pthread_mutex_unlock(&s->mu);
    if (st < 2)
        reply_status(fd, 503, "ServiceUnavailable", "etcd leader changed", NULL);
    else
        reply(fd, 200, NULL, "{\"metadata\":{\"name\":\"p1\"}}");
}

static void get_retries_5xx_with_backoff(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_503_then_ok, NULL);
    kube_client *c = client_for(s, 1000, 1000, NULL);
    json_t *obj = NULL;
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "p1", &obj), 0);
    json_decref(obj);
    assert_int_equal(srv_nreq(s), 3);
    kube_client_free(c);
    srv_stop(s);
}

static void h_big(tsrv *s, int fd, http_req *r)
{
    (void)s;
    (void)r;
    size_t n = (9u << 20);
    char head[256];
    snprintf(head, sizeof head,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             n + 8);
    send_all(fd, head, strlen(head));
    send_all(fd, "{\"a\":\"", 6);
    char *blk = malloc(65536);
    memset(blk, 'x', 65536);
    for (size_t i = 0; i < n; i += 65536)
        if (!send_all(fd, blk, 65536 < n - i ? 65536 : n - i)) break;
    free(blk);
    send_all(fd, "\"}", 2);
}

static void oversized_response_is_refused(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_big, NULL);
    kube_client *c = client_for(s, 1000, 1000, NULL);
    long live = cmem_live();
    json_t *obj = NULL;
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "p1", &obj), CERR_TOOBIG);
    assert_null(obj);
    assert_non_null(strstr(cerr_message(), "larger than 8388608 bytes"));
    assert_int_equal(cmem_live(), live);
    kube_client_free(c);
    srv_stop(s);
}

static void h_pages(tsrv *s, int fd, http_req *r)
{
    char cont[64], lim[16];
    query_param(r, "continue", cont, sizeof cont);
    bool limited = query_param(r, "limit", lim, sizeof lim) != NULL;
    pthread_mutex_lock(&s->mu);
    bool expire = s->ctx != NULL;
    pthread_mutex_unlock(&s->mu);
    if (expire && !strcmp(cont, "t2")) {
        reply_status(fd, 410, "Expired", "The provided continue parameter is too old", NULL);
        return;
    }
    if (!limited)
        reply(fd, 200, NULL,
              "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"200\"},\"items\":[{"
              "\"metadata\":"
              "{\"name\":\"all\"}}]}");
    else if (!cont[0])
        reply(
            fd, 200, NULL,
            "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"100\","
            "\"continue\":\"t1\",\"remainingItemCount\":2},\"items\":[{\"metadata\":{\"name\":"
            "\"a\"}},"
            "{\"metadata\":{\"name\":\"b\"}}]}");
    else if (!strcmp(cont, "t1"))
        reply(
            fd, 200, NULL,
            "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"100\",\"continue\":\"t2\"},"
            "\"items\":[{\"metadata\":{\"name\":\"c\"}}]}");
    else
        reply(fd, 200, NULL,
              "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"100\"},\"items\":[{"
              "\"metadata\":"
              "{\"name\":\"d\"}}]}");
}

static void list_follows_continue_and_escapes_selectors(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_pages, NULL);
    kube_client *c = client_for(s, 1000, 1000, NULL);
    long live = cmem_live();
    json_t *list = NULL;
    assert_int_equal(
        kube_list(c, &KUBE_PODS, "ns1", "app=x,tier in (a,b)", "status.phase!=Running", &list), 0);
    json_t *items = json_object_get(list, "items");
    assert_int_equal(json_array_size(items), 4);
    assert_string_equal(kobj_name(json_array_get(items, 3)), "d");
    json_t *meta = json_object_get(list, "metadata");
    assert_string_equal(json_string_value(json_object_get(meta, "resourceVersion")), "100");
    assert_null(json_object_get(meta, "continue"));
    assert_null(json_object_get(meta, "remainingItemCount"));
    json_decref(list);
    assert_int_equal(srv_nreq(s), 3);
    assert_string_equal(
        logged(s)->targets[0],
        "/api/v1/namespaces/ns1/pods?limit=500&labelSelector=app%3Dx%2Ctier%20in%20%28a%2Cb%29"
        "&fieldSelector=status.phase%21%3DRunning");
    assert_non_null(strstr(logged(s)->targets[1], "&continue=t1&"));

    /* All namespaces. */
    assert_int_equal(kube_list(c, &CRD_ASSETMATERIALIZATIONS, NULL, NULL, NULL, &list), 0);
    json_decref(list);
    assert_string_equal(logged(s)->targets[3],
                        "/apis/terrane.io/v1alpha1/assetmaterializations?limit=500");

    /* A continue token that expired: one unpaginated list instead. */
    srv_set(s, 0, "expire");
    int n = srv_nreq(s);
    assert_int_equal(kube_list(c, &KUBE_PODS, "ns1", NULL, NULL, &list), 0);
    assert_int_equal(json_array_size(json_object_get(list, "items")), 1);
    assert_string_equal(kobj_name(json_array_get(json_object_get(list, "items"), 0)), "all");
    json_decref(list);
    assert_int_equal(srv_nreq(s), n + 4); /* a, c, the 410 on "t2", the full list */
    assert_string_equal(logged(s)->targets[n + 3], "/api/v1/namespaces/ns1/pods");
    assert_int_equal(cmem_live(), live);
    kube_client_free(c);
    srv_stop(s);
}

static void qps_limit_spaces_requests(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_echo, NULL);
    kube_client *c = client_for(s, 20, 2, NULL);
    double t0 = now_s();
    for (int i = 0; i < 8; i++) {
        json_t *obj = NULL;
        assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "p1", &obj), 0);
        json_decref(obj);
    }
    /* 2 from the burst, then 6 at 20 per second. */
    assert_true(now_s() - t0 >= (8 - 2) / 20.0 - 0.01);
    kube_client_free(c);
    srv_stop(s);
}

static void write_text(const char *path, const char *text)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static void token_file_is_reread_when_it_changes(void **state)
{
    (void)state;
    char dir[] = "/tmp/ktok-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/token", dir);
    write_text(path, "first-token\n");
    tsrv *s = srv_start(h_echo, NULL);
    kube_client *c = client_for(s, 1000, 1000, path);
    json_t *obj = NULL;
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "p1", &obj), 0);
    json_decref(obj);
    assert_non_null(strstr(logged(s)->hdrs[0], "Authorization: Bearer first-token\r\n"));
    /* The kubelet swaps the file (a new inode). */
    write_text(path, "second-token");
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "p1", &obj), 0);
    json_decref(obj);
    assert_non_null(strstr(logged(s)->hdrs[1], "Authorization: Bearer second-token\r\n"));
    /* Gone: the last token read stays in use. */
    unlink(path);
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "p1", &obj), 0);
    json_decref(obj);
    assert_non_null(strstr(logged(s)->hdrs[2], "Authorization: Bearer second-token\r\n"));
    kube_client_free(c);
    srv_stop(s);
    rmdir(dir);
}

static void connection_failures_name_the_server(void **state)
{
    (void)state;
    /* A port nobody listens on: bind one, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    char server[64];
    snprintf(server, sizeof server, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    kube_config cfg = {.server = server, .qps = 1000, .burst = 1000, .timeout_ms = 2000};
    kube_client *c = NULL;
    assert_int_equal(kube_client_new(&cfg, &c), 0);
    json_t *obj = NULL;
    assert_int_equal(kube_get(c, &KUBE_PODS, "ns1", "p1", &obj), CERR_IO);
    assert_non_null(strstr(cerr_message(), server));
    kube_client_free(c);

    /* Configurations that cannot work are refused up front. */
    kube_config bad = {.server = "ftp://x"};
    assert_int_equal(kube_client_new(&bad, &c), CERR_INVALID);
    kube_config nopem = {.server = "https://x", .ca_data = "not a certificate"};
    assert_int_equal(kube_client_new(&nopem, &c), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "CA bundle"));
    kube_config nofile = {.server = "https://x", .ca_file = "/nonexistent/ca.crt"};
    assert_int_equal(kube_client_new(&nofile, &c), CERR_NOTFOUND);
    assert_non_null(strstr(cerr_message(), "/nonexistent/ca.crt"));
}

/* ========================================================================================
 * TLS: the CA, verification and client certificates (an OpenSSL server on loopback)
 * ======================================================================================== */

static char tls_dir[64];

/* Deadlines of the TLS cases, in seconds times TERRANE_TEST_SLOWDOWN (1 to
 * 100; make check-valgrind sets it): a handshake under Valgrind takes many
 * times as long. The client's own defaults are not changed. */
static long slowdown(void)
{
    const char *s = getenv("TERRANE_TEST_SLOWDOWN");
    long v = s ? strtol(s, NULL, 10) : 1;
    return v >= 1 && v <= 100 ? v : 1;
}

/* A CA, a server certificate for IP 127.0.0.1 signed by it, a client
 * certificate signed by it, and an unrelated CA: openssl(1), EC keys. */
static bool make_certs(void)
{
    snprintf(tls_dir, sizeof tls_dir, "/tmp/ktls-XXXXXX");
    if (!mkdtemp(tls_dir)) return false;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
             "openssl req -x509 $K -keyout ca.key -out ca.crt -days 2 -subj /CN=terrane-test-ca && "
             "openssl req -x509 $K -keyout other.key -out other.crt -days 2 -subj /CN=other-ca && "
             "openssl req $K -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 && "
             "printf 'subjectAltName=IP:127.0.0.1\\n' > srv.ext && "
             "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt "
             "-days 2 "
             "-extfile srv.ext && "
             "openssl req $K -keyout cli.key -out cli.csr -subj /CN=terrane-controller && "
             "openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out cli.crt "
             "-days 2",
             tls_dir);
    char full[2200];
    snprintf(full, sizeof full, "(%s) >/dev/null 2>&1", cmd);
    return system(full) == 0;
}

static char *slurp(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tls_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

typedef struct {
    int lfd, port;
    pthread_t thread;
    atomic_bool stop;
    SSL_CTX *ctx;
    atomic_int served, refused;
} tls_srv;

static void *tls_main(void *arg)
{
    tls_srv *t = arg;
    while (!atomic_load(&t->stop)) {
        struct pollfd p = {.fd = t->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(t->lfd, NULL, NULL);
        if (fd < 0) continue;
        struct timeval tv = {2 * slowdown(), 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL *ssl = SSL_new(t->ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) <= 0) {
            atomic_fetch_add(&t->refused, 1);
        } else {
            char req[8192] = "";
            size_t have = 0;
            while (have < sizeof req - 1) {
                int n = SSL_read(ssl, req + have, (int)(sizeof req - 1 - have));
                if (n <= 0) break;
                have += (size_t)n;
                req[have] = '\0';
                if (strstr(req, "\r\n\r\n")) break;
            }
            char cn[128] = "none", body[256], resp[512];
            X509 *peer = SSL_get1_peer_certificate(ssl);
            if (peer) {
                X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
                                          sizeof cn);
                X509_free(peer);
            }
            snprintf(body, sizeof body,
                     "{\"metadata\":{\"name\":\"tls\",\"annotations\":{\"client\":\"%s\"}}}", cn);
            snprintf(resp, sizeof resp,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     strlen(body), body);
            /* Counted before answering, and only for a whole request: a
             * client that rejects the certificate after the handshake (curl
             * checks the host name then) sends none. */
            if (strstr(req, "\r\n\r\n")) {
                atomic_fetch_add(&t->served, 1);
                SSL_write(ssl, resp, (int)strlen(resp));
            }
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
    }
    return NULL;
}

static tls_srv *tls_start(bool require_client_cert)
{
    char path[256], key[256];
    tls_srv *t = calloc(1, sizeof *t);
    t->ctx = SSL_CTX_new(TLS_server_method());
    snprintf(path, sizeof path, "%s/srv.crt", tls_dir);
    snprintf(key, sizeof key, "%s/srv.key", tls_dir);
    assert_int_equal(SSL_CTX_use_certificate_file(t->ctx, path, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM), 1);
    if (require_client_cert) {
        snprintf(path, sizeof path, "%s/ca.crt", tls_dir);
        assert_int_equal(SSL_CTX_load_verify_locations(t->ctx, path, NULL), 1);
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    t->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(t->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(t->lfd, 16), 0);
    socklen_t sl = sizeof sa;
    getsockname(t->lfd, (struct sockaddr *)&sa, &sl);
    t->port = ntohs(sa.sin_port);
    pthread_create(&t->thread, NULL, tls_main, t);
    return t;
}

static void tls_stop(tls_srv *t)
{
    atomic_store(&t->stop, true);
    pthread_join(t->thread, NULL);
    close(t->lfd);
    SSL_CTX_free(t->ctx);
    free(t);
}

/* GET through a client built from cfg; the answer's client annotation. */
static int tls_get(kube_config *cfg, char *client_cn, size_t n)
{
    kube_client *c = NULL;
    cfg->qps = 1000;
    cfg->burst = 1000;
    cfg->timeout_ms = 5000 * slowdown();
    int rc = kube_client_new(cfg, &c);
    if (rc) return rc;
    json_t *obj = NULL;
    rc = kube_get(c, &KUBE_PODS, "ns1", "tls", &obj);
    if (!rc && client_cn) {
        const json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
        snprintf(client_cn, n, "%s", json_string_value(json_object_get(ann, "client")));
    }
    json_decref(obj);
    kube_client_free(c);
    return rc;
}

static void tls_verifies_the_server_and_presents_client_certs(void **state)
{
    (void)state;
    if (!make_certs())
        fail_msg("cannot make test certificates with openssl(1) (scripts/deps.sh installs it)");
    char *ca = slurp("ca.crt"), *cli_crt = slurp("cli.crt"), *cli_key = slurp("cli.key");
    char server[64], localhost[64], ca_path[128], other_path[128], cn[128];
    snprintf(ca_path, sizeof ca_path, "%s/ca.crt", tls_dir);
    snprintf(other_path, sizeof other_path, "%s/other.crt", tls_dir);
    long live = cmem_live();

    tls_srv *t = tls_start(false);
    snprintf(server, sizeof server, "https://127.0.0.1:%d", t->port);
    snprintf(localhost, sizeof localhost, "https://localhost:%d", t->port);
    kube_config by_data = {.server = server, .ca_data = ca};
    assert_int_equal(tls_get(&by_data, cn, sizeof cn), 0);
    assert_string_equal(cn, "none");
    kube_config by_file = {.server = server, .ca_file = ca_path};
    assert_int_equal(tls_get(&by_file, NULL, 0), 0);
    /* Another CA: the server's certificate does not verify. */
    kube_config wrong_ca = {.server = server, .ca_file = other_path};
    assert_int_equal(tls_get(&wrong_ca, NULL, 0), CERR_IO);
    assert_non_null(strcasestr(cerr_message(), "certificate"));
    /* Right CA, wrong name: the certificate is for 127.0.0.1 only. */
    kube_config wrong_name = {.server = localhost, .ca_data = ca};
    assert_int_equal(tls_get(&wrong_name, NULL, 0), CERR_IO);
    assert_int_equal(atomic_load(&t->served), 2);
    tls_stop(t);

    /* A server that wants a client certificate. */
    t = tls_start(true);
    snprintf(server, sizeof server, "https://127.0.0.1:%d", t->port);
    kube_config mtls = {.server = server, .ca_data = ca, .cert_data = cli_crt, .key_data = cli_key};
    assert_int_equal(tls_get(&mtls, cn, sizeof cn), 0);
    assert_string_equal(cn, "terrane-controller");
    kube_config no_cert = {.server = server, .ca_data = ca};
    assert_int_not_equal(tls_get(&no_cert, NULL, 0), 0);
    assert_true(atomic_load(&t->refused) >= 1);
    tls_stop(t);
    assert_int_equal(cmem_live(), live);

    free(ca);
    free(cli_crt);
    free(cli_key);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tls_dir);
    assert_int_equal(system(cmd), 0);
}

/* ========================================================================================
 * Watches
 * ======================================================================================== */

typedef struct {
    char log[64][96];
    int n;
    int stop_at; /* return 42 on this event (1-based); 0: never */
} wlog;

static int record_event(void *ctx, const watch_event *ev)
{
    wlog *l = ctx;
    char key[128] = "-";
    if (ev->object && ev->type != WATCH_BOOKMARK) kobj_key(ev->object, key, sizeof key);
    if (l->n < 64)
        snprintf(l->log[l->n], sizeof l->log[0], "%s %s %s", watch_type_name(ev->type), key,
                 ev->resource_version ? ev->resource_version : "-");
    l->n++;
    return l->stop_at && l->n == l->stop_at ? 42 : 0;
}

static const char *ev_added_a = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{"
                                "\"name\":\"a\",\"namespace\":\"ns1\","
                                "\"resourceVersion\":\"6\"}}}\n";
static const char *ev_modified_a = "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\","
                                   "\"metadata\":{\"name\":\"a\",\"namespace\":\"ns1\","
                                   "\"resourceVersion\":\"7\"}}}\n";
static const char *ev_bookmark = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":"
                                 "{\"resourceVersion\":\"9\"}}}\n";

/* ctx selects the script. */
static void h_watch(tsrv *s, int fd, http_req *r)
{
    const char *mode = s->ctx;
    (void)r;
    if (!strcmp(mode, "http410")) {
        reply_status(fd, 410, "Expired", "too old resource version", NULL);
        return;
    }
    if (!strcmp(mode, "http403")) {
        reply_status(fd, 403, "Forbidden", "watch is forbidden", NULL);
        return;
    }
    stream_start(fd);
    if (!strcmp(mode, "split")) {
        /* One event over three chunks, two events in one chunk, a bookmark
         * split in the middle of a string. */
        size_t n = strlen(ev_added_a);
        chunk(fd, ev_added_a, 10);
        sleep_ms(20);
        chunk(fd, ev_added_a + 10, 30);
        sleep_ms(20);
        char both[1024];
        snprintf(both, sizeof both, "%s%s", ev_added_a + 40, ev_modified_a);
        chunk(fd, both, strlen(both));
        (void)n;
        sleep_ms(20);
        chunk(fd, ev_bookmark, 25);
        sleep_ms(20);
        chunk_str(fd, ev_bookmark + 25);
        stream_end(fd);
    } else if (!strcmp(mode, "error410")) {
        chunk_str(fd, ev_added_a);
        chunk_str(
            fd,
            "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":"
            "\"Failure\",\"message\":\"too old resource version: 5 (8)\",\"reason\":\"Expired\","
            "\"code\":410}}\n");
        stream_end(fd);
    } else if (!strcmp(mode, "hang")) {
        chunk_str(fd, ev_added_a);
        wait_client_gone(s, fd, -1);
        r->close = true;
    } else if (!strcmp(mode, "cut")) {
        chunk_str(fd, ev_added_a);
        chunk(fd, ev_modified_a, 30);
        sleep_ms(50);
        r->close = true; /* no terminating chunk: the stream is cut */
    } else if (!strcmp(mode, "many")) {
        for (int i = 0; i < 5; i++)
            chunk_str(fd, ev_added_a);
        stream_end(fd);
    } else if (!strcmp(mode, "silent")) {
        wait_client_gone(s, fd, -1); /* headers, then nothing at all */
        r->close = true;
    }
}

static void watch_joins_events_split_across_chunks(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_watch, "split");
    kube_client *c = client_for(s, 1000, 1000, NULL);
    observed o = {0};
    kube_client_set_observer(c, observe, &o);
    long live = cmem_live();
    wlog l = {0};
    atomic_bool stop = false;
    assert_int_equal(kube_watch(c, &KUBE_PODS, "ns1", "app=x", "5", 30, record_event, &l, &stop),
                     0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.log[0], "ADDED ns1/a 6");
    assert_string_equal(l.log[1], "MODIFIED ns1/a 7");
    assert_string_equal(l.log[2], "BOOKMARK - 9");
    assert_string_equal(logged(s)->targets[0],
                        "/api/v1/namespaces/ns1/pods?watch=1&allowWatchBookmarks=true"
                        "&resourceVersion=5&timeoutSeconds=30&labelSelector=app%3Dx");
    assert_int_equal(o.calls, 1);
    assert_string_equal(o.verbs[0], "WATCH");
    assert_int_equal(cmem_live(), live);
    kube_client_free(c);
    srv_stop(s);
}

static void watch_errors_and_callback_stop(void **state)
{
    (void)state;
    const char *modes[] = {"error410", "http410", "http403", "many"};
    int want[] = {CERR_GONE, CERR_GONE, CERR_FORBIDDEN, 42};
    for (size_t i = 0; i < 4; i++) {
        tsrv *s = srv_start(h_watch, (void *)modes[i]);
        kube_client *c = client_for(s, 1000, 1000, NULL);
        wlog l = {.stop_at = 2};
        int rc = kube_watch(c, &KUBE_PODS, NULL, NULL, "5", 30, record_event, &l, NULL);
        if (rc != want[i]) fail_msg("%s: got %s: %s", modes[i], cerr_name(rc), cerr_message());
        if (i == 0) {
            assert_int_equal(l.n, 1); /* the ERROR event is not passed on */
            assert_string_equal(kube_last_reason(), "Expired");
            assert_non_null(strstr(cerr_message(), "too old resource version"));
        }
        if (i == 3) assert_int_equal(l.n, 2);
        assert_string_equal(logged(s)->targets[0],
                            "/api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion=5"
                            "&timeoutSeconds=30");
        kube_client_free(c);
        srv_stop(s);
    }
}

typedef struct {
    atomic_bool *stop;
    long after_ms;
} stopper;

static void *stop_later(void *arg)
{
    stopper *st = arg;
    sleep_ms(st->after_ms);
    atomic_store(st->stop, true);
    return NULL;
}

static void watch_stop_flag_ends_a_hanging_watch(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_watch, "hang");
    kube_client *c = client_for(s, 1000, 1000, NULL);
    wlog l = {0};
    atomic_bool stop = false;
    stopper st = {&stop, 300};
    pthread_t t;
    pthread_create(&t, NULL, stop_later, &st);
    double t0 = now_s();
    assert_int_equal(kube_watch(c, &KUBE_PODS, "ns1", NULL, "5", 600, record_event, &l, &stop),
                     CERR_SHUTDOWN);
    double took = now_s() - t0;
    pthread_join(t, NULL);
    assert_int_equal(l.n, 1);
    assert_true(took >= 0.29);
    assert_true(took < 2.0);
    /* Already stopped: no request at all. */
    int n = srv_nreq(s);
    assert_int_equal(kube_watch(c, &KUBE_PODS, "ns1", NULL, "5", 600, record_event, &l, &stop),
                     CERR_SHUTDOWN);
    assert_int_equal(srv_nreq(s), n);
    kube_client_free(c);
    srv_stop(s);
}

static void watch_cut_mid_line_drops_the_partial_event(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_watch, "cut");
    kube_client *c = client_for(s, 1000, 1000, NULL);
    long live = cmem_live();
    wlog l = {0};
    int rc = kube_watch(c, &KUBE_PODS, "ns1", NULL, "5", 30, record_event, &l, NULL);
    assert_int_equal(rc, CERR_IO);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.log[0], "ADDED ns1/a 6");
    assert_int_equal(cmem_live(), live);
    kube_client_free(c);
    srv_stop(s);
}

static void silent_watch_connection_is_declared_dead(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_watch, "silent");
    kube_client *c = client_for(s, 1000, 1000, NULL);
    wlog l = {0};
    /* timeoutSeconds=1: no byte for 2 s means the connection is dead. */
    double t0 = now_s();
    assert_int_equal(kube_watch(c, &KUBE_PODS, "ns1", NULL, "5", 1, record_event, &l, NULL),
                     CERR_TIMEOUT);
    assert_true(now_s() - t0 >= 1.9);
    assert_non_null(strstr(cerr_message(), "connection presumed dead"));
    kube_client_free(c);
    srv_stop(s);
}

/* Every allocation of a paginated list and of a watch fails in turn: the
 * call reports CERR_NOMEM (or, for a watch, an INVALID event) and frees all
 * it took. */
static void out_of_memory_anywhere_leaks_nothing(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_pages, NULL);
    kube_client *c = client_for(s, 100000, 100000, NULL);
    long live = cmem_live();
    int nomem = 0;
    for (unsigned long n = 1; n < 400; n++) {
        json_t *list = NULL;
        cmem_fail_at(n);
        int rc = kube_list(c, &KUBE_PODS, "ns1", "app=x", NULL, &list);
        cmem_fail_at(0);
        if (rc == 0) {
            json_decref(list);
            break;
        }
        if (rc != CERR_NOMEM) fail_msg("allocation %lu: %s: %s", n, cerr_name(rc), cerr_message());
        assert_null(list);
        assert_int_equal(cmem_live(), live);
        nomem++;
    }
    assert_true(nomem > 10);
    kube_client_free(c);
    srv_stop(s);

    s = srv_start(h_watch, "split");
    c = client_for(s, 100000, 100000, NULL);
    live = cmem_live();
    bool whole = false;
    for (unsigned long n = 1; n < 200 && !whole; n++) {
        wlog l = {0};
        cmem_fail_at(n);
        int rc = kube_watch(c, &KUBE_PODS, "ns1", NULL, "5", 30, record_event, &l, NULL);
        cmem_fail_at(0);
        if (rc != 0 && rc != CERR_NOMEM)
            fail_msg("allocation %lu: %s: %s", n, cerr_name(rc), cerr_message());
        assert_int_equal(cmem_live(), live);
        whole = rc == 0 && l.n == 3 && !strcmp(l.log[2], "BOOKMARK - 9");
    }
    assert_true(whole); /* and eventually enough memory for all of it */
    kube_client_free(c);
    srv_stop(s);
}

/* ========================================================================================
 * Informer against a scripted API server
 * ======================================================================================== */

typedef struct {
    pthread_mutex_t mu;
    char log[64][64];
    int n;
    int resyncs;
} hlog;

static void hlog_add(hlog *h, const char *what, const json_t *obj)
{
    pthread_mutex_lock(&h->mu);
    if (h->n < 64)
        snprintf(h->log[h->n], sizeof h->log[0], "%s %s", what,
                 kobj_name(obj) ? kobj_name(obj) : "?");
    h->n++;
    pthread_mutex_unlock(&h->mu);
}

static void on_add(void *ctx, const json_t *obj)
{
    hlog_add(ctx, "add", obj);
}

static void on_update(void *ctx, const json_t *old_obj, const json_t *new_obj)
{
    hlog *h = ctx;
    if (old_obj == new_obj) {
        pthread_mutex_lock(&h->mu);
        h->resyncs++;
        pthread_mutex_unlock(&h->mu);
        return;
    }
    hlog_add(ctx, "update", new_obj);
}

static void on_delete(void *ctx, const json_t *obj)
{
    hlog_add(ctx, "delete", obj);
}

static json_t *strip_spec(void *ctx, json_t *obj)
{
    (void)ctx;
    json_object_del(obj, "spec");
    return obj;
}

static int hlog_n(hlog *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static bool hlog_has(hlog *h, int from, const char *entry)
{
    pthread_mutex_lock(&h->mu);
    bool found = false;
    for (int i = from; i < h->n && i < 64; i++)
        if (!strcmp(h->log[i], entry)) found = true;
    pthread_mutex_unlock(&h->mu);
    return found;
}

#define POD(name, rv)                                                                              \
    "{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"ns1\",\"resourceVersion\":\"" rv         \
    "\"},\"spec\":{\"big\":1}}"
#define EVENT(type, name, rv)                                                                      \
    "{\"type\":\"" type "\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\","                   \
    "\"metadata\":{\"name\":\"" name "\",\"namespace\":\"ns1\",\"resourceVersion\":\"" rv          \
    "\"},\"spec\":{}}}\n"

/* Lists: 1st {a@1, b@2} rv 10; 2nd {a@12, b@14, d@13} rv 20. Watches: from
 * 10: ADDED c, MODIFIED a, DELETED b, then ERROR 410; from 20 or later: a
 * BOOKMARK, then quiet until timeoutSeconds or the client leaves. */
static void h_informer(tsrv *s, int fd, http_req *r)
{
    char rv[32], tmo[16];
    bool watch = strstr(r->target, "watch=1") != NULL;
    if (!watch) {
        pthread_mutex_lock(&s->mu);
        int lists = s->state++;
        pthread_mutex_unlock(&s->mu);
        if (lists == 0)
            reply(fd, 200, NULL,
                  "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":"
                  "\"10\"},"
                  "\"items\":[" POD("a", "1") "," POD("b", "2") "]}");
        else
            reply(fd, 200, NULL,
                  "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":"
                  "\"20\"},"
                  "\"items\":[" POD("a", "12") "," POD("b", "14") "," POD("d", "13") "]}");
        return;
    }
    query_param(r, "resourceVersion", rv, sizeof rv);
    query_param(r, "timeoutSeconds", tmo, sizeof tmo);
    stream_start(fd);
    if (!strcmp(rv, "10")) {
        chunk_str(fd, EVENT("ADDED", "c", "11"));
        chunk_str(fd, EVENT("MODIFIED", "a", "12"));
        chunk_str(fd, EVENT("DELETED", "b", "13"));
        chunk_str(fd, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                      "\"status\":\"Failure\","
                      "\"message\":\"too old resource version: 10 "
                      "(15)\",\"reason\":\"Expired\",\"code\":410}}\n");
        stream_end(fd);
        return;
    }
    chunk_str(fd, "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{"
                  "\"resourceVersion\":\"25\"}}}\n");
    if (wait_client_gone(s, fd, atol(tmo) * 1000))
        r->close = true;
    else
        stream_end(fd);
}

/* Two values per object: its name and "all". */
static int index_name_all(void *ctx, const json_t *obj, informer_values *out)
{
    (void)ctx;
    int rc = informer_values_add(out, kobj_name(obj));
    return rc ? rc : informer_values_add(out, "all");
}

typedef struct {
    char s[16][32]; /* copied: a compact informer's objects live for the call only */
    const char *v[16];
    size_t n;
} namelist;

static int collect_names(void *ctx, const json_t *obj)
{
    namelist *l = ctx;
    if (l->n < 16) {
        snprintf(l->s[l->n], sizeof l->s[0], "%s", kobj_name(obj));
        l->v[l->n] = l->s[l->n];
        l->n++;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names an index holds for value, sorted and joined by ","; checks
 * informer_index_count agrees. */
static const char *indexed(informer *inf, const char *index, const char *value)
{
    static char buf[256];
    namelist l = {0};
    assert_int_equal(informer_each_indexed(inf, index, value, collect_names, &l), 0);
    assert_int_equal(informer_index_count(inf, index, value), l.n);
    qsort(l.v, l.n, sizeof l.v[0], cmp_str);
    buf[0] = '\0';
    for (size_t i = 0; i < l.n; i++) {
        if (i) strcat(buf, ",");
        strcat(buf, l.v[i]);
    }
    return buf;
}

/* Every informer test runs with jansson trees cached and with packed texts. */
static void informer_lists_watches_and_relists_on_410_mode(bool compact)
{
    tsrv *s = srv_start(h_informer, NULL);
    kube_client *c = client_for(s, 1000, 1000, NULL);
    hlog h = {.mu = PTHREAD_MUTEX_INITIALIZER}, h2 = {.mu = PTHREAD_MUTEX_INITIALIZER};
    informer_handlers hs = {on_add, on_update, on_delete, strip_spec, &h};
    informer_handlers more = {on_add, on_update, on_delete, NULL, &h2};
    informer *inf = NULL;
    long live = cmem_live();
    assert_int_equal(informer_new(c, &KUBE_PODS, "ns1", NULL, 0, &hs, &inf), 0);
    assert_int_equal(informer_set_compact(inf, compact), 0);
    assert_int_equal(informer_add_index(inf, "name", index_name_all, NULL), 0);
    assert_int_equal(informer_add_index(inf, "name", index_name_all, NULL), CERR_INVALID);
    assert_int_equal(informer_add_handlers(inf, &more), 0);
    assert_false(informer_has_synced(inf));
    assert_int_equal(informer_start(inf), 0);
    assert_int_equal(informer_set_compact(inf, !compact), CERR_INVALID);
    assert_true(informer_wait_synced(inf, 5000));
    informer_stats st;
    WAIT_FOR((informer_stats_get(inf, &st), st.lists >= 2 && hlog_n(&h) >= 8), 5000);
    assert_int_equal(st.lists, 2);
    assert_int_equal(st.gone, 1);
    assert_int_equal(st.events, 3);
    /* The list, then the watch's events, in order. */
    assert_true(hlog_n(&h) == 8);
    assert_true(hlog_has(&h, 0, "add a") && hlog_has(&h, 0, "add b"));
    assert_string_equal(h.log[2], "add c");
    assert_string_equal(h.log[3], "update a");
    assert_string_equal(h.log[4], "delete b");
    /* The relist's diff, in any order: c vanished, d and b are new, a is
     * unchanged (same resourceVersion) and not reported. */
    assert_true(hlog_has(&h, 5, "delete c"));
    assert_true(hlog_has(&h, 5, "add d"));
    assert_true(hlog_has(&h, 5, "add b"));
    assert_false(hlog_has(&h, 5, "update a"));

    assert_int_equal(informer_len(inf), 3);
    json_t *a = informer_get(inf, "ns1", "a");
    assert_non_null(a);
    assert_string_equal(kobj_resource_version(a), "12");
    /* List items get apiVersion and kind; the transform stripped spec. */
    assert_string_equal(json_string_value(json_object_get(a, "kind")), "Pod");
    assert_string_equal(json_string_value(json_object_get(a, "apiVersion")), "v1");
    assert_null(json_object_get(a, "spec"));
    /* compact: every read is a tree of the caller's own */
    json_t *a2 = informer_get(inf, "ns1", "a");
    assert_true(compact ? a2 != a && json_equal(a2, a) : a2 == a);
    json_decref(a2);
    json_decref(a);
    assert_null(informer_get(inf, "ns1", "c"));
    assert_null(informer_get(inf, "ns2", "a"));
    /* the indexes follow the relist: c gone, b back, d new */
    assert_string_equal(indexed(inf, "name", "all"), "a,b,d");
    assert_string_equal(indexed(inf, "name", "c"), "");
    assert_string_equal(indexed(inf, "name", "d"), "d");
    assert_string_equal(indexed(inf, INFORMER_INDEX_NAMESPACE, "ns1"), "a,b,d");
    assert_string_equal(indexed(inf, INFORMER_INDEX_NAMESPACE, "ns2"), "");
    assert_int_equal(informer_each_indexed(inf, "nope", "x", collect_names, NULL), CERR_NOTFOUND);
    /* the second handler set saw the same events */
    assert_int_equal(hlog_n(&h2), hlog_n(&h));

    /* The next watch starts from the relist's resourceVersion. */
    WAIT_FOR(srv_nreq(s) >= 4, 2000);
    assert_non_null(strstr(logged(s)->targets[3], "resourceVersion=20&"));
    informer_stats_get(inf, &st);
    assert_int_equal(st.gone, 1);

    double t0 = now_s();
    informer_stop(inf);
    assert_true(now_s() - t0 < 1.0);
    informer_free(inf);
    assert_int_equal(cmem_live(), live);
    kube_client_free(c);
    srv_stop(s);
}

static void informer_lists_watches_and_relists_on_410(void **state)
{
    (void)state;
    informer_lists_watches_and_relists_on_410_mode(false);
    informer_lists_watches_and_relists_on_410_mode(true);
}

/* A server behind the informer's resourceVersion: the watch from 10 gets
 * the ERROR event a real API server sends after waiting for it (504
 * Timeout, "Too large resource version"); the informer lists again and
 * watches from the list's version. */
static void h_too_large(tsrv *s, int fd, http_req *r)
{
    char rv[32], tmo[16];
    if (!strstr(r->target, "watch=1")) {
        pthread_mutex_lock(&s->mu);
        int lists = s->state++;
        pthread_mutex_unlock(&s->mu);
        if (lists == 0)
            reply(fd, 200, NULL,
                  "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":"
                  "\"10\"},\"items\":[" POD("a", "1") "]}");
        else
            reply(fd, 200, NULL,
                  "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":"
                  "\"7\"},\"items\":[" POD("a", "1") "," POD("b", "6") "]}");
        return;
    }
    query_param(r, "resourceVersion", rv, sizeof rv);
    query_param(r, "timeoutSeconds", tmo, sizeof tmo);
    stream_start(fd);
    if (!strcmp(rv, "10")) {
        chunk_str(fd,
                  "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                  "\"status\":\"Failure\",\"message\":\"Too large resource version: 10, current: "
                  "7\",\"reason\":\"Timeout\",\"details\":{\"causes\":[{\"reason\":"
                  "\"ResourceVersionTooLarge\",\"message\":\"Too large resource version\"}],"
                  "\"retryAfterSeconds\":1},\"code\":504}}\n");
        stream_end(fd);
        return;
    }
    if (wait_client_gone(s, fd, atol(tmo) * 1000))
        r->close = true;
    else
        stream_end(fd);
}

static void informer_relists_when_the_server_is_behind(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_too_large, NULL);
    kube_client *c = client_for(s, 1000, 1000, NULL);
    hlog h = {.mu = PTHREAD_MUTEX_INITIALIZER};
    informer_handlers hs = {on_add, on_update, on_delete, strip_spec, &h};
    informer *inf = NULL;
    long live = cmem_live();
    assert_int_equal(informer_new(c, &KUBE_PODS, "ns1", NULL, 0, &hs, &inf), 0);
    assert_int_equal(informer_start(inf), 0);
    assert_true(informer_wait_synced(inf, 5000));
    informer_stats st;
    WAIT_FOR((informer_stats_get(inf, &st), st.lists >= 2), 5000);
    assert_int_equal(st.lists, 2);
    json_t *b = informer_get(inf, "ns1", "b");
    assert_non_null(b);
    json_decref(b);
    /* list, watch from 10 (refused), list, watch from 7 */
    WAIT_FOR(srv_nreq(s) >= 4, 2000);
    assert_non_null(strstr(logged(s)->targets[3], "resourceVersion=7&"));
    informer_stop(inf);
    informer_free(inf);
    assert_int_equal(cmem_live(), live);
    kube_client_free(c);
    srv_stop(s);
}

/* A relist pages through the list into the cache (the transform applied
 * page by page); an expired continue token starts it over unpaginated,
 * and nothing of the abandoned pages stays. */
static void informer_relists_by_pages(void **state)
{
    (void)state;
    for (int run = 0; run < 4; run++) {
        bool compact = run >= 2;
        int expire = run % 2;
        tsrv *s = srv_start(h_pages, NULL);
        if (expire) srv_set(s, 0, "expire");
        kube_client *c = client_for(s, 1000, 1000, NULL);
        hlog h = {.mu = PTHREAD_MUTEX_INITIALIZER};
        informer_handlers hs = {on_add, on_update, on_delete, strip_spec, &h};
        informer *inf = NULL;
        long live = cmem_live();
        assert_int_equal(informer_new(c, &KUBE_PODS, "ns1", NULL, 0, &hs, &inf), 0);
        assert_int_equal(informer_set_compact(inf, compact), 0);
        assert_int_equal(informer_add_index(inf, "name", index_name_all, NULL), 0);
        assert_int_equal(informer_start(inf), 0);
        assert_true(informer_wait_synced(inf, 5000));
        informer_stop(inf);
        assert_string_equal(indexed(inf, "name", "all"), expire ? "all" : "a,b,c,d");
        assert_int_equal(informer_len(inf), expire ? 1 : 4);
        assert_non_null(strstr(logged(s)->targets[0], "limit=500"));
        informer_free(inf);
        assert_int_equal(cmem_live(), live);
        kube_client_free(c);
        srv_stop(s);
    }
}

static int count_ns1(void *ctx, const json_t *obj)
{
    (void)obj;
    (*(int *)ctx)++;
    return 0;
}

/* 403 twice, then a list; watches say nothing until timeoutSeconds. */
static void h_flaky_list(tsrv *s, int fd, http_req *r)
{
    char tmo[16];
    if (!strstr(r->target, "watch=1")) {
        pthread_mutex_lock(&s->mu);
        int n = s->state++;
        pthread_mutex_unlock(&s->mu);
        if (n < 2)
            reply_status(fd, 403, "Forbidden", "not yet", NULL);
        else
            reply(fd, 200, NULL,
                  "{\"metadata\":{\"resourceVersion\":\"3\"},\"items\":[" POD("a", "1") "," POD(
                      "b", "2") "]}");
        return;
    }
    query_param(r, "timeoutSeconds", tmo, sizeof tmo);
    stream_start(fd);
    if (wait_client_gone(s, fd, atol(tmo) * 1000))
        r->close = true;
    else
        stream_end(fd);
}

static void informer_backs_off_then_syncs_and_resyncs_mode(bool compact)
{
    tsrv *s = srv_start(h_flaky_list, NULL);
    kube_client *c = client_for(s, 1000, 1000, NULL);
    hlog h = {.mu = PTHREAD_MUTEX_INITIALIZER};
    informer_handlers hs = {on_add, on_update, on_delete, NULL, &h};
    informer *inf = NULL;
    assert_int_equal(informer_new(c, &KUBE_PODS, NULL, NULL, 1, &hs, &inf), 0);
    assert_int_equal(informer_set_compact(inf, compact), 0);
    assert_int_equal(informer_start(inf), 0);
    /* 250 ms and 500 ms (+ jitter) of backoff before the third list. */
    double t0 = now_s();
    assert_true(informer_wait_synced(inf, 5000));
    assert_true(now_s() - t0 >= 0.7);
    int n = 0;
    assert_int_equal(informer_each(inf, "ns1", count_ns1, &n), 0);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(informer_each(inf, "other", count_ns1, &n), 0);
    assert_int_equal(n, 0);
    /* resync_s = 1: on_update(obj, obj) for both objects, repeatedly. */
    WAIT_FOR((pthread_mutex_lock(&h.mu), n = h.resyncs, pthread_mutex_unlock(&h.mu), n >= 4), 5000);
    assert_true(n >= 4);
    informer_stats st;
    informer_stats_get(inf, &st);
    assert_int_equal(st.lists, 1);
    assert_true(st.watch_restarts >= 1); /* the watch is cut to end at each resync */
    informer_free(inf);
    kube_client_free(c);
    srv_stop(s);
}

static void informer_backs_off_then_syncs_and_resyncs(void **state)
{
    (void)state;
    informer_backs_off_then_syncs_and_resyncs_mode(false);
    informer_backs_off_then_syncs_and_resyncs_mode(true);
}

/* ========================================================================================
 * Events against a scripted API server
 * ======================================================================================== */

static void h_events(tsrv *s, int fd, http_req *r)
{
    while (atomic_load(&s->gate) && !atomic_load(&s->stop))
        sleep_ms(5);
    if (!strcmp(r->method, "POST"))
        reply(fd, 201, NULL, r->body);
    else
        reply(fd, 200, NULL, "{\"kind\":\"Event\"}");
}

static void events_are_created_then_aggregated(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_events, NULL);
    kube_client *c = client_for(s, 1000, 1000, NULL);
    long live = cmem_live();
    event_recorder *r = NULL;
    assert_int_equal(events_new(c, "terrane-controller", "node-1", &r), 0);
    json_t *am =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s}}", "apiVersion", "terrane.io/v1alpha1", "kind",
                  "AssetMaterialization", "metadata", "name", "dem-slope", "namespace", "hydro",
                  "uid", "u-1", "resourceVersion", "42");
    for (int i = 0; i < 3; i++)
        events_record(r, am, "Normal", "Scheduled", "pod %s created on pool %s", "p-1", "cpu");
    char longmsg[3000];
    memset(longmsg, 'm', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    events_record(r, am, "Warning", "Failed", "%s", longmsg);
    events_free(r);
    assert_int_equal(srv_nreq(s), 4);
    assert_string_equal(logged(s)->methods[0], "POST");
    assert_string_equal(logged(s)->targets[0], "/api/v1/namespaces/hydro/events");
    json_t *ev = json_loads(logged(s)->bodies[0], 0, NULL);
    assert_non_null(ev);
    const char *name = kobj_name(ev);
    assert_non_null(name);
    assert_int_equal(strncmp(name, "dem-slope.", 10), 0);
    json_t *io = json_object_get(ev, "involvedObject");
    assert_string_equal(json_string_value(json_object_get(io, "kind")), "AssetMaterialization");
    assert_string_equal(json_string_value(json_object_get(io, "apiVersion")),
                        "terrane.io/v1alpha1");
    assert_string_equal(json_string_value(json_object_get(io, "uid")), "u-1");
    assert_string_equal(json_string_value(json_object_get(io, "resourceVersion")), "42");
    assert_string_equal(json_string_value(json_object_get(ev, "reason")), "Scheduled");
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "Normal");
    assert_string_equal(json_string_value(json_object_get(ev, "message")),
                        "pod p-1 created on pool cpu");
    assert_int_equal(json_integer_value(json_object_get(ev, "count")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(ev, "source"), "component")),
        "terrane-controller");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "source"), "host")),
                        "node-1");
    assert_string_equal(json_string_value(json_object_get(ev, "reportingInstance")), "node-1");
    assert_non_null(json_string_value(json_object_get(ev, "firstTimestamp")));
    char want[256];
    snprintf(want, sizeof want, "/api/v1/namespaces/hydro/events/%s", name);
    for (int i = 1; i <= 2; i++) {
        assert_string_equal(logged(s)->methods[i], "PATCH");
        assert_string_equal(logged(s)->targets[i], want);
        assert_non_null(
            strcasestr(logged(s)->hdrs[i], "Content-Type: application/merge-patch+json"));
        json_t *p = json_loads(logged(s)->bodies[i], 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(p, "count")), i + 1);
        assert_non_null(json_string_value(json_object_get(p, "lastTimestamp")));
        json_decref(p);
    }
    json_decref(ev);
    assert_string_equal(logged(s)->methods[3], "POST");
    ev = json_loads(logged(s)->bodies[3], 0, NULL);
    assert_int_equal(strlen(json_string_value(json_object_get(ev, "message"))), 1024);
    json_decref(ev);
    json_decref(am);
    assert_int_equal(cmem_live(), live);
    kube_client_free(c);
    srv_stop(s);
}

static void events_queue_is_bounded(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_events, NULL);
    atomic_store(&s->gate, 1); /* the API server is stuck */
    kube_client *c = client_for(s, 100000, 100000, NULL);
    event_recorder *r = NULL;
    assert_int_equal(events_new(c, "terrane-controller", NULL, &r), 0);
    json_t *pod = json_pack("{s:{s:s, s:s}}", "metadata", "name", "p", "namespace", "ns1");
    for (int i = 0; i < 1100; i++)
        events_record(r, pod, "Normal", "Tick", "tick %d", i);
    /* 1024 queued, one maybe in flight: the rest were dropped at once. */
    assert_true(events_dropped(r) >= 1100 - 1025);
    events_record(r, NULL, "Normal", "Tick", "no object");
    unsigned long dropped = events_dropped(r);
    int queued = 1100 - (int)(dropped - 1); /* the object-less record was dropped */
    atomic_store(&s->gate, 0);
    /* Everything that was queued is sent, and nothing more: waited on, since
     * events_free's own flush is bounded in time (FLUSH_WAIT_MS) and a slow
     * run (Valgrind) sends fewer within it. */
    WAIT_FOR(srv_nreq(s) >= queued, 120000);
    events_free(r);
    assert_int_equal(srv_nreq(s), queued);
    json_decref(pod);
    kube_client_free(c);
    srv_stop(s);
}

static void lease_config_is_checked(void **state)
{
    (void)state;
    tsrv *s = srv_start(h_echo, NULL);
    kube_client *c = client_for(s, 1000, 1000, NULL);
    lease_elector *e = NULL;
    lease_config cfg = {.ns = "kube-system",
                        .name = "terrane",
                        .identity = "me",
                        .lease_duration_s = 10,
                        .renew_deadline_s = 10,
                        .retry_period_s = 2};
    assert_int_equal(lease_new(c, &cfg, &e), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "must exceed the renew deadline"));
    cfg.lease_duration_s = 15;
    cfg.renew_deadline_s = 2;
    assert_int_equal(lease_new(c, &cfg, &e), CERR_INVALID);
    cfg.identity = "";
    cfg.renew_deadline_s = 0;
    assert_int_equal(lease_new(c, &cfg, &e), CERR_INVALID);
    cfg.identity = "me";
    assert_int_equal(lease_new(c, &cfg, &e), 0);
    assert_false(lease_is_leader(e));
    lease_free(e);
    kube_client_free(c);
    srv_stop(s);
}

/* ========================================================================================
 * Against kubesim (KUBESIM_URL)
 * ======================================================================================== */

static const char *ksim_url;
static kube_client *ksim;
static char ksim_ns[64];

static int ksim_setup(void **state)
{
    (void)state;
    if (!ksim_url) return 0;
    kube_config *cfg = NULL;
    const char *kc = getenv("KUBESIM_KUBECONFIG");
    if (kc && kc[0]) {
        if (kube_config_load(kc, NULL, &cfg)) {
            fprintf(stderr, "kubeconfig %s: %s\n", kc, cerr_message());
            return -1;
        }
    } else {
        kube_config tmp = {.server = (char *)ksim_url};
        cfg = calloc(1, sizeof *cfg); /* freed below with free(), not kube_config_free */
        *cfg = tmp;
    }
    cfg->qps = 2000;
    cfg->burst = 2000;
    int rc = kube_client_new(cfg, &ksim);
    if (kc && kc[0])
        kube_config_free(cfg);
    else
        free(cfg);
    if (rc) {
        fprintf(stderr, "kube_client_new: %s\n", cerr_message());
        return -1;
    }
    snprintf(ksim_ns, sizeof ksim_ns, "default");
    return 0;
}

static int ksim_teardown(void **state)
{
    (void)state;
    kube_client_free(ksim);
    ksim = NULL;
    return 0;
}

#define NEED_KUBESIM()                                                                             \
    do {                                                                                           \
        if (!ksim) {                                                                               \
            fail_msg("no kubesim client (KUBESIM_URL is set, ksim_setup failed)");                 \
        }                                                                                          \
    } while (0)

static json_t *configmap(const char *name, const char *label, const char *value)
{
    return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1", "kind",
                     "ConfigMap", "metadata", "name", name, "namespace", ksim_ns, "labels", "suite",
                     label, "data", "v", value);
}

static void ksim_crud_conflicts_and_preconditions(void **state)
{
    (void)state;
    NEED_KUBESIM();
    kube_client *c = ksim;
    json_t *cm = configmap("crud-1", "crud", "one"), *got = NULL, *upd = NULL;
    kube_delete(c, &KUBE_CONFIGMAPS, ksim_ns, "crud-1", NULL, NULL);
    assert_int_equal(kube_create(c, &KUBE_CONFIGMAPS, ksim_ns, cm, &got), 0);
    const char *uid = kobj_uid(got);
    assert_non_null(uid);
    char uid_copy[64];
    snprintf(uid_copy, sizeof uid_copy, "%s", uid);
    /* Create again: 409 AlreadyExists. */
    assert_int_equal(kube_create(c, &KUBE_CONFIGMAPS, ksim_ns, cm, NULL), CERR_CONFLICT);
    assert_string_equal(kube_last_reason(), "AlreadyExists");
    /* Update with the current resourceVersion, then again with the stale one: 409 Conflict. */
    json_t *mod = json_deep_copy(got);
    json_object_set_new(json_object_get(mod, "data"), "v", json_string("two"));
    assert_int_equal(kube_update(c, &KUBE_CONFIGMAPS, mod, &upd), 0);
    assert_string_not_equal(kobj_resource_version(upd), kobj_resource_version(got));
    assert_int_equal(kube_update(c, &KUBE_CONFIGMAPS, mod, NULL), CERR_CONFLICT);
    assert_string_equal(kube_last_reason(), "Conflict");
    json_decref(mod);
    json_decref(upd);
    /* Merge patch. */
    json_t *patch = json_pack("{s:{s:s}}", "data", "w", "patched");
    assert_int_equal(
        kube_patch(c, &KUBE_CONFIGMAPS, ksim_ns, "crud-1", KUBE_PATCH_MERGE, patch, false, &upd),
        0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(upd, "data"), "w")),
                        "patched");
    assert_string_equal(json_string_value(json_object_get(json_object_get(upd, "data"), "v")),
                        "two");
    json_decref(patch);
    json_decref(upd);
    /* Delete with a wrong uid: refused; with the right one: gone. */
    assert_int_equal(kube_delete(c, &KUBE_CONFIGMAPS, ksim_ns, "crud-1", "00000000-wrong", NULL),
                     CERR_CONFLICT);
    assert_int_equal(kube_delete(c, &KUBE_CONFIGMAPS, ksim_ns, "crud-1", uid_copy, "Background"),
                     0);
    assert_int_equal(kube_get(c, &KUBE_CONFIGMAPS, ksim_ns, "crud-1", &upd), CERR_NOTFOUND);
    assert_string_equal(kube_last_reason(), "NotFound");
    assert_non_null(strstr(cerr_message(), "\"crud-1\" not found"));
    json_decref(got);
    json_decref(cm);
}

#define PAGE_OBJECTS 520
#define PAGE_THREADS 10

typedef struct {
    int first;
    int failures;
} page_job;

/* Creates every PAGE_THREADS-th object from first: ten threads share one
 * client, which is how reconcile workers use it. */
static void *create_pages(void *arg)
{
    page_job *j = arg;
    char name[64];
    for (int i = j->first; i < PAGE_OBJECTS; i += PAGE_THREADS) {
        snprintf(name, sizeof name, "page-%03d", i);
        json_t *cm = configmap(name, "pages", "x");
        int rc = kube_create(ksim, &KUBE_CONFIGMAPS, ksim_ns, cm, NULL);
        if (rc && rc != CERR_CONFLICT) {
            fprintf(stderr, "create %s: %s\n", name, cerr_message());
            j->failures++;
        }
        json_decref(cm);
    }
    return NULL;
}

static void ksim_list_pages_through_many_objects(void **state)
{
    (void)state;
    NEED_KUBESIM();
    kube_client *c = ksim;
    pthread_t t[PAGE_THREADS];
    page_job jobs[PAGE_THREADS];
    for (int i = 0; i < PAGE_THREADS; i++) {
        jobs[i] = (page_job){i, 0};
        pthread_create(&t[i], NULL, create_pages, &jobs[i]);
    }
    for (int i = 0; i < PAGE_THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].failures, 0);
    }
    json_t *list = NULL;
    assert_int_equal(kube_list(c, &KUBE_CONFIGMAPS, ksim_ns, "suite=pages", NULL, &list), 0);
    assert_int_equal(json_array_size(json_object_get(list, "items")), PAGE_OBJECTS);
    const json_t *meta = json_object_get(list, "metadata");
    assert_non_null(json_string_value(json_object_get(meta, "resourceVersion")));
    assert_null(json_object_get(meta, "continue"));
    json_decref(list);
    assert_int_equal(kube_list(c, &KUBE_CONFIGMAPS, ksim_ns, "suite=pages,nope=1", NULL, &list), 0);
    assert_int_equal(json_array_size(json_object_get(list, "items")), 0);
    json_decref(list);
}

typedef struct {
    kube_client *c;
    long after_ms;
    const char *name;
} creator;

static void *create_later(void *arg)
{
    creator *cr = arg;
    sleep_ms(cr->after_ms);
    json_t *cm = configmap(cr->name, "watch", "x");
    kube_create(cr->c, &KUBE_CONFIGMAPS, ksim_ns, cm, NULL);
    json_decref(cm);
    return NULL;
}

/* POSTs to a kubesim admin endpoint. */
static void ksim_admin(const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", ksim_url, path);
    CURL *h = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fwrite);
    FILE *null = fopen("/dev/null", "w");
    curl_easy_setopt(h, CURLOPT_WRITEDATA, null);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    fclose(null);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
}

static void ksim_watch_from_list_and_410_after_compaction(void **state)
{
    (void)state;
    NEED_KUBESIM();
    kube_client *c = ksim;
    json_t *list = NULL;
    assert_int_equal(kube_list(c, &KUBE_CONFIGMAPS, ksim_ns, "suite=watch", NULL, &list), 0);
    char rv[64];
    snprintf(
        rv, sizeof rv, "%s",
        json_string_value(json_object_get(json_object_get(list, "metadata"), "resourceVersion")));
    json_decref(list);
    creator cr = {c, 300, "watch-1"};
    pthread_t t;
    pthread_create(&t, NULL, create_later, &cr);
    wlog l = {0};
    /* The server ends the watch after timeoutSeconds=2; 0 is returned. */
    assert_int_equal(
        kube_watch(c, &KUBE_CONFIGMAPS, ksim_ns, "suite=watch", rv, 2, record_event, &l, NULL), 0);
    pthread_join(t, NULL);
    bool seen = false;
    for (int i = 0; i < l.n && i < 64; i++)
        if (!strncmp(l.log[i], "ADDED default/watch-1 ", 22)) seen = true;
    assert_true(seen);

    /* Compact the history past rv: watching from it is 410 Gone. */
    ksim_admin("/kubesim/compact", "{}");
    l.n = 0;
    assert_int_equal(
        kube_watch(c, &KUBE_CONFIGMAPS, ksim_ns, "suite=watch", rv, 5, record_event, &l, NULL),
        CERR_GONE);
}

static void ksim_informer_relists_after_dropped_watch_and_compaction(void **state)
{
    (void)state;
    NEED_KUBESIM();
    kube_client *c = ksim;
    json_t *cm = configmap("inf-a", "inf", "x");
    assert_int_equal(kube_create(c, &KUBE_CONFIGMAPS, ksim_ns, cm, NULL), 0);
    json_decref(cm);
    /* Watches are cut after their first event, so the informer has to
     * re-watch from its last resourceVersion after a backoff. */
    ksim_admin("/kubesim/faults", "{\"watch\": {\"dropAfterEvents\": 1}}");
    hlog h = {.mu = PTHREAD_MUTEX_INITIALIZER};
    informer_handlers hs = {on_add, on_update, on_delete, NULL, &h};
    informer *inf = NULL;
    assert_int_equal(informer_new(c, &KUBE_CONFIGMAPS, ksim_ns, "suite=inf", 0, &hs, &inf), 0);
    assert_int_equal(informer_start(inf), 0);
    assert_true(informer_wait_synced(inf, 5000));
    json_t *got = informer_get(inf, ksim_ns, "inf-a");
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(got, "kind")), "ConfigMap");
    json_decref(got);

    cm = configmap("inf-b", "inf", "x");
    assert_int_equal(kube_create(c, &KUBE_CONFIGMAPS, ksim_ns, cm, NULL), 0);
    json_decref(cm);
    WAIT_FOR((got = informer_get(inf, ksim_ns, "inf-b")) != NULL, 5000);
    assert_non_null(got);
    json_decref(got);
    /* The watch was dropped right after that event; while the informer
     * backs off, change things and compact them out of the history. */
    cm = configmap("inf-c", "inf", "x");
    assert_int_equal(kube_create(c, &KUBE_CONFIGMAPS, ksim_ns, cm, NULL), 0);
    json_decref(cm);
    assert_int_equal(kube_delete(c, &KUBE_CONFIGMAPS, ksim_ns, "inf-a", NULL, NULL), 0);
    ksim_admin("/kubesim/compact", "{}");
    ksim_admin("/kubesim/faults", "{}");
    informer_stats st;
    WAIT_FOR((informer_stats_get(inf, &st), informer_len(inf) == 2 &&
                                                hlog_has(&h, 0, "delete inf-a") &&
                                                hlog_has(&h, 0, "add inf-c")),
             8000);
    assert_int_equal(informer_len(inf), 2);
    assert_true(hlog_has(&h, 0, "add inf-c"));
    assert_true(hlog_has(&h, 0, "delete inf-a"));
    informer_stats_get(inf, &st);
    assert_true(st.gone >= 1);
    assert_true(st.lists >= 2);
    assert_true(st.watch_restarts >= 2);

    /* And it keeps watching normally. */
    cm = configmap("inf-d", "inf", "x");
    assert_int_equal(kube_create(c, &KUBE_CONFIGMAPS, ksim_ns, cm, NULL), 0);
    json_decref(cm);
    WAIT_FOR((got = informer_get(inf, ksim_ns, "inf-d")) != NULL, 5000);
    assert_non_null(got);
    json_decref(got);
    double t0 = now_s();
    informer_stop(inf);
    assert_true(now_s() - t0 < 1.0);
    informer_free(inf);
}

typedef struct {
    atomic_int started, stopped, new_leader;
} lcount;

static void l_started(void *ctx)
{
    atomic_fetch_add(&((lcount *)ctx)->started, 1);
}

static void l_stopped(void *ctx)
{
    atomic_fetch_add(&((lcount *)ctx)->stopped, 1);
}

static void l_new(void *ctx, const char *id)
{
    (void)id;
    atomic_fetch_add(&((lcount *)ctx)->new_leader, 1);
}

static int leaders(lease_elector **e, int n, int *which)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (e[i] && lease_is_leader(e[i])) {
            k++;
            *which = i;
        }
    return k;
}

/* Samples the electors until exactly one leads (never two at once). */
static int wait_single_leader(lease_elector **e, int n, double secs)
{
    int which = -1;
    double until = now_s() + secs;
    while (now_s() < until) {
        int k = leaders(e, n, &which);
        assert_true(k <= 1);
        if (k == 1) return which;
        sleep_ms(20);
    }
    return -1;
}

static void ksim_lease_one_leader_release_and_expiry(void **state)
{
    (void)state;
    NEED_KUBESIM();
    kube_client *c = ksim;
    const char *ids[3] = {"cand-a", "cand-b", "cand-c"};
    lcount counts[3];
    lease_elector *e[3] = {0};
    memset(counts, 0, sizeof counts);
    kube_delete(c, &KUBE_LEASES, ksim_ns, "terrane-test", NULL, NULL);
    for (int i = 0; i < 3; i++) {
        lease_config cfg = {.ns = ksim_ns,
                            .name = "terrane-test",
                            .identity = ids[i],
                            .lease_duration_s = 3,
                            .renew_deadline_s = 2,
                            .retry_period_s = 1,
                            .on_started_leading = l_started,
                            .on_stopped_leading = l_stopped,
                            .on_new_leader = l_new,
                            .ctx = &counts[i]};
        assert_int_equal(lease_new(c, &cfg, &e[i]), 0);
        assert_int_equal(lease_start(e[i]), 0);
    }
    int first = wait_single_leader(e, 3, 6);
    assert_true(first >= 0);
    /* It renews: still the only leader a few retry periods later. */
    double until = now_s() + 3.5;
    while (now_s() < until) {
        int which = -1;
        assert_int_equal(leaders(e, 3, &which), 1);
        assert_int_equal(which, first);
        sleep_ms(50);
    }
    json_t *lease = NULL;
    assert_int_equal(kube_get(c, &KUBE_LEASES, ksim_ns, "terrane-test", &lease), 0);
    const json_t *spec = json_object_get(lease, "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "holderIdentity")), ids[first]);
    assert_int_equal(json_integer_value(json_object_get(spec, "leaseDurationSeconds")), 3);
    const char *renew = json_string_value(json_object_get(spec, "renewTime"));
    assert_non_null(renew);
    assert_int_equal(strlen(renew), 27); /* MicroTime: 2006-01-02T15:04:05.000000Z */
    assert_int_equal(renew[19], '.');
    struct timespec ts;
    assert_int_equal(kobj_time_parse(renew, &ts), 0);
    json_decref(lease);
    for (int i = 0; i < 3; i++)
        assert_true(atomic_load(&counts[i].new_leader) >= 1);

    /* Stop with release: a standby takes over within about a retry period
     * (1 s plus up to 1.2 s of jitter), long before the 3 s lease expires. */
    double t0 = now_s();
    lease_stop(e[first], true);
    assert_int_equal(atomic_load(&counts[first].started), 1);
    assert_int_equal(atomic_load(&counts[first].stopped), 1);
    lease_free(e[first]);
    e[first] = NULL;
    int second = wait_single_leader(e, 3, 6);
    double took = now_s() - t0;
    assert_true(second >= 0 && second != first);
    assert_true(took < 2.9);

    /* Stop without release (as a crash): the last one waits out the lease. */
    t0 = now_s();
    lease_stop(e[second], false);
    lease_free(e[second]);
    e[second] = NULL;
    int third = wait_single_leader(e, 3, 10);
    took = now_s() - t0;
    assert_true(third >= 0 && third != first && third != second);
    assert_true(took >= 1.9); /* 3 s since it last saw a renewal (up to 1 s before the stop) */
    assert_int_equal(kube_get(c, &KUBE_LEASES, ksim_ns, "terrane-test", &lease), 0);
    spec = json_object_get(lease, "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "holderIdentity")), ids[third]);
    assert_true(json_integer_value(json_object_get(spec, "leaseTransitions")) >= 2);
    json_decref(lease);
    lease_stop(e[third], true);
    lease_free(e[third]);
    assert_int_equal(kube_get(c, &KUBE_LEASES, ksim_ns, "terrane-test", &lease), 0);
    spec = json_object_get(lease, "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "holderIdentity")), "");
    json_decref(lease);
}

static void ksim_events_aggregate(void **state)
{
    (void)state;
    NEED_KUBESIM();
    kube_client *c = ksim;
    json_t *cm = configmap("evt-target", "events", "x"), *obj = NULL;
    kube_delete(c, &KUBE_CONFIGMAPS, ksim_ns, "evt-target", NULL, NULL);
    assert_int_equal(kube_create(c, &KUBE_CONFIGMAPS, ksim_ns, cm, &obj), 0);
    json_decref(cm);
    event_recorder *r = NULL;
    assert_int_equal(events_new(c, "terrane-controller", "test-host", &r), 0);
    for (int i = 0; i < 3; i++)
        events_record(r, obj, "Warning", "TestRepeated", "the same thing happened again");
    events_record(r, obj, "Normal", "TestOnce", "something else");
    events_free(r);
    json_t *list = NULL;
    assert_int_equal(
        kube_list(c, &KUBE_EVENTS, ksim_ns, NULL, "involvedObject.name=evt-target", &list), 0);
    json_t *items = json_object_get(list, "items");
    assert_int_equal(json_array_size(items), 2);
    size_t i;
    json_t *ev;
    int repeated = 0;
    json_array_foreach(items, i, ev)
    {
        const char *reason = json_string_value(json_object_get(ev, "reason"));
        const json_t *io = json_object_get(ev, "involvedObject");
        assert_string_equal(json_string_value(json_object_get(io, "uid")), kobj_uid(obj));
        assert_string_equal(json_string_value(json_object_get(io, "kind")), "ConfigMap");
        if (!strcmp(reason, "TestRepeated")) {
            repeated++;
            assert_int_equal(json_integer_value(json_object_get(ev, "count")), 3);
            assert_string_equal(json_string_value(json_object_get(ev, "type")), "Warning");
        } else {
            assert_int_equal(json_integer_value(json_object_get(ev, "count")), 1);
        }
    }
    assert_int_equal(repeated, 1);
    json_decref(list);
    json_decref(obj);
}

static void ksim_custom_resource_and_status(void **state)
{
    (void)state;
    NEED_KUBESIM();
    kube_client *c = ksim;
    json_t *am = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:{s:s}}}", "apiVersion",
                           "terrane.io/v1alpha1", "kind", "AssetMaterialization", "metadata",
                           "name", "client-test", "namespace", ksim_ns, "spec", "assetKey",
                           "test/client", "operation", "cog", "output", "uri", "s3://assets/t/");
    json_t *got = NULL, *upd = NULL;
    kube_delete(c, &CRD_ASSETMATERIALIZATIONS, ksim_ns, "client-test", NULL, NULL);
    int rc = kube_create(c, &CRD_ASSETMATERIALIZATIONS, ksim_ns, am, &got);
    if (rc == CERR_NOTFOUND) {
        json_decref(am);
        fail_msg(
            "the AssetMaterialization CRD is not installed (test_client_kubesim.sh applies it)");
    }
    if (rc) fail_msg("create: %s", cerr_message());
    json_t *st = json_deep_copy(got);
    json_object_set_new(st, "status", json_pack("{s:s}", "phase", "Pending"));
    assert_int_equal(kube_update_status(c, &CRD_ASSETMATERIALIZATIONS, st, &upd), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(upd, "status"), "phase")),
                        "Pending");
    /* The same stale write again: 409. */
    assert_int_equal(kube_update_status(c, &CRD_ASSETMATERIALIZATIONS, st, NULL), CERR_CONFLICT);
    json_decref(st);
    json_decref(upd);
    json_decref(got);
    json_decref(am);
}

int main(void)
{
    const struct CMUnitTest scripted[] = {
        cmocka_unit_test(get_sends_headers_and_decodes),
        cmocka_unit_test(status_errors_map_to_codes_and_reasons),
        cmocka_unit_test(retry_after_429_is_honoured),
        cmocka_unit_test(persistent_429_and_5xx_give_up),
        cmocka_unit_test(get_retries_5xx_with_backoff),
        cmocka_unit_test(oversized_response_is_refused),
        cmocka_unit_test(list_follows_continue_and_escapes_selectors),
        cmocka_unit_test(informer_relists_by_pages),
        cmocka_unit_test(qps_limit_spaces_requests),
        cmocka_unit_test(token_file_is_reread_when_it_changes),
        cmocka_unit_test(connection_failures_name_the_server),
        cmocka_unit_test(tls_verifies_the_server_and_presents_client_certs),
        cmocka_unit_test(watch_joins_events_split_across_chunks),
        cmocka_unit_test(watch_errors_and_callback_stop),
        cmocka_unit_test(watch_stop_flag_ends_a_hanging_watch),
        cmocka_unit_test(watch_cut_mid_line_drops_the_partial_event),
        cmocka_unit_test(silent_watch_connection_is_declared_dead),
        cmocka_unit_test(out_of_memory_anywhere_leaks_nothing),
        cmocka_unit_test(informer_lists_watches_and_relists_on_410),
        cmocka_unit_test(informer_relists_when_the_server_is_behind),
        cmocka_unit_test(informer_backs_off_then_syncs_and_resyncs),
        cmocka_unit_test(events_are_created_then_aggregated),
        cmocka_unit_test(events_queue_is_bounded),
        cmocka_unit_test(lease_config_is_checked),
    };
    const struct CMUnitTest kubesim[] = {
        cmocka_unit_test(ksim_crud_conflicts_and_preconditions),
        cmocka_unit_test(ksim_list_pages_through_many_objects),
        cmocka_unit_test(ksim_watch_from_list_and_410_after_compaction),
        cmocka_unit_test(ksim_informer_relists_after_dropped_watch_and_compaction),
        cmocka_unit_test(ksim_lease_one_leader_release_and_expiry),
        cmocka_unit_test(ksim_events_aggregate),
        cmocka_unit_test(ksim_custom_resource_and_status),
    };
    ksim_url = getenv("KUBESIM_URL");
    if (ksim_url && !ksim_url[0]) ksim_url = NULL;
    setup(NULL);
    if (ksim_url) return cmocka_run_group_tests_name("kubesim", kubesim, ksim_setup, ksim_teardown);
    /* The kubesim group runs under tests/integration/test_client_kubesim.sh,
     * which sets KUBESIM_URL. */
    return cmocka_run_group_tests_name("scripted", scripted, NULL, NULL);
}
