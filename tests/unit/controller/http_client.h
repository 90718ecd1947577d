/*
 * http_client.h - HTTP requests with libcurl for the unit tests of the
 * controller's servers (test_httpd.c, test_uiserver.c): one request, its
 * status, headers and body collected in memory.
 */
#ifndef TEST_HTTP_CLIENT_H
#define TEST_HTTP_CLIENT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t len;
} text;

typedef struct {
    long status;
    text body, headers;
    CURLcode rc;
} reply;

static inline size_t collect(char *data, size_t size, size_t n, void *ud)
{
    text *t = ud;
    size_t add = size * n;
    char *p = realloc(t->p, t->len + add + 1);
    if (!p) return 0;
    memcpy(p + t->len, data, add);
    t->p = p;
    t->len += add;
    t->p[t->len] = '\0';
    return add;
}

static inline void reply_free(reply *r)
{
    free(r->body.p);
    free(r->headers.p);
    memset(r, 0, sizeof *r);
}

/* One request on h (reused for keep-alive when given), else a new handle. */
static inline reply request_on(CURL *h, const char *method, int port, const char *path,
                               struct curl_slist *extra)
{
    reply r = {0};
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    bool own = !h;
    if (own) h = curl_easy_init();
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r.headers);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (extra) curl_easy_setopt(h, CURLOPT_HTTPHEADER, extra);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (!strcmp(method, "POST"))
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "x=1");
    else if (strcmp(method, "GET"))
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    r.rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    if (own) curl_easy_cleanup(h);
    return r;
}

static inline reply request(const char *method, int port, const char *path)
{
    return request_on(NULL, method, port, path, NULL);
}

#endif
