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

/* One allocation per entry: the entry, its am_spec, the inputs and every
 * string they name, copied in after the struct (about 300 bytes for a
 * typical spec, where the decoded jansson tree it replaces took 1.7 KB).
 * The spec's JSON subtrees (params, tags, resources, partitions) are kept
 * by reference, each only when present and non-empty. */
typedef struct {
    spec_entry pub; /* first: a spec_entry * is an entry * */
    long long generation;
    am_spec spec;
    jschema_error *err; /* only for an invalid spec: 1.3 KB, too much for every entry */
    unsigned refs;      /* the map's and each speccache_get's, under the mutex */
    /* then spec.n_inputs spec_input, then the strings */
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
    json_decref((json_t *)e->spec.params);
    json_decref((json_t *)e->spec.tags);
    json_decref((json_t *)e->spec.resources);
    json_decref((json_t *)e->spec.partitions);
    cmem_free(e->err);
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

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* Copies s to *at (advancing it); NULL stays NULL. */
static const char *str_put(char **at, const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *out = memcpy(*at, s, n);
    *at += n;
    return out;
}

static const json_t *keep(const json_t *v)
{
    if (!v || (json_is_object(v) && !json_object_size(v))) return NULL; /* {} is NULL (spec.h) */
    return json_incref((json_t *)v);
}

/* The entry for a decoded spec (d, borrowing from the object) or, with d
 * NULL, for an invalid one: a copy owning its strings. */
static entry *compact(const am_spec *d, long long generation)
{
    size_t n_in = d ? d->n_inputs : 0, size = sizeof(entry) + n_in * sizeof(spec_input);
    if (d) {
        size += str_size(d->namespace_) + str_size(d->name) + str_size(d->asset_key) +
                str_size(d->operation) + str_size(d->output_uri);
        for (size_t i = 0; i < n_in; i++)
            size += str_size(d->inputs[i].name) + str_size(d->inputs[i].from) +
                    str_size(d->inputs[i].uri);
    }
    entry *e = cmem_calloc(1, size);
    if (!e) return NULL;
    e->refs = 1;
    e->generation = generation;
    if (!d) return e;
    spec_input *ins = (spec_input *)(e + 1);
    char *at = (char *)(ins + n_in);
    e->spec = *d;
    e->spec.namespace_ = str_put(&at, d->namespace_);
    e->spec.name = str_put(&at, d->name);
    e->spec.asset_key = str_put(&at, d->asset_key);
    e->spec.operation = str_put(&at, d->operation);
    e->spec.output_uri = str_put(&at, d->output_uri);
    e->spec.inputs = n_in ? ins : NULL;
    for (size_t i = 0; i < n_in; i++) {
        ins[i] = d->inputs[i];
        ins[i].name = str_put(&at, d->inputs[i].name);
        ins[i].from = str_put(&at, d->inputs[i].from);
        ins[i].uri = str_put(&at, d->inputs[i].uri);
    }
    e->spec.params = keep(d->params);
    e->spec.tags = keep(d->tags);
    e->spec.resources = keep(d->resources);
    e->spec.partitions = keep(d->partitions);
    e->pub.spec = &e->spec;
    return e;
}

/* Decodes outside the lock: validation is the slow part. */
static entry *decode(speccache *c, const json_t *am)
{
    am_spec *d = NULL;
    jschema_error err;
    int rc = spec_decode(am, c->task_schema, &d, &err);
    if (rc == CERR_NOMEM) return NULL;
    entry *e = compact(rc ? NULL : d, kobj_generation(am));
    spec_free(d);
    if (!e || !rc) return e;
    if (!(e->err = cmem_malloc(sizeof *e->err))) {
        entry_unref(e);
        return NULL;
    }
    *e->err = err;
    e->pub.err = e->err;
    return e;
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
