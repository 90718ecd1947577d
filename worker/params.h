/*
 * params.h - declarative checking of an operation's params object.
 *
 * Each operation declares its params as a table of param_spec, terminated by
 * an entry with name == NULL. params_check rejects unknown names, wrong
 * types, out-of-range numbers and values outside an enum, naming the field
 * ("params.mode: must be one of hillshade, slope, ..."). It does no I/O.
 * The getters assume params_check passed and return the default otherwise.
 * cJSON objects are borrowed: nothing here takes or frees them.
 */
#ifndef TERRANE_PARAMS_H
#define TERRANE_PARAMS_H

#include <cJSON.h>
#include <stdbool.h>

typedef enum {
    PARAM_STRING,
    PARAM_ENUM,   /* a string from choices */
    PARAM_INT,    /* integral number within [min, max] */
    PARAM_NUMBER, /* any finite number within [min, max] */
    PARAM_BOOL,
    PARAM_NUMBER_OR_PAIR, /* a number or [x, y] of numbers, each within [min, max] */
    PARAM_NUMBER_OR_NONE, /* a number or the string "none" */
    PARAM_ENUM_LIST,      /* non-empty array of distinct strings from choices */
    PARAM_STRING_LIST,    /* array of at most max strings, each at most max_len */
    PARAM_ANY,            /* any JSON value: the operation's validate checks it */
} param_type;

typedef struct param_spec {
    const char *name;
    param_type type;
    bool required;
    const char *const *choices; /* PARAM_ENUM / PARAM_ENUM_LIST, NULL-terminated */
    double min, max;            /* numbers; min == max == 0 means unbounded */
    unsigned max_len;           /* strings; 0 means 4096 */
} param_spec;

/* Checks params (may be NULL = empty) against up to two spec tables (the
 * operation's own and a shared one such as the COG options; b may be NULL). */
int params_check(const cJSON *params, const param_spec *a, const param_spec *b);

const char *params_str(const cJSON *params, const char *name, const char *dflt);
double params_num(const cJSON *params, const char *name, double dflt);
int params_int(const cJSON *params, const char *name, int dflt);
bool params_bool(const cJSON *params, const char *name, bool dflt);
bool params_has(const cJSON *params, const char *name);

#endif
