#!/usr/bin/env bash
# make e2e-asan: the end-to-end controller suites once with the controller
# and the worker built with ASan+UBSan (BUILD, default build-asan, built by
# the Makefile). Every sanitizer report goes to a file under
# BUILD/sanitizer-logs (the workers, run by kubesim, get the same options);
# any report fails the run, whatever the suites said.
#   scripts/e2e-sanitized.sh [BUILD]
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-asan}
logs=$PWD/$BUILD/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"
# Leaks are checked by make check-asan on the unit tests; here GDAL's and
# libcurl's process-lifetime caches would be reported at every worker exit.
export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1"
# Workers run with a read-only root (kubesim confines them): the log
# directory is the one place outside their volumes they may write.
export E2E_KUBESIM_WRITABLE=$logs
TESTS=${TESTS:-e2e/test_controller} tests/run.sh all "$BUILD"
rc=$?
reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ]; then
  echo "sanitizer reports:"
  for f in $reports; do echo "--- $f"; head -n 40 "$f"; done
  rc=1
fi
exit $rc
