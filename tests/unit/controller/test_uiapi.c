/*
 * test_uiapi.c - the lineage UI's documents over a source of plain arrays
 * (the same uisource interface the informers implement): summaries, the
 * list with its namespace filter, one asset's detail (downstream, its pods
 * only and without their spec, its Events newest first, no
 * last-applied-configuration), the data-version history, AssetSources as
 * roots (their summary, list entry, detail with observation pods, Events and
 * history; an asset's upstreamSources), not-found, and every allocation
 * failure of a detail leaving nothing behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "uiapi.h"
#include "uisource.h"

#include <stdio.h>
#include <string.h>

/* --- a source over arrays ----------------------------------------------------------------- */

typedef struct {
    json_t *kinds[UISRC_KINDS]; /* arrays of objects */
} fake;

static int fake_each(void *impl, uisrc_kind kind, const char *ns, uisrc_each_fn fn, void *ctx)
{
    fake *f = impl;
    size_t i;
    json_t *o;
    json_array_foreach(f->kinds[kind], i, o)
    {
        if (ns && strcmp(kobj_namespace(o), ns)) continue;
        int rc = fn(ctx, o);
        if (rc) return rc;
    }
    return 0;
}

static json_t *fake_get(void *impl, uisrc_kind kind, const char *ns, const char *name)
{
    fake *f = impl;
    size_t i;
    json_t *o;
    json_array_foreach(f->kinds[kind], i, o) if (!strcmp(kobj_namespace(o), ns) &&
                                                 !strcmp(kobj_name(o), name)) return json_incref(o);
    return NULL;
}

static const uisource_ops FAKE_OPS = {.each = fake_each, .get = fake_get};

static json_t *am(const char *ns, const char *name, const char *key, const char *from,
                  const char *phase, const char *dv, bool stale)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:I, s:{s:s, s:s}}, s:{s:s, s:s, s:{s:s}, s:[], s:{s:s}}, s:{s:s, "
        "s:s, s:s, s:I, s:{s:s, s:s, s:s}, s:[{s:s, s:s, s:s, s:s}]}}",
        "apiVersion", "terrane.io/v1alpha1", "kind", "AssetMaterialization", "metadata", "name",
        name, "namespace", ns, "generation", (json_int_t)2, "annotations",
        "kubectl.kubernetes.io/last-applied-configuration", "{\"huge\":true}", "note",
        "<script>x</script>", "spec", "assetKey", key, "operation", "cog", "params", "compression",
        "DEFLATE", "inputs", "tags", "terrane.io/pool", "highmem", "status", "phase", phase, "pool",
        "cpu", "dataVersion", dv, "observedGeneration", (json_int_t)2, "output", "uri",
        "s3://assets/x/asset.tif", "checksum", "1220ab", "stacItem", "s3://assets/x/item.json",
        "conditions", "type", "Ready", "status", "True", "reason", "Materialized", "message",
        "done");
    assert_non_null(o);
    json_t *inputs = json_object_get(json_object_get(o, "spec"), "inputs");
    if (from)
        json_array_append_new(inputs, json_pack("{s:s, s:s}", "name", "in", "from", from));
    else
        json_array_append_new(inputs,
                              json_pack("{s:s, s:s}", "name", "in", "uri", "s3://raw/a.tif"));
    if (stale)
        json_array_append_new(json_object_get(json_object_get(o, "status"), "conditions"),
                              json_pack("{s:s, s:s, s:s}", "type", "Stale", "status", "True",
                                        "reason", "UpstreamChanged"));
    return o;
}

static json_t *pod(const char *ns, const char *name, const char *owner, const char *node)
{
    json_t *o = json_pack(
        "{s:s, s:{s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:[{s:s, s:s, s:s, s:s, s:b}]}, s:{s:s, "
        "s:[{s:s, s:[{s:s, s:s}]}]}, s:{s:s, s:[{s:{s:{s:i, s:s, s:s}}}]}}",
        "kind", "Pod", "metadata", "name", name, "namespace", ns, "creationTimestamp",
        "2026-01-01T00:00:00Z", "labels", "terrane.io/materialization", owner, "terrane.io/pool",
        "cpu", "terrane.io/attempt", "1", "ownerReferences", "apiVersion", "terrane.io/v1alpha1",
        "kind", "AssetMaterialization", "name", owner, "uid", "u1", "controller", 1, "spec",
        "nodeName", node, "containers", "name", "worker", "env", "name", "AWS_SECRET_ACCESS_KEY",
        "value", "SECRET-VALUE", "status", "phase", "Succeeded", "containerStatuses", "state",
        "terminated", "exitCode", 0, "reason", "Completed", "finishedAt", "2026-01-01T00:01:00Z");
    assert_non_null(o);
    return o;
}

static json_t *event(const char *ns, const char *name, const char *kind, const char *obj,
                     const char *when, const char *msg)
{
    json_t *o = json_pack("{s:{s:s, s:s}, s:{s:s, s:s, s:s}, s:s, s:s, s:s, s:s}", "metadata",
                          "name", name, "namespace", ns, "involvedObject", "kind", kind, "name",
                          obj, "namespace", ns, "type", "Normal", "reason", "Materialized",
                          "message", msg, "lastTimestamp", when);
    assert_non_null(o);
    return o;
}

typedef struct {
    fake f;
    uisource *src;
    uiapi *api;
    long live;
} fixture;

static int setup(void **state)
{
    fixture *x = calloc(1, sizeof *x);
    x->live = cmem_live();
    for (int k = 0; k < UISRC_KINDS; k++)
        x->f.kinds[k] = json_array();
    json_t *ams = x->f.kinds[UISRC_ASSETS];
    json_array_append_new(
        ams, am("hydro", "dem", "lux/dem", NULL, "Succeeded", "sha256:aaaaaaaaaaaaaaaa", false));
    json_array_append_new(
        ams, am("hydro", "slope", "lux/slope", "dem", "Running", "sha256:bbbbbbbbbbbbbbbb", true));
    json_array_append_new(
        ams, am("hydro", "hill", "lux/hill", "dem", "Succeeded", "sha256:cccccccccccccccc", false));
    json_array_append_new(
        ams, am("other", "dem", "x/dem", NULL, "Failed", "sha256:dddddddddddddddd", false));
    json_t *pods = x->f.kinds[UISRC_PODS];
    json_array_append_new(pods, pod("hydro", "slope-bbbb-1", "slope", "cpu-1"));
    json_array_append_new(pods, pod("hydro", "dem-aaaa-1", "dem", "cpu-2"));
    json_t *evs = x->f.kinds[UISRC_EVENTS];
    json_array_append_new(evs, event("hydro", "e1", "AssetMaterialization", "slope",
                                     "2026-01-01T00:00:01Z", "first"));
    json_array_append_new(
        evs, event("hydro", "e2", "Pod", "slope-bbbb-1", "2026-01-01T00:00:03Z", "pod's"));
    json_array_append_new(evs, event("hydro", "e3", "AssetMaterialization", "slope",
                                     "2026-01-01T00:00:02Z", "second"));
    json_array_append_new(evs, event("hydro", "e4", "AssetMaterialization", "dem",
                                     "2026-01-01T00:00:04Z", "not mine"));
    assert_int_equal(uisource_from(&FAKE_OPS, &x->f, &x->src), 0);
    assert_int_equal(uiapi_new(x->src, &x->api), 0);
    size_t i;
    json_t *o;
    json_array_foreach(ams, i, o) uiapi_observe(x->api, o, false);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fixture *x = *state;
    uiapi_free(x->api);
    uisource_free(x->src);
    for (int k = 0; k < UISRC_KINDS; k++)
        json_decref(x->f.kinds[k]);
    assert_int_equal(cmem_live(), x->live);
    free(x);
    return 0;
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v) fail_msg("not JSON: %s: %.200s", e.text, text);
    return v;
}

static json_t *find(json_t *arr, const char *ns, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        if (!strcmp(json_string_value(json_object_get(o, "namespace")), ns) &&
            !strcmp(json_string_value(json_object_get(o, "name")), name))
            return o;
    }
    return NULL;
}

/* --- tests ----------------------------------------------------------------------------------- */

static void test_summary(void **state)
{
    (void)state;
    json_t *a =
        am("hydro", "slope", "lux/slope", "dem", "Running", "sha256:0123456789abcdef99", true);
    json_t *s = uiapi_summary(a, false), *full = uiapi_summary(a, true);
    assert_string_equal(json_string_value(json_object_get(s, "key")), "lux/slope");
    assert_string_equal(json_string_value(json_object_get(s, "phase")), "Running");
    assert_true(json_is_true(json_object_get(s, "stale")));
    assert_string_equal(json_string_value(json_object_get(s, "pool")), "cpu");
    assert_string_equal(json_string_value(json_object_get(s, "version")), "0123456789ab");
    assert_string_equal(json_string_value(json_array_get(json_object_get(s, "upstreams"), 0)),
                        "dem");
    assert_string_equal(json_string_value(json_object_get(s, "message")), "done");
    /* the list's summary leaves the detail's fields out */
    assert_null(json_object_get(s, "output"));
    assert_null(json_object_get(s, "dataVersion"));
    assert_null(json_object_get(s, "kind"));
    assert_string_equal(json_string_value(json_object_get(full, "output")),
                        "s3://assets/x/asset.tif");
    assert_string_equal(json_string_value(json_object_get(full, "kind")), "AssetMaterialization");
    assert_string_equal(json_string_value(json_object_get(full, "dataVersion")),
                        "sha256:0123456789abcdef99");
    json_decref(s);
    json_decref(full);
    /* not stale: no "stale" at all; no status pool: the spec's tag */
    json_object_del(json_object_get(a, "status"), "pool");
    json_array_remove(json_object_get(json_object_get(a, "status"), "conditions"), 1);
    s = uiapi_summary(a, false);
    assert_null(json_object_get(s, "stale"));
    assert_string_equal(json_string_value(json_object_get(s, "pool")), "highmem");
    assert_null(json_object_get(s, "partitions"));
    json_decref(s);
    /* a partitioned asset: its counts, not its ranges */
    json_object_set_new(json_object_get(a, "status"), "partitions",
                        parse("{\"total\":4096,\"succeeded\":1000,\"running\":2,\"failed\":3,"
                              "\"summary\":\"1000/4096\",\"materialized\":[\"0-999\"]}"));
    s = uiapi_summary(a, false);
    json_t *want = parse("{\"total\":4096,\"succeeded\":1000,\"running\":2,\"failed\":3}");
    assert_true(json_equal(json_object_get(s, "partitions"), want));
    json_decref(want);
    json_decref(s);
    /* no partitions yet enumerated: no bar */
    json_object_set_new(json_object_get(a, "status"), "partitions", parse("{\"total\":0}"));
    s = uiapi_summary(a, false);
    assert_null(json_object_get(s, "partitions"));
    json_decref(s);
    json_decref(a);
}

static void test_list(void **state)
{
    fixture *x = *state;
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(uiapi_assets_text(x->api, NULL, 7, &text, &len), 0);
    assert_int_equal(len, strlen(text));
    json_t *doc = parse(text);
    cmem_free(text);
    assert_int_equal(json_integer_value(json_object_get(doc, "seq")), 7);
    json_t *arr = json_object_get(doc, "assets");
    assert_int_equal(json_array_size(arr), 4);
    assert_non_null(find(arr, "other", "dem"));
    json_decref(doc);

    assert_int_equal(uiapi_assets_text(x->api, "hydro", 8, &text, &len), 0);
    doc = parse(text);
    cmem_free(text);
    arr = json_object_get(doc, "assets");
    assert_int_equal(json_array_size(arr), 3);
    assert_null(find(arr, "other", "dem"));
    assert_true(json_is_true(json_object_get(find(arr, "hydro", "slope"), "stale")));
    json_decref(doc);

    /* a namespace that is a prefix of another does not match it */
    assert_int_equal(uiapi_assets_text(x->api, "hyd", 8, &text, &len), 0);
    assert_string_equal(text, "{\"seq\":8,\"assets\":[]}");
    cmem_free(text);

    /* an update replaces, a delete removes */
    json_t *changed =
        am("hydro", "hill", "lux/hill", "dem", "Failed", "sha256:cccccccccccccccc", false);
    uiapi_observe(x->api, changed, false);
    json_t *gone =
        am("hydro", "dem", "lux/dem", NULL, "Succeeded", "sha256:aaaaaaaaaaaaaaaa", false);
    uiapi_observe(x->api, gone, true);
    assert_int_equal(uiapi_assets_text(x->api, "hydro", 9, &text, &len), 0);
    doc = parse(text);
    cmem_free(text);
    arr = json_object_get(doc, "assets");
    assert_int_equal(json_array_size(arr), 2);
    assert_null(find(arr, "hydro", "dem"));
    assert_string_equal(json_string_value(json_object_get(find(arr, "hydro", "hill"), "phase")),
                        "Failed");
    json_decref(doc);
    json_decref(changed);
    json_decref(gone);
}

static void test_detail(void **state)
{
    fixture *x = *state;
    json_t *doc = NULL;
    assert_int_equal(uiapi_asset(x->api, "hydro", "dem", &doc), 0);
    json_t *down = json_object_get(doc, "downstream");
    assert_int_equal(json_array_size(down), 2);
    assert_string_equal(json_string_value(json_array_get(down, 0)), "slope");
    assert_string_equal(json_string_value(json_array_get(down, 1)), "hill");
    json_t *pods = json_object_get(doc, "pods");
    assert_int_equal(json_array_size(pods), 1);
    json_t *p = json_array_get(pods, 0);
    assert_string_equal(json_string_value(json_object_get(p, "name")), "dem-aaaa-1");
    assert_string_equal(json_string_value(json_object_get(p, "node")), "cpu-2");
    assert_string_equal(json_string_value(json_object_get(p, "attempt")), "1");
    assert_int_equal(json_integer_value(json_object_get(p, "exitCode")), 0);
    /* annotations without the applied manifest; the spec and status as they are */
    json_t *ann = json_object_get(json_object_get(doc, "metadata"), "annotations");
    assert_null(json_object_get(ann, "kubectl.kubernetes.io/last-applied-configuration"));
    assert_string_equal(json_string_value(json_object_get(ann, "note")), "<script>x</script>");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "spec"), "operation")), "cog");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(doc, "status"), "output"), "checksum")),
                        "1220ab");
    /* nothing of a pod's spec, so no environment */
    char *text = json_dumps(doc, 0);
    assert_null(strstr(text, "SECRET-VALUE"));
    assert_null(strstr(text, "AWS_SECRET_ACCESS_KEY"));
    assert_null(strstr(text, "\"env\""));
    cmem_free(text);
    json_decref(doc);

    /* Events: the asset's and its pods', newest first */
    assert_int_equal(uiapi_asset(x->api, "hydro", "slope", &doc), 0);
    json_t *evs = json_object_get(doc, "events");
    assert_int_equal(json_array_size(evs), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "message")),
                        "pod's");
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "object")),
                        "slope-bbbb-1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 1), "message")),
                        "second");
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 2), "message")),
                        "first");
    assert_int_equal(json_array_size(json_object_get(doc, "downstream")), 0);
    json_decref(doc);

    assert_int_equal(uiapi_asset(x->api, "hydro", "nothing", &doc), CERR_NOTFOUND);
    assert_null(doc);
    assert_int_equal(uiapi_asset(x->api, "other", "slope", &doc), CERR_NOTFOUND);

    char owner[64];
    assert_int_equal(uiapi_pod_owner(x->api, "hydro", "slope-bbbb-1", owner, sizeof owner), 0);
    assert_string_equal(owner, "slope");
    assert_int_equal(uiapi_pod_owner(x->api, "hydro", "gone-1", owner, sizeof owner),
                     CERR_NOTFOUND);
}

static void test_history(void **state)
{
    fixture *x = *state;
    char dv[64];
    for (int i = 0; i < UIAPI_HISTORY_MAX + 5; i++) {
        snprintf(dv, sizeof dv, "sha256:%04d", i);
        json_t *a = am("hydro", "slope", "lux/slope", "dem", "Succeeded", dv, false);
        uiapi_observe(x->api, a, false);
        uiapi_observe(x->api, a, false); /* the same version again: no new entry */
        json_decref(a);
    }
    json_t *doc = NULL;
    assert_int_equal(uiapi_asset(x->api, "hydro", "slope", &doc), 0);
    json_t *h = json_object_get(doc, "history");
    assert_int_equal(json_array_size(h), UIAPI_HISTORY_MAX);
    snprintf(dv, sizeof dv, "sha256:%04d", UIAPI_HISTORY_MAX + 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "dataVersion")),
                        dv);
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "checksum")),
                        "1220ab");
    json_decref(doc);
}

static json_t *asrc(const char *ns, const char *name, const char *dv, int observation, int finished,
                    const char *avail, const char *fresh)
{
    json_t *o = parse("{\"kind\":\"AssetSource\",\"metadata\":{\"generation\":1},"
                      "\"spec\":{\"assetKey\":\"lux/raw_dem\",\"uri\":\"s3://raw/elev.tif\"},"
                      "\"status\":{\"objectCount\":1,\"bytes\":1843207,"
                      "\"observedAt\":\"2026-01-01T00:00:10Z\","
                      "\"lastChangedAt\":\"2026-01-01T00:00:05Z\","
                      "\"message\":\"1 objects, 1843207 bytes\",\"conditions\":[]}}");
    json_t *m = json_object_get(o, "metadata"), *st = json_object_get(o, "status");
    json_object_set_new(m, "name", json_string(name));
    json_object_set_new(m, "namespace", json_string(ns));
    json_object_set_new(st, "dataVersion", json_string(dv));
    json_object_set_new(st, "observation", json_integer(observation));
    json_object_set_new(st, "finishedObservation", json_integer(finished));
    json_t *c = json_object_get(st, "conditions");
    json_array_append_new(c, json_pack("{s:s, s:s, s:s, s:s}", "type", "Available", "status", avail,
                                       "reason", "Observed", "message", "avail"));
    if (fresh)
        json_array_append_new(c, json_pack("{s:s, s:s, s:s, s:s}", "type", "Fresh", "status", fresh,
                                           "reason", "NotChanged", "message", "stale 9s"));
    return o;
}

static void test_sources(void **state)
{
    fixture *x = *state;
    json_t *src = asrc("hydro", "raw-dem", "sha256:feedfacefeedface00", 2, 2, "True", "False");
    json_array_append(x->f.kinds[UISRC_SOURCES], src);
    uiapi_observe_source(x->api, src, false);
    json_t *rd = am("hydro", "dem-from-raw", "lux/dem2", "raw-dem", "Succeeded",
                    "sha256:eeeeeeeeeeeeeeee", false);
    json_array_append(x->f.kinds[UISRC_ASSETS], rd);
    uiapi_observe(x->api, rd, false);
    json_t *op = pod("hydro", "raw-dem-obs-2", "x", "cpu-1");
    json_object_set_new(json_object_get(json_object_get(op, "metadata"), "labels"),
                        "terrane.io/source", json_string("raw-dem"));
    json_array_append_new(x->f.kinds[UISRC_PODS], op);
    json_array_append_new(x->f.kinds[UISRC_EVENTS],
                          event("hydro", "e9", "AssetSource", "raw-dem", "2026-01-01T00:00:09Z",
                                "data version none → feedfacefeed: 1 objects"));

    /* the summary: a root with its observation, counts and freshness */
    json_t *s = uiapi_source_summary(src, false);
    assert_string_equal(json_string_value(json_object_get(s, "kind")), "AssetSource");
    assert_string_equal(json_string_value(json_object_get(s, "phase")), "Available");
    assert_string_equal(json_string_value(json_object_get(s, "version")), "feedfacefeed");
    assert_string_equal(json_string_value(json_object_get(s, "key")), "lux/raw_dem");
    assert_int_equal(json_integer_value(json_object_get(s, "objectCount")), 1);
    assert_int_equal(json_integer_value(json_object_get(s, "bytes")), 1843207);
    assert_string_equal(json_string_value(json_object_get(s, "observedAt")),
                        "2026-01-01T00:00:10Z");
    assert_string_equal(json_string_value(json_object_get(s, "lastChangedAt")),
                        "2026-01-01T00:00:05Z");
    assert_true(json_is_false(json_object_get(s, "fresh")));
    assert_int_equal(json_array_size(json_object_get(s, "upstreams")), 0);
    assert_null(json_object_get(s, "uri"));
    json_decref(s);
    /* an observation in flight; Available=False; no freshness asked */
    json_t *o2 = asrc("hydro", "b", "sha256:00", 3, 2, "True", NULL);
    s = uiapi_source_summary(o2, true);
    assert_string_equal(json_string_value(json_object_get(s, "phase")), "Observing");
    assert_null(json_object_get(s, "fresh"));
    assert_string_equal(json_string_value(json_object_get(s, "uri")), "s3://raw/elev.tif");
    json_decref(s);
    json_decref(o2);
    o2 = asrc("hydro", "b", "sha256:00", 3, 3, "False", NULL);
    s = uiapi_source_summary(o2, false);
    assert_string_equal(json_string_value(json_object_get(s, "phase")), "Unavailable");
    json_decref(s);
    json_decref(o2);

    /* in the list, apart from an asset of the same name */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(uiapi_assets_text(x->api, "hydro", 3, &text, &len), 0);
    json_t *doc = parse(text);
    cmem_free(text);
    json_t *arr = json_object_get(doc, "assets");
    assert_int_equal(json_array_size(arr), 5);
    assert_string_equal(json_string_value(json_object_get(find(arr, "hydro", "raw-dem"), "kind")),
                        "AssetSource");
    json_decref(doc);

    /* its detail: downstream, observation pods, its Events, history */
    assert_int_equal(uiapi_source(x->api, "hydro", "raw-dem", &doc), 0);
    json_t *sum = json_object_get(doc, "source");
    assert_string_equal(json_string_value(json_object_get(sum, "dataVersion")),
                        "sha256:feedfacefeedface00");
    assert_string_equal(json_string_value(json_object_get(sum, "freshness")), "stale 9s");
    assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "downstream"), 0)),
                        "dem-from-raw");
    json_t *pods = json_object_get(doc, "pods");
    assert_int_equal(json_array_size(pods), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(pods, 0), "name")),
                        "raw-dem-obs-2");
    json_t *evs = json_object_get(doc, "events");
    assert_int_equal(json_array_size(evs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "kind")),
                        "AssetSource");
    text = json_dumps(doc, 0);
    assert_null(strstr(text, "SECRET-VALUE"));
    cmem_free(text);
    json_decref(doc);

    /* a changed version joins the history, an unchanged observation does not */
    json_t *v2 = asrc("hydro", "raw-dem", "sha256:beef", 3, 3, "True", "True");
    uiapi_observe_source(x->api, v2, false);
    uiapi_observe_source(x->api, v2, false);
    json_array_set(x->f.kinds[UISRC_SOURCES], 0, v2);
    assert_int_equal(uiapi_source(x->api, "hydro", "raw-dem", &doc), 0);
    json_t *h = json_object_get(doc, "history");
    assert_int_equal(json_array_size(h), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "dataVersion")),
                        "sha256:beef");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(h, 1), "bytes")), 1843207);
    json_decref(doc);

    /* the asset reading it names it among its upstream sources */
    assert_int_equal(uiapi_asset(x->api, "hydro", "dem-from-raw", &doc), 0);
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(doc, "asset"), "upstreamSources"), 0)),
                        "raw-dem");
    json_decref(doc);
    assert_int_equal(uiapi_asset(x->api, "hydro", "slope", &doc), 0);
    assert_int_equal(
        json_array_size(json_object_get(json_object_get(doc, "asset"), "upstreamSources")), 0);
    json_decref(doc);

    /* not found, and deleted */
    assert_int_equal(uiapi_source(x->api, "hydro", "dem", &doc), CERR_NOTFOUND);
    uiapi_observe_source(x->api, v2, true);
    assert_int_equal(uiapi_assets_text(x->api, "hydro", 4, &text, &len), 0);
    assert_null(strstr(text, "AssetSource"));
    cmem_free(text);
    for (unsigned long n = 1; n < 2000; n++) {
        long before = cmem_live();
        json_t *d = NULL;
        cmem_fail_at(n);
        int rc = uiapi_source(x->api, "hydro", "raw-dem", &d);
        cmem_fail_at(0);
        json_decref(d);
        if (cmem_live() != before)
            fail_msg("allocation %lu failing leaks %ld blocks", n, cmem_live() - before);
        if (rc == 0) break;
        assert_int_equal(rc, CERR_NOMEM);
    }
    json_decref(src);
    json_decref(rd);
    json_decref(v2);
}

/* Every allocation of a detail and of a list failing in turn: an error,
 * never a crash or a leak. */
static void test_oom(void **state)
{
    fixture *x = *state;
    for (unsigned long n = 1; n < 2000; n++) {
        long before = cmem_live();
        json_t *doc = NULL;
        cmem_fail_at(n);
        int rc = uiapi_asset(x->api, "hydro", "slope", &doc);
        cmem_fail_at(0);
        json_decref(doc);
        if (cmem_live() != before)
            fail_msg("allocation %lu failing leaks %ld blocks", n, cmem_live() - before);
        if (rc == 0) break;
        assert_int_equal(rc, CERR_NOMEM);
    }
    char *text = NULL;
    size_t len;
    cmem_fail_at(1);
    assert_int_equal(uiapi_assets_text(x->api, NULL, 1, &text, &len), CERR_NOMEM);
    cmem_fail_at(0);
    assert_null(text);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
