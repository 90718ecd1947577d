/*
 * jregex.c - ECMA-262 subset regular expressions on a Pike VM (see jregex.h).
 *
 * Compilation: a recursive-descent parser builds a small syntax tree in an
 * arena (nesting depth capped, so the parser's recursion is bounded), and
 * code generation turns it into instructions: consuming ones (CHAR, ANY,
 * CLASS), control (SPLIT, JMP), assertions (BOL, EOL, LOOK) and MATCH.
 * Counted repetition is expanded. Each lookahead body becomes its own
 * sub-program, appended after the main one and ending in MATCH.
 *
 * Matching: the classic breadth-first NFA simulation; every thread sits on a
 * consuming instruction, the epsilon closure is computed with an explicit
 * stack and a generation-stamped mark array (so empty loops terminate), and
 * a lookahead at a position runs its sub-program from there, the answer
 * being memoised per (lookahead, position).
 */
#include "lib/jregex.h"

#include "lib/cerr.h"
#include "lib/cmem.h"

#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 64        /* nesting of groups and lookaheads */
#define MAX_REPEAT 1000     /* the largest n or m of {n,m} */
#define MAX_INSTS 200000    /* compiled program size */
#define NOT_A_CHAR 0x110000 /* above Unicode: invalid UTF-8 bytes decode to this + byte */

enum { I_CHAR, I_ANY, I_CLASS, I_SPLIT, I_JMP, I_BOL, I_EOL, I_LOOK, I_MATCH };

typedef struct {
    uint8_t op;
    uint8_t neg; /* I_LOOK: negative lookahead */
    uint32_t x;  /* CHAR: code point; CLASS: class; SPLIT/JMP: target; LOOK: sub-program */
    uint32_t y;  /* SPLIT: second target; LOOK: lookahead number (memo row) */
} inst;

typedef struct {
    uint32_t lo, hi;
} range;

typedef struct {
    range *r;
    size_t n;
    bool neg;
} cclass;

struct jregex {
    inst *code;
    size_t ninst;
    cclass *classes;
    size_t nclasses;
    size_t nlooks;
};

/* --- syntax tree ----------------------------------------------------------- */

enum { N_EMPTY, N_CHAR, N_ANY, N_CLASS, N_BOL, N_EOL, N_CAT, N_ALT, N_REPEAT, N_LOOK };

typedef struct {
    int type;
    uint32_t cp;       /* N_CHAR */
    size_t cls;        /* N_CLASS */
    int min, max;      /* N_REPEAT; max -1: unbounded */
    bool neg;          /* N_LOOK */
    size_t kid, nkids; /* children: kids[kid .. kid+nkids) (REPEAT and LOOK: one) */
} node;

typedef struct {
    const char *src;
    size_t pos, len;
    node *nodes;
    size_t nnodes, capnodes;
    size_t *kids;
    size_t nkids, capkids;
    jregex *re;
    size_t capclasses;
    /* code generation */
    size_t capinst;
    size_t *pending;    /* N_LOOK nodes whose sub-program is still to be emitted */
    size_t *pending_at; /* the I_LOOK instruction to patch */
    size_t npending, cappending, cappending_at;
} compiler;

static int bad(const compiler *c, const char *what)
{
    return cerr_set(CERR_INVALID, "pattern offset %zu: %s", c->pos, what);
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *np = cmem_reallocarray(*p, n, size);
    if (!np) return cerr_oom();
    *p = np;
    *cap = n;
    return 0;
}

static int new_node(compiler *c, int type, size_t *out)
{
    int rc = grow((void **)&c->nodes, &c->capnodes, c->nnodes + 1, sizeof(node));
    if (rc) return rc;
    memset(&c->nodes[c->nnodes], 0, sizeof(node));
    c->nodes[c->nnodes].type = type;
    *out = c->nnodes++;
    return 0;
}

/* A node with the given children (copied into the kids array). */
static int new_parent(compiler *c, int type, const size_t *kids, size_t n, size_t *out)
{
    int rc = grow((void **)&c->kids, &c->capkids, c->nkids + n, sizeof(size_t));
    if (rc || (rc = new_node(c, type, out))) return rc;
    memcpy(&c->kids[c->nkids], kids, n * sizeof(size_t));
    c->nodes[*out].kid = c->nkids;
    c->nodes[*out].nkids = n;
    c->nkids += n;
    return 0;
}

/* Decodes one UTF-8 code point at s[*i] (i < len), advancing *i. Invalid
 * sequences decode byte by byte to NOT_A_CHAR + byte. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char b = s[*i];
    uint32_t cp;
    size_t n;
    if (b < 0x80) {
        (*i)++;
        return b;
    } else if (b >= 0xC2 && b <= 0xDF) {
        cp = b & 0x1F, n = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        cp = b & 0x0F, n = 2;
    } else if (b >= 0xF0 && b <= 0xF4) {
        cp = b & 0x07, n = 3;
    } else {
        (*i)++;
        return NOT_A_CHAR + b;
    }
    if (*i + n >= len) { /* truncated sequence */
        (*i)++;
        return NOT_A_CHAR + b;
    }
    for (size_t k = 1; k <= n; k++) {
        unsigned char cb = s[*i + k];
        if ((cb & 0xC0) != 0x80) {
            (*i)++;
            return NOT_A_CHAR + b;
        }
        cp = (cp << 6) | (cb & 0x3F);
    }
    /* overlong, surrogate or out-of-range forms are invalid */
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        (*i)++;
        return NOT_A_CHAR + b;
    }
    *i += n + 1;
    return cp;
}

/* --- character classes ------------------------------------------------------ */

static const range DIGIT[] = {{'0', '9'}};
static const range WORD[] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
static const range SPACE[] = {
    {0x09, 0x0D},     {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A},
    {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};

static int add_range(cclass *cl, size_t *cap, uint32_t lo, uint32_t hi)
{
    int rc = grow((void **)&cl->r, cap, cl->n + 1, sizeof(range));
    if (rc) return rc;
    cl->r[cl->n].lo = lo;
    cl->r[cl->n].hi = hi;
    cl->n++;
    return 0;
}

/* Adds a predefined set (sorted, disjoint ranges), or its complement. */
static int add_set(cclass *cl, size_t *cap, const range *set, size_t n, bool complement)
{
    int rc = 0;
    if (!complement) {
        for (size_t i = 0; i < n && !rc; i++)
            rc = add_range(cl, cap, set[i].lo, set[i].hi);
        return rc;
    }
    uint32_t next = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (set[i].lo > next) rc = add_range(cl, cap, next, set[i].lo - 1);
        next = set[i].hi + 1;
    }
    if (!rc) rc = add_range(cl, cap, next, 0x10FFFF);
    return rc;
}

static int new_class(compiler *c, size_t *out)
{
    jregex *re = c->re;
    int rc = grow((void **)&re->classes, &c->capclasses, re->nclasses + 1, sizeof(cclass));
    if (rc) return rc;
    memset(&re->classes[re->nclasses], 0, sizeof(cclass));
    *out = re->nclasses++;
    return 0;
}

/* \d \D \w \W \s \S: the set and whether it is complemented; false when
 * ch is not one of them. */
static bool class_escape(char ch, const range **set, size_t *n, bool *complement)
{
    switch (ch) {
    case 'd':
    case 'D':
        *set = DIGIT, *n = 1;
        break;
    case 'w':
    case 'W':
        *set = WORD, *n = 4;
        break;
    case 's':
    case 'S':
        *set = SPACE, *n = sizeof SPACE / sizeof SPACE[0];
        break;
    default:
        return false;
    }
    *complement = ch >= 'A' && ch <= 'Z';
    return true;
}

static int hex4(compiler *c, uint32_t *out)
{
    *out = 0;
    for (int k = 0; k < 4; k++) {
        if (c->pos >= c->len) return bad(c, "incomplete \\u escape");
        char h = c->src[c->pos++];
        int v = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (v < 0) return bad(c, "invalid \\u escape");
        *out = *out * 16 + (uint32_t)v;
    }
    return 0;
}

/* A single-character escape after '\' (c->pos at the character): the code
 * point, or an error for what this subset does not support. */
static int char_escape(compiler *c, bool in_class, uint32_t *cp)
{
    char ch = c->src[c->pos++];
    switch (ch) {
    case 'n':
        *cp = '\n';
        return 0;
    case 'r':
        *cp = '\r';
        return 0;
    case 't':
        *cp = '\t';
        return 0;
    case 'f':
        *cp = '\f';
        return 0;
    case 'v':
        *cp = '\v';
        return 0;
    case '0':
        if (c->pos < c->len && c->src[c->pos] >= '0' && c->src[c->pos] <= '9')
            return bad(c, "octal escapes are not supported");
        *cp = 0;
        return 0;
    case 'u':
        return hex4(c, cp);
    case 'b':
        if (in_class) {
            *cp = '\b';
            return 0;
        }
        return bad(c, "word boundaries (\\b) are not supported");
    case '-':
        *cp = '-';
        return 0;
    default:
        break;
    }
    if (ch >= '1' && ch <= '9') return bad(c, "backreferences are not supported");
    unsigned char u = (unsigned char)ch;
    if (u < 0x80 &&
        !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))) {
        *cp = u; /* escaped punctuation: the character itself */
        return 0;
    }
    c->pos--;
    return bad(c, "unsupported escape");
}

static int parse_class(compiler *c, size_t *out)
{
    size_t idx, cap = 0;
    int rc = new_class(c, &idx);
    if (rc) return rc;
    cclass *cl = &c->re->classes[idx];
    if (c->pos < c->len && c->src[c->pos] == '^') {
        cl->neg = true;
        c->pos++;
    }
    for (;;) {
        cl = &c->re->classes[idx];
        if (c->pos >= c->len) return bad(c, "unterminated character class");
        if (c->src[c->pos] == ']') {
            c->pos++;
            break;
        }
        uint32_t lo;
        if (c->src[c->pos] == '\\') {
            c->pos++;
            if (c->pos >= c->len) return bad(c, "pattern ends with '\\'");
            const range *set;
            size_t n;
            bool comp;
            if (class_escape(c->src[c->pos], &set, &n, &comp)) {
                c->pos++;
                if ((rc = add_set(cl, &cap, set, n, comp))) return rc;
                if (c->pos + 1 < c->len && c->src[c->pos] == '-' && c->src[c->pos + 1] != ']')
                    return bad(c, "a class escape cannot start a range");
                continue;
            }
            if ((rc = char_escape(c, true, &lo))) return rc;
        } else {
            lo = utf8_next((const unsigned char *)c->src, c->len, &c->pos);
        }
        uint32_t hi = lo;
        if (c->pos + 1 < c->len && c->src[c->pos] == '-' && c->src[c->pos + 1] != ']') {
            c->pos++;
            if (c->src[c->pos] == '\\') {
                c->pos++;
                if (c->pos >= c->len) return bad(c, "pattern ends with '\\'");
                const range *set;
                size_t n;
                bool comp;
                if (class_escape(c->src[c->pos], &set, &n, &comp))
                    return bad(c, "a class escape cannot end a range");
                if ((rc = char_escape(c, true, &hi))) return rc;
            } else {
                hi = utf8_next((const unsigned char *)c->src, c->len, &c->pos);
            }
            if (hi < lo) return bad(c, "range out of order in character class");
        }
        if ((rc = add_range(cl, &cap, lo, hi))) return rc;
    }
    if ((rc = new_node(c, N_CLASS, out))) return rc;
    c->nodes[*out].cls = idx;
    return 0;
}

/* --- parser ------------------------------------------------------------------ */

static int parse_alt(compiler *c, int depth, size_t *out);

/* Reads a decimal number for {n,m}; false when there is none. */
static bool read_count(compiler *c, int *v)
{
    size_t start = c->pos;
    long n = 0;
    while (c->pos < c->len && c->src[c->pos] >= '0' && c->src[c->pos] <= '9') {
        if (n <= MAX_REPEAT) n = n * 10 + (c->src[c->pos] - '0');
        c->pos++;
    }
    *v = n > MAX_REPEAT ? MAX_REPEAT + 1 : (int)n;
    return c->pos > start;
}

static int parse_atom(compiler *c, int depth, size_t *out)
{
    int rc;
    char ch = c->src[c->pos];
    switch (ch) {
    case '(': {
        if (depth >= MAX_DEPTH) return bad(c, "groups nested too deeply");
        c->pos++;
        int kind = 0; /* 0 group, 1 lookahead, 2 negative lookahead */
        if (c->pos < c->len && c->src[c->pos] == '?') {
            char k = c->pos + 1 < c->len ? c->src[c->pos + 1] : '\0';
            if (k == ':')
                kind = 0;
            else if (k == '=')
                kind = 1;
            else if (k == '!')
                kind = 2;
            else if (k == '<')
                return bad(c, "lookbehind and named groups are not supported");
            else
                return bad(c, "unsupported group syntax");
            c->pos += 2;
        }
        size_t inner = 0;
        if ((rc = parse_alt(c, depth + 1, &inner))) return rc;
        if (c->pos >= c->len || c->src[c->pos] != ')') return bad(c, "missing ')'");
        c->pos++;
        if (kind == 0) {
            *out = inner;
            return 0;
        }
        if ((rc = new_parent(c, N_LOOK, &inner, 1, out))) return rc;
        c->nodes[*out].neg = kind == 2;
        return 0;
    }
    case ')':
        return bad(c, "unmatched ')'");
    case '*':
    case '+':
    case '?':
        return bad(c, "nothing to repeat");
    case '{': {
        /* ECMA-262 with the u flag rejects a lone '{'; so do we. */
        return bad(c, "nothing to repeat");
    }
    case '[':
        c->pos++;
        return parse_class(c, out);
    case '.':
        c->pos++;
        return new_node(c, N_ANY, out);
    case '^':
        c->pos++;
        return new_node(c, N_BOL, out);
    case '$':
        c->pos++;
        return new_node(c, N_EOL, out);
    case '\\': {
        c->pos++;
        if (c->pos >= c->len) return bad(c, "pattern ends with '\\'");
        const range *set;
        size_t n, cap = 0, idx;
        bool comp;
        if (class_escape(c->src[c->pos], &set, &n, &comp)) {
            c->pos++;
            if ((rc = new_class(c, &idx)) ||
                (rc = add_set(&c->re->classes[idx], &cap, set, n, comp)) ||
                (rc = new_node(c, N_CLASS, out)))
                return rc;
            c->nodes[*out].cls = idx;
            return 0;
        }
        uint32_t cp;
        if ((rc = char_escape(c, false, &cp)) || (rc = new_node(c, N_CHAR, out))) return rc;
        c->nodes[*out].cp = cp;
        return 0;
    }
    default: {
        uint32_t cp = utf8_next((const unsigned char *)c->src, c->len, &c->pos);
        if ((rc = new_node(c, N_CHAR, out))) return rc;
        c->nodes[*out].cp = cp;
        return 0;
    }
    }
}

static int parse_repeat(compiler *c, int depth, size_t *out)
{
    size_t atom = 0;
    int rc = parse_atom(c, depth, &atom);
    if (rc) return rc;
    if (c->pos >= c->len) {
        *out = atom;
        return 0;
    }
    int min, max;
    char ch = c->src[c->pos];
    if (ch == '*')
        min = 0, max = -1, c->pos++;
    else if (ch == '+')
        min = 1, max = -1, c->pos++;
    else if (ch == '?')
        min = 0, max = 1, c->pos++;
    else if (ch == '{') {
        c->pos++;
        if (!read_count(c, &min)) return bad(c, "invalid {n,m} quantifier");
        max = min;
        if (c->pos < c->len && c->src[c->pos] == ',') {
            c->pos++;
            if (!read_count(c, &max)) max = -1;
        }
        if (c->pos >= c->len || c->src[c->pos] != '}') return bad(c, "invalid {n,m} quantifier");
        c->pos++;
        if (min > MAX_REPEAT || max > MAX_REPEAT) return bad(c, "repeat count above 1000");
        if (max != -1 && max < min) return bad(c, "numbers out of order in {n,m} quantifier");
    } else {
        *out = atom;
        return 0;
    }
    if (c->pos < c->len && c->src[c->pos] == '?') c->pos++; /* lazy: same set of matches */
    if (c->pos < c->len && (c->src[c->pos] == '*' || c->src[c->pos] == '+' ||
                            c->src[c->pos] == '?' || c->src[c->pos] == '{'))
        return bad(c, "nothing to repeat");
    if ((rc = new_parent(c, N_REPEAT, &atom, 1, out))) return rc;
    c->nodes[*out].min = min;
    c->nodes[*out].max = max;
    return 0;
}

/* Collects items into a growing local list (kept off the shared kids
 * array, which nested parses append to). */
typedef struct {
    size_t *v;
    size_t n, cap;
} idlist;

static int idlist_push(idlist *l, size_t id)
{
    int rc = grow((void **)&l->v, &l->cap, l->n + 1, sizeof(size_t));
    if (rc) return rc;
    l->v[l->n++] = id;
    return 0;
}

static int parse_cat(compiler *c, int depth, size_t *out)
{
    idlist items = {0};
    int rc = 0;
    while (c->pos < c->len && c->src[c->pos] != '|' && c->src[c->pos] != ')') {
        size_t item = 0;
        if ((rc = parse_repeat(c, depth, &item)) || (rc = idlist_push(&items, item))) goto done;
    }
    if (items.n == 0)
        rc = new_node(c, N_EMPTY, out);
    else if (items.n == 1)
        *out = items.v[0];
    else
        rc = new_parent(c, N_CAT, items.v, items.n, out);
done:
    cmem_free(items.v);
    return rc;
}

static int parse_alt(compiler *c, int depth, size_t *out)
{
    idlist items = {0};
    size_t item = 0;
    int rc;
    if ((rc = parse_cat(c, depth, &item)) || (rc = idlist_push(&items, item))) goto done;
    while (c->pos < c->len && c->src[c->pos] == '|') {
        c->pos++;
        if ((rc = parse_cat(c, depth, &item)) || (rc = idlist_push(&items, item))) goto done;
    }
    if (items.n == 1)
        *out = items.v[0];
    else
        rc = new_parent(c, N_ALT, items.v, items.n, out);
done:
    cmem_free(items.v);
    return rc;
}

/* --- code generation ---------------------------------------------------------- */

static int emit(compiler *c, uint8_t op, uint32_t x, uint32_t y, size_t *at)
{
    jregex *re = c->re;
    if (re->ninst >= MAX_INSTS)
        return cerr_set(CERR_TOOBIG, "pattern compiles to more than %d instructions", MAX_INSTS);
    int rc = grow((void **)&re->code, &c->capinst, re->ninst + 1, sizeof(inst));
    if (rc) return rc;
    re->code[re->ninst] = (inst){.op = op, .x = x, .y = y};
    if (at) *at = re->ninst;
    re->ninst++;
    return 0;
}

static int gen(compiler *c, size_t id)
{
    const node n = c->nodes[id]; /* a copy: the arena does not move, but be safe */
    jregex *re = c->re;
    int rc = 0;
    size_t at, at2;
    switch (n.type) {
    case N_EMPTY:
        return 0;
    case N_CHAR:
        return emit(c, I_CHAR, n.cp, 0, NULL);
    case N_ANY:
        return emit(c, I_ANY, 0, 0, NULL);
    case N_CLASS:
        return emit(c, I_CLASS, (uint32_t)n.cls, 0, NULL);
    case N_BOL:
        return emit(c, I_BOL, 0, 0, NULL);
    case N_EOL:
        return emit(c, I_EOL, 0, 0, NULL);
    case N_CAT:
        for (size_t i = 0; i < n.nkids && !rc; i++)
            rc = gen(c, c->kids[n.kid + i]);
        return rc;
    case N_ALT: {
        /* SPLIT next, alt2; <kid>; JMP end; ... the JMPs are patched at the end */
        idlist jumps = {0};
        for (size_t i = 0; i < n.nkids; i++) {
            bool last = i + 1 == n.nkids;
            if (!last && (rc = emit(c, I_SPLIT, 0, 0, &at))) break;
            if (!last) re->code[at].x = (uint32_t)(at + 1);
            if ((rc = gen(c, c->kids[n.kid + i]))) break;
            if (!last) {
                if ((rc = emit(c, I_JMP, 0, 0, &at2)) || (rc = idlist_push(&jumps, at2))) break;
                re->code[at].y = (uint32_t)re->ninst;
            }
        }
        for (size_t i = 0; !rc && i < jumps.n; i++)
            re->code[jumps.v[i]].x = (uint32_t)re->ninst;
        cmem_free(jumps.v);
        return rc;
    }
    case N_REPEAT: {
        size_t kid = c->kids[n.kid];
        for (int i = 0; i < n.min && !rc; i++)
            rc = gen(c, kid);
        if (rc) return rc;
        if (n.max == -1) {
            /* L: SPLIT body, end; body; JMP L; end: */
            if ((rc = emit(c, I_SPLIT, 0, 0, &at))) return rc;
            re->code[at].x = (uint32_t)(at + 1);
            if ((rc = gen(c, kid)) || (rc = emit(c, I_JMP, (uint32_t)at, 0, NULL))) return rc;
            re->code[at].y = (uint32_t)re->ninst;
            return 0;
        }
        for (int i = n.min; i < n.max && !rc; i++) {
            if ((rc = emit(c, I_SPLIT, 0, 0, &at))) return rc;
            re->code[at].x = (uint32_t)(at + 1);
            if ((rc = gen(c, kid))) return rc;
            re->code[at].y = (uint32_t)re->ninst;
        }
        return rc;
    }
    case N_LOOK: {
        if ((rc = emit(c, I_LOOK, 0, (uint32_t)re->nlooks, &at))) return rc;
        re->code[at].neg = n.neg;
        re->nlooks++;
        if ((rc = grow((void **)&c->pending, &c->cappending, c->npending + 1, sizeof(size_t))))
            return rc;
        if ((rc =
                 grow((void **)&c->pending_at, &c->cappending_at, c->npending + 1, sizeof(size_t))))
            return rc;
        c->pending[c->npending] = c->kids[n.kid];
        c->pending_at[c->npending] = at;
        c->npending++;
        return 0;
    }
    default:
        return cerr_set(CERR_ERROR, "jregex: unknown node type");
    }
}

int jregex_compile(const char *pattern, jregex **out)
{
    compiler c = {.src = pattern, .len = pattern ? strlen(pattern) : 0};
    jregex *re = NULL;
    size_t root = 0;
    int rc;
    *out = NULL;
    if (!pattern) return cerr_set(CERR_INVALID, "pattern: missing");
    re = cmem_calloc(1, sizeof *re);
    if (!re) return cerr_oom();
    c.re = re;
    if ((rc = parse_alt(&c, 0, &root))) goto fail;
    if (c.pos != c.len) {
        rc = bad(&c, "unmatched ')'");
        goto fail;
    }
    if ((rc = gen(&c, root)) || (rc = emit(&c, I_MATCH, 0, 0, NULL))) goto fail;
    /* Lookahead bodies, each a sub-program ending in MATCH; emitting one may
     * queue more (nested lookaheads). */
    for (size_t i = 0; i < c.npending; i++) {
        re->code[c.pending_at[i]].x = (uint32_t)re->ninst;
        if ((rc = gen(&c, c.pending[i])) || (rc = emit(&c, I_MATCH, 0, 0, NULL))) goto fail;
    }
    *out = re;
    re = NULL;
    rc = 0;
fail:
    jregex_free(re);
    cmem_free(c.nodes);
    cmem_free(c.kids);
    cmem_free(c.pending);
    cmem_free(c.pending_at);
    return rc;
}

void jregex_free(jregex *re)
{
    if (!re) return;
    for (size_t i = 0; i < re->nclasses; i++)
        cmem_free(re->classes[i].r);
    cmem_free(re->classes);
    cmem_free(re->code);
    cmem_free(re);
}

/* --- matching ------------------------------------------------------------------- */

typedef struct {
    const jregex *re;
    const unsigned char *s;
    size_t len;
    unsigned char *memo; /* nlooks x (len+1): 0 unknown, 1 match, 2 no match */
} mctx;

static bool class_has(const cclass *cl, uint32_t cp)
{
    bool in = false;
    if (cp < NOT_A_CHAR) {
        for (size_t i = 0; i < cl->n && !in; i++)
            in = cp >= cl->r[i].lo && cp <= cl->r[i].hi;
    }
    return cp < NOT_A_CHAR && in != cl->neg;
}

static bool line_terminator(uint32_t cp)
{
    return cp == '\n' || cp == '\r' || cp == 0x2028 || cp == 0x2029;
}

static int run(mctx *m, size_t start, size_t pos0, bool search);

/* Programs of at most this many instructions match without allocating
 * (about 9 KiB of stack per run, lookaheads nest one run each). */
#define RUN_SMALL 256

typedef struct {
    size_t *list, n;
    size_t *stack;
    unsigned *mark;
    unsigned gen;
} threads;

/* Adds pc's epsilon closure at pos to t: 1 when MATCH is reachable, 0,
 * or a negative error from a lookahead. */
static int closure(mctx *m, threads *t, size_t pc, size_t pos)
{
    const inst *code = m->re->code;
    size_t sp = 0;
    t->stack[sp++] = pc;
    while (sp) {
        pc = t->stack[--sp];
        if (t->mark[pc] == t->gen) continue;
        t->mark[pc] = t->gen;
        const inst *in = &code[pc];
        switch (in->op) {
        case I_MATCH:
            return 1;
        case I_JMP:
            t->stack[sp++] = in->x;
            break;
        case I_SPLIT:
            t->stack[sp++] = in->y;
            t->stack[sp++] = in->x;
            break;
        case I_BOL:
            if (pos == 0) t->stack[sp++] = pc + 1;
            break;
        case I_EOL:
            if (pos == m->len) t->stack[sp++] = pc + 1;
            break;
        case I_LOOK: {
            unsigned char *slot = m->memo ? &m->memo[(size_t)in->y * (m->len + 1) + pos] : NULL;
            int r;
            if (slot && *slot) {
                r = *slot == 1;
            } else {
                r = run(m, in->x, pos, false);
                if (r < 0) return r;
                if (slot) *slot = r ? 1 : 2;
            }
            if ((r == 1) != (in->neg != 0)) t->stack[sp++] = pc + 1;
            break;
        }
        default:
            t->list[t->n++] = pc;
            break;
        }
    }
    return 0;
}

static bool consumes(const mctx *m, const inst *in, uint32_t cp)
{
    switch (in->op) {
    case I_CHAR:
        return in->x == cp;
    case I_ANY:
        return !line_terminator(cp);
    case I_CLASS:
        return class_has(&m->re->classes[in->x], cp);
    default:
        return false;
    }
}

/* Runs the program from start at pos0: anchored there (a lookahead) or,
 * with search, starting a thread at every position. 1 when MATCH is
 * reached, 0, or CERR_NOMEM. */
static int run(mctx *m, size_t start, size_t pos0, bool search)
{
    size_t n = m->re->ninst;
    threads a = {0}, b = {0};
    int rc = CERR_NOMEM;
    /* a program of up to RUN_SMALL instructions (every pattern of the
     * task schema) runs on the stack: a schema check searches many
     * strings, and four allocations per search were most of its cost */
    size_t small[4 * RUN_SMALL + 2];
    unsigned small_mark[RUN_SMALL];
    bool heap = n > RUN_SMALL;
    if (!heap) {
        a.list = small;
        b.list = small + RUN_SMALL;
        a.stack = small + 2 * RUN_SMALL;
        a.mark = small_mark;
        memset(small_mark, 0, n * sizeof *small_mark);
    } else {
        a.list = cmem_calloc(n, sizeof(size_t));
        b.list = cmem_calloc(n, sizeof(size_t));
        /* each instruction is expanded once per closure and pushes at most two */
        a.stack = cmem_calloc(2 * n + 2, sizeof(size_t));
        a.mark = cmem_calloc(n, sizeof(unsigned));
    }
    if (!a.list || !b.list || !a.stack || !a.mark) {
        cerr_oom();
        goto done;
    }
    b.stack = a.stack;
    b.mark = a.mark; /* one mark array: generations tell the steps apart */
    threads *cur = &a, *nxt = &b;
    unsigned gen = 1;
    cur->gen = gen;
    size_t pos = pos0;
    if ((rc = closure(m, cur, start, pos))) goto done;
    for (;;) {
        if (pos >= m->len || (!search && cur->n == 0)) {
            rc = 0;
            break;
        }
        size_t next = pos;
        uint32_t cp = utf8_next(m->s, m->len, &next);
        nxt->n = 0;
        nxt->gen = ++gen;
        for (size_t i = 0; i < cur->n; i++) {
            size_t pc = cur->list[i];
            if (consumes(m, &m->re->code[pc], cp) && (rc = closure(m, nxt, pc + 1, next)))
                goto done;
        }
        if (search && (rc = closure(m, nxt, start, next))) goto done;
        threads *tmp = cur;
        cur = nxt;
        nxt = tmp;
        pos = next;
    }
done:
    if (heap) {
        cmem_free(a.list);
        cmem_free(b.list);
        cmem_free(a.stack);
        cmem_free(a.mark);
    }
    return rc;
}

int jregex_search(const jregex *re, const char *s, size_t len)
{
    mctx m = {.re = re, .s = (const unsigned char *)s, .len = len};
    if (re->nlooks) {
        if (len + 1 > SIZE_MAX / re->nlooks) return cerr_set(CERR_TOOBIG, "subject too long");
        m.memo = cmem_calloc(re->nlooks, len + 1);
        if (!m.memo) return cerr_oom();
    }
    int rc = run(&m, 0, 0, true);
    cmem_free(m.memo);
    return rc;
}
