/*
 * spec.c - AssetMaterialization spec decoding and validation (see spec.h).
 */
#include "spec.h"

#include "dataversion.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jtype.h"
#include "partition.h"
#include "pools.h"
#include "taskdoc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stand-ins for what is only known once upstreams succeed, so the params
 * can be checked before: a well-formed data version and an S3 URI. */
#define PLACEHOLDER_DV "sha256:0000000000000000000000000000000000000000000000000000000000000000"
#define PLACEHOLDER_URI "s3://terrane-upstream/asset.tif"

static int type_error(jschema_error *err, const char *path, const char *want, const json_t *got)
{
    return jschema_fail(err, path, "spec", "must be %s, got %s", want, jtype_name(got));
}

bool spec_is_dns_subdomain(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 253) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && c != '.') return false;
        if ((i == 0 || i == n - 1) && !alnum) return false;
    }
    return true;
}

/* Optional field: NULL when absent or null. */
static const json_t *opt(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int req_string(const json_t *obj, const char *key, const char *path, const char **out,
                      jschema_error *err)
{
    const json_t *v = opt(obj, key);
    if (!v) return jschema_fail(err, path, "spec", "is required");
    if (!json_is_string(v)) return type_error(err, path, "a string", v);
    *out = json_string_value(v);
    return 0;
}

static int decode_mapping(const json_t *m, size_t i, spec_input *d, jschema_error *err)
{
    char path[96];
    if (!m) return 0;
    snprintf(path, sizeof path, "spec.inputs[%zu].partitionMapping", i);
    if (!json_is_object(m)) return type_error(err, path, "an object", m);
    const json_t *type = opt(m, "type"), *count = opt(m, "count");
    const char *t = json_is_string(type) ? json_string_value(type) : "";
    if (!strcmp(t, "Identity"))
        d->mapping = SPEC_MAP_IDENTITY;
    else if (!strcmp(t, "AllToOne"))
        d->mapping = SPEC_MAP_ALL_TO_ONE;
    else if (!strcmp(t, "LastN"))
        d->mapping = SPEC_MAP_LAST_N;
    else
        return jschema_fail(err, path, "spec", "type must be one of: Identity, AllToOne, LastN");
    if ((d->mapping == SPEC_MAP_LAST_N) != (count != NULL))
        return jschema_fail(err, path, "spec",
                            "count is required for LastN and only allowed there");
    if (count) {
        snprintf(path, sizeof path, "spec.inputs[%zu].partitionMapping.count", i);
        if (!json_is_integer(count) || json_integer_value(count) < 1 ||
            json_integer_value(count) > 366)
            return jschema_fail(err, path, "spec", "must be an integer from 1 to 366");
        d->mapping_count = (int)json_integer_value(count);
    }
    return 0;
}

static int decode_inputs(const json_t *list, am_spec *s, jschema_error *err)
{
    char path[96];
    if (!list) return 0;
    if (!json_is_array(list)) return type_error(err, "spec.inputs", "an array", list);
    s->n_inputs = json_array_size(list);
    if (!s->n_inputs) return 0;
    s->inputs = cmem_calloc(s->n_inputs, sizeof *s->inputs);
    if (!s->inputs) return cerr_oom();
    for (size_t i = 0; i < s->n_inputs; i++) {
        const json_t *in = json_array_get(list, i);
        spec_input *d = &s->inputs[i];
        snprintf(path, sizeof path, "spec.inputs[%zu]", i);
        if (!json_is_object(in)) return type_error(err, path, "an object", in);
        int rc;
        snprintf(path, sizeof path, "spec.inputs[%zu].name", i);
        if ((rc = req_string(in, "name", path, &d->name, err))) return rc;
        const json_t *from = opt(in, "from"), *uri = opt(in, "uri");
        snprintf(path, sizeof path, "spec.inputs[%zu]", i);
        if (!from == !uri)
            return jschema_fail(err, path, "spec", "needs exactly one of from and uri");
        if (from) {
            snprintf(path, sizeof path, "spec.inputs[%zu].from", i);
            if (!json_is_string(from)) return type_error(err, path, "a string", from);
            d->from = json_string_value(from);
            /* a template ("raw-{date}", partmap.h) names one upstream per
             * partition: each {placeholder} stands for digits */
            char name[254];
            size_t o = 0;
            for (const char *c = d->from; *c && o + 1 < sizeof name; c++) {
                if (*c != '{') {
                    name[o++] = *c;
                    continue;
                }
                const char *e = strchr(c, '}');
                if (!e) break;
                name[o++] = '0';
                c = e;
            }
            name[o] = '\0';
            if (!spec_is_dns_subdomain(name))
                return jschema_fail(err, path, "spec",
                                    "\"%.64s\" is not the name of an AssetMaterialization (a DNS "
                                    "subdomain: lowercase letters, digits, '-' and '.')",
                                    d->from);
        } else {
            snprintf(path, sizeof path, "spec.inputs[%zu].uri", i);
            if (!json_is_string(uri)) return type_error(err, path, "a string", uri);
            d->uri = json_string_value(uri);
        }
        if ((rc = decode_mapping(opt(in, "partitionMapping"), i, d, err))) return rc;
    }
    return 0;
}

static int decode_tags(const json_t *tags, am_spec *s, jschema_error *err)
{
    if (!tags) return 0;
    if (!json_is_object(tags)) return type_error(err, "spec.tags", "an object", tags);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)tags, k, v)
    {
        if (!json_is_string(v)) {
            char path[320];
            snprintf(path, sizeof path, "spec.tags.%.256s", k);
            return type_error(err, path, "a string", v);
        }
    }
    s->tags = tags;
    return 0;
}

static int decode_resources(const json_t *res, am_spec *s, jschema_error *err)
{
    static const char *const fields[] = {"cpu", "memory"};
    if (!res) return 0;
    if (!json_is_object(res)) return type_error(err, "spec.resources", "an object", res);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)res, k, v)
    {
        char path[96];
        snprintf(path, sizeof path, "spec.resources.%.64s", k);
        if (strcmp(k, fields[0]) && strcmp(k, fields[1]))
            return jschema_fail(err, path, "spec", "unknown field (cpu, memory)");
        if (json_is_null(v)) continue;
        long long milli = 0;
        if (json_is_integer(v)) {
            milli = json_integer_value(v) * 1000;
        } else if (json_is_string(v)) {
            if (pools_quantity_parse(json_string_value(v), &milli))
                return jschema_fail(
                    err, path, "spec",
                    "\"%.64s\" is not a Kubernetes quantity (e.g. \"500m\", \"2\", \"8Gi\")",
                    json_string_value(v));
        } else {
            return type_error(err, path, "a quantity (string or integer)", v);
        }
        if (milli <= 0) return jschema_fail(err, path, "spec", "must be greater than zero");
    }
    s->resources = res;
    return 0;
}

static int int_field(const json_t *obj, const char *key, const char *path, int lo, int hi, int dflt,
                     int *out, jschema_error *err)
{
    const json_t *v = opt(obj, key);
    *out = dflt;
    if (!v) return 0;
    if (!json_is_integer(v)) return type_error(err, path, "an integer", v);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return jschema_fail(err, path, "spec", "must be between %d and %d", lo, hi);
    *out = (int)x;
    return 0;
}

static int decode_retries(const json_t *r, am_spec *s, jschema_error *err)
{
    s->retry_limit = SPEC_RETRY_LIMIT_DEFAULT;
    s->backoff_seconds = SPEC_BACKOFF_DEFAULT;
    if (!r) return 0;
    if (!json_is_object(r)) return type_error(err, "spec.retries", "an object", r);
    int rc = int_field(r, "limit", "spec.retries.limit", 0, SPEC_RETRY_LIMIT_MAX,
                       SPEC_RETRY_LIMIT_DEFAULT, &s->retry_limit, err);
    if (rc) return rc;
    return int_field(r, "backoffSeconds", "spec.retries.backoffSeconds", 1, SPEC_BACKOFF_MAX,
                     SPEC_BACKOFF_DEFAULT, &s->backoff_seconds, err);
}

void spec_field_of_task_path(const am_spec *s, const char *p, char *out, size_t size)
{
    if (!*p) {
        snprintf(out, size, "spec");
    } else if (!strncmp(p, "params", 6) && (p[6] == '\0' || p[6] == '.' || p[6] == '[')) {
        if (s->operation && !strcmp(s->operation, "container"))
            snprintf(out, size, "spec.container%s", p + 6);
        else
            snprintf(out, size, "spec.%s", p);
    } else if (!strncmp(p, "inputs[", 7)) {
        unsigned long i = strtoul(p + 7, NULL, 10);
        const char *rest = strchr(p, ']');
        rest = rest ? rest + 1 : "";
        bool upstream = i < s->n_inputs && s->inputs[i].from;
        if (upstream && (!strcmp(rest, ".uri") || !strcmp(rest, ".assetKey") ||
                         !strcmp(rest, ".dataVersion") || !strcmp(rest, ".stacItem")))
            snprintf(out, size, "spec.inputs[%lu].from", i);
        else
            snprintf(out, size, "spec.%s", p);
    } else if (!strcmp(p, "namespace") || !strcmp(p, "name")) {
        snprintf(out, size, "metadata.%s", p);
    } else if (p[0] && (!strncmp(p, "inputs", 6) || !strncmp(p, "assetKey", 8) ||
                        !strncmp(p, "operation", 9) || !strncmp(p, "output", 6))) {
        snprintf(out, size, "spec.%s", p);
    } else {
        snprintf(out, size, "task.%s", p);
    }
}

/* Which rule an input URI breaks, as the worker words it (worker/input.c),
 * for a URI the task schema refused; NULL when none of these explains it
 * (the schema's own message is kept then). */
static const char *uri_rule(const char *uri)
{
    const char *scheme_end = strstr(uri, "://");
    const char *host = scheme_end ? scheme_end + 3 : NULL;
    for (const unsigned char *p = (const unsigned char *)uri; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return "control characters are not allowed";
    if (host &&
        (!strncmp(host, "169.254.", 8) || !strncmp(host, "[fe80", 5) ||
         !strncmp(host, "[fd00:ec2::254]", 15) || !strncmp(host, "metadata.google.internal", 24) ||
         !strncmp(host, "[::ffff:169.254.", 16)))
        return "link-local and instance-metadata addresses are never allowed";
    if (!strncmp(uri, "/vsi", 4))
        return "GDAL virtual file system paths (/vsi...) are not allowed: use s3:// or https://";
    if (!strncmp(uri, "/proc/", 6) || !strncmp(uri, "/dev/", 5) || !strncmp(uri, "/sys/", 5))
        return "paths under /proc, /dev and /sys are never allowed";
    if (strstr(uri, "/../") || (strlen(uri) >= 3 && !strcmp(uri + strlen(uri) - 3, "/..")))
        return "'..' segments are not allowed";
    if (!strncmp(uri, "s3://", 5))
        return "expected s3://bucket/key with a valid bucket name (3 to 63 of a-z, 0-9, '.', '-')";
    if (!strncmp(uri, "https://", 8)) {
        const char *slash = strchr(uri + 8, '/'), *at = strchr(uri + 8, '@');
        if (at && (!slash || at < slash)) return "user information (user@) is not allowed";
        return "expected https://host/path";
    }
    if (!strncmp(uri, "http://", 7)) return "plain http is not allowed, use https://";
    if (scheme_end)
        return "this scheme is not allowed (s3://bucket/key, https://host/path, or an absolute "
               "path when the worker allows local paths)";
    if (uri[0] != '/') return "expected s3://bucket/key, https://host/path or an absolute path";
    return NULL;
}

/* A LastN or AllToOne input is one task input per partition read
 * (partmap.h): in the would-be task, LastN's inputs get their lag names
 * (src_2, src_1, src_0) and an AllToOne input, whose keys come from the
 * upstream, the names under its prefix (days_...) that a calc expression
 * reads; the task built from the upstream's partitions is checked again. */
static int expand_partition_inputs(const am_spec *s, json_t *task)
{
    json_t *old = json_object_get(task, "inputs"), *ins;
    const char *expr =
        json_string_value(json_object_get(json_object_get(task, "params"), "expression"));
    if (json_array_size(old) != s->n_inputs) return 0;
    if (!(ins = json_array())) return cerr_oom();
    int rc = 0;
    for (size_t i = 0; i < s->n_inputs && !rc; i++) {
        const spec_input *in = &s->inputs[i];
        json_t *e = json_array_get(old, i);
        char name[160];
        size_t n = 0;
        if (in->from && in->mapping == SPEC_MAP_LAST_N) {
            for (int lag = in->mapping_count - 1; lag >= 0 && !rc; lag--, n++) {
                snprintf(name, sizeof name, "%.64s_%d", in->name, lag);
                json_t *c = json_copy(e);
                if (!c || json_object_set_new(c, "name", json_string(name)) ||
                    json_array_append_new(ins, c))
                    rc = cerr_oom();
            }
        } else if (in->from && in->mapping == SPEC_MAP_ALL_TO_ONE && expr) {
            const char *p = expr, *start;
            size_t len, plen = strlen(in->name);
            while (!rc && taskdoc_expression_name(&p, &start, &len)) {
                if (len <= plen + 1 || len >= sizeof name || memcmp(start, in->name, plen) ||
                    start[plen] != '_')
                    continue;
                snprintf(name, sizeof name, "%.*s", (int)len, start);
                json_t *c = json_copy(e);
                if (!c || json_object_set_new(c, "name", json_string(name)) ||
                    json_array_append_new(ins, c))
                    rc = cerr_oom();
                n++;
            }
        }
        if (!rc && !n && json_array_append(ins, e)) rc = cerr_oom();
    }
    if (!rc && json_object_set_new(task, "inputs", ins)) return cerr_oom();
    if (rc) json_decref(ins);
    return rc;
}

/* Builds the would-be Task with placeholders for what upstreams will
 * provide, and checks it against the schema and the task rules. */
static int check_task(const am_spec *s, const jschema *schema, jschema_error *err)
{
    taskdoc_input *ins = NULL;
    json_t *task = NULL;
    jschema_error terr;
    int rc;
    if (s->n_inputs) {
        ins = cmem_calloc(s->n_inputs, sizeof *ins);
        if (!ins) return cerr_oom();
    }
    for (size_t i = 0; i < s->n_inputs; i++) {
        ins[i].uri = s->inputs[i].from ? PLACEHOLDER_URI : s->inputs[i].uri;
        ins[i].data_version = s->inputs[i].from ? PLACEHOLDER_DV : NULL;
    }
    if ((rc = taskdoc_build(s, ins, PLACEHOLDER_DV, 1, &task))) goto done;
    if ((rc = expand_partition_inputs(s, task))) goto done;
    rc = taskdoc_validate(schema, task, &terr);
    if (rc == CERR_INVALID) {
        char field[JSCHEMA_PATH_MAX];
        spec_field_of_task_path(s, terr.path, field, sizeof field);
        unsigned long i = 0;
        int used = 0;
        const char *rule = NULL;
        if (sscanf(terr.path, "inputs[%lu].uri%n", &i, &used) == 1 && !terr.path[used] &&
            i < s->n_inputs && s->inputs[i].uri && !s->inputs[i].from)
            rule = uri_rule(s->inputs[i].uri);
        if (rule)
            rc = jschema_fail(err, field, "spec", "\"%.80s%s\": %s", s->inputs[i].uri,
                              strlen(s->inputs[i].uri) > 80 ? "..." : "", rule);
        else
            rc = jschema_fail(err, field, "spec", "%s", terr.message);
    }
done:
    json_decref(task);
    cmem_free(ins);
    return rc;
}

int spec_decode(const json_t *am, const jschema *task_schema, am_spec **out, jschema_error *err)
{
    am_spec *s = NULL;
    int rc;
    *out = NULL;
    if (err) memset(err, 0, sizeof *err);
    s = cmem_calloc(1, sizeof *s);
    if (!s) return cerr_oom();
    s->namespace_ = kobj_namespace(am);
    s->name = kobj_name(am);
    s->generation = kobj_generation(am);
    if (!s->name || !s->namespace_) {
        rc = jschema_fail(err, "metadata", "spec", "name and namespace are required");
        goto fail;
    }
    const json_t *spec = json_object_get(am, "spec");
    if (!json_is_object(spec)) {
        rc = spec ? type_error(err, "spec", "an object", spec)
                  : jschema_fail(err, "spec", "spec", "is required");
        goto fail;
    }
    if ((rc = req_string(spec, "assetKey", "spec.assetKey", &s->asset_key, err)) ||
        (rc = req_string(spec, "operation", "spec.operation", &s->operation, err)))
        goto fail;
    /* a container asset's params are its spec.container (the CRD's own
     * field for them, set exactly when operation is container) */
    bool ctr = !strcmp(s->operation, "container");
    const json_t *params = opt(spec, ctr ? "container" : "params");
    if (params && !json_is_object(params)) {
        rc = type_error(err, ctr ? "spec.container" : "spec.params", "an object", params);
        goto fail;
    }
    s->params = params;
    if ((rc = decode_inputs(opt(spec, "inputs"), s, err))) goto fail;
    const json_t *output = opt(spec, "output");
    if (!output) {
        rc = jschema_fail(err, "spec.output.uri", "spec", "is required");
        goto fail;
    }
    if (!json_is_object(output)) {
        rc = type_error(err, "spec.output", "an object", output);
        goto fail;
    }
    if ((rc = req_string(output, "uri", "spec.output.uri", &s->output_uri, err)) ||
        (rc = decode_tags(opt(spec, "tags"), s, err)) ||
        (rc = decode_resources(opt(spec, "resources"), s, err)) ||
        (rc = decode_retries(opt(spec, "retries"), s, err)))
        goto fail;
    const json_t *refresh = opt(spec, "refreshPolicy");
    s->refresh = SPEC_REFRESH_ON_UPSTREAM_CHANGE;
    if (refresh) {
        const char *r = json_is_string(refresh) ? json_string_value(refresh) : NULL;
        if (r && !strcmp(r, "Manual")) {
            s->refresh = SPEC_REFRESH_MANUAL;
        } else if (!r || strcmp(r, "OnUpstreamChange")) {
            rc = jschema_fail(err, "spec.refreshPolicy", "spec",
                              "must be one of: OnUpstreamChange, Manual");
            goto fail;
        }
    }
    if ((rc = int_field(spec, "maxParallel", "spec.maxParallel", 1, SPEC_MAX_PARALLEL_MAX,
                        SPEC_MAX_PARALLEL_DEFAULT, &s->max_parallel, err)))
        goto fail;
    s->partitions = opt(spec, "partitions");
    if (s->partitions) {
        part_plan *plan = NULL;
        if ((rc = part_plan_decode(s->partitions, &plan, err))) goto fail;
        part_plan_free(plan);
    }
    if (task_schema && (rc = check_task(s, task_schema, err))) goto fail;
    *out = s;
    return 0;
fail:
    spec_free(s);
    return rc;
}

void spec_free(am_spec *s)
{
    if (!s) return;
    cmem_free(s->inputs);
    cmem_free(s);
}

size_t spec_upstreams(const json_t *am, const char **out, size_t max, size_t *total)
{
    const json_t *spec = json_object_get(am, "spec");
    const json_t *list = json_is_object(spec) ? json_object_get(spec, "inputs") : NULL;
    size_t n = 0, t = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *in = json_array_get(list, i);
        const json_t *from = json_is_object(in) ? json_object_get(in, "from") : NULL;
        if (!json_is_string(from) || !json_string_length(from)) continue;
        if (n < max) out[n++] = json_string_value(from);
        t++;
    }
    if (total) *total = t;
    return n;
}
