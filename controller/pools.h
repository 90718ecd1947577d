/*
 * pools.h - node pools: the configuration that maps pool names to where and
 * how big a worker pod runs, and the choice of pool for an asset.
 *
 * The configuration is a JSON document (a ConfigMap rendered from the Helm
 * values):
 *   {"defaultPool": "cpu",
 *    "pools": {
 *      "cpu":     {"nodeSelector": {"terrane.io/pool": "cpu"}, "tolerations": [],
 *                  "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
 *                                "limits": {"memory": "4Gi"}},
 *                  "oomEscalation": "highmem", "maxPartitionPods": 64},
 *      "highmem": {...},
 *      "gpu":     {"nodeSelector": {...},
 *                  "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
 *                                   "effect": "NoSchedule"}],
 *                  "resources": {"limits": {"nvidia.com/gpu": "1"}}}}}
 * Loading validates all of it and every error names the JSON path
 * ("pools.gpu.tolerations[0].effect: ..."): unknown fields, pool names
 * that are not DNS labels, tolerations as core/v1 Toleration defines them,
 * resource quantities, requests above limits, an oomEscalation naming a
 * missing pool or forming a cycle, a defaultPool that does not exist.
 *
 * An asset picks its pool with the tag terrane.io/pool (spec.tags), or gets
 * the default pool; its spec.resources {cpu, memory} override the pool's
 * requests (limits are raised to match when lower). An OOMKilled attempt is
 * retried on pool_escalation(pool), the next bigger pool. maxPartitionPods
 * caps the partition pods (spec.partitions) running on the pool at once,
 * over all assets (poolcount.h counts them), on top of each asset's
 * spec.maxParallel.
 *
 * A loaded pools set is immutable: any thread may read it concurrently; a
 * new configuration is loaded as a new set. Pools and their strings and
 * JSON values are borrowed from the set and live until pools_free.
 * jansson reference rule: parameters are borrowed (loading copies what it
 * keeps); pools_resources returns a new reference the caller owns; the
 * pool_* accessors return borrowed values the caller must not modify.
 */
#ifndef TERRANE_POOLS_H
#define TERRANE_POOLS_H

#include <jansson.h>
#include <stddef.h>

#define POOLS_TAG "terrane.io/pool"
#define POOLS_FILE_MAX (1024 * 1024) /* a ConfigMap holds at most 1 MiB */

typedef struct pools pools;
typedef struct pool pool;

/* Each: 0 with *out (caller frees with pools_free), or CERR_INVALID with a
 * message naming the path, CERR_IO (file), CERR_TOOBIG (over
 * POOLS_FILE_MAX) or CERR_NOMEM. */
int pools_load_json(const json_t *root, pools **out);
int pools_load_bytes(const char *buf, size_t len, pools **out);
int pools_load_file(const char *path, pools **out);
void pools_free(pools *ps);

size_t pools_count(const pools *ps);
const pool *pools_at(const pools *ps, size_t i);           /* sorted by name */
const pool *pools_find(const pools *ps, const char *name); /* NULL when unknown */
const pool *pools_default(const pools *ps);

/* The pool for an asset with the given spec.tags (an object, or NULL):
 * its terrane.io/pool tag, or the default pool. 0, CERR_INVALID (tags not
 * an object, tag not a string) or CERR_NOTFOUND ("spec.tags.terrane.io/pool:
 * unknown pool \"gpux\" (pools: cpu, gpu, highmem)"). */
int pools_select(const pools *ps, const json_t *tags, const pool **out);

/* The pod's resources ({"requests": {...}, "limits": {...}}, empty parts
 * left out) for an asset on pool p with spec.resources overrides (an object
 * with optional cpu and memory quantities, or NULL). An override replaces
 * the pool's request; a pool limit below the new request is raised to it.
 * 0 with *out (new reference), CERR_INVALID naming spec.resources.<field>,
 * or CERR_NOMEM. */
int pools_resources(const pool *p, const json_t *overrides, json_t **out);

const char *pool_name(const pool *p);
const json_t *pool_node_selector(const pool *p); /* object, possibly empty */
const json_t *pool_tolerations(const pool *p);   /* array, possibly empty */
const json_t *pool_requests(const pool *p);      /* object: name -> quantity string */
const json_t *pool_limits(const pool *p);        /* object: name -> quantity string */
/* The pool to retry on after an OOM kill, or NULL at the top. Validated to
 * exist and to form no cycle. */
const pool *pool_escalation(const pool *p);
#define POOLS_PARTITION_PODS_MAX 1000000
/* maxPartitionPods, or 0 when the pool sets no cap. */
long pool_max_partition_pods(const pool *p);

/* Kubernetes resource.Quantity: <number><suffix>, number with optional sign
 * and decimal point, suffix one of n u m "" k M G T P E (decimal), Ki Mi Gi
 * Ti Pi Ei (binary) or e<int> / E<int> (exponent). *milli gets the value
 * times 1000, rounded up as Quantity.MilliValue does ("500m" -> 500, "2" ->
 * 2000, "1Ki" -> 1024000). 0, or CERR_INVALID (syntax, or beyond int64
 * milli-units, about 9.2 PB). */
int pools_quantity_parse(const char *s, long long *milli);

#endif
