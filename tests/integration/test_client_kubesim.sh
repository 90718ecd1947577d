#!/usr/bin/env bash
# Integration: the controller's Kubernetes client layer (kube.c, informer.c,
# lease.c, events.c) against tests/kubesim, driven by the kubesim group of
# the cmocka binary tests/unit/controller/test_kube.c: CRUD with 409
# Conflict / AlreadyExists and uid preconditions, paginated lists, watches
# and 410 Gone after compaction, an informer relisting after a dropped
# watch, leader election between three candidates, Event aggregation, and
# the AssetMaterialization status subresource. The real kubectl then checks
# what the client left behind, so both sides agree on the wire format.
set -uo pipefail
ROOT=${TERRANE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${TERRANE_BUILD:-$ROOT/build}
BIN=$BUILD/tests/controller/test_kube
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

skip() { echo "skip: $*"; exit 77; }
[ -x "$BIN" ] || skip "test_kube not built ($BIN)"
[ -f "$ROOT/tests/kubesim/kubesim.py" ] || skip "tests/kubesim missing"
command -v kubectl >/dev/null || skip "kubectl missing"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/terrane-kc.XXXXXX")
KPID=
cleanup() {
  if [ -n "$KPID" ]; then kill "$KPID" 2>/dev/null; wait "$KPID" 2>/dev/null; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
expect_eq() { if [ "$1" == "$2" ]; then ok "$3"; else fail "$3: expected '$1', got '$2'"; fi; }

# kubesim on a free port (it picks one and writes it to the ready file).
"$PY" "$ROOT/tests/kubesim/kubesim.py" --port 0 --kubeconfig "$TMP/kubeconfig" \
  --state-dir "$TMP/state" --ready-file "$TMP/port" --bookmark-interval 1 \
  >"$TMP/kubesim.log" 2>&1 &
KPID=$!
for _ in $(seq 1 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
[ -s "$TMP/port" ] || { cat "$TMP/kubesim.log"; echo "kubesim did not start"; exit 1; }
PORT=$(cat "$TMP/port")
export KUBECONFIG="$TMP/kubeconfig"
export KUBESIM_URL="http://127.0.0.1:$PORT" KUBESIM_KUBECONFIG="$TMP/kubeconfig"

kubectl apply -f "$ROOT/crds/terrane.io_assetmaterializations.yaml" >"$TMP/apply.log" 2>&1 \
  || { cat "$TMP/apply.log"; fail "kubectl apply of the CRD"; }
for _ in $(seq 1 50); do
  kubectl get assetmaterializations >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== test_kube (kubesim group) against $KUBESIM_URL"
if "$BIN"; then ok "client layer against kubesim"; else fail "test_kube kubesim group"; fi

# What the real kubectl sees of the client's writes.
expect_eq "3" "$(kubectl get events --field-selector involvedObject.name=evt-target,reason=TestRepeated \
  -o jsonpath='{.items[0].count}' 2>&1)" "aggregated Event count as kubectl reads it"
expect_eq "terrane-controller" "$(kubectl get events --field-selector involvedObject.name=evt-target,reason=TestOnce \
  -o jsonpath='{.items[0].source.component}' 2>&1)" "Event source.component"
expect_eq "" "$(kubectl get lease terrane-test -o jsonpath='{.spec.holderIdentity}' 2>&1)" \
  "released Lease has no holder"
expect_eq "1" "$(kubectl get lease terrane-test -o jsonpath='{.spec.leaseDurationSeconds}' 2>&1)" \
  "released Lease has leaseDurationSeconds 1"
expect_eq "Pending" "$(kubectl get am client-test -o jsonpath='{.status.phase}' 2>&1)" \
  "AssetMaterialization status written through the status subresource"
expect_eq "520" "$(kubectl get configmaps -l suite=pages -o name 2>&1 | wc -l | tr -d ' ')" \
  "configmaps created for the pagination test"

if [ "$fails" -gt 0 ]; then
  echo "--- kubesim log (tail)"; tail -n 30 "$TMP/kubesim.log"
  echo "$fails check(s) failed" >&2
  exit 1
fi
echo "all checks passed"
