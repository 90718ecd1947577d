/*
 * poolcount.c - partition pods running per node pool (see poolcount.h).
 */
#include "poolcount.h"

#include "kube/kobj.h"
#include "lib/cmem.h"
#include "partition.h"
#include "podspec.h"

#include <pthread.h>
#include <string.h>

struct poolcount {
    pthread_mutex_t mu;
    size_t n;
    struct {
        char name[PODSPEC_NAME_MAX + 1];
        long count;
    } pools[POOLCOUNT_POOLS];
};

poolcount *poolcount_new(void)
{
    poolcount *pc = cmem_calloc(1, sizeof *pc);
    if (pc && pthread_mutex_init(&pc->mu, NULL)) {
        cmem_free(pc);
        return NULL;
    }
    return pc;
}

void poolcount_free(poolcount *pc)
{
    if (!pc) return;
    pthread_mutex_destroy(&pc->mu);
    cmem_free(pc);
}

/* The pool a pod counts on, or NULL when it does not count. */
static const char *counted(const json_t *pod)
{
    if (!pod || !kobj_label(pod, PART_LABEL) || kobj_is_deleting(pod)) return NULL;
    const char *phase = json_string_value(json_object_get(json_object_get(pod, "status"), "phase"));
    if (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"))) return NULL;
    const char *pname = kobj_label(pod, PODSPEC_L_POOL);
    return pname && strlen(pname) <= PODSPEC_NAME_MAX ? pname : NULL;
}

/* Under the lock. */
static void add(poolcount *pc, const char *pname, long d)
{
    size_t i;
    for (i = 0; i < pc->n; i++)
        if (!strcmp(pc->pools[i].name, pname)) break;
    if (i == pc->n) {
        if (pc->n == POOLCOUNT_POOLS) return;
        strcpy(pc->pools[pc->n].name, pname);
        pc->pools[pc->n++].count = 0;
    }
    pc->pools[i].count += d;
    if (pc->pools[i].count < 0) pc->pools[i].count = 0;
}

void poolcount_observe(poolcount *pc, const json_t *old, const json_t *obj)
{
    const char *was = counted(old), *is = counted(obj);
    if (!pc || (!was && !is)) return;
    pthread_mutex_lock(&pc->mu);
    if (was) add(pc, was, -1);
    if (is) add(pc, is, 1);
    pthread_mutex_unlock(&pc->mu);
}

long poolcount_get(const poolcount *pc, const char *pname)
{
    long n = 0;
    if (!pc || !pname) return 0;
    pthread_mutex_lock((pthread_mutex_t *)&pc->mu);
    for (size_t i = 0; i < pc->n; i++)
        if (!strcmp(pc->pools[i].name, pname)) n = pc->pools[i].count;
    pthread_mutex_unlock((pthread_mutex_t *)&pc->mu);
    return n;
}
