/*
 * watch.c - watch stream splitter and event decoder (see watch.h).
 */
#include "kube/watch.h"

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jtype.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct watch_splitter {
    watch_event_fn cb;
    void *ctx;
    size_t max_line;
    char *buf; /* the current line, when it spans chunks */
    size_t len, cap;
    bool discarding;     /* skipping the rest of a rejected line */
    uint64_t offset;     /* bytes consumed */
    uint64_t line_start; /* stream offset of the current line */
    int stopped;         /* the callback's non-zero return */
    char msg[320];
};

static const struct {
    const char *name;
    watch_type type;
} types[] = {
    {"ADDED", WATCH_ADDED},       {"MODIFIED", WATCH_MODIFIED}, {"DELETED", WATCH_DELETED},
    {"BOOKMARK", WATCH_BOOKMARK}, {"ERROR", WATCH_ERROR},
};

const char *watch_type_name(watch_type t)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].type == t) return types[i].name;
    return "INVALID";
}

watch_splitter *watch_new(size_t max_line, watch_event_fn cb, void *ctx)
{
    watch_splitter *w = cmem_calloc(1, sizeof *w);
    if (!w) return NULL;
    w->cb = cb;
    w->ctx = ctx;
    w->max_line = max_line ? max_line : WATCH_MAX_LINE_DEFAULT;
    return w;
}

void watch_free(watch_splitter *w)
{
    if (!w) return;
    cmem_free(w->buf);
    cmem_free(w);
}

void watch_reset(watch_splitter *w)
{
    w->len = 0;
    w->discarding = false;
    w->offset = 0;
    w->line_start = 0;
    w->stopped = 0;
}

uint64_t watch_offset(const watch_splitter *w)
{
    return w->offset;
}

static int emit(watch_splitter *w, const watch_event *ev)
{
    int rc = w->cb(w->ctx, ev);
    if (rc) w->stopped = rc;
    return rc;
}

__attribute__((format(printf, 4, 5))) static int invalid(watch_splitter *w, int result, uint64_t at,
                                                         const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(w->msg, sizeof w->msg, "watch stream byte %llu: %s", (unsigned long long)at, what);
    watch_event ev = {.type = WATCH_INVALID, .result = result, .message = w->msg, .offset = at};
    return emit(w, &ev);
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

/* Decodes one complete line (without its "\n") that starts at stream byte at. */
static int decode_line(watch_splitter *w, const char *line, size_t n, uint64_t at)
{
    if (blank(line, n)) return 0;
    while (n && line[n - 1] == '\r')
        n--;

    json_error_t jerr;
    memset(&jerr, 0, sizeof jerr); /* jansson leaves parts unset on some failures */
    unsigned long failures = cmem_failures();
    json_t *root = json_loadb(line, n, 0, &jerr);
    if (!root) {
        /* jansson reports a failed allocation as a syntax error. */
        if (cmem_failures() != failures || json_error_code(&jerr) == json_error_out_of_memory)
            return invalid(w, CERR_NOMEM, at, "out of memory decoding a %zu-byte event", n);
        uint64_t pos = jerr.position > 0 ? (uint64_t)jerr.position : 0;
        return invalid(w, CERR_INVALID, at + pos, "invalid JSON: %s", jerr.text);
    }
    int rc = 0;
    watch_event ev = {.offset = at};
    if (!json_is_object(root)) {
        rc = invalid(w, CERR_INVALID, at, "event is a JSON %s, not an object", jtype_name(root));
        goto done;
    }
    const json_t *jt = json_object_get(root, "type");
    if (!json_is_string(jt)) {
        rc = invalid(w, CERR_INVALID, at, "event type: expected string, got %s", jtype_name(jt));
        goto done;
    }
    const char *tname = json_string_value(jt);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i].name, tname) == 0) ev.type = types[i].type;
    if (ev.type == WATCH_INVALID) {
        rc = invalid(w, CERR_INVALID, at, "unknown event type \"%.64s\"", tname);
        goto done;
    }
    ev.object = json_object_get(root, "object");
    if (!json_is_object(ev.object)) {
        rc = invalid(w, CERR_INVALID, at, "%s event: object: expected object, got %s", tname,
                     jtype_name(ev.object));
        goto done;
    }
    ev.resource_version = kobj_resource_version(ev.object);
    if (ev.type == WATCH_BOOKMARK && !ev.resource_version) {
        rc = invalid(w, CERR_INVALID, at, "BOOKMARK event without object.metadata.resourceVersion");
        goto done;
    }
    if (ev.type == WATCH_ERROR) {
        kobj_status st;
        if (kobj_status_decode(ev.object, &st)) {
            rc = invalid(w, CERR_INVALID, at, "ERROR event: object is not a Status");
            goto done;
        }
        ev.status_code = st.code;
        ev.reason = st.reason;
        ev.message = st.message;
        ev.result = kobj_status_cerr(&st);
    }
    rc = emit(w, &ev);
done:
    json_decref(root);
    return rc;
}

/* Appends a piece of the current line to the buffer. */
static int buffer_append(watch_splitter *w, const char *p, size_t n)
{
    if (w->len + n > w->cap) {
        size_t ncap = w->cap ? w->cap : 4096;
        while (ncap < w->len + n)
            ncap *= 2;
        if (ncap > w->max_line) ncap = w->max_line; /* len + n <= max_line here */
        char *nb = cmem_realloc(w->buf, ncap);
        if (!nb) return CERR_NOMEM;
        w->buf = nb;
        w->cap = ncap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

int watch_feed(watch_splitter *w, const void *data, size_t len)
{
    const char *p = data, *end = p + len;
    if (w->stopped) return w->stopped;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t seg = (size_t)((nl ? nl : end) - p);
        size_t used = seg + (nl ? 1 : 0);
        int rc = 0;
        if (w->len == 0 && !w->discarding) w->line_start = w->offset;

        if (w->discarding) {
            if (nl) w->discarding = false;
        } else if (w->len == 0 && nl) {
            /* The whole line is in this chunk: decode it in place. */
            if (seg > w->max_line)
                rc = invalid(w, CERR_TOOBIG, w->line_start, "line longer than %zu bytes, skipped",
                             w->max_line);
            else
                rc = decode_line(w, p, seg, w->line_start);
        } else if (w->len + seg > w->max_line) {
            w->len = 0;
            w->discarding = !nl;
            rc = invalid(w, CERR_TOOBIG, w->line_start, "line longer than %zu bytes, skipped",
                         w->max_line);
        } else if (buffer_append(w, p, seg)) {
            w->len = 0;
            w->discarding = !nl;
            rc = invalid(w, CERR_NOMEM, w->line_start, "out of memory buffering a line, skipped");
        } else if (nl) {
            size_t n = w->len;
            w->len = 0;
            rc = decode_line(w, w->buf, n, w->line_start);
        }
        w->offset += used;
        p += used;
        if (rc) return rc;
    }
    return 0;
}

int watch_finish(watch_splitter *w)
{
    if (w->stopped) return w->stopped;
    size_t n = w->len;
    bool had = n && !w->discarding;
    w->len = 0;
    w->discarding = false;
    return had ? decode_line(w, w->buf, n, w->line_start) : 0;
}
