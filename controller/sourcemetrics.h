/*
 * sourcemetrics.h - the AssetSource metrics (proto/README.md, "Sources"):
 * terrane_source_observations_total{namespace,result},
 * terrane_source_observation_duration_seconds, terrane_source_changes_total
 * {namespace}, and the gauge terrane_asset_freshness_lag_seconds
 * {namespace,asset} (now - lastChangedAt of every source with
 * spec.freshness), computed from the sources informer at each scrape.
 *
 * srcm_start registers them in the controller's registry (ctlmetrics.h)
 * once; before it, or without a registry, the updates are no-ops. Any
 * thread. A deleted source's lag series (or one whose spec.freshness was
 * removed) disappears at the next scrape (metrics_hide_all).
 */
#ifndef TERRANE_SOURCEMETRICS_H
#define TERRANE_SOURCEMETRICS_H

#include "caches.h"

#include <stdbool.h>

/* 0, or the registry's error. c is borrowed until srcm_stop. */
int srcm_start(caches *c);
void srcm_stop(void);

/* One recorded observation: result "succeeded" or an error code. */
void srcm_observed(const char *ns, const char *result, double seconds, bool changed);

#endif
