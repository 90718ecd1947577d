/*
 * partition.c - partition enumeration, derived data versions, pod names
 * and URI templates (see partition.h).
 */
#include "partition.h"

#include "cron.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    part_kind kind;
    char name[33];
    /* time */
    part_cadence cadence;
    int tz;          /* fixed offset, seconds east, when zone is NULL */
    cron_zone *zone; /* an IANA zone (cron.h's TZif reader), or NULL */
    time_t start_local, end_local;
    bool has_end; /* false: open-ended */
    /* static */
    char **keys;
    size_t n_keys;
    /* tiles */
    long tile_size[2];
    int halo;
    bool has_grid;
    part_grid grid;
} dim;

struct part_plan {
    dim d[PART_DIMS_MAX];
    size_t n;
};

/* --- civil time (proleptic Gregorian, days since 1970-01-01) ------------- */

static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static void civil_from_days(long long z, int *y, int *m, int *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long yy = (long long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

static long long floordiv(long long a, long long b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

int part_parse_tz(const char *s, int *out)
{
    if (!s || !strcmp(s, "UTC") || !strcmp(s, "Z")) {
        *out = 0;
        return 0;
    }
    if (strlen(s) != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':')
        return cerr_set(CERR_INVALID, "\"%.16s\" is not UTC or an offset +HH:MM", s);
    for (int i = 1; i < 6; i++)
        if (i != 3 && (s[i] < '0' || s[i] > '9'))
            return cerr_set(CERR_INVALID, "\"%.16s\" is not UTC or an offset +HH:MM", s);
    int h = (s[1] - '0') * 10 + (s[2] - '0'), m = (s[4] - '0') * 10 + (s[5] - '0');
    if (h > 14 || m > 59 || (h == 14 && m))
        return cerr_set(CERR_INVALID, "offset \"%s\" is outside -14:00..+14:00", s);
    *out = (s[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return 0;
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Local wall-clock seconds (as if UTC) of YYYY-MM-DD[THH[:MM[:SS]]]. */
static int parse_wall(const char *s, time_t *out)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    size_t n = s ? strlen(s) : 0;
    if (n < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d))
        goto bad;
    if (n > 10) {
        if (s[10] != 'T' || n < 13 || !digits(s + 11, 2, &h)) goto bad;
        if (n > 13) {
            if (s[13] != ':' || n < 16 || !digits(s + 14, 2, &mi)) goto bad;
            if (n > 16 && (s[16] != ':' || n != 19 || !digits(s + 17, 2, &se))) goto bad;
            if (n != 16 && n != 19) goto bad;
        } else if (n != 13) {
            goto bad;
        }
    }
    if (y < 1900 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || se > 59)
        goto bad;
    *out =
        (time_t)(days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se);
    return 0;
bad:
    return cerr_set(CERR_INVALID,
                    "\"%.32s\" is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM:SS)",
                    s ? s : "");
}

int part_parse_local(const char *s, int tz, time_t *out)
{
    time_t wall;
    int rc = parse_wall(s, &wall);
    if (rc) return rc;
    *out = wall - tz;
    return 0;
}

/* --- time dimension -------------------------------------------------------- */

static long long cadence_seconds(part_cadence c)
{
    return c == PART_HOURLY ? 3600 : c == PART_DAILY ? 86400 : c == PART_WEEKLY ? 7 * 86400 : 0;
}

/* Local start of window i (monthly: the start's day and time, i months on). */
static time_t window_start(const dim *t, uint64_t i)
{
    long long len = cadence_seconds(t->cadence);
    if (len) return t->start_local + (time_t)((long long)i * len);
    long long days = floordiv(t->start_local, 86400), tod = t->start_local - days * 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    long long mm = (long long)(m - 1) + (long long)i;
    long long ny = y + mm / 12;
    int nm = (int)(mm % 12) + 1;
    return (time_t)(days_from_civil(ny, (unsigned)nm, (unsigned)d) * 86400 + tod);
}

/* Offset of the dimension's local time from UTC at t. */
static long zone_offset(const dim *t, time_t utc)
{
    return t->zone ? cron_zone_offset(t->zone, utc) : t->tz;
}

/* The UTC instant of local wall-clock time wall. Offsets change at most
 * once within a day, so the offsets a day before and after are the two
 * candidates: a time repeated by a DST change is its first occurrence, a
 * time skipped by one is the instant of the change (the first instant at
 * or after it in local time), so a daily window that starts in a gap
 * starts when the day does. */
static time_t wall_to_utc(const dim *t, time_t wall)
{
    if (!t->zone) return wall - t->tz;
    long ob = zone_offset(t, wall - 86400), oa = zone_offset(t, wall + 86400);
    time_t c1 = wall - ob, c2 = wall - oa;
    bool v1 = zone_offset(t, c1) == ob, v2 = zone_offset(t, c2) == oa;
    if (v1 && v2) return c1 < c2 ? c1 : c2;
    if (v1) return c1;
    if (v2) return c2;
    /* a gap: the change lies in (c2, c1]; find it */
    time_t lo = c2 < c1 ? c2 : c1, hi = c2 < c1 ? c1 : c2;
    while (hi - lo > 1) {
        time_t mid = lo + (hi - lo) / 2;
        if (zone_offset(t, mid) == zone_offset(t, lo))
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

static uint64_t time_count(const dim *t, time_t now)
{
    time_t limit = now + zone_offset(t, now);
    if (t->has_end && t->end_local < limit) limit = t->end_local;
    if (limit <= t->start_local) return 0;
    long long len = cadence_seconds(t->cadence);
    uint64_t n;
    if (len) {
        n = (uint64_t)((limit - t->start_local) / len);
    } else {
        n = (uint64_t)((limit - t->start_local) / (31LL * 86400));
        while (window_start(t, n + 1) <= limit)
            n++;
    }
    return n;
}

static void time_key(const dim *t, uint64_t i, char *out, size_t size)
{
    time_t s = window_start(t, i);
    long long days = floordiv(s, 86400);
    int y, m, d, h = (int)((s - days * 86400) / 3600);
    civil_from_days(days, &y, &m, &d);
    if (t->cadence == PART_HOURLY)
        snprintf(out, size, "%04d-%02d-%02dT%02d", y, m, d, h);
    else if (t->cadence == PART_MONTHLY)
        snprintf(out, size, "%04d-%02d", y, m);
    else
        snprintf(out, size, "%04d-%02d-%02d", y, m, d);
}

static int time_index_of(const dim *t, const char *key, uint64_t count, uint64_t *out)
{
    char buf[32];
    time_t wall;
    size_t n = strlen(key);
    if (n >= sizeof buf) return CERR_NOTFOUND;
    if (t->cadence == PART_MONTHLY) {
        if (n != 7) return CERR_NOTFOUND;
        snprintf(buf, sizeof buf, "%s-01", key);
    } else {
        snprintf(buf, sizeof buf, "%s", key);
    }
    if (parse_wall(buf, &wall)) {
        cerr_clear();
        return CERR_NOTFOUND;
    }
    long long len = cadence_seconds(t->cadence);
    uint64_t i;
    if (len) {
        /* a key is its window's start truncated to the day (the hour):
         * window i is the first to start at or after the key's wall time */
        long long k = floordiv((long long)(wall - t->start_local) + len - 1, len);
        if (k < 0) return CERR_NOTFOUND;
        i = (uint64_t)k;
    } else {
        int y, m, d, sy, sm, sd;
        civil_from_days(floordiv(wall, 86400), &y, &m, &d);
        civil_from_days(floordiv(t->start_local, 86400), &sy, &sm, &sd);
        long long k = (long long)(y - sy) * 12 + (m - sm);
        if (k < 0) return CERR_NOTFOUND;
        i = (uint64_t)k;
    }
    if (i >= count) return CERR_NOTFOUND;
    char want[32];
    time_key(t, i, want, sizeof want);
    if (strcmp(want, key)) return CERR_NOTFOUND;
    *out = i;
    return 0;
}

/* --- decoding -------------------------------------------------------------- */

static const json_t *opt(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return v && !json_is_null(v) ? v : NULL;
}

static bool static_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (!n || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

static int decode_time(const json_t *t, dim *d, const char *path, jschema_error *err)
{
    static const char *const cad[] = {"hourly", "daily", "weekly", "monthly"};
    char p[160];
    const json_t *c = opt(t, "cadence"), *tz = opt(t, "timezone"), *st = opt(t, "start"),
                 *en = opt(t, "end");
    d->kind = PART_TIME;
    snprintf(p, sizeof p, "%s.cadence", path);
    int which = -1;
    for (int i = 0; c && json_is_string(c) && i < 4; i++)
        if (!strcmp(json_string_value(c), cad[i])) which = i;
    if (which < 0)
        return jschema_fail(err, p, "spec", "must be one of: hourly, daily, weekly, monthly");
    d->cadence = (part_cadence)which;
    snprintf(p, sizeof p, "%s.timezone", path);
    const char *tzs = tz && json_is_string(tz) ? json_string_value(tz) : NULL;
    if (tz && !tzs) return jschema_fail(err, p, "spec", "must be a string");
    if (tzs && (tzs[0] == '+' || tzs[0] == '-' || !strcmp(tzs, "Z"))) {
        if (part_parse_tz(tzs, &d->tz)) {
            cerr_clear();
            return jschema_fail(err, p, "spec", "must be an offset +HH:MM within 14 hours");
        }
    } else if (tzs && strcmp(tzs, "UTC")) {
        int rc = cron_zone_load(NULL, tzs, &d->zone);
        if (rc == CERR_NOMEM) return rc;
        if (rc) {
            cerr_clear();
            return jschema_fail(err, p, "spec",
                                "\"%.64s\" is not UTC, an offset +HH:MM or an IANA time zone", tzs);
        }
    }
    snprintf(p, sizeof p, "%s.start", path);
    if (!st || !json_is_string(st) || parse_wall(json_string_value(st), &d->start_local)) {
        cerr_clear();
        return jschema_fail(err, p, "spec",
                            "must be a date YYYY-MM-DD or date-time YYYY-MM-DDTHH:MM:SS");
    }
    if (d->cadence == PART_MONTHLY) {
        int y, m, dd;
        civil_from_days(floordiv(d->start_local, 86400), &y, &m, &dd);
        if (dd > 28) return jschema_fail(err, p, "spec", "a monthly start must be on day 1 to 28");
    }
    d->has_end = false;
    if (en) {
        snprintf(p, sizeof p, "%s.end", path);
        if (!json_is_string(en) || parse_wall(json_string_value(en), &d->end_local)) {
            cerr_clear();
            return jschema_fail(err, p, "spec",
                                "must be a date YYYY-MM-DD or date-time YYYY-MM-DDTHH:MM:SS");
        }
        if (d->end_local <= d->start_local)
            return jschema_fail(err, p, "spec", "must be after start");
        d->has_end = true;
    }
    return 0;
}

static int decode_static(const json_t *s, dim *d, const char *path, jschema_error *err)
{
    char p[160];
    const json_t *keys = opt(s, "keys");
    d->kind = PART_STATIC;
    snprintf(p, sizeof p, "%s.keys", path);
    if (!json_is_array(keys) || !json_array_size(keys))
        return jschema_fail(err, p, "spec", "must be a non-empty array of keys");
    if (json_array_size(keys) > 10000) return jschema_fail(err, p, "spec", "at most 10000 keys");
    d->keys = cmem_calloc(json_array_size(keys), sizeof *d->keys);
    if (!d->keys) return cerr_oom();
    for (size_t i = 0; i < json_array_size(keys); i++) {
        const json_t *k = json_array_get(keys, i);
        snprintf(p, sizeof p, "%s.keys[%zu]", path, i);
        if (!json_is_string(k) || !static_key_ok(json_string_value(k)))
            return jschema_fail(err, p, "spec", "must be 1 to 63 of A-Z a-z 0-9 . _ : -");
        for (size_t j = 0; j < d->n_keys; j++)
            if (!strcmp(d->keys[j], json_string_value(k)))
                return jschema_fail(err, p, "spec", "duplicate key \"%s\"", d->keys[j]);
        if (!(d->keys[d->n_keys] = cmem_malloc(json_string_length(k) + 1))) return cerr_oom();
        memcpy(d->keys[d->n_keys++], json_string_value(k), json_string_length(k) + 1);
    }
    return 0;
}

static int decode_tiles(const json_t *t, dim *d, const char *path, jschema_error *err)
{
    char p[160];
    const json_t *ts = opt(t, "tileSize"), *halo = opt(t, "halo");
    d->kind = PART_TILES;
    snprintf(p, sizeof p, "%s.tileSize", path);
    if (!json_is_array(ts) || json_array_size(ts) != 2)
        return jschema_fail(err, p, "spec", "must be [width, height]");
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_array_get(ts, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < 256 || json_integer_value(v) > 65536)
            return jschema_fail(err, p, "spec", "each size must be an integer from 256 to 65536");
        d->tile_size[i] = (long)json_integer_value(v);
    }
    if (halo) {
        snprintf(p, sizeof p, "%s.halo", path);
        if (!json_is_integer(halo) || json_integer_value(halo) < 0 ||
            json_integer_value(halo) > 256)
            return jschema_fail(err, p, "spec", "must be an integer from 0 to 256");
        d->halo = (int)json_integer_value(halo);
    }
    if (!opt(t, "origin") != !opt(t, "cellSize")) {
        snprintf(p, sizeof p, "%s", path);
        return jschema_fail(err, p, "spec", "origin and cellSize go together");
    }
    return 0;
}

int part_plan_decode(const json_t *parts, part_plan **out, jschema_error *err)
{
    part_plan *p = NULL;
    int rc = 0;
    char path[64];
    *out = NULL;
    if (!parts || json_is_null(parts)) return 0;
    if (!json_is_array(parts) || !json_array_size(parts))
        return jschema_fail(err, "spec.partitions", "spec",
                            "must be a non-empty array of dimensions");
    if (json_array_size(parts) > PART_DIMS_MAX)
        return jschema_fail(err, "spec.partitions", "spec", "at most %d dimensions", PART_DIMS_MAX);
    if (!(p = cmem_calloc(1, sizeof *p))) return cerr_oom();
    uint64_t static_total = 1;
    for (size_t i = 0; i < json_array_size(parts); i++) {
        const json_t *o = json_array_get(parts, i);
        dim *d = &p->d[p->n++];
        snprintf(path, sizeof path, "spec.partitions[%zu]", i);
        if (!json_is_object(o)) {
            rc = jschema_fail(err, path, "spec", "must be an object");
            goto fail;
        }
        const json_t *name = opt(o, "name");
        if (!json_is_string(name) || !json_string_length(name) || json_string_length(name) > 32) {
            char np[80];
            snprintf(np, sizeof np, "%s.name", path);
            rc = jschema_fail(err, np, "spec", "is required (1 to 32 characters)");
            goto fail;
        }
        snprintf(d->name, sizeof d->name, "%s", json_string_value(name));
        for (size_t j = 0; j + 1 < p->n; j++)
            if (!strcmp(p->d[j].name, d->name)) {
                rc = jschema_fail(err, path, "spec", "duplicate dimension name \"%s\"", d->name);
                goto fail;
            }
        const json_t *ti = opt(o, "tiles"), *tm = opt(o, "time"), *st = opt(o, "static");
        if ((ti != NULL) + (tm != NULL) + (st != NULL) != 1) {
            rc = jschema_fail(err, path, "spec", "needs exactly one of tiles, time and static");
            goto fail;
        }
        char sub[80];
        snprintf(sub, sizeof sub, "%s.%s", path, ti ? "tiles" : tm ? "time" : "static");
        if (ti && (rc = decode_tiles(ti, d, sub, err))) goto fail;
        if (tm && (rc = decode_time(tm, d, sub, err))) goto fail;
        if (st && (rc = decode_static(st, d, sub, err))) goto fail;
        if (ti)
            for (size_t j = 0; j + 1 < p->n; j++)
                if (p->d[j].kind == PART_TILES) {
                    rc = jschema_fail(err, path, "spec", "at most one tiles dimension");
                    goto fail;
                }
        if (tm && !d->has_end && i > 0) {
            rc = jschema_fail(
                err, path, "spec",
                "an open-ended time dimension (no end) must be the first dimension, so "
                "that new windows append partitions instead of renumbering them");
            goto fail;
        }
        if (st) static_total *= d->n_keys;
        if (static_total > PART_COUNT_MAX) {
            rc = jschema_fail(err, "spec.partitions", "spec", "more than %llu partitions",
                              (unsigned long long)PART_COUNT_MAX);
            goto fail;
        }
    }
    *out = p;
    return 0;
fail:
    part_plan_free(p);
    return rc;
}

void part_plan_free(part_plan *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) {
        for (size_t k = 0; k < p->d[i].n_keys; k++)
            cmem_free(p->d[i].keys[k]);
        cmem_free(p->d[i].keys);
        cron_zone_free(p->d[i].zone);
    }
    cmem_free(p);
}

size_t part_plan_dims(const part_plan *p)
{
    return p ? p->n : 0;
}

part_kind part_plan_dim_kind(const part_plan *p, size_t d)
{
    return p->d[d].kind;
}

static const dim *tiles_dim(const part_plan *p)
{
    for (size_t i = 0; p && i < p->n; i++)
        if (p->d[i].kind == PART_TILES) return &p->d[i];
    return NULL;
}

bool part_plan_has_tiles(const part_plan *p)
{
    return tiles_dim(p) != NULL;
}

bool part_plan_has_grid(const part_plan *p)
{
    const dim *t = tiles_dim(p);
    return t && t->has_grid;
}

int part_plan_set_grid(part_plan *p, const part_grid *g)
{
    dim *t = (dim *)tiles_dim(p);
    if (!t) return cerr_set(CERR_INVALID, "the asset has no tiles dimension");
    if (g->width <= 0 || g->height <= 0 || g->tile_width <= 0 || g->tile_height <= 0 ||
        g->cols <= 0 || g->rows <= 0 || g->halo < 0)
        return cerr_set(CERR_INVALID, "grid: sizes must be positive");
    /* GDAL's raster sizes are int: larger ones come from a corrupt result,
     * and would overflow the products below */
    if (g->width > INT32_MAX || g->height > INT32_MAX || g->tile_width > INT32_MAX ||
        g->tile_height > INT32_MAX || g->cols > INT32_MAX || g->rows > INT32_MAX ||
        g->halo > INT32_MAX / 2)
        return cerr_set(CERR_INVALID, "grid: a size over %d", INT32_MAX);
    if ((g->cols - 1) * g->tile_width >= g->width || g->cols * g->tile_width < g->width ||
        (g->rows - 1) * g->tile_height >= g->height || g->rows * g->tile_height < g->height)
        return cerr_set(CERR_INVALID, "grid: %ldx%ld tiles of %ldx%ld do not cover %ldx%ld exactly",
                        g->cols, g->rows, g->tile_width, g->tile_height, g->width, g->height);
    if ((uint64_t)g->cols * (uint64_t)g->rows > PART_COUNT_MAX)
        return cerr_set(CERR_INVALID, "grid: %ld tiles, at most %llu", g->cols * g->rows,
                        (unsigned long long)PART_COUNT_MAX);
    t->grid = *g;
    t->has_grid = true;
    return 0;
}

static uint64_t dim_count(const dim *d, time_t now)
{
    switch (d->kind) {
    case PART_TILES:
        return d->has_grid ? (uint64_t)d->grid.cols * (uint64_t)d->grid.rows : 0;
    case PART_TIME:
        return time_count(d, now);
    case PART_STATIC:
        return d->n_keys;
    }
    return 0;
}

uint64_t part_plan_count(const part_plan *p, time_t now)
{
    if (!p || !p->n) return 0;
    uint64_t n = 1;
    for (size_t i = 0; i < p->n; i++) {
        uint64_t c = dim_count(&p->d[i], now);
        if (!c) return 0;
        if (n > PART_COUNT_MAX / c)
            return PART_COUNT_MAX; /* capped; decode bounds the static part */
        n *= c;
    }
    return n;
}

int part_plan_at(const part_plan *p, uint64_t index, time_t now, part_info *out)
{
    uint64_t counts[PART_DIMS_MAX], digit[PART_DIMS_MAX];
    memset(out, 0, sizeof *out);
    uint64_t total = part_plan_count(p, now);
    if (index >= total)
        return cerr_set(CERR_INVALID, "partition %llu does not exist (%llu partitions)",
                        (unsigned long long)index, (unsigned long long)total);
    for (size_t i = 0; i < p->n; i++) {
        counts[i] = dim_count(&p->d[i], now);
        if (!counts[i]) /* part_plan_count was 0 then: not reached */
            return cerr_set(CERR_INVALID, "partition %llu does not exist (dimension %zu is empty)",
                            (unsigned long long)index, i);
    }
    uint64_t rem = index;
    for (size_t i = p->n; i-- > 0;) {
        digit[i] = rem % counts[i];
        rem /= counts[i];
    }
    out->index = index;
    size_t used = 0;
    for (size_t i = 0; i < p->n; i++) {
        const dim *d = &p->d[i];
        char *k = out->dim_key[i];
        if (d->kind == PART_TILES) {
            long col = (long)(digit[i] % (uint64_t)d->grid.cols),
                 row = (long)(digit[i] / (uint64_t)d->grid.cols);
            snprintf(k, PART_KEY_MAX + 1, "r%03ldc%03ld", row, col);
            part_tile *t = &out->tile;
            out->has_tile = true;
            t->col = col;
            t->row = row;
            t->xoff = col * d->grid.tile_width;
            t->yoff = row * d->grid.tile_height;
            t->xsize = d->grid.width - t->xoff < d->grid.tile_width ? d->grid.width - t->xoff
                                                                    : d->grid.tile_width;
            t->ysize = d->grid.height - t->yoff < d->grid.tile_height ? d->grid.height - t->yoff
                                                                      : d->grid.tile_height;
            t->halo = d->grid.halo;
            t->width = d->grid.width;
            t->height = d->grid.height;
        } else if (d->kind == PART_TIME) {
            time_key(d, digit[i], k, PART_KEY_MAX + 1);
            out->has_window = true;
            out->win_start = wall_to_utc(d, window_start(d, digit[i]));
            out->win_end = wall_to_utc(d, window_start(d, digit[i] + 1));
            out->tz_offset = (int)zone_offset(d, out->win_start);
        } else {
            snprintf(k, PART_KEY_MAX + 1, "%s", d->keys[digit[i]]);
        }
        size_t kl = strlen(k);
        if (used + kl + (i ? 1 : 0) > PART_KEY_MAX)
            return cerr_set(CERR_INVALID, "partition key longer than %d", PART_KEY_MAX);
        if (i) out->key[used++] = '/';
        memcpy(out->key + used, k, kl + 1);
        used += kl;
    }
    return 0;
}

int part_plan_index_of(const part_plan *p, const char *key, time_t now, uint64_t *index)
{
    uint64_t idx = 0;
    const char *s = key;
    if (!p || !p->n) return CERR_NOTFOUND;
    for (size_t i = 0; i < p->n; i++) {
        const dim *d = &p->d[i];
        const char *slash = i + 1 < p->n ? strchr(s, '/') : s + strlen(s);
        if (!slash || (i + 1 == p->n && strchr(s, '/'))) return CERR_NOTFOUND;
        char part[PART_KEY_MAX + 1];
        size_t n = (size_t)(slash - s);
        if (n > PART_KEY_MAX) return CERR_NOTFOUND;
        memcpy(part, s, n);
        part[n] = '\0';
        uint64_t c = dim_count(d, now), digit = 0;
        if (!c) return CERR_NOTFOUND;
        if (d->kind == PART_TILES) {
            char *e;
            if (part[0] != 'r') return CERR_NOTFOUND;
            long row = strtol(part + 1, &e, 10);
            if (e == part + 1 || *e != 'c') return CERR_NOTFOUND;
            char *e2;
            long col = strtol(e + 1, &e2, 10);
            if (e2 == e + 1 || *e2 || row < 0 || col < 0 || row >= d->grid.rows ||
                col >= d->grid.cols)
                return CERR_NOTFOUND;
            char want[48];
            snprintf(want, sizeof want, "r%03ldc%03ld", row, col);
            if (strcmp(want, part)) return CERR_NOTFOUND;
            digit = (uint64_t)row * (uint64_t)d->grid.cols + (uint64_t)col;
        } else if (d->kind == PART_TIME) {
            if (time_index_of(d, part, c, &digit)) return CERR_NOTFOUND;
        } else {
            size_t k = 0;
            while (k < d->n_keys && strcmp(d->keys[k], part))
                k++;
            if (k == d->n_keys) return CERR_NOTFOUND;
            digit = k;
        }
        idx = idx * c + digit;
        s = *slash ? slash + 1 : slash;
    }
    *index = idx;
    return 0;
}

/* --- derived names ---------------------------------------------------------- */

static int sha256(const void *a, size_t alen, unsigned char md[32])
{
    unsigned int mdlen = 0;
    if (!EVP_Digest(a, alen, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return cerr_set(CERR_ERROR, "SHA-256 failed");
    return 0;
}

static void hex(const unsigned char *md, size_t n, char *out)
{
    static const char h[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = h[md[i] >> 4];
        out[2 * i + 1] = h[md[i] & 15];
    }
    out[2 * n] = '\0';
}

int part_data_version(const char *asset_dv, const char *key, char out[DV_LEN + 1])
{
    char buf[DV_LEN + PART_KEY_MAX + 32];
    unsigned char md[32];
    if (!dv_valid(asset_dv)) return cerr_set(CERR_INVALID, "not a data version");
    if (!key || strlen(key) > PART_KEY_MAX) return cerr_set(CERR_INVALID, "bad partition key");
    int n = snprintf(buf, sizeof buf, "terrane.partition.v1\n%s\n%s", asset_dv, key);
    if (sha256(buf, (size_t)n, md)) return CERR_ERROR;
    memcpy(out, DV_PREFIX, sizeof DV_PREFIX - 1);
    hex(md, 32, out + sizeof DV_PREFIX - 1);
    return 0;
}

int part_pod_name(const char *am_name, const char *asset_dv, const char *key, int attempt,
                  char *out, size_t size)
{
    unsigned char md[32];
    char kh[21], nh[21], prefix[64];
    if (!dv_valid(asset_dv) || !am_name || !*am_name || attempt < 1 || attempt > 999 || !key)
        return cerr_set(CERR_INVALID, "partition pod name: bad arguments");
    if (sha256(key, strlen(key), md)) return CERR_ERROR;
    hex(md, 5, kh);
    size_t n = strlen(am_name);
    /* 63 = name + "-" dv12 "-p" kh10 "-" attempt(<=3): 29 for the suffix. */
    if (n > 34 || strchr(am_name, '.')) {
        if (sha256(am_name, n, md)) return CERR_ERROR;
        hex(md, 5, nh);
        size_t k = 0;
        for (; k < n && k < 17; k++)
            prefix[k] = am_name[k] == '.' ? '-' : am_name[k];
        while (k && prefix[k - 1] == '-')
            k--;
        snprintf(prefix + k, sizeof prefix - k, "%s%s", k ? "-" : "p", nh);
    } else {
        snprintf(prefix, sizeof prefix, "%s", am_name);
    }
    const char *dvh = asset_dv + sizeof DV_PREFIX - 1;
    int w = snprintf(out, size, "%s-%.12s-p%s-%d", prefix, dvh, kh, attempt);
    if (w < 0 || (size_t)w >= size || w > 63)
        return cerr_set(CERR_TOOBIG, "partition pod name too long");
    return 0;
}

void part_label_value(const char *key, char out[64])
{
    size_t n = strlen(key);
    bool ok = n > 0 && n <= 63;
    for (size_t i = 0; ok && i < n; i++) {
        char c = key[i];
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if ((i == 0 || i == n - 1) && !alnum) ok = false;
        out[i] = c == '/' || c == ':' ? '.' : c;
    }
    if (ok) {
        out[n] = '\0';
        return;
    }
    unsigned char md[32];
    if (sha256(key, n, md)) {
        snprintf(out, 64, "h");
        return;
    }
    out[0] = 'h';
    hex(md, 8, out + 1);
}

int part_substitute(const char *uri, const part_info *pi, char *out, size_t size)
{
    size_t used = 0;
    int y = 0, m = 0, d = 0, h = 0;
    if (pi->has_window) {
        time_t local = pi->win_start + pi->tz_offset;
        long long days = floordiv(local, 86400);
        civil_from_days(days, &y, &m, &d);
        h = (int)((local - days * 86400) / 3600);
    }
    for (const char *p = uri; *p;) {
        char val[PART_KEY_MAX + 1];
        const char *v = NULL;
        if (*p == '}') return cerr_set(CERR_INVALID, "\"%.80s\": unbalanced '}'", uri);
        if (*p != '{') {
            val[0] = *p;
            val[1] = '\0';
            v = val;
            p++;
        } else {
            const char *e = strchr(p, '}');
            if (!e) return cerr_set(CERR_INVALID, "\"%.80s\": unbalanced '{'", uri);
            size_t n = (size_t)(e - p - 1);
            const char *name = p + 1;
#define IS(s) (n == sizeof(s) - 1 && !strncmp(name, s, n))
            bool timed = IS("date") || IS("year") || IS("month") || IS("day") || IS("hour");
            if (timed && !pi->has_window)
                return cerr_set(CERR_INVALID, "\"%.80s\": {%.*s} needs a time partition dimension",
                                uri, (int)n, name);
            if (IS("date"))
                snprintf(val, sizeof val, "%04d-%02d-%02d", y, m, d);
            else if (IS("year"))
                snprintf(val, sizeof val, "%04d", y);
            else if (IS("month"))
                snprintf(val, sizeof val, "%02d", m);
            else if (IS("day"))
                snprintf(val, sizeof val, "%02d", d);
            else if (IS("hour"))
                snprintf(val, sizeof val, "%02d", h);
            else if (IS("key"))
                snprintf(val, sizeof val, "%s", pi->key);
            else
                return cerr_set(
                    CERR_INVALID,
                    "\"%.80s\": unknown placeholder {%.*s} (date, year, month, day, hour, key)",
                    uri, (int)(n > 32 ? 32 : n), name);
#undef IS
            v = val;
            p = e + 1;
        }
        size_t vl = strlen(v);
        if (used + vl + 1 > size)
            return cerr_set(CERR_TOOBIG, "\"%.80s\": too long after substitution", uri);
        memcpy(out + used, v, vl);
        used += vl;
    }
    if (!size) return cerr_set(CERR_TOOBIG, "no room");
    out[used] = '\0';
    return 0;
}

static void rfc3339(time_t t, char out[32])
{
    long long days = floordiv(t, 86400), tod = t - days * 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, (int)(tod / 3600),
             (int)(tod / 60 % 60), (int)(tod % 60));
}

json_t *part_task_json(const part_info *pi)
{
    json_t *o = json_pack("{s:s, s:I}", "key", pi->key, "index", (json_int_t)pi->index);
    if (!o) return NULL;
    if (pi->has_tile) {
        const part_tile *t = &pi->tile;
        json_t *tj =
            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:I,s:I}", "col", (json_int_t)t->col, "row",
                      (json_int_t)t->row, "xoff", (json_int_t)t->xoff, "yoff", (json_int_t)t->yoff,
                      "xsize", (json_int_t)t->xsize, "ysize", (json_int_t)t->ysize, "halo", t->halo,
                      "width", (json_int_t)t->width, "height", (json_int_t)t->height);
        if (!tj || json_object_set_new(o, "tile", tj)) goto fail;
    }
    if (pi->has_window) {
        char s[32], e[32];
        rfc3339(pi->win_start, s);
        rfc3339(pi->win_end, e);
        json_t *w = json_pack("{s:s,s:s}", "start", s, "end", e);
        if (!w || json_object_set_new(o, "window", w)) goto fail;
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}
