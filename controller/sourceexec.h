/*
 * sourceexec.h - one reconcile of one AssetSource key: gather its object
 * and observation pods from the caches (by key and by the
 * terrane.io/source index) and its schedule's time zone, ask source_decide
 * for a plan, carry it out: pod deletions, then the status (409 Conflict
 * retries, never overwrites), then the observation pod (AlreadyExists:
 * adopted), then the Events; metrics once the status is written.
 *
 * executor_process hands it keys with the SOURCE_KEY_PREFIX (source.h);
 * key here is "namespace/name" without it. Any thread.
 */
#ifndef TERRANE_SOURCEEXEC_H
#define TERRANE_SOURCEEXEC_H

#include "executor.h"
#include "source.h"

ctlm_reconcile_result sourceexec_process(const executor_config *cfg, const char *key);

#endif
