/*
 * partfixtures.h - objects the partition mapping tests read: an observed
 * AssetSource, and a partitioned AssetMaterialization with its first
 * partitions materialized (status.partitions as partstate.h writes it).
 * Header-only, for tests; every object is a new reference.
 */
#ifndef TERRANE_TEST_PARTFIXTURES_H
#define TERRANE_TEST_PARTFIXTURES_H

#include "dataversion.h"
#include "partmap.h"
#include "partstate.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A source of namespace ns observed at data version hexdigit x 64, last
 * changed at changed. */
static inline json_t *fx_source(const char *ns, const char *name, char hexdigit,
                                const char *changed)
{
    char dv[DV_LEN + 1];
    snprintf(dv, sizeof dv, "sha256:%064d", 0);
    memset(dv + 7, hexdigit, 64);
    return json_pack("{s:s,s:{s:s,s:s},s:{s:s,s:s},s:{s:s,s:s,s:i,s:{s:s},s:[{s:s,s:s}]}}", "kind",
                     "AssetSource", "metadata", "name", name, "namespace", ns, "spec", "uri",
                     "s3://raw/x.tif", "assetKey", "raw/x", "status", "dataVersion", dv,
                     "lastChangedAt", changed, "objectCount", 1, "object", "etag", "e",
                     "conditions", "type", "Available", "status", "True");
}

/* A cog asset partitioned as partitions (borrowed) reading one input
 * {name: src, field: value}, its first total partitions materialized at
 * data version udv, its watermark at mark. */
static inline json_t *fx_upstream(const char *ns, const char *name, const char *asset_key,
                                  const json_t *partitions, uint64_t total, const char *udv,
                                  const char *mark, const char *field, const char *value)
{
    partstate *ps = partstate_new();
    if (!ps || partstate_load(ps, NULL, udv)) return NULL;
    partstate_set_total(ps, total);
    for (uint64_t i = 0; i < total; i++)
        if (partstate_succeeded(ps, i)) return NULL;
    json_t *pj = partstate_json(ps);
    partstate_free(ps);
    if (!pj) return NULL;
    json_object_set_new(pj, PARTMAP_WATERMARK, json_string(mark));
    return json_pack("{s:s,s:{s:s,s:s,s:s,s:i},s:{s:s,s:s,s:{s:s},s:[{s:s,s:s}],s:O},"
                     "s:{s:s,s:s,s:i,s:o}}",
                     "kind", "AssetMaterialization", "metadata", "name", name, "namespace", ns,
                     "uid", name, "generation", 1, "spec", "assetKey", asset_key, "operation",
                     "cog", "output", "uri", "s3://assets", "inputs", "name", "src", field, value,
                     "partitions", partitions, "status", "phase", "Succeeded", "dataVersion", udv,
                     "observedGeneration", 1, "partitions", pj);
}

#endif
