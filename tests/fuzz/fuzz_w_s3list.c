/* Fuzz target: what observation reads from the network, on arbitrary bytes:
 * a ListObjectsV2 page (s3list_parse, the keys then run through the
 * source glob as observe.c does), an S3 <Error> body, and response header
 * lines. The first byte picks the glob so patterns are fuzzed too. */
#include "err.h"
#include "mem.h"
#include "observe.h"
#include "s3list.h"
#include "s3req.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const char *const patterns[] = {"*", "*.tif", "p_??.tif", "[a-c]*[!x]", "**a*b*c", "[]-]x"};

static int on_object(void *arg, const s3list_object *o)
{
    const char *pattern = arg;
    /* The parser's promises: bounded, NUL-free fields. */
    if (strlen(o->key) > S3LIST_KEY_MAX || strlen(o->etag) > S3LIST_ETAG_MAX) __builtin_trap();
    (void)observe_glob_match(pattern, o->key);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        mem_init();
        ready = 1;
    }
    if (size == 0) return 0;
    const char *pattern = patterns[data[0] % (sizeof patterns / sizeof patterns[0])];
    const char *doc = (const char *)data + 1;
    size_t len = size - 1;
    s3list_page page;
    char code[64], msg[256];
    s3req_resp r = {0};

    err_clear();
    if (s3list_parse(doc, len, on_object, (void *)pattern, &page) == 0 &&
        strlen(page.next_token) > S3LIST_TOKEN_MAX)
        __builtin_trap();
    s3list_parse_error(doc, len, code, sizeof code, msg, sizeof msg);
    /* Header lines: split at LF as libcurl hands them over. */
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(doc + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (doc + i)) + 1 : len - i;
        s3req_parse_header(doc + i, n, &r);
        i += n;
    }
    return 0;
}
