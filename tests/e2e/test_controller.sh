#!/usr/bin/env bash
# test_controller.sh - terrane-controller against kubesim, the real kubectl,
# the real terrane-worker and an S3 server on loopback:
#   - a three-asset graph (COG -> slope on the highmem pool -> zonal stats per
#     commune) becomes Ready; lineage, data versions, pools and nodes agree;
#     `kubectl get am` shows the printer columns;
#   - changing the upstream's params makes the downstream assets Stale, then
#     re-materialize with new data versions;
#   - bad input data fails once, without retries; an invalid spec fails with a
#     message naming the field and never starts a pod; both end `kubectl wait
#     --for=condition=Failed` and show their reason in `kubectl get am`; a
#     param the CRD's rules see is rejected by kubectl apply; a dependency cycle is
#     reported without pods and without a hot loop;
#   - a missing upstream waits, then proceeds when the upstream appears;
#   - SIGTERM: graceful shutdown, exit status 0.
. "$(dirname "$0")/lib.sh"
trap 'e2e_dump; _run_cleanups' EXIT

e2e_start
ctl_start ctl --pod-gc-delay 600 --leader-elect=false

# --- the graph ---------------------------------------------------------------------
k apply -f "$E2E/testdata/graph.yaml" >/dev/null || fail "kubectl apply graph.yaml"
if k wait --for=condition=Ready am --all --timeout=90s >/dev/null; then
  ok "kubectl wait --for=condition=Ready am --all"
else
  fail "the graph did not become Ready"
fi

header=$(k get am 2>&1 | head -n 1)
for col in NAME ASSET OPERATION POOL PHASE REASON VERSION AGE; do
  assert_contains "$header" "$col" "printer column $col"
done
row=$(k get am dem-slope --no-headers 2>&1)
assert_contains "$row" "hydrology/dem_slope" "dem-slope row shows the asset key"
assert_contains "$row" "highmem" "dem-slope row shows its pool"
assert_contains "$row" "Succeeded" "dem-slope row shows the phase"
assert_contains "$row" "$(am_get dem-slope '{.status.shortDataVersion}')" "dem-slope row shows the short data version"

# lineage: each downstream read exactly the upstream's current output
check_lineage() { # downstream input upstream
  local dv up_dv uri up_uri key up_key
  dv=$(am_get "$1" "{.status.lineage[?(@.input==\"$2\")].dataVersion}")
  uri=$(am_get "$1" "{.status.lineage[?(@.input==\"$2\")].uri}")
  key=$(am_get "$1" "{.status.lineage[?(@.input==\"$2\")].assetKey}")
  up_dv=$(am_get "$3" '{.status.dataVersion}')
  up_uri=$(am_get "$3" '{.status.output.uri}')
  up_key=$(am_get "$3" '{.spec.assetKey}')
  assert_eq "$up_dv" "$dv" "$1 lineage[$2].dataVersion == $3 status.dataVersion"
  assert_eq "$up_uri" "$uri" "$1 lineage[$2].uri == $3 status.output.uri"
  assert_eq "$up_key" "$key" "$1 lineage[$2].assetKey == $3 spec.assetKey"
}
check_lineage dem-slope dem dem-cog
check_lineage slope-by-commune slope dem-slope
assert_eq "s3://raw/lux.shp" "$(am_get slope-by-commune '{.status.lineage[?(@.input=="communes")].uri}')" \
  "external input in the lineage"

# outputs exist where the status says, under <prefix>/<ns>/<assetKey>/<dv hex>/
for am in dem-cog dem-slope slope-by-commune; do
  uri=$(am_get $am '{.status.output.uri}')
  dv=$(am_get $am '{.status.dataVersion}')
  key=$(am_get $am '{.spec.assetKey}')
  assert_contains "$uri" "s3://assets/$NS/$key/${dv#sha256:}/" "$am output under its content-addressed prefix"
  if s3_exists "$uri"; then ok "$am output object exists"; else fail "$am output $uri missing"; fi
  manifest=$(am_get $am '{.status.output.manifest}')
  if s3_exists "$manifest"; then ok "$am manifest exists"; else fail "$am manifest missing"; fi
  checksum=$(am_get $am '{.status.output.checksum}')
  [[ "$checksum" =~ ^1220[0-9a-f]{64}$ ]] && ok "$am checksum is a multihash" || fail "$am checksum '$checksum'"
done

# pods ran on nodes of the pools their tags name, and were built right
for am in dem-cog:cpu dem-slope:highmem slope-by-commune:cpu; do
  name=${am%%:*} want=${am##*:}
  pods=$(pods_of "$name")
  assert_eq 1 "$(echo "$pods" | grep -c .)" "$name ran exactly one pod"
  pod=$(echo "$pods" | head -n 1)
  node=$(k get pod "$pod" -o 'jsonpath={.spec.nodeName}')
  pool=$(kubectl --kubeconfig "$KUBECONFIG" get node "$node" -o 'jsonpath={.metadata.labels.terrane\.io/pool}' 2>/dev/null)
  assert_eq "$want" "$pool" "$name's pod ran on a $want node ($node)"
  assert_eq "$node" "$(am_get "$name" '{.status.node}')" "$name status.node"
  assert_eq "$want" "$(am_get "$name" '{.status.pool}')" "$name status.pool"
done
pod=$(pods_of dem-slope | head -n 1)
spec=$(k get pod "$pod" -o json)
assert_eq "AssetMaterialization/dem-slope/true/true" \
  "$(echo "$spec" | json_get - 'd["metadata"]["ownerReferences"][0]["kind"]+"/"+d["metadata"]["ownerReferences"][0]["name"]+"/"+str(d["metadata"]["ownerReferences"][0]["controller"]).lower()+"/"+str(d["metadata"]["ownerReferences"][0]["blockOwnerDeletion"]).lower()')" \
  "pod is owned by its AssetMaterialization"
assert_eq "Never FallbackToLogsOnError true false ALL RuntimeDefault" \
  "$(echo "$spec" | json_get - '" ".join([d["spec"]["restartPolicy"], d["spec"]["containers"][0]["terminationMessagePolicy"], str(d["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"]).lower(), str(d["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"]).lower(), d["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"][0], d["spec"]["securityContext"]["seccompProfile"]["type"]])')" \
  "pod: restartPolicy, termination message policy, restricted security context"
assert_eq "1Gi" "$(echo "$spec" | json_get - 'd["spec"]["containers"][0]["resources"]["requests"]["memory"]')" \
  "pod has the highmem pool's requests"

# --- the GPU pool: tainted, no node until the autoscaler adds one ------------------
k apply -f "$E2E/testdata/gpu.yaml" >/dev/null || fail "kubectl apply gpu.yaml"
if k wait --for=condition=Ready am/dem-hillshade --timeout=60s >/dev/null; then
  ok "dem-hillshade (gpu) became Ready"
else
  fail "dem-hillshade (gpu) did not become Ready"
fi
pod=$(pods_of dem-hillshade | head -n 1)
node=$(k get pod "$pod" -o 'jsonpath={.spec.nodeName}')
assert_eq gpu "$(kubectl --kubeconfig "$KUBECONFIG" get node "$node" -o 'jsonpath={.metadata.labels.terrane\.io/pool}' 2>/dev/null)" \
  "dem-hillshade ran on a gpu node ($node)"
assert_eq nvidia.com/gpu "$(k get pod "$pod" -o 'jsonpath={.spec.tolerations[0].key}')" "the gpu pod tolerates the taint"
ev=$(k get events --field-selector "involvedObject.name=$pod" -o 'jsonpath={.items[*].reason}' 2>&1)
assert_contains "$ev" "TriggeredScaleUp" "the gpu pod waited for the autoscaler"
k delete am dem-hillshade >/dev/null

# --- a spec change upstream: the downstream assets become Stale, then catch up -----
old_cog=$(am_get dem-cog '{.status.dataVersion}')
old_slope=$(am_get dem-slope '{.status.dataVersion}')
old_stats=$(am_get slope-by-commune '{.status.dataVersion}')
k patch am dem-cog --type merge -p '{"spec":{"params":{"compression":"ZSTD"}}}' >/dev/null || fail "kubectl patch"
caught_up() {
  local dv
  dv=$(am_get slope-by-commune '{.status.dataVersion}')
  [ -n "$dv" ] && [ "$dv" != "$old_stats" ] && [ "$(ready_status slope-by-commune)" = True ]
}
wait_until 90 "the change reached slope-by-commune" caught_up
k wait --for=condition=Ready am --all --timeout=30s >/dev/null || fail "not all Ready after the change"
[ "$(am_get dem-cog '{.status.dataVersion}')" != "$old_cog" ] && ok "dem-cog has a new data version" || fail "dem-cog data version unchanged"
[ "$(am_get dem-slope '{.status.dataVersion}')" != "$old_slope" ] && ok "dem-slope has a new data version" || fail "dem-slope data version unchanged"
check_lineage dem-slope dem dem-cog
check_lineage slope-by-commune slope dem-slope
for am in dem-slope slope-by-commune; do
  ev=$(k get events --field-selector "involvedObject.name=$am,reason=UpstreamChanged" -o 'jsonpath={.items[*].message}' 2>&1)
  assert_contains "$ev" "an upstream changed" "$am became Stale (Event UpstreamChanged)"
  assert_eq "False" "$(am_get $am '{.status.conditions[?(@.type=="Stale")].status}')" "$am is no longer Stale"
  assert_eq 2 "$(pods_of $am | grep -c .)" "$am ran one more pod"
done
assert_eq "Materialized" "$(ready_reason dem-cog)" "dem-cog Ready reason"

# --- failure cases -------------------------------------------------------------------
k apply -f "$E2E/testdata/cases.yaml" >/dev/null || fail "kubectl apply cases.yaml"
wait_until 60 "bad-input fails with BadInput" bash -c "[ \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get am bad-input -o 'jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}')\" = BadInput ]"
wait_until 20 "bad-spec fails with InvalidSpec" bash -c "[ \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get am bad-spec -o 'jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}')\" = InvalidSpec ]"
wait_until 20 "cyc-a reports DependencyCycle" bash -c "[ \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get am cyc-a -o 'jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}')\" = DependencyCycle ]"
wait_until 20 "cyc-b reports DependencyCycle" bash -c "[ \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get am cyc-b -o 'jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}')\" = DependencyCycle ]"
# A window the controller demonstrably worked through (a marker asset runs a
# pod to Ready), not a fixed sleep: a wrong retry or a hot loop would show.
window() { # name
  k apply -f - >/dev/null <<EOF
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: $1}
spec:
  assetKey: test/$1
  operation: cog
  inputs: [{name: dem, uri: "s3://raw/elev.tif"}]
  output: {uri: "s3://assets"}
EOF
  k wait --for=condition=Ready "am/$1" --timeout=60s >/dev/null && ok "window $1: a marker asset ran to Ready" ||
    fail "window $1: the marker asset did not become Ready"
}
window window-1
assert_eq "Failed" "$(am_get bad-input '{.status.phase}')" "bad-input phase"
# its missing input is found by the input's observation, before any worker pod
assert_eq 0 "$(pods_of bad-input | grep -c .)" "bad-input ran no worker pod"
assert_eq 1 "$(k get pods -l terrane.io/source=bad-input-in-a -o name | grep -c .)" "bad-input's input was observed once"
assert_eq "" "$(am_get bad-input '{.status.retries}')" "bad-input was not retried"
assert_contains "$(am_get bad-input '{.status.message}')" "s3://raw/does-not-exist.tif does not exist (HTTP 404)" "bad-input message has the observation's reason"
assert_contains "$(am_get bad-spec '{.status.message}')" "spec.params.expression" "bad-spec message names the field"
echo "bad-spec: $(am_get bad-spec '{.status.message}')"
if k wait --for=condition=Failed am/bad-spec am/bad-input --timeout=10s >/dev/null; then
  ok "kubectl wait --for=condition=Failed ends on the failed assets"
else
  fail "kubectl wait --for=condition=Failed did not end"
fi
row=$(k get am bad-spec --no-headers 2>&1)
assert_contains "$row" "InvalidSpec" "kubectl get am shows the reason"
wide=$(k get am bad-input -o wide 2>&1)
assert_contains "$wide" "MESSAGE" "kubectl get am -o wide has a MESSAGE column"
assert_contains "$wide" "does-not-exist.tif" "kubectl get am -o wide shows the message"
# A param the API server's rules see is rejected at apply time, naming it.
out=$(printf '%s\n' 'apiVersion: terrane.io/v1alpha1' 'kind: AssetMaterialization' \
  'metadata: {name: slop}' 'spec:' '  assetKey: test/slop' '  operation: terrain' \
  '  params: {mode: slop}' '  inputs: [{name: dem, uri: "s3://raw/elev.tif"}]' \
  '  output: {uri: "s3://assets"}' | k apply -f - 2>&1) && fail "mode: slop was accepted"
echo "apply mode: slop: $out"
assert_contains "$out" 'spec.params.mode: Unsupported value: "slop"' "kubectl apply rejects mode: slop naming the param"
# A param the CRD's rules cannot see (nodata, a number or "none"): the policy in crds/.
out=$(printf '%s\n' 'apiVersion: terrane.io/v1alpha1' 'kind: AssetMaterialization' \
  'metadata: {name: nodata-byte}' 'spec:' '  assetKey: test/nodata_byte' '  operation: calc' \
  '  params: {expression: "dem * 2", outputType: Byte, nodata: -9999}' \
  '  inputs: [{name: dem, uri: "s3://raw/elev.tif"}]' '  output: {uri: "s3://assets"}' | k apply -f - 2>&1) \
  && fail "nodata -9999 for Byte was accepted"
echo "apply nodata -9999 for Byte: $out"
assert_contains "$out" "spec.params.nodata: nodata must be representable in Byte" \
  "kubectl apply rejects a nodata out of Byte's range (ValidatingAdmissionPolicy)"
assert_eq "Failed" "$(am_get bad-spec '{.status.phase}')" "bad-spec phase"
assert_eq 0 "$(pods_of bad-spec | grep -c .)" "bad-spec started no pod"
assert_contains "$(am_get cyc-a '{.status.message}')" "cyc-a -> cyc-b -> cyc-a" "cyc-a message shows the cycle"
assert_eq 0 "$( (pods_of cyc-a; pods_of cyc-b) | grep -c .)" "the cycle started no pod"
n=$(( $(reconciles "$TMP/ctl.log" "$NS/cyc-a") + $(reconciles "$TMP/ctl.log" "$NS/cyc-b") ))
before=$n
window window-2
n=$(( $(reconciles "$TMP/ctl.log" "$NS/cyc-a") + $(reconciles "$TMP/ctl.log" "$NS/cyc-b") ))
[ "$n" -le 12 ] && ok "the cycle was reconciled $n times (no hot loop)" || fail "the cycle was reconciled $n times"
assert_eq "$before" "$n" "no reconcile of the cycle while nothing changes"
ev=$(k get events --field-selector involvedObject.name=bad-spec,reason=InvalidSpec -o 'jsonpath={.items[*].type}' 2>&1)
assert_contains "$ev" "Warning" "Event Warning InvalidSpec"

# --- a missing upstream waits, then proceeds --------------------------------------
k apply -f "$E2E/testdata/late-down.yaml" >/dev/null
wait_until 20 "late-down waits with UpstreamMissing" bash -c "[ \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get am late-down -o 'jsonpath={.status.conditions[?(@.type==\"UpstreamReady\")].reason}')\" = UpstreamMissing ]"
assert_eq "Waiting" "$(am_get late-down '{.status.phase}')" "late-down phase Waiting"
assert_contains "$(am_get late-down '{.status.message}')" '"late-up"' "late-down message names the missing upstream"
k apply -f "$E2E/testdata/late-up.yaml" >/dev/null
if k wait --for=condition=Ready am/late-up am/late-down --timeout=60s >/dev/null; then
  ok "late-down proceeds once late-up exists"
else
  fail "late-down did not proceed"
fi

# --- graceful shutdown ---------------------------------------------------------------
ctl_stop ctl
assert_eq 0 "$CTL_RC" "SIGTERM: exit status 0"
assert_contains "$(tail -n 3 "$TMP/ctl.log")" '"msg":"stopped"' "SIGTERM: the controller logs its stop"
finish
