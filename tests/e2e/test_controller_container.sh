#!/usr/bin/env bash
# End-to-end: container assets (operation: container) through the controller
# on kubesim, with the real worker steps, the example image run as a local
# process (examples/ml/kubesim-images.json) and real s3rver.
#
#  1. the ML chain of crds/examples/ml-training.yaml on the DEM and slope of
#     lux-terrain-catchments.yaml: training on the gpu pool (its node added
#     from zero and removed after), then prediction reading the model; the
#     status records imageID, files, metadata and the lineage DEM -> slope ->
#     model -> risk; the pod has the three steps, the user's step without the
#     task or S3 settings and with the IRSA skip annotation; the tag reference
#     gets a Warning Event; inputs[].checksum comes from the upstream status
#  2. user code exiting 65: Failed / BadInput at once, naming the step
#  3. user code exiting 1: retried with backoff, then RetriesExhausted
#  4. the user's container OOMKilled on pool cpu: retried on its oomEscalation
#     pool highmem, where it succeeds
#  5. a changed image reference, then a changed env, is a new data version:
#     the model re-trains and the prediction follows
#  6. user code writing nothing: Failed / BadInput NoOutputs with a clear
#     message; a metadata.json over the result's cap: Succeeded with
#     status.output.metadataTruncated, the whole object in the STAC Item
#  7. user code trying to find S3 credentials (variables, token and credential
#     files, a /vsis3/ read of the upstream COG) finds none and cannot read S3
#  7b. 10,000 small files (2,000 under ASan) from the user's code: one attempt on pool cpu
#     under its 160Mi limit (the publish step's RSS sampled), one manifest
#     listing them all (before 8, which changes the slope they read)
#  8. an upstream object changed after it was published: the fetch step fails
#     with ChecksumMismatch before user code runs, not retried
#  9. RBAC as the chart renders it: worker pods run as the chart's worker
#     ServiceAccount, bound to its <release>-worker-read-pods Role (applied
#     from `helm template`, not written here), which is all the publish
#     step's read of its own pod needs (case 1 records the imageID through
#     it); another ServiceAccount's token is refused the pod with 403
. "$(dirname "$0")/lib.sh"

$PY -c 'import sklearn' 2>/dev/null || skip "python3-sklearn missing: run scripts/deps.sh"
cat >"$TMP/kubesim-pools.json" <<'JSON'
{"pools": [
  {"name": "cpu", "labels": {"terrane.io/pool": "cpu"}, "taints": [],
   "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}, "min": 1, "max": 2},
  {"name": "highmem", "labels": {"terrane.io/pool": "highmem"}, "taints": [],
   "allocatable": {"cpu": "8", "memory": "64Gi", "pods": "110"}, "min": 1, "max": 1},
  {"name": "gpu", "labels": {"terrane.io/pool": "gpu"},
   "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
   "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "1"}, "min": 0, "max": 1}],
 "scaleDownDelaySeconds": 1, "provisionSeconds": 0.3}
JSON
# TLS and RBAC: the publish step reads its own pod over https with the token
# projected into its container, allowed by the chart's worker Role only.
HELM=$("$ROOT/scripts/helm.sh" 2>"$TMP/helm.err") || { fail "no helm: $(cat "$TMP/helm.err")"; finish; }
E2E_KUBESIM_ARGS="--tls --token $($PY -c 'import secrets; print(secrets.token_hex(16))') --authorization RBAC --pools $TMP/kubesim-pools.json --images $ROOT/examples/ml/kubesim-images.json"
# The worker steps find terrane-worker on PATH, as in the image.
export PATH=$BUILD:$PATH
e2e_start
# The worker namespace's objects of the chart (its ServiceAccount, Role and
# RoleBinding), exactly as helm renders them for worker namespace $NS.
"$HELM" template terrane "$ROOT/helm/terrane" --namespace terrane-system --set "worker.namespaces={$NS}" \
  >"$TMP/chart.yaml" 2>"$TMP/helm.err" || { fail "helm template: $(cat "$TMP/helm.err")"; finish; }
$PY - "$TMP/chart.yaml" "$NS" >"$TMP/worker-rbac.json" <<'PY' || { fail "extracting the chart's worker RBAC"; finish; }
import json, sys, yaml
kinds = {"ServiceAccount", "Role", "RoleBinding"}
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] in kinds
        and d["metadata"].get("namespace") == sys.argv[2]]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
PY
assert_eq "Role RoleBinding ServiceAccount" \
  "$(json_get "$TMP/worker-rbac.json" '" ".join(sorted(i["kind"] for i in d["items"]))')" \
  "the chart renders the worker's ServiceAccount, Role and RoleBinding in $NS"
WORKER_SA=$(json_get "$TMP/worker-rbac.json" '[i["metadata"]["name"] for i in d["items"] if i["kind"] == "ServiceAccount"][0]')
k apply -f "$TMP/worker-rbac.json" >/dev/null || fail "applying the chart's worker RBAC"
s3_put "$SAMPLES/elev.tif" s3://raw/lux/elev.tif || fail "uploading the DEM"
# cpu's limit is small so that the OOM case escalates to highmem
cat >"$TMP/pools.json" <<'JSON'
{"defaultPool": "cpu", "pools": {
  "cpu": {"nodeSelector": {"terrane.io/pool": "cpu"}, "oomEscalation": "highmem",
          "resources": {"requests": {"cpu": "500m", "memory": "128Mi"}, "limits": {"memory": "160Mi"}}},
  "highmem": {"nodeSelector": {"terrane.io/pool": "highmem"},
              "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}},
  "gpu": {"nodeSelector": {"terrane.io/pool": "gpu"},
          "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
          "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "1", "memory": "2Gi"}}}}}
JSON
POOLS=$TMP/pools.json
WORKER_COMMAND='["terrane-worker","run"]' ctl_start ctl --leader-elect=false --pod-gc-delay 3600 \
  --worker-service-account "$WORKER_SA"

phase() { am_get "$1" '{.status.phase}'; }
is_phase() { [ "$(phase "$1")" = "$2" ]; }
gpu_nodes() { kubectl get nodes -l terrane.io/pool=gpu -o name 2>/dev/null; }
no_gpu_node() { [ -z "$(gpu_nodes)" ]; }

# --- 1. the ML chain ---------------------------------------------------------------------
assert_eq "" "$(gpu_nodes)" "no GPU node before training"
$PY - "$ROOT/crds/examples/lux-terrain-catchments.yaml" "$ROOT/crds/examples/ml-training.yaml" >"$TMP/chain.yaml" <<'PY'
import sys, yaml
keep = {"dem-cog", "dem-slope", "flood-labels", "flood-model", "flood-risk"}
docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d and d["metadata"]["name"] in keep]
print(yaml.safe_dump_all(docs))
PY
k apply -f "$TMP/chain.yaml" >/dev/null || fail "kubectl apply the chain"
GPU_SEEN=""
# The training pod goes with its GPU node: it is read as soon as it exists.
for _ in $(seq 1 400); do
  [ -n "$(gpu_nodes)" ] && GPU_SEEN=1
  if [ ! -s "$TMP/train-pod.json" ] && [ -n "$(pods_of flood-model)" ]; then
    k get pod "$(pods_of flood-model | head -1)" -o json >"$TMP/train-pod.json" 2>/dev/null
  fi
  is_phase flood-risk Succeeded && break
  is_phase flood-risk Failed && break
  sleep 0.3
done
assert_eq Succeeded "$(phase flood-model)" "training Succeeded ($(am_get flood-model '{.status.message}'))"
assert_eq Succeeded "$(phase flood-risk)" "prediction Succeeded ($(am_get flood-risk '{.status.message}'))"
assert_eq 1 "$GPU_SEEN" "a GPU node was added from zero for the training"
assert_eq gpu "$(am_get flood-model '{.status.pool}')" "training ran on pool gpu"
wait_until 30 "the GPU node is removed after training" no_gpu_node
MODEL=$(am_get flood-model '{.status.output.uri}')
assert_contains "$MODEL" "/lux/flood_model/" "the model is published under the asset's prefix"
assert_contains "$MODEL" "model.pkl" "primaryOutput names status.output.uri"
assert_contains "$(am_get flood-model '{.status.output.imageID}')" "terrane-ml-example@sha256:" "status.output.imageID: the digest the kubelet ran"
assert_eq RandomForestClassifier "$(am_get flood-model '{.status.output.metadata.ml:model}')" "status.output.metadata from metadata.json"
s3_get "$(dirname "$MODEL")/manifest.json" "$TMP/model-manifest.json" || fail "reading the model's manifest"
assert_eq "$(am_get flood-model '{.status.output.imageID}')" "$(json_get "$TMP/model-manifest.json" 'd.get("imageID", "")')" \
  "the manifest records the imageID, read by the publish step from its own pod"
s3_get "$(dirname "$MODEL")/item.json" "$TMP/model-item.json" || fail "reading the model's Item"
assert_eq "$(am_get flood-model '{.status.output.imageID}')" "$(json_get "$TMP/model-item.json" 'd["properties"].get("terrane:imageID", "")')" \
  "the STAC Item records it too (terrane:imageID)"
[ "$(am_get flood-model '{.status.output.files}')" -ge 2 ] && ok "status.output.files counts the published files" ||
  fail "status.output.files: $(am_get flood-model '{.status.output.files}')"
assert_contains "$(am_get flood-risk '{.status.output.uri}')" "risk.tif" "the prediction's primary output is the risk COG"
s3_get "$(am_get flood-risk '{.status.output.uri}')" "$TMP/risk.tif" || fail "reading the risk map"
assert_contains "$(gdalinfo "$TMP/risk.tif" 2>&1)" "LAYOUT=COG" "the risk map is a COG"
assert_eq "model dem slope" "$(am_get flood-risk '{.status.lineage[*].input}')" "prediction lineage: model, dem, slope"
assert_eq "flood-model" "$(am_get flood-risk '{.status.lineage[0].from}')" "prediction reads the model asset"
assert_eq "$(am_get flood-model '{.status.dataVersion}')" "$(am_get flood-risk '{.status.lineage[0].dataVersion}')" \
  "prediction lineage records the model's data version"
assert_eq "dem-cog" "$(am_get dem-slope '{.status.lineage[0].from}')" "slope lineage: the DEM"

[ -s "$TMP/train-pod.json" ] || fail "reading the training pod"
pj() { json_get "$TMP/train-pod.json" "$1"; }
assert_eq "fetch user worker" "$(pj '" ".join([c["name"] for c in d["spec"]["initContainers"] + d["spec"]["containers"]])')" \
  "the pod: init containers fetch and user, then worker"
assert_eq "fetch publish-outputs" "$(pj '"%s %s" % (d["spec"]["initContainers"][0]["command"][-1], d["spec"]["containers"][0]["command"][-1])')" \
  "the worker steps run fetch and publish-outputs"
assert_eq "terrane-ml-example:0.1.0 [\"train\"]" "$(pj '"%s %s" % (d["spec"]["initContainers"][1]["image"], json.dumps(d["spec"]["initContainers"][1]["args"]))')" \
  "the user's step runs spec.container's image and args"
assert_eq "[]" "$(pj 'json.dumps([e["name"] for e in d["spec"]["initContainers"][1]["env"] if e["name"].startswith("AWS_") or e["name"] == "TERRANE_TASK"])')" \
  "the user's step has no task and no S3 settings or credentials"
assert_eq "1" "$(pj 'd["spec"]["initContainers"][1]["resources"]["limits"]["nvidia.com/gpu"]')" "the user's step has the pool's GPU"
assert_eq user "$(pj 'd["metadata"]["annotations"]["eks.amazonaws.com/skip-containers"]')" "IRSA: the user's container gets no role"
assert_eq "$(am_get dem-slope '{.status.output.checksum}')" \
  "$(pj '[i for i in json.loads([e["value"] for e in d["spec"]["initContainers"][0]["env"] if e["name"] == "TERRANE_TASK"][0])["inputs"] if i["name"] == "slope"][0]["checksum"]')" \
  "the task's inputs[].checksum is the upstream's recorded checksum"
assert_contains "$(k get events --field-selector involvedObject.name=flood-model -o 'jsonpath={range .items[*]}{.type} {.reason}{"\n"}{end}')" \
  "Warning ImageNotPinned" "a Warning Event for the tag reference"

# --- 2-4. user code failing ----------------------------------------------------------------
user_am() { # name command-json [retries]
  cat <<YAML | k apply -f - >/dev/null || fail "apply $1"
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: $1}
spec:
  assetKey: test/$1
  operation: container
  container: {image: "terrane-ml-example@sha256:$(printf '%064d' 0)", command: $2}
  inputs: [{name: slope, from: dem-slope}]
  output: {uri: s3://assets}
  retries: {limit: ${3:-1}, backoffSeconds: 1}
YAML
}
user_am bad '["sh", "-c", "echo labels have one class only >&2; exit 65"]'
user_am flaky '["sh", "-c", "echo cannot reach the licence server >&2; exit 1"]'
user_am hungry '["/usr/bin/python3", "-c", "import os, time; b = bytearray(400 << 20); time.sleep(3); open(os.environ[\"TERRANE_OUTPUT_DIR\"] + \"/ok.txt\", \"w\").write(\"ok\")"]' 2
wait_until 60 "user exit 65 fails the asset" is_phase bad Failed
assert_eq BadInput "$(ready_reason bad)" "user exit 65: BadInput"
assert_eq 1 "$(am_get bad '{.status.attempts}')" "user exit 65: not retried"
assert_contains "$(am_get bad '{.status.message}')" "step user of pod" "user exit 65: the message names the step"
assert_contains "$(am_get bad '{.status.message}')" "one class only" "user exit 65: the message has the end of its log"
wait_until 60 "user exit 1 fails the asset after its retry" is_phase flaky Failed
assert_eq RetriesExhausted "$(ready_reason flaky)" "user exit 1: retried until RetriesExhausted"
assert_eq 2 "$(am_get flaky '{.status.attempts}')" "user exit 1: two attempts"
assert_contains "$(am_get flaky '{.status.message}')" "exited with code 1: cannot reach the licence server" "user exit 1: code and log in the message"
wait_until 90 "the OOM-killed asset succeeds after escalating" is_phase hungry Succeeded
assert_eq highmem "$(am_get hungry '{.status.pool}')" "OOMKilled on cpu: retried on the oomEscalation pool highmem"
assert_contains "$(k get events --field-selector involvedObject.name=hungry -o 'jsonpath={range .items[*]}{.message}{"\n"}{end}')" \
  "step user of pod" "the OOMKilled Event names the user's step"
assert_eq "" "$(k get events --field-selector involvedObject.name=hungry,reason=ImageNotPinned -o name)" "no Warning for a digest reference"

# --- 5. a new model code version re-trains, and the prediction follows ------------------------------
# A changed image reference (the code), then a changed env (its configuration):
# each is a new data version of the model, and the prediction re-runs after it.
retrains() { # patch what
  local old_model old_risk
  old_model=$(am_get flood-model '{.status.dataVersion}') old_risk=$(am_get flood-risk '{.status.dataVersion}')
  k patch am flood-model --type merge -p "$1" >/dev/null || fail "patching flood-model ($2)"
  new_risk() { is_phase flood-risk Succeeded && [ "$(am_get flood-risk '{.status.dataVersion}')" != "$old_risk" ]; }
  wait_until 120 "a changed $2 re-trains and the prediction follows" new_risk
  [ "$(am_get flood-model '{.status.dataVersion}')" != "$old_model" ] && ok "$2: the model has a new data version" ||
    fail "$2: the model's data version did not change"
  assert_eq "$(am_get flood-model '{.status.dataVersion}')" "$(am_get flood-risk '{.status.lineage[0].dataVersion}')" \
    "$2: the prediction's lineage names the new model"
}
retrains '{"spec":{"container":{"image":"terrane-ml-example:0.1.1"}}}' "image reference"
retrains '{"spec":{"container":{"env":[{"name":"TREES","value":"20"}]}}}' "spec.container.env"

# --- 6. the user's code writes nothing; a metadata.json over the result's cap ----------------------
user_am empty '["sh", "-c", "echo done, nothing written"]'
user_am bigmeta '["/usr/bin/python3", "-c", "import json, os; d = os.environ[\"TERRANE_OUTPUT_DIR\"]; open(d + \"/m.txt\", \"w\").write(\"m\"); json.dump({\"run\": \"r1\", \"history\": list(range(600))}, open(d + \"/metadata.json\", \"w\"))"]'
wait_until 60 "empty outputs fail the asset" is_phase empty Failed
assert_eq "BadInput 1" "$(ready_reason empty) $(am_get empty '{.status.attempts}')" "empty outputs: BadInput, not retried"
assert_contains "$(am_get empty '{.status.message}')" "wrote no files to its outputs directory" "empty outputs: a clear message"
assert_contains "$(am_get empty '{.status.message}')" "NoOutputs" "empty outputs: the error code"
wait_until 60 "the asset with a large metadata.json succeeds" is_phase bigmeta Succeeded
assert_eq "true" "$(am_get bigmeta '{.status.output.metadataTruncated}')" "metadata.json over 1024 bytes: status.output.metadataTruncated"
assert_eq "" "$(am_get bigmeta '{.status.output.metadata}')" "metadata.json over 1024 bytes: not in the status"
s3_get "$(dirname "$(am_get bigmeta '{.status.output.uri}')")/item.json" "$TMP/bigmeta-item.json" || fail "reading bigmeta's Item"
assert_eq "r1 600" "$(json_get "$TMP/bigmeta-item.json" 'd["properties"]["run"] + " " + str(len(d["properties"]["history"]))')" \
  "metadata.json over 1024 bytes: whole in the STAC Item"

# --- 7. the user's code looks for S3 credentials ----------------------------------------------------
# It knows where S3 is and which object to read; it tries every place the AWS
# credential chain looks (variables, IRSA / Pod Identity / service account
# tokens, ~/.aws) and then reads the upstream COG through GDAL's /vsis3/.
PROBE=$(am_get dem-slope '{.status.output.uri}')
cat <<YAML | k apply -f - >/dev/null || fail "apply probe"
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: probe}
spec:
  assetKey: test/probe
  operation: container
  container:
    image: "terrane-ml-example@sha256:$(printf '%064d' 0)"
    command: ["/usr/bin/python3", "$ROOT/tests/e2e/testdata/credentials_probe.py"]
    env:
      - {name: PROBE_URI, value: "/vsis3/${PROBE#s3://}"}
      - {name: AWS_S3_ENDPOINT, value: "$AWS_S3_ENDPOINT"}
      - {name: AWS_HTTPS, value: "NO"}
      - {name: AWS_VIRTUAL_HOSTING, value: "FALSE"}
  inputs: [{name: slope, from: dem-slope}]
  output: {uri: s3://assets}
YAML
wait_until 60 "the credentials probe finishes" is_phase probe Succeeded
s3_get "$(am_get probe '{.status.output.uri}')" "$TMP/probe.json" || fail "reading the probe's report"
assert_eq "[]" "$(json_get "$TMP/probe.json" 'json.dumps(d["variables"])')" "the user's code finds no AWS credential variable"
assert_eq "[]" "$(json_get "$TMP/probe.json" 'json.dumps([p for p, e in d["files"].items() if e is None])')" \
  "the user's code can read no token or credentials file ($(json_get "$TMP/probe.json" '", ".join(sorted(d["files"]))'))"
assert_eq "false" "$(json_get "$TMP/probe.json" 'd["s3"]["read"]')" "the user's code cannot read the upstream COG from S3"
echo "  S3 said: $(json_get "$TMP/probe.json" 'd["s3"]["error"]')"
assert_contains "$(json_get "$TMP/probe.json" 'd["s3"]["error"]')" "AWS_SECRET_ACCESS_KEY" "S3 refuses for want of credentials"
assert_eq "true" "$(json_get "$TMP/probe.json" 'str(d["input"]).lower()')" "the same bytes are readable where fetch put them"


# --- 7b. 10,000 small output files (before case 8 changes the slope they read) ---------------
# The user's code writes 10,000 files; the publish step runs under pool cpu's
# 160Mi limit (kubesim kills a container over it: OOMKilled would escalate the
# asset to highmem). Its RSS is sampled while it runs. Under ASan (make
# e2e-asan) memory is the sanitizer's (shadow, quarantine) and each upload
# several times slower: there the case publishes 2,000 files and checks the
# publishing, not the bound.
MANY_N=10000 mem_checks=1
[ -n "${ASAN_OPTIONS:-}" ] && MANY_N=2000 mem_checks=0
user_am many '["/usr/bin/python3", "-c", "import os; d = os.environ[\"TERRANE_OUTPUT_DIR\"] + \"/tiles\"; os.mkdir(d); [open(\"%s/t%05d.json\" % (d, i), \"w\").write(str(i)) for i in range('"$MANY_N"')]"]'
peak=0 t10=$SECONDS
while ! is_phase many Succeeded && ! is_phase many Failed && [ $((SECONDS - t10)) -lt 400 ]; do
  r=$(curl -sfk "$KUBESIM_URL/kubesim/processes" | $PY -c 'import json, sys
print(max([p["rssBytes"] for p in json.load(sys.stdin)["processes"] if p["pod"].startswith("many-") and p["container"] == "worker"] or [0]))' 2>/dev/null)
  [ "${r:-0}" -gt "$peak" ] && peak=$r
  sleep 0.5
done
echo "  $MANY_N files: $(phase many) after $((SECONDS - t10))s; the publish step's sampled peak RSS $((peak >> 20)) MiB (limit 160 MiB)"
assert_eq Succeeded "$(phase many)" "$MANY_N files: published"
[ $mem_checks = 1 ] || echo "  (ASan build: $MANY_N files, the memory bound not checked)"
# a transient failure of an attempt (the S3 server under load) is retried as
# any; running out of memory is what this case is about
if [ "$(am_get many '{.status.attempts}')" != 1 ]; then
  ev=$(k get events --field-selector involvedObject.name=many -o 'jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}' 2>&1)
  echo "  $MANY_N files: $(am_get many '{.status.attempts}') attempts; the asset's Events:"
  echo "$ev" | head -n 20 | sed 's/^/    /'
  [ $mem_checks = 1 ] && case $ev in *OOMKilled*) fail "$MANY_N files: an attempt ran out of memory" ;; esac
fi
if [ $mem_checks = 1 ]; then
  assert_contains "$(k get node "$(am_get many '{.status.node}')" -o 'jsonpath={.metadata.labels.terrane\.io/pool}')" cpu \
    "$MANY_N files: on pool cpu, within its memory limit (no OOM escalation)"
  [ "$peak" -gt 0 ] && [ "$peak" -lt $((160 << 20)) ] && ok "$MANY_N files: the publish step's sampled RSS $((peak >> 20)) MiB, under 160 MiB" ||
    fail "$MANY_N files: the publish step's sampled RSS: $peak bytes"
fi
assert_eq "$MANY_N" "$(am_get many '{.status.output.files}')" "$MANY_N files: the status counts them"
s3_get "$(am_get many '{.status.output.manifest}')" "$TMP/many-manifest.json" || fail "reading the manifest of the $MANY_N files"
assert_eq "$MANY_N $MANY_N" "$(json_get "$TMP/many-manifest.json" 'str(d["fileCount"]) + " " + str(len(d["files"]))')" \
  "$MANY_N files: one manifest listing them all"

# --- 8. an upstream object changed after publishing ----------------------------------------------
s3_put "$SAMPLES/elev.tif" "$(am_get dem-slope '{.status.output.uri}')" || fail "overwriting the slope COG"
user_am tampered '["sh", "-c", "echo user code ran > $TERRANE_OUTPUT_DIR/ran.txt"]'
wait_until 60 "a changed upstream object fails the asset" is_phase tampered Failed
assert_eq BadInput "$(ready_reason tampered)" "checksum mismatch: BadInput, not retried"
assert_contains "$(am_get tampered '{.status.message}')" "step fetch" "checksum mismatch: the fetch step failed"
assert_contains "$(am_get tampered '{.status.message}')" "ChecksumMismatch" "checksum mismatch: named"
TPOD=$(am_get tampered '{.status.podName}')
assert_eq "" "$(k get pod "$TPOD" -o 'jsonpath={.status.initContainerStatuses[1].state.terminated}')" "user code never ran"

# --- 9. the chart's worker Role, and another ServiceAccount -------------------------------------
assert_eq "$WORKER_SA" "$(pj 'd["spec"]["serviceAccountName"]')" "worker pods run as the chart's worker ServiceAccount"
DTOKEN=$(k create token default) || fail "a token of the default ServiceAccount"
out=$(kubectl --kubeconfig "$KUBECONFIG" --token "$DTOKEN" -n "$NS" get pod "$(am_get bigmeta '{.status.podName}')" 2>&1)
assert_eq "Error from server (Forbidden): pods \"$(am_get bigmeta '{.status.podName}')\" is forbidden: User \"system:serviceaccount:$NS:default\" cannot get resource \"pods\" in API group \"\" in the namespace \"$NS\"" \
  "$out" "another ServiceAccount: 403 with the real server's message"
WTOKEN=$(k create token "$WORKER_SA") || fail "a token of $WORKER_SA"
assert_eq "$(am_get bigmeta '{.status.podName}')" "$(kubectl --kubeconfig "$KUBECONFIG" --token "$WTOKEN" -n "$NS" get pod "$(am_get bigmeta '{.status.podName}')" -o 'jsonpath={.metadata.name}' 2>&1)" \
  "$WORKER_SA may get pods in $NS"
out=$(kubectl --kubeconfig "$KUBECONFIG" --token "$WTOKEN" -n "$NS" get pods 2>&1)
assert_contains "$out" 'cannot list resource "pods"' "$WORKER_SA may not list pods: get only, as the chart's Role"

ctl_stop ctl
finish
