/*
 * jschema.c - JSON Schema subset validator (see jschema.h).
 *
 * Compilation walks every schema reachable in the loaded documents once:
 * it rejects keywords it does not implement, compiles each pattern into a
 * shared table (pattern text -> jregex) and checks that every $ref
 * resolves. Validation then interprets the schema documents directly,
 * recursing along the schema (so depth is bounded by the schema, plus a cap
 * for recursive references), and stops at the first error. Silent
 * evaluations (if, the branches of anyOf / oneOf, not, contains) pass no
 * error sink.
 */
#include "lib/jschema.h"

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jregex.h"
#include "lib/strmap.h"
#include "lib/jtype.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 128

struct jschema {
    json_t **docs;
    size_t ndocs;
    strmap *patterns; /* pattern text -> jregex * */
};

/* --- references -------------------------------------------------------------- */

static const char *doc_id(const json_t *doc)
{
    const json_t *id = json_is_object(doc) ? json_object_get(doc, "$id") : NULL;
    return json_is_string(id) ? json_string_value(id) : "";
}

/* The document ref (without fragment) names, resolved against base as RFC
 * 3986 does for the forms used here: absolute ("scheme://..."), or a
 * relative path replacing base's last segment. NULL when none matches. */
static const json_t *find_doc(const jschema *s, const char *base, const char *ref, size_t reflen)
{
    char want[1024];
    if (memmem(ref, reflen, "://", 3)) {
        if (reflen >= sizeof want) return NULL;
        memcpy(want, ref, reflen);
        want[reflen] = '\0';
    } else {
        const char *slash = strrchr(base, '/');
        size_t keep = slash ? (size_t)(slash - base) + 1 : 0;
        if (ref[0] == '/') {
            /* absolute path: keep scheme://host */
            const char *host = strstr(base, "://");
            const char *p = host ? strchr(host + 3, '/') : NULL;
            keep = p ? (size_t)(p - base) : 0;
        }
        if (keep + reflen >= sizeof want) return NULL;
        memcpy(want, base, keep);
        memcpy(want + keep, ref, reflen);
        want[keep + reflen] = '\0';
    }
    for (size_t i = 0; i < s->ndocs; i++)
        if (strcmp(doc_id(s->docs[i]), want) == 0) return s->docs[i];
    return NULL;
}

/* Follows a JSON pointer ("/$defs/x", "" for the whole document). */
static const json_t *follow_pointer(const json_t *doc, const char *ptr)
{
    const json_t *cur = doc;
    if (!*ptr) return cur;
    if (*ptr != '/') return NULL;
    while (*ptr == '/' && cur) {
        ptr++;
        char tok[256];
        size_t n = 0;
        while (*ptr && *ptr != '/') {
            char ch = *ptr++;
            if (ch == '~') {
                if (*ptr == '0')
                    ch = '~';
                else if (*ptr == '1')
                    ch = '/';
                else
                    return NULL;
                ptr++;
            }
            if (n + 1 >= sizeof tok) return NULL;
            tok[n++] = ch;
        }
        tok[n] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur)) {
            char *end;
            unsigned long i = strtoul(tok, &end, 10);
            cur = *end || !n ? NULL : json_array_get(cur, i);
        } else {
            return NULL;
        }
    }
    return cur;
}

/* Resolves ref from a schema in document doc: the target schema and the
 * document it lives in. */
static const json_t *resolve(const jschema *s, const json_t *doc, const char *ref,
                             const json_t **target_doc)
{
    const char *hash = strchr(ref, '#');
    size_t doclen = hash ? (size_t)(hash - ref) : strlen(ref);
    const json_t *d = doc;
    if (doclen) d = find_doc(s, doc_id(doc), ref, doclen);
    if (!d) return NULL;
    *target_doc = d;
    return follow_pointer(d, hash ? hash + 1 : "");
}

/* --- compilation ------------------------------------------------------------------ */

static const char *const ANNOTATIONS[] = {
    "$schema", "$id",        "$comment", "title",     "description", "default", "examples",
    "format",  "deprecated", "readOnly", "writeOnly", "$defs",       NULL};
static const char *const KEYWORDS[] = {"$ref",
                                       "type",
                                       "enum",
                                       "const",
                                       "pattern",
                                       "minLength",
                                       "maxLength",
                                       "minimum",
                                       "maximum",
                                       "exclusiveMinimum",
                                       "exclusiveMaximum",
                                       "multipleOf",
                                       "required",
                                       "properties",
                                       "additionalProperties",
                                       "patternProperties",
                                       "propertyNames",
                                       "minProperties",
                                       "maxProperties",
                                       "items",
                                       "minItems",
                                       "maxItems",
                                       "uniqueItems",
                                       "contains",
                                       "allOf",
                                       "anyOf",
                                       "oneOf",
                                       "not",
                                       "if",
                                       "then",
                                       "else",
                                       NULL};

static bool in_list(const char *const *list, const char *k)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], k) == 0) return true;
    return false;
}

typedef struct {
    jschema *s;
    const json_t *doc;
    char where[1024]; /* "<$id>#<pointer>" of the schema being compiled */
} cctx;

static int compile_schema(cctx *c, const json_t *schema, int depth);

/* Appends "/key" to the location, returning the old length. */
static size_t where_push(cctx *c, const char *key)
{
    size_t old = strlen(c->where);
    snprintf(c->where + old, sizeof c->where - old, "/%s", key);
    return old;
}

static int where_error(const cctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int where_error(const cctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cerr_set(CERR_INVALID, "schema %s: %s", c->where, msg);
}

static int compile_child(cctx *c, const json_t *schema, const char *key, int depth)
{
    size_t old = where_push(c, key);
    int rc = compile_schema(c, schema, depth + 1);
    c->where[old] = '\0';
    return rc;
}

static int compile_map(cctx *c, const json_t *map, const char *key, int depth)
{
    if (!json_is_object(map)) return where_error(c, "%s must be an object", key);
    size_t old = where_push(c, key);
    const char *k;
    const json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)map, k, v)
    {
        if ((rc = compile_child(c, v, k, depth))) break;
    }
    c->where[old] = '\0';
    return rc;
}

static int compile_list(cctx *c, const json_t *list, const char *key, int depth)
{
    if (!json_is_array(list) || json_array_size(list) == 0)
        return where_error(c, "%s must be a non-empty array", key);
    size_t old = where_push(c, key);
    int rc = 0;
    for (size_t i = 0; i < json_array_size(list) && !rc; i++) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        rc = compile_child(c, json_array_get(list, i), idx, depth);
    }
    c->where[old] = '\0';
    return rc;
}

static int compile_pattern(cctx *c, const json_t *p)
{
    if (!json_is_string(p)) return where_error(c, "pattern must be a string");
    const char *text = json_string_value(p);
    if (strmap_lookup(c->s->patterns, text)) return 0;
    jregex *re = NULL;
    int rc = jregex_compile(text, &re);
    if (rc) return where_error(c, "pattern: %s", cerr_message());
    if (strmap_put(c->s->patterns, text, re)) {
        jregex_free(re);
        return cerr_oom();
    }
    return 0;
}

static bool is_nonneg_int(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

static int compile_schema(cctx *c, const json_t *schema, int depth)
{
    if (json_is_boolean(schema)) return 0;
    if (!json_is_object(schema)) return where_error(c, "a schema must be an object or a boolean");
    if (depth > MAX_DEPTH) return where_error(c, "schema nested too deeply");
    const char *k;
    const json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)schema, k, v)
    {
        if (in_list(ANNOTATIONS, k) && strcmp(k, "$defs") != 0) continue;
        if (!in_list(KEYWORDS, k) && strcmp(k, "$defs") != 0)
            return where_error(c, "unsupported keyword \"%.64s\"", k);
        if (!strcmp(k, "$defs") || !strcmp(k, "properties") || !strcmp(k, "patternProperties")) {
            rc = compile_map(c, v, k, depth);
            if (!rc && !strcmp(k, "patternProperties")) {
                const char *pk;
                const json_t *pv;
                json_object_foreach((json_t *)v, pk, pv)
                {
                    json_t *tmp = json_string(pk);
                    if (!tmp) return cerr_oom();
                    rc = compile_pattern(c, tmp);
                    json_decref(tmp);
                    if (rc) break;
                }
            }
        } else if (!strcmp(k, "allOf") || !strcmp(k, "anyOf") || !strcmp(k, "oneOf")) {
            rc = compile_list(c, v, k, depth);
        } else if (!strcmp(k, "additionalProperties") || !strcmp(k, "items") || !strcmp(k, "not") ||
                   !strcmp(k, "if") || !strcmp(k, "then") || !strcmp(k, "else") ||
                   !strcmp(k, "contains") || !strcmp(k, "propertyNames")) {
            rc = compile_child(c, v, k, depth);
        } else if (!strcmp(k, "pattern")) {
            rc = compile_pattern(c, v);
        } else if (!strcmp(k, "$ref")) {
            const json_t *d;
            if (!json_is_string(v)) return where_error(c, "$ref must be a string");
            if (!resolve(c->s, c->doc, json_string_value(v), &d))
                return where_error(c, "$ref \"%.200s\" does not resolve", json_string_value(v));
        } else if (!strcmp(k, "type")) {
            static const char *const types[] = {"object",  "array",   "string", "number",
                                                "integer", "boolean", "null",   NULL};
            if (json_is_string(v)) {
                if (!in_list(types, json_string_value(v))) return where_error(c, "unknown type");
            } else if (json_is_array(v)) {
                for (size_t i = 0; i < json_array_size(v); i++) {
                    const json_t *t = json_array_get(v, i);
                    if (!json_is_string(t) || !in_list(types, json_string_value(t)))
                        return where_error(c, "unknown type");
                }
            } else {
                return where_error(c, "type must be a string or an array");
            }
        } else if (!strcmp(k, "enum")) {
            if (!json_is_array(v) || !json_array_size(v))
                return where_error(c, "enum must be a non-empty array");
        } else if (!strcmp(k, "required")) {
            if (!json_is_array(v)) return where_error(c, "required must be an array");
            for (size_t i = 0; i < json_array_size(v); i++)
                if (!json_is_string(json_array_get(v, i)))
                    return where_error(c, "required must list strings");
        } else if (!strcmp(k, "minLength") || !strcmp(k, "maxLength") || !strcmp(k, "minItems") ||
                   !strcmp(k, "maxItems") || !strcmp(k, "minProperties") ||
                   !strcmp(k, "maxProperties")) {
            if (!is_nonneg_int(v)) return where_error(c, "%s must be a non-negative integer", k);
        } else if (!strcmp(k, "minimum") || !strcmp(k, "maximum") ||
                   !strcmp(k, "exclusiveMinimum") || !strcmp(k, "exclusiveMaximum")) {
            if (!json_is_number(v)) return where_error(c, "%s must be a number", k);
        } else if (!strcmp(k, "multipleOf")) {
            if (!json_is_number(v) || json_number_value(v) <= 0)
                return where_error(c, "multipleOf must be a number > 0");
        } else if (!strcmp(k, "uniqueItems")) {
            if (!json_is_boolean(v)) return where_error(c, "uniqueItems must be a boolean");
        }
        /* const takes any value */
        if (rc) return rc;
    }
    return rc;
}

int jschema_new(const json_t *const *docs, size_t ndocs, jschema **out)
{
    jschema *s = NULL;
    int rc;
    *out = NULL;
    if (!ndocs) return cerr_set(CERR_INVALID, "no schema document");
    s = cmem_calloc(1, sizeof *s);
    if (!s) return cerr_oom();
    s->docs = cmem_calloc(ndocs, sizeof(json_t *));
    s->patterns = strmap_new(0);
    if (!s->docs || !s->patterns) {
        rc = cerr_oom();
        goto fail;
    }
    for (size_t i = 0; i < ndocs; i++) {
        s->docs[i] = json_incref((json_t *)docs[i]);
        s->ndocs++;
    }
    for (size_t i = 0; i < ndocs; i++) {
        cctx c = {.s = s, .doc = docs[i]};
        const char *id = doc_id(docs[i]);
        const char *slash = strrchr(id, '/');
        snprintf(c.where, sizeof c.where, "%s#", slash ? slash + 1 : id);
        if ((rc = compile_schema(&c, docs[i], 0))) goto fail;
    }
    *out = s;
    return 0;
fail:
    jschema_free(s);
    return rc;
}

int jschema_new_text(const char *const *texts, size_t ntexts, jschema **out)
{
    json_t *docs[8] = {0};
    int rc = 0;
    *out = NULL;
    if (ntexts > 8) return cerr_set(CERR_INVALID, "at most 8 schema documents");
    for (size_t i = 0; i < ntexts; i++) {
        json_error_t e;
        docs[i] = json_loads(texts[i], JSON_DECODE_ANY, &e);
        if (!docs[i]) {
            rc = cerr_set(CERR_INVALID, "schema document %zu: line %d column %d: %s", i + 1, e.line,
                          e.column, e.text);
            goto done;
        }
    }
    rc = jschema_new((const json_t *const *)docs, ntexts, out);
done:
    for (size_t i = 0; i < ntexts; i++)
        json_decref(docs[i]);
    return rc;
}

void jschema_free(jschema *s)
{
    if (!s) return;
    if (s->patterns) {
        size_t pos = 0;
        const char *k;
        void *v;
        while (strmap_next(s->patterns, &pos, &k, &v))
            jregex_free(v);
        strmap_free(s->patterns);
    }
    /* docs is NULL (and ndocs 0) when its allocation failed */
    for (size_t i = 0; s->docs && i < s->ndocs; i++)
        json_decref(s->docs[i]);
    cmem_free(s->docs);
    cmem_free(s);
}

/* --- validation -------------------------------------------------------------------- */

typedef struct {
    const jschema *s;
    const json_t *doc; /* document of the schema being applied */
    const char *desc;  /* nearest enclosing schema description */
    char path[JSCHEMA_PATH_MAX];
    size_t plen;
    int depth;
} vctx;

/* Path building: returns the old length to restore. A path that would not
 * fit is cut with "..." (only messages suffer). */
/* Appends n bytes of s (no printf: a path is pushed for every member
 * and item validated). */
static void path_append(vctx *c, const char *s, size_t n)
{
    size_t room = sizeof c->path - 1 - c->plen;
    if (n > room) n = room;
    memcpy(c->path + c->plen, s, n);
    c->plen += n;
    c->path[c->plen] = '\0';
}

static size_t push_key(vctx *c, const char *key)
{
    size_t old = c->plen;
    if (c->plen) path_append(c, ".", 1);
    path_append(c, key, strlen(key));
    return old;
}

static size_t push_index(vctx *c, size_t i)
{
    size_t old = c->plen;
    char digits[24], *d = digits + sizeof digits;
    *--d = ']';
    do
        *--d = (char)('0' + i % 10);
    while ((i /= 10));
    *--d = '[';
    path_append(c, d, (size_t)(digits + sizeof digits - d));
    return old;
}

static void pop(vctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

static int fail(vctx *c, jschema_error *err, const char *kw, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(vctx *c, jschema_error *err, const char *kw, const char *fmt, ...)
{
    if (err) {
        snprintf(err->path, sizeof err->path, "%s", c->path);
        snprintf(err->keyword, sizeof err->keyword, "%s", kw);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return 1;
}

/* The shortest of %.15g / %.17g that reads back as d. */
static void fmt_num(double d, char *buf, size_t size)
{
    snprintf(buf, size, "%.15g", d);
    if (strtod(buf, NULL) != d) snprintf(buf, size, "%.17g", d);
}

/* A short rendering of a value for messages, without allocating: strings
 * quoted with control characters escaped, cut at ~60 bytes. */
static void excerpt(const json_t *v, char *buf, size_t size)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), o = 0;
        if (size < 16) {
            buf[0] = '\0';
            return;
        }
        buf[o++] = '"';
        for (size_t i = 0; i < n && o + 8 < size; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (i >= 60) {
                memcpy(buf + o, "...", 3);
                o += 3;
                break;
            }
            if (ch < 0x20 || ch == '"' || ch == '\\') {
                o += (size_t)snprintf(buf + o, size - o,
                                      ch == '"'    ? "\\\""
                                      : ch == '\\' ? "\\\\"
                                                   : "\\u%04x",
                                      ch);
            } else {
                buf[o++] = (char)ch;
            }
        }
        buf[o++] = '"';
        buf[o] = '\0';
    } else if (json_is_integer(v)) {
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        fmt_num(json_real_value(v), buf, size);
    } else if (json_is_boolean(v)) {
        snprintf(buf, size, "%s", json_is_true(v) ? "true" : "false");
    } else {
        snprintf(buf, size, "%s", jtype_name(v));
    }
}

static bool has_type(const json_t *v, const char *t)
{
    const char *actual = jtype_schema_name(v);
    if (!strcmp(t, actual)) return true;
    return !strcmp(t, "number") && !strcmp(actual, "integer");
}

/* JSON equality with numbers compared by value (1 == 1.0). */
static bool json_eq(const json_t *a, const json_t *b, int depth)
{
    if (depth > 4096) return false;
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) return false;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_eq(json_array_get(a, i), json_array_get(b, i), depth + 1)) return false;
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return false;
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)a, k, v)
        {
            const json_t *w = json_object_get(b, k);
            if (!w || !json_eq(v, w, depth + 1)) return false;
        }
        return true;
    }
    return json_equal(a, b);
}

static size_t utf8_length(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
    return n;
}

/* "a, b, c" of an enum's values, cut to fit. */
static void list_values(const json_t *list, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *v = json_array_get(list, i);
        char one[80];
        if (json_is_string(v))
            snprintf(one, sizeof one, "%.70s", json_string_value(v));
        else
            excerpt(v, one, sizeof one);
        int n = snprintf(buf + off, size - off, "%s%s", i ? ", " : "", one);
        if (n < 0 || (size_t)n >= size - off) {
            if (size > 4) snprintf(buf + size - 4, 4, "...");
            return;
        }
        off += (size_t)n;
    }
}

/* The description as a message tail: ": <text>" without a final period. */
static void desc_tail(const char *desc, char *buf, size_t size)
{
    if (!desc || !*desc) {
        buf[0] = '\0';
        return;
    }
    size_t n = strlen(desc);
    const char *more = "";
    if (n > 300) {
        /* Whole sentences when they fit, else whole words: never mid-word. */
        size_t cut = 0;
        for (size_t i = 1; i < 300; i++)
            if (desc[i] == ' ' && desc[i - 1] == '.') cut = i;
        if (!cut) {
            for (size_t i = 0; i < 300; i++)
                if (desc[i] == ' ') cut = i;
            more = cut ? " ..." : "";
        }
        n = cut ? cut : 300;
    }
    if (n && desc[n - 1] == '.') n--;
    snprintf(buf, size, ": %.*s%s", (int)n, desc, more);
}

static int validate(vctx *c, const json_t *schema, const json_t *inst, jschema_error *err);

/* Applies a subschema at a child location of the instance. */
static int validate_key(vctx *c, const json_t *schema, const json_t *inst, const char *key,
                        jschema_error *err)
{
    size_t old = push_key(c, key);
    int rc = validate(c, schema, inst, err);
    pop(c, old);
    return rc;
}

static int validate_index(vctx *c, const json_t *schema, const json_t *inst, size_t i,
                          jschema_error *err)
{
    size_t old = push_index(c, i);
    int rc = validate(c, schema, inst, err);
    pop(c, old);
    return rc;
}

static int check_type(vctx *c, const json_t *t, const json_t *inst, jschema_error *err)
{
    if (json_is_string(t)) {
        const char *want = json_string_value(t);
        if (has_type(inst, want)) return 0;
        bool vowel = strchr("aeiou", want[0]) != NULL;
        return fail(c, err, "type", "must be %s %s, got %s", vowel ? "an" : "a", want,
                    jtype_schema_name(inst));
    }
    char names[128] = "";
    size_t off = 0;
    for (size_t i = 0; i < json_array_size(t); i++) {
        const char *want = json_string_value(json_array_get(t, i));
        if (has_type(inst, want)) return 0;
        int n = snprintf(names + off, sizeof names - off, "%s%s", i ? " or " : "", want);
        if (n > 0 && (size_t)n < sizeof names - off) off += (size_t)n;
    }
    return fail(c, err, "type", "must be %s, got %s", names, jtype_schema_name(inst));
}

static int check_string(vctx *c, const json_t *schema, const json_t *inst, jschema_error *err)
{
    const char *s = json_string_value(inst);
    size_t bytes = json_string_length(inst);
    const json_t *v;
    if ((v = json_object_get(schema, "minLength")) &&
        utf8_length(s, bytes) < (size_t)json_integer_value(v))
        return fail(c, err, "minLength", "must be at least %lld characters",
                    (long long)json_integer_value(v));
    if ((v = json_object_get(schema, "maxLength")) &&
        utf8_length(s, bytes) > (size_t)json_integer_value(v))
        return fail(c, err, "maxLength", "must be at most %lld characters",
                    (long long)json_integer_value(v));
    if ((v = json_object_get(schema, "pattern"))) {
        const jregex *re = strmap_lookup(c->s->patterns, json_string_value(v));
        int m = re ? jregex_search(re, s, bytes) : CERR_ERROR;
        if (m < 0) return m;
        if (!m) {
            char ex[80], tail[320];
            excerpt(inst, ex, sizeof ex);
            const json_t *d = json_object_get(schema, "description");
            if (json_is_string(d)) {
                desc_tail(json_string_value(d), tail, sizeof tail);
                return fail(c, err, "pattern", "%s is not valid%s", ex, tail);
            }
            return fail(c, err, "pattern", "%s does not match the pattern %.200s", ex,
                        json_string_value(v));
        }
    }
    return 0;
}

static int check_number(vctx *c, const json_t *schema, const json_t *inst, jschema_error *err)
{
    double x = json_number_value(inst);
    const json_t *v;
    char num[40];
#define NUM(v) (fmt_num(json_number_value(v), num, sizeof num), num)
    if ((v = json_object_get(schema, "minimum")) && x < json_number_value(v))
        return fail(c, err, "minimum", "must be >= %s", NUM(v));
    if ((v = json_object_get(schema, "maximum")) && x > json_number_value(v))
        return fail(c, err, "maximum", "must be <= %s", NUM(v));
    if ((v = json_object_get(schema, "exclusiveMinimum")) && x <= json_number_value(v))
        return fail(c, err, "exclusiveMinimum", "must be > %s", NUM(v));
    if ((v = json_object_get(schema, "exclusiveMaximum")) && x >= json_number_value(v))
        return fail(c, err, "exclusiveMaximum", "must be < %s", NUM(v));
    if ((v = json_object_get(schema, "multipleOf"))) {
        bool ok;
        if (json_is_integer(inst) && json_is_integer(v)) {
            ok = json_integer_value(inst) % json_integer_value(v) == 0;
        } else {
            double q = x / json_number_value(v);
            ok = isfinite(q) && fabs(q - nearbyint(q)) <= 1e-9 * fmax(1.0, fabs(q));
        }
        if (!ok) return fail(c, err, "multipleOf", "must be a multiple of %s", NUM(v));
    }
#undef NUM
    return 0;
}

static int check_object(vctx *c, const json_t *schema, const json_t *inst, jschema_error *err)
{
    const json_t *v, *props = json_object_get(schema, "properties");
    const json_t *pprops = json_object_get(schema, "patternProperties");
    const json_t *addl = json_object_get(schema, "additionalProperties");
    int rc;
    if ((v = json_object_get(schema, "required"))) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            const char *name = json_string_value(json_array_get(v, i));
            if (!json_object_get(inst, name)) {
                size_t old = push_key(c, name);
                rc = fail(c, err, "required", "is required");
                pop(c, old);
                return rc;
            }
        }
    }
    /* properties in the schema's order, so the first error is predictable */
    if (props) {
        const char *k;
        const json_t *sub;
        json_object_foreach((json_t *)props, k, sub)
        {
            const json_t *child = json_object_get(inst, k);
            if (child && (rc = validate_key(c, sub, child, k, err))) return rc;
        }
    }
    const char *k;
    const json_t *child;
    json_object_foreach((json_t *)inst, k, child)
    {
        bool matched = props && json_object_get(props, k);
        if (pprops) {
            const char *pk;
            const json_t *psub;
            json_object_foreach((json_t *)pprops, pk, psub)
            {
                const jregex *re = strmap_lookup(c->s->patterns, pk);
                int m = re ? jregex_search(re, k, strlen(k)) : CERR_ERROR;
                if (m < 0) return m;
                if (!m) continue;
                matched = true;
                if ((rc = validate_key(c, psub, child, k, err))) return rc;
            }
        }
        if (matched || !addl) continue;
        if (json_is_false(addl)) {
            size_t old = push_key(c, k);
            rc = fail(c, err, "additionalProperties", "unknown field");
            pop(c, old);
            return rc;
        }
        if ((rc = validate_key(c, addl, child, k, err))) return rc;
    }
    if ((v = json_object_get(schema, "propertyNames"))) {
        json_object_foreach((json_t *)inst, k, child)
        {
            json_t *name = json_string(k);
            if (!name) return cerr_oom();
            rc = validate_key(c, v, name, k, err);
            json_decref(name);
            if (rc) return rc;
        }
    }
    if ((v = json_object_get(schema, "minProperties")) &&
        json_object_size(inst) < (size_t)json_integer_value(v))
        return fail(c, err, "minProperties", "must have at least %lld fields",
                    (long long)json_integer_value(v));
    if ((v = json_object_get(schema, "maxProperties")) &&
        json_object_size(inst) > (size_t)json_integer_value(v))
        return fail(c, err, "maxProperties", "must have at most %lld fields",
                    (long long)json_integer_value(v));
    return 0;
}

static int check_array(vctx *c, const json_t *schema, const json_t *inst, jschema_error *err)
{
    const json_t *v;
    size_t n = json_array_size(inst);
    int rc;
    if ((v = json_object_get(schema, "minItems")) && n < (size_t)json_integer_value(v))
        return fail(c, err, "minItems", "must have at least %lld item%s",
                    (long long)json_integer_value(v), json_integer_value(v) == 1 ? "" : "s");
    if ((v = json_object_get(schema, "maxItems")) && n > (size_t)json_integer_value(v))
        return fail(c, err, "maxItems", "must have at most %lld item%s",
                    (long long)json_integer_value(v), json_integer_value(v) == 1 ? "" : "s");
    if ((v = json_object_get(schema, "items"))) {
        for (size_t i = 0; i < n; i++)
            if ((rc = validate_index(c, v, json_array_get(inst, i), i, err))) return rc;
    }
    if (json_is_true(json_object_get(schema, "uniqueItems"))) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (json_eq(json_array_get(inst, i), json_array_get(inst, j), 0))
                    return fail(c, err, "uniqueItems",
                                "must not contain duplicates (items %zu and %zu are equal)", j, i);
    }
    if ((v = json_object_get(schema, "contains"))) {
        bool found = false;
        for (size_t i = 0; i < n && !found; i++) {
            rc = validate_index(c, v, json_array_get(inst, i), i, NULL);
            if (rc < 0) return rc;
            found = rc == 0;
        }
        if (!found) return fail(c, err, "contains", "must contain a matching item");
    }
    return 0;
}

/* True when a branch's error says the value is of another kind altogether
 * (a type, const or enum mismatch at the value itself), as opposed to a
 * value of the right kind that breaks a finer rule; anyOf reports the one
 * branch that got further, if there is exactly one. */
static bool shallow(const vctx *c, const jschema_error *e)
{
    if (strcmp(e->path, c->path) != 0) return false;
    return !strcmp(e->keyword, "type") || !strcmp(e->keyword, "const") ||
           !strcmp(e->keyword, "enum") || !strcmp(e->keyword, "false");
}

static int check_combinators(vctx *c, const json_t *schema, const json_t *inst, jschema_error *err)
{
    const json_t *v;
    int rc;
    if ((v = json_object_get(schema, "allOf"))) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((rc = validate(c, json_array_get(v, i), inst, err))) return rc;
    }
    const json_t *any = json_object_get(schema, "anyOf"), *one = json_object_get(schema, "oneOf");
    for (int pass = 0; pass < 2; pass++) {
        const json_t *list = pass ? one : any;
        if (!list) continue;
        size_t n = json_array_size(list), passed = 0, deep = 0, deep_at = 0;
        /* silently first: the branches' messages are only needed when
         * none passes (a valid document never formats them) */
        for (size_t i = 0; i < n; i++) {
            if ((rc = validate(c, json_array_get(list, i), inst, NULL)) < 0) return rc;
            if (rc == 0) passed++;
        }
        if (passed) {
            if (pass && passed > 1)
                return fail(c, err, "oneOf", "must match exactly one alternative, matches %zu",
                            passed);
            continue;
        }
        jschema_error *errs = cmem_calloc(n, sizeof *errs);
        if (!errs) return cerr_oom();
        for (size_t i = 0; i < n; i++) {
            rc = validate(c, json_array_get(list, i), inst, &errs[i]);
            if (rc < 0) {
                cmem_free(errs);
                return rc;
            }
            if (rc == 0)
                passed++;
            else if (!shallow(c, &errs[i]))
                deep++, deep_at = i;
        }
        if (passed == 0) {
            if (deep == 1) {
                if (err) *err = errs[deep_at];
                rc = 1;
            } else {
                char msg[JSCHEMA_MESSAGE_MAX];
                size_t off = 0;
                msg[0] = '\0';
                for (size_t i = 0; i < n; i++) {
                    int w = snprintf(msg + off, sizeof msg - off, "%s%s", i ? "; or " : "",
                                     errs[i].message);
                    if (w < 0 || (size_t)w >= sizeof msg - off) break;
                    off += (size_t)w;
                }
                rc = fail(c, err, pass ? "oneOf" : "anyOf", "%s", msg);
            }
            cmem_free(errs);
            return rc;
        }
        cmem_free(errs);
        if (pass && passed > 1)
            return fail(c, err, "oneOf", "must match exactly one alternative, matches %zu", passed);
    }
    if ((v = json_object_get(schema, "not"))) {
        rc = validate(c, v, inst, NULL);
        if (rc < 0) return rc;
        if (rc == 0) {
            const json_t *cst = json_is_object(v) ? json_object_get(v, "const") : NULL;
            const json_t *en = json_is_object(v) ? json_object_get(v, "enum") : NULL;
            char buf[400];
            if (cst && json_object_size(v) <= 2) {
                excerpt(cst, buf, sizeof buf);
                return fail(c, err, "not", "must not be %s", buf);
            }
            if (en && json_object_size(v) <= 2) {
                list_values(en, buf, sizeof buf);
                return fail(c, err, "not", "must not be one of: %s", buf);
            }
            desc_tail(c->desc, buf, sizeof buf);
            return fail(c, err, "not", "is not allowed here%s", buf);
        }
    }
    if ((v = json_object_get(schema, "if"))) {
        rc = validate(c, v, inst, NULL);
        if (rc < 0) return rc;
        const json_t *branch = json_object_get(schema, rc == 0 ? "then" : "else");
        if (branch && (rc = validate(c, branch, inst, err))) return rc;
    }
    return 0;
}

static int validate(vctx *c, const json_t *schema, const json_t *inst, jschema_error *err)
{
    if (json_is_true(schema)) return 0;
    if (json_is_false(schema)) {
        char tail[320];
        desc_tail(c->desc, tail, sizeof tail);
        return fail(c, err, "false", "must not be present%s", tail);
    }
    if (c->depth >= MAX_DEPTH)
        return cerr_set(CERR_TOOBIG, "%s: nested deeper than %d levels", c->path, MAX_DEPTH);
    const json_t *saved_doc = c->doc;
    const char *saved_desc = c->desc;
    const json_t *d = json_object_get(schema, "description");
    if (json_is_string(d)) c->desc = json_string_value(d);
    c->depth++;
    int rc = 0;
    const json_t *v;
    if ((v = json_object_get(schema, "$ref"))) {
        const json_t *doc;
        const json_t *target = resolve(c->s, c->doc, json_string_value(v), &doc);
        if (!target) {
            rc = cerr_set(CERR_INVALID, "schema $ref %s does not resolve", json_string_value(v));
            goto done;
        }
        c->doc = doc;
        rc = validate(c, target, inst, err);
        c->doc = saved_doc;
        if (rc) goto done;
    }
    if ((v = json_object_get(schema, "type")) && (rc = check_type(c, v, inst, err))) goto done;
    if ((v = json_object_get(schema, "const")) && !json_eq(v, inst, 0)) {
        char ex[80];
        excerpt(v, ex, sizeof ex);
        rc = fail(c, err, "const", "must be %s", ex);
        goto done;
    }
    if ((v = json_object_get(schema, "enum"))) {
        bool found = false;
        for (size_t i = 0; i < json_array_size(v) && !found; i++)
            found = json_eq(json_array_get(v, i), inst, 0);
        if (!found) {
            char list[600];
            list_values(v, list, sizeof list);
            rc = fail(c, err, "enum", "must be one of: %s", list);
            goto done;
        }
    }
    if (json_is_string(inst) && (rc = check_string(c, schema, inst, err))) goto done;
    if (json_is_number(inst) && (rc = check_number(c, schema, inst, err))) goto done;
    if (json_is_object(inst) && (rc = check_object(c, schema, inst, err))) goto done;
    if (json_is_array(inst) && (rc = check_array(c, schema, inst, err))) goto done;
    rc = check_combinators(c, schema, inst, err);
done:
    c->depth--;
    c->desc = saved_desc;
    c->doc = saved_doc;
    return rc;
}

int jschema_validate(const jschema *s, const json_t *instance, jschema_error *err)
{
    vctx c = {.s = s, .doc = s->docs[0]};
    jschema_error local = {0};
    jschema_error *e = err ? err : &local;
    memset(e, 0, sizeof *e);
    int rc = validate(&c, s->docs[0], instance, e);
    if (rc < 0) return rc;
    if (rc == 0) return 0;
    if (e->path[0]) return cerr_set(CERR_INVALID, "%s: %s", e->path, e->message);
    return cerr_set(CERR_INVALID, "%s", e->message);
}

int jschema_fail(jschema_error *err, const char *path, const char *keyword, const char *fmt, ...)
{
    char msg[JSCHEMA_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err) {
        snprintf(err->path, sizeof err->path, "%s", path);
        snprintf(err->message, sizeof err->message, "%s", msg);
        snprintf(err->keyword, sizeof err->keyword, "%s", keyword);
    }
    return cerr_set(CERR_INVALID, "%s: %s", path, msg);
}
