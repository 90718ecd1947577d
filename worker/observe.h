/*
 * observe.h - `terrane-worker observe`: what is at a source right now.
 *
 * An observe task (operation "observe", proto/schema/task.v1.json) has one
 * input, the source's URI:
 *   s3://bucket/key            one object (HEAD: ETag, size, version id)
 *   s3://bucket/dir/           every object below the prefix, recursively
 *   s3://bucket/dir/p*.tif     objects directly in dir/ whose name matches
 *                              the glob (* ? [...] in the last segment only)
 *   https://host/path          one object (HEAD: ETag, Last-Modified, size)
 * Listing uses ListObjectsV2 page by page (continuation tokens); each object
 * becomes one JSON line {"key","etag","size"[,"versionId"]} (https:
 * {"url","etag","lastModified","size"}) that goes straight into a SHA-256
 * and a scratch file, in S3's key order, so memory stays one page whatever
 * the object count. The source's data version is "sha256:" + that digest:
 * the digest of the published listing file itself, which lands at
 *   <output.uri>/<namespace>/<assetKey>/observations/<hex>.jsonl
 * (content-addressed: an unchanged source writes nothing new).
 */
#ifndef TERRANE_OBSERVE_H
#define TERRANE_OBSERVE_H

#include "result.h"
#include "task.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum { SRC_OBJECT, SRC_PREFIX, SRC_GLOB, SRC_URL } src_kind;

typedef struct src_uri {
    src_kind kind;
    char bucket[64];
    char key[1025];    /* SRC_OBJECT: the key; SRC_PREFIX/GLOB: the listing prefix */
    char pattern[256]; /* SRC_GLOB: the glob of the last segment */
    size_t dir_len;    /* SRC_GLOB: length of the directory part of key */
} src_uri;

/* Classifies and splits a source URI (after input_check_uri). Errors name
 * field: a glob outside the last segment, in an https URL or the bucket. */
int observe_parse_uri(const char *uri, const char *field, src_uri *out);
/* Glob match of a whole name: '*' any run, '?' one byte, [abc] [a-z] [!x]
 * classes; never crosses '/'. Linear in practice: no backtracking blow-up. */
bool observe_glob_match(const char *pattern, const char *name);

/* Observes the task's source into obs, publishing the listing. scratch is
 * a private directory for the listing file. */
int observe_run(const task *t, const char *scratch, result_observation *obs);

#endif
