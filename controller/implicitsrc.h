/*
 * implicitsrc.h - plain `uri:` inputs observed like sources. An external
 * URI names bytes that can change under it, so the URI alone must not be
 * its data version: for each s3:// or https:// input of an
 * AssetMaterialization the controller keeps an AssetSource of its own,
 * owned by the materialization (ownerReference, controller: true, so it
 * goes with it), named "<asset>-in-<input>", and reads the input through
 * it exactly as `from: <source>` (proto/README.md, "Plain uri: inputs"):
 * the input waits for the first observation, its data version is the
 * observed one, and the worker checks it reads the observed version.
 *
 * An observation runs before the first run (the source is new), when the
 * asset is re-created (a new owner: the old source is deleted, a new one
 * observed), and when terrane.io/rerun on the asset changes (copied onto
 * the source). Pure helpers, except implicitsrc_ensure (API calls).
 * Returned json_t are new references the caller owns.
 */
#ifndef TERRANE_IMPLICITSRC_H
#define TERRANE_IMPLICITSRC_H

#include "kube/informer.h"
#include "kube/kube.h"
#include "pools.h"
#include "spec.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* metadata.name is at most 253 bytes (a DNS-1123 subdomain). */
#define IMPLICITSRC_NAME_MAX 253
/* Label on implicit sources: the materialization they belong to. */
#define IMPLICITSRC_L_FOR "terrane.io/input-of"

/* Whether input i of s is read through an implicit source (a uri: input
 * of s3:// or https:// of an unpartitioned asset). */
bool implicitsrc_applies(const am_spec *s, size_t i);

/* The source's name for input `input` of materialization `am`:
 * "<am>-in-<input>" with '_' as '-', plus "-" and 10 hex digits of
 * SHA-256(am NUL input) when that was changed or is too long (so two
 * inputs never share a source). out has IMPLICITSRC_NAME_MAX + 1 bytes. */
void implicitsrc_name(const char *am, const char *input, char *out, size_t size);

/* Whether src is the implicit source of this materialization (its
 * controller ownerReference has am's uid). */
bool implicitsrc_owned(const json_t *src, const json_t *am);

/* Whether the source's last observation found its object missing or
 * unreadable (Available=False, SourceNotFound or SourceAccessDenied);
 * *why: the condition's message (borrowed from src). */
bool implicitsrc_missing(const json_t *src, const char **why);

/* The AssetSource to create for input i: spec.uri the input's URI,
 * spec.assetKey "<assetKey>/inputs/<input>", spec.listing.uri the asset's
 * output prefix, spec.observe.pool = pool (the asset's; NULL: none, the
 * default pool), the asset's terrane.io/rerun annotation. 0 or
 * CERR_NOMEM. */
int implicitsrc_build(const json_t *am, const am_spec *s, size_t i, const char *pool_nm,
                      json_t **out);

/* The pool the asset's own pods run on (its tags, pools.h), so its
 * sources are observed where its credentials are; NULL when the tags
 * name no known pool (the asset fails UnknownPool; the default pool). */
const char *implicitsrc_pool(const pools *ps, const am_spec *s);

/* Brings the implicit sources of am in line with its spec: creates the
 * missing ones (AlreadyExists is fine), deletes one owned by another
 * object of the same name (a re-created asset; its own is created once
 * the delete is seen), copies a changed terrane.io/rerun onto its own and
 * moves it to the asset's pool when that changed (ps: the pools). 0, or
 * the first failure (the key is then retried). */
int implicitsrc_ensure(kube_client *client, informer *sources, const pools *ps, const json_t *am,
                       const am_spec *s);

#endif
