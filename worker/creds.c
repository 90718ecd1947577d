/*
 * creds.c - IRSA and EKS Pod Identity credentials for GDAL (creds.h).
 *
 * creds_start runs on the main thread before any S3 access: it picks the
 * source, checks its endpoint URI, fetches credentials (retrying 5xx and
 * connection failures with backoff; the token file is read again for every
 * fetch) and sets them as GDAL config options. If they carry an
 * Expiration, one background thread wakes up ahead of it, fetches again and
 * replaces them; creds_stop wakes it and joins it.
 *
 * How GDAL 3.6 picks the new values up: with AWS_SECRET_ACCESS_KEY set as a
 * config option, /vsis3/ uses "regular" credentials, which it reads with
 * CPLGetConfigOption each time it creates an S3 handle helper, i.e. for
 * every new file handle, stat or delete. So no cache needs clearing
 * (VSICurlClearCache would only drop the main thread's block and stat
 * caches under its feet). A handle that is already open (an input dataset,
 * an upload in progress) keeps the keys it started with; refreshing at
 * least 5 minutes (or 20% of the lifetime) before expiry leaves those that
 * much time to finish.
 *
 * Thread-safety: CPLSetConfigOption is process-global and takes GDAL's
 * config mutex; it frees only the replaced value, and GDAL copies the AWS_*
 * values into its own strings as soon as it reads them. CPLSetConfigOptions
 * (the whole list at once) is avoided on purpose: it frees every option
 * string, including ones another thread may be holding. The three keys are
 * set one after another, so a handle created in that instant may see a
 * mixed pair and fail once with a 403; that request's task is retried.
 * Errors in the refresher land in its own thread's err.h slot and are
 * logged, never reported as the task's result. Secrets are never logged.
 */
#include "creds.h"

#include "err.h"
#include "log.h"
#include "mem.h"
#include "sts.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <cpl_conv.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define ENV_FULL_URI "AWS_CONTAINER_CREDENTIALS_FULL_URI"
#define ENV_TOKEN_FILE "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
#define ENV_TOKEN "AWS_CONTAINER_AUTHORIZATION_TOKEN"
#define ENV_ROLE_ARN "AWS_ROLE_ARN"
#define ENV_WEB_TOKEN_FILE "AWS_WEB_IDENTITY_TOKEN_FILE"
#define ENV_STS_ENDPOINT "AWS_ENDPOINT_URL_STS"

#define BODY_MAX (64 * 1024)  /* a credentials document is well under 8 KiB */
#define TOKEN_MAX (16 * 1024) /* projected service-account tokens are ~1 KiB */
#define CONNECT_TIMEOUT_MS 2000L
#define TOTAL_TIMEOUT_MS 5000L
#define START_ATTEMPTS 4       /* creds_start: waits 0.5, 1, 2 s between */
#define REFRESH_BACKOFF_MAX 60 /* seconds between failed refreshes, at most */

/* fetch_once: failed in a way worth retrying. */
#define FETCH_RETRY (-2)

/* ---- parsing and rules (pure) ------------------------------------------ */

void creds_wipe(creds_set *c)
{
    if (c) explicit_bzero(c, sizeof *c);
}

static bool parse_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9') return false;
        v = v * 10 + (ch - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char a, char b)
{
    if (**p != a && **p != b) return false;
    (*p)++;
    return true;
}

int creds_parse_time(const char *s, time_t *out)
{
    const char *p = s;
    int Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0;
    if (!s || !parse_digits(&p, 4, &Y) || !expect(&p, '-', '-') || !parse_digits(&p, 2, &M) ||
        !expect(&p, '-', '-') || !parse_digits(&p, 2, &D) || !expect(&p, 'T', 't') ||
        !parse_digits(&p, 2, &h) || !expect(&p, ':', ':') || !parse_digits(&p, 2, &m) ||
        !expect(&p, ':', ':') || !parse_digits(&p, 2, &sec))
        goto bad;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') goto bad;
        while (*p >= '0' && *p <= '9')
            p++; /* sub-second precision is not needed */
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (!parse_digits(&p, 2, &oh) || !expect(&p, ':', ':') || !parse_digits(&p, 2, &om) ||
            oh > 23 || om > 59)
            goto bad;
    } else {
        goto bad;
    }
    if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) goto bad;
    struct tm tm = {.tm_year = Y - 1900,
                    .tm_mon = M - 1,
                    .tm_mday = D,
                    .tm_hour = h,
                    .tm_min = m,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1) goto bad;
    *out = t - sign * (oh * 3600 + om * 60);
    return 0;
bad:
    return err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "invalid RFC 3339 time \"%.40s\"",
                   s ? s : "");
}

/* Copies the string member key into dst; errors name the member. */
static int copy_member(const cJSON *o, const char *key, bool required, char *dst, size_t cap,
                       const char *from)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    dst[0] = '\0';
    if (!v || cJSON_IsNull(v)) {
        if (!required) return 0;
        return err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "credentials from %s: %s is missing",
                       from, key);
    }
    if (!cJSON_IsString(v) || (required && !v->valuestring[0]))
        return err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL,
                       "credentials from %s: %s is not a non-empty string", from, key);
    size_t n = strlen(v->valuestring);
    if (n >= cap)
        return err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL,
                       "credentials from %s: %s is longer than %zu bytes", from, key, cap - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v->valuestring[i] < 0x20 || v->valuestring[i] == 0x7f)
            return err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL,
                           "credentials from %s: %s contains control characters", from, key);
    memcpy(dst, v->valuestring, n + 1);
    return 0;
}

int creds_parse(const char *json, size_t len, const char *from, creds_set *out)
{
    int rc = -1;
    char exp[64];
    cJSON *doc = NULL;
    memset(out, 0, sizeof *out);

    doc = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(doc)) {
        err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL,
                "credentials from %s: the response is not a JSON object", from);
        goto cleanup;
    }
    if (copy_member(doc, "AccessKeyId", true, out->access_key_id, sizeof out->access_key_id, from) <
            0 ||
        copy_member(doc, "SecretAccessKey", true, out->secret_access_key,
                    sizeof out->secret_access_key, from) < 0 ||
        copy_member(doc, "Token", false, out->session_token, sizeof out->session_token, from) < 0 ||
        copy_member(doc, "Expiration", false, exp, sizeof exp, from) < 0)
        goto cleanup;
    if (exp[0] && creds_parse_time(exp, &out->expiration) < 0) {
        err_prefix("credentials from %s: Expiration", from);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (rc < 0) creds_wipe(out);
    /* The parsed tree holds the secret too; blank it before it is freed. */
    for (const char *const *k = (const char *const[]){"SecretAccessKey", "Token", NULL}; *k; k++) {
        cJSON *v = doc ? cJSON_GetObjectItemCaseSensitive(doc, *k) : NULL;
        if (v && cJSON_IsString(v)) explicit_bzero(v->valuestring, strlen(v->valuestring));
    }
    cJSON_Delete(doc);
    return rc;
}

time_t creds_refresh_at(time_t fetched, time_t expiration)
{
    if (expiration <= 0) return 0;
    time_t life = expiration - fetched;
    time_t at = fetched + life * 8 / 10;
    if (expiration - 300 < at) at = expiration - 300;
    /* Short-lived credentials: "5 minutes before" would be in the past. */
    if (at < fetched + life / 2) at = fetched + life / 2;
    if (at < fetched + 1) at = fetched + 1;
    return at;
}

static bool host_allowed_for_http(const char *host, bool agent)
{
    unsigned char a[16];
    if (!strcasecmp(host, "localhost")) return true;
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127 ||
               (agent && (!strcmp(host, "169.254.170.23") || !strcmp(host, "169.254.170.2")));
    size_t n = strlen(host);
    if (n > 2 && host[0] == '[' && host[n - 1] == ']' && n < 64) {
        char inner[64];
        unsigned char want[16];
        memcpy(inner, host + 1, n - 2);
        inner[n - 2] = '\0';
        if (inet_pton(AF_INET6, inner, a) != 1) return false;
        inet_pton(AF_INET6, "::1", want);
        if (!memcmp(a, want, 16)) return true;
        inet_pton(AF_INET6, "fd00:ec2::23", want);
        return agent && !memcmp(a, want, 16);
    }
    return false;
}

/* https:// anywhere; http:// only to loopback, and to the node-local
 * agent's addresses when agent is set. env names the variable in errors. */
static int check_uri(const char *uri, const char *env, bool agent)
{
    int rc = -1;
    char *scheme = NULL, *host = NULL, *user = NULL;
    CURLU *u = curl_url();
    if (!u) return err_oom();
    if (!uri || !uri[0] || curl_url_set(u, CURLUPART_URL, uri, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        err_set(ERR_INTERNAL, ERR_CREDENTIALS, NULL, "%s is not a valid URL: \"%.200s\"", env,
                uri ? uri : "");
        goto cleanup;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK && user) {
        err_set(ERR_INTERNAL, ERR_CREDENTIALS, NULL, "%s must not carry user information", env);
        goto cleanup;
    }
    if (!strcasecmp(scheme, "https")) {
        rc = 0;
    } else if (!strcasecmp(scheme, "http") && host_allowed_for_http(host, agent)) {
        rc = 0;
    } else {
        /* The AWS SDKs' rule: credentials travel in clear text only to the
         * node-local agent or loopback, never to an arbitrary host. */
        err_set(ERR_INTERNAL, ERR_CREDENTIALS, NULL,
                "%s=%.200s is not allowed: use https://, or http:// to 127.0.0.1, localhost%s", env,
                uri, agent ? ", [::1], 169.254.170.23 or [fd00:ec2::23]" : " or [::1]");
    }
cleanup:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

int creds_check_uri(const char *uri)
{
    return check_uri(uri, ENV_FULL_URI, true);
}

static bool set(const char *name)
{
    const char *v = getenv(name);
    return v && v[0];
}

creds_source creds_chain_pick(void)
{
    if (set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY")) return CREDS_STATIC;
    if (set(ENV_ROLE_ARN) && set(ENV_WEB_TOKEN_FILE)) return CREDS_WEB_IDENTITY;
    if (set(ENV_FULL_URI)) return CREDS_POD_IDENTITY;
    return CREDS_NONE;
}

bool creds_pod_identity_configured(void)
{
    return creds_chain_pick() == CREDS_POD_IDENTITY;
}

/* ---- fetching ---------------------------------------------------------- */

/* The one source the chain picked, and its refresher. Written by
 * creds_start/creds_stop on the main thread, read by the refresher. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    pthread_t thread;
    bool started, curl_ready;
    atomic_bool stop;
    const char *name;             /* "Pod Identity", "IRSA": for logs and errors */
    int (*fetch)(creds_set *out); /* one fetch; 0, FETCH_RETRY or -1 */
    char *where;                  /* the endpoint */
    char *role_arn, *session;     /* IRSA only */
    time_t expiration, next;
} rf = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* A token from file (named by the variable file_env) or else inline_tok
 * (the variable inline_env), re-read on every fetch because the kubelet
 * rotates projected token files. *out NULL: neither is configured. */
static int read_token(const char *file_env, const char *inline_env, char **out)
{
    int rc = -1, fd = -1;
    char *buf = NULL;
    const char *file = getenv(file_env), *inline_tok = inline_env ? getenv(inline_env) : NULL;
    size_t n = 0;
    bool from_file = file && file[0];
    *out = NULL;

    if (from_file) {
        fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "cannot read %s=%s: %s", file_env, file,
                    strerror(errno));
            goto cleanup;
        }
        if (!(buf = mem_malloc(TOKEN_MAX + 2))) {
            err_oom();
            goto cleanup;
        }
        for (;;) {
            ssize_t r = read(fd, buf + n, TOKEN_MAX + 1 - n);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "cannot read %s: %s", file,
                        strerror(errno));
                goto cleanup;
            }
            if (r == 0) break;
            n += (size_t)r;
            if (n > TOKEN_MAX) {
                err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "%s is over %d bytes", file,
                        TOKEN_MAX);
                goto cleanup;
            }
        }
        buf[n] = '\0';
    } else if (inline_tok && inline_tok[0]) {
        n = strlen(inline_tok);
        if (n > TOKEN_MAX) {
            err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "%s is over %d bytes", inline_env,
                    TOKEN_MAX);
            goto cleanup;
        }
        if (!(buf = mem_strdup(inline_tok))) {
            err_oom();
            goto cleanup;
        }
    } else {
        return 0;
    }
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
            /* It becomes an HTTP header: no line breaks smuggled in. */
            err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL,
                    "the token from %s contains control characters",
                    from_file ? file_env : inline_env);
            goto cleanup;
        }
    if (n == 0) {
        err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "the token from %s%s%s is empty",
                from_file ? file_env : inline_env, from_file ? "=" : "", from_file ? file : "");
        goto cleanup;
    }
    *out = buf;
    buf = NULL;
    rc = 0;
cleanup:
    if (buf) {
        explicit_bzero(buf, n);
        mem_free(buf);
    }
    if (fd >= 0) close(fd);
    return rc;
}

typedef struct body {
    char *buf;
    size_t len;
    bool too_big;
} body;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    body *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > BODY_MAX) {
        b->too_big = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    return n;
}

/* Lets creds_stop cut a refresh short instead of waiting for timeouts. */
static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)ud, (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&rf.stop) ? 1 : 0;
}

/* A short printable excerpt of an error response, for messages. Error
 * bodies carry no secrets; success bodies are never shown. */
static void excerpt(const body *b, char *dst, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; i < b->len && j + 1 < cap && i < 160; i++) {
        unsigned char ch = (unsigned char)b->buf[i];
        dst[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : ' ';
    }
    dst[j] = '\0';
}

/* One request: GET, or POST of form when it is set. b->buf is allocated
 * here (the caller wipes and frees it), NUL-terminated on success.
 * Returns 0 with *status, FETCH_RETRY (connection failure, timeout) or -1,
 * with the error set. node_local: the endpoint is the node's agent, which
 * no environment proxy may see. */
static int http_call(const char *what, const char *uri, struct curl_slist *headers,
                     const char *form, bool node_local, body *b, long *status)
{
    int rc = -1;
    CURL *h = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    const char *ca = CPLGetConfigOption("CURL_CA_BUNDLE", NULL);

    *status = 0;
    if (!(b->buf = mem_malloc(BODY_MAX + 1)) || !(h = curl_easy_init())) {
        err_oom();
        goto cleanup;
    }
    curl_easy_setopt(h, CURLOPT_URL, uri);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (form) curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
    /* A redirect could carry the token to a host the allowlist refused. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    if (node_local) curl_easy_setopt(h, CURLOPT_PROXY, "");
    if (!ca || !*ca) ca = CPLGetConfigOption("SSL_CERT_FILE", NULL);
    if (ca && *ca) curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* called from a thread */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (cc != CURLE_OK) {
        if (b->too_big) {
            err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "%s %s: the response is over %d bytes",
                    what, uri, BODY_MAX);
            goto cleanup;
        }
        err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "%s %s: %s", what, uri,
                errbuf[0] ? errbuf : curl_easy_strerror(cc));
        rc = cc == CURLE_ABORTED_BY_CALLBACK ? -1 : FETCH_RETRY;
        goto cleanup;
    }
    b->buf[b->len] = '\0';
    rc = 0;
cleanup:
    if (h) curl_easy_cleanup(h);
    return rc;
}

static void body_free(body *b)
{
    if (b->buf) {
        explicit_bzero(b->buf, b->len);
        mem_free(b->buf);
    }
    b->buf = NULL;
}

static void secret_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        mem_free(s);
    }
}

/* One GET of the Pod Identity endpoint (rf.where). Returns 0, FETCH_RETRY
 * (transient: connection failure, timeout, 5xx, 429) or -1, with the
 * error set either way. */
static int fetch_pod_identity(creds_set *out)
{
    int rc = -1;
    struct curl_slist *headers = NULL;
    char *token = NULL, *auth = NULL;
    body b = {0};
    long status = 0;
    const char *uri = rf.where;

    if (read_token(ENV_TOKEN_FILE, ENV_TOKEN, &token) < 0) goto cleanup;
    if (!(headers = curl_slist_append(NULL, "Accept: application/json"))) {
        err_oom();
        goto cleanup;
    }
    if (token) {
        if (!(auth = mem_printf("Authorization: %s", token))) {
            err_oom();
            goto cleanup;
        }
        struct curl_slist *more = curl_slist_append(headers, auth);
        if (!more) {
            err_oom();
            goto cleanup;
        }
        headers = more;
    }
    if ((rc = http_call("GET", uri, headers, NULL, true, &b, &status)) < 0) goto cleanup;
    rc = -1;
    if (status != 200) {
        char ex[200];
        excerpt(&b, ex, sizeof ex);
        err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "GET %s: HTTP %ld%s%s%s", uri, status,
                ex[0] ? " (" : "", ex, ex[0] ? ")" : "");
        if (status == 401 || status == 403)
            err_prefix("the endpoint refused the authorization token (from %s)",
                       getenv(ENV_TOKEN_FILE) ? ENV_TOKEN_FILE : ENV_TOKEN);
        rc = (status >= 500 || status == 429) ? FETCH_RETRY : -1;
        goto cleanup;
    }
    if (creds_parse(b.buf, b.len, uri, out) < 0) goto cleanup;
    rc = 0;
cleanup:
    body_free(&b);
    secret_free(auth);
    secret_free(token);
    curl_slist_free_all(headers);
    return rc;
}

/* One AssumeRoleWithWebIdentity call to rf.where with the token file read
 * afresh. Same returns as fetch_pod_identity; STS's own Code and Message
 * are in the error when it gives them. */
static int fetch_web_identity(creds_set *out)
{
    int rc = -1;
    struct curl_slist *headers = NULL;
    char *token = NULL, *form = NULL;
    char arn[STS_ARN_MAX], code[STS_CODE_MAX], msg[STS_MESSAGE_MAX];
    body b = {0};
    long status = 0;
    const char *uri = rf.where;

    if (read_token(ENV_WEB_TOKEN_FILE, NULL, &token) < 0) goto cleanup;
    if (!token) {
        err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "%s is not set", ENV_WEB_TOKEN_FILE);
        goto cleanup;
    }
    if (!(form = sts_request_body(rf.role_arn, rf.session, token))) goto cleanup;
    headers = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    struct curl_slist *more = headers ? curl_slist_append(headers, "Accept: text/xml") : NULL;
    if (!more) {
        err_oom();
        goto cleanup;
    }
    headers = more;
    if ((rc = http_call("POST", uri, headers, form, false, &b, &status)) < 0) goto cleanup;
    rc = -1;
    if (status != 200) {
        sts_parse_error(b.buf, b.len, code, msg);
        if (code[0]) {
            err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "POST %s: HTTP %ld, STS error %s: %s",
                    uri, status, code, msg[0] ? msg : "(no message)");
        } else {
            char ex[200];
            excerpt(&b, ex, sizeof ex);
            err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "POST %s: HTTP %ld%s%s%s", uri, status,
                    ex[0] ? " (" : "", ex, ex[0] ? ")" : "");
        }
        err_prefix("AssumeRoleWithWebIdentity for %s with the token from %s=%s", rf.role_arn,
                   ENV_WEB_TOKEN_FILE, getenv(ENV_WEB_TOKEN_FILE));
        rc = sts_retryable(status, code) ? FETCH_RETRY : -1;
        goto cleanup;
    }
    if (sts_parse(b.buf, b.len, uri, out, arn) < 0) goto cleanup;
    rc = 0;
cleanup:
    body_free(&b);
    secret_free(form);
    secret_free(token);
    curl_slist_free_all(headers);
    return rc;
}

static void apply(const creds_set *c)
{
    /* "" rather than NULL: unsetting would let an AWS_SESSION_TOKEN from
     * the environment pair itself with these keys. */
    CPLSetConfigOption("AWS_SESSION_TOKEN", c->session_token);
    CPLSetConfigOption("AWS_SECRET_ACCESS_KEY", c->secret_access_key);
    CPLSetConfigOption("AWS_ACCESS_KEY_ID", c->access_key_id);
}

static void time_text(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    if (t <= 0) {
        snprintf(buf, cap, "none");
        return;
    }
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "<source> credentials <what>", the log lines of both sources. */
static void say(log_level lvl, const char *what, const char *k, const char *v)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%s credentials %s", rf.name, what);
    if (rf.role_arn)
        log_kv(lvl, msg, "endpoint", rf.where, "roleArn", rf.role_arn, k, v, (const char *)NULL);
    else
        log_kv(lvl, msg, "endpoint", rf.where, k, v, (const char *)NULL);
}

/* Waits until wall-clock time `when` (0: until stopped). True if stopped. */
static bool wait_until(time_t when)
{
    struct timespec deadline;
    bool stopped;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    time_t delay = when ? when - time(NULL) : 365 * 24 * 3600;
    deadline.tv_sec += delay > 0 ? delay : 0;
    pthread_mutex_lock(&rf.mu);
    while (!atomic_load(&rf.stop))
        if (pthread_cond_timedwait(&rf.cv, &rf.mu, &deadline) == ETIMEDOUT) break;
    stopped = atomic_load(&rf.stop);
    pthread_mutex_unlock(&rf.mu);
    return stopped;
}

static void *refresh_main(void *arg)
{
    time_t next = rf.next, backoff = 1;
    bool expired_logged = false;
    char when[32];
    (void)arg;
    while (!wait_until(next)) {
        creds_set c;
        int rc = rf.fetch(&c);
        time_t now = time(NULL);
        if (rc == 0) {
            apply(&c);
            rf.expiration = c.expiration;
            next = creds_refresh_at(now, c.expiration);
            backoff = 1;
            expired_logged = false;
            time_text(c.expiration, when, sizeof when);
            say(LOG_INFO, "refreshed", "expiration", when);
        } else if (atomic_load(&rf.stop)) {
            break;
        } else {
            if (rf.expiration && now >= rf.expiration) {
                if (!expired_logged)
                    say(LOG_ERROR,
                        "expired without a refresh; S3 requests will fail until one succeeds",
                        "error", err_get_message());
                expired_logged = true;
            } else {
                say(LOG_WARN, "refresh failed, retrying", "error", err_get_message());
            }
            next = now + backoff;
            /* One try right at expiry beats a late one after it. */
            if (rf.expiration > now && next > rf.expiration) next = rf.expiration;
            backoff = backoff * 2 > REFRESH_BACKOFF_MAX ? REFRESH_BACKOFF_MAX : backoff * 2;
            err_clear();
        }
        creds_wipe(&c);
    }
    return NULL;
}

/* Sets rf's source from the environment: name, endpoint, fetch. */
static int configure(creds_source src)
{
    if (src == CREDS_POD_IDENTITY) {
        const char *uri = getenv(ENV_FULL_URI);
        if (check_uri(uri, ENV_FULL_URI, true) < 0) return -1;
        rf.name = "Pod Identity";
        rf.fetch = fetch_pod_identity;
        if (!(rf.where = mem_strdup(uri))) return err_oom();
        return 0;
    }
    char endpoint[STS_ENDPOINT_MAX];
    const char *override = getenv(ENV_STS_ENDPOINT), *session = getenv("AWS_ROLE_SESSION_NAME");
    const char *region = getenv("AWS_REGION");
    if (!region || !region[0]) region = getenv("AWS_DEFAULT_REGION");
    if (sts_endpoint(override, getenv("AWS_STS_REGIONAL_ENDPOINTS"), region, endpoint) < 0)
        return -1;
    if (check_uri(endpoint, override && override[0] ? ENV_STS_ENDPOINT : "the STS endpoint",
                  false) < 0)
        return -1;
    if (session && session[0] && !sts_session_name_ok(session))
        return err_set(ERR_INTERNAL, ERR_CREDENTIALS, NULL,
                       "AWS_ROLE_SESSION_NAME=%.80s: expected 2 to 64 of A-Z a-z 0-9 +=,.@_-",
                       session);
    rf.name = "IRSA";
    rf.fetch = fetch_web_identity;
    if (!(rf.where = mem_strdup(endpoint)) || !(rf.role_arn = mem_strdup(getenv(ENV_ROLE_ARN))))
        return err_oom();
    /* The SDKs' default: a name unique per process start, for CloudTrail. */
    rf.session = session && session[0] ? mem_strdup(session)
                                       : mem_printf("terrane-worker-%lld", (long long)time(NULL));
    if (!rf.session) return err_oom();
    return 0;
}

static void unconfigure(void)
{
    mem_free(rf.where);
    mem_free(rf.role_arn);
    mem_free(rf.session);
    rf.where = rf.role_arn = rf.session = NULL;
    rf.fetch = NULL;
}

int creds_start(void)
{
    int rc = -1;
    creds_set c;
    pthread_condattr_t ca;
    char when[32];
    creds_source src = creds_chain_pick();

    memset(&c, 0, sizeof c);
    if (rf.started || rf.fetch) return 0;
    if (src != CREDS_POD_IDENTITY && src != CREDS_WEB_IDENTITY) {
        if (src == CREDS_STATIC && (set(ENV_FULL_URI) || set(ENV_ROLE_ARN)))
            log_kv(LOG_INFO,
                   "static AWS keys in the environment take precedence over IRSA and Pod "
                   "Identity",
                   (const char *)NULL);
        return 0;
    }
    if (src == CREDS_WEB_IDENTITY && set(ENV_FULL_URI))
        log_kv(LOG_INFO, "IRSA (AWS_ROLE_ARN) takes precedence over Pod Identity, as in the SDKs",
               (const char *)NULL);
    if (configure(src) < 0) goto cleanup;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        err_set(ERR_INTERNAL, ERR_CREDENTIALS, NULL, "libcurl initialisation failed");
        goto cleanup;
    }
    rf.curl_ready = true;
    atomic_store(&rf.stop, false);

    long wait_ms = 500;
    for (int attempt = 1;; attempt++) {
        int f = rf.fetch(&c);
        if (f == 0) break;
        if (f != FETCH_RETRY || attempt == START_ATTEMPTS) {
            if (f == FETCH_RETRY) err_prefix("after %d attempts", attempt);
            err_prefix("%s credentials unavailable", rf.name);
            goto cleanup;
        }
        say(LOG_WARN, "fetch failed, retrying", "error", err_get_message());
        err_clear();
        struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        wait_ms *= 2;
    }
    apply(&c);
    time_text(c.expiration, when, sizeof when);
    say(LOG_INFO, "obtained", "expiration", when);

    if (c.expiration) {
        rf.expiration = c.expiration;
        rf.next = creds_refresh_at(time(NULL), c.expiration);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        int e = pthread_cond_init(&rf.cv, &ca);
        pthread_condattr_destroy(&ca);
        if (e == 0 && (e = pthread_create(&rf.thread, NULL, refresh_main, NULL)) != 0)
            pthread_cond_destroy(&rf.cv);
        if (e != 0) {
            err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL,
                    "cannot start the credentials refresher: %s", strerror(e));
            goto cleanup;
        }
        rf.started = true;
    }
    rc = 0;
cleanup:
    creds_wipe(&c);
    if (rc < 0) {
        unconfigure();
        if (rf.curl_ready) curl_global_cleanup();
        rf.curl_ready = false;
    }
    return rc;
}

void creds_stop(void)
{
    if (rf.started) {
        pthread_mutex_lock(&rf.mu);
        atomic_store(&rf.stop, true);
        pthread_cond_signal(&rf.cv);
        pthread_mutex_unlock(&rf.mu);
        pthread_join(rf.thread, NULL);
        pthread_cond_destroy(&rf.cv);
        rf.started = false;
    }
    unconfigure();
    if (rf.curl_ready) {
        curl_global_cleanup();
        rf.curl_ready = false;
    }
}
