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
#
# Nothing is silently left out: a tests/<suite>/test_* file that is not
# executable, a unit test source whose binary was not built and a unit binary
# whose source is gone are failures. cmocka tests that skip inside a binary
# that passes are counted as skips. With CI=true (or 1) every skip is a
# failure, except those named in ci_allowed_skips below with the reason.
# TERRANE_UNIT_WRAPPER (a command line, e.g. valgrind and its options) runs
# each unit binary under it.
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
ci=false
case "${CI:-}" in true | 1) ci=true ;; esac

# Skips CI accepts: "<test name> <reason>". None on the Debian 12 machine that
# `make test` sets up (scripts/deps.sh installs every optional dependency).
ci_allowed_skips=(
)
skip_allowed() { # name
  local entry
  for entry in ${ci_allowed_skips[@]+"${ci_allowed_skips[@]}"}; do
    [ "${entry%% *}" = "$1" ] && return 0
  done
  return 1
}
matches() { [ -z "${TESTS:-}" ] || [[ "$1" == *"$TESTS"* ]]; }
# A failure found without running anything (a file that cannot run).
broken() { # name message
  matches "$1" || return 0
  fail=$((fail + 1)); failed+=("$1"); printf 'FAIL  %-52s %s\n' "$1" "$2"
}
# Counts a skip: with CI=true a failure unless allowed.
count_skip() { # name why
  if $ci && ! skip_allowed "$1"; then
    fail=$((fail + 1)); failed+=("$1"); printf 'FAIL  %-52s skipped under CI=true: %s\n' "$1" "$2"
  else
    skip=$((skip + 1)); printf 'SKIP  %-52s %s\n' "$1" "$2"
  fi
}

run_one() { # name, command...
  local name=$1; shift
  matches "$name" || return 0
  local log="$logs/${name//\//_}.log" start=$SECONDS rc
  "$@" >"$log" 2>&1
  rc=$?
  local took=$((SECONDS - start))
  if [ $rc = 0 ]; then
    pass=$((pass + 1)); printf 'PASS  %-52s %4ss\n' "$name" "$took"
    # cmocka prints "[  SKIPPED ] <test>" for each skipped test (and again
    # under its summary line "[  SKIPPED ] N test(s), listed below:").
    local t
    while IFS= read -r t; do
      [ -n "$t" ] && count_skip "$name:$t" "cmocka test skipped"
    done < <(sed -n 's/^\[  SKIPPED \] \([A-Za-z_][A-Za-z0-9_]*\)$/\1/p' "$log" | sort -u)
  elif [ $rc = 77 ]; then
    count_skip "$name" "$(tail -n 1 "$log")"
  else
    fail=$((fail + 1)); failed+=("$name"); printf 'FAIL  %-52s %4ss (exit %d)\n' "$name" "$took" "$rc"
    # the failed checks first (a suite's dump of logs after them would
    # push them out of the tail), then the tail
    grep -m 20 -E '^(FAIL:|\[  FAILED  \]|==[0-9]+==ERROR)' "$log" | sed 's/^/      ! /'
    tail -n 40 "$log" | sed 's/^/      | /'
  fi
}

# cmocka unit tests: one binary per tests/unit/<side>/test_*.c.
for src in "$ROOT"/tests/unit/*/test_*.c; do
  [ -f "$src" ] || continue
  side=$(basename "$(dirname "$src")") base=$(basename "$src" .c)
  [ -x "$TERRANE_BUILD/tests/$side/$base" ] \
    || broken "unit/$side/$base" "not built ($BUILD/tests/$side/$base; make unit)"
done
for t in "$TERRANE_BUILD"/tests/*/test_*; do
  [ -e "$t" ] || continue
  side=$(basename "$(dirname "$t")") base=$(basename "$t")
  if [ ! -f "$ROOT/tests/unit/$side/$base.c" ]; then
    broken "unit/$side/$base" "left in $BUILD/tests/$side without a source (tests/unit/$side/$base.c is gone; remove it)"
    continue
  fi
  # shellcheck disable=SC2086
  run_one "unit/$side/$base" ${TERRANE_UNIT_WRAPPER:-} "$t"
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
      [ -f "$t" ] || continue
      if [ ! -x "$t" ]; then
        broken "$suite/$(basename "$t")" "not executable (chmod +x tests/$suite/$(basename "$t"))"
        continue
      fi
      run_one "$suite/$(basename "$t")" "$t"
    done
  done
fi

echo
[ ${#failed[@]} -gt 0 ] && printf 'failed: %s\n' "${failed[@]}"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail = 0 ]
