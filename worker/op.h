/*
 * op.h - the table of worker operations.
 *
 * Each operation is {name, params, validate, run} in its own op_<name>.c.
 * task_validate checks params against the op's spec (plus the COG options
 * when cog_options is set), then calls validate for cross-field and input
 * checks; neither may do I/O. run reads inputs (input.h), writes its files
 * into ctx->scratch and lists them in out; publishing is not its job.
 */
#ifndef TERRANE_OP_H
#define TERRANE_OP_H

#include "params.h"
#include "task.h"

#include <gdal.h>
#include <stdbool.h>
#include <stddef.h>

#define OP_MAX_OUTPUTS 4

typedef struct op_output {
    char *path;             /* local file in scratch, owned (mem_free) */
    const char *name;       /* object name under the data-version prefix: "asset.tif" */
    const char *media_type; /* IANA media type for STAC and the manifest */
    const char *role;       /* STAC asset role: "data" */
    bool is_cog;            /* a raster the publisher describes (proj extension) */
} op_output;

typedef struct op_result {
    op_output files[OP_MAX_OUTPUTS]; /* files[0] is the primary output */
    size_t n_files;
} op_result;

typedef struct op_ctx {
    const task *task;
    const char *scratch;       /* private directory for this run, removed afterwards */
    GDALProgressFunc progress; /* log_progress */
    void *progress_arg;        /* stage name */
} op_ctx;

typedef struct op_def {
    const char *name;
    const param_spec *params; /* terminated by {NULL} */
    bool cog_options;         /* also accepts the shared COG options (cog.h) */
    bool tiles;               /* computes a partition.tile window (partition.h) */
    unsigned max_inputs;      /* 0: TASK_MAX_INPUTS */
    int (*validate)(const task *t);
    int (*run)(const op_ctx *ctx, op_result *out);
} op_def;

/* The operation called name, or NULL. */
const op_def *op_find(const char *name);
/* NULL-terminated list of all operations. */
const op_def *const *op_all(void);

/* Adds a file to out (path is copied). Returns 0, or -1 when full / OOM. */
int op_result_add(op_result *out, const char *path, const char *name, const char *media_type,
                  const char *role, bool is_cog);
void op_result_free(op_result *out);

/* Helpers shared by operations. */
/* The single input not named in the params listed in exclude (NULL-terminated);
 * sets an error naming "inputs" when there is not exactly one. */
const task_input *op_single_input(const task *t, const char *const *exclude_params);

/* Media types. */
#define MEDIA_COG "image/tiff; application=geotiff; profile=cloud-optimized"
#define MEDIA_GEOJSON "application/geo+json"
#define MEDIA_CSV "text/csv"

/* Defined in op_<name>.c */
extern const op_def op_cog;
extern const op_def op_warp;
extern const op_def op_mosaic;
extern const op_def op_terrain;
extern const op_def op_calc;
extern const op_def op_zonal_stats;
/* op_hydro.c */
extern const op_def op_fill;
extern const op_def op_flow_direction;
extern const op_def op_flow_accumulation;
extern const op_def op_streams;
extern const op_def op_watershed;
extern const op_def op_basins;
extern const op_def op_twi;
extern const op_def op_hand;
extern const op_def op_container;
extern const op_def op_observe; /* observe.c; run by `terrane-worker observe` */
/* op_grid.c: run by `terrane-worker run`, publishes nothing (grid.h) */
extern const op_def op_grid;
/* op_assemble.c */
extern const op_def op_assemble;
extern const op_def op_collection;

#endif
