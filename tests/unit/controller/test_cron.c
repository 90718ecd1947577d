/*
 * test_cron.c - cron expressions (fields, names, steps, macros, the
 * day-of-month / day-of-week rule, errors), TZif zones (the system's
 * Europe/Luxembourg against glibc's localtime_r, a hand-made file, bad
 * files) and the next due time across DST changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cron.h"
#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static time_t at(const char *rfc3339)
{
    struct timespec ts;
    assert_int_equal(kobj_time_parse(rfc3339, &ts), 0);
    return ts.tv_sec;
}

static void assert_next(const char *expr, const cron_zone *z, const char *after, const char *want)
{
    cron_expr *e = NULL;
    assert_int_equal(cron_parse(expr, &e), 0);
    time_t t = cron_next(e, z, at(after));
    char got[KOBJ_TIME_LEN] = "none";
    if (t) kobj_time_format(t, got);
    if (strcmp(got, want)) fail_msg("%s after %s: got %s, want %s", expr, after, got, want);
    cron_free(e);
}

static void test_fields_utc(void **state)
{
    (void)state;
    assert_next("* * * * *", NULL, "2026-12-03T00:07:30Z", "2026-12-03T00:08:00Z");
    assert_next("* * * * *", NULL, "2026-12-03T00:08:00Z", "2026-12-03T00:09:00Z");
    assert_next("5 * * * *", NULL, "2026-12-03T00:07:30Z", "2026-12-03T01:05:00Z");
    assert_next("*/15 * * * *", NULL, "2026-12-03T00:07:30Z", "2026-12-03T00:15:00Z");
    assert_next("10-20/5 3 * * *", NULL, "2026-12-03T03:16:00Z", "2026-12-03T03:20:00Z");
    assert_next("7/20 * * * *", NULL, "2026-12-03T00:48:00Z", "2026-12-03T01:07:00Z");
    assert_next("0 0 1 jan *", NULL, "2026-12-03T00:00:00Z", "2027-01-01T00:00:00Z");
    assert_next("0 12 * * SAT", NULL, "2026-12-03T00:00:00Z", "2026-12-05T12:00:00Z");
    assert_next("0 12 * * 7", NULL, "2026-12-03T00:00:00Z", "2026-12-06T12:00:00Z");
    assert_next("0 0 29 2 *", NULL, "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z");
    assert_next("0 0 30 2 *", NULL, "2026-03-01T00:00:00Z", "none");
    /* both day fields restricted: either; one is '*': only the other */
    assert_next("0 0 15 * mon", NULL, "2026-12-03T00:00:00Z", "2026-12-07T00:00:00Z");
    assert_next("0 0 15 * *", NULL, "2026-12-03T00:00:00Z", "2026-12-15T00:00:00Z");
    assert_next("0 0 1,15 * 1-5", NULL, "2026-12-05T00:00:00Z", "2026-12-07T00:00:00Z");
    assert_next("@hourly", NULL, "2026-12-03T00:07:30Z", "2026-12-03T01:00:00Z");
    assert_next("@daily", NULL, "2026-12-03T00:07:30Z", "2026-12-04T00:00:00Z");
    assert_next("@weekly", NULL, "2026-12-03T00:07:30Z", "2026-12-06T00:00:00Z");
    assert_next("@monthly", NULL, "2026-12-03T00:07:30Z", "2027-01-01T00:00:00Z");
    assert_next("@yearly", NULL, "2026-12-03T00:07:30Z", "2027-01-01T00:00:00Z");
    assert_next("  30   4 *  * * ", NULL, "2026-12-03T00:07:30Z", "2026-12-03T04:30:00Z");
}

static void test_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {"",
                                      "* * * *",
                                      "* * * * * *",
                                      "60 * * * *",
                                      "* 24 * * *",
                                      "* * 0 * *",
                                      "* * * 13 *",
                                      "* * * * 8",
                                      "5-1 * * * *",
                                      "*/0 * * * *",
                                      "a * * * *",
                                      "1,,2 * * * *",
                                      "*/ * * * *",
                                      "@often",
                                      "1- * * * *",
                                      "* * * januar *",
                                      "99999999999999999999 * * * *"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cron_expr *e = (cron_expr *)1;
        if (cron_parse(bad[i], &e) != CERR_INVALID) fail_msg("accepted \"%s\"", bad[i]);
        assert_null(e);
        assert_true(strlen(cerr_message()) > 0);
    }
    cron_expr *e = NULL;
    assert_int_equal(cron_parse("61 * * * *", &e), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "minute"));
}

static void test_zone_matches_glibc(void **state)
{
    (void)state;
    cron_zone *z = NULL;
    assert_int_equal(cron_zone_load(NULL, "Europe/Luxembourg", &z), 0);
    assert_non_null(z);
    setenv("TZ", "Europe/Luxembourg", 1);
    tzset();
    for (time_t t = at("1990-01-01T00:00:00Z"); t < at("2036-01-01T00:00:00Z");
         t += 86400 * 7 + 3607) {
        struct tm tm;
        localtime_r(&t, &tm);
        if (cron_zone_offset(z, t) != tm.tm_gmtoff)
            fail_msg("offset at %lld: %ld, glibc %ld", (long long)t, cron_zone_offset(z, t),
                     (long)tm.tm_gmtoff);
    }
    /* 2026-03-29: 02:00 CET -> 03:00 CEST; 2026-10-25: 03:00 CEST -> 02:00 CET */
    assert_next("30 2 * * *", z, "2026-03-28T12:00:00Z", "2026-03-30T00:30:00Z"); /* skipped */
    assert_next("30 2 * * *", z, "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"); /* first */
    assert_next("30 2 * * *", z, "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"); /* once */
    assert_next("0 6 * * *", z, "2026-07-01T00:00:00Z", "2026-07-01T04:00:00Z");
    assert_next("0 6 * * *", z, "2026-12-03T00:00:00Z", "2026-12-03T05:00:00Z");
    cron_zone_free(z);
    assert_int_equal(cron_zone_load(NULL, "UTC", &z), 0);
    assert_null(z);
    assert_int_equal(cron_zone_load(NULL, "Mars/Olympus_Mons", &z), CERR_NOTFOUND);
    assert_int_equal(cron_zone_load(NULL, "../etc/passwd", &z), CERR_INVALID);
    assert_int_equal(cron_zone_load("/etc", "passwd", &z), CERR_INVALID);
}

static size_t put32(unsigned char *p, int32_t v)
{
    p[0] = (unsigned char)((uint32_t)v >> 24);
    p[1] = (unsigned char)((uint32_t)v >> 16);
    p[2] = (unsigned char)((uint32_t)v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

/* A version 1 file: +1 h until t=1000, then +2 h. */
static size_t tiny_zone(unsigned char *b)
{
    memset(b, 0, 128);
    memcpy(b, "TZif", 4);
    put32(b + 32, 1); /* timecnt */
    put32(b + 36, 2); /* typecnt */
    put32(b + 40, 4); /* charcnt */
    size_t n = 44;
    n += put32(b + n, 1000);
    b[n++] = 1;
    n += put32(b + n, 3600), b[n++] = 0, b[n++] = 0;
    n += put32(b + n, 7200), b[n++] = 1, b[n++] = 0;
    memcpy(b + n, "A\0B\0", 4);
    return n + 4;
}

static void test_zone_bytes(void **state)
{
    (void)state;
    unsigned char b[128];
    size_t n = tiny_zone(b);
    cron_zone *z = NULL;
    assert_int_equal(cron_zone_load_bytes(b, n, &z), 0);
    assert_int_equal(cron_zone_offset(z, 999), 3600);
    assert_int_equal(cron_zone_offset(z, 1000), 7200);
    assert_int_equal(cron_zone_offset(z, 5000000), 7200);
    cron_zone_free(z);
    for (size_t cut = 0; cut < n - 4; cut++)
        assert_int_equal(cron_zone_load_bytes(b, cut, &z), CERR_INVALID);
    b[44 + 4] = 2; /* type index out of range */
    assert_int_equal(cron_zone_load_bytes(b, n, &z), CERR_INVALID);
    assert_null(z);
}

static void test_oom(void **state)
{
    (void)state;
    cron_expr *e = NULL;
    cmem_fail_at(1);
    assert_int_equal(cron_parse("* * * * *", &e), CERR_NOMEM);
    cmem_fail_at(0);
    unsigned char b[128];
    size_t n = tiny_zone(b);
    cron_zone *z = NULL;
    for (int i = 1; i <= 3; i++) {
        cmem_fail_at(i);
        assert_int_equal(cron_zone_load_bytes(b, n, &z), CERR_NOMEM);
        assert_null(z);
    }
    cmem_fail_at(0);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_utc),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_zone_matches_glibc),
        cmocka_unit_test(test_zone_bytes),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
