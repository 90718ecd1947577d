/*
 * sourcemetrics.c - AssetSource metrics (see sourcemetrics.h).
 */
#include "sourcemetrics.h"

#include "ctlmetrics.h"
#include "kube/kobj.h"
#include "lib/metrics.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

static struct {
    metrics_family *observations, *duration, *changes, *lag;
    caches *caches;
} S;
static atomic_bool started;

static const double DURATION_BUCKETS[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

static int sample_one(void *ctx, const json_t *src)
{
    time_t now = *(const time_t *)ctx;
    const json_t *spec = json_object_get(src, "spec"), *st = json_object_get(src, "status");
    if (!json_is_integer(json_object_get(json_object_get(spec, "freshness"), "maxLagSeconds")))
        return 0;
    struct timespec t;
    const char *changed = json_string_value(json_object_get(st, "lastChangedAt"));
    const char *key = json_string_value(json_object_get(spec, "assetKey"));
    if (!changed || !key || kobj_time_parse(changed, &t)) return 0;
    metrics_set(metrics_with(S.lag, kobj_namespace(src), key), (double)(now - t.tv_sec));
    return 0;
}

static void sample(void *ctx)
{
    (void)ctx;
    time_t now = time(NULL);
    /* only the sources that exist now have a lag series */
    metrics_hide_all(S.lag);
    informer_each(caches_sources(S.caches), NULL, sample_one, &now);
}

int srcm_start(caches *c)
{
    metrics_registry *r = ctlm_registry();
    if (!r || atomic_load(&started)) return 0;
    static const char *const NS_RESULT[] = {"namespace", "result", NULL};
    static const char *const NS[] = {"namespace", NULL};
    static const char *const NS_ASSET[] = {"namespace", "asset", NULL};
    int rc;
    if ((rc = metrics_counter_new(r, "terrane_source_observations_total",
                                  "AssetSource observations recorded, by namespace and result "
                                  "(succeeded or the worker's error code).",
                                  NS_RESULT, &S.observations)) ||
        (rc = metrics_histogram_new(
             r, "terrane_source_observation_duration_seconds",
             "Seconds an observation took in the worker (timings.totalMs).", NULL, DURATION_BUCKETS,
             sizeof DURATION_BUCKETS / sizeof DURATION_BUCKETS[0], &S.duration)) ||
        (rc = metrics_counter_new(r, "terrane_source_changes_total",
                                  "Observations that found a new source data version.", NS,
                                  &S.changes)) ||
        (rc = metrics_gauge_new(r, "terrane_asset_freshness_lag_seconds",
                                "Seconds since the data version of an asset with "
                                "spec.freshness last changed.",
                                NS_ASSET, &S.lag)))
        return rc;
    S.caches = c;
    if ((rc = metrics_add_collector(r, sample, NULL))) return rc;
    atomic_store(&started, true);
    return 0;
}

void srcm_stop(void)
{
    if (!atomic_exchange(&started, false)) return;
    metrics_remove_collector(ctlm_registry(), sample, NULL);
    S.caches = NULL;
}

void srcm_observed(const char *ns, const char *result, double seconds, bool changed)
{
    if (!atomic_load(&started)) return;
    metrics_inc(metrics_with(S.observations, ns, result));
    metrics_observe(metrics_get(S.duration, NULL), seconds);
    if (changed) metrics_inc(metrics_with(S.changes, ns));
}
