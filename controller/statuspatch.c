/*
 * statuspatch.c - see statuspatch.h.
 */
#include "statuspatch.h"

#include "kube/kobj.h"
#include "lib/cerr.h"

/* Whether v holds a null as an object member's value anywhere (arrays
 * are replaced whole, so a null inside one is fine unless it sits in an
 * object inside the array; that object is replaced too, so only members
 * reached through objects matter). */
static int has_null_member(const json_t *v)
{
    const char *k;
    const json_t *m;
    if (!json_is_object(v)) return 0;
    json_object_foreach((json_t *)v, k, m) if (json_is_null(m) || has_null_member(m)) return 1;
    return 0;
}

/* Sets key to val (taken) in *p, creating *p first. 0, or CERR_NOMEM
 * (val dropped). */
static int put_member(json_t **p, const char *key, json_t *val)
{
    if (!val) return cerr_oom();
    if (!*p && !(*p = json_object())) {
        json_decref(val);
        return cerr_oom();
    }
    /* json_object_set_new takes val even when it fails */
    return json_object_set_new(*p, key, val) ? cerr_oom() : 0;
}

/* The merge patch from old to new (both objects) into *out, NULL when
 * they are equal. 0, or CERR_NOMEM. */
static int diff(const json_t *old, const json_t *new, json_t **out)
{
    json_t *p = NULL, *nv, *sub;
    const char *k;
    const json_t *ov;
    int rc = 0;
    *out = NULL;
    json_object_foreach((json_t *)new, k, nv)
    {
        ov = json_object_get(old, k);
        if (ov && json_equal((json_t *)ov, nv)) continue;
        if (json_is_object(ov) && json_is_object(nv)) {
            /* an object is merged, so only what changed inside it */
            if ((rc = diff(ov, nv, &sub))) goto fail;
            if (sub && (rc = put_member(&p, k, sub))) goto fail;
        } else if ((rc = put_member(&p, k, json_incref(nv)))) {
            goto fail;
        }
    }
    json_object_foreach((json_t *)old, k, ov) if (!json_object_get(new, k) &&
                                                  (rc = put_member(&p, k, json_null()))) goto fail;
    *out = p;
    return 0;
fail:
    json_decref(p);
    return rc;
}

int statuspatch_build(const json_t *obj, const json_t *status, json_t **out)
{
    *out = NULL;
    const char *uid = kobj_uid(obj), *rv = kobj_resource_version(obj);
    if (!uid || !rv || !json_is_object(status) || has_null_member(status)) return 1;
    const json_t *old = json_object_get(obj, "status");
    json_t *empty = NULL, *st = NULL;
    if (!json_is_object(old)) {
        /* no status yet (or not an object, replaced whole) */
        if (old && !json_is_null(old)) return 1;
        if (!(old = empty = json_object())) return cerr_oom();
    }
    int rc = diff(old, status, &st);
    json_decref(empty);
    if (rc) return rc;
    json_t *p = json_pack("{s:{s:s, s:s}, s:o}", "metadata", "uid", uid, "resourceVersion", rv,
                          "status", st ? st : json_object());
    if (!p) return cerr_oom();
    *out = p;
    return 0;
}
