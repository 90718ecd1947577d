/*
 * manifest.c - building and reading back the lineage manifest.
 *
 * cJSON reference rule: values created here belong to this code until added
 * to a parent; parsed documents are freed once from their root.
 */
#include "manifest.h"

#include "err.h"
#include "hash.h"
#include "mem.h"
#include "terrane_proto.h"

#include <gdal.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static bool add_str_or_null(cJSON *o, const char *k, const char *v)
{
    return v ? cJSON_AddStringToObject(o, k, v) != NULL : cJSON_AddNullToObject(o, k) != NULL;
}

static int add_inputs(cJSON *m, const task *t)
{
    cJSON *inputs = cJSON_AddArrayToObject(m, "inputs");
    if (!inputs) return err_oom();
    for (size_t i = 0; i < t->n_inputs; i++) {
        const task_input *in = &t->inputs[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) return err_oom();
        cJSON_AddItemToArray(inputs, o);
        if (!cJSON_AddStringToObject(o, "name", in->name) ||
            !cJSON_AddStringToObject(o, "uri", in->uri) ||
            !add_str_or_null(o, "assetKey", in->asset_key) ||
            !add_str_or_null(o, "dataVersion", in->data_version) ||
            (in->stac_item && !cJSON_AddStringToObject(o, "stacItem", in->stac_item)))
            return err_oom();
    }
    return 0;
}

static int add_files(cJSON *m, const stac_file *files, size_t n_files)
{
    cJSON *arr = cJSON_AddArrayToObject(m, "files");
    if (!arr) return err_oom();
    for (size_t i = 0; i < n_files; i++) {
        const stac_file *f = &files[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) return err_oom();
        cJSON_AddItemToArray(arr, o);
        if (!cJSON_AddStringToObject(o, "name", f->name) ||
            !cJSON_AddStringToObject(o, "uri", f->href) ||
            !cJSON_AddStringToObject(o, "checksum", f->checksum) ||
            !cJSON_AddNumberToObject(o, "sizeBytes", (double)f->size) ||
            !cJSON_AddStringToObject(o, "mediaType", f->media_type) ||
            (f->etag && !cJSON_AddStringToObject(o, "etag", f->etag)))
            return err_oom();
    }
    return 0;
}

int manifest_build(const task *t, const stac_file *files, size_t n_files, const char *stac_href,
                   const char *created, cJSON **out)
{
    int rc = -1;
    cJSON *m = cJSON_CreateObject(), *params = NULL, *worker = NULL;
    *out = NULL;
    if (!m || !cJSON_AddStringToObject(m, "apiVersion", TERRANE_PROTO_API_VERSION) ||
        !cJSON_AddStringToObject(m, "kind", MANIFEST_KIND) ||
        !cJSON_AddStringToObject(m, "namespace", t->namespace_) ||
        !cJSON_AddStringToObject(m, "assetKey", t->asset_key) ||
        !cJSON_AddStringToObject(m, "dataVersion", t->data_version) ||
        !cJSON_AddStringToObject(m, "operation", t->operation))
        goto oom;
    params = t->params ? cJSON_Duplicate(t->params, true) : cJSON_CreateObject();
    if (!params) goto oom;
    if (!cJSON_AddItemToObject(m, "params", params)) {
        cJSON_Delete(params); /* not taken: cJSON could not copy the key */
        goto oom;
    }
    if (add_inputs(m, t) < 0 || add_files(m, files, n_files) < 0) goto cleanup;
    if (!cJSON_AddStringToObject(m, "stacItem", stac_href) ||
        !(worker = cJSON_AddObjectToObject(m, "worker")) ||
        !cJSON_AddStringToObject(worker, "version", TERRANE_VERSION) ||
        !cJSON_AddStringToObject(worker, "gdalVersion", GDALVersionInfo("RELEASE_NAME")) ||
        !cJSON_AddStringToObject(m, "createdAt", created))
        goto oom;
    *out = m;
    m = NULL;
    rc = 0;
    goto cleanup;
oom:
    err_oom();
cleanup:
    cJSON_Delete(m);
    return rc;
}

/* Copies string member key of o into dst (cap bytes); false when missing,
 * not a string, empty or too long. */
static bool get_str(const cJSON *o, const char *key, char *dst, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || !v->valuestring[0]) return false;
    size_t n = strlen(v->valuestring);
    if (n >= cap) return false;
    memcpy(dst, v->valuestring, n + 1);
    return true;
}

static bool str_equals(const cJSON *o, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && !strcmp(v->valuestring, want);
}

int manifest_parse(const task *t, const char *json, size_t len, const char *where,
                   manifest_primary *p)
{
    int rc = -1;
    cJSON *m = NULL;
    const char *bad = NULL;
    memset(p, 0, sizeof *p);

    m = cJSON_ParseWithLength(json, len);
    if (!m) {
        /* cJSON does not tell a syntax error from a failed allocation;
         * either way the manifest cannot be used. */
        bad = "is not valid JSON";
        goto invalid;
    }
    if (!str_equals(m, "apiVersion", TERRANE_PROTO_API_VERSION) ||
        !str_equals(m, "kind", MANIFEST_KIND)) {
        bad = "is not a terrane.io/v1 Manifest";
        goto invalid;
    }
    if (!str_equals(m, "assetKey", t->asset_key) ||
        !str_equals(m, "dataVersion", t->data_version)) {
        bad = "describes another asset key or data version";
        goto invalid;
    }
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
    const cJSON *f0 = cJSON_IsArray(files) ? cJSON_GetArrayItem(files, 0) : NULL;
    if (!cJSON_IsObject(f0)) {
        bad = "has no files";
        goto invalid;
    }
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(f0, "sizeBytes");
    /* 2^53: beyond it a JSON number no longer holds an exact byte count. */
    if (!get_str(f0, "name", p->name, sizeof p->name) ||
        !get_str(f0, "uri", p->uri, sizeof p->uri) ||
        !get_str(f0, "checksum", p->checksum, sizeof p->checksum) ||
        !hash_is_multihash(p->checksum) ||
        !get_str(f0, "mediaType", p->media_type, sizeof p->media_type) || !cJSON_IsNumber(size) ||
        size->valuedouble < 0 || size->valuedouble > 9007199254740992.0 ||
        floor(size->valuedouble) != size->valuedouble) {
        bad = "has an incomplete or malformed files[0]";
        goto invalid;
    }
    p->size = (unsigned long long)size->valuedouble;
    if (cJSON_GetObjectItemCaseSensitive(f0, "etag") &&
        !get_str(f0, "etag", p->etag, sizeof p->etag)) {
        bad = "has a malformed files[0].etag";
        goto invalid;
    }
    if (!get_str(m, "stacItem", p->stac_item, sizeof p->stac_item)) {
        bad = "has no stacItem";
        goto invalid;
    }
    rc = 0;
    goto cleanup;
invalid:
    err_set(ERR_INTERNAL, ERR_OUTPUT, NULL, "manifest %s %s", where, bad);
cleanup:
    cJSON_Delete(m);
    return rc;
}
