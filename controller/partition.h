/*
 * partition.h - an asset's partitions: decoding spec.partitions, enumerating
 * partition keys by index, the derived per-partition data version, pod
 * names, and the substitution of {date} {year} {month} {day} {hour} {key}
 * in input URIs.
 *
 * Dimensions: tiles (a grid set once the grid probe reported it), time
 * (start, optional end, cadence hourly/daily/weekly/monthly, timezone UTC, a
 * fixed offset or an IANA zone read with cron.h's TZif reader from
 * /usr/share/zoneinfo) and static keys. Windows are laid out in local wall
 * time, so in a zone with DST a daily window is 23 or 25 hours on the days
 * of the change; an hourly window of a skipped hour is empty and the one of
 * a repeated hour lasts two hours. Several dimensions partition by their
 * cross product in mixed radix, the first dimension varying slowest; keys
 * are the dimensions' keys joined by '/'. An open-ended time dimension must
 * come first, so that the partitions appearing when a window closes get the
 * next indices and no existing index moves (the status records indices).
 *
 * Nothing per partition is stored: a partition's data version is
 * H(asset data version, key), its pod name follows from (asset, asset data
 * version, key, attempt), and index <-> key is arithmetic.
 *
 * Ownership: a part_plan copies what it keeps from the JSON. Pure functions,
 * any thread (a plan is read-only after part_plan_set_grid).
 */
#ifndef TERRANE_PARTITION_H
#define TERRANE_PARTITION_H

#include "dataversion.h"
#include "lib/jschema.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PART_KEY_MAX 128 /* the task contract's cap on partition.key */
#define PART_DIMS_MAX 4
#define PART_COUNT_MAX 1000000ULL /* partitions of one asset */
#define PART_LABEL "terrane.io/partition"
#define PART_A_KEY "terrane.io/partition-key"
#define PART_A_INDEX "terrane.io/partition-index"

typedef enum { PART_TILES, PART_TIME, PART_STATIC } part_kind;
typedef enum { PART_HOURLY, PART_DAILY, PART_WEEKLY, PART_MONTHLY } part_cadence;

/* The grid probe's answer (result.grid of operation grid). */
typedef struct {
    long width, height; /* full raster, pixels */
    long tile_width, tile_height;
    long cols, rows;
    int halo;
} part_grid;

typedef struct {
    long col, row, xoff, yoff, xsize, ysize; /* core window, no halo */
    int halo;
    long width, height;
} part_tile;

/* One partition. */
typedef struct {
    uint64_t index;
    char key[PART_KEY_MAX + 1];
    bool has_tile, has_window;
    part_tile tile;
    time_t win_start, win_end; /* UTC seconds, [start, end) */
    int tz_offset;             /* seconds east of UTC of the time dimension at win_start */
    char dim_key[PART_DIMS_MAX][PART_KEY_MAX + 1];
} part_info;

typedef struct part_plan part_plan;

/* Decodes spec.partitions (an array; NULL or absent: *out NULL, 0). 0;
 * CERR_INVALID with err naming the field (spec.partitions[1].time.start);
 * CERR_NOMEM. */
int part_plan_decode(const json_t *partitions, part_plan **out, jschema_error *err);
void part_plan_free(part_plan *p);
size_t part_plan_dims(const part_plan *p);
part_kind part_plan_dim_kind(const part_plan *p, size_t d);
bool part_plan_has_tiles(const part_plan *p);
bool part_plan_has_grid(const part_plan *p);
/* Sets the tile grid. CERR_INVALID when it is inconsistent (cols * tile
 * width does not cover width, ...) or makes the total exceed the cap. */
int part_plan_set_grid(part_plan *p, const part_grid *g);
/* Partitions that exist at now: 0 for tiles before the grid is known; an
 * open-ended time dimension counts the windows closed by now. */
uint64_t part_plan_count(const part_plan *p, time_t now);
/* Partition index i < part_plan_count(p, now). 0; CERR_INVALID otherwise. */
int part_plan_at(const part_plan *p, uint64_t index, time_t now, part_info *out);
/* The index of key. 0; CERR_NOTFOUND when no partition has that key (or it
 * does not exist yet at now). Used by the identity mapping. */
int part_plan_index_of(const part_plan *p, const char *key, time_t now, uint64_t *index);

/* H(asset data version, key): "sha256:" + hex(SHA-256("terrane.partition.v1\n"
 * asset_dv "\n" key)). 0; CERR_INVALID for a malformed asset_dv. */
int part_data_version(const char *asset_dv, const char *key, char out[DV_LEN + 1]);
/* <am>-<12 hex of asset dv>-p<12 hex of H(key)>-<attempt>, shortened as
 * podspec does when the materialization's name is long. 0; CERR_INVALID. */
int part_pod_name(const char *am_name, const char *asset_dv, const char *key, int attempt,
                  char *out, size_t size);
/* The value of label terrane.io/partition: the key with '/' and ':' as '.'
 * when it is a valid label value, else "h" + 16 hex of H(key). */
void part_label_value(const char *key, char out[64]);
/* Substitutes {date} (YYYY-MM-DD), {year}, {month}, {day}, {hour} (of the
 * window start in its timezone) and {key} in uri. A time placeholder in a
 * partition without a time dimension, an unknown {name} or an unbalanced
 * brace is CERR_INVALID; CERR_TOOBIG when out is too small. */
int part_substitute(const char *uri, const part_info *pi, char *out, size_t size);
/* The task's partition object (proto/schema/task.v1.json), a new reference. */
json_t *part_task_json(const part_info *pi);

/* Time helpers, exposed for the tests and the fuzz target. */
/* Parses YYYY-MM-DD[THH[:MM[:SS]]] as local time at offset tz (seconds east). */
int part_parse_local(const char *s, int tz, time_t *out);
/* "UTC", "Z" or "+HH:MM"/"-HH:MM" (at most 14 hours). */
int part_parse_tz(const char *s, int *out);

#endif
