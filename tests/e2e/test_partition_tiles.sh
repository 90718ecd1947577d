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
#     after the assembly;
#   - 256 tiles (a generated 4096x4096 DEM in 256-pixel tiles), the
#     controller kill -9'd in the middle of the fan-out and restarted: no
#     duplicate pod per (partition, attempt) in kubesim's audit, every tile
#     materialized, one assembly.
. "$(dirname "$0")/lib.sh"
trap 'e2e_dump; _run_cleanups' EXIT

command -v gdaldem >/dev/null || skip "gdal-bin missing"
OLINDA=$ROOT/.cache/samples/olinda_dem_utm25s.tif
[ -f "$OLINDA" ] || fail "sample raster missing: $OLINDA (scripts/deps.sh fetches it)"

E2E_KUBESIM_ARGS="--audit --history-size 200000" e2e_start

gdal_translate -q -r cubic -outsize 1024 1024 -co TILED=YES "$OLINDA" "$TMP/olinda.tif" ||
  fail "resampling the DEM"
$PY "$ROOT/bench/make_dem.py" 4096 "$TMP/dem4096.tif" || fail "generating the 4096 DEM"
s3_put "$TMP/olinda.tif" s3://raw/olinda.tif || fail "uploading olinda.tif"
s3_put "$TMP/dem4096.tif" s3://raw/dem4096.tif || fail "uploading dem4096.tif"

# tiled NAME SRC TILE MAXPARALLEL: an asset of terrain slope in tiles
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
  retries: {limit: 1, backoffSeconds: 1}
  output: {uri: s3://assets}
YAML
}

# audit NAME: pods created per (partition, attempt) and the peak running
audit() {
  curl -sf "$KUBESIM_URL/kubesim/audit" >"$TMP/audit.json" || fail "GET /kubesim/audit"
  $PY - "$TMP/audit.json" "$1" <<'PY'
import collections, json, sys
recs = json.load(open(sys.argv[1]))["records"]
created = collections.Counter()
live, peak = set(), 0
for r in recs:
    if r["resource"] != "pods":
        continue
    l = r.get("labels", {})
    if l.get("terrane.io/materialization") != sys.argv[2]:
        continue
    k = (l.get("terrane.io/partition"), l.get("terrane.io/attempt"))
    name = r.get("name")
    if r["type"] == "ADDED":
        created[k] += 1
        if k[0] not in ("grid", "assemble"):
            live.add(name)
    elif r["type"] == "DELETED" or r.get("phase") in ("Succeeded", "Failed"):
        live.discard(name)
    peak = max(peak, len(live))
tiles = sum(n for (p, a), n in created.items() if p not in ("grid", "assemble"))
print("pods=%d dups=%d tiles=%d grid=%d assemble=%d peak=%d" % (
    sum(created.values()), len([k for k, n in created.items() if n > 1]), tiles,
    sum(n for (p, a), n in created.items() if p == "grid"),
    sum(n for (p, a), n in created.items() if p == "assemble"), peak))
PY
}

ctl_start ctl --pod-gc-delay 600 --leader-elect=false

echo "--- slope over the Olinda DEM (1024x1024) in 16 tiles, halo 1"
t0=$(date +%s.%N)
tiled slope s3://raw/olinda.tif 256 4 | k apply -f - >/dev/null || fail "kubectl apply slope"
if k wait --for=condition=Ready am slope --timeout=120s >/dev/null; then
  ok "slope: Ready in $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s: $(am_get slope '{.status.message}')"
else
  fail "slope: not Ready: $(am_get slope '{.status.message}')"
fi
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
out=$(audit slope)
echo "audit slope: $out"
assert_contains "$out" "pods=18 dups=0 tiles=16 grid=1 assemble=1" "slope: grid + 16 tiles + assemble, each once"
assert_contains "$out" "peak=" "slope: audit read"
peak=${out##*peak=}
[ "$peak" -le 4 ] && ok "slope: at most maxParallel (4) tile pods at once ($peak)" ||
  fail "slope: $peak tile pods at once, maxParallel is 4"
wait_until 30 "the tile pods are collected" sh -c "[ -z \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get pods -l terrane.io/materialization=slope -o name)\" ]"

echo "--- 256 tiles (4096x4096 in 256-pixel tiles), controller kill -9 in the fan-out"
t0=$(date +%s.%N)
tiled big s3://raw/dem4096.tif 256 8 | k apply -f - >/dev/null || fail "kubectl apply big"
wait_until 120 "some tiles materialized" sh -c "[ \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get am big -o jsonpath='{.status.partitions.succeeded}' 2>/dev/null || echo 0)\" -ge 40 ]"
mid=$(am_get big '{.status.partitions.succeeded}')
ctl_kill ctl
ok "controller killed with $mid/256 tiles recorded"
ctl_start ctl --pod-gc-delay 600 --leader-elect=false
if k wait --for=condition=Ready am big --timeout=180s >/dev/null; then
  ok "big: Ready in $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s: $(am_get big '{.status.message}')"
else
  fail "big: not Ready: $(am_get big '{.status.message}')"
fi
assert_eq "256/256" "$(am_get big '{.status.partitions.summary}')" "big: 256/256 tiles"
out=$(audit big)
echo "audit big: $out"
assert_contains "$out" "dups=0 tiles=256 grid=1 assemble=1" \
  "big: no duplicate pod per (partition, attempt) across the kill, 256 tiles, one assembly"
s3_get "$(am_get big '{.status.output.uri}')" "$TMP/big.tif" &&
  assert_eq "4096x4096" "$($PY -c 'import sys; from osgeo import gdal; d = gdal.Open(sys.argv[1]); print("%dx%d" % (d.RasterXSize, d.RasterYSize))' "$TMP/big.tif")" \
    "big: the assembled COG is 4096x4096"

ctl_stop ctl
finish
