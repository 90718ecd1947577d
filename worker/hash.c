/*
 * hash.c - SHA-256 over OpenSSL EVP, rendered as a multihash.
 */
#include "hash.h"

#include "err.h"
#include "mem.h"

#include <cpl_error.h>
#include <cpl_vsi.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* Large reads keep per-call overhead (and, for /vsis3/, HTTP range
 * requests) negligible next to hashing. */
#define HASH_CHUNK (4u << 20)

struct hash_ctx {
    EVP_MD_CTX *md;
};

hash_ctx *hash_new(void)
{
    hash_ctx *h = mem_calloc(1, sizeof *h);
    if (!h) return NULL;
    h->md = EVP_MD_CTX_new();
    if (!h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
        hash_free(h);
        return NULL;
    }
    return h;
}

int hash_update(hash_ctx *h, const void *data, size_t len)
{
    if (EVP_DigestUpdate(h->md, data, len) != 1)
        return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "SHA-256 update failed");
    return 0;
}

int hash_final(hash_ctx *h, char out[HASH_MULTIHASH_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(h->md, digest, &n) != 1 || n != 32)
        return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "SHA-256 final failed");
    /* multihash: code 0x12 (sha2-256), length 0x20, then the digest */
    memcpy(out, "1220", 4);
    for (unsigned int i = 0; i < n; i++) {
        out[4 + 2 * i] = hex[digest[i] >> 4];
        out[5 + 2 * i] = hex[digest[i] & 15];
    }
    out[4 + 2 * n] = '\0';
    return 0;
}

void hash_free(hash_ctx *h)
{
    if (!h) return;
    EVP_MD_CTX_free(h->md);
    mem_free(h);
}

int hash_path(const char *gdal_path, const char *uri, char out[HASH_MULTIHASH_LEN],
              unsigned long long *size)
{
    int rc = -1;
    unsigned long long total = 0;
    unsigned char *buf = NULL;
    hash_ctx *h = NULL;
    VSILFILE *f = NULL;

    buf = mem_malloc(HASH_CHUNK);
    h = hash_new();
    if (!buf || !h) {
        err_oom();
        goto cleanup;
    }
    CPLErrorReset();
    f = VSIFOpenL(gdal_path, "rb");
    if (!f) {
        err_set_gdal(ERR_TRANSIENT, ERR_OUTPUT, NULL, "read %s: cannot open", uri);
        goto cleanup;
    }
    for (;;) {
        size_t n = VSIFReadL(buf, 1, HASH_CHUNK, f);
        if (n > 0 && hash_update(h, buf, n) < 0) goto cleanup;
        total += n;
        if (n < HASH_CHUNK) {
            if (!VSIFEofL(f)) {
                err_set_gdal(ERR_TRANSIENT, ERR_OUTPUT, NULL, "read %s: failed at byte %llu", uri,
                             total);
                goto cleanup;
            }
            break;
        }
    }
    if (hash_final(h, out) < 0) goto cleanup;
    *size = total;
    rc = 0;
cleanup:
    if (f && VSIFCloseL(f) != 0 && rc == 0)
        rc = err_set_gdal(ERR_TRANSIENT, ERR_OUTPUT, NULL, "read %s: close failed", uri);
    hash_free(h);
    mem_free(buf);
    return rc;
}

bool hash_is_multihash(const char *s)
{
    if (!s || strncmp(s, "1220", 4) != 0) return false;
    for (int i = 4; i < 68; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return s[68] == '\0';
}
