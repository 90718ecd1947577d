/*
 * opdoc.c - the operations and their params, for people (see opdoc.h).
 */
#include "opdoc.h"

#include "err.h"
#include "mem.h"
#include "op.h"

#include <cjson/cJSON.h>
#include <string.h>

static const char task_schema_json[] =
#include "task_schema.inc"
    ;

/* One line each; an operation without one shows its params' description. */
static const struct {
    const char *op, *summary;
} summaries[] = {
    {"cog", "convert a raster to a Cloud Optimized GeoTIFF"},
    {"warp", "reproject, resample, clip to a cutline (gdalwarp)"},
    {"mosaic", "combine rasters into one (an in-memory VRT)"},
    {"terrain", "hillshade, slope, aspect, TRI, TPI, roughness (gdaldem)"},
    {"calc", "band math over named inputs (+ - * / ^, comparisons, where, min, max, ...)"},
    {"zonal-stats", "count, min, max, mean, sum, stddev of a raster per polygon (GeoJSON, CSV)"},
    {"observe", "list or HEAD a source (terrane-worker observe): its data version and listing"},
    {"fill", "fill depressions of a DEM (priority-flood, optional epsilon gradient)"},
    {"flow-direction", "flow directions, D8 (esri or grass codes) or D-infinity, flats resolved"},
    {"flow-accumulation", "upstream cells or area from flow directions, optional weight raster"},
    {"streams", "stream network from an accumulation threshold (Strahler raster, GeoJSON lines)"},
    {"watershed", "catchments draining to snapped pour points (raster and polygons)"},
    {"basins", "every drainage basin labelled (raster and polygons)"},
    {"twi", "topographic wetness index ln(a / tan b)"},
    {"hand", "height above nearest drainage"},
    {"container", "the user's own image between the fetch and publish steps (spec.container)"},
    {"grid", "the tile grid of a raster from its header (partitions): answered, not published"},
    {"assemble", "tiles into one COG (partitions), with a STAC Collection of the tiles"},
    {"collection", "a STAC Collection over the Items of an asset's partitions"},
};

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Follows "#/$defs/NAME" references. */
static const cJSON *resolve(const cJSON *root, const cJSON *s)
{
    for (int depth = 0; depth < 8 && cJSON_IsObject(s); depth++) {
        const cJSON *ref = get(s, "$ref");
        if (!cJSON_IsString(ref) || strncmp(ref->valuestring, "#/$defs/", 8)) break;
        s = get(get(root, "$defs"), ref->valuestring + 8);
    }
    return s;
}

/* The params schema of operation op: from the allOf block whose `if` is
 * {properties: {operation: {const: op}}}. */
static const cJSON *params_schema(const cJSON *root, const char *op)
{
    const cJSON *block;
    cJSON_ArrayForEach(block, get(root, "allOf"))
    {
        const cJSON *c = get(get(get(get(block, "if"), "properties"), "operation"), "const");
        if (cJSON_IsString(c) && !strcmp(c->valuestring, op))
            return resolve(root, get(get(get(block, "then"), "properties"), "params"));
    }
    return NULL;
}

static bool required(const cJSON *params, const char *name)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, get(params, "required")) if (cJSON_IsString(r) &&
                                                       !strcmp(r->valuestring, name)) return true;
    return false;
}

/* "one of a, b, c", "integer 1..22", "string", "number or \"none\"". */
static void describe_type(const cJSON *root, const cJSON *s, char *buf, size_t size)
{
    s = resolve(root, s);
    const cJSON *e = get(s, "enum"), *t = get(s, "type"), *any = get(s, "anyOf"), *x;
    size_t o = 0;
    buf[0] = '\0';
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int n_ = snprintf(buf + o, size - o, __VA_ARGS__);                                         \
        if (n_ < 0 || (size_t)n_ >= size - o) return;                                              \
        o += (size_t)n_;                                                                           \
    } while (0)
    if (cJSON_IsArray(e)) {
        PUT("one of ");
        cJSON_ArrayForEach(x, e)
        {
            if (cJSON_IsString(x))
                PUT("%s%s", x == e->child ? "" : ", ", x->valuestring);
            else
                PUT("%s%g", x == e->child ? "" : ", ", x->valuedouble);
        }
        return;
    }
    if (cJSON_IsArray(any)) {
        cJSON_ArrayForEach(x, any)
        {
            char part[128];
            const cJSON *c = get(resolve(root, x), "const");
            if (cJSON_IsString(c))
                snprintf(part, sizeof part, "\"%s\"", c->valuestring);
            else
                describe_type(root, x, part, sizeof part);
            PUT("%s%s", x == any->child ? "" : " or ", part);
        }
        return;
    }
    if (cJSON_IsString(t) && !strcmp(t->valuestring, "array")) {
        char items[200];
        describe_type(root, get(s, "items"), items, sizeof items);
        PUT("list of %s", items);
        return;
    }
    PUT("%s", cJSON_IsString(t) ? t->valuestring : "value");
    const cJSON *mn = get(s, "minimum"), *mx = get(s, "maximum"), *xmn = get(s, "exclusiveMinimum");
    if (cJSON_IsNumber(mn) && cJSON_IsNumber(mx))
        PUT(" %g..%g", mn->valuedouble, mx->valuedouble);
    else if (cJSON_IsNumber(xmn))
        PUT(" > %g", xmn->valuedouble);
    else if (cJSON_IsNumber(mn))
        PUT(" >= %g", mn->valuedouble);
#undef PUT
}

void opdoc_list(FILE *f)
{
    const op_def *const *ops = op_all();
    cJSON *root = cJSON_Parse(task_schema_json);
    for (size_t i = 0; ops[i]; i++) {
        const char *summary = NULL;
        for (size_t j = 0; j < sizeof summaries / sizeof summaries[0]; j++)
            if (!strcmp(summaries[j].op, ops[i]->name)) summary = summaries[j].summary;
        if (!summary) {
            const cJSON *d = get(params_schema(root, ops[i]->name), "description");
            summary = cJSON_IsString(d) ? d->valuestring : "";
        }
        fprintf(f, "  %-12s %s\n", ops[i]->name, summary);
    }
    cJSON_Delete(root);
}

int opdoc_params(FILE *f, const char *only)
{
    cJSON *root = cJSON_Parse(task_schema_json);
    const op_def *const *ops = op_all();
    int rc = -1, shown = 0;
    if (!root) {
        err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL,
                "the compiled-in task schema does not parse");
        goto cleanup;
    }
    for (size_t i = 0; ops[i]; i++) {
        if (only && strcmp(only, ops[i]->name)) continue;
        const cJSON *ps = params_schema(root, ops[i]->name), *p;
        const cJSON *d = get(ps, "description");
        fprintf(f, "%s%s\n", shown++ ? "\n" : "", ops[i]->name);
        if (cJSON_IsString(d)) fprintf(f, "  %s\n", d->valuestring);
        cJSON_ArrayForEach(p, get(ps, "properties"))
        {
            char type[512];
            describe_type(root, p, type, sizeof type);
            const cJSON *pd = get(p, "description");
            if (!cJSON_IsString(pd)) pd = get(resolve(root, p), "description");
            fprintf(f, "  %-19s %s%s\n  %-19s %s\n", p->string, type,
                    required(ps, p->string) ? " (required)" : "", "",
                    cJSON_IsString(pd) ? pd->valuestring : "");
        }
    }
    if (only && !shown) {
        err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "operation", "\"%.64s\" is not an operation",
                only);
        goto cleanup;
    }
    fprintf(f, "\nThe contract: proto/schema/task.v1.json (proto/README.md); in a cluster, "
               "`kubectl explain am.spec.params`.\n");
    rc = 0;
cleanup:
    cJSON_Delete(root);
    return rc;
}
