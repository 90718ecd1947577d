/* rerun.c - the terrane.io/rerun annotation (see rerun.h). */
#include "rerun.h"

#include <string.h>

const char *rerun_requested(const json_t *obj, const json_t *status)
{
    const json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
    const char *v = json_string_value(json_object_get(ann, RERUN_ANNOTATION));
    const char *done = json_string_value(json_object_get(status, RERUN_TOKEN));
    return v && (!done || strcmp(v, done)) ? v : NULL;
}
