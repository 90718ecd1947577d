/*
 * sourceexec.c - gather, decide, apply for AssetSources (see sourceexec.h).
 */
#include "sourceexec.h"

#include "crd.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/clog.h"
#include "lib/cmem.h"
#include "objvec.h"
#include "podspec.h"
#include "sourcemetrics.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define KEY_MAX 512

/* Status first, then the pod (source.h): a conflict or failure of the
 * write starts nothing. */
static int apply(const executor_config *cfg, const char *key, const char *ns, const json_t *src,
                 const source_plan *p, bool *wrote)
{
    int retry = 0, rc;
    *wrote = false;
    for (size_t i = 0; i < p->n_deletes; i++) {
        const reconcile_delete *d = &p->deletes[i];
        rc = kube_delete(cfg->client, &KUBE_PODS, ns, d->name, d->uid, "Background");
        if (rc == 0)
            clog_info("pod deleted", "{s:s, s:s, s:s}", "key", key, "pod", d->name, "why", d->why);
        else if (rc != CERR_NOTFOUND && rc != CERR_CONFLICT)
            retry = 1;
    }
    if (p->status && src) {
        json_t *obj = json_copy((json_t *)src);
        if (!obj || json_object_set(obj, "status", p->status)) {
            json_decref(obj);
            cerr_oom();
            return 1;
        }
        rc = kube_update_status(cfg->client, &CRD_ASSETSOURCES, obj, NULL);
        json_decref(obj);
        if (rc == CERR_NOTFOUND) return 0;
        if (rc) {
            if (rc != CERR_CONFLICT)
                clog_warn("status update failed", "{s:s, s:s}", "key", key, "error",
                          cerr_message());
            return 1;
        }
        *wrote = true;
    }
    if (p->create) {
        const char *name = kobj_name(p->create);
        rc = kube_create(cfg->client, &KUBE_PODS, ns, p->create, NULL);
        if (rc == 0)
            clog_info("observation pod created", "{s:s, s:s}", "key", key, "pod", name);
        else if (rc == CERR_CONFLICT && !strcmp(kube_last_reason(), "AlreadyExists"))
            clog_info("pod exists, adopted", "{s:s, s:s}", "key", key, "pod", name);
        else {
            clog_error("pod create failed", "{s:s, s:s, s:s}", "key", key, "pod", name, "error",
                       cerr_message());
            if (src)
                events_record(cfg->events, src, "Warning", "PodCreateFailed", "creating pod %s: %s",
                              name, cerr_message());
            retry = 1;
        }
    }
    if (src && (*wrote || !p->status))
        for (size_t i = 0; i < p->n_events; i++)
            events_record(cfg->events, src, p->events[i].type, p->events[i].reason, "%s",
                          p->events[i].message);
    return retry;
}

ctlm_reconcile_result sourceexec_process(const executor_config *cfg, const char *key)
{
    char ns[KEY_MAX], name[KEY_MAX], label[64];
    const char *slash = strchr(key, '/');
    if (!slash || (size_t)(slash - key) >= sizeof ns) return CTLM_RECONCILE_SUCCESS;
    memcpy(ns, key, (size_t)(slash - key));
    ns[slash - key] = '\0';
    snprintf(name, sizeof name, "%s", slash + 1);
    podspec_materialization_label(name, label, sizeof label);
    char qkey[KEY_MAX + 8];
    snprintf(qkey, sizeof qkey, SOURCE_KEY_PREFIX "%s", key);

    ctlm_reconcile_result result = CTLM_RECONCILE_SUCCESS;
    json_t *src = informer_get(caches_sources(cfg->caches), ns, name);
    objvec pods = {0};
    source_plan plan = {0};
    cron_zone *zone = NULL;
    char zone_err[512] = "";
    int rc;
    if (caches_each_pod_of_source(cfg->caches, ns, label, objvec_collect, &pods) || pods.rc)
        goto retry;
    const char *tz = json_string_value(
        json_object_get(json_object_get(json_object_get(src, "spec"), "observe"), "timeZone"));
    if (tz && (rc = cron_zone_load(NULL, tz, &zone))) {
        if (rc == CERR_NOMEM) goto retry;
        snprintf(zone_err, sizeof zone_err, "spec.observe.timeZone: %s", cerr_message());
    }
    source_input in = {.namespace_ = ns,
                       .name = name,
                       .src = src,
                       .pods = pods.v,
                       .n_pods = pods.n,
                       .zone = zone,
                       .zone_error = zone_err[0] ? zone_err : NULL,
                       .now = time(NULL)};
    if (source_decide(cfg->reconcile, &in, &plan)) goto retry;
    bool wrote;
    rc = apply(cfg, qkey, ns, src, &plan, &wrote);
    if (wrote && plan.observed)
        srcm_observed(ns, plan.observed, plan.observed_seconds, plan.changed);
    if (rc) goto retry_quiet;
    clog_info("reconcile", "{s:s, s:s, s:b, s:i, s:i, s:i}", "key", qkey, "outcome", plan.outcome,
              "statusWritten", wrote, "created", plan.create ? 1 : 0, "deleted",
              (int)plan.n_deletes, "requeueAfter", (int)plan.requeue_after_s);
    wq_forget(cfg->queue, qkey);
    if (plan.requeue_after_s > 0) {
        wq_add_after(cfg->queue, qkey, (uint64_t)plan.requeue_after_s * RATELIMIT_S);
        result = CTLM_RECONCILE_REQUEUE_AFTER;
    }
    goto done;
retry:
    clog_error("reconcile failed", "{s:s, s:s}", "key", qkey, "error", cerr_message());
retry_quiet:
    result = cerr_code() == CERR_CONFLICT ? CTLM_RECONCILE_REQUEUE : CTLM_RECONCILE_ERROR;
    wq_add_rate_limited(cfg->queue, qkey);
done:
    source_plan_clear(&plan);
    objvec_clear(&pods);
    cron_zone_free(zone);
    json_decref(src);
    return result;
}
