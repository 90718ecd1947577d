/*
 * test_watch.c - the watch stream splitter, data-driven: every case in
 * tests/data/watch/ (see its README.md) is fed whole, split in two at every
 * byte, in 1-byte chunks and in pseudo-random chunks, and must give the
 * expected events each time. Then a few behaviours the cases cannot show:
 * stopping from the callback, keeping an object, memory bounds and
 * out-of-memory reporting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/kobj.h"
#include "kube/watch.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- recording callback ----------------------------------------------------- */

typedef struct {
    char **lines;
    size_t n, cap;
    int bad_messages; /* INVALID events whose message does not name the offset */
} record;

static void rec_push(record *r, const char *line)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->lines = realloc(r->lines, r->cap * sizeof *r->lines);
        assert_non_null(r->lines);
    }
    r->lines[r->n++] = strdup(line);
}

static void rec_clear(record *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->lines[i]);
    free(r->lines);
    memset(r, 0, sizeof *r);
}

static int render(void *ctx, const watch_event *ev)
{
    record *r = ctx;
    char line[512], key[300];
    const char *rv = ev->resource_version ? ev->resource_version : "-";
    switch (ev->type) {
    case WATCH_ADDED:
    case WATCH_MODIFIED:
    case WATCH_DELETED:
        if (kobj_key(ev->object, key, sizeof key)) snprintf(key, sizeof key, "-");
        snprintf(line, sizeof line, "%s %s rv=%s", watch_type_name(ev->type), key, rv);
        break;
    case WATCH_BOOKMARK:
        snprintf(line, sizeof line, "BOOKMARK rv=%s", rv);
        break;
    case WATCH_ERROR:
        snprintf(line, sizeof line, "ERROR code=%d reason=%s result=%s", ev->status_code,
                 ev->reason ? ev->reason : "-", cerr_name(ev->result));
        break;
    default: {
        char want[64];
        snprintf(want, sizeof want, "watch stream byte %llu: ", (unsigned long long)ev->offset);
        if (!ev->message || strncmp(ev->message, want, strlen(want)) != 0) r->bad_messages++;
        if (ev->object) r->bad_messages++;
        snprintf(line, sizeof line, "INVALID %s at=%llu", cerr_name(ev->result),
                 (unsigned long long)ev->offset);
    }
    }
    rec_push(r, line);
    return 0;
}

/* --- cases --------------------------------------------------------------------- */

typedef struct {
    char name[256];
    unsigned char *stream;
    size_t len;
    size_t max_line;
    record expected;
} watch_case;

static const char *data_dir(void)
{
    static char dir[4096];
    const char *root = getenv("TERRANE_ROOT");
    snprintf(dir, sizeof dir, "%s/tests/data/watch", root && root[0] ? root : ".");
    return dir;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    unsigned char *b = malloc(cap);
    size_t got;
    while ((got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) b = realloc(b, cap *= 2);
    }
    fclose(f);
    *len = n;
    return b;
}

static void load_case(watch_case *c, const char *name)
{
    char path[4400];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(path, sizeof path, "%s/%s.stream", data_dir(), name);
    c->stream = slurp(path, &c->len);
    if (!c->stream) fail_msg("cannot read %s", path);
    snprintf(path, sizeof path, "%s/%s.expected", data_dir(), name);
    size_t elen;
    char *exp = (char *)slurp(path, &elen);
    if (!exp) fail_msg("cannot read %s", path);
    exp = realloc(exp, elen + 1);
    exp[elen] = '\0';
    for (char *save = NULL, *l = strtok_r(exp, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '#' || l[0] == '\0') continue;
        if (strncmp(l, "max-line ", 9) == 0)
            c->max_line = strtoul(l + 9, NULL, 10);
        else
            rec_push(&c->expected, l);
    }
    free(exp);
}

static void free_case(watch_case *c)
{
    free(c->stream);
    rec_clear(&c->expected);
}

/* Feeds the stream cut at the given points (ascending, within len). */
static void run_cuts(const watch_case *c, const size_t *cuts, size_t ncuts, record *got)
{
    watch_splitter *w = watch_new(c->max_line, render, got);
    assert_non_null(w);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : c->len;
        assert_int_equal(watch_feed(w, c->stream + at, end - at), 0);
        at = end;
    }
    assert_int_equal(watch_offset(w), c->len);
    assert_int_equal(watch_finish(w), 0);
    watch_free(w);
}

static void compare(const watch_case *c, const record *got, const char *how)
{
    size_t n = got->n > c->expected.n ? got->n : c->expected.n;
    for (size_t i = 0; i < n; i++) {
        const char *g = i < got->n ? got->lines[i] : "(nothing)";
        const char *e = i < c->expected.n ? c->expected.lines[i] : "(nothing)";
        if (strcmp(g, e) != 0)
            fail_msg("%s, fed %s: event %zu is \"%s\", expected \"%s\"", c->name, how, i + 1, g, e);
    }
    if (got->bad_messages)
        fail_msg("%s, fed %s: an INVALID message does not start with its byte offset", c->name,
                 how);
}

static void run_case(void **state)
{
    const char *name = *state;
    watch_case c;
    record got = {0};
    char how[64];
    load_case(&c, name);
    assert_true(c.expected.n > 0 || c.len == 0);

    run_cuts(&c, NULL, 0, &got);
    compare(&c, &got, "whole");
    rec_clear(&got);

    for (size_t cut = 0; cut <= c.len; cut++) {
        run_cuts(&c, &cut, 1, &got);
        snprintf(how, sizeof how, "split at byte %zu", cut);
        compare(&c, &got, how);
        rec_clear(&got);
    }

    size_t *cuts = malloc((c.len + 1) * sizeof *cuts);
    for (size_t i = 0; i < c.len; i++)
        cuts[i] = i + 1;
    run_cuts(&c, cuts, c.len ? c.len - 1 : 0, &got);
    compare(&c, &got, "in 1-byte chunks");
    rec_clear(&got);

    for (unsigned seed = 1; seed <= 20; seed++) {
        unsigned r = seed;
        size_t n = 0, at = 0;
        for (;;) {
            r = r * 1103515245u + 12345u;
            at += 1 + (r >> 16) % 97;
            if (at >= c.len) break;
            cuts[n++] = at;
        }
        run_cuts(&c, cuts, n, &got);
        snprintf(how, sizeof how, "in random chunks (seed %u)", seed);
        compare(&c, &got, how);
        rec_clear(&got);
    }
    free(cuts);
    free_case(&c);
}

/* --- behaviours -------------------------------------------------------------- */

static const char two_events[] =
    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\n"
    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"b\"}}}\n";

static int stop_after_first(void *ctx, const watch_event *ev)
{
    (void)ev;
    int *calls = ctx;
    return ++*calls == 1 ? 42 : 0;
}

static void callback_can_stop_the_stream(void **state)
{
    (void)state;
    int calls = 0;
    watch_splitter *w = watch_new(0, stop_after_first, &calls);
    assert_int_equal(watch_feed(w, two_events, strlen(two_events)), 42);
    assert_int_equal(calls, 1);
    assert_int_equal(watch_feed(w, two_events, strlen(two_events)), 42);
    assert_int_equal(watch_finish(w), 42);
    assert_int_equal(calls, 1);
    /* A reset is a new connection. */
    watch_reset(w);
    calls = 1;
    assert_int_equal(watch_feed(w, two_events, strlen(two_events)), 0);
    assert_int_equal(calls, 3);
    assert_int_equal(watch_offset(w), strlen(two_events));
    watch_free(w);
}

static int keep_object(void *ctx, const watch_event *ev)
{
    json_t **kept = ctx;
    if (!*kept) *kept = json_incref(ev->object);
    return 0;
}

static void callback_can_keep_the_object(void **state)
{
    (void)state;
    json_t *kept = NULL;
    watch_splitter *w = watch_new(0, keep_object, &kept);
    /* Split mid-line so the object comes from the splitter's buffer. */
    watch_feed(w, two_events, 20);
    watch_feed(w, two_events + 20, strlen(two_events) - 20);
    watch_free(w);
    assert_non_null(kept);
    assert_string_equal(kobj_name(kept), "a");
    json_decref(kept);
}

static int count_events(void *ctx, const watch_event *ev)
{
    int *counts = ctx; /* [0] events, [1] TooBig, [2] NoMemory */
    if (ev->type != WATCH_INVALID)
        counts[0]++;
    else if (ev->result == CERR_TOOBIG)
        counts[1]++;
    else if (ev->result == CERR_NOMEM)
        counts[2]++;
    return 0;
}

static void a_huge_line_does_not_grow_memory(void **state)
{
    (void)state;
    int counts[3] = {0};
    watch_splitter *w = watch_new(64 * 1024, count_events, counts);
    static char chunk[16384];
    memset(chunk, 'x', sizeof chunk);
    unsigned long allocs = cmem_count();
    /* 64 MiB without a newline against a 64 KiB cap. */
    for (int i = 0; i < 4096; i++)
        assert_int_equal(watch_feed(w, chunk, sizeof chunk), 0);
    /* The buffer grew only up to the cap: a handful of reallocations. */
    assert_true(cmem_count() - allocs < 16);
    assert_int_equal(counts[1], 1);
    watch_feed(w, "\n", 1);
    watch_feed(w, two_events, strlen(two_events));
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[1], 1);
    watch_free(w);
}

static void out_of_memory_loses_one_line_only(void **state)
{
    (void)state;
    int counts[3] = {0};
    watch_splitter *w = watch_new(0, count_events, counts);
    /* A line split across chunks needs the buffer: make that allocation fail. */
    cmem_fail_at(1);
    watch_feed(w, two_events, 10);
    cmem_fail_at(0);
    watch_feed(w, two_events + 10, strlen(two_events) - 10);
    assert_int_equal(counts[2], 1);
    assert_int_equal(counts[0], 1); /* the second event got through */
    /* A failure inside jansson while decoding is reported the same way. */
    for (unsigned long n = 1; n < 64; n++) {
        int before = counts[0];
        cmem_fail_at(n);
        watch_feed(w, two_events, strlen(two_events));
        cmem_fail_at(0);
        if (counts[0] == before + 2) break; /* n beyond the allocations made */
    }
    assert_true(counts[2] > 1);
    watch_free(w);
}

int main(void)
{
    cmem_init();
    DIR *d = opendir(data_dir());
    if (!d) {
        fprintf(stderr, "cannot open %s (run from the repository root or set TERRANE_ROOT)\n",
                data_dir());
        return 1;
    }
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 256) {
        size_t l = strlen(de->d_name);
        if (l > 7 && strcmp(de->d_name + l - 7, ".stream") == 0)
            names[n++] = strndup(de->d_name, l - 7);
    }
    closedir(d);
    for (size_t i = 1; i < n; i++) /* sort by name: stable output */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }

    struct CMUnitTest tests[256 + 8];
    size_t nt = 0;
    for (size_t i = 0; i < n; i++)
        tests[nt++] = (struct CMUnitTest){names[i], run_case, NULL, NULL, names[i]};
    const struct CMUnitTest more[] = {
        cmocka_unit_test(callback_can_stop_the_stream),
        cmocka_unit_test(callback_can_keep_the_object),
        cmocka_unit_test(a_huge_line_does_not_grow_memory),
        cmocka_unit_test(out_of_memory_loses_one_line_only),
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        tests[nt++] = more[i];
    int rc = n == 0 ? 1 : _cmocka_run_group_tests("test_watch", tests, nt, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return rc;
}
