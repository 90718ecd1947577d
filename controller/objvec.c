/*
 * objvec.c - growing array of json_t references (see objvec.h).
 */
#include "objvec.h"

#include "lib/cerr.h"
#include "lib/cmem.h"

#include <string.h>

int objvec_push(objvec *v, const json_t *obj)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        const json_t **nv = cmem_reallocarray(v->v, cap, sizeof *nv);
        if (!nv) return v->rc = cerr_oom();
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = json_incref((json_t *)obj);
    return 0;
}

void objvec_clear(objvec *v)
{
    for (size_t i = 0; i < v->n; i++)
        json_decref((json_t *)v->v[i]);
    cmem_free(v->v);
    memset(v, 0, sizeof *v);
}

int objvec_collect(void *ctx, const json_t *obj)
{
    return objvec_push(ctx, obj);
}
