/*
 * s3list.c - a small, strict pull parser for S3's XML.
 *
 * S3's list and error documents are flat: a root, a few levels of plain
 * elements, text in the leaves, no mixed content, no CDATA. The parser walks
 * the tags once, keeps the open element names on a short stack, and decodes
 * the text of the leaves it cares about straight into fixed buffers.
 * Anything else that is well formed is skipped.
 */
#include "s3list.h"

#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEPTH_MAX 8
#define NAME_MAX_ 64

typedef struct xml {
    const char *base, *p, *end;
    int depth;
    char stack[DEPTH_MAX][NAME_MAX_];
    char why[128]; /* first structural problem, "" when none */
    size_t at;
} xml;

static int fail(xml *x, const char *why)
{
    if (!x->why[0]) {
        snprintf(x->why, sizeof x->why, "%s", why);
        x->at = (size_t)(x->p - x->base);
    }
    return -1;
}

static const char *find(const xml *x, const char *from, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *s = from; s + n <= x->end; s++)
        if (!memcmp(s, needle, n)) return s;
    return NULL;
}

/* Appends code point cp as UTF-8; returns bytes written or 0 if no room. */
static size_t put_utf8(char *out, size_t room, unsigned long cp)
{
    if (cp < 0x80 && room >= 1) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800 && room >= 2) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000 && room >= 3) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp < 0x110000 && room >= 4) {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
    }
    return 0;
}

/* Decodes the text [s, e) into out (cap includes the NUL). */
static int decode_text(xml *x, const char *s, const char *e, char *out, size_t cap)
{
    size_t n = 0;
    while (s < e) {
        if (*s != '&') {
            if (*s == '\0') return fail(x, "NUL byte in text");
            if (n + 1 >= cap) return fail(x, "text longer than its limit");
            out[n++] = *s++;
            continue;
        }
        const char *semi = memchr(s, ';', (size_t)(e - s));
        if (!semi || semi - s > 12) return fail(x, "unterminated entity");
        size_t len = (size_t)(semi - s - 1);
        const char *name = s + 1;
        unsigned long cp = 0;
        if (len == 3 && !memcmp(name, "amp", 3))
            cp = '&';
        else if (len == 2 && !memcmp(name, "lt", 2))
            cp = '<';
        else if (len == 2 && !memcmp(name, "gt", 2))
            cp = '>';
        else if (len == 4 && !memcmp(name, "quot", 4))
            cp = '"';
        else if (len == 4 && !memcmp(name, "apos", 4))
            cp = '\'';
        else if (len >= 2 && name[0] == '#') {
            bool hexa = name[1] == 'x';
            const char *d = name + (hexa ? 2 : 1);
            if (d >= semi) return fail(x, "empty character reference");
            for (; d < semi; d++) {
                int v;
                if (*d >= '0' && *d <= '9')
                    v = *d - '0';
                else if (hexa && *d >= 'a' && *d <= 'f')
                    v = *d - 'a' + 10;
                else if (hexa && *d >= 'A' && *d <= 'F')
                    v = *d - 'A' + 10;
                else
                    return fail(x, "bad character reference");
                cp = cp * (hexa ? 16 : 10) + (unsigned long)v;
                if (cp > 0x10FFFF) return fail(x, "character reference out of range");
            }
            if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
                return fail(x, "character reference to NUL or a surrogate");
        } else {
            return fail(x, "unknown entity");
        }
        size_t w = put_utf8(out + n, cap - 1 - n, cp);
        if (!w) return fail(x, "text longer than its limit");
        n += w;
        s = semi + 1;
    }
    out[n] = '\0';
    return 0;
}

static bool is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':';
}

typedef enum { TAG_OPEN, TAG_CLOSE, TAG_EMPTY, TAG_END } tag_kind;

/* Moves to the next tag; fills name. Text before it is left to the caller
 * through *text_start (the position after the previous tag). */
static int next_tag(xml *x, tag_kind *kind, char *name)
{
    for (;;) {
        const char *lt = memchr(x->p, '<', (size_t)(x->end - x->p));
        if (!lt) {
            x->p = x->end;
            *kind = TAG_END;
            return 0;
        }
        x->p = lt;
        if (x->end - lt >= 2 && lt[1] == '?') {
            const char *q = find(x, lt + 2, "?>");
            if (!q) return fail(x, "unterminated processing instruction");
            x->p = q + 2;
            continue;
        }
        if (x->end - lt >= 4 && !memcmp(lt, "<!--", 4)) {
            const char *q = find(x, lt + 4, "-->");
            if (!q) return fail(x, "unterminated comment");
            x->p = q + 3;
            continue;
        }
        if (x->end - lt >= 2 && lt[1] == '!') return fail(x, "DTD or CDATA not expected");
        const char *s = lt + 1;
        bool close = s < x->end && *s == '/';
        if (close) s++;
        size_t n = 0;
        while (s < x->end && is_name_char(*s)) {
            if (n + 1 >= NAME_MAX_) return fail(x, "element name too long");
            name[n++] = *s++;
        }
        name[n] = '\0';
        if (!n) return fail(x, "malformed tag");
        /* Attributes (S3 sends xmlns) are skipped, quotes respected. */
        char quote = 0;
        while (s < x->end && (quote || *s != '>')) {
            if (quote && *s == quote)
                quote = 0;
            else if (!quote && (*s == '"' || *s == '\''))
                quote = *s;
            else if (!quote && *s == '<')
                return fail(x, "'<' inside a tag");
            s++;
        }
        if (s >= x->end) return fail(x, "unterminated tag");
        bool empty = s[-1] == '/' && !close;
        x->p = s + 1;
        *kind = close ? TAG_CLOSE : empty ? TAG_EMPTY : TAG_OPEN;
        return 0;
    }
}

/* The text of the element just opened, up to its closing tag, which is
 * consumed. Fails if the element has children. */
static int leaf_text(xml *x, const char *name, char *out, size_t cap)
{
    const char *start = x->p;
    const char *lt = memchr(start, '<', (size_t)(x->end - start));
    if (!lt) return fail(x, "unterminated element");
    size_t n = strlen(name);
    if ((size_t)(x->end - lt) < n + 3 || lt[1] != '/' || memcmp(lt + 2, name, n) ||
        lt[2 + n] != '>')
        return fail(x, "expected text and a closing tag");
    if (decode_text(x, start, lt, out, cap) < 0) return -1;
    x->p = lt + 3 + n;
    return 0;
}

static int parse_u64(xml *x, const char *s, unsigned long long *out)
{
    if (!*s || strlen(s) > 20) return fail(x, "bad number");
    char *end = NULL;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9') return fail(x, "bad number");
    *out = strtoull(s, &end, 10);
    return 0;
}

static void unquote(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        memmove(s, s + 1, n - 2);
        s[n - 2] = '\0';
    }
}

int s3list_parse(const char *doc, size_t len, s3list_cb cb, void *arg, s3list_page *page)
{
    xml x = {.base = doc, .p = doc, .end = doc + len};
    s3list_object o;
    bool in_obj = false, has_key = false, has_size = false, saw_root = false;
    char name[NAME_MAX_], buf[S3LIST_TOKEN_MAX + 1];
    tag_kind kind;
    int rc;

    memset(page, 0, sizeof *page);
    for (;;) {
        if (next_tag(&x, &kind, name) < 0) goto malformed;
        if (kind == TAG_END) break;
        if (kind == TAG_CLOSE) {
            if (x.depth == 0 || strcmp(x.stack[x.depth - 1], name)) {
                fail(&x, "closing tag does not match");
                goto malformed;
            }
            x.depth--;
            if (in_obj && x.depth == 1) {
                if (!has_key || !has_size) {
                    fail(&x, "<Contents> without <Key> or <Size>");
                    goto malformed;
                }
                in_obj = false;
                page->n_objects++;
                if (cb && (rc = cb(arg, &o)) < 0) return rc;
            }
            continue;
        }
        if (x.depth == 0) {
            if (saw_root || strcmp(name, "ListBucketResult")) {
                fail(&x, "root element is not <ListBucketResult>");
                goto malformed;
            }
            saw_root = true;
        }
        if (kind == TAG_EMPTY) continue;
        if (x.depth >= DEPTH_MAX) {
            fail(&x, "elements nested too deeply");
            goto malformed;
        }
        /* Leaves we read, by depth and parent. */
        if (x.depth == 1 && !strcmp(name, "IsTruncated")) {
            if (leaf_text(&x, name, buf, sizeof buf) < 0) goto malformed;
            if (strcmp(buf, "true") && strcmp(buf, "false")) {
                fail(&x, "IsTruncated is neither true nor false");
                goto malformed;
            }
            page->truncated = !strcmp(buf, "true");
            continue;
        }
        if (x.depth == 1 && !strcmp(name, "NextContinuationToken")) {
            if (leaf_text(&x, name, page->next_token, sizeof page->next_token) < 0) goto malformed;
            continue;
        }
        if (x.depth == 2 && in_obj) {
            if (!strcmp(name, "Key")) {
                if (leaf_text(&x, name, o.key, sizeof o.key) < 0) goto malformed;
                has_key = o.key[0] != '\0';
                continue;
            }
            if (!strcmp(name, "ETag")) {
                if (leaf_text(&x, name, o.etag, sizeof o.etag) < 0) goto malformed;
                unquote(o.etag);
                continue;
            }
            if (!strcmp(name, "LastModified")) {
                if (leaf_text(&x, name, o.last_modified, sizeof o.last_modified) < 0)
                    goto malformed;
                continue;
            }
            if (!strcmp(name, "Size")) {
                if (leaf_text(&x, name, buf, sizeof buf) < 0 || parse_u64(&x, buf, &o.size) < 0)
                    goto malformed;
                has_size = true;
                continue;
            }
        }
        if (x.depth == 1 && !strcmp(name, "Contents")) {
            memset(&o, 0, sizeof o);
            in_obj = true;
            has_key = has_size = false;
        }
        if (x.depth == 1 && !strcmp(name, "CommonPrefixes")) page->n_prefixes++;
        snprintf(x.stack[x.depth], NAME_MAX_, "%s", name);
        x.depth++;
    }
    if (!saw_root || x.depth != 0) {
        fail(&x, saw_root ? "document ends inside an element" : "no <ListBucketResult>");
        goto malformed;
    }
    if (page->truncated && !page->next_token[0]) {
        fail(&x, "IsTruncated without NextContinuationToken");
        goto malformed;
    }
    return 0;
malformed:
    return err_set(ERR_TRANSIENT, ERR_S3_SERVER, NULL,
                   "malformed ListObjectsV2 response at byte %zu: %s", x.at, x.why);
}

void s3list_parse_error(const char *doc, size_t len, char *code, size_t code_cap, char *msg,
                        size_t msg_cap)
{
    xml x = {.base = doc, .p = doc, .end = doc + len};
    char name[NAME_MAX_];
    tag_kind kind;
    code[0] = msg[0] = '\0';
    for (;;) {
        if (next_tag(&x, &kind, name) < 0 || kind == TAG_END) return;
        if (kind == TAG_CLOSE) {
            if (x.depth == 0) return;
            x.depth--;
            continue;
        }
        if (kind == TAG_EMPTY) continue;
        if (x.depth == 0 && strcmp(name, "Error")) return;
        if (x.depth == 1 && !strcmp(name, "Code")) {
            if (leaf_text(&x, name, code, code_cap) < 0) code[0] = '\0';
            continue;
        }
        if (x.depth == 1 && !strcmp(name, "Message")) {
            if (leaf_text(&x, name, msg, msg_cap) < 0) msg[0] = '\0';
            continue;
        }
        if (x.depth >= DEPTH_MAX) return;
        x.depth++;
    }
}
