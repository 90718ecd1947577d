/*
 * op_container.c - params of the `container` operation and its naming rules.
 *
 * params_check (params.h) checks the shapes it knows (strings, lists of
 * strings); env is a list of {name, value} objects and is checked here, as
 * are the cross-field rules: input names must stay distinct once upper-cased
 * (each becomes TERRANE_INPUT_<NAME>), and no env name may start with
 * TERRANE_ (those are set by Terrane). `run` refuses: the pod runs the three
 * steps, never `terrane-worker run`.
 */
#include "op_container.h"

#include "err.h"
#include "op.h"
#include "terrane_proto.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const param_spec container_params[] = {
    {"image", PARAM_STRING, true, NULL, 0, 0, 512},
    {"command", PARAM_STRING_LIST, false, NULL, 0, 64, 4096},
    {"args", PARAM_STRING_LIST, false, NULL, 0, 256, 4096},
    {"env", PARAM_ANY, false, NULL, 0, 0, 0},
    {"workingDir", PARAM_STRING, false, NULL, 0, 0, 1024},
    {"primaryOutput", PARAM_STRING, false, NULL, 0, 0, TERRANE_OUTPUT_NAME_MAX},
    {NULL}};

static bool is_identifier(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return false;
    return true;
}

/* registry/name[:tag][@sha256:<64 hex>], lower case, as the schema says. */
static bool image_ref_valid(const char *s)
{
    const char *at = strchr(s, '@');
    size_t n = at ? (size_t)(at - s) : strlen(s);
    if (n == 0 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0]))) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || strchr("._/:-", c)))
            return false;
    }
    if (!at) return true;
    if (strncmp(at, "@sha256:", 8) != 0 || strlen(at + 8) != 64) return false;
    for (const char *p = at + 8; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f')) return false;
    return true;
}

/* A relative path below /outputs: segments of [A-Za-z0-9_.-], none empty,
 * "." or "..". */
static bool rel_path_valid(const char *s)
{
    if (!s[0] || s[0] == '/') return false;
    for (const char *seg = s; *seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!(isalnum((unsigned char)seg[i]) || strchr("_.-", seg[i]))) return false;
        seg += n;
        if (*seg == '/') seg++;
        if (end && !*seg) return false; /* trailing slash */
    }
    return true;
}

static int check_env(const cJSON *env)
{
    const char *f = "params.env";
    if (!env) return 0;
    if (!cJSON_IsArray(env) || cJSON_GetArraySize(env) > 128)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, f,
                       "%s: must be a list of at most 128 {name, value} objects", f);
    const cJSON *it;
    cJSON_ArrayForEach(it, env)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(it, "value");
        if (!cJSON_IsObject(it) || cJSON_GetArraySize(it) != 2 || !cJSON_IsString(name) ||
            !cJSON_IsString(value))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, f,
                           "%s: every item must be {\"name\": string, \"value\": string}", f);
        if (!is_identifier(name->valuestring, 128))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, f,
                           "%s: \"%.64s\" is not a variable name", f, name->valuestring);
        if (!strncmp(name->valuestring, "TERRANE_", 8))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, f,
                           "%s: %.64s: names starting with TERRANE_ are set by Terrane", f,
                           name->valuestring);
        if (strlen(value->valuestring) > 4096)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, f,
                           "%s: the value of %s is longer than 4096 characters", f,
                           name->valuestring);
    }
    return 0;
}

static int container_validate(const task *t)
{
    const char *image = container_image(t);
    if (!image_ref_valid(image))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.image",
                       "params.image: \"%.128s\" is not an image reference "
                       "(registry/name[:tag][@sha256:<digest>], lower case)",
                       image);
    const char *wd = params_str(t->params, "workingDir", NULL);
    if (wd && wd[0] != '/')
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.workingDir",
                       "params.workingDir: must be an absolute path");
    const char *primary = container_primary_output(t);
    if (primary && !rel_path_valid(primary))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.primaryOutput",
                       "params.primaryOutput: must be a relative path below /outputs of "
                       "[A-Za-z0-9_.-] segments, none \".\" or \"..\"");
    if (check_env(cJSON_GetObjectItemCaseSensitive(t->params, "env")) < 0) return -1;
    for (size_t i = 0; i < t->n_inputs; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcasecmp(t->inputs[i].name, t->inputs[j].name)) {
                char field[48], env[96];
                snprintf(field, sizeof field, "inputs[%zu].name", i);
                container_input_env(&t->inputs[i], env, sizeof env);
                return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                               "%s: \"%s\" and inputs[%zu] would both be $%s", field,
                               t->inputs[i].name, j, env);
            }
    return 0;
}

static int container_run(const op_ctx *ctx, op_result *out)
{
    (void)ctx;
    (void)out;
    return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, "operation",
                   "operation container runs as three steps of its pod (terrane-worker fetch, "
                   "the user's image, terrane-worker publish-outputs), not as `run`");
}

void container_input_file(const task_input *in, char *buf, size_t cap)
{
    const char *u = in->uri;
    size_t end = strcspn(u, "?#");
    size_t start = end;
    while (start > 0 && u[start - 1] != '/')
        start--;
    size_t n = end - start;
    bool ok = n >= 1 && n <= CONTAINER_INPUT_FILE_MAX && !(n == 1 && u[start] == '.') &&
              !(n == 2 && u[start] == '.' && u[start + 1] == '.');
    for (size_t i = start; ok && i < end; i++)
        if (!(isalnum((unsigned char)u[i]) || strchr("._-", u[i]))) ok = false;
    if (ok)
        snprintf(buf, cap, "%.*s", (int)n, u + start);
    else
        snprintf(buf, cap, "data");
}

void container_input_env(const task_input *in, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s", TERRANE_ENV_INPUT_PREFIX);
    for (const char *p = in->name; n >= 0 && (size_t)n + 1 < cap && *p; p++)
        buf[n++] = (char)toupper((unsigned char)*p);
    if (n >= 0 && (size_t)n < cap) buf[n] = '\0';
}

const char *container_primary_output(const task *t)
{
    return params_str(t->params, "primaryOutput", NULL);
}

const char *container_image(const task *t)
{
    return params_str(t->params, "image", "");
}

const op_def op_container = {
    .name = "container",
    .params = container_params,
    .cog_options = false,
    .tiles = true, /* the user's code computes the window (TERRANE_PARTITION_TILE) */
    .validate = container_validate,
    .run = container_run,
};
