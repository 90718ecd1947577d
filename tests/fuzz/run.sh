#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each over its seed corpus (copied, so
# the committed corpus only grows by hand). Exits non-zero on the first crash.
set -euo pipefail
BUILD=${1:-build-fuzz}
SECONDS_EACH=${2:-300}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
rc=0
for f in "$ROOT/$BUILD"/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  n=$(basename "$f")
  work=$(mktemp -d)
  [ -d "$ROOT/tests/fuzz/corpus/$n" ] && cp -r "$ROOT/tests/fuzz/corpus/$n"/. "$work"/
  echo "== $n for ${SECONDS_EACH}s"
  if ! "$f" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$ROOT/$BUILD/fuzz/$n-" "$work"; then
    echo "$n: crash; reproducer in $ROOT/$BUILD/fuzz/$n-*"
    rc=1
  fi
  rm -rf "$work"
done
exit $rc
