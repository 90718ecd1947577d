/*
 * parttiles.c - the tile flow of a tiled asset (see parttiles.h).
 */
#include "parttiles.h"

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "podspec.h"
#include "status.h"
#include "terrane_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *parttiles_role(const json_t *pod)
{
    return json_string_value(json_object_get(
        json_object_get(json_object_get(pod, "metadata"), "annotations"), PARTTILES_A_ROLE));
}

json_t *parttiles_grid_params(const json_t *partitions)
{
    size_t i;
    const json_t *d;
    json_array_foreach(partitions, i, d)
    {
        const json_t *t = json_object_get(d, "tiles");
        if (!json_is_object(t)) continue;
        json_t *p = json_object();
        static const char *const keys[] = {"tileSize", "halo", "origin", "cellSize", NULL};
        for (int k = 0; p && keys[k]; k++) {
            const json_t *v = json_object_get(t, keys[k]);
            if (v && json_object_set(p, keys[k], (json_t *)v)) {
                json_decref(p);
                p = NULL;
            }
        }
        return p;
    }
    return NULL;
}

static long jlong(const json_t *o, const char *k, bool *ok)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_integer(v)) *ok = false;
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

int parttiles_grid_decode(const json_t *grid, part_grid *g)
{
    bool ok = json_is_object(grid);
    memset(g, 0, sizeof *g);
    g->width = jlong(grid, "width", &ok);
    g->height = jlong(grid, "height", &ok);
    g->tile_width = jlong(grid, "tileWidth", &ok);
    g->tile_height = jlong(grid, "tileHeight", &ok);
    g->cols = jlong(grid, "cols", &ok);
    g->rows = jlong(grid, "rows", &ok);
    g->halo = (int)jlong(grid, "halo", &ok);
    const char *digest = json_string_value(json_object_get(grid, "digest"));
    if (!ok || !digest || strlen(digest) != 64)
        return cerr_set(CERR_INVALID, "grid: width, height, tileWidth, tileHeight, cols, rows, "
                                      "halo and a 64-hex digest are required");
    /* offsets (a grid in the CRS not aligned on the raster) are absent or 0 */
    const json_t *ox = json_object_get(grid, "offsetX"), *oy = json_object_get(grid, "offsetY");
    if ((ox && (!json_is_integer(ox) || json_integer_value(ox))) ||
        (oy && (!json_is_integer(oy) || json_integer_value(oy))))
        return cerr_set(CERR_INVALID,
                        "grid: offsets %lld,%lld; only grids starting at the raster's top-left "
                        "pixel are enumerated",
                        (long long)json_integer_value(ox), (long long)json_integer_value(oy));
    return 0;
}

int parttiles_grid_result(const json_t *pod, json_t **grid, part_grid *g)
{
    *grid = NULL;
    const json_t *t = pod_terminated(pod);
    const char *m = t ? json_string_value(json_object_get(t, "message")) : NULL;
    json_t *r = m ? json_loads(m, 0, NULL) : NULL;
    json_t *gr = json_object_get(r, "grid");
    int rc = gr ? parttiles_grid_decode(gr, g)
                : cerr_set(CERR_INVALID, "pod %s: no grid in its result", kobj_name(pod));
    if (!rc) *grid = json_incref(gr);
    json_decref(r);
    return rc;
}

int parttiles_tiled_dv(const char *dv, const json_t *grid, char out[DV_LEN + 1])
{
    char key[8 + 64 + 1];
    const char *digest = json_string_value(json_object_get(grid, "digest"));
    if (!digest || strlen(digest) != 64) return cerr_set(CERR_INVALID, "grid: no digest");
    snprintf(key, sizeof key, "grid:%s", digest);
    return part_data_version(dv, key, out);
}

int parttiles_stage_pod(const parttiles_ctx *c, const char *role, const json_t *params,
                        const json_t *inputs, const char *dv, int attempt, json_t **out)
{
    char name[PODSPEC_NAME_MAX + 8];
    json_t *task = NULL, *pod = NULL;
    int rc = 0;
    *out = NULL;
    if ((rc = part_pod_name(kobj_name(c->in->am), dv, role, attempt, name, sizeof name))) return rc;
    /* the stage's own spec: its operation and params, the primary input */
    am_spec s = *c->s;
    s.operation = role;
    s.params = params;
    s.n_inputs = inputs || !c->s->n_inputs ? 0 : 1;
    if ((rc = taskdoc_build(&s, c->ins, dv, attempt, &task))) goto done;
    if (inputs && json_object_set(task, "inputs", (json_t *)inputs)) {
        rc = cerr_oom();
        goto done;
    }
    podspec_attempt a = {.namespace_ = c->in->namespace_,
                         .am_name = kobj_name(c->in->am),
                         .am_uid = kobj_uid(c->in->am),
                         .generation = kobj_generation(c->in->am),
                         .asset_key = c->s->asset_key,
                         .data_version = dv,
                         .attempt = attempt,
                         .attempts = attempt,
                         .retries = attempt - 1,
                         .pool = c->pool,
                         .resources = c->s->resources,
                         .task = task};
    if ((rc = podspec_build(c->cfg->pod, &a, &pod))) goto done;
    json_t *meta = json_object_get(pod, "metadata");
    json_t *labels = json_object_get(meta, "labels"),
           *annots = json_object_get(meta, "annotations");
    if (!labels || !annots || json_object_set_new(meta, "name", json_string(name)) ||
        json_object_set_new(labels, PART_LABEL, json_string(role)) ||
        json_object_set_new(annots, PARTTILES_A_ROLE, json_string(role))) {
        rc = cerr_oom();
        goto done;
    }
    *out = pod;
    pod = NULL;
done:
    json_decref(task);
    json_decref(pod);
    return rc;
}

json_t *parttiles_assemble_params(const json_t *asset_params, const json_t *grid)
{
    /* the worker's COG options (worker/cog.c cog_param_specs) */
    static const char *const cog[] = {
        "compression", "level",  "predictor", "blockSize", "overviewResampling",
        "bigtiff",     "nodata", "threads",   "cacheMb",   NULL};
    json_t *p = json_pack("{s:O,s:b}", "grid", grid, "collection", 1);
    for (int k = 0; p && cog[k]; k++) {
        const json_t *v = json_object_get(asset_params, cog[k]);
        if (v && json_object_set(p, cog[k], (json_t *)v)) {
            json_decref(p);
            p = NULL;
        }
    }
    return p;
}

/* The output object of a succeeded pod's result, a new reference or NULL. */
static json_t *pod_output(const json_t *pod)
{
    const json_t *t = pod_terminated(pod);
    const char *m = t ? json_string_value(json_object_get(t, "message")) : NULL;
    json_t *r = m ? json_loads(m, 0, NULL) : NULL;
    json_t *o = json_incref(json_object_get(r, "output"));
    json_decref(r);
    return o;
}

int parttiles_assemble_inputs(const json_t *const *pods, size_t n, const char *dv, uint64_t total,
                              json_t **inputs, prange *missing)
{
    json_t **by = NULL, *arr = NULL;
    int rc = 0;
    *inputs = NULL;
    if (total > PARTTILES_ASSEMBLE_MAX)
        return cerr_set(CERR_INVALID, "%llu tiles; one assemble task takes at most %d",
                        (unsigned long long)total, PARTTILES_ASSEMBLE_MAX);
    if (total && !(by = cmem_calloc(total, sizeof *by))) return cerr_oom();
    for (size_t i = 0; i < n; i++) {
        const json_t *pod = pods[i];
        const char *pdv = json_string_value(
            json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"),
                            PODSPEC_A_DATA_VERSION));
        const char *sidx = json_string_value(json_object_get(
            json_object_get(json_object_get(pod, "metadata"), "annotations"), PART_A_INDEX));
        const char *phase = pod_phase(pod);
        if (!pdv || strcmp(pdv, dv) || !sidx || !phase || strcmp(phase, "Succeeded") ||
            parttiles_role(pod))
            continue;
        char *end;
        unsigned long long idx = strtoull(sidx, &end, 10);
        if (*end || idx >= total || by[idx]) continue;
        json_t *o = pod_output(pod);
        const char *uri = json_string_value(json_object_get(o, "uri"));
        const char *sum = json_string_value(json_object_get(o, "checksum"));
        const char *key = json_string_value(json_object_get(
            json_object_get(json_object_get(pod, "metadata"), "annotations"), PART_A_KEY));
        if (uri && sum && key) {
            by[idx] = json_pack("{s:s,s:s,s:s}", "name", key, "uri", uri, "checksum", sum);
            const json_t *item = json_object_get(o, "stacItem");
            if (!by[idx] || (item && json_object_set(by[idx], "stacItem", (json_t *)item))) {
                json_decref(o);
                rc = cerr_oom();
                goto done;
            }
        }
        json_decref(o);
    }
    for (uint64_t i = 0; i < total; i++)
        if (!by[i] && (rc = prange_add(missing, i))) goto done;
    if (prange_count(missing)) goto done;
    if (!(arr = json_array())) {
        rc = cerr_oom();
        goto done;
    }
    for (uint64_t i = 0; i < total; i++) {
        if (json_array_append_new(arr, by[i])) {
            by[i] = NULL;
            rc = cerr_oom();
            goto done;
        }
        by[i] = NULL;
    }
    *inputs = arr;
    arr = NULL;
done:
    for (uint64_t i = 0; by && i < total; i++)
        json_decref(by[i]);
    cmem_free(by);
    json_decref(arr);
    return rc;
}

static const char *pod_ann(const json_t *pod, const char *k)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"), k));
}

/* The newest stage pod of role at dv (the others collected into plan). */
static int newest_stage(const parttiles_ctx *c, const char *role, const char *dv,
                        partfan_plan *plan, const json_t **out)
{
    *out = NULL;
    long long best = 0;
    for (size_t i = 0; i < c->in->n_pods; i++) {
        const json_t *pod = c->in->pods[i];
        const char *r = parttiles_role(pod), *pdv = pod_ann(pod, PODSPEC_A_DATA_VERSION);
        if (!r || strcmp(r, role) || kobj_is_deleting(pod)) continue;
        if (!pdv || strcmp(pdv, dv)) {
            int rc = partfan_add_delete(plan, pod, "superseded");
            if (rc) return rc;
            continue;
        }
        long long a = pod_annotation_int(pod, PODSPEC_A_ATTEMPTS);
        if (!*out || a > best) {
            *out = pod;
            best = a;
        }
    }
    /* older attempts of dv: collected once a newer one exists */
    for (size_t i = 0; *out && i < c->in->n_pods; i++) {
        const json_t *pod = c->in->pods[i];
        const char *r = parttiles_role(pod), *pdv = pod_ann(pod, PODSPEC_A_DATA_VERSION);
        if (pod != *out && r && !strcmp(r, role) && pdv && !strcmp(pdv, dv) &&
            !kobj_is_deleting(pod) && pod_terminal(pod)) {
            int rc = partfan_add_delete(plan, pod, "retried");
            if (rc) return rc;
        }
    }
    return 0;
}

/* A failed stage pod: retried (WAIT) or failed for good (FAILED). */
static int stage_failed(const parttiles_ctx *c, const json_t *pod, const char *role,
                        const json_t *params, const json_t *inputs, const char *dv,
                        partfan_plan *plan, parttiles_state *state, char *msg, size_t size)
{
    partfan_attempt_info ai;
    char cause[384];
    partfan_attempt(pod, 0, c->s->retry_limit, &ai, cause, sizeof cause);
    bool last = ai.last;
    snprintf(msg, size, "%s pod %s %s: %s", role, kobj_name(pod),
             last ? "failed" : "failed, retrying", *cause ? cause : "no result");
    if (last) {
        *state = PARTTILES_FAILED;
        return 0;
    }
    json_t *next = NULL;
    int rc = parttiles_stage_pod(c, role, params, inputs, dv, (int)ai.attempt + 1, &next);
    if (!rc) rc = partfan_add_create(plan, next);
    if (!rc) rc = partfan_add_delete(plan, pod, "retried");
    *state = PARTTILES_WAIT;
    return rc;
}

int parttiles_probe(const parttiles_ctx *c, const char *dv, const json_t *old_grid, part_plan *pp,
                    partfan_plan *plan, json_t **rec, char tiled_dv[DV_LEN + 1],
                    parttiles_state *state, char *msg, size_t size)
{
    const json_t *pod = NULL;
    json_t *grid = NULL, *params = NULL;
    part_grid g;
    int rc = 0;
    *rec = NULL;
    *state = PARTTILES_WAIT;
    const char *rdv = json_string_value(json_object_get(old_grid, "dataVersion"));
    const json_t *rres = json_object_get(old_grid, "result");
    if ((rc = newest_stage(c, PARTTILES_ROLE_GRID, dv, plan, &pod))) return rc;
    if (rdv && !strcmp(rdv, dv) && rres && !parttiles_grid_decode(rres, &g)) {
        grid = json_incref((json_t *)rres);
    } else {
        cerr_clear();
        if (!(params = parttiles_grid_params(c->s->partitions))) return cerr_oom();
        if (!pod) {
            json_t *np = NULL;
            if (!(rc = parttiles_stage_pod(c, PARTTILES_ROLE_GRID, params, NULL, dv, 1, &np)))
                rc = partfan_add_create(plan, np);
            snprintf(msg, size, "probing the tile grid of the input");
            goto done;
        }
        if (!pod_terminal(pod)) {
            snprintf(msg, size, "probing the tile grid: pod %s", kobj_name(pod));
            goto done;
        }
        if (strcmp(pod_phase(pod), "Succeeded")) {
            rc =
                stage_failed(c, pod, PARTTILES_ROLE_GRID, params, NULL, dv, plan, state, msg, size);
            goto done;
        }
        if (parttiles_grid_result(pod, &grid, &g)) {
            snprintf(msg, size, "grid pod %s: %s", kobj_name(pod), cerr_message());
            cerr_clear();
            *state = PARTTILES_FAILED;
            goto done;
        }
    }
    if (part_plan_set_grid(pp, &g) || parttiles_tiled_dv(dv, grid, tiled_dv)) {
        snprintf(msg, size, "%s", cerr_message());
        cerr_clear();
        *state = PARTTILES_FAILED;
        goto done;
    }
    if (!(*rec = json_pack("{s:s,s:O}", "dataVersion", dv, "result", grid))) {
        rc = cerr_oom();
        goto done;
    }
    /* recorded in the status this decision writes before its deletes */
    if (pod && !kobj_is_deleting(pod) && pod_terminal(pod))
        rc = partfan_add_delete(plan, pod, "finished");
    *state = PARTTILES_READY;
done:
    json_decref(grid);
    json_decref(params);
    return rc;
}

/* status.output from the assemble pod's result. */
static int record_output(json_t *st, const json_t *pod)
{
    json_t *o = pod_output(pod);
    if (!o)
        return cerr_set(CERR_INVALID, "assemble pod %s: no output in its result", kobj_name(pod));
    json_t *out = json_object();
    static const char *const keys[] = {"uri",      "checksum", "sizeBytes", "mediaType",
                                       "stacItem", "manifest", NULL};
    for (int k = 0; out && keys[k]; k++) {
        const json_t *v = json_object_get(o, keys[k]);
        if (v && json_object_set(out, keys[k], (json_t *)v)) {
            json_decref(out);
            out = NULL;
        }
    }
    json_decref(o);
    if (!out || json_object_set_new(st, "output", out)) return cerr_oom();
    const char *node = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
    if (node && status_set_str(st, "node", node)) return cerr_oom();
    return 0;
}

/* Deletes the finished tile pods (the assembly holds what they held). */
static int collect_tiles(const parttiles_ctx *c, partfan_plan *plan)
{
    for (size_t i = 0; i < c->in->n_pods; i++) {
        const json_t *pod = c->in->pods[i];
        if (parttiles_role(pod) || kobj_is_deleting(pod) || !pod_terminal(pod)) continue;
        int rc = partfan_add_delete(plan, pod, "assembled");
        if (rc) return rc;
    }
    return 0;
}

int parttiles_assemble(const parttiles_ctx *c, const char *dv, const char *assembled,
                       const json_t *grid, uint64_t total, json_t *st, partfan_plan *plan,
                       prange *rerun, parttiles_state *state, char *msg, size_t size)
{
    const json_t *pod = NULL;
    json_t *params = NULL, *inputs = NULL;
    int rc = 0;
    *state = PARTTILES_WAIT;
    if ((rc = newest_stage(c, PARTTILES_ROLE_ASSEMBLE, dv, plan, &pod))) return rc;
    if (assembled && !strcmp(assembled, dv)) {
        if (pod && !kobj_is_deleting(pod) && pod_terminal(pod) &&
            (rc = partfan_add_delete(plan, pod, "finished")))
            return rc;
        const char *uri = json_string_value(json_object_get(json_object_get(st, "output"), "uri"));
        snprintf(msg, size, "%llu tiles assembled into %s", (unsigned long long)total,
                 uri ? uri : "?");
        *state = PARTTILES_READY;
        return collect_tiles(c, plan);
    }
    if (pod && !pod_terminal(pod)) {
        snprintf(msg, size, "assembling %llu tiles: pod %s", (unsigned long long)total,
                 kobj_name(pod));
        return 0;
    }
    if (pod && !strcmp(pod_phase(pod), "Succeeded")) {
        if ((rc = record_output(st, pod))) {
            if (rc == CERR_NOMEM) return rc;
            snprintf(msg, size, "%s", cerr_message());
            cerr_clear();
            *state = PARTTILES_FAILED;
            return 0;
        }
        *state = PARTTILES_READY;
        snprintf(msg, size, "%llu tiles assembled", (unsigned long long)total);
        /* the status written first records the assembly */
        if ((rc = partfan_add_delete(plan, pod, "finished"))) return rc;
        return collect_tiles(c, plan);
    }
    if (!(params = parttiles_assemble_params(c->s->params, grid))) return cerr_oom();
    rc = parttiles_assemble_inputs(c->in->pods, c->in->n_pods, dv, total, &inputs, rerun);
    if (rc == CERR_INVALID) {
        snprintf(msg, size, "%s", cerr_message());
        cerr_clear();
        *state = PARTTILES_FAILED;
        rc = 0;
        goto done;
    }
    if (rc) goto done;
    if (!inputs) {
        snprintf(msg, size, "%llu tiles lost their pods before the assembly; running them again",
                 (unsigned long long)prange_count(rerun));
        goto done;
    }
    if (pod) {
        rc = stage_failed(c, pod, PARTTILES_ROLE_ASSEMBLE, params, inputs, dv, plan, state, msg,
                          size);
        goto done;
    }
    json_t *np = NULL;
    if (!(rc = parttiles_stage_pod(c, PARTTILES_ROLE_ASSEMBLE, params, inputs, dv, 1, &np)))
        rc = partfan_add_create(plan, np);
    snprintf(msg, size, "assembling %llu tiles", (unsigned long long)total);
done:
    json_decref(params);
    json_decref(inputs);
    return rc;
}
