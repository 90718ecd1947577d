/*
 * expr.h - the band-math expression engine behind the calc operation.
 *
 * An expression is compiled once into a small postfix program and then
 * evaluated over blocks of pixels: every instruction makes one pass over a
 * chunk of the block, so the per-pixel cost is a few array operations and
 * not an interpreter dispatch per pixel.
 *
 * Grammar (loosest binding first; all binary operators left-associative
 * except ^):
 *   or  ||                      logical or, 1 or 0
 *   and &&                      logical and, 1 or 0
 *   == != < <= > >=             comparisons, 1 or 0
 *   + -
 *   * / %                       % is fmod (sign of the dividend)
 *   unary - + ! not             so `not a > b` is `(not a) > b`, as with `!`
 *   ^                           power, right-associative: 2^3^2 = 2^9,
 *                               binds tighter than unary minus: -2^2 = -4
 *   primary: number (1, 1.5, .5, 1e-3), name, name[band], (expr),
 *            function(args), pi, nodata
 * Names are the task's input names ([A-Za-z_][A-Za-z0-9_]*), case-sensitive;
 * name means band 1, name[4] band 4 (1-based). An input whose name is pi or
 * nodata shadows the constant; and, or, not are always operators. A name
 * directly followed by '(' is a function: min(a, b, ...), max(a, b, ...),
 * abs, sqrt, log (natural), log10, exp, floor, ceil, round (half away from
 * zero), where(cond, a, b), isnodata(x).
 *
 * Nodata rules, per pixel:
 *   - an input value is nodata where the caller's mask says so, and also
 *     where it is not finite (NaN, +-Inf never enter the arithmetic);
 *   - a result is nodata when any operand is nodata, or when it is not
 *     finite: division or % by zero, sqrt/log of negatives, log(0),
 *     overflow, 0^-1 ...;
 *   - where(c, a, b) is nodata when c is nodata or the chosen branch is;
 *     the other branch does not matter;
 *   - isnodata(x) is 1 where x is nodata and 0 elsewhere, never nodata;
 *   - the constant nodata is nodata everywhere (where(a > 0, a, nodata)).
 * The output is therefore never NaN or Inf: masked pixels hold 0 and the
 * caller writes its own nodata value there.
 *
 * Limits bound everything a hostile expression could grow: EXPR_MAX_LEN
 * bytes, EXPR_MAX_DEPTH nesting (parentheses, calls, unary operators, ^),
 * EXPR_MAX_INSNS instructions, EXPR_MAX_VARS distinct (input, band) pairs.
 * The parser recurses at most a constant times EXPR_MAX_DEPTH.
 *
 * Errors are BadInput / InvalidExpression on field params.expression, the
 * message "expression: offset N: ..." with N the 1-based byte offset.
 * An expr holds its own scratch buffers: evaluate one expr from one thread
 * at a time.
 */
#ifndef TERRANE_EXPR_H
#define TERRANE_EXPR_H

#include <stddef.h>

#define EXPR_FIELD "params.expression"
#define EXPR_MAX_LEN 4096
#define EXPR_MAX_DEPTH 64
#define EXPR_MAX_INSNS 4096
#define EXPR_MAX_VARS 256
#define EXPR_MAX_BAND 65535

typedef struct expr expr;

/* One distinct (input, band) pair the expression reads. */
typedef struct expr_var {
    size_t input;  /* index into the names given to expr_compile */
    int band;      /* 1-based */
    size_t offset; /* 1-based byte offset of its first use, for errors */
} expr_var;

/* Compiles src against the input names (names[0..n_names-1], borrowed for
 * the call only). On success *out is the caller's (expr_free). */
int expr_compile(const char *src, const char *const *names, size_t n_names, expr **out);

/* The variables in order of first use; expr_eval takes their arrays in this
 * order. Borrowed from e. */
size_t expr_n_vars(const expr *e);
const expr_var *expr_var_at(const expr *e, size_t i);

/* Evaluates n pixels. vars[i] holds n values of variable i; masks[i] (or
 * masks itself) may be NULL for "no nodata", else nonzero marks nodata.
 * Writes n values to out and n mask bytes (1 = nodata) to out_mask; masked
 * values are 0. out may alias a vars[i] array, out_mask a masks[i] array. */
void expr_eval(expr *e, const double *const *vars, const unsigned char *const *masks, size_t n,
               double *out, unsigned char *out_mask);

/* Debug aid and test hook: the program in postfix, e.g. "a 2 * b +".
 * Returns a new string (mem_free) or NULL on OOM. */
char *expr_dump(const expr *e, const char *const *names);

void expr_free(expr *e);

#endif
