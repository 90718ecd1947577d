/*
 * grid.h - the tile grid of a partitioned asset (result.v1.json grid,
 * task.v1.json #/$defs/grid).
 *
 * grid_compute derives the grid from a raster's header and the grid
 * operation's params; grid_json renders it as the canonical compact JSON
 * whose SHA-256 is the digest; grid_decode reads one back (assemble's
 * params.grid) and checks the digest. No I/O here: op_grid.c opens the
 * raster, without reading a pixel.
 */
#ifndef TERRANE_GRID_H
#define TERRANE_GRID_H

#include <cJSON.h>

#define GRID_MAX_TILES 1000000
#define GRID_JSON_MAX 1024
#define GRID_NUM_MAX 32

typedef struct grid {
    int width, height, bands;
    char data_type[17];
    double gt[6];
    char crs[97]; /* AUTHORITY:CODE, wkt-sha256:<hex>, or "" */
    int tile_width, tile_height, cols, rows, halo;
    int offset_x, offset_y; /* where tile column / row 0 starts, <= 0 */
    char digest[65];
} grid;

/* Fills g's tiling from params (tileSize, or origin + cellSize; halo); the
 * raster fields must be set. Errors name the param. */
int grid_compute(const cJSON *params, grid *g);
/* The canonical JSON with the digest into buf (cap >= GRID_JSON_MAX); sets
 * g->digest. Returns 0 or -1 (does not fit). */
int grid_json(grid *g, char *buf, size_t cap);
/* The one spelling of a grid number (canonical JSON and result alike): the
 * shortest of %.15g %.16g %.17g that strtod reads back bit for bit. */
void grid_num(double v, char out[GRID_NUM_MAX]);
/* Decodes a grid object (field: "params.grid"), digest checked. */
int grid_decode(const cJSON *v, const char *field, grid *g);
/* Pixel window [x0, x1) x [y0, y1) of tile (col, row). */
void grid_tile(const grid *g, int col, int row, int *x0, int *y0, int *x1, int *y1);

struct task;
/* The grid task: opens the single input (header only), computes the grid of
 * t->params and renders it into json. */
int op_grid_compute(const struct task *t, char *json, size_t cap);

#endif
