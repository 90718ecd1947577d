/*
 * depgraph.c - incremental dependency graph (see depgraph.h).
 *
 * Each node lists its edges both ways (ups: what it reads; downs: who reads
 * it), each edge flagged cyclic or ordered on both sides. Traversals mark
 * nodes with a per-graph stamp instead of clearing visited sets, so a
 * search costs what it visits. All searches are iterative (explicit
 * stacks and queues): a 100,000-long chain does not overflow the stack.
 */
#include "depgraph.h"

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/strmap.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct node node;

typedef struct {
    node *n;
    bool cyclic;
} edge;

typedef struct {
    edge *v;
    size_t n, cap;
} edges;

typedef struct {
    node **v;
    size_t n;
} cycle_rec;

struct node {
    char *key;
    const char *name; /* after the namespace */
    long long rank;
    bool present;
    edges ups, downs;
    unsigned long seen, fwd;   /* traversal stamps */
    unsigned long on_cycle;    /* == graph epoch: on a cycle */
    unsigned long cycle_epoch; /* == graph epoch: cycle is current */
    const cycle_rec *cycle;    /* a cycle through this node */
    node *parent;              /* path search */
};

typedef struct {
    node *a, *b; /* a reads b */
} cyc_edge;

struct depgraph {
    pthread_mutex_t mu;
    strmap *nodes; /* key -> node * */
    cyc_edge *cyc;
    size_t n_cyc, cap_cyc;
    unsigned long epoch;       /* bumped by every change */
    unsigned long marks_epoch; /* epoch of the on_cycle marks */
    unsigned long stamp;
    cycle_rec **recs; /* cycles found in marks_epoch */
    size_t n_recs, cap_recs;
};

typedef struct {
    node **v;
    size_t n, cap;
} nstack;

static int push(nstack *s, node *n)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        node **v = cmem_reallocarray(s->v, cap, sizeof *v);
        if (!v) return cerr_oom();
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = n;
    return 0;
}

/* --- nodes and edges ------------------------------------------------------------------------ */

static int edge_add(edges *e, node *n, bool cyclic)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 2;
        edge *v = cmem_reallocarray(e->v, cap, sizeof *v);
        if (!v) return cerr_oom();
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = (edge){n, cyclic};
    return 0;
}

static void edge_del(edges *e, const node *n)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->v[i].n == n) {
            e->v[i] = e->v[--e->n];
            return;
        }
}

static void edge_flag(edges *e, const node *n, bool cyclic)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->v[i].n == n) e->v[i].cyclic = cyclic;
}

static node *node_get(depgraph *g, const char *key, long long rank_if_new)
{
    node *n = strmap_lookup(g->nodes, key);
    if (n) return n;
    if (!(n = cmem_calloc(1, sizeof *n)) || !(n->key = cmem_strdup(key))) {
        cmem_free(n);
        cerr_oom();
        return NULL;
    }
    const char *slash = strchr(n->key, '/');
    n->name = slash ? slash + 1 : n->key;
    n->rank = rank_if_new;
    if (strmap_put(g->nodes, n->key, n)) {
        cmem_free(n->key);
        cmem_free(n);
        cerr_oom();
        return NULL;
    }
    return n;
}

static void node_free(node *n)
{
    if (!n) return;
    cmem_free(n->ups.v);
    cmem_free(n->downs.v);
    cmem_free(n->key);
    cmem_free(n);
}

/* Drops n when nothing keeps it: not present and named by no one. */
static void node_gc(depgraph *g, node *n)
{
    if (n->present || n->downs.n || n->ups.n) return;
    strmap_remove(g->nodes, n->key, NULL);
    node_free(n);
}

static void cyc_del(depgraph *g, const node *a, const node *b)
{
    for (size_t i = 0; i < g->n_cyc; i++)
        if (g->cyc[i].a == a && g->cyc[i].b == b) {
            g->cyc[i] = g->cyc[--g->n_cyc];
            return;
        }
}

static int cyc_add(depgraph *g, node *a, node *b)
{
    if (g->n_cyc == g->cap_cyc) {
        size_t cap = g->cap_cyc ? g->cap_cyc * 2 : 4;
        cyc_edge *v = cmem_reallocarray(g->cyc, cap, sizeof *v);
        if (!v) return cerr_oom();
        g->cyc = v;
        g->cap_cyc = cap;
    }
    g->cyc[g->n_cyc++] = (cyc_edge){a, b};
    return 0;
}

/* --- the order ------------------------------------------------------------------------------ */

typedef struct {
    node *n;
    long long rank;
} saved_rank;

/* Makes rank(a) > rank(b) by raising a and pushing up whoever reads a
 * (through ordered edges) where the order breaks. false when that push
 * reaches b: b reads a, so a -> b closes a cycle; ranks are then restored.
 * CERR_NOMEM restores them too. */
static int try_order(node *a, node *b, bool *ordered)
{
    *ordered = false;
    if (a == b) return 0;
    if (a->rank > b->rank) {
        *ordered = true;
        return 0;
    }
    nstack st = {0};
    saved_rank *undo = NULL;
    size_t n_undo = 0, cap_undo = 0;
    int rc = 0;
    bool cycle = false;
#define SAVE(x)                                                                                    \
    do {                                                                                           \
        if (n_undo == cap_undo) {                                                                  \
            size_t c2 = cap_undo ? cap_undo * 2 : 64;                                              \
            saved_rank *u2 = cmem_reallocarray(undo, c2, sizeof *u2);                              \
            if (!u2) {                                                                             \
                rc = cerr_oom();                                                                   \
                goto restore;                                                                      \
            }                                                                                      \
            undo = u2;                                                                             \
            cap_undo = c2;                                                                         \
        }                                                                                          \
        undo[n_undo++] = (saved_rank){(x), (x)->rank};                                             \
    } while (0)
    SAVE(a);
    a->rank = b->rank + 1;
    if ((rc = push(&st, a))) goto restore;
    while (st.n) {
        node *w = st.v[--st.n];
        for (size_t i = 0; i < w->downs.n; i++) {
            if (w->downs.v[i].cyclic) continue;
            node *d = w->downs.v[i].n;
            if (d == b) {
                cycle = true;
                goto restore;
            }
            if (d->rank > w->rank) continue;
            SAVE(d);
            d->rank = w->rank + 1;
            if ((rc = push(&st, d))) goto restore;
        }
    }
#undef SAVE
    *ordered = true;
    goto done;
restore:
    (void)cycle;
    while (n_undo) {
        n_undo--;
        undo[n_undo].n->rank = undo[n_undo].rank;
    }
done:
    cmem_free(undo);
    cmem_free(st.v);
    return rc;
}

/* Cyclic edges that no longer close a cycle become ordered. */
static int retry_cyclic(depgraph *g)
{
    for (size_t i = 0; i < g->n_cyc;) {
        cyc_edge e = g->cyc[i];
        bool ordered;
        int rc = try_order(e.a, e.b, &ordered);
        if (rc) return rc;
        if (!ordered) {
            i++;
            continue;
        }
        edge_flag(&e.a->ups, e.b, false);
        edge_flag(&e.b->downs, e.a, false);
        g->cyc[i] = g->cyc[--g->n_cyc];
    }
    return 0;
}

/* Removes every upstream edge of x; true when an ordered one went (which
 * may let a cyclic edge be ordered). */
static bool drop_ups(depgraph *g, node *x)
{
    bool ordered_gone = false;
    while (x->ups.n) {
        edge e = x->ups.v[--x->ups.n];
        edge_del(&e.n->downs, x);
        if (e.cyclic)
            cyc_del(g, x, e.n);
        else
            ordered_gone = true;
        if (e.n != x) node_gc(g, e.n);
    }
    return ordered_gone;
}

static bool same_ups(const node *x, const char *const *ups, size_t n)
{
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = !strcmp(ups[i], ups[j]);
        if (dup) continue;
        distinct++;
        bool found = false;
        for (size_t k = 0; k < x->ups.n && !found; k++)
            found = !strcmp(x->ups.v[k].n->key, ups[i]);
        if (!found) return false;
    }
    return distinct == x->ups.n;
}

/* --- API ------------------------------------------------------------------------------------ */

depgraph *depgraph_new(void)
{
    depgraph *g = cmem_calloc(1, sizeof *g);
    if (!g) return NULL;
    if (!(g->nodes = strmap_new(STRMAP_BORROW_KEYS))) {
        cmem_free(g);
        return NULL;
    }
    pthread_mutex_init(&g->mu, NULL);
    g->epoch = 1;
    return g;
}

static void free_recs(depgraph *g)
{
    for (size_t i = 0; i < g->n_recs; i++) {
        cmem_free(g->recs[i]->v);
        cmem_free(g->recs[i]);
    }
    g->n_recs = 0;
}

void depgraph_free(depgraph *g)
{
    if (!g) return;
    size_t pos = 0;
    const char *k;
    void *v;
    /* keys are borrowed from the nodes: collect, then free */
    nstack all = {0};
    while (strmap_next(g->nodes, &pos, &k, &v))
        if (push(&all, v)) break;
    strmap_free(g->nodes);
    for (size_t i = 0; i < all.n; i++)
        node_free(all.v[i]);
    cmem_free(all.v);
    free_recs(g);
    cmem_free(g->recs);
    cmem_free(g->cyc);
    pthread_mutex_destroy(&g->mu);
    cmem_free(g);
}

int depgraph_set(depgraph *g, const char *key, const char *const *upstreams, size_t n)
{
    if (!key || !key[0]) return cerr_set(CERR_INVALID, "depgraph: empty key");
    int rc = 0;
    pthread_mutex_lock(&g->mu);
    node *x = node_get(g, key, 0);
    if (!x) {
        rc = CERR_NOMEM;
        goto out;
    }
    if (x->present && same_ups(x, upstreams, n)) goto out;
    x->present = true;
    g->epoch++;
    bool ordered_gone = drop_ups(g, x);
    for (size_t i = 0; i < n; i++) {
        if (!upstreams[i] || !upstreams[i][0]) continue;
        /* a new placeholder starts just below its reader: ordered at once */
        node *u = node_get(g, upstreams[i], x->rank - 1);
        if (!u) {
            rc = CERR_NOMEM;
            break;
        }
        bool dup = false;
        for (size_t k = 0; k < x->ups.n && !dup; k++)
            dup = x->ups.v[k].n == u;
        if (dup) continue;
        bool ordered;
        if ((rc = try_order(x, u, &ordered))) break;
        if ((rc = edge_add(&x->ups, u, !ordered))) break;
        if ((rc = edge_add(&u->downs, x, !ordered))) {
            x->ups.n--;
            break;
        }
        if (!ordered && (rc = cyc_add(g, x, u))) {
            x->ups.n--;
            u->downs.n--;
            break;
        }
    }
    if (rc) {
        drop_ups(g, x); /* documented: present without edges */
        rc = cerr_oom();
    } else if (ordered_gone && g->n_cyc) {
        rc = retry_cyclic(g);
    }
out:
    pthread_mutex_unlock(&g->mu);
    return rc;
}

void depgraph_remove(depgraph *g, const char *key)
{
    pthread_mutex_lock(&g->mu);
    node *x = key ? strmap_lookup(g->nodes, key) : NULL;
    if (x && x->present) {
        g->epoch++;
        x->present = false;
        bool ordered_gone = drop_ups(g, x);
        node_gc(g, x);
        /* out of memory: the edges stay cyclic, the answer conservative */
        if (ordered_gone && g->n_cyc) (void)retry_cyclic(g);
    }
    pthread_mutex_unlock(&g->mu);
}

/* Marks the nodes on cycles for the current epoch: for each cyclic edge
 * a -> b, those reachable from b (upstream) that also reach a. */
static int mark_cycles(depgraph *g)
{
    if (g->marks_epoch == g->epoch) return 0;
    free_recs(g);
    nstack st = {0};
    int rc = 0;
    for (size_t i = 0; i < g->n_cyc; i++) {
        unsigned long f = ++g->stamp;
        st.n = 0;
        g->cyc[i].b->fwd = f;
        if ((rc = push(&st, g->cyc[i].b))) goto out;
        while (st.n) {
            node *w = st.v[--st.n];
            for (size_t k = 0; k < w->ups.n; k++) {
                node *u = w->ups.v[k].n;
                if (u->fwd == f) continue;
                u->fwd = f;
                if ((rc = push(&st, u))) goto out;
            }
        }
        unsigned long s = ++g->stamp;
        st.n = 0;
        g->cyc[i].a->seen = s;
        if ((rc = push(&st, g->cyc[i].a))) goto out;
        while (st.n) {
            node *w = st.v[--st.n];
            if (w->fwd == f) w->on_cycle = g->epoch;
            for (size_t k = 0; k < w->downs.n; k++) {
                node *d = w->downs.v[k].n;
                if (d->seen == s) continue;
                d->seen = s;
                if ((rc = push(&st, d))) goto out;
            }
        }
    }
    g->marks_epoch = g->epoch;
out:
    cmem_free(st.v);
    return rc;
}

/* A shortest cycle through x among the marked nodes (breadth-first over
 * upstream edges), recorded for every node on it that has none yet. */
static int find_cycle(depgraph *g, node *x)
{
    nstack q = {0};
    int rc = 0;
    unsigned long s = ++g->stamp;
    node *last = NULL;
    x->seen = s;
    x->parent = NULL;
    if ((rc = push(&q, x))) goto out;
    for (size_t head = 0; head < q.n && !last; head++) {
        node *w = q.v[head];
        for (size_t k = 0; k < w->ups.n; k++) {
            node *u = w->ups.v[k].n;
            if (u == x) {
                last = w;
                break;
            }
            if (u->seen == s || u->on_cycle != g->epoch) continue;
            u->seen = s;
            u->parent = w;
            if ((rc = push(&q, u))) goto out;
        }
    }
    if (!last) goto out; /* cannot happen for a marked node */
    size_t len = 0;
    for (node *w = last; w; w = w->parent)
        len++;
    cycle_rec *r = cmem_calloc(1, sizeof *r);
    if (!r || !(r->v = cmem_calloc(len, sizeof *r->v))) {
        cmem_free(r);
        rc = cerr_oom();
        goto out;
    }
    if (g->n_recs == g->cap_recs) {
        size_t cap = g->cap_recs ? g->cap_recs * 2 : 8;
        cycle_rec **v = cmem_reallocarray(g->recs, cap, sizeof *v);
        if (!v) {
            cmem_free(r->v);
            cmem_free(r);
            rc = cerr_oom();
            goto out;
        }
        g->recs = v;
        g->cap_recs = cap;
    }
    g->recs[g->n_recs++] = r;
    /* parents lead back to x: reversed, the path follows upstream edges */
    r->n = len;
    size_t i = len;
    for (node *w = last; w; w = w->parent)
        r->v[--i] = w;
    for (i = 0; i < len; i++)
        if (r->v[i]->cycle_epoch != g->epoch) {
            r->v[i]->cycle_epoch = g->epoch;
            r->v[i]->cycle = r;
        }
out:
    cmem_free(q.v);
    return rc;
}

static char *cycle_path(const node *x, size_t max_path)
{
    const cycle_rec *r = x->cycle;
    size_t start = 0;
    while (start < r->n && r->v[start] != x)
        start++;
    size_t cap = max_path + strlen(x->name) + 16, len = 0;
    char *s = cmem_malloc(cap);
    if (!s) return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < r->n; i++) {
        const char *name = r->v[(start + i) % r->n]->name;
        if (len + strlen(name) + 4 > max_path && i > 0) {
            len += (size_t)snprintf(s + len, cap - len, " -> ...");
            break;
        }
        len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? " -> " : "", name);
    }
    snprintf(s + len, cap - len, " -> %s", x->name);
    return s;
}

int depgraph_cycle(depgraph *g, const char *key, bool *on_cycle, char **path, size_t max_path)
{
    int rc = 0;
    *on_cycle = false;
    if (path) *path = NULL;
    pthread_mutex_lock(&g->mu);
    node *x = key ? strmap_lookup(g->nodes, key) : NULL;
    if (!x || !g->n_cyc) goto out;
    if ((rc = mark_cycles(g))) goto out;
    if (x->on_cycle != g->epoch) goto out;
    *on_cycle = true;
    if (!path) goto out;
    if (x->cycle_epoch != g->epoch && (rc = find_cycle(g, x))) goto out;
    if (x->cycle_epoch == g->epoch && !(*path = cycle_path(x, max_path))) rc = cerr_oom();
out:
    pthread_mutex_unlock(&g->mu);
    return rc;
}

size_t depgraph_len(depgraph *g)
{
    pthread_mutex_lock(&g->mu);
    size_t n = strmap_len(g->nodes);
    pthread_mutex_unlock(&g->mu);
    return n;
}

size_t depgraph_cyclic_edges(depgraph *g)
{
    pthread_mutex_lock(&g->mu);
    size_t n = g->n_cyc;
    pthread_mutex_unlock(&g->mu);
    return n;
}
