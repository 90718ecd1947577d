#!/usr/bin/env bash
# bench/bench_hydrology.sh BUILD - the hydrology operations against GRASS GIS
# and SAGA on one generated DEM (bench/make_dem.py, BENCH_HYDRO_SIZE x
# BENCH_HYDRO_SIZE Float32, default 16384, cached in .cache/bench/).
#
# 1. The algorithms alone (bench/hydro_speed.c on the worker's objects):
#    fill, D8 directions with flat resolution, accumulation and basins in
#    cells per second of CPU time on one core. Targets: fill >= 10 M/s,
#    accumulation >= 30 M/s.
# 2. terrane-worker end to end (read, compute, write the COG, publish into
#    a local directory) for fill, flow-direction and flow-accumulation with
#    their default COG options: wall time, peak RSS, RSS in bytes per cell,
#    and the peak over the memory estimate (proto/README.md's bytes per
#    cell times the cells, plus GDAL_CACHEMAX).
# 3. The same DEM through GRASS r.watershed -s (depression-aware directions
#    and accumulation in one run; the DEM linked with r.external, not
#    imported), GRASS r.fill.dir and SAGA Fill Sinks XXL (Wang & Liu):
#    wall time and peak RSS, and the ratio tool / worker. Target: r.watershed
#    >= 5x the worker's fill + flow-direction + flow-accumulation. A tool
#    still running after BENCH_TOOL_TIMEOUT seconds (default 3600) is
#    stopped and reported as a lower bound (">").
#
#   BENCH_HYDRO_SIZE (16384)  BENCH_TOOL_TIMEOUT (3600)  BENCH_GDAL_CACHEMAX (256, MB)
# Raw numbers: BUILD/bench/hydrology.tsv (label seconds rss_kb).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
WORKER=$BUILD/terrane-worker
SIZE=${BENCH_HYDRO_SIZE:-16384}
TIMEOUT=${BENCH_TOOL_TIMEOUT:-3600}
export GDAL_CACHEMAX=${BENCH_GDAL_CACHEMAX:-256}
PY=/usr/bin/python3
CACHE=$ROOT/.cache/bench
TIME=/usr/bin/time
CELLS=$((SIZE * SIZE))

[ -x "$WORKER" ] || { echo "terrane-worker not built: $WORKER" >&2; exit 1; }
[ -x "$TIME" ] || { echo "$TIME missing (Debian package: time)" >&2; exit 1; }
command -v grass >/dev/null || { echo "grass missing (scripts/deps.sh: grass-core)" >&2; exit 1; }
command -v saga_cmd >/dev/null || { echo "saga_cmd missing (scripts/deps.sh: saga)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/terrane-bench-hydro.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$CACHE" "$BUILD/bench"
TSV=$BUILD/bench/hydrology.tsv
: >"$TSV"

DEM=$CACHE/dem_$SIZE.tif
if [ ! -f "$DEM" ]; then
  echo "generating $DEM"
  $PY "$ROOT/bench/make_dem.py" "$SIZE" "$DEM.tmp" && mv "$DEM.tmp" "$DEM" || exit 1
fi
cat "$DEM" >/dev/null # into the page cache, for every side alike

# timed LABEL CMD...: runs CMD under /usr/bin/time (and the tool timeout);
# appends "LABEL wall_seconds cpu_seconds rss_kb" to the TSV (cpu: user +
# system of the process and its children, which on a shared machine
# varies less than wall time); returns CMD's status (124: timeout).
timed() {
  local label=$1
  shift
  timeout "$TIMEOUT" "$TIME" -f '%e %U %S %M' -o "$WORK/$label.time" "$@" >"$WORK/$label.out" 2>"$WORK/$label.err"
  local rc=$?
  sync
  if [ "$rc" = 124 ]; then
    printf '%s\t>%s\t>%s\t0\n' "$label" "$TIMEOUT" "$TIMEOUT" >>"$TSV"
  else
    tail -n 1 "$WORK/$label.time" |
      awk -v l="$label" '{ printf "%s\t%s\t%.2f\t%s\n", l, $1, $2 + $3, $4 }' >>"$TSV"
  fi
  return $rc
}
secs() { awk -F'\t' -v l="$1" '$1 == l { print $2 }' "$TSV"; }
cpu() { awk -F'\t' -v l="$1" '$1 == l { print $3 }' "$TSV"; }
rss() { awk -F'\t' -v l="$1" '$1 == l { print $4 }' "$TSV"; }
sum3() { awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { print a + b + c }'; }

# --- 1. the algorithms alone -------------------------------------------------
SPEED=$BUILD/bench/hydro_speed
objs=("$BUILD"/worker/hydro.o "$BUILD"/worker/mem.o "$BUILD"/worker/err.o)
cc -std=c11 -D_GNU_SOURCE -O2 -Iworker -Iproto -I"$ROOT/worker" -I"$ROOT/proto" \
  $(pkg-config --cflags gdal libcjson) "$ROOT/bench/hydro_speed.c" "${objs[@]}" -o "$SPEED" \
  $(pkg-config --libs gdal libcjson) -lm || exit 1
echo "algorithms on ${SIZE}x${SIZE} ($CELLS cells), CPU time of one core:"
"$SPEED" "$DEM" >"$WORK/speed.txt" || { echo "hydro_speed failed" >&2; exit 1; }
printf '  %-14s %10s %14s   %s\n' step seconds "cells/s" target
while read -r step n s rate; do
  [ "$step" = sinks ] && continue
  target="" verdict=""
  case $step in
  fill) target=10000000 ;;
  accumulation) target=30000000 ;;
  esac
  if [ -n "$target" ]; then
    verdict=$(awk -v r="$rate" -v t="$target" 'BEGIN { printf ">= %d M/s %s", t / 1e6, (r >= t ? "ok" : "UNDER") }')
  fi
  printf '  %-14s %10s %12.1f M   %s\n' "$step" "$s" "$(awk -v r="$rate" 'BEGIN { print r / 1e6 }')" "$verdict"
done <"$WORK/speed.txt"
grep -q '^sinks 0$' "$WORK/speed.txt" || echo "  WARNING: cells without a direction after fill"

# --- 2. the worker end to end -----------------------------------------------
export TERRANE_ALLOW_LOCAL_PATHS=1
run_task() { # label op params inputs -> primary output path in $WORK/$label.uri
  local label=$1 op=$2 params=$3 inputs=$4
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"bench","assetKey":"bench/%s","dataVersion":"sha256:%064d","operation":"%s","params":%s,"inputs":%s,"output":{"uri":"%s"},"attempt":1}\n' \
    "$label" 0 "$op" "$params" "$inputs" "$WORK/out" >"$WORK/$label.task.json"
  timed "$label" "$WORKER" run --task "$WORK/$label.task.json" || {
    echo "$label failed: $(head -c 600 "$WORK/$label.out") $(tail -n 3 "$WORK/$label.err")" >&2
    return 1
  }
  $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["output"]["uri"])' \
    "$WORK/$label.out" >"$WORK/$label.uri"
}
run_task worker-fill fill '{}' "[{\"name\":\"dem\",\"uri\":\"$DEM\"}]" || exit 1
run_task worker-flow-direction flow-direction '{}' \
  "[{\"name\":\"dem\",\"uri\":\"$(cat "$WORK/worker-fill.uri")\"}]" || exit 1
run_task worker-flow-accumulation flow-accumulation '{}' \
  "[{\"name\":\"direction\",\"uri\":\"$(cat "$WORK/worker-flow-direction.uri")\"}]" || exit 1
ours=$(sum3 "$(secs worker-fill)" "$(secs worker-flow-direction)" "$(secs worker-flow-accumulation)")
ours_cpu=$(sum3 "$(cpu worker-fill)" "$(cpu worker-flow-direction)" "$(cpu worker-flow-accumulation)")
echo "terrane-worker end to end (read, compute, COG, publish):"
# The memory estimate of each operation: its bytes per cell as proto/README.md
# states them ("Memory") times the cells, plus GDAL's block cache; the ratio
# is the measured peak RSS over it (<= 1: the estimate holds).
estimate() { # op -> bytes
  local bpc
  case $1 in
  fill) bpc=4.125 ;;
  flow-direction) bpc=9.2 ;;
  flow-accumulation) bpc=10 ;;
  esac
  awk -v b="$bpc" -v n="$CELLS" -v c="$GDAL_CACHEMAX" 'BEGIN { printf "%.0f", b * n + c * 1048576 }'
}
printf '  %-20s %9s %9s %11s %10s %11s %10s\n' operation "wall s" "CPU s" "peak RSS" "bytes/cell" \
  estimate "RSS/est."
for op in fill flow-direction flow-accumulation; do
  est=$(estimate "$op")
  printf '  %-20s %9s %9s %8d MB %10.1f %8d MB %10.2f\n' "$op" "$(secs worker-$op)" \
    "$(cpu worker-$op)" $(($(rss worker-$op) / 1024)) \
    "$(awk -v k="$(rss worker-$op)" -v n="$CELLS" 'BEGIN { print k * 1024 / n }')" \
    $((est / 1048576)) "$(awk -v k="$(rss worker-$op)" -v e="$est" 'BEGIN { print k * 1024 / e }')"
done
printf '  %-20s %9s %9s\n' "all three" "$ours" "$ours_cpu"

# --- 3. GRASS and SAGA on the same DEM ---------------------------------------
grass -c "$DEM" -e "$WORK/grassdb/loc" >"$WORK/grass-setup.log" 2>&1 &&
  grass "$WORK/grassdb/loc/PERMANENT" --exec r.external input="$DEM" output=dem --q \
    >>"$WORK/grass-setup.log" 2>&1 || { echo "GRASS setup failed: $(tail -n 5 "$WORK/grass-setup.log")" >&2; exit 1; }
G=(grass "$WORK/grassdb/loc/PERMANENT" --exec)
timed grass-r.watershed "${G[@]}" r.watershed -s elevation=dem accumulation=acc drainage=drain \
  memory=16000 --q
timed grass-r.fill.dir "${G[@]}" r.fill.dir input=dem output=filled direction=fdir --q
timed saga-fill-xxl saga_cmd ta_preprocessor 5 -ELEV "$DEM" -FILLED "$WORK/saga_filled.sdat" \
  -MINSLOPE 0

ratio() { # tool_seconds worker_seconds -> ratio text
  local t=$1
  if [[ $t = \>* ]]; then
    awk -v t="${t#>}" -v w="$2" 'BEGIN { printf "> %.1fx", t / w }'
  else
    awk -v t="$t" -v w="$2" 'BEGIN { printf "%.1fx", t / w }'
  fi
}
echo "reference tools on the same DEM (ratio = tool time / worker time, wall and CPU):"
printf '  %-22s %8s %8s %9s  %-27s %s\n' tool "wall s" "CPU s" "peak RSS" "vs worker" \
  "ratio wall, CPU (target)"
row() { # label name worker_wall worker_cpu what target
  printf '  %-22s %8s %8s %6d MB  %-27s %s, %s%s\n' "$2" "$(secs "$1")" "$(cpu "$1")" \
    $(($(rss "$1") / 1024)) "$5" "$(ratio "$(secs "$1")" "$3")" "$(ratio "$(cpu "$1")" "$4")" "$6"
}
row grass-r.watershed "GRASS r.watershed -s" "$ours" "$ours_cpu" "fill+direction+accumulation" \
  " (>= 5x)"
row grass-r.fill.dir "GRASS r.fill.dir" "$(secs worker-fill)" "$(cpu worker-fill)" fill ""
row saga-fill-xxl "SAGA Fill Sinks XXL" "$(secs worker-fill)" "$(cpu worker-fill)" fill ""
exit 0
