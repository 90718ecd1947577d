#!/usr/bin/env bash
# bench/bench_observe.sh BUILD - `terrane-worker observe` on a large S3 prefix.
#
# BENCH_OBJECTS objects (default 10,000) under one prefix of a local S3 server
# (s3rver, the same as the tests), and a tenth of that under another. Each
# repetition (BENCH_REPS, default 3) lists the big prefix twice, alternating
# which goes first: the worker (ListObjectsV2 pages, digest, listing
# published to S3) and the baseline, GDAL's own recursive listing of the
# same prefix (gdal.ReadDirRecursive on /vsis3/, a Python process that loads
# GDAL like the worker does). Prints the median seconds of each, the median
# of the per-repetition ratios (target <= 1.20: the worker also hashes the
# list and publishes it) and the peak RSS of the worker for the big and the
# small prefix (target: growth <= 1.10x, i.e. memory does not grow with the
# object count). Raw numbers: BUILD/bench/observe.tsv.
set -uo pipefail
BUILD=${1:-build}
export TERRANE_BUILD=$BUILD
. "$(dirname "$0")/../tests/lib/common.sh"
N=${BENCH_OBJECTS:-10000}
REPS=${BENCH_REPS:-3}
TARGET=1.20
OUTDIR=$BUILD/bench
mkdir -p "$OUTDIR"
s3_start raw assets

echo "creating $N + $((N / 10)) objects in s3rver ..."
/usr/bin/python3 - "$N" <<'PY' || exit 1
import sys
from concurrent.futures import ThreadPoolExecutor
from osgeo import gdal
n = int(sys.argv[1])
def put(name):
    f = gdal.VSIFOpenL("/vsis3/raw/" + name, "wb")
    gdal.VSIFWriteL(name.encode(), 1, len(name), f)
    assert gdal.VSIFCloseL(f) == 0, name
names = ["big/%02d/obs_%06d.tif" % (i % 24, i) for i in range(n)]
names += ["small/obs_%06d.tif" % i for i in range(n // 10)]
with ThreadPoolExecutor(4) as ex:
    list(ex.map(put, names))
PY

task() { # NAME URI
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"bench","assetKey":"bench/%s","dataVersion":"sha256:%064d","operation":"observe","inputs":[{"name":"source","uri":"%s"}],"output":{"uri":"s3://assets/sources"}}\n' \
    "$1" 0 "$2" >"$TMP/$1.task"
}
task big s3://raw/big/
task small s3://raw/small/
# run LABEL REP CMD...: one timed process; appends "label rep seconds rss_kb".
run() {
  local label=$1 rep=$2; shift 2
  /usr/bin/time -f '%e %M' -o "$TMP/time" "$@" >"$TMP/$label.out" 2>"$TMP/$label.err" \
    || { echo "$label failed:"; tail -n 5 "$TMP/$label.err" "$TMP/$label.out"; exit 1; }
  printf '%s\t%s\t%s\n' "$label" "$rep" "$(tr ' ' '\t' <"$TMP/time")" >>"$OUTDIR/observe.tsv"
}
cat >"$TMP/gdal_list.py" <<'PY'
import sys
from osgeo import gdal
names = gdal.ReadDirRecursive(sys.argv[1])
assert names is not None
n = sum(1 for x in names if not x.endswith("/"))
assert n == int(sys.argv[2]), n
print(n)
PY
: >"$OUTDIR/observe.tsv"
run worker-small 0 "$WORKER" observe --task "$TMP/small.task"
for rep in $(seq "$REPS"); do
  if [ $((rep % 2)) = 1 ]; then
    run gdal "$rep" /usr/bin/python3 "$TMP/gdal_list.py" /vsis3/raw/big/ "$N"; run worker "$rep" "$WORKER" observe --task "$TMP/big.task"
  else
    run worker "$rep" "$WORKER" observe --task "$TMP/big.task"; run gdal "$rep" /usr/bin/python3 "$TMP/gdal_list.py" /vsis3/raw/big/ "$N"
  fi
  count=$(json_get "$TMP/worker.out" 'd["observation"]["objectCount"]')
  [ "$count" = "$N" ] || { echo "worker counted $count objects, not $N"; exit 1; }
done
/usr/bin/python3 - "$OUTDIR/observe.tsv" "$N" "$TARGET" <<'PY'
import statistics as st, sys
rows = [l.split("\t") for l in open(sys.argv[1]) if l.strip()]
n, target = int(sys.argv[2]), float(sys.argv[3])
by = lambda lab: {r[1]: r for r in rows if r[0] == lab}
w, g = by("worker"), by("gdal")
reps = sorted(w)
ratio = st.median(float(w[r][2]) / float(g[r][2]) for r in reps)
ws, gs = st.median(float(w[r][2]) for r in reps), st.median(float(g[r][2]) for r in reps)
print("%-22s %8s %8s %7s %7s %s" % ("listing", "gdal s", "worker s", "ratio", "target", ""))
print("%-22s %8.2f %8.2f %7.2f %7s %s" % ("%d objects" % n, gs, ws, ratio, "<=%.2f" % target,
      "ok" if ratio <= target else "OVER"))
rss_big = st.median(int(w[r][3]) for r in reps)
rss_small = int(by("worker-small")["0"][3])
growth = rss_big / rss_small
print("peak RSS (MB)  worker %d objects %.1f, %d objects %.1f: growth %.2fx (target <=1.10) %s; gdal %.1f"
      % (n, rss_big / 1024, n // 10, rss_small / 1024, growth, "ok" if growth <= 1.10 else "OVER",
         st.median(int(g[r][3]) for r in reps) / 1024))
PY
