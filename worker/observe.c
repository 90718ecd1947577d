/*
 * observe.c - the observe operation: HEAD or list a source, digest what is
 * there, publish the listing.
 *
 * The digest is computed over exactly the bytes of the listing file, line by
 * line as the pages arrive, so the data version can be checked by anyone
 * who reads the listing (sha256sum). Keys must arrive in strictly ascending
 * order (S3 lists in UTF-8 binary order); a server that does otherwise is
 * refused rather than digested in an order that would make the same objects
 * look like a new version.
 */
#include "observe.h"

#include "err.h"
#include "hash.h"
#include "input.h"
#include "log.h"
#include "mem.h"
#include "op.h"
#include "params.h"
#include "s3list.h"
#include "s3req.h"

#include <cpl_vsi.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_OBJECTS 1000000

/* --- URI and glob -------------------------------------------------------------------- */

static bool is_glob_char(char c)
{
    return c == '*' || c == '?' || c == '[';
}

int observe_parse_uri(const char *uri, const char *field, src_uri *out)
{
    memset(out, 0, sizeof *out);
    if (!strncmp(uri, "https://", 8)) {
        for (const char *s = uri + 8; *s; s++)
            if (is_glob_char(*s))
                return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                               "%s: a glob is only allowed in s3:// sources (https sources are "
                               "one object)",
                               field);
        out->kind = SRC_URL;
        return 0;
    }
    if (strncmp(uri, "s3://", 5) != 0)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                       "%s: a source is s3://bucket/key, s3://bucket/prefix/, "
                       "s3://bucket/prefix/*.ext or https://host/path",
                       field);
    const char *b = uri + 5, *slash = strchr(b, '/');
    if (!slash || (size_t)(slash - b) >= sizeof out->bucket || !slash[1])
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: expected s3://bucket/key",
                       field);
    memcpy(out->bucket, b, (size_t)(slash - b));
    const char *key = slash + 1;
    size_t klen = strlen(key);
    if (klen >= sizeof out->key)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: key longer than 1024 bytes",
                       field);
    const char *glob = key + strcspn(key, "*?[");
    if (!*glob) {
        memcpy(out->key, key, klen);
        out->kind = key[klen - 1] == '/' ? SRC_PREFIX : SRC_OBJECT;
        return 0;
    }
    const char *last = strrchr(key, '/');
    if (last && last > glob)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                       "%s: a glob is only allowed in the last path segment (\"%.80s\")", field,
                       key);
    out->dir_len = last ? (size_t)(last - key) + 1 : 0;
    if (klen - out->dir_len >= sizeof out->pattern)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: glob longer than 255 bytes",
                       field);
    memcpy(out->pattern, key + out->dir_len, klen - out->dir_len);
    /* List from the literal part before the first wildcard. */
    memcpy(out->key, key, (size_t)(glob - key));
    out->kind = SRC_GLOB;
    return 0;
}

/* Matches one pattern element at p against c; *next is after the element.
 * A '[' without its ']' is a literal. */
static bool elem_match(const char *p, char c, const char **next)
{
    if (*p == '?') {
        *next = p + 1;
        return c != '/';
    }
    if (*p == '[') {
        const char *q = p + 1;
        bool neg = *q == '!' || *q == '^';
        if (neg) q++;
        const char *start = q;
        bool hit = false;
        while (*q && (*q != ']' || q == start)) {
            if (q[1] == '-' && q[2] && q[2] != ']') {
                if ((unsigned char)c >= (unsigned char)q[0] &&
                    (unsigned char)c <= (unsigned char)q[2])
                    hit = true;
                q += 3;
            } else {
                if (*q == c) hit = true;
                q++;
            }
        }
        if (*q == ']') {
            *next = q + 1;
            return c != '/' && hit != neg;
        }
    }
    *next = p + 1;
    return *p == c;
}

bool observe_glob_match(const char *p, const char *s)
{
    const char *star_p = NULL, *star_s = NULL, *next;
    while (*s) {
        if (*p == '*') {
            while (*p == '*')
                p++;
            star_p = p;
            star_s = s;
            continue;
        }
        if (*p && elem_match(p, *s, &next)) {
            p = next;
            s++;
            continue;
        }
        /* Let the last '*' absorb one more byte, never a '/'. */
        if (star_p && *star_s != '/') {
            p = star_p;
            s = ++star_s;
            continue;
        }
        return false;
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

/* --- the listing ----------------------------------------------------------------------- */

typedef struct listing {
    EVP_MD_CTX *md;
    FILE *file;
    const char *uri;   /* the source, for messages */
    const char *field; /* "inputs[0].uri" */
    const src_uri *src;
    char prev_key[S3LIST_KEY_MAX + 1];
    bool have_prev;
    unsigned long long count, bytes, max_objects;
} listing;

/* Appends s as a JSON string to buf at *n (cap includes room for the NUL). */
static int json_str(char *buf, size_t cap, size_t *n, const char *s)
{
    size_t i = *n;
    if (i + 2 >= cap) return -1;
    buf[i++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (i + 7 >= cap) return -1;
        if (c == '"' || c == '\\') {
            buf[i++] = '\\';
            buf[i++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            i += (size_t)snprintf(buf + i, cap - i, "\\u%04x", c);
        } else {
            buf[i++] = (char)c;
        }
    }
    buf[i++] = '"';
    buf[i] = '\0';
    *n = i;
    return 0;
}

static int lit(char *buf, size_t cap, size_t *n, const char *s)
{
    size_t len = strlen(s);
    if (*n + len + 1 > cap) return -1;
    memcpy(buf + *n, s, len + 1);
    *n += len;
    return 0;
}

/* One listing line: {"key":...,"etag":...,"size":N[,"versionId":...]}
 * or, for https, {"url":...,"etag":...,"lastModified":...,"size":N}.
 * Field order is fixed: it is part of the data version. */
static int emit(listing *l, const char *name_field, const char *name, const char *etag,
                const char *last_modified, unsigned long long size, const char *version_id)
{
    char line[8 * S3LIST_KEY_MAX], num[32];
    size_t n = 0;
    snprintf(num, sizeof num, "%llu", size);
    if (lit(line, sizeof line, &n, "{\"") < 0 || lit(line, sizeof line, &n, name_field) < 0 ||
        lit(line, sizeof line, &n, "\":") < 0 || json_str(line, sizeof line, &n, name) < 0 ||
        lit(line, sizeof line, &n, ",\"etag\":") < 0 || json_str(line, sizeof line, &n, etag) < 0)
        goto too_long;
    if (last_modified && (lit(line, sizeof line, &n, ",\"lastModified\":") < 0 ||
                          json_str(line, sizeof line, &n, last_modified) < 0))
        goto too_long;
    if (lit(line, sizeof line, &n, ",\"size\":") < 0 || lit(line, sizeof line, &n, num) < 0)
        goto too_long;
    if (version_id && version_id[0] &&
        (lit(line, sizeof line, &n, ",\"versionId\":") < 0 ||
         json_str(line, sizeof line, &n, version_id) < 0))
        goto too_long;
    if (lit(line, sizeof line, &n, "}\n") < 0) goto too_long;
    if (EVP_DigestUpdate(l->md, line, n) != 1)
        return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "SHA-256 update failed");
    if (fwrite(line, 1, n, l->file) != n)
        return err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "cannot write the listing to scratch");
    l->count++;
    l->bytes += size;
    if (l->count > l->max_objects)
        return err_set(ERR_BAD_INPUT, ERR_SOURCE_TOO_LARGE, l->field,
                       "%s: %s has more than %llu objects (params.maxObjects)", l->field, l->uri,
                       l->max_objects);
    return 0;
too_long:
    return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, l->field, "%s: listing line too long",
                   l->field);
}

static int on_object(void *arg, const s3list_object *o)
{
    listing *l = arg;
    if (l->have_prev && strcmp(o->key, l->prev_key) <= 0)
        return err_set(ERR_TRANSIENT, ERR_S3_SERVER, l->field,
                       "%s: the listing of %s is not in ascending key order (\"%.200s\" after "
                       "\"%.200s\")",
                       l->field, l->uri, o->key, l->prev_key);
    snprintf(l->prev_key, sizeof l->prev_key, "%s", o->key);
    l->have_prev = true;
    size_t klen = strlen(o->key);
    if (klen && o->key[klen - 1] == '/') return 0; /* a "folder" marker, not data */
    if (l->src->kind == SRC_GLOB &&
        (klen < l->src->dir_len || !observe_glob_match(l->src->pattern, o->key + l->src->dir_len)))
        return 0;
    return emit(l, "key", o->key, o->etag, NULL, o->size, NULL);
}

/* Sets the error for a response that is not 200. */
static int http_failed(const s3req_resp *r, const char *what, const char *field)
{
    char code[64] = "", msg[256] = "";
    if (r->body) s3list_parse_error(r->body, r->body_len, code, sizeof code, msg, sizeof msg);
    const char *sep = code[0] ? ": " : "", *sep2 = msg[0] ? " " : "";
    if (r->status == 404)
        return err_set(ERR_BAD_INPUT, ERR_SOURCE_NOT_FOUND, field,
                       "%s: %s does not exist (HTTP 404%s%s%s%s)", field, what, sep, code, sep2,
                       msg);
    if (r->status == 401 || r->status == 403)
        return err_set(ERR_BAD_INPUT, ERR_SOURCE_ACCESS_DENIED, field,
                       "%s: access to %s denied (HTTP %ld%s%s%s%s)", field, what, r->status, sep,
                       code, sep2, msg);
    if (r->status == 429 || r->status >= 500)
        return err_set(ERR_TRANSIENT, ERR_SOURCE_UNAVAILABLE, field,
                       "%s: %s is unavailable (HTTP %ld%s%s%s%s, after retries)", field, what,
                       r->status, sep, code, sep2, msg);
    return err_set(ERR_BAD_INPUT, ERR_S3_CLIENT, field, "%s: %s: unexpected HTTP %ld%s%s%s%s",
                   field, what, r->status, sep, code, sep2, msg);
}

static void unquote_to(char *dst, size_t cap, const char *etag)
{
    size_t n = strlen(etag);
    /* Weak validators (W/"...") are kept whole: they are still versions. */
    if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"')
        snprintf(dst, cap, "%.*s", (int)(n - 2), etag + 1);
    else
        snprintf(dst, cap, "%s", etag);
}

static int observe_single(listing *l, const char *uri, result_observation *obs)
{
    s3req_resp r;
    int rc = -1;
    if (l->src->kind == SRC_URL) {
        if (s3req_head_url(uri, l->field, &r) < 0) goto cleanup;
    } else if (s3req_head_object(l->src->bucket, l->src->key, l->field, &r) < 0) {
        goto cleanup;
    }
    if (r.status != 200) {
        http_failed(&r, uri, l->field);
        goto cleanup;
    }
    obs->single = true;
    unquote_to(obs->etag, sizeof obs->etag, r.etag);
    snprintf(obs->version_id, sizeof obs->version_id, "%s", r.version_id);
    snprintf(obs->last_modified, sizeof obs->last_modified, "%s", r.last_modified);
    obs->size_bytes = r.has_length ? r.content_length : 0;
    if (l->src->kind == SRC_URL) {
        if (!obs->etag[0] && !obs->last_modified[0]) {
            err_set(ERR_BAD_INPUT, ERR_SOURCE_UNVERSIONED, l->field,
                    "%s: %s sends neither ETag nor Last-Modified, so a change could not be "
                    "told apart from the same bytes",
                    l->field, uri);
            goto cleanup;
        }
        rc = emit(l, "url", uri, obs->etag, obs->last_modified, obs->size_bytes, NULL);
    } else {
        if (!obs->etag[0]) {
            err_set(ERR_TRANSIENT, ERR_S3_SERVER, l->field, "%s: HEAD %s returned no ETag",
                    l->field, uri);
            goto cleanup;
        }
        obs->last_modified[0] = '\0'; /* the ETag and version id say it all on S3 */
        rc = emit(l, "key", l->src->key, obs->etag, NULL, obs->size_bytes, obs->version_id);
    }
cleanup:
    s3req_resp_free(&r);
    return rc;
}

static int observe_list(listing *l, const char *uri)
{
    s3req_resp r = {0};
    char token[S3LIST_TOKEN_MAX + 1] = "";
    unsigned long pages = 0;
    int rc = -1;
    for (;;) {
        s3list_page page;
        if (s3req_list_page(l->src->bucket, l->src->key, l->src->kind == SRC_GLOB ? "/" : "",
                            token[0] ? token : NULL, l->field, &r) < 0)
            goto cleanup;
        if (r.status != 200) {
            char what[1200];
            snprintf(what, sizeof what, "%s (bucket %s)", uri, l->src->bucket);
            http_failed(&r, what, l->field);
            goto cleanup;
        }
        if (s3list_parse(r.body ? r.body : "", r.body_len, on_object, l, &page) < 0) goto cleanup;
        pages++;
        s3req_resp_free(&r);
        if (!page.truncated) break;
        if (token[0] && !strcmp(token, page.next_token)) {
            err_set(ERR_TRANSIENT, ERR_S3_SERVER, l->field,
                    "%s: the server repeated continuation token %.64s", l->field, token);
            goto cleanup;
        }
        snprintf(token, sizeof token, "%s", page.next_token);
    }
    log_kv(LOG_DEBUG, "listed", "uri", uri, (const char *)NULL);
    (void)pages;
    rc = 0;
cleanup:
    s3req_resp_free(&r);
    return rc;
}

/* Copies the scratch listing to its content-addressed place, unless a
 * listing with that digest is already there (same name, same bytes). */
static int publish_listing(const char *local, const char *gdal_dst, const char *uri)
{
    VSIStatBufL st;
    VSILFILE *in = NULL, *out = NULL;
    char *tmp = NULL, *dir = NULL, *buf = NULL;
    int rc = -1;
    bool is_local = gdal_dst[0] == '/' && strncmp(gdal_dst, "/vsi", 4) != 0;

    if (VSIStatExL(gdal_dst, &st, VSI_STAT_EXISTS_FLAG) == 0) {
        log_kv(LOG_INFO, "listing already published", "listing", uri, (const char *)NULL);
        return 0;
    }
    if (is_local) {
        dir = mem_strdup(gdal_dst);
        if (!dir) return err_oom();
        *strrchr(dir, '/') = '\0';
        VSIMkdirRecursive(dir, 0755);
        tmp = mem_printf("%s.tmp", gdal_dst);
    }
    buf = mem_malloc(1 << 20);
    if (!buf || (is_local && !tmp)) {
        err_oom();
        goto cleanup;
    }
    in = VSIFOpenL(local, "rb");
    out = VSIFOpenL(is_local ? tmp : gdal_dst, "wb");
    if (!in || !out) {
        err_set_gdal(ERR_TRANSIENT, ERR_OUTPUT, "output.uri", "cannot write the listing %s", uri);
        goto cleanup;
    }
    size_t n;
    while ((n = VSIFReadL(buf, 1, 1 << 20, in)) > 0)
        if (VSIFWriteL(buf, 1, n, out) != n) {
            err_set_gdal(ERR_TRANSIENT, ERR_OUTPUT, "output.uri", "cannot write the listing %s",
                         uri);
            goto cleanup;
        }
    int close_rc = VSIFCloseL(out);
    out = NULL;
    if (close_rc != 0 || (is_local && VSIRename(tmp, gdal_dst) != 0)) {
        err_set_gdal(ERR_TRANSIENT, ERR_OUTPUT, "output.uri", "cannot write the listing %s", uri);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (in) VSIFCloseL(in);
    if (out) VSIFCloseL(out);
    if (rc < 0 && tmp) VSIUnlink(tmp);
    mem_free(tmp);
    mem_free(dir);
    mem_free(buf);
    return rc;
}

int observe_run(const task *t, const char *scratch, result_observation *obs)
{
    const task_input *in = &t->inputs[0];
    src_uri src;
    listing l = {.uri = in->uri, .field = "inputs[0].uri", .src = &src};
    char *local = NULL, *gdal_dst = NULL, hexd[65];
    unsigned char digest[32];
    unsigned int dlen = 0;
    int rc = -1;

    memset(obs, 0, sizeof *obs);
    l.max_objects = (unsigned long long)params_num(t->params, "maxObjects", DEFAULT_MAX_OBJECTS);
    if (observe_parse_uri(in->uri, l.field, &src) < 0) return -1;
    if (!(local = mem_printf("%s/listing.jsonl", scratch)) || !(l.md = EVP_MD_CTX_new())) {
        err_oom();
        goto cleanup;
    }
    if (EVP_DigestInit_ex(l.md, EVP_sha256(), NULL) != 1) {
        err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "SHA-256 init failed");
        goto cleanup;
    }
    if (!(l.file = fopen(local, "wb"))) {
        err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "cannot create %s", local);
        goto cleanup;
    }
    if (src.kind == SRC_OBJECT || src.kind == SRC_URL ? observe_single(&l, in->uri, obs) < 0
                                                      : observe_list(&l, in->uri) < 0)
        goto cleanup;
    if (fclose(l.file) != 0) {
        l.file = NULL;
        err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "cannot write %s", local);
        goto cleanup;
    }
    l.file = NULL;
    if (EVP_DigestFinal_ex(l.md, digest, &dlen) != 1 || dlen != 32) {
        err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "SHA-256 final failed");
        goto cleanup;
    }
    for (int i = 0; i < 32; i++)
        snprintf(hexd + 2 * i, 3, "%02x", digest[i]);
    snprintf(obs->data_version, sizeof obs->data_version, "sha256:%s", hexd);
    obs->object_count = l.count;
    obs->bytes = l.bytes;
    int n = snprintf(obs->listing, sizeof obs->listing, "%s/%s/%s/observations/%s.jsonl",
                     t->output_uri, t->namespace_, t->asset_key, hexd);
    if (n < 0 || (size_t)n >= sizeof obs->listing) {
        err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "output.uri", "output.uri: too long");
        goto cleanup;
    }
    if (!(gdal_dst = input_gdal_path(obs->listing))) {
        err_oom();
        goto cleanup;
    }
    if (publish_listing(local, gdal_dst, obs->listing) < 0) goto cleanup;
    char count[32];
    snprintf(count, sizeof count, "%llu", l.count);
    log_kv(LOG_INFO, "observed", "uri", in->uri, "sourceDataVersion", obs->data_version, "objects",
           count, "listing", obs->listing, (const char *)NULL);
    rc = 0;
cleanup:
    if (l.file) fclose(l.file);
    EVP_MD_CTX_free(l.md);
    mem_free(local);
    mem_free(gdal_dst);
    return rc;
}

/* --- the operation entry (validation only: main.c runs observe_run) --------------------- */

static const param_spec observe_params[] = {
    {"maxObjects", PARAM_INT, false, NULL, 1, 10000000, 0},
    {NULL},
};

static int observe_validate(const task *t)
{
    src_uri src;
    if (t->n_inputs != 1)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "inputs",
                       "inputs: observe takes exactly one input, the source (got %zu)",
                       t->n_inputs);
    const task_input *in = &t->inputs[0];
    if (in->observed_etag || in->observed_version_id || in->observed_last_modified)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "inputs[0].observed",
                       "inputs[0].observed: an observation has nothing observed yet");
    if (in->uri[0] == '/')
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "inputs[0].uri",
                       "inputs[0].uri: a source is an s3:// or https:// URI");
    return observe_parse_uri(in->uri, "inputs[0].uri", &src);
}

const op_def op_observe = {
    .name = "observe",
    .params = observe_params,
    .validate = observe_validate,
    .run = NULL,
};
