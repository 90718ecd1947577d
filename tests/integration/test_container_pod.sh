#!/usr/bin/env bash
# Integration: a container asset's pod on kubesim, in the shape the
# controller builds (proto/README.md, "Container assets";
# tests/integration/container_pod.py prints it): init containers `fetch`
# (the real terrane-worker) and `user` (the example's image, run as a local
# process through examples/ml/kubesim-images.json), then the `worker`
# container running publish-outputs, sharing emptyDir volumes inputs,
# outputs and scratch; real s3rver behind it.
#
#  1. training on the gpu pool: its node is added from zero; fetch, user and
#     worker run in that order; the user's status reports the image's imageID;
#     the worker's termination message is the Result (model.pkl, metadata);
#     the model is on S3 with its Item; the GPU node goes away afterwards
#  2. the user's container sees TERRANE_INPUT_<NAME> pointing at files in the
#     shared volume and no S3 credentials (what it wrote to /outputs is read
#     back from S3)
#  3. the user's container exiting 65: pod Failed, its exit code and message in
#     initContainerStatuses, publish-outputs never started (PodInitializing)
#  4. the user's container over its memory limit: OOMKilled on that container
. "$(dirname "$0")/../lib/common.sh"

PY=/usr/bin/python3
$PY -c 'import sklearn' 2>/dev/null || skip "python3-sklearn missing: run scripts/deps.sh"
command -v kubectl >/dev/null || skip "kubectl missing"
s3_start raw assets
export TERRANE_ALLOW_LOCAL_PATHS=1

# --- upstreams, published by `run` as their own pods would -------------------------
run_op() {
  printf '%s\n' "$2" >"$TMP/$1.task"
  "$WORKER" run --task "$TMP/$1.task" --termination-log "$TMP/$1.term" >"$TMP/$1.out" 2>"$TMP/$1.err"
  assert_eq 0 "$?" "upstream $1 published"
}
upstream() {
  $PY - "$TMP/$1.out" "$TMP/$1.task" "$2" <<'PY'
import json, sys
r, t, name = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
o = r["output"]
print(json.dumps({"name": name, "uri": o["uri"], "assetKey": t["assetKey"], "dataVersion": t["dataVersion"],
                  "stacItem": o["stacItem"], "checksum": o["checksum"]}))
PY
}
s3_put "$SAMPLES/elev.tif" s3://raw/lux/elev.tif
run_op dem "$(task_json cog '{}' '[{"name":"dem","uri":"s3://raw/lux/elev.tif"}]' s3://assets/out test/dem_cog)"
run_op slope "$(task_json terrain '{"mode":"slope","scale":111120}' "[$(upstream dem dem)]" s3://assets/out test/dem_slope)"
run_op labels "$(task_json calc '{"expression":"where(dem < 300 && slope < 4, 1, 0)","outputType":"Byte"}' \
  "[$(upstream dem dem),$(upstream slope slope)]" s3://assets/out test/flood_labels)"

# --- kubesim: cpu and gpu pools, the example image mapped to a local command -------------
cat >"$TMP/pools.json" <<'JSON'
{"pools": [
  {"name": "cpu", "labels": {"terrane.io/pool": "cpu"}, "taints": [],
   "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}, "min": 1, "max": 2},
  {"name": "gpu", "labels": {"terrane.io/pool": "gpu"},
   "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
   "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "1"}, "min": 0, "max": 1}],
 "scaleDownDelaySeconds": 1, "provisionSeconds": 0.3}
JSON
KUBECONFIG=$TMP/kubeconfig
export KUBECONFIG
# The worker steps find terrane-worker on PATH, as in the image. No --pass-env:
# credentials reach the worker steps only through their own env below.
PATH=$BUILD:$PATH $PY "$ROOT/tests/kubesim/kubesim.py" --port 0 --kubeconfig "$KUBECONFIG" \
  --state-dir "$TMP/kubesim" --pools "$TMP/pools.json" --ready-file "$TMP/kubesim.port" \
  --images "$ROOT/examples/ml/kubesim-images.json" >"$TMP/kubesim.log" 2>&1 &
KUBESIM_PID=$!
at_exit 'kill $KUBESIM_PID 2>/dev/null; wait $KUBESIM_PID 2>/dev/null'
for _ in $(seq 1 100); do [ -s "$TMP/kubesim.port" ] && break; sleep 0.1; done
[ -s "$TMP/kubesim.port" ] || { cat "$TMP/kubesim.log"; fail "kubesim did not start"; finish; }

WENV=$($PY -c 'import json,os; print(json.dumps({k: os.environ[k] for k in (
  "AWS_S3_ENDPOINT","AWS_HTTPS","AWS_VIRTUAL_HOSTING","AWS_ACCESS_KEY_ID","AWS_SECRET_ACCESS_KEY","AWS_REGION",
  "CPL_VSIL_USE_TEMP_FILE_FOR_RANDOM_WRITE","TERRANE_ALLOW_LOCAL_PATHS")}))')
# run_pod NAME TASK_JSON [container_pod.py options]: creates the pod, waits for
# it to finish; its JSON in $TMP/NAME.pod.json.
# NODE_POOL: the pool label of the node it ran on, read while the node exists
# (an emptied GPU node is removed within a second here, and its pods with it).
run_pod() {
  local name=$1 task=$2 phase="" node=""
  NODE_POOL=""
  shift 2
  printf '%s\n' "$task" >"$TMP/$name.task"
  $PY "$ROOT/tests/integration/container_pod.py" "$name" "$TMP/$name.task" "$WENV" "$@" >"$TMP/$name.pod.yaml"
  kubectl create -f "$TMP/$name.pod.yaml" >/dev/null || { fail "kubectl create pod $name"; return; }
  rm -f "$TMP/$name.pod.json"
  for _ in $(seq 1 600); do
    # the whole pod each time: a finished pod goes with its node when the
    # autoscaler removes it a second later, so it is kept as last read
    if kubectl get pod "$name" -o json >"$TMP/$name.pod.next" 2>/dev/null; then
      mv "$TMP/$name.pod.next" "$TMP/$name.pod.json"
      phase=$(json_get "$TMP/$name.pod.json" 'd.get("status", {}).get("phase", "")')
    fi
    if [ -z "$NODE_POOL" ]; then
      node=$(kubectl get pod "$name" -o 'jsonpath={.spec.nodeName}' 2>/dev/null)
      [ -n "$node" ] && NODE_POOL=$(kubectl get node "$node" -o 'jsonpath={.metadata.labels.terrane\.io/pool}' 2>/dev/null)
    fi
    [ "$phase" = Succeeded ] || [ "$phase" = Failed ] && break
    sleep 0.2
  done
}
pj() { json_get "$TMP/$1.pod.json" "$2"; }
ctask() { task_json container "$2" "$3" s3://assets/out "$1"; }

# --- 1. training on the gpu pool ------------------------------------------------------------
INPUTS="[$(upstream dem dem),$(upstream slope slope),$(upstream labels labels)]"
TRAIN=$(ctask test/flood_model '{"image":"terrane-ml-example:0.1.0","args":["train"],"primaryOutput":"model.pkl"}' "$INPUTS")
assert_eq "" "$(kubectl get nodes -l terrane.io/pool=gpu -o name)" "no GPU node before training"
run_pod train "$TRAIN" --pool gpu
assert_eq Succeeded "$(pj train 'd["status"]["phase"]')" "training pod Succeeded"
assert_eq gpu "$NODE_POOL" "training ran on a GPU node added from zero"
assert_eq "fetch:0 user:0" "$(pj train '" ".join("%s:%s" % (c["name"], c["state"]["terminated"]["exitCode"]) for c in d["status"]["initContainerStatuses"])')" \
  "init containers fetch then user, both exit 0"
assert_eq true "$(pj train 'd["status"]["initContainerStatuses"][0]["state"]["terminated"]["finishedAt"] <= d["status"]["initContainerStatuses"][1]["state"]["terminated"]["startedAt"] <= d["status"]["containerStatuses"][0]["state"]["terminated"]["startedAt"]')" \
  "fetch finished before the user's code started, which finished before publish-outputs"
assert_contains "$(pj train 'd["status"]["initContainerStatuses"][1]["imageID"]')" "terrane-ml-example@sha256:" "the user's container reports its image's imageID"
pj train 'd["status"]["containerStatuses"][0]["state"]["terminated"]["message"]' >"$TMP/train.result"
assert_eq Succeeded "$(json_get "$TMP/train.result" 'd["status"]')" "the worker container's termination message is the Result"
MODEL=$(json_get "$TMP/train.result" 'd["output"]["uri"]')
assert_contains "$MODEL" "/test/flood_model/" "Result: the model under the asset's prefix"
assert_eq RandomForestClassifier "$(json_get "$TMP/train.result" 'd["output"]["metadata"]["ml:model"]')" "Result: metadata.json in it"
assert_eq "$(json_get "$TMP/train.result" 'd["output"]["checksum"]')" "$(s3_get "$MODEL" "$TMP/model.pkl" && echo "1220$(sha256sum "$TMP/model.pkl" | cut -d' ' -f1)")" \
  "the model on S3 has the reported checksum"
POD_DIR=$(ls -d "$TMP"/kubesim/pods/*_train_*)
assert_eq "asset.tif" "$(ls "$POD_DIR/volumes/inputs/slope")" "the inputs emptyDir holds what fetch wrote"
kubectl delete pod train --wait=false --ignore-not-found >/dev/null
for _ in $(seq 1 150); do [ -z "$(kubectl get nodes -l terrane.io/pool=gpu -o name)" ] && break; sleep 0.2; done
assert_eq "" "$(kubectl get nodes -l terrane.io/pool=gpu -o name)" "the GPU node is removed after training"

# --- 2. what the user's container sees --------------------------------------------------------
ENVT=$(ctask test/envcheck '{"image":"terrane-ml-example:0.1.0"}' "[$(upstream dem dem)]")
run_pod envcheck "$ENVT" --command '["sh","-c","env | sort > \"$TERRANE_OUTPUT_DIR/env.txt\"; test -f \"$TERRANE_INPUT_DEM\""]'
assert_eq Succeeded "$(pj envcheck 'd["status"]["phase"]')" "env pod Succeeded (TERRANE_INPUT_DEM is a file in the shared volume)"
pj envcheck 'd["status"]["containerStatuses"][0]["state"]["terminated"]["message"]' >"$TMP/envcheck.result"
s3_get "$(json_get "$TMP/envcheck.result" 'd["output"]["uri"]')" "$TMP/env.txt"
if grep -q '^AWS_' "$TMP/env.txt"; then fail "the user's container got S3 settings or credentials: $(grep '^AWS_' "$TMP/env.txt" | cut -d= -f1 | tr '\n' ' ')"
else ok "the user's container has no AWS_* variables (no S3 credentials)"; fi
grep -q '^TERRANE_TASK=' "$TMP/env.txt" && fail "the user's container got the task" || ok "the user's container has no TERRANE_TASK"
assert_contains "$(grep '^TERRANE_DATA_VERSION=' "$TMP/env.txt")" "sha256:" "TERRANE_DATA_VERSION is set"

# --- 3. the user's container exiting 65 -------------------------------------------------------
BAD=$(ctask test/bad '{"image":"terrane-ml-example:0.1.0"}' "[$(upstream dem dem)]")
run_pod bad "$BAD" --command '["sh","-c","echo labels have one class only >&2; exit 65"]'
assert_eq Failed "$(pj bad 'd["status"]["phase"]')" "user exit 65: pod Failed"
assert_eq "65 Error" "$(pj bad '"%s %s" % (d["status"]["initContainerStatuses"][1]["state"]["terminated"]["exitCode"], d["status"]["initContainerStatuses"][1]["state"]["terminated"]["reason"])')" \
  "user exit 65: in initContainerStatuses[user]"
assert_contains "$(pj bad 'd["status"]["initContainerStatuses"][1]["state"]["terminated"].get("message","")')" "one class only" \
  "user exit 65: its log's end is the termination message (FallbackToLogsOnError)"
assert_eq PodInitializing "$(pj bad 'd["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]')" "user exit 65: publish-outputs never started"

# --- 4. the user's container OOM-killed ---------------------------------------------------------
run_pod oom "$BAD" --memory 64Mi --command '["/usr/bin/python3","-c","import time; b = bytearray(400 << 20); time.sleep(30)"]'
assert_eq "Failed 137 OOMKilled" "$(pj oom '"%s %s %s" % (d["status"]["phase"], d["status"]["initContainerStatuses"][1]["state"]["terminated"]["exitCode"], d["status"]["initContainerStatuses"][1]["state"]["terminated"]["reason"])')" \
  "user over its memory limit: OOMKilled on the user's container"

finish
