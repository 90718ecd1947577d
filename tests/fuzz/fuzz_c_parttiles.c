/*
 * fuzz_c_parttiles.c - libFuzzer target for parttiles_grid_result: the
 * grid probe pod's termination message, bytes the worker (or whatever ran
 * in its pod) wrote, read by the controller as the tile grid of an asset.
 *
 * The input is the message, put into a finished pod as the kubelet does
 * (status.containerStatuses[0].state.terminated.message). Then the steps the
 * tile flow takes after it (parttiles.c): the grid into a tiles plan, the
 * tiled data version from its digest, the tiles enumerated.
 * The target aborts when a documented invariant does not hold:
 *   - success gives an object grid with a 64-character digest, and
 *     parttiles_tiled_dv of it succeeds; failure gives no grid;
 *   - a grid the plan accepts has cols x rows tiles that cover the raster:
 *     the last tile ends at the raster's width and height, none is empty.
 */
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partition.h"
#include "parttiles.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const DV = "sha256:"
                              "0000000000000000000000000000000000000000000000000000000000000000";

static void tiles(const part_grid *g)
{
    json_t *spec =
        json_loads("[{\"name\":\"tile\",\"tiles\":{\"tileSize\":[256,256],\"halo\":1}}]", 0, NULL);
    part_plan *p = NULL;
    if (!spec || part_plan_decode(spec, &p, NULL) || !p) abort();
    if (part_plan_set_grid(p, g) == 0) {
        uint64_t n = part_plan_count(p, 0);
        if (n != (uint64_t)g->cols * (uint64_t)g->rows) abort();
        uint64_t probe[3] = {0, n / 2, n - 1};
        for (int i = 0; i < 3; i++) {
            part_info pi;
            if (part_plan_at(p, probe[i], 0, &pi) || !pi.has_tile) abort();
            const part_tile *t = &pi.tile;
            if (t->xsize <= 0 || t->ysize <= 0 || t->xoff + t->xsize > g->width ||
                t->yoff + t->ysize > g->height)
                abort();
            if (i == 2 && (t->xoff + t->xsize != g->width || t->yoff + t->ysize != g->height))
                abort();
        }
    }
    part_plan_free(p);
    json_decref(spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        cmem_init();
        init = 1;
    }
    /* the kubelet keeps at most 4096 bytes; allow more, the parser must cope */
    if (size > 16384) return 0;
    json_t *msg = json_stringn_nocheck((const char *)data, size);
    json_t *pod =
        msg ? json_pack("{s:{s:[{s:{s:{s:s,s:i,s:o}}}]}}", "status", "containerStatuses", "state",
                        "terminated", "reason", "Completed", "exitCode", 0, "message", msg)
            : NULL;
    if (!pod) return 0;
    json_t *grid = (json_t *)0x1;
    part_grid g;
    if (parttiles_grid_result(pod, &grid, &g) == 0) {
        const char *d = json_string_value(json_object_get(grid, "digest"));
        if (!json_is_object(grid) || !d || strlen(d) != 64) abort();
        char dv[DV_LEN + 1];
        if (parttiles_tiled_dv(DV, grid, dv) || strncmp(dv, "sha256:", 7)) abort();
        tiles(&g);
        json_decref(grid);
    } else if (grid) {
        abort();
    }
    json_decref(pod);
    cerr_clear();
    return 0;
}
