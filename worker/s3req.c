/*
 * s3req.c - signed S3 metadata requests and https HEAD over libcurl.
 *
 * Every request is built, signed and sent here; the callers (observe.c,
 * srccheck.c) only read status, headers and the capped body. The SigV4
 * canonical request follows the AWS reference ("Signature Calculations for
 * the Authorization Header"): method, encoded path, sorted query, the signed
 * headers lowercase and sorted, and the hex SHA-256 of the (empty) payload.
 */
#include "s3req.h"

#include "err.h"
#include "input.h"
#include "log.h"
#include "mem.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

char *s3req_uri_encode(const char *s, bool keep_slash)
{
    size_t n = strlen(s);
    char *out = mem_malloc(3 * n + 1), *p = out;
    if (!out) return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/'))
            *p++ = (char)c;
        else
            p += sprintf(p, "%%%02X", c);
    }
    *p = '\0';
    return out;
}

static void hmac(const void *key, size_t key_len, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out, &len);
}

int s3req_sign(const char *method, const char *host, const char *path, const char *query,
               const char *amz_date, const char *region, const char *key_id, const char *secret,
               const char *token, char *out, size_t cap)
{
    char date[9], creq_hash[65], sig_hex[65], scope[128];
    unsigned char digest[32], k[32];
    char *creq = NULL, *sts = NULL, *kdate = NULL;
    int rc = -1;
    const char *signed_headers = token ? "host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
                                       : "host;x-amz-content-sha256;x-amz-date";

    memcpy(date, amz_date, 8);
    date[8] = '\0';
    snprintf(scope, sizeof scope, "%s/%s/s3/aws4_request", date, region);
    creq = token ? mem_printf("%s\n%s\n%s\nhost:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n"
                              "x-amz-security-token:%s\n\n%s\n%s",
                              method, path, query, host, EMPTY_SHA256, amz_date, token,
                              signed_headers, EMPTY_SHA256)
                 : mem_printf("%s\n%s\n%s\nhost:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n\n"
                              "%s\n%s",
                              method, path, query, host, EMPTY_SHA256, amz_date, signed_headers,
                              EMPTY_SHA256);
    if (!creq) goto cleanup;
    SHA256((const unsigned char *)creq, strlen(creq), digest);
    hex(digest, 32, creq_hash);
    sts = mem_printf("AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope, creq_hash);
    kdate = mem_printf("AWS4%s", secret);
    if (!sts || !kdate) goto cleanup;
    hmac(kdate, strlen(kdate), date, k);
    hmac(k, 32, region, k);
    hmac(k, 32, "s3", k);
    hmac(k, 32, "aws4_request", k);
    hmac(k, 32, sts, digest);
    hex(digest, 32, sig_hex);
    int n = snprintf(out, cap, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                     key_id, scope, signed_headers, sig_hex);
    rc = n > 0 && (size_t)n < cap ? 0 : -1;
cleanup:
    if (kdate) {
        memset(kdate, 0, strlen(kdate));
        mem_free(kdate);
    }
    mem_free(creq);
    mem_free(sts);
    return rc;
}

/* Copies value (trimmed) into dst of cap bytes. */
static void set_header(char *dst, size_t cap, const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

void s3req_parse_header(const char *line, size_t len, s3req_resp *r)
{
    const char *colon = memchr(line, ':', len);
    if (!colon) return;
    size_t name_len = (size_t)(colon - line), vlen = len - name_len - 1;
    const char *v = colon + 1;
#define IS(name) (name_len == sizeof(name) - 1 && !strncasecmp(line, name, name_len))
    if (IS("etag")) {
        set_header(r->etag, sizeof r->etag, v, vlen);
    } else if (IS("x-amz-version-id")) {
        set_header(r->version_id, sizeof r->version_id, v, vlen);
        /* S3 sends "null" for objects written while versioning was off. */
        if (!strcmp(r->version_id, "null")) r->version_id[0] = '\0';
    } else if (IS("last-modified")) {
        set_header(r->last_modified, sizeof r->last_modified, v, vlen);
    } else if (IS("content-type")) {
        set_header(r->content_type, sizeof r->content_type, v, vlen);
    } else if (IS("content-length")) {
        char num[32];
        set_header(num, sizeof num, v, vlen);
        char *end = NULL;
        unsigned long long x = strtoull(num, &end, 10);
        if (num[0] >= '0' && num[0] <= '9' && end && *end == '\0') {
            r->content_length = x;
            r->has_length = true;
        }
    }
#undef IS
}

void s3req_resp_free(s3req_resp *r)
{
    if (!r) return;
    mem_free(r->body);
    memset(r, 0, sizeof *r);
}

typedef struct xfer {
    s3req_resp *resp;
    size_t cap;
    bool too_big;
} xfer;

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    xfer *x = arg;
    size_t len = size * n;
    if (len >= 5 && !strncmp(data, "HTTP/", 5)) {
        /* A new response (after 100 Continue): forget the previous headers. */
        char *body = x->resp->body;
        size_t blen = x->resp->body_len;
        memset(x->resp, 0, sizeof *x->resp);
        x->resp->body = body;
        x->resp->body_len = blen;
    } else {
        s3req_parse_header(data, len, x->resp);
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    xfer *x = arg;
    s3req_resp *r = x->resp;
    size_t len = size * n;
    if (r->body_len + len > x->cap) {
        x->too_big = true;
        return 0;
    }
    char *nb = mem_realloc(r->body, r->body_len + len + 1);
    if (!nb) return 0;
    memcpy(nb + r->body_len, data, len);
    r->body = nb;
    r->body_len += len;
    nb[r->body_len] = '\0';
    return len;
}

/* Refuses sockets to link-local and metadata addresses (https sources only:
 * a DNS name can point anywhere, and this is the address actually used). */
static curl_socket_t open_checked(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    bool *blocked = arg;
    (void)purpose;
    if (input_addr_forbidden(&a->addr)) {
        *blocked = true;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static bool retryable(long status, CURLcode cc)
{
    if (cc != CURLE_OK)
        return cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT ||
               cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR || cc == CURLE_GOT_NOTHING ||
               cc == CURLE_PARTIAL_FILE || cc == CURLE_COULDNT_RESOLVE_HOST;
    return status == 429 || status >= 500;
}

typedef struct request {
    const char *method; /* "GET" or "HEAD" */
    const char *url;
    const char *host; /* signed Host header; NULL: unsigned request */
    const char *path; /* encoded, for signing */
    const char *query;
    const char *region;
    bool guard_addresses;
    const char *field; /* the task field errors name, or NULL */
} request;

static int send_request(const request *rq, s3req_resp *out)
{
    CURL *c = NULL;
    struct curl_slist *hdrs = NULL;
    int rc = -1;
    int max_retry = atoi(CPLGetConfigOption("GDAL_HTTP_MAX_RETRY", "3"));
    double delay = CPLAtof(CPLGetConfigOption("GDAL_HTTP_RETRY_DELAY", "1"));
    long timeout = atol(CPLGetConfigOption("GDAL_HTTP_TIMEOUT", "60"));
    const char *key_id = CPLGetConfigOption("AWS_ACCESS_KEY_ID", NULL);
    const char *secret = CPLGetConfigOption("AWS_SECRET_ACCESS_KEY", NULL);
    const char *token = CPLGetConfigOption("AWS_SESSION_TOKEN", NULL);
    bool no_sign = CPLTestBool(CPLGetConfigOption("AWS_NO_SIGN_REQUEST", "NO"));
    if (token && !token[0]) token = NULL;

    memset(out, 0, sizeof *out);
    if (rq->host && !no_sign && (!key_id || !key_id[0] || !secret))
        return err_set(ERR_TRANSIENT, ERR_CREDENTIALS, rq->field,
                       "no S3 credentials for %s: set AWS_ACCESS_KEY_ID and "
                       "AWS_SECRET_ACCESS_KEY, configure IRSA or EKS Pod Identity, or set "
                       "AWS_NO_SIGN_REQUEST=YES for public buckets",
                       rq->url);
    for (int attempt = 0;; attempt++) {
        char amz_date[20], auth[512];
        time_t now = time(NULL);
        struct tm tm;
        xfer x = {.resp = out, .cap = S3REQ_BODY_MAX};

        s3req_resp_free(out);
        curl_slist_free_all(hdrs);
        hdrs = NULL;
        if (c) curl_easy_cleanup(c);
        if (!(c = curl_easy_init())) return err_oom();
        if (rq->host && !no_sign) {
            gmtime_r(&now, &tm);
            strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
            if (s3req_sign(rq->method, rq->host, rq->path, rq->query, amz_date, rq->region, key_id,
                           secret, token, auth, sizeof auth) < 0) {
                err_set(ERR_INTERNAL, ERR_CREDENTIALS, rq->field, "S3 credentials are too long");
                goto cleanup;
            }
            struct curl_slist *t;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        char *h_ = mem_printf(__VA_ARGS__);                                                        \
        t = h_ ? curl_slist_append(hdrs, h_) : NULL;                                               \
        mem_free(h_);                                                                              \
        if (!t) {                                                                                  \
            err_oom();                                                                             \
            goto cleanup;                                                                          \
        }                                                                                          \
        hdrs = t;                                                                                  \
    } while (0)
            ADD("Host: %s", rq->host);
            ADD("x-amz-date: %s", amz_date);
            ADD("x-amz-content-sha256: %s", EMPTY_SHA256);
            if (token) ADD("x-amz-security-token: %s", token);
            ADD("Authorization: %s", auth);
#undef ADD
        }
        curl_easy_setopt(c, CURLOPT_URL, rq->url);
        /* The CA bundle GDAL is told to use, in GDAL's order (also for /vsicurl/). */
        const char *ca = CPLGetConfigOption("CURL_CA_BUNDLE", NULL);
        if (!ca || !*ca) ca = CPLGetConfigOption("SSL_CERT_FILE", NULL);
        if (ca && *ca) curl_easy_setopt(c, CURLOPT_CAINFO, ca);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout > 0 ? timeout : 60L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "terrane-worker/" TERRANE_VERSION);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
        if (!strcmp(rq->method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        bool blocked = false;
        if (rq->guard_addresses) {
            curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_checked);
            curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &blocked);
        }
        char ebuf[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);

        CURLcode cc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        out->status = cc == CURLE_OK ? status : 0;
        if (x.too_big) {
            err_set(ERR_TRANSIENT, ERR_S3_SERVER, rq->field,
                    "%s: response body over the %d-byte limit", rq->url, S3REQ_BODY_MAX);
            goto cleanup;
        }
        if (blocked) {
            err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, rq->field,
                    "%s resolves to a link-local or metadata address", rq->url);
            goto cleanup;
        }
        if (cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL) {
            err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, rq->field, "%s: %s", rq->url,
                    ebuf[0] ? ebuf : curl_easy_strerror(cc));
            goto cleanup;
        }
        if (cc != CURLE_OK)
            snprintf(out->error, sizeof out->error, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
        if (!retryable(out->status, cc) || attempt >= max_retry) {
            if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && out->status)) {
                err_set(ERR_TRANSIENT, ERR_S3_SERVER, rq->field, "%s %s: %s (after %d attempts)",
                        rq->method, rq->url, out->error, attempt + 1);
                goto cleanup;
            }
            break;
        }
        log_kv(LOG_WARN, "retrying request", "url", rq->url, "error",
               out->error[0] ? out->error : "server error", (const char *)NULL);
        useconds_t us = (useconds_t)(delay * 1e6 * (double)(1u << (attempt < 10 ? attempt : 10)));
        if (us) usleep(us);
    }
    rc = 0;
cleanup:
    curl_slist_free_all(hdrs);
    if (c) curl_easy_cleanup(c);
    return rc;
}

/* Endpoint, scheme and addressing style as GDAL's /vsis3/ picks them. */
typedef struct s3_target {
    char host[320];
    char path[4096];
    char url[8192];
    char region[64];
} s3_target;

static int s3_locate(const char *bucket, const char *key, const char *query, const char *field,
                     s3_target *t)
{
    const char *region = CPLGetConfigOption("AWS_REGION", NULL);
    if (!region || !region[0]) region = CPLGetConfigOption("AWS_DEFAULT_REGION", "us-east-1");
    const char *endpoint = CPLGetConfigOption("AWS_S3_ENDPOINT", NULL);
    char dflt[128];
    if (!endpoint || !endpoint[0]) {
        if (!strcmp(region, "us-east-1"))
            snprintf(dflt, sizeof dflt, "s3.amazonaws.com");
        else
            snprintf(dflt, sizeof dflt, "s3.%s.amazonaws.com", region);
        endpoint = dflt;
    }
    /* GDAL accepts the endpoint with or without a scheme. */
    bool https = CPLTestBool(CPLGetConfigOption("AWS_HTTPS", "YES"));
    if (!strncmp(endpoint, "https://", 8))
        endpoint += 8, https = true;
    else if (!strncmp(endpoint, "http://", 7))
        endpoint += 7, https = false;
    size_t elen = strcspn(endpoint, "/");
    bool virt =
        CPLTestBool(CPLGetConfigOption("AWS_VIRTUAL_HOSTING", "TRUE")) && !strchr(bucket, '.');
    char *ekey = s3req_uri_encode(key, true);
    if (!ekey) return err_oom();
    int n1 = virt ? snprintf(t->host, sizeof t->host, "%s.%.*s", bucket, (int)elen, endpoint)
                  : snprintf(t->host, sizeof t->host, "%.*s", (int)elen, endpoint);
    int n2 = virt ? snprintf(t->path, sizeof t->path, "/%s", ekey)
                  : snprintf(t->path, sizeof t->path, "/%s/%s", bucket, ekey);
    mem_free(ekey);
    snprintf(t->region, sizeof t->region, "%s", region);
    int n3 = snprintf(t->url, sizeof t->url, "%s://%s%s%s%s", https ? "https" : "http", t->host,
                      t->path, query[0] ? "?" : "", query);
    if (n1 < 0 || (size_t)n1 >= sizeof t->host || n2 < 0 || (size_t)n2 >= sizeof t->path ||
        n3 < 0 || (size_t)n3 >= sizeof t->url)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field, "s3://%s/%.80s: too long",
                       bucket, key);
    return 0;
}

int s3req_head_object(const char *bucket, const char *key, const char *field, s3req_resp *out)
{
    s3_target t;
    memset(out, 0, sizeof *out);
    if (s3_locate(bucket, key, "", field, &t) < 0) return -1;
    request rq = {.method = "HEAD",
                  .url = t.url,
                  .host = t.host,
                  .path = t.path,
                  .query = "",
                  .region = t.region,
                  .field = field};
    return send_request(&rq, out);
}

int s3req_list_page(const char *bucket, const char *prefix, const char *delimiter,
                    const char *token, const char *field, s3req_resp *out)
{
    char *etok = NULL, *epre = NULL, *edel = NULL, *query = NULL;
    int rc = -1;
    s3_target t;
    memset(out, 0, sizeof *out);
    etok = s3req_uri_encode(token ? token : "", false);
    epre = s3req_uri_encode(prefix, false);
    edel = s3req_uri_encode(delimiter, false);
    if (!etok || !epre || !edel) {
        err_oom();
        goto cleanup;
    }
    /* Canonical order: parameter names sorted. */
    query = mem_printf("%s%s%s%s%s%slist-type=2%s%s", token ? "continuation-token=" : "",
                       token ? etok : "", token ? "&" : "", delimiter[0] ? "delimiter=" : "",
                       delimiter[0] ? edel : "", delimiter[0] ? "&" : "",
                       prefix[0] ? "&prefix=" : "", prefix[0] ? epre : "");
    if (!query) {
        err_oom();
        goto cleanup;
    }
    /* The bucket itself: path "/" (virtual) or "/bucket/" (path style). */
    if (s3_locate(bucket, "", query, field, &t) < 0) goto cleanup;
    request rq = {.method = "GET",
                  .url = t.url,
                  .host = t.host,
                  .path = t.path,
                  .query = query,
                  .region = t.region,
                  .field = field};
    rc = send_request(&rq, out);
cleanup:
    mem_free(etok);
    mem_free(epre);
    mem_free(edel);
    mem_free(query);
    return rc;
}

int s3req_head_url(const char *url, const char *field, s3req_resp *out)
{
    memset(out, 0, sizeof *out);
    request rq = {.method = "HEAD", .url = url, .guard_addresses = true, .field = field};
    return send_request(&rq, out);
}
