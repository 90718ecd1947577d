/*
 * task.h - the Task document (proto/schema/task.v1.json) decoded and checked.
 *
 * task_decode parses and checks the envelope (apiVersion, kind, required
 * fields, formats of names, keys and data versions, input names unique) and
 * finds the operation. task_validate then checks the operation's params and
 * inputs, and every input URI against the allowlists (input.h). Neither does
 * any I/O: `terrane-worker validate` runs exactly these two.
 *
 * A task owns all its strings and its params object; task_free frees it all.
 */
#ifndef TERRANE_TASK_H
#define TERRANE_TASK_H

#include "partition.h"

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

struct op_def;

#define TASK_MAX_INPUTS 64
/* assemble and collection (op_def.max_inputs): the tiles or partitions. */
#define TASK_MAX_INPUTS_PARTITIONS 4096

typedef struct task_input {
    char *name;         /* identifier, unique within the task */
    char *uri;          /* as given: s3://, https:// or an absolute path */
    char *asset_key;    /* upstream asset, or NULL for external sources */
    char *data_version; /* upstream's data version, or NULL */
    char *stac_item;    /* upstream's STAC Item URI, or NULL */
    char *checksum;     /* upstream's recorded multihash of uri, or NULL */
    /* What an observation of a source saw (input "observed"); the worker
     * reads only that version (srccheck.h). All NULL / -1 when absent. */
    char *observed_etag; /* without quotes */
    char *observed_version_id;
    char *observed_last_modified; /* https sources without ETag */
    long long observed_size;      /* -1 when absent */
} task_input;

typedef struct task {
    char *namespace_;
    char *name; /* AssetMaterialization name, may be NULL */
    char *asset_key;
    char *data_version; /* "sha256:<64 hex>" */
    char *operation;
    cJSON *params; /* an object, never NULL after decode */
    task_input *inputs;
    size_t n_inputs;
    char *output_uri; /* without trailing slash */
    int attempt;
    bool has_partition;
    partition partition; /* when has_partition */
    const struct op_def *op;
} task;

/* Decodes len bytes of JSON. On success *out is the caller's (task_free). */
int task_decode(const char *json, size_t len, task **out);
/* Params, inputs and URI allowlists; no I/O. */
int task_validate(const task *t);
/* The input named name, or NULL. */
const task_input *task_input_find(const task *t, const char *name);
/* Index of the input, for error fields like "inputs[2].uri"; -1 if absent. */
int task_input_index(const task *t, const task_input *in);
/* The hex digest of the data version (after "sha256:"). Borrowed. */
const char *task_data_version_hex(const task *t);
/* True when s is a well-formed asset key ('/'-separated segments of
 * [A-Za-z0-9_.-], none empty, "." or "..", at most 253 characters). */
bool task_asset_key_valid(const char *s);
void task_free(task *t);

#endif
