/*
 * hydro.c - the hydrology algorithms of hydro.h.
 *
 * Everything is linear or n log n in the cells and walks the grid with
 * plain arrays: a radix heap (fill), a 4-ary heap (breach), FIFO queues of cell indexes (fill's
 * depressions, flat resolution, D-inf accumulation), and for the D8 passes
 * no queue at all: accumulation, basins and HAND follow the flow path from
 * each cell and stop where the path meets a cell already resolved (or, for
 * accumulation, one still waiting for another upstream branch), so each cell
 * is visited a bounded number of times.
 */
#include "hydro.h"

#include "err.h"
#include "mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const int hydro_dcol[8] = {1, 1, 0, -1, -1, -1, 0, 1};
const int hydro_drow[8] = {0, 1, 1, 1, 0, -1, -1, -1};

void hydro_hint_huge(void *p, size_t n)
{
    const uintptr_t huge = 2u << 20;
    uintptr_t start = ((uintptr_t)p + huge - 1) & ~(huge - 1),
              end = ((uintptr_t)p + n) & ~(huge - 1);
    if (end > start) madvise((void *)start, end - start, MADV_HUGEPAGE);
}

static bool is_diag(int d)
{
    return d & 1;
}

/* Distance in metres to neighbour d from a cell on row y. */
static double dist(const hydro_grid *g, size_t y, int d)
{
    double dx = g->dx[y];
    if (hydro_drow[d] == 0) return dx;
    if (hydro_dcol[d] == 0) return g->dy;
    return sqrt(dx * dx + g->dy * g->dy);
}

/* The neighbour of (x, y) in direction d, or -1 off the grid. */
static int64_t neighbour(const hydro_grid *g, size_t x, size_t y, int d)
{
    int64_t nx = (int64_t)x + hydro_dcol[d], ny = (int64_t)y + hydro_drow[d];
    if (nx < 0 || ny < 0 || nx >= (int64_t)g->w || ny >= (int64_t)g->h) return -1;
    return ny * (int64_t)g->w + nx;
}

/* Index offsets of the 8 neighbours. */
static void offsets(const hydro_grid *g, int64_t off[8])
{
    for (int d = 0; d < 8; d++)
        off[d] = (int64_t)hydro_drow[d] * (int64_t)g->w + hydro_dcol[d];
}

/* Fills nb with the 8 neighbours of cell c at (x, y), -1 off the grid; the
 * common interior case without bounds checks. */
static inline void neighbours(const hydro_grid *g, const int64_t off[8], size_t c, size_t x,
                              size_t y, int64_t nb[8])
{
    if (x > 0 && y > 0 && x + 1 < g->w && y + 1 < g->h) {
        for (int d = 0; d < 8; d++)
            nb[d] = (int64_t)c + off[d];
        return;
    }
    for (int d = 0; d < 8; d++)
        nb[d] = neighbour(g, x, y, d);
}

/* Row of cell c: c / w by a multiplication with inv_w = 1.0 / w (a
 * division costs more than the rest of a queued cell's work), corrected
 * where the rounding is off by one. */
static inline size_t row_of(const hydro_grid *g, double inv_w, size_t c)
{
    size_t y = (size_t)((double)c * inv_w);
    if (y * g->w > c)
        y--;
    else if ((y + 1) * g->w <= c)
        y++;
    return y;
}

/* neighbours() of cell c found by its index alone. */
static inline void neighbours_of(const hydro_grid *g, const int64_t off[8], double inv_w, size_t c,
                                 int64_t nb[8])
{
    size_t y = row_of(g, inv_w, c);
    neighbours(g, off, c, c - y * g->w, y, nb);
}

/* ---- encodings ------------------------------------------------------------ */

/* GRASS r.watershed codes 1..8 counter-clockwise from NE, by our d. */
static const int grass_code[8] = {8, 7, 6, 5, 4, 3, 2, 1};

int hydro_dir_encode(uint8_t d, bool off_grid, hydro_encoding enc)
{
    if (d >= 8) return 0;
    if (enc == HYDRO_ENC_ESRI) return 1 << d;
    return off_grid ? -grass_code[d] : grass_code[d];
}

int hydro_dir_decode(double v, hydro_encoding enc)
{
    if (!(v == v) || v != floor(v)) return -1;
    int c = (int)v;
    if (c == 0) return HYDRO_OUT;
    if (enc == HYDRO_ENC_ESRI) {
        for (int d = 0; d < 8; d++)
            if (c == 1 << d) return d;
        return -1;
    }
    if (c < 0) c = -c;
    for (int d = 0; d < 8; d++)
        if (c == grass_code[d]) return d;
    return -1;
}

/* ---- queues --------------------------------------------------------------- */

/* Doubles the capacity of the array *v of elements of size elem (from 4096),
 * for the growable queues below. */
static int grow(void **v, size_t *cap, size_t elem)
{
    size_t n = *cap ? *cap * 2 : 4096;
    void *nv = mem_realloc(*v, n * elem);
    if (!nv) return err_oom();
    *v = nv;
    *cap = n;
    return 0;
}

/* A FIFO ring of cell indexes that grows by doubling. */
typedef struct fifo {
    uint32_t *v;
    size_t cap, head, len;
} fifo;

static int fifo_push(fifo *q, uint32_t i)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 4096;
        uint32_t *v = mem_malloc(cap * sizeof *v);
        if (!v) return err_oom();
        for (size_t k = 0; k < q->len; k++)
            v[k] = q->v[(q->head + k) % q->cap];
        mem_free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    size_t at = q->head + q->len;
    if (at >= q->cap) at -= q->cap;
    q->v[at] = i;
    q->len++;
    return 0;
}

static uint32_t fifo_pop(fifo *q)
{
    uint32_t i = q->v[q->head];
    if (++q->head == q->cap) q->head = 0;
    q->len--;
    return i;
}

static void fifo_free(fifo *q)
{
    mem_free(q->v);
    memset(q, 0, sizeof *q);
}

/* A 4-ary min-heap of (elevation, index): shallower than a binary one, and
 * the four children share a cache line. The order among equal elevations
 * does not matter: the filled surface is unique. */
typedef struct heap_item {
    float z;
    uint32_t i;
} heap_item;

typedef struct heap {
    heap_item *v;
    size_t cap, len;
} heap;

static int heap_push(heap *hp, float z, uint32_t i)
{
    if (hp->len == hp->cap) {
        void *v = hp->v;
        if (grow(&v, &hp->cap, sizeof *hp->v) < 0) return -1;
        hp->v = v;
    }
    heap_item it = {z, i};
    size_t k = hp->len++;
    while (k > 0) {
        size_t p = (k - 1) / 4;
        if (!(z < hp->v[p].z)) break;
        hp->v[k] = hp->v[p];
        k = p;
    }
    hp->v[k] = it;
    return 0;
}

static heap_item heap_pop(heap *hp)
{
    heap_item top = hp->v[0], last = hp->v[--hp->len];
    size_t k = 0, n = hp->len;
    for (;;) {
        size_t c = 4 * k + 1, end = c + 4 < n ? c + 4 : n;
        if (c >= n) break;
        size_t m = c;
        for (size_t j = c + 1; j < end; j++)
            if (hp->v[j].z < hp->v[m].z) m = j;
        if (!(hp->v[m].z < last.z)) break;
        hp->v[k] = hp->v[m];
        k = m;
    }
    if (n) hp->v[k] = last;
    return top;
}

/* A radix heap (Ahuja, Mehlhorn, Orlin and Tarjan 1990) of cell indexes by
 * elevation, for fill's priority flood, whose keys never fall below the
 * last one popped: every cell is queued at the elevation it keeps or is
 * raised to, never below the cell it was reached from. Keys are the float
 * bits mapped to unsigned integers in the same order; bucket b holds the
 * keys whose highest bit differing from the last popped key is bit b - 1
 * (bucket 0: equal to it). A push is an append; a pop takes from bucket 0
 * and, when it is empty, moves the smallest non-empty bucket down, so each
 * cell moves at most 32 times and in practice once or twice, in sequential
 * passes instead of a binary heap's scattered sift-downs.
 *
 * Memory: a bucket emptied by a move gives its array back when it is
 * larger than RHEAP_KEEP items (it only grows while it has items, so it
 * holds at most twice what it has), and bucket 0, which pops shrink,
 * halves when it is less than a quarter full: at most 4 x 8 bytes per
 * queued cell plus 33 x RHEAP_KEEP x 8 bytes (1 MiB), instead of every
 * bucket keeping the largest size it ever had. */
#define RHEAP_KEEP 4096
typedef struct rheap_item {
    uint32_t key, i;
} rheap_item;

typedef struct rheap {
    rheap_item *b[33];
    size_t len[33], cap[33], n;
    uint32_t last;
} rheap;

static inline uint32_t rheap_key(float z)
{
    uint32_t u;
    memcpy(&u, &z, sizeof u);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static inline int rheap_bucket(uint32_t key, uint32_t last)
{
    return key == last ? 0 : 32 - __builtin_clz(key ^ last);
}

static int rheap_push(rheap *r, float z, uint32_t i)
{
    uint32_t key = rheap_key(z);
    if (key < r->last) key = r->last; /* never: kept monotone by the caller */
    int b = rheap_bucket(key, r->last);
    if (r->len[b] == r->cap[b]) {
        void *v = r->b[b];
        if (grow(&v, &r->cap[b], sizeof *r->b[b]) < 0) return -1;
        r->b[b] = v;
    }
    r->b[b][r->len[b]++] = (rheap_item){key, i};
    r->n++;
    return 0;
}

/* The index of a cell with the smallest key (r->n > 0), or UINT32_MAX out
 * of memory (error set). */
static uint32_t rheap_pop(rheap *r)
{
    if (!r->len[0]) {
        int b = 1;
        while (b < 33 && !r->len[b])
            b++;
        if (b == 33 || !r->b[b]) { /* never with r->n > 0 */
            err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "fill: pop from an empty queue");
            return UINT32_MAX;
        }
        rheap_item *v = r->b[b];
        size_t m = r->len[b];
        uint32_t min = v[0].key;
        for (size_t k = 1; k < m; k++)
            if (v[k].key < min) min = v[k].key;
        r->last = min;
        for (size_t k = 0; k < m; k++) {
            int nb = rheap_bucket(v[k].key, min); /* < b, so no growth of b */
            if (r->len[nb] == r->cap[nb]) {
                void *nv = r->b[nb];
                if (grow(&nv, &r->cap[nb], sizeof *r->b[nb]) < 0)
                    return UINT32_MAX; /* the caller gives up; rheap_free frees all */
                r->b[nb] = nv;
            }
            r->b[nb][r->len[nb]++] = v[k];
        }
        r->len[b] = 0;
        if (r->cap[b] > RHEAP_KEEP) {
            mem_free(r->b[b]);
            r->b[b] = NULL;
            r->cap[b] = 0;
        }
    }
    r->n--;
    uint32_t i = r->b[0][--r->len[0]].i;
    if (r->cap[0] > RHEAP_KEEP && r->len[0] < r->cap[0] / 4) {
        void *nv = mem_realloc(r->b[0], r->cap[0] / 2 * sizeof *r->b[0]);
        if (nv) { /* a failed shrink keeps the larger array */
            r->b[0] = nv;
            r->cap[0] /= 2;
        }
    }
    return i;
}

static void rheap_free(rheap *r)
{
    for (int b = 0; b < 33; b++)
        mem_free(r->b[b]);
    memset(r, 0, sizeof *r);
}

/* ---- fill ----------------------------------------------------------------- */

#define BIT_GET(b, i) ((b)[(i) >> 3] & (1u << ((i)&7)))
#define BIT_SET(b, i) ((b)[(i) >> 3] |= (uint8_t)(1u << ((i)&7)))

/* A LIFO stack of cell indexes that grows by doubling. */
typedef struct stack {
    uint32_t *v;
    size_t cap, len;
} stack;

static int stack_push(stack *st, uint32_t i)
{
    if (st->len == st->cap) {
        void *v = st->v;
        if (grow(&v, &st->cap, sizeof *st->v) < 0) return -1;
        st->v = v;
    }
    st->v[st->len++] = i;
    return 0;
}

/* Slope cells (Zhou, Sun and Fu 2016): a cell higher than the cell it was
 * reached from keeps its own elevation, so it needs no priority order
 * itself; its neighbours do only when one of them is lower (or, with an
 * epsilon, not higher). trace expands such cells from a stack and hands a
 * cell to the priority queue only when it has a lower open neighbour,
 * which keeps most of a DEM's cells out of the heap. */
static int trace(const int64_t off[8], const float *dem, uint8_t *closed, stack *st, rheap *open,
                 bool strict)
{
    while (st->len) {
        uint32_t c = st->v[--st->len];
        float zc = dem[c];
        int64_t nb[8];
        bool defer = false;
        /* Never a frame cell: those are all closed as seeds before the
         * flood starts, so every neighbour is on the grid. */
        for (int d = 0; d < 8; d++)
            nb[d] = (int64_t)c + off[d];
        for (int d = 0; d < 8; d++) {
            if (BIT_GET(closed, nb[d])) {
                nb[d] = -1;
                continue;
            }
            if (dem[nb[d]] < zc || (strict && dem[nb[d]] == zc)) defer = true;
        }
        if (defer) {
            if (rheap_push(open, zc, c) < 0) return -1;
            continue;
        }
        for (int d = 0; d < 8; d++) {
            if (nb[d] < 0) continue;
            BIT_SET(closed, nb[d]);
            if (stack_push(st, (uint32_t)nb[d]) < 0) return -1;
        }
    }
    return 0;
}

/* How far ahead in the depression queue fill prefetches the DEM: the cells
 * are far apart in memory, and waiting for them is most of fill's time. */
#define PREFETCH_AHEAD 16

int hydro_fill(const hydro_grid *g, float *dem, double epsilon, size_t *raised)
{
    size_t n = g->w * g->h, count = 0;
    uint8_t *closed = mem_calloc(n / 8 + 1, 1);
    rheap open = {0};
    fifo pit = {0};
    if (closed) hydro_hint_huge(closed, n / 8 + 1);
    stack slope = {0};
    int64_t off[8];
    int rc = -1;

    if (!closed) {
        err_oom();
        goto cleanup;
    }
    offsets(g, off);
    const double inv_w = 1.0 / (double)g->w;
    /* Seeds: the valid cells of the frame and those next to nodata. Only
     * nodata cells are looked around, so a DEM without nodata costs one
     * pass. */
    for (size_t i = 0; i < n; i++)
        if (isnan(dem[i])) BIT_SET(closed, i);
    for (size_t y = 0; y < g->h; y++)
        for (size_t x = 0; x < g->w; x++) {
            size_t i = y * g->w + x;
            bool frame = x == 0 || y == 0 || x + 1 == g->w || y + 1 == g->h;
            if (frame && !BIT_GET(closed, i)) {
                BIT_SET(closed, i);
                if (rheap_push(&open, dem[i], (uint32_t)i) < 0) goto cleanup;
            }
            if (!isnan(dem[i])) continue;
            int64_t nb[8];
            neighbours(g, off, i, x, y, nb);
            for (int d = 0; d < 8; d++) {
                if (nb[d] < 0 || BIT_GET(closed, nb[d])) continue;
                BIT_SET(closed, nb[d]);
                if (rheap_push(&open, dem[nb[d]], (uint32_t)nb[d]) < 0) goto cleanup;
            }
        }
    while (pit.len || open.n) {
        uint32_t c = pit.len ? fifo_pop(&pit) : rheap_pop(&open);
        if (c == UINT32_MAX) goto cleanup;
        if (pit.len > PREFETCH_AHEAD) { /* the rows around a cell popped soon */
            size_t at = pit.head + PREFETCH_AHEAD;
            uint32_t f = pit.v[at >= pit.cap ? at - pit.cap : at];
            __builtin_prefetch(&dem[f - g->w]);
            __builtin_prefetch(&dem[f]);
            __builtin_prefetch(&dem[f + g->w]);
        }
        size_t y = row_of(g, inv_w, c), x = c - y * g->w;
        float zc = dem[c], floor_z = zc;
        int64_t nbs[8];
        if (epsilon > 0) {
            floor_z = (float)(zc + epsilon);
            if (!(floor_z > zc)) floor_z = nextafterf(zc, INFINITY);
        }
        neighbours(g, off, c, x, y, nbs);
        for (int d = 0; d < 8; d++) {
            int64_t nb = nbs[d];
            if (nb < 0 || BIT_GET(closed, nb)) continue;
            BIT_SET(closed, nb);
            if (dem[nb] <= zc) {
                if (dem[nb] != floor_z) count++;
                dem[nb] = floor_z;
                if (fifo_push(&pit, (uint32_t)nb) < 0) goto cleanup;
            } else if (stack_push(&slope, (uint32_t)nb) < 0) {
                goto cleanup;
            }
        }
        if (trace(off, dem, closed, &slope, &open, epsilon > 0) < 0) goto cleanup;
    }
    if (raised) *raised = count;
    rc = 0;
cleanup:
    mem_free(closed);
    rheap_free(&open);
    mem_free(slope.v);
    fifo_free(&pit);
    return rc;
}

/* ---- breach --------------------------------------------------------------- */

/* qsort has no context argument: the DEM the pits are sorted by. */
static const float *cmp_dem;

static int by_elevation(const void *a, const void *b)
{
    float za = cmp_dem[*(const uint32_t *)a], zb = cmp_dem[*(const uint32_t *)b];
    return za < zb   ? -1
           : za > zb ? 1
                     : (*(const uint32_t *)a > *(const uint32_t *)b) -
                           (*(const uint32_t *)a < *(const uint32_t *)b);
}

/* True when valid cell (x, y) is on the frame or next to nodata. */
static bool is_border(const hydro_grid *g, const float *dem, size_t x, size_t y)
{
    if (x == 0 || y == 0 || x + 1 == g->w || y + 1 == g->h) return true;
    for (int d = 0; d < 8; d++)
        if (isnan(dem[neighbour(g, x, y, d)])) return true;
    return false;
}

int hydro_breach(const hydro_grid *g, float *dem, unsigned max_length, double epsilon,
                 size_t *changed)
{
    size_t n = g->w * g->h, count = 0, n_pits = 0;
    float *cost = mem_malloc(n * sizeof *cost + 1);
    uint8_t *from = mem_malloc(n + 1); /* direction back towards the pit */
    uint32_t *len = mem_malloc(n * sizeof *len + 1), *pits = NULL;
    stack touched = {0};
    heap open = {0};
    int64_t off[8];
    int rc = -1;

    if (!cost || !from || !len) {
        err_oom();
        goto cleanup;
    }
    offsets(g, off);
    for (size_t i = 0; i < n; i++)
        cost[i] = INFINITY;
    /* Pits: interior cells without a lower neighbour. */
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0;
        for (size_t y = 1; y + 1 < g->h; y++)
            for (size_t x = 1; x + 1 < g->w; x++) {
                size_t i = y * g->w + x;
                if (isnan(dem[i]) || is_border(g, dem, x, y)) continue;
                bool lower = false;
                for (int d = 0; d < 8 && !lower; d++)
                    lower = dem[(int64_t)i + off[d]] < dem[i];
                if (lower) continue;
                if (pass) pits[k] = (uint32_t)i;
                k++;
            }
        if (!pass) {
            n_pits = k;
            if (!(pits = mem_malloc(n_pits * sizeof *pits + 1))) {
                err_oom();
                goto cleanup;
            }
        }
    }
    cmp_dem = dem;
    qsort(pits, n_pits, sizeof *pits, by_elevation);
    for (size_t k = 0; k < n_pits; k++) {
        uint32_t p = pits[k];
        size_t py = (uint32_t)p / (uint32_t)g->w, px = p - py * g->w;
        float zp = dem[p];
        bool lower = false;
        int64_t nbs[8];
        neighbours(g, off, p, px, py, nbs);
        for (int d = 0; d < 8 && !lower; d++)
            lower = dem[nbs[d]] < zp;
        if (lower) continue; /* drained by an earlier breach */
        /* Dijkstra from the pit: a cell costs how far it stands above it. */
        int64_t target = -1;
        cost[p] = 0;
        len[p] = 0;
        if (stack_push(&touched, p) < 0 || heap_push(&open, 0, p) < 0) goto cleanup;
        while (open.len) {
            heap_item it = heap_pop(&open);
            uint32_t c = it.i;
            if (it.z > cost[c]) continue; /* a stale entry */
            size_t y = (uint32_t)c / (uint32_t)g->w, x = c - y * g->w;
            if (c != p && (dem[c] < zp || is_border(g, dem, x, y))) {
                target = c;
                break;
            }
            if (max_length && len[c] >= max_length) continue;
            neighbours(g, off, c, x, y, nbs);
            for (int d = 0; d < 8; d++) {
                int64_t nb = nbs[d];
                if (nb < 0 || isnan(dem[nb])) continue;
                float step = dem[nb] > zp ? dem[nb] - zp : 0;
                float nc = cost[c] + step;
                if (nc < cost[nb]) {
                    if (cost[nb] == INFINITY && stack_push(&touched, (uint32_t)nb) < 0)
                        goto cleanup;
                    cost[nb] = nc;
                    len[nb] = len[c] + 1;
                    from[nb] = (uint8_t)((d + 4) & 7);
                    if (heap_push(&open, nc, (uint32_t)nb) < 0) goto cleanup;
                }
            }
        }
        if (target >= 0) {
            /* Cut the path from the pit down to the target: walk back from the
             * target, then lower each cell below the one before it. The path
             * is at most len[target] cells; reuse the stack's tail for it. */
            size_t base = touched.len, m = 0;
            for (int64_t c = target; c != p; c += off[from[c]]) {
                if (stack_push(&touched, (uint32_t)c) < 0) goto cleanup;
                m++;
            }
            /* A target below the pit already drains: it is left as it is
             * (the cell before it may end level with it, a flat that D8
             * resolves). An edge target above the pit is cut as well. */
            float prev = zp;
            for (size_t j = 0; j < m; j++) {
                uint32_t c = touched.v[base + m - 1 - j];
                if ((int64_t)c == target && dem[c] < zp) break;
                float want = nextafterf(prev, -INFINITY);
                if (dem[c] > want) {
                    dem[c] = want;
                    count++;
                }
                prev = dem[c];
            }
            touched.len = base;
        }
        /* Reset what this search touched. */
        for (size_t j = 0; j < touched.len; j++)
            cost[touched.v[j]] = INFINITY;
        touched.len = 0;
        open.len = 0;
    }
    mem_free(cost);
    cost = NULL;
    mem_free(from);
    from = NULL;
    mem_free(len);
    len = NULL;
    size_t raised = 0;
    if (hydro_fill(g, dem, epsilon, &raised) < 0) goto cleanup;
    if (changed) *changed = count + raised;
    rc = 0;
cleanup:
    mem_free(cost);
    mem_free(from);
    mem_free(len);
    mem_free(pits);
    mem_free(touched.v);
    mem_free(open.v);
    return rc;
}

/* ---- D8 ------------------------------------------------------------------- */

/* Steepest descent of valid cell c at (x, y) (drop times inv[d], the
 * inverse distance), HYDRO_OUT when no neighbour is lower; *off gets the
 * first off-grid or nodata direction (-1 if none). */
static inline uint8_t steepest(const hydro_grid *g, const int64_t offs[8], const double inv[8],
                               const float *dem, size_t c, size_t x, size_t y, int *off)
{
    float z = dem[c];
    double best = 0;
    uint8_t dir = HYDRO_OUT;
    int64_t nb[8];
    *off = -1;
    neighbours(g, offs, c, x, y, nb);
    for (int d = 0; d < 8; d++) {
        if (nb[d] < 0 || isnan(dem[nb[d]])) {
            if (*off < 0) *off = d;
            continue;
        }
        float zn = dem[nb[d]];
        if (zn >= z) continue;
        double s = (double)(z - zn) * inv[d];
        if (s > best) {
            best = s;
            dir = (uint8_t)d;
        }
    }
    return dir;
}

/* Flat resolution (Barnes, Lehman and Mulla 2014). A low edge is a cell
 * with a direction next to an equal cell without one; a high edge a cell
 * without a direction next to a higher one. A flat is the set of cells of
 * one elevation connected to a low edge; mask[i] becomes the combined
 * gradient (twice the distance from the low edges plus the distance from
 * the high edges, inverted) and each flat cell drains to the neighbour of
 * its flat with the least mask. Each flat is resolved whole (flooded, both
 * distances, directions) before the next one, so its cells are still in
 * cache for every step instead of each step sweeping the whole grid. A
 * neighbour of a flat's cell is in the same flat exactly when it has the
 * same elevation (it is connected to it), so flats need no labels: one bit
 * per cell marks the cells already flooded. */
static int resolve_flats(const hydro_grid *g, const float *dem, uint8_t *dir, size_t n_out,
                         size_t *sinks)
{
    size_t w = g->w, n = w * g->h, resolved = 0;
    uint8_t *seen = NULL;
    int32_t *mask = NULL;
    fifo low = {0}, q = {0};
    stack cells = {0}; /* the current flat's cells in flood order */
    int64_t off[8], nbs[8];
    const double inv_w = 1.0 / (double)w;
    int rc = -1;

    offsets(g, off);
    if (!n_out || !w) goto count_sinks; /* an empty grid has no flats */
    /* The low edges in raster order: the seeds of the flats. */
    for (size_t y = 0; y < g->h; y++)
        for (size_t x = 0; x < w; x++) {
            size_t i = y * w + x;
            if (dir[i] >= 8) continue;
            if (y > 0 && x > 0 && y + 1 < g->h && x + 1 < w) {
                /* look at the directions first: most cells have no flat
                 * neighbour at all */
                bool out = false;
                for (int d = 0; d < 8; d++)
                    out |= dir[(int64_t)i + off[d]] == HYDRO_OUT;
                if (!out) continue;
            }
            neighbours(g, off, i, x, y, nbs);
            for (int d = 0; d < 8; d++)
                if (nbs[d] >= 0 && dir[nbs[d]] == HYDRO_OUT && dem[nbs[d]] == dem[i]) {
                    if (fifo_push(&low, (uint32_t)i) < 0) goto cleanup;
                    break;
                }
        }
    if (!low.len) goto count_sinks;
    seen = mem_calloc(n / 8 + 1, 1);
    mask = mem_calloc(n, sizeof *mask);
    if (!seen || !mask) {
        err_oom();
        goto cleanup;
    }
    hydro_hint_huge(seen, n / 8 + 1);
    hydro_hint_huge(mask, n * sizeof *mask);
    for (size_t k = 0; k < low.len; k++) {
        uint32_t s = low.v[k]; /* low is never popped: no wrap */
        if (BIT_GET(seen, s)) continue;
        BIT_SET(seen, s);
        const float zf = dem[s];
        /* The flat: equal elevations flooded from s (cells is the queue). */
        cells.len = 0;
        if (stack_push(&cells, s) < 0) goto cleanup;
        for (size_t at = 0; at < cells.len; at++) {
            uint32_t c = cells.v[at];
            neighbours_of(g, off, inv_w, c, nbs);
            for (int d = 0; d < 8; d++) {
                int64_t nb = nbs[d];
                if (nb < 0 || dem[nb] != zf || BIT_GET(seen, nb)) continue; /* NaN: != */
                BIT_SET(seen, nb);
                if (stack_push(&cells, (uint32_t)nb) < 0) goto cleanup;
            }
        }
        /* Away from higher terrain: BFS in rounds from the high edges. */
        uint32_t loops = 1, height = 0;
        for (size_t at = 0; at < cells.len; at++) {
            uint32_t c = cells.v[at];
            if (dir[c] != HYDRO_OUT) continue;
            neighbours_of(g, off, inv_w, c, nbs);
            for (int d = 0; d < 8; d++) {
                int64_t nb = nbs[d];
                if (nb < 0 || dir[nb] == HYDRO_NODATA || !(dem[c] < dem[nb])) continue;
                mask[c] = 1;
                if (fifo_push(&q, c) < 0) goto cleanup;
                break;
            }
        }
        for (; q.len; loops++)
            for (size_t r = 0, round = q.len; r < round; r++) {
                uint32_t c = fifo_pop(&q);
                if (height < loops) height = loops;
                neighbours_of(g, off, inv_w, c, nbs);
                for (int d = 0; d < 8; d++) {
                    int64_t nb = nbs[d];
                    if (nb < 0 || dem[nb] != zf || mask[nb] || dir[nb] != HYDRO_OUT) continue;
                    mask[nb] = (int32_t)loops + 1;
                    if (fifo_push(&q, (uint32_t)nb) < 0) goto cleanup;
                }
            }
        /* Towards lower terrain from the flat's low edges, combined with
         * the inverted away gradient; the sign of mask marks cells not yet
         * visited by this pass. */
        for (size_t at = 0; at < cells.len; at++) {
            uint32_t c = cells.v[at];
            mask[c] = -mask[c];
            if (dir[c] == HYDRO_OUT) continue;
            neighbours_of(g, off, inv_w, c, nbs);
            for (int d = 0; d < 8; d++)
                if (nbs[d] >= 0 && dem[nbs[d]] == zf && dir[nbs[d]] == HYDRO_OUT) {
                    if (fifo_push(&q, c) < 0) goto cleanup;
                    break;
                }
        }
        for (loops = 1; q.len; loops++)
            for (size_t r = 0, round = q.len; r < round; r++) {
                uint32_t c = fifo_pop(&q);
                if (mask[c] > 0) continue;
                if (mask[c] < 0)
                    mask[c] = (int32_t)height + mask[c] + 2 * (int32_t)loops;
                else
                    mask[c] = 2 * (int32_t)loops;
                neighbours_of(g, off, inv_w, c, nbs);
                for (int d = 0; d < 8; d++) {
                    int64_t nb = nbs[d];
                    if (nb < 0 || dem[nb] != zf || mask[nb] > 0 || dir[nb] != HYDRO_OUT) continue;
                    if (fifo_push(&q, (uint32_t)nb) < 0) goto cleanup;
                }
            }
        /* Directions over the mask, within the flat. */
        for (size_t at = 0; at < cells.len; at++) {
            uint32_t c = cells.v[at];
            if (dir[c] != HYDRO_OUT) continue;
            int32_t best = mask[c];
            uint8_t bd = HYDRO_OUT;
            neighbours_of(g, off, inv_w, c, nbs);
            for (int d = 0; d < 8; d++) {
                int64_t nb = nbs[d];
                if (nb < 0 || dem[nb] != zf) continue;
                if (mask[nb] < best ||
                    (mask[nb] == best && bd != HYDRO_OUT && !is_diag(d) && is_diag(bd))) {
                    best = mask[nb];
                    bd = (uint8_t)d;
                }
            }
            dir[c] = bd;
            resolved += bd != HYDRO_OUT;
        }
    }
count_sinks:
    if (sinks) *sinks = n_out - resolved;
    rc = 0;
cleanup:
    mem_free(seen);
    mem_free(mask);
    mem_free(cells.v);
    fifo_free(&low);
    fifo_free(&q);
    return rc;
}

/* D8 of an interior cell (all 8 neighbours on the grid): steepest() without
 * bounds checks. A NaN neighbour never compares lower, so nodata is looked
 * for only when no neighbour is lower. */
static inline uint8_t steepest_inner(const int64_t offs[8], const double inv[8], const float *dem,
                                     size_t c)
{
    float z = dem[c];
    double best = 0;
    uint8_t dir = HYDRO_OUT;
    for (int d = 0; d < 8; d++) {
        float zn = dem[(int64_t)c + offs[d]];
        double s = (double)(z - zn) * inv[d];
        if (zn < z && s > best) {
            best = s;
            dir = (uint8_t)d;
        }
    }
    if (dir == HYDRO_OUT)
        for (int d = 0; d < 8; d++)
            if (isnan(dem[(int64_t)c + offs[d]])) return (uint8_t)d;
    return dir;
}

int hydro_d8(const hydro_grid *g, const float *dem, uint8_t *dir, size_t *sinks)
{
    int64_t offs[8];
    double inv[8];
    size_t n_out = 0, w = g->w;
    offsets(g, offs);
    for (size_t y = 0; y < g->h; y++) {
        for (int d = 0; d < 8; d++)
            inv[d] = 1 / dist(g, y, d);
        bool inner = y > 0 && y + 1 < g->h;
        for (size_t x = 0; x < w; x++) {
            size_t i = y * w + x;
            uint8_t d;
            if (isnan(dem[i])) {
                d = HYDRO_NODATA;
            } else if (inner && x > 0 && x + 1 < w) {
                d = steepest_inner(offs, inv, dem, i);
            } else {
                int off;
                d = steepest(g, offs, inv, dem, i, x, y, &off);
                if (d == HYDRO_OUT && off >= 0) d = (uint8_t)off;
            }
            n_out += d == HYDRO_OUT;
            dir[i] = d;
        }
    }
    return resolve_flats(g, dem, dir, n_out, sinks);
}

size_t hydro_d8_normalize(const hydro_grid *g, uint8_t *dir)
{
    size_t changed = 0;
    for (size_t y = 0; y < g->h; y++)
        for (size_t x = 0; x < g->w; x++) {
            size_t i = y * g->w + x;
            if (dir[i] >= 8) continue;
            int64_t nb = neighbour(g, x, y, dir[i]);
            if (nb < 0 || dir[nb] == HYDRO_NODATA) {
                dir[i] = HYDRO_OUT;
                changed++;
            }
        }
    return changed;
}

/* ---- D-infinity ------------------------------------------------------------ */

/* The angle of neighbour ccw (0 = E, 1 = NE, ... 7 = SE, counter-clockwise)
 * from a cell on row y: multiples of pi / 4 only for square cells. */
static double ccw_angle(const hydro_grid *g, size_t y, int ccw)
{
    double diag = atan2(g->dy, g->dx[y]);
    switch (ccw & 7) {
    case 0:
        return 0;
    case 1:
        return diag;
    case 2:
        return M_PI / 2;
    case 3:
        return M_PI - diag;
    case 4:
        return M_PI;
    case 5:
        return M_PI + diag;
    case 6:
        return 3 * M_PI / 2;
    default:
        return 2 * M_PI - diag;
    }
}

int hydro_dinf(const hydro_grid *g, const float *dem, const uint8_t *d8, float *angle)
{
    /* Facets: cardinal neighbour, diagonal neighbour, base angle, sign. */
    static const struct {
        int card, diag;
        double base, sign;
    } facet[8] = {
        {0, 7, 0, 1},    {6, 7, M_PI / 2, -1},     {6, 5, M_PI / 2, 1},     {4, 5, M_PI, -1},
        {4, 3, M_PI, 1}, {2, 3, 3 * M_PI / 2, -1}, {2, 1, 3 * M_PI / 2, 1}, {0, 1, 2 * M_PI, -1},
    };
    for (size_t y = 0; y < g->h; y++) {
        double dx = g->dx[y], dy = g->dy;
        for (size_t x = 0; x < g->w; x++) {
            size_t i = y * g->w + x;
            if (isnan(dem[i])) {
                angle[i] = NAN;
                continue;
            }
            double z0 = dem[i], best_s = 0, best_a = -1;
            for (int f = 0; f < 8; f++) {
                int64_t n1 = neighbour(g, x, y, facet[f].card);
                int64_t n2 = neighbour(g, x, y, facet[f].diag);
                if (n1 < 0 || n2 < 0 || isnan(dem[n1]) || isnan(dem[n2])) continue;
                bool east_west = hydro_drow[facet[f].card] == 0;
                double d1 = east_west ? dx : dy, d2 = east_west ? dy : dx;
                double s1 = (z0 - dem[n1]) / d1, s2 = (dem[n1] - dem[n2]) / d2;
                double r = atan2(s2, s1), s = sqrt(s1 * s1 + s2 * s2), rmax = atan2(d2, d1);
                if (r < 0) {
                    r = 0;
                    s = s1;
                } else if (r > rmax) {
                    r = rmax;
                    s = (z0 - dem[n2]) / sqrt(d1 * d1 + d2 * d2);
                }
                if (s > best_s) {
                    best_s = s;
                    best_a = facet[f].base + facet[f].sign * r;
                }
            }
            if (best_a < 0) {
                /* No downslope facet: the D8 direction (flats, edges). */
                uint8_t d = d8[i];
                if (d >= 8) {
                    best_a = -1;
                } else {
                    best_a = ccw_angle(g, y, (8 - d) % 8);
                }
            }
            if (best_a >= 2 * M_PI) best_a -= 2 * M_PI;
            angle[i] = (float)best_a;
        }
    }
    return 0;
}

/* ---- accumulation ----------------------------------------------------------- */

#define DONE 0x80

int hydro_accumulate_d8(const hydro_grid *g, const uint8_t *dir, double *acc)
{
    size_t n = g->w * g->h, valid = 0, done = 0;
    int64_t off[8];
    uint8_t *indeg = mem_calloc(n, 1);
    if (!indeg) return err_oom();
    hydro_hint_huge(indeg, n);
    for (int d = 0; d < 8; d++)
        off[d] = (int64_t)hydro_drow[d] * (int64_t)g->w + hydro_dcol[d];
    for (size_t i = 0; i < n; i++) {
        if (dir[i] == HYDRO_NODATA) continue;
        valid++;
        if (dir[i] < 8) indeg[(int64_t)i + off[dir[i]]]++;
    }
    for (size_t i = 0; i < n; i++) {
        if (indeg[i] || dir[i] == HYDRO_NODATA) continue;
        /* A source: follow the path while each cell has all its inflows. */
        size_t c = i;
        for (;;) {
            indeg[c] = DONE;
            done++;
            uint8_t d = dir[c];
            if (d >= 8) break;
            size_t t = (size_t)((int64_t)c + off[d]);
            acc[t] += acc[c];
            if (--indeg[t]) break;
            c = t;
        }
    }
    mem_free(indeg);
    if (done != valid)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, NULL,
                       "flow directions contain a loop (%zu of %zu cells never drain)",
                       valid - done, valid);
    return 0;
}

/* The two receivers of angle a and their shares; n2 < 0 when all goes to
 * the first. Receivers off the grid or nodata lose their share. */
static void dinf_split(const hydro_grid *g, const float *angle, size_t x, size_t y, int64_t *r1,
                       double *p1, int64_t *r2, double *p2)
{
    double a = angle[y * g->w + x];
    *r1 = *r2 = -1;
    *p1 = *p2 = 0;
    if (!(a >= 0)) return;
    /* The sector of a between two neighbours, and how far across it. */
    int k = 0;
    while (k < 7 && a >= ccw_angle(g, y, k + 1))
        k++;
    double lo = ccw_angle(g, y, k), hi = k == 7 ? 2 * M_PI : ccw_angle(g, y, k + 1);
    double frac = (a - lo) / (hi - lo);
    /* Angles are stored as Float32: one read back may fall a few ulps
     * either side of a neighbour's angle. */
    if (frac < 1e-5) frac = 0;
    if (frac > 1 - 1e-5) frac = 1;
    int64_t n1 = neighbour(g, x, y, (8 - k) % 8), n2 = neighbour(g, x, y, (8 - (k + 1) % 8) % 8);
    if (n1 >= 0 && !isnan(angle[n1]) && frac < 1) {
        *r1 = n1;
        *p1 = 1 - frac;
    }
    if (n2 >= 0 && !isnan(angle[n2]) && frac > 0) {
        *r2 = n2;
        *p2 = frac;
    }
}

int hydro_accumulate_dinf(const hydro_grid *g, const float *angle, double *acc)
{
    size_t n = g->w * g->h, valid = 0, done = 0;
    uint8_t *indeg = mem_calloc(n, 1);
    fifo q = {0};
    int rc = -1;
    if (!indeg) return err_oom();
    for (size_t y = 0; y < g->h; y++)
        for (size_t x = 0; x < g->w; x++) {
            int64_t r1, r2;
            double p1, p2;
            if (isnan(angle[y * g->w + x])) continue;
            valid++;
            dinf_split(g, angle, x, y, &r1, &p1, &r2, &p2);
            if (r1 >= 0) indeg[r1]++;
            if (r2 >= 0) indeg[r2]++;
        }
    for (size_t i = 0; i < n; i++)
        if (!indeg[i] && !isnan(angle[i]) && fifo_push(&q, (uint32_t)i) < 0) goto cleanup;
    while (q.len) {
        uint32_t c = fifo_pop(&q);
        size_t y = (uint32_t)c / (uint32_t)g->w, x = c - y * g->w;
        int64_t r[2];
        double p[2];
        done++;
        dinf_split(g, angle, x, y, &r[0], &p[0], &r[1], &p[1]);
        for (int k = 0; k < 2; k++) {
            if (r[k] < 0) continue;
            acc[r[k]] += p[k] * acc[c];
            if (!--indeg[r[k]] && fifo_push(&q, (uint32_t)r[k]) < 0) goto cleanup;
        }
    }
    if (done != valid) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, NULL,
                "D-infinity directions contain a loop (%zu of %zu cells never drain)", valid - done,
                valid);
        goto cleanup;
    }
    rc = 0;
cleanup:
    mem_free(indeg);
    fifo_free(&q);
    return rc;
}

/* ---- streams ------------------------------------------------------------------ */

int hydro_strahler(const hydro_grid *g, const uint8_t *dir, const double *acc, double threshold,
                   uint8_t *order)
{
    size_t n = g->w * g->h;
    int64_t off[8];
    uint8_t *indeg = mem_calloc(n, 1), *maxin = mem_calloc(n, 1), *cnt = mem_calloc(n, 1);
    int rc = -1;
    if (!indeg || !maxin || !cnt) {
        err_oom();
        goto cleanup;
    }
    for (int d = 0; d < 8; d++)
        off[d] = (int64_t)hydro_drow[d] * (int64_t)g->w + hydro_dcol[d];
#define IS_STREAM(i) (dir[i] != HYDRO_NODATA && acc[i] >= threshold)
    for (size_t i = 0; i < n; i++) {
        order[i] = 0;
        if (IS_STREAM(i) && dir[i] < 8) {
            size_t t = (size_t)((int64_t)i + off[dir[i]]);
            if (IS_STREAM(t)) indeg[t]++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!IS_STREAM(i) || indeg[i]) continue;
        size_t c = i;
        for (;;) {
            unsigned o = maxin[c] ? maxin[c] + (cnt[c] >= 2) : 1;
            order[c] = (uint8_t)(o > 255 ? 255 : o);
            indeg[c] = DONE;
            if (dir[c] >= 8) break;
            size_t t = (size_t)((int64_t)c + off[dir[c]]);
            if (!IS_STREAM(t)) break;
            if (order[c] > maxin[t]) {
                maxin[t] = order[c];
                cnt[t] = 1;
            } else if (order[c] == maxin[t] && cnt[t] < 2) {
                cnt[t]++;
            }
            if (--indeg[t]) break;
            c = t;
        }
    }
#undef IS_STREAM
    rc = 0;
cleanup:
    mem_free(indeg);
    mem_free(maxin);
    mem_free(cnt);
    return rc;
}

int hydro_stream_segments(const hydro_grid *g, const uint8_t *dir, const uint8_t *order,
                          hydro_segment_fn fn, void *arg)
{
    size_t n = g->w * g->h, cap = 0, len = 0;
    int64_t off[8];
    uint8_t *indeg = mem_calloc(n, 1);
    uint32_t *cells = NULL;
    int rc = -1;
    if (!indeg) return err_oom();
    for (int d = 0; d < 8; d++)
        off[d] = (int64_t)hydro_drow[d] * (int64_t)g->w + hydro_dcol[d];
    for (size_t i = 0; i < n; i++)
        if (order[i] && dir[i] < 8) {
            size_t t = (size_t)((int64_t)i + off[dir[i]]);
            if (order[t] && indeg[t] < 255) indeg[t]++;
        }
    for (size_t i = 0; i < n; i++) {
        /* A segment starts at a stream cell whose upstream is not exactly
         * one stream cell: a source, or a confluence, where the segments
         * above it end. */
        if (!order[i] || indeg[i] == 1) continue;
        size_t c = i;
        len = 0;
        for (;;) {
            if (len + 2 > cap) {
                void *v = cells;
                if (grow(&v, &cap, sizeof *cells) < 0) goto cleanup;
                cells = v;
            }
            cells[len++] = (uint32_t)c;
            if (dir[c] >= 8) break;
            size_t t = (size_t)((int64_t)c + off[dir[c]]);
            if (!order[t]) break;
            if (indeg[t] != 1) {
                cells[len++] = (uint32_t)t; /* ends at the confluence */
                break;
            }
            c = t;
        }
        if (len >= 2 && fn(cells, len, order[i], arg) < 0) goto cleanup;
    }
    rc = 0;
cleanup:
    mem_free(indeg);
    mem_free(cells);
    return rc;
}

/* ---- basins and catchments ------------------------------------------------------ */

/* Labels every cell with the label found at the end of its path: walk down
 * to a labelled cell (or an unlabelled outlet, whose label is none), then
 * walk the same path again writing it. UINT32_MAX marks "resolved, none". */
static void label_paths(const hydro_grid *g, const uint8_t *dir, uint32_t *label)
{
    size_t n = g->w * g->h;
    int64_t off[8];
    for (int d = 0; d < 8; d++)
        off[d] = (int64_t)hydro_drow[d] * (int64_t)g->w + hydro_dcol[d];
    for (size_t i = 0; i < n; i++) {
        if (label[i] || dir[i] == HYDRO_NODATA) continue;
        size_t c = i;
        while (!label[c] && dir[c] < 8)
            c = (size_t)((int64_t)c + off[dir[c]]);
        uint32_t l = label[c] ? label[c] : UINT32_MAX;
        for (c = i; !label[c]; c = (size_t)((int64_t)c + off[dir[c]])) {
            label[c] = l;
            if (dir[c] >= 8) break;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (label[i] == UINT32_MAX) label[i] = HYDRO_NO_LABEL;
}

int hydro_basins(const hydro_grid *g, const uint8_t *dir, uint32_t *label, uint32_t *n_basins)
{
    size_t n = g->w * g->h;
    uint32_t next = 0;
    for (size_t i = 0; i < n; i++)
        label[i] = dir[i] == HYDRO_OUT ? ++next : HYDRO_NO_LABEL;
    label_paths(g, dir, label);
    if (n_basins) *n_basins = next;
    return 0;
}

int hydro_watershed(const hydro_grid *g, const uint8_t *dir, uint32_t *label)
{
    label_paths(g, dir, label);
    return 0;
}

uint32_t hydro_snap(const hydro_grid *g, const double *acc, uint32_t i, unsigned radius)
{
    size_t y0 = i / g->w, x0 = i - y0 * g->w;
    uint32_t best = i;
    double best_acc = acc[i] == acc[i] ? acc[i] : -INFINITY;
    int64_t best_d2 = 0;
    for (int64_t dy = -(int64_t)radius; dy <= (int64_t)radius; dy++)
        for (int64_t dx = -(int64_t)radius; dx <= (int64_t)radius; dx++) {
            int64_t x = (int64_t)x0 + dx, y = (int64_t)y0 + dy;
            if (x < 0 || y < 0 || x >= (int64_t)g->w || y >= (int64_t)g->h) continue;
            size_t c = (size_t)(y * (int64_t)g->w + x);
            double a = acc[c];
            int64_t d2 = dx * dx + dy * dy;
            if (!(a == a)) continue;
            if (a > best_acc || (a == best_acc && d2 < best_d2)) {
                best = (uint32_t)c;
                best_acc = a;
                best_d2 = d2;
            }
        }
    return best;
}

/* ---- HAND and TWI ------------------------------------------------------------------ */

int hydro_hand(const hydro_grid *g, const float *dem, const uint8_t *dir, const uint8_t *stream,
               float *hand)
{
    size_t n = g->w * g->h;
    int64_t off[8];
    /* hand[] first holds the elevation of the drainage cell (NaN: none;
     * -INFINITY: not yet resolved), then is turned into the difference. */
    for (int d = 0; d < 8; d++)
        off[d] = (int64_t)hydro_drow[d] * (int64_t)g->w + hydro_dcol[d];
    for (size_t i = 0; i < n; i++) {
        if (dir[i] == HYDRO_NODATA || isnan(dem[i]))
            hand[i] = NAN;
        else
            hand[i] = stream[i] ? dem[i] : -INFINITY;
    }
    for (size_t i = 0; i < n; i++) {
        if (hand[i] != -INFINITY) continue;
        size_t c = i;
        while (hand[c] == -INFINITY && dir[c] < 8)
            c = (size_t)((int64_t)c + off[dir[c]]);
        float base = hand[c] == -INFINITY ? NAN : hand[c];
        for (c = i; hand[c] == -INFINITY; c = (size_t)((int64_t)c + off[dir[c]])) {
            hand[c] = base;
            if (dir[c] >= 8) break;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!isnan(hand[i])) hand[i] = dem[i] - hand[i];
    return 0;
}

int hydro_twi(const hydro_grid *g, const float *dem, const double *acc, float *twi)
{
    for (size_t y = 0; y < g->h; y++) {
        double dx = g->dx[y], dy = g->dy, width = (dx + dy) / 2;
        for (size_t x = 0; x < g->w; x++) {
            size_t i = y * g->w + x;
            if (isnan(dem[i]) || !(acc[i] == acc[i])) {
                twi[i] = NAN;
                continue;
            }
            /* Horn's 3 x 3 gradient; a missing neighbour takes the centre. */
            double z[8];
            for (int d = 0; d < 8; d++) {
                int64_t nb = neighbour(g, x, y, d);
                z[d] = (nb < 0 || isnan(dem[nb])) ? dem[i] : dem[nb];
            }
            /* E, SE, S, SW, W, NW, N, NE */
            double gx = ((z[7] + 2 * z[0] + z[1]) - (z[5] + 2 * z[4] + z[3])) / (8 * dx);
            double gy = ((z[3] + 2 * z[2] + z[1]) - (z[5] + 2 * z[6] + z[7])) / (8 * dy);
            double tanb = sqrt(gx * gx + gy * gy);
            if (tanb < HYDRO_TWI_MIN_TAN) tanb = HYDRO_TWI_MIN_TAN;
            double a = acc[i] * dx * dy / width;
            twi[i] = (float)log(a / tanb);
        }
    }
    return 0;
}
