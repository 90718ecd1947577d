#!/usr/bin/env bash
# The Helm chart with the real Helm (scripts/helm.sh):
#  - Chart.yaml's version and appVersion are the repository's VERSION;
#  - `helm lint --strict` with the defaults and with tests/install/values-all.yaml,
#    which sets every value (checked: none keeps its default except the
#    switches its defaults-kept line names, rendered separately below);
#  - `helm template` of the defaults, of values-all.yaml and of each switch's
#    other setting; kubectl parses every rendered document offline, and
#    rendered_check.py checks the invariants (restricted security context,
#    probes, exact RBAC rules without wildcards, worker ServiceAccounts without
#    API tokens, pools and worker environment the controller accepts, known
#    controller flags, matching selectors) and what each setting changes;
#  - bad values fail with a message naming the value: values.schema.json
#    (types, unknown keys, quantities, enums, patterns) and the chart's
#    cross-value checks (pools that do not exist, leader election, ...);
#  - `helm package` includes the CRD and the schema.
# Exit 0 pass, 77 skip (no helm or kubectl), anything else fail.
. "$(dirname "$0")/lib.sh"
need_helm
need_kubectl
CHART=$ROOT/helm/terrane
NS=terrane-system

# --- metadata ----------------------------------------------------------------------
version=$(tr -d '[:space:]' < "$ROOT/VERSION")
grep -qx "version: $version" "$CHART/Chart.yaml" && grep -qx "appVersion: \"$version\"" "$CHART/Chart.yaml" \
  && ok "Chart.yaml version and appVersion are $version (VERSION)" \
  || fail "Chart.yaml version/appVersion differ from VERSION ($version)"
grep -qx 'apiVersion: v2' "$CHART/Chart.yaml" && ok "Chart.yaml apiVersion v2" || fail "Chart.yaml apiVersion is not v2"

# --- lint -----------------------------------------------------------------------------
if out=$("$HELM" lint --strict "$CHART" 2>&1); then ok "helm lint --strict (defaults)"; else fail "helm lint --strict: $out"; fi
if out=$("$HELM" lint --strict "$CHART" -f "$HERE/values-all.yaml" 2>&1); then ok "helm lint --strict (values-all.yaml)"
else fail "helm lint --strict -f values-all.yaml: $out"; fi
if out=$("$PY" "$HERE/values_doc.py" --helm "$HELM" --all-set "$HERE/values-all.yaml" 2>&1); then ok "$out"
else fail "values-all.yaml does not set every value: $out"; fi

# --- renders ---------------------------------------------------------------------------
# render NAME ARGS...: helm template into $TMP/NAME.yaml, then kubectl parses it
# into $TMP/NAME.jsonl (one document per line) and rendered_check.py checks it.
render() {
  local name=$1; shift
  local out
  if ! out=$("$HELM" template terrane "$CHART" --namespace "$NS" "$@" 2>&1 >"$TMP/$name.yaml"); then
    fail "helm template ($name): $out"; return
  fi
  local docs
  docs=$(grep -c '^kind: ' "$TMP/$name.yaml")
  if ! yaml_json "$TMP/$name.yaml" >"$TMP/$name.jsonl" 2>"$TMP/$name.err"; then
    fail "kubectl cannot parse the $name rendering: $(cat "$TMP/$name.err")"; return
  fi
  local parsed
  parsed=$(grep -c . "$TMP/$name.jsonl")
  [ "$parsed" = "$docs" ] && ok "helm template ($name): $docs documents, all parsed by kubectl" \
    || fail "helm template ($name): $docs documents but kubectl parsed $parsed"
  if out=$("$PY" "$HERE/rendered_check.py" "$name" "$TMP/$name.jsonl" "$NS" 2>&1); then ok "$out"; else fail "$out"; fi
}
render default
render all -f "$HERE/values-all.yaml"
render single --set controller.replicas=1 --set leaderElection.enabled=false
render nosvc --set metrics.service.enabled=false --set ui.enabled=false
render norbac --set rbac.create=false
render noworkersa --set worker.serviceAccount.create=false
render hard --set controller.podAntiAffinity=hard --set controller.topologySpread.enabled=false
render nonetpol --set networkPolicy.enabled=false
# The flags the chart renders are flags controller/main.c parses (when it exists).
if [ -f "$ROOT/controller/main.c" ]; then
  missing=$("$PY" - "$ROOT/controller/main.c" "$TMP/default.jsonl" "$TMP/all.jsonl" "$TMP/single.jsonl" <<'PY'
import json, re, sys
known = set(re.findall(r'\b[SLB]\("([a-z][a-z0-9-]*)"', open(sys.argv[1]).read()))
used = set()
for path in sys.argv[2:]:
    for line in open(path):
        d = json.loads(line)
        if d["kind"] == "Deployment":
            for a in d["spec"]["template"]["spec"]["containers"][0]["args"]:
                used.add(a[2:].split("=", 1)[0])
used.discard("verbose-reconcile")  # values-all.yaml's extraArgs
print(" ".join("--" + f for f in sorted(used - known)))
PY
)
  [ -z "$missing" ] && ok "every flag the chart renders is parsed by controller/main.c" \
    || fail "the chart renders flags controller/main.c does not parse: $missing"
fi
# CRDs come from crds/ only with --include-crds, as `helm install` applies them.
# (Rendered first: grep -q stops reading early, and helm would then fail on a
# closed pipe under pipefail once the output outgrows the pipe's buffer.)
rendered=$("$HELM" template terrane "$CHART" --include-crds 2>&1)
if grep -q '^  name: assetmaterializations.terrane.io$' <<<"$rendered"; then
  ok "helm template --include-crds carries the CRD"
else
  fail "the CRD is not in the chart's crds/"
fi
# kubeVersion: the chart renders for the oldest Kubernetes it declares.
if out=$("$HELM" template terrane "$CHART" --kube-version 1.26.0 2>&1 >/dev/null); then ok "renders for Kubernetes 1.26"
else fail "--kube-version 1.26.0: $out"; fi

# --- NOTES.txt ----------------------------------------------------------------------------
# helm template does not render NOTES.txt into the output; install --dry-run does, offline.
notes=$("$HELM" install terrane "$CHART" --namespace "$NS" --dry-run=client 2>&1 | sed -n '/^NOTES:/,$p')
for want in "kubectl -n $NS get pods" "kubectl get am -n hydro -w" "kubectl apply -f crds/examples/lux-terrain-catchments.yaml" \
  "aws eks create-pod-identity-association" \
  "kubectl label --overwrite namespace $NS pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest"; do
  [[ "$notes" == *"$want"* ]] && ok "NOTES.txt: $want" || fail "NOTES.txt lacks '$want': ${notes:0:400}"
done

# --- rejected values --------------------------------------------------------------------------
# reject WHAT EXPECTED-TEXT ARGS...: helm template must fail and say EXPECTED-TEXT.
reject() {
  local what=$1 want=$2; shift 2
  local out
  if out=$("$HELM" template terrane "$CHART" --namespace "$NS" "$@" 2>&1 >/dev/null); then
    fail "$what: accepted"
  elif [[ "$out" == *"$want"* ]]; then
    ok "$what: rejected ($(printf '%s' "$out" | grep -F -m1 -- "$want" | sed 's/^[- ]*//'))"
  else
    fail "$what: rejected, but without '$want': $out"
  fi
}
# values.schema.json
reject 'replicas: "two"' "at '/controller/replicas': got string, want integer" --set-string controller.replicas=two
reject 'unknown top-level key' "additional properties 'replicaCount' not allowed" --set replicaCount=2
reject 'misspelt nested key' "additional properties 'nodeselector' not allowed" --set pools.cpu.nodeselector.a=b
reject 'bad pool quantity' "at '/pools/cpu/resources/requests/memory': '2GB' does not match pattern" --set pools.cpu.resources.requests.memory=2GB
reject 'negative pool quantity' "at '/pools/gpu/resources/limits/nvidia.com~1gpu': minimum" --set-json 'pools.gpu.resources.limits={"nvidia.com/gpu":-1}'
reject 'bad toleration effect' "at '/pools/gpu/tolerations/0/effect'" --set-json 'pools.gpu.tolerations=[{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedul"}]'
reject 'bad image tag' "at '/controller/image/tag'" --set 'controller.image.tag=v1 latest'
reject 'bad image digest' "at '/worker/image/digest'" --set worker.image.digest=sha256:abc
reject 'bad log level' "at '/worker/env/logLevel'" --set worker.env.logLevel=verbose
reject 'bad bucket name' "at '/worker/env/allowedBuckets/0'" --set 'worker.env.allowedBuckets={s3://raw}'
reject 'CIDR without prefix' "at '/networkPolicy/blockedCIDRs/0'" --set 'networkPolicy.blockedCIDRs={169.254.169.254}'
reject 'pool name not a DNS label' "invalid propertyName 'GPU_big'" --set-json 'pools.GPU_big={}'
reject 'TERRANE_TASK in worker env' "TERRANE_TASK" --set worker.env.extra.TERRANE_TASK=x
reject 'Pod Security level enum' "at '/worker/podSecurity/level'" --set worker.podSecurity.level=strict
reject 'Pod Security version' "at '/worker/podSecurity/version'" --set worker.podSecurity.version=1.30
reject 'anti-affinity enum' "at '/controller/podAntiAffinity'" --set controller.podAntiAffinity=always
# the chart's cross-value checks (templates/_helpers.tpl terrane.validate)
reject 'defaultPool not a pool' 'defaultPool: "fast" is not one of pools (cpu, gpu, highmem)' --set defaultPool=fast
reject 'oomEscalation to a missing pool' 'pools.cpu.oomEscalation: "bigmem" is not one of pools' --set pools.cpu.oomEscalation=bigmem
reject 'oomEscalation to itself' 'pools.highmem.oomEscalation: a pool cannot escalate to itself' --set pools.highmem.oomEscalation=highmem
reject 'oomEscalation cycle' 'escalation cycle cpu -> highmem -> cpu' --set pools.highmem.oomEscalation=cpu
reject 'removed pool still escalated to' 'pools.cpu.oomEscalation: "highmem" is not one of pools (cpu, gpu)' --set pools.highmem=null
reject 'GPU request without limit' 'pools.gpu.resources.requests.nvidia.com/gpu: an extended resource needs a limit' --set pools.gpu.resources.limits=null
reject 'GPU request differs from limit' 'requests.nvidia.com/gpu (2) must equal limits.nvidia.com/gpu (1)' --set-string 'pools.gpu.resources.requests.nvidia\.com/gpu=2'
reject 'two replicas without leader election' 'controller.replicas is 2 but leaderElection.enabled is false' --set leaderElection.enabled=false
reject 'ServiceMonitor without Service' 'metrics.serviceMonitor.enabled needs metrics.service.enabled' --set metrics.serviceMonitor.enabled=true --set metrics.service.enabled=false
reject 'renew deadline not below lease duration' 'renewDeadlineSeconds must be less than' --set leaderElection.renewDeadlineSeconds=15
reject 'worker env set twice' 'worker.env.extra.TERRANE_LOG_LEVEL: set by the chart' --set worker.env.extra.TERRANE_LOG_LEVEL=debug
reject 'worker namespace outside watchNamespace' 'worker.namespaces: "other" is not controller.watchNamespace' --set controller.watchNamespace=hydro --set 'worker.namespaces={other}'

# --- package ------------------------------------------------------------------------------------
if out=$("$HELM" package "$CHART" -d "$TMP/pkg" 2>&1); then
  tgz=$TMP/pkg/terrane-$version.tgz
  listing=$(tar tzf "$tgz")
  for f in Chart.yaml values.yaml values.schema.json README.md crds/terrane.io_assetmaterializations.yaml templates/NOTES.txt; do
    grep -qx "terrane/$f" <<<"$listing" && ok "package has $f" || fail "package lacks $f"
  done
else
  fail "helm package: $out"
fi
finish
