/*
 * podspec.c - worker pod construction (see podspec.h).
 */
#include "podspec.h"

#include "dataversion.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "podctr.h"
#include "terrane_proto.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* FNV-1a, 64 bits: only disambiguates shortened names, so collisions need
 * two names sharing a long prefix and 40 bits of hash. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static bool label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Copies at most max characters of name into out as a DNS label prefix
 * ('.' becomes '-'), without trailing '-'. */
static void label_prefix(const char *name, size_t max, char *out)
{
    size_t n = 0;
    for (; n < max && name[n]; n++)
        out[n] = name[n] == '.' ? '-' : name[n];
    while (n > 0 && !alnum(out[n - 1]))
        n--;
    out[n] = '\0';
}

void podspec_materialization_label(const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    bool ok = n > 0 && n <= 63 && alnum(name[0]) && alnum(name[n - 1]);
    for (size_t i = 0; ok && i < n; i++)
        ok = label_char(name[i]);
    if (ok) {
        snprintf(out, size, "%s", name);
        return;
    }
    char prefix[64];
    label_prefix(name, 52, prefix);
    snprintf(out, size, "%s%s%010llx", prefix, prefix[0] ? "-" : "",
             (unsigned long long)(fnv1a(name) >> 24));
}

int podspec_name(const char *am_name, const char *dv, int attempt, char *out, size_t size)
{
    char dv12[DV_SHORT_LEN + 1];
    if (size) out[0] = '\0';
    if (dv_short(dv, dv12)) return cerr_set(CERR_INVALID, "pod name: invalid data version");
    if (attempt < 1) return cerr_set(CERR_INVALID, "pod name: attempt must be >= 1");
    char tail[40];
    snprintf(tail, sizeof tail, "-%s-%d", dv12, attempt);
    size_t n = strlen(am_name), t = strlen(tail);
    char name[PODSPEC_NAME_MAX + 300];
    if (n + t <= PODSPEC_NAME_MAX && !strchr(am_name, '.')) {
        snprintf(name, sizeof name, "%s%s", am_name, tail);
    } else {
        char prefix[64];
        /* room for "-" + 10 hex + tail; PODSPEC_NAME_MAX - t - 11 < 64 */
        label_prefix(am_name, PODSPEC_NAME_MAX - t - 11, prefix);
        snprintf(name, sizeof name, "%s%s%010llx%s", prefix, prefix[0] ? "-" : "",
                 (unsigned long long)(fnv1a(am_name) >> 24), tail);
    }
    if (strlen(name) >= size) return cerr_set(CERR_TOOBIG, "pod name buffer too small");
    snprintf(out, size, "%s", name);
    return 0;
}

int podspec_check_env(const json_t *env)
{
    if (!env || json_is_null(env)) return 0;
    if (!json_is_object(env)) return cerr_set(CERR_INVALID, "worker env: expected a JSON object");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)env, k, v)
    {
        bool ok = k[0] && !(k[0] >= '0' && k[0] <= '9');
        for (const char *p = k; ok && *p; p++)
            ok = alnum(*p) || *p == '_';
        if (!ok) return cerr_set(CERR_INVALID, "worker env: \"%.64s\" is not a variable name", k);
        if (!strcmp(k, TERRANE_ENV_TASK))
            return cerr_set(CERR_INVALID, "worker env: %s is set by the controller", k);
        if (!json_is_string(v))
            return cerr_set(CERR_INVALID, "worker env: %.64s: expected a string value", k);
    }
    return 0;
}

/* json_dumps loses an object key, silently, when an allocation fails while
 * writing it (jansson ignores that return value); measuring first and then
 * dumping into a buffer of that size allocates nothing while writing. */
static char *dump_compact(const json_t *v)
{
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT);
    if (!n) return NULL;
    char *buf = cmem_malloc(n + 1);
    if (!buf) return NULL;
    if (json_dumpb(v, buf, n, JSON_COMPACT) != n) {
        cmem_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int add_env(json_t *list, const char *name, const char *value)
{
    json_t *e = json_pack("{s:s, s:s}", "name", name, "value", value);
    if (!e || json_array_append_new(list, e)) return cerr_oom();
    return 0;
}

/* The container's own limit from the Downward API (the worker sizes GDAL
 * to it when its cgroup does not show one), unless configured. */
static int add_limit_env(json_t *list, const json_t *env, const char *name, const char *resource,
                         const char *divisor)
{
    if (json_object_get(env, name)) return 0;
    json_t *e =
        json_pack("{s:s, s:{s:{s:s, s:s, s:s}}}", "name", name, "valueFrom", "resourceFieldRef",
                  "containerName", PODSPEC_CONTAINER, "resource", resource, "divisor", divisor);
    if (!e || json_array_append_new(list, e)) return cerr_oom();
    return 0;
}

/* TERRANE_TASK, the scratch defaults and the limits (unless configured), then the
 * configured variables sorted by name, so equal inputs give equal pods. */
static int build_env(const podspec_config *cfg, const char *task_text, json_t **out)
{
    json_t *list = json_array();
    const char **names = NULL;
    int rc = 0;
    *out = NULL;
    if (!list) return cerr_oom();
    const json_t *env = json_is_object(cfg->env) ? cfg->env : NULL;
    if ((rc = add_env(list, TERRANE_ENV_TASK, task_text))) goto fail;
    if (!json_object_get(env, TERRANE_ENV_SCRATCH_DIR) &&
        (rc = add_env(list, TERRANE_ENV_SCRATCH_DIR, PODSPEC_SCRATCH)))
        goto fail;
    if (!json_object_get(env, "TMPDIR") && (rc = add_env(list, "TMPDIR", PODSPEC_SCRATCH)))
        goto fail;
    if ((rc = add_limit_env(list, env, TERRANE_ENV_MEMORY_LIMIT, "limits.memory", "1")) ||
        (rc = add_limit_env(list, env, TERRANE_ENV_CPU_LIMIT, "limits.cpu", "1m")))
        goto fail;
    size_t n = json_object_size(env), i = 0;
    if (n) {
        names = cmem_calloc(n, sizeof *names);
        if (!names) {
            rc = cerr_oom();
            goto fail;
        }
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)env, k, v) names[i++] = k;
        for (size_t a = 1; a < n; a++) /* insertion sort: a handful of names */
            for (size_t b = a; b > 0 && strcmp(names[b - 1], names[b]) > 0; b--) {
                const char *t = names[b];
                names[b] = names[b - 1];
                names[b - 1] = t;
            }
        for (i = 0; i < n; i++) {
            const json_t *val = json_object_get(env, names[i]);
            if (json_is_string(val) && (rc = add_env(list, names[i], json_string_value(val))))
                goto fail;
        }
    }
    cmem_free(names);
    *out = list;
    return 0;
fail:
    cmem_free(names);
    json_decref(list);
    return rc;
}

int podspec_build(const podspec_config *cfg, const podspec_attempt *a, json_t **out)
{
    json_t *pod = NULL, *env = NULL, *resources = NULL, *command = NULL;
    char *task_text = NULL;
    char name[PODSPEC_NAME_MAX + 1], dv12[DV_SHORT_LEN + 1], label[64];
    char attempt[16], attempts[16], retries[16], generation[24];
    int rc;
    *out = NULL;
    if ((rc = podspec_name(a->am_name, a->data_version, a->attempt, name, sizeof name)) ||
        (rc = dv_short(a->data_version, dv12)))
        return rc;
    podspec_materialization_label(a->am_name, label, sizeof label);
    snprintf(attempt, sizeof attempt, "%d", a->attempt);
    snprintf(attempts, sizeof attempts, "%d", a->attempts);
    snprintf(retries, sizeof retries, "%d", a->retries);
    snprintf(generation, sizeof generation, "%lld", a->generation);

    if (!(task_text = dump_compact(a->task))) return cerr_oom();
    if (strlen(task_text) > TERRANE_TASK_MAX) {
        rc = cerr_set(CERR_TOOBIG, "the task is %zu bytes, more than the %d a worker accepts",
                      strlen(task_text), TERRANE_TASK_MAX);
        goto fail;
    }
    if ((rc = build_env(cfg, task_text, &env)) ||
        (rc = pools_resources(a->pool, a->resources, &resources)))
        goto fail;
    command =
        cfg->command ? json_deep_copy(cfg->command) : json_pack("[s, s]", "terrane-worker", "run");
    if (!command) goto oom;

    /* clang-format off */
    pod = json_pack(
        "{s:s, s:s,"
        " s:{s:s, s:s,"
        "    s:{s:s, s:s, s:s, s:s, s:s, s:s},"
        "    s:{s:s, s:s, s:s, s:s},"
        "    s:[{s:s, s:s, s:s, s:s, s:b, s:b}]},"
        " s:{s:s, s:b, s:b, s:O, s:O,"
        "    s:{s:b, s:i, s:i, s:i, s:{s:s}},"
        "    s:[{s:s, s:s, s:s, s:O, s:o, s:o, s:s,"
        "        s:{s:b, s:b, s:b, s:{s:[s]}, s:{s:s}},"
        "        s:[{s:s, s:s}]}],"
        "    s:[{s:s, s:{}}]}}",
        "apiVersion", "v1", "kind", "Pod",
        "metadata", "name", name, "namespace", a->namespace_,
        "labels", PODSPEC_MANAGED_BY, PODSPEC_MANAGER, PODSPEC_APP_NAME, PODSPEC_APP,
        PODSPEC_L_MATERIALIZATION, label, PODSPEC_L_DATA_VERSION, dv12, PODSPEC_L_ATTEMPT, attempt,
        PODSPEC_L_POOL, pool_name(a->pool),
        "annotations", PODSPEC_A_DATA_VERSION, a->data_version, PODSPEC_A_GENERATION, generation,
        PODSPEC_A_ATTEMPTS, attempts, PODSPEC_A_RETRIES, retries,
        "ownerReferences", "apiVersion", "terrane.io/v1alpha1", "kind", "AssetMaterialization",
        "name", a->am_name, "uid", a->am_uid, "controller", 1, "blockOwnerDeletion", 1,
        "spec", "restartPolicy", "Never", "automountServiceAccountToken", 0, "enableServiceLinks", 0,
        "nodeSelector", pool_node_selector(a->pool), "tolerations", pool_tolerations(a->pool),
        "securityContext", "runAsNonRoot", 1, "runAsUser", PODSPEC_UID, "runAsGroup", PODSPEC_UID,
        "fsGroup", PODSPEC_UID, "seccompProfile", "type", "RuntimeDefault",
        "containers", "name", PODSPEC_CONTAINER, "image", cfg->image, "imagePullPolicy",
        cfg->pull_policy ? cfg->pull_policy : "IfNotPresent", "command", command, "env", env,
        "resources", resources, "terminationMessagePolicy", "FallbackToLogsOnError",
        "securityContext", "allowPrivilegeEscalation", 0, "readOnlyRootFilesystem", 1,
        "runAsNonRoot", 1, "capabilities", "drop", "ALL", "seccompProfile", "type", "RuntimeDefault",
        "volumeMounts", "name", "scratch", "mountPath", PODSPEC_SCRATCH,
        "volumes", "name", "scratch", "emptyDir");
    /* clang-format on */
    env = resources = NULL; /* stolen by "o" */
    if (!pod) goto oom;
    json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
    json_t *annotations = json_object_get(meta, "annotations");
    if (a->asset_key &&
        json_object_set_new(annotations, PODSPEC_A_ASSET_KEY, json_string(a->asset_key)))
        goto oom;
    if (!json_object_size(pool_node_selector(a->pool))) json_object_del(spec, "nodeSelector");
    if (!json_array_size(pool_tolerations(a->pool))) json_object_del(spec, "tolerations");
    if (cfg->service_account && cfg->service_account[0] &&
        json_object_set_new(spec, "serviceAccountName", json_string(cfg->service_account)))
        goto oom;
    if (cfg->active_deadline_s > 0 &&
        json_object_set_new(spec, "activeDeadlineSeconds", json_integer(cfg->active_deadline_s)))
        goto oom;
    const json_t *op = json_object_get(a->task, "operation");
    if (json_is_string(op) && !strcmp(json_string_value(op), PODCTR_OPERATION) &&
        (rc = podctr_shape(cfg, a, pod)))
        goto fail;
    json_decref(command);
    cmem_free(task_text);
    *out = pod;
    return 0;
oom:
    rc = cerr_oom();
fail:
    json_decref(pod);
    json_decref(env);
    json_decref(resources);
    json_decref(command);
    cmem_free(task_text);
    return rc;
}
