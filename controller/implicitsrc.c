/*
 * implicitsrc.c - the AssetSources of plain uri: inputs (see implicitsrc.h).
 */
#include "implicitsrc.h"

#include "crd.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/clog.h"
#include "rerun.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static const char *annotation(const json_t *obj, const char *key)
{
    const json_t *a = json_object_get(json_object_get(obj, "metadata"), "annotations");
    return json_string_value(json_object_get(a, key));
}

bool implicitsrc_applies(const am_spec *s, size_t i)
{
    const char *u = s->inputs[i].uri;
    /* a partitioned asset's uri is a template, one object per partition:
     * not one source (not observed yet, see proto/README.md) */
    return u && !s->inputs[i].from && !s->partitions &&
           (!strncmp(u, "s3://", 5) || !strncmp(u, "https://", 8));
}

void implicitsrc_name(const char *am, const char *input, char *out, size_t size)
{
    char name[IMPLICITSRC_NAME_MAX + 64];
    int n = snprintf(name, sizeof name, "%s-in-%s", am, input);
    bool changed = n < 0 || (size_t)n >= sizeof name || (size_t)n > IMPLICITSRC_NAME_MAX;
    for (char *p = name; *p; p++)
        if (*p == '_' || (*p >= 'A' && *p <= 'Z')) {
            *p = *p == '_' ? '-' : (char)(*p - 'A' + 'a');
            changed = true;
        }
    if (!changed) {
        snprintf(out, size, "%s", name);
        return;
    }
    /* a hash of what was asked for keeps "a_b" and "a-b" apart */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t la = strlen(am), li = strlen(input);
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    if (!x || !EVP_DigestInit_ex(x, EVP_sha256(), NULL) || !EVP_DigestUpdate(x, am, la + 1) ||
        !EVP_DigestUpdate(x, input, li) || !EVP_DigestFinal_ex(x, md, &mdlen))
        memset(md, 0, 5);
    EVP_MD_CTX_free(x);
    char hex[11];
    for (int i = 0; i < 5; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    size_t keep = IMPLICITSRC_NAME_MAX - 11;
    if (strlen(name) > keep) name[keep] = '\0';
    size_t l = strlen(name);
    while (l && (name[l - 1] == '-' || name[l - 1] == '.'))
        name[--l] = '\0';
    snprintf(out, size, "%s-%s", name, hex);
}

bool implicitsrc_owned(const json_t *src, const json_t *am)
{
    kobj_owner_ref ref;
    const char *uid = kobj_uid(am);
    return src && uid && !kobj_controller_ref(src, &ref) &&
           !strcmp(ref.kind, "AssetMaterialization") && !strcmp(ref.uid, uid);
}

bool implicitsrc_missing(const json_t *src, const char **why)
{
    kobj_condition c;
    if (!src || kobj_cond_get(json_object_get(src, "status"), "Available", &c) || !c.status ||
        strcmp(c.status, "False") || !c.reason)
        return false;
    *why = c.message ? c.message : c.reason;
    return !strcmp(c.reason, "SourceNotFound") || !strcmp(c.reason, "SourceAccessDenied");
}

const char *implicitsrc_pool(const pools *ps, const am_spec *s)
{
    const pool *p = NULL;
    return ps && !pools_select(ps, s->tags, &p) && p ? pool_name(p) : NULL;
}

int implicitsrc_build(const json_t *am, const am_spec *s, size_t i, const char *pool_nm,
                      json_t **out)
{
    char name[IMPLICITSRC_NAME_MAX + 1], key[IMPLICITSRC_NAME_MAX * 2 + 16];
    *out = NULL;
    implicitsrc_name(kobj_name(am), s->inputs[i].name, name, sizeof name);
    snprintf(key, sizeof key, "%s/inputs/%s", s->asset_key, s->inputs[i].name);
    kobj_owner_ref ref = {.api_version = "terrane.io/v1alpha1",
                          .kind = "AssetMaterialization",
                          .name = kobj_name(am),
                          .uid = kobj_uid(am),
                          .controller = true,
                          .block_owner_deletion = true};
    json_t *owner = kobj_owner_ref_new(&ref);
    json_t *src =
        owner ? json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s},s:[o]},s:{s:s,s:s,s:{s:s}}}", "apiVersion",
                          "terrane.io/v1alpha1", "kind", "AssetSource", "metadata", "name", name,
                          "namespace", s->namespace_, "labels", IMPLICITSRC_L_FOR, kobj_name(am),
                          "ownerReferences", owner, "spec", "assetKey", key, "uri",
                          s->inputs[i].uri, "listing", "uri", s->output_uri)
              : NULL;
    if (!src) return cerr_oom();
    if (pool_nm && json_object_set_new(json_object_get(src, "spec"), "observe",
                                       json_pack("{s:s}", "pool", pool_nm))) {
        json_decref(src);
        return cerr_oom();
    }
    const char *rerun = annotation(am, RERUN_ANNOTATION);
    if (rerun) {
        json_t *meta = json_object_get(src, "metadata");
        if (json_object_set_new(meta, "annotations", json_pack("{s:s}", RERUN_ANNOTATION, rerun))) {
            json_decref(src);
            return cerr_oom();
        }
    }
    *out = src;
    return 0;
}

static int create(kube_client *client, const json_t *am, const am_spec *s, size_t i,
                  const char *pool_nm)
{
    json_t *src = NULL, *created = NULL;
    int rc = implicitsrc_build(am, s, i, pool_nm, &src);
    if (rc) return rc;
    rc = kube_create(client, &CRD_ASSETSOURCES, s->namespace_, src, &created);
    if (rc == 0)
        clog_info("input source created", "{s:s, s:s, s:s}", "asset", kobj_name(am), "source",
                  kobj_name(src), "uri", s->inputs[i].uri);
    else if (rc == CERR_CONFLICT && !strcmp(kube_last_reason(), "AlreadyExists"))
        rc = 0; /* the cache is behind: its add event enqueues the asset */
    json_decref(src);
    json_decref(created);
    return rc;
}

/* The asset's terrane.io/rerun value onto its source (merge patch), so
 * re-running the asset observes its inputs again. */
static int copy_rerun(kube_client *client, const json_t *am, const json_t *src)
{
    const char *want = annotation(am, RERUN_ANNOTATION);
    const char *have = annotation(src, RERUN_ANNOTATION);
    if (!want || (have && !strcmp(want, have))) return 0;
    json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", RERUN_ANNOTATION, want);
    if (!patch) return cerr_oom();
    int rc = kube_patch(client, &CRD_ASSETSOURCES, kobj_namespace(src), kobj_name(src),
                        KUBE_PATCH_MERGE, patch, false, NULL);
    json_decref(patch);
    return rc == CERR_NOTFOUND ? 0 : rc;
}

/* The asset's pool onto its source (merge patch; null removes it). A new
 * spec.observe is a new generation: observed again, on that pool. */
static int move_pool(kube_client *client, const json_t *src, const char *pool_nm)
{
    const char *have = json_string_value(
        json_object_get(json_object_get(json_object_get(src, "spec"), "observe"), "pool"));
    if (!have && !pool_nm) return 0;                         /* neither names one */
    if (have && pool_nm && !strcmp(have, pool_nm)) return 0; /* the same */
    json_t *patch = json_pack("{s:{s:{s:o}}}", "spec", "observe", "pool",
                              pool_nm ? json_string(pool_nm) : json_null());
    if (!patch) return cerr_oom();
    int rc = kube_patch(client, &CRD_ASSETSOURCES, kobj_namespace(src), kobj_name(src),
                        KUBE_PATCH_MERGE, patch, false, NULL);
    json_decref(patch);
    return rc == CERR_NOTFOUND ? 0 : rc;
}

int implicitsrc_ensure(kube_client *client, informer *sources, const pools *ps, const json_t *am,
                       const am_spec *s)
{
    int first = 0;
    if (!am || kobj_is_deleting(am)) return 0;
    const char *pool_nm = implicitsrc_pool(ps, s);
    for (size_t i = 0; i < s->n_inputs; i++) {
        if (!implicitsrc_applies(s, i)) continue;
        char name[IMPLICITSRC_NAME_MAX + 1];
        implicitsrc_name(kobj_name(am), s->inputs[i].name, name, sizeof name);
        json_t *src = informer_get(sources, s->namespace_, name);
        int rc = 0;
        if (!src) {
            rc = create(client, am, s, i, pool_nm);
        } else if (!implicitsrc_owned(src, am)) {
            /* the source of an earlier asset of this name (the garbage
             * collector has not removed it yet) or a user's: its
             * observation says nothing about the bytes now. The uid
             * precondition never deletes a newer one. */
            kobj_owner_ref ref;
            if (!kobj_controller_ref(src, &ref) && !strcmp(ref.kind, "AssetMaterialization") &&
                !kobj_is_deleting(src)) {
                rc = kube_delete(client, &CRD_ASSETSOURCES, s->namespace_, name, kobj_uid(src),
                                 "Background");
                if (rc == CERR_NOTFOUND || rc == CERR_CONFLICT) rc = 0;
            }
        } else if (!(rc = copy_rerun(client, am, src))) {
            rc = move_pool(client, src, pool_nm);
        }
        json_decref(src);
        if (rc && !first) first = rc;
    }
    return first;
}
