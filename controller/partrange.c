/*
 * partrange.c - partition index sets as runs (see partrange.h).
 */
#include "partrange.h"

#include "lib/cerr.h"
#include "lib/cmem.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint64_t lo, hi;
} run;

struct prange {
    run *v;
    size_t n, cap;
};

prange *prange_new(void)
{
    return cmem_calloc(1, sizeof(prange));
}

void prange_free(prange *r)
{
    if (!r) return;
    cmem_free(r->v);
    cmem_free(r);
}

void prange_clear(prange *r)
{
    r->n = 0;
}

/* Index of the first run with hi >= i (r->n when none). */
static size_t lower(const prange *r, uint64_t i)
{
    size_t a = 0, b = r->n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (r->v[m].hi < i)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

bool prange_has(const prange *r, uint64_t i)
{
    size_t k = lower(r, i);
    return k < r->n && r->v[k].lo <= i;
}

static int reserve(prange *r, size_t n)
{
    if (n <= r->cap) return 0;
    size_t cap = r->cap ? r->cap * 2 : 4;
    while (cap < n)
        cap *= 2;
    run *v = cmem_reallocarray(r->v, cap, sizeof *v);
    if (!v) return cerr_oom();
    r->v = v;
    r->cap = cap;
    return 0;
}

int prange_add(prange *r, uint64_t i)
{
    size_t k = lower(r, i);
    if (k < r->n && r->v[k].lo <= i) return 0;
    bool join_prev = k > 0 && r->v[k - 1].hi + 1 == i;
    bool join_next = k < r->n && r->v[k].lo == i + 1;
    if (join_prev && join_next) {
        r->v[k - 1].hi = r->v[k].hi;
        memmove(&r->v[k], &r->v[k + 1], (r->n - k - 1) * sizeof(run));
        r->n--;
    } else if (join_prev) {
        r->v[k - 1].hi = i;
    } else if (join_next) {
        r->v[k].lo = i;
    } else {
        if (reserve(r, r->n + 1)) return CERR_NOMEM;
        memmove(&r->v[k + 1], &r->v[k], (r->n - k) * sizeof(run));
        r->v[k] = (run){i, i};
        r->n++;
    }
    return 0;
}

void prange_remove(prange *r, uint64_t i)
{
    size_t k = lower(r, i);
    if (k == r->n || r->v[k].lo > i) return;
    run *x = &r->v[k];
    if (x->lo == x->hi) {
        memmove(x, x + 1, (r->n - k - 1) * sizeof(run));
        r->n--;
    } else if (x->lo == i) {
        x->lo++;
    } else if (x->hi == i) {
        x->hi--;
    } else {
        /* Splitting needs one more run; without memory the index stays
         * (the caller treats the set as a cache and recomputes). */
        if (reserve(r, r->n + 1)) return;
        x = &r->v[k];
        memmove(x + 1, x, (r->n - k) * sizeof(run));
        r->v[k].hi = i - 1;
        r->v[k + 1].lo = i + 1;
        r->n++;
    }
}

uint64_t prange_count(const prange *r)
{
    uint64_t c = 0;
    for (size_t k = 0; k < r->n; k++)
        c += r->v[k].hi - r->v[k].lo + 1;
    return c;
}

size_t prange_runs(const prange *r)
{
    return r->n;
}

uint64_t prange_first_missing(const prange *r, uint64_t from)
{
    size_t k = lower(r, from);
    if (k < r->n && r->v[k].lo <= from) return r->v[k].hi + 1;
    return from;
}

int prange_format(const prange *r, char *out, size_t size)
{
    size_t used = 0;
    if (!size) return cerr_set(CERR_TOOBIG, "partition ranges: no room");
    out[0] = '\0';
    for (size_t k = 0; k < r->n; k++) {
        char item[48];
        int n = r->v[k].lo == r->v[k].hi
                    ? snprintf(item, sizeof item, "%s%" PRIu64, k ? "," : "", r->v[k].lo)
                    : snprintf(item, sizeof item, "%s%" PRIu64 "-%" PRIu64, k ? "," : "",
                               r->v[k].lo, r->v[k].hi);
        if (used + (size_t)n + 1 > size)
            return cerr_set(CERR_TOOBIG, "partition ranges: %zu runs do not fit in %zu bytes", r->n,
                            size);
        memcpy(out + used, item, (size_t)n + 1);
        used += (size_t)n;
    }
    return 0;
}

static int number(const char *s, size_t len, size_t *pos, uint64_t *out)
{
    size_t p = *pos, start = p;
    uint64_t v = 0;
    while (p < len && s[p] >= '0' && s[p] <= '9') {
        v = v * 10 + (uint64_t)(s[p] - '0');
        if (v > PRANGE_INDEX_MAX)
            return cerr_set(CERR_INVALID, "partition ranges: index too large at byte %zu", start);
        p++;
    }
    if (p == start)
        return cerr_set(CERR_INVALID, "partition ranges: expected a digit at byte %zu", p);
    if (p - start > 1 && s[start] == '0')
        return cerr_set(CERR_INVALID, "partition ranges: leading zero at byte %zu", start);
    *pos = p;
    *out = v;
    return 0;
}

int prange_encode(const prange *r, uint64_t total, char *out, size_t size)
{
    size_t cap = size < PRANGE_TEXT_MAX + 1 ? size : PRANGE_TEXT_MAX + 1;
    if (prange_format(r, out, cap) == 0) return 0;
    cerr_clear();
    size_t nbytes = (size_t)((total + 7) / 8);
    size_t need = sizeof PRANGE_BITMAP_PREFIX - 1 + 4 * ((nbytes + 2) / 3) + 1;
    if (need > cap)
        return cerr_set(CERR_TOOBIG,
                        "partition ranges: a bitmap of %" PRIu64 " partitions exceeds %d bytes",
                        total, PRANGE_TEXT_MAX);
    unsigned char *bits = cmem_calloc(nbytes ? nbytes : 1, 1);
    if (!bits) return cerr_oom();
    for (size_t k = 0; k < r->n; k++)
        for (uint64_t i = r->v[k].lo; i <= r->v[k].hi && i < total; i++)
            bits[i / 8] |= (unsigned char)(1u << (i % 8));
    memcpy(out, PRANGE_BITMAP_PREFIX, sizeof PRANGE_BITMAP_PREFIX - 1);
    EVP_EncodeBlock((unsigned char *)out + sizeof PRANGE_BITMAP_PREFIX - 1, bits, (int)nbytes);
    cmem_free(bits);
    return 0;
}

static int parse_bitmap(prange *r, const char *s, size_t len)
{
    int rc = 0;
    if (len % 4)
        return cerr_set(CERR_INVALID, "partition ranges: bitmap length %zu is not a multiple of 4",
                        len);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' ||
                  (c == '=' && i + 2 >= len && (i + 1 == len || s[i + 1] == '='));
        if (!ok) return cerr_set(CERR_INVALID, "partition ranges: bad base64 at byte %zu", i + 4);
    }
    unsigned char *bits = cmem_malloc(len / 4 * 3 + 1);
    if (!bits) return cerr_oom();
    int n = len ? EVP_DecodeBlock(bits, (const unsigned char *)s, (int)len) : 0;
    if (n < 0) {
        rc = cerr_set(CERR_INVALID, "partition ranges: bad base64");
        goto done;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    if (len && s[len - 1] == '=') n--;
    if (len > 1 && s[len - 2] == '=') n--;
    for (size_t i = 0; i < (size_t)n * 8; i++)
        if (bits[i / 8] & (1u << (i % 8)) && (rc = prange_add(r, i))) goto done;
done:
    cmem_free(bits);
    if (rc) r->n = 0;
    return rc;
}

int prange_parse(prange *r, const char *s, size_t len)
{
    size_t p = 0;
    int rc = 0;
    r->n = 0;
    if (len > PRANGE_TEXT_MAX)
        return cerr_set(CERR_TOOBIG, "partition ranges: %zu bytes, at most %d", len,
                        PRANGE_TEXT_MAX);
    if (len >= sizeof PRANGE_BITMAP_PREFIX - 1 &&
        !memcmp(s, PRANGE_BITMAP_PREFIX, sizeof PRANGE_BITMAP_PREFIX - 1))
        return parse_bitmap(r, s + sizeof PRANGE_BITMAP_PREFIX - 1,
                            len - (sizeof PRANGE_BITMAP_PREFIX - 1));
    while (p < len) {
        uint64_t lo, hi;
        if ((rc = number(s, len, &p, &lo))) goto fail;
        hi = lo;
        if (p < len && s[p] == '-') {
            p++;
            if ((rc = number(s, len, &p, &hi))) goto fail;
            if (hi <= lo) {
                rc = cerr_set(CERR_INVALID, "partition ranges: empty range before byte %zu", p);
                goto fail;
            }
        }
        /* Runs must ascend with a gap: the writer never emits anything else,
         * and accepting it would let two texts mean one set. */
        if (r->n && lo <= r->v[r->n - 1].hi + 1) {
            rc = cerr_set(CERR_INVALID, "partition ranges: not ascending at byte %zu", p);
            goto fail;
        }
        if ((rc = reserve(r, r->n + 1))) goto fail;
        r->v[r->n++] = (run){lo, hi};
        if (p < len) {
            if (s[p] != ',' || p + 1 == len) {
                rc = cerr_set(CERR_INVALID, "partition ranges: expected ',' at byte %zu", p);
                goto fail;
            }
            p++;
        }
    }
    return 0;
fail:
    r->n = 0;
    return rc;
}
