/*
 * test_statuspatch.c - the status merge patch: preconditions, changed and
 * removed members (objects recursively, arrays whole), the cases only a
 * whole-object write can say, and allocation failures.
 */
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "statuspatch.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j) fail_msg("bad test JSON: %s", e.text);
    return j;
}

static void expect(const char *obj, const char *status, const char *want)
{
    json_t *o = parse(obj), *st = parse(status), *w = parse(want), *p = NULL;
    assert_int_equal(statuspatch_build(o, st, &p), 0);
    if (!json_equal(p, w)) {
        char *got = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("patch %s", got);
    }
    json_decref(o);
    json_decref(st);
    json_decref(w);
    json_decref(p);
}

#define META                                                                                       \
    "\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"uid\":\"u1\",\"resourceVersion\":\"7\"}"
#define PRE "\"metadata\":{\"uid\":\"u1\",\"resourceVersion\":\"7\"}"

static void only_changed_members(void **state)
{
    (void)state;
    /* first status: all of it */
    expect("{" META ",\"spec\":{\"x\":1}}", "{\"phase\":\"Pending\",\"n\":[1,2]}",
           "{" PRE ",\"status\":{\"phase\":\"Pending\",\"n\":[1,2]}}");
    /* a changed scalar, an unchanged array, a removed member */
    expect("{" META ",\"status\":{\"phase\":\"Pending\",\"n\":[1,2],\"msg\":\"m\"}}",
           "{\"phase\":\"Running\",\"n\":[1,2]}",
           "{" PRE ",\"status\":{\"phase\":\"Running\",\"msg\":null}}");
    /* objects recursively: only the member that changed, a removed one
     * as null; an array replaced whole */
    expect("{" META ",\"status\":{\"in\":{\"a\":{\"v\":1,\"w\":2},\"b\":3},\"c\":[{\"t\":1}]}}",
           "{\"in\":{\"a\":{\"v\":1,\"w\":5}},\"c\":[{\"t\":2}]}",
           "{" PRE ",\"status\":{\"in\":{\"a\":{\"w\":5},\"b\":null},\"c\":[{\"t\":2}]}}");
    /* a member changing type is replaced */
    expect("{" META ",\"status\":{\"x\":{\"a\":1}}}", "{\"x\":[1]}",
           "{" PRE ",\"status\":{\"x\":[1]}}");
    expect("{" META ",\"status\":{\"x\":[1]}}", "{\"x\":{\"a\":1}}",
           "{" PRE ",\"status\":{\"x\":{\"a\":1}}}");
    /* nothing changed: an empty status patch, preconditions kept */
    expect("{" META ",\"status\":{\"x\":1}}", "{\"x\":1}", "{" PRE ",\"status\":{}}");
    /* a null old status is no status */
    expect("{" META ",\"status\":null}", "{\"x\":1}", "{" PRE ",\"status\":{\"x\":1}}");
}

static void whole_object_cases(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"{" META "}", "{\"a\":{\"b\":null}}"}, /* null inside: a merge patch removes */
        {"{" META "}", "{\"a\":null}"},
        {"{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"7\"}}", "{\"a\":1}"}, /* no uid */
        {"{\"metadata\":{\"name\":\"a\",\"uid\":\"u\"}}", "{\"a\":1}"},             /* no rv */
        {"{" META ",\"status\":\"text\"}", "{\"a\":1}"},
        {"{" META "}", "[1]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = parse(cases[i][0]), *st = parse(cases[i][1]), *p = (json_t *)1;
        assert_int_equal(statuspatch_build(o, st, &p), 1);
        assert_null(p);
        json_decref(o);
        json_decref(st);
    }
    /* a null inside an array's element is fine: the array is replaced */
    expect("{" META "}", "{\"a\":[null,{\"b\":1}]}",
           "{" PRE ",\"status\":{\"a\":[null,{\"b\":1}]}}");
}

static void allocation_failures(void **state)
{
    (void)state;
    json_t *o = parse("{" META ",\"status\":{\"in\":{\"a\":{\"v\":1}},\"gone\":1}}");
    json_t *st = parse("{\"in\":{\"a\":{\"v\":2},\"b\":{\"c\":[1]}},\"phase\":\"P\"}");
    int ok = 0, failed = 0;
    for (unsigned long k = 1; k < 200 && !ok; k++) {
        json_t *p = NULL;
        cmem_fail_at(k);
        int rc = statuspatch_build(o, st, &p);
        cmem_fail_at(0);
        if (rc == 0) {
            assert_non_null(p);
            ok = 1;
        } else {
            assert_int_equal(rc, CERR_NOMEM);
            assert_null(p);
            failed++;
        }
        json_decref(p);
    }
    assert_true(ok);
    assert_true(failed > 3); /* every allocation on the way failed once */
    json_decref(o);
    json_decref(st);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {cmocka_unit_test(only_changed_members),
                                       cmocka_unit_test(whole_object_cases),
                                       cmocka_unit_test(allocation_failures)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
