/*
 * selfpod.c - the user's imageID from the worker's own pod (selfpod.h).
 *
 * One GET per poll with libcurl (the token and CA files are read once);
 * the answer is capped at SELFPOD_BODY_MAX and parsed with cJSON.
 */
#include "selfpod.h"

#include "err.h"
#include "log.h"
#include "mem.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOKEN_MAX 16384

#define FAIL(...) err_set(ERR_TRANSIENT, ERR_POD_STATUS, NULL, __VA_ARGS__)

int selfpod_parse(const char *body, size_t n, const char *container, char *out, size_t cap)
{
    cJSON *pod = cJSON_ParseWithLength(body, n);
    int rc = -1;
    if (!cJSON_IsObject(pod)) {
        FAIL("the pod from the Kubernetes API is not a JSON object");
        goto cleanup;
    }
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(pod, "status");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(status, "initContainerStatuses");
    const cJSON *cs;
    rc = 0;
    if (!cJSON_IsArray(list)) goto cleanup; /* no status yet */
    cJSON_ArrayForEach(cs, list)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(cs, "name");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(cs, "imageID");
        if (!cJSON_IsString(name) || strcmp(name->valuestring, container) != 0) continue;
        if (!cJSON_IsString(id) || !id->valuestring[0]) break;
        size_t len = strlen(id->valuestring);
        if (len > SELFPOD_IMAGE_ID_MAX || len >= cap) {
            rc = FAIL("the pod's imageID of container %s is longer than %d bytes", container,
                      SELFPOD_IMAGE_ID_MAX);
            break;
        }
        memcpy(out, id->valuestring, len + 1);
        rc = 1;
        break;
    }
cleanup:
    cJSON_Delete(pod);
    return rc;
}

typedef struct {
    char *buf;
    size_t len;
    bool too_big;
} body;

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    body *b = arg;
    size_t len = size * n;
    if (b->len + len > SELFPOD_BODY_MAX) {
        b->too_big = true;
        return 0;
    }
    char *nb = mem_realloc(b->buf, b->len + len + 1);
    if (!nb) return 0;
    memcpy(nb + b->len, data, len);
    b->buf = nb;
    b->len += len;
    nb[b->len] = '\0';
    return len;
}

/* The token file's one line (a JWT has no newline), at most TOKEN_MAX
 * bytes; a longer file, a second line or a control character (the token goes
 * into a request header) is refused, never cut. */
static char *read_token(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        FAIL("cannot read the service account token %s: %s", path, strerror(errno));
        return NULL;
    }
    char *t = mem_malloc(TOKEN_MAX + 2);
    size_t n = t ? fread(t, 1, TOKEN_MAX + 1, f) : 0;
    fclose(f);
    if (!t) {
        err_oom();
        return NULL;
    }
    if (n > TOKEN_MAX) {
        mem_free(t);
        FAIL("the service account token %s is over %d bytes", path, TOKEN_MAX);
        return NULL;
    }
    t[n] = '\0';
    const char *why = memchr(t, '\0', n) ? "a NUL byte" : NULL;
    size_t len = strcspn(t, "\r\n");
    for (size_t i = len; !why && i < n; i++) /* after its line: blank lines only */
        if (!strchr("\r\n \t", t[i])) why = "more than one line";
    for (size_t i = 0; !why && i < len; i++) /* it goes into a request header */
        if ((unsigned char)t[i] <= ' ' || t[i] == 0x7f) why = "a control character or space";
    if (why) {
        mem_free(t);
        FAIL("the service account token %s has %s", path, why);
        return NULL;
    }
    t[len] = '\0';
    if (!t[0]) {
        mem_free(t);
        FAIL("the service account token %s is empty", path);
        return NULL;
    }
    return t;
}

/* One GET of url: 1/0/-1 as selfpod_parse, or -1 for an HTTP failure. */
static int get_once(const char *url, const char *auth, const char *ca, const char *container,
                    char *out, size_t cap)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL, *h2 = NULL;
    body b = {0};
    char ebuf[CURL_ERROR_SIZE] = "";
    int rc = -1;
    if (!c || !(hdrs = curl_slist_append(NULL, auth)) ||
        !(h2 = curl_slist_append(hdrs, "Accept: application/json"))) {
        err_oom();
        goto cleanup;
    }
    hdrs = h2;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    if (ca && *ca) curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "terrane-worker/" TERRANE_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (b.too_big) {
        FAIL("the pod from the Kubernetes API is over %u bytes", SELFPOD_BODY_MAX);
    } else if (cc != CURLE_OK) {
        FAIL("reading its own pod from the Kubernetes API: %s",
             ebuf[0] ? ebuf : curl_easy_strerror(cc));
    } else if (status != 200) {
        FAIL("reading its own pod from the Kubernetes API: HTTP %ld (%s)", status,
             status == 401 || status == 403
                 ? "the worker's ServiceAccount needs get on pods in its namespace"
                 : "see the API server");
    } else {
        rc = selfpod_parse(b.buf ? b.buf : "", b.len, container, out, cap);
    }
cleanup:
    curl_slist_free_all(hdrs);
    if (c) curl_easy_cleanup(c);
    mem_free(b.buf);
    return rc;
}

int selfpod_image_id(const char *container, char *out, size_t cap)
{
    const char *name = getenv(SELFPOD_ENV_NAME), *ns = getenv(SELFPOD_ENV_NAMESPACE);
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    const char *token_file = getenv(SELFPOD_ENV_TOKEN), *ca = getenv(SELFPOD_ENV_CA);
    if (!name || !*name) return 0;
    if (!host || !*host || !port || !*port) { /* every kubelet sets both */
        log_kv(LOG_WARN,
               "no KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT: the manifest cannot record "
               "the user's imageID",
               (const char *)NULL);
        return 0;
    }
    if (!ns || !*ns || !host || !*host || !port || !*port || !token_file || !*token_file)
        return FAIL("its own pod: %s is set but not all of %s, KUBERNETES_SERVICE_HOST, "
                    "KUBERNETES_SERVICE_PORT and %s",
                    SELFPOD_ENV_NAME, SELFPOD_ENV_NAMESPACE, SELFPOD_ENV_TOKEN);
    char *token = read_token(token_file), *auth = NULL, *url = NULL;
    int rc = -1;
    if (!token) return -1;
    bool v6 = strchr(host, ':') != NULL;
    auth = mem_printf("Authorization: Bearer %s", token);
    url = mem_printf("https://%s%s%s:%s/api/v1/namespaces/%s/pods/%s", v6 ? "[" : "", host,
                     v6 ? "]" : "", port, ns, name);
    if (!auth || !url) {
        err_oom();
        goto cleanup;
    }
    for (int waited = 0;; waited += SELFPOD_POLL_MS) {
        rc = get_once(url, auth, ca, container, out, cap);
        if (rc != 0) break;
        if (waited >= SELFPOD_WAIT_MS) {
            rc = FAIL("its own pod reports no imageID for container %s after %d ms", container,
                      SELFPOD_WAIT_MS);
            break;
        }
        struct timespec ts = {0, SELFPOD_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == 1) log_kv(LOG_INFO, "the user's image digest", "imageID", out, (const char *)NULL);
cleanup:
    mem_free(token);
    mem_free(auth);
    mem_free(url);
    return rc;
}
