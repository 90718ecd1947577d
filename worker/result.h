/*
 * result.h - the Result document (proto/schema/result.v1.json).
 *
 * Filled by the run (timings, cache hit) and the publisher (output fields),
 * or from the error slot (err.h) on failure; result_write renders it within
 * TERRANE_TERMINATION_MAX bytes (long messages are shortened, never the
 * structure) to the termination-log path and to stdout.
 */
#ifndef TERRANE_RESULT_H
#define TERRANE_RESULT_H

#include <stdbool.h>
#include <stddef.h>

/* What an observe task saw (observe.c). */
typedef struct result_observation {
    char data_version[72]; /* "sha256:" + hex of the listing */
    unsigned long long object_count, bytes;
    char listing[1024]; /* where the listing was published */
    bool single;        /* one object: the fields below are set */
    char etag[256];     /* without quotes; "" when the server sent none */
    char version_id[256];
    char last_modified[64];
    unsigned long long size_bytes;
} result_observation;

typedef struct result {
    const char *asset_key;    /* borrowed from the task (may be NULL) */
    const char *data_version; /* borrowed */
    char output_uri[1024];
    char checksum[72]; /* "1220" + 64 hex */
    unsigned long long size_bytes;
    char media_type[96];
    char stac_item[1024];
    char manifest[1024];
    bool cache_hit;
    /* Container assets (outputs.h): files published, metadata.json. */
    size_t n_files;      /* 0: not a container asset, nothing rendered */
    char metadata[1025]; /* compact JSON object, "" when none or too large */
    bool metadata_truncated;
    const result_observation *observation; /* borrowed; set for observe tasks */
    const char *grid; /* borrowed compact JSON object; set for grid tasks (grid.h) */
    long total_ms, compute_ms, publish_ms;
    int threads;                 /* what the run was sized to (podres.h); 0: not sized */
    unsigned long long cache_mb; /* GDAL's block cache, MiB */
} result;

/* Renders the result (success when no error is set, else failure from
 * err.h) into buf; returns its length, always < cap and < 4096. */
size_t result_render(const result *r, char *buf, size_t cap);
/* Renders and writes to path (NULL: env or /dev/termination-log) and stdout.
 * A missing termination-log file is not an error for local runs. */
int result_write(const result *r, const char *path);

#endif
