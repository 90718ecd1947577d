#!/usr/bin/env bash
# Integration: calc and zonal-stats run by the real terrane-worker against a
# real S3 server (s3rver on loopback) on the sample data, each result checked
# against an independent computation in Python with GDAL's bindings:
#   - NDVI of the Landsat 7 sample, every pixel, and a valid COG;
#   - nodata through where(..., nodata) with a Byte output, integer rounding
#     and saturation short of the nodata value, the DEM's own nodata cells;
#   - calc failures: expression errors (exit 65, field params.expression, the
#     byte offset), a band that does not exist, nodata outside the output
#     type, inputs in different CRSs;
#   - zonal statistics of the DEM per Luxembourg commune (NAME_2): every
#     statistic of every commune in the CSV and the GeoJSON, against cells
#     rasterized by gdal.RasterizeLayer on the DEM's full grid;
#   - the zonal-stats failures (missing key, point zones, no overlap);
#   - the same task run twice (into another prefix) gives the same checksum.
. "$(dirname "$0")/../lib/common.sh"

[ -x "$ROOT/node_modules/.bin/s3rver" ] || skip "s3rver missing (run scripts/deps.sh)"

s3_start raw assets
s3_put "$SAMPLES/L7_ETMs.tif" s3://raw/l7.tif
s3_put "$SAMPLES/elev.tif" s3://raw/elev.tif
for ext in shp shx dbf prj; do s3_put "$SAMPLES/lux.$ext" "s3://raw/lux.$ext"; done

# Point zones, for the "zones must be polygons" failure.
/usr/bin/python3 - "$TMP/points.geojson" <<'PY'
import json, sys
json.dump({"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"NAME_2": "p"},
     "geometry": {"type": "Point", "coordinates": [6.1, 49.8]}}]}, open(sys.argv[1], "w"))
PY
s3_put "$TMP/points.geojson" s3://raw/points.geojson

# The independent computations, in Python with GDAL's bindings.
cat >"$TMP/ndvi.py" <<'PY'
# NDVI of every pixel from the raw bands, rounded to Float32 like the
# output; b4 + b3 == 0 must be nodata (-9999).
import struct, sys
from osgeo import gdal
src, dst = gdal.Open(sys.argv[1]), gdal.Open(sys.argv[2])
w, h = src.RasterXSize, src.RasterYSize
assert (dst.RasterXSize, dst.RasterYSize) == (w, h), "size"
assert dst.GetGeoTransform() == src.GetGeoTransform(), "geotransform"
assert dst.GetSpatialRef().IsSame(src.GetSpatialRef()), "crs"
band = dst.GetRasterBand(1)
assert gdal.GetDataTypeName(band.DataType) == "Float32", "type"
assert band.GetNoDataValue() == -9999, "nodata %r" % band.GetNoDataValue()
n = w * h
b3 = struct.unpack("%dB" % n, src.GetRasterBand(3).ReadRaster())
b4 = struct.unpack("%dB" % n, src.GetRasterBand(4).ReadRaster())
got = struct.unpack("%df" % n, band.ReadRaster())
f32 = lambda v: struct.unpack("f", struct.pack("f", v))[0]
bad = zeros = 0
for i in range(n):
    s = b4[i] + b3[i]
    want = -9999.0 if s == 0 else f32((b4[i] - b3[i]) / s)
    zeros += s == 0
    if got[i] != want:
        bad += 1
        if bad < 5: print("pixel %d: got %r want %r" % (i, got[i], want))
assert bad == 0, "%d of %d pixels differ" % (bad, n)
print("%d pixels equal (%d nodata)" % (n, zeros))
PY
cat >"$TMP/masked.py" <<'PY'
import struct, sys
from osgeo import gdal
src, dst = gdal.Open(sys.argv[1]), gdal.Open(sys.argv[2])
n = src.RasterXSize * src.RasterYSize
band = dst.GetRasterBand(1)
assert gdal.GetDataTypeName(band.DataType) == "Byte"
assert band.GetNoDataValue() == 255, "nodata %r" % band.GetNoDataValue()
b1 = struct.unpack("%dB" % n, src.GetRasterBand(1).ReadRaster())
got = struct.unpack("%dB" % n, band.ReadRaster())
want = [v - 100 if v > 100 else 255 for v in b1]
bad = sum(1 for a, b in zip(got, want) if a != b)
assert bad == 0, "%d pixels differ" % bad
print("%d pixels equal, %d nodata" % (n, want.count(255)))
PY
cat >"$TMP/saturate.py" <<'PY'
# l7[1] * 4 - 0.5 as Byte: rounded half away from zero, saturated at 254
# because 255 is the default nodata.
import math, struct, sys
from osgeo import gdal
src, dst = gdal.Open(sys.argv[1]), gdal.Open(sys.argv[2])
n = src.RasterXSize * src.RasterYSize
band = dst.GetRasterBand(1)
assert band.GetNoDataValue() == 255, "nodata %r" % band.GetNoDataValue()
b1 = struct.unpack("%dB" % n, src.GetRasterBand(1).ReadRaster())
got = struct.unpack("%dB" % n, band.ReadRaster())
rnd = lambda x: math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)
want = [min(max(rnd(v * 4 - 0.5), 0), 254) for v in b1]
bad = sum(1 for a, b in zip(got, want) if a != b)
assert bad == 0, "%d pixels differ" % bad
print("%d pixels equal, %d saturated at 254" % (n, want.count(254)))
PY
cat >"$TMP/elev.py" <<'PY'
# dem * 0.3048 as Float64 with nodata -1: the DEM's nodata cells, and only
# they, are -1.
import struct, sys
from osgeo import gdal
src, dst = gdal.Open(sys.argv[1]), gdal.Open(sys.argv[2])
n = src.RasterXSize * src.RasterYSize
sb, band = src.GetRasterBand(1), dst.GetRasterBand(1)
assert band.GetNoDataValue() == -1, "nodata %r" % band.GetNoDataValue()
nd = sb.GetNoDataValue()
dem = struct.unpack("%dh" % n, sb.ReadRaster())
got = struct.unpack("%dd" % n, band.ReadRaster())
want = [-1.0 if v == nd else v * 0.3048 for v in dem]
bad = sum(1 for a, b in zip(got, want) if a != b)
assert bad == 0, "%d pixels differ" % bad
print("%d pixels equal, %d nodata" % (n, want.count(-1.0)))
PY
cat >"$TMP/zonal.py" <<'PY'
import csv, json, math, struct, sys
from osgeo import gdal, ogr
gdal.UseExceptions()
dem = gdal.Open(sys.argv[1])
w, h = dem.RasterXSize, dem.RasterYSize
band = dem.GetRasterBand(1)
nodata = band.GetNoDataValue()
vals = struct.unpack("%dh" % (w * h), band.ReadRaster(buf_type=gdal.GDT_Int16))
zones = ogr.Open(sys.argv[2])
layer = zones.GetLayer(0)
assert layer.GetSpatialRef().IsSame(dem.GetSpatialRef()), "sample CRSs differ"
ref = []
for feat in layer:
    # One feature alone burnt into a mask over the DEM's full grid: GDAL's
    # default rule, cell centres.
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
    mem.SetGeoTransform(dem.GetGeoTransform())
    mem.SetProjection(dem.GetProjection())
    mds = ogr.GetDriverByName("Memory").CreateDataSource("m")  # must outlive ml
    ml = mds.CreateLayer("z", layer.GetSpatialRef(), ogr.wkbPolygon)
    f = ogr.Feature(ml.GetLayerDefn()); f.SetGeometry(feat.GetGeometryRef().Clone())
    ml.CreateFeature(f)
    gdal.RasterizeLayer(mem, [1], ml, burn_values=[1])
    sel = mem.GetRasterBand(1).ReadRaster()
    cells = [float(vals[i]) for i in range(w * h) if sel[i] and vals[i] != nodata]
    n = len(cells)
    mean = math.fsum(cells) / n if n else None
    ref.append({"NAME_2": feat.GetField("NAME_2"), "count": n,
                "min": min(cells) if n else None, "max": max(cells) if n else None,
                "mean": mean, "sum": math.fsum(cells) if n else None,
                "stddev": math.sqrt(math.fsum((c - mean) ** 2 for c in cells) / n) if n else None})

def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b)) or abs(a - b) < 1e-12

stats = ["count", "min", "max", "mean", "sum", "stddev"]
gj = json.load(open(sys.argv[3]))
assert gj["type"] == "FeatureCollection"
feats = gj["features"]
assert len(feats) == len(ref), "%d features, want %d" % (len(feats), len(ref))
rows = list(csv.reader(open(sys.argv[4], newline="")))
assert rows[0] == ["NAME_2"] + stats, "csv header %r" % rows[0]
assert len(rows) == len(ref) + 1, "csv rows"
for i, r in enumerate(ref):
    p = feats[i]["properties"]
    assert list(p) == ["NAME_2"] + stats, "properties %r" % list(p)
    assert p["NAME_2"] == r["NAME_2"], "order: %r vs %r" % (p["NAME_2"], r["NAME_2"])
    assert feats[i]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    row = rows[i + 1]
    assert row[0] == r["NAME_2"]
    assert r["count"] > 0, r["NAME_2"]
    for k, s in enumerate(stats):
        assert close(p[s], r[s]), "%s %s: geojson %r, want %r" % (r["NAME_2"], s, p[s], r[s])
        assert close(float(row[k + 1]), r[s]), "%s %s: csv %r, want %r" % (r["NAME_2"], s, row[k + 1], r[s])
    assert p["count"] == r["count"] and p["min"] == r["min"] and p["max"] == r["max"]
print("%d communes, %d cells: all statistics match" % (len(ref), sum(r["count"] for r in ref)))
PY

# run_task NAME OP PARAMS INPUTS [OUTPUT]: runs the worker; sets RC and RESULT.
run_task() {
  local name=$1 op=$2 params=$3 inputs=$4 out=${5:-s3://assets/out}
  task_json "$op" "$params" "$inputs" "$out" "test/$name" >"$TMP/$name.task.json"
  RESULT=$TMP/$name.result.json
  TERRANE_TERMINATION_LOG=$TMP/$name.term.log "$WORKER" run --task "$TMP/$name.task.json" \
    >"$RESULT" 2>"$TMP/$name.log"
  RC=$?
}

# expect_ok NAME OP PARAMS INPUTS MEDIA [OUTPUT]: runs, checks success and
# downloads the primary output to $TMP/NAME.out.
expect_ok() {
  local name=$1 op=$2 params=$3 inputs=$4 media=$5 out=${6:-s3://assets/out}
  run_task "$name" "$op" "$params" "$inputs" "$out"
  if [ "$RC" != 0 ]; then
    fail "$name: exit $RC: $(cat "$RESULT") $(tail -n 3 "$TMP/$name.log")"
    return 1
  fi
  assert_eq Succeeded "$(json_get "$RESULT" 'd["status"]')" "$name: status"
  assert_eq "$media" "$(json_get "$RESULT" 'd["output"]["mediaType"]')" "$name: media type"
  URI=$(json_get "$RESULT" 'd["output"]["uri"]')
  s3_get "$URI" "$TMP/$name.out" || { fail "$name: cannot download $URI"; return 1; }
  assert_eq "$(json_get "$RESULT" 'd["output"]["checksum"]')" \
    "1220$(sha256sum "$TMP/$name.out" | cut -d' ' -f1)" "$name: checksum is the file's"
}

# expect_fail NAME CODE FIELD MESSAGE_PART OP PARAMS INPUTS
expect_fail() {
  local name=$1 code=$2 field=$3 part=$4
  shift 4
  run_task "$name" "$@"
  assert_eq 65 "$RC" "$name: exit code (bad input)"
  assert_eq Failed "$(json_get "$RESULT" 'd.get("status")')" "$name: status"
  assert_eq "$code" "$(json_get "$RESULT" 'd["error"]["code"]')" "$name: error code"
  assert_eq "$field" "$(json_get "$RESULT" 'd["error"].get("field")')" "$name: error field"
  assert_contains "$(json_get "$RESULT" 'd["error"]["message"]')" "$part" "$name: message"
  local left
  left=$(find "$S3_DIR" -path "*test/$name/*" -type f 2>/dev/null | head -n 3)
  assert_eq "" "$left" "$name: nothing published"
}

L7='[{"name":"l7","uri":"s3://raw/l7.tif"}]'
COG_MEDIA="image/tiff; application=geotiff; profile=cloud-optimized"

# --- calc: NDVI ------------------------------------------------------------------
NDVI='{"expression":"(l7[4] - l7[3]) / (l7[4] + l7[3])"}'
if expect_ok ndvi calc "$NDVI" "$L7" "$COG_MEDIA"; then
  NDVI_SUM=$(json_get "$RESULT" 'd["output"]["checksum"]')
  if cog_validate "$TMP/ndvi.out" >"$TMP/ndvi.validate" 2>&1; then
    ok "ndvi: valid COG"
  else
    fail "ndvi: not a valid COG: $(cat "$TMP/ndvi.validate")"
  fi
  if out=$(/usr/bin/python3 "$TMP/ndvi.py" "$SAMPLES/L7_ETMs.tif" "$TMP/ndvi.out" 2>&1); then
    ok "ndvi: $out"
  else
    fail "ndvi: pixels: $out"
  fi
fi

# Same task, another prefix (so no cache hit): same bytes.
if expect_ok ndvi calc "$NDVI" "$L7" "$COG_MEDIA" s3://assets/again; then
  assert_eq "$NDVI_SUM" "$(json_get "$RESULT" 'd["output"]["checksum"]')" "ndvi: deterministic"
fi
# One thread and three (more chunks in flight than cores): same bytes.
for n in 1 3; do
  if expect_ok "ndvi-t$n" calc "${NDVI%\}},\"threads\":$n}" "$L7" "$COG_MEDIA"; then
    assert_eq "$NDVI_SUM" "$(json_get "$RESULT" 'd["output"]["checksum"]')" "ndvi: $n thread(s), same bytes"
    assert_eq "$n" "$(json_get "$RESULT" 'd["timings"]["threads"]')" "ndvi-t$n: timings.threads"
  fi
done

# --- calc: nodata through where(), Byte output --------------------------------------
MASKED='{"expression":"where(l7[1] > 100, l7[1] - 100, nodata)","outputType":"Byte"}'
if expect_ok masked calc "$MASKED" "$L7" "$COG_MEDIA"; then
  if out=$(/usr/bin/python3 "$TMP/masked.py" "$SAMPLES/L7_ETMs.tif" "$TMP/masked.out" 2>&1); then
    ok "masked: $out"
  else
    fail "masked: $out"
  fi
fi

# --- calc: integer output saturates short of its nodata value ----------------------------
if expect_ok saturate calc '{"expression":"l7[1] * 4 - 0.5","outputType":"Byte"}' "$L7" \
    "$COG_MEDIA"; then
  if out=$(/usr/bin/python3 "$TMP/saturate.py" "$SAMPLES/L7_ETMs.tif" "$TMP/saturate.out" 2>&1); then
    ok "saturate: $out"
  else
    fail "saturate: $out"
  fi
fi

# --- calc: input nodata (elev.tif's -32768) propagates -----------------------------------
if expect_ok elev-ft calc '{"expression":"dem * 0.3048","outputType":"Float64","nodata":-1}' \
    '[{"name":"dem","uri":"s3://raw/elev.tif"}]' "$COG_MEDIA"; then
  if out=$(/usr/bin/python3 "$TMP/elev.py" "$SAMPLES/elev.tif" "$TMP/elev-ft.out" 2>&1); then
    ok "elev-ft: $out"
  else
    fail "elev-ft: $out"
  fi
fi

# --- calc: errors -------------------------------------------------------------------
expect_fail bad-expr InvalidExpression params.expression \
  "expression: offset 19: expected ')' to close '(' at offset 1, got end of expression" \
  calc '{"expression":"(l7[4] - l7[3] / 2"}' "$L7"
expect_fail unknown-name InvalidExpression params.expression \
  "offset 9: unknown input 'l8' (inputs: l7)" calc '{"expression":"l7[4] + l8"}' "$L7"
expect_fail no-band InvalidExpression params.expression \
  "offset 5: input 'l7' has 6 bands, there is no band 7" calc '{"expression":"1 + l7[7]"}' "$L7"
expect_fail bad-nodata InvalidParam params.nodata "cannot be represented in outputType Byte" \
  calc '{"expression":"l7","outputType":"Byte","nodata":-1}' "$L7"
expect_fail crs-mismatch CRSMismatch "inputs[1].uri" "not in the CRS of inputs[0]" \
  calc '{"expression":"l7 + dem"}' \
  '[{"name":"l7","uri":"s3://raw/l7.tif"},{"name":"dem","uri":"s3://raw/elev.tif"}]'

# --- zonal-stats: DEM by commune ----------------------------------------------------------
ZIN='[{"name":"dem","uri":"s3://raw/elev.tif"},{"name":"communes","uri":"s3://raw/lux.shp"}]'
ZP='{"raster":"dem","zones":"communes","key":"NAME_2"}'
if expect_ok zonal zonal-stats "$ZP" "$ZIN" "application/geo+json"; then
  ZONAL_SUM=$(json_get "$RESULT" 'd["output"]["checksum"]')
  s3_get "${URI%/*}/stats.csv" "$TMP/zonal.csv" || fail "zonal: no stats.csv next to $URI"
  if out=$(/usr/bin/python3 "$TMP/zonal.py" "$SAMPLES/elev.tif" "$SAMPLES/lux.shp" "$TMP/zonal.out" \
      "$TMP/zonal.csv" 2>&1); then
    ok "zonal: $out"
  else
    fail "zonal: $out"
  fi
fi

if expect_ok zonal zonal-stats "$ZP" "$ZIN" "application/geo+json" s3://assets/again; then
  assert_eq "$ZONAL_SUM" "$(json_get "$RESULT" 'd["output"]["checksum"]')" "zonal: deterministic"
  s3_get "${URI%/*}/stats.csv" "$TMP/zonal2.csv"
  assert_eq "$(sha256sum <"$TMP/zonal.csv")" "$(sha256sum <"$TMP/zonal2.csv")" \
    "zonal: csv deterministic"
fi
for n in 1 3; do
  if expect_ok "zonal-t$n" zonal-stats "${ZP%\}},\"threads\":$n}" "$ZIN" "application/geo+json"; then
    assert_eq "$ZONAL_SUM" "$(json_get "$RESULT" 'd["output"]["checksum"]')" \
      "zonal: $n thread(s), same bytes"
  fi
done

# A subset of statistics, in the canonical order whatever the request's.
if expect_ok zonal-subset zonal-stats \
    '{"raster":"dem","zones":"communes","key":"NAME_2","stats":["sum","count"]}' "$ZIN" \
    "application/geo+json"; then
  assert_eq '["NAME_2", "count", "sum"]' \
    "$(json_get "$TMP/zonal-subset.out" 'list(d["features"][0]["properties"])')" \
    "zonal-subset: properties"
fi

# --- zonal-stats: errors -----------------------------------------------------------------
expect_fail zonal-key InvalidParam params.key "has no attribute 'NAME_3'" \
  zonal-stats '{"raster":"dem","zones":"communes","key":"NAME_3"}' "$ZIN"
expect_fail zonal-points InputInvalid "inputs[1].uri" "zones must be polygons" \
  zonal-stats '{"raster":"dem","zones":"pts","key":"NAME_2"}' \
  '[{"name":"dem","uri":"s3://raw/elev.tif"},{"name":"pts","uri":"s3://raw/points.geojson"}]'
expect_fail zonal-apart EmptyIntersection "inputs[1].uri" "no zone overlaps the raster" \
  zonal-stats '{"raster":"l7","zones":"communes","key":"NAME_2"}' \
  '[{"name":"l7","uri":"s3://raw/l7.tif"},{"name":"communes","uri":"s3://raw/lux.shp"}]'
expect_fail zonal-param InvalidParam params.zones "no input is named 'lux'" \
  zonal-stats '{"raster":"dem","zones":"lux","key":"NAME_2"}' "$ZIN"

finish
