#!/usr/bin/env bash
# The real kubectl against kubesim: CRDs and printer columns, watch, status
# patches, wait, schema errors, deletes, namespaces, pods that run local
# processes, logs, scheduling failures and a GPU pool scaled up from zero.
# Also a short pass with the oldest and newest kubectl builds present.
# Exit 0 when every check passes, 77 when kubectl is missing.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TD="$HERE/testdata"
command -v kubectl >/dev/null || { echo "kubectl not found: skipping"; exit 77; }
PY=${PYTHON:-python3}

WORK=$(mktemp -d -t kubesim-kubectl-XXXXXX)
SIM_PID=""
BG_PIDS=()
cleanup() {
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$SIM_PID" ]; then
    kill -TERM "$SIM_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SIM_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SIM_PID" 2>/dev/null
  fi
  [ -n "${KUBESIM_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

export HOME="$WORK/home" KUBECACHEDIR="$WORK/kube-cache"
mkdir -p "$HOME"
KC="$WORK/kubeconfig"
"$PY" "$HERE/kubesim.py" --port 0 --kubeconfig "$KC" --state-dir "$WORK/state" \
  --pools "$TD/pools.json" --ready-file "$WORK/ready" >"$WORK/kubesim.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 100); do [ -s "$WORK/ready" ] && break; sleep 0.1; done
[ -s "$WORK/ready" ] || { echo "kubesim did not start"; cat "$WORK/kubesim.log"; exit 1; }
export KUBECONFIG="$KC"

pass=0 fail=0
ok()   { pass=$((pass + 1)); echo "PASS  $1"; }
bad()  { fail=$((fail + 1)); echo "FAIL  $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/      | /'; }
# check NAME COMMAND...: passes when the command exits 0
check() { local name=$1; shift; local out; if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$out"; fi; }
# contains NAME TEXT PATTERN: passes when TEXT matches the extended regex PATTERN
contains() { if printf '%s' "$2" | grep -Eq -- "$3"; then ok "$1"; else bad "$1" "wanted /$3/ in:
$2"; fi; }
K() { kubectl "$@"; }

# ---- CRD, objects, printer columns ------------------------------------------------
check "apply CRD" K apply -f "$TD/widget-crd.yaml"
check "CRD established" K wait --for=condition=Established crd/widgets.example.terrane.io --timeout=10s
check "apply widgets" K apply -f "$TD/widgets.yaml"
out=$(K get wd 2>&1)
contains "get wd prints printer columns" "$out" '^NAME +OPERATION +SIZE +READY +PHASE +AGE'
contains "get wd row for alpha" "$out" '^alpha +cog +3 '
contains "get wd defaulted size for beta" "$out" '^beta +terrain +1 '
out=$(K get terrane-test 2>&1)
contains "category lists widgets" "$out" '^alpha '
out=$(K get widgets.example.terrane.io -l tier=gold -o name 2>&1)
contains "label selector via kubectl" "$out" '^widget.example.terrane.io/beta$'
out=$(K explain wd.spec.operation 2>&1)
contains "explain reads the CRD schema" "$out" 'What to do'

# The project's own CRD, when present, must be servable too.
if ls "$HERE"/../../crds/*.yaml >/dev/null 2>&1; then
  check "apply the project's CRDs" K apply -f "$HERE/../../crds/"
  check "get the project's kinds" K get am
  check "explain the project's kinds" K explain am.spec
fi

# ---- schema errors ------------------------------------------------------------------
out=$(K apply -f "$TD/widget-missing-op.yaml" 2>&1); rc=$?
[ $rc -ne 0 ] && contains "missing required field rejected" "$out" 'spec.operation: Required value' \
  || bad "missing required field rejected" "$out"
out=$(K apply -f "$TD/widget-bad-enum.yaml" 2>&1); rc=$?
[ $rc -ne 0 ] && contains "bad enum rejected" "$out" 'Unsupported value: "teleport"' \
  || bad "bad enum rejected" "$out"

# ---- watch, status subresource, wait --------------------------------------------------
K get wd -w >"$WORK/watch.out" 2>&1 &
BG_PIDS+=($!)
sleep 1
out=$(K wait --for=condition=Ready wd/alpha --timeout=1s 2>&1); rc=$?
[ $rc -ne 0 ] && ok "wait times out before Ready" || bad "wait times out before Ready" "$out"
K wait --for=condition=Ready wd/alpha --timeout=20s >"$WORK/wait.out" 2>&1 &
WAIT_PID=$!
sleep 0.5
check "patch status subresource" K patch wd alpha --subresource=status --type=merge \
  -p '{"status":{"phase":"Succeeded","conditions":[{"type":"Ready","status":"True","reason":"Built"}]}}'
if wait $WAIT_PID; then ok "wait --for=condition=Ready succeeds after the patch"
else bad "wait --for=condition=Ready succeeds after the patch" "$(cat "$WORK/wait.out")"; fi
out=$(K get wd alpha -o jsonpath='{.status.phase}/{.metadata.generation}' 2>&1)
contains "status patched, generation unchanged" "$out" '^Succeeded/1$'
check "spec patch (merge)" K patch wd alpha --type=merge -p '{"spec":{"size":4}}'
out=$(K get wd alpha -o jsonpath='{.spec.size}/{.metadata.generation}/{.status.phase}' 2>&1)
contains "spec patch bumps generation, keeps status" "$out" '^4/2/Succeeded$'
check "json patch" K patch wd beta --type=json -p '[{"op":"replace","path":"/spec/operation","value":"warp"}]'
out=$(K patch wd beta --subresource=status --type=merge -p '{"spec":{"operation":"cog"}}' 2>&1)
out=$(K get wd beta -o jsonpath='{.spec.operation}' 2>&1)
contains "status subresource ignores spec" "$out" '^warp$'
check "delete widget" K delete wd beta --timeout=20s
out=$(K get wd beta 2>&1); rc=$?
[ $rc -ne 0 ] && contains "deleted widget is gone" "$out" 'NotFound|not found' || bad "deleted widget is gone" "$out"
sleep 1
kill "${BG_PIDS[0]}" 2>/dev/null
w=$(cat "$WORK/watch.out")
contains "get -w saw the initial list" "$w" '^alpha +cog'
contains "get -w saw the status change" "$w" '^alpha +cog +[0-9]+ +True +Succeeded'
contains "get -w saw the spec change" "$w" '^alpha +cog +4 '
contains "get -w saw beta change" "$w" '^beta +warp'

# ---- namespaces -------------------------------------------------------------------
check "create namespace" K create namespace hydro
check "apply into namespace" K -n hydro apply -f "$TD/widgets.yaml"
out=$(K get wd -A 2>&1)
contains "get -A shows both namespaces" "$out" '^hydro +alpha '
out=$(K get sa -n hydro 2>&1)
contains "default serviceaccount created" "$out" '^default '
check "delete namespace" K delete namespace hydro --timeout=30s
out=$(K get ns hydro 2>&1); rc=$?
[ $rc -ne 0 ] && ok "namespace gone" || bad "namespace gone" "$out"
out=$(K apply -n nowhere -f "$TD/widgets.yaml" 2>&1); rc=$?
[ $rc -ne 0 ] && contains "missing namespace is NotFound" "$out" 'namespaces "nowhere" not found' \
  || bad "missing namespace is NotFound" "$out"

# ---- pods ---------------------------------------------------------------------------
check "run a pod" K run hello --image=terrane-worker --restart=Never --command -- \
  sh -c 'echo hi from $HOSTNAME; echo done > "$TERRANE_TERMINATION_LOG"'
check "pod reaches Succeeded" K wait --for=jsonpath='{.status.phase}'=Succeeded pod/hello --timeout=30s
out=$(K get pod hello -o jsonpath='{.status.containerStatuses[0].state.terminated.reason}:{.status.containerStatuses[0].state.terminated.message}' 2>&1)
contains "termination message and reason" "$out" '^Completed:done'
out=$(K logs hello 2>&1)
contains "kubectl logs" "$out" '^hi from hello$'
out=$(K get pods 2>&1)
contains "get pods shows Completed" "$out" '^hello +0/1 +Completed +0 '
out=$(K get events --field-selector involvedObject.name=hello 2>&1)
contains "Scheduled event" "$out" 'Scheduled +pod/hello +Successfully assigned default/hello to cpu-'
contains "Started event" "$out" 'Started +pod/hello'

check "apply pods" K apply -f "$TD/pods.yaml"
check "nowhere pod marked Unschedulable" K wait --for=condition=PodScheduled=False pod/nowhere --timeout=20s
out=$(K get pod nowhere -o jsonpath='{.status.phase}/{.status.conditions[?(@.type=="PodScheduled")].reason}: {.status.conditions[?(@.type=="PodScheduled")].message}' 2>&1)
contains "unschedulable pod stays Pending with reason" "$out" "^Pending/Unschedulable: 0/[0-9]+ nodes are available: .*didn't match Pod's node affinity/selector"
check "GPU pod succeeds" K wait --for=jsonpath='{.status.phase}'=Succeeded pod/gpu-job --timeout=30s
out=$(K get pod gpu-job -o jsonpath='{.spec.nodeName}' 2>&1)
contains "GPU pod ran on a gpu node" "$out" '^gpu-[0-9]+$'
out=$(K get nodes -l terrane.io/pool=gpu 2>&1)
contains "gpu pool scaled up from zero" "$out" '^gpu-[0-9]+ +Ready'
out=$(K logs gpu-job 2>&1)
contains "GPU pod saw its node name" "$out" '^gpu on gpu-[0-9]+$'
out=$(K get events --field-selector involvedObject.name=gpu-job 2>&1)
contains "TriggeredScaleUp event" "$out" 'TriggeredScaleUp +pod/gpu-job +pod triggered scale-up'
check "sleeper running" K wait --for=condition=Ready pod/sleeper --timeout=20s
check "delete running pod" K delete pod sleeper --timeout=30s
out=$(K get pod sleeper 2>&1); rc=$?
[ $rc -ne 0 ] && ok "running pod deleted" || bad "running pod deleted" "$out"
check "delete pods" K delete -f "$TD/pods.yaml" --ignore-not-found --timeout=30s

# ---- other kubectl builds --------------------------------------------------------------
KDIR=$(dirname "$(readlink -f "$(command -v kubectl)")")
for v in 1.27 1.33; do
  kb="$KDIR/kubectl.$v"
  [ -x "$kb" ] || continue
  export KUBECACHEDIR="$WORK/kube-cache-$v"
  check "kubectl $v apply" "$kb" apply -f "$TD/widgets.yaml"
  out=$("$kb" get wd 2>&1)
  contains "kubectl $v get wd columns" "$out" '^NAME +OPERATION +SIZE +READY +PHASE +AGE'
  out=$("$kb" apply -f "$TD/widget-bad-enum.yaml" 2>&1)
  contains "kubectl $v sees schema errors" "$out" 'Unsupported value: "teleport"'
  check "kubectl $v status patch" "$kb" patch wd alpha --subresource=status --type=merge -p '{"status":{"phase":"v'$v'"}}'
  out=$("$kb" explain wd.spec 2>&1)
  contains "kubectl $v explain" "$out" 'operation'
done

# ---- TLS and a bearer token (kubectl sends tokens over TLS only) ---------------------
if command -v openssl >/dev/null; then
  export KUBECACHEDIR="$WORK/kube-cache-tls"
  "$PY" "$HERE/kubesim.py" --port 0 --tls --token s3cret --kubeconfig "$WORK/kc-tls" \
    --state-dir "$WORK/state-tls" --ready-file "$WORK/ready-tls" >"$WORK/kubesim-tls.log" 2>&1 &
  BG_PIDS+=($!)
  for _ in $(seq 100); do [ -s "$WORK/ready-tls" ] && break; sleep 0.1; done
  out=$(K --kubeconfig "$WORK/kc-tls" get ns default 2>&1)
  contains "TLS with token from the kubeconfig" "$out" '^default +Active'
  out=$(K --kubeconfig "$WORK/kc-tls" --token wrong get ns default 2>&1); rc=$?
  [ $rc -ne 0 ] && contains "wrong token refused" "$out" 'Unauthorized' || bad "wrong token refused" "$out"
  kill -TERM "${BG_PIDS[-1]}" 2>/dev/null
else
  echo "SKIP  TLS checks (no openssl command)"
fi

if [ $fail -gt 0 ]; then echo "--- kubesim log ---"; tail -n 50 "$WORK/kubesim.log"; fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
