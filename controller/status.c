/*
 * status.c - status building and pod status reading (see status.h).
 */
#include "status.h"

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <stdlib.h>
#include <string.h>

int status_cond(json_t *st, const char *type, bool status, const char *reason, const char *message,
                long long generation, time_t now)
{
    kobj_condition c = {.type = type,
                        .status = status ? "True" : "False",
                        .reason = reason,
                        .message = message ? message : "",
                        .observed_generation = generation};
    return kobj_cond_set(st, &c, now, NULL);
}

int status_set_str(json_t *st, const char *key, const char *value)
{
    if (!value) {
        json_object_del(st, key);
        return 0;
    }
    const json_t *cur = json_object_get(st, key);
    if (json_is_string(cur) && strcmp(json_string_value(cur), value) == 0) return 0;
    if (json_object_set_new(st, key, json_string(value))) return cerr_oom();
    return 0;
}

static void keep(int *rc, int r)
{
    if (r && !*rc) *rc = r;
}

void status_keep_cond(int *rc, json_t *st, const char *type, bool status, const char *reason,
                      const char *message, long long generation, time_t now)
{
    keep(rc, status_cond(st, type, status, reason, message ? message : "", generation, now));
}

void status_keep_str(int *rc, json_t *st, const char *key, const char *value)
{
    keep(rc, status_set_str(st, key, value));
}

void status_keep_int(int *rc, json_t *st, const char *key, long long value)
{
    keep(rc, status_set_int(st, key, value));
}

void status_keep_time(int *rc, json_t *st, const char *key, time_t t)
{
    keep(rc, status_set_time(st, key, t));
}

int status_set_int(json_t *st, const char *key, long long value)
{
    const json_t *cur = json_object_get(st, key);
    if (json_is_integer(cur) && json_integer_value(cur) == value) return 0;
    if (json_object_set_new(st, key, json_integer(value))) return cerr_oom();
    return 0;
}

int status_set_time(json_t *st, const char *key, time_t t)
{
    char buf[KOBJ_TIME_LEN];
    int rc = kobj_time_format(t, buf);
    return rc ? rc : status_set_str(st, key, buf);
}

const char *status_str(const json_t *st, const char *key)
{
    const json_t *v = json_is_object(st) ? json_object_get(st, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

long long status_int(const json_t *st, const char *key)
{
    const json_t *v = json_is_object(st) ? json_object_get(st, key) : NULL;
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

const char *status_cond_reason(const json_t *st, const char *type)
{
    kobj_condition c;
    if (!json_is_object(st) || kobj_cond_get(st, type, &c) || !c.reason) return "";
    return c.reason;
}

bool status_cond_true(const json_t *st, const char *type)
{
    return json_is_object(st) && kobj_cond_is_true(st, type);
}

/* --- pods -------------------------------------------------------------------------- */

static const json_t *get(const json_t *o, const char *key)
{
    return json_is_object(o) ? json_object_get(o, key) : NULL;
}

static const char *get_str(const json_t *o, const char *key)
{
    const json_t *v = get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *pod_phase(const json_t *pod)
{
    const char *p = get_str(get(pod, "status"), "phase");
    return p ? p : "";
}

bool pod_terminal(const json_t *pod)
{
    const char *p = pod_phase(pod);
    return !strcmp(p, "Succeeded") || !strcmp(p, "Failed");
}

bool pod_active(const json_t *pod)
{
    return !pod_terminal(pod) && !kobj_is_deleting(pod);
}

const char *pod_node(const json_t *pod)
{
    const char *n = get_str(get(pod, "spec"), "nodeName");
    return n && *n ? n : NULL;
}

static const json_t *first_container_status(const json_t *pod)
{
    const json_t *list = get(get(pod, "status"), "containerStatuses");
    return json_is_array(list) ? json_array_get(list, 0) : NULL;
}

const json_t *pod_terminated(const json_t *pod)
{
    const json_t *t = get(get(first_container_status(pod), "state"), "terminated");
    return json_is_object(t) ? t : NULL;
}

static const json_t *pod_condition(const json_t *pod, const char *type)
{
    const json_t *conds = get(get(pod, "status"), "conditions");
    for (size_t i = 0; i < json_array_size(conds); i++) {
        const json_t *c = json_array_get(conds, i);
        const char *t = get_str(c, "type");
        if (t && !strcmp(t, type)) return c;
    }
    return NULL;
}

static time_t parse_time(const char *s)
{
    struct timespec ts;
    return s && kobj_time_parse(s, &ts) == 0 ? ts.tv_sec : 0;
}

time_t pod_finished_at(const json_t *pod)
{
    time_t t = parse_time(get_str(pod_terminated(pod), "finishedAt"));
    if (!t) t = parse_time(get_str(pod_condition(pod, "Ready"), "lastTransitionTime"));
    if (!t) t = parse_time(get_str(get(pod, "metadata"), "creationTimestamp"));
    return t;
}

const char *pod_unschedulable_message(const json_t *pod)
{
    if (pod_node(pod)) return NULL;
    const json_t *c = pod_condition(pod, "PodScheduled");
    const char *s = get_str(c, "status");
    if (!s || strcmp(s, "False")) return NULL;
    const char *m = get_str(c, "message");
    return m && *m ? m : get_str(c, "reason");
}

const char *pod_waiting_reason(const json_t *pod, const char **message)
{
    const json_t *w = get(get(first_container_status(pod), "state"), "waiting");
    if (message) *message = get_str(w, "message");
    return get_str(w, "reason");
}

bool pod_disrupted(const json_t *pod, const char **why)
{
    static const char *const reasons[] = {"Preempted",  "Evicted",  "Shutdown",
                                          "Terminated", "NodeLost", "UnexpectedAdmissionError",
                                          NULL};
    const json_t *c = pod_condition(pod, "DisruptionTarget");
    const char *s = get_str(c, "status");
    if (s && !strcmp(s, "True")) {
        if (why) {
            *why = get_str(get(pod, "status"), "reason");
            if (!*why) *why = get_str(c, "reason");
        }
        return true;
    }
    const char *r = get_str(get(pod, "status"), "reason");
    for (size_t i = 0; r && reasons[i]; i++) {
        if (!strcmp(r, reasons[i])) {
            if (why) *why = r;
            return true;
        }
    }
    return false;
}

long long pod_annotation_int(const json_t *pod, const char *key)
{
    const char *v = get_str(get(get(pod, "metadata"), "annotations"), key);
    if (!v || !*v) return -1;
    char *end;
    long long n = strtoll(v, &end, 10);
    return *end || n < 0 ? -1 : n;
}
