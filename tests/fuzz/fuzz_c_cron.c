/*
 * fuzz_c_cron.c - libFuzzer target for the AssetSource schedule parsers:
 * cron expressions and TZif zone files (cron.h).
 *
 * Byte 0 selects (mod 2): 0 the rest is a cron expression, parsed and, when
 * accepted, asked for its next time after a few instants (in UTC); 1 the
 * rest is a TZif file, loaded and asked for offsets. Aborts when an
 * accepted expression's next time is not after the instant asked, or an
 * offset is outside +-26 h.
 */
#include "cron.h"
#include "lib/cmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) cmem_init(), init = 1;
    if (size < 1) return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (data[0] % 2 == 0) {
        char text[CRON_EXPR_MAX + 2];
        if (n > CRON_EXPR_MAX + 1) n = CRON_EXPR_MAX + 1;
        memcpy(text, p, n);
        text[n] = '\0';
        cron_expr *e = NULL;
        if (cron_parse(text, &e) == 0) {
            static const time_t at[] = {0, 1767225600, 1772323199, 2000000000};
            for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
                time_t t = cron_next(e, NULL, at[i]);
                if (t && t <= at[i]) abort();
            }
            cron_free(e);
        }
    } else {
        cron_zone *z = NULL;
        if (cron_zone_load_bytes(p, n, &z) == 0) {
            for (time_t t = -2000000000; t < 4000000000; t += 123456789) {
                long off = cron_zone_offset(z, t);
                if (off < -26 * 3600 || off > 26 * 3600) abort();
            }
            cron_zone_free(z);
        }
    }
    return 0;
}
