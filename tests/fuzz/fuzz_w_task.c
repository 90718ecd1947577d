/* Fuzz target: the task decoder and validator on arbitrary bytes. */
#include "err.h"
#include "mem.h"
#include "task.h"

#include <gdal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        mem_init();
        setenv("TERRANE_ALLOWED_HOSTS", "data.example.com", 1);
        ready = 1;
    }
    task *t = NULL;
    err_clear();
    if (task_decode((const char *)data, size, &t) == 0) {
        (void)task_validate(t);
        task_free(t);
    }
    return 0;
}
