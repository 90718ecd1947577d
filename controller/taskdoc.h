/*
 * taskdoc.h - the Task document a worker pod receives (proto/README.md),
 * built from an AssetMaterialization's spec, its resolved inputs and its
 * data version, and the task rules JSON Schema cannot express.
 *
 * An upstream input (from:) becomes {name, uri, assetKey, dataVersion,
 * stacItem, checksum} with the upstream's published output, so the worker reads
 * exactly the version the data version was computed from; an external
 * input (uri:) becomes {name, uri}. params are copied (absent means {}).
 *
 * The rules (task.v1.json's top-level description; tests/proto/contract.mjs
 * taskRules is the reference implementation): input names are unique (the
 * later duplicate is named); warp's cutline and zonal-stats' raster and
 * zones name inputs, raster and zones differ; every zonal-stats input is
 * its raster or its zones; every calc input is referenced by name in the
 * expression; a container task's input names differ also when upper-cased
 * (each becomes TERRANE_INPUT_<NAME>).
 *
 * jansson reference rule: parameters are borrowed; *out is a new reference
 * owned by the caller. Pure functions, any thread.
 */
#ifndef TERRANE_TASKDOC_H
#define TERRANE_TASKDOC_H

#include "lib/jschema.h"
#include "spec.h"

#include <jansson.h>

typedef struct {
    const char *uri;          /* what the worker reads */
    const char *asset_key;    /* upstream inputs: lineage; NULL for external ones */
    const char *data_version; /* upstream inputs */
    const char *stac_item;    /* upstream inputs; may be NULL */
    const json_t *observed;   /* AssetSource inputs: inputs[].observed, or NULL */
    const char *checksum;     /* upstream inputs: status.output.checksum; may be NULL */
} taskdoc_input;

/* Builds the Task. inputs is parallel to spec->inputs. 0 with *out, or
 * CERR_NOMEM. */
int taskdoc_build(const am_spec *spec, const taskdoc_input *inputs, const char *data_version,
                  int attempt, json_t **out);

/* The rules beyond the schema on a Task. 0, or CERR_INVALID with *err
 * (path in the task, message) filled when err is non-NULL. */
int taskdoc_check_rules(const json_t *task, jschema_error *err);

/* The next input name a calc expression reads, from *p on (not a number, a
 * function or an operator): true with *start and *len set, false at its end. */
bool taskdoc_expression_name(const char **p, const char **start, size_t *len);

/* Schema, then rules. 0, CERR_INVALID (*err filled), CERR_NOMEM. */
int taskdoc_validate(const jschema *task_schema, const json_t *task, jschema_error *err);

#endif
