/*
 * partall.c - an unpartitioned asset reading every partition of a
 * partitioned upstream (see partall.h).
 */
#include "partall.h"

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partmap.h"
#include "spec.h"
#include "terrane_proto.h"

#include <stdio.h>
#include <string.h>

struct partall {
    size_t n;
    partmap_input *ins; /* per spec input; kind ALL when read AllToOne and ready */
};

void partall_free(partall *pa)
{
    if (!pa) return;
    for (size_t i = 0; i < pa->n; i++)
        partmap_input_clear(&pa->ins[i]);
    cmem_free(pa->ins);
    cmem_free(pa);
}

static const json_t *find(void *ctx, const char *name)
{
    const reconcile_input *in = ctx;
    for (size_t i = 0; i < in->n_ams; i++) {
        const char *n = kobj_name(in->ams[i]);
        if (n && !strcmp(n, name)) return in->ams[i];
    }
    return NULL;
}

int partall_check(partall **pa, const reconcile_input *in, size_t i, const json_t *up, char *msg,
                  size_t size)
{
    const json_t *inputs = json_object_get(json_object_get(in->am, "spec"), "inputs");
    const json_t *input = json_array_get(inputs, i);
    if (!partmap_reads_all(input, up)) return PARTALL_NO;
    if (!*pa) {
        size_t n = json_array_size(inputs); /* in->spec may be NULL: decoded by the caller */
        partall *p = cmem_calloc(1, sizeof *p);
        if (!p || !(p->ins = cmem_calloc(n, sizeof *p->ins))) {
            cmem_free(p);
            return cerr_oom();
        }
        p->n = n;
        *pa = p;
    }
    partmap_input *m = &(*pa)->ins[i];
    char why[400];
    int rc = partmap_resolve_all(find, (void *)in, input, up, in->now, m, why, sizeof why);
    if (rc < 0) return rc;
    if (rc == 0) return PARTALL_READY;
    m->kind = PARTMAP_ONE; /* not ready: nothing to expand */
    snprintf(msg, size, "%s", why);
    return rc == 1 ? PARTALL_WAIT : PARTALL_INVALID;
}

static const partmap_input *ready(const partall *pa, size_t i)
{
    return pa && i < pa->n && pa->ins[i].kind == PARTMAP_ALL ? &pa->ins[i] : NULL;
}

void partall_resolved(const partall *pa, size_t i, taskdoc_input *out)
{
    const partmap_input *m = ready(pa, i);
    if (!m) return;
    out->uri = NULL;
    out->stac_item = NULL;
    out->checksum = NULL;
    out->observed = NULL;
    out->data_version = m->data_version;
    out->asset_key = m->asset_key;
}

int partall_expand(const partall *pa, const am_spec *spec, json_t *task)
{
    char why[400];
    size_t parts = 0;
    for (size_t i = spec->n_inputs; pa && i-- > 0;) {
        const partmap_input *m = ready(pa, i);
        if (!m) continue;
        parts += m->n_parts;
        int rc = partmap_expand_task(task, i, spec->inputs[i].name, m, why, sizeof why);
        if (rc == 2) return cerr_set(CERR_INVALID, "%s", why);
        if (rc) return rc;
    }
    if (!parts) return 0;
    /* the task travels in the pod's environment: say why it cannot */
    size_t len = json_dumpb(task, NULL, 0, JSON_COMPACT);
    if (len > TERRANE_TASK_MAX)
        return cerr_set(CERR_INVALID,
                        "reading %zu partitions makes a task of %zu bytes, more than the %d a "
                        "worker accepts (it travels in the pod's environment); read fewer through "
                        "an intermediate asset (a coarser cadence)",
                        parts, len, TERRANE_TASK_MAX);
    return 0;
}

int partall_lineage(const partall *pa, size_t i, json_t *e)
{
    const partmap_input *m = ready(pa, i);
    if (!m) return 0;
    return json_object_set_new(e, "partitions", json_integer((json_int_t)m->n_parts)) ? cerr_oom()
                                                                                      : 0;
}
