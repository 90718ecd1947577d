#!/usr/bin/python3
"""Runs a tiled asset the way the controller does, with the real worker and no controller.

    partition_flow.py run WORKER SRC_URI OP PARAMS_JSON --tile N [--halo H]
                      [--origin X,Y --cell DX,DY] [--assemble-params JSON]
                      [--parallel P] [--threads T] [--key KEY] [--out URI]
    partition_flow.py compare A.tif B.tif      exit 0 when every pixel, the size, geotransform,
                                               CRS and nodata are equal

`run` sends one grid task, then one task per tile (partition.tile from the grid's windows,
P worker processes at a time), then one assemble task over the tiles, and prints a JSON
object: the grid, the assemble result, and the wall time of each phase in seconds.
S3 comes from the environment (AWS_S3_ENDPOINT, ...), as for the worker.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time


def task(op, params, inputs, key, salt, out, partition=None):
    dv = hashlib.sha256(("%s|%s|%s|%s|%s" % (op, json.dumps(params, sort_keys=True),
                                             json.dumps(inputs), key, salt)).encode()).hexdigest()
    t = {"apiVersion": "terrane.io/v1", "kind": "Task", "namespace": "test", "assetKey": key,
         "dataVersion": "sha256:" + dv, "operation": op, "params": params, "inputs": inputs,
         "output": {"uri": out}, "attempt": 1}
    if partition:
        t["partition"] = partition
    return t


def start(worker, doc, tmp, name, threads):
    path = os.path.join(tmp, name + ".task.json")
    with open(path, "w") as fh:
        json.dump(doc, fh)
    env = dict(os.environ, TERRANE_TERMINATION_LOG=os.path.join(tmp, name + ".term"))
    if threads:
        env["TERRANE_THREADS"] = str(threads)
    out = open(os.path.join(tmp, name + ".result.json"), "w")
    err = open(os.path.join(tmp, name + ".log"), "w")
    return subprocess.Popen([worker, "run", "--task", path], stdout=out, stderr=err, env=env), name


def finish(proc, tmp):
    p, name = proc
    rc = p.wait()
    with open(os.path.join(tmp, name + ".result.json")) as fh:
        res = json.loads(fh.read() or "{}")
    if rc != 0:
        with open(os.path.join(tmp, name + ".log")) as fh:
            sys.exit("%s: exit %d: %s\n%s" % (name, rc, json.dumps(res), fh.read()[-2000:]))
    return res


def windows(g):
    for r in range(g["rows"]):
        for c in range(g["cols"]):
            x0 = max(0, g["offsetX"] + c * g["tileWidth"])
            y0 = max(0, g["offsetY"] + r * g["tileHeight"])
            x1 = min(g["width"], g["offsetX"] + (c + 1) * g["tileWidth"])
            y1 = min(g["height"], g["offsetY"] + (r + 1) * g["tileHeight"])
            yield r, c, x0, y0, x1 - x0, y1 - y0


def run(a):
    tmp = tempfile.mkdtemp(prefix="terrane-part.")
    params = json.loads(a.params)
    src = [{"name": "dem", "uri": a.src}]
    gp = {"halo": a.halo}
    if a.origin:
        gp["origin"] = [float(v) for v in a.origin.split(",")]
        gp["cellSize"] = [float(v) for v in a.cell.split(",")]
    else:
        gp["tileSize"] = [a.tile, a.tile]
    t0 = time.monotonic()
    g = finish(start(a.worker, task("grid", gp, src, a.key, "grid", a.out), tmp, "grid", a.threads),
               tmp)["grid"]
    t1 = time.monotonic()
    tiles, running, results = list(windows(g)), [], {}
    for i, (r, c, x, y, w, h) in enumerate(tiles):
        k = "r%03dc%03d" % (r, c)
        part = {"key": k, "index": i, "tile": {"col": c, "row": r, "xoff": x, "yoff": y, "xsize": w,
                                               "ysize": h, "halo": g["halo"], "width": g["width"],
                                               "height": g["height"]}}
        if len(running) >= a.parallel:
            pk, proc = running.pop(0)
            results[pk] = finish(proc, tmp)
        running.append((k, start(a.worker, task(a.op, params, src, a.key, k, a.out, part), tmp, k,
                                 a.threads)))
    for pk, proc in running:
        results[pk] = finish(proc, tmp)
    t2 = time.monotonic()
    ins = []
    for r, c, *_ in tiles:
        k = "r%03dc%03d" % (r, c)
        o = results[k]["output"]
        ins.append({"name": k, "uri": o["uri"], "checksum": o["checksum"], "stacItem": o["stacItem"]})
    ap = dict(json.loads(a.assemble_params), grid=g, collection=True)
    res = finish(start(a.worker, task("assemble", ap, ins, a.key, "assemble", a.out), tmp,
                       "assemble", a.threads), tmp)
    t3 = time.monotonic()
    print(json.dumps({"grid": g, "assemble": res, "tiles": [results["r%03dc%03d" % (r, c)]
                                                             for r, c, *_ in tiles],
                      "seconds": {"grid": round(t1 - t0, 3), "tiles": round(t2 - t1, 3),
                                  "assemble": round(t3 - t2, 3), "total": round(t3 - t0, 3)}}))


def compare(a, b):
    import numpy as np
    from osgeo import gdal
    da, db = gdal.Open(a), gdal.Open(b)
    if (da.RasterXSize, da.RasterYSize, da.RasterCount) != (db.RasterXSize, db.RasterYSize, db.RasterCount):
        sys.exit("size %dx%dx%d vs %dx%dx%d" % (da.RasterXSize, da.RasterYSize, da.RasterCount,
                                                db.RasterXSize, db.RasterYSize, db.RasterCount))
    if da.GetGeoTransform() != db.GetGeoTransform():
        sys.exit("geotransform %s vs %s" % (da.GetGeoTransform(), db.GetGeoTransform()))
    if da.GetProjection() != db.GetProjection():
        sys.exit("CRS differs")
    for i in range(1, da.RasterCount + 1):
        ba, bb = da.GetRasterBand(i), db.GetRasterBand(i)
        if ba.GetNoDataValue() != bb.GetNoDataValue() or ba.DataType != bb.DataType:
            sys.exit("band %d: nodata or type differs" % i)
        for y in range(0, da.RasterYSize, 1024):
            h = min(1024, da.RasterYSize - y)
            xa = ba.ReadAsArray(0, y, da.RasterXSize, h)
            xb = bb.ReadAsArray(0, y, da.RasterXSize, h)
            same = (xa == xb) | (np.isnan(xa) & np.isnan(xb)) if xa.dtype.kind == "f" else xa == xb
            if not same.all():
                yy, xx = np.argwhere(~same)[0]
                sys.exit("band %d: %d pixels differ, first at (%d, %d): %r vs %r" % (
                    i, int((~same).sum()), xx, y + yy, xa[yy, xx], xb[yy, xx]))
    print("%dx%d, %d band(s), every pixel equal" % (da.RasterXSize, da.RasterYSize, da.RasterCount))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["run"])
    p.add_argument("worker")
    p.add_argument("src")
    p.add_argument("op")
    p.add_argument("params")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--halo", type=int, default=0)
    p.add_argument("--origin")
    p.add_argument("--cell")
    p.add_argument("--assemble-params", default="{}")
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--key", default="test/tiled")
    p.add_argument("--out", default="s3://assets/out")
    run(p.parse_args())


if __name__ == "__main__":
    main()
