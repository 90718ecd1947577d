/*
 * kobj.c - Kubernetes object accessors (see kobj.h).
 */
#include "kube/kobj.h"

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jtype.h"

#include <stdio.h>
#include <string.h>

/* metav1.Condition's limits (apimachinery validation). */
#define COND_REASON_MAX 1024
#define COND_MESSAGE_MAX 32768
#define COND_TYPE_MAX 316

/* obj[key] when obj is an object, else NULL. */
static const json_t *field(const json_t *obj, const char *key)
{
    return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

static const char *str_field(const json_t *obj, const char *key)
{
    const json_t *v = field(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const json_t *meta(const json_t *obj)
{
    const json_t *m = field(obj, "metadata");
    return json_is_object(m) ? m : NULL;
}

/* --- metadata --------------------------------------------------------------- */

const char *kobj_namespace(const json_t *obj)
{
    return str_field(meta(obj), "namespace");
}

const char *kobj_name(const json_t *obj)
{
    return str_field(meta(obj), "name");
}

const char *kobj_uid(const json_t *obj)
{
    return str_field(meta(obj), "uid");
}

const char *kobj_resource_version(const json_t *obj)
{
    return str_field(meta(obj), "resourceVersion");
}

long long kobj_generation(const json_t *obj)
{
    const json_t *g = field(meta(obj), "generation");
    return json_is_integer(g) ? json_integer_value(g) : 0;
}

const char *kobj_deletion_timestamp(const json_t *obj)
{
    return str_field(meta(obj), "deletionTimestamp");
}

bool kobj_is_deleting(const json_t *obj)
{
    const char *ts = kobj_deletion_timestamp(obj);
    return ts && ts[0];
}

const json_t *kobj_labels(const json_t *obj)
{
    const json_t *l = field(meta(obj), "labels");
    return json_is_object(l) ? l : NULL;
}

const char *kobj_label(const json_t *obj, const char *key)
{
    return str_field(kobj_labels(obj), key);
}

int kobj_key(const json_t *obj, char *buf, size_t size)
{
    const char *ns = kobj_namespace(obj), *name = kobj_name(obj);
    if (size) buf[0] = '\0';
    if (!name || !name[0]) return cerr_set(CERR_INVALID, "object has no metadata.name");
    int n = ns && ns[0] ? snprintf(buf, size, "%s/%s", ns, name) : snprintf(buf, size, "%s", name);
    if (n < 0 || (size_t)n >= size) {
        if (size) buf[0] = '\0';
        return cerr_set(CERR_TOOBIG, "object key longer than %zu bytes", size);
    }
    return 0;
}

static int type_error(const char *path, const char *want, const json_t *got)
{
    return cerr_set(CERR_INVALID, "%s: expected %s, got %s", path, want, jtype_name(got));
}

/* Optional string field: absent or null is fine, any other type is not. */
static int opt_string(const json_t *obj, const char *key, const char *path, const char **out)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) {
        char p[128];
        snprintf(p, sizeof p, "%s.%s", path, key);
        return type_error(p, "string", v);
    }
    *out = json_string_value(v);
    return 0;
}

static int string_map(const json_t *obj, const char *key, const json_t **out)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v)) {
        char p[64];
        snprintf(p, sizeof p, "metadata.%s", key);
        return type_error(p, "object", v);
    }
    const char *k;
    const json_t *val;
    json_object_foreach((json_t *)v, k, val)
    {
        if (!json_is_string(val))
            return cerr_set(CERR_INVALID, "metadata.%s.%.200s: expected string, got %s", key, k,
                            jtype_name(val));
    }
    *out = v;
    return 0;
}

int kobj_meta_decode(const json_t *obj, kobj_meta *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(obj)) return type_error("object", "object", obj);
    const json_t *m = json_object_get(obj, "metadata");
    if (!json_is_object(m)) return type_error("metadata", "object", m);
    int rc;
    if ((rc = opt_string(m, "namespace", "metadata", &out->namespace_)) ||
        (rc = opt_string(m, "name", "metadata", &out->name)) ||
        (rc = opt_string(m, "uid", "metadata", &out->uid)) ||
        (rc = opt_string(m, "resourceVersion", "metadata", &out->resource_version)) ||
        (rc = opt_string(m, "deletionTimestamp", "metadata", &out->deletion_timestamp)) ||
        (rc = string_map(m, "labels", &out->labels)) ||
        (rc = string_map(m, "annotations", &out->annotations)))
        goto fail;
    const json_t *g = json_object_get(m, "generation");
    if (g && !json_is_null(g)) {
        if (!json_is_integer(g)) {
            rc = type_error("metadata.generation", "integer", g);
            goto fail;
        }
        out->generation = json_integer_value(g);
    }
    const json_t *refs = json_object_get(m, "ownerReferences");
    if (refs && !json_is_null(refs)) {
        if (!json_is_array(refs)) {
            rc = type_error("metadata.ownerReferences", "array", refs);
            goto fail;
        }
        kobj_owner_ref r;
        for (size_t i = 0; i < json_array_size(refs); i++)
            if ((rc = kobj_owner_ref_at(obj, i, &r))) goto fail;
        out->owner_references = refs;
    }
    return 0;
fail:
    memset(out, 0, sizeof *out);
    return rc;
}

/* --- ownerReferences -------------------------------------------------------- */

static const json_t *owner_refs(const json_t *obj)
{
    const json_t *r = field(meta(obj), "ownerReferences");
    return json_is_array(r) ? r : NULL;
}

size_t kobj_owner_ref_count(const json_t *obj)
{
    return json_array_size(owner_refs(obj));
}

static int opt_bool(const json_t *e, const char *key, size_t i, bool *out)
{
    const json_t *v = json_object_get(e, key);
    *out = false;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v))
        return cerr_set(CERR_INVALID, "metadata.ownerReferences[%zu].%s: expected boolean, got %s",
                        i, key, jtype_name(v));
    *out = json_is_true(v);
    return 0;
}

int kobj_owner_ref_at(const json_t *obj, size_t i, kobj_owner_ref *out)
{
    static const char *const names[] = {"apiVersion", "kind", "name", "uid"};
    memset(out, 0, sizeof *out);
    const json_t *refs = owner_refs(obj);
    if (i >= json_array_size(refs))
        return cerr_set(CERR_NOTFOUND, "metadata.ownerReferences[%zu]: no such entry", i);
    const json_t *e = json_array_get(refs, i);
    if (!json_is_object(e))
        return cerr_set(CERR_INVALID, "metadata.ownerReferences[%zu]: expected object, got %s", i,
                        jtype_name(e));
    const char **dst[] = {&out->api_version, &out->kind, &out->name, &out->uid};
    for (size_t k = 0; k < 4; k++) {
        const json_t *v = json_object_get(e, names[k]);
        if (!json_is_string(v) || !json_string_length(v)) {
            memset(out, 0, sizeof *out);
            return cerr_set(CERR_INVALID,
                            "metadata.ownerReferences[%zu].%s: expected non-empty string, got %s",
                            i, names[k], v && json_is_string(v) ? "\"\"" : jtype_name(v));
        }
        *dst[k] = json_string_value(v);
    }
    int rc;
    if ((rc = opt_bool(e, "controller", i, &out->controller)) ||
        (rc = opt_bool(e, "blockOwnerDeletion", i, &out->block_owner_deletion))) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    return 0;
}

int kobj_controller_ref(const json_t *obj, kobj_owner_ref *out)
{
    size_t n = kobj_owner_ref_count(obj);
    for (size_t i = 0; i < n; i++)
        if (kobj_owner_ref_at(obj, i, out) == 0 && out->controller) return 0;
    memset(out, 0, sizeof *out);
    return cerr_set(CERR_NOTFOUND, "object has no controller ownerReference");
}

json_t *kobj_owner_ref_new(const kobj_owner_ref *ref)
{
    return json_pack("{s:s*, s:s*, s:s*, s:s*, s:b, s:b}", "apiVersion", ref->api_version, "kind",
                     ref->kind, "name", ref->name, "uid", ref->uid, "controller",
                     (int)ref->controller, "blockOwnerDeletion", (int)ref->block_owner_deletion);
}

/* --- conditions ---------------------------------------------------------------- */

static json_t *find_cond(const json_t *status, const char *type, size_t *index)
{
    const json_t *conds = field(status, "conditions");
    if (!json_is_array(conds)) return NULL;
    for (size_t i = 0; i < json_array_size(conds); i++) {
        json_t *c = json_array_get(conds, i);
        const char *t = str_field(c, "type");
        if (t && strcmp(t, type) == 0) {
            if (index) *index = i;
            return c;
        }
    }
    return NULL;
}

int kobj_cond_get(const json_t *status, const char *type, kobj_condition *out)
{
    memset(out, 0, sizeof *out);
    const json_t *c = type ? find_cond(status, type, NULL) : NULL;
    if (!c) return cerr_set(CERR_NOTFOUND, "no condition %s", type ? type : "(null)");
    out->type = str_field(c, "type");
    out->status = str_field(c, "status");
    out->reason = str_field(c, "reason");
    out->message = str_field(c, "message");
    out->last_transition_time = str_field(c, "lastTransitionTime");
    const json_t *g = json_object_get(c, "observedGeneration");
    out->observed_generation = json_is_integer(g) ? json_integer_value(g) : 0;
    return 0;
}

bool kobj_cond_is_true(const json_t *status, const char *type)
{
    kobj_condition c;
    return kobj_cond_get(status, type, &c) == 0 && c.status && strcmp(c.status, "True") == 0;
}

/* metav1.Condition's reason pattern: ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$ */
static bool valid_reason(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > COND_REASON_MAX) return false;
    if (!((r[0] >= 'A' && r[0] <= 'Z') || (r[0] >= 'a' && r[0] <= 'z'))) return false;
    for (size_t i = 1; i < n; i++) {
        char ch = r[i];
        bool alnum = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                     (ch >= '0' && ch <= '9') || ch == '_';
        if (!alnum && !((ch == ',' || ch == ':') && i + 1 < n)) return false;
    }
    return true;
}

/* Sets obj[key] to a string unless it already is that string. */
static int set_str(json_t *obj, const char *key, const char *val, bool *changed)
{
    const char *cur = str_field(obj, key);
    if (cur && strcmp(cur, val) == 0) return 0;
    if (json_object_set_new(obj, key, json_string(val))) return cerr_oom();
    *changed = true;
    return 0;
}

int kobj_cond_set(json_t *status, const kobj_condition *c, time_t now, bool *changed)
{
    bool dummy = false;
    if (!changed) changed = &dummy;
    *changed = false;
    if (!json_is_object(status)) return type_error("status", "object", status);
    if (!c->type || !c->type[0] || strlen(c->type) > COND_TYPE_MAX)
        return cerr_set(CERR_INVALID, "condition type must be 1..%d characters", COND_TYPE_MAX);
    if (!c->status ||
        (strcmp(c->status, "True") && strcmp(c->status, "False") && strcmp(c->status, "Unknown")))
        return cerr_set(CERR_INVALID, "condition %s: status must be True, False or Unknown",
                        c->type);
    if (!c->reason || !valid_reason(c->reason))
        return cerr_set(CERR_INVALID, "condition %s: reason \"%.64s\" is not CamelCase", c->type,
                        c->reason ? c->reason : "");
    const char *msg = c->message ? c->message : "";
    if (strlen(msg) > COND_MESSAGE_MAX)
        return cerr_set(CERR_INVALID, "condition %s: message longer than %d bytes", c->type,
                        COND_MESSAGE_MAX);
    char nowbuf[KOBJ_TIME_LEN];
    const char *ltt = c->last_transition_time;
    if (!ltt) {
        int rc = kobj_time_format(now, nowbuf);
        if (rc) return rc;
        ltt = nowbuf;
    }

    json_t *conds = json_object_get(status, "conditions");
    if (!json_is_array(conds)) {
        conds = json_array();
        if (!conds || json_object_set_new(status, "conditions", conds)) return cerr_oom();
    }
    json_t *cur = find_cond(status, c->type, NULL);
    if (!cur) {
        json_t *n = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "type", c->type, "status",
                              c->status, "observedGeneration", (json_int_t)c->observed_generation,
                              "lastTransitionTime", ltt, "reason", c->reason, "message", msg);
        if (!n || json_array_append_new(conds, n)) return cerr_oom();
        *changed = true;
        return 0;
    }
    int rc;
    const char *old_status = str_field(cur, "status");
    if (!old_status || strcmp(old_status, c->status) != 0) {
        if ((rc = set_str(cur, "status", c->status, changed)) ||
            (rc = set_str(cur, "lastTransitionTime", ltt, changed)))
            return rc;
    } else if (!str_field(cur, "lastTransitionTime")) {
        /* A hand-edited condition without a time gets one, once. */
        if ((rc = set_str(cur, "lastTransitionTime", ltt, changed))) return rc;
    }
    if ((rc = set_str(cur, "reason", c->reason, changed)) ||
        (rc = set_str(cur, "message", msg, changed)))
        return rc;
    const json_t *g = json_object_get(cur, "observedGeneration");
    if (!json_is_integer(g) || json_integer_value(g) != c->observed_generation) {
        if (json_object_set_new(cur, "observedGeneration", json_integer(c->observed_generation)))
            return cerr_oom();
        *changed = true;
    }
    return 0;
}

int kobj_cond_remove(json_t *status, const char *type)
{
    size_t i;
    if (!type || !find_cond(status, type, &i))
        return cerr_set(CERR_NOTFOUND, "no condition %s", type ? type : "(null)");
    json_array_remove(json_object_get(status, "conditions"), i);
    return 0;
}

/* --- metav1.Status ---------------------------------------------------------------- */

int kobj_status_decode(const json_t *obj, kobj_status *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(obj)) return type_error("Status", "object", obj);
    const char *kind = str_field(obj, "kind");
    if (kind && strcmp(kind, "Status") != 0)
        return cerr_set(CERR_INVALID, "expected a Status, got kind %.64s", kind);
    const json_t *code = json_object_get(obj, "code");
    if (json_is_integer(code) && json_integer_value(code) > 0 && json_integer_value(code) < 1000)
        out->code = (int)json_integer_value(code);
    out->status = str_field(obj, "status");
    out->reason = str_field(obj, "reason");
    out->message = str_field(obj, "message");
    return 0;
}

int kobj_http_cerr(int http_code)
{
    switch (http_code) {
    case 400:
    case 422:
        return CERR_INVALID;
    case 401:
    case 403:
        return CERR_FORBIDDEN;
    case 404:
        return CERR_NOTFOUND;
    case 408:
        return CERR_TIMEOUT;
    case 409:
        return CERR_CONFLICT;
    case 410:
        return CERR_GONE;
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
        return CERR_AGAIN;
    default:
        return CERR_IO;
    }
}

int kobj_status_cerr(const kobj_status *st)
{
    /* The watch cache answers a too-old resourceVersion with 410 and reason
     * Expired (older servers: Gone); either means "relist". */
    if (st->reason && (!strcmp(st->reason, "Expired") || !strcmp(st->reason, "Gone")))
        return CERR_GONE;
    return kobj_http_cerr(st->code);
}

int kobj_status_set_error(const kobj_status *st)
{
    int code = kobj_status_cerr(st);
    return cerr_set(code, "%.64s (%d): %.800s",
                    st->reason && st->reason[0] ? st->reason : "Failure", st->code,
                    st->message && st->message[0] ? st->message : "no message");
}

/* --- RFC 3339 ------------------------------------------------------------------- */

static bool is_leap(long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(long y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic:
 * 400-year eras of 146097 days, years starting in March so the leap day
 * comes last). */
static long long days_from_civil(long y, int m, int d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153L * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (long long)era * 146097 + doe - 719468;
}

int kobj_time_format(time_t t, char out[KOBJ_TIME_LEN])
{
    struct tm tm;
    out[0] = '\0';
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return cerr_set(CERR_INVALID, "time %lld is outside years 0..9999", (long long)t);
    char tmp[80]; /* room for any int, to keep the compiler's truncation check quiet */
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, tmp, KOBJ_TIME_LEN - 1);
    out[KOBJ_TIME_LEN - 1] = '\0';
    return 0;
}

int kobj_microtime_format(const struct timespec *ts, char out[KOBJ_MICROTIME_LEN])
{
    char base[KOBJ_TIME_LEN];
    int rc = kobj_time_format(ts->tv_sec, base);
    if (rc) {
        out[0] = '\0';
        return rc;
    }
    long us = ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L ? ts->tv_nsec / 1000 : 0;
    char tmp[80];
    base[19] = '\0'; /* drop the Z */
    snprintf(tmp, sizeof tmp, "%s.%06ldZ", base, us);
    memcpy(out, tmp, KOBJ_MICROTIME_LEN - 1);
    out[KOBJ_MICROTIME_LEN - 1] = '\0';
    return 0;
}

/* n decimal digits at s into *v. */
static bool digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

int kobj_time_parse(const char *s, struct timespec *out)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    long nsec = 0;
    memset(out, 0, sizeof *out);
    if (!s) return cerr_set(CERR_INVALID, "time: missing");
    if (strnlen(s, 20) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        goto bad;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
        goto bad;
    const char *p = s + 19;
    if (*p == '.') {
        int n = 0;
        long scale = 100000000L;
        for (p++; *p >= '0' && *p <= '9'; p++, n++) {
            if (n >= 9) goto bad;
            nsec += (*p - '0') * scale;
            scale /= 10;
        }
        if (n == 0) goto bad;
    }
    int sign = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            goto bad;
        p += 6;
    } else {
        goto bad;
    }
    if (*p) goto bad;
    long long t = days_from_civil(y, mo, d) * 86400LL + h * 3600LL + mi * 60LL + sec;
    t -= sign * (oh * 3600LL + om * 60LL);
    out->tv_sec = (time_t)t;
    out->tv_nsec = nsec;
    return 0;
bad:
    return cerr_set(CERR_INVALID, "time \"%.40s\" is not RFC 3339 (2006-01-02T15:04:05Z)", s);
}
