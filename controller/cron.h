/*
 * cron.h - AssetSource observation schedules: 5-field cron expressions in
 * an IANA time zone, and the next time one is due.
 *
 * Both parsers read bytes the controller does not control (a spec field;
 * a zoneinfo file) and are fuzzed (tests/fuzz/fuzz_c_cron.c).
 *
 * Expressions: "minute hour day-of-month month day-of-week", each field a
 * comma list of `*`, `N`, `N-M`, with an optional `/step`; months JAN-DEC
 * and days SUN-SAT by name (case-insensitive), day-of-week 7 = Sunday; or
 * one of @yearly @annually @monthly @weekly @daily @midnight @hourly. As in
 * Vixie cron, when both day fields are restricted a day matching either
 * is due.
 *
 * Zones: TZif files (RFC 8536, versions 1-4; the 64-bit block when
 * present). Local time is found from the transitions; after the last one
 * the last offset holds (the POSIX TZ footer is not read: Debian's fat
 * zoneinfo lists transitions up to 2037). A wall-clock time skipped by a
 * DST change is not due; one repeated is due once (at its first
 * occurrence).
 *
 * Pure and reentrant; handles are immutable after creation, any thread.
 */
#ifndef TERRANE_CRON_H
#define TERRANE_CRON_H

#include <stddef.h>
#include <time.h>

typedef struct cron_expr cron_expr;
typedef struct cron_zone cron_zone;

#define CRON_EXPR_MAX 128

/* 0 with *out (cron_free), or CERR_INVALID naming the field, or CERR_NOMEM. */
int cron_parse(const char *text, cron_expr **out);
void cron_free(cron_expr *e);

/* A zone from TZif bytes. 0 with *out (cron_zone_free), CERR_INVALID
 * saying what is wrong, CERR_NOMEM. */
int cron_zone_load_bytes(const unsigned char *buf, size_t len, cron_zone **out);
/* name: an IANA name ("Europe/Luxembourg"), read below dir (NULL:
 * /usr/share/zoneinfo); "UTC" and "" need no file. CERR_NOTFOUND when no
 * such zone, CERR_INVALID for a name with ".." or a bad file. */
int cron_zone_load(const char *dir, const char *name, cron_zone **out);
void cron_zone_free(cron_zone *z);
/* Offset of local time from UTC at t, in seconds (zone NULL: UTC). */
long cron_zone_offset(const cron_zone *z, time_t t);

/* The first due time strictly after `after`, in zone (NULL: UTC); 0 when
 * there is none within 8 years (e.g. "0 0 30 2 *"). */
time_t cron_next(const cron_expr *e, const cron_zone *z, time_t after);

#endif
