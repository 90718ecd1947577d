#!/usr/bin/env bash
# Installing on a cluster, with the real kubectl against tests/kubesim:
#  - `kubectl apply -f crds/` registers the CRD (Established, short name am,
#    category terrane, printer columns);
#  - every example of crds/examples/ applies (server-side schema checks with
#    kubectl's default strict field validation) and lists with `kubectl get am`;
#  - invalid AssetMaterializations are rejected by the API server with a
#    message naming the field (required fields, enums, bounds, patterns,
#    unknown fields); the CEL rule is reported, not required, while kubesim
#    does not evaluate CEL;
#  - the rendered chart (defaults plus ServiceMonitor, with a stand-in for the
#    Prometheus Operator's CRD, and NetworkPolicy):
#    `kubectl apply --dry-run=client`, `--dry-run=server`, then apply, for
#    every kind kubesim serves; the kinds it does not serve are listed;
#  - when terrane-controller is built: it starts with exactly the arguments
#    the chart renders (files from the rendered ConfigMaps), answers /healthz
#    and /readyz, and takes the leader Lease.
# Exit 0 pass, 77 skip (no kubectl/helm), else fail (kubesim not starting included).
. "$(dirname "$0")/lib.sh"
need_kubectl
need_helm
kubesim_start || { fail "kubesim did not start (tests/kubesim/kubesim.py)"; finish; }
export KUBECONFIG=$KS_KUBECONFIG
K() { kubectl --request-timeout=20s "$@"; }
NS=terrane-system

# expect_ok WHAT CMD...: passes when CMD exits 0.
expect_ok() {
  local what=$1 out; shift
  if out=$("$@" 2>&1); then ok "$what"; else fail "$what: $out"; fi
}

# --- CRD --------------------------------------------------------------------------------
expect_ok "kubectl apply -f crds/" K apply -f "$ROOT/crds/"
expect_ok "CRD Established" K wait --for=condition=Established crd/assetmaterializations.terrane.io --timeout=10s

# --- examples ---------------------------------------------------------------------------
for f in "$ROOT"/crds/examples/*.yaml; do
  expect_ok "kubectl apply -f crds/examples/$(basename "$f")" K apply -f "$f"
done
want=$(cat "$ROOT"/crds/examples/*.yaml | grep -c '^kind: AssetMaterialization$')
have=$(K get am -A -o name 2>/dev/null | grep -c '^assetmaterialization.terrane.io/')
[ "$have" = "$want" ] && ok "kubectl get am -A lists the $want example assets" \
  || fail "kubectl get am -A lists $have assets, the examples have $want"
out=$(K get am -n hydro 2>&1)
[[ "$out" == *"NAME"*"ASSET"*"OPERATION"*"POOL"*"PHASE"* && "$out" == *"dem-slope"*"lux/dem_slope"*"terrain"* ]] \
  && ok "printer columns (ASSET, OPERATION, POOL, PHASE)" || fail "kubectl get am: $out"
out=$(K get terrane -n hydro -o name 2>&1)
[[ "$out" == *"assetmaterialization.terrane.io/l7-ndvi"* ]] && ok "category terrane lists the assets" || fail "kubectl get terrane: $out"
# Re-applying the unchanged examples changes nothing (no generation bump).
gen=$(K get am dem-cog -n hydro -o jsonpath='{.metadata.generation}' 2>&1)
K apply -f "$ROOT/crds/examples/lux-terrain-catchments.yaml" >/dev/null 2>&1
gen2=$(K get am dem-cog -n hydro -o jsonpath='{.metadata.generation}' 2>&1)
[ "$gen" = "$gen2" ] && ok "re-applying an unchanged example keeps generation $gen" || fail "generation $gen -> $gen2 on re-apply"

# --- invalid AssetMaterializations ---------------------------------------------------------
# reject FILE TEXT...: applying tests/install/crd-invalid/FILE fails with every TEXT.
reject() {
  local f=$1 out t; shift
  if out=$(K apply -f "$HERE/crd-invalid/$f" 2>&1); then
    fail "$f: accepted by the API server"; K delete -f "$HERE/crd-invalid/$f" >/dev/null 2>&1; return
  fi
  for t in "$@"; do
    [[ "$out" == *"$t"* ]] || { fail "$f: rejected without '$t': $out"; return; }
  done
  ok "$f rejected: $(printf '%s' "$out" | head -n 1 | cut -c1-160)"
}
reject missing-assetkey.yaml 'spec.assetKey' 'Required value'
reject missing-output.yaml 'spec.output' 'Required value'
reject bad-operation.yaml 'spec.operation' 'Unsupported value: "teleport"'
reject refresh-policy-bad.yaml 'spec.refreshPolicy' 'Unsupported value: "Always"'
reject retries-too-many.yaml 'spec.retries.limit' '20'
reject output-not-s3.yaml 'spec.output.uri'
reject memory-not-a-quantity.yaml 'spec.resources.memory'
reject input-name-not-identifier.yaml 'spec.inputs[0].name'
reject pool-tag-not-string.yaml 'spec.tags'
reject unknown-field.yaml 'unknown field' 'refreshpolicy'
if out=$(K apply -f "$HERE/crd-invalid/input-from-and-uri.yaml" 2>&1); then
  echo "note: kubesim accepted an input with both from and uri: it does not evaluate CEL rules (x-kubernetes-validations); crd_check.mjs checks the rule"
  K delete -f "$HERE/crd-invalid/input-from-and-uri.yaml" >/dev/null 2>&1
elif [[ "$out" == *"each input needs exactly one of from or uri"* ]]; then
  ok "input-from-and-uri.yaml rejected by the CEL rule"
else
  fail "input-from-and-uri.yaml rejected with an unexpected message: $out"
fi

# --- the rendered chart ------------------------------------------------------------------------
if ! "$HELM" template terrane "$ROOT/helm/terrane" --namespace "$NS" --set 'worker.namespaces={hydro}' \
    --set metrics.serviceMonitor.enabled=true --set networkPolicy.enabled=true >"$TMP/chart.yaml" 2>"$TMP/helm.err"; then
  fail "helm template: $(cat "$TMP/helm.err")"; finish
fi
yaml_json "$TMP/chart.yaml" >"$TMP/chart.jsonl" || { fail "kubectl cannot parse the rendered chart"; finish; }
# On a real cluster the Prometheus Operator brings this CRD.
expect_ok "ServiceMonitor CRD (stand-in for the Prometheus Operator's)" K apply -f "$HERE/testdata/servicemonitor-crd.yaml"
K wait --for=condition=Established crd/servicemonitors.monitoring.coreos.com --timeout=10s >/dev/null 2>&1
"$PY" "$HERE/split_served.py" "$TMP/chart.jsonl" "$TMP/served.json" >"$TMP/lacking" || fail "split_served.py failed"
expect_ok "create namespace $NS" K create namespace "$NS"
expect_ok "rendered chart: kubectl apply --dry-run=client" K apply --dry-run=client -f "$TMP/served.json"
expect_ok "rendered chart: kubectl apply --dry-run=server" K apply --dry-run=server -f "$TMP/served.json"
if out=$(K apply -f "$TMP/served.json" 2>&1); then
  ok "rendered chart applied: $(grep -c . <<<"$out") objects"
else
  fail "rendered chart: kubectl apply: $out"
fi
# Every value set (tests/install/values-all.yaml): a server-side dry run.
if "$HELM" template terrane "$ROOT/helm/terrane" --namespace platform -f "$HERE/values-all.yaml" >"$TMP/all.yaml" 2>"$TMP/helm.err" \
    && yaml_json "$TMP/all.yaml" >"$TMP/all.jsonl" && "$PY" "$HERE/split_served.py" "$TMP/all.jsonl" "$TMP/all-served.json" >>"$TMP/lacking"; then
  K create namespace platform >/dev/null 2>&1
  expect_ok "values-all.yaml rendering: kubectl apply --dry-run=server" K apply --dry-run=server -f "$TMP/all-served.json"
else
  fail "values-all.yaml rendering: $(cat "$TMP/helm.err")"
fi
sort -u -o "$TMP/lacking" "$TMP/lacking"
if [ -s "$TMP/lacking" ]; then
  echo "note: kubesim does not serve these kinds of the rendered chart, not applied:"
  sed 's/^/note:   /' "$TMP/lacking"
fi
# what landed is what was rendered
pools=$(K get configmap terrane-pools -n "$NS" -o jsonpath='{.data.pools\.json}' 2>&1)
want=$("$PY" -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l)
    if d["kind"]=="ConfigMap" and "pools.json" in d.get("data",{}): print(d["data"]["pools.json"], end="")' "$TMP/chart.jsonl")
[ "$pools" = "$want" ] && ok "pools ConfigMap stored as rendered" || fail "pools ConfigMap differs: $pools"
auto=$(K get serviceaccount terrane-worker -n hydro -o jsonpath='{.automountServiceAccountToken}' 2>&1)
[ "$auto" = "false" ] && ok "worker ServiceAccount in hydro, automountServiceAccountToken false" || fail "worker ServiceAccount: $auto"
if grep -q '^Deployment ' "$TMP/lacking"; then :; else
  replicas=$(K get deployment terrane-controller -n "$NS" -o jsonpath='{.spec.replicas}' 2>&1)
  [ "$replicas" = 2 ] && ok "controller Deployment stored with 2 replicas" || fail "Deployment: $replicas"
fi

# --- the controller with the chart's arguments ---------------------------------------------------
CTL=${TERRANE_BUILD:-$ROOT/build}/terrane-controller
# http_code URL: the HTTP status of a GET, or 000.
http_code() {
  "$PY" -c 'import sys, urllib.request, urllib.error
try: print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e: print(e.code)
except Exception: print("000")' "$1"
}
if [ ! -x "$CTL" ]; then
  echo "note: $CTL not built: the controller start with the chart's arguments is not checked"
else
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  mkdir -p "$TMP/etc"
  "$PY" - "$TMP/chart.jsonl" "$TMP/etc" "$TMP/ctl.args" "$port" <<'PY'
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
etc, out, port = sys.argv[2], sys.argv[3], sys.argv[4]
for d in docs:
    if d["kind"] == "ConfigMap":
        for k, v in d["data"].items():
            open(f"{etc}/{k}", "w").write(v)
(dep,) = [d for d in docs if d["kind"] == "Deployment"]
# The kubelet's part: $(POD_NAME) from the env; the mounted files are local here.
args = [a.replace("/etc/terrane/", etc + "/").replace("$(POD_NAME)", "terrane-controller-smoke")
        for a in dep["spec"]["template"]["spec"]["containers"][0]["args"]]
args = [f"--metrics-addr=127.0.0.1:{port}" if a.startswith("--metrics-addr=") else a for a in args]
args = ["--ui-addr=127.0.0.1:0" if a.startswith("--ui-addr=") else a for a in args]
open(out, "w").write("\n".join(args + ["--namespace=terrane-smoke"]))
PY
  mapfile -t args <"$TMP/ctl.args"
  K create namespace terrane-smoke >/dev/null 2>&1
  POD_NAME=terrane-controller-smoke POD_NAMESPACE=$NS "$CTL" --kubeconfig "$KUBECONFIG" "${args[@]}" >"$TMP/ctl.log" 2>&1 &
  CTL_PID=$!
  at_exit "kill $CTL_PID 2>/dev/null; wait $CTL_PID 2>/dev/null"
  health=""
  for _ in $(seq 50); do
    health=$(http_code "http://127.0.0.1:$port/healthz")
    [ "$health" = 200 ] && break
    kill -0 "$CTL_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$health" = 200 ]; then
    ok "terrane-controller runs with the chart's arguments; /healthz 200"
    ready=""
    for _ in $(seq 50); do
      ready=$(http_code "http://127.0.0.1:$port/readyz")
      [ "$ready" = 200 ] && break; sleep 0.1
    done
    [ "$ready" = 200 ] && ok "/readyz 200" || fail "/readyz answers $ready"
    holder=""
    for _ in $(seq 50); do
      holder=$(K get lease terrane-controller -n "$NS" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)
      [ -n "$holder" ] && break; sleep 0.1
    done
    [ -n "$holder" ] && ok "the controller holds Lease $NS/terrane-controller ($holder)" || fail "no leader Lease in $NS"
  else
    fail "terrane-controller with the chart's arguments: /healthz $health; log: $(tail -n 20 "$TMP/ctl.log")"
  fi
fi
finish
