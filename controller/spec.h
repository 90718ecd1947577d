/*
 * spec.h - decoding and validating an AssetMaterialization's spec.
 *
 * The API server checks the CRD's OpenAPI schema, but not everything: the
 * params of each operation, the rules between params and inputs, and
 * quantities are only checked here, before any pod is created, so that a
 * mistake becomes phase Failed / reason InvalidSpec with a message naming
 * the field ("spec.params.mode: must be one of: hillshade, slope, ...")
 * instead of a worker pod that fails. The params are checked by building
 * the Task the worker would receive (taskdoc.h) and validating it against
 * proto/schema/task.v1.json and the task rules; error paths in the task
 * are mapped back to the spec (params.mode -> spec.params.mode,
 * inputs[1].uri -> spec.inputs[1].uri, assetKey -> spec.assetKey).
 *
 * Defaults are applied as the CRD declares them (an API server applies
 * them too, but a controller must not depend on it): retries.limit 3,
 * retries.backoffSeconds 30, refreshPolicy OnUpstreamChange. Unknown
 * fields are ignored: a structural schema prunes them on the server.
 *
 * Ownership: an am_spec borrows every string and json_t from the object it
 * was decoded from, which must outlive it; spec_free frees the struct
 * only. Pure functions, any thread.
 */
#ifndef TERRANE_SPEC_H
#define TERRANE_SPEC_H

#include "lib/jschema.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SPEC_RETRY_LIMIT_DEFAULT 3
#define SPEC_RETRY_LIMIT_MAX 20
#define SPEC_BACKOFF_DEFAULT 30
#define SPEC_BACKOFF_MAX 3600
#define SPEC_MAX_PARALLEL_DEFAULT 16
#define SPEC_MAX_PARALLEL_MAX 10000

/* How a partitioned asset's partitions read a partitioned upstream
 * (partition.h). */
typedef enum { SPEC_MAP_IDENTITY, SPEC_MAP_ALL_TO_ONE, SPEC_MAP_LAST_N } spec_mapping;

typedef struct {
    const char *name;     /* identifier, unique among the inputs */
    const char *from;     /* upstream AssetMaterialization in the namespace, or NULL */
    const char *uri;      /* external source, or NULL (exactly one of from / uri) */
    spec_mapping mapping; /* partitionMapping.type (Identity when absent) */
    int mapping_count;    /* partitionMapping.count for LastN, else 0 */
} spec_input;

typedef enum { SPEC_REFRESH_ON_UPSTREAM_CHANGE, SPEC_REFRESH_MANUAL } spec_refresh;

typedef struct am_spec {
    const char *namespace_, *name; /* the object's metadata */
    long long generation;
    const char *asset_key;
    const char *operation;
    const json_t *params; /* an object, or NULL for {}; spec.container for operation container */
    spec_input *inputs;
    size_t n_inputs;
    const char *output_uri;
    const json_t *tags;      /* object of strings, or NULL */
    const json_t *resources; /* object {cpu, memory}, or NULL */
    int retry_limit;
    int backoff_seconds;
    spec_refresh refresh;
    const json_t *partitions; /* spec.partitions (checked by partition.h), or NULL */
    int max_parallel;         /* spec.maxParallel */
} am_spec;

/* Decodes am (a whole AssetMaterialization) and validates its spec. With
 * task_schema NULL only the structure is checked (no params check). 0 with
 * *out; CERR_INVALID with the thread's error "<field>: <what>" and, when
 * err is non-NULL, err->path the field ("spec.params.mode") and
 * err->message what is wrong; CERR_NOMEM. */
int spec_decode(const json_t *am, const jschema *task_schema, am_spec **out, jschema_error *err);
void spec_free(am_spec *s);

/* The spec field a Task path stands for: "params.x" -> "spec.params.x",
 * "inputs[i].uri" -> "spec.inputs[i].uri" (or ".from" when that input is an
 * upstream), "namespace" -> "metadata.namespace". Writes into out. */
void spec_field_of_task_path(const am_spec *s, const char *task_path, char *out, size_t size);

/* Lenient: the `from` names of am's spec.inputs, for the dependency graph
 * and the dependents index, even when the rest of the spec is invalid.
 * Returns how many were stored (at most max) and sets *total to how many
 * there are. Borrowed from am. */
size_t spec_upstreams(const json_t *am, const char **out, size_t max, size_t *total);

/* true for a DNS-1123 subdomain (object names): lowercase alphanumerics,
 * '-' and '.', starting and ending alphanumeric, at most 253. */
bool spec_is_dns_subdomain(const char *s);

#endif
