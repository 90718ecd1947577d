/*
 * partmap.c - partition mappings between assets (see partmap.h).
 */
#include "partmap.h"

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partstate.h"
#include "sourceread.h"
#include "status.h"

#include <stdio.h>
#include <string.h>

bool partmap_is_template(const char *from)
{
    return from && strchr(from, '{');
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static const json_t *spec_of(const json_t *o)
{
    return json_object_get(o, "spec");
}

static bool partitioned(const json_t *up)
{
    return up && !sourceread_is(up) && json_is_array(json_object_get(spec_of(up), "partitions"));
}

bool partmap_per_partition(const json_t *input, const json_t *up)
{
    const char *from = str(input, "from");
    if (!from) return false;
    return partmap_is_template(from) || partitioned(up);
}

static time_t time_of(const json_t *st, const char *field)
{
    struct timespec ts;
    const char *s = str(st, field);
    return s && !kobj_time_parse(s, &ts) ? ts.tv_sec : 0;
}

time_t partmap_watermark(const json_t *partitions)
{
    return time_of(partitions, PARTMAP_WATERMARK);
}

static int resolve(partmap_find find, void *ctx, const json_t *partitions, const json_t *input,
                   const part_info *pi, partmap_input *out, char *why, size_t size, int depth);

/* An unpartitioned upstream named by an expanded template. */
static int resolve_named(const json_t *up, partmap_input *out, char *why, size_t size)
{
    if (sourceread_is(up)) {
        const char *reason = NULL, *w = NULL;
        if (!sourceread_ready(up, &reason, &w)) {
            snprintf(why, size, "source %s: %s", out->name, w ? w : reason);
            return 1;
        }
        sourceread_input(up, &out->uri, &out->asset_key, &out->data_version, &out->observed);
        out->changed_at = time_of(json_object_get(up, "status"), "lastChangedAt");
        return 0;
    }
    if (partitioned(up)) {
        snprintf(why, size, "from %s: a templated from: names unpartitioned upstreams", out->name);
        return 2;
    }
    const json_t *st = json_object_get(up, "status"), *o = json_object_get(st, "output");
    const char *phase = str(st, "phase"), *dv = str(st, "dataVersion");
    if (!phase || strcmp(phase, PHASE_SUCCEEDED) || !dv_valid(dv) || !str(o, "uri") ||
        status_int(st, "observedGeneration") != kobj_generation(up)) {
        snprintf(why, size, "waiting for upstream %s", out->name);
        return 1;
    }
    out->uri = str(o, "uri");
    out->stac_item = str(o, "stacItem");
    out->asset_key = str(spec_of(up), "assetKey");
    out->data_version = dv;
    out->changed_at = time_of(st, "finishedAt");
    return 0;
}

/* The data version and change time of partition pi of the partitioned
 * asset up (its spec and status), and whether it is materialized at it. */
static int upstream_partition(partmap_find find, void *ctx, const json_t *up, const part_info *pi,
                              partmap_input *out, char *why, size_t size, int depth)
{
    const json_t *sp = spec_of(up), *st = json_object_get(up, "status");
    const json_t *ins = json_object_get(sp, "inputs");
    const char *udv = str(st, "dataVersion");
    size_t n = json_array_size(ins);
    partmap_input *uin = NULL;
    partstate *ps = NULL;
    int rc = 0;
    if (!dv_valid(udv) || status_int(st, "observedGeneration") != kobj_generation(up)) {
        snprintf(why, size, "waiting for upstream %s", out->name);
        return 1;
    }
    if (n && !(uin = cmem_calloc(n, sizeof *uin))) return cerr_oom();
    time_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        rc = resolve(find, ctx, json_object_get(sp, "partitions"), json_array_get(ins, i), pi,
                     &uin[i], why, size, depth + 1);
        if (rc < 0) goto done;
        if (uin[i].per_partition && uin[i].changed_at > changed) changed = uin[i].changed_at;
        if (rc) {
            out->changed_at = changed;
            rc = 1; /* the upstream waits too, or says why it cannot run */
            goto done;
        }
    }
    if ((rc = partmap_partition_dv(udv, pi->key, ins, uin, n, out->dv))) goto done;
    if (!(ps = partstate_new())) {
        rc = cerr_oom();
        goto done;
    }
    const json_t *parts = json_object_get(st, "partitions");
    if (partstate_load(ps, parts, udv)) cerr_clear();
    out->changed_at = changed; /* known even while it waits */
    if (!partstate_is_done(ps, pi->index) || partmap_watermark(parts) < changed) {
        snprintf(why, size, "waiting for partition %s of upstream %s", pi->key, out->name);
        rc = 1;
        goto done;
    }
    const char *base = str(json_object_get(sp, "output"), "uri"), *key = str(sp, "assetKey");
    int a = snprintf(
        out->uri_buf, sizeof out->uri_buf, "%s/%s/%s/%s/%s", base ? base : "",
        kobj_namespace(up) ? kobj_namespace(up) : "", key ? key : "", out->dv + strlen(DV_PREFIX),
        strcmp(str(sp, "operation") ? str(sp, "operation") : "", "collection") ? "asset.tif"
                                                                               : "collection.json");
    int b = snprintf(out->item_buf, sizeof out->item_buf, "%s/%s/%s/%s/item.json", base ? base : "",
                     kobj_namespace(up) ? kobj_namespace(up) : "", key ? key : "",
                     out->dv + strlen(DV_PREFIX));
    if (!base || !key || a < 0 || b < 0 || (size_t)b >= sizeof out->item_buf) {
        snprintf(why, size, "upstream %s: no output prefix, or one too long", out->name);
        rc = 2;
        goto done;
    }
    out->uri = out->uri_buf;
    out->stac_item = out->item_buf;
    out->asset_key = key;
    out->data_version = out->dv;
    out->changed_at = changed;
done:
    cmem_free(uin);
    partstate_free(ps);
    return rc;
}

static int resolve(partmap_find find, void *ctx, const json_t *partitions, const json_t *input,
                   const part_info *pi, partmap_input *out, char *why, size_t size, int depth)
{
    const char *from = str(input, "from");
    memset(out, 0, offsetof(partmap_input, uri_buf));
    out->uri_buf[0] = out->item_buf[0] = '\0';
    if (!from) return 0;
    if (depth > PARTMAP_DEPTH_MAX) {
        snprintf(why, size, "more than %d partitioned upstreams deep", PARTMAP_DEPTH_MAX);
        return 2;
    }
    if (partmap_is_template(from)) {
        int rc = part_substitute(from, pi, out->name, sizeof out->name);
        if (rc == CERR_NOMEM) return rc;
        if (rc) {
            snprintf(why, size, "from %s: %s", from, cerr_message());
            cerr_clear();
            return 2;
        }
        out->per_partition = true;
        const json_t *up = find(ctx, out->name);
        if (!up) {
            snprintf(why, size, "waiting for upstream %s", out->name);
            return 1;
        }
        return resolve_named(up, out, why, size);
    }
    snprintf(out->name, sizeof out->name, "%s", from);
    const json_t *up = find(ctx, from);
    if (!partitioned(up)) return 0;
    out->per_partition = true;
    const char *type = str(json_object_get(input, "partitionMapping"), "type");
    if (type && strcmp(type, "Identity")) {
        snprintf(why, size,
                 "from %s: partitionMapping %s on a partitioned asset is not supported yet "
                 "(Identity is)",
                 from, type);
        return 2;
    }
    if (!json_equal((json_t *)partitions, json_object_get(spec_of(up), "partitions"))) {
        snprintf(why, size,
                 "from %s: an Identity mapping needs the upstream partitioned the same way "
                 "(equal spec.partitions)",
                 from);
        return 2;
    }
    return upstream_partition(find, ctx, up, pi, out, why, size, depth);
}

int partmap_resolve(partmap_find find, void *ctx, const json_t *partitions, const json_t *input,
                    const part_info *pi, partmap_input *out, char *why, size_t size)
{
    return resolve(find, ctx, partitions, input, pi, out, why, size, 0);
}

int partmap_partition_dv(const char *asset_dv, const char *key, const json_t *inputs,
                         const partmap_input *ins, size_t n, char out[DV_LEN + 1])
{
    char v[DV_LEN + 1], t[DV_LEN + 1];
    int rc = part_data_version(asset_dv, key, v);
    for (size_t i = 0; !rc && i < n; i++) {
        if (!ins[i].per_partition) continue;
        const char *name = str(json_array_get(inputs, i), "name");
        if (!dv_valid(ins[i].data_version))
            return cerr_set(CERR_INVALID, "input %s has no data version", name ? name : "?");
        if (!(rc = part_data_version(v, name ? name : "", t)))
            rc = part_data_version(t, ins[i].data_version, v);
    }
    if (!rc) memcpy(out, v, DV_LEN + 1);
    return rc;
}

int partmap_each_upstream(const json_t *am, time_t now, int (*each)(void *ctx, const char *name),
                          void *ctx)
{
    const json_t *sp = spec_of(am), *ins = json_object_get(sp, "inputs");
    part_plan *pp = NULL;
    char name[254];
    int rc = 0;
    for (size_t i = 0; i < json_array_size(ins) && !rc; i++) {
        const char *from = str(json_array_get(ins, i), "from");
        if (!from) continue;
        if (!partmap_is_template(from)) {
            rc = each(ctx, from);
            continue;
        }
        if (!pp && part_plan_decode(json_object_get(sp, "partitions"), &pp, NULL)) {
            cerr_clear();
            return 0; /* an invalid spec reads nothing */
        }
        uint64_t total = part_plan_count(pp, now);
        for (uint64_t k = 0; k < total && !rc; k++) {
            part_info pi;
            if (part_plan_at(pp, k, now, &pi) || part_substitute(from, &pi, name, sizeof name)) {
                cerr_clear();
                continue;
            }
            rc = each(ctx, name);
        }
    }
    part_plan_free(pp);
    return rc;
}
