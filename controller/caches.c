/*
 * caches.c - informers, indexes, dependency graph, spec cache and the
 * event handlers that keep them and enqueue work (see caches.h).
 *
 * Threads: the handlers run on each informer's thread; the graph and the
 * spec cache have their own locks; everything else is read-only after
 * caches_new.
 */
#include "caches.h"

#include "crd.h"
#include "ctlmetrics.h"
#include "depgraph.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/clog.h"
#include "lib/cmem.h"
#include "podspec.h"
#include "source.h"
#include "spec.h"
#include "status.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define KEY_MAX 512
#define MAX_UPSTREAMS 64

struct caches {
    informer *ams, *pods, *sources;
    wq *queue;
    depgraph *graph;
    speccache *specs;
    poolcount *pool_pods; /* partition pods running per pool */
    atomic_long stale;    /* cached AMs with Stale=True, kept by the handlers */
};

static bool make_key(const char *ns, const char *name, char *key)
{
    int n = snprintf(key, KEY_MAX, "%s/%s", ns ? ns : "", name ? name : "");
    return name && n > 0 && n < KEY_MAX;
}

static void enqueue(caches *c, const char *ns, const char *name)
{
    char key[KEY_MAX];
    if (make_key(ns, name, key) && wq_add(c->queue, key))
        clog_error("enqueue failed", "{s:s, s:s}", "key", key, "error", cerr_message());
}

/* --- indexes ------------------------------------------------------------------------------- */

static int index_upstreams(void *ctx, const json_t *am, informer_values *out)
{
    (void)ctx;
    const char *ups[MAX_UPSTREAMS];
    size_t total, n = spec_upstreams(am, ups, MAX_UPSTREAMS, &total);
    char key[KEY_MAX];
    for (size_t i = 0; i < n; i++) {
        if (!make_key(kobj_namespace(am), ups[i], key)) continue;
        /* a templated from: (partmap.h) is indexed by its text up to the
         * first '{', which enqueue_dependents looks up for every prefix */
        char *brace = strchr(key, '{');
        if (brace) brace[1] = '\0';
        int rc = informer_values_add(out, key);
        if (rc) return rc;
    }
    return 0;
}

static int index_materialization(void *ctx, const json_t *pod, informer_values *out)
{
    (void)ctx;
    const char *l = kobj_label(pod, PODSPEC_L_MATERIALIZATION);
    char key[KEY_MAX];
    return l && make_key(kobj_namespace(pod), l, key) ? informer_values_add(out, key) : 0;
}

static int index_source(void *ctx, const json_t *pod, informer_values *out)
{
    (void)ctx;
    const char *l = kobj_label(pod, SOURCE_L_SOURCE);
    char key[KEY_MAX];
    return l && make_key(kobj_namespace(pod), l, key) ? informer_values_add(out, key) : 0;
}

/* --- the graph ------------------------------------------------------------------------------- */

static void graph_update(caches *c, const json_t *am)
{
    const char *ups[MAX_UPSTREAMS];
    char keys[MAX_UPSTREAMS][KEY_MAX], key[KEY_MAX];
    const char *ns = kobj_namespace(am);
    if (!make_key(ns, kobj_name(am), key)) return;
    size_t total, n = spec_upstreams(am, ups, MAX_UPSTREAMS, &total), k = 0;
    for (size_t i = 0; i < n; i++)
        if (make_key(ns, ups[i], keys[k])) ups[k] = keys[k], k++;
    if (depgraph_set(c->graph, key, ups, k))
        /* the key stays without edges: it may miss a cycle until its next
         * update; logged, as the informer resync re-adds it */
        clog_warn("dependency graph: out of memory", "{s:s}", "key", key);
}

/* --- handlers -------------------------------------------------------------------------------- */

static int enqueue_one(void *ctx, const json_t *am)
{
    enqueue(ctx, kobj_namespace(am), kobj_name(am));
    return 0;
}

static void enqueue_dependents(caches *c, const char *ns, const char *name)
{
    char key[KEY_MAX];
    if (!make_key(ns, name, key)) return;
    informer_each_indexed(c->ams, CACHES_INDEX_UPSTREAM, key, enqueue_one, c);
    /* dependents naming it through a template: "ns/raw-{" for raw-2026-11-05 */
    size_t at = strlen(ns ? ns : "") + 1, n = strlen(key);
    for (size_t i = at; i < n && n + 1 < KEY_MAX; i++) {
        char t[KEY_MAX];
        memcpy(t, key, i);
        t[i] = '{';
        t[i + 1] = '\0';
        informer_each_indexed(c->ams, CACHES_INDEX_UPSTREAM, t, enqueue_one, c);
    }
}

/* --- the stale count ---------------------------------------------------------------------- */

static long stale_of(const json_t *am)
{
    kobj_condition cond;
    return kobj_cond_get(json_object_get(am, "status"), COND_STALE, &cond) == 0 && cond.status &&
           !strcmp(cond.status, "True");
}

/* The handlers see every change of the cache (relists by their diff), so
 * the count needs no scan of it; a delete's final state may differ from
 * what was counted, hence the floor at 0 when read. */
static void stale_move(caches *c, const json_t *old, const json_t *obj)
{
    long d = (obj ? stale_of(obj) : 0) - (old ? stale_of(old) : 0);
    if (d) atomic_fetch_add(&c->stale, d);
}

static void am_add(void *ctx, const json_t *obj)
{
    caches *c = ctx;
    stale_move(c, NULL, obj);
    graph_update(c, obj);
    enqueue(c, kobj_namespace(obj), kobj_name(obj));
    /* dependents waiting with UpstreamMissing */
    enqueue_dependents(c, kobj_namespace(obj), kobj_name(obj));
}

static bool str_differs(const json_t *a, const json_t *b, const char *key)
{
    const json_t *x = json_is_object(a) ? json_object_get(a, key) : NULL;
    const json_t *y = json_is_object(b) ? json_object_get(b, key) : NULL;
    return !((!x && !y) || (x && y && json_equal(x, y)));
}

static void am_update(void *ctx, const json_t *old, const json_t *obj)
{
    caches *c = ctx;
    enqueue(c, kobj_namespace(obj), kobj_name(obj));
    if (old == obj) return; /* resync */
    stale_move(c, old, obj);
    if (kobj_generation(old) != kobj_generation(obj)) graph_update(c, obj);
    const json_t *os = json_object_get(old, "status"), *ns = json_object_get(obj, "status");
    if (str_differs(os, ns, "phase") || str_differs(os, ns, "dataVersion") ||
        str_differs(os, ns, "observedGeneration") || kobj_generation(old) != kobj_generation(obj) ||
        /* partitions read per partition start as their upstream's finish */
        str_differs(os, ns, "partitions") || kobj_is_deleting(old) != kobj_is_deleting(obj))
        enqueue_dependents(c, kobj_namespace(obj), kobj_name(obj));
}

static void am_delete(void *ctx, const json_t *obj)
{
    caches *c = ctx;
    char key[KEY_MAX];
    stale_move(c, obj, NULL);
    if (make_key(kobj_namespace(obj), kobj_name(obj), key)) depgraph_remove(c->graph, key);
    speccache_forget(c->specs, kobj_uid(obj));
    enqueue(c, kobj_namespace(obj), kobj_name(obj));
    enqueue_dependents(c, kobj_namespace(obj), kobj_name(obj));
}

/* The cache keeps no managedFields and no last-applied annotation:
 * nothing here reads them, and with thousands of objects they are most of
 * the memory. Runs on the informer's thread before the object is cached
 * (packed, see caches_new). */
static json_t *am_transform(void *ctx, json_t *obj)
{
    (void)ctx;
    json_t *meta = json_object_get(obj, "metadata");
    if (json_is_object(meta)) {
        json_object_del(meta, "managedFields");
        json_t *ann = json_object_get(meta, "annotations");
        if (json_is_object(ann)) {
            json_object_del(ann, "kubectl.kubernetes.io/last-applied-configuration");
            if (!json_object_size(ann)) json_object_del(meta, "annotations");
        }
    }
    return obj;
}

static void enqueue_source(caches *c, const char *ns, const char *name)
{
    char key[KEY_MAX + 8];
    snprintf(key, sizeof key, SOURCE_KEY_PREFIX "%s/%s", ns ? ns : "", name ? name : "");
    if (name && wq_add(c->queue, key))
        clog_error("enqueue failed", "{s:s, s:s}", "key", key, "error", cerr_message());
}

static void pod_enqueue_owner(caches *c, const json_t *pod)
{
    kobj_owner_ref ref;
    if (kobj_controller_ref(pod, &ref)) return;
    if (!strcmp(ref.kind, "AssetMaterialization"))
        enqueue(c, kobj_namespace(pod), ref.name);
    else if (!strcmp(ref.kind, SOURCE_KIND))
        enqueue_source(c, kobj_namespace(pod), ref.name);
}

/* A source's own events enqueue it; a new data version, availability or
 * its appearance and removal also enqueue the AssetMaterializations that
 * read it (from: names it like an upstream, so the upstream index has
 * them). */
/* An input's own source (implicitsrc.h) is named by no from:; its owner reads it. */
static void enqueue_input_owner(caches *c, const json_t *src)
{
    kobj_owner_ref ref;
    if (!kobj_controller_ref(src, &ref) && !strcmp(ref.kind, "AssetMaterialization"))
        enqueue(c, kobj_namespace(src), ref.name);
}

static void src_add(void *ctx, const json_t *obj)
{
    enqueue_input_owner(ctx, obj);
    enqueue_source(ctx, kobj_namespace(obj), kobj_name(obj));
    enqueue_dependents(ctx, kobj_namespace(obj), kobj_name(obj));
}

static void src_update(void *ctx, const json_t *old, const json_t *obj)
{
    caches *c = ctx;
    enqueue_source(c, kobj_namespace(obj), kobj_name(obj));
    if (old == obj) return;
    const json_t *os = json_object_get(old, "status"), *ns = json_object_get(obj, "status");
    if (str_differs(os, ns, "dataVersion") || str_differs(os, ns, "object") ||
        str_differs(os, ns, "conditions") || kobj_is_deleting(old) != kobj_is_deleting(obj)) {
        enqueue_dependents(c, kobj_namespace(obj), kobj_name(obj));
        enqueue_input_owner(c, obj);
    }
}

static void src_delete(void *ctx, const json_t *obj)
{
    enqueue_input_owner(ctx, obj);
    enqueue_source(ctx, kobj_namespace(obj), kobj_name(obj));
    enqueue_dependents(ctx, kobj_namespace(obj), kobj_name(obj));
}

static void pod_add(void *ctx, const json_t *obj)
{
    poolcount_observe(((caches *)ctx)->pool_pods, NULL, obj);
    pod_enqueue_owner(ctx, obj);
}

static void pod_update(void *ctx, const json_t *old, const json_t *obj)
{
    poolcount_observe(((caches *)ctx)->pool_pods, old, obj);
    pod_enqueue_owner(ctx, obj);
}

static void pod_delete(void *ctx, const json_t *obj)
{
    poolcount_observe(((caches *)ctx)->pool_pods, obj, NULL);
    pod_enqueue_owner(ctx, obj);
}

/* Pods are cached with only what the reconciler reads: the spec's Task
 * (up to 128 KiB per pod) and the rest of the spec stay out. */
static json_t *pod_transform(void *ctx, json_t *obj)
{
    (void)ctx;
    static const char *const meta_keys[] = {"name",
                                            "namespace",
                                            "uid",
                                            "resourceVersion",
                                            "creationTimestamp",
                                            "deletionTimestamp",
                                            "labels",
                                            "annotations",
                                            "ownerReferences",
                                            NULL};
    json_t *slim = json_object(), *meta = json_object();
    const json_t *om = json_object_get(obj, "metadata");
    if (!slim || !meta || json_object_set_new(slim, "metadata", meta)) goto keep;
    for (size_t i = 0; meta_keys[i]; i++) {
        json_t *v = json_object_get(om, meta_keys[i]);
        if (v && json_object_set(meta, meta_keys[i], v)) goto keep;
    }
    const json_t *spec = json_object_get(obj, "spec");
    json_t *node = json_object_get(spec, "nodeName");
    if (node && json_object_set_new(slim, "spec", json_pack("{s:O}", "nodeName", node))) goto keep;
    json_t *st = json_object_get(obj, "status");
    if (st && json_object_set(slim, "status", st)) goto keep;
    json_decref(obj);
    return slim;
keep:
    json_decref(slim);
    return obj; /* out of memory: cache it whole rather than not at all */
}

/* --- API ---------------------------------------------------------------------------------------
 */

int caches_new(kube_client *client, const char *ns, int resync_s, wq *queue,
               const jschema *task_schema, caches **out)
{
    int rc;
    caches *c = cmem_calloc(1, sizeof *c);
    *out = NULL;
    if (!c) return cerr_oom();
    c->queue = queue;
    if (!(c->graph = depgraph_new()) || !(c->specs = speccache_new(task_schema)) ||
        !(c->pool_pods = poolcount_new())) {
        rc = cerr_oom();
        goto fail;
    }
    informer_handlers ah = {.on_add = am_add,
                            .on_update = am_update,
                            .on_delete = am_delete,
                            .transform = am_transform,
                            .ctx = c};
    informer_handlers ph = {.on_add = pod_add,
                            .on_update = pod_update,
                            .on_delete = pod_delete,
                            .transform = pod_transform,
                            .ctx = c};
    informer_handlers sh = {
        .on_add = src_add, .on_update = src_update, .on_delete = src_delete, .ctx = c};
    if ((rc = informer_new(client, &CRD_ASSETMATERIALIZATIONS, ns, NULL, resync_s, &ah, &c->ams)) ||
        (rc = informer_new(client, &CRD_ASSETSOURCES, ns, NULL, resync_s, &sh, &c->sources)) ||
        (rc = ctlm_informer_attach(c->sources, "assetsources")) ||
        (rc = informer_new(client, &KUBE_PODS, ns, PODSPEC_MANAGED_BY "=" PODSPEC_MANAGER, resync_s,
                           &ph, &c->pods)) ||
        /* packed texts: a seventh of the memory of jansson trees */
        (rc = informer_set_compact(c->ams, true)) || (rc = informer_set_compact(c->pods, true)) ||
        (rc = informer_add_index(c->ams, CACHES_INDEX_UPSTREAM, index_upstreams, NULL)) ||
        (rc = informer_add_index(c->pods, CACHES_INDEX_MATERIALIZATION, index_materialization,
                                 NULL)) ||
        (rc = informer_add_index(c->pods, CACHES_INDEX_SOURCE, index_source, NULL)) ||
        (rc = ctlm_informer_attach(c->ams, "assetmaterializations")) ||
        (rc = ctlm_informer_attach(c->pods, "pods")))
        goto fail;
    *out = c;
    return 0;
fail:
    caches_free(c);
    return rc;
}

int caches_start(caches *c)
{
    int rc = informer_start(c->ams);
    if (!rc) rc = informer_start(c->sources);
    return rc ? rc : informer_start(c->pods);
}

void caches_stop(caches *c)
{
    if (!c) return;
    informer_stop(c->ams);
    informer_stop(c->sources);
    informer_stop(c->pods);
}

void caches_free(caches *c)
{
    if (!c) return;
    ctlm_informer_detach(c->ams);
    ctlm_informer_detach(c->sources);
    ctlm_informer_detach(c->pods);
    informer_free(c->sources);
    informer_free(c->ams);
    informer_free(c->pods);
    depgraph_free(c->graph);
    speccache_free(c->specs);
    poolcount_free(c->pool_pods);
    cmem_free(c);
}

const poolcount *caches_pool_pods(caches *c)
{
    return c->pool_pods;
}

bool caches_synced(caches *c)
{
    return informer_has_synced(c->ams) && informer_has_synced(c->sources) &&
           informer_has_synced(c->pods);
}

informer *caches_ams(caches *c)
{
    return c->ams;
}

informer *caches_sources(caches *c)
{
    return c->sources;
}

informer *caches_pods(caches *c)
{
    return c->pods;
}

long caches_stale(caches *c)
{
    long n = atomic_load(&c->stale);
    return n > 0 ? n : 0;
}

speccache *caches_specs(caches *c)
{
    return c->specs;
}

int caches_cycle(caches *c, const char *ns, const char *name, char **path, size_t max_path)
{
    char key[KEY_MAX];
    bool on;
    *path = NULL;
    if (!make_key(ns, name, key)) return 0;
    int rc = depgraph_cycle(c->graph, key, &on, path, max_path);
    if (!rc && on && !*path) *path = cmem_strdup(name); /* cannot be spelled: the name */
    return rc;
}

int caches_each_pod_of(caches *c, const char *ns, const char *label,
                       int (*fn)(void *ctx, const json_t *obj), void *ctx)
{
    char key[KEY_MAX];
    if (!make_key(ns, label, key)) return 0;
    return informer_each_indexed(c->pods, CACHES_INDEX_MATERIALIZATION, key, fn, ctx);
}

int caches_each_pod_of_source(caches *c, const char *ns, const char *label,
                              int (*fn)(void *ctx, const json_t *obj), void *ctx)
{
    char key[KEY_MAX];
    if (!make_key(ns, label, key)) return 0;
    return informer_each_indexed(c->pods, CACHES_INDEX_SOURCE, key, fn, ctx);
}
