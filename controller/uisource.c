/*
 * uisource.c - the UI's view of the caches (see uisource.h).
 *
 * The Events informer keeps only what the asset panel shows (type, reason,
 * message, count, times, the involved object): an Event's other fields
 * (source, reporting controller, managedFields) stay out of the cache.
 */
#include "uisource.h"

#include "caches.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "podspec.h"
#include "source.h"

#include <stdio.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

struct uisource {
    const uisource_ops *ops;
    void *impl;
    /* over informers */
    informer *inf[UISRC_KINDS];
    caches *caches;
    bool owns_events, started;
    pthread_mutex_t mu;
    uisrc_change_fn fn;
    void *fn_ctx;
};

static informer *inf_of(void *impl, uisrc_kind kind)
{
    uisource *s = impl;
    return kind < UISRC_KINDS ? s->inf[kind] : NULL;
}

static int inf_each(void *impl, uisrc_kind kind, const char *ns, uisrc_each_fn fn, void *ctx)
{
    informer *inf = inf_of(impl, kind);
    return inf ? informer_each(inf, ns, fn, ctx) : 0;
}

static json_t *inf_get(void *impl, uisrc_kind kind, const char *ns, const char *name)
{
    informer *inf = inf_of(impl, kind);
    return inf ? informer_get(inf, ns, name) : NULL;
}

static int inf_each_dependent(void *impl, const char *ns, const char *name, uisrc_each_fn fn,
                              void *ctx)
{
    uisource *s = impl;
    char key[512];
    int n = snprintf(key, sizeof key, "%s/%s", ns, name);
    if (n <= 0 || n >= (int)sizeof key) return 0;
    return informer_each_indexed(s->inf[UISRC_ASSETS], CACHES_INDEX_UPSTREAM, key, fn, ctx);
}

static int inf_each_pod_of(void *impl, const char *ns, const char *name, uisrc_each_fn fn,
                           void *ctx)
{
    uisource *s = impl;
    char label[64];
    podspec_materialization_label(name, label, sizeof label);
    return caches_each_pod_of(s->caches, ns, label, fn, ctx);
}

static int inf_each_pod_of_source(void *impl, const char *ns, const char *name, uisrc_each_fn fn,
                                  void *ctx)
{
    uisource *s = impl;
    char label[64];
    podspec_materialization_label(name, label, sizeof label);
    return caches_each_pod_of_source(s->caches, ns, label, fn, ctx);
}

static const uisource_ops INFORMER_OPS = {.each = inf_each,
                                          .get = inf_get,
                                          .each_dependent = inf_each_dependent,
                                          .each_pod_of = inf_each_pod_of,
                                          .each_pod_of_source = inf_each_pod_of_source};

/* --- the caches' informers: changes to the subscriber -------------------------------- */

static void am_add(void *ctx, const json_t *obj)
{
    uisource_changed(ctx, UISRC_ASSETS, obj, false);
}

static void am_update(void *ctx, const json_t *old, const json_t *obj)
{
    if (old != obj) uisource_changed(ctx, UISRC_ASSETS, obj, false); /* not a resync */
}

static void am_delete(void *ctx, const json_t *obj)
{
    uisource_changed(ctx, UISRC_ASSETS, obj, true);
}

static void pod_add(void *ctx, const json_t *obj)
{
    uisource_changed(ctx, UISRC_PODS, obj, false);
}

static void pod_update(void *ctx, const json_t *old, const json_t *obj)
{
    if (old != obj) uisource_changed(ctx, UISRC_PODS, obj, false);
}

static void pod_delete(void *ctx, const json_t *obj)
{
    uisource_changed(ctx, UISRC_PODS, obj, true);
}

static void src_add(void *ctx, const json_t *obj)
{
    uisource_changed(ctx, UISRC_SOURCES, obj, false);
}

static void src_update(void *ctx, const json_t *old, const json_t *obj)
{
    if (old != obj) uisource_changed(ctx, UISRC_SOURCES, obj, false);
}

static void src_delete(void *ctx, const json_t *obj)
{
    uisource_changed(ctx, UISRC_SOURCES, obj, true);
}

/* --- the Events informer ---------------------------------------------------------- */

static void ev_add(void *ctx, const json_t *obj)
{
    uisource_changed(ctx, UISRC_EVENTS, obj, false);
}

static void ev_update(void *ctx, const json_t *old, const json_t *obj)
{
    if (old != obj) uisource_changed(ctx, UISRC_EVENTS, obj, false);
}

static void ev_delete(void *ctx, const json_t *obj)
{
    uisource_changed(ctx, UISRC_EVENTS, obj, true);
}

static json_t *ev_transform(void *ctx, json_t *obj)
{
    (void)ctx;
    static const char *const keep[] = {"type",      "reason",         "message",
                                       "count",     "firstTimestamp", "lastTimestamp",
                                       "eventTime", "involvedObject", NULL};
    const json_t *om = json_object_get(obj, "metadata");
    json_t *slim =
        json_pack("{s:{s:O*, s:O*, s:O*}}", "metadata", "name", json_object_get(om, "name"),
                  "namespace", json_object_get(om, "namespace"), "resourceVersion",
                  json_object_get(om, "resourceVersion"));
    for (size_t i = 0; slim && keep[i]; i++) {
        json_t *v = json_object_get(obj, keep[i]);
        if (v && json_object_set(slim, keep[i], v)) {
            json_decref(slim);
            slim = NULL;
        }
    }
    if (!slim) return obj; /* out of memory: cache it whole rather than not at all */
    json_decref(obj);
    return slim;
}

int uisource_new(kube_client *client, const char *ns, caches *c, uisource **out)
{
    uisource *s = NULL;
    int rc = uisource_from(&INFORMER_OPS, NULL, &s);
    if (rc) return rc;
    s->impl = s;
    s->caches = c;
    s->inf[UISRC_ASSETS] = caches_ams(c);
    s->inf[UISRC_PODS] = caches_pods(c);
    s->inf[UISRC_SOURCES] = caches_sources(c);
    informer_handlers ah = {
        .on_add = am_add, .on_update = am_update, .on_delete = am_delete, .ctx = s};
    informer_handlers ph = {
        .on_add = pod_add, .on_update = pod_update, .on_delete = pod_delete, .ctx = s};
    informer_handlers sh = {
        .on_add = src_add, .on_update = src_update, .on_delete = src_delete, .ctx = s};
    informer_handlers eh = {.on_add = ev_add,
                            .on_update = ev_update,
                            .on_delete = ev_delete,
                            .transform = ev_transform,
                            .ctx = s};
    if ((rc = informer_add_handlers(s->inf[UISRC_ASSETS], &ah)) ||
        (rc = informer_add_handlers(s->inf[UISRC_PODS], &ph)) ||
        (s->inf[UISRC_SOURCES] && (rc = informer_add_handlers(s->inf[UISRC_SOURCES], &sh))) ||
        (rc = informer_new(client, &KUBE_EVENTS, ns, NULL, 0, &eh, &s->inf[UISRC_EVENTS]))) {
        uisource_free(s);
        return rc;
    }
    s->owns_events = true;
    *out = s;
    return 0;
}

int uisource_start(uisource *s)
{
    if (!s->owns_events || s->started) return 0;
    int rc = informer_start(s->inf[UISRC_EVENTS]);
    if (rc == 0) s->started = true;
    return rc;
}

void uisource_stop(uisource *s)
{
    if (!s || !s->started) return;
    informer_stop(s->inf[UISRC_EVENTS]);
    s->started = false;
}

int uisource_from(const uisource_ops *ops, void *impl, uisource **out)
{
    uisource *s = cmem_calloc(1, sizeof *s);
    if (!s) return cerr_oom();
    s->ops = ops;
    s->impl = impl;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return 0;
}

void uisource_free(uisource *s)
{
    if (!s) return;
    uisource_stop(s);
    if (s->owns_events) informer_free(s->inf[UISRC_EVENTS]);
    pthread_mutex_destroy(&s->mu);
    cmem_free(s);
}

int uisource_each(uisource *s, uisrc_kind kind, const char *ns, uisrc_each_fn fn, void *ctx)
{
    return s->ops->each(s->impl, kind, ns, fn, ctx);
}

json_t *uisource_get(uisource *s, uisrc_kind kind, const char *ns, const char *name)
{
    return s->ops->get(s->impl, kind, ns, name);
}

/* Without an index: every asset of ns, those whose inputs name it. */
typedef struct {
    const char *name;
    uisrc_each_fn fn;
    void *ctx;
} scan;

static int scan_dependent(void *ctx, const json_t *am)
{
    scan *x = ctx;
    size_t i;
    const json_t *in;
    json_array_foreach(json_object_get(json_object_get(am, "spec"), "inputs"), i, in)
    {
        const char *from = json_string_value(json_object_get(in, "from"));
        if (from && !strcmp(from, x->name)) return x->fn(x->ctx, am);
    }
    return 0;
}

static int scan_pod(void *ctx, const json_t *pod)
{
    scan *x = ctx;
    const char *l = kobj_label(pod, PODSPEC_L_MATERIALIZATION);
    return l && !strcmp(l, x->name) ? x->fn(x->ctx, pod) : 0;
}

static int scan_source_pod(void *ctx, const json_t *pod)
{
    scan *x = ctx;
    const char *l = kobj_label(pod, SOURCE_L_SOURCE);
    return l && !strcmp(l, x->name) ? x->fn(x->ctx, pod) : 0;
}

int uisource_each_dependent(uisource *s, const char *ns, const char *name, uisrc_each_fn fn,
                            void *ctx)
{
    if (s->ops->each_dependent) return s->ops->each_dependent(s->impl, ns, name, fn, ctx);
    scan x = {.name = name, .fn = fn, .ctx = ctx};
    return uisource_each(s, UISRC_ASSETS, ns, scan_dependent, &x);
}

int uisource_each_pod_of(uisource *s, const char *ns, const char *name, uisrc_each_fn fn, void *ctx)
{
    if (s->ops->each_pod_of) return s->ops->each_pod_of(s->impl, ns, name, fn, ctx);
    char label[64];
    podspec_materialization_label(name, label, sizeof label);
    scan x = {.name = label, .fn = fn, .ctx = ctx};
    return uisource_each(s, UISRC_PODS, ns, scan_pod, &x);
}

int uisource_each_pod_of_source(uisource *s, const char *ns, const char *name, uisrc_each_fn fn,
                                void *ctx)
{
    if (s->ops->each_pod_of_source) return s->ops->each_pod_of_source(s->impl, ns, name, fn, ctx);
    char label[64];
    podspec_materialization_label(name, label, sizeof label);
    scan x = {.name = label, .fn = fn, .ctx = ctx};
    return uisource_each(s, UISRC_PODS, ns, scan_source_pod, &x);
}

void uisource_subscribe(uisource *s, uisrc_change_fn fn, void *ctx)
{
    pthread_mutex_lock(&s->mu);
    s->fn = fn;
    s->fn_ctx = ctx;
    pthread_mutex_unlock(&s->mu);
}

void uisource_changed(uisource *s, uisrc_kind kind, const json_t *obj, bool deleted)
{
    if (!s || !obj) return;
    pthread_mutex_lock(&s->mu);
    uisrc_change_fn fn = s->fn;
    void *ctx = s->fn_ctx;
    pthread_mutex_unlock(&s->mu);
    if (fn) fn(ctx, kind, obj, deleted);
}
