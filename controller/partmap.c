/*
 * partmap.c - partition mappings between assets (see partmap.h).
 */
#include "partmap.h"

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partstate.h"
#include "parttiles.h"
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
                   const part_info *pi, time_t now, partmap_input *out, char *why, size_t size,
                   int depth);

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

void partmap_input_clear(partmap_input *in)
{
    if (!in) return;
    for (size_t i = 0; i < in->n_parts; i++) {
        cmem_free(in->parts[i].uri);
        cmem_free(in->parts[i].item);
    }
    cmem_free(in->parts);
    in->parts = NULL;
    in->n_parts = 0;
}

/* Where partition data version pdv of the partitioned asset up is
 * published. 0, or 2 with why. */
static int part_objects(const json_t *up, const char *name, const char *pdv, char *uri, char *item,
                        size_t size, char *why, size_t wsize)
{
    const json_t *sp = spec_of(up);
    const char *base = str(json_object_get(sp, "output"), "uri"), *key = str(sp, "assetKey");
    const char *ns = kobj_namespace(up) ? kobj_namespace(up) : "";
    const char *op = str(sp, "operation") ? str(sp, "operation") : "";
    int a = snprintf(uri, size, "%s/%s/%s/%s/%s", base ? base : "", ns, key ? key : "",
                     pdv + strlen(DV_PREFIX),
                     strcmp(op, "collection") ? "asset.tif" : "collection.json");
    int b = snprintf(item, size, "%s/%s/%s/%s/item.json", base ? base : "", ns, key ? key : "",
                     pdv + strlen(DV_PREFIX));
    if (!base || !key || a < 0 || b < 0 || (size_t)a >= size || (size_t)b >= size) {
        snprintf(why, wsize, "upstream %s: no output prefix, or one too long", name);
        return 2;
    }
    return 0;
}

/* The data version and change time of partition pi of the partitioned
 * asset up (its spec and status), and whether it is materialized at it;
 * ps is the upstream's record when the caller has loaded it, else NULL. */
static int upstream_partition(partmap_find find, void *ctx, const json_t *up, const partstate *ps,
                              const part_info *pi, time_t now, partmap_input *out, char *why,
                              size_t size, int depth)
{
    const json_t *sp = spec_of(up), *st = json_object_get(up, "status");
    const json_t *ins = json_object_get(sp, "inputs");
    const char *udv = str(st, "dataVersion");
    size_t n = json_array_size(ins);
    partmap_input *uin = NULL;
    partstate *own = NULL;
    int rc = 0;
    if (!dv_valid(udv) || status_int(st, "observedGeneration") != kobj_generation(up)) {
        snprintf(why, size, "waiting for upstream %s", out->name);
        return 1;
    }
    if (n && !(uin = cmem_calloc(n, sizeof *uin))) return cerr_oom();
    time_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        rc = resolve(find, ctx, json_object_get(sp, "partitions"), json_array_get(ins, i), pi, now,
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
    const json_t *parts = json_object_get(st, "partitions");
    if (!ps) {
        if (!(own = partstate_new())) {
            rc = cerr_oom();
            goto done;
        }
        if ((rc = partstate_load(own, parts, udv)) == CERR_NOMEM) goto done;
        if (rc) cerr_clear(); /* a malformed record: nothing materialized */
        ps = own;
    }
    out->changed_at = changed; /* known even while it waits */
    if (!partstate_is_done(ps, pi->index) || partmap_watermark(parts) < changed) {
        snprintf(why, size, "waiting for partition %s of upstream %s", pi->key, out->name);
        rc = 1;
        goto done;
    }
    if ((rc = part_objects(up, out->name, out->dv, out->uri_buf, out->item_buf, sizeof out->uri_buf,
                           why, size)))
        goto done;
    out->uri = out->uri_buf;
    out->stac_item = out->item_buf;
    out->asset_key = str(sp, "assetKey");
    out->data_version = out->dv;
done:
    for (size_t i = 0; uin && i < n; i++)
        partmap_input_clear(&uin[i]);
    cmem_free(uin);
    partstate_free(own);
    return rc;
}

/* One time dimension of the given cadence and timezone ("UTC" when
 * absent), or NULL. */
static const json_t *single_time(const json_t *partitions)
{
    const json_t *d = json_array_size(partitions) == 1 ? json_array_get(partitions, 0) : NULL;
    return json_object_get(d, "time");
}

static bool same_cadence(const json_t *a, const json_t *b)
{
    const char *ca = str(a, "cadence"), *cb = str(b, "cadence");
    const char *za = str(a, "timezone") ? str(a, "timezone") : "UTC";
    const char *zb = str(b, "timezone") ? str(b, "timezone") : "UTC";
    return ca && cb && !strcmp(ca, cb) && !strcmp(za, zb);
}

/* The upstream's partition plan at its recorded grid. 0, 1 (why) when the
 * upstream cannot be enumerated yet. */
static int upstream_plan(const json_t *up, const char *name, part_plan **out, char *why,
                         size_t size)
{
    const json_t *parts = json_object_get(json_object_get(up, "status"), "partitions");
    part_grid g;
    *out = NULL;
    if (part_plan_decode(json_object_get(spec_of(up), "partitions"), out, NULL)) {
        if (cerr_code() == CERR_NOMEM) return CERR_NOMEM;
        cerr_clear();
        snprintf(why, size, "waiting for upstream %s (its spec.partitions is invalid)", name);
        return 1;
    }
    if (!part_plan_has_tiles(*out)) return 0;
    if (parttiles_grid_decode(json_object_get(json_object_get(parts, "grid"), "result"), &g) ||
        part_plan_set_grid(*out, &g)) {
        cerr_clear();
        snprintf(why, size, "waiting for the tile grid of upstream %s", name);
        return 1;
    }
    return 0;
}

/* LastN (reader partition pi of an asset partitioned as partitions) or
 * AllToOne (pi NULL) from the partitioned upstream up. */
static int resolve_multi(partmap_find find, void *ctx, const json_t *partitions,
                         const part_info *pi, const json_t *up, partmap_kind kind, int count,
                         time_t now, partmap_input *out, char *why, size_t size, int depth)
{
    const json_t *st = json_object_get(up, "status"), *parts = json_object_get(st, "partitions");
    const char *udv = str(st, "dataVersion");
    part_plan *upp = NULL;
    partstate *ps = NULL;
    partmap_input *one = NULL;
    char w[320];
    uint64_t lo = 0, hi = 0, waiting = 0;
    int rc;
    out->kind = kind;
    if (!dv_valid(udv) || status_int(st, "observedGeneration") != kobj_generation(up)) {
        snprintf(why, size, "waiting for upstream %s", out->name);
        return 1;
    }
    if (kind == PARTMAP_LAST_N &&
        !same_cadence(single_time(partitions),
                      single_time(json_object_get(spec_of(up), "partitions")))) {
        snprintf(why, size,
                 "from %s: LastN needs this asset and the upstream partitioned by one time "
                 "dimension each, of the same cadence and timezone",
                 out->name);
        return 2;
    }
    if ((rc = upstream_plan(up, out->name, &upp, why, size))) goto done;
    uint64_t total = part_plan_count(upp, now);
    if (kind == PARTMAP_ALL) {
        if (total > PARTMAP_ALL_MAX) {
            snprintf(why, size,
                     "from %s: AllToOne reads at most %d partitions and the upstream has %llu; "
                     "read fewer through an intermediate asset (a coarser cadence)",
                     out->name, PARTMAP_ALL_MAX, (unsigned long long)total);
            rc = 2;
            goto done;
        }
        if (!total) {
            snprintf(why, size, "waiting for upstream %s: no partition exists yet", out->name);
            rc = 1;
            goto done;
        }
        hi = total;
    } else {
        uint64_t j;
        if (part_plan_index_of(upp, pi->key, now, &j)) {
            snprintf(why, size, "from %s: the upstream has no window %s (LastN reads its own)",
                     out->name, pi->key);
            rc = 2;
            goto done;
        }
        hi = j + 1;
        lo = hi > (uint64_t)count ? hi - (uint64_t)count : 0;
    }
    if (!(ps = partstate_new()) || !(one = cmem_calloc(1, sizeof *one)) ||
        !(out->parts = cmem_calloc((size_t)(hi - lo), sizeof *out->parts))) {
        rc = cerr_oom();
        goto done;
    }
    if ((rc = partstate_load(ps, parts, udv)) == CERR_NOMEM) goto done;
    if (rc) cerr_clear(); /* rc is set again below */
    char label[32], t[DV_LEN + 1];
    snprintf(label, sizeof label, kind == PARTMAP_ALL ? "AllToOne" : "LastN:%d", count);
    if ((rc = part_data_version(udv, label, out->dv))) goto done;
    for (uint64_t k = lo; k < hi; k++) {
        part_info upi;
        memset(one, 0, offsetof(partmap_input, uri_buf));
        snprintf(one->name, sizeof one->name, "%s", out->name);
        if ((rc = part_plan_at(upp, k, now, &upi))) goto done;
        rc = upstream_partition(find, ctx, up, ps, &upi, now, one, w, sizeof w, depth);
        if (rc < 0) goto done;
        if (one->changed_at > out->changed_at) out->changed_at = one->changed_at;
        if (rc == 2) {
            snprintf(why, size, "%s", w);
            goto done;
        }
        if (rc == 1) {
            if (!waiting++) snprintf(why, size, "%s", w);
            rc = 0;
            continue;
        }
        partmap_part *pa = &out->parts[out->n_parts++];
        snprintf(pa->key, sizeof pa->key, "%s", upi.key);
        memcpy(pa->dv, one->dv, sizeof pa->dv);
        if (!(pa->uri = cmem_strdup(one->uri_buf)) || !(pa->item = cmem_strdup(one->item_buf))) {
            rc = cerr_oom();
            goto done;
        }
        if ((rc = part_data_version(out->dv, upi.key, t)) ||
            (rc = part_data_version(t, one->dv, out->dv)))
            goto done;
    }
    if (waiting > 1)
        snprintf(why + strlen(why), size - strlen(why), " (and %llu more of its partitions)",
                 (unsigned long long)(waiting - 1));
    if (waiting) {
        rc = 1;
        goto done;
    }
    out->asset_key = str(spec_of(up), "assetKey");
    out->data_version = out->dv;
done:
    part_plan_free(upp);
    partstate_free(ps);
    cmem_free(one);
    return rc;
}

static int resolve(partmap_find find, void *ctx, const json_t *partitions, const json_t *input,
                   const part_info *pi, time_t now, partmap_input *out, char *why, size_t size,
                   int depth)
{
    const char *from = str(input, "from");
    partmap_input_clear(out);
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
    const json_t *m = json_object_get(input, "partitionMapping");
    const char *type = str(m, "type");
    if (type && !strcmp(type, "LastN"))
        return resolve_multi(find, ctx, partitions, pi, up, PARTMAP_LAST_N,
                             (int)json_integer_value(json_object_get(m, "count")), now, out, why,
                             size, depth);
    if (type && strcmp(type, "Identity")) {
        snprintf(why, size,
                 "from %s: partitionMapping %s is for an unpartitioned asset (one task over every "
                 "partition); a partitioned asset reads Identity or LastN",
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
    return upstream_partition(find, ctx, up, NULL, pi, now, out, why, size, depth);
}

int partmap_resolve(partmap_find find, void *ctx, const json_t *partitions, const json_t *input,
                    const part_info *pi, time_t now, partmap_input *out, char *why, size_t size)
{
    return resolve(find, ctx, partitions, input, pi, now, out, why, size, 0);
}

/* A tiles dimension alone: assembled into one COG, status.output. */
static bool assembled(const json_t *up)
{
    const json_t *parts = json_object_get(spec_of(up), "partitions");
    return json_array_size(parts) == 1 && json_object_get(json_array_get(parts, 0), "tiles");
}

bool partmap_reads_all(const json_t *input, const json_t *up)
{
    if (!str(input, "from") || partmap_is_template(str(input, "from")) || !partitioned(up))
        return false;
    return json_object_get(input, "partitionMapping") || !assembled(up);
}

int partmap_resolve_all(partmap_find find, void *ctx, const json_t *input, const json_t *up,
                        time_t now, partmap_input *out, char *why, size_t size)
{
    const char *type = str(json_object_get(input, "partitionMapping"), "type");
    partmap_input_clear(out);
    memset(out, 0, offsetof(partmap_input, uri_buf));
    snprintf(out->name, sizeof out->name, "%s", str(input, "from") ? str(input, "from") : "");
    if (type && strcmp(type, "AllToOne")) {
        snprintf(why, size,
                 "from %s: partitionMapping %s needs this asset partitioned (spec.partitions); an "
                 "unpartitioned asset reads every partition of a partitioned upstream (AllToOne)",
                 out->name, type);
        return 2;
    }
    out->per_partition = true;
    return resolve_multi(find, ctx, NULL, NULL, up, PARTMAP_ALL, 0, now, out, why, size, 0);
}

/* name_suffix with every character a task input name cannot hold as '_'. */
static int part_input_name(const char *name, const char *suffix, char out[64])
{
    int n = snprintf(out, 64, "%s_%s", name, suffix);
    if (n < 0 || n >= 64) return CERR_TOOBIG;
    for (char *c = out; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            *c = '_';
    return 0;
}

int partmap_expand_task(json_t *task, size_t at, const char *name, const partmap_input *m,
                        char *why, size_t size)
{
    if (m->kind == PARTMAP_ONE) return 0;
    const json_t *old = json_object_get(task, "inputs");
    json_t *list = json_array();
    char nm[64], lag[24];
    if (!list) return cerr_oom();
    for (size_t i = 0; i < json_array_size(old); i++) {
        if (i != at) {
            if (json_array_append(list, json_array_get(old, i))) goto oom;
            continue;
        }
        for (size_t k = 0; k < m->n_parts; k++) {
            const partmap_part *p = &m->parts[k];
            snprintf(lag, sizeof lag, "%zu", m->n_parts - 1 - k);
            if (part_input_name(name, m->kind == PARTMAP_ALL ? p->key : lag, nm)) {
                snprintf(why, size,
                         "input %s: the task input for partition %s would have a name longer "
                         "than 63 characters",
                         name, p->key);
                json_decref(list);
                return 2;
            }
            json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s}", "name", nm, "uri", p->uri, "assetKey",
                                  m->asset_key ? m->asset_key : "", "dataVersion", p->dv,
                                  "stacItem", p->item);
            if (!o || json_array_append_new(list, o)) goto oom;
        }
    }
    /* names unique: partition keys may differ only where '_' replaced
     * something, or meet another input's name */
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *a = str(json_array_get(list, i), "name");
        for (size_t k = i + 1; a && k < json_array_size(list); k++) {
            const char *b = str(json_array_get(list, k), "name");
            if (b && !strcmp(a, b)) {
                snprintf(why, size,
                         "input %s: two task inputs would be named %s (partition keys that differ "
                         "only in characters a name holds as '_', or another input's name)",
                         name, a);
                json_decref(list);
                return 2;
            }
        }
    }
    if (json_object_set_new(task, "inputs", list)) return cerr_oom();
    return 0;
oom:
    json_decref(list);
    return cerr_oom();
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
