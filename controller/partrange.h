/*
 * partrange.h - a set of partition indices as sorted, disjoint, non-adjacent
 * runs [lo, hi]: which partitions are materialized at one data version.
 *
 * A backfill materializes partitions mostly in order, so the set stays a
 * handful of runs whatever the count: 100,000 partitions done in order are
 * one run, written "0-99999" in the status. The text form is comma-separated
 * indices and inclusive ranges ("0-99,120,130-4095"); prange_parse reads it
 * back from a status written by an earlier controller (bytes from the API
 * server: capped, every field checked, fuzzed in fuzz_c_partition).
 *
 * When the runs are too many for PRANGE_TEXT_MAX (partitions finishing in a
 * scattered order), prange_encode writes a bitmap instead: "b64:" and the
 * base64 of one bit per index below total (bit i is byte i/8, bit i%8), so
 * 100,000 partitions take at most 16,668 bytes whatever the order.
 *
 * Memory: 16 bytes per run. Not thread-safe; one owner.
 */
#ifndef TERRANE_PARTRANGE_H
#define TERRANE_PARTRANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRANGE_TEXT_MAX 24576 /* longest text accepted or written */
#define PRANGE_BITMAP_PREFIX "b64:"
#define PRANGE_INDEX_MAX 999999999ULL

typedef struct prange prange;

prange *prange_new(void); /* NULL on allocation failure */
void prange_free(prange *r);
/* 0, or CERR_NOMEM (the set is unchanged then). Idempotent. */
int prange_add(prange *r, uint64_t i);
void prange_remove(prange *r, uint64_t i);
bool prange_has(const prange *r, uint64_t i);
uint64_t prange_count(const prange *r); /* indices in the set */
size_t prange_runs(const prange *r);
void prange_clear(prange *r);
/* The smallest index >= from not in the set (from when the set is empty). */
uint64_t prange_first_missing(const prange *r, uint64_t from);
/* Writes the text form into out (NUL-terminated). 0; CERR_TOOBIG when it
 * does not fit in size (out then holds a prefix ending at a whole item). */
int prange_format(const prange *r, char *out, size_t size);
/* The status form: the text form when it fits in PRANGE_TEXT_MAX, else the
 * bitmap of the indices below total (indices >= total are dropped then).
 * out must hold PRANGE_TEXT_MAX + 1. 0; CERR_TOOBIG when even the bitmap
 * does not fit (total over 8 * 3/4 * PRANGE_TEXT_MAX). */
int prange_encode(const prange *r, uint64_t total, char *out, size_t size);
/* Replaces r's content with the text s (may be empty). 0; CERR_INVALID with
 * the thread's error naming the byte offset; CERR_TOOBIG over
 * PRANGE_TEXT_MAX; CERR_NOMEM. Accepts the bitmap form too. On failure r
 * is empty. */
int prange_parse(prange *r, const char *s, size_t len);

#endif
