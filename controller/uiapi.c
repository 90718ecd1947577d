/*
 * uiapi.c - the UI's JSON documents (see uiapi.h).
 *
 * Every document is assembled from whitelisted fields: a field the cache
 * gains later (a pod's spec, an annotation with credentials in it) never
 * reaches the browser because nothing here copies it.
 */
#include "uiapi.h"

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/clog.h"
#include "lib/cmem.h"
#include "lib/strmap.h"
#include "podspec.h"
#include "source.h"
#include "status.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 512

/* What the change stream has told about one asset. */
typedef struct {
    char *summary; /* its summary as JSON text */
    size_t len;
    json_t *history; /* data versions, newest first */
} entry;

struct uiapi {
    uisource *src;
    pthread_mutex_t mu;
    strmap *entries; /* "ns/name" -> entry *, AssetMaterializations */
    strmap *sources; /* "ns/name" -> entry *, AssetSources */
    size_t bytes;    /* summaries' total length, both maps */
};

static void entry_free(entry *e)
{
    if (!e) return;
    cmem_free(e->summary);
    json_decref(e->history);
    cmem_free(e);
}

int uiapi_new(uisource *src, uiapi **out)
{
    uiapi *a = cmem_calloc(1, sizeof *a);
    if (!a) return cerr_oom();
    a->src = src;
    pthread_mutex_init(&a->mu, NULL);
    if (!(a->entries = strmap_new(0)) || !(a->sources = strmap_new(0))) {
        uiapi_free(a);
        return cerr_oom();
    }
    *out = a;
    return 0;
}

static void entries_free(strmap *m)
{
    if (!m) return;
    size_t pos = 0;
    const char *k;
    void *v;
    while (strmap_next(m, &pos, &k, &v))
        entry_free(v);
    strmap_free(m);
}

void uiapi_free(uiapi *a)
{
    if (!a) return;
    entries_free(a->entries);
    entries_free(a->sources);
    pthread_mutex_destroy(&a->mu);
    cmem_free(a);
}

/* --- helpers ------------------------------------------------------------------------- */

static const json_t *get(const json_t *o, const char *k)
{
    return json_is_object(o) ? json_object_get(o, k) : NULL;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(get(o, k));
}

/* Copies o[k] into dst when present. 0 or -1 (out of memory). */
static int copy(json_t *dst, const json_t *o, const char *k)
{
    json_t *v = (json_t *)get(o, k);
    return v ? json_object_set(dst, k, v) : 0;
}

static int copy_as(json_t *dst, const char *dk, const json_t *o, const char *k)
{
    json_t *v = (json_t *)get(o, k);
    return v ? json_object_set(dst, dk, v) : 0;
}

static bool make_key(const char *ns, const char *name, char *key)
{
    int n = snprintf(key, KEY_MAX, "%s/%s", ns ? ns : "", name ? name : "");
    return name && n > 0 && n < KEY_MAX;
}

/* --- summaries ----------------------------------------------------------------------- */

/* A partitioned asset's progress for its node's bar: status.partitions' counts
 * (constant size whatever the number of partitions), without the ranges. */
static int summary_partitions(json_t *s, const json_t *parts)
{
    static const char *const counts[] = {"total", "succeeded", "running", "failed"};
    if (!json_is_integer(get(parts, "total")) || json_integer_value(get(parts, "total")) <= 0)
        return 0;
    json_t *p = json_object();
    if (!p || json_object_set_new(s, "partitions", p)) return -1;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        const json_t *v = get(parts, counts[i]);
        if (json_is_integer(v) && json_integer_value(v) >= 0 && copy(p, parts, counts[i]))
            return -1;
    }
    return 0;
}

json_t *uiapi_summary(const json_t *am, bool full)
{
    const json_t *spec = get(am, "spec"), *st = get(am, "status");
    json_t *s = json_object(), *ups = json_array(), *srcs = full ? json_array() : NULL;
    if (!s || !ups || (full && !srcs)) goto oom;
    json_t *u = ups, *sr = srcs;
    if (json_object_set_new(s, "upstreams", ups)) {
        ups = NULL;
        goto oom;
    }
    ups = NULL;
    if (full && json_object_set_new(s, "sources", srcs)) {
        srcs = NULL;
        goto oom;
    }
    srcs = NULL;
    const char *phase = str(st, "phase"), *dv = str(st, "dataVersion");
    const char *pl = str(st, "pool");
    if (!pl) pl = str(get(spec, "tags"), "terrane.io/pool"); /* before the first attempt */
    kobj_condition c;
    bool stale = kobj_cond_is_true(st, COND_STALE);
    const char *reason = NULL, *message = NULL;
    if (kobj_cond_get(st, COND_READY, &c) == 0) {
        reason = c.reason;
        message = c.message;
    }
    if (str(st, "message") && *str(st, "message")) message = str(st, "message");
    /* "sha256:" and the first 12 hex digits, as kubectl's column shows */
    char shortv[20] = "";
    if (dv) snprintf(shortv, sizeof shortv, "%s", strchr(dv, ':') ? strchr(dv, ':') + 1 : dv);
    if (json_object_set_new(s, "namespace",
                            json_string(kobj_namespace(am) ? kobj_namespace(am) : "")) ||
        json_object_set_new(s, "name", json_string(kobj_name(am) ? kobj_name(am) : "")) ||
        copy_as(s, "key", spec, "assetKey") ||
        json_object_set_new(s, "phase", json_string(phase ? phase : "")) ||
        (stale && json_object_set_new(s, "stale", json_true())) ||
        (pl && json_object_set_new(s, "pool", json_string(pl))) ||
        (shortv[0] &&
         json_object_set_new(s, "version", json_stringn(shortv, strnlen(shortv, 12)))) ||
        (reason && json_object_set_new(s, "reason", json_string(reason))) ||
        (message && json_object_set_new(s, "message", json_string(message))))
        goto oom;
    if (summary_partitions(s, get(st, "partitions"))) goto oom;
    if (full &&
        (json_object_set_new(s, "kind", json_string("AssetMaterialization")) ||
         copy(s, spec, "operation") || copy(s, st, "dataVersion") ||
         json_object_set_new(s, "generation", json_integer(kobj_generation(am))) ||
         copy(s, st, "observedGeneration") || copy_as(s, "output", get(st, "output"), "uri")))
        goto oom;
    const json_t *inputs = get(spec, "inputs");
    size_t i;
    const json_t *in;
    json_array_foreach(inputs, i, in)
    {
        const json_t *from = get(in, "from"), *uri = get(in, "uri");
        if (json_is_string(from) && json_array_append(u, (json_t *)from)) goto oom;
        if (full && json_is_string(uri) && json_array_append(sr, (json_t *)uri)) goto oom;
    }
    return s;
oom:
    json_decref(s);
    json_decref(ups);
    json_decref(srcs);
    return NULL;
}

int uiapi_summary_of(uiapi *a, const char *ns, const char *name, json_t **out)
{
    *out = NULL;
    json_t *am = uisource_get(a->src, UISRC_ASSETS, ns, name);
    if (!am) return cerr_set(CERR_NOTFOUND, "no asset %s/%s", ns, name);
    *out = uiapi_summary(am, false);
    json_decref(am);
    return *out ? 0 : cerr_oom();
}

int uiapi_pod_owner(uiapi *a, const char *ns, const char *pod, char *name, size_t cap)
{
    json_t *p = uisource_get(a->src, UISRC_PODS, ns, pod);
    kobj_owner_ref ref;
    int rc = CERR_NOTFOUND;
    if (p && kobj_controller_ref(p, &ref) == 0 && !strcmp(ref.kind, "AssetMaterialization") &&
        strlen(ref.name) < cap) {
        memcpy(name, ref.name, strlen(ref.name) + 1);
        rc = 0;
    }
    json_decref(p);
    return rc;
}

/* Appends the summaries of m in ns (NULL: all) at *p, a comma before each but
 * the very first. */
static void append_entries(const strmap *m, const char *ns, char **p, bool *first)
{
    size_t nslen = ns ? strlen(ns) : 0, pos = 0;
    const char *k;
    void *v;
    while (strmap_next(m, &pos, &k, &v)) {
        const entry *e = v;
        if (ns && (strncmp(k, ns, nslen) || k[nslen] != '/')) continue;
        if (!*first) *(*p)++ = ',';
        *first = false;
        memcpy(*p, e->summary, e->len);
        *p += e->len;
    }
}

int uiapi_assets_text(uiapi *a, const char *ns, unsigned long seq, char **out, size_t *len)
{
    char head[64];
    int hl = snprintf(head, sizeof head, "{\"seq\":%lu,\"assets\":[", seq);
    *out = NULL;
    *len = 0;
    pthread_mutex_lock(&a->mu);
    size_t cap = (size_t)hl + a->bytes + strmap_len(a->entries) + strmap_len(a->sources) + 3;
    char *buf = cmem_malloc(cap), *p = buf;
    if (!buf) {
        pthread_mutex_unlock(&a->mu);
        return cerr_oom();
    }
    memcpy(p, head, (size_t)hl);
    p += hl;
    bool first = true;
    /* sources first: the roots */
    append_entries(a->sources, ns, &p, &first);
    append_entries(a->entries, ns, &p, &first);
    pthread_mutex_unlock(&a->mu);
    *p++ = ']';
    *p++ = '}';
    *p = '\0';
    *out = buf;
    *len = (size_t)(p - buf);
    return 0;
}

/* --- one asset --------------------------------------------------------------------------- */

static json_t *metadata_of(const json_t *am)
{
    const json_t *m = get(am, "metadata");
    json_t *o = json_object();
    if (!o || copy(o, m, "name") || copy(o, m, "namespace") || copy(o, m, "uid") ||
        copy(o, m, "generation") || copy(o, m, "resourceVersion") ||
        copy(o, m, "creationTimestamp") || copy(o, m, "deletionTimestamp") || copy(o, m, "labels"))
        goto oom;
    const json_t *ann = get(m, "annotations");
    if (json_is_object(ann)) {
        json_t *a = json_object();
        if (!a || json_object_set_new(o, "annotations", a)) goto oom;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)ann, k, v)
        {
            /* a copy of the whole applied manifest: large, and not the
             * cluster's state */
            if (!strcmp(k, "kubectl.kubernetes.io/last-applied-configuration")) continue;
            if (json_object_set(a, k, v)) goto oom;
        }
    }
    return o;
oom:
    json_decref(o);
    return NULL;
}

typedef struct {
    const char *name;
    json_t *arr;
    int rc;
} match;

static int add_downstream(void *ctx, const json_t *am)
{
    match *d = ctx;
    json_t *s = json_string(kobj_name(am) ? kobj_name(am) : "");
    if (!s || json_array_append_new(d->arr, s)) return d->rc = cerr_oom();
    return 0;
}

static const json_t *pod_condition(const json_t *pod, const char *type)
{
    size_t i;
    const json_t *c;
    json_array_foreach(get(get(pod, "status"), "conditions"), i, c)
    {
        const char *t = str(c, "type");
        if (t && !strcmp(t, type)) return c;
    }
    return NULL;
}

static json_t *pod_of(const json_t *pod)
{
    const json_t *st = get(pod, "status");
    const json_t *cs = json_array_get(get(st, "containerStatuses"), 0);
    const json_t *term = get(get(cs, "state"), "terminated");
    const json_t *wait = get(get(cs, "state"), "waiting");
    const json_t *sched = pod_condition(pod, "PodScheduled");
    json_t *o = json_object();
    const char *attempt = kobj_label(pod, PODSPEC_L_ATTEMPT);
    const char *pname = kobj_label(pod, PODSPEC_L_POOL);
    if (!o || json_object_set_new(o, "name", json_string(kobj_name(pod) ? kobj_name(pod) : "")) ||
        (attempt && json_object_set_new(o, "attempt", json_string(attempt))) ||
        (pname && json_object_set_new(o, "pool", json_string(pname))) ||
        copy_as(o, "node", get(pod, "spec"), "nodeName") || copy(o, st, "phase") ||
        copy(o, st, "reason") || copy(o, st, "startTime") ||
        copy_as(o, "created", get(pod, "metadata"), "creationTimestamp") ||
        copy_as(o, "finishedAt", term, "finishedAt") || copy_as(o, "exitCode", term, "exitCode") ||
        copy_as(o, "terminatedReason", term, "reason") ||
        copy_as(o, "waitingReason", wait, "reason") ||
        (sched && str(sched, "status") && !strcmp(str(sched, "status"), "False") &&
         copy_as(o, "unschedulable", sched, "message")))
        goto oom;
    return o;
oom:
    json_decref(o);
    return NULL;
}

static int add_pod(void *ctx, const json_t *pod)
{
    match *p = ctx;
    json_t *o = pod_of(pod);
    if (!o || json_array_append_new(p->arr, o)) return p->rc = cerr_oom();
    return 0;
}

typedef struct {
    const char *kind; /* of the object: AssetMaterialization or AssetSource */
    const char *name;
    json_t *pods; /* names of its pods */
    json_t *arr;
    int rc;
} evmatch;

static bool is_pod_of(const json_t *pods, const char *name)
{
    size_t i;
    const json_t *p;
    json_array_foreach(pods, i, p)
    {
        const char *n = str(p, "name");
        if (n && !strcmp(n, name)) return true;
    }
    return false;
}

static int add_event(void *ctx, const json_t *ev)
{
    evmatch *m = ctx;
    const json_t *io = get(ev, "involvedObject");
    const char *kind = str(io, "kind"), *name = str(io, "name");
    if (!kind || !name) return 0;
    bool mine = (!strcmp(kind, m->kind) && !strcmp(name, m->name)) ||
                (!strcmp(kind, "Pod") && is_pod_of(m->pods, name));
    if (!mine) return 0;
    json_t *o = json_pack("{s:s, s:s}", "kind", kind, "object", name);
    const char *t = str(ev, "lastTimestamp");
    if (!t) t = str(ev, "eventTime");
    if (!t) t = str(ev, "firstTimestamp");
    if (!o || copy(o, ev, "type") || copy(o, ev, "reason") || copy(o, ev, "message") ||
        copy(o, ev, "count") || (t && json_object_set_new(o, "time", json_string(t)))) {
        json_decref(o);
        return m->rc = cerr_oom();
    }
    if (json_array_append_new(m->arr, o)) return m->rc = cerr_oom();
    return 0;
}

static int by_time_desc(const void *a, const void *b)
{
    const char *x = str(*(json_t *const *)a, "time"), *y = str(*(json_t *const *)b, "time");
    /* RFC 3339 in UTC sorts as text */
    return strcmp(y ? y : "", x ? x : "");
}

/* Newest first, at most UIAPI_EVENTS_MAX. */
static json_t *sorted_events(json_t *arr)
{
    size_t n = json_array_size(arr);
    json_t **v = n ? cmem_calloc(n, sizeof *v) : NULL, *out = json_array();
    if ((n && !v) || !out) goto oom;
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(arr, i);
    if (n) qsort(v, n, sizeof *v, by_time_desc);
    for (size_t i = 0; i < n && i < UIAPI_EVENTS_MAX; i++)
        if (json_array_append(out, v[i])) goto oom;
    cmem_free(v);
    return out;
oom:
    cmem_free(v);
    json_decref(out);
    return NULL;
}

/* "upstreamSources": the upstreams that are AssetSources (no
 * AssetMaterialization of that name: that one would be read). */
static int upstream_sources(uiapi *a, const char *ns, json_t *sum)
{
    json_t *arr = json_array();
    if (!arr || json_object_set_new(sum, "upstreamSources", arr)) return -1;
    size_t i;
    const json_t *u;
    json_array_foreach(get(sum, "upstreams"), i, u)
    {
        const char *n = json_string_value(u);
        json_t *o = uisource_get(a->src, UISRC_ASSETS, ns, n);
        json_t *src = o ? NULL : uisource_get(a->src, UISRC_SOURCES, ns, n);
        int rc = src ? json_array_append(arr, (json_t *)u) : 0;
        json_decref(o);
        json_decref(src);
        if (rc) return -1;
    }
    return 0;
}

int uiapi_asset(uiapi *a, const char *ns, const char *name, json_t **out)
{
    int rc = 0;
    json_t *am = NULL, *doc = NULL, *evs = NULL, *sum = NULL, *meta = NULL;
    char key[KEY_MAX];
    *out = NULL;
    if (!ns || !name || !make_key(ns, name, key))
        return cerr_set(CERR_NOTFOUND, "no asset %s/%s", ns ? ns : "", name ? name : "");
    if (!(am = uisource_get(a->src, UISRC_ASSETS, ns, name)))
        return cerr_set(CERR_NOTFOUND, "no asset %s/%s", ns, name);
    match down = {.name = name, .arr = json_array()};
    match pods = {.name = name, .arr = json_array()};
    evmatch em = {
        .kind = "AssetMaterialization", .name = name, .pods = pods.arr, .arr = json_array()};
    json_t *spec = (json_t *)get(am, "spec"), *st = (json_t *)get(am, "status");
    if (!down.arr || !pods.arr || !em.arr) goto oom;
    if ((rc = uisource_each_dependent(a->src, ns, name, add_downstream, &down)) || down.rc ||
        (rc = uisource_each_pod_of(a->src, ns, name, add_pod, &pods)) || pods.rc ||
        (rc = uisource_each(a->src, UISRC_EVENTS, ns, add_event, &em)) || em.rc)
        goto fail;
    if (!(evs = sorted_events(em.arr))) goto oom;
    if (!(sum = uiapi_summary(am, true)) || !(meta = metadata_of(am))) goto oom;
    if (upstream_sources(a, ns, sum)) goto oom;
    doc = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "asset", sum, "metadata", meta, "spec",
                    spec ? spec : json_null(), "status", st ? st : json_null(), "downstream",
                    down.arr, "pods", pods.arr, "events", evs);
    if (!doc) goto oom;
    pthread_mutex_lock(&a->mu);
    entry *e = strmap_lookup(a->entries, key);
    json_t *h = e && e->history ? json_deep_copy(e->history) : json_array();
    pthread_mutex_unlock(&a->mu);
    if (!h || json_object_set_new(doc, "history", h)) goto oom;
    *out = doc;
    doc = NULL;
    goto cleanup;
oom:
    rc = cerr_oom();
    goto cleanup;
fail:
    if (!rc) rc = down.rc ? down.rc : pods.rc ? pods.rc : em.rc;
cleanup:
    json_decref(doc);
    json_decref(sum);
    json_decref(meta);
    json_decref(evs);
    json_decref(down.arr);
    json_decref(pods.arr);
    json_decref(em.arr);
    json_decref(am);
    return rc;
}

/* --- history ----------------------------------------------------------------------------- */

/* Appends the status's data version to the history when it is new. */
static void add_version(entry *e, const json_t *st)
{
    const char *dv = str(st, "dataVersion");
    if (!dv || !*dv) return;
    const char *last = str(json_array_get(e->history, 0), "dataVersion");
    if (last && !strcmp(last, dv)) return;
    if (!e->history && !(e->history = json_array())) return;
    const json_t *o = get(st, "output");
    json_t *h = json_pack("{s:s}", "dataVersion", dv);
    if (!h || copy(h, st, "finishedAt") || copy(h, o, "uri") || copy(h, o, "checksum") ||
        copy(h, o, "cacheHit") || json_array_insert_new(e->history, 0, h)) {
        json_decref(h);
        return;
    }
    while (json_array_size(e->history) > UIAPI_HISTORY_MAX)
        json_array_remove(e->history, json_array_size(e->history) - 1);
}

/* The same for an AssetSource: its observations that changed the version. */
static void add_source_version(entry *e, const json_t *st)
{
    const char *dv = str(st, "dataVersion");
    if (!dv || !*dv) return;
    const char *last = str(json_array_get(e->history, 0), "dataVersion");
    if (last && !strcmp(last, dv)) return;
    if (!e->history && !(e->history = json_array())) return;
    json_t *h = json_pack("{s:s}", "dataVersion", dv);
    if (!h || copy(h, st, "lastChangedAt") || copy(h, st, "objectCount") || copy(h, st, "bytes") ||
        json_array_insert_new(e->history, 0, h)) {
        json_decref(h);
        return;
    }
    while (json_array_size(e->history) > UIAPI_HISTORY_MAX)
        json_array_remove(e->history, json_array_size(e->history) - 1);
}

static void observe(uiapi *a, strmap *m, const json_t *obj, bool deleted, bool is_source)
{
    char key[KEY_MAX];
    if (!a || !make_key(kobj_namespace(obj), kobj_name(obj), key)) return;
    char *text = NULL;
    if (!deleted) {
        /* built outside the lock: the list only copies text */
        json_t *sum = is_source ? uiapi_source_summary(obj, false) : uiapi_summary(obj, false);
        text = sum ? json_dumps(sum, JSON_COMPACT) : NULL;
        json_decref(sum);
        if (!text) {
            clog_warn("ui: summary dropped (out of memory)", "{s:s}", "key", key);
            return;
        }
    }
    pthread_mutex_lock(&a->mu);
    entry *e = strmap_lookup(m, key);
    if (deleted) {
        if (e) {
            strmap_remove(m, key, NULL);
            a->bytes -= e->len;
            entry_free(e);
        }
        goto done;
    }
    if (!e) {
        if (!(e = cmem_calloc(1, sizeof *e)) || strmap_put(m, key, e)) {
            cmem_free(e);
            cmem_free(text);
            goto done;
        }
    }
    a->bytes -= e->len;
    cmem_free(e->summary);
    e->summary = text;
    e->len = strlen(text);
    a->bytes += e->len;
    if (is_source)
        add_source_version(e, get(obj, "status"));
    else
        add_version(e, get(obj, "status"));
done:
    pthread_mutex_unlock(&a->mu);
}

void uiapi_observe(uiapi *a, const json_t *am, bool deleted)
{
    if (a) observe(a, a->entries, am, deleted, false);
}

void uiapi_observe_source(uiapi *a, const json_t *src, bool deleted)
{
    if (a) observe(a, a->sources, src, deleted, true);
}

/* --- AssetSources ------------------------------------------------------------------------- */

/* What a source's node shows as its phase: Observing while an observation
 * is in flight, else Available or Unavailable as its condition says,
 * Pending before the first outcome. */
static const char *source_phase(const json_t *st, kobj_condition *avail, bool *has_avail)
{
    const json_t *obs = get(st, "observation"), *fin = get(st, "finishedObservation");
    *has_avail = kobj_cond_get(st, COND_AVAILABLE, avail) == 0;
    if (json_is_integer(obs) && json_integer_value(obs) > 0 &&
        (!json_is_integer(fin) || json_integer_value(fin) < json_integer_value(obs)))
        return "Observing";
    if (*has_avail && avail->status)
        return !strcmp(avail->status, "True") ? "Available" : "Unavailable";
    return "Pending";
}

json_t *uiapi_source_summary(const json_t *src, bool full)
{
    const json_t *spec = get(src, "spec"), *st = get(src, "status");
    kobj_condition avail = {0}, fresh;
    bool has_avail;
    const char *phase = source_phase(st, &avail, &has_avail), *dv = str(st, "dataVersion");
    const char *msg = str(st, "message");
    if (!msg || !*msg) msg = has_avail ? avail.message : NULL;
    char shortv[20] = "";
    if (dv) snprintf(shortv, sizeof shortv, "%s", strchr(dv, ':') ? strchr(dv, ':') + 1 : dv);
    bool has_fresh = kobj_cond_get(st, COND_FRESH, &fresh) == 0 && fresh.status;
    json_t *s = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "kind", SOURCE_KIND, "namespace",
                          kobj_namespace(src) ? kobj_namespace(src) : "", "name",
                          kobj_name(src) ? kobj_name(src) : "", "phase", phase, "upstreams");
    if (!s || copy_as(s, "key", spec, "assetKey") ||
        (shortv[0] &&
         json_object_set_new(s, "version", json_stringn(shortv, strnlen(shortv, 12)))) ||
        (has_avail && avail.reason &&
         json_object_set_new(s, "reason", json_string(avail.reason))) ||
        (msg && json_object_set_new(s, "message", json_string(msg))) ||
        copy(s, st, "objectCount") || copy(s, st, "bytes") || copy(s, st, "observedAt") ||
        copy(s, st, "lastChangedAt") ||
        (has_fresh && json_object_set_new(s, "fresh", json_boolean(!strcmp(fresh.status, "True")))))
        goto oom;
    if (full && (copy(s, spec, "uri") || copy(s, st, "dataVersion") ||
                 json_object_set_new(s, "generation", json_integer(kobj_generation(src))) ||
                 copy(s, st, "observedGeneration") || copy(s, st, "observation") ||
                 copy(s, st, "finishedObservation") || copy(s, st, "nextObservationAt") ||
                 copy(s, st, "listing") || copy(s, st, "consecutiveFailures") ||
                 (has_fresh && fresh.message &&
                  json_object_set_new(s, "freshness", json_string(fresh.message)))))
        goto oom;
    return s;
oom:
    json_decref(s);
    return NULL;
}

int uiapi_source_summary_of(uiapi *a, const char *ns, const char *name, json_t **out)
{
    *out = NULL;
    json_t *src = uisource_get(a->src, UISRC_SOURCES, ns, name);
    if (!src) return cerr_set(CERR_NOTFOUND, "no source %s/%s", ns, name);
    *out = uiapi_source_summary(src, false);
    json_decref(src);
    return *out ? 0 : cerr_oom();
}

int uiapi_source(uiapi *a, const char *ns, const char *name, json_t **out)
{
    int rc = 0;
    json_t *src = NULL, *doc = NULL, *evs = NULL, *sum = NULL, *meta = NULL;
    char key[KEY_MAX];
    *out = NULL;
    if (!ns || !name || !make_key(ns, name, key))
        return cerr_set(CERR_NOTFOUND, "no source %s/%s", ns ? ns : "", name ? name : "");
    if (!(src = uisource_get(a->src, UISRC_SOURCES, ns, name)))
        return cerr_set(CERR_NOTFOUND, "no source %s/%s", ns, name);
    match down = {.name = name, .arr = json_array()};
    match pods = {.name = name, .arr = json_array()};
    evmatch em = {.kind = SOURCE_KIND, .name = name, .pods = pods.arr, .arr = json_array()};
    json_t *spec = (json_t *)get(src, "spec"), *st = (json_t *)get(src, "status");
    if (!down.arr || !pods.arr || !em.arr) goto oom;
    if ((rc = uisource_each_dependent(a->src, ns, name, add_downstream, &down)) || down.rc ||
        (rc = uisource_each_pod_of_source(a->src, ns, name, add_pod, &pods)) || pods.rc ||
        (rc = uisource_each(a->src, UISRC_EVENTS, ns, add_event, &em)) || em.rc)
        goto fail;
    if (!(evs = sorted_events(em.arr))) goto oom;
    if (!(sum = uiapi_source_summary(src, true)) || !(meta = metadata_of(src))) goto oom;
    doc = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "source", sum, "metadata", meta, "spec",
                    spec ? spec : json_null(), "status", st ? st : json_null(), "downstream",
                    down.arr, "pods", pods.arr, "events", evs);
    if (!doc) goto oom;
    pthread_mutex_lock(&a->mu);
    entry *e = strmap_lookup(a->sources, key);
    json_t *h = e && e->history ? json_deep_copy(e->history) : json_array();
    pthread_mutex_unlock(&a->mu);
    if (!h || json_object_set_new(doc, "history", h)) goto oom;
    *out = doc;
    doc = NULL;
    goto cleanup;
oom:
    rc = cerr_oom();
    goto cleanup;
fail:
    if (!rc) rc = down.rc ? down.rc : pods.rc ? pods.rc : em.rc;
cleanup:
    json_decref(doc);
    json_decref(sum);
    json_decref(meta);
    json_decref(evs);
    json_decref(down.arr);
    json_decref(pods.arr);
    json_decref(em.arr);
    json_decref(src);
    return rc;
}
