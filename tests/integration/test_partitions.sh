#!/usr/bin/env bash
# Integration: tile partitions run by the real terrane-worker against a real
# S3 server, without the controller: tests/integration/partition_flow.py sends
# the grid task, one task per tile and the assemble task, as the controller
# does. The assembled COG must equal the unpartitioned result pixel for pixel
# (and here byte for byte: the same COG writer gets the same pixels) and be a
# valid COG: terrain slope with halo 1 against `gdaldem slope` on the whole
# raster, cog and calc against the unpartitioned worker, an odd size whose
# tiles do not divide it, and a grid in the CRS whose first cells are cut.
# Then the refusals: a tile for an operation without windows, terrain without
# a halo, a tile of a grid the input no longer matches, an assemble with a
# tampered tile; and the collection operation over time-partition Items.
# The 8192x8192 DEM of the issue runs in bench/bench_tiles.sh (minutes
# on 2 cores); this test uses 2048x2048 in 16 tiles, the same code path.
. "$(dirname "$0")/../lib/common.sh"

/usr/bin/python3 -c 'import numpy' 2>/dev/null || skip "python3-numpy missing (Debian: python3-numpy)"
command -v gdaldem >/dev/null || skip "gdal-bin missing"
FLOW=$ROOT/tests/integration/partition_flow.py
SIZE=${PARTITION_TEST_SIZE:-2048}

s3_start raw assets
/usr/bin/python3 "$ROOT/bench/make_dem.py" "$SIZE" "$TMP/src-dem.tif"
/usr/bin/python3 "$ROOT/bench/make_dem.py" 1001 "$TMP/src-odd.tif"
s3_put "$TMP/src-dem.tif" s3://raw/dem.tif
s3_put "$TMP/src-odd.tif" s3://raw/odd.tif
CO=(-co COMPRESS=DEFLATE -co PREDICTOR=NO -co BLOCKSIZE=512 -co OVERVIEW_RESAMPLING=NEAREST
  -co BIGTIFF=IF_SAFER -co NUM_THREADS=ALL_CPUS)

# tiled NAME SRC_URI OP PARAMS FLOW-ARGS...: runs the flow, downloads the
# assembled COG to $TMP/NAME.tif and validates it.
tiled() {
  local name=$1 src=$2 op=$3 params=$4
  shift 4
  if ! /usr/bin/python3 "$FLOW" run "$WORKER" "$src" "$op" "$params" --key "test/$name" "$@" \
    >"$TMP/$name.flow.json" 2>"$TMP/$name.flow.err"; then
    fail "$name: the flow failed: $(tail -n 5 "$TMP/$name.flow.err")"
    return 1
  fi
  local uri
  uri=$(json_get "$TMP/$name.flow.json" 'd["assemble"]["output"]["uri"]')
  s3_get "$uri" "$TMP/$name.tif" || { fail "$name: cannot download $uri"; return 1; }
  if cog_validate "$TMP/$name.tif" >"$TMP/$name.validate" 2>&1; then
    ok "$name: the assembled COG is valid (GDAL's validator)"
  else
    fail "$name: not a valid COG: $(tail -n 3 "$TMP/$name.validate")"
  fi
}

# same NAME REF: pixels, then bytes, of $TMP/NAME.tif against REF.
same() {
  local msg
  if msg=$(/usr/bin/python3 "$FLOW" compare "$2" "$TMP/$1.tif" 2>&1); then
    ok "$1: equal pixel for pixel to $(basename "$2") ($msg)"
  else
    fail "$1: differs from $(basename "$2"): $msg"
  fi
  if cmp -s "$2" "$TMP/$1.tif"; then ok "$1: byte-identical"; else fail "$1: not byte-identical"; fi
}

# whole NAME SRC_URI OP PARAMS: the unpartitioned worker's COG at $TMP/NAME.whole.tif.
whole() {
  task_json "$3" "$4" "[{\"name\":\"dem\",\"uri\":\"$2\"}]" s3://assets/out "test/$1-whole" \
    >"$TMP/$1.whole.task.json"
  if ! TERRANE_TERMINATION_LOG=$TMP/$1.whole.term "$WORKER" run --task "$TMP/$1.whole.task.json" \
    >"$TMP/$1.whole.result.json" 2>"$TMP/$1.whole.log"; then
    fail "$1: the unpartitioned run failed: $(cat "$TMP/$1.whole.result.json")"
    return 1
  fi
  s3_get "$(json_get "$TMP/$1.whole.result.json" 'd["output"]["uri"]')" "$TMP/$1.whole.tif"
}

echo "--- terrain slope, $SIZE x $SIZE in 16 tiles, halo 1, vs gdaldem slope on the whole raster"
gdaldem slope -q -of COG "${CO[@]}" "$TMP/src-dem.tif" "$TMP/slope.ref.tif"
if tiled slope s3://raw/dem.tif terrain '{"mode":"slope"}' --tile $((SIZE / 4)) --halo 1 --parallel 2; then
  assert_eq 16 "$(json_get "$TMP/slope.flow.json" 'len(d["tiles"])')" "slope: 16 tiles"
  assert_eq "4x4" "$(json_get "$TMP/slope.flow.json" '"%dx%d" % (d["grid"]["cols"], d["grid"]["rows"])')" \
    "slope: the grid is 4x4"
  same slope "$TMP/slope.ref.tif"
  # A tile's Item carries its key; each tile is its core only, at its place.
  t5=$(json_get "$TMP/slope.flow.json" 'd["tiles"][5]["output"]["stacItem"]')
  s3_get "$t5" "$TMP/slope.t5.json"
  assert_eq r001c001 "$(json_get "$TMP/slope.t5.json" 'd["properties"]["terrane:partition"]')" \
    "slope: tile 5's Item carries terrane:partition"
  s3_get "$(json_get "$TMP/slope.flow.json" 'd["tiles"][5]["output"]["uri"]')" "$TMP/slope.t5.tif"
  assert_eq "$((SIZE / 4))x$((SIZE / 4)) $(json_get "$TMP/slope.flow.json" \
    'str(float(d["grid"]["geoTransform"][0] + d["grid"]["geoTransform"][1] * d["grid"]["tileWidth"]))')" \
    "$(/usr/bin/python3 -c 'import sys; from osgeo import gdal; d = gdal.Open(sys.argv[1]); print("%dx%d %s" % (d.RasterXSize, d.RasterYSize, d.GetGeoTransform()[0]))' "$TMP/slope.t5.tif")" \
    "slope: tile r001c001 is its core, with its own geotransform"
  # The Collection links every tile's Item.
  col=$(json_get "$TMP/slope.flow.json" 'd["assemble"]["output"]["uri"]')
  s3_get "${col%/*}/collection.json" "$TMP/slope.collection.json" &&
    assert_eq "Collection 16" "$(json_get "$TMP/slope.collection.json" \
      'd["type"] + " " + str(len([l for l in d["links"] if l["rel"] == "item"]))')" \
      "slope: collection.json links the 16 tile Items"
fi

echo "--- an odd size: 1001 x 1001 in tiles of 400 (edge tiles of 201)"
gdaldem slope -q -of COG "${CO[@]}" "$TMP/src-odd.tif" "$TMP/odd.ref.tif"
tiled odd s3://raw/odd.tif terrain '{"mode":"slope"}' --tile 400 --halo 1 --parallel 2 &&
  same odd "$TMP/odd.ref.tif"

echo "--- a grid in the CRS whose first cells are cut by the raster, hillshade, halo 2"
gdaldem hillshade -q -of COG "${CO[@]}" "$TMP/src-odd.tif" "$TMP/crs.ref.tif"
if tiled crs s3://raw/odd.tif terrain '{"mode":"hillshade"}' --origin 299000,5601000 --cell 4000,4000 \
  --halo 2 --parallel 2; then
  assert_eq "-100 -100 3x3" "$(json_get "$TMP/crs.flow.json" \
    '"%d %d %dx%d" % (d["grid"]["offsetX"], d["grid"]["offsetY"], d["grid"]["cols"], d["grid"]["rows"])')" \
    "crs: 400-pixel cells, the first starting 100 pixels before the raster"
  same crs "$TMP/crs.ref.tif"
fi

echo "--- cog and calc, tiles of 400 (not dividing 1001), against the unpartitioned worker"
whole cog s3://raw/odd.tif cog '{"compression":"ZSTD","blockSize":256}' &&
  tiled cog s3://raw/odd.tif cog '{"compression":"ZSTD","blockSize":256}' --tile 400 --parallel 2 \
    --assemble-params '{"compression":"ZSTD","blockSize":256}' && same cog "$TMP/cog.whole.tif"
whole calc s3://raw/odd.tif calc '{"expression":"dem * 2 + 1"}' &&
  tiled calc s3://raw/odd.tif calc '{"expression":"dem * 2 + 1"}' --tile 400 --parallel 2 &&
  same calc "$TMP/calc.whole.tif"

echo "--- refusals"
TILE='"partition":{"key":"r000c000","index":0,"tile":{"col":0,"row":0,"xoff":0,"yoff":0,"xsize":256,"ysize":256,"halo":1,"width":1001,"height":1001}}'
# refuse NAME OP PARAMS WANT_CODE WANT_FIELD [TILE_JSON]
refuse() {
  local name=$1 tile=${6:-$TILE}
  task_json "$2" "$3" '[{"name":"dem","uri":"s3://raw/odd.tif"}]' s3://assets/out "test/$name" |
    sed "s|,\"attempt\":1}|,$tile,\"attempt\":1}|" >"$TMP/$name.task.json"
  TERRANE_TERMINATION_LOG=$TMP/$name.term "$WORKER" run --task "$TMP/$name.task.json" \
    >"$TMP/$name.result.json" 2>"$TMP/$name.log"
  local rc=$?
  assert_eq "65 $4 $5" "$rc $(json_get "$TMP/$name.result.json" 'd["error"]["code"] + " " + d["error"]["field"]')" \
    "$name: exit 65, $4 on $5"
}
refuse warp_tile warp '{"dstCrs":"EPSG:4326"}' InvalidTask partition.tile
refuse terrain_no_halo terrain '{"mode":"slope"}' InvalidTask partition.tile.halo \
  "${TILE/\"halo\":1/\"halo\":0}"
refuse stale_grid terrain '{"mode":"slope"}' InputInvalid partition.tile \
  "${TILE/\"width\":1001/\"width\":1002}"
# A tile replaced after its manifest was written: its checksum no longer matches.
if [ -f "$TMP/odd.flow.json" ]; then
  /usr/bin/python3 - "$TMP/odd.flow.json" "$TMP/tamper.task.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ins = [{"name": "r%03dc%03d" % (i // d["grid"]["cols"], i % d["grid"]["cols"]), "uri": t["output"]["uri"],
        "checksum": t["output"]["checksum"]} for i, t in enumerate(d["tiles"])]
ins[3]["uri"] = ins[2]["uri"]
json.dump({"apiVersion": "terrane.io/v1", "kind": "Task", "namespace": "test", "assetKey": "test/tamper",
           "dataVersion": "sha256:" + "ab" * 32, "operation": "assemble",
           "params": {"grid": d["grid"]}, "inputs": ins, "output": {"uri": "s3://assets/out"}},
          open(sys.argv[2], "w"))
PY
  TERRANE_TERMINATION_LOG=$TMP/tamper.term "$WORKER" run --task "$TMP/tamper.task.json" \
    >"$TMP/tamper.result.json" 2>"$TMP/tamper.log"
  assert_eq "65 ChecksumMismatch inputs[3].uri" "$? $(json_get "$TMP/tamper.result.json" \
    'd["error"]["code"] + " " + d["error"]["field"]')" "tamper: a tile not matching its checksum"
fi

echo "--- collection over time-partition Items"
for d in 01 02 03; do
  task_json cog '{}' '[{"name":"dem","uri":"s3://raw/odd.tif"}]' s3://assets/out "test/daily" |
    sed "s|sha256:[0-9a-f]*|sha256:$(printf %064d "$d")|; s|,\"attempt\":1}|,\"partition\":{\"key\":\"2026-11-$d\",\"index\":$((10#$d - 1)),\"window\":{\"start\":\"2026-11-${d}T00:00:00Z\",\"end\":\"2026-11-$(printf %02d $((10#$d + 1)))T00:00:00Z\"}},\"attempt\":1}|" \
    >"$TMP/day$d.task.json"
  TERRANE_TERMINATION_LOG=$TMP/day$d.term "$WORKER" run --task "$TMP/day$d.task.json" \
    >"$TMP/day$d.result.json" 2>"$TMP/day$d.log" || fail "day $d: $(cat "$TMP/day$d.result.json")"
done
/usr/bin/python3 - "$TMP" >"$TMP/col.task.json" <<'PY'
import json, sys
ins = []
for i, d in enumerate(["01", "02", "03"]):
    r = json.load(open("%s/day%s.result.json" % (sys.argv[1], d)))
    ins.append({"name": "p%d" % i, "uri": r["output"]["uri"], "stacItem": r["output"]["stacItem"]})
print(json.dumps({"apiVersion": "terrane.io/v1", "kind": "Task", "namespace": "test", "assetKey": "test/daily",
                  "dataVersion": "sha256:" + "cd" * 32, "operation": "collection",
                  "params": {"title": "Daily"}, "inputs": ins, "output": {"uri": "s3://assets/out"}}))
PY
if TERRANE_TERMINATION_LOG=$TMP/col.term "$WORKER" run --task "$TMP/col.task.json" \
  >"$TMP/col.result.json" 2>"$TMP/col.log"; then
  s3_get "$(json_get "$TMP/col.result.json" 'd["output"]["uri"]')" "$TMP/collection.json"
  assert_eq "Daily 3 2026-11-01T00:00:00Z 2026-11-04T00:00:00Z" "$(json_get "$TMP/collection.json" \
    '"%s %d %s %s" % (d["title"], len(d["links"]), d["extent"]["temporal"]["interval"][0][0], d["extent"]["temporal"]["interval"][0][1])')" \
    "collection: title, 3 Item links, the days' time extent"
  s3_get "$(json_get "$TMP/day02.result.json" 'd["output"]["stacItem"]')" "$TMP/day02.item.json"
  assert_eq "2026-11-02 2026-11-02T00:00:00Z" "$(json_get "$TMP/day02.item.json" \
    'd["properties"]["terrane:partition"] + " " + d["properties"]["start_datetime"]')" \
    "a time partition's Item: terrane:partition and start_datetime"
else
  fail "collection: $(cat "$TMP/col.result.json")"
fi
finish
