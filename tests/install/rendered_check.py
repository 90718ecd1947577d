#!/usr/bin/env python3
"""rendered_check.py - checks what `helm template` made of the terrane chart.

    python3 tests/install/rendered_check.py SCENARIO RENDERED.jsonl RELEASE_NAMESPACE

RENDERED.jsonl holds one JSON document per line (the rendered YAML as kubectl
parses it). SCENARIO names the values used (see test_helm_chart.sh): default,
all (tests/install/values-all.yaml), single (one replica, no leader
election), nosvc, norbac, noworkersa, hard. Checks the invariants every
rendering must keep - restricted security context, probes, selectors that
match, RBAC with exactly the allowed rules and no wildcard, worker
ServiceAccounts without API tokens, pools and worker environment files the
controller accepts (the rules of controller/pools.c and podspec.c), controller
flags it knows - and what each scenario's values must change. Prints one line
per failed check; exit 1 if any failed.
Python standard library only.
"""
import json
import re
import sys

# Flags of terrane-controller; the chart must use no other. (test_helm_chart.sh
# also compares the rendered flags with those controller/main.c parses.)
FLAGS = {
    "kubeconfig", "context", "namespace", "pools", "worker-image", "worker-image-pull-policy",
    "worker-command", "worker-env", "worker-service-account", "worker-version",
    "worker-active-deadline", "workers", "resync", "shutdown-timeout", "leader-elect",
    "lease-name", "lease-namespace", "lease-duration", "renew-deadline", "retry-period",
    "identity", "log-level", "pod-gc-delay", "keep-failed-pods", "qps", "burst",
    "metrics-addr", "ui-addr", "ui-s3-endpoint", "version",
}
# The only API access the controller may have: (apiGroup, resource, verb).
CORE_RULES = {
    ("terrane.io", r, v) for r in ("assetmaterializations", "assetsources")
    for v in ("get", "list", "watch")
} | {
    ("terrane.io", r + "/status", v) for r in ("assetmaterializations", "assetsources")
    for v in ("get", "update", "patch")
} | {
    # the AssetSource of each plain uri: input, owned by its AssetMaterialization
    ("terrane.io", "assetsources", v) for v in ("create", "patch", "delete")
} | {
    ("", "pods", v) for v in ("get", "list", "watch", "create", "delete")
} | {
    ("", "events", v) for v in ("create", "patch")
} | {
    ("events.k8s.io", "events", v) for v in ("create", "patch")
}
# The lineage UI (ui.enabled, the default) reads Events for its asset panel.
UI_RULES = {("", "events", v) for v in ("get", "list", "watch")}
LEASE_RULES = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}
NODE_RULES = {("", "nodes", "get")}
FINALIZER_RULES = {("terrane.io", r + "/finalizers", "update")
                   for r in ("assetmaterializations", "assetsources")}
# resource.Quantity as controller/pools.c parses it (non-negative).
QUANTITY = re.compile(r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)
    return bool(cond)


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def one(docs, kind, name_suffix=""):
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    check(len(found) == 1, f"expected one {kind}*{name_suffix}, found {len(found)}")
    return found[0] if found else None


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def args_of(container):
    out = {}
    for a in container.get("args", []):
        m = re.match(r"^--([a-z][a-z0-9-]*)=(.*)$", a, re.S)
        if check(m, f"controller arg {a!r} is not --name=value"):
            out[m.group(1)] = m.group(2)
    return out


def check_pools(text):
    try:
        cfg = json.loads(text)
    except ValueError as e:
        check(False, f"pools.json is not JSON: {e}")
        return None
    check(set(cfg) <= {"defaultPool", "pools"}, f"pools.json: unknown top-level fields {set(cfg) - {'defaultPool', 'pools'}}")
    pools = cfg.get("pools", {})
    check(isinstance(pools, dict) and pools, "pools.json: pools must be a non-empty object")
    check(cfg.get("defaultPool") in pools, f"pools.json: defaultPool {cfg.get('defaultPool')!r} is not a pool")
    for name, p in pools.items():
        where = f"pools.json pools.{name}"
        check(DNS_LABEL.match(name), f"{where}: name is not a DNS label")
        check(set(p) <= {"nodeSelector", "tolerations", "resources", "oomEscalation", "maxPartitionPods"}, f"{where}: unknown fields {set(p)}")
        check(isinstance(p.get("maxPartitionPods", 0), int) and p.get("maxPartitionPods", 0) >= 0, f"{where}.maxPartitionPods: {p.get('maxPartitionPods')!r}")
        check(all(isinstance(v, str) for v in p.get("nodeSelector", {}).values()), f"{where}.nodeSelector: values must be strings")
        for i, t in enumerate(p.get("tolerations", [])):
            check(set(t) <= {"key", "operator", "value", "effect", "tolerationSeconds"}, f"{where}.tolerations[{i}]: unknown fields")
            check(t.get("operator", "Equal") in ("Exists", "Equal"), f"{where}.tolerations[{i}].operator")
            check(t.get("effect", "") in ("", "NoSchedule", "PreferNoSchedule", "NoExecute"), f"{where}.tolerations[{i}].effect")
            check("tolerationSeconds" not in t or t.get("effect") == "NoExecute", f"{where}.tolerations[{i}]: tolerationSeconds needs NoExecute")
        res = p.get("resources", {})
        check(set(res) <= {"requests", "limits"}, f"{where}.resources: unknown fields {set(res)}")
        for part in ("requests", "limits"):
            for r, q in res.get(part, {}).items():
                check(isinstance(q, str) and QUANTITY.match(q), f"{where}.resources.{part}.{r}: {q!r} is not a quantity string")
        if "oomEscalation" in p:
            check(p["oomEscalation"] in pools and p["oomEscalation"] != name, f"{where}.oomEscalation: {p['oomEscalation']!r}")
    # no escalation cycles
    for name in pools:
        seen, cur = set(), name
        while cur is not None and check(cur not in seen, f"pools.json: oomEscalation cycle through {cur}"):
            seen.add(cur)
            cur = pools.get(cur, {}).get("oomEscalation")
    return cfg


def kinds_has_rbac(docs):
    return any(d["kind"] in ("Role", "ClusterRole") for d in docs)


def check_worker_env(text):
    try:
        env = json.loads(text)
    except ValueError as e:
        check(False, f"worker-env.json is not JSON: {e}")
        return None
    check(isinstance(env, dict), "worker-env.json: not an object")
    for k, v in env.items():
        check(ENV_NAME.match(k), f"worker-env.json: {k!r} is not a variable name")
        check(isinstance(v, str), f"worker-env.json: {k}: value must be a string")
    check("TERRANE_TASK" not in env, "worker-env.json sets TERRANE_TASK")
    return env


def main():
    scenario, path, namespace = sys.argv[1], sys.argv[2], sys.argv[3]
    docs = load(path)
    kinds = sorted(d["kind"] for d in docs)

    # --- every scenario ------------------------------------------------------------
    for d in docs:
        md = d.get("metadata", {})
        check(md.get("labels", {}).get("app.kubernetes.io/part-of") == "terrane", f"{d['kind']}/{md.get('name')}: no app.kubernetes.io/part-of label")
        cluster_scoped = d["kind"] in ("ClusterRole", "ClusterRoleBinding", "Namespace")
        check(cluster_scoped != bool(md.get("namespace")), f"{d['kind']}/{md.get('name')}: namespace {md.get('namespace')!r}")
    dep = one(docs, "Deployment", "-controller")
    if not dep:
        return
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    plabels = spec["template"]["metadata"]["labels"]
    check(selects(spec["selector"]["matchLabels"], plabels), "Deployment selector does not match its pod labels")
    check(dep["metadata"]["namespace"] == namespace, "Deployment not in the release namespace")
    (c,) = pod["containers"]
    args = args_of(c)
    extra = {"verbose-reconcile"} if scenario == "all" else set()  # values-all.yaml's extraArgs
    check(set(args) - extra <= FLAGS, f"unknown controller flags {set(args) - extra - FLAGS}")
    for need in ("pools", "worker-env", "worker-image", "worker-service-account", "worker-version",
                 "workers", "qps", "burst", "pod-gc-delay", "keep-failed-pods", "leader-elect", "metrics-addr"):
        check(need in args, f"controller arg --{need} missing")
    check(args.get("pools") == "/etc/terrane/pools.json" and args.get("worker-env") == "/etc/terrane/worker-env.json",
          "--pools/--worker-env do not point at the mounted files")
    check(args.get("leader-elect") in ("true", "false"), "--leader-elect is not true|false")
    check(args.get("keep-failed-pods") in ("true", "false"), "--keep-failed-pods is not true|false")
    for num in ("workers", "qps", "burst", "pod-gc-delay", "resync", "shutdown-timeout", "lease-duration",
                "renew-deadline", "retry-period", "worker-active-deadline"):
        check(num not in args or re.fullmatch(r"[0-9]+", args[num]), f"--{num}={args.get(num)} is not an integer")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(int(args.get("shutdown-timeout", "0")) < grace, "--shutdown-timeout does not end before terminationGracePeriodSeconds")
    if args.get("leader-elect") == "true":
        check(args.get("identity") == "$(POD_NAME)" and any(e["name"] == "POD_NAME" for e in c.get("env", [])),
              "leader identity is not the pod name")
    if "worker-command" in args:
        cmd = json.loads(args["worker-command"])
        check(isinstance(cmd, list) and cmd and all(isinstance(x, str) for x in cmd), "--worker-command is not a JSON array of strings")
    # security: restricted Pod Security Standard
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(psc.get("runAsNonRoot") or csc.get("runAsNonRoot"), "runAsNonRoot not set")
    check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem not true")
    check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation not false")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities do not drop ALL")
    check((csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", "seccompProfile not RuntimeDefault")
    check(not c.get("securityContext", {}).get("privileged"), "privileged container")
    # probes on the metrics port
    port = next((p for p in c.get("ports", []) if p.get("name") == "metrics"), None)
    check(port is not None, "no metrics container port")
    check(args.get("metrics-addr") == f":{port and port['containerPort']}", "--metrics-addr does not match the metrics port")
    check(c.get("livenessProbe", {}).get("httpGet") == {"path": "/healthz", "port": "metrics"}, "liveness probe is not /healthz on metrics")
    check(c.get("readinessProbe", {}).get("httpGet") == {"path": "/readyz", "port": "metrics"}, "readiness probe is not /readyz on metrics")
    check(c.get("resources", {}).get("limits", {}).get("memory"), "controller has no memory limit")
    # configuration volume: the ConfigMaps rendered here, with the keys the args read
    cms = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    sources = [s["configMap"] for v in pod["volumes"] if "projected" in v for s in v["projected"]["sources"]]
    for src in sources:
        cm = cms.get(src["name"])
        if check(cm, f"volume refers to ConfigMap {src['name']} which is not rendered"):
            for item in src.get("items", []):
                check(item["key"] in cm.get("data", {}), f"ConfigMap {src['name']} has no key {item['key']}")
    pools_cm = next((cm for cm in cms.values() if "pools.json" in cm.get("data", {})), None)
    env_cm = next((cm for cm in cms.values() if "worker-env.json" in cm.get("data", {})), None)
    pools = check_pools(pools_cm["data"]["pools.json"]) if check(pools_cm, "no pools ConfigMap") else None
    wenv = check_worker_env(env_cm["data"]["worker-env.json"]) if check(env_cm, "no worker-env ConfigMap") else None
    check(dep["spec"]["template"]["metadata"]["annotations"].get("checksum/config"), "no checksum/config annotation")
    # service account of the controller
    sa_name = pod.get("serviceAccountName")
    sas = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in by_kind(docs, "ServiceAccount")}
    # RBAC: exact rules, no wildcards, bound to the controller's ServiceAccount
    granted, lease_rules = set(), set()
    is_worker = lambda d: d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "worker"
    worker_roles = [r for r in by_kind(docs, "Role") if is_worker(r)]
    worker_bindings = [b for b in by_kind(docs, "RoleBinding") if is_worker(b)]
    for role in [r for r in by_kind(docs, "ClusterRole") + by_kind(docs, "Role") if not is_worker(r)]:
        for rule in role.get("rules", []):
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                check("*" not in rule.get(field, []), f"{role['kind']}/{role['metadata']['name']}: wildcard in {field}")
            check(not rule.get("nonResourceURLs"), f"{role['kind']}/{role['metadata']['name']}: nonResourceURLs")
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    for v in rule["verbs"]:
                        (lease_rules if r == "leases" else granted).add((g, r, v))
                        if r == "leases":
                            check(role["kind"] == "Role", "lease rules outside a namespaced Role")
                            if v in ("get", "update"):
                                check(rule.get("resourceNames"), "lease get/update not restricted to the Lease's name")
    for b in [b for b in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding") if not is_worker(b)]:
        check(b["subjects"] == [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}],
              f"{b['kind']}/{b['metadata']['name']} binds {b['subjects']}")
        target = [r for r in by_kind(docs, b["roleRef"]["kind"]) if r["metadata"]["name"] == b["roleRef"]["name"]]
        check(target, f"{b['kind']}/{b['metadata']['name']} refers to a missing {b['roleRef']['kind']}")
        if target and b["kind"] == "RoleBinding":
            check(target[0]["metadata"]["namespace"] == b["metadata"]["namespace"], "RoleBinding and Role in different namespaces")
    # worker ServiceAccounts: no API token
    worker_sa = args.get("worker-service-account")
    worker_sas = [d for d in by_kind(docs, "ServiceAccount") if d["metadata"]["name"] == worker_sa]
    for w in worker_sas:
        check(w.get("automountServiceAccountToken") is False, f"worker ServiceAccount {w['metadata']['namespace']}/{worker_sa} mounts an API token")
    # worker Roles: get on pods in the worker's own namespace, nothing else
    # (a container asset's publish step reads its own pod's imageID)
    if worker_sas and kinds_has_rbac(docs):
        check(len(worker_roles) == len(worker_sas) == len(worker_bindings),
              f"{len(worker_sas)} worker ServiceAccounts, {len(worker_roles)} worker Roles, {len(worker_bindings)} bindings")
    for r in worker_roles:
        check(r["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}], f"worker Role rules {r['rules']}")
    for b in worker_bindings:
        ns_b = b["metadata"]["namespace"]
        check(b["subjects"] == [{"kind": "ServiceAccount", "name": worker_sa, "namespace": ns_b}], f"worker RoleBinding binds {b['subjects']}")
        check([r for r in worker_roles if r["metadata"]["name"] == b["roleRef"]["name"] and r["metadata"]["namespace"] == ns_b],
              f"worker RoleBinding {ns_b}/{b['metadata']['name']} refers to a missing Role")
    # selectors of Service, PDB and ServiceMonitor reach the controller pods
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for svc in by_kind(docs, "Service"):
        ui = svc["metadata"]["name"].endswith("-ui")
        what = "UI" if ui else "metrics"
        check(selects(svc["spec"]["selector"], plabels), f"{what} Service does not select the controller pods")
        check(svc["spec"]["ports"][0]["targetPort"] == ("ui" if ui else "metrics"), f"{what} Service targetPort")
        if ui:
            check(svc["spec"]["type"] == "ClusterIP", "the UI Service is not ClusterIP")
            check(args.get("ui-addr") == f":{ports.get('ui')}", "--ui-addr is not the container's ui port")
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        check(selects(pdb["spec"]["selector"]["matchLabels"], plabels), "PDB does not select the controller pods")
        check(pdb["spec"].get("minAvailable") == 1, "PDB minAvailable is not 1")
    for sm in by_kind(docs, "ServiceMonitor"):
        svcs = by_kind(docs, "Service")
        check(any(selects(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"]) for s in svcs), "ServiceMonitor selects no Service")
        check(sm["spec"]["endpoints"][0]["port"] == "metrics" and sm["spec"]["endpoints"][0]["path"] == "/metrics", "ServiceMonitor endpoint")
    for np in by_kind(docs, "NetworkPolicy"):
        check(np["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "terrane-worker"}}, "NetworkPolicy podSelector")
        check(np["spec"]["policyTypes"] == ["Egress"], "NetworkPolicy policyTypes")

    # --- per scenario ---------------------------------------------------------------
    has = lambda kind: kind in kinds  # noqa: E731
    if scenario in ("default", "nosvc", "norbac", "noworkersa", "hard", "single", "nonetpol"):
        check(dep["metadata"]["name"] == "terrane-controller", f"release 'terrane' names the Deployment {dep['metadata']['name']}")
    if scenario == "default":
        check(spec["replicas"] == 2, "default replicas is not 2")
        check(args["leader-elect"] == "true", "leader election is not on by default")
        check(args.get("lease-namespace") == namespace, "lease is not in the release namespace")
        check(psc.get("runAsUser") == 65532 or csc.get("runAsUser") == 65532, "runAsUser is not 65532")
        check(granted == CORE_RULES | UI_RULES, f"ClusterRole rules differ: extra {granted - CORE_RULES - UI_RULES}, missing {(CORE_RULES | UI_RULES) - granted}")
        check(lease_rules == LEASE_RULES, f"lease rules {lease_rules}")
        check(by_kind(docs, "ClusterRole") and not [r for r in by_kind(docs, "Role") if "leases" not in json.dumps(r["rules"]) and not is_worker(r)], "default RBAC should be a ClusterRole")
        check(not has("ServiceMonitor"), "ServiceMonitor rendered by default")
        check(not has("Namespace"), "Namespace rendered by default (Helm would refuse existing ones)")
        nps = by_kind(docs, "NetworkPolicy")
        check(len(nps) == 1 and nps[0]["metadata"]["namespace"] == namespace, "no worker NetworkPolicy by default")
        for np in nps:
            rules = np["spec"]["egress"]
            blocks = [t["ipBlock"] for r in rules for t in r.get("to", []) if "ipBlock" in t]
            check({"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]} in blocks, "metadata address not blocked by default")
            check({"cidr": "::/0", "except": ["fd00:ec2::254/128"]} in blocks, "IPv6 metadata address not blocked by default")
            agent = [r for r in rules if {"cidr": "169.254.170.23/32"} in [t.get("ipBlock") for t in r.get("to", [])]]
            check(agent and agent[0].get("ports") == [{"protocol": "TCP", "port": 80}], "Pod Identity agent not reachable by default")
        check(has("PodDisruptionBudget"), "no PodDisruptionBudget with 2 replicas")
        check((namespace, sa_name) in sas and (namespace, "terrane-worker") in sas, "controller or worker ServiceAccount missing")
        check(worker_sa == "terrane-worker", "worker ServiceAccount is not terrane-worker")
        aff = pod.get("affinity", {}).get("podAntiAffinity", {})
        check(aff.get("preferredDuringSchedulingIgnoredDuringExecution"), "no soft pod anti-affinity between replicas")
        term = aff.get("preferredDuringSchedulingIgnoredDuringExecution", [{}])[0].get("podAffinityTerm", {})
        check(selects(term.get("labelSelector", {}).get("matchLabels"), plabels), "anti-affinity does not select the replicas")
        tsc = pod.get("topologySpreadConstraints", [])
        check(tsc and tsc[0]["topologyKey"] == "topology.kubernetes.io/zone" and selects(tsc[0]["labelSelector"]["matchLabels"], plabels),
              "no zone topology spread between replicas")
        check(not pod.get("priorityClassName"), "priorityClassName set by default")
        check(c["image"] == "localhost/terrane-controller:0.1.0", f"controller image {c['image']}")
        check(args["worker-image"] == "localhost/terrane-worker:0.1.0", f"worker image {args['worker-image']}")
        if pools:
            check(set(pools["pools"]) == {"cpu", "highmem", "gpu"} and pools["defaultPool"] == "cpu", "default pools")
            gpu = pools["pools"].get("gpu", {})
            check(gpu.get("resources", {}).get("limits", {}).get("nvidia.com/gpu") == "1", "gpu pool does not limit nvidia.com/gpu")
            check(gpu.get("resources", {}).get("requests", {}).get("nvidia.com/gpu") == "1", "gpu pool does not request nvidia.com/gpu")
            check({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu.get("tolerations", []), "gpu pool does not tolerate nvidia.com/gpu")
            check(pools["pools"]["cpu"].get("oomEscalation") == "highmem", "cpu pool does not escalate to highmem")
        if wenv is not None:
            check(wenv.get("TERRANE_ALLOWED_BUCKETS") == "*" and wenv.get("TERRANE_LOG_LEVEL") == "info", f"default worker env {wenv}")
    elif scenario == "nonetpol":
        check(not has("NetworkPolicy"), "NetworkPolicy rendered though networkPolicy.enabled=false")
    elif scenario == "all":
        check(spec["replicas"] == 3, "replicas")
        nss = by_kind(docs, "Namespace")
        check([n["metadata"]["name"] for n in nss] == ["hydro"], "worker.podSecurity.createNamespaces: no Namespace hydro")
        want = {f"pod-security.kubernetes.io/{m}{v}": x for m in ("enforce", "warn", "audit") for v, x in (("", "baseline"), ("-version", "v1.30"))}
        for n in nss:
            got = {k: v for k, v in n["metadata"]["labels"].items() if k.startswith("pod-security.kubernetes.io/")}
            check(got == want, f"Namespace hydro Pod Security labels {got}")
        check(c["image"].endswith("@sha256:" + "0123456789abcdef" * 4) and c["image"].startswith("123456789012.dkr.ecr.eu-west-1.amazonaws.com/platform/"), f"controller image {c['image']}")
        check(args.get("namespace") == "hydro", "--namespace not rendered")
        check(args.get("worker-version") == "0.1.0+build.7" and args.get("qps") == "20", "worker-version/qps")
        check(args.get("worker-active-deadline") == "7200" and args.get("worker-image-pull-policy") == "Always", "worker deadline/pull policy")
        check(args.get("log-level") == "debug" and args.get("resync") == "600" and args.get("shutdown-timeout") == "40", "log-level/resync/shutdown-timeout")
        check(json.loads(args.get("worker-command", "null")) == ["/usr/local/bin/terrane-worker", "run"], "--worker-command")
        check(args.get("lease-name") == "hydro-terrane" and args.get("lease-duration") == "30", "lease args")
        check(c["args"][-1] == "--verbose-reconcile=true", "extraArgs not appended")
        roles = by_kind(docs, "Role")
        main_roles = [r for r in roles if r["metadata"]["namespace"] == "hydro" and not is_worker(r)]
        check(len(main_roles) == 1 and not [r for r in by_kind(docs, "ClusterRole") if "pods" in json.dumps(r["rules"])],
              "watchNamespace should give a Role in hydro, not a ClusterRole")
        want = CORE_RULES | UI_RULES | NODE_RULES | FINALIZER_RULES
        check(granted == want, f"rules differ: extra {granted - want}, missing {want - granted}")
        nodes_role = [r for r in by_kind(docs, "ClusterRole") if "nodes" in json.dumps(r["rules"])]
        check(len(nodes_role) == 1 and nodes_role[0]["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}], "nodes ClusterRole")
        check(pod.get("priorityClassName") == "system-cluster-critical", "priorityClassName")
        check(pod["affinity"].get("nodeAffinity") and "podAntiAffinity" not in pod["affinity"], "affinity should replace the default anti-affinity")
        check(pod["nodeSelector"] == {"node-role.kubernetes.io/system": "true"} and pod["tolerations"][0]["key"] == "CriticalAddonsOnly", "controller nodeSelector/tolerations")
        check(has("ServiceMonitor") and has("NetworkPolicy") and not has("PodDisruptionBudget"), f"kinds {kinds}")
        check(("platform", sa_name) not in sas and sa_name == "terrane-ops", "controller ServiceAccount should not be created")
        w = [d for d in worker_sas if d["metadata"]["namespace"] == "hydro"]
        check(w and w[0]["metadata"]["annotations"].get("eks.amazonaws.com/role-arn") == "arn:aws:iam::123456789012:role/terrane-worker"
              and w[0].get("imagePullSecrets") == [{"name": "ecr-pull"}], "worker ServiceAccount annotations/imagePullSecrets")
        for d in docs:
            check(d["metadata"]["labels"].get("team") == "hydrology", f"{d['kind']}: commonLabels missing")
            check(d["metadata"]["name"].startswith("hydro-terrane") or d["kind"] in ("ServiceAccount", "Namespace"), f"{d['kind']}/{d['metadata']['name']}: fullnameOverride ignored")
        (np,) = by_kind(docs, "NetworkPolicy") or [None]
        if np:
            blocks = [t["ipBlock"] for r in np["spec"]["egress"] for t in r.get("to", []) if "ipBlock" in t]
            check({"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32", "10.0.0.0/8"]} in blocks, "IPv4 except list")
            check({"cidr": "::/0", "except": ["fd00:ec2::254/128"]} in blocks, "IPv6 except list")
            check(not any(b["cidr"].startswith("169.254.170.23") for b in blocks), "Pod Identity rule present though disabled")
            check(np["metadata"]["namespace"] == "hydro", "NetworkPolicy namespace")
        if wenv is not None:
            want = {"TERRANE_ALLOWED_BUCKETS": "raw,assets", "TERRANE_ALLOWED_HOSTS": "data.example.com,tiles.example.org:8443",
                    "TERRANE_LOG_LEVEL": "debug", "AWS_REGION": "eu-west-1", "AWS_S3_ENDPOINT": "minio.storage.svc:9000",
                    "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE", "GDAL_CACHEMAX": "512", "GDAL_HTTP_MAX_RETRY": "3"}
            check(wenv == want, f"worker env {wenv}")
        if pools:
            check(pools["defaultPool"] == "general" and set(pools["pools"]) == {"general", "cpu", "highmem", "gpu"}, "pools")
            check(pools["pools"]["cpu"]["nodeSelector"] == {"karpenter.sh/nodepool": "cpu"}, "null did not remove a default nodeSelector label")
            check(pools["pools"]["cpu"]["resources"]["requests"]["cpu"] == "2", "numeric quantity not rendered as \"2\"")
            check("oomEscalation" not in pools["pools"]["general"], "empty oomEscalation rendered")
            check(pools["pools"]["cpu"].get("oomEscalation") == "gpu", "oomEscalation not rendered")
    elif scenario == "single":
        check(spec["replicas"] == 1 and args["leader-elect"] == "false", "single replica without leader election")
        check(not any(k.startswith("lease-") for k in args), "lease flags without leader election")
        check(not lease_rules, "lease RBAC without leader election")
        check(not has("PodDisruptionBudget"), "PDB with one replica")
        check("topologySpreadConstraints" not in pod, "topology spread with one replica")
    elif scenario == "nosvc":
        check(not has("Service"), "Service rendered with metrics.service.enabled=false and ui.enabled=false")
        check("ui-addr" not in args, "--ui-addr with ui.enabled=false")
        check(granted == CORE_RULES, f"rules with ui.enabled=false: extra {granted - CORE_RULES}, missing {CORE_RULES - granted}")
    elif scenario == "norbac":
        check(not [k for k in kinds if k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")], "RBAC rendered with rbac.create=false")
    elif scenario == "noworkersa":
        check(not worker_sas, "worker ServiceAccount rendered with worker.serviceAccount.create=false")
        check(args.get("worker-service-account") == "terrane-worker", "--worker-service-account still names the ServiceAccount")
    elif scenario == "hard":
        req = pod.get("affinity", {}).get("podAntiAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        check(req and selects(req[0]["labelSelector"]["matchLabels"], plabels), "hard anti-affinity")
        check("topologySpreadConstraints" not in pod, "topologySpread.enabled=false still spreads")
    else:
        check(False, f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
    for p in problems:
        print(f"FAIL {sys.argv[1]}: {p}")
    if not problems:
        print(f"ok   {sys.argv[1]}: rendered manifests keep every invariant")
    sys.exit(1 if problems else 0)
