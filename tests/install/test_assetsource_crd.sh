#!/usr/bin/env bash
# The AssetSource CRD with the real kubectl against tests/kubesim:
#  - helm/terrane/crds/ holds the same file as crds/;
#  - `kubectl apply -f crds/` registers it (Established, short name asrc,
#    category terrane, printer columns ASSET URI OBJECTS AVAILABLE VERSION
#    CHANGED OBSERVED, FRESH with -o wide);
#  - every AssetSource of crds/examples/sources/ applies and lists;
#  - each tests/install/asrc-invalid/*.yaml is rejected at apply time with
#    its first line's "# expect: <field> <text>" in the message (OpenAPI
#    patterns, bounds, required fields, unknown fields, and the CEL rules:
#    at most one of intervalSeconds / schedule, timeZone only with schedule,
#    no '..' segment);
#  - observe with a pool alone (no schedule) is accepted, as the controller
#    creates it for a plain uri: input;
#  - `kubectl explain` shows the field descriptions, the rerun annotation
#    included;
#  - the chart lets the controller read AssetSources and write their status.
# Exit 0 pass, 77 skip (no kubectl/helm), else fail.
. "$(dirname "$0")/lib.sh"
need_kubectl
need_helm
CRD=terrane.io_assetsources.yaml
cmp -s "$ROOT/crds/$CRD" "$ROOT/helm/terrane/crds/$CRD" && ok "helm/terrane/crds/$CRD is crds/$CRD" \
  || fail "helm/terrane/crds/$CRD differs from crds/$CRD"

kubesim_start || fail "kubesim did not start"
export KUBECONFIG=$KS_KUBECONFIG
K() { kubectl --request-timeout=20s "$@"; }

if out=$(K apply -f "$ROOT/crds/" 2>&1) && K wait --for=condition=Established crd/assetsources.terrane.io --timeout=10s >/dev/null 2>&1; then
  ok "kubectl apply -f crds/: assetsources.terrane.io Established"
else
  fail "CRD not established: $out"
fi
K create namespace hydro >/dev/null 2>&1
out=$(K apply -f "$ROOT/crds/examples/sources/" 2>&1) && ok "examples apply: $(echo $out)" || fail "examples: $out"
want=$(cat "$ROOT"/crds/examples/sources/*.yaml | grep -c '^kind: AssetSource$')
have=$(K get asrc -n hydro -o name 2>/dev/null | grep -c '^assetsource.terrane.io/')
[ "$have" = "$want" ] && ok "kubectl get asrc lists the $want example sources" || fail "kubectl get asrc lists $have, the examples have $want"
out=$(K get asrc -n hydro 2>&1)
[[ "$out" == *NAME*ASSET*URI*OBJECTS*AVAILABLE*VERSION*CHANGED*OBSERVED*AGE* && "$out" == *precip-2026*lux/precip_2026*'s3://raw/precip/2026/*.tif'* ]] \
  && ok "printer columns" || fail "kubectl get asrc: $out"
out=$(K get asrc -n hydro -o wide 2>&1)
[[ "$out" == *AVAILABLE*FRESH*VERSION* ]] && ok "-o wide adds FRESH" || fail "kubectl get asrc -o wide: $out"
out=$(K get terrane -n hydro -o name 2>&1)
[[ "$out" == *assetsource.terrane.io/raw-dem* ]] && ok "category terrane lists sources" || fail "kubectl get terrane: $out"

# A status written through the status subresource shows in the columns.
st='{"status":{"dataVersion":"sha256:5710a240299403790d387381774cd9d1c17d3dd47e820eaa861bb1c0dc1f711c","shortDataVersion":"5710a2402994","objectCount":1,"bytes":9,"observedAt":"2026-12-02T20:00:00Z","lastChangedAt":"2026-12-02T19:00:00Z","conditions":[{"type":"Available","status":"True","reason":"Observed","message":"1 object","lastTransitionTime":"2026-12-02T19:00:00Z"}]}}'
if out=$(K patch asrc raw-dem -n hydro --subresource=status --type=merge -p "$st" 2>&1); then
  out=$(K get asrc raw-dem -n hydro --no-headers 2>&1)
  [[ "$out" == *"s3://raw/lux/elev.tif"*" 1 "*True*5710a2402994* ]] && ok "status columns: $(echo $out)" || fail "status columns: $out"
else
  fail "status patch: $out"
fi

for f in "$HERE"/asrc-invalid/*.yaml; do
  name=$(basename "$f")
  expect=$(head -n 1 "$f" | sed -n 's/^# expect: //p')
  field=${expect%% *} text=${expect#* }
  if out=$(K apply -f "$f" 2>&1); then
    fail "$name: accepted by the API server"; K delete -f "$f" >/dev/null 2>&1; continue
  fi
  [[ "$out" == *"$field"* && "$out" == *"$text"* ]] && ok "$name rejected: $(printf '%s' "$out" | head -n 1 | cut -c1-150)" \
    || fail "$name: rejected without '$field' and '$text': $out"
done

if out=$(K apply -f - 2>&1 <<'YAML'
apiVersion: terrane.io/v1alpha1
kind: AssetSource
metadata: {name: pool-only, namespace: hydro}
spec:
  assetKey: lux/x
  uri: s3://raw/x.tif
  listing: {uri: s3://assets/sources}
  observe: {pool: highmem}
YAML
); then
  [ "$(K get asrc pool-only -n hydro -o 'jsonpath={.spec.observe.pool}')" = highmem ] &&
    ok "observe: {pool} without a schedule is accepted" || fail "pool-only: observe.pool not kept"
else
  fail "observe: {pool} without a schedule refused: $out"
fi

out=$(K explain asrc 2>&1)
[[ "$out" == *"terrane.io/rerun"* && "$out" == *"terrane-worker"* ]] && ok "kubectl explain asrc documents the rerun annotation" || fail "kubectl explain asrc: $out"
for p in spec.uri spec.observe spec.observe.pool spec.observe.schedule spec.observe.timeZone spec.freshness.maxLagSeconds spec.listing.uri \
         status.dataVersion status.object.etag status.lastChangedAt status.conditions; do
  out=$(K explain "asrc.$p" 2>&1)
  [[ "$out" == *DESCRIPTION:* ]] && [ "$(printf '%s\n' "$out" | sed -n '/DESCRIPTION:/,$p' | wc -w)" -gt 2 ] \
    && ok "kubectl explain asrc.$p" || fail "kubectl explain asrc.$p: $out"
done

# The chart's RBAC: the controller reads sources and writes their status.
"$HELM" template terrane "$ROOT/helm/terrane" >"$TMP/rendered.yaml" 2>&1 || fail "helm template: $(cat "$TMP/rendered.yaml")"
rules=$(yaml_json "$TMP/rendered.yaml" | "$PY" -c 'import json,sys
for line in sys.stdin:
    o=json.loads(line)
    if o.get("kind") in ("ClusterRole","Role") and o["metadata"]["name"].endswith("-controller"):
        for r in o.get("rules",[]):
            for res in r.get("resources",[]):
                for v in r.get("verbs",[]): print(",".join(r.get("apiGroups",[])), res, v)')
for want in "terrane.io assetsources get" "terrane.io assetsources list" "terrane.io assetsources watch" \
            "terrane.io assetsources/status update" "terrane.io assetsources/status patch"; do
  printf '%s\n' "$rules" | grep -qx "$want" && ok "controller role: $want" || fail "controller role lacks $want (rules: $(echo $rules | head -c 300))"
done
finish
