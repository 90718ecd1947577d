/*
 * hydro.h - the hydrology algorithms on in-memory grids: depression filling,
 * D8 and D-infinity flow directions with flats resolved, flow accumulation,
 * Strahler-ordered streams, basins and catchments, TWI and HAND. The task
 * plumbing (reading, writing COGs and vectors) is op_hydro.c's; these
 * functions do no I/O, so unit tests drive them with small arrays.
 *
 * Grid: w x h cells in row-major order, index i = y * w + x, fewer than
 * 2^32 - 1 cells (indexes are uint32). Elevations are float with NaN for
 * nodata. Cell sizes are in metres: dy for all rows and dx[y] per row, so a
 * geographic grid has narrower cells towards the poles.
 *
 * Directions (hydro_dir): 0..7 = E, SE, S, SW, W, NW, N, NE (clockwise from
 * east, rows growing southwards), HYDRO_OUT for a cell with no downstream
 * cell in the grid (a sink, or after hydro_d8_normalize a cell draining off
 * the edge or into nodata), HYDRO_NODATA for nodata. A cell on the edge of
 * the grid or next to nodata with no lower valid neighbour drains out of the
 * grid: its direction points at the first off-grid or nodata neighbour in
 * that order, so it is an outlet.
 *
 * Memory, in bytes per cell besides the caller's arrays: breach 9 + the
 * search queue, then fill's; fill 0.125 (closed bits) + its queues: the
 * radix heap at most 32 bytes per cell queued in it plus 1 MiB (its buckets
 * give memory back as they empty), the depression FIFO and the slope stack
 * at most 8 bytes per cell at their peak (cells queued at once, typically
 * the flood's perimeter, not the grid); d8 4.125 (gradient mask and flooded
 * bits, only when the grid has flats) + the low edges (4 per edge cell) +
 * the largest flat's queues (its cells and a FIFO where a cell may be
 * queued once per neighbour: at most 72 bytes per cell of that flat);
 * accumulation 1 (in-degrees), D-inf accumulation 1 + 4 per queued cell;
 * streams 3; basins and watersheds 0.
 * Every function returns 0, or -1 with the error set (out of memory, a loop
 * in input directions). Called from the run thread only.
 */
#ifndef TERRANE_HYDRO_H
#define TERRANE_HYDRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HYDRO_OUT 8
#define HYDRO_NODATA 255
#define HYDRO_NO_LABEL 0u

typedef struct hydro_grid {
    size_t w, h;
    const double *dx; /* h entries: cell width in metres on each row */
    double dy;        /* cell height in metres */
} hydro_grid;

/* Asks the kernel to back the n bytes at p with huge pages (transparent
 * huge pages in madvise mode): the algorithms visit cells in elevation or
 * flow order, and on a whole-DEM array that makes TLB misses the main cost.
 * A hint only; errors are ignored. */
void hydro_hint_huge(void *p, size_t n);

/* Column and row offsets of direction d (0..7). */
extern const int hydro_dcol[8], hydro_drow[8];

/* Direction codes of the output encodings. */
typedef enum { HYDRO_ENC_ESRI, HYDRO_ENC_GRASS } hydro_encoding;
/* The code of d in enc: esri 1, 2, 4, ... 128 for E, SE, ... NE and 0 for
 * HYDRO_OUT; grass 1..8 counter-clockwise from NE (8 = E), negated when the
 * cell drains out of the grid (off_grid), 0 for HYDRO_OUT. */
int hydro_dir_encode(uint8_t d, bool off_grid, hydro_encoding enc);
/* The direction of code v in enc: 0..7, HYDRO_OUT, or -1 for a code that is
 * none of them. */
int hydro_dir_decode(double v, hydro_encoding enc);

/* Fills every depression of dem in place by priority-flood (Barnes, Lehman
 * and Mulla 2014, with the plain queue for cells inside depressions): each
 * cell is raised to the lowest level at which water leaves it towards an
 * edge or nodata. epsilon 0 leaves filled areas flat; epsilon > 0 raises
 * each filled cell epsilon above the one it drains to (at least to the next
 * representable float), so every cell has a downslope neighbour.
 * *raised counts the cells changed (may be NULL). */
int hydro_fill(const hydro_grid *g, float *dem, double epsilon, size_t *raised);

/* Breaches depressions in place (Lindsay 2016, least-cost breaching):
 * every pit, lowest first, is drained by a least-cost path (cost: how far
 * each cell must be cut below the pit) to the nearest cell lower than the
 * pit or on the edge / next to nodata, cutting the path into a strictly
 * descending channel (each cell one Float32 step below the previous).
 * max_length (cells, 0: unlimited) bounds a path; a pit left without one is
 * filled afterwards by hydro_fill with epsilon, so the result always
 * drains. *changed counts the cells changed (may be NULL). */
int hydro_breach(const hydro_grid *g, float *dem, unsigned max_length, double epsilon,
                 size_t *changed);

/* D8 directions of dem: the steepest descent (drop over distance) to one of
 * the 8 neighbours. Cells in flats (no lower neighbour, an equal one that
 * drains) are resolved by Barnes, Lehman and Mulla 2014: towards lower
 * terrain and away from higher terrain, so no cell of a drainable flat is
 * left without a direction. Cells with no way down (pits of an unfilled
 * DEM) are HYDRO_OUT. *sinks counts them (may be NULL). */
int hydro_d8(const hydro_grid *g, const float *dem, uint8_t *dir, size_t *sinks);

/* D-infinity directions (Tarboton 1997): the steepest downslope direction
 * over the 8 triangular facets, as an angle in radians counter-clockwise
 * from east in [0, 2 pi); NaN for nodata, -1 for HYDRO_OUT. A cell with no
 * downslope facet (in a flat) takes the angle of its D8 direction in d8
 * (from hydro_d8 on the same dem). */
int hydro_dinf(const hydro_grid *g, const float *dem, const uint8_t *d8, float *angle);

/* Rewrites directions whose target is off the grid or nodata as HYDRO_OUT,
 * so every other direction points at a valid cell. Returns the number of
 * cells changed. */
size_t hydro_d8_normalize(const hydro_grid *g, uint8_t *dir);

/* Flow accumulation over normalized D8 directions: on entry acc holds each
 * cell's own contribution (1 for cells, its area, a weight) and is ignored
 * where dir is HYDRO_NODATA; on return, the sum over the cell and everything
 * upstream of it. Fails when the directions contain a loop. */
int hydro_accumulate_d8(const hydro_grid *g, const uint8_t *dir, double *acc);
/* The same over D-infinity angles (hydro_dinf), each cell's flow split
 * between the two neighbours of its facet in proportion to the angle. */
int hydro_accumulate_dinf(const hydro_grid *g, const float *angle, double *acc);

/* Strahler order of the stream cells (acc >= threshold) over normalized
 * D8 directions: order[i] is 1.. on streams and 0 elsewhere. */
int hydro_strahler(const hydro_grid *g, const uint8_t *dir, const double *acc, double threshold,
                   uint8_t *order);

/* Stream segments between sources, confluences and outlets, in raster order
 * of their first cell: cells[0..n) from upstream to downstream (the last
 * cell is the confluence or outlet), with the order of the segment. */
typedef int (*hydro_segment_fn)(const uint32_t *cells, size_t n, unsigned order, void *arg);
int hydro_stream_segments(const hydro_grid *g, const uint8_t *dir, const uint8_t *order,
                          hydro_segment_fn fn, void *arg);

/* Every cell labelled with the basin of its outlet (a HYDRO_OUT cell),
 * outlets numbered 1.. in raster order; HYDRO_NO_LABEL for nodata.
 * *n_basins gets the count (may be NULL). */
int hydro_basins(const hydro_grid *g, const uint8_t *dir, uint32_t *label, uint32_t *n_basins);

/* Catchments: on entry label holds the pour points' labels (> 0) at their
 * cells and HYDRO_NO_LABEL elsewhere; on return every cell draining to a
 * pour point carries the label of the first one downstream of it (nested
 * catchments do not overlap), others HYDRO_NO_LABEL. */
int hydro_watershed(const hydro_grid *g, const uint8_t *dir, uint32_t *label);

/* The cell with the highest acc within radius cells of cell i (a square
 * window; ties keep the nearest, then the first in raster order). */
uint32_t hydro_snap(const hydro_grid *g, const double *acc, uint32_t i, unsigned radius);

/* Height above nearest drainage: dem minus the elevation of the first
 * stream cell (stream[i] != 0) downstream along normalized D8 directions;
 * NaN for cells that reach no stream. */
int hydro_hand(const hydro_grid *g, const float *dem, const uint8_t *dir, const uint8_t *stream,
               float *hand);

/* Topographic wetness index ln(a / tan b): a = acc (in cells) times the cell
 * area over the contour width (the mean of dx and dy), b the Horn slope of
 * dem; tan b is at least HYDRO_TWI_MIN_TAN so flats stay finite. NaN where
 * dem or acc is nodata. */
#define HYDRO_TWI_MIN_TAN 0.001
int hydro_twi(const hydro_grid *g, const float *dem, const double *acc, float *twi);

#endif
