/*
 * test_podspec.c - worker pod construction: deterministic names (also for
 * names too long for a DNS label), labels, annotations, the owner
 * reference, the container (image, command, environment order and
 * overrides, resources from the pool and spec.resources), the pool's
 * scheduling constraints, the restricted security context, optional
 * fields, the task size limit, the worker environment check, and
 * allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "podspec.h"
#include "pools.h"
#include "terrane_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DV "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char POOLS[] = "{\"defaultPool\":\"cpu\",\"pools\":{"
                            "\"cpu\":{\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":"
                            "\"2Gi\"},\"limits\":{\"memory\":\"4Gi\"}}},"
                            "\"gpu\":{\"nodeSelector\":{\"terrane.io/"
                            "pool\":\"gpu\"},\"tolerations\":[{\"key\":\"nvidia.com/gpu\","
                            "\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}],\"resources\":{"
                            "\"limits\":{\"nvidia.com/gpu\":\"1\"}}}}}";

static pools *g_pools;

static int setup(void **state)
{
    (void)state;
    cmem_init();
    assert_int_equal(pools_load_bytes(POOLS, strlen(POOLS), &g_pools), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pools_free(g_pools);
    return 0;
}

static bool valid_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool an = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!an && c != '-') return false;
        if ((i == 0 || i == n - 1) && !an) return false;
    }
    return true;
}

static void names(void **state)
{
    (void)state;
    char name[128], again[128];
    assert_int_equal(podspec_name("dem-slope", DV, 1, name, sizeof name), 0);
    assert_string_equal(name, "dem-slope-0123456789ab-1");
    assert_int_equal(podspec_name("dem-slope", DV, 12, name, sizeof name), 0);
    assert_string_equal(name, "dem-slope-0123456789ab-12");

    /* too long for a DNS label: shortened, hashed, still deterministic */
    char longname[254];
    memset(longname, 'a', 253);
    longname[253] = '\0';
    longname[100] = '.';
    assert_int_equal(podspec_name(longname, DV, 3, name, sizeof name), 0);
    assert_int_equal(podspec_name(longname, DV, 3, again, sizeof again), 0);
    assert_string_equal(name, again);
    assert_true(strlen(name) <= 63);
    assert_true(valid_label(name));
    assert_string_equal(name + strlen(name) - 15, "-0123456789ab-3");
    /* a different long name with the same prefix gets a different hash */
    longname[200] = 'b';
    assert_int_equal(podspec_name(longname, DV, 3, again, sizeof again), 0);
    assert_string_not_equal(name, again);
    /* '.' is fine in object names but not in a DNS label: hashed too */
    assert_int_equal(podspec_name("dem.v2", DV, 1, name, sizeof name), 0);
    assert_true(valid_label(name));
    assert_true(strncmp(name, "dem-v2-", 7) == 0);

    assert_int_equal(podspec_name("x", "sha256:nothex", 1, name, sizeof name), CERR_INVALID);
    assert_int_equal(podspec_name("x", DV, 0, name, sizeof name), CERR_INVALID);

    char label[64];
    podspec_materialization_label("dem-slope", label, sizeof label);
    assert_string_equal(label, "dem-slope");
    podspec_materialization_label(longname, label, sizeof label);
    assert_true(strlen(label) <= 63 && valid_label(label));
}

static json_t *task(void)
{
    return json_pack("{s:s, s:s, s:s}", "apiVersion", "terrane.io/v1", "kind", "Task",
                     "dataVersion", DV);
}

static podspec_attempt attempt_on(const char *pool_name, json_t *t)
{
    return (podspec_attempt){.namespace_ = "hydro",
                             .am_name = "dem-slope",
                             .am_uid = "uid-1",
                             .generation = 4,
                             .asset_key = "hydrology/dem_slope",
                             .data_version = DV,
                             .attempt = 2,
                             .attempts = 2,
                             .retries = 1,
                             .pool = pools_find(g_pools, pool_name),
                             .task = t};
}

static const char *str_at(const json_t *v, const char *path)
{
    /* "a.b.c" through objects, "[0]" not needed here */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = v;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_object_get(cur, tok);
    return json_string_value(cur);
}

static void builds_the_pod(void **state)
{
    (void)state;
    json_t *env = json_pack("{s:s, s:s, s:s}", "ZED", "z", "AWS_S3_ENDPOINT", "s3.local:9000",
                            "TERRANE_ALLOWED_BUCKETS", "raw,assets");
    podspec_config cfg = {.image = "registry.example/terrane-worker:0.1.0", .env = env};
    json_t *t = task();
    podspec_attempt a = attempt_on("cpu", t);
    json_t *pod = NULL;
    assert_int_equal(podspec_build(&cfg, &a, &pod), 0);

    assert_string_equal(str_at(pod, "metadata.name"), "dem-slope-0123456789ab-2");
    assert_string_equal(str_at(pod, "metadata.namespace"), "hydro");
    const json_t *labels = json_object_get(json_object_get(pod, "metadata"), "labels");
    assert_string_equal(json_string_value(json_object_get(labels, "app.kubernetes.io/managed-by")),
                        "terrane-controller");
    assert_string_equal(json_string_value(json_object_get(labels, "app.kubernetes.io/name")),
                        "terrane-worker");
    assert_string_equal(json_string_value(json_object_get(labels, "terrane.io/materialization")),
                        "dem-slope");
    assert_string_equal(json_string_value(json_object_get(labels, "terrane.io/data-version")),
                        "0123456789ab");
    assert_string_equal(json_string_value(json_object_get(labels, "terrane.io/attempt")), "2");
    assert_string_equal(json_string_value(json_object_get(labels, "terrane.io/pool")), "cpu");
    const json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
    assert_string_equal(json_string_value(json_object_get(ann, "terrane.io/data-version")), DV);
    assert_string_equal(json_string_value(json_object_get(ann, "terrane.io/generation")), "4");
    assert_string_equal(json_string_value(json_object_get(ann, "terrane.io/attempts")), "2");
    assert_string_equal(json_string_value(json_object_get(ann, "terrane.io/retries")), "1");
    assert_string_equal(json_string_value(json_object_get(ann, "terrane.io/asset-key")),
                        "hydrology/dem_slope");
    const json_t *ref =
        json_array_get(json_object_get(json_object_get(pod, "metadata"), "ownerReferences"), 0);
    assert_string_equal(json_string_value(json_object_get(ref, "apiVersion")),
                        "terrane.io/v1alpha1");
    assert_string_equal(json_string_value(json_object_get(ref, "kind")), "AssetMaterialization");
    assert_string_equal(json_string_value(json_object_get(ref, "name")), "dem-slope");
    assert_string_equal(json_string_value(json_object_get(ref, "uid")), "uid-1");
    assert_true(json_is_true(json_object_get(ref, "controller")));
    assert_true(json_is_true(json_object_get(ref, "blockOwnerDeletion")));

    const json_t *spec = json_object_get(pod, "spec");
    assert_string_equal(str_at(spec, "restartPolicy"), "Never");
    assert_null(json_object_get(spec, "nodeSelector")); /* the cpu pool has none */
    assert_null(json_object_get(spec, "tolerations"));
    assert_null(json_object_get(spec, "serviceAccountName"));
    assert_null(json_object_get(spec, "activeDeadlineSeconds"));
    assert_true(json_is_false(json_object_get(spec, "automountServiceAccountToken")));
    assert_true(
        json_is_true(json_object_get(json_object_get(spec, "securityContext"), "runAsNonRoot")));
    assert_string_equal(str_at(spec, "securityContext.seccompProfile.type"), "RuntimeDefault");
    const json_t *vol = json_array_get(json_object_get(spec, "volumes"), 0);
    assert_true(json_is_object(json_object_get(vol, "emptyDir")));

    const json_t *c = json_array_get(json_object_get(spec, "containers"), 0);
    assert_string_equal(str_at(c, "image"), "registry.example/terrane-worker:0.1.0");
    assert_string_equal(str_at(c, "imagePullPolicy"), "IfNotPresent");
    assert_string_equal(str_at(c, "terminationMessagePolicy"), "FallbackToLogsOnError");
    const json_t *cmd = json_object_get(c, "command");
    assert_int_equal(json_array_size(cmd), 2);
    assert_string_equal(json_string_value(json_array_get(cmd, 0)), "terrane-worker");
    assert_string_equal(json_string_value(json_array_get(cmd, 1)), "run");
    const json_t *sc = json_object_get(c, "securityContext");
    assert_true(json_is_false(json_object_get(sc, "allowPrivilegeEscalation")));
    assert_true(json_is_true(json_object_get(sc, "readOnlyRootFilesystem")));
    assert_true(json_is_true(json_object_get(sc, "runAsNonRoot")));
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(sc, "capabilities"), "drop"), 0)),
                        "ALL");
    assert_string_equal(str_at(sc, "seccompProfile.type"), "RuntimeDefault");
    const json_t *mount = json_array_get(json_object_get(c, "volumeMounts"), 0);
    assert_string_equal(str_at(mount, "mountPath"), "/scratch");

    /* environment: the task first, scratch defaults, the limits, then the
     * configured variables sorted by name */
    const json_t *e = json_object_get(c, "env");
    static const char *const order[] = {"TERRANE_TASK",
                                        "TERRANE_SCRATCH_DIR",
                                        "TMPDIR",
                                        "TERRANE_MEMORY_LIMIT",
                                        "TERRANE_CPU_LIMIT",
                                        "AWS_S3_ENDPOINT",
                                        "TERRANE_ALLOWED_BUCKETS",
                                        "ZED"};
    assert_int_equal(json_array_size(e), 8);
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(str_at(json_array_get(e, i), "name"), order[i]);
    assert_string_equal(str_at(json_array_get(e, 1), "value"), "/scratch");
    /* the limits through the Downward API: bytes and millicores */
    assert_string_equal(str_at(json_array_get(e, 3), "valueFrom.resourceFieldRef.resource"),
                        "limits.memory");
    assert_string_equal(str_at(json_array_get(e, 3), "valueFrom.resourceFieldRef.containerName"),
                        "worker");
    assert_string_equal(str_at(json_array_get(e, 4), "valueFrom.resourceFieldRef.resource"),
                        "limits.cpu");
    assert_string_equal(str_at(json_array_get(e, 4), "valueFrom.resourceFieldRef.divisor"), "1m");
    json_t *back = json_loads(str_at(json_array_get(e, 0), "value"), 0, NULL);
    assert_true(json_equal(back, t));
    json_decref(back);

    /* resources: the pool's */
    assert_string_equal(str_at(c, "resources.requests.memory"), "2Gi");
    assert_string_equal(str_at(c, "resources.limits.memory"), "4Gi");
    json_decref(pod);
    json_decref(env);
    json_decref(t);
}

static void pool_and_options(void **state)
{
    (void)state;
    json_t *env = json_pack("{s:s}", "TERRANE_SCRATCH_DIR", "/tmp/x");
    json_t *cmd = json_pack("[s, s, s]", "/opt/worker", "run", "--verbose");
    podspec_config cfg = {.image = "w:1",
                          .pull_policy = "Always",
                          .command = cmd,
                          .env = env,
                          .service_account = "terrane-worker",
                          .active_deadline_s = 3600};
    json_t *t = task();
    podspec_attempt a = attempt_on("gpu", t);
    json_t *res = json_pack("{s:s, s:i}", "memory", "8Gi", "cpu", 2);
    a.resources = res;
    json_t *pod = NULL;
    assert_int_equal(podspec_build(&cfg, &a, &pod), 0);
    const json_t *spec = json_object_get(pod, "spec");
    assert_string_equal(json_string_value(json_object_get(json_object_get(spec, "nodeSelector"),
                                                          "terrane.io/pool")),
                        "gpu");
    assert_string_equal(str_at(json_array_get(json_object_get(spec, "tolerations"), 0), "key"),
                        "nvidia.com/gpu");
    assert_string_equal(str_at(spec, "serviceAccountName"), "terrane-worker");
    assert_int_equal(json_integer_value(json_object_get(spec, "activeDeadlineSeconds")), 3600);
    const json_t *c = json_array_get(json_object_get(spec, "containers"), 0);
    assert_string_equal(str_at(c, "imagePullPolicy"), "Always");
    assert_int_equal(json_array_size(json_object_get(c, "command")), 3);
    /* spec.resources override the pool's requests; the GPU limit stays */
    assert_string_equal(str_at(c, "resources.requests.memory"), "8Gi");
    assert_string_equal(str_at(c, "resources.requests.cpu"), "2");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(c, "resources"), "limits"), "nvidia.com/gpu")),
        "1");
    /* a configured scratch directory replaces the default */
    const json_t *e = json_object_get(c, "env");
    int scratch = 0;
    for (size_t i = 0; i < json_array_size(e); i++)
        if (!strcmp(str_at(json_array_get(e, i), "name"), "TERRANE_SCRATCH_DIR")) {
            scratch++;
            assert_string_equal(str_at(json_array_get(e, i), "value"), "/tmp/x");
        }
    assert_int_equal(scratch, 1);
    json_decref(pod);

    /* an invalid override names the field */
    json_object_set_new(res, "memory", json_string("lots"));
    assert_int_equal(podspec_build(&cfg, &a, &pod), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "spec.resources.memory"));
    json_decref(res);
    json_decref(env);
    json_decref(cmd);
    json_decref(t);
}

static void task_too_big(void **state)
{
    (void)state;
    char *big = cmem_malloc(TERRANE_TASK_MAX + 1);
    memset(big, 'x', TERRANE_TASK_MAX);
    big[TERRANE_TASK_MAX] = '\0';
    json_t *t = json_pack("{s:s}", "expression", big);
    podspec_config cfg = {.image = "w:1"};
    podspec_attempt a = attempt_on("cpu", t);
    json_t *pod = NULL;
    assert_int_equal(podspec_build(&cfg, &a, &pod), CERR_TOOBIG);
    assert_null(pod);
    json_decref(t);
    cmem_free(big);
}

static void worker_env(void **state)
{
    (void)state;
    json_t *ok = json_pack("{s:s, s:s}", "A_1", "x", "_B", "");
    assert_int_equal(podspec_check_env(ok), 0);
    assert_int_equal(podspec_check_env(NULL), 0);
    json_decref(ok);
    static const char *const bad[] = {"{\"TERRANE_TASK\":\"{}\"}", "{\"1A\":\"x\"}",
                                      "{\"A-B\":\"x\"}", "{\"A\":1}", "[\"A\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *v = json_loads(bad[i], 0, NULL);
        assert_int_equal(podspec_check_env(v), CERR_INVALID);
        json_decref(v);
    }
}

static void out_of_memory(void **state)
{
    (void)state;
    json_t *env = json_pack("{s:s, s:s}", "B", "b", "A", "a");
    podspec_config cfg = {
        .image = "w:1", .env = env, .service_account = "sa", .active_deadline_s = 5};
    json_t *t = task();
    podspec_attempt a = attempt_on("gpu", t);
    json_t *ref = NULL;
    assert_int_equal(podspec_build(&cfg, &a, &ref), 0);
    long live = cmem_live();
    unsigned long n;
    for (n = 1;; n++) {
        json_t *pod = NULL;
        unsigned long before = cmem_count();
        cmem_fail_at(n);
        int rc = podspec_build(&cfg, &a, &pod);
        cmem_fail_at(0);
        bool reached = cmem_count() - before >= n;
        if (rc == 0 && !json_equal(pod, ref))
            fail_msg("n=%lu: %s", n, json_dumps(pod, JSON_SORT_KEYS));
        json_decref(pod);
        assert_int_equal(cmem_live(), live);
        if (!reached) {
            assert_int_equal(rc, 0);
            break;
        }
        assert_int_equal(rc, CERR_NOMEM);
    }
    json_decref(ref);
    assert_true(n > 20);
    json_decref(env);
    json_decref(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(builds_the_pod),
        cmocka_unit_test(pool_and_options),
        cmocka_unit_test(task_too_big),
        cmocka_unit_test(worker_env),
        cmocka_unit_test(out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
