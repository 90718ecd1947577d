/*
 * taskdoc.c - building Tasks and checking the task rules (see taskdoc.h).
 */
#include "taskdoc.h"

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "terrane_proto.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int taskdoc_build(const am_spec *spec, const taskdoc_input *inputs, const char *data_version,
                  int attempt, json_t **out)
{
    json_t *task = NULL, *list = NULL, *params = NULL;
    *out = NULL;
    list = json_array();
    params = spec->params ? json_deep_copy(spec->params) : json_object();
    if (!list || !params) goto oom;
    for (size_t i = 0; i < spec->n_inputs; i++) {
        const taskdoc_input *in = &inputs[i];
        /* not "s*": jansson's optional formats also drop a value whose
         * allocation failed, which would hide running out of memory */
        json_t *o = json_pack("{s:s}", "name", spec->inputs[i].name);
        if (!o || json_array_append_new(list, o)) goto oom;
        if ((in->uri && json_object_set_new(o, "uri", json_string(in->uri))) ||
            (in->asset_key && json_object_set_new(o, "assetKey", json_string(in->asset_key))) ||
            (in->data_version &&
             json_object_set_new(o, "dataVersion", json_string(in->data_version))) ||
            (in->stac_item && json_object_set_new(o, "stacItem", json_string(in->stac_item))) ||
            (in->observed && json_object_set_new(o, "observed", json_deep_copy(in->observed))) ||
            (in->checksum && json_object_set_new(o, "checksum", json_string(in->checksum))))
            goto oom;
    }
    task = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:O, s:O, s:{s:s}, s:i}", "apiVersion",
                     TERRANE_PROTO_API_VERSION, "kind", TERRANE_PROTO_KIND_TASK, "namespace",
                     spec->namespace_, "name", spec->name, "assetKey", spec->asset_key,
                     "dataVersion", data_version, "operation", spec->operation, "params", params,
                     "inputs", list, "output", "uri", spec->output_uri, "attempt", attempt);
    if (!task) goto oom;
    json_decref(list);
    json_decref(params);
    *out = task;
    return 0;
oom:
    json_decref(list);
    json_decref(params);
    json_decref(task);
    return cerr_oom();
}

/* --- rules ------------------------------------------------------------------------ */

static const char *input_name(const json_t *inputs, size_t i)
{
    const json_t *in = json_array_get(inputs, i);
    const json_t *n = json_is_object(in) ? json_object_get(in, "name") : NULL;
    return json_is_string(n) ? json_string_value(n) : NULL;
}

/* Index of the first input named name, or -1. */
static long first_index(const json_t *inputs, const char *name)
{
    for (size_t i = 0; i < json_array_size(inputs); i++) {
        const char *n = input_name(inputs, i);
        if (n && strcmp(n, name) == 0) return (long)i;
    }
    return -1;
}

static const char *param_str(const json_t *params, const char *key)
{
    const json_t *v = json_is_object(params) ? json_object_get(params, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A param that must name an input. */
static int must_name(const json_t *params, const json_t *inputs, const char *key,
                     jschema_error *err)
{
    const char *v = param_str(params, key);
    if (v && first_index(inputs, v) < 0) {
        char path[64];
        snprintf(path, sizeof path, "params.%s", key);
        return jschema_fail(err, path, "rule", "\"%.100s\" is not the name of an input", v);
    }
    return 0;
}

static bool ident_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool ident_char(char c)
{
    return ident_start(c) || (c >= '0' && c <= '9');
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The next name the expression reads, from *p on: an identifier token that
 * is not part of a number (1e-3), not followed by "(" (a function call) and
 * not one of the operators and, or, not. false at the end. */
static bool next_name(const char **p, const char **start, size_t *len)
{
    const char *q = *p;
    while (*q) {
        if (digit(*q) || (*q == '.' && digit(q[1]))) {
            /* \d+\.?\d*([eE][+-]?\d+)? or \.\d+([eE][+-]?\d+)? */
            if (*q == '.')
                q++;
            else {
                while (digit(*q))
                    q++;
                if (*q == '.') q++;
            }
            while (digit(*q))
                q++;
            if ((*q == 'e' || *q == 'E') &&
                (digit(q[1]) || ((q[1] == '+' || q[1] == '-') && digit(q[2])))) {
                q += (q[1] == '+' || q[1] == '-') ? 2 : 1;
                while (digit(*q))
                    q++;
            }
        } else if (ident_start(*q)) {
            const char *s = q;
            while (ident_char(*q))
                q++;
            size_t n = (size_t)(q - s);
            bool op = (n == 3 && (!memcmp(s, "and", 3) || !memcmp(s, "not", 3))) ||
                      (n == 2 && !memcmp(s, "or", 2));
            const char *after = q;
            while (*after == ' ' || *after == '\t' || *after == '\n' || *after == '\r')
                after++;
            /* the worker's lexer skips blanks: "sqrt (x)" is a call too */
            if (*after != '(' && !op) {
                *p = q;
                *start = s;
                *len = n;
                return true;
            }
        } else {
            q++;
        }
    }
    *p = q;
    return false;
}

/* Whether expr refers to name. */
static bool expression_uses(const char *expr, const char *name)
{
    const char *p = expr, *s;
    size_t len, nlen = strlen(name);
    while (next_name(&p, &s, &len))
        if (len == nlen && !memcmp(s, name, nlen)) return true;
    return false;
}

/* A name the expression reads that is no input's: reported before an
 * unused input, since a misspelt name also leaves its input unused. */
static int unknown_name(const char *expr, const json_t *inputs, jschema_error *err)
{
    const char *p = expr, *s;
    size_t len, n = json_array_size(inputs);
    while (next_name(&p, &s, &len)) {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++) {
            const char *name = input_name(inputs, i);
            known = name && strlen(name) == len && !memcmp(s, name, len);
        }
        /* pi and nodata are the expression's constants, unless an input has the name. */
        if (known || (len == 2 && !memcmp(s, "pi", 2)) || (len == 6 && !memcmp(s, "nodata", 6)))
            continue;
        char list[256];
        size_t o = 0;
        list[0] = '\0';
        for (size_t i = 0; i < n; i++) {
            const char *name = input_name(inputs, i);
            int w = snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", name ? name : "?");
            if (w < 0 || (size_t)w >= sizeof list - o) {
                snprintf(list + o, sizeof list - o, ", ...");
                break;
            }
            o += (size_t)w;
        }
        return jschema_fail(err, "params.expression", "rule", "unknown input '%.*s' (inputs: %s)",
                            (int)(len > 64 ? 64 : len), s, n ? list : "none");
    }
    return 0;
}

bool taskdoc_expression_name(const char **p, const char **start, size_t *len)
{
    return next_name(p, start, len);
}

int taskdoc_check_rules(const json_t *task, jschema_error *err)
{
    const json_t *inputs = json_is_object(task) ? json_object_get(task, "inputs") : NULL;
    if (!json_is_array(inputs)) return 0;
    char path[64];
    size_t n = json_array_size(inputs);
    for (size_t i = 0; i < n; i++) {
        const char *name = input_name(inputs, i);
        if (name && first_index(inputs, name) != (long)i) {
            snprintf(path, sizeof path, "inputs[%zu].name", i);
            return jschema_fail(err, path, "rule", "duplicate input name \"%.64s\"", name);
        }
    }
    const json_t *params = json_object_get(task, "params");
    const json_t *op = json_object_get(task, "operation");
    const char *operation = json_is_string(op) ? json_string_value(op) : "";
    int rc;
    /* each becomes TERRANE_INPUT_<NAME upper-cased> in the user's container */
    for (size_t i = 0; !strcmp(operation, "container") && i < n; i++)
        for (size_t j = 0; j < i; j++) {
            const char *a = input_name(inputs, i), *b = input_name(inputs, j);
            if (!a || !b || strcasecmp(a, b)) continue;
            char var[96];
            size_t k = 0;
            for (; a[k] && k + 1 < sizeof var; k++)
                var[k] = (char)toupper((unsigned char)a[k]);
            var[k] = '\0';
            snprintf(path, sizeof path, "inputs[%zu].name", i);
            return jschema_fail(err, path, "rule",
                                "\"%.64s\" and inputs[%zu] would both be $TERRANE_INPUT_%s", a, j,
                                var);
        }
    if (!strcmp(operation, "warp") && (rc = must_name(params, inputs, "cutline", err))) return rc;
    if (!strcmp(operation, "zonal-stats")) {
        if ((rc = must_name(params, inputs, "raster", err)) ||
            (rc = must_name(params, inputs, "zones", err)))
            return rc;
        const char *raster = param_str(params, "raster"), *zones = param_str(params, "zones");
        if (raster && zones && first_index(inputs, raster) >= 0 &&
            first_index(inputs, zones) >= 0) {
            if (!strcmp(raster, zones))
                return jschema_fail(err, "params.zones", "rule",
                                    "raster and zones must name different inputs");
            for (size_t i = 0; i < n; i++) {
                const char *name = input_name(inputs, i);
                if (name && strcmp(name, raster) && strcmp(name, zones)) {
                    snprintf(path, sizeof path, "inputs[%zu].name", i);
                    return jschema_fail(err, path, "rule",
                                        "input \"%.64s\" is neither params.raster nor params.zones",
                                        name);
                }
            }
        }
    }
    const char *expr = param_str(params, "expression");
    if (!strcmp(operation, "calc") && expr && *expr) {
        if ((rc = unknown_name(expr, inputs, err))) return rc;
        for (size_t i = 0; i < n; i++) {
            const char *name = input_name(inputs, i);
            if (name && first_index(inputs, name) == (long)i && !expression_uses(expr, name)) {
                snprintf(path, sizeof path, "inputs[%zu].name", i);
                return jschema_fail(err, path, "rule",
                                    "input \"%.64s\" is not used by params.expression", name);
            }
        }
    }
    return 0;
}

int taskdoc_validate(const jschema *task_schema, const json_t *task, jschema_error *err)
{
    int rc = jschema_validate(task_schema, task, err);
    if (rc) return rc;
    return taskdoc_check_rules(task, err);
}
