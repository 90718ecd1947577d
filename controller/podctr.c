/*
 * podctr.c - container assets' pods (see podctr.h).
 */
#include "podctr.h"

#include "lib/cerr.h"
#include "terrane_proto.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const json_t *get(const json_t *o, const char *key)
{
    return json_is_object(o) ? json_object_get(o, key) : NULL;
}

static const char *get_str(const json_t *o, const char *key)
{
    const json_t *v = get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

void podctr_input_file(const char *uri, char *out, size_t size)
{
    size_t end = strcspn(uri, "?#"), start = end;
    while (start > 0 && uri[start - 1] != '/')
        start--;
    size_t n = end - start;
    bool ok = n >= 1 && n <= PODCTR_FILE_MAX && !(n == 1 && uri[start] == '.') &&
              !(n == 2 && uri[start] == '.' && uri[start + 1] == '.');
    for (size_t i = start; ok && i < end; i++)
        ok = isalnum((unsigned char)uri[i]) || strchr("._-", uri[i]);
    if (ok)
        snprintf(out, size, "%.*s", (int)n, uri + start);
    else
        snprintf(out, size, "data");
}

static int add_env(json_t *list, const char *name, const char *value)
{
    json_t *e = json_pack("{s:s, s:s}", "name", name, "value", value);
    if (!e || json_array_append_new(list, e)) return cerr_oom();
    return 0;
}

static json_t *mount(const char *name, const char *path, bool ro)
{
    json_t *m = json_pack("{s:s, s:s}", "name", name, "mountPath", path);
    if (m && ro && json_object_set_new(m, "readOnly", json_true())) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* The configured command with "run" at its end replaced by sub. */
static json_t *step_command(const json_t *command, const char *sub)
{
    json_t *c = json_deep_copy(command);
    size_t n = json_array_size(c);
    const char *last = n ? json_string_value(json_array_get(c, n - 1)) : NULL;
    if (!c) return NULL;
    int rc = last && !strcmp(last, "run") ? json_array_set_new(c, n - 1, json_string(sub))
                                          : json_array_append_new(c, json_string(sub));
    if (rc) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* A worker step from the worker container w (copied): its subcommand, one
 * more variable, its volume beside scratch, the small step resources.
 * (json_object_set_new takes the value's reference also when it fails.) */
static json_t *worker_step(const json_t *w, const char *name, const char *sub, const char *var,
                           const char *volume, const char *path)
{
    json_t *s = json_deep_copy(w);
    if (!s) return NULL;
    json_t *mounts = json_object_get(s, "volumeMounts");
    if (json_object_set_new(s, "name", json_string(name)) ||
        json_object_set_new(s, "command", step_command(json_object_get(s, "command"), sub)) ||
        json_object_set_new(s, "resources",
                            json_pack("{s:{s:s, s:s}, s:{s:s}}", "requests", "cpu", PODCTR_STEP_CPU,
                                      "memory", PODCTR_STEP_MEMORY, "limits", "memory",
                                      PODCTR_STEP_MEMORY_LIMIT)) ||
        add_env(json_object_get(s, "env"), var, path) || !json_is_array(mounts) ||
        json_array_insert_new(mounts, 0, mount(volume, path, false))) {
        json_decref(s);
        return NULL;
    }
    return s;
}

/* The task's partition for the user's code: its key and index, a time
 * window's bounds, a tile window as the task's compact JSON object. */
static int partition_env(json_t *env, const json_t *part)
{
    const char *key = get_str(part, "key");
    const json_t *index = get(part, "index"), *window = get(part, "window");
    const json_t *tile = get(part, "tile");
    if (!key) return 0;
    char num[32];
    snprintf(num, sizeof num, "%lld",
             json_is_integer(index) ? (long long)json_integer_value(index) : 0LL);
    if (add_env(env, TERRANE_ENV_PARTITION_KEY, key) ||
        add_env(env, TERRANE_ENV_PARTITION_INDEX, num))
        return -1;
    if (get_str(window, "start") && get_str(window, "end") &&
        (add_env(env, TERRANE_ENV_PARTITION_START, get_str(window, "start")) ||
         add_env(env, TERRANE_ENV_PARTITION_END, get_str(window, "end"))))
        return -1;
    if (json_is_object(tile)) { /* nine bounded integers: into a buffer, allocating nothing */
        char buf[512];
        size_t n = json_dumpb(tile, buf, sizeof buf - 1, JSON_COMPACT | JSON_SORT_KEYS);
        if (!n || n >= sizeof buf - 1)
            return cerr_set(CERR_INVALID, "partition.tile: not a tile window");
        buf[n] = '\0';
        if (add_env(env, TERRANE_ENV_PARTITION_TILE, buf)) return -1;
    }
    return 0;
}

/* params.env, then what Terrane sets: each input's path, the output
 * directory, the asset key, the data version and the partition. */
static json_t *user_env(const json_t *task)
{
    const json_t *params = get(task, "params");
    const json_t *penv = get(params, "env"), *inputs = get(task, "inputs");
    json_t *env = json_is_array(penv) ? json_deep_copy(penv) : json_array();
    if (!env) return NULL;
    for (size_t i = 0; i < json_array_size(inputs); i++) {
        const json_t *in = json_array_get(inputs, i);
        const char *name = get_str(in, "name"), *uri = get_str(in, "uri");
        if (!name || !uri) continue;
        char var[256], file[PODCTR_FILE_MAX + 1], path[512];
        int n = snprintf(var, sizeof var, "%s", TERRANE_ENV_INPUT_PREFIX);
        for (const char *p = name; *p && (size_t)n + 1 < sizeof var; p++)
            var[n++] = (char)toupper((unsigned char)*p);
        var[n] = '\0';
        podctr_input_file(uri, file, sizeof file);
        snprintf(path, sizeof path, "%s/%s/%s", PODCTR_INPUTS, name, file);
        if (add_env(env, var, path)) goto fail;
    }
    if (add_env(env, TERRANE_ENV_OUTPUT_DIR, PODCTR_OUTPUTS) ||
        add_env(env, TERRANE_ENV_ASSET_KEY,
                get_str(task, "assetKey") ? get_str(task, "assetKey") : "") ||
        add_env(env, TERRANE_ENV_DATA_VERSION,
                get_str(task, "dataVersion") ? get_str(task, "dataVersion") : "") ||
        partition_env(env, get(task, "partition")))
        goto fail;
    return env;
fail:
    json_decref(env);
    return NULL;
}

/* The user's step: its image and entry point, the pool's resources (moved
 * from the worker container), the worker's security context but a
 * writable root filesystem (interpreters write caches), inputs read-only. */
static json_t *user_step(const json_t *w, const json_t *task)
{
    const json_t *params = get(task, "params");
    const char *image = get_str(params, "image");
    json_t *u = NULL, *sc = NULL, *mounts = NULL;
    if (!image || !*image) {
        cerr_set(CERR_INVALID, "spec.container.image: is required");
        return NULL;
    }
    /* built without json_pack's "o": a pack that fails early does not take
     * the references it was given */
    if (!(u = json_pack("{s:s, s:s, s:O, s:s}", "name", PODCTR_USER, "image", image, "resources",
                        get(w, "resources"), "terminationMessagePolicy",
                        "FallbackToLogsOnError")) ||
        json_object_set_new(u, "env", user_env(task)) ||
        !(sc = json_deep_copy(get(w, "securityContext"))))
        goto oom;
    json_object_del(sc, "readOnlyRootFilesystem");
    if (json_object_set_new(u, "securityContext", sc) || !(mounts = json_array()) ||
        json_object_set_new(u, "volumeMounts", mounts) ||
        json_array_append_new(mounts, mount("inputs", PODCTR_INPUTS, true)) ||
        json_array_append_new(mounts, mount("outputs", PODCTR_OUTPUTS, false)))
        goto oom;
    static const char *const copied[] = {"command", "args", "workingDir"};
    for (size_t i = 0; i < sizeof copied / sizeof *copied; i++) {
        const json_t *v = get(params, copied[i]);
        if (v && !json_is_null(v) && json_object_set_new(u, copied[i], json_deep_copy(v))) goto oom;
    }
    return u;
oom:
    cerr_oom();
    json_decref(u);
    return NULL;
}

/* The publish step reads the user's imageID from its own pod (worker/selfpod.h):
 * its name and namespace from the Downward API, and a projected service
 * account token with the cluster's CA mounted into this container only. */
static int self_pod_access(json_t *w)
{
    json_t *env = json_object_get(w, "env"), *mounts = json_object_get(w, "volumeMounts");
    static const struct {
        const char *name, *field;
    } refs[] = {{"TERRANE_POD_NAME", "metadata.name"},
                {"TERRANE_POD_NAMESPACE", "metadata.namespace"}};
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
        json_t *e = json_pack("{s:s, s:{s:{s:s}}}", "name", refs[i].name, "valueFrom", "fieldRef",
                              "fieldPath", refs[i].field);
        if (!e || json_array_append_new(env, e)) return -1;
    }
    if (add_env(env, "TERRANE_KUBE_TOKEN_FILE", PODCTR_KUBE_API_DIR "/token") ||
        add_env(env, "TERRANE_KUBE_CA_FILE", PODCTR_KUBE_API_DIR "/ca.crt"))
        return -1;
    json_t *m = mount(PODCTR_KUBE_API_VOLUME, PODCTR_KUBE_API_DIR, true);
    return !m || json_array_append_new(mounts, m) ? -1 : 0;
}

int podctr_shape(const podspec_config *cfg, const podspec_attempt *a, json_t *pod)
{
    (void)cfg;
    json_t *spec = json_object_get(pod, "spec");
    json_t *containers = json_object_get(spec, "containers");
    json_t *w = json_array_get(containers, 0);
    json_t *annotations = json_object_get(json_object_get(pod, "metadata"), "annotations");
    if (!json_is_object(w) || !json_is_array(get(w, "env")) || !json_is_array(get(w, "command")) ||
        !json_is_object(annotations))
        return cerr_set(CERR_INVALID, "container asset: not a worker pod");
    json_t *user = user_step(w, a->task);
    if (!user) return cerr_code() == CERR_INVALID ? CERR_INVALID : cerr_oom();
    json_t *init = json_array();
    if (!init ||
        json_array_append_new(init, worker_step(w, PODCTR_FETCH, "fetch", TERRANE_ENV_INPUTS_DIR,
                                                "inputs", PODCTR_INPUTS)) ||
        json_array_append_new(init, user)) {
        if (!init || json_array_size(init) == 0) json_decref(user);
        json_decref(init);
        return cerr_oom();
    }
    json_t *worker = worker_step(w, PODSPEC_CONTAINER, "publish-outputs", TERRANE_ENV_OUTPUT_DIR,
                                 "outputs", PODCTR_OUTPUTS);
    if (!worker) {
        json_decref(init);
        return cerr_oom();
    }
    if (self_pod_access(worker)) {
        json_decref(worker);
        json_decref(init);
        return cerr_oom();
    }
    /* worker first: replacing an array element allocates nothing */
    if (json_array_set_new(containers, 0, worker)) {
        json_decref(init);
        return cerr_oom();
    }
    if (json_object_set_new(spec, "initContainers", init) ||
        json_object_set_new(
            spec, "volumes",
            json_pack("[{s:s, s:{}}, {s:s, s:{}}, {s:s, s:{}}, {s:s, s:{s:[{s:{s:s, "
                      "s:i}}, {s:{s:s, s:[{s:s, s:s}]}}]}}]",
                      "name", "inputs", "emptyDir", "name", "outputs", "emptyDir", "name",
                      "scratch", "emptyDir", "name", PODCTR_KUBE_API_VOLUME, "projected", "sources",
                      "serviceAccountToken", "path", "token", "expirationSeconds", 3600,
                      "configMap", "name", "kube-root-ca.crt", "items", "key", "ca.crt", "path",
                      "ca.crt")) ||
        json_object_set_new(annotations, PODCTR_SKIP_CONTAINERS, json_string(PODCTR_USER)))
        return cerr_oom();
    return 0;
}

/* --- reading the steps back ------------------------------------------------------- */

static const json_t *init_statuses(const json_t *pod)
{
    const json_t *l = get(get(pod, "status"), "initContainerStatuses");
    return json_is_array(l) ? l : NULL;
}

static const json_t *init_status(const json_t *pod, const char *name)
{
    const json_t *l = init_statuses(pod);
    for (size_t i = 0; i < json_array_size(l); i++) {
        const char *n = get_str(json_array_get(l, i), "name");
        if (n && !strcmp(n, name)) return json_array_get(l, i);
    }
    return NULL;
}

bool podctr_is_container_pod(const json_t *pod)
{
    /* the controller's pod cache keeps the status but not the spec */
    if (init_status(pod, PODCTR_USER)) return true;
    const json_t *l = get(get(pod, "spec"), "initContainers");
    for (size_t i = 0; i < json_array_size(l); i++) {
        const char *n = get_str(json_array_get(l, i), "name");
        if (n && !strcmp(n, PODCTR_USER)) return true;
    }
    return false;
}

bool podctr_failed_step(const json_t *pod, podctr_failure *out)
{
    const json_t *l = init_statuses(pod);
    for (size_t i = 0; i < json_array_size(l); i++) {
        const json_t *cs = json_array_get(l, i);
        const json_t *t = get(get(cs, "state"), "terminated");
        if (!json_is_object(t)) t = get(get(cs, "lastState"), "terminated");
        if (!json_is_object(t)) continue;
        const json_t *ec = get(t, "exitCode");
        long long code = json_is_integer(ec) ? json_integer_value(ec) : -1;
        const char *reason = get_str(t, "reason");
        if (code == 0 && !(reason && !strcmp(reason, "OOMKilled"))) continue;
        out->step = get_str(cs, "name") ? get_str(cs, "name") : "?";
        out->exit_code = code;
        out->reason = reason;
        out->message = get_str(t, "message");
        return true;
    }
    return false;
}

const char *podctr_current_step(const json_t *pod, const char **wait_reason,
                                const char **wait_message)
{
    const json_t *l = init_statuses(pod);
    *wait_reason = *wait_message = NULL;
    for (size_t i = 0; i < json_array_size(l); i++) {
        const json_t *cs = json_array_get(l, i);
        const json_t *st = get(cs, "state");
        if (json_is_object(get(st, "terminated"))) continue;
        const json_t *w = get(st, "waiting");
        const char *r = get_str(w, "reason");
        if (r && strcmp(r, "PodInitializing") && strcmp(r, "ContainerCreating")) {
            *wait_reason = r;
            *wait_message = get_str(w, "message");
        }
        return get_str(cs, "name");
    }
    return NULL;
}

const char *podctr_image_id(const json_t *pod)
{
    const char *id = get_str(init_status(pod, PODCTR_USER), "imageID");
    return id && *id ? id : NULL;
}

bool podctr_image_pinned(const char *image)
{
    const char *at = image ? strstr(image, "@sha256:") : NULL;
    if (!at) return false;
    at += 8;
    size_t n = 0;
    while (isxdigit((unsigned char)at[n]))
        n++;
    return n == 64 && at[n] == '\0';
}

/* What byte c of a log costs on one line: a newline becomes " | ". */
static size_t tail_cost(char c)
{
    return c == '\n' ? 3 : 1;
}

void podctr_log_tail(const char *msg, char *out, size_t size)
{
    if (!size) return;
    out[0] = '\0';
    if (size < 8) return;
    size_t n = strlen(msg), start, used = 0, total = 0;
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
        n--;
    for (size_t i = 0; i < n; i++)
        total += tail_cost(msg[i]);
    if (total <= size - 1) {
        start = 0;
    } else { /* the end that fits after "..." */
        for (start = n; start > 0 && used + tail_cost(msg[start - 1]) <= size - 4; start--)
            used += tail_cost(msg[start - 1]);
    }
    size_t o = 0;
    if (start > 0) o += (size_t)snprintf(out, size, "...");
    for (size_t i = start; i < n; i++) {
        unsigned char ch = (unsigned char)msg[i];
        if (ch == '\n') {
            memcpy(out + o, " | ", 3);
            o += 3;
        } else {
            out[o++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
        }
    }
    out[o] = '\0';
}

int podctr_output_fields(const json_t *pod, const json_t *ro, json_t *out)
{
    if (!podctr_is_container_pod(pod)) return 0;
    static const char *const copied[] = {"files", "metadata", "metadataTruncated"};
    for (size_t i = 0; i < sizeof copied / sizeof *copied; i++) {
        const json_t *v = get(ro, copied[i]);
        if (v && json_object_set_new(out, copied[i], json_deep_copy(v))) return cerr_oom();
    }
    const char *id = podctr_image_id(pod);
    if (id && json_object_set_new(out, "imageID", json_string(id))) return cerr_oom();
    return 0;
}

const char *podctr_unpinned_image(const am_spec *spec)
{
    if (!spec->operation || strcmp(spec->operation, PODCTR_OPERATION)) return NULL;
    const char *image = get_str(spec->params, "image");
    return image && !podctr_image_pinned(image) ? image : NULL;
}
