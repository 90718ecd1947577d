/*
 * xml.c - the tag scanner behind the worker's XML parsers (xml.h).
 */
#include "xml.h"

#include <stdio.h>
#include <string.h>

void xml_init(xml *x, const char *doc, size_t len)
{
    memset(x, 0, sizeof *x);
    x->base = x->p = doc;
    x->end = doc + len;
}

int xml_fail(xml *x, const char *why)
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
            if (*s == '\0') return xml_fail(x, "NUL byte in text");
            if (n + 1 >= cap) return xml_fail(x, "text longer than its limit");
            out[n++] = *s++;
            continue;
        }
        const char *semi = memchr(s, ';', (size_t)(e - s));
        if (!semi || semi - s > 12) return xml_fail(x, "unterminated entity");
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
            if (d >= semi) return xml_fail(x, "empty character reference");
            for (; d < semi; d++) {
                int v;
                if (*d >= '0' && *d <= '9')
                    v = *d - '0';
                else if (hexa && *d >= 'a' && *d <= 'f')
                    v = *d - 'a' + 10;
                else if (hexa && *d >= 'A' && *d <= 'F')
                    v = *d - 'A' + 10;
                else
                    return xml_fail(x, "bad character reference");
                cp = cp * (hexa ? 16 : 10) + (unsigned long)v;
                if (cp > 0x10FFFF) return xml_fail(x, "character reference out of range");
            }
            if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
                return xml_fail(x, "character reference to NUL or a surrogate");
        } else {
            return xml_fail(x, "unknown entity");
        }
        size_t w = put_utf8(out + n, cap - 1 - n, cp);
        if (!w) return xml_fail(x, "text longer than its limit");
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

int xml_next_tag(xml *x, xml_tag *kind, char *name)
{
    for (;;) {
        const char *lt = memchr(x->p, '<', (size_t)(x->end - x->p));
        if (!lt) {
            x->p = x->end;
            *kind = XML_END;
            return 0;
        }
        x->p = lt;
        if (x->end - lt >= 2 && lt[1] == '?') {
            const char *q = find(x, lt + 2, "?>");
            if (!q) return xml_fail(x, "unterminated processing instruction");
            x->p = q + 2;
            continue;
        }
        if (x->end - lt >= 4 && !memcmp(lt, "<!--", 4)) {
            const char *q = find(x, lt + 4, "-->");
            if (!q) return xml_fail(x, "unterminated comment");
            x->p = q + 3;
            continue;
        }
        if (x->end - lt >= 2 && lt[1] == '!') return xml_fail(x, "DTD or CDATA not expected");
        const char *s = lt + 1;
        bool close = s < x->end && *s == '/';
        if (close) s++;
        size_t n = 0;
        while (s < x->end && is_name_char(*s)) {
            if (n + 1 >= XML_NAME_MAX) return xml_fail(x, "element name too long");
            name[n++] = *s++;
        }
        name[n] = '\0';
        if (!n) return xml_fail(x, "malformed tag");
        /* Attributes (S3 sends xmlns) are skipped, quotes respected. */
        char quote = 0;
        while (s < x->end && (quote || *s != '>')) {
            if (quote && *s == quote)
                quote = 0;
            else if (!quote && (*s == '"' || *s == '\''))
                quote = *s;
            else if (!quote && *s == '<')
                return xml_fail(x, "'<' inside a tag");
            s++;
        }
        if (s >= x->end) return xml_fail(x, "unterminated tag");
        bool empty = s[-1] == '/' && !close;
        x->p = s + 1;
        *kind = close ? XML_CLOSE : empty ? XML_EMPTY : XML_OPEN;
        return 0;
    }
}

int xml_leaf_text(xml *x, const char *name, char *out, size_t cap)
{
    const char *start = x->p;
    const char *lt = memchr(start, '<', (size_t)(x->end - start));
    if (!lt) return xml_fail(x, "unterminated element");
    size_t n = strlen(name);
    if ((size_t)(x->end - lt) < n + 3 || lt[1] != '/' || memcmp(lt + 2, name, n) ||
        lt[2 + n] != '>')
        return xml_fail(x, "expected text and a closing tag");
    if (decode_text(x, start, lt, out, cap) < 0) return -1;
    x->p = lt + 3 + n;
    return 0;
}

int xml_push(xml *x, const char *name)
{
    if (x->depth >= XML_DEPTH_MAX) return xml_fail(x, "elements nested too deeply");
    snprintf(x->stack[x->depth], XML_NAME_MAX, "%s", name);
    x->depth++;
    return 0;
}

int xml_pop(xml *x, const char *name)
{
    if (x->depth == 0 || strcmp(x->stack[x->depth - 1], name))
        return xml_fail(x, "closing tag does not match");
    x->depth--;
    return 0;
}
