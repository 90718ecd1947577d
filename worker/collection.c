/*
 * collection.c - the STAC Collection of a partitioned asset (collection.h).
 *
 * Times are compared as strings: every Item the worker writes has RFC 3339
 * UTC times of one shape, for which the lexical order is the time order.
 */
#include "collection.h"

#include "err.h"
#include "input.h"
#include "mem.h"
#include "stac.h"

#include <cJSON.h>
#include <cpl_vsi.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void widen(char *cur, size_t cap, const char *v, bool earliest)
{
    if (!v || !v[0] || strlen(v) >= cap) return;
    int c = strcmp(v, cur);
    if (!cur[0] || (earliest ? c < 0 : c > 0)) snprintf(cur, cap, "%s", v);
}

static const char *prop(const cJSON *props, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(props, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int collection_item_merge(const char *json, size_t len, const char *field, collection_extent *e)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    int rc = -1;
    if (!doc) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field, "%s: not a JSON document", field);
        goto cleanup;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(doc, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "Feature") != 0) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field, "%s: not a STAC Item (type Feature)",
                field);
        goto cleanup;
    }
    const cJSON *bbox = cJSON_GetObjectItemCaseSensitive(doc, "bbox");
    if (bbox) {
        double b[4];
        if (!cJSON_IsArray(bbox) || cJSON_GetArraySize(bbox) != 4) {
            err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field, "%s: bbox must be 4 numbers", field);
            goto cleanup;
        }
        for (int i = 0; i < 4; i++) {
            const cJSON *v = cJSON_GetArrayItem(bbox, i);
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
                err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field, "%s: bbox must be 4 numbers",
                        field);
                goto cleanup;
            }
            b[i] = v->valuedouble;
        }
        if (!e->has_bbox) {
            memcpy(e->bbox, b, sizeof b);
            e->has_bbox = true;
        } else {
            e->bbox[0] = fmin(e->bbox[0], b[0]);
            e->bbox[1] = fmin(e->bbox[1], b[1]);
            e->bbox[2] = fmax(e->bbox[2], b[2]);
            e->bbox[3] = fmax(e->bbox[3], b[3]);
        }
    }
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(doc, "properties");
    if (cJSON_IsObject(props)) {
        const char *s = prop(props, "start_datetime"), *en = prop(props, "end_datetime");
        const char *dt = prop(props, "datetime");
        widen(e->start, sizeof e->start, s ? s : dt, true);
        widen(e->end, sizeof e->end, en ? en : dt, false);
    }
    rc = 0;
cleanup:
    cJSON_Delete(doc);
    return rc;
}

/* Reads at most COLLECTION_ITEM_MAX bytes of uri into a new buffer. */
static int read_item(const char *uri, const char *field, char **out, size_t *len)
{
    char *path = NULL, *buf = NULL;
    VSILFILE *f = NULL;
    int rc = -1;
    *out = NULL;
    if (input_check_reachable(uri, field) < 0) return -1;
    if (!(path = input_gdal_path(uri)) || !(buf = mem_malloc(COLLECTION_ITEM_MAX + 1))) {
        err_oom();
        goto cleanup;
    }
    if (!(f = VSIFOpenL(path, "rb"))) {
        err_set(ERR_TRANSIENT, ERR_INPUT_UNREADABLE, field, "%s: cannot read %s", field, uri);
        goto cleanup;
    }
    *len = VSIFReadL(buf, 1, COLLECTION_ITEM_MAX + 1, f);
    if (*len > COLLECTION_ITEM_MAX) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field, "%s: an Item over %d bytes", field,
                COLLECTION_ITEM_MAX);
        goto cleanup;
    }
    *out = buf;
    buf = NULL;
    rc = 0;
cleanup:
    if (f) VSIFCloseL(f);
    mem_free(buf);
    mem_free(path);
    return rc;
}

int collection_write(const task *t, const char *title, const char *path)
{
    collection_extent e = {0};
    char field[48], id[320];
    char *text = NULL, *item = NULL;
    cJSON *doc = NULL;
    VSILFILE *f = NULL;
    int rc = -1;

    for (size_t i = 0; i < t->n_inputs; i++) {
        size_t len = 0;
        snprintf(field, sizeof field, "inputs[%zu].stacItem", i);
        if (!t->inputs[i].stac_item) continue; /* assemble: the tiles' Items when given */
        if (read_item(t->inputs[i].stac_item, field, &item, &len) < 0) goto cleanup;
        int m = collection_item_merge(item, len, field, &e);
        mem_free(item);
        item = NULL;
        if (m < 0) goto cleanup;
    }
    snprintf(id, sizeof id, "%s", t->asset_key);
    for (char *p = id; *p; p++)
        if (*p == '/') *p = '-';
    if (!(doc = cJSON_CreateObject())) goto oom;
    cJSON *ext, *sp, *bb, *tm, *iv, *links;
    if (!cJSON_AddStringToObject(doc, "type", "Collection") ||
        !cJSON_AddStringToObject(doc, "stac_version", STAC_VERSION) ||
        !cJSON_AddStringToObject(doc, "id", id) ||
        !cJSON_AddStringToObject(doc, "title", title ? title : t->asset_key) ||
        !cJSON_AddStringToObject(doc, "description", "The partitions of a Terrane asset.") ||
        !cJSON_AddStringToObject(doc, "license", "other") ||
        !(ext = cJSON_AddObjectToObject(doc, "extent")) ||
        !(sp = cJSON_AddObjectToObject(ext, "spatial")) ||
        !(bb = cJSON_AddArrayToObject(sp, "bbox")) ||
        !(tm = cJSON_AddObjectToObject(ext, "temporal")) ||
        !(iv = cJSON_AddArrayToObject(tm, "interval")))
        goto oom;
    double world[4] = {-180, -90, 180, 90};
    cJSON *b = cJSON_CreateDoubleArray(e.has_bbox ? e.bbox : world, 4);
    cJSON *one = cJSON_CreateArray();
    if (!b || !one) {
        cJSON_Delete(b);
        cJSON_Delete(one);
        goto oom;
    }
    cJSON_AddItemToArray(bb, b);
    cJSON_AddItemToArray(iv, one);
    cJSON_AddItemToArray(one, e.start[0] ? cJSON_CreateString(e.start) : cJSON_CreateNull());
    cJSON_AddItemToArray(one, e.end[0] ? cJSON_CreateString(e.end) : cJSON_CreateNull());
    if (!cJSON_AddStringToObject(doc, "terrane:assetKey", t->asset_key) ||
        !cJSON_AddStringToObject(doc, "terrane:dataVersion", t->data_version) ||
        !cJSON_AddNumberToObject(doc, "terrane:partitions", (double)t->n_inputs) ||
        !(links = cJSON_AddArrayToObject(doc, "links")))
        goto oom;
    for (size_t i = 0; i < t->n_inputs; i++) {
        const char *href = t->inputs[i].stac_item;
        cJSON *l = href ? cJSON_CreateObject() : NULL;
        if (!href) continue;
        if (!l) goto oom;
        cJSON_AddItemToArray(links, l);
        if (!cJSON_AddStringToObject(l, "rel", "item") ||
            !cJSON_AddStringToObject(l, "href", href) ||
            !cJSON_AddStringToObject(l, "type", STAC_MEDIA_ITEM) ||
            !cJSON_AddStringToObject(l, "title", t->inputs[i].name))
            goto oom;
    }
    if (!(text = cJSON_Print(doc))) goto oom;
    if (!(f = VSIFOpenL(path, "wb")) || VSIFWriteL(text, 1, strlen(text), f) != strlen(text)) {
        err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "writing %s failed", path);
        goto cleanup;
    }
    rc = 0;
    goto cleanup;
oom:
    err_oom();
cleanup:
    if (f && VSIFCloseL(f) != 0 && rc == 0)
        rc = err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "writing %s failed", path);
    if (text) cJSON_free(text);
    cJSON_Delete(doc);
    mem_free(item);
    return rc;
}
