#!/usr/bin/env bash
# bench/bench_tiles.sh BUILD - a tiled terrain slope (the issue's
# 8192x8192 DEM in 16 tiles of 2048, halo 1) against the unpartitioned worker
# and gdaldem, on this machine.
#
# tests/integration/partition_flow.py plays the controller: one grid task,
# the 16 tile tasks with P worker processes at a time (P = 1, 2, 4; each
# process sized to max(1, CPUs / P) threads, as pods of that share would be),
# one assemble task. Inputs and outputs are local paths (no S3), so the
# figures are the worker's compute and publishing. Baselines in the same run:
#   gdaldem  gdaldem slope -of COG, the worker's creation options, all CPUs
#   whole    the unpartitioned worker (terrain slope, all CPUs)
# Every assembled COG must be byte-identical to gdaldem's and pass GDAL's
# COG validator, or the benchmark fails. Prints wall times and the ratios
#   tiled/whole   target on 2 cores: P=2 <= 2.5. Here the fan-out cannot be
#                 faster than one pod: the CPU work is the same, spread over
#                 the same 2 cores, and on top of it each tile writes its own
#                 COG (with overviews) and the assembly writes the full COG
#                 once more. What it buys is nodes: with N nodes the tiles
#                 take about tiles(P=1)/N, the assembly stays one pod.
#   tiled/gdaldem informative
#
#   BENCH_PART_SIZE (8192)  BENCH_PART_TILE (SIZE/4)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
WORKER=$BUILD/terrane-worker
SIZE=${BENCH_PART_SIZE:-8192}
TILE=${BENCH_PART_TILE:-$((SIZE / 4))}
PY=/usr/bin/python3
CACHE=$ROOT/.cache/bench
FLOW=$ROOT/tests/integration/partition_flow.py
CPUS=$(nproc)
unset GDAL_CACHEMAX GDAL_NUM_THREADS TERRANE_THREADS TERRANE_CACHE_MB

[ -x "$WORKER" ] || { echo "terrane-worker not built: $WORKER" >&2; exit 1; }
command -v gdaldem >/dev/null || { echo "gdaldem missing (gdal-bin)" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/terrane-bench-part.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$CACHE" "$WORK/scratch"
export TERRANE_ALLOW_LOCAL_PATHS=1 TERRANE_SCRATCH_DIR=$WORK/scratch

DEM=$CACHE/dem_$SIZE.tif
[ -f "$DEM" ] || $PY "$ROOT/bench/make_dem.py" "$SIZE" "$DEM" || exit 1
now() { date +%s.%N; }
secs() { $PY -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }

t0=$(now)
gdaldem slope -q -of COG -co COMPRESS=DEFLATE -co PREDICTOR=NO -co BLOCKSIZE=512 \
  -co OVERVIEW_RESAMPLING=NEAREST -co BIGTIFF=IF_SAFER -co NUM_THREADS=ALL_CPUS \
  "$DEM" "$WORK/ref.tif" || exit 1
t1=$(now)
GDALDEM=$(secs "$t0" "$t1")

printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"bench","assetKey":"bench/whole","dataVersion":"sha256:%064d","operation":"terrain","params":{"mode":"slope"},"inputs":[{"name":"dem","uri":"%s"}],"output":{"uri":"%s/whole"}}\n' \
  1 "$DEM" "$WORK" >"$WORK/whole.task.json"
t0=$(now)
TERRANE_TERMINATION_LOG=$WORK/whole.term "$WORKER" run --task "$WORK/whole.task.json" \
  >"$WORK/whole.result.json" 2>"$WORK/whole.log" || { cat "$WORK/whole.result.json"; exit 1; }
t1=$(now)
WHOLE=$(secs "$t0" "$t1")
rm -rf "$WORK/whole"

echo "DEM ${SIZE}x${SIZE} Float32, tiles of $TILE (halo 1), $CPUS CPU(s)"
printf '%-22s %8s %12s %14s\n' run seconds tiled/whole tiled/gdaldem
printf '%-22s %8s\n' "gdaldem slope" "$GDALDEM" "worker unpartitioned" "$WHOLE"
status=0
for p in 1 2 4; do
  threads=$((CPUS / p))
  [ "$threads" -ge 1 ] || threads=1
  rm -rf "$WORK/out"
  if ! $PY "$FLOW" run "$WORKER" "$DEM" terrain '{"mode":"slope"}' --tile "$TILE" --halo 1 \
    --parallel "$p" --threads "$threads" --key "bench/tiled$p" --out "$WORK/out" >"$WORK/flow$p.json"; then
    echo "tiled P=$p failed"; exit 1
  fi
  asm=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["assemble"]["output"]["uri"])' "$WORK/flow$p.json")
  cmp -s "$asm" "$WORK/ref.tif" || { echo "tiled P=$p: the assembled COG is not gdaldem's bytes"; status=1; }
  $PY -m osgeo_utils.samples.validate_cloud_optimized_geotiff --full-check=yes "$asm" >/dev/null 2>&1 ||
    { echo "tiled P=$p: not a valid COG"; status=1; }
  read -r total tiles assemble < <($PY -c 'import json,sys; s=json.load(open(sys.argv[1]))["seconds"]; print(s["total"], s["tiles"], s["assemble"])' "$WORK/flow$p.json")
  target=""
  [ "$p" = 2 ] && target="(target <= 2.50)"
  printf '%-22s %8s %12s %14s  tiles %ss, assemble %ss %s\n' "tiled P=$p x${threads}thr" "$total" \
    "$($PY -c "print('%.2f' % ($total / $WHOLE))")" "$($PY -c "print('%.2f' % ($total / $GDALDEM))")" \
    "$tiles" "$assemble" "$target"
done
[ "$status" = 0 ] && echo "every assembled COG byte-identical to gdaldem's and a valid COG"
exit $status
