/*
 * graph.h - dependency resolution among the AssetMaterializations of one
 * namespace.
 *
 * Nodes are materializations by name; a node's upstreams are the `from:`
 * names of its inputs. The edge a -> b means "a reads b's output". The
 * graph answers what the reconciler writes on a status: upstreams that do
 * not exist (condition UpstreamReady=False, reason UpstreamMissing),
 * whether a node is on a dependency cycle and the cycle as "a -> b -> a"
 * (reason DependencyCycle: reported, never followed), a topological order
 * (upstreams first), and the transitive dependents of a node (those that
 * become Stale when its data version changes).
 *
 * Every algorithm is iterative and O(V+E) (Tarjan's strongly connected
 * components with an explicit stack, Kahn's algorithm, breadth-first
 * searches), so a 100,000-long chain neither overflows the stack nor takes
 * quadratic time. Results are computed on the first query after the last
 * graph_add and reused.
 *
 * One graph is used by one thread at a time (queries update the cache).
 * Names are copied on add. Arrays returned through `const char ***out`
 * belong to the caller (cmem_free the array only); the names in them are
 * borrowed from the graph and live until graph_free. Output orders are
 * deterministic: ties are broken by insertion order.
 */
#ifndef TERRANE_GRAPH_H
#define TERRANE_GRAPH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct graph graph;

graph *graph_new(void); /* NULL when out of memory */
void graph_free(graph *g);

/* Adds node name with its upstream names (duplicates allowed, a node may
 * name itself). 0, CERR_INVALID (NULL or empty name or upstream),
 * CERR_CONFLICT (name already added) or CERR_NOMEM. */
int graph_add(graph *g, const char *name, const char *const *upstreams, size_t n_upstreams);
size_t graph_len(const graph *g);
bool graph_has(const graph *g, const char *name);

/* The upstream names of name that are not nodes, in the order given (each
 * once). 0 with *out (NULL when *n is 0), CERR_NOTFOUND or CERR_NOMEM. */
int graph_missing(graph *g, const char *name, const char ***out, size_t *n);

/* Whether name lies on a dependency cycle (including a self-loop); false
 * for unknown names (and when memory runs out while resolving). */
bool graph_on_cycle(graph *g, const char *name);
/* A shortest cycle through name, following upstream edges, as
 * "a -> b -> c -> a" in *path (caller frees), or *path = NULL when name is
 * on no cycle. 0, CERR_NOTFOUND or CERR_NOMEM. */
int graph_cycle(graph *g, const char *name, char **path);

/* All nodes not on and not downstream of a cycle, every node after its
 * upstreams. 0, or CERR_NOMEM. */
int graph_topo_order(graph *g, const char ***out, size_t *n);
/* Nodes that depend on name directly or transitively (name itself
 * excluded, even on a cycle), nearest first. 0, CERR_NOTFOUND or
 * CERR_NOMEM. */
int graph_dependents(graph *g, const char *name, const char ***out, size_t *n);

#endif
