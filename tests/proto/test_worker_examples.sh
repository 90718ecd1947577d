#!/usr/bin/env bash
# Runs `terrane-worker validate --task FILE` on every golden task
# (proto/examples/task/): valid ones must exit 0; invalid ones must exit 65
# (bad input) and print a Result (result.v1.json, <= 4096 bytes, status
# Failed, class BadInput) whose error.field is exactly the case's .field.
# Exit 0 pass, 77 skip (worker not built, node missing), anything else fail.
set -uo pipefail
ROOT=${TERRANE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${TERRANE_BUILD:-$ROOT/build}
WORKER=$BUILD/terrane-worker
EX=$ROOT/proto/examples/task

if [ ! -x "$WORKER" ]; then
  echo "skip: terrane-worker not built ($WORKER)"
  exit 77
fi
if ! command -v node >/dev/null; then
  echo "skip: node not installed (run scripts/deps.sh)"
  exit 77
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/terrane-proto.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# The allowlists the examples are written for: any bucket, https only from
# data.example.com, no local paths. validate does no I/O, but keep whatever
# it might write (termination log, scratch) inside TMP.
export TERRANE_ALLOWED_BUCKETS='*' TERRANE_ALLOWED_HOSTS='data.example.com'
export TERRANE_TERMINATION_LOG=$TMP/termination-log TERRANE_SCRATCH_DIR=$TMP
unset TERRANE_ALLOW_LOCAL_PATHS TERRANE_TASK

fails=0
n=0
run_worker() { # task file -> sets rc; stdout in $TMP/out/<name>, stderr in $TMP/err
  timeout 30 "$WORKER" validate --task "$1" >"$TMP/out/$2" 2>"$TMP/err"
  rc=$?
}
show_output() {
  sed 's/^/      stdout| /' "$TMP/out/$1" | head -n 20
  sed 's/^/      stderr| /' "$TMP/err" | head -n 20
}
mkdir -p "$TMP/out"

for f in "$EX"/valid/*.json; do
  name=valid/$(basename "$f" .json)
  n=$((n + 1))
  run_worker "$f" "${name//\//_}"
  if [ "$rc" = 0 ]; then
    echo "ok   $name"
  else
    echo "FAIL $name: exit $rc, want 0"
    show_output "${name//\//_}"
    fails=$((fails + 1))
  fi
done

: >"$TMP/list"
for f in "$EX"/invalid/*.json; do
  name=invalid/$(basename "$f" .json)
  n=$((n + 1))
  field_file=${f%.json}.field
  if [ ! -f "$field_file" ]; then
    echo "FAIL $name: no .field file"
    fails=$((fails + 1))
    continue
  fi
  run_worker "$f" "${name//\//_}"
  if [ "$rc" != 65 ]; then
    echo "FAIL $name: exit $rc, want 65 (bad input), expected field $(cat "$field_file")"
    show_output "${name//\//_}"
    fails=$((fails + 1))
    continue
  fi
  printf '%s\t%s\t%s\n' "$name" "$TMP/out/${name//\//_}" "$(tr -d '\n' <"$field_file")" >>"$TMP/list"
done

# One node process checks every Result printed for the invalid tasks.
node "$ROOT/tests/proto/check_worker_results.mjs" "$ROOT" "$TMP/list"
fails=$((fails + $?))

echo "$n tasks, $fails failure(s)"
[ "$fails" = 0 ]
