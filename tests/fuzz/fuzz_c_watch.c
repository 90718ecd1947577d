/*
 * fuzz_c_watch.c - libFuzzer target for the watch stream splitter.
 *
 * Input: byte 0 picks the line cap (16..4111 bytes, or the default when
 * it is 255), bytes 1-2 pick a split point; the rest is the stream. The
 * stream is fed whole and again in two chunks cut at the split point (and
 * once more in 7-byte chunks); the three runs must report exactly the same
 * events, or the target aborts. The callback reads every field it gets.
 */
#include "kube/kobj.h"
#include "kube/watch.h"
#include "lib/cmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash; /* FNV-1a over what the events said */
    size_t events;
} digest;

static void mix(digest *d, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        d->hash = (d->hash ^ b[i]) * 0x100000001b3ull;
}

static void mix_str(digest *d, const char *s)
{
    if (s)
        mix(d, s, strlen(s) + 1);
    else
        mix(d, "\xff", 1);
}

static int on_event(void *ctx, const watch_event *ev)
{
    digest *d = ctx;
    char key[512];
    d->events++;
    mix(d, &ev->type, sizeof ev->type);
    mix(d, &ev->result, sizeof ev->result);
    mix(d, &ev->status_code, sizeof ev->status_code);
    mix(d, &ev->offset, sizeof ev->offset);
    mix_str(d, ev->resource_version);
    mix_str(d, ev->reason);
    mix_str(d, ev->message);
    if (ev->type == WATCH_INVALID) {
        if (ev->object || !ev->message || ev->result >= 0) abort();
        return 0;
    }
    if (!json_is_object(ev->object)) abort();
    if (kobj_key(ev->object, key, sizeof key) == 0) mix_str(d, key);
    kobj_meta m;
    (void)kobj_meta_decode(ev->object, &m);
    if (ev->type == WATCH_BOOKMARK && !ev->resource_version) abort();
    return 0;
}

static digest run(const uint8_t *data, size_t size, size_t max_line, const size_t *cuts,
                  size_t ncuts)
{
    digest d = {0xcbf29ce484222325ull, 0};
    watch_splitter *w = watch_new(max_line, on_event, &d);
    if (!w) abort();
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : size;
        if (watch_feed(w, data + at, end - at) != 0) abort();
        at = end;
    }
    if (watch_offset(w) != size) abort();
    if (watch_finish(w) != 0) abort();
    watch_free(w);
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        cmem_init();
        init = 1;
    }
    if (size < 3) return 0;
    size_t max_line = data[0] == 255 ? 0 : 16 + (size_t)data[0] * 16;
    size_t split = ((size_t)data[1] << 8 | data[2]);
    data += 3;
    size -= 3;
    split = size ? split % (size + 1) : 0;

    digest whole = run(data, size, max_line, NULL, 0);
    digest two = run(data, size, max_line, &split, 1);
    if (whole.hash != two.hash || whole.events != two.events) abort();

    size_t ncuts = size / 7, *cuts = malloc((ncuts + 1) * sizeof *cuts);
    if (!cuts) return 0;
    for (size_t i = 0; i < ncuts; i++)
        cuts[i] = (i + 1) * 7;
    if (ncuts && cuts[ncuts - 1] == size) ncuts--;
    digest small = run(data, size, max_line, cuts, ncuts);
    free(cuts);
    if (whole.hash != small.hash || whole.events != small.events) abort();
    return 0;
}
