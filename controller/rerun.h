/*
 * rerun.h - the terrane.io/rerun annotation: a value other than the
 * object's status.rerunToken asks for a re-run once (`kubectl annotate am
 * NAME terrane.io/rerun=$(date +%s) --overwrite`): a Failed
 * AssetMaterialization is re-attempted with a fresh retry budget, an
 * AssetSource is observed now. The controller then writes the value to
 * status.rerunToken, so one value acts once. Pure; any thread.
 */
#ifndef TERRANE_RERUN_H
#define TERRANE_RERUN_H

#include <jansson.h>

#define RERUN_ANNOTATION "terrane.io/rerun"
#define RERUN_TOKEN "rerunToken"

/* The annotation's value when it asks for a re-run (borrowed from obj),
 * else NULL. status: the object's current status (may be NULL). */
const char *rerun_requested(const json_t *obj, const json_t *status);

#endif
