/*
 * graph.c - dependency graph of materializations (see graph.h).
 *
 * Nodes are numbered in insertion order. graph_add only records names;
 * resolve() turns upstream names into index edges (compressed sparse rows
 * in both directions), finds strongly connected components and memoises
 * the result until the next graph_add.
 */
#include "graph.h"

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/strmap.h"

#include <stdint.h>
#include <string.h>

typedef struct {
    char *name;
    char **ups; /* upstream names as given */
    size_t n_ups;
} node;

struct graph {
    node *nodes;
    size_t n, cap;
    strmap *index; /* name (borrowed from node) -> (uintptr_t)(index + 1) */

    bool resolved;
    size_t *up_off, *up;     /* CSR: upstream edges of v are up[up_off[v] .. up_off[v+1]) */
    size_t *down_off, *down; /* CSR: dependents */
    size_t *comp;            /* strongly connected component id */
    bool *cyclic;            /* on a cycle: component of size > 1 or a self-loop */
};

graph *graph_new(void)
{
    graph *g = cmem_calloc(1, sizeof *g);
    if (!g) return NULL;
    g->index = strmap_new(STRMAP_BORROW_KEYS);
    if (!g->index) {
        cmem_free(g);
        return NULL;
    }
    return g;
}

static void unresolve(graph *g)
{
    cmem_free(g->up_off);
    cmem_free(g->up);
    cmem_free(g->down_off);
    cmem_free(g->down);
    cmem_free(g->comp);
    cmem_free(g->cyclic);
    g->up_off = g->up = g->down_off = g->down = g->comp = NULL;
    g->cyclic = NULL;
    g->resolved = false;
}

static void node_clear(node *nd)
{
    for (size_t i = 0; i < nd->n_ups; i++)
        cmem_free(nd->ups[i]);
    cmem_free(nd->ups);
    cmem_free(nd->name);
}

void graph_free(graph *g)
{
    if (!g) return;
    unresolve(g);
    for (size_t i = 0; i < g->n; i++)
        node_clear(&g->nodes[i]);
    cmem_free(g->nodes);
    strmap_free(g->index);
    cmem_free(g);
}

size_t graph_len(const graph *g)
{
    return g->n;
}

static bool lookup(const graph *g, const char *name, size_t *idx)
{
    void *v;
    if (!name || !strmap_get(g->index, name, &v)) return false;
    *idx = (size_t)(uintptr_t)v - 1;
    return true;
}

bool graph_has(const graph *g, const char *name)
{
    size_t i;
    return lookup(g, name, &i);
}

int graph_add(graph *g, const char *name, const char *const *upstreams, size_t n_upstreams)
{
    size_t dummy;
    if (!name || !name[0]) return cerr_set(CERR_INVALID, "graph: node without a name");
    for (size_t i = 0; i < n_upstreams; i++)
        if (!upstreams[i] || !upstreams[i][0])
            return cerr_set(CERR_INVALID, "graph: %s: upstream %zu has no name", name, i);
    if (lookup(g, name, &dummy)) return cerr_set(CERR_CONFLICT, "graph: %s added twice", name);
    if (g->n == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 16;
        node *nn = cmem_reallocarray(g->nodes, ncap, sizeof *nn);
        if (!nn) return cerr_oom();
        g->nodes = nn;
        g->cap = ncap;
    }
    node nd = {0};
    nd.name = cmem_strdup(name);
    nd.ups = cmem_calloc(n_upstreams ? n_upstreams : 1, sizeof *nd.ups);
    if (!nd.name || !nd.ups) goto oom;
    for (; nd.n_ups < n_upstreams; nd.n_ups++)
        if (!(nd.ups[nd.n_ups] = cmem_strdup(upstreams[nd.n_ups]))) goto oom;
    if (strmap_put(g->index, nd.name, (void *)(uintptr_t)(g->n + 1))) goto oom;
    g->nodes[g->n++] = nd;
    unresolve(g);
    return 0;
oom:
    node_clear(&nd);
    return cerr_oom();
}

/* --- resolution ---------------------------------------------------------------- */

/* Tarjan's SCC algorithm with an explicit call stack. */
static int find_components(graph *g)
{
    size_t n = g->n, next_index = 0, next_comp = 0, sp = 0, csp = 0;
    size_t *idx = cmem_calloc(n, sizeof *idx), *low = cmem_calloc(n, sizeof *low);
    size_t *stack = cmem_calloc(n, sizeof *stack);
    size_t *cs_v = cmem_calloc(n, sizeof *cs_v), *cs_e = cmem_calloc(n, sizeof *cs_e);
    bool *on = cmem_calloc(n, sizeof *on);
    size_t *comp_size = cmem_calloc(n, sizeof *comp_size);
    int rc = 0;
    if (!idx || !low || !stack || !cs_v || !cs_e || !on || !comp_size) {
        rc = cerr_oom();
        goto cleanup;
    }
    const size_t UNSEEN = SIZE_MAX;
    for (size_t v = 0; v < n; v++)
        idx[v] = UNSEEN;
    for (size_t s = 0; s < n; s++) {
        if (idx[s] != UNSEEN) continue;
        idx[s] = low[s] = next_index++;
        stack[sp++] = s;
        on[s] = true;
        cs_v[csp] = s;
        cs_e[csp++] = g->up_off[s];
        while (csp) {
            size_t v = cs_v[csp - 1];
            if (cs_e[csp - 1] < g->up_off[v + 1]) {
                size_t w = g->up[cs_e[csp - 1]++];
                if (idx[w] == UNSEEN) {
                    idx[w] = low[w] = next_index++;
                    stack[sp++] = w;
                    on[w] = true;
                    cs_v[csp] = w;
                    cs_e[csp++] = g->up_off[w];
                } else if (on[w] && idx[w] < low[v]) {
                    low[v] = idx[w];
                }
                continue;
            }
            csp--;
            if (csp) {
                size_t u = cs_v[csp - 1];
                if (low[v] < low[u]) low[u] = low[v];
            }
            if (low[v] == idx[v]) {
                size_t w;
                do {
                    w = stack[--sp];
                    on[w] = false;
                    g->comp[w] = next_comp;
                    comp_size[next_comp]++;
                } while (w != v);
                next_comp++;
            }
        }
    }
    for (size_t v = 0; v < n; v++) {
        g->cyclic[v] = comp_size[g->comp[v]] > 1;
        for (size_t e = g->up_off[v]; e < g->up_off[v + 1] && !g->cyclic[v]; e++)
            if (g->up[e] == v) g->cyclic[v] = true;
    }
cleanup:
    cmem_free(idx);
    cmem_free(low);
    cmem_free(stack);
    cmem_free(cs_v);
    cmem_free(cs_e);
    cmem_free(on);
    cmem_free(comp_size);
    return rc;
}

static int resolve(graph *g)
{
    if (g->resolved) return 0;
    size_t n = g->n, m = 0;
    for (size_t v = 0; v < n; v++)
        m += g->nodes[v].n_ups;
    g->up_off = cmem_calloc(n + 1, sizeof *g->up_off);
    g->down_off = cmem_calloc(n + 1, sizeof *g->down_off);
    g->up = cmem_calloc(m ? m : 1, sizeof *g->up);
    g->down = cmem_calloc(m ? m : 1, sizeof *g->down);
    g->comp = cmem_calloc(n ? n : 1, sizeof *g->comp);
    g->cyclic = cmem_calloc(n ? n : 1, sizeof *g->cyclic);
    if (!g->up_off || !g->down_off || !g->up || !g->down || !g->comp || !g->cyclic) goto oom;

    size_t e = 0;
    for (size_t v = 0; v < n; v++) {
        g->up_off[v] = e;
        for (size_t i = 0; i < g->nodes[v].n_ups; i++) {
            size_t w;
            if (lookup(g, g->nodes[v].ups[i], &w)) {
                g->up[e++] = w;
                g->down_off[w + 1]++;
            }
        }
    }
    g->up_off[n] = e;
    for (size_t v = 0; v < n; v++)
        g->down_off[v + 1] += g->down_off[v];
    /* Fill dependents in ascending order of the dependent's index. */
    size_t *fill = cmem_calloc(n ? n : 1, sizeof *fill);
    if (!fill) goto oom;
    for (size_t v = 0; v < n; v++)
        for (size_t k = g->up_off[v]; k < g->up_off[v + 1]; k++) {
            size_t w = g->up[k];
            g->down[g->down_off[w] + fill[w]++] = v;
        }
    cmem_free(fill);
    if (find_components(g)) {
        unresolve(g);
        return CERR_NOMEM;
    }
    g->resolved = true;
    return 0;
oom:
    unresolve(g);
    return cerr_oom();
}

/* --- queries -------------------------------------------------------------------- */

static int unknown(const char *name)
{
    return cerr_set(CERR_NOTFOUND, "graph: no materialization %s", name ? name : "(null)");
}

int graph_missing(graph *g, const char *name, const char ***out, size_t *n)
{
    size_t v;
    *out = NULL;
    *n = 0;
    if (!lookup(g, name, &v)) return unknown(name);
    const node *nd = &g->nodes[v];
    const char **res = NULL;
    strmap *seen = NULL;
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < nd->n_ups; i++) {
        size_t w;
        if (lookup(g, nd->ups[i], &w)) continue;
        if (!res) {
            res = cmem_calloc(nd->n_ups, sizeof *res);
            seen = strmap_new(STRMAP_BORROW_KEYS);
            if (!res || !seen) goto oom;
        }
        if (strmap_get(seen, nd->ups[i], NULL)) continue; /* named twice */
        if (strmap_put(seen, nd->ups[i], NULL)) goto oom;
        res[k++] = nd->ups[i];
    }
    *out = res;
    *n = k;
    strmap_free(seen);
    return 0;
oom:
    rc = cerr_oom();
    cmem_free(res);
    strmap_free(seen);
    return rc;
}

bool graph_on_cycle(graph *g, const char *name)
{
    size_t v;
    return lookup(g, name, &v) && resolve(g) == 0 && g->cyclic[v];
}

int graph_cycle(graph *g, const char *name, char **path)
{
    size_t v;
    int rc;
    *path = NULL;
    if (!lookup(g, name, &v)) return unknown(name);
    if ((rc = resolve(g))) return rc;
    if (!g->cyclic[v]) return 0;

    /* Breadth-first from v inside its component until an edge leads back to
     * v: the parents then spell a shortest cycle. */
    size_t n = g->n, head = 0, tail = 0, last = SIZE_MAX;
    size_t *parent = cmem_calloc(n, sizeof *parent), *queue = cmem_calloc(n, sizeof *queue);
    char *s = NULL;
    size_t *chain = NULL;
    if (!parent || !queue) goto oom;
    for (size_t i = 0; i < n; i++)
        parent[i] = SIZE_MAX;
    parent[v] = v;
    queue[tail++] = v;
    while (head < tail && last == SIZE_MAX) {
        size_t u = queue[head++];
        for (size_t e = g->up_off[u]; e < g->up_off[u + 1]; e++) {
            size_t w = g->up[e];
            if (w == v) {
                last = u;
                break;
            }
            if (g->comp[w] != g->comp[v] || parent[w] != SIZE_MAX) continue;
            parent[w] = u;
            queue[tail++] = w;
        }
    }
    /* last is set: v is on a cycle, so some path in its component returns. */
    size_t len = 0, bytes = strlen(g->nodes[v].name) + 1;
    for (size_t u = last;; u = parent[u]) {
        len++;
        bytes += strlen(g->nodes[u].name) + 4;
        if (u == v) break;
    }
    chain = cmem_calloc(len, sizeof *chain);
    s = cmem_malloc(bytes);
    if (!chain || !s) goto oom;
    size_t k = len;
    for (size_t u = last;; u = parent[u]) {
        chain[--k] = u;
        if (u == v) break;
    }
    size_t off = 0;
    for (k = 0; k < len; k++) {
        size_t l = strlen(g->nodes[chain[k]].name);
        memcpy(s + off, g->nodes[chain[k]].name, l);
        memcpy(s + off + l, " -> ", 4);
        off += l + 4;
    }
    strcpy(s + off, g->nodes[v].name);
    *path = s;
    s = NULL;
    rc = 0;
    goto cleanup;
oom:
    rc = cerr_oom();
cleanup:
    cmem_free(s);
    cmem_free(chain);
    cmem_free(parent);
    cmem_free(queue);
    return rc;
}

int graph_topo_order(graph *g, const char ***out, size_t *n)
{
    int rc;
    *out = NULL;
    *n = 0;
    if ((rc = resolve(g))) return rc;
    size_t nn = g->n, head = 0, tail = 0;
    size_t *pending = cmem_calloc(nn ? nn : 1, sizeof *pending);
    size_t *queue = cmem_calloc(nn ? nn : 1, sizeof *queue);
    const char **res = cmem_calloc(nn ? nn : 1, sizeof *res);
    if (!pending || !queue || !res) {
        cmem_free(pending);
        cmem_free(queue);
        cmem_free(res);
        return cerr_oom();
    }
    /* Kahn: a node is ready when all its upstream edges are satisfied;
     * nodes on or behind a cycle never are. */
    for (size_t v = 0; v < nn; v++) {
        pending[v] = g->up_off[v + 1] - g->up_off[v];
        if (!pending[v]) queue[tail++] = v;
    }
    while (head < tail) {
        size_t u = queue[head++];
        res[*n] = g->nodes[u].name;
        (*n)++;
        for (size_t e = g->down_off[u]; e < g->down_off[u + 1]; e++)
            if (--pending[g->down[e]] == 0) queue[tail++] = g->down[e];
    }
    cmem_free(pending);
    cmem_free(queue);
    if (*n == 0) {
        cmem_free(res);
        res = NULL;
    }
    *out = res;
    return 0;
}

int graph_dependents(graph *g, const char *name, const char ***out, size_t *n)
{
    size_t v;
    int rc;
    *out = NULL;
    *n = 0;
    if (!lookup(g, name, &v)) return unknown(name);
    if ((rc = resolve(g))) return rc;
    size_t nn = g->n, head = 0, tail = 0;
    bool *seen = cmem_calloc(nn, sizeof *seen);
    size_t *queue = cmem_calloc(nn, sizeof *queue);
    if (!seen || !queue) {
        cmem_free(seen);
        cmem_free(queue);
        return cerr_oom();
    }
    seen[v] = true;
    queue[tail++] = v;
    while (head < tail) {
        size_t u = queue[head++];
        for (size_t e = g->down_off[u]; e < g->down_off[u + 1]; e++) {
            size_t w = g->down[e];
            if (seen[w]) continue;
            seen[w] = true;
            queue[tail++] = w;
        }
    }
    const char **res = NULL;
    if (tail > 1) {
        res = cmem_calloc(tail - 1, sizeof *res);
        if (!res) {
            rc = cerr_oom();
        } else {
            for (size_t i = 1; i < tail; i++)
                res[i - 1] = g->nodes[queue[i]].name;
            *n = tail - 1;
        }
    }
    cmem_free(seen);
    cmem_free(queue);
    *out = res;
    return rc;
}
