/*
 * test_objvec.c - objvec: references held and dropped, growth, and an
 * allocation failure kept in rc.
 */
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "objvec.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void holds_references_and_grows(void **state)
{
    (void)state;
    objvec v = {0};
    json_t *o = json_object();
    for (int i = 0; i < 40; i++) /* past the first capacity twice */
        assert_int_equal(objvec_collect(&v, o), 0);
    assert_int_equal(v.n, 40);
    assert_true(v.cap >= 40);
    assert_int_equal(o->refcount, 41);
    assert_ptr_equal(v.v[39], o);
    objvec_clear(&v);
    assert_int_equal(o->refcount, 1);
    assert_int_equal(v.n, 0);
    assert_null(v.v);
    objvec_clear(&v); /* empty: nothing to drop */
    json_decref(o);
}

static void allocation_failure_kept(void **state)
{
    (void)state;
    objvec v = {0};
    json_t *o = json_object();
    cmem_fail_at(1);
    int rc = objvec_push(&v, o);
    cmem_fail_at(0);
    assert_int_equal(rc, CERR_NOMEM);
    assert_int_equal(v.rc, CERR_NOMEM);
    assert_int_equal(v.n, 0);
    assert_int_equal(o->refcount, 1);
    objvec_clear(&v);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(holds_references_and_grows),
                                       cmocka_unit_test(allocation_failure_kept)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
