/*
 * fuzz_c_kobj.c - libFuzzer target for the controller's decoders of
 * untrusted bytes: Kubernetes object accessors and conditions, Status
 * bodies, canonical JSON / data versions, the pools configuration loader,
 * RFC 3339 times and resource quantities.
 *
 * Byte 0 selects the decoder (mod 5); the rest is its input:
 *   0  a Kubernetes object (JSON): metadata, owner refs, conditions, Status,
 *      canonical JSON and data version with the object as params
 *   1  a pools configuration (JSON), then every pool selected and sized
 *   2  {"config": pools, "tags": {...}, "resources": {...}} for selection
 *      and resource overrides
 *   3  an RFC 3339 time (must round-trip through format when accepted)
 *   4  a resource quantity
 * The target aborts when a documented invariant does not hold.
 */
#include "dataversion.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "pools.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void object(const char *buf, size_t len)
{
    json_error_t e;
    json_t *o = json_loadb(buf, len, 0, &e);
    if (!o) return;
    char key[300];
    (void)kobj_namespace(o);
    (void)kobj_uid(o);
    (void)kobj_generation(o);
    (void)kobj_is_deleting(o);
    (void)kobj_label(o, "app");
    if (kobj_key(o, key, sizeof key) == 0 && !kobj_name(o)) abort();
    kobj_meta m;
    if (kobj_meta_decode(o, &m) == 0 && m.name && strcmp(m.name, kobj_name(o)) != 0) abort();
    kobj_owner_ref r;
    for (size_t i = 0; i < kobj_owner_ref_count(o); i++)
        if (kobj_owner_ref_at(o, i, &r) == 0 && (!r.uid || !r.kind)) abort();
    if (kobj_controller_ref(o, &r) == 0) {
        json_t *n = kobj_owner_ref_new(&r);
        json_decref(n);
    }
    kobj_status st;
    if (kobj_status_decode(o, &st) == 0) (void)kobj_status_set_error(&st);

    /* conditions on the object's status (or a fresh one) */
    json_t *status = json_object_get(o, "status");
    if (!json_is_object(status)) status = NULL;
    kobj_condition c;
    if (status && kobj_cond_get(status, "Ready", &c) == 0 && c.last_transition_time) {
        struct timespec ts;
        (void)kobj_time_parse(c.last_transition_time, &ts);
    }
    if (status) {
        kobj_condition set = {.type = "Ready",
                              .status = "True",
                              .reason = "Fuzzed",
                              .message = "m",
                              .observed_generation = kobj_generation(o)};
        bool changed;
        if (kobj_cond_set(status, &set, 1700000000, &changed) == 0) {
            if (!kobj_cond_is_true(status, "Ready")) abort();
            if (kobj_cond_set(status, &set, 1700000060, &changed) != 0 || changed) abort();
        }
        (void)kobj_cond_remove(status, "Ready");
    }

    /* canonical JSON must itself parse back to the same canonical form */
    char *canon = NULL, *again = NULL;
    size_t clen = 0;
    if (dv_canonical(o, &canon, &clen) == 0) {
        json_t *back = json_loadb(canon, clen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        if (back) {
            if (dv_canonical(back, &again, NULL) != 0 || strcmp(canon, again) != 0) abort();
            json_decref(back);
        }
        char dv[DV_LEN + 1];
        dv_input in = {.name = "in", .uri = "s3://b/k"};
        if (dv_compute("op", o, &in, 1, "v", dv) == 0 && !dv_valid(dv)) abort();
    }
    cmem_free(canon);
    cmem_free(again);
    json_decref(o);
}

static void use_pools(const pools *ps, const json_t *tags, const json_t *overrides)
{
    const pool *p;
    json_t *res;
    if (pools_select(ps, tags, &p) == 0) {
        if (!p) abort();
        if (pools_resources(p, overrides, &res) == 0) json_decref(res);
    }
    for (size_t i = 0; i < pools_count(ps); i++) {
        p = pools_at(ps, i);
        if (pools_find(ps, pool_name(p)) != p) abort();
        size_t steps = 0;
        for (const pool *q = pool_escalation(p); q; q = pool_escalation(q))
            if (++steps > pools_count(ps)) abort(); /* validated: no cycles */
        if (pools_resources(p, NULL, &res) == 0) json_decref(res);
    }
}

static void pools_bytes(const char *buf, size_t len)
{
    pools *ps = NULL;
    if (pools_load_bytes(buf, len, &ps) != 0) {
        if (ps || !cerr_message()[0]) abort();
        return;
    }
    use_pools(ps, NULL, NULL);
    pools_free(ps);
}

static void pools_selection(const char *buf, size_t len)
{
    json_error_t e;
    json_t *doc = json_loadb(buf, len, 0, &e);
    if (!doc) return;
    pools *ps = NULL;
    if (pools_load_json(json_object_get(doc, "config"), &ps) == 0) {
        use_pools(ps, json_object_get(doc, "tags"), json_object_get(doc, "resources"));
        pools_free(ps);
    }
    json_decref(doc);
}

static void time_text(const char *s)
{
    struct timespec ts, ts2;
    char out[KOBJ_TIME_LEN];
    if (kobj_time_parse(s, &ts) != 0) return;
    if (ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000L) abort();
    if (kobj_time_format(ts.tv_sec, out) == 0) {
        if (kobj_time_parse(out, &ts2) != 0 || ts2.tv_sec != ts.tv_sec) abort();
    }
}

static void quantity_text(const char *s)
{
    long long v;
    (void)pools_quantity_parse(s, &v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        cmem_init();
        init = 1;
    }
    if (size < 1) return 0;
    int mode = data[0] % 5;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    char *text = NULL;
    switch (mode) {
    case 0:
        object(buf, len);
        break;
    case 1:
        pools_bytes(buf, len);
        break;
    case 2:
        pools_selection(buf, len);
        break;
    default:
        text = malloc(len + 1);
        if (!text) return 0;
        memcpy(text, buf, len);
        text[len] = '\0';
        if (mode == 3)
            time_text(text);
        else
            quantity_text(text);
        free(text);
    }
    return 0;
}
