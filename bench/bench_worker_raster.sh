#!/usr/bin/env bash
# bench/bench_worker_raster.sh BUILD - terrane-worker's raster operations
# against the GDAL command line tools doing the same work.
#
# For `cog` (vs gdal_translate -of COG) and `terrain` slope (vs gdaldem slope
# -of COG) on a synthetic Float32 DEM (bench/make_dem.py, cached in
# .cache/bench/): the same -co options, the same GDAL_CACHEMAX, the same
# NUM_THREADS; runs alternate between the two (the order flips every
# repetition) after one warm-up read of the input. The worker runs a whole
# task end to end - decode, compute into scratch, publish (hash, copy,
# fsync, rename) into a local output directory - and its COG must be
# byte-identical to the tool's, so both did the same work. Prints the
# median seconds of each, the median of the per-repetition ratios (target
# <= 1.05), the same ratio without the worker's publish time, and the peak
# RSS. With
# BENCH_LARGE=1 it also runs each operation once at twice the side (4x the
# pixels) and prints how the worker's peak RSS grows (target: bounded by
# GDAL_CACHEMAX plus a constant, so about 1x).
#
#   BENCH_REPS (3)  BENCH_SIZE (8192)  BENCH_LARGE (0)  BENCH_GDAL_CACHEMAX (256, MB)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
WORKER=$BUILD/terrane-worker
REPS=${BENCH_REPS:-3}
SIZE=${BENCH_SIZE:-8192}
LARGE=${BENCH_LARGE:-0}
export GDAL_CACHEMAX=${BENCH_GDAL_CACHEMAX:-256}
PY=/usr/bin/python3
CACHE=$ROOT/.cache/bench
TIME=/usr/bin/time

[ -x "$WORKER" ] || { echo "terrane-worker not built: $WORKER" >&2; exit 1; }
[ -x "$TIME" ] || { echo "$TIME missing (Debian package: time)" >&2; exit 1; }
$PY -c 'import numpy, osgeo.gdal' 2>/dev/null || { echo "needs python3-gdal and python3-numpy" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/terrane-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$CACHE" "$WORK/scratch" "$WORK/out"
RUNS=$WORK/runs.tsv
: >"$RUNS"

# The creation options cog.c writes for params {} (the defaults); the
# byte-identity check below fails if they ever drift apart.
CO=(-co COMPRESS=DEFLATE -co PREDICTOR=NO -co BLOCKSIZE=512 -co OVERVIEW_RESAMPLING=NEAREST
    -co BIGTIFF=IF_SAFER -co NUM_THREADS=ALL_CPUS)

dem() { # size -> path of the cached DEM, generated once
  local f=$CACHE/dem_$1.tif
  if [ ! -f "$f" ]; then
    local t0=$SECONDS
    echo "generating $f ($1 x $1 Float32)..." >&2
    $PY "$ROOT/bench/make_dem.py" "$1" "$f.tmp" && mv "$f.tmp" "$f" || { rm -f "$f.tmp"; return 1; }
    echo "  done in $((SECONDS - t0)) s" >&2
  fi
  echo "$f"
}

task() { # op params input key -> task JSON on stdout
  local dv
  dv=$(printf '%s|%s|%s|%s|%s' "$1" "$2" "$3" "$4" "$$" | sha256sum | cut -d' ' -f1)
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"bench","assetKey":"%s","dataVersion":"sha256:%s","operation":"%s","params":%s,"inputs":[{"name":"dem","uri":"%s"}],"output":{"uri":"%s"},"attempt":1}\n' \
    "$4" "$dv" "$1" "$2" "$3" "$WORK/out"
}

# timed LABEL OUTFILE cmd... : runs cmd under /usr/bin/time, appends
# "label size rep seconds rss_kb compute_ms publish_ms" to RUNS.
timed() {
  local label=$1 size=$2 rep=$3
  shift 3
  if ! "$TIME" -f '%e %M' -o "$WORK/time.txt" "$@" >"$WORK/stdout.txt" 2>"$WORK/stderr.txt"; then
    echo "$label failed:" >&2
    tail -n 5 "$WORK/stderr.txt" "$WORK/stdout.txt" >&2
    return 1
  fi
  local secs rss cms=- pms=-
  read -r secs rss <"$WORK/time.txt"
  if [[ $label == worker-* ]]; then
    cms=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["timings"]["computeMs"])' "$WORK/stdout.txt")
    pms=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["timings"]["publishMs"])' "$WORK/stdout.txt")
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$size" "$rep" "$secs" "$rss" "$cms" "$pms" >>"$RUNS"
}

worker_output() { find "$WORK/out" -name asset.tif | head -n 1; }

# one_pair OP SIZE REP ORDER: the tool and the worker once each, in ORDER.
one_pair() {
  local op=$1 size=$2 rep=$3 order=$4 src params tool_cmd
  src=$(dem "$size") || return 1
  case $op in
    cog) params='{}'; tool_cmd=(gdal_translate -q -of COG "${CO[@]}" "$src" "$WORK/tool.tif") ;;
    slope) params='{"mode":"slope"}'; tool_cmd=(gdaldem slope -q -of COG "${CO[@]}" "$src" "$WORK/tool.tif") ;;
  esac
  local wop=$op
  [ "$op" = slope ] && wop=terrain
  task "$wop" "$params" "$src" "bench/$op-$size-$rep" >"$WORK/task.json"
  local first second
  if [ "$order" = 0 ]; then first=tool; else first=worker; fi
  for who in $first $([ "$first" = tool ] && echo worker || echo tool); do
    rm -rf "$WORK/out"/* "$WORK/tool.tif"
    if [ "$who" = tool ]; then
      timed "tool-$op" "$size" "$rep" "${tool_cmd[@]}" || return 1
      mv "$WORK/tool.tif" "$WORK/tool.keep.tif"
    else
      TERRANE_ALLOW_LOCAL_PATHS=1 TERRANE_SCRATCH_DIR=$WORK/scratch TERRANE_TERMINATION_LOG=$WORK/term.log \
        timed "worker-$op" "$size" "$rep" "$WORKER" run --task "$WORK/task.json" || return 1
      mv "$(worker_output)" "$WORK/worker.keep.tif"
    fi
    # Untimed: write back what this run left dirty, so the next run does not
    # pay for it (the tool exits with its whole output still unwritten).
    sync
  done
  # Same work: the two files must be byte-identical (checked each rep, not timed).
  if ! cmp -s "$WORK/tool.keep.tif" "$WORK/worker.keep.tif"; then
    echo "$op $size rep $rep: worker output differs from the tool's" >&2
    return 1
  fi
  rm -f "$WORK/tool.keep.tif" "$WORK/worker.keep.tif"
}

src=$(dem "$SIZE") || exit 1
echo "input: $src ($(du -m "$src" | cut -f1) MB), reps=$REPS, GDAL_CACHEMAX=$GDAL_CACHEMAX MB, $(nproc) CPUs, GDAL $(gdal-config --version 2>/dev/null || gdalinfo --version)"
cat "$src" >/dev/null # warm the page cache once, for both sides alike
t0=$SECONDS
for rep in $(seq 1 "$REPS"); do
  for op in cog slope; do
    one_pair "$op" "$SIZE" "$rep" $((rep % 2)) || exit 1
  done
done
echo "timed runs took $((SECONDS - t0)) s"

if [ "$LARGE" = 1 ]; then
  big=$((SIZE * 2))
  src2=$(dem "$big") || exit 1
  cat "$src2" >/dev/null
  t0=$SECONDS
  for op in cog slope; do one_pair "$op" "$big" 1 0 || exit 1; done
  echo "large runs ($big x $big) took $((SECONDS - t0)) s"
fi

mkdir -p "$BUILD/bench"
cp "$RUNS" "$BUILD/bench/worker_raster.tsv"
$PY - "$RUNS" "$SIZE" "$LARGE" <<'PY'
import statistics as st
import sys
runs, size, large = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
rows = [l.rstrip("\n").split("\t") for l in open(runs) if l.strip()]
def sel(label, sz):
    return {int(r[2]): r for r in rows if r[0] == label and int(r[1]) == sz}
TARGET = 1.05
print()
print("%-14s %6s %4s %9s %9s %7s %7s %9s %9s %s" % ("operation", "size", "reps", "tool s", "worker s",
      "ratio", "target", "no-pub", "publish", ""))
for op, name in (("cog", "cog"), ("slope", "terrain-slope")):
    tool, work = sel("tool-" + op, size), sel("worker-" + op, size)
    reps = sorted(set(tool) & set(work))
    ratios = [float(work[r][3]) / float(tool[r][3]) for r in reps]
    ratio = st.median(ratios)
    cratio = st.median([(float(work[r][3]) - float(work[r][6]) / 1000) / float(tool[r][3])
                        for r in reps])
    print("%-14s %6d %4d %9.2f %9.2f %7.3f %7s %8.3fx %8.2fs %s" % (
        name, size, len(reps), st.median(float(tool[r][3]) for r in reps),
        st.median(float(work[r][3]) for r in reps), ratio, "<=%.2f" % TARGET, cratio,
        st.median(float(work[r][6]) / 1000 for r in reps), "ok" if ratio <= TARGET else "OVER"))
print("  ratio = median over reps of worker/tool wall time (whole task: decode, compute, publish);")
print("  no-pub = (worker wall time - its publishMs) / tool wall time (median): everything but publishing;")
print("  publish = worker's publishMs (median): hash, fsync, link into place, STAC Item, manifest")
print()
print("peak RSS (MB)  %-14s %8s %8s" % ("operation", "worker", "tool"))
for op, name in (("cog", "cog"), ("slope", "terrain-slope")):
    sizes = [size] + ([size * 2] if large else [])
    peaks = []
    for sz in sizes:
        w = max(int(r[4]) for r in sel("worker-" + op, sz).values()) / 1024
        t = max(int(r[4]) for r in sel("tool-" + op, sz).values()) / 1024
        peaks.append(w)
        print("  %6d^2     %-14s %8.0f %8.0f" % (sz, name, w, t))
    if len(peaks) == 2:
        print("  %-12s %-14s %8.2fx  (4x the pixels; bounded memory means ~1x)" % (
            "growth", name, peaks[1] / peaks[0]))
PY
