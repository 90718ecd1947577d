/*
 * kube.c - the Kubernetes REST client (see kube.h): request building,
 * authentication, the client-side rate limit, retries, response caps,
 * Status decoding, paginated lists and streaming watches, over libcurl.
 *
 * Connections: every request borrows an easy handle from a small idle pool
 * and gives it back, so its keep-alive connection is reused by the next
 * request of any thread. DNS and TLS sessions are shared across handles
 * through a curl share with one mutex per data kind. The connection cache
 * itself is deliberately not put in the share: libcurl 7.88 documents that
 * sharing it between concurrently running threads is unsafe (its known
 * bug "connection cache sharing"), and the handle pool gives the same reuse.
 * A watch runs on a handle of its own in a multi handle polled every
 * 100 ms, so the caller's stop flag ends it promptly.
 *
 * Memory: response bodies grow in cmem buffers with a cap (8 MiB for an
 * object, 64 MiB for a list page, the splitter's line cap for watches);
 * libcurl's own allocations (headers, handles) are outside cmem.
 */
#include "kube/kube.h"

#include "kube/kobj.h"
#include "kube/ratelimit.h"
#include "kube/watch.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jtype.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OBJECT_MAX (8u << 20)      /* one object; etcd's own limit is 1.5 MiB */
#define LIST_PAGE_MAX (64u << 20)  /* one page of a list (limit=500) */
#define ERROR_BODY_MAX (64u << 10) /* a Status body on a failed watch */
#define PEM_FILE_MAX (1u << 20)
#define TOKEN_FILE_MAX (64u << 10)
#define LIST_PAGE_LIMIT 500
#define LIST_MAX_PAGES 100000 /* a server that never stops sending continue tokens */
#define RETRIES_429 5
#define RETRIES_5XX 2
#define RETRY_AFTER_MAX_S 30
#define IDLE_HANDLES 8
#define CONNECT_TIMEOUT_MS 10000L
#define WATCH_POLL_MS 100

const kube_resource KUBE_PODS = {"", "v1", "pods", "Pod", true};
const kube_resource KUBE_EVENTS = {"", "v1", "events", "Event", true};
const kube_resource KUBE_LEASES = {"coordination.k8s.io", "v1", "leases", "Lease", true};
const kube_resource KUBE_CONFIGMAPS = {"", "v1", "configmaps", "ConfigMap", true};

struct kube_client {
    char *server; /* no trailing slash */
    char *user_agent;
    bool tls;
    char *ca, *cert, *key; /* PEM blobs, or NULL */
    size_t ca_len, cert_len, key_len;
    long timeout_ms;
    ratelimit_bucket *bucket;
    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
    pthread_mutex_t pool_mu;
    CURL *idle[IDLE_HANDLES];
    size_t n_idle;
    pthread_mutex_t token_mu;
    char *token; /* the bearer token in use, or NULL */
    char *token_file;
    struct stat token_st; /* of the token_file contents in use */
    bool token_st_valid;
    kube_observe_fn observe;
    void *observe_ctx;
};

static _Thread_local char last_reason[64];
static _Thread_local long thread_timeout_ms;

const char *kube_last_reason(void)
{
    return last_reason;
}

void kube_set_thread_timeout(long timeout_ms)
{
    thread_timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

static void set_reason(const char *r)
{
    snprintf(last_reason, sizeof last_reason, "%s", r ? r : "");
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / RATELIMIT_S),
                          .tv_nsec = (long)(ns % RATELIMIT_S)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* --- small buffers ------------------------------------------------------------------ */

/* A growing string for paths and queries. */
typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (n > SIZE_MAX / 4 - 1 - b->len) { /* the doubling below would wrap */
        b->oom = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 128;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *ns = cmem_realloc(b->s, ncap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = ncap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Percent-encodes everything but RFC 3986's unreserved characters: safe
 * for a path segment and for a query value (label selectors carry '=', ',',
 * '!', '(' and spaces). */
static void sb_esc(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            sb_add(b, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            sb_add(b, e, 3);
        }
    }
}

/* Appends "&key=value" (or "?key=value" for the first parameter). */
static void sb_query(sbuf *b, const char *key, const char *value)
{
    if (!value) return;
    sb_str(b, b->s && strchr(b->s, '?') ? "&" : "?");
    sb_str(b, key);
    sb_str(b, "=");
    sb_esc(b, value);
}

/* A response body with a cap. */
typedef struct {
    char *data;
    size_t len, cap, max;
    bool toobig, oom;
} rbuf;

static bool rb_append(rbuf *b, const char *p, size_t n)
{
    if (n > b->max - b->len) {
        b->toobig = true;
        return false;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 16384;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        if (ncap > b->max + 1) ncap = b->max + 1;
        char *nd = cmem_realloc(b->data, ncap);
        if (!nd) {
            b->oom = true;
            return false;
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    size_t n = size * nmemb;
    return rb_append(ud, p, n) ? n : 0; /* 0 aborts the transfer */
}

/* Seconds from a Retry-After header; the HTTP-date form is not used by the
 * API server (it sends seconds: apiserver's priority and fairness and
 * max-in-flight filters), so it reads as "unknown" (-1). */
typedef struct {
    long retry_after_s;
} rheaders;

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    size_t n = size * nmemb;
    rheaders *h = ud;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
        size_t i = sizeof name - 1;
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        long v = 0;
        bool any = false;
        while (i < n && p[i] >= '0' && p[i] <= '9' && v < 100000) {
            v = v * 10 + (p[i++] - '0');
            any = true;
        }
        h->retry_after_s = any ? v : -1;
    }
    return n;
}

/* --- files and credentials ------------------------------------------------------------ */

static int read_file(const char *path, size_t max, char **out, size_t *len_out)
{
    int rc = 0;
    rbuf b = {.max = max};
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cerr_set(errno == ENOENT ? CERR_NOTFOUND : CERR_IO, "%s: %s", path, strerror(errno));
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = cerr_set(CERR_IO, "%s: %s", path, strerror(errno));
            goto cleanup;
        }
        if (n == 0) break;
        if (!rb_append(&b, chunk, (size_t)n)) {
            rc = b.oom ? cerr_oom() : cerr_set(CERR_TOOBIG, "%s: larger than %zu bytes", path, max);
            goto cleanup;
        }
    }
    if (!b.data && !rb_append(&b, "", 0)) {
        rc = cerr_oom();
        goto cleanup;
    }
    *out = b.data;
    b.data = NULL;
    if (len_out) *len_out = b.len;
cleanup:
    explicit_bzero(chunk, sizeof chunk);
    close(fd);
    cmem_free(b.data);
    return rc;
}

/* PEM material from memory or a file, checked to be PEM so a wrong file
 * fails here with its name rather than in OpenSSL at the first request. */
static int load_pem(const char *what, const char *data, const char *file, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (data) {
        if (!(*out = cmem_strdup(data))) return cerr_oom();
        *len = strlen(data);
    } else if (file) {
        int rc = read_file(file, PEM_FILE_MAX, out, len);
        if (rc) {
            cerr_prefix("kube: %s", what);
            return rc;
        }
    } else {
        return 0;
    }
    if (!strstr(*out, "-----BEGIN ")) {
        cmem_free(*out);
        *out = NULL;
        return cerr_set(CERR_INVALID, "kube: %s%s%s: not PEM (no \"-----BEGIN\" line)", what,
                        file && !data ? " " : "", file && !data ? file : "");
    }
    return 0;
}

static void trim_token(char *s)
{
    size_t n = strlen(s), i = 0;
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    memmove(s, s + i, n - i);
    s[n - i] = '\0';
}

static void free_secret(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    cmem_free(s);
}

/* The Authorization header for the next request. A token file is re-read
 * when its inode, size or mtime change: the kubelet rotates projected
 * service account tokens (bound tokens expire after an hour) by swapping a
 * symlink, and client-go re-reads the file likewise. A failed re-read
 * keeps the previous token. */
static int auth_header(kube_client *c, char **out)
{
    int rc = 0;
    *out = NULL;
    pthread_mutex_lock(&c->token_mu);
    if (c->token_file) {
        struct stat st;
        if (stat(c->token_file, &st) == 0 &&
            (!c->token_st_valid || st.st_ino != c->token_st.st_ino ||
             st.st_size != c->token_st.st_size || st.st_mtim.tv_sec != c->token_st.st_mtim.tv_sec ||
             st.st_mtim.tv_nsec != c->token_st.st_mtim.tv_nsec)) {
            char *t = NULL;
            if (read_file(c->token_file, TOKEN_FILE_MAX, &t, NULL) == 0) {
                trim_token(t);
                if (t[0]) {
                    free_secret(c->token);
                    c->token = t;
                    t = NULL;
                    c->token_st = st;
                    c->token_st_valid = true;
                }
            }
            free_secret(t);
            cerr_clear();
        }
        if (!c->token) {
            rc = cerr_set(CERR_FORBIDDEN, "kube: no bearer token: %s is missing or empty",
                          c->token_file);
            goto cleanup;
        }
    }
    if (c->token && !(*out = cmem_printf("Authorization: Bearer %s", c->token))) rc = cerr_oom();
cleanup:
    pthread_mutex_unlock(&c->token_mu);
    return rc;
}

/* --- the client ------------------------------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    (void)h;
    (void)access;
    kube_client *c = ud;
    pthread_mutex_lock(&c->share_mu[data < CURL_LOCK_DATA_LAST ? data : 0]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    (void)h;
    kube_client *c = ud;
    pthread_mutex_unlock(&c->share_mu[data < CURL_LOCK_DATA_LAST ? data : 0]);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    /* curl_global_init is not thread-safe in 7.88; pthread_once makes it so. */
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int kube_client_new(const kube_config *cfg, kube_client **out)
{
    int rc = 0;
    kube_client *c = NULL;
    *out = NULL;
    if (!cfg || !cfg->server || !cfg->server[0])
        return cerr_set(CERR_INVALID, "kube: no server configured");
    if (strncmp(cfg->server, "https://", 8) != 0 && strncmp(cfg->server, "http://", 7) != 0)
        return cerr_set(CERR_INVALID, "kube: server \"%.200s\": expected http:// or https://",
                        cfg->server);
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return cerr_set(CERR_ERROR, "kube: curl_global_init: %s", curl_easy_strerror(curl_init_rc));
    if (!(c = cmem_calloc(1, sizeof *c))) return cerr_oom();
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&c->share_mu[i], NULL);
    pthread_mutex_init(&c->pool_mu, NULL);
    pthread_mutex_init(&c->token_mu, NULL);
    c->tls = strncmp(cfg->server, "https://", 8) == 0;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    if (!(c->server = cmem_strdup(cfg->server))) goto oom;
    if (!(c->user_agent = cmem_strdup(cfg->user_agent ? cfg->user_agent : "kube-client-c")))
        goto oom;
    size_t n = strlen(c->server);
    while (n && c->server[n - 1] == '/')
        c->server[--n] = '\0';
    if (cfg->token && cfg->token[0] && !(c->token = cmem_strdup(cfg->token))) goto oom;
    if (cfg->token_file && !(c->token_file = cmem_strdup(cfg->token_file))) goto oom;
    if (c->tls) {
        if ((rc = load_pem("CA bundle", cfg->ca_data, cfg->ca_file, &c->ca, &c->ca_len)) ||
            (rc = load_pem("client certificate", cfg->cert_data, cfg->cert_file, &c->cert,
                           &c->cert_len)) ||
            (rc = load_pem("client key", cfg->key_data, cfg->key_file, &c->key, &c->key_len)))
            goto fail;
        if (!c->cert != !c->key) {
            rc = cerr_set(CERR_INVALID,
                          "kube: a client certificate needs a client key and vice versa");
            goto fail;
        }
    }
    double qps = cfg->qps > 0 ? cfg->qps : 50.0;
    unsigned burst = cfg->burst > 0 ? cfg->burst : 100;
    if (!(c->bucket = ratelimit_bucket_new(qps, burst))) {
        rc = cerr_set(CERR_INVALID, "kube: invalid rate limit qps=%g burst=%u", qps, burst);
        goto fail;
    }
    if (!(c->share = curl_share_init())) goto oom;
    if (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) ||
        curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
        curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)) {
        rc = cerr_set(CERR_ERROR, "kube: cannot set up the curl share handle");
        goto fail;
    }
    *out = c;
    return 0;
oom:
    rc = cerr_oom();
fail:
    kube_client_free(c);
    return rc;
}

void kube_client_free(kube_client *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_idle; i++)
        curl_easy_cleanup(c->idle[i]);
    if (c->share) curl_share_cleanup(c->share);
    ratelimit_bucket_free(c->bucket);
    cmem_free(c->server);
    cmem_free(c->user_agent);
    cmem_free(c->ca);
    cmem_free(c->cert);
    if (c->key) explicit_bzero(c->key, c->key_len);
    cmem_free(c->key);
    free_secret(c->token);
    cmem_free(c->token_file);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->share_mu[i]);
    pthread_mutex_destroy(&c->pool_mu);
    pthread_mutex_destroy(&c->token_mu);
    cmem_free(c);
}

void kube_client_set_observer(kube_client *c, kube_observe_fn fn, void *ctx)
{
    c->observe = fn;
    c->observe_ctx = ctx;
}

static CURL *handle_take(kube_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->pool_mu);
    if (c->n_idle) h = c->idle[--c->n_idle];
    pthread_mutex_unlock(&c->pool_mu);
    if (!h) h = curl_easy_init(); /* pooled handles were reset when given back */
    return h;
}

static void handle_give(kube_client *c, CURL *h)
{
    if (!h) return;
    pthread_mutex_lock(&c->pool_mu);
    if (c->n_idle < IDLE_HANDLES) {
        c->idle[c->n_idle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->pool_mu);
    if (h) curl_easy_cleanup(h);
}

/* Options common to every request. */
static bool setup_handle(kube_client *c, CURL *h, const char *url, struct curl_slist *headers,
                         long timeout_ms, char *errbuf)
{
    CURLcode e = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (e == CURLE_OK) e = curl_easy_setopt(h, opt, val);                                      \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM-based DNS timeouts */
    SET(CURLOPT_SHARE, c->share);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* never send the token anywhere else */
    SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        timeout_ms > 0 && timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 0L);
    SET(CURLOPT_ACCEPT_ENCODING, ""); /* gzip: large lists shrink ~10x; caps apply after decoding */
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_TCP_KEEPIDLE, 30L);
    SET(CURLOPT_TCP_KEEPINTVL, 10L);
    if (c->tls) {
        SET(CURLOPT_SSL_VERIFYPEER, 1L);
        SET(CURLOPT_SSL_VERIFYHOST, 2L);
        SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
        if (c->ca) {
            /* Trust exactly the cluster's CA, as client-go does with a
             * configured CA: no system bundle besides it. */
            struct curl_blob ca = {c->ca, c->ca_len, CURL_BLOB_NOCOPY};
            SET(CURLOPT_CAINFO_BLOB, &ca);
            SET(CURLOPT_CAINFO, (char *)NULL);
            SET(CURLOPT_CAPATH, (char *)NULL);
        }
        if (c->cert) {
            struct curl_blob cert = {c->cert, c->cert_len, CURL_BLOB_NOCOPY};
            struct curl_blob key = {c->key, c->key_len, CURL_BLOB_NOCOPY};
            SET(CURLOPT_SSLCERT_BLOB, &cert);
            SET(CURLOPT_SSLCERTTYPE, "PEM");
            SET(CURLOPT_SSLKEY_BLOB, &key);
            SET(CURLOPT_SSLKEYTYPE, "PEM");
        }
    }
#undef SET
    return e == CURLE_OK;
}

/* Headers of one request: Accept, Content-Type, Authorization. */
static int build_headers(kube_client *c, const char *content_type, struct curl_slist **out)
{
    struct curl_slist *l = NULL;
    char *auth = NULL, *ct = NULL;
    *out = NULL;
    int rc = auth_header(c, &auth);
    if (rc) return rc;
    if (content_type && !(ct = cmem_printf("Content-Type: %s", content_type))) {
        rc = cerr_oom();
        goto cleanup;
    }
    /* "Expect:" stops curl from waiting for 100-continue on large bodies. */
    const char *lines[] = {"Accept: application/json", "Expect:", ct, auth};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (!lines[i]) continue;
        struct curl_slist *t = curl_slist_append(l, lines[i]);
        if (!t) {
            rc = cerr_oom();
            goto cleanup;
        }
        l = t;
    }
    *out = l;
    l = NULL;
cleanup:
    free_secret(auth);
    cmem_free(ct);
    curl_slist_free_all(l);
    return rc;
}

/* --- errors ----------------------------------------------------------------------------- */

static const char *http_reason(long code)
{
    switch (code) {
    case 400:
        return "BadRequest";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "NotFound";
    case 405:
        return "MethodNotAllowed";
    case 408:
        return "Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Expired";
    case 413:
        return "RequestEntityTooLarge";
    case 415:
        return "UnsupportedMediaType";
    case 422:
        return "Invalid";
    case 429:
        return "TooManyRequests";
    case 500:
        return "InternalError";
    case 503:
        return "ServiceUnavailable";
    case 504:
        return "Timeout";
    default:
        return "Unknown";
    }
}

/* The error for a non-2xx answer: the API server's Status (reason and
 * message) when the body is one, else the HTTP code and the start of the
 * body (a proxy's HTML page, say). The HTTP code decides the CERR code. */
static int http_error(const char *method, const char *path, long code, const char *body, size_t len)
{
    int rc;
    json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    kobj_status st;
    if (j && kobj_status_decode(j, &st) == 0 && (st.reason || st.message)) {
        st.code = (int)code;
        rc = kobj_status_set_error(&st);
        set_reason(st.reason && st.reason[0] ? st.reason : http_reason(code));
    } else {
        char snippet[161];
        size_t n = 0;
        for (size_t i = 0; body && i < len && n < sizeof snippet - 1; i++)
            snippet[n++] = body[i] >= 0x20 && body[i] < 0x7f ? body[i] : ' ';
        snippet[n] = '\0';
        rc = cerr_set(kobj_http_cerr((int)code), "HTTP %ld%s%s", code, n ? ": " : "", snippet);
        set_reason(http_reason(code));
    }
    json_decref(j);
    cerr_prefix("%s %.300s", method, path);
    return rc;
}

static bool retryable_transport(CURLcode cc)
{
    return cc == CURLE_COULDNT_CONNECT || cc == CURLE_GOT_NOTHING || cc == CURLE_SEND_ERROR ||
           cc == CURLE_RECV_ERROR || cc == CURLE_COULDNT_RESOLVE_HOST;
}

/* --- one request, with retries ---------------------------------------------------------- */

typedef struct {
    const char *verb;   /* for metrics: GET LIST POST PUT PATCH DELETE */
    const char *method; /* HTTP method */
    const char *path;   /* path and query */
    const char *body;   /* NULL: none */
    size_t body_len;
    const char *content_type;
    size_t max_body;
    bool idempotent; /* reads: a 5xx or a lost connection is retried */
} kreq;

static uint64_t ms_ns(long ms)
{
    return (uint64_t)ms * RATELIMIT_MS;
}

static int do_request(kube_client *c, const kreq *q, json_t **out)
{
    int rc = 0;
    char *url = NULL;
    struct curl_slist *headers = NULL;
    rbuf body = {.max = q->max_body};
    unsigned n429 = 0, n5xx = 0;
    uint64_t deadline = thread_timeout_ms > 0 ? ratelimit_now() + ms_ns(thread_timeout_ms) : 0;
    if (out) *out = NULL;
    set_reason("");
    if (!(url = cmem_printf("%s%s", c->server, q->path))) return cerr_oom();

    for (;;) {
        ratelimit_bucket_wait(c->bucket);
        long timeout = c->timeout_ms;
        if (deadline) {
            uint64_t now = ratelimit_now();
            if (now >= deadline) {
                rc = cerr_set(CERR_TIMEOUT, "%s %.300s: deadline passed before the request",
                              q->method, q->path);
                break;
            }
            long left = (long)((deadline - now) / RATELIMIT_MS) + 1;
            if (left < timeout) timeout = left;
        }
        curl_slist_free_all(headers);
        headers = NULL;
        if ((rc = build_headers(c, q->body ? q->content_type : NULL, &headers))) break;
        char errbuf[CURL_ERROR_SIZE] = "";
        rheaders rh = {.retry_after_s = -1};
        body.len = 0;
        body.toobig = body.oom = false;
        CURL *h = handle_take(c);
        if (!h) {
            rc = cerr_oom();
            break;
        }
        bool ok = setup_handle(c, h, url, headers, timeout, errbuf);
        CURLcode e = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (e == CURLE_OK) e = curl_easy_setopt(h, opt, val);                                      \
    } while (0)
        SET(CURLOPT_WRITEFUNCTION, on_body);
        SET(CURLOPT_WRITEDATA, &body);
        SET(CURLOPT_HEADERFUNCTION, on_header);
        SET(CURLOPT_HEADERDATA, &rh);
        if (strcmp(q->method, "GET") == 0) {
            SET(CURLOPT_HTTPGET, 1L);
        } else {
            SET(CURLOPT_CUSTOMREQUEST, q->method);
            if (q->body) {
                SET(CURLOPT_POSTFIELDS, q->body);
                SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
            }
        }
#undef SET
        if (!ok || e != CURLE_OK) {
            curl_easy_cleanup(h);
            rc = cerr_set(CERR_ERROR, "%s %.300s: cannot set up the request", q->method, q->path);
            break;
        }
        uint64_t t0 = ratelimit_now();
        CURLcode cc = curl_easy_perform(h);
        double secs = (double)(ratelimit_now() - t0) / 1e9;
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        /* The idle handle must not keep pointers to this stack frame
         * (error buffer, body) or to headers about to be freed; a reset
         * keeps its connection. */
        curl_easy_reset(h);
        if (cc == CURLE_OK) {
            handle_give(c, h);
        } else {
            curl_easy_cleanup(h); /* its connection may be broken */
        }
        if (c->observe) c->observe(c->observe_ctx, q->verb, cc == CURLE_OK ? (int)code : 0, secs);

        if (cc != CURLE_OK) {
            if (body.toobig) {
                rc = cerr_set(CERR_TOOBIG, "%s %.300s: response larger than %zu bytes", q->method,
                              q->path, q->max_body);
                set_reason("TooBig");
                break;
            }
            if (body.oom) {
                rc = cerr_oom();
                break;
            }
            rc = cerr_set(cc == CURLE_OPERATION_TIMEDOUT ? CERR_TIMEOUT : CERR_IO,
                          "%s %s%.300s: %s", q->method, c->server, q->path,
                          errbuf[0] ? errbuf : curl_easy_strerror(cc));
            set_reason(cc == CURLE_OPERATION_TIMEDOUT ? "Timeout" : "ConnectionFailed");
            if (q->idempotent && retryable_transport(cc) && n5xx < RETRIES_5XX) {
                uint64_t wait = (200 * RATELIMIT_MS) << n5xx++;
                if (!deadline || ratelimit_now() + wait < deadline) {
                    sleep_ns(wait);
                    continue;
                }
            }
            break;
        }
        if (code >= 200 && code < 300) {
            rc = 0;
            if (!out) break;
            json_error_t jerr;
            unsigned long failures = cmem_failures();
            json_t *j = json_loadb(body.data ? body.data : "", body.len, 0, &jerr);
            if (!j) {
                if (cmem_failures() != failures)
                    rc = cerr_oom();
                else
                    rc = cerr_set(CERR_INVALID,
                                  "%s %.300s: invalid JSON in the response at byte %d: %s",
                                  q->method, q->path, jerr.position, jerr.text);
                break;
            }
            if (!json_is_object(j)) {
                rc = cerr_set(CERR_INVALID, "%s %.300s: the response is a JSON %s, not an object",
                              q->method, q->path, jtype_name(j));
                json_decref(j);
                break;
            }
            *out = j;
            break;
        }
        rc = http_error(q->method, q->path, code, body.data, body.len);
        /* 429: the server did not process the request (max-in-flight or
         * priority and fairness), so any verb may be retried after the
         * Retry-After it asks for, as client-go does. */
        if (code == 429 && n429 < RETRIES_429) {
            long s = rh.retry_after_s >= 0 ? rh.retry_after_s : 1;
            if (s > RETRY_AFTER_MAX_S) s = RETRY_AFTER_MAX_S;
            uint64_t wait = (uint64_t)s * RATELIMIT_S;
            n429++;
            if (!deadline || ratelimit_now() + wait < deadline) {
                sleep_ns(wait);
                continue;
            }
        }
        /* A 5xx may have been processed: only reads are repeated. */
        if (code >= 500 && code != 501 && q->idempotent && n5xx < RETRIES_5XX) {
            uint64_t wait = (200 * RATELIMIT_MS) << n5xx;
            if (rh.retry_after_s >= 0)
                wait = (uint64_t)(rh.retry_after_s < RETRY_AFTER_MAX_S ? rh.retry_after_s
                                                                       : RETRY_AFTER_MAX_S) *
                       RATELIMIT_S;
            n5xx++;
            if (!deadline || ratelimit_now() + wait < deadline) {
                sleep_ns(wait);
                continue;
            }
        }
        break;
    }
    curl_slist_free_all(headers);
    cmem_free(body.data);
    cmem_free(url);
    return rc;
}

/* --- paths ------------------------------------------------------------------------------ */

/* A name or namespace as a path segment: never empty, "." or "..". */
static int check_segment(const char *what, const char *s)
{
    if (!s || !s[0]) return cerr_set(CERR_INVALID, "kube: %s is empty", what);
    if (!strcmp(s, ".") || !strcmp(s, ".."))
        return cerr_set(CERR_INVALID, "kube: %s \"%s\" is not a valid name", what, s);
    return 0;
}

/* /api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]] or /apis/GROUP/VERSION/... */
static int resource_path(const kube_resource *r, const char *ns, const char *name, const char *sub,
                         sbuf *b)
{
    int rc;
    if (r->namespaced && ns && (rc = check_segment("namespace", ns))) return rc;
    if (name && (rc = check_segment("name", name))) return rc;
    if (r->group && r->group[0]) {
        sb_str(b, "/apis/");
        sb_str(b, r->group);
    } else {
        sb_str(b, "/api");
    }
    sb_str(b, "/");
    sb_str(b, r->version);
    if (r->namespaced && ns) {
        sb_str(b, "/namespaces/");
        sb_esc(b, ns);
    }
    sb_str(b, "/");
    sb_str(b, r->plural);
    if (name) {
        sb_str(b, "/");
        sb_esc(b, name);
        if (sub) {
            sb_str(b, "/");
            sb_str(b, sub);
        }
    }
    return b->oom ? cerr_oom() : 0;
}

/* A namespaced resource's single object needs its namespace. */
static int need_ns(const kube_resource *r, const char *ns, const char *name)
{
    if (r->namespaced && (!ns || !ns[0]))
        return cerr_set(CERR_INVALID, "kube: %s \"%.200s\": namespace required", r->plural,
                        name ? name : "");
    return 0;
}

/* --- verbs ------------------------------------------------------------------------------ */

int kube_get(kube_client *c, const kube_resource *r, const char *ns, const char *name, json_t **out)
{
    sbuf p = {0};
    *out = NULL;
    int rc = need_ns(r, ns, name);
    if (!rc) rc = resource_path(r, ns, name ? name : "", NULL, &p);
    if (!rc) {
        kreq q = {.verb = "GET",
                  .method = "GET",
                  .path = p.s,
                  .max_body = OBJECT_MAX,
                  .idempotent = true};
        rc = do_request(c, &q, out);
    }
    cmem_free(p.s);
    return rc;
}

/* Appends page's items to list's and takes its resourceVersion. */
static int merge_page(json_t *list, json_t *page)
{
    json_t *items = json_object_get(list, "items"), *more = json_object_get(page, "items");
    if (json_is_array(more) && json_array_extend(items, more)) return cerr_oom();
    json_t *lm = json_object_get(list, "metadata"), *pm = json_object_get(page, "metadata");
    json_t *rv = json_object_get(pm, "resourceVersion");
    if (json_is_object(lm) && json_is_string(rv) && json_object_set(lm, "resourceVersion", rv))
        return cerr_oom();
    return 0;
}

int kube_list_pages(kube_client *c, const kube_resource *r, const char *ns,
                    const char *label_selector, const char *field_selector, kube_page_fn fn,
                    void *ctx)
{
    int rc = 0;
    json_t *page = NULL;
    char *cont = NULL;
    sbuf base = {0}, p = {0};
    bool paged = true, fell_back = false, restart = false;
    if ((rc = resource_path(r, ns, NULL, NULL, &base))) goto cleanup;
    for (unsigned pages = 0;; pages++) {
        if (pages >= LIST_MAX_PAGES) {
            rc = cerr_set(CERR_TOOBIG, "LIST %.300s: more than %u pages", base.s, LIST_MAX_PAGES);
            goto cleanup;
        }
        p.len = 0;
        sb_str(&p, base.s);
        if (paged) {
            char lim[16];
            snprintf(lim, sizeof lim, "%d", LIST_PAGE_LIMIT);
            sb_query(&p, "limit", lim);
        }
        sb_query(&p, "continue", cont);
        sb_query(&p, "labelSelector", label_selector);
        sb_query(&p, "fieldSelector", field_selector);
        if (p.oom) {
            rc = cerr_oom();
            goto cleanup;
        }
        kreq q = {.verb = "LIST",
                  .method = "GET",
                  .path = p.s,
                  .max_body = LIST_PAGE_MAX,
                  .idempotent = true};
        rc = do_request(c, &q, &page);
        if (rc == CERR_GONE && cont && !fell_back) {
            /* The continue token outlived etcd's compaction window. As
             * client-go's pager does, fall back to one unpaginated list: a
             * consistent snapshot, at the cost of one large response. */
            cmem_free(cont);
            cont = NULL;
            paged = false;
            fell_back = true;
            restart = true; /* the pages so far are of another snapshot */
            continue;
        }
        if (rc) goto cleanup;
        json_t *items = json_object_get(page, "items");
        if (!json_is_array(items)) {
            if (items && !json_is_null(items)) {
                rc = cerr_set(CERR_INVALID, "LIST %.300s: items: expected array, got %s", base.s,
                              jtype_name(items));
                goto cleanup;
            }
            if (json_object_set_new(page, "items", json_array())) {
                rc = cerr_oom();
                goto cleanup;
            }
        }
        /* The token for the next page: the snapshot's resourceVersion is
         * the first page's, every later page repeats it (the token pins
         * it), and the last page's is kept. */
        json_t *next = json_object_get(json_object_get(page, "metadata"), "continue");
        cmem_free(cont);
        cont = NULL;
        if (json_is_string(next) && json_string_length(next) &&
            !(cont = cmem_strdup(json_string_value(next)))) {
            rc = cerr_oom();
            goto cleanup;
        }
        json_t *meta = json_object_get(page, "metadata");
        if (json_is_object(meta)) {
            json_object_del(meta, "continue");
            json_object_del(meta, "remainingItemCount");
        }
        rc = fn(ctx, page, restart);
        restart = false;
        json_decref(page);
        page = NULL;
        if (rc || !cont) break;
    }
cleanup:
    json_decref(page);
    cmem_free(cont);
    cmem_free(base.s);
    cmem_free(p.s);
    return rc;
}

/* kube_list's page callback: the first page becomes the list, later
 * pages' items are appended. */
static int collect_page(void *ctx, json_t *page, bool restart)
{
    json_t **list = ctx;
    if (restart) {
        json_decref(*list);
        *list = NULL;
    }
    if (!*list) {
        *list = json_incref(page);
        return 0;
    }
    return merge_page(*list, page);
}

int kube_list(kube_client *c, const kube_resource *r, const char *ns, const char *label_selector,
              const char *field_selector, json_t **out)
{
    json_t *list = NULL;
    *out = NULL;
    int rc = kube_list_pages(c, r, ns, label_selector, field_selector, collect_page, &list);
    if (rc) {
        json_decref(list);
        return rc;
    }
    *out = list;
    return 0;
}

/* Serialises obj and sends it. */
static int send_object(kube_client *c, const char *verb, const char *path, const char *ctype,
                       const json_t *obj, json_t **out)
{
    char *body = json_dumps(obj, JSON_COMPACT);
    if (!body)
        return cerr_set(CERR_INVALID, "%s %.300s: the object cannot be serialised", verb, path);
    kreq q = {.verb = verb,
              .method = verb,
              .path = path,
              .body = body,
              .body_len = strlen(body),
              .content_type = ctype,
              .max_body = OBJECT_MAX};
    int rc = do_request(c, &q, out);
    cmem_free(body);
    return rc;
}

int kube_create(kube_client *c, const kube_resource *r, const char *ns, const json_t *obj,
                json_t **out)
{
    sbuf p = {0};
    if (out) *out = NULL;
    if (!json_is_object(obj)) return cerr_set(CERR_INVALID, "kube_create: object expected");
    if (!ns || !ns[0]) ns = kobj_namespace(obj);
    int rc = need_ns(r, ns, kobj_name(obj));
    if (!rc) rc = resource_path(r, ns, NULL, NULL, &p);
    if (!rc) rc = send_object(c, "POST", p.s, "application/json", obj, out);
    cmem_free(p.s);
    return rc;
}

static int put(kube_client *c, const kube_resource *r, const json_t *obj, const char *sub,
               json_t **out)
{
    sbuf p = {0};
    if (out) *out = NULL;
    if (!json_is_object(obj)) return cerr_set(CERR_INVALID, "kube_update: object expected");
    const char *ns = kobj_namespace(obj), *name = kobj_name(obj);
    int rc = need_ns(r, ns, name);
    if (!rc && !name) rc = cerr_set(CERR_INVALID, "kube_update: object has no metadata.name");
    if (!rc) rc = resource_path(r, ns, name, sub, &p);
    if (!rc) rc = send_object(c, "PUT", p.s, "application/json", obj, out);
    cmem_free(p.s);
    return rc;
}

int kube_update(kube_client *c, const kube_resource *r, const json_t *obj, json_t **out)
{
    return put(c, r, obj, NULL, out);
}

int kube_update_status(kube_client *c, const kube_resource *r, const json_t *obj, json_t **out)
{
    return put(c, r, obj, "status", out);
}

int kube_patch(kube_client *c, const kube_resource *r, const char *ns, const char *name,
               kube_patch_type type, const json_t *patch, bool status_subresource, json_t **out)
{
    static const char *const ctypes[] = {
        [KUBE_PATCH_MERGE] = "application/merge-patch+json",
        [KUBE_PATCH_JSON] = "application/json-patch+json",
        [KUBE_PATCH_STRATEGIC] = "application/strategic-merge-patch+json",
    };
    sbuf p = {0};
    if (out) *out = NULL;
    if ((unsigned)type > KUBE_PATCH_STRATEGIC)
        return cerr_set(CERR_INVALID, "kube_patch: unknown patch type");
    if (!patch) return cerr_set(CERR_INVALID, "kube_patch: no patch");
    int rc = need_ns(r, ns, name);
    if (!rc) rc = resource_path(r, ns, name ? name : "", status_subresource ? "status" : NULL, &p);
    if (!rc) rc = send_object(c, "PATCH", p.s, ctypes[type], patch, out);
    cmem_free(p.s);
    return rc;
}

int kube_delete(kube_client *c, const kube_resource *r, const char *ns, const char *name,
                const char *uid, const char *propagation)
{
    sbuf p = {0};
    json_t *opts = NULL;
    int rc = need_ns(r, ns, name);
    if (!rc) rc = resource_path(r, ns, name ? name : "", NULL, &p);
    if (rc) goto cleanup;
    /* DeleteOptions: a uid precondition makes the server refuse (409) to
     * delete a different object that was re-created under the same name. */
    opts = json_pack("{s:s, s:s}", "apiVersion", "v1", "kind", "DeleteOptions");
    if (!opts ||
        (uid && json_object_set_new(opts, "preconditions", json_pack("{s:s}", "uid", uid))) ||
        (propagation && json_object_set_new(opts, "propagationPolicy", json_string(propagation)))) {
        rc = cerr_oom();
        goto cleanup;
    }
    rc = send_object(c, "DELETE", p.s, "application/json", opts, NULL);
cleanup:
    json_decref(opts);
    cmem_free(p.s);
    return rc;
}

/* --- watch ------------------------------------------------------------------------------ */

typedef struct {
    CURL *h;
    watch_splitter *split;
    kube_watch_fn cb;
    void *ctx;
    long code; /* HTTP status, once known */
    rbuf err;  /* the body of a non-200 answer */
    int rc;    /* what stopped the stream from inside: the callback, an ERROR event */
    uint64_t last_data;
    const char *path;
} wstate;

static int on_event(void *ud, const watch_event *ev)
{
    wstate *ws = ud;
    if (ev->type == WATCH_ERROR) {
        /* The server ends the watch with an ERROR event carrying a Status;
         * 410 / Expired means the resourceVersion was compacted away. */
        int rc = ev->result ? ev->result : CERR_ERROR;
        set_reason(ev->reason ? ev->reason : http_reason(ev->status_code));
        return cerr_set(rc, "WATCH %.300s: ERROR event: %.64s (%d): %.600s", ws->path,
                        ev->reason ? ev->reason : "Failure", ev->status_code,
                        ev->message ? ev->message : "no message");
    }
    return ws->cb(ws->ctx, ev);
}

static size_t on_watch_data(char *p, size_t size, size_t nmemb, void *ud)
{
    wstate *ws = ud;
    size_t n = size * nmemb;
    if (!ws->code) curl_easy_getinfo(ws->h, CURLINFO_RESPONSE_CODE, &ws->code);
    if (ws->code != 200) {
        rb_append(&ws->err, p, n); /* a Status; the excess past the cap is dropped */
        return n;
    }
    ws->last_data = ratelimit_now();
    int rc = watch_feed(ws->split, p, n);
    if (rc) {
        ws->rc = rc;
        return 0;
    }
    return n;
}

int kube_watch(kube_client *c, const kube_resource *r, const char *ns, const char *label_selector,
               const char *resource_version, int timeout_s, kube_watch_fn cb, void *ctx,
               const atomic_bool *stop)
{
    int rc = 0;
    sbuf p = {0};
    char *url = NULL;
    struct curl_slist *headers = NULL;
    CURLM *m = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    wstate ws = {.cb = cb, .ctx = ctx, .err = {.max = ERROR_BODY_MAX}};
    bool added = false;
    set_reason("");
    if (stop && atomic_load(stop)) return cerr_set(CERR_SHUTDOWN, "watch: stopping");
    if ((rc = resource_path(r, ns, NULL, NULL, &p))) goto cleanup;
    char tmo[16];
    snprintf(tmo, sizeof tmo, "%d", timeout_s > 0 ? timeout_s : 0);
    sb_query(&p, "watch", "1");
    /* Bookmarks move our resourceVersion forward while nothing we watch
     * changes, so a re-watch after a quiet period is not 410 Gone. */
    sb_query(&p, "allowWatchBookmarks", "true");
    if (resource_version && resource_version[0]) sb_query(&p, "resourceVersion", resource_version);
    if (timeout_s > 0) sb_query(&p, "timeoutSeconds", tmo);
    sb_query(&p, "labelSelector", label_selector);
    if (p.oom || !(url = cmem_printf("%s%s", c->server, p.s))) {
        rc = cerr_oom();
        goto cleanup;
    }
    ws.path = p.s;
    if (!(ws.split = watch_new(0, on_event, &ws))) {
        rc = cerr_oom();
        goto cleanup;
    }
    ratelimit_bucket_wait(c->bucket);
    if ((rc = build_headers(c, NULL, &headers))) goto cleanup;
    if (!(ws.h = curl_easy_init()) || !(m = curl_multi_init())) {
        rc = cerr_oom();
        goto cleanup;
    }
    /* The server ends the watch after timeoutSeconds; a connection that
     * carries no byte for twice that is dead (a NAT or load balancer
     * dropped it without a reset), and the hard limit catches a server that
     * ignores timeoutSeconds while trickling data. */
    uint64_t idle_limit = (uint64_t)(timeout_s > 0 ? 2 * timeout_s : 300) * RATELIMIT_S;
    long hard_ms = timeout_s > 0 ? (2L * timeout_s + 30) * 1000 : 0;
    if (!setup_handle(c, ws.h, url, headers, hard_ms, errbuf) ||
        curl_easy_setopt(ws.h, CURLOPT_WRITEFUNCTION, on_watch_data) ||
        curl_easy_setopt(ws.h, CURLOPT_WRITEDATA, &ws) ||
        curl_easy_setopt(ws.h, CURLOPT_HTTPGET, 1L) ||
        curl_easy_setopt(ws.h, CURLOPT_ACCEPT_ENCODING, (char *)NULL) ||
        curl_multi_add_handle(m, ws.h)) {
        rc = cerr_set(CERR_ERROR, "WATCH %.300s: cannot set up the request", p.s);
        goto cleanup;
    }
    added = true;
    uint64_t t0 = ratelimit_now();
    ws.last_data = t0;
    int running = 1;
    while (running) {
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            rc = cerr_set(CERR_IO, "WATCH %.300s: %s", p.s, curl_multi_strerror(mc));
            break;
        }
        if (!running) break;
        if (stop && atomic_load(stop)) {
            rc = cerr_set(CERR_SHUTDOWN, "WATCH %.300s: stopped", p.s);
            break;
        }
        if (ratelimit_now() - ws.last_data > idle_limit) {
            rc =
                cerr_set(CERR_TIMEOUT, "WATCH %.300s: no data for %llu s, connection presumed dead",
                         p.s, (unsigned long long)(idle_limit / RATELIMIT_S));
            set_reason("Timeout");
            break;
        }
        curl_multi_poll(m, NULL, 0, WATCH_POLL_MS, NULL);
    }
    CURLcode cc = CURLE_OK;
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &left)))
        if (msg->msg == CURLMSG_DONE) cc = msg->data.result;
    long code = 0;
    curl_easy_getinfo(ws.h, CURLINFO_RESPONSE_CODE, &code);
    if (c->observe)
        c->observe(c->observe_ctx, "WATCH", (int)code, (double)(ratelimit_now() - t0) / 1e9);
    if (rc) goto cleanup; /* stop, idle, multi failure */
    if (ws.rc) {
        rc = ws.rc; /* the callback's value, or an ERROR event's code (message set) */
        goto cleanup;
    }
    if (cc != CURLE_OK) {
        /* A cut stream: the partial last line is dropped, never decoded. */
        rc = cerr_set(cc == CURLE_OPERATION_TIMEDOUT ? CERR_TIMEOUT : CERR_IO, "WATCH %s%.300s: %s",
                      c->server, p.s, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        set_reason(cc == CURLE_OPERATION_TIMEDOUT ? "Timeout" : "ConnectionFailed");
        goto cleanup;
    }
    if (code != 200) {
        rc = http_error("WATCH", p.s, code, ws.err.data, ws.err.len);
        goto cleanup;
    }
    rc = watch_finish(ws.split);
cleanup:
    if (added) curl_multi_remove_handle(m, ws.h);
    if (m) curl_multi_cleanup(m);
    if (ws.h) curl_easy_cleanup(ws.h);
    curl_slist_free_all(headers);
    watch_free(ws.split);
    cmem_free(ws.err.data);
    cmem_free(url);
    cmem_free(p.s);
    return rc;
}
