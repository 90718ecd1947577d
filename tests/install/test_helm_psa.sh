#!/usr/bin/env bash
# The chart's Pod Security Admission labels on worker namespaces, enforced by
# kubesim (tests/kubesim/psa.py) as the real admission plugin enforces them:
#  - with worker.podSecurity.createNamespaces the rendered Namespaces apply and
#    enforce worker.podSecurity.level: a pod shaped as the controller shapes
#    worker pods (podspec.c) is admitted, one that breaks "restricted" is
#    refused with the plugin's message; with level baseline that pod is admitted;
#  - without it, the `kubectl label` command NOTES.txt prints gives an existing
#    namespace the same enforcement.
# Exit 0 pass, 77 skip (no kubectl/helm), else fail (kubesim not starting included).
. "$(dirname "$0")/lib.sh"
need_kubectl
need_helm
CHART=$ROOT/helm/terrane
REL=terrane-system
kubesim_start || { fail "kubesim did not start (tests/kubesim/kubesim.py)"; finish; }
export KUBECONFIG=$KS_KUBECONFIG
K() { kubectl --request-timeout=20s "$@"; }

# pod NAME COMPLIANT(0|1): a worker-like pod; the non-compliant one has no
# security context at all (runs as root, may escalate, keeps capabilities).
pod() {
  local sc='' psc=''
  if [ "$2" = 1 ]; then
    psc='"securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},'
    sc='"securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},'
  fi
  cat <<JSON
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "$1"},
 "spec": {$psc "restartPolicy": "Never",
  "containers": [{"name": "worker", "image": "localhost/terrane-worker:0.1.0", $sc
                  "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
  "volumes": [{"name": "scratch", "emptyDir": {}}]}}
JSON
}
# admitted NS NAME COMPLIANT WHAT / refused NS NAME COMPLIANT WANT WHAT
admitted() {
  local out
  if out=$(pod "$2" "$3" | K -n "$1" create -f - 2>&1); then ok "$4"; else fail "$4: $out"; fi
}
refused() {
  local out
  if out=$(pod "$2" "$3" | K -n "$1" create -f - 2>&1); then fail "$5: admitted"
  else assert_contains "$out" "$4" "$5"; fi
}
RESTRICTED_MSG='pods "root" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "worker" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "worker" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "worker" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "worker" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'

# --- createNamespaces: the chart's Namespaces ----------------------------------------------
# render NAME ARGS...: the chart's Namespaces (into $TMP/NAME.yaml), applied.
render() {
  local name=$1 out; shift
  if ! out=$("$HELM" template terrane "$CHART" --namespace "$REL" --set worker.podSecurity.createNamespaces=true "$@" \
    -s templates/namespaces.yaml 2>&1 >"$TMP/$name.yaml"); then
    fail "helm template ($name): $out"; return 1
  fi
  if out=$(K apply -f "$TMP/$name.yaml" 2>&1); then ok "the chart's Namespaces apply ($name): $(echo "$out" | tr '\n' ' ')"
  else fail "applying the chart's Namespaces ($name): $out"; return 1; fi
}
if render restricted --set 'worker.namespaces={hydro,lidar}'; then
  for ns in hydro lidar; do
    admitted "$ns" worker 1 "$ns (restricted): a pod shaped as worker pods is admitted"
    refused "$ns" root 0 "$RESTRICTED_MSG" "$ns (restricted): a pod breaking restricted is refused with the plugin's message"
  done
fi
if render baseline --set 'worker.namespaces={relaxed}' --set worker.podSecurity.level=baseline --set worker.podSecurity.version=v1.30; then
  admitted relaxed root 0 "relaxed (baseline): a root pod without a security context is admitted"
  lv=$(K get namespace relaxed -o 'jsonpath={.metadata.labels.pod-security\.kubernetes\.io/enforce-version}' 2>&1)
  assert_eq v1.30 "$lv" "worker.podSecurity.version becomes enforce-version"
fi

# --- an existing namespace, labelled with NOTES.txt's command --------------------------------
K create namespace "$REL" >/dev/null 2>&1 || fail "create namespace $REL"
admitted "$REL" before 0 "$REL unlabelled: a root pod is admitted (nothing enforced yet)"
notes=$("$HELM" install terrane "$CHART" --namespace "$REL" --dry-run=client 2>&1 | sed -n '/^NOTES:/,$p')
cmd=$(grep -m1 -o "kubectl label --overwrite namespace $REL .*" <<<"$notes")
if [ -z "$cmd" ]; then
  fail "NOTES.txt prints no kubectl label command for $REL: ${notes:0:400}"
else
  # shellcheck disable=SC2086 # the command is words with no quoting
  if out=$(K ${cmd#kubectl } 2>&1); then ok "NOTES.txt's command labels $REL: $out"; else fail "$cmd: $out"; fi
  admitted "$REL" worker 1 "$REL labelled: a pod shaped as worker pods is admitted"
  refused "$REL" root 0 "${RESTRICTED_MSG}" "$REL labelled: a pod breaking restricted is refused"
fi
finish
