#!/usr/bin/env bash
# bench/bench_worker_raster.sh BUILD - terrane-worker's raster operations
# against the GDAL command line tools doing the same work.
#
# For `cog` (vs gdal_translate -of COG) and `terrain` slope (vs gdaldem slope
# -of COG) on a synthetic Float32 DEM (bench/make_dem.py, cached in
# .cache/bench/), three processes per repetition, their order rotating:
#   worker     the whole task end to end with its defaults (params {} and
#              {"mode":"slope"}): decode, size itself to the pod (here a
#              memory limit of BENCH_MEMORY_LIMIT MB given as
#              $TERRANE_MEMORY_LIMIT, and the machine's CPUs), compute into
#              scratch, publish (hash, fsync, link) into a local directory;
#   tool-user  the tool as a user runs it: the worker's creation options
#              (same output) but the tool's defaults for the rest, i.e.
#              single-threaded compression and GDAL's default cache;
#   tool-same  the tool with identical options, including the worker's
#              NUM_THREADS and GDAL_CACHEMAX as the worker reported them.
# All three outputs must be byte-identical every repetition (the worker
# computed with N threads what the tool computes with one), or it stops.
# Prints, per operation, the medians of the per-repetition ratios
#   user    worker / tool-user   (targets on 2 cores: cog <= 0.60, slope <= 0.55)
#   same    worker / tool-same   (target <= 1.03)
#   compute (worker - publishMs) / tool-same: everything but publishing
# and the worker's peak RSS against the memory limit it was given. With
# BENCH_LARGE=1 each operation also runs once at twice the side (4x the
# pixels) and the growth of the worker's peak RSS is printed (bounded by
# GDAL_CACHEMAX plus a constant, so about 1x).
#
#   BENCH_REPS (3)  BENCH_SIZE (8192)  BENCH_LARGE (0)  BENCH_MEMORY_LIMIT (2048, MB)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
WORKER=$BUILD/terrane-worker
REPS=${BENCH_REPS:-3}
SIZE=${BENCH_SIZE:-8192}
LARGE=${BENCH_LARGE:-0}
MEMLIMIT_MB=${BENCH_MEMORY_LIMIT:-2048}
PY=/usr/bin/python3
CACHE=$ROOT/.cache/bench
TIME=/usr/bin/time
unset GDAL_CACHEMAX GDAL_NUM_THREADS TERRANE_THREADS TERRANE_CACHE_MB

[ -x "$WORKER" ] || { echo "terrane-worker not built: $WORKER" >&2; exit 1; }
[ -x "$TIME" ] || { echo "$TIME missing (Debian package: time)" >&2; exit 1; }
$PY -c 'import numpy, osgeo.gdal' 2>/dev/null || { echo "needs python3-gdal and python3-numpy" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/terrane-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$CACHE" "$WORK/scratch" "$WORK/out"
RUNS=$WORK/runs.tsv
: >"$RUNS"

# The creation options cog.c writes for params {} (the defaults) but the
# thread count; the byte-identity check below fails if they ever drift apart.
CO=(-co COMPRESS=DEFLATE -co PREDICTOR=NO -co BLOCKSIZE=512 -co OVERVIEW_RESAMPLING=NEAREST
    -co BIGTIFF=IF_SAFER)

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

json() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

# timed LABEL SIZE REP cmd... : runs cmd under /usr/bin/time, appends
# "label size rep seconds rss_kb compute_ms publish_ms cpu_seconds" to RUNS.
timed() {
  local label=$1 size=$2 rep=$3
  shift 3
  if ! "$TIME" -f '%e %M %U %S' -o "$WORK/time.txt" "$@" >"$WORK/stdout.txt" 2>"$WORK/stderr.txt"; then
    echo "$label failed:" >&2
    tail -n 5 "$WORK/stderr.txt" "$WORK/stdout.txt" >&2
    return 1
  fi
  local secs rss usr sys cms=- pms=-
  read -r secs rss usr sys <"$WORK/time.txt"
  if [[ $label == worker-* || $label == probe ]]; then
    cms=$(json "$WORK/stdout.txt" 'd["timings"]["computeMs"]')
    pms=$(json "$WORK/stdout.txt" 'd["timings"]["publishMs"]')
    W_THREADS=$(json "$WORK/stdout.txt" 'd["timings"]["threads"]')
    W_CACHE=$(json "$WORK/stdout.txt" 'd["timings"]["gdalCacheMb"]')
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$size" "$rep" "$secs" "$rss" "$cms" "$pms" \
    "$(awk -v u="$usr" -v s="$sys" 'BEGIN { print u + s }')" >>"$RUNS"
}

worker_output() { find "$WORK/out" -name asset.tif | head -n 1; }

# The worker's sizing, learnt from one untimed run, so tool-same gets it.
W_THREADS= W_CACHE=
probe_worker() {
  local src=$1
  task cog '{}' "$src" "bench/probe" >"$WORK/task.json"
  TERRANE_ALLOW_LOCAL_PATHS=1 TERRANE_SCRATCH_DIR=$WORK/scratch TERRANE_TERMINATION_LOG=$WORK/term.log \
    TERRANE_MEMORY_LIMIT=$((MEMLIMIT_MB * 1024 * 1024)) \
    timed probe 0 0 "$WORKER" run --task "$WORK/task.json" || return 1
  rm -rf "$WORK/out"/*
}

# one_rep OP SIZE REP: the three processes once each, the order rotated by REP.
one_rep() {
  local op=$1 size=$2 rep=$3 src params tool
  src=$(dem "$size") || return 1
  case $op in
    cog) params='{}'; tool=(gdal_translate -q -of COG "${CO[@]}") ;;
    slope) params='{"mode":"slope"}'; tool=(gdaldem slope -q -of COG "${CO[@]}") ;;
  esac
  local wop=$op
  [ "$op" = slope ] && wop=terrain
  task "$wop" "$params" "$src" "bench/$op-$size-$rep" >"$WORK/task.json"
  local order=(worker tool-user tool-same) k who
  for k in 0 1 2; do
    who=${order[$(((k + rep) % 3))]}
    rm -rf "$WORK/out"/* "$WORK/tool.tif"
    case $who in
      tool-user)
        timed "tool-user-$op" "$size" "$rep" "${tool[@]}" "$src" "$WORK/tool.tif" || return 1
        mv "$WORK/tool.tif" "$WORK/tool-user.keep.tif" ;;
      tool-same)
        GDAL_CACHEMAX=$W_CACHE GDAL_NUM_THREADS=$W_THREADS \
          timed "tool-same-$op" "$size" "$rep" "${tool[@]}" -co "NUM_THREADS=$W_THREADS" \
          "$src" "$WORK/tool.tif" || return 1
        mv "$WORK/tool.tif" "$WORK/tool-same.keep.tif" ;;
      worker)
        TERRANE_ALLOW_LOCAL_PATHS=1 TERRANE_SCRATCH_DIR=$WORK/scratch TERRANE_TERMINATION_LOG=$WORK/term.log \
          TERRANE_MEMORY_LIMIT=$((MEMLIMIT_MB * 1024 * 1024)) \
          timed "worker-$op" "$size" "$rep" "$WORKER" run --task "$WORK/task.json" || return 1
        mv "$(worker_output)" "$WORK/worker.keep.tif" ;;
    esac
    # Untimed: write back what this run left dirty, so the next run does not
    # pay for it (the tool exits with its whole output still unwritten).
    sync
  done
  # Same work: the three files must be byte-identical (checked each rep, not timed).
  local f
  for f in tool-user tool-same; do
    if ! cmp -s "$WORK/$f.keep.tif" "$WORK/worker.keep.tif"; then
      echo "$op $size rep $rep: worker output differs from $f's" >&2
      return 1
    fi
  done
  rm -f "$WORK"/*.keep.tif
}

src=$(dem "$SIZE") || exit 1
cat "$src" >/dev/null # warm the page cache once, for all sides alike
probe_worker "$src" || exit 1
echo "input: $src ($(du -m "$src" | cut -f1) MB), reps=$REPS, $(nproc) CPUs, GDAL $(gdal-config --version 2>/dev/null || gdalinfo --version)"
echo "worker sized itself to threads=$W_THREADS, GDAL cache=$W_CACHE MB (memory limit $MEMLIMIT_MB MB); tool-same gets the same, tool-user GDAL's defaults"
t0=$SECONDS
for rep in $(seq 1 "$REPS"); do
  for op in cog slope; do
    one_rep "$op" "$SIZE" "$rep" || exit 1
  done
done
echo "timed runs took $((SECONDS - t0)) s"

if [ "$LARGE" = 1 ]; then
  big=$((SIZE * 2))
  src2=$(dem "$big") || exit 1
  cat "$src2" >/dev/null
  t0=$SECONDS
  for op in cog slope; do one_rep "$op" "$big" 1 || exit 1; done
  echo "large runs ($big x $big) took $((SECONDS - t0)) s"
fi

mkdir -p "$BUILD/bench"
cp "$RUNS" "$BUILD/bench/worker_raster.tsv"
$PY - "$RUNS" "$SIZE" "$LARGE" "$MEMLIMIT_MB" <<'PY'
import statistics as st
import sys
runs, size, large, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
rows = [l.rstrip("\n").split("\t") for l in open(runs) if l.strip()]
def sel(label, sz):
    return {int(r[2]): r for r in rows if r[0] == label and int(r[1]) == sz}
TARGET_USER = {"cog": 0.60, "slope": 0.55}
TARGET_SAME = 1.03
def verdict(v, t):
    return "ok" if v <= t else "OVER"
print()
print("%-14s %4s %8s %8s %8s %8s | %-16s | %-16s | %s" % (
    "operation", "reps", "worker s", "user s", "same s", "publish", "vs tool-user", "vs tool-same",
    "compute alone"))
for op, name in (("cog", "cog"), ("slope", "terrain-slope")):
    w, u, s = sel("worker-" + op, size), sel("tool-user-" + op, size), sel("tool-same-" + op, size)
    reps = sorted(set(w) & set(u) & set(s))
    sec = lambda d, r: float(d[r][3])
    r_user = st.median(sec(w, r) / sec(u, r) for r in reps)
    r_same = st.median(sec(w, r) / sec(s, r) for r in reps)
    r_comp = st.median((sec(w, r) - float(w[r][6]) / 1000) / sec(s, r) for r in reps)
    print("%-14s %4d %8.2f %8.2f %8.2f %7.2fs | %5.3f <=%.2f %-4s | %5.3f <=%.2f %-4s | %5.3f" % (
        name, len(reps), st.median(sec(w, r) for r in reps), st.median(sec(u, r) for r in reps),
        st.median(sec(s, r) for r in reps), st.median(float(w[r][6]) / 1000 for r in reps),
        r_user, TARGET_USER[op], verdict(r_user, TARGET_USER[op]),
        r_same, TARGET_SAME, verdict(r_same, TARGET_SAME), r_comp))
print("  vs tool-user = median of worker/tool wall time, the tool as a user runs it (its defaults:")
print("                 one compression thread, GDAL's default cache); the worker's whole task;")
print("  vs tool-same = the same against the tool with identical options, threads and cache included;")
print("  compute alone = (worker wall - its publishMs) / tool-same wall: everything but publishing;")
print("  publish = worker's publishMs (median): hash, fsync, link into place, STAC Item, manifest")
print()
print("CPU seconds (user + sys, median; what another tenant's load changes least)")
for op, name in (("cog", "cog"), ("slope", "terrain-slope")):
    c = {l: st.median(float(r[7]) for r in sel(l + op, size).values())
         for l in ("worker-", "tool-user-", "tool-same-")}
    print("  %-14s worker %7.2f  tool-user %7.2f  tool-same %7.2f" % (
        name, c["worker-"], c["tool-user-"], c["tool-same-"]))
print()
print("peak RSS (MB)  %-14s %8s %8s %8s %14s" % ("operation", "worker", "user", "same", "worker/limit"))
for op, name in (("cog", "cog"), ("slope", "terrain-slope")):
    sizes = [size] + ([size * 2] if large else [])
    peaks = []
    for sz in sizes:
        peak = lambda label: max(int(r[4]) for r in sel(label + op, sz).values()) / 1024
        wk = peak("worker-")
        peaks.append(wk)
        print("  %6d^2     %-14s %8.0f %8.0f %8.0f %6.0f%% of %d %s" % (
            sz, name, wk, peak("tool-user-"), peak("tool-same-"), 100 * wk / limit, limit,
            "ok" if wk <= limit else "OVER"))
    if len(peaks) == 2:
        print("  %-12s %-14s %8.2fx  (4x the pixels; bounded memory means ~1x)" % (
            "growth", name, peaks[1] / peaks[0]))
PY
