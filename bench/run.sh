#!/usr/bin/env bash
# bench/run.sh BUILD - runs every benchmark (bench/bench_*.sh) against the
# binaries in BUILD (called by `make bench`). Each benchmark measures its
# baseline in the same run and prints the ratio to it. BENCH=<substring>
# runs only matching benchmarks. Exits non-zero if a benchmark could not
# run; a missed target is printed, not an error (timings are noisy).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
status=0
for b in "$ROOT"/bench/bench_*.sh; do
  [ -x "$b" ] || continue
  name=$(basename "$b" .sh)
  if [ -n "${BENCH:-}" ] && [[ "$name" != *"$BENCH"* ]]; then continue; fi
  echo "=== $name"
  start=$SECONDS
  "$b" "$BUILD" || { echo "$name: failed (exit $?)"; status=1; }
  echo "=== $name took $((SECONDS - start)) s"
done
exit $status
