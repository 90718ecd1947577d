/*
 * uiserver.c - the UI's listener (see uiserver.h).
 *
 * One lws context, one vhost, two protocols: "http" answers requests (the
 * body is produced in LWS_CALLBACK_HTTP and sent in chunks from
 * LWS_CALLBACK_HTTP_WRITEABLE, as lib/httpd.c does), "terrane-ui.v1" is
 * the websocket. Changes arrive from the informer threads through
 * uiserver_notify, which only records the key in a pending set under a mutex
 * and calls lws_cancel_service (the one lws call safe from another thread);
 * the service thread then builds one message for the whole batch from the
 * caches and appends it to a ring that every websocket client reads at its
 * own pace. So a burst of a thousand status writes is one message, and a
 * message is built once whatever the number of clients. Everything but
 * the pending set is touched only by the service thread.
 */
#include "uiserver.h"

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/clog.h"
#include "lib/cmem.h"
#include "lib/httpd.h"
#include "lib/strmap.h"
#include "podspec.h"
#include "source.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The page, generated from controller/ui/ by the Makefile (xxd -i). */
#include "ui_assets.inc"

#define CHUNK 65536
#define HEADER_MAX 4096
#define MAX_FDS 256
#define TIMEOUT_S 5
#define BODY_MAX 65536
#define KEY_MAX 512
#define CSP_MAX 1024

typedef struct {
    unsigned long seq;
    unsigned char *buf; /* LWS_PRE bytes, then the text */
    size_t len;
} message;

struct uiserver {
    struct lws_context *ctx;
    struct lws_vhost *vh;
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    uiapi *api;
    char *config_json;
    char csp[CSP_MAX];
    int port;

    pthread_mutex_t mu; /* pending */
    strmap *pending;    /* "A ns/name" asset changed, "T ns/name" pods or Events changed;
                           "S", "R": the same for an AssetSource */
    atomic_bool dirty;

    /* service thread only */
    message ring[UISERVER_BACKLOG];
    atomic_ulong seq; /* last message built */
    unsigned char wbuf[LWS_PRE + CHUNK];
};

/* Per HTTP connection; survives keep-alive transactions. */
typedef struct {
    const unsigned char *body;
    char *owned; /* body when it was made for this request */
    size_t len, sent;
    size_t discarded;
    bool close_after;
} session;

/* Per websocket. */
typedef struct {
    unsigned long next; /* seq of the next message to send */
    size_t off;         /* bytes of it sent */
    bool hello_sent;
} client;

static const char CT_JSON[] = "application/json; charset=utf-8";
static const char CT_TEXT[] = "text/plain; charset=utf-8";

static const struct lws_protocols PROTOCOLS[];

/* --- pending changes ------------------------------------------------------------------- */

static void mark(uiserver *s, char tag, const char *ns, const char *name)
{
    char key[KEY_MAX];
    int n = snprintf(key, sizeof key, "%c %s/%s", tag, ns ? ns : "", name ? name : "");
    if (!name || n <= 0 || n >= (int)sizeof key) return;
    pthread_mutex_lock(&s->mu);
    if (!strmap_lookup(s->pending, key) && strmap_put(s->pending, key, (void *)1))
        clog_warn("ui: change dropped (out of memory)", "{s:s}", "key", key);
    pthread_mutex_unlock(&s->mu);
}

void uiserver_notify(void *ctx, uisrc_kind kind, const json_t *obj, bool deleted)
{
    uiserver *s = ctx;
    if (!s || atomic_load(&s->stopping)) return;
    const char *ns = kobj_namespace(obj);
    if (kind == UISRC_ASSETS) {
        uiapi_observe(s->api, obj, deleted);
        mark(s, 'A', ns, kobj_name(obj));
    } else if (kind == UISRC_SOURCES) {
        uiapi_observe_source(s->api, obj, deleted);
        mark(s, 'S', ns, kobj_name(obj));
    } else if (kind == UISRC_PODS) {
        const char *am = kobj_label(obj, PODSPEC_L_MATERIALIZATION);
        kobj_owner_ref ref;
        bool owned = kobj_controller_ref(obj, &ref) == 0;
        if (owned && !strcmp(ref.kind, SOURCE_KIND))
            mark(s, 'R', ns, ref.name);
        else if (owned && !strcmp(ref.kind, "AssetMaterialization"))
            am = ref.name;
        if (am) mark(s, 'T', ns, am);
    } else if (kind == UISRC_EVENTS) {
        const json_t *io = json_object_get(obj, "involvedObject");
        const char *k = json_string_value(json_object_get(io, "kind"));
        const char *n = json_string_value(json_object_get(io, "name"));
        if (k && n && !strcmp(k, "AssetMaterialization")) mark(s, 'T', ns, n);
        if (k && n && !strcmp(k, SOURCE_KIND)) mark(s, 'R', ns, n);
        /* a pod's Event: its name starts with the asset's (podspec names) */
        if (k && n && !strcmp(k, "Pod")) {
            json_t *pod = NULL;
            (void)pod;
            const char *dash = strrchr(n, '-');
            char am[KEY_MAX];
            /* <asset>-<data version prefix>-<attempt>: drop two segments */
            if (dash && (size_t)(dash - n) < sizeof am) {
                memcpy(am, n, (size_t)(dash - n));
                am[dash - n] = '\0';
                char *d2 = strrchr(am, '-');
                if (d2) {
                    /* <source>-obs-<observation> */
                    bool obs = !strcmp(d2, "-obs");
                    *d2 = '\0';
                    mark(s, obs ? 'R' : 'T', ns, am);
                }
            }
        }
    }
    atomic_store(&s->dirty, true);
    lws_cancel_service(s->ctx);
}

unsigned long uiserver_seq(uiserver *s)
{
    return atomic_load(&s->seq);
}

static message *slot(uiserver *s, unsigned long seq)
{
    return &s->ring[seq % UISERVER_BACKLOG];
}

static int push_message(uiserver *s, json_t *doc)
{
    unsigned long seq = atomic_load(&s->seq) + 1;
    if (json_object_set_new(doc, "seq", json_integer((json_int_t)seq))) return cerr_oom();
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) return cerr_oom();
    size_t len = strlen(text);
    unsigned char *buf = cmem_malloc(LWS_PRE + len);
    if (!buf) {
        cmem_free(text);
        return cerr_oom();
    }
    memcpy(buf + LWS_PRE, text, len);
    cmem_free(text);
    message *m = slot(s, seq);
    cmem_free(m->buf);
    *m = (message){.seq = seq, .buf = buf, .len = len};
    atomic_store(&s->seq, seq);
    return 0;
}

/* {"namespace", "name"} of key "ns/name", with "kind": "AssetSource" for a
 * source. */
static int add_ref(json_t *arr, const char *key, bool source)
{
    const char *slash = strchr(key, '/');
    if (!slash) return 0;
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "namespace", json_stringn(key, (size_t)(slash - key))) ||
        json_object_set_new(o, "name", json_string(slash + 1)) ||
        (source && json_object_set_new(o, "kind", json_string(SOURCE_KIND))) ||
        json_array_append_new(arr, o)) {
        json_decref(o);
        return -1;
    }
    return 0;
}

/* Builds one message from the pending set (service thread). */
static void flush_pending(uiserver *s)
{
    if (!atomic_exchange(&s->dirty, false)) return;
    strmap *fresh = strmap_new(0), *batch;
    if (!fresh) return;
    pthread_mutex_lock(&s->mu);
    batch = s->pending;
    s->pending = fresh;
    pthread_mutex_unlock(&s->mu);
    size_t n = strmap_len(batch), pos = 0;
    const char *key;
    void *v;
    json_t *doc = NULL;
    if (!n) goto done;
    if (n > UISERVER_DIFF_MAX) {
        doc = json_pack("{s:s, s:I}", "type", "resync", "changed", (json_int_t)n);
        if (!doc) goto oom;
    } else {
        json_t *assets = json_array(), *deleted = json_array(), *touched = json_array();
        doc = json_pack("{s:s, s:o, s:o, s:o}", "type", "changes", "assets", assets, "deleted",
                        deleted, "touched", touched);
        if (!doc) goto oom;
        while (strmap_next(batch, &pos, &key, &v)) {
            const char *ref = key + 2, *slash = strchr(ref, '/');
            if (!slash || (size_t)(slash - ref) >= KEY_MAX) continue;
            bool source = key[0] == 'S' || key[0] == 'R';
            if (key[0] == 'T' || key[0] == 'R') {
                if (add_ref(touched, ref, source)) goto oom;
                continue;
            }
            char ns[KEY_MAX];
            memcpy(ns, ref, (size_t)(slash - ref));
            ns[slash - ref] = '\0';
            json_t *sum = NULL;
            int rc = source ? uiapi_source_summary_of(s->api, ns, slash + 1, &sum)
                            : uiapi_summary_of(s->api, ns, slash + 1, &sum);
            if (rc == CERR_NOTFOUND) {
                if (add_ref(deleted, ref, source)) goto oom;
            } else if (rc || json_array_append_new(assets, sum)) {
                goto oom;
            }
        }
    }
    if (push_message(s, doc)) goto oom;
    /* the controller's hop of a change's way to the page (bench/bench_ui.sh
     * traces a status write through it at --log-level debug) */
    clog_debug("ui: changes queued", "{s:I, s:I}", "seq", (json_int_t)atomic_load(&s->seq), "keys",
               (json_int_t)n);
    lws_callback_on_writable_all_protocol(s->ctx, &PROTOCOLS[1]);
    goto done;
oom:
    clog_warn("ui: cannot build a change message (out of memory)", NULL);
done:
    json_decref(doc);
    strmap_free(batch);
}

/* --- HTTP ---------------------------------------------------------------------------------- */

static void session_reset(session *ss)
{
    cmem_free(ss->owned);
    *ss = (session){0};
}

static int own_body(session *ss, char *text)
{
    if (!text) return -1;
    ss->owned = text;
    ss->body = (const unsigned char *)text;
    ss->len = strlen(text);
    return 0;
}

static int text_body(session *ss, const char *text)
{
    return own_body(ss, cmem_strdup(text));
}

static unsigned json_body(session *ss, json_t *doc, unsigned status)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (own_body(ss, text) < 0) {
        text_body(ss, "{\"error\":\"out of memory\"}");
        return 500;
    }
    return status;
}

static unsigned error_body(session *ss, unsigned status, const char *msg)
{
    return json_body(ss, json_pack("{s:s}", "error", msg), status);
}

/* Kubernetes names and namespaces: DNS-1123, at most 253 bytes. */
static bool name_ok(const char *p, size_t n)
{
    if (!n || n > 253) return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-' ||
              p[i] == '.'))
            return false;
    return true;
}

typedef struct {
    const char *path;
    const unsigned char *data;
    const unsigned int *len;
    const char *ctype;
} asset;

static const asset ASSETS[] = {
    {"/ui/", ui_index_html, &ui_index_html_len, "text/html; charset=utf-8"},
    {"/ui/index.html", ui_index_html, &ui_index_html_len, "text/html; charset=utf-8"},
    {"/ui/app.js", ui_app_js, &ui_app_js_len, "text/javascript; charset=utf-8"},
    {"/ui/preview.js", ui_preview_js, &ui_preview_js_len, "text/javascript; charset=utf-8"},
    {"/ui/app.css", ui_app_css, &ui_app_css_len, "text/css; charset=utf-8"},
};

static unsigned route(uiserver *s, struct lws *wsi, const char *path, size_t plen, session *ss,
                      const char **ctype, const char **location)
{
    *ctype = CT_JSON;
#define IS(lit) (plen == sizeof(lit) - 1 && !memcmp(path, lit, plen))
#define PREFIX(lit) (plen >= sizeof(lit) - 1 && !memcmp(path, lit, sizeof(lit) - 1))
    for (size_t i = 0; i < sizeof ASSETS / sizeof ASSETS[0]; i++)
        if (strlen(ASSETS[i].path) == plen && !memcmp(path, ASSETS[i].path, plen)) {
            ss->body = ASSETS[i].data;
            ss->len = *ASSETS[i].len;
            *ctype = ASSETS[i].ctype;
            return 200;
        }
    if (IS("/") || IS("/ui")) {
        *location = "/ui/";
        *ctype = CT_TEXT;
        return text_body(ss, "see /ui/\n") < 0 ? 500 : 302;
    }
    if (IS("/api/v1/config")) return text_body(ss, s->config_json) < 0 ? 500 : 200;
    if (IS("/api/v1/assets")) {
        char buf[300];
        /* lws copies "namespace=VALUE" into buf and points at VALUE */
        const char *want = lws_get_urlarg_by_name(wsi, "namespace=", buf, sizeof buf);
        if (want && !*want) want = NULL;
        if (want && !name_ok(want, strlen(want))) return error_body(ss, 400, "bad namespace");
        char *text = NULL;
        size_t len = 0;
        if (uiapi_assets_text(s->api, want, atomic_load(&s->seq), &text, &len))
            return error_body(ss, 500, cerr_message());
        ss->owned = text;
        ss->body = (const unsigned char *)text;
        ss->len = len;
        return 200;
    }
    if (PREFIX("/api/v1/namespaces/")) {
        const char *p = path + sizeof("/api/v1/namespaces/") - 1, *end = path + plen;
        const char *slash = memchr(p, '/', (size_t)(end - p));
        static const char mid[] = "/assets/", smid[] = "/sources/";
        bool is_src = slash && (size_t)(end - slash) > sizeof smid - 1 &&
                      !memcmp(slash, smid, sizeof smid - 1);
        if (is_src || (slash && (size_t)(end - slash) > sizeof mid - 1 &&
                       !memcmp(slash, mid, sizeof mid - 1))) {
            const char *name = slash + (is_src ? sizeof smid : sizeof mid) - 1;
            size_t nslen = (size_t)(slash - p), nlen = (size_t)(end - name);
            if (!name_ok(p, nslen) || !name_ok(name, nlen))
                return error_body(ss, 400, "bad namespace or name");
            char ns[256], nm[256];
            memcpy(ns, p, nslen);
            ns[nslen] = '\0';
            memcpy(nm, name, nlen);
            nm[nlen] = '\0';
            json_t *doc = NULL;
            int rc =
                is_src ? uiapi_source(s->api, ns, nm, &doc) : uiapi_asset(s->api, ns, nm, &doc);
            if (rc == CERR_NOTFOUND) return error_body(ss, 404, cerr_message());
            if (rc) return error_body(ss, 500, cerr_message());
            return json_body(ss, doc, 200);
        }
    }
    if (IS("/api/v1/watch"))
        return error_body(ss, 400, "websocket only (subprotocol terrane-ui.v1)");
#undef IS
#undef PREFIX
    return error_body(ss, 404, "not found");
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

static int on_http(struct lws *wsi, session *ss)
{
    uiserver *s = lws_context_user(lws_get_context(wsi));
    session_reset(ss);
    char *uri = NULL;
    int ulen = 0;
    int method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    const char *ctype = CT_JSON, *location = NULL;
    unsigned status;
    bool head = method == LWSHUMETH_HEAD;
    if (method != LWSHUMETH_GET && !head) {
        status = 405;
        ss->close_after = true;
        if (text_body(ss, "{\"error\":\"read-only: GET and HEAD only\"}") < 0) return -1;
    } else {
        size_t plen = uri && ulen > 0 ? strcspn(uri, "?") : 0;
        if (plen > (size_t)ulen) plen = (size_t)ulen;
        status = route(s, wsi, uri ? uri : "", plen, ss, &ctype, &location);
    }
    unsigned char hdr[LWS_PRE + 2048], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr;
    if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)ss->len, &p, end) ||
        add_header(wsi, "cache-control:", "no-store", &p, end) ||
        add_header(wsi, "content-security-policy:", s->csp, &p, end) ||
        add_header(wsi, "x-content-type-options:", "nosniff", &p, end) ||
        add_header(wsi, "x-frame-options:", "DENY", &p, end) ||
        add_header(wsi, "referrer-policy:", "no-referrer", &p, end) ||
        add_header(wsi, "cross-origin-opener-policy:", "same-origin", &p, end) ||
        (location && add_header(wsi, "location:", location, &p, end)) ||
        (status == 405 && add_header(wsi, "allow:", "GET, HEAD", &p, end)))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
    if (head || ss->len == 0) {
        bool close = ss->close_after;
        session_reset(ss);
        if (close) return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_http_writeable(struct lws *wsi, session *ss)
{
    uiserver *s = lws_context_user(lws_get_context(wsi));
    if (!ss->body) return 0;
    int r = httpd_write_next(wsi, s->wbuf, CHUNK, ss->body, ss->len, &ss->sent);
    if (r <= 0) return r;
    bool close = ss->close_after;
    session_reset(ss);
    if (close) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    session *ss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(wsi, ss);
    case LWS_CALLBACK_HTTP_BODY:
        ss->discarded += len;
        return ss->discarded > BODY_MAX ? -1 : 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_http_writeable(wsi, ss);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (ss) session_reset(ss);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
        uiserver *s = lws_context_user(lws_get_context(wsi));
        if (s) flush_pending(s);
        return 0;
    }
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* --- websocket ------------------------------------------------------------------------------- */

/* The upgrade is accepted only from a page of this server: Origin must be
 * http(s)://<the Host header>. Browsers always send Origin on websocket
 * requests, and a page elsewhere cannot forge it. */
static bool same_origin(struct lws *wsi)
{
    char origin[512], host[512], want[600];
    if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0) return false;
    if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0) return false;
    snprintf(want, sizeof want, "http://%s", host);
    if (!strcmp(origin, want)) return true;
    snprintf(want, sizeof want, "https://%s", host);
    return !strcmp(origin, want);
}

static bool watch_path(struct lws *wsi)
{
    char uri[256];
    int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
    return n > 0 && !strcmp(uri, "/api/v1/watch");
}

static int ws_send(uiserver *s, struct lws *wsi, client *c)
{
    unsigned long last = atomic_load(&s->seq);
    if (!c->hello_sent) {
        char hello[LWS_PRE + 64];
        int n = snprintf(hello + LWS_PRE, 64, "{\"type\":\"hello\",\"seq\":%lu}", last);
        if (lws_write(wsi, (unsigned char *)hello + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) != n)
            return -1;
        c->hello_sent = true;
        c->next = last + 1;
        return 0;
    }
    if (c->next > last) return 0;
    if (last - c->next >= UISERVER_BACKLOG) {
        /* too far behind: the messages it needs are gone */
        lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)"behind", 6);
        return -1;
    }
    message *m = slot(s, c->next);
    size_t n = m->len - c->off;
    if (n > CHUNK) n = CHUNK;
    bool first = c->off == 0, fin = c->off + n == m->len;
    /* lws_write needs LWS_PRE writable bytes before the data: copy the frame */
    memcpy(s->wbuf + LWS_PRE, m->buf + LWS_PRE + c->off, n);
    int flags = lws_write_ws_flags(LWS_WRITE_TEXT, first, fin);
    if (lws_write(wsi, s->wbuf + LWS_PRE, n, (enum lws_write_protocol)flags) != (int)n) return -1;
    c->off += n;
    if (fin) {
        c->off = 0;
        c->next++;
    }
    if (c->next <= last) lws_callback_on_writable(wsi);
    return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    client *c = user;
    uiserver *s = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (!watch_path(wsi)) return 1;
        if (!same_origin(wsi)) {
            char origin[256] = "";
            lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
            clog_warn("ui: cross-origin websocket refused", "{s:s}", "origin", origin);
            return 1;
        }
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        *c = (client){0};
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_send(s, wsi, c);
    case LWS_CALLBACK_RECEIVE:
        return 0; /* the page sends nothing that matters; pings are lws's */
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        return 0; /* handled once, by the http protocol */
    default:
        return 0;
    }
    (void)in;
    (void)len;
}

static const struct lws_protocols PROTOCOLS[] = {
    {"http", http_callback, sizeof(session), 0, 0, NULL, 0},
    {"terrane-ui.v1", ws_callback, sizeof(client), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* --- server -------------------------------------------------------------------------------- */

static void *serve(void *arg)
{
    uiserver *s = arg;
    while (!atomic_load(&s->stopping))
        if (lws_service(s->ctx, 0) < 0) break;
    return NULL;
}

static void destroy(uiserver *s)
{
    if (s->ctx) lws_context_destroy(s->ctx);
    for (size_t i = 0; i < UISERVER_BACKLOG; i++)
        cmem_free(s->ring[i].buf);
    strmap_free(s->pending);
    cmem_free(s->config_json);
    pthread_mutex_destroy(&s->mu);
    cmem_free(s);
}

static int listen_on(uiserver *s, const char *iface, int port, bool ipv6, const char *addr)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (!ipv6) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.user = s;
    info.fd_limit_per_thread = MAX_FDS;
    info.max_http_header_data = HEADER_MAX;
    info.max_http_header_pool = 32;
    info.timeout_secs = TIMEOUT_S;
    info.timeout_secs_ah_idle = TIMEOUT_S;
    info.server_string = "terrane-controller";
    s->ctx = lws_create_context(&info);
    if (!s->ctx) return cerr_set(CERR_IO, "ui server: cannot create the server context");
    info.port = port;
    info.iface = iface;
    info.protocols = PROTOCOLS;
    info.vhost_name = "terrane-ui";
    info.keepalive_timeout = TIMEOUT_S;
    s->vh = lws_create_vhost(s->ctx, &info);
    if (!s->vh || lws_get_vhost_listen_port(s->vh) <= 0) {
        lws_context_destroy(s->ctx);
        s->ctx = NULL;
        s->vh = NULL;
        return cerr_set(CERR_IO, "ui server: cannot listen on %s (address in use or not local?)",
                        addr);
    }
    s->port = lws_get_vhost_listen_port(s->vh);
    return 0;
}

/* The S3 endpoint's origin ("http://host:port") for connect-src; it must
 * not be able to widen the policy, so only URL characters pass. */
static int s3_origin(const char *url, char *out, size_t cap)
{
    out[0] = '\0';
    if (!url || !*url) return 0;
    const char *rest = !strncmp(url, "http://", 7)    ? url + 7
                       : !strncmp(url, "https://", 8) ? url + 8
                                                      : NULL;
    if (!rest || !*rest)
        return cerr_set(CERR_INVALID, "--ui-s3-endpoint \"%s\": expected http(s)://host[:port]",
                        url);
    size_t hl = strcspn(rest, "/");
    for (size_t i = 0; i < hl; i++)
        if (!((rest[i] >= 'a' && rest[i] <= 'z') || (rest[i] >= 'A' && rest[i] <= 'Z') ||
              (rest[i] >= '0' && rest[i] <= '9') || strchr(".-:[]", rest[i])))
            return cerr_set(CERR_INVALID, "--ui-s3-endpoint \"%s\": bad host", url);
    int n = snprintf(out, cap, "%.*s%.*s", (int)(rest - url), url, (int)hl, rest);
    if (n <= 0 || (size_t)n >= cap) return cerr_set(CERR_INVALID, "--ui-s3-endpoint: too long");
    return 0;
}

int uiserver_start(const uiserver_config *cfg, uiserver **out)
{
    char host[256], iface[256], origin[512];
    int port = 0, rc;
    bool ipv6 = false;
    *out = NULL;
    if ((rc = httpd_parse_addr(cfg->addr, host, sizeof host, &port)) < 0) return rc;
    if (host[0] && (rc = httpd_numeric_host(host, iface, sizeof iface, &ipv6)) < 0) return rc;
    if ((rc = s3_origin(cfg->s3_endpoint, origin, sizeof origin)) < 0) return rc;

    uiserver *s = cmem_calloc(1, sizeof *s);
    if (!s) return cerr_oom();
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->stopping, false);
    atomic_init(&s->dirty, false);
    atomic_init(&s->seq, 0);
    s->api = cfg->api;
    /* blob: and data: images are the map preview's canvas exports; the
     * GeoTIFF decoder runs in a worker built from a blob */
    snprintf(s->csp, sizeof s->csp,
             "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
             "connect-src 'self'%s%s; worker-src 'self' blob:; frame-ancestors 'none'; "
             "base-uri 'none'; form-action 'none'",
             origin[0] ? " " : "", origin);
    json_t *conf = json_pack("{s:s?, s:s}", "s3Endpoint", origin[0] ? cfg->s3_endpoint : NULL,
                             "version", TERRANE_VERSION);
    s->config_json = conf ? json_dumps(conf, JSON_COMPACT) : NULL;
    json_decref(conf);
    if (!s->config_json || !(s->pending = strmap_new(0))) {
        rc = cerr_oom();
        goto fail;
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, httpd_lws_log);
    if (host[0]) {
        rc = listen_on(s, iface, port, ipv6, cfg->addr);
    } else {
        rc = listen_on(s, NULL, port, true, cfg->addr);
        if (rc < 0) rc = listen_on(s, NULL, port, false, cfg->addr);
    }
    if (rc < 0) goto fail;
    if (pthread_create(&s->thread, NULL, serve, s) != 0) {
        rc = cerr_set(CERR_IO, "ui server: cannot start its thread");
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return 0;
fail:
    destroy(s);
    return rc;
}

int uiserver_port(const uiserver *s)
{
    return s ? s->port : 0;
}

void uiserver_stop(uiserver *s)
{
    if (!s) return;
    atomic_store(&s->stopping, true);
    if (s->thread_started) {
        lws_cancel_service(s->ctx);
        pthread_join(s->thread, NULL);
    }
    destroy(s);
}
