#!/usr/bin/env bash
# Test runner: runs every suite, keeps each one's output in $BUILD/test-logs/,
# shows the tail of failures, and ends with one summary line
# "N passed, N failed" (plus skipped) that CI reads.
#
#   tests/run.sh unit BUILD   cmocka binaries only
#   tests/run.sh all  BUILD   unit, fuzz smoke runs, proto, integration, install, kubesim, e2e
#
# A test is an executable tests/<suite>/test_* (any language). Exit 0 passes,
# 77 skips, anything else fails. Tests get TERRANE_ROOT and TERRANE_BUILD.
# TESTS=<substring> runs only matching tests.
set -uo pipefail
mode=${1:-all}
BUILD=${2:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export TERRANE_ROOT="$ROOT"
export TERRANE_BUILD="$ROOT/$BUILD"
logs="$TERRANE_BUILD/test-logs"
mkdir -p "$logs"
pass=0 fail=0 skip=0
failed=()

run_one() { # name, command...
  local name=$1; shift
  if [ -n "${TESTS:-}" ] && [[ "$name" != *"$TESTS"* ]]; then return; fi
  local log="$logs/${name//\//_}.log" start=$SECONDS rc
  "$@" >"$log" 2>&1
  rc=$?
  local took=$((SECONDS - start))
  if [ $rc = 0 ]; then
    pass=$((pass + 1)); printf 'PASS  %-52s %4ss\n' "$name" "$took"
  elif [ $rc = 77 ]; then
    skip=$((skip + 1)); printf 'SKIP  %-52s %s\n' "$name" "$(tail -n 1 "$log")"
  else
    fail=$((fail + 1)); failed+=("$name"); printf 'FAIL  %-52s %4ss (exit %d)\n' "$name" "$took" "$rc"
    tail -n 40 "$log" | sed 's/^/      | /'
  fi
}

# cmocka unit tests
for t in "$TERRANE_BUILD"/tests/*/test_*; do
  [ -x "$t" ] || continue
  run_one "unit/$(basename "$(dirname "$t")")/$(basename "$t")" "$t"
done

if [ "$mode" = all ]; then
  # Fuzz smoke: a short bounded run per target over its seed corpus.
  for f in "$ROOT"/build-fuzz/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    n=$(basename "$f")
    corpus="$ROOT/tests/fuzz/corpus/$n"
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    run_one "fuzz/$n" "$f" -max_total_time="${FUZZ_SMOKE_SECONDS:-15}" -timeout=10 -rss_limit_mb=2048 "$work"
    rm -rf "$work"
  done
  for suite in proto integration install kubesim e2e; do
    for t in "$ROOT"/tests/$suite/test_*; do
      [ -f "$t" ] && [ -x "$t" ] || continue
      run_one "$suite/$(basename "$t")" "$t"
    done
  done
fi

echo
[ ${#failed[@]} -gt 0 ] && printf 'failed: %s\n' "${failed[@]}"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail = 0 ]
