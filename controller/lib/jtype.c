/*
 * jtype.c - JSON type names (see jtype.h).
 */
#include "lib/jtype.h"

#include <math.h>
#include <stdbool.h>

static const char *name(const json_t *v, bool schema)
{
    if (!v) return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL: {
        if (!schema) return "real";
        double d = json_real_value(v);
        return d == floor(d) && isfinite(d) ? "integer" : "number";
    }
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

const char *jtype_name(const json_t *v)
{
    return name(v, false);
}

const char *jtype_schema_name(const json_t *v)
{
    return name(v, true);
}
