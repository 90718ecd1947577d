/*
 * test_jschema.c - the JSON Schema subset validator and its regex engine:
 * the contract's golden documents (every valid task and result passes,
 * every invalid one fails in the field its .field file names, except the
 * task rules JSON Schema cannot express, which taskdoc checks), each
 * keyword on small schemas, the messages, regex syntax and semantics,
 * compile errors, and allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jregex.h"
#include "lib/jschema.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char task_schema_json[] =
#include "task_schema.inc"
    ;
static const char result_schema_json[] =
#include "result_schema.inc"
    ;

static char *root_path(const char *rel)
{
    const char *root = getenv("TERRANE_ROOT");
    char *p = cmem_printf("%s/%s", root && *root ? root : ".", rel);
    assert_non_null(p);
    return p;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = cmem_malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    /* .field files end with a newline */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return buf;
}

static jschema *task_schema(void)
{
    jschema *s = NULL;
    const char *texts[] = {task_schema_json};
    assert_int_equal(jschema_new_text(texts, 1, &s), 0);
    return s;
}

static jschema *result_schema(void)
{
    jschema *s = NULL;
    const char *texts[] = {result_schema_json, task_schema_json};
    int rc = jschema_new_text(texts, 2, &s);
    if (rc) fail_msg("%s", cerr_message());
    return s;
}

/* field is want, or lies inside it */
static int within(const char *field, const char *want)
{
    size_t n = strlen(want);
    if (strncmp(field, want, n)) return 0;
    return field[n] == '\0' || field[n] == '.' || field[n] == '[';
}

/* Task invalid examples whose one mistake is a rule beyond JSON Schema. */
static const char *const TASK_RULE_CASES[] = {
    "calc-input-unused",        "container-input-names-case",     "inputs-duplicate-name-later",
    "inputs-duplicate-name",    "warp-cutline-not-an-input",      "zonal-stats-raster-equals-zones",
    "zonal-stats-three-inputs", "zonal-stats-zones-not-an-input", NULL};

static int is_rule_case(const char *name)
{
    for (size_t i = 0; TASK_RULE_CASES[i]; i++)
        if (!strncmp(name, TASK_RULE_CASES[i], strlen(TASK_RULE_CASES[i])) &&
            !strcmp(name + strlen(TASK_RULE_CASES[i]), ".json"))
            return 1;
    return 0;
}

/* Runs every example in proto/examples/<kind>/<valid|invalid>. */
static void check_examples(jschema *s, const char *kind, int valid, int *count)
{
    char rel[128];
    snprintf(rel, sizeof rel, "proto/examples/%s/%s", kind, valid ? "valid" : "invalid");
    char *dirpath = root_path(rel);
    DIR *d = opendir(dirpath);
    if (!d) fail_msg("cannot open %s (set TERRANE_ROOT)", dirpath);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json")) continue;
        char *path = cmem_printf("%s/%s", dirpath, e->d_name);
        char *text = read_text(path);
        assert_non_null(text);
        json_error_t je;
        json_t *doc = json_loads(text, 0, &je);
        assert_non_null(doc);
        jschema_error err;
        int rc = jschema_validate(s, doc, &err);
        if (valid) {
            if (rc) fail_msg("%s/%s: %s: %s", rel, e->d_name, err.path, err.message);
        } else if (!strcmp(kind, "task") && is_rule_case(e->d_name)) {
            if (rc)
                fail_msg("%s/%s: schema should accept it (a task rule rejects it): %s: %s", rel,
                         e->d_name, err.path, err.message);
        } else {
            char *fpath = cmem_printf("%.*s.field", (int)(strlen(path) - 5), path);
            char *field = read_text(fpath);
            assert_non_null(field);
            if (rc != CERR_INVALID) fail_msg("%s/%s: accepted", rel, e->d_name);
            if (!within(err.path, field))
                fail_msg("%s/%s: error in %s (%s), expected in %s", rel, e->d_name, err.path,
                         err.message, field);
            cmem_free(field);
            cmem_free(fpath);
        }
        (*count)++;
        json_decref(doc);
        cmem_free(text);
        cmem_free(path);
    }
    closedir(d);
    cmem_free(dirpath);
}

static void golden_tasks(void **state)
{
    (void)state;
    jschema *s = task_schema();
    int nv = 0, ni = 0;
    check_examples(s, "task", 1, &nv);
    check_examples(s, "task", 0, &ni);
    assert_true(nv >= 20);
    assert_true(ni >= 100);
    jschema_free(s);
}

static void golden_results(void **state)
{
    (void)state;
    jschema *s = result_schema();
    int nv = 0, ni = 0;
    check_examples(s, "result", 1, &nv);
    check_examples(s, "result", 0, &ni);
    assert_true(nv >= 5);
    assert_true(ni >= 10);
    jschema_free(s);
}

/* Validates text against a one-document schema; returns rc and the error. */
static int check(const char *schema, const char *inst, jschema_error *err)
{
    jschema *s = NULL;
    const char *texts[] = {schema};
    int rc = jschema_new_text(texts, 1, &s);
    if (rc) fail_msg("schema: %s", cerr_message());
    json_error_t je;
    json_t *v = json_loads(inst, JSON_DECODE_ANY, &je);
    if (!v) fail_msg("instance: %s", je.text);
    rc = jschema_validate(s, v, err);
    json_decref(v);
    jschema_free(s);
    return rc;
}

#define VALID(schema, inst)                                                                        \
    do {                                                                                           \
        jschema_error e_;                                                                          \
        if (check(schema, inst, &e_))                                                              \
            fail_msg("%s rejected %s: %s: %s", schema, inst, e_.path, e_.message);                 \
    } while (0)

#define INVALID(schema, inst, path_, msg)                                                          \
    do {                                                                                           \
        jschema_error e_;                                                                          \
        assert_int_equal(check(schema, inst, &e_), CERR_INVALID);                                  \
        assert_string_equal(e_.path, path_);                                                       \
        if (!strstr(e_.message, msg)) fail_msg("message \"%s\" lacks \"%s\"", e_.message, msg);    \
    } while (0)

static void keywords(void **state)
{
    (void)state;
    /* type; integers are numbers without a fraction */
    VALID("{\"type\":\"integer\"}", "2.0");
    INVALID("{\"type\":\"integer\"}", "2.5", "", "must be an integer, got number");
    INVALID("{\"type\":\"string\"}", "1", "", "must be a string, got integer");
    VALID("{\"type\":[\"string\",\"null\"]}", "null");
    INVALID("{\"type\":[\"string\",\"null\"]}", "true", "", "must be string or null, got boolean");
    /* enum and const compare numbers by value */
    VALID("{\"enum\":[1,2,3]}", "2.0");
    INVALID("{\"enum\":[\"a\",\"b\"]}", "\"c\"", "", "must be one of: a, b");
    INVALID("{\"const\":\"x\"}", "\"y\"", "", "must be \"x\"");
    /* strings: lengths count code points */
    VALID("{\"maxLength\":2}", "\"\xc3\xa9\xc3\xa9\"");
    INVALID("{\"minLength\":3}", "\"ab\"", "", "at least 3 characters");
    INVALID("{\"pattern\":\"^a+$\"}", "\"ab\"", "", "does not match the pattern ^a+$");
    INVALID("{\"pattern\":\"^a+$\",\"description\":\"Only a's.\"}", "\"ab\"", "",
            "\"ab\" is not valid: Only a's");
    VALID("{\"pattern\":\"b\"}", "\"abc\""); /* unanchored */
    /* numbers */
    INVALID("{\"minimum\":16}", "15", "", "must be >= 16");
    INVALID("{\"exclusiveMinimum\":0}", "0", "", "must be > 0");
    INVALID("{\"maximum\":4096}", "4097.5", "", "must be <= 4096");
    INVALID("{\"multipleOf\":16}", "24", "", "multiple of 16");
    VALID("{\"multipleOf\":0.1}", "0.3");
    VALID("{\"minimum\":1}", "\"not a number\"");
    /* objects */
    INVALID("{\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"string\"}}}", "{}", "a",
            "is required");
    INVALID("{\"properties\":{\"a\":{\"properties\":{\"b\":{\"type\":\"string\"}}}}}",
            "{\"a\":{\"b\":1}}", "a.b", "must be a string");
    INVALID("{\"properties\":{\"a\":true},\"additionalProperties\":false}", "{\"a\":1,\"zz\":2}",
            "zz", "unknown field");
    INVALID("{\"additionalProperties\":{\"type\":\"string\"}}", "{\"k\":1}", "k",
            "must be a string");
    INVALID(
        "{\"patternProperties\":{\"^x-\":{\"type\":\"integer\"}},\"additionalProperties\":false}",
        "{\"x-a\":1,\"y\":2}", "y", "unknown field");
    INVALID("{\"propertyNames\":{\"maxLength\":2}}", "{\"abc\":1}", "abc", "at most 2");
    INVALID("{\"maxProperties\":1}", "{\"a\":1,\"b\":2}", "", "at most 1 fields");
    /* arrays */
    INVALID("{\"items\":{\"type\":\"integer\"}}", "[1,\"x\"]", "[1]", "must be an integer");
    INVALID("{\"properties\":{\"l\":{\"items\":{\"properties\":{\"n\":{\"type\":\"string\"}}}}}}",
            "{\"l\":[{\"n\":\"a\"},{\"n\":3}]}", "l[1].n", "must be a string");
    INVALID("{\"minItems\":1}", "[]", "", "at least 1 item");
    INVALID("{\"maxItems\":1}", "[1,2]", "", "at most 1 item");
    INVALID("{\"uniqueItems\":true}", "[1,2,1.0]", "", "items 0 and 2 are equal");
    VALID("{\"uniqueItems\":true}", "[{\"a\":1},{\"a\":2}]");
    VALID("{\"contains\":{\"const\":2}}", "[1,2]");
    INVALID("{\"contains\":{\"const\":2}}", "[1,3]", "", "must contain a matching item");
    /* combinators */
    INVALID("{\"allOf\":[{\"minimum\":1},{\"maximum\":2}]}", "3", "", "must be <= 2");
    VALID("{\"anyOf\":[{\"type\":\"number\"},{\"const\":\"none\"}]}", "\"none\"");
    INVALID("{\"anyOf\":[{\"type\":\"number\"},{\"const\":\"none\"}]}", "\"x\"", "",
            "must be a number, got string; or must be \"none\"");
    /* the one branch that got past the type reports alone, with its path */
    INVALID(
        "{\"anyOf\":[{\"type\":\"number\",\"exclusiveMinimum\":0},{\"type\":\"array\",\"items\":"
        "{\"exclusiveMinimum\":0}}]}",
        "[25,-25]", "[1]", "must be > 0");
    INVALID("{\"anyOf\":[{\"type\":\"integer\",\"maximum\":255},{\"const\":\"none\"}]}", "300", "",
            "must be <= 255");
    VALID("{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}", "1");
    INVALID("{\"oneOf\":[{\"type\":\"number\"},{\"type\":\"integer\"}]}", "1", "",
            "exactly one alternative, matches 2");
    INVALID("{\"not\":{\"enum\":[\"count\",\"min\"]}}", "\"min\"", "",
            "must not be one of: count, min");
    INVALID("{\"not\":{\"const\":\"count\"}}", "\"count\"", "", "must not be \"count\"");
    INVALID("{\"if\":{\"required\":[\"a\"]},\"then\":{\"required\":[\"b\"]},\"else\":{\"required\":"
            "[\"c\"]}}",
            "{\"a\":1}", "b", "is required");
    INVALID("{\"if\":{\"required\":[\"a\"]},\"then\":{\"required\":[\"b\"]},\"else\":{\"required\":"
            "[\"c\"]}}",
            "{}", "c", "is required");
    /* a false schema explains itself with the nearest description */
    INVALID("{\"allOf\":[{\"description\":\"LZW has no level.\",\"if\":{\"required\":[\"c\"]},"
            "\"then\":{\"properties\":{\"level\":false}}}]}",
            "{\"c\":1,\"level\":3}", "level", "must not be present: LZW has no level");
    /* $ref within the document */
    INVALID(
        "{\"$defs\":{\"id\":{\"type\":\"string\",\"maxLength\":3}},\"properties\":{\"n\":{\"$ref\":"
        "\"#/$defs/id\"}}}",
        "{\"n\":\"abcd\"}", "n", "at most 3 characters");
    VALID("true", "{\"anything\":[1]}");
    INVALID("false", "1", "", "must not be present");
}

static void cross_document_refs(void **state)
{
    (void)state;
    const char *a = "{\"$id\":\"https://x.test/s/"
                    "a.json\",\"properties\":{\"k\":{\"$ref\":\"b.json#/$defs/k\"}}}";
    const char *b =
        "{\"$id\":\"https://x.test/s/b.json\",\"$defs\":{\"k\":{\"$ref\":\"#/$defs/n\"},"
        "\"n\":{\"type\":\"integer\"}}}";
    const char *texts[] = {a, b};
    jschema *s = NULL;
    assert_int_equal(jschema_new_text(texts, 2, &s), 0);
    json_t *good = json_pack("{s:i}", "k", 1), *bad = json_pack("{s:s}", "k", "x");
    jschema_error e;
    assert_int_equal(jschema_validate(s, good, &e), 0);
    assert_int_equal(jschema_validate(s, bad, &e), CERR_INVALID);
    assert_string_equal(e.path, "k");
    assert_string_equal(cerr_message(), "k: must be an integer, got string");
    json_decref(good);
    json_decref(bad);
    jschema_free(s);
    /* without b, the reference does not resolve */
    assert_int_equal(jschema_new_text(texts, 1, &s), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "does not resolve"));
}

static void compile_errors(void **state)
{
    (void)state;
    jschema *s = NULL;
    const char *unknown[] = {"{\"properties\":{\"a\":{\"minContains\":1}}}"};
    assert_int_equal(jschema_new_text(unknown, 1, &s), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "#/properties/a: unsupported keyword \"minContains\""));
    const char *badre[] = {"{\"pattern\":\"(a\"}"};
    assert_int_equal(jschema_new_text(badre, 1, &s), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "missing ')'"));
    const char *notjson[] = {"{"};
    assert_int_equal(jschema_new_text(notjson, 1, &s), CERR_INVALID);
    const char *badtype[] = {"{\"type\":\"float\"}"};
    assert_int_equal(jschema_new_text(badtype, 1, &s), CERR_INVALID);
    assert_null(s);
}

/* --- regex ---------------------------------------------------------------------- */

static int rx(const char *pattern, const char *subject)
{
    jregex *re = NULL;
    int rc = jregex_compile(pattern, &re);
    if (rc) fail_msg("compile %s: %s", pattern, cerr_message());
    rc = jregex_search(re, subject, strlen(subject));
    jregex_free(re);
    return rc;
}

static void regex_semantics(void **state)
{
    (void)state;
    assert_int_equal(rx("^abc$", "abc"), 1);
    assert_int_equal(rx("^abc$", "abcd"), 0);
    assert_int_equal(rx("b", "abc"), 1);
    assert_int_equal(rx("^a(b|c)*d$", "abcbcd"), 1);
    assert_int_equal(rx("^a(?:b|c)+d$", "ad"), 0);
    assert_int_equal(rx("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "hydro-1"), 1);
    assert_int_equal(rx("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "hydro-"), 0);
    assert_int_equal(rx("^x{2,3}$", "xx"), 1);
    assert_int_equal(rx("^x{2,3}$", "xxxx"), 0);
    assert_int_equal(rx("^x{2}$", "xx"), 1);
    assert_int_equal(rx("^x{2,}$", "xxxxx"), 1);
    assert_int_equal(rx("^x{2,}?$", "x"), 0);
    assert_int_equal(rx("^[^/]+$", "a/b"), 0);
    assert_int_equal(rx("^\\d+\\.\\d+$", "3.14"), 1);
    assert_int_equal(rx("^\\w+$", "a_b9"), 1);
    assert_int_equal(rx("^\\S+$", "a b"), 0);
    assert_int_equal(rx("^[\\s]*$", " \t"), 1);
    assert_int_equal(rx("^a.c$", "a\nc"), 0); /* '.' excludes line terminators */
    assert_int_equal(rx("^a(.|[\\r\\n])c$", "a\nc"), 1);
    assert_int_equal(rx("^\\u0041$", "A"), 1);
    assert_int_equal(rx("^[\\-+]$", "-"), 1);
    assert_int_equal(rx("^[a-]$", "-"), 1);
    assert_int_equal(rx("^\\[x\\]$", "[x]"), 1);
    assert_int_equal(rx("^$", ""), 1);
    assert_int_equal(rx("(a*)*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac"),
                     0); /* no blow-up */
    /* code points, as the u flag: one character each */
    assert_int_equal(rx("^.$", "\xc3\xa9"), 1);
    assert_int_equal(rx("^[ -~\xc2\xa0-\xef\xbf\xbf]+$", "caf\xc3\xa9"), 1);
    assert_int_equal(rx("^[ -~\xc2\xa0-\xef\xbf\xbf]+$", "\xf0\x9f\x98\x80"), 0); /* above U+FFFF */
    assert_int_equal(rx("^[ -~]+$", "a\xff"), 0); /* invalid UTF-8 */
    /* lookahead */
    assert_int_equal(rx("^(?!\\.\\.?(/|$))[a-z.]+$", ".."), 0);
    assert_int_equal(rx("^(?!\\.\\.?(/|$))[a-z.]+$", "..a"), 1);
    assert_int_equal(rx("^(?=.*x)[a-z]+$", "abx"), 1);
    assert_int_equal(rx("^(?=.*x)[a-z]+$", "abc"), 0);
    assert_int_equal(rx("^(?!.*/\\.\\.(/|$))s3://b/.*$", "s3://b/a/../c"), 0);
    assert_int_equal(rx("^(?!.*/\\.\\.(/|$))s3://b/.*$", "s3://b/a/..c"), 1);
    assert_int_equal(rx("^a(?!(?=b)bc)", "abc"), 0); /* nested */
    assert_int_equal(rx("^a(?!(?=b)bc)", "abd"), 1);
}

static void regex_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {"(",       ")",       "a**", "*a",  "[a",  "a{3,2}",
                                      "(?<n>a)", "(?<=a)b", "\\1", "\\b", "\\q", "a{1001}",
                                      "[z-a]",   "{",       "a\\", NULL};
    for (size_t i = 0; bad[i]; i++) {
        jregex *re = NULL;
        int rc = jregex_compile(bad[i], &re);
        if (rc == 0) fail_msg("pattern %s compiled", bad[i]);
        assert_true(rc == CERR_INVALID || rc == CERR_TOOBIG);
        assert_null(re);
    }
    jregex *re = NULL;
    /* a counted repeat of a counted repeat is within limits but large */
    assert_int_equal(jregex_compile("(((a{1000}){1000}){1000})", &re), CERR_TOOBIG);
}

/* Every allocation failing in turn: compile and validate report NOMEM (or,
 * for a parse, jansson's INVALID) and leak nothing. */
static void out_of_memory(void **state)
{
    (void)state;
    json_t *doc =
        json_loads("{\"apiVersion\":\"terrane.io/v1\",\"kind\":\"Task\",\"namespace\":\"n\","
                   "\"assetKey\":\"a/b\",\"dataVersion\":\"sha256:"
                   "0000000000000000000000000000000000000000000000000000000000000000\","
                   "\"operation\":\"terrain\",\"params\":{\"mode\":\"slope\"},"
                   "\"inputs\":[{\"name\":\"x\",\"uri\":\"s3://bbb/k\"}],\"output\":{\"uri\":"
                   "\"s3://bbb\"}}",
                   0, NULL);
    assert_non_null(doc);
    long live = cmem_live();
    const char *texts[] = {task_schema_json};
    unsigned long n;
    for (n = 1;; n++) {
        jschema *s = NULL;
        unsigned long before = cmem_count();
        cmem_fail_at(n);
        int rc = jschema_new_text(texts, 1, &s);
        cmem_fail_at(0);
        bool reached = cmem_count() - before >= n;
        jschema_free(s);
        assert_int_equal(cmem_live(), live);
        if (!reached) {
            assert_int_equal(rc, 0);
            break;
        }
        assert_true(rc == 0 || rc == CERR_NOMEM || rc == CERR_INVALID);
    }
    assert_true(n > 100);
    jschema *s = task_schema();
    live = cmem_live();
    for (n = 1;; n++) {
        jschema_error e;
        unsigned long before = cmem_count();
        cmem_fail_at(n);
        int rc = jschema_validate(s, doc, &e);
        cmem_fail_at(0);
        assert_int_equal(cmem_live(), live);
        if (cmem_count() - before < n) {
            if (rc) fail_msg("%s: %s", e.path, e.message);
            break;
        }
        if (rc != CERR_NOMEM) fail_msg("n=%lu rc=%d %s: %s", n, rc, e.path, e.message);
    }
    /* small patterns match on the stack; the lookahead memo and the
     * larger patterns still allocate */
    assert_true(n > 2);
    jschema_free(s);
    json_decref(doc);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(golden_tasks),   cmocka_unit_test(golden_results),
        cmocka_unit_test(keywords),       cmocka_unit_test(cross_document_refs),
        cmocka_unit_test(compile_errors), cmocka_unit_test(regex_semantics),
        cmocka_unit_test(regex_errors),   cmocka_unit_test(out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
