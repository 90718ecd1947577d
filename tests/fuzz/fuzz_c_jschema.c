/* Fuzz target: arbitrary bytes, decoded as JSON, validated against the
 * task schema (and, as a Result, against the result schema, which refers
 * into the task schema). The validator must neither crash nor leak, and a
 * failure must always come with a path and a message. */
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jschema.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static const char task_schema_json[] =
#include "task_schema.inc"
    ;
static const char result_schema_json[] =
#include "result_schema.inc"
    ;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static jschema *task, *result;
    if (!task) {
        cmem_init();
        const char *t[] = {task_schema_json};
        const char *r[] = {result_schema_json, task_schema_json};
        if (jschema_new_text(t, 1, &task) || jschema_new_text(r, 2, &result)) abort();
    }
    json_error_t e;
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, &e);
    if (!doc) return 0;
    jschema_error err;
    int rc = jschema_validate(task, doc, &err);
    if (rc == CERR_INVALID && !err.message[0]) abort();
    rc = jschema_validate(result, doc, &err);
    if (rc == CERR_INVALID && !err.message[0]) abort();
    json_decref(doc);
    return 0;
}
