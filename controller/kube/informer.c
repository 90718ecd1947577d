/*
 * informer.c - list, then watch, into a local cache (see informer.h).
 *
 * The informer's thread owns the flow (client-go's Reflector and shared
 * informer in one): list every page, swap the cache and emit the diff,
 * then watch from the list's resourceVersion, applying each event to the
 * cache before calling the handlers (so a handler that enqueues a key sees
 * the new object when the key is processed). It re-watches from the last
 * resourceVersion seen (events and BOOKMARKs) when a watch ends, relists on
 * 410 Gone or an undecodable event, and backs off exponentially (250 ms up
 * to 30 s, with jitter) on errors.
 *
 * The cache maps "namespace/name" to one jansson reference per object,
 * under a read-write lock: other threads only read (informer_get,
 * informer_each), the informer's thread is the only writer. Cached objects
 * are shared with every caller of informer_get and must never be modified:
 * json_deep_copy before changing one (client-go's rule for its cache, too).
 * jansson's reference counts are atomic, so taking and dropping references
 * from several threads is safe.
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

struct informer {
    kube_client *c;
    const kube_resource *r;
    char *ns, *selector;
    int resync_s;
    informer_handlers h;
    char api_version[128];

    pthread_t thread;
    bool started;
    atomic_bool stop;

    pthread_rwlock_t lock; /* the cache */
    strmap *cache;         /* key -> json_t * (one reference) */

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

static void free_cache(strmap *m)
{
    if (!m) return;
    size_t pos = 0;
    const char *k;
    void *v;
    while (strmap_next(m, &pos, &k, &v))
        json_decref(v);
    strmap_free(m);
}

/* --- list ----------------------------------------------------------------------------- */

static bool same_version(const json_t *a, const json_t *b)
{
    const char *ra = kobj_resource_version(a), *rb = kobj_resource_version(b);
    return ra && rb && strcmp(ra, rb) == 0;
}

/* Lists, swaps the cache and emits the differences. */
static int relist(informer *inf)
{
    int rc;
    json_t *list = NULL;
    strmap *fresh = NULL, *old = NULL;
    if ((rc = kube_list(inf->c, inf->r, inf->ns, inf->selector, NULL, &list))) return rc;
    const json_t *meta = json_object_get(list, "metadata");
    const json_t *jrv = json_object_get(meta, "resourceVersion");
    if (!json_is_string(jrv) || !json_string_length(jrv)) {
        rc = cerr_set(CERR_INVALID, "informer %s: the list has no metadata.resourceVersion",
                      inf->r->plural);
        goto cleanup;
    }
    if ((rc = set_rv(inf, json_string_value(jrv)))) goto cleanup;
    if (!(fresh = strmap_new(0))) {
        rc = cerr_oom();
        goto cleanup;
    }
    json_t *items = json_object_get(list, "items");
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        char key[KEY_MAX];
        if (!json_is_object(item) || kobj_key(item, key, sizeof key))
            continue; /* nameless: not an object */
        json_t *obj = cache_form(inf, item);
        if (!obj) {
            rc = cerr_oom();
            goto cleanup;
        }
        json_t *dup = strmap_lookup(fresh, key);
        if (strmap_put(fresh, key, obj)) {
            json_decref(obj);
            rc = cerr_oom();
            goto cleanup;
        }
        json_decref(dup);
    }

    pthread_rwlock_wrlock(&inf->lock);
    old = inf->cache;
    inf->cache = fresh;
    pthread_rwlock_unlock(&inf->lock);
    fresh = NULL;

    /* The diff, outside the lock: only this thread changes either map. */
    size_t pos = 0;
    const char *key;
    void *v;
    while (strmap_next(inf->cache, &pos, &key, &v)) {
        json_t *was = NULL;
        if (strmap_remove(old, key, (void **)&was)) {
            if (!same_version(was, v) && inf->h.on_update) inf->h.on_update(inf->h.ctx, was, v);
            json_decref(was);
        } else if (inf->h.on_add) {
            inf->h.on_add(inf->h.ctx, v);
        }
    }
    pos = 0;
    while (strmap_next(old, &pos, &key, &v))
        if (inf->h.on_delete) inf->h.on_delete(inf->h.ctx, v);

    pthread_mutex_lock(&inf->mu);
    inf->stats.lists++;
    atomic_store(&inf->synced, true);
    pthread_cond_broadcast(&inf->cv);
    pthread_mutex_unlock(&inf->mu);
cleanup:
    free_cache(old);
    free_cache(fresh);
    json_decref(list);
    return rc;
}

/* on_update(obj, obj) for everything cached: the level-triggered safety net. */
static void resync(informer *inf)
{
    if (!inf->h.on_update) return;
    pthread_rwlock_rdlock(&inf->lock);
    size_t n = strmap_len(inf->cache), k = 0, pos = 0;
    json_t **objs = cmem_calloc(n ? n : 1, sizeof *objs);
    const char *key;
    void *v;
    while (objs && strmap_next(inf->cache, &pos, &key, &v))
        objs[k++] = json_incref(v);
    pthread_rwlock_unlock(&inf->lock);
    if (!objs) return; /* the next resync will do */
    for (size_t i = 0; i < k; i++) {
        if (!atomic_load(&inf->stop)) inf->h.on_update(inf->h.ctx, objs[i], objs[i]);
        json_decref(objs[i]);
    }
    cmem_free(objs);
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
    json_t *old = NULL;
    if (ev->type == WATCH_DELETED) {
        pthread_rwlock_wrlock(&inf->lock);
        strmap_remove(inf->cache, key, (void **)&old);
        pthread_rwlock_unlock(&inf->lock);
        /* The event's object is the final state, newer than the cached one. */
        if (inf->h.on_delete) inf->h.on_delete(inf->h.ctx, obj);
        json_decref(obj);
    } else {
        pthread_rwlock_wrlock(&inf->lock);
        old = strmap_lookup(inf->cache, key);
        int rc = strmap_put(inf->cache, key, obj);
        pthread_rwlock_unlock(&inf->lock);
        if (rc) {
            json_decref(obj);
            return RELIST;
        }
        if (old) {
            if (inf->h.on_update) inf->h.on_update(inf->h.ctx, old, obj);
        } else if (inf->h.on_add) {
            inf->h.on_add(inf->h.ctx, obj);
        }
    }
    json_decref(old);
    inf->watch_events++;
    stat_add(inf, &inf->stats.events);
    return set_rv(inf, ev->resource_version) ? RELIST : 0;
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
        !(inf->cache = strmap_new(0))) {
        informer_free(inf);
        return cerr_oom();
    }
    *out = inf;
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
    free_cache(inf->cache);
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
    json_t *obj = json_incref(strmap_lookup(inf->cache, key));
    pthread_rwlock_unlock(&inf->lock);
    return obj;
}

int informer_each(informer *inf, const char *ns, int (*fn)(void *ctx, const json_t *obj), void *ctx)
{
    int rc = 0;
    size_t pos = 0;
    const char *key;
    void *v;
    pthread_rwlock_rdlock(&inf->lock);
    while (strmap_next(inf->cache, &pos, &key, &v)) {
        if (ns) {
            const char *ons = kobj_namespace(v);
            if (!ons || strcmp(ons, ns) != 0) continue;
        }
        if ((rc = fn(ctx, v))) break;
    }
    pthread_rwlock_unlock(&inf->lock);
    return rc;
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
