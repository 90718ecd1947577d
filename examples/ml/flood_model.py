#!/usr/bin/env python3
"""A small flood-susceptibility model, run by Terrane as a container asset.

    flood_model.py train     features and labels -> model.pkl, metrics.json, metadata.json
    flood_model.py predict   model and features  -> risk.tif (probability per cell)

It knows nothing about S3 or Terrane's task: Terrane's fetch step has put every
input at $TERRANE_INPUT_<NAME> and its publish step takes whatever this writes
to $TERRANE_OUTPUT_DIR (GeoTIFFs become COGs with a STAC Item, metadata.json
lands in the Item's properties). Feature inputs are named by FEATURES (comma
list of input names, default "dem,slope"); train also reads the input "labels"
(1 = flooded, 0 = dry, anything else is ignored). Every raster is resampled to
the first feature's grid, so features may come from different assets.
"""

import json
import os
import pickle
import sys
import time

import numpy as np
from osgeo import gdal
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

gdal.UseExceptions()
BAD_INPUT = 65  # the contract's exit code for input that no retry can fix


def fail(msg, code=BAD_INPUT):
    print("flood_model: " + msg, file=sys.stderr)
    sys.exit(code)


def input_path(name):
    var = "TERRANE_INPUT_" + name.upper()
    path = os.environ.get(var)
    if not path or not os.path.exists(path):
        fail("input %s is missing ($%s=%r)" % (name, var, path))
    return path


def read_on_grid(path, ref):
    """Band 1 of path as float64 on ref's grid (NaN where nodata)."""
    src = gdal.Open(path)
    if ref is not None and (src.GetGeoTransform() != ref.GetGeoTransform()
                            or src.RasterXSize != ref.RasterXSize
                            or src.RasterYSize != ref.RasterYSize):
        gt = ref.GetGeoTransform()
        src = gdal.Warp("", src, format="MEM", dstSRS=ref.GetProjection(),
                        outputBounds=(gt[0], gt[3] + gt[5] * ref.RasterYSize,
                                      gt[0] + gt[1] * ref.RasterXSize, gt[3]),
                        width=ref.RasterXSize, height=ref.RasterYSize, resampleAlg="bilinear")
    band = src.GetRasterBand(1)
    a = band.ReadAsArray().astype(np.float64)
    nd = band.GetNoDataValue()
    if nd is not None:
        a[a == nd] = np.nan
    return a, src


def features():
    names = [n.strip() for n in os.environ.get("FEATURES", "dem,slope").split(",") if n.strip()]
    ref, stack = None, []
    for n in names:
        a, ds = read_on_grid(input_path(n), ref)
        ref = ref or ds
        stack.append(a)
    return names, np.stack(stack, axis=-1), ref


def out_dir():
    d = os.environ.get("TERRANE_OUTPUT_DIR", "/outputs")
    os.makedirs(d, exist_ok=True)
    return d


def train():
    t0 = time.time()
    names, x, ref = features()
    y, _ = read_on_grid(input_path("labels"), ref)
    ok = np.all(np.isfinite(x), axis=-1) & np.isin(y, (0, 1))
    xs, ys = x[ok], y[ok].astype(np.int8)
    if len(ys) < 20 or len(np.unique(ys)) < 2:
        fail("labels give %d usable cells of %d classes: need both classes" %
             (len(ys), len(np.unique(ys))))
    trees = int(os.environ.get("TREES", "50"))
    seed = int(os.environ.get("SEED", "7"))
    x_tr, x_te, y_tr, y_te = train_test_split(xs, ys, test_size=0.25, random_state=seed,
                                              stratify=ys)
    model = RandomForestClassifier(n_estimators=trees, max_depth=8, random_state=seed, n_jobs=1)
    model.fit(x_tr, y_tr)
    p = model.predict_proba(x_te)[:, 1]
    metrics = {"accuracy": round(float(accuracy_score(y_te, p >= 0.5)), 4),
               "rocAuc": round(float(roc_auc_score(y_te, p)), 4),
               "trainCells": int(len(y_tr)), "testCells": int(len(y_te)),
               "positiveFraction": round(float(ys.mean()), 4)}
    d = out_dir()
    with open(os.path.join(d, "model.pkl"), "wb") as f:
        pickle.dump({"features": names, "model": model}, f)
    with open(os.path.join(d, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    meta = {"ml:model": "RandomForestClassifier", "ml:features": names,
            "ml:parameters": {"trees": trees, "maxDepth": 8, "seed": seed},
            "ml:metrics": metrics, "ml:trainSeconds": round(time.time() - t0, 2),
            "ml:experiment": os.environ.get("EXPERIMENT_ID", "local")}
    with open(os.path.join(d, "metadata.json"), "w") as f:
        json.dump(meta, f, sort_keys=True)
    print(json.dumps({"trained": metrics}))


def predict():
    with open(input_path("model"), "rb") as f:
        bundle = pickle.load(f)
    os.environ.setdefault("FEATURES", ",".join(bundle["features"]))
    names, x, ref = features()
    if names != bundle["features"]:
        fail("the model was trained on %s, got %s" % (bundle["features"], names))
    ok = np.all(np.isfinite(x), axis=-1)
    risk = np.full(ok.shape, -9999.0, dtype=np.float32)
    if ok.any():
        risk[ok] = bundle["model"].predict_proba(x[ok])[:, 1].astype(np.float32)
    path = os.path.join(out_dir(), "risk.tif")
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(path, ref.RasterXSize, ref.RasterYSize, 1, gdal.GDT_Float32)
    ds.SetGeoTransform(ref.GetGeoTransform())
    ds.SetProjection(ref.GetProjection())
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(-9999.0)
    band.SetDescription("flood risk (probability)")
    band.WriteArray(risk)
    ds = None
    meta = {"ml:model": "RandomForestClassifier", "ml:features": names,
            "ml:meanRisk": round(float(risk[ok].mean()), 4) if ok.any() else None}
    with open(os.path.join(out_dir(), "metadata.json"), "w") as f:
        json.dump(meta, f, sort_keys=True)
    print(json.dumps({"predicted": path, "cells": int(ok.sum())}))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "train":
        train()
    elif cmd == "predict":
        predict()
    else:
        fail("usage: flood_model.py train|predict", 64)
