#!/usr/bin/env bash
# Params are checked when an AssetMaterialization is applied, by the API
# server's own machinery (the CRD's structural schema and its CEL rules,
# generated from proto/schema/task.v1.json by scripts/gen-crd.py), with the
# real kubectl against tests/kubesim:
#  - the committed CRDs (crds/ and helm/terrane/crds/) are the generated one;
#  - the CRD and the ValidatingAdmissionPolicy for the params CRD rules cannot
#    see (nodata, resolution) register (kubesim refuses what a real API server refuses: a
#    non-structural schema, a non-RE2 pattern, a rule selecting a field CEL
#    cannot see) and every rule is within kubesim's CEL, so none is skipped;
#  - `kubectl explain am.spec.params` lists the params with their descriptions,
#    and resources.cpu/memory are IntOrString quantities;
#  - every golden valid task's params apply, and every golden invalid task
#    whose error is a param is rejected naming it (tests/install/crd_params_check.py).
# Exit 0 pass, 77 skip (no kubectl), anything else fail.
. "$(dirname "$0")/lib.sh"
need_kubectl
if out=$("$PY" "$ROOT/scripts/gen-crd.py" --check 2>&1); then ok "the committed CRDs are the generated one"
else fail "$out"; fi
kubesim_start || { fail "kubesim did not start"; finish; }
export KUBECONFIG=$KS_KUBECONFIG
K() { kubectl --request-timeout=20s "$@"; }

if out=$(K apply -f "$ROOT/crds/" 2>&1); then ok "kubectl apply -f crds/ (the CRD and its params policy)"
else fail "crds/ rejected: $out"; finish; fi
K wait --for=condition=Established crd/assetmaterializations.terrane.io --timeout=10s >/dev/null 2>&1 \
  || fail "CRD not Established"
n=$(yaml_json "$ROOT/crds/terrane.io_assetmaterializations.yaml" | "$PY" -c '
import json, sys
sys.path.insert(0, sys.argv[1])
import cel
crd = json.loads(sys.stdin.readline())
rules = []
def walk(s):
    if isinstance(s, dict):
        rules.extend(r["rule"] for r in s.get("x-kubernetes-validations") or [])
        rules.extend(r["messageExpression"] for r in s.get("x-kubernetes-validations") or [] if "messageExpression" in r)
        for v in s.values(): walk(v)
    elif isinstance(s, list):
        for v in s: walk(v)
walk(crd["spec"]["versions"][0]["schema"])
import subprocess
pol = subprocess.run(["kubectl", "annotate", "--local", "-f", sys.argv[2], "-o", "jsonpath={@}{\"\\n\"}",
                      "terrane.invalid/none-"], capture_output=True, text=True,
                     env={"KUBECONFIG": "/dev/null", "PATH": "/usr/bin:/bin"}).stdout.splitlines()
for doc in map(json.loads, filter(None, pol)):
    rules.extend(v["expression"] for v in doc["spec"].get("validations") or [])
bad = [r for r in rules if cel.compile_rule(r) is None]
for r in bad: print("outside the CEL subset:", r, file=sys.stderr)
print(len(rules) if not bad else -1)' "$ROOT/tests/kubesim" "$ROOT/crds/terrane.io_assetmaterializations-params-policy.yaml")
[ "${n:--1}" -gt 1 ] && ok "all $n CEL rules and message expressions are within kubesim's CEL" \
  || fail "some CEL rules or policy expressions are outside kubesim's subset"

# kubectl's discovery cache may predate the CRD: the first explain refreshes it.
for i in 1 2 3 4 5; do out=$(K explain am.spec.params 2>&1) && break; done
for w in "mode" "gdaldem mode" "expression" "Band-math" "stats" "compression" "terrain:" "zonal-stats:"; do
  [[ "$out" == *"$w"* ]] || { fail "kubectl explain am.spec.params lacks '$w': $out"; break; }
done
[[ "$out" == *"mode"* ]] && ok "kubectl explain am.spec.params shows the params"
out=$(K explain am.spec.params.mode 2>&1)
[[ "$out" == *"hillshade"* && "$out" == *"<string>"* ]] && ok "kubectl explain am.spec.params.mode: <string> with its values" \
  || fail "kubectl explain am.spec.params.mode: $out"

K create namespace golden >/dev/null 2>&1 || fail "create namespace golden"

# resources: IntOrString quantities (kubectl explain can only print <Object> for an
# x-kubernetes-int-or-string field: its description says the type).
out=$(K explain am.spec.resources.cpu 2>&1)
[[ "$out" == *"IntOrString"* && "$out" == *"quantity"* ]] && ok "kubectl explain am.spec.resources.cpu says IntOrString, a quantity" \
  || fail "kubectl explain am.spec.resources.cpu: $out"
am_with_resources() { # NAME RESOURCES-FLOW-MAP
  printf '%s\n' 'apiVersion: terrane.io/v1alpha1' 'kind: AssetMaterialization' \
    "metadata: {name: $1, namespace: golden}" 'spec:' '  assetKey: test/res' '  operation: cog' \
    '  inputs: [{name: dem, uri: "s3://raw/elev.tif"}]' '  output: {uri: "s3://assets"}' "  resources: $2"
}
for r in 'res-int {cpu: 2, memory: 1073741824}' 'res-str {cpu: "500m", memory: "1.5Gi"}' 'res-exp {cpu: "1e3", memory: "1G"}'; do
  if out=$(am_with_resources ${r%% *} "${r#* }" | K apply -f - 2>&1); then ok "resources ${r#* } apply"
  else fail "resources ${r#* } rejected: $out"; fi
done
for r in 'res-bad {cpu: "2 cores"}' 'res-float {cpu: 0.5}' 'res-gb {memory: 8GB}'; do
  if out=$(am_with_resources ${r%% *} "${r#* }" | K apply -f - 2>&1); then fail "resources ${r#* } accepted"
  elif [[ "$out" == *"spec.resources."* ]]; then ok "resources ${r#* } rejected: $(head -n 1 <<<"$out" | cut -c1-160)"
  else fail "resources ${r#* }: $out"; fi
done
"$PY" "$HERE/crd_params_check.py" "$ROOT" "$TMP/golden" || fail "cannot write the golden resources"
K apply -f "$TMP/golden/valid/" >"$TMP/valid.out" 2>"$TMP/valid.err"
K apply -f "$TMP/golden/invalid/" >"$TMP/invalid.out" 2>"$TMP/invalid.err"
cat "$TMP/valid.err" "$TMP/invalid.err" >"$TMP/all.err"
if "$PY" "$HERE/crd_params_check.py" "$ROOT" "$TMP/golden" "$TMP/all.err"; then
  ok "golden tasks: valid params apply, invalid ones are rejected naming the param"
else
  fail "golden tasks through kubectl apply (above)"
fi
finish
