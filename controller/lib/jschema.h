/*
 * jschema.h - a JSON Schema (draft 2020-12) validator for the subset the
 * contract's schemas use: the controller checks an AssetMaterialization's
 * would-be Task against proto/schema/task.v1.json before it creates a pod,
 * and a worker's Result against result.v1.json before it records it.
 *
 * Keywords: type, enum, const, pattern (jregex.h), minLength / maxLength
 * (in code points), minimum / maximum / exclusiveMinimum /
 * exclusiveMaximum / multipleOf, required, properties,
 * additionalProperties (false or a schema), patternProperties,
 * propertyNames, minProperties / maxProperties, items, minItems /
 * maxItems, uniqueItems, contains, allOf / anyOf / oneOf / not,
 * if / then / else, boolean schemas, and $ref to a JSON pointer in the
 * same document ("#/$defs/x") or in another loaded document by its $id
 * ("task.v1.json#/$defs/x", resolved against the referring document's
 * $id). Annotations ($schema, $id, $comment, title, description, default,
 * examples, format, deprecated, readOnly, writeOnly) are ignored; any
 * other keyword fails compilation, so a schema cannot silently lose a
 * constraint this validator does not know (ajv's strict mode does the
 * same). Integers are numbers with no fractional part (1.0 is an
 * integer), numbers compare by value in enum, const and uniqueItems.
 *
 * Validation stops at the first error and reports where it is as a field
 * path from the document root, dotted names and [i] for array indexes
 * ("params.mode", "inputs[1].uri", "" for the root); a missing required
 * property and an unknown property are reported at their own path
 * ("output.uri", "params.slopeFormt"). Messages use the schema's
 * descriptions where a bare keyword would say little ("must not be
 * present: LZW and NONE have no compression level").
 *
 * A compiled jschema is immutable and may be shared by threads. jansson
 * reference rule: documents passed in are borrowed; jschema_new keeps its
 * own references (json_incref), so the caller may drop theirs.
 */
#ifndef LIB_JSCHEMA_H
#define LIB_JSCHEMA_H

#include <jansson.h>
#include <stddef.h>

#define JSCHEMA_PATH_MAX 512
#define JSCHEMA_MESSAGE_MAX 768

typedef struct jschema jschema;

typedef struct {
    char path[JSCHEMA_PATH_MAX];       /* "" for the document root */
    char message[JSCHEMA_MESSAGE_MAX]; /* without the path */
    char keyword[24];                  /* the failing keyword: "enum", "required", "false", ... */
} jschema_error;

/* Compiles docs[0] as the root schema; docs[1..] are only reachable
 * through $ref by their $id. 0 with *out, CERR_INVALID naming the schema
 * location (a JSON pointer such as "task.v1.json#/$defs/level/minimum")
 * and what is wrong, or CERR_NOMEM. */
int jschema_new(const json_t *const *docs, size_t ndocs, jschema **out);
/* The same from JSON texts (NUL-terminated); CERR_INVALID also for text
 * that is not JSON (message with line and column). */
int jschema_new_text(const char *const *texts, size_t ntexts, jschema **out);
void jschema_free(jschema *s);

/* 0 when instance is valid; CERR_INVALID with *err filled (err may be
 * NULL) and the thread's error set to "<path>: <message>"; CERR_TOOBIG
 * when the instance nests deeper than the validator follows (128 levels
 * below a schema that descends); CERR_NOMEM. */
int jschema_validate(const jschema *s, const json_t *instance, jschema_error *err);

/* Fills err (may be NULL) with a failure found outside a schema (a rule the
 * schema cannot express) and sets the cerr message "<path>: <message>".
 * Returns CERR_INVALID. */
int jschema_fail(jschema_error *err, const char *path, const char *keyword, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
