/*
 * s3list.h - parsing S3's XML answers: a ListObjectsV2 page and an <Error>.
 *
 * The bytes come from the network, so the parser is strict about structure
 * and caps every field (a key at most 1024 bytes as S3 allows, an ETag 255,
 * a continuation token 1024), decodes XML entities (named and numeric, to
 * UTF-8) and hands each <Contents> to a callback as soon as it closes: a
 * page is never held as a list, so memory does not grow with the page.
 * No allocation, no I/O; any thread. Fuzzed by tests/fuzz/fuzz_w_s3list.c.
 */
#ifndef TERRANE_S3LIST_H
#define TERRANE_S3LIST_H

#include <stdbool.h>
#include <stddef.h>

#define S3LIST_KEY_MAX 1024
#define S3LIST_ETAG_MAX 255
#define S3LIST_TOKEN_MAX 1024

typedef struct s3list_object {
    char key[S3LIST_KEY_MAX + 1];   /* decoded; never contains NUL */
    char etag[S3LIST_ETAG_MAX + 1]; /* decoded, surrounding quotes removed */
    char last_modified[64];
    unsigned long long size;
} s3list_object;

typedef struct s3list_page {
    bool truncated;                        /* IsTruncated */
    char next_token[S3LIST_TOKEN_MAX + 1]; /* NextContinuationToken, "" when none */
    unsigned long n_objects;               /* <Contents> seen on this page */
    unsigned long n_prefixes;              /* <CommonPrefixes> seen (ignored otherwise) */
} s3list_page;

/* Called for each object in page order; a negative return stops parsing and
 * is returned by s3list_parse (the callback sets the error). */
typedef int (*s3list_cb)(void *arg, const s3list_object *o);

/* Parses a ListBucketResult document. Returns 0, a callback's negative
 * value, or -1 with the error set (class Transient, code S3ServerError, a
 * message with the byte offset) when the document is malformed. */
int s3list_parse(const char *xml, size_t len, s3list_cb cb, void *arg, s3list_page *page);

/* Reads <Error><Code> and <Message> of an S3 error body into code and msg
 * (each "" when absent or malformed). Never fails. */
void s3list_parse_error(const char *xml, size_t len, char *code, size_t code_cap, char *msg,
                        size_t msg_cap);

#endif
