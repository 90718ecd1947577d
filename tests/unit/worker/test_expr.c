/* Unit tests: the band-math expression engine (expr.h) - grammar, precedence,
 * functions, nodata rules, error offsets, limits and allocation failures.
 * Table-driven: every case is one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "err.h"
#include "expr.h"
#include "mem.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Inputs every case compiles against, and the value of each (input, band)
 * for the one-pixel cases: a = 2, b = 3, c = -4, l7[k] = 10 k. */
static const char *const names[] = {"a", "b", "c", "l7"};
#define N_NAMES 4
#define ND (-12345.0) /* marks "expected nodata" in the tables */
#define PIXELS 700    /* several evaluation chunks, the last one partial */

static double input_value(size_t input, int band)
{
    switch (input) {
    case 0:
        return 2;
    case 1:
        return 3;
    case 2:
        return -4;
    default:
        return 10.0 * band;
    }
}

static int setup(void **state)
{
    (void)state;
    mem_init();
    err_clear();
    return 0;
}

/* Compiles src and evaluates it over PIXELS identical pixels; a_nodata marks
 * input a as nodata, a_value overrides its value. Returns ND for nodata and
 * checks every pixel agrees. */
static double eval_with(const char *src, bool a_nodata, double a_value)
{
    expr *e = NULL;
    double *bufs[EXPR_MAX_VARS] = {NULL};
    unsigned char *masks[EXPR_MAX_VARS] = {NULL};
    double *out = calloc(PIXELS, sizeof *out);
    unsigned char *out_mask = calloc(PIXELS, 1);
    double r;
    size_t nv;

    err_clear();
    if (expr_compile(src, names, N_NAMES, &e) != 0) fail_msg("%s: %s", src, err_get_message());
    nv = expr_n_vars(e);
    for (size_t i = 0; i < nv; i++) {
        const expr_var *v = expr_var_at(e, i);
        bufs[i] = malloc(PIXELS * sizeof(double));
        for (size_t p = 0; p < PIXELS; p++)
            bufs[i][p] =
                v->input == 0 && !isnan(a_value) ? a_value : input_value(v->input, v->band);
        if (v->input == 0 && a_nodata) {
            masks[i] = malloc(PIXELS);
            memset(masks[i], 1, PIXELS);
        }
    }
    expr_eval(e, (const double *const *)bufs, (const unsigned char *const *)masks, PIXELS, out,
              out_mask);
    r = out_mask[0] ? ND : out[0];
    for (size_t p = 1; p < PIXELS; p++) {
        if (out_mask[p] != out_mask[0]) fail_msg("%s: pixel %zu mask differs", src, p);
        if (!out_mask[p] && out[p] != out[0]) fail_msg("%s: pixel %zu value differs", src, p);
        if (out_mask[p] && out[p] != 0) fail_msg("%s: masked pixel %zu not 0", src, p);
    }
    for (size_t i = 0; i < nv; i++) {
        free(bufs[i]);
        free(masks[i]);
    }
    free(out);
    free(out_mask);
    expr_free(e);
    return r;
}

static double eval1(const char *src)
{
    return eval_with(src, false, NAN);
}

typedef struct value_case {
    const char *src;
    double want; /* ND: nodata */
} value_case;

static void check_values(const value_case *cases, size_t n, bool a_nodata, double a_value)
{
    for (size_t i = 0; i < n; i++) {
        double got = eval_with(cases[i].src, a_nodata, a_value);
        if (cases[i].want == ND) {
            if (got != ND) fail_msg("%s: want nodata, got %.17g", cases[i].src, got);
        } else if (!(fabs(got - cases[i].want) <= 1e-12 * fmax(1, fabs(cases[i].want)))) {
            fail_msg("%s: want %.17g, got %.17g", cases[i].src, cases[i].want, got);
        }
    }
}

static void precedence_and_associativity(void **state)
{
    (void)state;
    static const value_case cases[] = {
        {"1 + 2 * 3", 7},   {"(1 + 2) * 3", 9}, {"a + b * c", -10},  {"(a + b) * c", -20},
        {"10 - 4 - 3", 3},  {"a - b - c", 3},   {"100 / 10 / 5", 2}, {"a * b / 4", 1.5},
        {"2 ^ 3 ^ 2", 512}, {"a ^ b ^ 2", 512}, {"-2 ^ 2", -4},      {"-a ^ 2", -4},
        {"2 ^ -1", 0.5},    {"2 ^ -a", 0.25},   {"--a", 2},          {"+a", 2},
        {"- -a", 2},        {"7 % 4", 3},       {"-7 % 4", -3},      {"a + 1 < 4", 1},
        {"a + 2 < 4", 0},   {"a < b == 1", 1},  {"1 or 0 and 0", 1}, {"(1 or 0) and 0", 0},
        {"a || b && 0", 1}, {"!0 + 1", 2},      {"not a > 5", 0},    {"not (a > 5)", 1},
        {"!a", 0},          {"!!a", 1},         {"a>b||b>a", 1},     {"  a\t+\nb\r", 5},
    };
    check_values(cases, sizeof cases / sizeof cases[0], false, NAN);
}

static void numbers_names_bands(void **state)
{
    (void)state;
    static const value_case cases[] = {
        {"1e-3 * 1000", 1},
        {".5 + .25", 0.75},
        {"1.5e2", 150},
        {"1E+2", 100},
        {"2.", 2},
        {"0.000", 0},
        {"00012", 12},
        {"l7", 10},
        {"l7[1]", 10},
        {"l7[4] - l7[3]", 10},
        {"(l7[4] - l7[3]) / (l7[4] + l7[3])", 10.0 / 70.0},
        {"l7[ 6 ]", 60},
        {"l7[6.0]", 60},
        {"pi", M_PI},
        {"2 * pi", 2 * M_PI},
    };
    check_values(cases, sizeof cases / sizeof cases[0], false, NAN);
}

static void functions_and_comparisons(void **state)
{
    (void)state;
    static const value_case cases[] = {
        {"min(3, a, b)", 2},
        {"max(a, b, c)", 3},
        {"min(5)", 5},
        {"max(c)", -4},
        {"min(a, b, c, 1, 0, 7)", -4},
        {"abs(c)", 4},
        {"abs(a)", 2},
        {"sqrt(16)", 4},
        {"sqrt(a * 8)", 4},
        {"log(exp(2))", 2},
        {"log(1)", 0},
        {"log10(1000)", 3},
        {"exp(0)", 1},
        {"floor(-1.5)", -2},
        {"ceil(-1.5)", -1},
        {"round(2.5)", 3},
        {"round(-2.5)", -3},
        {"round(a / 3)", 1},
        {"where(a > b, a, b)", 3},
        {"where(a < b, a, b)", 2},
        {"where(1, a, nodata)", 2},
        {"where(0, nodata, b)", 3},
        {"where(a, where(0, 1, 2), 3)", 2},
        {"isnodata(a)", 0},
        {"a < b", 1},
        {"a <= 2", 1},
        {"a > b", 0},
        {"a >= 3", 0},
        {"a == 2", 1},
        {"a != 2", 0},
        {"a and b", 1},
        {"a and 0", 0},
        {"0 or c", 1},
        {"0 || 0", 0},
        {"sqrt(abs(c)) + max(a, min(b, 10)) * 2", 8},
    };
    check_values(cases, sizeof cases / sizeof cases[0], false, NAN);
}

static void invalid_arithmetic_is_nodata(void **state)
{
    (void)state;
    static const value_case cases[] = {
        {"1 / 0", ND},
        {"a / (b - 3)", ND},
        {"a % 0", ND},
        {"sqrt(c)", ND},
        {"sqrt(-1)", ND},
        {"log(0)", ND},
        {"log(c)", ND},
        {"log10(-a)", ND},
        {"0 ^ -1", ND},
        {"c ^ 0.5", ND},
        {"c ^ 2", 16},
        {"exp(1000)", ND},
        {"exp(1000) - exp(1000)", ND},
        {"1e308 * 10", ND},
        {"nodata", ND},
        {"nodata + 1", ND},
        {"1 / (1 / 0)", ND},
        {"isnodata(1 / 0)", 1},
        {"isnodata(nodata)", 1},
        {"isnodata(sqrt(c))", 1},
        {"where(isnodata(a / 0), -1, 1)", -1},
        {"where(b > 0, a, 1 / 0)", 2},
        {"where(b < 0, a, 1 / 0)", ND},
        {"0 * (1 / 0)", ND},
        {"min(1, 1 / 0)", ND},
    };
    check_values(cases, sizeof cases / sizeof cases[0], false, NAN);
}

static void nodata_propagation(void **state)
{
    (void)state;
    /* a is nodata in every case here. */
    static const value_case cases[] = {
        {"a", ND},
        {"a + 1", ND},
        {"b + 1", 4},
        {"a * 0", ND},
        {"-a", ND},
        {"abs(a)", ND},
        {"a == a", ND},
        {"0 and a", ND},
        {"1 or a", ND},
        {"min(a, b)", ND},
        {"max(b, a, 7)", ND},
        {"where(b > 0, b, a)", 3},
        {"where(b < 0, b, a)", ND},
        {"where(a > 0, 1, 2)", ND},
        {"where(isnodata(a), -1, a)", -1},
        {"isnodata(a)", 1},
        {"isnodata(a + b)", 1},
        {"isnodata(b)", 0},
        {"!isnodata(a) * 5", 0},
        {"l7[2] + b", 23},
    };
    check_values(cases, sizeof cases / sizeof cases[0], true, NAN);
}

static void non_finite_inputs_are_nodata(void **state)
{
    (void)state;
    static const value_case cases[] = {
        {"a", ND}, {"a * 0", ND}, {"isnodata(a)", 1}, {"where(isnodata(a), 7, a)", 7}, {"b", 3},
    };
    check_values(cases, sizeof cases / sizeof cases[0], false, INFINITY);
    /* NaN is tested separately: eval_with uses NaN to mean "no override". */
    {
        expr *e = NULL;
        double a[3] = {NAN, 1, -INFINITY}, out[3];
        unsigned char m[3];
        const double *vars[1] = {a};
        assert_int_equal(expr_compile("a + 1", names, N_NAMES, &e), 0);
        expr_eval(e, vars, NULL, 3, out, m);
        assert_int_equal(m[0], 1);
        assert_int_equal(m[1], 0);
        assert_int_equal(m[2], 1);
        assert_true(out[0] == 0 && out[1] == 2 && out[2] == 0);
        expr_free(e);
    }
}

typedef struct dump_case {
    const char *src, *want;
} dump_case;

static void program_shape(void **state)
{
    (void)state;
    static const dump_case cases[] = {
        {"a + b * c", "a b c * +"},
        {"a - b - c", "a b - c -"},
        {"a ^ b ^ c", "a b c ^ ^"},
        {"-a ^ 2", "a 2 ^ neg"},
        {"2 * 3 + a", "6 a +"},
        {"a + 2 * 3", "a 6 +"},
        {"1 / 0", "1 0 /"},
        {"sqrt(-1)", "-1 sqrt"},
        {"-(2)", "-2"},
        {"where(a, b, c)", "a b c where"},
        {"where(1, 2, 3)", "2"},
        {"min(a, b, c)", "a b min c min"},
        {"not a and b", "a not b and"},
        {"a[2] + a", "a[2] a +"},
        {"isnodata(nodata)", "nodata isnodata"},
        {"isnodata(3)", "0"},
        {"+a", "a"},
        {"a < b <= c", "a b < c <="},
        {"a or b and c", "a b c and or"},
        {"a && b || c", "a b and c or"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expr *e = NULL;
        char *d;
        if (expr_compile(cases[i].src, names, N_NAMES, &e) != 0)
            fail_msg("%s: %s", cases[i].src, err_get_message());
        d = expr_dump(e, names);
        assert_non_null(d);
        if (strcmp(d, cases[i].want))
            fail_msg("%s: want '%s', got '%s'", cases[i].src, cases[i].want, d);
        mem_free(d);
        expr_free(e);
    }
}

static void variables_listed_once(void **state)
{
    (void)state;
    expr *e = NULL;
    assert_int_equal(expr_compile("l7[4] - l7[3] + l7[4] * b + l7", names, N_NAMES, &e), 0);
    assert_int_equal(expr_n_vars(e), 4);
    assert_int_equal(expr_var_at(e, 0)->input, 3);
    assert_int_equal(expr_var_at(e, 0)->band, 4);
    assert_int_equal(expr_var_at(e, 0)->offset, 1);
    assert_int_equal(expr_var_at(e, 1)->band, 3);
    assert_int_equal(expr_var_at(e, 1)->offset, 9);
    assert_int_equal(expr_var_at(e, 2)->input, 1);
    assert_int_equal(expr_var_at(e, 3)->input, 3);
    assert_int_equal(expr_var_at(e, 3)->band, 1);
    assert_null(expr_var_at(e, 4));
    expr_free(e);

    assert_int_equal(expr_compile("1 + 2", names, N_NAMES, &e), 0);
    assert_int_equal(expr_n_vars(e), 0);
    expr_free(e);
}

typedef struct error_case {
    const char *src;
    const char *want; /* substring of the message */
} error_case;

static void errors_carry_offsets(void **state)
{
    (void)state;
    static const error_case cases[] = {
        {"", "expression: offset 1: expected a number, input name, function or '(', got end of "
             "expression"},
        {"   ", "offset 4: expected a number"},
        {"1 +", "offset 4: expected a number, input name, function or '(', got end of expression"},
        {"(a + b", "offset 7: expected ')' to close '(' at offset 1, got end of expression"},
        {"((a) + b))", "offset 10: expected an operator or the end of the expression, got ')'"},
        {"min(a, b",
         "offset 9: expected ',' or ')' in the arguments of min(), got end of expression"},
        {"min(a b)", "offset 7: expected ',' or ')' in the arguments of min(), got 'b'"},
        {"min()", "offset 5: expected a number"},
        {"a + d", "offset 5: unknown input 'd' (inputs: a, b, c, l7)"},
        {"d[2]", "offset 1: unknown input 'd'"},
        {"A", "offset 1: unknown input 'A'"},
        {"foo(1)", "offset 1: unknown function 'foo'"},
        {"sqrt", "offset 1: function 'sqrt' needs '(' and its arguments"},
        {"sqrt(1, 2)", "offset 9: sqrt() takes 1 argument, got more"},
        {"where(1, 2)", "offset 11: where() takes 3 arguments, got 2"},
        {"where(1, 2, 3, 4)", "offset 16: where() takes 3 arguments, got more"},
        {"a = b", "offset 3: unexpected '=' (compare with '==')"},
        {"a & b", "offset 3: unexpected '&' (use '&&' or 'and')"},
        {"a | b", "offset 3: unexpected '|' (use '||' or 'or')"},
        {"a $ b", "offset 3: unexpected character '$'"},
        {"a + \xc3\xa9", "offset 5: unexpected byte 0xc3"},
        {"1e", "offset 1: malformed number: exponent needs digits"},
        {"2 * 1e+", "offset 5: malformed number"},
        {"1e999", "offset 1: number out of range"},
        {"l7[0]", "offset 4: band must be an integer from 1 to 65535"},
        {"l7[1.5]", "offset 4: band must be an integer"},
        {"l7[65536]", "offset 4: band must be an integer"},
        {"l7[x]", "offset 4: expected a band number after '[', got 'x'"},
        {"l7[2", "offset 5: expected ']' after the band number, got end of expression"},
        {"a b", "offset 3: expected an operator or the end of the expression, got 'b'"},
        {"2a", "offset 2: expected an operator or the end of the expression, got 'a'"},
        {"a,b", "offset 2: expected an operator"},
        {"and", "offset 1: expected a number, input name, function or '(', got 'and'"},
        {"a and", "offset 6: expected a number"},
        {"*a", "offset 1: expected a number, input name, function or '(', got '*'"},
        {"a ^", "offset 4: expected a number"},
        {"[1]", "offset 1: expected a number"},
        {"l7[1][2]", "offset 6: expected an operator"},
        {"verylongidentifiername_that_goes_on_and_on",
         "offset 1: unknown input 'verylongidentifiername_that_goes_on_and_on'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expr *e = NULL;
        err_clear();
        if (expr_compile(cases[i].src, names, N_NAMES, &e) == 0)
            fail_msg("'%s' compiled", cases[i].src);
        assert_null(e);
        assert_int_equal(err_get_class(), ERR_BAD_INPUT);
        assert_string_equal(err_get_code(), ERR_EXPRESSION);
        assert_string_equal(err_get_field(), "params.expression");
        if (!strstr(err_get_message(), cases[i].want))
            fail_msg("'%s': want '%s' in '%s'", cases[i].src, cases[i].want, err_get_message());
    }
}

/* A string of n copies of s, then tail. */
static char *repeat(const char *s, int n, const char *mid, const char *s2, int n2)
{
    size_t len = strlen(s) * (size_t)n + strlen(mid) + strlen(s2) * (size_t)n2 + 1;
    char *buf = malloc(len), *p = buf;
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s", s);
    p += sprintf(p, "%s", mid);
    for (int i = 0; i < n2; i++)
        p += sprintf(p, "%s", s2);
    return buf;
}

static void expect_compiles(const char *src, bool ok)
{
    expr *e = NULL;
    err_clear();
    int rc = expr_compile(src, names, N_NAMES, &e);
    if (ok && rc != 0) fail_msg("%.60s...: %s", src, err_get_message());
    if (!ok && rc == 0) fail_msg("%.60s... compiled", src);
    if (!ok && !strstr(err_get_message(), "nested too deeply (limit 64)") &&
        !strstr(err_get_message(), "longer than 4096"))
        fail_msg("%.60s...: %s", src, err_get_message());
    expr_free(e);
}

static void limits(void **state)
{
    (void)state;
    char *s;
    /* Parentheses, unary operators, calls, ^ chains: 64 levels, not 65. */
    s = repeat("(", 64, "a", ")", 64);
    expect_compiles(s, true);
    free(s);
    s = repeat("(", 65, "a", ")", 65);
    expect_compiles(s, false);
    free(s);
    s = repeat("-", 64, "a", "", 0);
    expect_compiles(s, true);
    free(s);
    s = repeat("!", 65, "a", "", 0);
    expect_compiles(s, false);
    free(s);
    s = repeat("abs(", 64, "a", ")", 64);
    expect_compiles(s, true);
    free(s);
    s = repeat("abs(", 65, "a", ")", 65);
    expect_compiles(s, false);
    free(s);
    s = repeat("a^", 64, "a", "", 0);
    expect_compiles(s, true);
    free(s);
    s = repeat("a^", 65, "a", "", 0);
    expect_compiles(s, false);
    free(s);
    s = repeat("(-", 40, "a", ")", 40); /* 80 levels in all */
    expect_compiles(s, false);
    free(s);
    /* Unbalanced opening parentheses up to the length limit fail on depth,
     * long before the parser's own stack could matter. */
    s = repeat("(", 4096, "", "", 0);
    expect_compiles(s, false);
    free(s);
    s = repeat("a+", 2048, "", "", 0); /* 4096 bytes, trailing '+' */
    {
        expr *e = NULL;
        assert_int_not_equal(expr_compile(s, names, N_NAMES, &e), 0);
        assert_non_null(strstr(err_get_message(), "offset 4097: expected a number"));
    }
    free(s);
    s = repeat("x", 4097, "", "", 0);
    expect_compiles(s, false);
    free(s);

    /* Long flat sums and long argument lists need no depth at all. */
    s = repeat("a+", 2047, "a", "", 0);
    assert_true(strlen(s) <= EXPR_MAX_LEN);
    assert_true(eval1(s) == 2 * 2048);
    free(s);
    {
        char buf[EXPR_MAX_LEN + 1];
        size_t o = (size_t)sprintf(buf, "max(c");
        while (o + 3 < EXPR_MAX_LEN)
            o += (size_t)sprintf(buf + o, ",b");
        buf[o++] = ')';
        buf[o] = '\0';
        assert_true(eval1(buf) == 3);
    }
}

/* Values that differ per pixel, nodata here and there, across chunk ends,
 * checked against the same formula in C. */
static void per_pixel_block(void **state)
{
    (void)state;
    enum { N = 1000 };
    static double a[N], b[N], out[N];
    static unsigned char bm[N], om[N];
    const double *vars[2];
    const unsigned char *masks[2];
    expr *e = NULL;
    assert_int_equal(expr_compile("a / b + where(a > 500, 1, 0)", names, N_NAMES, &e), 0);
    assert_int_equal(expr_n_vars(e), 2);
    for (int i = 0; i < N; i++) {
        a[i] = i;
        b[i] = i % 7;
        bm[i] = i % 5 == 0;
    }
    vars[0] = a;
    vars[1] = b;
    masks[0] = NULL;
    masks[1] = bm;
    expr_eval(e, vars, masks, N, out, om);
    for (int i = 0; i < N; i++) {
        bool nd = i % 5 == 0 || i % 7 == 0;
        if (om[i] != nd) fail_msg("pixel %d: mask %d", i, om[i]);
        if (!nd && out[i] != a[i] / b[i] + (a[i] > 500 ? 1 : 0))
            fail_msg("pixel %d: %g", i, out[i]);
    }
    /* The output may overwrite an input array. */
    expr_eval(e, vars, masks, N, a, bm);
    for (int i = 0; i < N; i++) {
        bool nd = i % 5 == 0 || i % 7 == 0;
        if (bm[i] != nd || (!nd && a[i] != out[i])) fail_msg("aliased pixel %d", i);
    }
    /* No pixels at all. */
    expr_eval(e, vars, masks, 0, out, om);
    expr_free(e);
}

static void names_shadow_constants(void **state)
{
    (void)state;
    static const char *const n2[] = {"pi", "nodata", "min"};
    expr *e = NULL;
    double pi_v[1] = {1}, nd_v[1] = {2}, min_v[1] = {3}, out[1];
    unsigned char m[1];
    const double *vars[3];
    assert_int_equal(expr_compile("pi + nodata * min + min(pi, 5)", n2, 3, &e), 0);
    assert_int_equal(expr_n_vars(e), 3);
    vars[expr_var_at(e, 0)->input] = pi_v;
    vars[expr_var_at(e, 1)->input] = nd_v;
    vars[expr_var_at(e, 2)->input] = min_v;
    expr_eval(e, vars, NULL, 1, out, m);
    assert_int_equal(m[0], 0);
    assert_true(out[0] == 1 + 2 * 3 + 1);
    expr_free(e);
}

/* Every allocation expr_compile makes may fail; each failure must be
 * reported as out of memory and leak nothing (ASan checks the leaks). */
static void allocation_failures(void **state)
{
    (void)state;
    const char *src = "min(a, l7[2], c) + sqrt(abs(c)) * where(a > 1, 2 ^ a, nodata) + l7[3]";
    int failures = 0;
    for (unsigned long nth = 1; nth < 100; nth++) {
        expr *e = NULL;
        err_clear();
        mem_fail_at(nth);
        int rc = expr_compile(src, names, N_NAMES, &e);
        mem_fail_at(0);
        if (rc == 0) {
            assert_non_null(e);
            assert_true(eval1(src) == -4 + 2 * 4 + 30);
            expr_free(e);
            break;
        }
        failures++;
        assert_null(e);
        assert_string_equal(err_get_code(), ERR_NO_MEMORY);
    }
    assert_true(failures >= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(precedence_and_associativity, setup),
        cmocka_unit_test_setup(numbers_names_bands, setup),
        cmocka_unit_test_setup(functions_and_comparisons, setup),
        cmocka_unit_test_setup(invalid_arithmetic_is_nodata, setup),
        cmocka_unit_test_setup(nodata_propagation, setup),
        cmocka_unit_test_setup(non_finite_inputs_are_nodata, setup),
        cmocka_unit_test_setup(program_shape, setup),
        cmocka_unit_test_setup(variables_listed_once, setup),
        cmocka_unit_test_setup(errors_carry_offsets, setup),
        cmocka_unit_test_setup(limits, setup),
        cmocka_unit_test_setup(per_pixel_block, setup),
        cmocka_unit_test_setup(names_shadow_constants, setup),
        cmocka_unit_test_setup(allocation_failures, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
