/*
 * params.c - checking an operation's params object against its spec tables.
 */
#include "params.h"

#include "err.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const param_spec *find_spec(const param_spec *a, const param_spec *b, const char *name)
{
    for (const param_spec *s = a; s && s->name; s++)
        if (!strcmp(s->name, name)) return s;
    for (const param_spec *s = b; s && s->name; s++)
        if (!strcmp(s->name, name)) return s;
    return NULL;
}

/* "a, b, c" into buf, for messages. */
static void join_choices(const char *const *choices, char *buf, size_t cap)
{
    size_t pos = 0;
    buf[0] = '\0';
    for (size_t i = 0; choices && choices[i] && pos + 1 < cap; i++)
        pos += (size_t)snprintf(buf + pos, cap - pos, "%s%s", i ? ", " : "", choices[i]);
}

static bool in_choices(const char *const *choices, const char *v)
{
    for (size_t i = 0; choices && choices[i]; i++)
        if (!strcmp(choices[i], v)) return true;
    return false;
}

static int check_range(const param_spec *s, const char *field, double v)
{
    if (!isfinite(v))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: must be a finite number",
                       field);
    if ((s->min != 0 || s->max != 0) && (v < s->min || v > s->max))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: %g is out of range [%g, %g]",
                       field, v, s->min, s->max);
    return 0;
}

static int check_number(const param_spec *s, const char *field, const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: must be a number", field);
    return check_range(s, field, v->valuedouble);
}

static int check_one(const param_spec *s, const cJSON *v)
{
    char field[96], choices[512];
    snprintf(field, sizeof field, "params.%s", s->name);
    unsigned max_len = s->max_len ? s->max_len : 4096;

    switch (s->type) {
    case PARAM_STRING:
    case PARAM_ENUM:
        if (!cJSON_IsString(v))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: must be a string", field);
        if (strlen(v->valuestring) > max_len)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: longer than %u characters",
                           field, max_len);
        if (s->type == PARAM_STRING && !v->valuestring[0])
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: must not be empty", field);
        if (s->type == PARAM_ENUM && !in_choices(s->choices, v->valuestring)) {
            join_choices(s->choices, choices, sizeof choices);
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                           "%s: \"%.64s\" is not one of %s", field, v->valuestring, choices);
        }
        return 0;
    case PARAM_INT:
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: must be an integer",
                           field);
        return check_range(s, field, v->valuedouble);
    case PARAM_NUMBER:
        return check_number(s, field, v);
    case PARAM_BOOL:
        if (!cJSON_IsBool(v))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: must be true or false",
                           field);
        return 0;
    case PARAM_NUMBER_OR_PAIR:
        if (cJSON_IsArray(v)) {
            if (cJSON_GetArraySize(v) != 2)
                return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                               "%s: must be a number or a pair [x, y]", field);
            for (int i = 0; i < 2; i++)
                if (check_number(s, field, cJSON_GetArrayItem(v, i)) < 0) return -1;
            return 0;
        }
        return check_number(s, field, v);
    case PARAM_NUMBER_OR_NONE:
        if (cJSON_IsString(v) && !strcmp(v->valuestring, "none")) return 0;
        if (!cJSON_IsNumber(v))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                           "%s: must be a number or \"none\"", field);
        return check_range(s, field, v->valuedouble);
    case PARAM_ANY:
        return 0;
    case PARAM_STRING_LIST: {
        if (!cJSON_IsArray(v))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: must be a list of strings",
                           field);
        if (s->max > 0 && cJSON_GetArraySize(v) > (int)s->max)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: more than %g items", field,
                           s->max);
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            if (!cJSON_IsString(it))
                return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                               "%s: every item must be a string", field);
            if (strlen(it->valuestring) > max_len)
                return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                               "%s: an item is longer than %u characters", field, max_len);
        }
        return 0;
    }
    case PARAM_ENUM_LIST: {
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: must be a non-empty list",
                           field);
        join_choices(s->choices, choices, sizeof choices);
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            if (!cJSON_IsString(it) || !in_choices(s->choices, it->valuestring))
                return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                               "%s: every item must be one of %s", field, choices);
            for (const cJSON *p = v->child; p != it; p = p->next)
                if (!strcmp(p->valuestring, it->valuestring))
                    return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                                   "%s: \"%s\" is listed twice", field, it->valuestring);
        }
        return 0;
    }
    }
    return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, field, "%s: unknown param type", field);
}

int params_check(const cJSON *params, const param_spec *a, const param_spec *b)
{
    const cJSON *v;
    if (params && !cJSON_IsObject(params))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "params", "params: must be an object");

    cJSON_ArrayForEach(v, params)
    {
        char field[96];
        const param_spec *s = find_spec(a, b, v->string);
        if (!s) {
            snprintf(field, sizeof field, "params.%.80s", v->string);
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: unknown parameter", field);
        }
        /* cJSON keeps duplicate keys; the contract allows each param once. */
        for (const cJSON *p = params->child; p != v; p = p->next)
            if (!strcmp(p->string, v->string)) {
                snprintf(field, sizeof field, "params.%.80s", v->string);
                return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field, "%s: given more than once",
                               field);
            }
        if (check_one(s, v) < 0) return -1;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (const param_spec *s = pass ? b : a; s && s->name; s++) {
            if (s->required && !cJSON_GetObjectItemCaseSensitive(params, s->name)) {
                char field[96];
                snprintf(field, sizeof field, "params.%s", s->name);
                return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, field,
                               "%s: required parameter is missing", field);
            }
        }
    }
    return 0;
}

const char *params_str(const cJSON *params, const char *name, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

double params_num(const cJSON *params, const char *name, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

int params_int(const cJSON *params, const char *name, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : dflt;
}

bool params_bool(const cJSON *params, const char *name, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

bool params_has(const cJSON *params, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(params, name) != NULL;
}
