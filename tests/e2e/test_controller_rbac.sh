#!/usr/bin/env bash
# test_controller_rbac.sh - the controller with exactly the ServiceAccount and
# RBAC the Helm chart renders, on a kubesim that authenticates (TLS, bearer
# tokens) and authorizes with RBAC (tests/kubesim/rbac.py):
#   - an unknown token is 401; a ServiceAccount without bindings gets 403
#     with the real server's message;
#   - the controller, authenticated as the chart's terrane-controller
#     ServiceAccount (a TokenRequest token, as the projected token in its
#     pod), materializes the graph, takes the Lease in the release namespace
#     and records Events: so a permission the chart forgot fails here;
#   - with "create pods" taken from its ClusterRole, the next asset gets no
#     pod and the controller logs the 403 naming the missing permission.
. "$(dirname "$0")/lib.sh"
trap 'e2e_dump; _run_cleanups' EXIT
HELM=$("$ROOT/scripts/helm.sh" 2>"$TMP/helm.err") || { fail "no helm: $(cat "$TMP/helm.err")"; finish; }
ADMIN_TOKEN=$($PY -c 'import secrets; print(secrets.token_hex(16))')
E2E_KUBESIM_ARGS="--tls --token $ADMIN_TOKEN --authorization RBAC"
e2e_start
REL=terrane-system
kubectl --kubeconfig "$KUBECONFIG" create namespace "$REL" >/dev/null || { fail "create namespace $REL"; finish; }

# The chart's ServiceAccounts and RBAC, as helm renders them for worker namespace hydro.
"$HELM" template terrane "$ROOT/helm/terrane" --namespace "$REL" --set "worker.namespaces={$NS}" \
  >"$TMP/chart.yaml" 2>"$TMP/helm.err" || { fail "helm template: $(cat "$TMP/helm.err")"; finish; }
KUBECONFIG=/dev/null kubectl annotate --local -f "$TMP/chart.yaml" -o 'jsonpath={@}{"\n"}' terrane.invalid/none- |
  $PY -c '
import json, sys
keep = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
docs = [json.loads(l) for l in sys.stdin if l.strip()]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": [d for d in docs if d["kind"] in keep]}))' \
  >"$TMP/rbac.json" || { fail "extracting the chart's RBAC"; finish; }
if out=$(kubectl --kubeconfig "$KUBECONFIG" apply -f "$TMP/rbac.json" 2>&1); then
  ok "the chart's ServiceAccounts and RBAC applied ($(echo "$out" | grep -c .) objects)"
else
  fail "applying the chart's RBAC: $out"; finish
fi

# token_kubeconfig SA_NAMESPACE SA_NAME FILE: a kubeconfig of the admin one with that SA's token.
token_kubeconfig() {
  local tok
  tok=$(kubectl --kubeconfig "$KUBECONFIG" create token "$2" -n "$1" 2>&1) || { fail "kubectl create token $2: $tok"; return 1; }
  sed "s|^    token: .*|    token: $tok|" "$KUBECONFIG" >"$3"
}

# --- authentication and a ServiceAccount without permissions --------------------------------
sed "s|^    token: .*|    token: not-a-token|" "$KUBECONFIG" >"$TMP/bad.kubeconfig"
out=$(kubectl --kubeconfig "$TMP/bad.kubeconfig" -n "$NS" get am 2>&1)
assert_contains "$out" "You must be logged in to the server (Unauthorized)" "an unknown token is 401"
kubectl --kubeconfig "$KUBECONFIG" -n "$REL" create serviceaccount nobody >/dev/null || fail "create serviceaccount nobody"
token_kubeconfig "$REL" nobody "$TMP/nobody.kubeconfig"
out=$(kubectl --kubeconfig "$TMP/nobody.kubeconfig" -n "$NS" get am 2>&1)
assert_eq 'Error from server (Forbidden): assetmaterializations.terrane.io is forbidden: User "system:serviceaccount:terrane-system:nobody" cannot list resource "assetmaterializations" in API group "terrane.io" in the namespace "hydro"' \
  "$out" "a ServiceAccount without bindings: 403 with the real server's message"
out=$(kubectl --kubeconfig "$TMP/nobody.kubeconfig" get nodes 2>&1)
assert_contains "$out" 'cannot list resource "nodes" in API group "" at the cluster scope' "403 at the cluster scope"

# --- the controller with the chart's permissions ------------------------------------------------
token_kubeconfig "$REL" terrane-controller "$TMP/ctl.kubeconfig" || finish
# with the lineage UI on, as the chart's default (ui.enabled): its Events informer is allowed too
KUBECONFIG=$TMP/ctl.kubeconfig ctl_start ctl --pod-gc-delay 600 --lease-namespace "$REL" --ui-addr 127.0.0.1:0
holder() { kubectl --kubeconfig "$KUBECONFIG" -n "$REL" get lease terrane-controller -o 'jsonpath={.spec.holderIdentity}' 2>/dev/null; }
holder_is() { [ "$(holder)" = "$1" ]; }
wait_until 20 "the controller holds the Lease in $REL" holder_is ctl
k apply -f "$E2E/testdata/graph.yaml" >/dev/null || fail "kubectl apply graph.yaml"
if k wait --for=condition=Ready am --all --timeout=120s >/dev/null; then
  ok "every asset Ready with the chart's RBAC only"
else
  fail "not every asset became Ready with the chart's RBAC"
fi
events=$(k get events -o 'jsonpath={range .items[*]}{.reason}{"\n"}{end}' 2>/dev/null | grep -c .)
[ "$events" -gt 0 ] && ok "the controller recorded $events Events" || fail "no Events recorded"
ui=$(grep -o '"msg":"serving the lineage UI".*"port":[0-9]*' "$TMP/ctl.log" | grep -o '[0-9]*$' | head -n 1)
first=$(k get am -o 'jsonpath={.items[0].metadata.name}')
ui_events() { curl -sf "http://127.0.0.1:$ui/api/v1/namespaces/$NS/assets/$first" | grep -q '"events":\[{'; }
wait_until 20 "the UI shows the Events of $first (the chart lets it list and watch them)" ui_events
n403=$(grep -c 'is forbidden: User' "$TMP/ctl.log")
assert_eq 0 "$n403" "the controller was never refused a request"

# --- a permission the chart forgot fails -----------------------------------------------------------
kubectl --kubeconfig "$KUBECONFIG" get clusterrole terrane-controller -o json | $PY -c '
import json, sys
r = json.load(sys.stdin)
for rule in r["rules"]:
    if "pods" in rule.get("resources", []) and "" in rule.get("apiGroups", []):
        rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
print(json.dumps(r))' >"$TMP/cr.json"
kubectl --kubeconfig "$KUBECONFIG" apply -f "$TMP/cr.json" >/dev/null || fail "re-applying the ClusterRole without create pods"
k apply -f - >/dev/null <<'EOF'
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata:
  name: no-pod-permission
spec:
  assetKey: hydrology/no_pod_permission
  operation: cog
  inputs:
    - name: dem
      uri: s3://raw/elev.tif
  output: {uri: s3://assets}
EOF
wait_until 30 "without create pods the controller logs the 403" \
  grep -q 'pods is forbidden: User \\"system:serviceaccount:terrane-system:terrane-controller\\" cannot create resource \\"pods\\" in API group \\"\\" in the namespace \\"hydro\\"' "$TMP/ctl.log"
assert_eq "" "$(pods_of no-pod-permission)" "no pod was created without the permission"
ctl_stop ctl
finish
