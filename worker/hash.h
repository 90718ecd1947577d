/*
 * hash.h - streaming SHA-256 and the multihash form the contract uses.
 *
 * Checksums are SHA-256 multihashes in hex, as the STAC file extension
 * writes them: "12" (sha2-256) "20" (32 bytes) then the 64-hex digest. The
 * publisher hashes each file in the same pass that uploads it (hash_update
 * per chunk); hash_path re-hashes an already published object when a cache
 * lookup cannot trust object metadata. Backed by OpenSSL's EVP interface,
 * whose allocations are OpenSSL's own (not mem.h). Any thread.
 */
#ifndef TERRANE_HASH_H
#define TERRANE_HASH_H

#include <stdbool.h>
#include <stddef.h>

/* "1220" + 64 hex + NUL */
#define HASH_MULTIHASH_LEN 69

typedef struct hash_ctx hash_ctx;

/* A new SHA-256 context; NULL on allocation failure (no error is set). */
hash_ctx *hash_new(void);
int hash_update(hash_ctx *h, const void *data, size_t len);
/* Writes the multihash hex of everything hashed so far into out. */
int hash_final(hash_ctx *h, char out[HASH_MULTIHASH_LEN]);
void hash_free(hash_ctx *h);

/* Streams the file at a GDAL path (local, /vsis3/...) through SHA-256 in
 * large chunks. Fills out and *size. Sets an error naming uri (what the
 * user knows the object as) on failure. */
int hash_path(const char *gdal_path, const char *uri, char out[HASH_MULTIHASH_LEN],
              unsigned long long *size);

/* True when s is "1220" followed by 64 lowercase hex digits. */
bool hash_is_multihash(const char *s);

#endif
