/*
 * podspec.h - where worker pods are built.
 *
 * One bare pod per attempt (restartPolicy Never: a retry is a new pod, so
 * every attempt keeps its own status and logs), owned by its
 * AssetMaterialization through a controller ownerReference
 * (blockOwnerDeletion), so the garbage collector removes pods with their
 * owner. The name is deterministic: <materialization>-<12 hex of the data
 * version>-<attempt>; creating it twice fails with AlreadyExists instead
 * of starting a duplicate, also across controller restarts. Names longer
 * than a DNS label (63) or containing '.' become
 * <prefix>-<10 hex of the name's hash>-<dv12>-<attempt>.
 *
 * Labels select the pods (the controller's pod informer watches
 * app.kubernetes.io/managed-by=terrane-controller) and group them:
 * app.kubernetes.io/name=terrane-worker, terrane.io/materialization,
 * terrane.io/data-version (12 hex), terrane.io/attempt, terrane.io/pool.
 * Annotations carry what labels cannot hold and what a restarted
 * controller needs to continue counting: terrane.io/data-version (full),
 * terrane.io/generation, terrane.io/attempts (pods started for this
 * materialization so far, this one included), terrane.io/retries (retries
 * counted against spec.retries.limit, this one included),
 * terrane.io/asset-key.
 *
 * The container runs the configured worker image and command with the Task
 * in TERRANE_TASK, the configured worker environment, the pool's
 * nodeSelector, tolerations and resources (pools_resources with
 * spec.resources), terminationMessagePolicy FallbackToLogsOnError (a
 * worker that dies before writing its Result still leaves its last log
 * lines), and the restricted Pod Security Standard: non-root, read-only
 * root filesystem with an emptyDir at /scratch for GDAL's temporary files,
 * no privilege escalation, all capabilities dropped, RuntimeDefault
 * seccomp. A container asset's pod (operation container) has three steps
 * instead: podctr.h.
 *
 * jansson rule: parameters are borrowed, *out is a new reference. Pure,
 * any thread.
 */
#ifndef TERRANE_PODSPEC_H
#define TERRANE_PODSPEC_H

#include "pools.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define PODSPEC_MANAGED_BY "app.kubernetes.io/managed-by"
#define PODSPEC_MANAGER "terrane-controller"
#define PODSPEC_APP_NAME "app.kubernetes.io/name"
#define PODSPEC_APP "terrane-worker"
#define PODSPEC_L_MATERIALIZATION "terrane.io/materialization"
#define PODSPEC_L_DATA_VERSION "terrane.io/data-version"
#define PODSPEC_L_ATTEMPT "terrane.io/attempt"
#define PODSPEC_L_POOL "terrane.io/pool"
#define PODSPEC_A_DATA_VERSION "terrane.io/data-version"
#define PODSPEC_A_GENERATION "terrane.io/generation"
#define PODSPEC_A_ATTEMPTS "terrane.io/attempts"
#define PODSPEC_A_RETRIES "terrane.io/retries"
#define PODSPEC_A_ASSET_KEY "terrane.io/asset-key"
#define PODSPEC_CONTAINER "worker"
#define PODSPEC_SCRATCH "/scratch"
#define PODSPEC_NAME_MAX 63
#define PODSPEC_UID 65532 /* the conventional "nonroot" user of distroless images */

/* The controller's --worker-* settings. */
typedef struct {
    const char *image;           /* required */
    const char *pull_policy;     /* "IfNotPresent" when NULL */
    const json_t *command;       /* array of strings; ["terrane-worker","run"] when NULL */
    const json_t *env;           /* object name -> string value, or NULL */
    const char *service_account; /* or NULL for the namespace's default */
    long active_deadline_s;      /* 0: none */
} podspec_config;

/* One attempt. */
typedef struct {
    const char *namespace_, *am_name, *am_uid; /* the owner */
    long long generation;
    const char *asset_key;
    const char *data_version; /* full "sha256:..." */
    int attempt;              /* number in the name, unique per (materialization, data version) */
    int attempts;             /* pods of this materialization so far, this one included */
    int retries;              /* counted retries so far, this one included */
    const pool *pool;
    const json_t *resources; /* spec.resources overrides, or NULL */
    const json_t *task;      /* the Task document */
} podspec_attempt;

/* Checks a worker environment object: names are C identifiers, values
 * strings, and TERRANE_TASK is not among them. 0 or CERR_INVALID naming
 * the entry. */
int podspec_check_env(const json_t *env);

/* The pod name into out (at most PODSPEC_NAME_MAX + 1 bytes). 0, or
 * CERR_INVALID for an invalid data version or attempt < 1. */
int podspec_name(const char *am_name, const char *data_version, int attempt, char *out,
                 size_t size);
/* The value of the terrane.io/materialization label for a name: the name
 * itself when it is a valid label value, else a shortened, hashed form. */
void podspec_materialization_label(const char *am_name, char *out, size_t size);

/* The pod. 0 with *out; CERR_TOOBIG (the Task exceeds TERRANE_TASK_MAX),
 * CERR_INVALID (resources: naming spec.resources.<field>), CERR_NOMEM. */
int podspec_build(const podspec_config *cfg, const podspec_attempt *a, json_t **out);

#endif
