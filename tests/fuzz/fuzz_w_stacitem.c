/* Fuzz target: the partition Items collection.c reads back from S3 (an
 * untrusted document: anyone who can write the bucket shapes it), merged
 * into a Collection's extent, and the grid object assemble decodes from its
 * params. The first byte picks which. */
#include "collection.h"
#include "err.h"
#include "grid.h"
#include "mem.h"

#include <cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        mem_init();
        ready = 1;
    }
    if (size == 0) return 0;
    const char *doc = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 1) {
        collection_extent e = {0};
        if (collection_item_merge(doc, len, "inputs[0].stacItem", &e) == 0 && e.has_bbox)
            for (int i = 0; i < 4; i++)
                if (!isfinite(e.bbox[i])) __builtin_trap();
        /* The extent's times stay bounded strings. */
        if (strlen(e.start) >= sizeof e.start || strlen(e.end) >= sizeof e.end) __builtin_trap();
    } else {
        cJSON *v = cJSON_ParseWithLength(doc, len);
        grid g;
        if (v && grid_decode(v, "params.grid", &g) == 0) {
            /* A decoded grid's tiles lie inside the raster. */
            int x0, y0, x1, y1;
            grid_tile(&g, g.cols - 1, g.rows - 1, &x0, &y0, &x1, &y1);
            if (x0 < 0 || y0 < 0 || x1 > g.width || y1 > g.height) __builtin_trap();
        }
        cJSON_Delete(v);
    }
    err_clear();
    return 0;
}
