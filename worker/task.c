/*
 * task.c - decoding and checking the Task document.
 *
 * The task comes from a user's resource through the controller, so every
 * field is checked for type, format and length before anything uses it, and
 * errors name the field with the contract's path syntax ("inputs[1].name").
 * Ownership: the task owns copies of every string and the params object
 * (detached from the parsed document), so the document is freed at once.
 */
#include "task.h"

#include "cog.h"
#include "err.h"
#include "hash.h"
#include "input.h"
#include "mem.h"
#include "op.h"
#include "terrane_proto.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define MAX_URI 2048
/* The result carries three URIs under the output prefix and must fit in the
 * 4096-byte termination message, so the prefix is shorter than input URIs. */
#define MAX_OUTPUT_URI 512

static bool is_dns_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i && i + 1 < n);
        if (!ok) return false;
    }
    return true;
}

/* DNS subdomain (RFC 1123), as Kubernetes object names. */
static bool is_dns_subdomain(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !((c == '-' || c == '.') && i && i + 1 < n)) return false;
    }
    return true;
}

/* Segments of [A-Za-z0-9_.-] separated by '/', none empty, "." or "..": the
 * key becomes part of an object path, so it must not be able to climb. */

bool task_asset_key_valid(const char *s)
{
    size_t n = strlen(s), seg = 0;
    if (n == 0 || n > 253) return false;
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '/' || c == '\0') {
            if (seg == 0) return false;
            if (seg == 1 && s[i - 1] == '.') return false;
            if (seg == 2 && s[i - 1] == '.' && s[i - 2] == '.') return false;
            seg = 0;
            continue;
        }
        if (!isalnum((unsigned char)c) && c != '_' && c != '.' && c != '-') return false;
        seg++;
    }
    return true;
}

static bool is_data_version(const char *s)
{
    if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 64) return false;
    for (const char *p = s + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

static bool is_identifier(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63) return false;
    if (!isalpha((unsigned char)s[0]) && s[0] != '_') return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') return false;
    return true;
}

/* Rejects members not in allowed and members given twice (cJSON keeps both). */
static int check_members(const cJSON *obj, const char *const *allowed, const char *path)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        char field[160];
        bool known = false;
        for (size_t i = 0; allowed[i]; i++)
            if (!strcmp(allowed[i], m->string)) known = true;
        snprintf(field, sizeof field, "%s%s%.64s", path, path[0] ? "." : "", m->string);
        if (!known)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: unknown field", field);
        for (const cJSON *p = obj->child; p != m; p = p->next)
            if (!strcmp(p->string, m->string))
                return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: given more than once",
                               field);
    }
    return 0;
}

/* Copies the string member name of obj into *out. Missing: error if required. */
static int get_str(const cJSON *obj, const char *name, const char *field, bool required,
                   size_t max_len, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (!v) {
        if (!required) return 0;
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: required field is missing",
                       field);
    }
    if (!cJSON_IsString(v))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: must be a string", field);
    if (strlen(v->valuestring) > max_len)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: longer than %zu characters",
                       field, max_len);
    *out = mem_strdup(v->valuestring);
    return *out ? 0 : err_oom();
}

static int bad(const char *field, const char *what)
{
    return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: %s", field, what);
}

/* inputs[i].observed: {etag, versionId, lastModified, sizeBytes}, at least
 * one of the first three. */
static int decode_observed(const cJSON *obs, const char *path, task_input *in)
{
    static const char *const allowed[] = {"etag", "versionId", "lastModified", "sizeBytes", NULL};
    char opath[48], field[64];
    snprintf(opath, sizeof opath, "%s.observed", path);
    if (!cJSON_IsObject(obs)) return bad(opath, "must be an object");
    if (check_members(obs, allowed, opath) < 0) return -1;
#define OFIELD(n) (snprintf(field, sizeof field, "%s.%s", opath, n), field)
    if (get_str(obs, "etag", OFIELD("etag"), false, 255, &in->observed_etag) < 0) return -1;
    if (in->observed_etag && !in->observed_etag[0]) return bad(field, "must not be empty");
    if (get_str(obs, "versionId", OFIELD("versionId"), false, 1024, &in->observed_version_id) < 0)
        return -1;
    if (in->observed_version_id && !in->observed_version_id[0])
        return bad(field, "must not be empty");
    if (get_str(obs, "lastModified", OFIELD("lastModified"), false, 64,
                &in->observed_last_modified) < 0)
        return -1;
    if (in->observed_last_modified && !in->observed_last_modified[0])
        return bad(field, "must not be empty");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(obs, "sizeBytes");
    if (size) {
        if (!cJSON_IsNumber(size) || size->valuedouble < 0 || size->valuedouble > 9.0e15 ||
            size->valuedouble != (double)(long long)size->valuedouble)
            return bad(OFIELD("sizeBytes"), "must be a non-negative integer");
        in->observed_size = (long long)size->valuedouble;
    }
#undef OFIELD
    if (!in->observed_etag && !in->observed_version_id && !in->observed_last_modified)
        return bad(opath, "needs etag, versionId or lastModified");
    return 0;
}

static int decode_input(const cJSON *v, size_t i, task_input *in)
{
    static const char *const allowed[] = {"name",     "uri",      "assetKey", "dataVersion",
                                          "stacItem", "checksum", "observed", NULL};
    char path[32], field[64];
    snprintf(path, sizeof path, "inputs[%zu]", i);
    if (!cJSON_IsObject(v)) return bad(path, "must be an object");
    if (check_members(v, allowed, path) < 0) return -1;

#define FIELD(n) (snprintf(field, sizeof field, "%s.%s", path, n), field)
    if (get_str(v, "name", FIELD("name"), true, 256, &in->name) < 0) return -1;
    if (!is_identifier(in->name))
        return bad(field, "must be an identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters)");
    if (get_str(v, "uri", FIELD("uri"), true, MAX_URI, &in->uri) < 0) return -1;
    if (!in->uri[0]) return bad(field, "must not be empty");
    if (get_str(v, "assetKey", FIELD("assetKey"), false, 253, &in->asset_key) < 0) return -1;
    if (in->asset_key && !task_asset_key_valid(in->asset_key))
        return bad(field, "must be '/'-separated segments of [A-Za-z0-9_.-]");
    if (get_str(v, "dataVersion", FIELD("dataVersion"), false, 71, &in->data_version) < 0)
        return -1;
    if (in->data_version && !is_data_version(in->data_version))
        return bad(field, "must be sha256: followed by 64 lowercase hex digits");
    if (get_str(v, "stacItem", FIELD("stacItem"), false, MAX_URI, &in->stac_item) < 0) return -1;
    if (get_str(v, "checksum", FIELD("checksum"), false, 68, &in->checksum) < 0) return -1;
    if (in->checksum && !hash_is_multihash(in->checksum))
        return bad(field, "must be a SHA-256 multihash: 1220 followed by 64 lowercase hex digits");
    in->observed_size = -1;
    const cJSON *obs = cJSON_GetObjectItemCaseSensitive(v, "observed");
    if (obs && decode_observed(obs, path, in) < 0) return -1;
#undef FIELD
    return 0;
}

static int decode_doc(const cJSON *doc, task *t)
{
    static const char *const allowed[] = {
        "apiVersion", "kind",   "namespace", "name",    "assetKey",  "dataVersion", "operation",
        "params",     "inputs", "output",    "attempt", "partition", NULL};
    static const char *const output_allowed[] = {"uri", NULL};
    char *s = NULL;
    int rc = -1;

    if (!cJSON_IsObject(doc)) return bad("task", "must be a JSON object");
    if (check_members(doc, allowed, "") < 0) return -1;

    if (get_str(doc, "apiVersion", "apiVersion", true, 64, &s) < 0) goto done;
    if (strcmp(s, TERRANE_PROTO_API_VERSION) != 0) {
        err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "apiVersion",
                "apiVersion: \"%s\" is not supported (this worker speaks %s)", s,
                TERRANE_PROTO_API_VERSION);
        goto done;
    }
    mem_free(s);
    s = NULL;
    if (get_str(doc, "kind", "kind", true, 64, &s) < 0) goto done;
    if (strcmp(s, TERRANE_PROTO_KIND_TASK) != 0) {
        bad("kind", "must be \"Task\"");
        goto done;
    }

    if (get_str(doc, "namespace", "namespace", true, 63, &t->namespace_) < 0) goto done;
    if (!is_dns_label(t->namespace_)) {
        bad("namespace", "must be a DNS label (lowercase letters, digits, '-')");
        goto done;
    }
    if (get_str(doc, "name", "name", false, 253, &t->name) < 0) goto done;
    if (t->name && !is_dns_subdomain(t->name)) {
        bad("name", "must be a DNS subdomain name");
        goto done;
    }
    if (get_str(doc, "assetKey", "assetKey", true, 253, &t->asset_key) < 0) goto done;
    if (!task_asset_key_valid(t->asset_key)) {
        bad("assetKey",
            "must be '/'-separated segments of [A-Za-z0-9_.-], none empty, '.' or '..'");
        goto done;
    }
    if (get_str(doc, "dataVersion", "dataVersion", true, 71, &t->data_version) < 0) goto done;
    if (!is_data_version(t->data_version)) {
        bad("dataVersion", "must be sha256: followed by 64 lowercase hex digits");
        goto done;
    }
    if (get_str(doc, "operation", "operation", true, 64, &t->operation) < 0) goto done;
    t->op = op_find(t->operation);
    if (!t->op) {
        char names[256];
        size_t pos = 0;
        names[0] = '\0';
        for (const op_def *const *o = op_all(); *o; o++)
            pos += (size_t)snprintf(names + pos, sizeof names - pos, "%s%s",
                                    o == op_all() ? "" : ", ", (*o)->name);
        err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "operation",
                "operation: \"%.64s\" is not an operation (one of %s)", t->operation, names);
        goto done;
    }

    const cJSON *params = cJSON_GetObjectItemCaseSensitive(doc, "params");
    if (params && !cJSON_IsObject(params)) {
        bad("params", "must be an object");
        goto done;
    }
    t->params = params ? cJSON_Duplicate(params, true) : cJSON_CreateObject();
    if (!t->params) {
        err_oom();
        goto done;
    }

    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(doc, "inputs");
    if (inputs) {
        if (!cJSON_IsArray(inputs)) {
            bad("inputs", "must be an array");
            goto done;
        }
        int n = cJSON_GetArraySize(inputs);
        int max = t->op->max_inputs ? (int)t->op->max_inputs : TASK_MAX_INPUTS;
        if (n > max) {
            err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "inputs", "inputs: more than %d inputs", max);
            goto done;
        }
        if (n > 0) {
            t->inputs = mem_calloc((size_t)n, sizeof *t->inputs);
            if (!t->inputs) {
                err_oom();
                goto done;
            }
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, inputs)
        {
            size_t i = t->n_inputs++;
            if (decode_input(it, i, &t->inputs[i]) < 0) goto done;
            for (size_t j = 0; j < i; j++)
                if (!strcmp(t->inputs[j].name, t->inputs[i].name)) {
                    char field[48];
                    snprintf(field, sizeof field, "inputs[%zu].name", i);
                    err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                            "%s: \"%s\" is already the name of inputs[%zu]", field,
                            t->inputs[i].name, j);
                    goto done;
                }
        }
    }

    const cJSON *output = cJSON_GetObjectItemCaseSensitive(doc, "output");
    if (!output) {
        bad("output", "required field is missing");
        goto done;
    }
    if (!cJSON_IsObject(output)) {
        bad("output", "must be an object");
        goto done;
    }
    if (check_members(output, output_allowed, "output") < 0) goto done;
    if (get_str(output, "uri", "output.uri", true, MAX_OUTPUT_URI, &t->output_uri) < 0) goto done;
    size_t n = strlen(t->output_uri);
    while (n > 1 && t->output_uri[n - 1] == '/')
        t->output_uri[--n] = '\0';
    if (!n) {
        bad("output.uri", "must not be empty");
        goto done;
    }

    const cJSON *part = cJSON_GetObjectItemCaseSensitive(doc, "partition");
    if (part) {
        if (partition_decode(part, &t->partition) < 0) goto done;
        t->has_partition = true;
    }

    const cJSON *attempt = cJSON_GetObjectItemCaseSensitive(doc, "attempt");
    t->attempt = 1;
    if (attempt) {
        if (!cJSON_IsNumber(attempt) || attempt->valuedouble < 1 || attempt->valuedouble > 1e6 ||
            attempt->valuedouble != (double)(int)attempt->valuedouble) {
            bad("attempt", "must be an integer >= 1");
            goto done;
        }
        t->attempt = (int)attempt->valuedouble;
    }
    rc = 0;
done:
    mem_free(s);
    return rc;
}

int task_decode(const char *json, size_t len, task **out)
{
    cJSON *doc = NULL;
    char *buf = NULL;
    task *t = NULL;
    int rc = -1;

    *out = NULL;
    if (len > TERRANE_TASK_MAX)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "task",
                       "task: %zu bytes is over the %d-byte limit", len, TERRANE_TASK_MAX);
    if (memchr(json, '\0', len))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "task", "task: contains a NUL byte");
    /* A private NUL-terminated copy: cJSON must not read past len. */
    buf = mem_strndup(json, len);
    if (!buf) return err_oom();
    const char *end = NULL;
    doc = cJSON_ParseWithOpts(buf, &end, true);
    if (!doc) {
        size_t off = end && end >= buf ? (size_t)(end - buf) : 0;
        const char *ep = cJSON_GetErrorPtr();
        if (ep && ep >= buf && ep <= buf + len) off = (size_t)(ep - buf);
        /* cJSON returns NULL both for a syntax error and for running out of
         * memory; it reports no position for the latter. */
        err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "task", "task: invalid JSON at byte %zu", off);
        goto cleanup;
    }
    t = mem_calloc(1, sizeof *t);
    if (!t) {
        err_oom();
        goto cleanup;
    }
    if (decode_doc(doc, t) < 0) goto cleanup;
    *out = t;
    t = NULL;
    rc = 0;
cleanup:
    task_free(t);
    cJSON_Delete(doc);
    mem_free(buf);
    return rc;
}

int task_validate(const task *t)
{
    char field[48];
    if (params_check(t->params, t->op->params, t->op->cog_options ? cog_param_specs : NULL) < 0)
        return -1;
    for (size_t i = 0; i < t->n_inputs; i++) {
        snprintf(field, sizeof field, "inputs[%zu].uri", i);
        if (input_check_uri(t->inputs[i].uri, field) < 0) return -1;
    }
    if (input_check_output_uri(t->output_uri, "output.uri") < 0) return -1;
    if (t->has_partition && t->partition.has_tile && !t->op->tiles)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "partition.tile",
                       "partition.tile: operation %s does not compute a tile window (only cog, "
                       "calc, terrain and container do)",
                       t->operation);
    if (t->op->validate && t->op->validate(t) < 0) return -1;
    return 0;
}

const task_input *task_input_find(const task *t, const char *name)
{
    for (size_t i = 0; name && i < t->n_inputs; i++)
        if (!strcmp(t->inputs[i].name, name)) return &t->inputs[i];
    return NULL;
}

int task_input_index(const task *t, const task_input *in)
{
    if (!in || in < t->inputs || in >= t->inputs + t->n_inputs) return -1;
    return (int)(in - t->inputs);
}

const char *task_data_version_hex(const task *t)
{
    return t->data_version + 7; /* after "sha256:", checked by decode */
}

void task_free(task *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n_inputs; i++) {
        mem_free(t->inputs[i].name);
        mem_free(t->inputs[i].uri);
        mem_free(t->inputs[i].asset_key);
        mem_free(t->inputs[i].data_version);
        mem_free(t->inputs[i].stac_item);
        mem_free(t->inputs[i].checksum);
        mem_free(t->inputs[i].observed_etag);
        mem_free(t->inputs[i].observed_version_id);
        mem_free(t->inputs[i].observed_last_modified);
    }
    mem_free(t->inputs);
    mem_free(t->namespace_);
    mem_free(t->name);
    mem_free(t->asset_key);
    mem_free(t->data_version);
    mem_free(t->operation);
    mem_free(t->output_uri);
    cJSON_Delete(t->params);
    partition_free(&t->partition);
    mem_free(t);
}
