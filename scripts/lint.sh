#!/usr/bin/env bash
# make lint: cppcheck, then clang-tidy (checks in .clang-tidy) on the
# project's own C: worker/ and controller/ (tests and fuzz targets are
# checked by the compiler and the sanitizers). Each side is compiled with the
# flags the Makefile gives it. Exits non-zero on any finding.
#   scripts/lint.sh BUILD [JOBS]
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
JOBS=${2:-$(nproc)}
rc=0
start=$SECONDS
# cppcheck sees the schemas of $BUILD/gen but not the UI bundle: a 2 MB byte
# array that takes it tens of minutes to parse and holds no code.
lint_gen="$BUILD/lint-gen"
rm -rf "$lint_gen" && mkdir -p "$lint_gen" && cp "$BUILD"/gen/*_schema.inc "$lint_gen"/
cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
  --suppress=missingIncludeSystem -Iproto -Iworker -Icontroller -I"$lint_gen" worker controller || rc=1
echo "lint: cppcheck $((SECONDS - start))s"
start=$SECONDS
W="-std=c11 -D_GNU_SOURCE -Iproto -Iworker -I$BUILD/gen $(pkg-config --cflags gdal libcurl libcjson openssl) -DTERRANE_VERSION=\"lint\""
C="-std=c11 -D_GNU_SOURCE -Iproto -Icontroller -I$BUILD/gen $(pkg-config --cflags libcurl jansson openssl yaml-0.1 libwebsockets) -DTERRANE_VERSION=\"lint\""
export W C
tidy_one() { # file
  local flags=$C
  [[ "$1" == worker/* ]] && flags=$W
  # shellcheck disable=SC2086
  clang-tidy --quiet "$1" -- $flags 2>/dev/null
}
export -f tidy_one
out=$(ls worker/*.c controller/*.c controller/kube/*.c controller/lib/*.c |
  xargs -P "$JOBS" -I{} bash -c 'tidy_one "$1" || echo "clang-tidy failed on $1"' _ {})
if [ -n "$out" ]; then
  printf '%s\n' "$out"
  rc=1
fi
echo "lint: clang-tidy $((SECONDS - start))s"
[ $rc = 0 ] && echo "lint: clean"
exit $rc
