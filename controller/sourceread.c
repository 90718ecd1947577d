/*
 * sourceread.c - AssetSources read by materializations (see sourceread.h).
 */
#include "sourceread.h"

#include "dataversion.h"
#include "kube/kobj.h"
#include "source.h"

#include <string.h>

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

bool sourceread_is(const json_t *obj)
{
    const char *kind = str(obj, "kind");
    return kind && !strcmp(kind, SOURCE_KIND);
}

bool sourceread_ready(const json_t *src, const char **reason, const char **why)
{
    const json_t *st = json_object_get(src, "status"), *spec = json_object_get(src, "spec");
    *reason = "UpstreamNotReady";
    if (kobj_is_deleting(src)) {
        *why = "being deleted";
        return false;
    }
    if (!dv_valid(str(st, "dataVersion"))) {
        *why = "the source has not been observed yet";
        return false;
    }
    kobj_condition c;
    if (kobj_cond_get(st, COND_AVAILABLE, &c) || !c.status || strcmp(c.status, "True")) {
        *reason = "SourceUnavailable";
        *why = kobj_cond_get(st, COND_AVAILABLE, &c) == 0 && c.message
                   ? c.message
                   : "the source is not available";
        return false;
    }
    const char *uri = str(spec, "uri");
    if (!json_is_object(json_object_get(st, "object")) || !uri || uri[strlen(uri) - 1] == '/' ||
        strpbrk(uri, "*?[")) {
        *reason = "PrefixSourceNotReadable";
        *why = "a prefix source cannot be an operation's input yet (its listing is in "
               "status.listing)";
        return false;
    }
    return true;
}

void sourceread_input(const json_t *src, const char **uri, const char **asset_key,
                      const char **data_version, const json_t **observed)
{
    const json_t *st = json_object_get(src, "status"), *spec = json_object_get(src, "spec");
    *uri = str(spec, "uri");
    *asset_key = str(spec, "assetKey");
    *data_version = str(st, "dataVersion");
    const json_t *o = json_object_get(st, "object");
    *observed = json_is_object(o) && json_object_size(o) ? o : NULL;
}
