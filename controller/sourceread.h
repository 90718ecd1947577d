/*
 * sourceread.h - an AssetSource as the upstream of an AssetMaterialization
 * input (`from: <source>`; proto/README.md, "Reading a source"): when it
 * is ready, and what the input resolves to. reconcile.c asks these for any
 * upstream whose kind is AssetSource; everything else about upstreams
 * (data versions, Stale, refreshPolicy, lineage) is the same as for a
 * materialization, so a new source data version gives the downstream a
 * new data version and an unchanged observation changes nothing.
 *
 * Pure; strings and objects returned are borrowed from the source.
 */
#ifndef TERRANE_SOURCEREAD_H
#define TERRANE_SOURCEREAD_H

#include <jansson.h>
#include <stdbool.h>

bool sourceread_is(const json_t *obj); /* kind AssetSource */

/* Ready: observed (a data version), Available=True, one object. Else
 * false with *reason (UpstreamNotReady, SourceUnavailable,
 * PrefixSourceNotReadable) and *why. */
bool sourceread_ready(const json_t *src, const char **reason, const char **why);

/* The input it resolves to: spec.uri, spec.assetKey, status.dataVersion
 * and status.object (the Task's inputs[].observed; NULL when absent). */
void sourceread_input(const json_t *src, const char **uri, const char **asset_key,
                      const char **data_version, const json_t **observed);

#endif
