/*
 * srcchange.c - SourceChanged: observe the source now (see srcchange.h).
 */
#include "srcchange.h"

#include "crd.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "sourceread.h"

#include <stdlib.h>
#include <string.h>

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

const char *srcchange_requested(const json_t *src, const json_t *status)
{
    const json_t *ann = json_object_get(json_object_get(src, "metadata"), "annotations");
    const char *v = str(ann, SRCCHANGE_ANNOTATION), *done = str(status, SRCCHANGE_TOKEN);
    return v && (!done || strcmp(v, done)) ? v : NULL;
}

/* k of error.field "inputs[k]..." or -1. */
static long field_index(const json_t *result)
{
    const char *f = str(json_object_get(result, "error"), "field");
    if (!f || strncmp(f, "inputs[", 7) || f[7] < '0' || f[7] > '9') return -1;
    char *end = NULL;
    long k = strtol(f + 7, &end, 10);
    return end && *end == ']' && k >= 0 && k < 100000 ? k : -1;
}

int srcchange_decide(const json_t *pod, const json_t *result, const json_t *const *ups,
                     size_t n_ups, const json_t *record, srcchange_plan *out)
{
    memset(out, 0, sizeof *out);
    const char *code = str(json_object_get(result, "error"), "code");
    long k = field_index(result);
    const char *pname = kobj_name(pod);
    if (!code || strcmp(code, SRCCHANGE_REASON) || k < 0 || !pname) return 0;
    const json_t *up = (size_t)k < n_ups ? ups[k] : NULL;
    if (!sourceread_is(up)) return 0;
    out->source = up;

    const json_t *sst = json_object_get(out->source, "status");
    const char *rpod = str(record, "pod"), *rsrc = str(record, "source");
    if (!rpod || strcmp(rpod, pname) || !rsrc || strcmp(rsrc, kobj_name(out->source))) {
        /* news of this pod: ask, and remember how far the source was */
        out->record = json_pack("{s:s, s:s, s:I}", "pod", pname, "source", kobj_name(out->source),
                                "observation", (json_int_t)num(sst, "observation"));
        if (!out->record) return cerr_oom();
        out->step = SRCCHANGE_OBSERVE;
        out->ask = true;
        return 0;
    }
    long long asked = num(record, "observation");
    if (num(sst, "finishedObservation") > asked) {
        /* observed since it was asked, and still the version this
         * attempt's data version names: nothing new to wait for */
        out->step = SRCCHANGE_RETRY;
        return 0;
    }
    out->record = json_deep_copy(record);
    if (!out->record) return cerr_oom();
    out->step = SRCCHANGE_WAIT;
    /* not started yet and not asked (the patch was lost, or another asset's
     * value replaced it before the source acted on it): ask again */
    out->ask = num(sst, "observation") <= asked && !srcchange_requested(out->source, sst);
    return 0;
}

void srcchange_plan_clear(srcchange_plan *p)
{
    json_decref(p->record);
    memset(p, 0, sizeof *p);
}

int srcchange_request(kube_client *client, const char *ns, const char *name, const char *token)
{
    json_t *patch =
        json_pack("{s:{s:{s:s}}}", "metadata", "annotations", SRCCHANGE_ANNOTATION, token);
    if (!patch) return cerr_oom();
    int rc = kube_patch(client, &CRD_ASSETSOURCES, ns, name, KUBE_PATCH_MERGE, patch, false, NULL);
    json_decref(patch);
    return rc == CERR_NOTFOUND ? 0 : rc;
}
