/*
 * jtype.h - the name of a JSON value's type, for error messages.
 *
 * Shared by everything that reports a wrong type in a document it reads
 * (schemas, Kubernetes objects, configuration files). Pure, any thread.
 */
#ifndef LIB_JTYPE_H
#define LIB_JTYPE_H

#include <jansson.h>

/* "object", "array", "string", "integer", "real", "boolean", "null", or
 * "nothing" for NULL. */
const char *jtype_name(const json_t *v);

/* The JSON Schema type of v: as jtype_name, but a real with an integral
 * value is "integer" and any other real "number". */
const char *jtype_schema_name(const json_t *v);

#endif
