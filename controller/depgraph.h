/*
 * depgraph.h - the dependency graph of every AssetMaterialization, kept
 * current event by event, answering "is this node on a cycle?" without
 * looking at the rest of its namespace.
 *
 * Nodes are keys ("namespace/name"); the edge a -> b means "a reads b's
 * output" (a names b in from:). A node exists while it is present (set
 * with depgraph_set) or named by a present node (a placeholder: a missing
 * upstream, which has no edges of its own and so is on no cycle).
 *
 * The graph keeps a rank per node such that every edge a -> b that can
 * be ordered has rank(a) > rank(b) (an incremental topological order, as in
 * Marchetti-Spaccamela et al.'s and Pearce and Kelly's algorithms). Adding
 * an edge that respects the order costs O(1); one that does not raises a's
 * rank and pushes its dependents up, visiting only nodes whose rank must
 * change; when that push reaches b, the edge closes a cycle and is kept
 * aside as a cyclic edge. Every cycle contains a cyclic edge, so with none
 * (the normal case) no node is on a cycle and the answer is O(1). Removing
 * an edge retries the cyclic edges, which may now be ordered.
 *
 * With cyclic edges present, the nodes on cycles are the strongly
 * connected parts around them, found by two searches per cyclic edge
 * (forward from its head, backward from its tail) once per change of the
 * graph and then answered from a mark per node; a cycle's path is
 * searched once and shared by the nodes on it.
 *
 * Thread-safe: one mutex; every call is short except the first cycle
 * query after a change while a cycle exists.
 */
#ifndef TERRANE_DEPGRAPH_H
#define TERRANE_DEPGRAPH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct depgraph depgraph;

depgraph *depgraph_new(void); /* NULL when out of memory */
void depgraph_free(depgraph *g);

/* Makes key present with these upstream keys (duplicates and key itself
 * allowed), replacing its earlier edges. 0, CERR_INVALID (empty key) or
 * CERR_NOMEM (the graph then holds key without edges). */
int depgraph_set(depgraph *g, const char *key, const char *const *upstreams, size_t n);
/* key is no longer present (its edges go; it stays a placeholder while
 * something names it). */
void depgraph_remove(depgraph *g, const char *key);

/* Whether key lies on a dependency cycle. With path non-NULL and a cycle,
 * *path is "a -> b -> a" with the names (the part after "namespace/"),
 * at most about max_path bytes (longer cycles end in "-> ... -> a");
 * the caller frees it. 0 or CERR_NOMEM; unknown keys are on no cycle. */
int depgraph_cycle(depgraph *g, const char *key, bool *on_cycle, char **path, size_t max_path);

/* Nodes (present and placeholders) and cyclic edges, for tests and logs. */
size_t depgraph_len(depgraph *g);
size_t depgraph_cyclic_edges(depgraph *g);

#endif
