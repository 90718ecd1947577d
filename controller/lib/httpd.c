/*
 * httpd.c - /metrics, /healthz and /readyz on libwebsockets (see httpd.h).
 *
 * One lws context with one explicitly created vhost, so a failed bind is
 * an error returned by httpd_start instead of a log line. A request is
 * answered from LWS_CALLBACK_HTTP: the body is produced there (rendering
 * the metrics on this thread), the headers are written, and the body
 * follows in chunks from LWS_CALLBACK_HTTP_WRITEABLE, so a slow scraper
 * never makes the server buffer more than one chunk at a time for it.
 * httpd_stop wakes the service loop with lws_cancel_service, the one lws
 * call that is safe from another thread.
 */
#include "lib/httpd.h"

#include "lib/cerr.h"
#include "lib/clog.h"
#include "lib/cmem.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 16384
#define HEADER_MAX 4096 /* request line and headers */
#define MAX_FDS 64
#define TIMEOUT_S 5
#define BODY_MAX 65536 /* request body discarded before the connection is cut */

struct httpd {
    struct lws_context *ctx;
    struct lws_vhost *vh;
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    metrics_registry *reg;
    httpd_ready_fn ready;
    void *ready_ctx;
    int port;
    unsigned char wbuf[LWS_PRE + CHUNK]; /* one service thread: shared */
};

/* Per connection; survives keep-alive transactions. */
typedef struct {
    char *body;
    size_t len, sent;
    size_t discarded; /* request body bytes thrown away */
    bool close_after;
} session;

static const char CT_TEXT[] = "text/plain; charset=utf-8";
static const char CT_METRICS[] = "text/plain; version=0.0.4; charset=utf-8";

/* --- addresses ----------------------------------------------------------- */

int httpd_parse_addr(const char *addr, char *host, size_t cap, int *port)
{
    if (!addr || !cap) return cerr_set(CERR_INVALID, "listen address missing");
    const char *colon;
    size_t hlen;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return cerr_set(CERR_INVALID, "listen address \"%s\": expected [ipv6]:port", addr);
        colon = close + 1;
        addr++;
        hlen = (size_t)(close - addr);
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return cerr_set(CERR_INVALID, "listen address \"%s\": expected host:port", addr);
        hlen = (size_t)(colon - addr);
        if (memchr(addr, ':', hlen))
            return cerr_set(CERR_INVALID, "listen address \"%s\": write IPv6 as [addr]:port", addr);
    }
    if (hlen >= cap) return cerr_set(CERR_INVALID, "listen address: host too long");
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
        return cerr_set(CERR_INVALID, "listen address \"%s\": port must be a number 0-65535", addr);
    long v = strtol(p, NULL, 10);
    if (v > 65535)
        return cerr_set(CERR_INVALID, "listen address \"%s\": port must be a number 0-65535", addr);
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return 0;
}

/* lws binds to an interface name or a numeric address: resolve names. */
int httpd_numeric_host(const char *host, char *out, size_t cap, bool *ipv6)
{
    struct in6_addr a6;
    struct in_addr a4;
    *ipv6 = false;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        snprintf(out, cap, "%s", host);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        *ipv6 = true;
        snprintf(out, cap, "%s", host);
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int e = getaddrinfo(host, NULL, &hints, &res);
    if (e != 0 || !res)
        return cerr_set(CERR_INVALID, "listen address: cannot resolve \"%s\": %s", host,
                        gai_strerror(e));
    /* Prefer IPv4 ("localhost" is both; probes use 127.0.0.1). */
    struct addrinfo *pick = res;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    int rc =
        getnameinfo(pick->ai_addr, pick->ai_addrlen, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
    *ipv6 = pick->ai_family == AF_INET6;
    freeaddrinfo(res);
    if (rc != 0) return cerr_set(CERR_INVALID, "listen address: cannot use \"%s\"", host);
    return 0;
}

/* --- requests -------------------------------------------------------------- */

static void session_reset(session *s)
{
    cmem_free(s->body);
    *s = (session){0};
}

static int set_body(session *s, const char *text)
{
    s->body = cmem_strdup(text);
    if (!s->body) return -1;
    s->len = strlen(text);
    return 0;
}

/* Fills the session's body for a GET of path; returns the status and sets
 * *ctype. */
static unsigned route(httpd *h, const char *path, size_t plen, session *s, const char **ctype)
{
    *ctype = CT_TEXT;
#define IS(lit) (plen == sizeof(lit) - 1 && !memcmp(path, lit, plen))
    if (IS("/metrics") && h->reg) {
        char *text = NULL;
        size_t len = 0;
        if (metrics_render(h->reg, &text, &len) < 0) {
            set_body(s, "out of memory\n");
            return 500;
        }
        s->body = text;
        s->len = len;
        *ctype = CT_METRICS;
        return 200;
    }
    if (IS("/healthz")) return set_body(s, "ok") < 0 ? 500 : 200;
    if (IS("/readyz")) {
        char reason[256] = "";
        if (!h->ready || h->ready(h->ready_ctx, reason, sizeof reason))
            return set_body(s, "ok") < 0 ? 500 : 200;
        reason[sizeof reason - 1] = '\0';
        char msg[300];
        snprintf(msg, sizeof msg, "not ready: %s\n", reason[0] ? reason : "unknown");
        return set_body(s, msg) < 0 ? 500 : 503;
    }
#undef IS
    return set_body(s, "404 page not found\n") < 0 ? 500 : 404;
}

static int on_http(struct lws *wsi, session *s)
{
    httpd *h = lws_context_user(lws_get_context(wsi));
    session_reset(s);
    char *uri = NULL;
    int ulen = 0;
    int method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    const char *ctype = CT_TEXT;
    unsigned status;
    bool head = method == LWSHUMETH_HEAD;
    if (method != LWSHUMETH_GET && !head) {
        status = 405;
        s->close_after = true;
        if (set_body(s, "method not allowed\n") < 0) return -1;
    } else {
        size_t plen = uri && ulen > 0 ? strcspn(uri, "?") : 0;
        if (plen > (size_t)ulen) plen = (size_t)ulen;
        status = route(h, uri ? uri : "", plen, s, &ctype);
    }

    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr;
    if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)s->len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (status == 405 &&
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"allow:", (const unsigned char *)"GET, HEAD", 9, &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
    if (head || s->len == 0) {
        bool close = s->close_after;
        session_reset(s);
        if (close) return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    lws_callback_on_writable(wsi);
    return 0;
}

int httpd_write_next(struct lws *wsi, unsigned char *wbuf, size_t chunk, const void *body,
                     size_t len, size_t *sent)
{
    size_t n = len - *sent;
    if (n > chunk) n = chunk;
    bool last = *sent + n == len;
    memcpy(wbuf + LWS_PRE, (const unsigned char *)body + *sent, n);
    if (lws_write(wsi, wbuf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    *sent += n;
    if (last) return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_writeable(struct lws *wsi, session *s)
{
    httpd *h = lws_context_user(lws_get_context(wsi));
    if (!s->body) return 0;
    int r = httpd_write_next(wsi, h->wbuf, CHUNK, s->body, s->len, &s->sent);
    if (r <= 0) return r;
    bool close = s->close_after;
    session_reset(s);
    if (close) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    session *s = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(wsi, s);
    case LWS_CALLBACK_HTTP_BODY:
        /* Only a refused method has a body: discard it, up to a bound. */
        s->discarded += len;
        return s->discarded > BODY_MAX ? -1 : 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        /* lws holds writes back until the request body is consumed. */
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_writeable(wsi, s);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (s) session_reset(s);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"http", callback, sizeof(session), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* --- server ------------------------------------------------------------------ */

void httpd_lws_log(int level, const char *line)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", line);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    clog_log(level == LLL_ERR ? CLOG_ERROR : CLOG_WARN, "libwebsockets", "{s:s}", "detail", msg);
}

static void *serve(void *arg)
{
    httpd *h = arg;
    while (!atomic_load(&h->stopping))
        if (lws_service(h->ctx, 0) < 0) break;
    return NULL;
}

static void destroy(httpd *h)
{
    if (h->ctx) lws_context_destroy(h->ctx);
    cmem_free(h);
}

/* Creates the context and the listening vhost. CERR_IO when it cannot bind. */
static int listen_on(httpd *h, const char *iface, int port, bool ipv6, const char *addr)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (!ipv6) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.user = h;
    info.fd_limit_per_thread = MAX_FDS;
    info.max_http_header_data = HEADER_MAX;
    info.max_http_header_pool = 16;
    info.timeout_secs = TIMEOUT_S;
    info.timeout_secs_ah_idle = TIMEOUT_S;
    info.server_string = "terrane-controller";
    h->ctx = lws_create_context(&info);
    if (!h->ctx) return cerr_set(CERR_IO, "metrics server: cannot create the server context");

    info.port = port;
    info.iface = iface;
    info.protocols = protocols;
    info.vhost_name = "terrane";
    info.keepalive_timeout = TIMEOUT_S;
    h->vh = lws_create_vhost(h->ctx, &info);
    if (!h->vh || lws_get_vhost_listen_port(h->vh) <= 0) {
        lws_context_destroy(h->ctx);
        h->ctx = NULL;
        h->vh = NULL;
        return cerr_set(CERR_IO,
                        "metrics server: cannot listen on %s (address in use or not local?)", addr);
    }
    h->port = lws_get_vhost_listen_port(h->vh);
    return 0;
}

int httpd_start(const httpd_config *cfg, httpd **out)
{
    char host[256], iface[256];
    int port = 0, rc;
    bool ipv6 = false;
    *out = NULL;
    if ((rc = httpd_parse_addr(cfg->addr, host, sizeof host, &port)) < 0) return rc;
    if (host[0] && (rc = httpd_numeric_host(host, iface, sizeof iface, &ipv6)) < 0) return rc;

    httpd *h = cmem_calloc(1, sizeof *h);
    if (!h) return cerr_oom();
    atomic_init(&h->stopping, false);
    h->reg = cfg->registry;
    h->ready = cfg->ready;
    h->ready_ctx = cfg->ready_ctx;

    lws_set_log_level(LLL_ERR | LLL_WARN, httpd_lws_log);
    if (host[0]) {
        rc = listen_on(h, iface, port, ipv6, cfg->addr);
    } else {
        /* All interfaces: dual-stack where the node has IPv6, else IPv4. */
        rc = listen_on(h, NULL, port, true, cfg->addr);
        if (rc < 0) rc = listen_on(h, NULL, port, false, cfg->addr);
    }
    if (rc < 0) goto fail;
    if (pthread_create(&h->thread, NULL, serve, h) != 0) {
        rc = cerr_set(CERR_IO, "metrics server: cannot start its thread");
        goto fail;
    }
    h->thread_started = true;
    *out = h;
    return 0;
fail:
    destroy(h);
    return rc;
}

int httpd_port(const httpd *h)
{
    return h ? h->port : 0;
}

void httpd_stop(httpd *h)
{
    if (!h) return;
    atomic_store(&h->stopping, true);
    if (h->thread_started) {
        lws_cancel_service(h->ctx);
        pthread_join(h->thread, NULL);
    }
    destroy(h);
}
