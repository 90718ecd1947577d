/* Fuzz target: the worker's own pod as the Kubernetes API answers it
 * (selfpod_parse), on arbitrary bytes; the first byte picks the buffer
 * size so the caller's cap is fuzzed too. */
#include "err.h"
#include "mem.h"
#include "selfpod.h"

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
    char out[SELFPOD_IMAGE_ID_MAX + 1];
    size_t cap = 1 + (size_t)data[0] * sizeof out / 256;
    err_clear();
    int rc = selfpod_parse((const char *)data + 1, size - 1, "user", out, cap);
    /* the parser's promises: a NUL-terminated id within the caps */
    if (rc == 1 && (strlen(out) >= cap || strlen(out) > SELFPOD_IMAGE_ID_MAX || !out[0]))
        __builtin_trap();
    return 0;
}
