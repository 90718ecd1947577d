/*
 * test_podctr.c - container assets' pods: the three steps built from a
 * worker pod (commands, environment split, resources, volumes, the IRSA
 * annotation), input file names, reading failed and waiting steps, the
 * imageID, digest references, log tails, the status output fields, and
 * allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "podctr.h"
#include "podspec.h"
#include "pools.h"
#include "terrane_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DV "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST "sha256:89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567"

static const char POOLS[] = "{\"defaultPool\":\"gpu\",\"pools\":{\"gpu\":{\"nodeSelector\":{"
                            "\"terrane.io/pool\":\"gpu\"},\"resources\":{\"requests\":{\"cpu\":"
                            "\"1\",\"memory\":\"2Gi\"},\"limits\":{\"nvidia.com/gpu\":\"1\"}}}}}";

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

static json_t *ctask(const char *params)
{
    json_t *t =
        json_pack("{s:s, s:s, s:s, s:s, s:o, s:[{s:s, s:s, s:s}, {s:s, s:s}]}", "apiVersion",
                  "terrane.io/v1", "kind", "Task", "assetKey", "lux/flood_model", "dataVersion", DV,
                  "params", json_loads(params, 0, NULL), "inputs", "name", "slope", "uri",
                  "s3://assets/x/asset.tif?v=1", "checksum", "1220ab", "name", "labels", "uri",
                  "s3://raw/odd name");
    json_object_set_new(t, "operation", json_string("container"));
    return t;
}

static podspec_attempt attempt(json_t *t)
{
    return (podspec_attempt){.namespace_ = "hydro",
                             .am_name = "flood-model",
                             .am_uid = "uid-1",
                             .generation = 1,
                             .asset_key = "lux/flood_model",
                             .data_version = DV,
                             .attempt = 1,
                             .attempts = 1,
                             .retries = 0,
                             .pool = pools_find(g_pools, "gpu"),
                             .task = t};
}

static const json_t *at(const json_t *v, const char *path)
{
    /* "a.b.2.c": objects by key, arrays by index */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = v;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_is_array(cur) ? json_array_get(cur, strtoul(tok, NULL, 10))
                                 : json_object_get(cur, tok);
    return cur;
}

static const char *str(const json_t *v, const char *path)
{
    return json_string_value(at(v, path));
}

static const char *env_of(const json_t *c, const char *name)
{
    const json_t *env = json_object_get(c, "env");
    for (size_t i = 0; i < json_array_size(env); i++)
        if (!strcmp(str(json_array_get(env, i), "name"), name))
            return str(json_array_get(env, i), "value");
    return NULL;
}

static const char PARAMS[] = "{\"image\":\"ml:1\",\"command\":[\"python3\",\"/app/m.py\"],"
                             "\"args\":[\"train\"],\"workingDir\":\"/app\","
                             "\"env\":[{\"name\":\"TREES\",\"value\":\"50\"}]}";

static void three_steps(void **state)
{
    (void)state;
    json_t *wenv = json_pack("{s:s, s:s}", "AWS_ACCESS_KEY_ID", "key", "AWS_S3_ENDPOINT", "s3");
    json_t *cmd = json_pack("[s, s]", "/usr/bin/terrane-worker", "run");
    podspec_config cfg = {.image = "w:1", .env = wenv, .command = cmd};
    json_t *t = ctask(PARAMS), *pod = NULL;
    podspec_attempt a = attempt(t);
    assert_int_equal(podspec_build(&cfg, &a, &pod), 0);
    const json_t *fetch = at(pod, "spec.initContainers.0"),
                 *user = at(pod, "spec.initContainers.1");
    const json_t *worker = at(pod, "spec.containers.0");
    assert_int_equal(json_array_size(at(pod, "spec.containers")), 1);
    assert_string_equal(str(fetch, "name"), "fetch");
    assert_string_equal(str(user, "name"), "user");
    assert_string_equal(str(worker, "name"), PODSPEC_CONTAINER);
    /* the worker steps: the configured binary, run replaced by the step */
    assert_string_equal(str(fetch, "command.0"), "/usr/bin/terrane-worker");
    assert_string_equal(str(fetch, "command.1"), "fetch");
    assert_string_equal(str(worker, "command.1"), "publish-outputs");
    assert_string_equal(str(fetch, "image"), "w:1");
    assert_string_equal(env_of(fetch, TERRANE_ENV_INPUTS_DIR), "/inputs");
    assert_string_equal(env_of(worker, TERRANE_ENV_OUTPUT_DIR), "/outputs");
    assert_non_null(env_of(fetch, TERRANE_ENV_TASK));
    assert_string_equal(env_of(worker, "AWS_ACCESS_KEY_ID"), "key");
    assert_string_equal(str(fetch, "volumeMounts.0.mountPath"), "/inputs");
    assert_string_equal(str(fetch, "volumeMounts.1.mountPath"), PODSPEC_SCRATCH);
    assert_string_equal(str(worker, "volumeMounts.0.mountPath"), "/outputs");
    assert_string_equal(str(fetch, "resources.requests.memory"), PODCTR_STEP_MEMORY);
    assert_null(json_object_get(at(worker, "resources.limits"), "nvidia.com/gpu"));
    /* the user's step: its image and entry point, the pool's resources */
    assert_string_equal(str(user, "image"), "ml:1");
    assert_string_equal(str(user, "command.1"), "/app/m.py");
    assert_string_equal(str(user, "args.0"), "train");
    assert_string_equal(str(user, "workingDir"), "/app");
    assert_string_equal(
        json_string_value(json_object_get(at(user, "resources.limits"), "nvidia.com/gpu")), "1");
    assert_string_equal(str(user, "resources.requests.memory"), "2Gi");
    assert_string_equal(env_of(user, "TREES"), "50");
    assert_string_equal(env_of(user, "TERRANE_INPUT_SLOPE"), "/inputs/slope/asset.tif");
    assert_string_equal(env_of(user, "TERRANE_INPUT_LABELS"), "/inputs/labels/data");
    assert_string_equal(env_of(user, TERRANE_ENV_OUTPUT_DIR), "/outputs");
    assert_string_equal(env_of(user, TERRANE_ENV_ASSET_KEY), "lux/flood_model");
    assert_string_equal(env_of(user, TERRANE_ENV_DATA_VERSION), DV);
    assert_null(env_of(user, TERRANE_ENV_PARTITION_KEY)); /* unpartitioned */
    assert_null(env_of(user, TERRANE_ENV_TASK));
    assert_null(env_of(user, "AWS_ACCESS_KEY_ID"));
    assert_null(env_of(user, "AWS_S3_ENDPOINT"));
    assert_true(json_is_true(at(user, "volumeMounts.0.readOnly")));
    assert_string_equal(str(user, "volumeMounts.1.mountPath"), "/outputs");
    assert_null(at(user, "securityContext.readOnlyRootFilesystem"));
    assert_true(json_is_false(at(user, "securityContext.allowPrivilegeEscalation")));
    assert_string_equal(str(user, "terminationMessagePolicy"), "FallbackToLogsOnError");
    /* the pod */
    assert_int_equal(json_array_size(at(pod, "spec.volumes")), 4);
    assert_string_equal(str(pod, "spec.volumes.0.name"), "inputs");
    /* its own pod's API access: the publish step only, never the user's */
    assert_string_equal(str(pod, "spec.volumes.3.name"), PODCTR_KUBE_API_VOLUME);
    assert_string_equal(str(pod, "spec.volumes.3.projected.sources.0.serviceAccountToken.path"),
                        "token");
    assert_string_equal(str(pod, "spec.volumes.3.projected.sources.1.configMap.name"),
                        "kube-root-ca.crt");
    assert_true(json_is_false(at(pod, "spec.automountServiceAccountToken")));
    assert_string_equal(str(worker, "volumeMounts.2.name"), PODCTR_KUBE_API_VOLUME);
    assert_true(json_is_true(at(worker, "volumeMounts.2.readOnly")));
    assert_string_equal(env_of(worker, "TERRANE_KUBE_TOKEN_FILE"), PODCTR_KUBE_API_DIR "/token");
    const json_t *wenv_list = json_object_get(worker, "env");
    int refs = 0;
    for (size_t i = 0; i < json_array_size(wenv_list); i++) {
        const char *fp = str(json_array_get(wenv_list, i), "valueFrom.fieldRef.fieldPath");
        if (fp && (!strcmp(fp, "metadata.name") || !strcmp(fp, "metadata.namespace"))) refs++;
    }
    assert_int_equal(refs, 2);
    for (size_t s = 0; s < 2; s++) {
        const json_t *step = at(pod, s ? "spec.initContainers.1" : "spec.initContainers.0");
        const json_t *ms = json_object_get(step, "volumeMounts");
        for (size_t i = 0; i < json_array_size(ms); i++)
            assert_string_not_equal(str(json_array_get(ms, i), "name"), PODCTR_KUBE_API_VOLUME);
        assert_null(env_of(step, "TERRANE_KUBE_TOKEN_FILE"));
    }
    assert_string_equal(
        json_string_value(json_object_get(at(pod, "metadata.annotations"), PODCTR_SKIP_CONTAINERS)),
        "user");
    assert_true(podctr_is_container_pod(pod));
    json_decref(pod);
    json_decref(t);

    /* no command, args or workingDir: the image's own; a command not
     * ending in run gets the step appended */
    json_decref(cmd);
    cmd = json_pack("[s]", "/w");
    cfg.command = cmd;
    t = ctask("{\"image\":\"ml:1\"}");
    a = attempt(t);
    assert_int_equal(podspec_build(&cfg, &a, &pod), 0);
    user = at(pod, "spec.initContainers.1");
    assert_null(json_object_get(user, "command"));
    assert_null(json_object_get(user, "args"));
    assert_null(json_object_get(user, "workingDir"));
    assert_string_equal(str(pod, "spec.initContainers.0.command.1"), "fetch");
    json_decref(pod);
    json_decref(t);

    /* no image */
    t = ctask("{}");
    a = attempt(t);
    assert_int_equal(podspec_build(&cfg, &a, &pod), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "spec.container.image"));
    assert_null(pod);
    json_decref(t);
    json_decref(cmd);
    json_decref(wenv);
}

/* A partitioned task: the key and index; a time window's bounds; a tile
 * window as its JSON object, which the user's code can parse. */
static void partition_vars(void **state)
{
    (void)state;
    json_t *cmd = json_pack("[s, s]", "/w", "run");
    podspec_config cfg = {.image = "w:1", .env = NULL, .command = cmd};
    static const char *const parts[] = {
        "{\"key\":\"2026-11-30\",\"index\":3,\"window\":{\"start\":\"2026-11-30T00:00:00Z\","
        "\"end\":\"2026-12-01T00:00:00Z\"}}",
        "{\"key\":\"r001c002\",\"index\":7,\"tile\":{\"col\":2,\"row\":1,\"xoff\":1024,"
        "\"yoff\":512,\"xsize\":512,\"ysize\":512,\"halo\":1,\"width\":2000,\"height\":1500}}"};
    for (size_t i = 0; i < 2; i++) {
        json_t *t = ctask("{\"image\":\"ml:1\"}"), *pod = NULL;
        json_object_set_new(t, "partition", json_loads(parts[i], 0, NULL));
        podspec_attempt a = attempt(t);
        assert_int_equal(podspec_build(&cfg, &a, &pod), 0);
        const json_t *user = at(pod, "spec.initContainers.1");
        if (i == 0) {
            assert_string_equal(env_of(user, TERRANE_ENV_PARTITION_KEY), "2026-11-30");
            assert_string_equal(env_of(user, TERRANE_ENV_PARTITION_INDEX), "3");
            assert_string_equal(env_of(user, TERRANE_ENV_PARTITION_START), "2026-11-30T00:00:00Z");
            assert_string_equal(env_of(user, TERRANE_ENV_PARTITION_END), "2026-12-01T00:00:00Z");
            assert_null(env_of(user, TERRANE_ENV_PARTITION_TILE));
        } else {
            assert_string_equal(env_of(user, TERRANE_ENV_PARTITION_KEY), "r001c002");
            assert_string_equal(env_of(user, TERRANE_ENV_PARTITION_INDEX), "7");
            assert_null(env_of(user, TERRANE_ENV_PARTITION_START));
            json_t *tile = json_loads(env_of(user, TERRANE_ENV_PARTITION_TILE), 0, NULL);
            assert_true(json_equal(tile, json_object_get(json_object_get(t, "partition"), "tile")));
            json_decref(tile);
        }
        /* the worker steps read the partition from the task, not from variables */
        assert_null(env_of(at(pod, "spec.initContainers.0"), TERRANE_ENV_PARTITION_KEY));
        json_decref(pod);
        json_decref(t);
    }
    json_decref(cmd);
}

static void input_files(void **state)
{
    (void)state;
    char f[PODCTR_FILE_MAX + 1];
    podctr_input_file("s3://b/k/asset.tif", f, sizeof f);
    assert_string_equal(f, "asset.tif");
    podctr_input_file("https://h/p/model.pkl?x=1#y", f, sizeof f);
    assert_string_equal(f, "model.pkl");
    static const char *const data[] = {"s3://b/k/", "s3://b/..", "s3://b/.", "s3://b/a b",
                                       "s3://b/k$"};
    for (size_t i = 0; i < sizeof data / sizeof *data; i++) {
        podctr_input_file(data[i], f, sizeof f);
        assert_string_equal(f, "data");
    }
    char longname[200] = "s3://b/";
    memset(longname + 7, 'a', 129);
    podctr_input_file(longname, f, sizeof f);
    assert_string_equal(f, "data");
}

static json_t *pod_status(const char *init)
{
    json_t *p =
        json_pack("{s:{s:o}}", "status", "initContainerStatuses", json_loads(init, 0, NULL));
    assert_non_null(p);
    return p;
}

static void reads_steps(void **state)
{
    (void)state;
    podctr_failure f;
    const char *r, *m;
    json_t *p = pod_status("[{\"name\":\"fetch\",\"state\":{\"terminated\":{\"exitCode\":0}}},"
                           "{\"name\":\"user\",\"imageID\":\"ml@" DIGEST "\","
                           "\"state\":{\"terminated\":{\"exitCode\":65,\"reason\":\"Error\","
                           "\"message\":\"one class\\n\"}}}]");
    assert_true(podctr_failed_step(p, &f));
    assert_string_equal(f.step, "user");
    assert_int_equal(f.exit_code, 65);
    assert_string_equal(f.reason, "Error");
    assert_string_equal(f.message, "one class\n");
    assert_string_equal(podctr_image_id(p), "ml@" DIGEST);
    assert_true(podctr_is_container_pod(p));
    assert_null(podctr_current_step(p, &r, &m));
    json_decref(p);

    p = pod_status("[{\"name\":\"fetch\",\"state\":{\"terminated\":{\"exitCode\":0}}},"
                   "{\"name\":\"user\",\"state\":{\"terminated\":{\"exitCode\":137,"
                   "\"reason\":\"OOMKilled\"}}}]");
    assert_true(podctr_failed_step(p, &f));
    assert_string_equal(f.reason, "OOMKilled");
    assert_null(f.message);
    assert_null(podctr_image_id(p));
    json_decref(p);

    p = pod_status("[{\"name\":\"fetch\",\"state\":{\"terminated\":{\"exitCode\":0}}},"
                   "{\"name\":\"user\",\"state\":{\"waiting\":{\"reason\":\"ImagePullBackOff\","
                   "\"message\":\"pull access denied\"}}}]");
    assert_false(podctr_failed_step(p, &f));
    assert_string_equal(podctr_current_step(p, &r, &m), "user");
    assert_string_equal(r, "ImagePullBackOff");
    assert_string_equal(m, "pull access denied");
    json_decref(p);

    p = pod_status("[{\"name\":\"fetch\",\"state\":{\"running\":{}}},"
                   "{\"name\":\"user\",\"state\":{\"waiting\":{\"reason\":\"PodInitializing\"}}}]");
    assert_string_equal(podctr_current_step(p, &r, &m), "fetch");
    assert_null(r);
    json_decref(p);

    /* lenient: wrong types read as absent; an ordinary pod has no steps */
    p = pod_status("[7, {\"name\":3,\"state\":\"x\"}]");
    assert_false(podctr_failed_step(p, &f));
    assert_false(podctr_is_container_pod(p));
    json_decref(p);
    p = json_pack("{s:{s:[{s:s}]}}", "spec", "containers", "name", "worker");
    assert_false(podctr_is_container_pod(p));
    assert_null(podctr_current_step(p, &r, &m));
    json_decref(p);
}

static void images(void **state)
{
    (void)state;
    assert_true(podctr_image_pinned("registry.example/ml@" DIGEST));
    assert_false(podctr_image_pinned("registry.example/ml:1.0"));
    assert_false(podctr_image_pinned("ml@sha256:abc"));
    assert_false(podctr_image_pinned("ml@" DIGEST "0"));
    assert_false(podctr_image_pinned(NULL));
    json_t *params = json_pack("{s:s}", "image", "ml:1");
    am_spec s = {.operation = "container", .params = params};
    assert_string_equal(podctr_unpinned_image(&s), "ml:1");
    s.operation = "cog";
    assert_null(podctr_unpinned_image(&s));
    json_object_set_new(params, "image", json_string("ml@" DIGEST));
    s.operation = "container";
    assert_null(podctr_unpinned_image(&s));
    json_decref(params);
}

static void log_tails(void **state)
{
    (void)state;
    char out[64];
    podctr_log_tail("Traceback\n  line 3\nValueError: one class\n\n", out, sizeof out);
    assert_string_equal(out, "Traceback |   line 3 | ValueError: one class");
    char big[500];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[sizeof big - 2] = 'E';
    podctr_log_tail(big, out, sizeof out);
    assert_true(strlen(out) < sizeof out);
    assert_int_equal(strncmp(out, "...", 3), 0);
    assert_int_equal(out[strlen(out) - 1], 'E');
    memset(big, '\n', 100);
    podctr_log_tail(big, out, sizeof out);
    assert_true(strlen(out) < sizeof out);
    podctr_log_tail("a\tb\x01", out, sizeof out);
    assert_string_equal(out, "a b ");
}

static void output_fields(void **state)
{
    (void)state;
    json_t *p = pod_status("[{\"name\":\"user\",\"imageID\":\"ml@" DIGEST "\"}]");
    json_t *ro = json_pack("{s:s, s:i, s:{s:s}, s:b}", "uri", "s3://x", "files", 3, "metadata",
                           "ml:model", "rf", "metadataTruncated", 0);
    json_t *out = json_object();
    assert_int_equal(podctr_output_fields(p, ro, out), 0);
    assert_int_equal(json_integer_value(json_object_get(out, "files")), 3);
    assert_string_equal(str(out, "metadata.ml:model"), "rf");
    assert_true(json_is_false(json_object_get(out, "metadataTruncated")));
    assert_string_equal(str(out, "imageID"), "ml@" DIGEST);
    assert_null(json_object_get(out, "uri"));
    json_decref(out);
    /* other pods: nothing */
    json_t *plain = json_pack("{s:{}}", "status");
    out = json_object();
    assert_int_equal(podctr_output_fields(plain, ro, out), 0);
    assert_int_equal(json_object_size(out), 0);
    json_decref(out);
    json_decref(plain);
    json_decref(ro);
    json_decref(p);
}

static void out_of_memory(void **state)
{
    (void)state;
    json_t *wenv = json_pack("{s:s}", "AWS_REGION", "r");
    podspec_config cfg = {.image = "w:1", .env = wenv};
    json_t *t = ctask(PARAMS), *ref = NULL;
    podspec_attempt a = attempt(t);
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
    assert_true(n > 50);
    json_decref(ref);
    json_decref(t);
    json_decref(wenv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(three_steps),   cmocka_unit_test(partition_vars),
        cmocka_unit_test(input_files),   cmocka_unit_test(reads_steps),
        cmocka_unit_test(images),        cmocka_unit_test(log_tails),
        cmocka_unit_test(output_fields), cmocka_unit_test(out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
