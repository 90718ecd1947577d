/*
 * strmap.c - open addressing string map (see strmap.h).
 */
#include "lib/strmap.h"

#include "lib/cerr.h"
#include "lib/cmem.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

typedef struct {
    char *key; /* NULL: empty slot */
    void *value;
    uint64_t hash;
} slot;

struct strmap {
    slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t len;
    unsigned flags;
};

/* --- SipHash-1-3 ------------------------------------------------------- */

static uint64_t sip_k0, sip_k1;
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void sip_seed(void)
{
    uint64_t k[2] = {0, 0};
    if (getrandom(k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        /* No entropy yet (early boot): the clock is better than nothing. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec;
        k[1] = (uint64_t)(uintptr_t)&ts * 0xC2B2AE3D27D4EB4Full;
    }
    sip_k0 = k[0];
    sip_k1 = k[1];
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t hash_key(const char *key, size_t len)
{
    pthread_once(&sip_once, sip_seed);
    const unsigned char *p = (const unsigned char *)key;
    uint64_t v0 = sip_k0 ^ 0x736f6d6570736575ull, v1 = sip_k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = sip_k0 ^ 0x6c7967656e657261ull, v3 = sip_k1 ^ 0x7465646279746573ull;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t j = 0; i + j < len; j++)
        b |= (uint64_t)p[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* --- table --------------------------------------------------------------- */

strmap *strmap_new(unsigned flags)
{
    strmap *m = cmem_calloc(1, sizeof *m);
    if (m) m->flags = flags;
    return m;
}

void strmap_free(strmap *m)
{
    if (!m) return;
    if (!(m->flags & STRMAP_BORROW_KEYS))
        for (size_t i = 0; i < m->cap; i++)
            cmem_free(m->slots[i].key);
    cmem_free(m->slots);
    cmem_free(m);
}

/* Index of key's slot, or of the empty slot where it would go. */
static size_t find_slot(const strmap *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    while (m->slots[i].key) {
        if (m->slots[i].hash == h && strcmp(m->slots[i].key, key) == 0) return i;
        i = (i + 1) & mask;
    }
    return i;
}

static int grow(strmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    if (ncap < m->cap) return cerr_oom();
    slot *ns = cmem_calloc(ncap, sizeof *ns);
    if (!ns) return cerr_oom();
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key) continue;
        size_t j = (size_t)m->slots[i].hash & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    cmem_free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

int strmap_put(strmap *m, const char *key, void *value)
{
    size_t klen = strlen(key);
    uint64_t h = hash_key(key, klen);
    if (m->cap) {
        size_t i = find_slot(m, key, h);
        if (m->slots[i].key) {
            m->slots[i].value = value;
            return 0;
        }
    }
    /* Keep the load factor at most 3/4 so probe sequences stay short. */
    if ((m->len + 1) * 4 > m->cap * 3) {
        int rc = grow(m);
        if (rc) return rc;
    }
    char *k = (char *)key;
    if (!(m->flags & STRMAP_BORROW_KEYS)) {
        k = cmem_strndup(key, klen);
        if (!k) return cerr_oom();
    }
    size_t i = find_slot(m, key, h);
    m->slots[i].key = k;
    m->slots[i].value = value;
    m->slots[i].hash = h;
    m->len++;
    return 0;
}

bool strmap_get(const strmap *m, const char *key, void **value)
{
    if (!m->len) return false;
    size_t i = find_slot(m, key, hash_key(key, strlen(key)));
    if (!m->slots[i].key) return false;
    if (value) *value = m->slots[i].value;
    return true;
}

void *strmap_lookup(const strmap *m, const char *key)
{
    void *v = NULL;
    return strmap_get(m, key, &v) ? v : NULL;
}

bool strmap_remove(strmap *m, const char *key, void **old)
{
    if (!m->len) return false;
    size_t mask = m->cap - 1;
    size_t i = find_slot(m, key, hash_key(key, strlen(key)));
    if (!m->slots[i].key) return false;
    if (old) *old = m->slots[i].value;
    if (!(m->flags & STRMAP_BORROW_KEYS)) cmem_free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->len--;
    /* Backward-shift deletion: pull later members of the probe run into the
     * hole when their home slot is at or before it, so lookups never stop
     * early at a hole and no tombstones are needed. */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].key) break;
        size_t home = (size_t)m->slots[j].hash & mask;
        /* distance from home to j vs from home to hole (cyclic) */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            m->slots[j].key = NULL;
            hole = j;
        }
    }
    return true;
}

size_t strmap_len(const strmap *m)
{
    return m->len;
}

bool strmap_next(const strmap *m, size_t *pos, const char **key, void **value)
{
    for (size_t i = *pos; i < m->cap; i++) {
        if (!m->slots[i].key) continue;
        if (key) *key = m->slots[i].key;
        if (value) *value = m->slots[i].value;
        *pos = i + 1;
        return true;
    }
    *pos = m->cap;
    return false;
}
