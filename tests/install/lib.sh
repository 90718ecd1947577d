# shellcheck shell=bash
# tests/install/lib.sh - helpers for the install tests (chart, CRD, examples).
# Source it:  . "$(dirname "$0")/lib.sh"
# Gives ROOT, TMP (removed on exit), at_exit, ok/fail/finish/skip,
# HELM (the pinned Helm, see scripts/helm.sh), yaml_json (YAML -> one JSON
# document per line, parsed offline by kubectl as `kubectl apply` parses it),
# and kubesim_start. Unlike tests/lib/common.sh it needs no built worker.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/base.sh"
HERE=$ROOT/tests/install
PY=${PYTHON:-python3}

# kubectl must never touch a real cluster from these tests.
export KUBECONFIG=$TMP/no-cluster.kubeconfig HOME=$TMP/home KUBECACHEDIR=$TMP/kube-cache
mkdir -p "$HOME"
: > "$KUBECONFIG"

need_kubectl() { command -v kubectl >/dev/null || skip "kubectl not found"; }
need_helm() {
  HELM=$("$ROOT/scripts/helm.sh" 2>"$TMP/helm.err") || skip "no helm: $(cat "$TMP/helm.err")"
}

# yaml_json FILE: every document of FILE as one compact JSON line.
yaml_json() {
  KUBECONFIG=/dev/null kubectl annotate --local -f "$1" -o 'jsonpath={@}{"\n"}' terrane.invalid/none-
}

# kubesim_start: starts tests/kubesim on a free port with the project's test
# pools; sets KS_KUBECONFIG and KS_PID. Returns 1 (with the log) when it does
# not come up within 10 s.
kubesim_start() {
  local dir=$TMP/kubesim
  mkdir -p "$dir"
  "$PY" "$ROOT/tests/kubesim/kubesim.py" --port 0 --kubeconfig "$dir/kubeconfig" \
    --state-dir "$dir/state" --pools "$ROOT/tests/kubesim/testdata/pools.json" \
    --ready-file "$dir/ready" >"$dir/log" 2>&1 &
  KS_PID=$!
  at_exit "kubesim_stop"
  local i
  for i in $(seq 100); do
    [ -s "$dir/ready" ] && break
    kill -0 "$KS_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$dir/ready" ]; then
    echo "kubesim did not start:"; tail -n 20 "$dir/log"
    return 1
  fi
  KS_KUBECONFIG=$dir/kubeconfig
}
kubesim_stop() {
  if [ -n "${KS_PID:-}" ]; then
    kill -TERM "$KS_PID" 2>/dev/null
    local i
    for i in $(seq 50); do kill -0 "$KS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$KS_PID" 2>/dev/null
    wait "$KS_PID" 2>/dev/null
    KS_PID=
  fi
}
