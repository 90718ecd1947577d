#!/usr/bin/env bash
# `terrane-worker --help` lists every operation of the task contract with a
# line each, and `terrane-worker ops [OPERATION]` prints every param of every
# operation's params schema (proto/schema/task.v1.json), with its allowed
# values; an unknown operation exits 64 (usage).
# Exit 0 pass, 77 skip (worker not built), anything else fail.
set -uo pipefail
ROOT=${TERRANE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${TERRANE_BUILD:-$ROOT/build}
WORKER=$BUILD/terrane-worker
[ -x "$WORKER" ] || { echo "skip: terrane-worker not built ($WORKER)"; exit 77; }
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

TMPF=$(mktemp); trap 'rm -f "$TMPF"' EXIT
help=$("$WORKER" --help) || fail "--help exits non-zero"
all=$("$WORKER" ops) || fail "ops exits non-zero"
# operation, then its params, one line each, from the schema's per-operation blocks
python3 - "$ROOT/proto/schema/task.v1.json" >"$TMPF" <<'PY' || fail "cannot read the schema"
import json, sys
s = json.load(open(sys.argv[1]))
def res(x):
    while isinstance(x, dict) and "$ref" in x:
        x = s["$defs"][x["$ref"].split("/")[-1]]
    return x
for b in s["allOf"]:
    op = b.get("if", {}).get("properties", {}).get("operation", {}).get("const")
    if op:
        p = res(b["then"].get("properties", {}).get("params", {}))
        print(op, " ".join(p.get("properties", {})))
PY
exp=$TMPF
while read -r op params; do
  grep -qE "^  $op +[a-z]" <<<"$help" && ok "--help lists $op" || fail "--help does not list $op: $help"
  one=$("$WORKER" ops "$op") || { fail "ops $op exits non-zero"; continue; }
  missing=""
  for p in $params; do grep -qE "^  $p +[a-z]" <<<"$one" || missing="$missing $p"; done
  [ -z "$missing" ] && ok "ops $op prints its params ($params)" || fail "ops $op lacks:$missing"
  grep -q "^$op\$" <<<"$all" || fail "ops does not print $op"
done <"$exp"

grep -q "one of hillshade, slope, aspect, TRI, TPI, roughness (required)" <<<"$("$WORKER" ops terrain)" \
  && ok "ops terrain: mode's values, required" || fail "ops terrain: mode"
"$WORKER" ops no-such-op >/dev/null 2>&1
rc=$?
[ "$rc" = 64 ] && ok "ops no-such-op exits 64" || fail "ops no-such-op exits $rc"
[ "$fails" = 0 ] && { echo "all checks passed"; exit 0; }
echo "$fails check(s) failed"; exit 1
