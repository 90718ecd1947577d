/*
 * fuzz_c_partition.c - libFuzzer target for the partition decoders: the
 * run-length index ranges read back from a status, spec.partitions (every
 * partition enumerated, its key mapped back to its index, its URI template
 * substituted), and the local date-times and offsets of time dimensions.
 *
 * Byte 0 selects the decoder (mod 3); the rest is its input:
 *   0  ranges text: accepted text must format back to the same bytes
 *   1  spec.partitions (JSON): the first 64 partitions at a fixed "now"
 *      must round-trip key -> index, and substitute into a template
 *   2  "<offset>\n<date-time>": parse_tz then parse_local
 * The target aborts when a documented invariant does not hold.
 */
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partition.h"
#include "partrange.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void ranges(const char *buf, size_t len)
{
    prange *r = prange_new();
    if (!r) return;
    if (prange_parse(r, buf, len) == 0) {
        char *out = malloc(PRANGE_TEXT_MAX + 1);
        bool bitmap = len >= 4 && !memcmp(buf, PRANGE_BITMAP_PREFIX, 4);
        if (out && !bitmap) {
            /* the text form is canonical: what is accepted formats back */
            if (prange_format(r, out, PRANGE_TEXT_MAX + 1) || strlen(out) != len ||
                memcmp(out, buf, len))
                abort();
        } else if (out) {
            /* a bitmap means the same set as the ranges it decodes to */
            uint64_t count = prange_count(r);
            prange *again = prange_new();
            if (again && prange_format(r, out, PRANGE_TEXT_MAX + 1) == 0) {
                if (prange_parse(again, out, strlen(out)) || prange_count(again) != count) abort();
            }
            prange_free(again);
        }
        free(out);
    } else if (prange_runs(r) != 0) {
        abort();
    }
    prange_free(r);
}

static void plan(const char *buf, size_t len)
{
    json_error_t e;
    json_t *j = json_loadb(buf, len, 0, &e);
    part_plan *p = NULL;
    if (!j) return;
    if (part_plan_decode(j, &p, NULL) == 0 && p) {
        part_grid g = {.width = 5000,
                       .height = 3000,
                       .tile_width = 2048,
                       .tile_height = 2048,
                       .cols = 3,
                       .rows = 2,
                       .halo = 1};
        if (part_plan_has_tiles(p) && part_plan_set_grid(p, &g)) abort();
        time_t now = 1796083200; /* 2026-12-01T00:00:00Z */
        uint64_t n = part_plan_count(p, now);
        for (uint64_t i = 0; i < n && i < 64; i++) {
            part_info pi;
            uint64_t back;
            if (part_plan_at(p, i, now, &pi)) continue; /* a key over the length cap */
            if (part_plan_index_of(p, pi.key, now, &back) || back != i) abort();
            char uri[512];
            (void)part_substitute("s3://b/{key}/{date}/{hour}", &pi, uri, sizeof uri);
            json_decref(part_task_json(&pi));
        }
    }
    part_plan_free(p);
    json_decref(j);
    cerr_clear();
}

static void times(const char *buf, size_t len)
{
    char s[64];
    if (len >= sizeof s) return;
    memcpy(s, buf, len);
    s[len] = '\0';
    char *nl = strchr(s, '\n');
    if (!nl) return;
    *nl = '\0';
    int tz = 0;
    time_t t;
    if (part_parse_tz(s, &tz) == 0 && (tz < -14 * 3600 || tz > 14 * 3600)) abort();
    (void)part_parse_local(nl + 1, tz, &t);
    cerr_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        cmem_init();
        init = 1;
    }
    if (size < 1) return 0;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 3) {
    case 0:
        ranges(buf, len);
        break;
    case 1:
        plan(buf, len);
        break;
    default:
        times(buf, len);
        break;
    }
    return 0;
}
