/*
 * informer.c - list, then watch, into a local cache (see informer.h).
 *
 * The informer's thread owns the flow (client-go's Reflector and shared
 * informer in one): list page by page into a fresh cache (each object
 * through the transform as its page arrives, so a relist holds one page
 * of raw objects, not the whole list), swap the caches and emit the diff,
 * then watch from the list's resourceVersion, applying each event to the
 * cache before calling the handlers (so a handler that enqueues a key sees
 * the new object when the key is processed). It re-watches from the last
 * resourceVersion seen (events and BOOKMARKs) when a watch ends, relists on
 * 410 Gone or an undecodable event, and backs off exponentially (250 ms up
 * to 30 s, with jitter) on errors.
 *
 * The cache maps "namespace/name" to one jansson reference per object (or,
 * in compact mode, to its packed JSON text, decoded on every read), under a
 * read-write lock: other threads only read (informer_get, informer_each),
 * the informer's thread is the only writer. Cached objects are shared with
 * every caller of informer_get and must never be modified: json_deep_copy
 * before changing one (client-go's rule for its cache, too). jansson's
 * reference counts are atomic, so taking and dropping references from
 * several threads is safe. A packed text is decoded under the read lock,
 * since the writer frees the text it replaces.
 *
 * Indexes: for each index, value -> set of object keys (a strmap of key ->
 * the cached reference, borrowed). They change under the cache's write
 * lock together with the cache, so a reader never sees an object in the
 * cache but not in its index; an update recomputes the old object's values
 * and the new one's and moves the key between the two. A relist builds
 * fresh indexes beside the fresh cache and swaps all of them at once. An
 * allocation failure inside an index relists (the only way back to a
 * consistent index).
 *
 * Resync: every resync_s seconds on_update(obj, obj) for every cached
 * object. The watch's server-side timeout is cut to end at the next resync,
 * so the one thread can do both without a timer thread.
 */
#include "kube/informer.h"

#include "kube/kobj.h"
#include "kube/ratelimit.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/strmap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN (250 * RATELIMIT_MS)
#define BACKOFF_MAX (30 * RATELIMIT_S)
/* client-go picks a watch timeout between 5 and 10 minutes, so that all
 * the watches of a fleet of controllers do not end at the same moment. */
#define WATCH_TIMEOUT_MIN_S 300
#define RV_MAX 128
#define KEY_MAX 512
#define RELIST 1 /* the watch callback's "stop and relist"; CERR_* codes are negative */

struct informer_values {
    char **v;
    size_t n, cap;
};

typedef struct {
    char *name;
    informer_index_fn fn;
    void *ctx;
    strmap *by_value; /* value -> strmap * (key -> cached value, borrowed from the cache) */
} index_def;

struct informer {
    kube_client *c;
    const kube_resource *r;
    char *ns, *selector;
    int resync_s;
    informer_handlers h; /* h.transform is the only transform */
    informer_handlers more[INFORMER_MAX_HANDLERS - 1];
    size_t n_more;
    index_def idx[INFORMER_MAX_INDEXES];
    size_t n_idx;
    char api_version[128];

    pthread_t thread;
    bool started;
    atomic_bool stop;

    bool compact;          /* cached values are packed texts, not jansson trees */
    pthread_rwlock_t lock; /* the cache and the indexes' maps */
    strmap *cache;         /* key -> cached value (cval_*) */

    pthread_mutex_t mu; /* synced wait, stats, stoppable sleeps */
    pthread_cond_t cv;
    atomic_bool synced;
    informer_stats stats;

    /* informer thread only */
    char rv[RV_MAX];
    uint64_t next_resync;
    unsigned long watch_events; /* events of the current watch */
    uint64_t rng;
};

/* --- helpers ------------------------------------------------------------------------ */

static uint64_t next_rand(informer *inf)
{
    /* xorshift64: jitter only, no need for quality */
    uint64_t x = inf->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return inf->rng = x;
}

/* Sleeps ns unless stopped first; false when stopping. */
static bool nap(informer *inf, uint64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_nsec + ns;
    ts.tv_sec += (time_t)(t / RATELIMIT_S);
    ts.tv_nsec = (long)(t % RATELIMIT_S);
    pthread_mutex_lock(&inf->mu);
    while (!atomic_load(&inf->stop))
        if (pthread_cond_timedwait(&inf->cv, &inf->mu, &ts) != 0) break;
    pthread_mutex_unlock(&inf->mu);
    return !atomic_load(&inf->stop);
}

/* Doubles *backoff (250 ms .. 30 s) and sleeps it plus up to 20% jitter. */
static bool back_off(informer *inf, uint64_t *backoff)
{
    *backoff = *backoff ? *backoff * 2 : BACKOFF_MIN;
    if (*backoff > BACKOFF_MAX) *backoff = BACKOFF_MAX;
    uint64_t d = *backoff + next_rand(inf) % (*backoff / 5 + 1);
    return nap(inf, d > BACKOFF_MAX ? BACKOFF_MAX : d);
}

static void stat_add(informer *inf, unsigned long *field)
{
    pthread_mutex_lock(&inf->mu);
    (*field)++;
    pthread_mutex_unlock(&inf->mu);
}

/* --- cached values ------------------------------------------------------------------- */

/* A cached value is a json_t * (one reference) or, in compact mode, a
 * packed: the object's compact JSON text. A jansson tree costs about seven
 * times its text (a hash table per object, a node and a copy per string),
 * so with many objects the text is what fits; every read decodes it, which
 * costs microseconds per object against a reconcile's hundreds. */
typedef struct {
    size_t len;
    char text[];
} packed;

/* Takes obj's reference; the value to cache, or NULL when out of memory. */
static void *cval_make(const informer *inf, json_t *obj)
{
    /* one encoding into this thread's scratch buffer, copied out; a
     * larger object (a pod carrying a big task) is encoded again into its
     * own allocation of the size the first pass found */
    static _Thread_local char scratch[16384];
    if (!inf->compact) return obj;
    size_t len = json_dumpb(obj, scratch, sizeof scratch, JSON_COMPACT);
    packed *p = len ? cmem_malloc(sizeof *p + len) : NULL;
    if (p && len <= sizeof scratch) {
        memcpy(p->text, scratch, len);
        p->len = len;
    } else if (p && json_dumpb(obj, p->text, len, JSON_COMPACT) == len)
        p->len = len;
    else {
        cmem_free(p);
        p = NULL;
    }
    json_decref(obj);
    return p;
}

/* The object of a cached value: a new reference, or NULL (out of memory).
 * In compact mode it is the caller's own tree. */
static json_t *cval_obj(const informer *inf, const void *v)
{
    if (!v) return NULL;
    if (!inf->compact) return json_incref((json_t *)v);
    const packed *p = v;
    return json_loadb(p->text, p->len, 0, NULL);
}

static void cval_free(const informer *inf, void *v)
{
    if (inf->compact)
        cmem_free(v);
    else
        json_decref(v);
}

/* Whether two cached values are the same version: equal texts, or the
 * same metadata.resourceVersion. */
static bool cval_same_version(const informer *inf, const void *a, const void *b)
{
    if (inf->compact) {
        const packed *x = a, *y = b;
        if (x->len == y->len && !memcmp(x->text, y->text, x->len)) return true;
    }
    json_t *oa = cval_obj(inf, a), *ob = cval_obj(inf, b);
    const char *ra = kobj_resource_version(oa), *rb = kobj_resource_version(ob);
    bool same = ra && rb && strcmp(ra, rb) == 0;
    json_decref(oa);
    json_decref(ob);
    return same;
}

/* --- handlers ------------------------------------------------------------------------ */

static void emit_add(informer *inf, const json_t *obj)
{
    if (inf->h.on_add) inf->h.on_add(inf->h.ctx, obj);
    for (size_t i = 0; i < inf->n_more; i++)
        if (inf->more[i].on_add) inf->more[i].on_add(inf->more[i].ctx, obj);
}

static void emit_update(informer *inf, const json_t *old, const json_t *obj)
{
    if (inf->h.on_update) inf->h.on_update(inf->h.ctx, old, obj);
    for (size_t i = 0; i < inf->n_more; i++)
        if (inf->more[i].on_update) inf->more[i].on_update(inf->more[i].ctx, old, obj);
}

static void emit_delete(informer *inf, const json_t *obj)
{
    if (inf->h.on_delete) inf->h.on_delete(inf->h.ctx, obj);
    for (size_t i = 0; i < inf->n_more; i++)
        if (inf->more[i].on_delete) inf->more[i].on_delete(inf->more[i].ctx, obj);
}

static bool has_update_handler(const informer *inf)
{
    if (inf->h.on_update) return true;
    for (size_t i = 0; i < inf->n_more; i++)
        if (inf->more[i].on_update) return true;
    return false;
}

/* --- indexes -------------------------------------------------------------------------- */

int informer_values_add(informer_values *v, const char *value)
{
    if (!value) return 0;
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->v[i], value)) return 0;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        char **nv = cmem_reallocarray(v->v, cap, sizeof *nv);
        if (!nv) return cerr_oom();
        v->v = nv;
        v->cap = cap;
    }
    if (!(v->v[v->n] = cmem_strdup(value))) return cerr_oom();
    v->n++;
    return 0;
}

static void values_clear(informer_values *v)
{
    for (size_t i = 0; i < v->n; i++)
        cmem_free(v->v[i]);
    v->n = 0;
}

static void values_free(informer_values *v)
{
    values_clear(v);
    cmem_free(v->v);
    v->v = NULL;
    v->cap = 0;
}

static int by_namespace(void *ctx, const json_t *obj, informer_values *out)
{
    (void)ctx;
    const char *ns = kobj_namespace(obj);
    return informer_values_add(out, ns ? ns : "");
}

/* Every index's values of obj into vals[0..n_idx); obj NULL: none. */
static int values_of(informer *inf, const json_t *obj, informer_values *vals)
{
    for (size_t i = 0; i < inf->n_idx; i++) {
        values_clear(&vals[i]);
        if (obj && inf->idx[i].fn(inf->idx[i].ctx, obj, &vals[i]) == CERR_NOMEM) return CERR_NOMEM;
    }
    return 0;
}

static void index_map_free(strmap *by_value)
{
    if (!by_value) return;
    size_t pos = 0;
    const char *k;
    void *v;
    while (strmap_next(by_value, &pos, &k, &v))
        strmap_free(v);
    strmap_free(by_value);
}

static void index_del(strmap *by_value, const informer_values *vals, const char *key)
{
    for (size_t i = 0; i < vals->n; i++) {
        strmap *set = strmap_lookup(by_value, vals->v[i]);
        if (!set || !strmap_remove(set, key, NULL) || strmap_len(set)) continue;
        strmap_remove(by_value, vals->v[i], NULL);
        strmap_free(set);
    }
}

static int index_put(strmap *by_value, const informer_values *vals, const char *key, void *obj)
{
    for (size_t i = 0; i < vals->n; i++) {
        strmap *set = strmap_lookup(by_value, vals->v[i]);
        if (!set) {
            if (!(set = strmap_new(0))) return cerr_oom();
            if (strmap_put(by_value, vals->v[i], set)) {
                strmap_free(set);
                return cerr_oom();
            }
        }
        if (strmap_put(set, key, obj)) return cerr_oom();
    }
    return 0;
}

/* Under the write lock: key moves from the values in old_vals to those in
 * new_vals (obj NULL: removed). CERR_NOMEM leaves the index inexact. */
static int index_move(informer *inf, const informer_values *old_vals,
                      const informer_values *new_vals, const char *key, void *obj)
{
    int rc = 0;
    for (size_t i = 0; i < inf->n_idx; i++) {
        index_del(inf->idx[i].by_value, &old_vals[i], key);
        if (obj && !rc) rc = index_put(inf->idx[i].by_value, &new_vals[i], key, obj);
    }
    return rc;
}

static int set_rv(informer *inf, const char *rv)
{
    if (!rv || !rv[0]) return 0;
    size_t n = strlen(rv);
    if (n >= RV_MAX)
        return cerr_set(CERR_INVALID, "informer %s: resourceVersion longer than %d bytes",
                        inf->r->plural, RV_MAX - 1);
    memcpy(inf->rv, rv, n + 1);
    return 0;
}

/* The cached form of obj: a new reference, through the transform hook.
 * List items of built-in types come without apiVersion and kind (the API
 * server strips them inside a typed List); they are filled in so every
 * cached object looks like one read with GET. NULL when out of memory. */
static json_t *cache_form(informer *inf, json_t *obj)
{
    if (!json_object_get(obj, "kind")) {
        if (json_object_set_new(obj, "apiVersion", json_string(inf->api_version)) ||
            json_object_set_new(obj, "kind", json_string(inf->r->kind)))
            return NULL;
    }
    json_incref(obj);
    if (inf->h.transform) obj = inf->h.transform(inf->h.ctx, obj);
    return obj;
}

static void free_cache(const informer *inf, strmap *m)
{
    if (!m) return;
    size_t pos = 0;
    const char *k;
    void *v;
    while (strmap_next(m, &pos, &k, &v))
        cval_free(inf, v);
    strmap_free(m);
}

/* --- list ----------------------------------------------------------------------------- */

/* A relist being built: the fresh cache and indexes, filled page by page. */
typedef struct {
    informer *inf;
    strmap *fresh;
    strmap *idx[INFORMER_MAX_INDEXES];
    informer_values vals[INFORMER_MAX_INDEXES];
    char rv[RV_MAX];
} relist_state;

static void relist_clear(relist_state *st)
{
    for (size_t k = 0; k < st->inf->n_idx; k++) {
        index_map_free(st->idx[k]);
        st->idx[k] = NULL;
    }
    free_cache(st->inf, st->fresh);
    st->fresh = NULL;
}

static int relist_reset(relist_state *st)
{
    relist_clear(st);
    if (!(st->fresh = strmap_new(0))) return cerr_oom();
    for (size_t k = 0; k < st->inf->n_idx; k++)
        if (!(st->idx[k] = strmap_new(0))) return cerr_oom();
    return 0;
}

/* One page into the fresh cache: each item through the transform as it
 * arrives, so the relist holds one page of raw objects at a time. */
static int relist_page(void *ctx, json_t *page, bool restart)
{
    relist_state *st = ctx;
    informer *inf = st->inf;
    int rc;
    if (restart && (rc = relist_reset(st))) return rc;
    const json_t *jrv = json_object_get(json_object_get(page, "metadata"), "resourceVersion");
    if (!json_is_string(jrv) || !json_string_length(jrv))
        return cerr_set(CERR_INVALID, "informer %s: the list has no metadata.resourceVersion",
                        inf->r->plural);
    if (json_string_length(jrv) >= RV_MAX)
        return cerr_set(CERR_INVALID, "informer %s: resourceVersion longer than %d bytes",
                        inf->r->plural, RV_MAX - 1);
    memcpy(st->rv, json_string_value(jrv), json_string_length(jrv) + 1);
    json_t *items = json_object_get(page, "items");
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        char key[KEY_MAX];
        if (!json_is_object(item) || kobj_key(item, key, sizeof key))
            continue; /* nameless: not an object */
        json_t *obj = cache_form(inf, item);
        if (!obj) return cerr_oom();
        void *dup = strmap_lookup(st->fresh, key);
        if (dup) {
            /* the same key twice in one list: the last one counts */
            json_t *was = cval_obj(inf, dup);
            rc = was ? values_of(inf, was, st->vals) : cerr_oom();
            json_decref(was);
            if (rc) {
                json_decref(obj);
                return rc;
            }
            for (size_t k = 0; k < inf->n_idx; k++)
                index_del(st->idx[k], &st->vals[k], key);
        }
        if ((rc = values_of(inf, obj, st->vals))) {
            json_decref(obj);
            return rc;
        }
        void *v = cval_make(inf, obj);
        if (!v) return cerr_oom();
        if (strmap_put(st->fresh, key, v)) {
            cval_free(inf, v);
            return cerr_oom();
        }
        if (dup) cval_free(inf, dup);
        for (size_t k = 0; k < inf->n_idx; k++)
            if ((rc = index_put(st->idx[k], &st->vals[k], key, v))) return rc;
    }
    return 0;
}

/* Lists page by page, swaps the cache and emits the differences. */
static int relist(informer *inf)
{
    int rc;
    strmap *old = NULL, *old_idx[INFORMER_MAX_INDEXES] = {0};
    relist_state st = {.inf = inf};
    if ((rc = relist_reset(&st)) ||
        (rc = kube_list_pages(inf->c, inf->r, inf->ns, inf->selector, NULL, relist_page, &st)) ||
        (rc = set_rv(inf, st.rv)))
        goto cleanup;
    strmap *fresh = st.fresh, **fresh_idx = st.idx;
    st.fresh = NULL;

    pthread_rwlock_wrlock(&inf->lock);
    old = inf->cache;
    inf->cache = fresh;
    for (size_t k = 0; k < inf->n_idx; k++) {
        old_idx[k] = inf->idx[k].by_value;
        inf->idx[k].by_value = fresh_idx[k];
        fresh_idx[k] = NULL;
    }
    pthread_rwlock_unlock(&inf->lock);

    /* The diff, outside the lock: only this thread changes either map. */
    size_t pos = 0;
    const char *key;
    void *v;
    while (strmap_next(inf->cache, &pos, &key, &v)) {
        void *was = NULL;
        bool had = strmap_remove(old, key, &was);
        if (had && cval_same_version(inf, was, v)) {
            cval_free(inf, was);
            continue;
        }
        json_t *now = cval_obj(inf, v), *then = had ? cval_obj(inf, was) : NULL;
        if (had && then && now)
            emit_update(inf, then, now);
        else if (now)
            emit_add(inf, now);
        /* out of memory decoding: the next resync or relist catches up */
        json_decref(now);
        json_decref(then);
        if (had) cval_free(inf, was);
    }
    pos = 0;
    while (strmap_next(old, &pos, &key, &v)) {
        json_t *gone = cval_obj(inf, v);
        if (gone) emit_delete(inf, gone);
        json_decref(gone);
    }

    pthread_mutex_lock(&inf->mu);
    inf->stats.lists++;
    atomic_store(&inf->synced, true);
    pthread_cond_broadcast(&inf->cv);
    pthread_mutex_unlock(&inf->mu);
cleanup:
    for (size_t k = 0; k < inf->n_idx; k++) {
        index_map_free(old_idx[k]);
        values_free(&st.vals[k]);
    }
    relist_clear(&st);
    free_cache(inf, old);
    return rc;
}

/* on_update(obj, obj) for everything cached: the level-triggered safety net. */
static void resync(informer *inf)
{
    if (!has_update_handler(inf)) return;
    pthread_rwlock_rdlock(&inf->lock);
    size_t n = strmap_len(inf->cache), k = 0, pos = 0;
    char **keys = cmem_calloc(n ? n : 1, sizeof *keys);
    const char *key;
    void *v;
    while (keys && strmap_next(inf->cache, &pos, &key, &v))
        if (!(keys[k++] = cmem_strdup(key))) k--;
    pthread_rwlock_unlock(&inf->lock);
    if (!keys) return; /* the next resync will do */
    /* By key, each decoded (or referenced) under the lock on its own, so
     * a resync holds one object at a time, never a copy of the cache. */
    for (size_t i = 0; i < k; i++) {
        if (!atomic_load(&inf->stop)) {
            pthread_rwlock_rdlock(&inf->lock);
            json_t *obj = cval_obj(inf, strmap_lookup(inf->cache, keys[i]));
            pthread_rwlock_unlock(&inf->lock);
            if (obj) emit_update(inf, obj, obj);
            json_decref(obj);
        }
        cmem_free(keys[i]);
    }
    cmem_free(keys);
}

/* --- watch ---------------------------------------------------------------------------- */

static int on_watch_event(void *ud, const watch_event *ev)
{
    informer *inf = ud;
    char key[KEY_MAX];
    if (ev->type == WATCH_BOOKMARK) return set_rv(inf, ev->resource_version) ? RELIST : 0;
    if (ev->type == WATCH_INVALID) {
        /* An event was lost (undecodable or over the line cap): the cache
         * can no longer be trusted to match the server. */
        cerr_set(ev->result, "informer %s: %s", inf->r->plural,
                 ev->message ? ev->message : "bad event");
        return RELIST;
    }
    if (kobj_key(ev->object, key, sizeof key)) return RELIST;
    json_t *obj = cache_form(inf, ev->object);
    if (!obj) return RELIST;
    informer_values ov[INFORMER_MAX_INDEXES] = {0}, nv[INFORMER_MAX_INDEXES] = {0};
    void *old = NULL;
    int rc = 0;
    /* the object being replaced (only this thread writes): its values, and
     * what on_update gets as the old object */
    pthread_rwlock_rdlock(&inf->lock);
    void *in_cache = strmap_lookup(inf->cache, key);
    json_t *cached = cval_obj(inf, in_cache);
    pthread_rwlock_unlock(&inf->lock);
    if ((in_cache && !cached) || values_of(inf, cached, ov) ||
        values_of(inf, ev->type == WATCH_DELETED ? NULL : obj, nv)) {
        json_decref(obj);
        rc = RELIST;
        goto done;
    }
    if (ev->type == WATCH_DELETED) {
        pthread_rwlock_wrlock(&inf->lock);
        if (strmap_remove(inf->cache, key, &old)) index_move(inf, ov, nv, key, NULL);
        pthread_rwlock_unlock(&inf->lock);
        /* The event's object is the final state, newer than the cached one. */
        emit_delete(inf, obj);
        json_decref(obj);
    } else {
        /* obj stays the handlers' (one reference); v is what is cached */
        void *v = cval_make(inf, json_incref(obj));
        pthread_rwlock_wrlock(&inf->lock);
        old = strmap_lookup(inf->cache, key);
        bool cached_new = v && strmap_put(inf->cache, key, v) == 0;
        if (!cached_new) {
            old = NULL; /* the cache is unchanged */
            if (v) cval_free(inf, v);
            rc = RELIST;
        } else if (index_move(inf, ov, nv, key, v)) {
            rc = RELIST; /* an index is behind the cache */
        }
        pthread_rwlock_unlock(&inf->lock);
        if (!rc) {
            if (old)
                emit_update(inf, cached, obj);
            else
                emit_add(inf, obj);
        }
        json_decref(obj);
        if (rc) goto done;
    }
    inf->watch_events++;
    stat_add(inf, &inf->stats.events);
    rc = set_rv(inf, ev->resource_version) ? RELIST : 0;
done:
    if (old) cval_free(inf, old);
    json_decref(cached);
    for (size_t i = 0; i < inf->n_idx; i++) {
        values_free(&ov[i]);
        values_free(&nv[i]);
    }
    return rc;
}

/* Server-side timeout of the next watch: 5..10 minutes, ending at the next
 * resync at the latest. */
static int watch_timeout(informer *inf)
{
    int t = WATCH_TIMEOUT_MIN_S + (int)(next_rand(inf) % WATCH_TIMEOUT_MIN_S);
    if (inf->resync_s > 0) {
        uint64_t now = ratelimit_now();
        uint64_t left = inf->next_resync > now ? (inf->next_resync - now) / RATELIMIT_S + 1 : 1;
        if (left < (uint64_t)t) t = (int)left;
    }
    return t;
}

static void *run(void *arg)
{
    informer *inf = arg;
    bool need_list = true;
    uint64_t backoff = 0;
    while (!atomic_load(&inf->stop)) {
        if (need_list) {
            int rc = relist(inf);
            if (rc) {
                if (!back_off(inf, &backoff)) break;
                continue;
            }
            need_list = false;
            backoff = 0;
            if (inf->resync_s > 0 && !inf->next_resync)
                inf->next_resync = ratelimit_now() + (uint64_t)inf->resync_s * RATELIMIT_S;
        }
        if (inf->resync_s > 0 && ratelimit_now() >= inf->next_resync) {
            resync(inf);
            inf->next_resync = ratelimit_now() + (uint64_t)inf->resync_s * RATELIMIT_S;
        }
        inf->watch_events = 0;
        int rc = kube_watch(inf->c, inf->r, inf->ns, inf->selector, inf->rv, watch_timeout(inf),
                            on_watch_event, inf, &inf->stop);
        if (atomic_load(&inf->stop)) break;
        stat_add(inf, &inf->stats.watch_restarts);
        if (rc == 0) {
            backoff = 0; /* the server ended the watch (timeoutSeconds): resume at once */
            continue;
        }
        if (rc == CERR_GONE) {
            /* Our resourceVersion was compacted away: only a list can
             * bring the cache back (client-go's "too old resource version"). */
            stat_add(inf, &inf->stats.gone);
            need_list = true;
            continue;
        }
        if (rc == CERR_AGAIN && strstr(cerr_message(), "Too large resource version")) {
            /* The server is behind our resourceVersion (a restarted or
             * lagging API server answers 504 "Too large resource version"
             * once it has waited for it): as client-go's reflector does,
             * list again, which takes the server's current version. */
            stat_add(inf, &inf->stats.gone);
            need_list = true;
        }
        if (inf->watch_events) backoff = 0; /* it worked for a while */
        /* A lost connection or an overloaded server: watch again from
         * where we were. A lost event (RELIST) or Forbidden, NotFound (a
         * CRD removed), Invalid: the world changed under us; start again
         * from a list after the pause. */
        if (rc != CERR_IO && rc != CERR_AGAIN && rc != CERR_TIMEOUT) need_list = true;
        if (!back_off(inf, &backoff)) break;
    }
    return NULL;
}

/* --- API --------------------------------------------------------------------------------- */

int informer_new(kube_client *c, const kube_resource *r, const char *ns, const char *label_selector,
                 int resync_s, const informer_handlers *h, informer **out)
{
    informer *inf = NULL;
    *out = NULL;
    if (!c || !r) return cerr_set(CERR_INVALID, "informer_new: client and resource required");
    if (!(inf = cmem_calloc(1, sizeof *inf))) return cerr_oom();
    inf->c = c;
    inf->r = r;
    inf->resync_s = resync_s > 0 ? resync_s : 0;
    if (h) inf->h = *h;
    if (r->group && r->group[0])
        snprintf(inf->api_version, sizeof inf->api_version, "%s/%s", r->group, r->version);
    else
        snprintf(inf->api_version, sizeof inf->api_version, "%s", r->version);
    pthread_rwlock_init(&inf->lock, NULL);
    pthread_mutex_init(&inf->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&inf->cv, &ca);
    pthread_condattr_destroy(&ca);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    inf->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)inf ^ (uint64_t)ts.tv_sec;
    if (!inf->rng) inf->rng = 0x9E3779B97F4A7C15ull;
    if ((ns && ns[0] && !(inf->ns = cmem_strdup(ns))) ||
        (label_selector && label_selector[0] && !(inf->selector = cmem_strdup(label_selector))) ||
        !(inf->cache = strmap_new(0)) ||
        informer_add_index(inf, INFORMER_INDEX_NAMESPACE, by_namespace, NULL)) {
        informer_free(inf);
        return cerr_oom();
    }
    *out = inf;
    return 0;
}

static index_def *find_index(informer *inf, const char *name)
{
    for (size_t i = 0; i < inf->n_idx; i++)
        if (!strcmp(inf->idx[i].name, name)) return &inf->idx[i];
    return NULL;
}

int informer_add_index(informer *inf, const char *name, informer_index_fn fn, void *ctx)
{
    if (!name || !fn || inf->started || find_index(inf, name) || inf->n_idx >= INFORMER_MAX_INDEXES)
        return cerr_set(CERR_INVALID, "informer %s: cannot add index %s", inf->r->plural,
                        name ? name : "(null)");
    index_def *d = &inf->idx[inf->n_idx];
    if (!(d->name = cmem_strdup(name)) || !(d->by_value = strmap_new(0))) {
        cmem_free(d->name);
        d->name = NULL;
        return cerr_oom();
    }
    d->fn = fn;
    d->ctx = ctx;
    inf->n_idx++;
    return 0;
}

int informer_set_compact(informer *inf, bool on)
{
    if (inf->started) return cerr_set(CERR_INVALID, "informer %s: already started", inf->r->plural);
    inf->compact = on;
    return 0;
}

int informer_add_handlers(informer *inf, const informer_handlers *h)
{
    if (!h || inf->started || inf->n_more >= INFORMER_MAX_HANDLERS - 1)
        return cerr_set(CERR_INVALID, "informer %s: cannot add handlers", inf->r->plural);
    inf->more[inf->n_more++] = *h;
    return 0;
}

int informer_start(informer *inf)
{
    if (inf->started) return cerr_set(CERR_INVALID, "informer %s: already started", inf->r->plural);
    atomic_store(&inf->stop, false);
    int e = pthread_create(&inf->thread, NULL, run, inf);
    if (e)
        return cerr_set(CERR_ERROR, "informer %s: pthread_create: %s", inf->r->plural, strerror(e));
    inf->started = true;
    return 0;
}

void informer_stop(informer *inf)
{
    if (!inf) return;
    pthread_mutex_lock(&inf->mu);
    atomic_store(&inf->stop, true);
    pthread_cond_broadcast(&inf->cv);
    pthread_mutex_unlock(&inf->mu);
    if (inf->started) {
        pthread_join(inf->thread, NULL);
        inf->started = false;
    }
}

void informer_free(informer *inf)
{
    if (!inf) return;
    informer_stop(inf);
    for (size_t i = 0; i < inf->n_idx; i++) {
        index_map_free(inf->idx[i].by_value);
        cmem_free(inf->idx[i].name);
    }
    free_cache(inf, inf->cache);
    cmem_free(inf->ns);
    cmem_free(inf->selector);
    pthread_rwlock_destroy(&inf->lock);
    pthread_mutex_destroy(&inf->mu);
    pthread_cond_destroy(&inf->cv);
    cmem_free(inf);
}

bool informer_has_synced(informer *inf)
{
    return atomic_load(&inf->synced);
}

bool informer_wait_synced(informer *inf, long timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_nsec + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * RATELIMIT_MS;
    ts.tv_sec += (time_t)(t / RATELIMIT_S);
    ts.tv_nsec = (long)(t % RATELIMIT_S);
    pthread_mutex_lock(&inf->mu);
    while (!atomic_load(&inf->synced) && !atomic_load(&inf->stop))
        if (pthread_cond_timedwait(&inf->cv, &inf->mu, &ts) != 0) break;
    pthread_mutex_unlock(&inf->mu);
    return atomic_load(&inf->synced);
}

json_t *informer_get(informer *inf, const char *ns, const char *name)
{
    char key[KEY_MAX];
    if (!name) return NULL;
    int n = ns && ns[0] ? snprintf(key, sizeof key, "%s/%s", ns, name)
                        : snprintf(key, sizeof key, "%s", name);
    if (n < 0 || (size_t)n >= sizeof key) return NULL;
    pthread_rwlock_rdlock(&inf->lock);
    json_t *obj = cval_obj(inf, strmap_lookup(inf->cache, key));
    pthread_rwlock_unlock(&inf->lock);
    return obj;
}

static int each_in(const informer *inf, const strmap *m, int (*fn)(void *ctx, const json_t *obj),
                   void *ctx)
{
    int rc = 0;
    size_t pos = 0;
    const char *key;
    void *v;
    while (m && strmap_next(m, &pos, &key, &v)) {
        json_t *obj = cval_obj(inf, v);
        if (!obj) return cerr_oom();
        rc = fn(ctx, obj);
        json_decref(obj);
        if (rc) break;
    }
    return rc;
}

int informer_each(informer *inf, const char *ns, int (*fn)(void *ctx, const json_t *obj), void *ctx)
{
    if (ns) return informer_each_indexed(inf, INFORMER_INDEX_NAMESPACE, ns, fn, ctx);
    pthread_rwlock_rdlock(&inf->lock);
    int rc = each_in(inf, inf->cache, fn, ctx);
    pthread_rwlock_unlock(&inf->lock);
    return rc;
}

int informer_each_indexed(informer *inf, const char *index, const char *value,
                          int (*fn)(void *ctx, const json_t *obj), void *ctx)
{
    index_def *d = find_index(inf, index);
    if (!d) return cerr_set(CERR_NOTFOUND, "informer %s: no index %s", inf->r->plural, index);
    pthread_rwlock_rdlock(&inf->lock);
    int rc = value ? each_in(inf, strmap_lookup(d->by_value, value), fn, ctx) : 0;
    pthread_rwlock_unlock(&inf->lock);
    return rc;
}

size_t informer_index_count(informer *inf, const char *index, const char *value)
{
    index_def *d = find_index(inf, index);
    if (!d || !value) return 0;
    pthread_rwlock_rdlock(&inf->lock);
    strmap *set = strmap_lookup(d->by_value, value);
    size_t n = set ? strmap_len(set) : 0;
    pthread_rwlock_unlock(&inf->lock);
    return n;
}

size_t informer_len(informer *inf)
{
    pthread_rwlock_rdlock(&inf->lock);
    size_t n = strmap_len(inf->cache);
    pthread_rwlock_unlock(&inf->lock);
    return n;
}

void informer_stats_get(informer *inf, informer_stats *out)
{
    pthread_mutex_lock(&inf->mu);
    *out = inf->stats;
    pthread_mutex_unlock(&inf->mu);
}
