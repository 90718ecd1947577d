/*
 * expr.c - compiling and evaluating band-math expressions (expr.h).
 *
 * Compilation is a recursive-descent parser emitting a postfix program
 * directly (no tree): each grammar level is one function, and recursion only
 * happens through parentheses, calls, unary operators and ^, all of which
 * count against EXPR_MAX_DEPTH, so a hostile expression cannot exhaust the C
 * stack. Constant subexpressions are folded while emitting.
 *
 * Evaluation walks the program once per chunk of EXPR_CHUNK pixels. The
 * value stack holds pointers to arrays: a variable is pushed by pointing at
 * the caller's array (no copy), every computed value lives in the stack
 * slot's own buffer, and each slot has its own mask buffer. An operator
 * writes its result into the slot of its first operand, which is safe
 * because every kernel reads element i before writing element i.
 * Called from the calc operation on the worker's single thread.
 */
#include "expr.h"

#include "err.h"
#include "mem.h"

#include <cpl_conv.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Pixels per pass: small enough that a slot's values and mask stay in L1/L2
 * together with its operands, large enough to amortise the dispatch. */
#define EXPR_CHUNK 256
/* Pending operands the program may need at once; the depth limit keeps real
 * expressions far below this (about 7 per nesting level). */
#define EXPR_MAX_STACK 1024

enum opcode {
    /* push */
    OP_VAR,
    OP_CONST,
    OP_NODATA,
    /* unary */
    OP_NEG,
    OP_NOT,
    OP_ABS,
    OP_SQRT,
    OP_LOG,
    OP_LOG10,
    OP_EXP,
    OP_FLOOR,
    OP_CEIL,
    OP_ROUND,
    OP_ISNODATA,
    /* binary */
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_MOD,
    OP_POW,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_EQ,
    OP_NE,
    OP_AND,
    OP_OR,
    OP_MIN,
    OP_MAX,
    /* ternary */
    OP_WHERE,
};

static const char *const op_names[] = {
    "var",  "const", "nodata",   "neg", "not", "abs", "sqrt", "log", "log10", "exp", "floor",
    "ceil", "round", "isnodata", "+",   "-",   "*",   "/",    "%",   "^",     "<",   "<=",
    ">",    ">=",    "==",       "!=",  "and", "or",  "min",  "max", "where",
};

static int op_arity(int op)
{
    if (op <= OP_NODATA) return 0;
    if (op <= OP_ISNODATA) return 1;
    if (op <= OP_MAX) return 2;
    return 3;
}

typedef struct insn {
    unsigned char op;
    unsigned arg; /* OP_VAR: variable index */
    double k;     /* OP_CONST */
} insn;

struct expr {
    insn *prog;
    size_t n_prog, cap_prog;
    expr_var *vars;
    size_t n_vars;
    size_t max_stack;
    /* Evaluation scratch, max_stack slots of EXPR_CHUNK each. */
    double *vals;
    unsigned char *masks;
    const double **sv; /* the value array each stack entry currently reads */
};

/* ---- kernels --------------------------------------------------------------
 * One pass over len elements per call. Results that are not finite are left
 * as computed; the mask pass after each kernel turns them into nodata. The
 * same kernels fold constants at compile time, so folding cannot disagree
 * with evaluation. */

/* fabs(x) <= DBL_MAX is false for NaN and +-Inf and, unlike isfinite(),
 * compiles to a plain vector compare. */
#define FINITE(x) (fabs(x) <= DBL_MAX)

static void k_unary(int op, const double *a, double *o, size_t len)
{
    size_t i;
    switch (op) {
    case OP_NEG:
        for (i = 0; i < len; i++)
            o[i] = -a[i];
        break;
    case OP_NOT:
        for (i = 0; i < len; i++)
            o[i] = a[i] == 0 ? 1.0 : 0.0;
        break;
    case OP_ABS:
        for (i = 0; i < len; i++)
            o[i] = fabs(a[i]);
        break;
    /* Domain errors are spelled out as NaN rather than left to libm so that
     * no floating-point exception is ever raised on purpose. */
    case OP_SQRT:
        for (i = 0; i < len; i++)
            o[i] = a[i] >= 0 ? sqrt(a[i]) : NAN;
        break;
    case OP_LOG:
        for (i = 0; i < len; i++)
            o[i] = a[i] > 0 ? log(a[i]) : NAN;
        break;
    case OP_LOG10:
        for (i = 0; i < len; i++)
            o[i] = a[i] > 0 ? log10(a[i]) : NAN;
        break;
    case OP_EXP:
        for (i = 0; i < len; i++)
            o[i] = exp(a[i]);
        break;
    case OP_FLOOR:
        for (i = 0; i < len; i++)
            o[i] = floor(a[i]);
        break;
    case OP_CEIL:
        for (i = 0; i < len; i++)
            o[i] = ceil(a[i]);
        break;
    case OP_ROUND:
        for (i = 0; i < len; i++)
            o[i] = round(a[i]);
        break;
    default:
        break;
    }
}

static void k_binary(int op, const double *a, const double *b, double *o, size_t len)
{
    size_t i;
    switch (op) {
    case OP_ADD:
        for (i = 0; i < len; i++)
            o[i] = a[i] + b[i];
        break;
    case OP_SUB:
        for (i = 0; i < len; i++)
            o[i] = a[i] - b[i];
        break;
    case OP_MUL:
        for (i = 0; i < len; i++)
            o[i] = a[i] * b[i];
        break;
    case OP_DIV:
        for (i = 0; i < len; i++)
            o[i] = b[i] != 0 ? a[i] / b[i] : NAN;
        break;
    case OP_MOD:
        for (i = 0; i < len; i++)
            o[i] = b[i] != 0 ? fmod(a[i], b[i]) : NAN;
        break;
    case OP_POW:
        for (i = 0; i < len; i++) {
            /* pow(0, negative) is a pole and a negative base with a
             * non-integral exponent a domain error: both are nodata. */
            if ((a[i] == 0 && b[i] < 0) || (a[i] < 0 && b[i] != floor(b[i])))
                o[i] = NAN;
            else
                o[i] = pow(a[i], b[i]);
        }
        break;
    case OP_LT:
        for (i = 0; i < len; i++)
            o[i] = a[i] < b[i] ? 1.0 : 0.0;
        break;
    case OP_LE:
        for (i = 0; i < len; i++)
            o[i] = a[i] <= b[i] ? 1.0 : 0.0;
        break;
    case OP_GT:
        for (i = 0; i < len; i++)
            o[i] = a[i] > b[i] ? 1.0 : 0.0;
        break;
    case OP_GE:
        for (i = 0; i < len; i++)
            o[i] = a[i] >= b[i] ? 1.0 : 0.0;
        break;
    case OP_EQ:
        for (i = 0; i < len; i++)
            o[i] = a[i] == b[i] ? 1.0 : 0.0;
        break;
    case OP_NE:
        for (i = 0; i < len; i++)
            o[i] = a[i] != b[i] ? 1.0 : 0.0;
        break;
    case OP_AND:
        for (i = 0; i < len; i++)
            o[i] = (double)((a[i] != 0) & (b[i] != 0));
        break;
    case OP_OR:
        for (i = 0; i < len; i++)
            o[i] = (double)((a[i] != 0) | (b[i] != 0));
        break;
    case OP_MIN:
        for (i = 0; i < len; i++)
            o[i] = b[i] < a[i] ? b[i] : a[i];
        break;
    case OP_MAX:
        for (i = 0; i < len; i++)
            o[i] = b[i] > a[i] ? b[i] : a[i];
        break;
    default:
        break;
    }
}

/* where: o may be the condition's own buffer. */
static void k_where(const double *c, const unsigned char *cm, const double *a,
                    const unsigned char *am, const double *b, const unsigned char *bm, double *o,
                    unsigned char *om, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        bool pick_a = c[i] != 0;
        unsigned char m = (unsigned char)(cm[i] | (pick_a ? am[i] : bm[i]));
        o[i] = pick_a ? a[i] : b[i];
        om[i] = m;
    }
}

/* ---- lexer ------------------------------------------------------------------ */

typedef enum {
    T_END,
    T_NUM,
    T_IDENT,
    T_LPAREN,
    T_RPAREN,
    T_LBRACK,
    T_RBRACK,
    T_COMMA,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_PERCENT,
    T_CARET,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_EQ,
    T_NE,
    T_AND,
    T_OR,
    T_NOT,
    T_BAD,
} tok_type;

typedef struct token {
    tok_type type;
    size_t pos; /* 0-based byte offset */
    size_t len;
    double num;
} token;

typedef struct parser {
    const char *src;
    size_t len;
    size_t pos; /* lexer position */
    token tok;  /* lookahead */
    int depth;
    bool failed;
    size_t stack; /* operands the program has pending at this point */
    expr *e;
    const char *const *names;
    size_t n_names;
} parser;

/* Sets the error once: the first problem found is the one reported. */
static int perr(parser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *p, size_t pos, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    if (p->failed) return -1;
    p->failed = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(ERR_BAD_INPUT, ERR_EXPRESSION, EXPR_FIELD, "expression: offset %zu: %s", pos + 1,
                   msg);
}

/* "'text'" or "end of expression", bounded and printable, for messages. */
static const char *tok_describe(const parser *p, const token *t, char *buf, size_t cap)
{
    size_t o = 0, i;
    if (t->type == T_END) return "end of expression";
    buf[o++] = '\'';
    for (i = 0; i < t->len && i < 24 && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)p->src[t->pos + i];
        if (c >= 0x20 && c < 0x7f)
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    if (i < t->len && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool tok_is(const parser *p, const token *t, const char *word)
{
    size_t n = strlen(word);
    return t->len == n && memcmp(p->src + t->pos, word, n) == 0;
}

static int lex_number(parser *p, token *t)
{
    const char *s = p->src;
    size_t i = t->pos, int_digits = 0, frac_digits = 0;
    char buf[64];
    char *copy = NULL, *end = NULL;
    while (i < p->len && is_digit(s[i]))
        i++, int_digits++;
    if (i < p->len && s[i] == '.') {
        i++;
        while (i < p->len && is_digit(s[i]))
            i++, frac_digits++;
    }
    if (int_digits + frac_digits == 0) return perr(p, t->pos, "malformed number");
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < p->len && (s[j] == '+' || s[j] == '-')) j++;
        if (j >= p->len || !is_digit(s[j]))
            return perr(p, t->pos, "malformed number: exponent needs digits");
        while (j < p->len && is_digit(s[j]))
            j++;
        i = j;
    }
    t->len = i - t->pos;
    /* CPLStrtod ignores the C locale's decimal separator. Short numbers are
     * converted from a stack copy, long ones (all digits, bounded by
     * EXPR_MAX_LEN) from a heap copy. */
    if (t->len < sizeof buf) {
        memcpy(buf, s + t->pos, t->len);
        buf[t->len] = '\0';
        t->num = CPLStrtod(buf, &end);
    } else {
        copy = mem_strndup(s + t->pos, t->len);
        if (!copy) {
            p->failed = true;
            return err_oom();
        }
        t->num = CPLStrtod(copy, &end);
        mem_free(copy);
    }
    if (!FINITE(t->num)) return perr(p, t->pos, "number out of range");
    return 0;
}

/* Reads the next token into p->tok. On a lexical error sets the error and
 * returns -1 with a T_BAD token. */
static int next(parser *p)
{
    const char *s = p->src;
    token *t = &p->tok;
    char c, c2;
    while (p->pos < p->len &&
           (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' || s[p->pos] == '\r'))
        p->pos++;
    t->pos = p->pos;
    t->len = 1;
    t->num = 0;
    if (p->pos >= p->len) {
        t->type = T_END;
        t->len = 0;
        return 0;
    }
    c = s[p->pos];
    c2 = p->pos + 1 < p->len ? s[p->pos + 1] : '\0';
    if (is_digit(c) || (c == '.' && is_digit(c2))) {
        t->type = T_NUM;
        if (lex_number(p, t) < 0) {
            t->type = T_BAD;
            return -1;
        }
    } else if (is_ident_start(c)) {
        size_t i = p->pos;
        while (i < p->len && is_ident_char(s[i]))
            i++;
        t->len = i - p->pos;
        t->type = T_IDENT;
        if (tok_is(p, t, "and"))
            t->type = T_AND;
        else if (tok_is(p, t, "or"))
            t->type = T_OR;
        else if (tok_is(p, t, "not"))
            t->type = T_NOT;
    } else {
        switch (c) {
        case '(':
            t->type = T_LPAREN;
            break;
        case ')':
            t->type = T_RPAREN;
            break;
        case '[':
            t->type = T_LBRACK;
            break;
        case ']':
            t->type = T_RBRACK;
            break;
        case ',':
            t->type = T_COMMA;
            break;
        case '+':
            t->type = T_PLUS;
            break;
        case '-':
            t->type = T_MINUS;
            break;
        case '*':
            t->type = T_STAR;
            break;
        case '/':
            t->type = T_SLASH;
            break;
        case '%':
            t->type = T_PERCENT;
            break;
        case '^':
            t->type = T_CARET;
            break;
        case '<':
            t->type = c2 == '=' ? T_LE : T_LT;
            break;
        case '>':
            t->type = c2 == '=' ? T_GE : T_GT;
            break;
        case '=':
            if (c2 != '=') {
                t->type = T_BAD;
                return perr(p, t->pos, "unexpected '=' (compare with '==')");
            }
            t->type = T_EQ;
            break;
        case '!':
            t->type = c2 == '=' ? T_NE : T_NOT;
            break;
        case '&':
        case '|':
            if (c2 != c) {
                t->type = T_BAD;
                return perr(p, t->pos, "unexpected '%c' (use '%c%c' or '%s')", c, c, c,
                            c == '&' ? "and" : "or");
            }
            t->type = c == '&' ? T_AND : T_OR;
            break;
        default:
            t->type = T_BAD;
            if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
                return perr(p, t->pos, "unexpected character '%c'", c);
            return perr(p, t->pos, "unexpected byte 0x%02x", (unsigned char)c);
        }
        if (t->type == T_LE || t->type == T_GE || t->type == T_EQ || t->type == T_NE ||
            ((t->type == T_AND || t->type == T_OR) && (c == '&' || c == '|')))
            t->len = 2;
    }
    p->pos = t->pos + t->len;
    return 0;
}

/* ---- emitting ---------------------------------------------------------------- */

static int grow_prog(parser *p)
{
    expr *e = p->e;
    size_t cap;
    insn *np;
    if (e->n_prog < e->cap_prog) return 0;
    if (e->n_prog >= EXPR_MAX_INSNS)
        return perr(p, p->tok.pos, "expression too large (more than %d operations)",
                    EXPR_MAX_INSNS);
    cap = e->cap_prog ? e->cap_prog * 2 : 32;
    if (cap > EXPR_MAX_INSNS) cap = EXPR_MAX_INSNS;
    np = mem_realloc(e->prog, cap * sizeof *np);
    if (!np) {
        p->failed = true;
        return err_oom();
    }
    e->prog = np;
    e->cap_prog = cap;
    return 0;
}

/* Replaces the operator's constant operands at the end of the program by
 * its value when every operand is a constant and the result is a finite
 * number; otherwise leaves the program alone (the operator is then emitted
 * and evaluated per pixel, which yields nodata where it must). */
static bool try_fold(expr *e, int op)
{
    int n = op_arity(op);
    double a, b, r;
    if (e->n_prog < (size_t)n) return false;
    for (int i = 1; i <= n; i++)
        if (e->prog[e->n_prog - (size_t)i].op != OP_CONST) return false;
    if (n == 1) {
        a = e->prog[e->n_prog - 1].k;
        if (op == OP_ISNODATA)
            r = 0; /* a finite constant is never nodata */
        else
            k_unary(op, &a, &r, 1);
    } else if (n == 2) {
        a = e->prog[e->n_prog - 2].k;
        b = e->prog[e->n_prog - 1].k;
        k_binary(op, &a, &b, &r, 1);
    } else {
        r = e->prog[e->n_prog - 3].k != 0 ? e->prog[e->n_prog - 2].k : e->prog[e->n_prog - 1].k;
    }
    if (!FINITE(r)) return false;
    e->n_prog -= (size_t)n - 1;
    e->prog[e->n_prog - 1].k = r;
    return true;
}

static int emit(parser *p, int op, unsigned arg, double k)
{
    expr *e = p->e;
    int n = op_arity(op);
    if (n > 0 && try_fold(e, op)) {
        p->stack -= (size_t)n - 1;
        return 0;
    }
    if (grow_prog(p) < 0) return -1;
    e->prog[e->n_prog].op = (unsigned char)op;
    e->prog[e->n_prog].arg = arg;
    e->prog[e->n_prog].k = k;
    e->n_prog++;
    if (n == 0) {
        p->stack++;
        if (p->stack > EXPR_MAX_STACK)
            return perr(p, p->tok.pos, "expression needs more than %d pending operands",
                        EXPR_MAX_STACK);
        if (p->stack > e->max_stack) e->max_stack = p->stack;
    } else {
        p->stack -= (size_t)n - 1;
    }
    return 0;
}

static int emit_var(parser *p, size_t input, long band, size_t pos)
{
    expr *e = p->e;
    size_t i;
    for (i = 0; i < e->n_vars; i++)
        if (e->vars[i].input == input && e->vars[i].band == band) break;
    if (i == e->n_vars) {
        expr_var *nv;
        if (e->n_vars >= EXPR_MAX_VARS)
            return perr(p, pos, "more than %d distinct input bands", EXPR_MAX_VARS);
        nv = mem_realloc(e->vars, (e->n_vars + 1) * sizeof *nv);
        if (!nv) {
            p->failed = true;
            return err_oom();
        }
        e->vars = nv;
        e->vars[i].input = input;
        e->vars[i].band = (int)band;
        e->vars[i].offset = pos + 1;
        e->n_vars++;
    }
    return emit(p, OP_VAR, (unsigned)i, 0);
}

/* ---- parser ------------------------------------------------------------------ */

static int parse_expr(parser *p);
static int parse_unary(parser *p);

static int enter(parser *p, size_t pos)
{
    if (p->depth >= EXPR_MAX_DEPTH)
        return perr(p, pos, "nested too deeply (limit %d)", EXPR_MAX_DEPTH);
    p->depth++;
    return 0;
}

static void leave(parser *p)
{
    p->depth--;
}

typedef struct func_def {
    const char *name;
    int op;
    int min_args, max_args; /* max 0: any number */
} func_def;

static const func_def funcs[] = {
    {"min", OP_MIN, 1, 0},     {"max", OP_MAX, 1, 0},     {"abs", OP_ABS, 1, 1},
    {"sqrt", OP_SQRT, 1, 1},   {"log", OP_LOG, 1, 1},     {"log10", OP_LOG10, 1, 1},
    {"exp", OP_EXP, 1, 1},     {"floor", OP_FLOOR, 1, 1}, {"ceil", OP_CEIL, 1, 1},
    {"round", OP_ROUND, 1, 1}, {"where", OP_WHERE, 3, 3}, {"isnodata", OP_ISNODATA, 1, 1},
};

static const func_def *find_func(const parser *p, const token *t)
{
    for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
        if (tok_is(p, t, funcs[i].name)) return &funcs[i];
    return NULL;
}

static int find_input(const parser *p, const token *t, size_t *idx)
{
    for (size_t i = 0; i < p->n_names; i++) {
        if (p->names[i] && strlen(p->names[i]) == t->len &&
            memcmp(p->names[i], p->src + t->pos, t->len) == 0) {
            *idx = i;
            return 0;
        }
    }
    return -1;
}

static int unknown_input(parser *p, const token *t)
{
    char list[256];
    size_t o = 0;
    list[0] = '\0';
    for (size_t i = 0; i < p->n_names && o + 8 < sizeof list; i++) {
        int n = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", p->names[i]);
        if (n < 0 || (size_t)n >= sizeof list - o) {
            snprintf(list + o, sizeof list - o, ", ...");
            break;
        }
        o += (size_t)n;
    }
    return perr(p, t->pos, "unknown input '%.*s' (inputs: %s)", (int)(t->len > 64 ? 64 : t->len),
                p->src + t->pos, p->n_names ? list : "none");
}

static int parse_call(parser *p, const token *name)
{
    char buf[64];
    const func_def *f = find_func(p, name);
    int argc = 0;
    if (!f) {
        return perr(p, name->pos, "unknown function '%.*s'", (int)(name->len > 64 ? 64 : name->len),
                    p->src + name->pos);
    }
    if (enter(p, name->pos) < 0) return -1;
    if (next(p) < 0) return -1; /* '(' */
    for (;;) {
        if (f->max_args && argc == f->max_args)
            return perr(p, p->tok.pos, "%s() takes %d argument%s, got more", f->name, f->max_args,
                        f->max_args == 1 ? "" : "s");
        if (parse_expr(p) < 0) return -1;
        argc++;
        /* min/max fold pairwise as they go, so any number of arguments needs
         * only two stack slots. */
        if ((f->op == OP_MIN || f->op == OP_MAX) && argc >= 2 && emit(p, f->op, 0, 0) < 0)
            return -1;
        if (p->tok.type == T_COMMA) {
            if (next(p) < 0) return -1;
            continue;
        }
        if (p->tok.type == T_RPAREN) break;
        return perr(p, p->tok.pos, "expected ',' or ')' in the arguments of %s(), got %s", f->name,
                    tok_describe(p, &p->tok, buf, sizeof buf));
    }
    if (argc < f->min_args)
        return perr(p, p->tok.pos, "%s() takes %d argument%s, got %d", f->name, f->min_args,
                    f->min_args == 1 ? "" : "s", argc);
    if (f->op != OP_MIN && f->op != OP_MAX && emit(p, f->op, 0, 0) < 0) return -1;
    leave(p);
    return next(p); /* ')' */
}

/* name[band]: the lookahead is '['. */
static int parse_band(parser *p, const token *name)
{
    char buf[64];
    size_t input;
    double b;
    if (next(p) < 0) return -1; /* '[' */
    if (p->tok.type != T_NUM)
        return perr(p, p->tok.pos, "expected a band number after '[', got %s",
                    tok_describe(p, &p->tok, buf, sizeof buf));
    b = p->tok.num;
    if (b != floor(b) || b < 1 || b > EXPR_MAX_BAND)
        return perr(p, p->tok.pos, "band must be an integer from 1 to %d", EXPR_MAX_BAND);
    if (next(p) < 0) return -1;
    if (p->tok.type != T_RBRACK)
        return perr(p, p->tok.pos, "expected ']' after the band number, got %s",
                    tok_describe(p, &p->tok, buf, sizeof buf));
    if (find_input(p, name, &input) < 0) return unknown_input(p, name);
    if (emit_var(p, input, (long)b, name->pos) < 0) return -1;
    return next(p);
}

static int parse_primary(parser *p)
{
    char buf[64];
    token t = p->tok;
    size_t input;
    switch (t.type) {
    case T_NUM:
        if (emit(p, OP_CONST, 0, t.num) < 0) return -1;
        return next(p);
    case T_LPAREN:
        if (enter(p, t.pos) < 0) return -1;
        if (next(p) < 0 || parse_expr(p) < 0) return -1;
        if (p->tok.type != T_RPAREN)
            return perr(p, p->tok.pos, "expected ')' to close '(' at offset %zu, got %s", t.pos + 1,
                        tok_describe(p, &p->tok, buf, sizeof buf));
        leave(p);
        return next(p);
    case T_IDENT:
        if (next(p) < 0) return -1;
        if (p->tok.type == T_LPAREN) return parse_call(p, &t);
        if (p->tok.type == T_LBRACK) return parse_band(p, &t);
        if (find_input(p, &t, &input) == 0) return emit_var(p, input, 1, t.pos);
        if (tok_is(p, &t, "pi")) return emit(p, OP_CONST, 0, M_PI);
        if (tok_is(p, &t, "nodata")) return emit(p, OP_NODATA, 0, 0);
        if (find_func(p, &t))
            return perr(p, t.pos, "function '%.*s' needs '(' and its arguments", (int)t.len,
                        p->src + t.pos);
        return unknown_input(p, &t);
    default:
        return perr(p, t.pos, "expected a number, input name, function or '(', got %s",
                    tok_describe(p, &t, buf, sizeof buf));
    }
}

/* primary ['^' unary]: the right operand may itself carry a sign and a
 * further ^, which makes ^ right-associative. */
static int parse_power(parser *p)
{
    size_t pos;
    if (parse_primary(p) < 0) return -1;
    if (p->tok.type != T_CARET) return 0;
    pos = p->tok.pos;
    if (enter(p, pos) < 0) return -1;
    if (next(p) < 0 || parse_unary(p) < 0) return -1;
    leave(p);
    return emit(p, OP_POW, 0, 0);
}

/* Prefix operators are collected in a loop, not by recursion, and applied
 * innermost first after the operand. */
static int parse_unary(parser *p)
{
    unsigned char ops[EXPR_MAX_DEPTH];
    int n = 0, i;
    for (;;) {
        tok_type tt = p->tok.type;
        if (tt != T_MINUS && tt != T_PLUS && tt != T_NOT) break;
        if (p->depth + n >= EXPR_MAX_DEPTH)
            return perr(p, p->tok.pos, "nested too deeply (limit %d)", EXPR_MAX_DEPTH);
        ops[n++] = tt == T_MINUS ? OP_NEG : tt == T_NOT ? OP_NOT : 0;
        if (next(p) < 0) return -1;
    }
    p->depth += n;
    if (parse_power(p) < 0) return -1;
    p->depth -= n;
    for (i = n - 1; i >= 0; i--)
        if (ops[i] && emit(p, ops[i], 0, 0) < 0) return -1;
    return 0;
}

/* Binary levels, loosest first. */
enum { LVL_OR, LVL_AND, LVL_CMP, LVL_ADD, LVL_MUL, LVL_UNARY };

static int binary_op(tok_type t, int level)
{
    switch (level) {
    case LVL_OR:
        return t == T_OR ? OP_OR : -1;
    case LVL_AND:
        return t == T_AND ? OP_AND : -1;
    case LVL_CMP:
        switch (t) {
        case T_LT:
            return OP_LT;
        case T_LE:
            return OP_LE;
        case T_GT:
            return OP_GT;
        case T_GE:
            return OP_GE;
        case T_EQ:
            return OP_EQ;
        case T_NE:
            return OP_NE;
        default:
            return -1;
        }
    case LVL_ADD:
        return t == T_PLUS ? OP_ADD : t == T_MINUS ? OP_SUB : -1;
    case LVL_MUL:
        return t == T_STAR ? OP_MUL : t == T_SLASH ? OP_DIV : t == T_PERCENT ? OP_MOD : -1;
    default:
        return -1;
    }
}

static int parse_binary(parser *p, int level)
{
    int op;
    if (level == LVL_UNARY) return parse_unary(p);
    if (parse_binary(p, level + 1) < 0) return -1;
    while ((op = binary_op(p->tok.type, level)) >= 0) {
        if (next(p) < 0 || parse_binary(p, level + 1) < 0) return -1;
        if (emit(p, op, 0, 0) < 0) return -1;
    }
    return 0;
}

static int parse_expr(parser *p)
{
    return parse_binary(p, LVL_OR);
}

/* ---- public ------------------------------------------------------------------ */

int expr_compile(const char *src, const char *const *names, size_t n_names, expr **out)
{
    parser p;
    expr *e = NULL;
    char buf[64];
    int rc = -1;
    size_t slots;

    *out = NULL;
    if (!src) src = "";
    memset(&p, 0, sizeof p);
    p.src = src;
    p.len = strnlen(src, EXPR_MAX_LEN + 1);
    p.names = names;
    p.n_names = n_names;
    if (p.len > EXPR_MAX_LEN) {
        err_set(ERR_BAD_INPUT, ERR_EXPRESSION, EXPR_FIELD, "expression: longer than %d bytes",
                EXPR_MAX_LEN);
        goto cleanup;
    }
    e = mem_calloc(1, sizeof *e);
    if (!e) {
        err_oom();
        goto cleanup;
    }
    p.e = e;
    if (next(&p) < 0 || parse_expr(&p) < 0) goto cleanup;
    if (p.tok.type != T_END) {
        perr(&p, p.tok.pos, "expected an operator or the end of the expression, got %s",
             tok_describe(&p, &p.tok, buf, sizeof buf));
        goto cleanup;
    }
    slots = e->max_stack * EXPR_CHUNK;
    e->vals = mem_malloc(slots * sizeof *e->vals);
    e->masks = mem_malloc(slots * sizeof *e->masks);
    e->sv = mem_malloc(e->max_stack * sizeof *e->sv);
    if (!e->vals || !e->masks || !e->sv) {
        err_oom();
        goto cleanup;
    }
    *out = e;
    e = NULL;
    rc = 0;
cleanup:
    expr_free(e);
    return rc;
}

size_t expr_n_vars(const expr *e)
{
    return e->n_vars;
}

const expr_var *expr_var_at(const expr *e, size_t i)
{
    return i < e->n_vars ? &e->vars[i] : NULL;
}

void expr_eval(expr *e, const double *const *vars, const unsigned char *const *masks, size_t n,
               double *out, unsigned char *out_mask)
{
    const double **sv = e->sv;
    for (size_t off = 0; off < n; off += EXPR_CHUNK) {
        size_t len = n - off < EXPR_CHUNK ? n - off : EXPR_CHUNK;
        size_t sp = 0, i;
        for (size_t pc = 0; pc < e->n_prog; pc++) {
            const insn *in = &e->prog[pc];
            int op = in->op;
            double *v;
            unsigned char *m;
            switch (op_arity(op)) {
            case 0:
                v = e->vals + sp * EXPR_CHUNK;
                m = e->masks + sp * EXPR_CHUNK;
                if (op == OP_VAR) {
                    const double *src = vars[in->arg] + off;
                    const unsigned char *ms = masks && masks[in->arg] ? masks[in->arg] + off : NULL;
                    if (ms)
                        for (i = 0; i < len; i++)
                            m[i] = (ms[i] != 0) | !FINITE(src[i]);
                    else
                        for (i = 0; i < len; i++)
                            m[i] = !FINITE(src[i]);
                    sv[sp] = src;
                } else {
                    for (i = 0; i < len; i++)
                        v[i] = in->k;
                    memset(m, op == OP_NODATA, len);
                    sv[sp] = v;
                }
                sp++;
                break;
            case 1:
                v = e->vals + (sp - 1) * EXPR_CHUNK;
                m = e->masks + (sp - 1) * EXPR_CHUNK;
                if (op == OP_ISNODATA) {
                    for (i = 0; i < len; i++)
                        v[i] = m[i] ? 1.0 : 0.0;
                    memset(m, 0, len);
                } else {
                    k_unary(op, sv[sp - 1], v, len);
                    for (i = 0; i < len; i++)
                        m[i] |= !FINITE(v[i]);
                }
                sv[sp - 1] = v;
                break;
            case 2: {
                const unsigned char *mb = e->masks + (sp - 1) * EXPR_CHUNK;
                v = e->vals + (sp - 2) * EXPR_CHUNK;
                m = e->masks + (sp - 2) * EXPR_CHUNK;
                k_binary(op, sv[sp - 2], sv[sp - 1], v, len);
                for (i = 0; i < len; i++)
                    m[i] |= mb[i] | !FINITE(v[i]);
                sv[sp - 2] = v;
                sp--;
                break;
            }
            default:
                v = e->vals + (sp - 3) * EXPR_CHUNK;
                m = e->masks + (sp - 3) * EXPR_CHUNK;
                k_where(sv[sp - 3], m, sv[sp - 2], e->masks + (sp - 2) * EXPR_CHUNK, sv[sp - 1],
                        e->masks + (sp - 1) * EXPR_CHUNK, v, m, len);
                sv[sp - 3] = v;
                sp -= 2;
                break;
            }
        }
        {
            const double *rv = sv[0];
            const unsigned char *rm = e->masks;
            for (i = 0; i < len; i++) {
                unsigned char mm = rm[i];
                out_mask[off + i] = mm;
                out[off + i] = mm ? 0.0 : rv[i];
            }
        }
    }
}

char *expr_dump(const expr *e, const char *const *names)
{
    size_t cap = 64, o = 0;
    char *s = mem_malloc(cap);
    if (!s) return NULL;
    s[0] = '\0';
    for (size_t pc = 0; pc < e->n_prog; pc++) {
        const insn *in = &e->prog[pc];
        char item[160];
        int n;
        if (in->op == OP_VAR) {
            const expr_var *v = &e->vars[in->arg];
            if (v->band == 1)
                n = snprintf(item, sizeof item, "%s", names[v->input]);
            else
                n = snprintf(item, sizeof item, "%s[%d]", names[v->input], v->band);
        } else if (in->op == OP_CONST) {
            n = snprintf(item, sizeof item, "%.17g", in->k);
        } else {
            n = snprintf(item, sizeof item, "%s", op_names[in->op]);
        }
        if (n < 0) n = 0;
        if ((size_t)n >= sizeof item) n = (int)sizeof item - 1;
        if (o + (size_t)n + 2 > cap) {
            char *ns;
            while (o + (size_t)n + 2 > cap)
                cap *= 2;
            ns = mem_realloc(s, cap);
            if (!ns) {
                mem_free(s);
                return NULL;
            }
            s = ns;
        }
        if (pc) s[o++] = ' ';
        memcpy(s + o, item, (size_t)n);
        o += (size_t)n;
        s[o] = '\0';
    }
    return s;
}

void expr_free(expr *e)
{
    if (!e) return;
    mem_free(e->prog);
    mem_free(e->vars);
    mem_free(e->vals);
    mem_free(e->masks);
    mem_free(e->sv);
    mem_free(e);
}
