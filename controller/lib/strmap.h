/*
 * strmap.h - a hash map from NUL-terminated string keys to pointers.
 *
 * The controller's index for everything keyed by "namespace/name" or by a
 * pool or asset name: the work queue's items, the rate limiter's failure
 * counts, the dependency graph's nodes. Open addressing with linear probing
 * and backward-shift deletion; the hash is SipHash-1-3 with a per-process
 * random key, because keys come from object names that any user allowed to
 * create AssetMaterializations chooses (no hash flooding).
 *
 * Not thread-safe: the owning module holds its own lock. Values are the
 * caller's: the map never frees them. Keys are copied by the map unless it
 * was created with STRMAP_BORROW_KEYS, in which case the caller keeps each
 * key alive (and unchanged) until it is removed or the map is freed.
 */
#ifndef LIB_STRMAP_H
#define LIB_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strmap strmap;

#define STRMAP_BORROW_KEYS 0x1

/* NULL when out of memory. */
strmap *strmap_new(unsigned flags);
void strmap_free(strmap *m); /* frees the map and copied keys, never values */

/* Inserts or replaces. 0, or CERR_NOMEM (the map is then unchanged). */
int strmap_put(strmap *m, const char *key, void *value);
/* true when key is present; *value (if value is non-NULL) gets its value. */
bool strmap_get(const strmap *m, const char *key, void **value);
/* The value, or NULL when absent (use strmap_get when NULL is a value). */
void *strmap_lookup(const strmap *m, const char *key);
/* true when key was present; *old (if non-NULL) gets the removed value. */
bool strmap_remove(strmap *m, const char *key, void **old);
size_t strmap_len(const strmap *m);

/* Iteration in unspecified order: start with *pos = 0, loop while it
 * returns true. key is borrowed from the map. The map must not change
 * during an iteration. */
bool strmap_next(const strmap *m, size_t *pos, const char **key, void **value);

#endif
