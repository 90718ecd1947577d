/*
 * test_partition.c - partition plans: decoding and its field-named errors,
 * time windows (hourly with an offset, daily open-ended and closed, weekly,
 * monthly across a year, leap days), static keys, the cross product in
 * mixed radix and key <-> index round trips, tile windows with the edge
 * tiles clipped, the derived data version (independent SHA-256 vector),
 * deterministic pod names within a DNS label, label values, URI templates,
 * the task's partition object, run-length index sets and their bitmap form,
 * and the compact status record: its size at 100,000 partitions in the
 * worst order, its round trip through a restart, failures and reruns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "partition.h"
#include "partrange.h"
#include "partstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j) fail_msg("bad test JSON \"%s\": %s", s, e.text);
    return j;
}

static part_plan *plan(const char *s)
{
    json_t *j = parse(s);
    part_plan *p = NULL;
    jschema_error err;
    memset(&err, 0, sizeof err);
    if (part_plan_decode(j, &p, &err)) fail_msg("decode %s: %s: %s", s, err.path, err.message);
    json_decref(j);
    return p;
}

static void assert_invalid(const char *s, const char *path, const char *msg_part)
{
    json_t *j = parse(s);
    part_plan *p = NULL;
    jschema_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(part_plan_decode(j, &p, &err), CERR_INVALID);
    assert_null(p);
    if (strcmp(err.path, path) || !strstr(err.message, msg_part))
        fail_msg("%s: got %s: %s, want %s: ...%s...", s, err.path, err.message, path, msg_part);
    json_decref(j);
}

static time_t at(const char *s)
{
    time_t t;
    assert_int_equal(part_parse_local(s, 0, &t), 0);
    return t;
}

static void key_at(const part_plan *p, uint64_t i, time_t now, const char *want)
{
    part_info pi;
    assert_int_equal(part_plan_at(p, i, now, &pi), 0);
    if (strcmp(pi.key, want))
        fail_msg("partition %llu: key %s, want %s", (unsigned long long)i, pi.key, want);
    uint64_t back = 99999999;
    assert_int_equal(part_plan_index_of(p, want, now, &back), 0);
    assert_int_equal(back, i);
}

static void decode_errors(void **state)
{
    (void)state;
    assert_invalid("[]", "spec.partitions", "non-empty");
    assert_invalid("[{\"name\":\"d\"}]", "spec.partitions[0]",
                   "exactly one of tiles, time and static");
    assert_invalid("[{\"name\":\"d\",\"time\":{\"start\":\"2026-11-01\",\"cadence\":\"daily\"},"
                   "\"static\":{\"keys\":[\"a\"]}}]",
                   "spec.partitions[0]", "exactly one");
    assert_invalid("[{\"name\":\"d\",\"time\":{\"start\":\"2026-13-01\",\"cadence\":\"daily\"}}]",
                   "spec.partitions[0].time.start", "date");
    assert_invalid("[{\"name\":\"d\",\"time\":{\"start\":\"2026-02-29\",\"cadence\":\"daily\"}}]",
                   "spec.partitions[0].time.start", "date");
    assert_invalid("[{\"name\":\"d\",\"time\":{\"start\":\"2026-11-01\",\"cadence\":\"yearly\"}}]",
                   "spec.partitions[0].time.cadence", "hourly, daily");
    assert_invalid("[{\"name\":\"d\",\"time\":{\"start\":\"2026-11-01\",\"end\":\"2026-11-01\","
                   "\"cadence\":\"daily\"}}]",
                   "spec.partitions[0].time.end", "after start");
    assert_invalid("[{\"name\":\"d\",\"time\":{\"start\":\"2026-11-01\",\"cadence\":\"daily\","
                   "\"timezone\":\"Europe/Nowhere\"}}]",
                   "spec.partitions[0].time.timezone", "IANA time zone");
    assert_invalid("[{\"name\":\"d\",\"time\":{\"start\":\"2026-11-01\",\"cadence\":\"daily\","
                   "\"timezone\":\"../etc/passwd\"}}]",
                   "spec.partitions[0].time.timezone", "IANA time zone");
    assert_invalid("[{\"name\":\"d\",\"time\":{\"start\":\"2026-11-01\",\"cadence\":\"daily\","
                   "\"timezone\":\"+15:00\"}}]",
                   "spec.partitions[0].time.timezone", "within 14 hours");
    assert_invalid("[{\"name\":\"m\",\"time\":{\"start\":\"2026-01-31\",\"cadence\":\"monthly\"}}]",
                   "spec.partitions[0].time.start", "day 1 to 28");
    assert_invalid("[{\"name\":\"b\",\"static\":{\"keys\":[\"a\",\"a\"]}}]",
                   "spec.partitions[0].static.keys[1]", "duplicate");
    assert_invalid("[{\"name\":\"b\",\"static\":{\"keys\":[\"a/b\"]}}]",
                   "spec.partitions[0].static.keys[0]", "1 to 63");
    assert_invalid("[{\"name\":\"b\",\"static\":{\"keys\":[\"a\"]}},"
                   "{\"name\":\"d\",\"time\":{\"start\":\"2026-11-01\",\"cadence\":\"daily\"}}]",
                   "spec.partitions[1]", "open-ended time dimension");
    assert_invalid("[{\"name\":\"t\",\"tiles\":{\"tileSize\":[2048,2048]}},"
                   "{\"name\":\"u\",\"tiles\":{\"tileSize\":[512,512]}}]",
                   "spec.partitions[1]", "at most one tiles");
    assert_invalid("[{\"name\":\"t\",\"tiles\":{\"tileSize\":[100,2048]}}]",
                   "spec.partitions[0].tiles.tileSize", "256 to 65536");
    assert_invalid("[{\"name\":\"t\",\"static\":{\"keys\":[\"a\"]}},{\"name\":\"t\",\"static\":{"
                   "\"keys\":[\"b\"]}}]",
                   "spec.partitions[1]", "duplicate dimension");
    json_t *none = NULL;
    part_plan *p = (part_plan *)1;
    assert_int_equal(part_plan_decode(none, &p, NULL), 0);
    assert_null(p);
}

static void daily_open_ended_grows_when_windows_close(void **state)
{
    (void)state;
    part_plan *p =
        plan("[{\"name\":\"day\",\"time\":{\"start\":\"2026-11-01\",\"cadence\":\"daily\"}}]");
    assert_int_equal(part_plan_count(p, at("2026-10-31T12")), 0);
    assert_int_equal(part_plan_count(p, at("2026-11-01T23:59:59")), 0);
    assert_int_equal(part_plan_count(p, at("2026-11-02")), 1); /* the first window just closed */
    assert_int_equal(part_plan_count(p, at("2026-12-01T06")), 30);
    key_at(p, 0, at("2026-12-01"), "2026-11-01");
    key_at(p, 29, at("2026-12-01"), "2026-11-30");
    uint64_t i;
    assert_int_equal(part_plan_index_of(p, "2026-12-01", at("2026-12-01T06"), &i), CERR_NOTFOUND);
    assert_int_equal(part_plan_index_of(p, "2026-12-01", at("2026-12-02"), &i), 0);
    assert_int_equal(i, 30);
    assert_int_equal(part_plan_index_of(p, "2026-11-1", at("2026-12-02"), &i), CERR_NOTFOUND);
    part_info pi;
    assert_int_equal(part_plan_at(p, 30, at("2026-12-01T06"), &pi), CERR_INVALID);
    cerr_clear();
    assert_int_equal(part_plan_at(p, 29, at("2026-12-01"), &pi), 0);
    assert_true(pi.has_window);
    assert_int_equal(pi.win_start, at("2026-11-30"));
    assert_int_equal(pi.win_end, at("2026-12-01"));
    part_plan_free(p);
    /* 1,000 past days, closed: the count stops at end whatever now is. */
    p = plan("[{\"name\":\"day\",\"time\":{\"start\":\"2024-01-01\",\"end\":\"2026-09-27\","
             "\"cadence\":\"daily\"}}]");
    assert_int_equal(part_plan_count(p, at("2030-01-01")), 1000);
    key_at(p, 59, 0x7fffffff, "2024-02-29"); /* leap day */
    key_at(p, 999, 0x7fffffff, "2026-09-26");
    part_plan_free(p);
    /* windows before 1970 (negative times) end where end says */
    p = plan("[{\"name\":\"day\",\"time\":{\"start\":\"1900-01-01\",\"end\":\"1902-09-28\","
             "\"cadence\":\"daily\"}}]");
    assert_int_equal(part_plan_count(p, at("2026-01-01")), 1000);
    key_at(p, 999, at("2026-01-01"), "1902-09-27");
    part_plan_free(p);
}

static void hourly_offset_weekly_monthly(void **state)
{
    (void)state;
    part_plan *p =
        plan("[{\"name\":\"h\",\"time\":{\"start\":\"2026-11-30T22\",\"cadence\":\"hourly\","
             "\"timezone\":\"+05:30\"}}]");
    /* 2026-11-30T22:00+05:30 is 16:30Z; three windows closed by 19:30Z. */
    assert_int_equal(part_plan_count(p, at("2026-11-30T19:30")), 3);
    key_at(p, 2, at("2026-11-30T19:30"), "2026-12-01T00");
    part_info pi;
    assert_int_equal(part_plan_at(p, 2, at("2026-11-30T19:30"), &pi), 0);
    assert_int_equal(pi.win_start, at("2026-11-30T18:30"));
    assert_int_equal(pi.tz_offset, 5 * 3600 + 1800);
    char uri[256];
    assert_int_equal(
        part_substitute("s3://raw/{year}/{month}/{day}/{hour}/{date}.tif", &pi, uri, sizeof uri),
        0);
    assert_string_equal(uri, "s3://raw/2026/12/01/00/2026-12-01.tif");
    part_plan_free(p);

    p = plan("[{\"name\":\"w\",\"time\":{\"start\":\"2026-11-02\",\"cadence\":\"weekly\"}}]");
    assert_int_equal(part_plan_count(p, at("2026-11-23")), 3);
    key_at(p, 2, at("2026-11-23"), "2026-11-16");
    uint64_t i;
    assert_int_equal(part_plan_index_of(p, "2026-11-17", at("2026-12-31"), &i), CERR_NOTFOUND);
    part_plan_free(p);

    p = plan("[{\"name\":\"m\",\"time\":{\"start\":\"2025-11-01\",\"cadence\":\"monthly\","
             "\"timezone\":\"-08:00\"}}]");
    assert_int_equal(part_plan_count(p, at("2026-03-01T07:59")), 3);
    assert_int_equal(part_plan_count(p, at("2026-03-01T08:00")), 4);
    key_at(p, 2, at("2026-03-01T08"), "2026-01");
    key_at(p, 3, at("2026-03-01T08"), "2026-02");
    assert_int_equal(part_plan_at(p, 3, at("2026-03-01T08"), &pi), 0);
    assert_int_equal(pi.win_end - pi.win_start, 28 * 86400);
    part_plan_free(p);
}

/* Europe/Paris: 2026-03-29 lasts 23 hours (02:00 -> 03:00 CEST), 2026-10-25
 * 25 hours (03:00 CEST -> 02:00 CET). */
static void iana_zone_dst_days(void **state)
{
    (void)state;
    part_plan *p = plan("[{\"name\":\"day\",\"time\":{\"start\":\"2026-03-28\",\"end\":"
                        "\"2026-03-31\",\"cadence\":\"daily\",\"timezone\":\"Europe/Paris\"}}]");
    part_info pi;
    assert_int_equal(part_plan_count(p, at("2026-03-29T21:59")), 1); /* 28th closed at 23:00Z */
    assert_int_equal(part_plan_count(p, at("2026-03-29T22:00")), 2); /* 29th closed at 22:00Z */
    assert_int_equal(part_plan_at(p, 0, at("2027-01-01"), &pi), 0);
    assert_string_equal(pi.key, "2026-03-28");
    assert_int_equal(pi.win_start, at("2026-03-27T23"));
    assert_int_equal(pi.win_end - pi.win_start, 24 * 3600);
    assert_int_equal(pi.tz_offset, 3600);
    assert_int_equal(part_plan_at(p, 1, at("2027-01-01"), &pi), 0);
    assert_string_equal(pi.key, "2026-03-29");
    assert_int_equal(pi.win_start, at("2026-03-28T23"));
    assert_int_equal(pi.win_end, at("2026-03-29T22"));
    assert_int_equal(pi.win_end - pi.win_start, 23 * 3600);
    assert_int_equal(part_plan_at(p, 2, at("2027-01-01"), &pi), 0);
    assert_int_equal(pi.win_end - pi.win_start, 24 * 3600);
    assert_int_equal(pi.tz_offset, 7200);
    part_plan_free(p);

    p = plan("[{\"name\":\"day\",\"time\":{\"start\":\"2026-10-24\",\"end\":"
             "\"2026-10-27\",\"cadence\":\"daily\",\"timezone\":\"Europe/Paris\"}}]");
    assert_int_equal(part_plan_at(p, 1, at("2027-01-01"), &pi), 0);
    assert_string_equal(pi.key, "2026-10-25");
    assert_int_equal(pi.win_start, at("2026-10-24T22"));
    assert_int_equal(pi.win_end, at("2026-10-25T23"));
    assert_int_equal(pi.win_end - pi.win_start, 25 * 3600);
    char uri[128];
    assert_int_equal(part_substitute("s3://raw/{date}/{hour}.tif", &pi, uri, sizeof uri), 0);
    assert_string_equal(uri, "s3://raw/2026-10-25/00.tif");
    uint64_t i;
    assert_int_equal(part_plan_index_of(p, "2026-10-26", at("2027-01-01"), &i), 0);
    assert_int_equal(i, 2);
    part_plan_free(p);

    /* Hourly over the spring change: 02:00 does not exist, its window is empty;
     * 03:00 CEST starts at 01:00Z. */
    p = plan("[{\"name\":\"h\",\"time\":{\"start\":\"2026-03-29T01\",\"end\":"
             "\"2026-03-29T05\",\"cadence\":\"hourly\",\"timezone\":\"Europe/Paris\"}}]");
    assert_int_equal(part_plan_at(p, 0, at("2027-01-01"), &pi), 0);
    assert_int_equal(pi.win_start, at("2026-03-29T00"));
    assert_int_equal(pi.win_end, at("2026-03-29T01"));
    assert_int_equal(part_plan_at(p, 1, at("2027-01-01"), &pi), 0);
    assert_string_equal(pi.key, "2026-03-29T02");
    assert_int_equal(pi.win_end - pi.win_start, 0);
    assert_int_equal(part_plan_at(p, 2, at("2027-01-01"), &pi), 0);
    assert_int_equal(pi.win_start, at("2026-03-29T01"));
    assert_int_equal(pi.tz_offset, 7200);
    part_plan_free(p);

    /* America/Santiago changes at midnight (2026-09-06 00:00 -> 01:00): the
     * day starts at the change. */
    p = plan("[{\"name\":\"day\",\"time\":{\"start\":\"2026-09-05\",\"end\":"
             "\"2026-09-07\",\"cadence\":\"daily\",\"timezone\":\"America/Santiago\"}}]");
    assert_int_equal(part_plan_at(p, 1, at("2027-01-01"), &pi), 0);
    assert_int_equal(pi.win_start, at("2026-09-06T04"));
    assert_int_equal(pi.win_end - pi.win_start, 23 * 3600);
    part_plan_free(p);
}

static void cross_product_in_mixed_radix(void **state)
{
    (void)state;
    part_plan *p =
        plan("[{\"name\":\"day\",\"time\":{\"start\":\"2026-11-01\",\"cadence\":\"daily\"}},"
             "{\"name\":\"basin\",\"static\":{\"keys\":[\"alzette\",\"sure\",\"our\"]}}]");
    time_t now = at("2026-11-04");
    assert_int_equal(part_plan_count(p, now), 9);
    key_at(p, 0, now, "2026-11-01/alzette");
    key_at(p, 4, now, "2026-11-02/sure");
    key_at(p, 8, now, "2026-11-03/our");
    /* A new day appends: no existing index moves. */
    key_at(p, 4, at("2026-11-09"), "2026-11-02/sure");
    assert_int_equal(part_plan_count(p, at("2026-11-05")), 12);
    uint64_t i;
    assert_int_equal(part_plan_index_of(p, "2026-11-02", now, &i), CERR_NOTFOUND);
    assert_int_equal(part_plan_index_of(p, "2026-11-02/sure/x", now, &i), CERR_NOTFOUND);
    assert_int_equal(part_plan_index_of(p, "2026-11-02/rhine", now, &i), CERR_NOTFOUND);
    for (uint64_t k = 0; k < 9; k++) {
        part_info pi;
        assert_int_equal(part_plan_at(p, k, now, &pi), 0);
        assert_int_equal(part_plan_index_of(p, pi.key, now, &i), 0);
        assert_int_equal(i, k);
        static const char *const basins[] = {"alzette", "sure", "our"};
        assert_string_equal(pi.dim_key[1], basins[k % 3]);
    }
    part_plan_free(p);
}

static void tiles_need_the_grid(void **state)
{
    (void)state;
    part_plan *p = plan("[{\"name\":\"tile\",\"tiles\":{\"tileSize\":[2048,2048],\"halo\":1}},"
                        "{\"name\":\"band\",\"static\":{\"keys\":[\"b1\",\"b2\"]}}]");
    assert_true(part_plan_has_tiles(p));
    assert_false(part_plan_has_grid(p));
    assert_int_equal(part_plan_count(p, 0), 0);
    part_grid bad = {.width = 8192,
                     .height = 8192,
                     .tile_width = 2048,
                     .tile_height = 2048,
                     .cols = 5,
                     .rows = 4};
    assert_int_equal(part_plan_set_grid(p, &bad), CERR_INVALID);
    cerr_clear();
    /* sizes no raster has, whose products would overflow (found by fuzzing) */
    part_grid huge = {.width = 9223372036854775807L,
                      .height = 2,
                      .tile_width = 4611686018427387904L,
                      .tile_height = 1,
                      .cols = 3,
                      .rows = 2};
    assert_int_equal(part_plan_set_grid(p, &huge), CERR_INVALID);
    cerr_clear();
    part_grid g = {.width = 8000,
                   .height = 5000,
                   .tile_width = 2048,
                   .tile_height = 2048,
                   .cols = 4,
                   .rows = 3,
                   .halo = 1};
    assert_int_equal(part_plan_set_grid(p, &g), 0);
    assert_int_equal(part_plan_count(p, 0), 24);
    key_at(p, 0, 0, "r000c000/b1");
    key_at(p, 23, 0, "r002c003/b2");
    key_at(p, 9, 0, "r001c000/b2");
    part_info pi;
    assert_int_equal(part_plan_at(p, 23, 0, &pi), 0);
    assert_true(pi.has_tile);
    assert_false(pi.has_window);
    assert_int_equal(pi.tile.xoff, 6144);
    assert_int_equal(pi.tile.yoff, 4096);
    assert_int_equal(pi.tile.xsize, 8000 - 6144); /* edge tiles are clipped */
    assert_int_equal(pi.tile.ysize, 5000 - 4096);
    assert_int_equal(pi.tile.width, 8000);
    json_t *tj = part_task_json(&pi);
    char *s = json_dumps(tj, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(
        s, "{\"index\":23,\"key\":\"r002c003/b2\",\"tile\":{\"col\":3,\"halo\":1,\"height\":5000,"
           "\"row\":2,\"width\":8000,\"xoff\":6144,\"xsize\":1856,\"yoff\":4096,\"ysize\":904}}");
    free(s);
    json_decref(tj);
    char uri[64];
    assert_int_equal(part_substitute("s3://raw/{date}.tif", &pi, uri, sizeof uri), CERR_INVALID);
    cerr_clear();
    assert_int_equal(part_substitute("s3://raw/{key}.tif", &pi, uri, sizeof uri), 0);
    assert_string_equal(uri, "s3://raw/r002c003/b2.tif");
    assert_int_equal(part_substitute("s3://raw/{nope}.tif", &pi, uri, sizeof uri), CERR_INVALID);
    assert_int_equal(part_substitute("s3://raw/{key.tif", &pi, uri, sizeof uri), CERR_INVALID);
    assert_int_equal(part_substitute("s3://raw/key}.tif", &pi, uri, sizeof uri), CERR_INVALID);
    assert_int_equal(
        part_substitute("s3://raw/a-very-long-name/{key}/{key}/{key}.tif", &pi, uri, sizeof uri),
        CERR_TOOBIG);
    cerr_clear();
    part_plan_free(p);
}

static const char DV_A[] =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char DV_B[] =
    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static void derived_versions_and_names(void **state)
{
    (void)state;
    char dv[DV_LEN + 1], dv2[DV_LEN + 1];
    assert_int_equal(part_data_version(DV_A, "2026-11-30", dv), 0);
    /* printf 'terrane.partition.v1\nsha256:aaaa...\n2026-11-30' | sha256sum */
    assert_string_equal(dv,
                        "sha256:bfb3ceecc0244760d2864f507a36c86ebb3a7e83acfe0eaaf9b43945dabdab82");
    assert_int_equal(part_data_version(DV_A, "2026-11-29", dv2), 0);
    assert_string_not_equal(dv, dv2);
    assert_int_equal(part_data_version(DV_B, "2026-11-30", dv2), 0);
    assert_string_not_equal(dv, dv2);
    assert_int_equal(part_data_version("sha256:xyz", "k", dv2), CERR_INVALID);
    cerr_clear();

    char n1[64], n2[64], n3[64], n4[64];
    assert_int_equal(part_pod_name("dem-slope", DV_A, "r002c003", 1, n1, sizeof n1), 0);
    assert_int_equal(part_pod_name("dem-slope", DV_A, "r002c003", 1, n2, sizeof n2), 0);
    assert_string_equal(n1, n2);
    assert_int_equal(strncmp(n1, "dem-slope-aaaaaaaaaaaa-p", 24), 0);
    assert_int_equal(part_pod_name("dem-slope", DV_A, "r002c004", 1, n3, sizeof n3), 0);
    assert_string_not_equal(n1, n3);
    assert_int_equal(part_pod_name("dem-slope", DV_A, "r002c003", 2, n4, sizeof n4), 0);
    assert_string_not_equal(n1, n4);
    assert_int_equal(part_pod_name("dem-slope", DV_B, "r002c003", 1, n4, sizeof n4), 0);
    assert_string_not_equal(n1, n4);
    const char *long_name =
        "a-materialization-with.a-name-much-longer-than-a-dns-label-allows-for-pods";
    assert_int_equal(part_pod_name(long_name, DV_A, "2026-11-30/basin-a", 999, n1, sizeof n1), 0);
    assert_true(strlen(n1) <= 63);
    assert_null(strchr(n1, '.'));
    assert_int_equal(part_pod_name(long_name, DV_A, "2026-11-30/basin-a", 999, n2, sizeof n2), 0);
    assert_string_equal(n1, n2);
    assert_int_equal(part_pod_name("x", DV_A, "k", 0, n1, sizeof n1), CERR_INVALID);
    cerr_clear();

    char lv[64];
    part_label_value("2026-11-30/basin-a", lv);
    assert_string_equal(lv, "2026-11-30.basin-a");
    part_label_value("r002c003", lv);
    assert_string_equal(lv, "r002c003");
    part_label_value("-x", lv);
    assert_int_equal(strlen(lv), 17);
    assert_int_equal(lv[0], 'h');
}

static void ranges(void **state)
{
    (void)state;
    prange *r = prange_new();
    char buf[256];
    assert_int_equal(prange_format(r, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    for (uint64_t i = 0; i < 100; i++)
        assert_int_equal(prange_add(r, i), 0);
    assert_int_equal(prange_add(r, 120), 0);
    assert_int_equal(prange_add(r, 122), 0);
    assert_int_equal(prange_add(r, 121), 0); /* joins two runs */
    assert_int_equal(prange_add(r, 50), 0);  /* already there */
    assert_int_equal(prange_add(r, 200), 0);
    assert_int_equal(prange_format(r, buf, sizeof buf), 0);
    assert_string_equal(buf, "0-99,120-122,200");
    assert_int_equal(prange_count(r), 104);
    assert_int_equal(prange_runs(r), 3);
    assert_true(prange_has(r, 121));
    assert_false(prange_has(r, 100));
    assert_int_equal(prange_first_missing(r, 0), 100);
    assert_int_equal(prange_first_missing(r, 110), 110);
    prange_remove(r, 50);
    prange_remove(r, 0);
    prange_remove(r, 200);
    prange_remove(r, 300);
    assert_int_equal(prange_format(r, buf, sizeof buf), 0);
    assert_string_equal(buf, "1-49,51-99,120-122");
    char small[8];
    assert_int_equal(prange_format(r, small, sizeof small), CERR_TOOBIG);
    assert_string_equal(small, "1-49");
    cerr_clear();

    assert_int_equal(prange_parse(r, buf, strlen(buf)), 0);
    assert_int_equal(prange_count(r), 101);
    static const char *const bad[] = {"1,",    ",1",  "1-1", "3-2", "01",          "1,1", "1,2",
                                      "2-5,4", "1;2", "-1",  "1-",  "99999999999", "1--2"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        if (prange_parse(r, bad[k], strlen(bad[k])) != CERR_INVALID)
            fail_msg("accepted \"%s\"", bad[k]);
        assert_int_equal(prange_runs(r), 0);
        cerr_clear();
    }
    assert_int_equal(prange_parse(r, "1,3-4", 5), 0);
    assert_int_equal(prange_count(r), 3);

    /* 100,000 partitions materialized in order, one failed in the middle. */
    prange_clear(r);
    for (uint64_t i = 0; i < 100000; i++)
        if (i != 51234) assert_int_equal(prange_add(r, i), 0);
    assert_int_equal(prange_format(r, buf, sizeof buf), 0);
    assert_string_equal(buf, "0-51233,51235-99999");
    prange_free(r);
}

static void bitmap_when_runs_are_too_many(void **state)
{
    (void)state;
    prange *r = prange_new(), *back = prange_new();
    char *buf = malloc(PRANGE_TEXT_MAX + 1);
    for (uint64_t i = 0; i < 100000; i += 2)
        assert_int_equal(prange_add(r, i), 0);
    assert_int_equal(prange_encode(r, 100000, buf, PRANGE_TEXT_MAX + 1), 0);
    assert_int_equal(strncmp(buf, PRANGE_BITMAP_PREFIX, 4), 0);
    assert_int_equal(strlen(buf), 4 + 16668);
    assert_int_equal(prange_parse(back, buf, strlen(buf)), 0);
    assert_int_equal(prange_count(back), 50000);
    assert_true(prange_has(back, 99998));
    assert_false(prange_has(back, 99999));
    /* few runs stay text */
    prange_clear(r);
    assert_int_equal(prange_add(r, 3), 0);
    assert_int_equal(prange_encode(r, 100000, buf, PRANGE_TEXT_MAX + 1), 0);
    assert_string_equal(buf, "3");
    static const char *const bad[] = {"b64:A", "b64:A===", "b64:AA=A", "b64:A!AA"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        if (prange_parse(back, bad[k], strlen(bad[k])) != CERR_INVALID)
            fail_msg("accepted \"%s\"", bad[k]);
        cerr_clear();
    }
    assert_int_equal(prange_parse(back, "b64:BQ==", 8), 0); /* bits 0 and 2 */
    assert_int_equal(prange_count(back), 2);
    assert_true(prange_has(back, 2));
    free(buf);
    prange_free(r);
    prange_free(back);
}

static void status_under_64k_at_100000(void **state)
{
    (void)state;
    partstate *ps = partstate_new();
    assert_int_equal(partstate_load(ps, NULL, DV_A), 0);
    partstate_set_total(ps, 100000);
    /* Worst order: every other partition done, every fourth failed, with
     * the longest messages, and a previous version as scattered. */
    char msg[600];
    memset(msg, 'x', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    for (uint64_t i = 0; i < 100000; i++) {
        if (i % 2 == 0)
            assert_int_equal(partstate_succeeded(ps, i), 0);
        else if (i % 4 == 1)
            assert_int_equal(partstate_failed(ps, i, "2026-11-30/basin-a", 4, msg), 0);
    }
    json_t *j = partstate_json(ps);
    assert_non_null(j);
    /* reload under a new version: this one becomes the previous */
    partstate *ps2 = partstate_new();
    assert_int_equal(partstate_load(ps2, j, DV_B), 0);
    assert_int_equal(partstate_done_count(ps2), 0);
    assert_int_equal(partstate_failed_count(ps2), 0); /* failures belong to their version */
    partstate_set_total(ps2, 100000);
    for (uint64_t i = 1; i < 100000; i += 2)
        assert_int_equal(partstate_succeeded(ps2, i), 0);
    for (uint64_t i = 0; i < 100000; i += 4)
        assert_int_equal(partstate_failed(ps2, i, "k", 1, msg), 0);
    json_t *j2 = partstate_json(ps2);
    char *text = json_dumps(j2, JSON_COMPACT);
    size_t size = strlen(text);
    print_message(
        "status.partitions at 100,000 partitions, worst order: %zu bytes (target < 65536)\n", size);
    assert_true(size < 56 * 1024);
    assert_int_equal(json_array_size(json_object_get(j2, "materialized")), 2);
    assert_int_equal(json_array_size(json_object_get(j2, "failures")), PARTSTATE_FAILURES_MAX);
    assert_int_equal(json_integer_value(json_object_get(j2, "failed")), 25000);
    assert_string_equal(json_string_value(json_object_get(j2, "summary")), "50000/100000");
    free(text);
    /* a restart reads the same record back */
    partstate *ps3 = partstate_new();
    assert_int_equal(partstate_load(ps3, j2, DV_B), 0);
    assert_int_equal(partstate_done_count(ps3), 50000);
    assert_int_equal(partstate_failed_count(ps3), 25000);
    assert_true(partstate_is_failed(ps3, 4));
    assert_true(partstate_is_done(ps3, 5));
    assert_int_equal(partstate_next(ps3, 0), 2); /* 0 failed, 1 done */
    partstate_set_total(ps3, 100000);            /* derived by the caller each reconcile */
    json_t *j3 = partstate_json(ps3);
    assert_true(json_equal(j2, j3));
    json_decref(j);
    json_decref(j2);
    json_decref(j3);
    partstate_free(ps);
    partstate_free(ps2);
    partstate_free(ps3);
}

static void failures_and_rerun(void **state)
{
    (void)state;
    partstate *ps = partstate_new();
    json_t *bad = parse("{\"materialized\":[{\"dataVersion\":\"sha256:"
                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
                        "\"ranges\":\"3-1\"}]}");
    assert_int_equal(partstate_load(ps, bad, DV_A), CERR_INVALID);
    cerr_clear();
    assert_int_equal(partstate_done_count(ps), 0);
    json_decref(bad);
    partstate_set_total(ps, 30);
    for (uint64_t i = 0; i < 30; i++)
        if (i != 7 && i != 20) assert_int_equal(partstate_succeeded(ps, i), 0);
    /* a message cut at 256 bytes stays valid UTF-8 */
    char msg[400] = "";
    for (int i = 0; i < 130; i++)
        strcat(msg, "\xc3\xa9");
    assert_int_equal(partstate_failed(ps, 20, "2026-11-21", 4, msg), 0);
    assert_int_equal(partstate_failed(ps, 7, "2026-11-08", 1, "BadInput: no such object"), 0);
    partstate_set_running(ps, 0);
    json_t *j = partstate_json(ps);
    assert_non_null(j);
    const json_t *f = json_object_get(j, "failures");
    assert_int_equal(json_array_size(f), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(f, 0), "key")),
                        "2026-11-08");
    assert_int_equal(json_string_length(json_object_get(json_array_get(f, 1), "message")), 256);
    assert_string_equal(json_string_value(json_object_get(j, "failedRanges")), "7,20");
    assert_string_equal(json_string_value(json_object_get(j, "summary")), "28/30");
    assert_int_equal(json_integer_value(json_object_get(j, "pending")), 0);
    assert_int_equal(partstate_next(ps, 0), 30);
    partstate_clear_failed(ps); /* the rerun annotation */
    assert_int_equal(partstate_next(ps, 0), 7);
    assert_int_equal(partstate_next(ps, 8), 20);
    assert_int_equal(partstate_succeeded(ps, 7), 0);
    json_decref(j);
    j = partstate_json(ps);
    assert_null(json_object_get(j, "failures"));
    assert_int_equal(json_integer_value(json_object_get(j, "pending")), 1);
    json_decref(j);
    partstate_free(ps);
}

static void out_of_memory_does_not_leak(void **state)
{
    (void)state;
    const char *spec =
        "[{\"name\":\"day\",\"time\":{\"start\":\"2026-11-01\",\"cadence\":\"daily\"}},"
        "{\"name\":\"basin\",\"static\":{\"keys\":[\"a\",\"b\",\"c\"]}}]";
    json_t *j = parse(spec);
    for (int n = 1; n < 20; n++) {
        part_plan *p = NULL;
        cmem_fail_at(n);
        int rc = part_plan_decode(j, &p, NULL);
        cmem_fail_at(0);
        cerr_clear();
        if (rc == 0) {
            part_plan_free(p);
            break;
        }
        assert_int_equal(rc, CERR_NOMEM);
        assert_null(p);
    }
    json_decref(j);
    prange *r = prange_new();
    for (int n = 1; n < 5; n++) {
        cmem_fail_at(n);
        int rc = prange_add(r, 7);
        cmem_fail_at(0);
        cerr_clear();
        if (!rc) break;
        assert_int_equal(rc, CERR_NOMEM);
        assert_int_equal(prange_runs(r), 0);
    }
    prange_free(r);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_errors),
        cmocka_unit_test(daily_open_ended_grows_when_windows_close),
        cmocka_unit_test(hourly_offset_weekly_monthly),
        cmocka_unit_test(iana_zone_dst_days),
        cmocka_unit_test(cross_product_in_mixed_radix),
        cmocka_unit_test(tiles_need_the_grid),
        cmocka_unit_test(derived_versions_and_names),
        cmocka_unit_test(ranges),
        cmocka_unit_test(bitmap_when_runs_are_too_many),
        cmocka_unit_test(status_under_64k_at_100000),
        cmocka_unit_test(failures_and_rerun),
        cmocka_unit_test(out_of_memory_does_not_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
