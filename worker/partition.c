/*
 * partition.c - decoding the task's partition and the pixel windows of a
 * tile.
 *
 * The key becomes a STAC property and a label, the window a read of the
 * input, so both are checked before anything uses them: the key's alphabet
 * and segments, the window inside the full raster it names.
 */
#include "partition.h"

#include "err.h"
#include "mem.h"

#include <cpl_string.h>
#include <ctype.h>
#include <gdal_utils.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define PARTITION_INT_MAX 100000000

static int bad(const char *field, const char *what)
{
    return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: %s", field, what);
}

static int check_members(const cJSON *obj, const char *const *allowed, const char *path)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        char field[96];
        bool known = false;
        for (size_t i = 0; allowed[i]; i++)
            if (!strcmp(allowed[i], m->string)) known = true;
        snprintf(field, sizeof field, "%s.%.48s", path, m->string);
        if (!known) return bad(field, "unknown field");
        for (const cJSON *p = obj->child; p != m; p = p->next)
            if (!strcmp(p->string, m->string)) return bad(field, "given more than once");
    }
    return 0;
}

/* An integer member within [min, max]. */
static int get_int(const cJSON *obj, const char *name, const char *path, long long min,
                   long long max, long long *out)
{
    char field[96];
    snprintf(field, sizeof field, "%s.%s", path, name);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v) return bad(field, "required field is missing");
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble))
        return bad(field, "must be an integer");
    if (v->valuedouble < (double)min || v->valuedouble > (double)max)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: must be in %lld..%lld", field,
                       min, max);
    *out = (long long)v->valuedouble;
    return 0;
}

bool partition_key_valid(const char *s)
{
    size_t n = strlen(s), seg = 0;
    if (n == 0 || n > PARTITION_KEY_MAX) return false;
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '/' || c == '\0') {
            if (seg == 0) return false;
            if (seg == 1 && s[i - 1] == '.') return false;
            if (seg == 2 && s[i - 1] == '.' && s[i - 2] == '.') return false;
            seg = 0;
            continue;
        }
        if (!isalnum((unsigned char)c) && c != '_' && c != '.' && c != '-' && c != ':')
            return false;
        seg++;
    }
    return true;
}

/* "YYYY-MM-DDTHH:MM:SSZ" exactly, as the schema's pattern. */
static bool is_utc_time(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(s) != sizeof shape - 1) return false;
    for (size_t i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i]) return false;
    return true;
}

static int decode_tile(const cJSON *v, partition_tile *t)
{
    static const char *const allowed[] = {"col",   "row",  "xoff",  "yoff",   "xsize",
                                          "ysize", "halo", "width", "height", NULL};
    static const char *const path = "partition.tile";
    long long col, row, xoff, yoff, xsize, ysize, halo, width, height;
    if (!cJSON_IsObject(v)) return bad(path, "must be an object");
    if (check_members(v, allowed, path) < 0) return -1;
    if (get_int(v, "col", path, 0, 1000000, &col) < 0 ||
        get_int(v, "row", path, 0, 1000000, &row) < 0 ||
        get_int(v, "xoff", path, 0, PARTITION_INT_MAX, &xoff) < 0 ||
        get_int(v, "yoff", path, 0, PARTITION_INT_MAX, &yoff) < 0 ||
        get_int(v, "xsize", path, 1, PARTITION_INT_MAX, &xsize) < 0 ||
        get_int(v, "ysize", path, 1, PARTITION_INT_MAX, &ysize) < 0 ||
        get_int(v, "halo", path, 0, 4096, &halo) < 0 ||
        get_int(v, "width", path, 1, PARTITION_INT_MAX, &width) < 0 ||
        get_int(v, "height", path, 1, PARTITION_INT_MAX, &height) < 0)
        return -1;
    if (xoff + xsize > width || yoff + ysize > height)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, path,
                       "%s: the core [%lld+%lld, %lld+%lld] is not inside the %lldx%lld raster",
                       path, xoff, xsize, yoff, ysize, width, height);
    *t = (partition_tile){(int)col,   (int)row,  (int)xoff,  (int)yoff,  (int)xsize,
                          (int)ysize, (int)halo, (int)width, (int)height};
    return 0;
}

int partition_decode(const cJSON *v, partition *out)
{
    static const char *const allowed[] = {"key", "index", "tile", "window", NULL};
    static const char *const window_allowed[] = {"start", "end", NULL};
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(v)) return bad("partition", "must be an object");
    if (check_members(v, allowed, "partition") < 0) return -1;
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(v, "key");
    if (!key) return bad("partition.key", "required field is missing");
    if (!cJSON_IsString(key) || !partition_key_valid(key->valuestring))
        return bad("partition.key", "must be segments of [A-Za-z0-9._:-] joined by '/', none "
                                    "empty, '.' or '..', at most 128 characters");
    if (get_int(v, "index", "partition", 0, PARTITION_INT_MAX, &out->index) < 0) return -1;
    const cJSON *tile = cJSON_GetObjectItemCaseSensitive(v, "tile");
    if (tile) {
        if (decode_tile(tile, &out->tile) < 0) return -1;
        out->has_tile = true;
    }
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(v, "window");
    if (w) {
        if (!cJSON_IsObject(w)) return bad("partition.window", "must be an object");
        if (check_members(w, window_allowed, "partition.window") < 0) return -1;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(w, "start");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(w, "end");
        if (!s || !cJSON_IsString(s) || !is_utc_time(s->valuestring))
            return bad("partition.window.start", "must be a UTC time YYYY-MM-DDTHH:MM:SSZ");
        if (!e || !cJSON_IsString(e) || !is_utc_time(e->valuestring))
            return bad("partition.window.end", "must be a UTC time YYYY-MM-DDTHH:MM:SSZ");
        out->start = mem_strdup(s->valuestring);
        out->end = mem_strdup(e->valuestring);
        if (!out->start || !out->end) return err_oom();
    }
    out->key = mem_strdup(key->valuestring);
    return out->key ? 0 : err_oom();
}

int partition_check_input(const partition_tile *t, int width, int height, const char *field)
{
    if (t->width == width && t->height == height) return 0;
    return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, "partition.tile",
                   "partition.tile: the grid is %dx%d but %s is %dx%d (the input changed since "
                   "the grid was computed)",
                   t->width, t->height, field, width, height);
}

partition_window partition_core(const partition_tile *t)
{
    return (partition_window){t->xoff, t->yoff, t->xsize, t->ysize};
}

partition_window partition_read_window(const partition_tile *t, int halo)
{
    int x0 = t->xoff - halo < 0 ? 0 : t->xoff - halo;
    int y0 = t->yoff - halo < 0 ? 0 : t->yoff - halo;
    int x1 = t->xoff + t->xsize + halo > t->width ? t->width : t->xoff + t->xsize + halo;
    int y1 = t->yoff + t->ysize + halo > t->height ? t->height : t->yoff + t->ysize + halo;
    return (partition_window){x0, y0, x1 - x0, y1 - y0};
}

void partition_window_gt(const double gt[6], partition_window w, double out[6])
{
    out[0] = gt[0] + w.x * gt[1] + w.y * gt[2];
    out[1] = gt[1];
    out[2] = gt[2];
    out[3] = gt[3] + w.x * gt[4] + w.y * gt[5];
    out[4] = gt[4];
    out[5] = gt[5];
}

int partition_open_core(GDALDatasetH src, const partition_tile *t, GDALDatasetH *out)
{
    char v[4][16];
    snprintf(v[0], sizeof v[0], "%d", t->xoff);
    snprintf(v[1], sizeof v[1], "%d", t->yoff);
    snprintf(v[2], sizeof v[2], "%d", t->xsize);
    snprintf(v[3], sizeof v[3], "%d", t->ysize);
    char *argv[] = {"-of", "VRT", "-srcwin", v[0], v[1], v[2], v[3], NULL};
    GDALTranslateOptions *o = GDALTranslateOptionsNew(argv, NULL);
    *out = NULL;
    if (!o) return err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "-srcwin rejected");
    CPLErrorReset();
    *out = GDALTranslate("", src, o, NULL);
    GDALTranslateOptionsFree(o);
    if (!*out)
        return err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, "partition.tile",
                            "partition.tile: opening the tile's window failed");
    return 0;
}

void partition_free(partition *p)
{
    if (!p) return;
    mem_free(p->key);
    mem_free(p->start);
    mem_free(p->end);
    memset(p, 0, sizeof *p);
}
