/*
 * cron.c - cron expressions and TZif zones (see cron.h).
 */
#include "cron.h"

#include "lib/cerr.h"
#include "lib/cmem.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DAY_S 86400L
#define SEARCH_DAYS (8 * 366)
#define TZ_MAX_TIMES 4000 /* a fat zone file has a few hundred */
#define TZ_MAX_TYPES 256
#define TZ_FILE_MAX (256 * 1024)

struct cron_expr {
    uint64_t minute; /* bit 0..59 */
    uint32_t hour;   /* 0..23 */
    uint32_t dom;    /* 1..31 */
    uint32_t month;  /* 1..12 */
    uint32_t dow;    /* 0..6, Sunday 0 */
    bool dom_star, dow_star;
};

struct cron_zone {
    int64_t *times; /* transitions, ascending */
    long *offsets;  /* offset in force from times[i] */
    size_t n;
    long initial; /* before the first transition */
};

/* --- expressions ---------------------------------------------------------------------------- */

static const char *const MONTHS[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                     "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const DAYS[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

typedef struct {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[0] is lo */
    int n_names;
} field_def;

static const field_def FIELDS[5] = {{"minute", 0, 59, NULL, 0},
                                    {"hour", 0, 23, NULL, 0},
                                    {"day-of-month", 1, 31, NULL, 0},
                                    {"month", 1, 12, MONTHS, 12},
                                    {"day-of-week", 0, 7, DAYS, 7}};

/* A number or a name at *p; advances *p. */
static int value(const field_def *f, const char **p, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s) && v <= 1000)
            v = v * 10 + (*s++ - '0');
        if (v < f->lo || v > f->hi)
            return cerr_set(CERR_INVALID, "%s: %ld is not within %d-%d", f->name, v, f->lo, f->hi);
        *out = (int)v;
        *p = s;
        return 0;
    }
    for (int i = 0; i < f->n_names; i++)
        if (!strncasecmp(s, f->names[i], 3) && !isalpha((unsigned char)s[3])) {
            *out = f->lo + i;
            *p = s + 3;
            return 0;
        }
    return cerr_set(CERR_INVALID, "%s: expected a number%s at \"%.16s\"", f->name,
                    f->n_names ? " or a name" : "", s);
}

static int parse_field(const field_def *f, const char *s, size_t len, uint64_t *bits, bool *star)
{
    char buf[CRON_EXPR_MAX + 1];
    if (len > CRON_EXPR_MAX) return cerr_set(CERR_INVALID, "%s: too long", f->name);
    memcpy(buf, s, len);
    buf[len] = '\0';
    *bits = 0;
    *star = !strcmp(buf, "*") || !strcmp(buf, "*/1");
    const char *p = buf;
    for (;;) {
        int lo, hi, step = 1, rc;
        bool range = false;
        if (*p == '*') {
            lo = f->lo, hi = f->hi, range = true;
            if (f->lo == 0 && f->hi == 7) hi = 6; /* '*' day-of-week: Sunday once */
            p++;
        } else {
            if ((rc = value(f, &p, &lo))) return rc;
            hi = lo;
            if (*p == '-') {
                p++;
                if ((rc = value(f, &p, &hi))) return rc;
                if (hi < lo)
                    return cerr_set(CERR_INVALID, "%s: range %d-%d is backwards", f->name, lo, hi);
                range = true;
            }
        }
        if (*p == '/') {
            long v = 0;
            p++;
            if (!isdigit((unsigned char)*p))
                return cerr_set(CERR_INVALID, "%s: expected a step after '/'", f->name);
            while (isdigit((unsigned char)*p) && v <= 1000)
                v = v * 10 + (*p++ - '0');
            if (v < 1 || v > f->hi)
                return cerr_set(CERR_INVALID, "%s: step %ld is not within 1-%d", f->name, v, f->hi);
            step = (int)v;
            if (!range) hi = f->hi; /* "N/step": from N to the end */
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ULL << (f->lo == 0 && f->hi == 7 && v == 7 ? 0 : v);
        if (*p == '\0') return 0;
        if (*p != ',') return cerr_set(CERR_INVALID, "%s: unexpected \"%.16s\"", f->name, p);
        p++;
    }
}

int cron_parse(const char *text, cron_expr **out)
{
    static const struct {
        const char *name, *expr;
    } MACROS[] = {{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
                  {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
                  {"@hourly", "0 * * * *"}};
    *out = NULL;
    if (!text) return cerr_set(CERR_INVALID, "schedule: empty");
    if (strlen(text) > CRON_EXPR_MAX)
        return cerr_set(CERR_INVALID, "schedule: longer than %d bytes", CRON_EXPR_MAX);
    if (text[0] == '@') {
        const char *t = text;
        text = NULL;
        for (size_t i = 0; i < sizeof MACROS / sizeof MACROS[0] && !text; i++)
            if (!strcmp(t, MACROS[i].name)) text = MACROS[i].expr;
        if (!text) return cerr_set(CERR_INVALID, "schedule: unknown macro \"%.32s\"", t);
    }
    cron_expr *e = cmem_calloc(1, sizeof *e);
    if (!e) return cerr_oom();
    const char *p = text;
    uint64_t bits[5];
    bool star[5];
    int rc;
    for (int i = 0; i < 5; i++) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *s = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (p == s) {
            rc = cerr_set(CERR_INVALID, "schedule: expected 5 fields, got %d", i);
            goto fail;
        }
        if ((rc = parse_field(&FIELDS[i], s, (size_t)(p - s), &bits[i], &star[i]))) goto fail;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p) {
        rc = cerr_set(CERR_INVALID, "schedule: more than 5 fields");
        goto fail;
    }
    e->minute = bits[0];
    e->hour = (uint32_t)bits[1];
    e->dom = (uint32_t)bits[2];
    e->month = (uint32_t)bits[3];
    e->dow = (uint32_t)bits[4];
    e->dom_star = star[2];
    e->dow_star = star[4];
    *out = e;
    return 0;
fail:
    cmem_free(e);
    return rc;
}

void cron_free(cron_expr *e)
{
    cmem_free(e);
}

/* --- zones ----------------------------------------------------------------------------------- */

static int64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    if (n == 4) return (int32_t)(uint32_t)v;
    return (int64_t)v;
}

int cron_zone_load_bytes(const unsigned char *buf, size_t len, cron_zone **out)
{
    *out = NULL;
    const unsigned char *p = buf, *end = buf + len;
    int tsize = 4;
    for (int block = 0; block < 2; block++) {
        if ((size_t)(end - p) < 44 || memcmp(p, "TZif", 4))
            return cerr_set(CERR_INVALID, "zone: not a TZif file");
        char version = (char)p[4];
        int64_t isut = be(p + 20, 4), isstd = be(p + 24, 4), leap = be(p + 28, 4),
                times = be(p + 32, 4), types = be(p + 36, 4), chars = be(p + 40, 4);
        if (isut < 0 || isstd < 0 || leap < 0 || times < 0 || times > TZ_MAX_TIMES || types < 1 ||
            types > TZ_MAX_TYPES || chars < 0 || chars > 65536 || leap > 10000 ||
            isut > TZ_MAX_TYPES || isstd > TZ_MAX_TYPES)
            return cerr_set(CERR_INVALID, "zone: bad header counts");
        p += 44;
        size_t need = (size_t)times * (size_t)tsize + (size_t)times + (size_t)types * 6 +
                      (size_t)chars + (size_t)leap * (size_t)(tsize + 4) + (size_t)isstd +
                      (size_t)isut;
        if ((size_t)(end - p) < need) return cerr_set(CERR_INVALID, "zone: truncated");
        if (block == 0 && version >= '2') { /* skip the 32-bit block for the 64-bit one */
            p += need;
            tsize = 8;
            continue;
        }
        cron_zone *z = cmem_calloc(1, sizeof *z);
        if (!z) return cerr_oom();
        if (times && (!(z->times = cmem_calloc((size_t)times, sizeof *z->times)) ||
                      !(z->offsets = cmem_calloc((size_t)times, sizeof *z->offsets)))) {
            cron_zone_free(z);
            return cerr_oom();
        }
        const unsigned char *tt = p, *idx = p + times * tsize, *info = idx + times;
        for (int64_t i = 0; i < times; i++) {
            int64_t t = be(tt + i * tsize, tsize);
            if (idx[i] >= types || (i && t <= z->times[i - 1])) {
                cron_zone_free(z);
                return cerr_set(CERR_INVALID, "zone: bad transition %lld", (long long)i);
            }
            int64_t off = be(info + idx[i] * 6, 4);
            if (off < -25 * 3600 || off > 26 * 3600) {
                cron_zone_free(z);
                return cerr_set(CERR_INVALID, "zone: offset %lld out of range", (long long)off);
            }
            z->times[i] = t;
            z->offsets[i] = (long)off;
        }
        int64_t first = be(info, 4);
        z->initial = first < -25 * 3600 || first > 26 * 3600 ? 0 : (long)first;
        z->n = (size_t)times;
        *out = z;
        return 0;
    }
    return cerr_set(CERR_INVALID, "zone: not a TZif file");
}

int cron_zone_load(const char *dir, const char *name, cron_zone **out)
{
    *out = NULL;
    if (!name || !name[0] || !strcmp(name, "UTC") || !strcmp(name, "Etc/UTC")) return 0;
    if (strstr(name, "..") || name[0] == '/' || strlen(name) > 64)
        return cerr_set(CERR_INVALID, "timeZone \"%.64s\" is not an IANA zone name", name);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "/usr/share/zoneinfo", name);
    FILE *f = fopen(path, "rb");
    if (!f) return cerr_set(CERR_NOTFOUND, "timeZone \"%s\": no such zone", name);
    unsigned char *buf = cmem_malloc(TZ_FILE_MAX);
    if (!buf) {
        fclose(f);
        return cerr_oom();
    }
    size_t n = fread(buf, 1, TZ_FILE_MAX, f);
    fclose(f);
    int rc = cron_zone_load_bytes(buf, n, out);
    cmem_free(buf);
    if (rc && rc != CERR_NOMEM) rc = cerr_set(rc, "timeZone \"%s\": %s", name, cerr_message());
    return rc;
}

void cron_zone_free(cron_zone *z)
{
    if (!z) return;
    cmem_free(z->times);
    cmem_free(z->offsets);
    cmem_free(z);
}

long cron_zone_offset(const cron_zone *z, time_t t)
{
    if (!z) return 0;
    if (!z->n || (int64_t)t < z->times[0]) return z->initial;
    size_t lo = 0, hi = z->n; /* the last transition <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->times[mid] <= (int64_t)t)
            lo = mid;
        else
            hi = mid;
    }
    return z->offsets[lo];
}

/* --- the next due time ---------------------------------------------------------------------- */

/* Civil date of a day since 1970-01-01 (proleptic Gregorian; H. Hinnant's
 * algorithm). */
static void civil_from_days(long z, long *y, int *m, int *d)
{
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static long floor_div(long a, long b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool day_due(const cron_expr *e, long days)
{
    long y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (!(e->month >> m & 1)) return false;
    int wd = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
    bool dom = e->dom >> d & 1, dow = e->dow >> wd & 1;
    if (e->dom_star || e->dow_star) return dom && dow;
    return dom || dow;
}

/* The earliest UTC time whose local time in z is wall, or -1 when wall
 * is skipped. */
static int64_t to_utc(const cron_zone *z, int64_t wall)
{
    int64_t best = -1;
    const int64_t probes[2] = {wall - DAY_S / 2, wall + DAY_S / 2};
    for (int i = 0; i < 2; i++) {
        int64_t u = wall - cron_zone_offset(z, (time_t)probes[i]);
        if (u + cron_zone_offset(z, (time_t)u) == wall && (best < 0 || u < best)) best = u;
    }
    return best;
}

time_t cron_next(const cron_expr *e, const cron_zone *z, time_t after)
{
    int64_t local = (int64_t)after + cron_zone_offset(z, after);
    long day0 = floor_div((long)local, DAY_S);
    for (long day = day0 - 1; day <= day0 + SEARCH_DAYS; day++) {
        if (!day_due(e, day)) continue;
        for (int h = 0; h < 24; h++) {
            if (!(e->hour >> h & 1)) continue;
            for (int m = 0; m < 60; m++) {
                if (!(e->minute >> m & 1)) continue;
                int64_t wall = (int64_t)day * DAY_S + h * 3600 + m * 60;
                int64_t u = to_utc(z, wall);
                if (u > (int64_t)after) return (time_t)u;
            }
        }
    }
    return 0;
}
