/*
 * partstate.c - the compact partition record (see partstate.h).
 */
#include "partstate.h"

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partrange.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint64_t index;
    int attempts;
    char key[129];
    char message[PARTSTATE_MESSAGE_MAX + 1];
} failure;

struct partstate {
    char dv[80], prev_dv[80];
    prange *done, *prev, *failed;
    failure fail[PARTSTATE_FAILURES_MAX];
    size_t n_fail;
    uint64_t total, running;
};

partstate *partstate_new(void)
{
    partstate *ps = cmem_calloc(1, sizeof *ps);
    if (!ps) return NULL;
    ps->done = prange_new();
    ps->prev = prange_new();
    ps->failed = prange_new();
    if (!ps->done || !ps->prev || !ps->failed) {
        partstate_free(ps);
        return NULL;
    }
    return ps;
}

void partstate_free(partstate *ps)
{
    if (!ps) return;
    prange_free(ps->done);
    prange_free(ps->prev);
    prange_free(ps->failed);
    cmem_free(ps);
}

/* Copies at most PARTSTATE_MESSAGE_MAX bytes, never cutting a UTF-8
 * sequence (a status string must stay valid UTF-8). */
static void copy_msg(char *dst, size_t size, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

static int load_ranges(prange *r, const json_t *s)
{
    if (!json_is_string(s)) return cerr_set(CERR_INVALID, "partition ranges: not a string");
    return prange_parse(r, json_string_value(s), json_string_length(s));
}

int partstate_load(partstate *ps, const json_t *parts, const char *dv)
{
    int rc = 0;
    snprintf(ps->dv, sizeof ps->dv, "%s", dv ? dv : "");
    ps->prev_dv[0] = '\0';
    prange_clear(ps->done);
    prange_clear(ps->prev);
    prange_clear(ps->failed);
    ps->n_fail = 0;
    if (!json_is_object(parts)) return 0;
    const json_t *mat = json_object_get(parts, "materialized");
    for (size_t i = 0; i < json_array_size(mat); i++) {
        const json_t *m = json_array_get(mat, i);
        const char *v = json_string_value(json_object_get(m, "dataVersion"));
        if (!v) continue;
        if (!strcmp(v, ps->dv)) {
            if ((rc = load_ranges(ps->done, json_object_get(m, "ranges")))) goto fail;
        } else if (!ps->prev_dv[0] && strlen(v) < sizeof ps->prev_dv) {
            if ((rc = load_ranges(ps->prev, json_object_get(m, "ranges")))) goto fail;
            snprintf(ps->prev_dv, sizeof ps->prev_dv, "%s", v);
        }
    }
    /* Failures belong to the version they were recorded for. */
    const json_t *fdv = json_object_get(parts, "failedDataVersion");
    if (json_is_string(fdv) && !strcmp(json_string_value(fdv), ps->dv)) {
        const json_t *fr = json_object_get(parts, "failedRanges");
        if (fr && (rc = load_ranges(ps->failed, fr))) goto fail;
        const json_t *fl = json_object_get(parts, "failures");
        for (size_t i = 0; i < json_array_size(fl) && ps->n_fail < PARTSTATE_FAILURES_MAX; i++) {
            const json_t *f = json_array_get(fl, i);
            const json_t *idx = json_object_get(f, "index");
            const char *key = json_string_value(json_object_get(f, "key"));
            const char *msg = json_string_value(json_object_get(f, "message"));
            if (!json_is_integer(idx) || json_integer_value(idx) < 0 || !key) continue;
            failure *x = &ps->fail[ps->n_fail++];
            x->index = (uint64_t)json_integer_value(idx);
            x->attempts = (int)json_integer_value(json_object_get(f, "attempts"));
            snprintf(x->key, sizeof x->key, "%s", key);
            copy_msg(x->message, sizeof x->message, msg);
        }
    }
    return 0;
fail:
    prange_clear(ps->done);
    prange_clear(ps->prev);
    prange_clear(ps->failed);
    ps->prev_dv[0] = '\0';
    ps->n_fail = 0;
    return rc;
}

void partstate_set_total(partstate *ps, uint64_t total)
{
    ps->total = total;
}

void partstate_set_running(partstate *ps, uint64_t running)
{
    ps->running = running;
}

static void drop_failure(partstate *ps, uint64_t index)
{
    for (size_t i = 0; i < ps->n_fail; i++)
        if (ps->fail[i].index == index) {
            memmove(&ps->fail[i], &ps->fail[i + 1], (ps->n_fail - i - 1) * sizeof(failure));
            ps->n_fail--;
            return;
        }
}

int partstate_succeeded(partstate *ps, uint64_t index)
{
    int rc = prange_add(ps->done, index);
    if (rc) return rc;
    prange_remove(ps->failed, index);
    drop_failure(ps, index);
    return 0;
}

void partstate_forget(partstate *ps, uint64_t index)
{
    prange_remove(ps->done, index);
    prange_remove(ps->failed, index);
    drop_failure(ps, index);
}

int partstate_failed(partstate *ps, uint64_t index, const char *key, int attempts,
                     const char *message)
{
    int rc = prange_add(ps->failed, index);
    if (rc) return rc;
    size_t pos = 0;
    while (pos < ps->n_fail && ps->fail[pos].index < index)
        pos++;
    if (pos < ps->n_fail && ps->fail[pos].index == index) {
        ps->fail[pos].attempts = attempts;
        copy_msg(ps->fail[pos].message, sizeof ps->fail[pos].message, message);
        return 0;
    }
    if (pos == PARTSTATE_FAILURES_MAX) return 0; /* counted, not listed */
    if (ps->n_fail == PARTSTATE_FAILURES_MAX) ps->n_fail--;
    memmove(&ps->fail[pos + 1], &ps->fail[pos], (ps->n_fail - pos) * sizeof(failure));
    ps->n_fail++;
    failure *x = &ps->fail[pos];
    x->index = index;
    x->attempts = attempts;
    snprintf(x->key, sizeof x->key, "%s", key ? key : "");
    copy_msg(x->message, sizeof x->message, message);
    return 0;
}

void partstate_clear_failed(partstate *ps)
{
    prange_clear(ps->failed);
    ps->n_fail = 0;
}

bool partstate_is_done(const partstate *ps, uint64_t index)
{
    return ps && prange_has(ps->done, index); /* no record: nothing done */
}

bool partstate_is_failed(const partstate *ps, uint64_t index)
{
    return prange_has(ps->failed, index);
}

uint64_t partstate_done_count(const partstate *ps)
{
    return prange_count(ps->done);
}

uint64_t partstate_failed_count(const partstate *ps)
{
    return prange_count(ps->failed);
}

uint64_t partstate_next(const partstate *ps, uint64_t from)
{
    uint64_t i = from;
    for (;;) {
        uint64_t a = prange_first_missing(ps->done, i);
        uint64_t b = prange_first_missing(ps->failed, a);
        if (a == b) return a;
        i = b;
    }
}

static int put_ranges(json_t *o, const char *key, const prange *r, uint64_t total, char *buf)
{
    int rc = prange_encode(r, total, buf, PRANGE_TEXT_MAX + 1);
    if (rc) return rc;
    return json_object_set_new(o, key, json_string(buf)) ? cerr_oom() : 0;
}

json_t *partstate_json(const partstate *ps)
{
    char *buf = cmem_malloc(PRANGE_TEXT_MAX + 1);
    json_t *o = NULL, *mat = NULL, *fl = NULL;
    if (!buf) goto fail;
    uint64_t done = prange_count(ps->done), failed = prange_count(ps->failed);
    uint64_t pending =
        ps->total > done + failed + ps->running ? ps->total - done - failed - ps->running : 0;
    char summary[48];
    snprintf(summary, sizeof summary, "%" PRIu64 "/%" PRIu64, done, ps->total);
    o = json_pack("{s:I,s:s,s:I,s:I,s:I,s:I}", "total", (json_int_t)ps->total, "summary", summary,
                  "pending", (json_int_t)pending, "running", (json_int_t)ps->running, "succeeded",
                  (json_int_t)done, "failed", (json_int_t)failed);
    if (!o || !(mat = json_array()) || json_object_set(o, "materialized", mat)) goto fail;
    json_t *m = json_pack("{s:s}", "dataVersion", ps->dv);
    if (!m || json_array_append_new(mat, m) || put_ranges(m, "ranges", ps->done, ps->total, buf))
        goto fail;
    if (ps->prev_dv[0] && strcmp(ps->prev_dv, ps->dv) && prange_runs(ps->prev)) {
        m = json_pack("{s:s}", "dataVersion", ps->prev_dv);
        if (!m || json_array_append_new(mat, m) ||
            put_ranges(m, "ranges", ps->prev, ps->total, buf))
            goto fail;
    }
    if (failed) {
        if (json_object_set_new(o, "failedDataVersion", json_string(ps->dv)) ||
            put_ranges(o, "failedRanges", ps->failed, ps->total, buf) || !(fl = json_array()) ||
            json_object_set(o, "failures", fl))
            goto fail;
        for (size_t i = 0; i < ps->n_fail; i++) {
            const failure *x = &ps->fail[i];
            json_t *f = json_pack("{s:s,s:I,s:i,s:s}", "key", x->key, "index", (json_int_t)x->index,
                                  "attempts", x->attempts, "message", x->message);
            if (!f || json_array_append_new(fl, f)) goto fail;
        }
    }
    json_decref(mat);
    json_decref(fl);
    cmem_free(buf);
    return o;
fail:
    json_decref(mat);
    json_decref(fl);
    json_decref(o);
    cmem_free(buf);
    return NULL;
}
