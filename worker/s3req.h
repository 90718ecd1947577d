/*
 * s3req.h - the worker's own small S3 / HTTPS metadata client.
 *
 * GDAL reads and writes objects, but hides what observation needs: the ETag,
 * version id and Last-Modified of an object, and ListObjectsV2 pages with
 * their continuation tokens. This module sends exactly those requests with
 * libcurl: HEAD of an object, one ListObjectsV2 page, HEAD of an https URL.
 * S3 requests are signed with AWS Signature Version 4 (header form,
 * UNSIGNED-PAYLOAD is never used: GET/HEAD bodies are empty, so the payload
 * hash is the SHA-256 of ""). Where S3 is and who we are comes from the same
 * settings GDAL reads (environment or GDAL config options set by creds.c):
 * AWS_S3_ENDPOINT, AWS_HTTPS, AWS_VIRTUAL_HOSTING, AWS_REGION /
 * AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN, AWS_NO_SIGN_REQUEST.
 *
 * Bodies are capped (S3REQ_BODY_MAX); redirects are never followed (an
 * https source must be the address the allowlist approved); connections to
 * link-local and metadata addresses are refused at connect time. 429, 5xx
 * and connection failures are retried GDAL_HTTP_MAX_RETRY times (default 3)
 * with GDAL_HTTP_RETRY_DELAY seconds (default 1), doubling. Single-threaded.
 */
#ifndef TERRANE_S3REQ_H
#define TERRANE_S3REQ_H

#include <stdbool.h>
#include <stddef.h>

/* A ListObjectsV2 page of 1000 keys of at most 1024 bytes each, with XML
 * overhead, stays well below this. */
#define S3REQ_BODY_MAX (4 * 1024 * 1024)

typedef struct s3req_resp {
    long status; /* HTTP status; 0 when no response arrived */
    char *body;  /* NUL-terminated, owned (s3req_resp_free); NULL for HEAD */
    size_t body_len;
    char etag[256];         /* as sent, quotes included; "" when absent */
    char version_id[256];   /* x-amz-version-id; "" when absent or "null" */
    char last_modified[64]; /* Last-Modified as sent */
    char content_type[128];
    unsigned long long content_length;
    bool has_length;
    char error[256]; /* why no response arrived (curl's message), or "" */
} s3req_resp;

/* HEAD s3://bucket/key. Any HTTP status is a return of 0 (read out->status);
 * -1 with the error set (naming field, which may be NULL) only on OOM, a
 * refused address or URL (BadInput, InputNotAllowed) or when no response
 * arrived after the retries (Transient, S3ServerError). */
int s3req_head_object(const char *bucket, const char *key, const char *field, s3req_resp *out);
/* One ListObjectsV2 page: prefix and delimiter may be "" (none), token NULL
 * for the first page. Same return rule as s3req_head_object. */
int s3req_list_page(const char *bucket, const char *prefix, const char *delimiter,
                    const char *token, const char *field, s3req_resp *out);
/* HEAD of an https:// URL (no signing, no redirects). */
int s3req_head_url(const char *url, const char *field, s3req_resp *out);
void s3req_resp_free(s3req_resp *r);

/* Pieces exposed for unit and fuzz tests. */

/* Parses one response header line ("Name: value", CRLF optional) into r,
 * keeping only the headers above. Never fails; oversized values are cut. */
void s3req_parse_header(const char *line, size_t len, s3req_resp *r);
/* Percent-encodes s for SigV4 canonical form: unreserved characters
 * (A-Z a-z 0-9 - _ . ~) stay, '/' stays when keep_slash, all else %XX.
 * Returns a new string (mem_free) or NULL on OOM. */
char *s3req_uri_encode(const char *s, bool keep_slash);
/* The SigV4 Authorization header value for a request without body, whose
 * signed headers are host, x-amz-content-sha256, x-amz-date and, when token
 * is not NULL, x-amz-security-token. path is already encoded; query is the
 * canonical (sorted, encoded) query string. amz_date is YYYYMMDDTHHMMSSZ.
 * Writes at most cap bytes; returns 0 or -1 (cap too small). */
int s3req_sign(const char *method, const char *host, const char *path, const char *query,
               const char *amz_date, const char *region, const char *key_id, const char *secret,
               const char *token, char *out, size_t cap);

#endif
