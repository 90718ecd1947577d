/*
 * speccache.c - specs decoded once per (uid, generation) (see speccache.h).
 */
#include "speccache.h"

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/strmap.h"

#include <pthread.h>
#include <string.h>

typedef struct {
    spec_entry pub; /* first: a spec_entry * is an entry * */
    long long generation;
    json_t *holder;
    am_spec *spec;
    jschema_error *err; /* only for an invalid spec: 1.3 KB, too much for every entry */
    unsigned refs;      /* the map's and each speccache_get's, under the mutex */
} entry;

struct speccache {
    const jschema *task_schema;
    pthread_mutex_t mu;
    strmap *by_uid; /* uid -> entry * */
    speccache_stats stats;
};

static void entry_unref(entry *e)
{
    if (!e || --e->refs) return;
    spec_free(e->spec);
    cmem_free(e->err);
    json_decref(e->holder);
    cmem_free(e);
}

speccache *speccache_new(const jschema *task_schema)
{
    speccache *c = cmem_calloc(1, sizeof *c);
    if (!c) return NULL;
    if (!(c->by_uid = strmap_new(0))) {
        cmem_free(c);
        return NULL;
    }
    c->task_schema = task_schema;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void speccache_free(speccache *c)
{
    if (!c) return;
    size_t pos = 0;
    const char *k;
    void *v;
    while (strmap_next(c->by_uid, &pos, &k, &v))
        entry_unref(v);
    strmap_free(c->by_uid);
    pthread_mutex_destroy(&c->mu);
    cmem_free(c);
}

/* Decodes outside the lock: validation is the slow part. */
static entry *decode(speccache *c, const json_t *am)
{
    entry *e = cmem_calloc(1, sizeof *e);
    if (!e) return NULL;
    e->refs = 1;
    e->generation = kobj_generation(am);
    /* Only what spec_decode reads: the metadata it names (copied: a small
     * object) and the spec (shared: the informer's cache keeps one spec
     * per generation, see caches.c). */
    const json_t *md = json_object_get(am, "metadata");
    if (!(e->holder =
              json_pack("{s:{s:O*, s:O*, s:O*, s:O*}, s:O*}", "metadata", "name",
                        json_object_get(md, "name"), "namespace", json_object_get(md, "namespace"),
                        "uid", json_object_get(md, "uid"), "generation",
                        json_object_get(md, "generation"), "spec", json_object_get(am, "spec"))))
        goto oom;
    jschema_error err;
    int rc = spec_decode(e->holder, c->task_schema, &e->spec, &err);
    if (rc == CERR_NOMEM) goto oom;
    if (rc) {
        e->spec = NULL;
        if (!(e->err = cmem_malloc(sizeof *e->err))) goto oom;
        *e->err = err;
        e->pub.err = e->err;
    } else {
        e->pub.spec = e->spec;
    }
    return e;
oom:
    json_decref(e->holder);
    cmem_free(e);
    return NULL;
}

int speccache_get(speccache *c, const json_t *am, const spec_entry **out)
{
    *out = NULL;
    const char *uid = kobj_uid(am);
    long long gen = kobj_generation(am);
    pthread_mutex_lock(&c->mu);
    entry *e = uid ? strmap_lookup(c->by_uid, uid) : NULL;
    if (e && e->generation == gen) {
        e->refs++;
        c->stats.hits++;
        pthread_mutex_unlock(&c->mu);
        *out = &e->pub;
        return 0;
    }
    c->stats.misses++;
    pthread_mutex_unlock(&c->mu);

    entry *fresh = decode(c, am);
    if (!fresh) return cerr_oom();
    if (!uid) { /* not cacheable: the caller's only */
        *out = &fresh->pub;
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    entry *old = strmap_lookup(c->by_uid, uid);
    if (old && old->generation >= gen) {
        /* another thread was quicker (or newer): keep its entry */
        entry_unref(fresh);
        old->refs++;
        *out = &old->pub;
    } else if (strmap_put(c->by_uid, uid, fresh) == 0) {
        entry_unref(old);
        fresh->refs++;
        *out = &fresh->pub;
    } else {
        *out = &fresh->pub; /* not cached: the caller's only */
    }
    c->stats.entries = strmap_len(c->by_uid);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void speccache_put(speccache *c, const spec_entry *pe)
{
    if (!pe) return;
    pthread_mutex_lock(&c->mu);
    entry_unref((entry *)pe);
    pthread_mutex_unlock(&c->mu);
}

void speccache_forget(speccache *c, const char *uid)
{
    if (!uid) return;
    pthread_mutex_lock(&c->mu);
    entry *e = NULL;
    if (strmap_remove(c->by_uid, uid, (void **)&e)) entry_unref(e);
    c->stats.entries = strmap_len(c->by_uid);
    pthread_mutex_unlock(&c->mu);
}

void speccache_stats_get(speccache *c, speccache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
}
