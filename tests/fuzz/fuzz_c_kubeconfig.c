/* Fuzz target: the kubeconfig parser (kube_config_parse) on arbitrary
 * bytes, with the current context and with a named one. It reads no files:
 * paths are only resolved against base_dir. */
#include "kube/kube.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        cmem_init();
        ready = 1;
    }
    static const char *const contexts[] = {NULL, "prod", "a"};
    for (size_t i = 0; i < sizeof contexts / sizeof contexts[0]; i++) {
        kube_config *cfg = NULL;
        long live = cmem_live();
        cerr_clear();
        if (kube_config_parse((const char *)data, size, "/etc/kube", contexts[i], &cfg) == 0) {
            /* A success always has a server the client would accept. */
            if (!cfg || !cfg->server || (cfg->server[0] != 'h')) __builtin_trap();
            kube_config_free(cfg);
        } else if (cfg) {
            __builtin_trap();
        }
        if (cmem_live() != live) __builtin_trap(); /* leak on some path */
    }
    return 0;
}
