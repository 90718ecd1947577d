/* Fuzz target: the band-math expression compiler and evaluator on arbitrary
 * bytes. Whatever compiles is evaluated over a small block that crosses an
 * evaluation chunk and holds zeros, negatives, huge values, NaN, Inf and
 * masked pixels; the invariants of expr.h are checked on the result:
 * masked pixels are 0, unmasked ones finite, masks 0 or 1. */
#include "err.h"
#include "expr.h"
#include "mem.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PIXELS 300

static const char *const names[] = {"a", "b", "l7"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static double vals[EXPR_MAX_VARS][PIXELS];
    static unsigned char masks[EXPR_MAX_VARS][PIXELS];
    static const double pattern[] = {0, -1.5, 2, 1e308, NAN, INFINITY, -0.0, 7, 1e-310, -3};
    const double *vp[EXPR_MAX_VARS];
    const unsigned char *mp[EXPR_MAX_VARS];
    double out[PIXELS];
    unsigned char out_mask[PIXELS];
    expr *e = NULL;
    char *src;

    if (!ready) {
        mem_init();
        for (size_t v = 0; v < EXPR_MAX_VARS; v++) {
            for (size_t p = 0; p < PIXELS; p++) {
                vals[v][p] = pattern[(p + v) % (sizeof pattern / sizeof pattern[0])];
                masks[v][p] = (p + 2 * v) % 11 == 0;
            }
        }
        ready = 1;
    }
    src = malloc(size + 1);
    if (!src) return 0;
    memcpy(src, data, size);
    src[size] = '\0';
    err_clear();
    if (expr_compile(src, names, 3, &e) == 0) {
        size_t nv = expr_n_vars(e);
        if (nv > EXPR_MAX_VARS) abort();
        for (size_t v = 0; v < nv; v++) {
            const expr_var *xv = expr_var_at(e, v);
            if (xv->input >= 3 || xv->band < 1 || xv->band > EXPR_MAX_BAND) abort();
            if (xv->offset < 1 || xv->offset > size) abort();
            vp[v] = vals[v];
            mp[v] = v % 2 ? masks[v] : NULL;
        }
        expr_eval(e, vp, mp, PIXELS, out, out_mask);
        for (size_t p = 0; p < PIXELS; p++) {
            if (out_mask[p] > 1) abort();
            if (out_mask[p] && out[p] != 0) abort();
            if (!out_mask[p] && !isfinite(out[p])) abort();
        }
        char *d = expr_dump(e, names);
        mem_free(d);
        expr_free(e);
    } else {
        if (e) abort();
        if (strcmp(err_get_field(), EXPR_FIELD) != 0) abort();
        if (strncmp(err_get_message(), "expression: ", 12) != 0) abort();
    }
    free(src);
    return 0;
}
