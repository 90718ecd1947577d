/* Unit tests: the hydrology algorithms (hydro.h) on synthetic grids with
 * known answers (planes, a walled flat with one outlet, a Y-shaped stream,
 * nested catchments), and random DEMs against a brute-force fill and the
 * mass-conservation rules every D8 result must satisfy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "err.h"
#include "hydro.h"
#include "mem.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAXW 64

typedef struct grid {
    hydro_grid g;
    double dx[MAXW];
} grid;

static void grid_init(grid *gr, size_t w, size_t h, double dx, double dy)
{
    assert_true(h <= MAXW);
    for (size_t y = 0; y < h; y++)
        gr->dx[y] = dx;
    gr->g = (hydro_grid){.w = w, .h = h, .dx = gr->dx, .dy = dy};
}

static size_t at(const grid *gr, size_t row, size_t col)
{
    return row * gr->g.w + col;
}

static int group_setup(void **state)
{
    (void)state;
    mem_init();
    return 0;
}

/* ---- fill ------------------------------------------------------------------ */

/* The filled surface by definition: the least W >= Z with W = Z on the
 * border and every interior cell at most max(Z, lowest neighbour W),
 * iterated to its fixed point (Planchon and Darboux 2001). */
static void brute_fill(const grid *gr, const float *z, float *wout)
{
    size_t w = gr->g.w, h = gr->g.h;
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
            size_t i = y * w + x;
            bool border = x == 0 || y == 0 || x == w - 1 || y == h - 1;
            for (int d = 0; d < 8 && !border; d++)
                border = isnan(z[(y + hydro_drow[d]) * w + x + hydro_dcol[d]]);
            wout[i] = isnan(z[i]) ? NAN : border ? z[i] : INFINITY;
        }
    bool changed = true;
    while (changed) {
        changed = false;
        for (size_t y = 1; y + 1 < h; y++)
            for (size_t x = 1; x + 1 < w; x++) {
                size_t i = y * w + x;
                if (isnan(z[i])) continue;
                float m = INFINITY;
                for (int d = 0; d < 8; d++) {
                    float v = wout[(y + hydro_drow[d]) * w + x + hydro_dcol[d]];
                    if (!isnan(v) && v < m) m = v;
                }
                float nv = z[i] > m ? z[i] : m;
                if (nv < wout[i]) {
                    wout[i] = nv;
                    changed = true;
                }
            }
    }
}

static void random_dem(grid *gr, float *z, unsigned seed, bool holes)
{
    srand(seed);
    size_t n = gr->g.w * gr->g.h;
    for (size_t i = 0; i < n; i++) {
        z[i] = (float)(rand() % 50);
        if (holes && rand() % 17 == 0) z[i] = NAN;
    }
}

static void fill_matches_brute_force(void **state)
{
    (void)state;
    grid gr;
    float z[40 * 40], f[40 * 40], b[40 * 40];
    grid_init(&gr, 40, 37, 30, 30);
    for (unsigned seed = 1; seed <= 20; seed++) {
        random_dem(&gr, z, seed, seed % 2);
        memcpy(f, z, sizeof z);
        size_t raised = 0;
        assert_int_equal(hydro_fill(&gr.g, f, 0, &raised), 0);
        brute_fill(&gr, z, b);
        size_t changed = 0;
        for (size_t i = 0; i < 40 * 37; i++) {
            if (isnan(b[i])) {
                assert_true(isnan(f[i]));
                continue;
            }
            assert_float_equal(f[i], b[i], 0);
            changed += f[i] != z[i];
        }
        assert_int_equal(raised, changed);
        assert_true(raised > 0);
    }
}

static void fill_epsilon_drains_every_cell(void **state)
{
    (void)state;
    grid gr;
    float z[30 * 30], f0[30 * 30], fe[30 * 30];
    grid_init(&gr, 30, 30, 10, 10);
    for (unsigned seed = 1; seed <= 10; seed++) {
        random_dem(&gr, z, seed, seed % 2);
        memcpy(f0, z, sizeof z);
        memcpy(fe, z, sizeof z);
        assert_int_equal(hydro_fill(&gr.g, f0, 0, NULL), 0);
        assert_int_equal(hydro_fill(&gr.g, fe, 1e-3, NULL), 0);
        for (size_t y = 0; y < 30; y++)
            for (size_t x = 0; x < 30; x++) {
                size_t i = at(&gr, y, x);
                if (isnan(z[i])) continue;
                assert_true(fe[i] >= f0[i]);
                assert_true(fe[i] - f0[i] < 1e-3 * 900);
                /* A raised cell always has a strictly lower neighbour. */
                if (fe[i] == z[i]) continue;
                bool lower = false;
                for (int d = 0; d < 8; d++) {
                    size_t j = at(&gr, y + hydro_drow[d], x + hydro_dcol[d]);
                    if (!isnan(fe[j]) && fe[j] < fe[i]) lower = true;
                }
                assert_true(lower);
            }
    }
}

static void fill_nested_depressions(void **state)
{
    (void)state;
    /* Row 2 of a 7 x 5 grid between walls of 99, profile from the west
     * edge 3 | 2 1 4 0 3 | 9. The western pit fills to the outlet (3); the
     * eastern one spills over the barrier between them (4). */
    static const float row[] = {3, 2, 1, 4, 0, 3, 9};
    static const float want[] = {3, 3, 3, 4, 4, 4, 9};
    float z5[5 * 7];
    grid g5;
    grid_init(&g5, 7, 5, 1, 1);
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 7; x++)
            z5[at(&g5, y, x)] = y == 2 ? row[x] : 99;
    assert_int_equal(hydro_fill(&g5.g, z5, 0, NULL), 0);
    for (size_t x = 0; x < 7; x++)
        assert_float_equal(z5[at(&g5, 2, x)], want[x], 0);
}

/* ---- D8 -------------------------------------------------------------------- */

static void d8_plane_accumulation_and_basins(void **state)
{
    (void)state;
    grid gr;
    float z[6 * 5];
    uint8_t dir[6 * 5];
    double acc[6 * 5];
    uint32_t label[6 * 5], nb = 0;
    size_t sinks = 9;
    grid_init(&gr, 6, 5, 10, 10);
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 6; x++)
            z[at(&gr, y, x)] = (float)(100 - 3 * x);
    assert_int_equal(hydro_d8(&gr.g, z, dir, &sinks), 0);
    assert_int_equal(sinks, 0);
    for (size_t i = 0; i < 30; i++)
        assert_int_equal(dir[i], 0); /* all east */
    assert_int_equal(hydro_dir_encode(dir[5], true, HYDRO_ENC_GRASS), -8);
    assert_int_equal(hydro_d8_normalize(&gr.g, dir), 5); /* the east column drains off */
    for (size_t i = 0; i < 30; i++)
        acc[i] = 1;
    assert_int_equal(hydro_accumulate_d8(&gr.g, dir, acc), 0);
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 6; x++)
            assert_float_equal(acc[at(&gr, y, x)], x + 1, 0);
    assert_int_equal(hydro_basins(&gr.g, dir, label, &nb), 0);
    assert_int_equal(nb, 5);
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 6; x++)
            assert_int_equal(label[at(&gr, y, x)], y + 1);
}

static void d8_distance_weighting(void **state)
{
    (void)state;
    /* Cells 1 m wide and 10 m high: a drop of 1 east beats 5 south. */
    grid gr;
    float z[9] = {9, 9, 9, 9, 5, 4, 9, 0, 9};
    uint8_t dir[9];
    grid_init(&gr, 3, 3, 1, 10);
    assert_int_equal(hydro_d8(&gr.g, z, dir, NULL), 0);
    assert_int_equal(dir[4], 0);
    /* Square cells: south (drop 5 over 1) wins. */
    grid_init(&gr, 3, 3, 1, 1);
    assert_int_equal(hydro_d8(&gr.g, z, dir, NULL), 0);
    assert_int_equal(dir[4], 2);
}

static void d8_walled_flat_one_outlet(void **state)
{
    (void)state;
    /* 9 x 9: walls of 10 on the border, one notch of 1 in the east wall,
     * a 7 x 7 flat of 5 inside. Everything must reach the notch. */
    grid gr;
    float z[81];
    uint8_t dir[81];
    double acc[81];
    uint32_t label[81], nb = 0;
    size_t sinks = 9;
    grid_init(&gr, 9, 9, 1, 1);
    for (size_t y = 0; y < 9; y++)
        for (size_t x = 0; x < 9; x++)
            z[at(&gr, y, x)] = (x == 0 || y == 0 || x == 8 || y == 8) ? 10 : 5;
    z[at(&gr, 4, 8)] = 1;
    assert_int_equal(hydro_d8(&gr.g, z, dir, &sinks), 0);
    assert_int_equal(sinks, 0);
    hydro_d8_normalize(&gr.g, dir);
    for (size_t i = 0; i < 81; i++)
        acc[i] = 1;
    assert_int_equal(hydro_accumulate_d8(&gr.g, dir, acc), 0);
    assert_float_equal(acc[at(&gr, 4, 8)], 81, 0);
    assert_int_equal(hydro_basins(&gr.g, dir, label, &nb), 0);
    assert_int_equal(nb, 1);
    /* Away from higher terrain: cells next to the walls do not flow along
     * the wall when an inner cell is closer to the outlet; the flat's centre
     * row drains straight east. */
    for (size_t x = 1; x < 7; x++)
        assert_int_equal(dir[at(&gr, 4, x)], 0);
}

static void d8_unfilled_pit_is_sink(void **state)
{
    (void)state;
    grid gr;
    float z[25];
    uint8_t dir[25];
    size_t sinks = 0;
    grid_init(&gr, 5, 5, 1, 1);
    for (size_t i = 0; i < 25; i++)
        z[i] = 10;
    z[12] = 1;
    assert_int_equal(hydro_d8(&gr.g, z, dir, &sinks), 0);
    assert_int_equal(sinks, 1);
    assert_int_equal(dir[12], HYDRO_OUT);
    assert_int_equal(hydro_dir_encode(dir[12], false, HYDRO_ENC_ESRI), 0);
}

/* Mass conservation on random filled DEMs with nodata: every cell drains,
 * accumulation at each outlet equals its basin's cell count, and the
 * outlets' accumulations sum to the valid cells. */
static void d8_mass_conservation(void **state)
{
    (void)state;
    enum { W = 48, H = 41 };
    grid gr;
    static float z[W * H];
    static uint8_t dir[W * H];
    static double acc[W * H];
    static uint32_t label[W * H];
    grid_init(&gr, W, H, 25, 30);
    for (unsigned seed = 1; seed <= 12; seed++) {
        random_dem(&gr, z, seed, seed % 3 != 0);
        assert_int_equal(hydro_fill(&gr.g, z, 0, NULL), 0);
        size_t sinks = 1;
        assert_int_equal(hydro_d8(&gr.g, z, dir, &sinks), 0);
        assert_int_equal(sinks, 0);
        hydro_d8_normalize(&gr.g, dir);
        size_t valid = 0;
        for (size_t i = 0; i < W * H; i++) {
            acc[i] = 1;
            valid += dir[i] != HYDRO_NODATA;
        }
        assert_int_equal(hydro_accumulate_d8(&gr.g, dir, acc), 0);
        uint32_t nb = 0;
        assert_int_equal(hydro_basins(&gr.g, dir, label, &nb), 0);
        size_t *count = calloc(nb + 1, sizeof *count);
        double total = 0;
        for (size_t i = 0; i < W * H; i++) {
            if (dir[i] == HYDRO_NODATA) {
                assert_int_equal(label[i], 0);
                continue;
            }
            assert_true(label[i] >= 1 && label[i] <= nb);
            count[label[i]]++;
            if (dir[i] == HYDRO_OUT) total += acc[i];
        }
        assert_float_equal(total, (double)valid, 0);
        for (size_t i = 0; i < W * H; i++)
            if (dir[i] == HYDRO_OUT) assert_float_equal(acc[i], (double)count[label[i]], 0);
        free(count);
    }
}

static void accumulate_detects_loops(void **state)
{
    (void)state;
    grid gr;
    uint8_t dir[2] = {0, 4}; /* east, west: each drains into the other */
    double acc[2] = {1, 1};
    grid_init(&gr, 2, 1, 1, 1);
    err_clear();
    assert_int_equal(hydro_accumulate_d8(&gr.g, dir, acc), -1);
}

static void encodings_round_trip(void **state)
{
    (void)state;
    for (uint8_t d = 0; d < 8; d++) {
        assert_int_equal(
            hydro_dir_decode(hydro_dir_encode(d, false, HYDRO_ENC_ESRI), HYDRO_ENC_ESRI), d);
        assert_int_equal(
            hydro_dir_decode(hydro_dir_encode(d, true, HYDRO_ENC_GRASS), HYDRO_ENC_GRASS), d);
    }
    assert_int_equal(hydro_dir_encode(0, false, HYDRO_ENC_ESRI), 1);   /* E */
    assert_int_equal(hydro_dir_encode(7, false, HYDRO_ENC_ESRI), 128); /* NE */
    assert_int_equal(hydro_dir_encode(7, false, HYDRO_ENC_GRASS), 1);  /* NE */
    assert_int_equal(hydro_dir_encode(0, false, HYDRO_ENC_GRASS), 8);  /* E */
    assert_int_equal(hydro_dir_decode(0, HYDRO_ENC_ESRI), HYDRO_OUT);
    assert_int_equal(hydro_dir_decode(3, HYDRO_ENC_ESRI), -1);
    assert_int_equal(hydro_dir_decode(9, HYDRO_ENC_GRASS), -1);
    assert_int_equal(hydro_dir_decode(1.5, HYDRO_ENC_GRASS), -1);
}

/* ---- D-infinity --------------------------------------------------------------- */

static void dinf_planes(void **state)
{
    (void)state;
    grid gr;
    float z[25], ang[25];
    uint8_t d8[25];
    double acc[25];
    grid_init(&gr, 5, 5, 1, 1);
    /* Falling east: angle 0. */
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 5; x++)
            z[at(&gr, y, x)] = (float)(10 - x);
    assert_int_equal(hydro_d8(&gr.g, z, d8, NULL), 0);
    assert_int_equal(hydro_dinf(&gr.g, z, d8, ang), 0);
    assert_float_equal(ang[12], 0, 1e-9);
    for (size_t i = 0; i < 25; i++)
        acc[i] = 1;
    assert_int_equal(hydro_accumulate_dinf(&gr.g, ang, acc), 0);
    for (size_t x = 0; x < 5; x++)
        assert_float_equal(acc[at(&gr, 2, x)], x + 1, 1e-9);
    /* Falling north-east (rows grow southwards): pi / 4. */
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 5; x++)
            z[at(&gr, y, x)] = (float)(10 - x + y);
    assert_int_equal(hydro_d8(&gr.g, z, d8, NULL), 0);
    assert_int_equal(hydro_dinf(&gr.g, z, d8, ang), 0);
    assert_float_equal(ang[12], M_PI / 4, 1e-6);
    /* Falling north, twice as steep as east: atan(1/2) from north. */
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 5; x++)
            z[at(&gr, y, x)] = (float)(20 - x + 2.0 * y);
    assert_int_equal(hydro_dinf(&gr.g, z, d8, ang), 0);
    assert_float_equal(ang[12], M_PI / 2 - atan(0.5), 1e-6);
}

/* ---- streams ----------------------------------------------------------------- */

typedef struct seg_log {
    size_t n;
    uint32_t first[8], last[8], len[8];
    unsigned order[8];
} seg_log;

static int log_segment(const uint32_t *cells, size_t n, unsigned order, void *arg)
{
    seg_log *s = arg;
    assert_true(s->n < 8);
    s->first[s->n] = cells[0];
    s->last[s->n] = cells[n - 1];
    s->len[s->n] = (uint32_t)n;
    s->order[s->n] = order;
    s->n++;
    return 0;
}

static void strahler_y_junction(void **state)
{
    (void)state;
    /* 3 x 3: (0,0) SE and (0,2) SW join at (1,1), which flows S to (2,1)
     * and off the grid. Other cells nodata. */
    grid gr;
    uint8_t dir[9], order[9];
    double acc[9];
    seg_log log = {0};
    grid_init(&gr, 3, 3, 1, 1);
    memset(dir, HYDRO_NODATA, sizeof dir);
    dir[0] = 1;
    dir[2] = 3;
    dir[4] = 2;
    dir[7] = 2;
    hydro_d8_normalize(&gr.g, dir);
    assert_int_equal(dir[7], HYDRO_OUT);
    for (size_t i = 0; i < 9; i++)
        acc[i] = 1;
    assert_int_equal(hydro_accumulate_d8(&gr.g, dir, acc), 0);
    assert_float_equal(acc[7], 4, 0);
    assert_int_equal(hydro_strahler(&gr.g, dir, acc, 1, order), 0);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[2], 1);
    assert_int_equal(order[4], 2);
    assert_int_equal(order[7], 2);
    assert_int_equal(order[1], 0);
    assert_int_equal(hydro_stream_segments(&gr.g, dir, order, log_segment, &log), 0);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.first[0], 0);
    assert_int_equal(log.last[0], 4);
    assert_int_equal(log.order[0], 1);
    assert_int_equal(log.first[1], 2);
    assert_int_equal(log.last[1], 4);
    assert_int_equal(log.first[2], 4);
    assert_int_equal(log.last[2], 7);
    assert_int_equal(log.order[2], 2);
    /* A threshold of 3 keeps only the trunk: one order-1 segment. */
    memset(&log, 0, sizeof log);
    assert_int_equal(hydro_strahler(&gr.g, dir, acc, 3, order), 0);
    assert_int_equal(order[4], 1);
    assert_int_equal(order[0], 0);
    assert_int_equal(hydro_stream_segments(&gr.g, dir, order, log_segment, &log), 0);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.len[0], 2);
}

/* ---- catchments, HAND, TWI ----------------------------------------------------- */

static void watershed_nested_points(void **state)
{
    (void)state;
    grid gr;
    float z[25];
    uint8_t dir[25];
    double acc[25];
    uint32_t label[25];
    grid_init(&gr, 5, 5, 1, 1);
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 5; x++)
            z[at(&gr, y, x)] = (float)(10 - x);
    assert_int_equal(hydro_d8(&gr.g, z, dir, NULL), 0);
    hydro_d8_normalize(&gr.g, dir);
    memset(label, 0, sizeof label);
    label[at(&gr, 2, 3)] = 1;
    label[at(&gr, 2, 1)] = 2;
    assert_int_equal(hydro_watershed(&gr.g, dir, label), 0);
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 5; x++) {
            uint32_t want = y != 2 ? 0 : x <= 1 ? 2 : x <= 3 ? 1 : 0;
            assert_int_equal(label[at(&gr, y, x)], want);
        }
    /* Snapping within 1 cell of (1, 2): accumulation grows eastwards and
     * rows are equal, so the nearest of the easternmost cells, (1, 3). */
    for (size_t i = 0; i < 25; i++)
        acc[i] = 1;
    assert_int_equal(hydro_accumulate_d8(&gr.g, dir, acc), 0);
    assert_int_equal(hydro_snap(&gr.g, acc, (uint32_t)at(&gr, 1, 2), 1), at(&gr, 1, 3));
    assert_int_equal(hydro_snap(&gr.g, acc, (uint32_t)at(&gr, 1, 2), 0), at(&gr, 1, 2));
}

static void hand_and_twi_on_a_plane(void **state)
{
    (void)state;
    grid gr;
    float z[25], hand[25], twi[25];
    uint8_t dir[25], stream[25];
    double acc[25];
    grid_init(&gr, 5, 5, 10, 10);
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 5; x++)
            z[at(&gr, y, x)] = (float)(2 * (5 - x));
    assert_int_equal(hydro_d8(&gr.g, z, dir, NULL), 0);
    hydro_d8_normalize(&gr.g, dir);
    for (size_t i = 0; i < 25; i++)
        stream[i] = i % 5 == 3; /* column 3 */
    assert_int_equal(hydro_hand(&gr.g, z, dir, stream, hand), 0);
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 5; x++) {
            float h = hand[at(&gr, y, x)];
            if (x == 4)
                assert_true(isnan(h)); /* below the stream: reaches none */
            else
                assert_float_equal(h, 2.0 * (3 - (double)x), 1e-6);
        }
    for (size_t i = 0; i < 25; i++)
        acc[i] = 1;
    assert_int_equal(hydro_accumulate_d8(&gr.g, dir, acc), 0);
    assert_int_equal(hydro_twi(&gr.g, z, acc, twi), 0);
    /* Interior cell (2, 2): a = 3 * 100 / 10 = 30, tan b = 2 / 10. */
    assert_float_equal(twi[at(&gr, 2, 2)], log(30 / 0.2), 1e-5);
}

static void allocation_failures(void **state)
{
    (void)state;
    enum { W = 30, H = 30 };
    grid gr;
    static float z[W * H], f[W * H];
    static uint8_t dir[W * H];
    static double acc[W * H];
    grid_init(&gr, W, H, 1, 1);
    random_dem(&gr, z, 7, true);
    for (unsigned long k = 1; k < 40; k++) {
        memcpy(f, z, sizeof z);
        mem_fail_at(k);
        int rc = hydro_fill(&gr.g, f, 0, NULL);
        if (rc == 0) rc = hydro_d8(&gr.g, f, dir, NULL);
        if (rc == 0) {
            hydro_d8_normalize(&gr.g, dir);
            for (size_t i = 0; i < W * H; i++)
                acc[i] = 1;
            rc = hydro_accumulate_d8(&gr.g, dir, acc);
        }
        mem_fail_at(0);
        if (rc == 0) break;
        assert_int_equal(rc, -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fill_matches_brute_force),
        cmocka_unit_test(fill_epsilon_drains_every_cell),
        cmocka_unit_test(fill_nested_depressions),
        cmocka_unit_test(d8_plane_accumulation_and_basins),
        cmocka_unit_test(d8_distance_weighting),
        cmocka_unit_test(d8_walled_flat_one_outlet),
        cmocka_unit_test(d8_unfilled_pit_is_sink),
        cmocka_unit_test(d8_mass_conservation),
        cmocka_unit_test(accumulate_detects_loops),
        cmocka_unit_test(encodings_round_trip),
        cmocka_unit_test(dinf_planes),
        cmocka_unit_test(strahler_y_junction),
        cmocka_unit_test(watershed_nested_points),
        cmocka_unit_test(hand_and_twi_on_a_plane),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
