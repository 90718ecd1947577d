#!/usr/bin/env bash
# test_partition_tiles.sh - tiled assets through the controller against
# kubesim, the real kubectl, the real terrane-worker and an S3 server on
# loopback: the grid probe pod, one pod per tile (maxParallel), one assemble
# pod writing the single COG.
#   - slope over a real DEM (olinda_dem_utm25s.tif of the sample rasters,
#     111x111, cubic-resampled to 1024x1024 over its own extent so that
#     256-pixel tiles make a 4x4 grid: its own corner, 288776.25000080315,
#     and pixels of 9.755216284950272 m, numbers that %.15g does not spell
#     exactly, so the grid digest must survive the result, the status and
#     the assemble task) with halo 1: the assembled COG is byte-identical to
#     `gdaldem slope` of the whole raster written with the worker's COG
#     options (the same pixels through the same COG writer), valid by GDAL's
#     validator; 18 pods (grid, 16 tiles, assemble), tile pods collected
#     after the assembly; each tile pod requests 2 of a cpu node's 4 CPUs
#     and the pool starts with 2 nodes, so maxParallel 4 spreads them over
#     the cpu nodes;
#   - 256 tiles (a generated 4096x4096 DEM in 256-pixel tiles), the
#     controller kill -9'd in the middle of the fan-out and restarted: no
#     duplicate pod per (partition, attempt) in kubesim's audit, every tile
#     materialized, one assembly.
. "$(dirname "$0")/lib.sh"

command -v gdaldem >/dev/null || skip "gdal-bin missing"
OLINDA=$ROOT/.cache/samples/olinda_dem_utm25s.tif
[ -f "$OLINDA" ] || fail "sample raster missing: $OLINDA (scripts/deps.sh fetches it)"

# Two cpu nodes from the start (the shared pools with min 2), so that tile
# pods of 2 CPUs each spread over them whatever the autoscaler's timing.
$PY - "$E2E/testdata/kubesim-pools.json" "$TMP/kubesim-pools.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
for p in c["pools"]:
    if p["name"] == "cpu":
        p["min"] = 2
json.dump(c, open(sys.argv[2], "w"))
PY
part_start 200000 --pools "$TMP/kubesim-pools.json"

gdal_translate -q -r cubic -outsize 1024 1024 -co TILED=YES "$OLINDA" "$TMP/olinda.tif" ||
  fail "resampling the DEM"
$PY "$ROOT/bench/make_dem.py" 4096 "$TMP/dem4096.tif" || fail "generating the 4096 DEM"
s3_put "$TMP/olinda.tif" s3://raw/olinda.tif || fail "uploading olinda.tif"
s3_put "$TMP/dem4096.tif" s3://raw/dem4096.tif || fail "uploading dem4096.tif"

# tiled NAME SRC TILE MAXPARALLEL [CPU]: an asset of terrain slope in tiles
# (CPU: each tile pod's request, so that MAXPARALLEL pods need several nodes)
tiled() {
  cat <<YAML
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: $1, namespace: $NS}
spec:
  assetKey: terrain/$1
  operation: terrain
  params: {mode: slope}
  inputs:
    - {name: dem, uri: "$2"}
  partitions:
    - name: tile
      tiles: {tileSize: [$3, $3], halo: 1}
  maxParallel: $4
  resources: {cpu: "${5:-500m}"}
  retries: {limit: 1, backoffSeconds: 1}
  output: {uri: s3://assets}
YAML
}

echo "--- slope over the Olinda DEM (1024x1024) in 16 tiles, halo 1"
t0=$(date +%s.%N)
tiled slope s3://raw/olinda.tif 256 4 2 | k apply -f - >/dev/null || fail "kubectl apply slope"
part_ready slope 120
ok "slope: Ready in $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
assert_eq "16/16" "$(am_get slope '{.status.partitions.summary}')" "slope: 16/16 tiles"
assert_eq "4" "$(am_get slope '{.status.partitions.grid.result.cols}')" "slope: the probe found 4 columns"
assert_eq "288776.25000080315 9.755216284950272" \
  "$(am_get slope '{.status.partitions.grid.result.geoTransform[0]} {.status.partitions.grid.result.geoTransform[1]}')" \
  "slope: the grid carries the DEM's own geotransform, every digit"
assert_eq "$(am_get slope '{.status.dataVersion}')" "$(am_get slope '{.status.partitions.assembled}')" \
  "slope: assembled at the asset's data version"
uri=$(am_get slope '{.status.output.uri}')
s3_get "$uri" "$TMP/slope.tif" || fail "slope: cannot download $uri"
gdaldem slope -q -of COG -co COMPRESS=DEFLATE -co PREDICTOR=NO -co BLOCKSIZE=512 \
  -co OVERVIEW_RESAMPLING=NEAREST -co BIGTIFF=IF_SAFER -co NUM_THREADS=ALL_CPUS \
  "$TMP/olinda.tif" "$TMP/slope.ref.tif"
if cmp -s "$TMP/slope.ref.tif" "$TMP/slope.tif"; then
  ok "slope: the assembled COG is byte-identical to gdaldem slope of the whole raster"
else
  fail "slope: the assembled COG differs from gdaldem slope: $($PY "$ROOT/tests/integration/partition_flow.py" compare "$TMP/slope.ref.tif" "$TMP/slope.tif" 2>&1)"
fi
cog_validate "$TMP/slope.tif" >"$TMP/slope.validate" 2>&1 && ok "slope: a valid COG" ||
  fail "slope: not a valid COG: $(tail -n 3 "$TMP/slope.validate")"
s3_get "${uri%/*}/collection.json" "$TMP/slope.collection.json" &&
  assert_eq "16" "$($PY -c 'import json,sys; print(len([l for l in json.load(open(sys.argv[1]))["links"] if l["rel"] == "item"]))' "$TMP/slope.collection.json")" \
    "slope: the Collection links the 16 tile Items"
out=$(part_audit slope)
echo "audit slope: $out"
assert_contains "$out" "pods=18 dups=0 parts=16 grid=1 assemble=1" "slope: grid + 16 tiles + assemble, each once"
assert_contains "$out" "peak=" "slope: audit read"
peak=${out#*peak=}
peak=${peak%% *}
[ "$peak" -le 4 ] && ok "slope: at most maxParallel (4) tile pods at once ($peak)" ||
  fail "slope: $peak tile pods at once, maxParallel is 4"
nodes=${out#*nodes=}
[ "$nodes" -ge 2 ] && ok "slope: the tiles spread over $nodes cpu nodes (2 CPUs a tile pod, 4 a node)" ||
  fail "slope: the tiles ran on $nodes node(s)"
wait_until 30 "the tile pods are collected" sh -c "[ -z \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get pods -l terrane.io/materialization=slope -o name)\" ]"

echo "--- 256 tiles (4096x4096 in 256-pixel tiles), controller kill -9 in the fan-out"
t0=$(date +%s.%N)
tiled big s3://raw/dem4096.tif 256 8 | k apply -f - >/dev/null || fail "kubectl apply big"
part_succeeded_at_least big 40 120
mid=$(am_get big '{.status.partitions.succeeded}')
ctl_kill ctl
ok "controller killed with $mid/256 tiles recorded"
part_ctl_restart
part_ready big 180
ok "big: Ready in $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
assert_eq "256/256" "$(am_get big '{.status.partitions.summary}')" "big: 256/256 tiles"
out=$(part_audit big)
echo "audit big: $out"
assert_contains "$out" "dups=0 parts=256 grid=1 assemble=1" \
  "big: no duplicate pod per (partition, attempt) across the kill, 256 tiles, one assembly"
s3_get "$(am_get big '{.status.output.uri}')" "$TMP/big.tif" &&
  assert_eq "4096x4096" "$($PY -c 'import sys; from osgeo import gdal; d = gdal.Open(sys.argv[1]); print("%dx%d" % (d.RasterXSize, d.RasterYSize))' "$TMP/big.tif")" \
    "big: the assembled COG is 4096x4096"

ctl_stop ctl
finish
