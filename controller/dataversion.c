/*
 * dataversion.c - canonical JSON and the data version hash (see
 * dataversion.h for the exact definition).
 */
#include "dataversion.h"

#include "lib/cerr.h"
#include "lib/cmem.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 2048

/* A growing output buffer; on allocation failure it sets oom and ignores
 * further appends, so writers check once at the end. */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (n > SIZE_MAX - 1 - b->len) { /* len + n + 1 would wrap */
        b->oom = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n + 1) {
            if (ncap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            ncap *= 2;
        }
        char *np = cmem_realloc(b->p, ncap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_string(buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, written in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[7];
        const char *e = NULL;
        switch (ch) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        default:
            if (ch < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[ch >> 4];
                esc[5] = hex[ch & 15];
                esc[6] = '\0';
                e = esc;
            }
        }
        if (!e) {
            run++;
            continue;
        }
        put(b, s + i - run, run);
        run = 0;
        puts_(b, e);
    }
    put(b, s + n - run, run);
    put(b, "\"", 1);
}

static void put_real(buf *b, double d)
{
    char tmp[40];
    /* Integral values print as integers, so 1, 1.0 and 1e0 agree. */
    if (d == floor(d) && fabs(d) < 9223372036854775808.0) {
        snprintf(tmp, sizeof tmp, "%lld", (long long)d);
        puts_(b, tmp);
        return;
    }
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) break;
    }
    /* "1.5e-07" -> "1.5e-7", "1e+300" -> "1e300" */
    char out[40];
    size_t o = 0;
    for (size_t i = 0; tmp[i]; i++) {
        out[o++] = tmp[i];
        if (tmp[i] != 'e') continue;
        i++;
        if (tmp[i] == '-')
            out[o++] = '-';
        else if (tmp[i] != '+')
            i--;
        while (tmp[i + 1] == '0' && tmp[i + 2])
            i++;
    }
    out[o] = '\0';
    puts_(b, out);
}

typedef struct {
    const char *key;
    size_t len;
    json_t *value;
} member;

static int member_cmp(const void *a, const void *b)
{
    const member *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static int put_value(buf *b, const json_t *v, int depth)
{
    if (depth > MAX_DEPTH)
        return cerr_set(CERR_INVALID, "JSON nested deeper than %d levels", MAX_DEPTH);
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        member *m = cmem_calloc(n ? n : 1, sizeof *m);
        if (!m) return cerr_oom();
        for (void *it = json_object_iter((json_t *)v); it && i < n;
             it = json_object_iter_next((json_t *)v, it), i++) {
            m[i].key = json_object_iter_key(it);
            m[i].len = json_object_iter_key_len(it);
            m[i].value = json_object_iter_value(it);
        }
        n = i;
        qsort(m, n, sizeof *m, member_cmp);
        put(b, "{", 1);
        int rc = 0;
        for (i = 0; i < n && !rc; i++) {
            if (i) put(b, ",", 1);
            put_string(b, m[i].key, m[i].len);
            put(b, ":", 1);
            rc = put_value(b, m[i].value, depth + 1);
        }
        put(b, "}", 1);
        cmem_free(m);
        return rc;
    }
    case JSON_ARRAY:
        put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) put(b, ",", 1);
            int rc = put_value(b, json_array_get(v, i), depth + 1);
            if (rc) return rc;
        }
        put(b, "]", 1);
        return 0;
    case JSON_STRING:
        put_string(b, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER: {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        puts_(b, tmp);
        return 0;
    }
    case JSON_REAL:
        put_real(b, json_real_value(v));
        return 0;
    case JSON_TRUE:
        puts_(b, "true");
        return 0;
    case JSON_FALSE:
        puts_(b, "false");
        return 0;
    default:
        puts_(b, "null");
        return 0;
    }
}

int dv_canonical(const json_t *v, char **out, size_t *len)
{
    buf b = {0};
    *out = NULL;
    if (len) *len = 0;
    int rc = v ? put_value(&b, v, 0) : (puts_(&b, "null"), 0);
    if (!rc && b.oom) rc = cerr_oom();
    if (rc) {
        cmem_free(b.p);
        return rc;
    }
    if (!b.p) put(&b, "", 0); /* never reached: every value writes something */
    *out = b.p;
    if (len) *len = b.len;
    return 0;
}

static int input_cmp(const void *a, const void *b)
{
    const dv_input *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

int dv_compute(const char *operation, const json_t *params, const dv_input *inputs, size_t n_inputs,
               const char *code_version, char out[DV_LEN + 1])
{
    int rc = 0;
    const dv_input **sorted = NULL;
    char *canon = NULL;
    size_t canon_len = 0;
    json_t *doc = NULL, *ins = NULL;
    out[0] = '\0';

    if (!operation || !operation[0]) return cerr_set(CERR_INVALID, "data version: no operation");
    if (!code_version || !code_version[0])
        return cerr_set(CERR_INVALID, "data version: no worker code version");
    if (params && !json_is_object(params))
        return cerr_set(CERR_INVALID, "data version: params must be an object, not %s",
                        json_is_array(params) ? "an array" : "a scalar");
    for (size_t i = 0; i < n_inputs; i++) {
        if (!inputs[i].name || !inputs[i].name[0])
            return cerr_set(CERR_INVALID, "data version: inputs[%zu] has no name", i);
        if (!inputs[i].data_version && !inputs[i].uri)
            return cerr_set(CERR_INVALID, "data version: input %s has neither data version nor uri",
                            inputs[i].name);
    }

    sorted = cmem_calloc(n_inputs ? n_inputs : 1, sizeof *sorted);
    ins = json_array();
    if (!sorted || !ins) goto oom;
    for (size_t i = 0; i < n_inputs; i++)
        sorted[i] = &inputs[i];
    qsort(sorted, n_inputs, sizeof *sorted, input_cmp);
    for (size_t i = 0; i < n_inputs; i++) {
        if (i && strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
            rc = cerr_set(CERR_INVALID, "data version: input name %s used twice", sorted[i]->name);
            goto cleanup;
        }
        json_t *e = sorted[i]->data_version
                        ? json_pack("{s:s, s:s}", "name", sorted[i]->name, "dataVersion",
                                    sorted[i]->data_version)
                        : json_pack("{s:s, s:s}", "name", sorted[i]->name, "uri", sorted[i]->uri);
        if (!e || json_array_append_new(ins, e)) goto oom;
    }
    /* "o" steals the reference, also when packing fails. */
    doc = json_pack("{s:s, s:i, s:O, s:s, s:o}", "codeVersion", code_version, "format", DV_FORMAT,
                    "inputs", ins, "operation", operation, "params",
                    params ? json_incref((json_t *)params) : json_object());
    if (!doc) {
        /* json_pack fails on memory, or on strings that are not UTF-8. */
        rc = cerr_set(CERR_INVALID, "data version: operation, code version or an input is not "
                                    "valid UTF-8 (or out of memory)");
        goto cleanup;
    }
    if ((rc = dv_canonical(doc, &canon, &canon_len))) goto cleanup;

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(canon, canon_len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        rc = cerr_set(CERR_ERROR, "data version: SHA-256 failed");
        goto cleanup;
    }
    memcpy(out, DV_PREFIX, sizeof DV_PREFIX - 1);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + sizeof DV_PREFIX - 1 + 2 * i, 3, "%02x", md[i]);
    goto cleanup;
oom:
    rc = cerr_oom();
cleanup:
    json_decref(doc);
    json_decref(ins);
    cmem_free(canon);
    cmem_free(sorted);
    return rc;
}

bool dv_valid(const char *s)
{
    if (!s || strncmp(s, DV_PREFIX, sizeof DV_PREFIX - 1) != 0) return false;
    s += sizeof DV_PREFIX - 1;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return s[64] == '\0';
}

int dv_short(const char *dv, char out[DV_SHORT_LEN + 1])
{
    out[0] = '\0';
    if (!dv_valid(dv))
        return cerr_set(CERR_INVALID, "not a data version: %.80s", dv ? dv : "(null)");
    memcpy(out, dv + sizeof DV_PREFIX - 1, DV_SHORT_LEN);
    out[DV_SHORT_LEN] = '\0';
    return 0;
}
