#!/usr/bin/python3
"""Checks of test_hydrology.sh, with GDAL's Python bindings and numpy.

    hydrology_check.py pour-point ACC OUT.geojson
        writes a pour point one cell west of the cell of highest
        accumulation at least 3 cells from the edge, in EPSG:4326, and
        prints "X Y SNAP": the cell the worker must snap it to (the highest
        accumulation within 2 cells, nearest first, then raster order) in
        the raster's CRS, and the snap distance in map units.
    hydrology_check.py compare TAG ... (see test_hydrology.sh)
        runs every comparison and rule; prints the report rows; exits 1
        with the reasons on stderr when a rule does not hold.
"""
import json
import math
import sys

import numpy as np
from osgeo import gdal, ogr, osr

gdal.UseExceptions()
R = 6371008.8
# Our D8 order E, SE, S, SW, W, NW, N, NE as (row, col) steps.
STEPS = [(0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1)]
ESRI = {1 << k: STEPS[k] for k in range(8)}
GRASS = {1: (-1, 1), 2: (-1, 0), 3: (-1, -1), 4: (0, -1), 5: (1, -1), 6: (1, 0), 7: (1, 1), 8: (0, 1)}


def read(path):
    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    a = band.ReadAsArray().astype(np.float64)
    nd = band.GetNoDataValue()
    valid = np.isfinite(a) if nd is None else (a != nd) & np.isfinite(a)
    return a, valid, ds.GetGeoTransform(), ds.GetProjection()


def srs_of(wkt):
    s = osr.SpatialReference()
    s.ImportFromWkt(wkt)
    s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return s


def pour_point(acc_path, out_path):
    acc, valid, gt, wkt = read(acc_path)
    h, w = acc.shape
    inner = np.full(acc.shape, -1.0)
    inner[3:h - 3, 3:w - 3] = np.where(valid, acc, -1)[3:h - 3, 3:w - 3]
    r, c = np.unravel_index(int(np.argmax(inner)), acc.shape)
    r0, c0 = int(r), int(c) - 1
    best, best_a, best_d = (r0, c0), acc[r0, c0], 0
    for dr in range(-2, 3):
        for dc in range(-2, 3):
            rr, cc = r0 + dr, c0 + dc
            a, d = acc[rr, cc], dr * dr + dc * dc
            if not valid[rr, cc]:
                continue
            if a > best_a or (a == best_a and d < best_d) or (
                    a == best_a and d == best_d and (rr, cc) < best):
                best, best_a, best_d = (rr, cc), a, d
    # ties at equal distance keep the first in raster order, as hydro_snap
    x = gt[0] + (c0 + 0.5) * gt[1]
    y = gt[3] + (r0 + 0.5) * gt[5]
    src, wgs = srs_of(wkt), osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lon, lat, _ = osr.CoordinateTransformation(src, wgs).TransformPoint(x, y)
    json.dump({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"name": "gauge"},
        "geometry": {"type": "Point", "coordinates": [lon, lat]}}]}, open(out_path, "w"))
    sx = gt[0] + (best[1] + 0.5) * gt[1]
    sy = gt[3] + (best[0] + 0.5) * gt[5]
    print("%.10f %.10f %.10f" % (sx, sy, 2 * abs(gt[1])))


def cell_sizes(gt, wkt, h):
    s = srs_of(wkt)
    rows = np.arange(h)
    if s.IsGeographic():
        lat = np.radians(gt[3] + (rows + 0.5) * gt[5])
        dx = R * np.cos(lat) * math.radians(abs(gt[1]))
        dy = R * math.radians(abs(gt[5]))
    else:
        u = s.GetLinearUnits()
        dx, dy = np.full(h, abs(gt[1]) * u), abs(gt[5]) * u
    return dx, dy


def rasterize(path, like_gt, like_wkt, shape):
    ds = gdal.GetDriverByName("MEM").Create("", shape[1], shape[0], 1, gdal.GDT_UInt32)
    ds.SetGeoTransform(like_gt)
    ds.SetProjection(like_wkt)
    vec = ogr.Open(path)
    gdal.RasterizeLayer(ds, [1], vec.GetLayer(0), options=["ATTRIBUTE=id"])
    return ds.GetRasterBand(1).ReadAsArray().astype(np.float64), vec


class Report:
    def __init__(self, tag):
        self.tag, self.problems = tag, []

    def row(self, what, text):
        print("| %s | %s | %s |" % (self.tag, what, text))

    def need(self, cond, why):
        if not cond:
            self.problems.append(why)


def share(n, total):
    return "%d of %d cells differ (%.2f%%)" % (n, total, 100.0 * n / max(total, 1))


def targets(codes, valid, table):
    """Downstream (row, col) of every cell, -1 where it leaves the grid."""
    h, w = codes.shape
    tr = np.full(codes.shape, -1)
    tc = np.full(codes.shape, -1)
    rows, cols = np.indices(codes.shape)
    for code, (dr, dc) in table.items():
        m = valid & (np.abs(codes) == code)
        r, c = rows[m] + dr, cols[m] + dc
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        ok = np.zeros(r.shape, bool)
        ok[inside] = valid[r[inside], c[inside]]
        idx = np.flatnonzero(m)
        tr.flat[idx[ok]] = r[ok]
        tc.flat[idx[ok]] = c[ok]
    return tr, tc


def compare(argv):
    (tag, dem_p, filled_p, eps_p, d8_p, d8g_p, acc_p, accg_p, accd_p, basins_p, basins_gj,
     streams_p, streams_gj, threshold, ws_p, ws_gj, twi_p, hand_p, ref) = argv
    rep = Report(tag)
    dem, dvalid, gt, wkt = read(dem_p)
    n_valid = int(dvalid.sum())
    h, w = dem.shape
    filled, fvalid, _, _ = read(filled_p)
    rep.need((fvalid == dvalid).all(), "fill changed the nodata cells")
    rep.need((filled[dvalid] >= dem[dvalid]).all(), "fill lowered a cell")

    # fill vs SAGA Wang & Liu (the same priority-flood) and GRASS r.fill.dir
    saga, svalid, _, _ = read(ref + "-saga-fill.sdat")
    m = dvalid & svalid
    diff = int((np.abs(filled - saga) > 1e-3)[m].sum())
    rep.row("fill vs SAGA Fill Sinks XXL (Wang & Liu, min. slope 0)", share(diff, int(m.sum())))
    rep.need(diff == 0, "fill differs from SAGA's Wang & Liu in %d cells" % diff)
    rep.need(int(m.sum()) == n_valid, "SAGA's fill has other nodata cells")
    grass, gvalid, _, _ = read(ref + "-grass-fill.tif")
    m = dvalid & gvalid
    diff = int((np.abs(filled - grass) > 1e-3)[m].sum())
    raised = int((filled != dem)[dvalid].sum())
    graised = int((grass != dem)[m].sum())
    rep.row("fill vs GRASS r.fill.dir", share(diff, int(m.sum())) +
            "; raised: ours %d, r.fill.dir %d" % (raised, graised))

    # D8 on the epsilon-filled DEM vs r.watershed -s
    eps, _, _, _ = read(eps_p)
    ours, ovalid, _, _ = read(d8g_p)
    gd, gdvalid, _, _ = read(ref + "-grass-drain.tif")
    m = ovalid & gdvalid
    differ = m & (np.abs(ours) != np.abs(gd))
    dx, dy = cell_sizes(gt, wkt, h)
    steeper = 0
    worse = 0
    for r, c in zip(*np.nonzero(differ)):
        if r in (0, h - 1) or c in (0, w - 1) or ours[r, c] == 0 or gd[r, c] == 0:
            continue

        def slope(code):
            dr, dc = GRASS[abs(int(code))]
            rr, cc = r + dr, c + dc
            if not (0 <= rr < h and 0 <= cc < w) or not ovalid[rr, cc]:
                return None
            dist = math.hypot(dr * dy, dc * dx[r])
            return (eps[r, c] - eps[rr, cc]) / dist

        so, sg = slope(ours[r, c]), slope(gd[r, c])
        if so is None or sg is None:
            continue
        if so > sg + 1e-12:
            steeper += 1
        elif so < sg - 1e-9:
            worse += 1
    rep.row("D8 vs GRASS r.watershed -s (epsilon-filled DEM)",
            share(int(differ.sum()), int(m.sum())) +
            "; interior: ours steeper in %d, equal slope (tie) in the rest" % steeper)
    rep.need(worse == 0, "%d cells where r.watershed's direction is steeper than ours" % worse)

    # accumulation vs SAGA D8 and r.watershed
    accg, _, _, _ = read(accg_p)
    sacc, savalid, _, _ = read(ref + "-saga-acc.sdat")
    m = ovalid & savalid
    rep.row("accumulation vs SAGA Flow Accumulation (D8)",
            share(int((accg != sacc)[m].sum()), int(m.sum())))
    gacc, gavalid, _, _ = read(ref + "-grass-acc.tif")
    m = ovalid & gavalid
    rep.row("accumulation vs GRASS r.watershed -s",
            share(int((accg != np.abs(gacc))[m].sum()), int(m.sum())))

    # mass rules on basins
    d8, d8valid, _, _ = read(d8_p)
    acc, avalid, _, _ = read(acc_p)
    basins, bvalid, _, _ = read(basins_p)
    rep.need((d8valid == dvalid).all() and (avalid == dvalid).all(), "nodata cells moved")
    rep.need((basins[dvalid] > 0).all() and not bvalid[~dvalid].any(),
             "a valid cell outside every basin, or a nodata cell in one")
    tr, _ = targets(d8, d8valid, ESRI)
    outlet = d8valid & (tr < 0)
    labels = basins[dvalid].astype(np.int64)
    counts = np.bincount(labels)
    out_labels = basins[outlet].astype(np.int64)
    rep.need(len(np.unique(out_labels)) == len(out_labels), "two outlets in one basin")
    bad = int((acc[outlet] != counts[out_labels]).sum())
    rep.need(bad == 0, "%d outlets whose accumulation is not their basin's cell count" % bad)
    rep.need(acc[outlet].sum() == n_valid, "outlets sum to %d, not %d valid cells" %
             (acc[outlet].sum(), n_valid))
    rep.need(int((d8[dvalid] == 0).sum()) == 0, "cells without a direction on the filled DEM")
    rep.row("mass conservation", "%d basins; every outlet's accumulation equals its basin's "
            "cell count; outlets sum to the %d valid cells" % (len(out_labels), n_valid))
    poly, vec = rasterize(basins_gj, gt, wkt, dem.shape)
    rep.need((poly == np.where(bvalid, basins, 0)).all(), "basin polygons do not rasterize back "
             "to the basin raster (%d cells)" % int((poly != np.where(bvalid, basins, 0)).sum()))
    layer = vec.GetLayer(0)
    rep.need(layer.GetFeatureCount() == len(out_labels), "%d basin polygons for %d basins" %
             (layer.GetFeatureCount(), len(out_labels)))
    area = sum(f.GetField("area") for f in layer)
    want = float((dvalid * (dx[:, None] * dy)).sum())
    rep.need(abs(area - want) <= 1e-6 * want, "basin areas sum to %g, not %g" % (area, want))

    # D-inf: every valid cell at least 1, nothing above the valid cells
    accd, advalid, _, _ = read(accd_p)
    rep.need((advalid == dvalid).all(), "D-inf accumulation nodata cells moved")
    rep.need((accd[dvalid] >= 1 - 1e-9).all() and accd[dvalid].max() <= n_valid + 1e-6,
             "D-inf accumulation out of [1, valid cells]")

    # catchment vs r.water.outlet on our directions
    ws, wvalid, _, _ = read(ws_p)
    go, govalid, _, _ = read(ref + "-grass-outlet.tif")
    ours_c, grass_c = wvalid & (ws == 1), govalid & (go == 1)
    n_diff = int((ours_c != grass_c).sum())
    rep.row("catchment vs GRASS r.water.outlet (same directions)",
            "%d cells, %s" % (int(ours_c.sum()), share(n_diff, h * w)))
    rep.need(n_diff == 0, "catchment differs from r.water.outlet in %d cells" % n_diff)
    rep.need(ours_c.sum() > 1, "catchment of a single cell")
    poly, ws_vec = rasterize(ws_gj, gt, wkt, dem.shape)
    rep.need((poly == np.where(wvalid, ws, 0)).all(), "catchment polygon does not rasterize back")

    # streams
    st, _, _, _ = read(streams_p)
    is_stream = (st > 0) & np.isfinite(st)
    want_s = dvalid & (acc >= float(threshold))
    rep.need((is_stream == want_s).all(), "stream cells are not the cells above the threshold")
    lines_ds = ogr.Open(streams_gj)
    lines = lines_ds.GetLayer(0)
    orders = [f.GetField("order") for f in lines]
    rep.need(len(orders) > 0 and min(orders) >= 1 and max(orders) == int(st[is_stream].max()),
             "stream lines' orders do not match the raster")
    rep.row("streams (threshold %s cells)" % threshold, "%d cells, %d segments, Strahler order "
            "up to %d" % (int(is_stream.sum()), len(orders), max(orders) if orders else 0))

    # HAND and TWI
    hand, hvalid, _, _ = read(hand_p)
    rep.need((hand[is_stream] == 0).all(), "HAND is not 0 on stream cells")
    rep.need((hand[hvalid] >= -1e-3).all(), "negative HAND on a filled DEM")
    twi, tvalid, _, _ = read(twi_p)
    rep.need((tvalid == dvalid).all(), "TWI missing where the DEM is valid")
    rep.row("hand, twi", "HAND 0 on streams, max %.1f; TWI %.2f to %.2f" %
            (hand[hvalid].max(), twi[tvalid].min(), twi[tvalid].max()))
    if rep.problems:
        sys.stderr.write("; ".join(rep.problems) + "\n")
        sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "pour-point":
        pour_point(sys.argv[2], sys.argv[3])
    else:
        compare(sys.argv[2:])
