"""Node pools and their Node objects.

Reads the pools file, creates each pool's initial nodes, adds nodes for the
autoscaler (NotReady with the not-ready taint for provisionSeconds, then
Ready) and removes them. Nodes carry the pool's labels and taints plus
kubernetes.io/hostname, node.kubernetes.io/instance-type and kubesim.io/pool.
Called from the autoscaler thread, the admin endpoints and kubesim.py.
"""

import platform
import threading
import time

from util import ApiError, now_ts

POOL_LABEL = "kubesim.io/pool"
NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"


class Pool:
    def __init__(self, d, defaults):
        if not d.get("name"):
            raise ValueError("every pool needs a name")
        self.name = d["name"]
        self.labels = dict(d.get("labels") or {})
        self.taints = list(d.get("taints") or [])
        self.allocatable = {k: str(v) for k, v in (d.get("allocatable") or {}).items()}
        self.allocatable.setdefault("pods", "110")
        self.allocatable.setdefault("cpu", "2")
        self.allocatable.setdefault("memory", "8Gi")
        self.capacity = {k: str(v) for k, v in (d.get("capacity") or self.allocatable).items()}
        self.min = int(d.get("min", 0))
        self.max = int(d.get("max", max(self.min, 1)))
        if self.max < self.min:
            raise ValueError("pool %s: max < min" % self.name)
        self.initial = int(d.get("initial", self.min))
        self.instance_type = d.get("instanceType", "kubesim-" + self.name)
        self.provision_seconds = float(d.get("provisionSeconds",
                                             defaults.get("provisionSeconds", 1.0)))
        self.priority = int(d.get("priority", 0))


class Cluster:
    def __init__(self, store, doc, server_version="v1.30.0"):
        self.store = store
        self.lock = threading.Lock()
        doc = doc or {}
        self.pools = [Pool(p, doc) for p in doc.get("pools") or []]
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError("pool names must be unique")
        self.scale_down_delay = float(doc.get("scaleDownDelaySeconds", 10))
        self.scan_interval = float(doc.get("scanIntervalSeconds", 0.5))
        self.server_version = server_version
        self.counters = {p.name: 0 for p in self.pools}
        self.provisioning = {}   # node name -> time it becomes Ready
        self.removed_nodes = set()
        self.ip_counter = 0
        self.nodes_res = store.res("", "v1", "nodes")

    def pool(self, name):
        for p in self.pools:
            if p.name == name:
                return p
        return None

    def start(self):
        for p in self.pools:
            for _ in range(p.initial):
                self.add_node(p.name, reason="initial", ready_now=True)

    def nodes_of(self, pool_name):
        return [n for n in self.store.objects(("", "nodes"))
                if (n["metadata"].get("labels") or {}).get(POOL_LABEL) == pool_name]

    def template(self, p, name="template"):
        """A Node object for pool p (also what the autoscaler simulates)."""
        labels = dict(p.labels)
        labels.update({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type":
                       p.instance_type, POOL_LABEL: p.name})
        t = now_ts()
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels,
                         "annotations": {"kubesim.io/pool": p.name}},
            "spec": {"taints": [dict(x) for x in p.taints], "providerID": "kubesim:///" + name},
            "status": {
                "capacity": dict(p.capacity), "allocatable": dict(p.allocatable),
                "conditions": [
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                     "message": "kubelet has sufficient memory available",
                     "lastHeartbeatTime": t, "lastTransitionTime": t},
                    {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
                     "message": "kubelet has no disk pressure",
                     "lastHeartbeatTime": t, "lastTransitionTime": t},
                    {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
                     "message": "kubelet has sufficient PID available",
                     "lastHeartbeatTime": t, "lastTransitionTime": t},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "kubelet is posting ready status",
                     "lastHeartbeatTime": t, "lastTransitionTime": t},
                ],
                "addresses": [], "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"kubeletVersion": self.server_version, "kubeProxyVersion": self.server_version,
                             "osImage": "kubesim (simulated node)", "kernelVersion": platform.release(),
                             "containerRuntimeVersion": "kubesim://1.0", "operatingSystem": "linux",
                             "architecture": "amd64", "machineID": "", "systemUUID": "", "bootID": ""},
            },
        }

    def add_node(self, pool_name, reason="scale-up", ready_now=False):
        p = self.pool(pool_name)
        if p is None:
            return None
        with self.lock:
            if len(self.nodes_of(p.name)) >= p.max and reason != "initial":
                return None
            while True:
                self.counters[p.name] += 1
                name = "%s-%d" % (p.name, self.counters[p.name])
                if self.store.get_raw(("", "nodes"), "", name) is None:
                    break
            self.ip_counter += 1
            node = self.template(p, name)
            node["status"]["addresses"] = [
                {"type": "InternalIP", "address": "10.0.%d.%d" % (self.ip_counter // 250,
                                                                  self.ip_counter % 250 + 1)},
                {"type": "Hostname", "address": name}]
            if not ready_now and p.provision_seconds > 0:
                for c in node["status"]["conditions"]:
                    if c["type"] == "Ready":
                        c.update(status="False", reason="KubeletNotReady",
                                 message="node is being provisioned")
                node["spec"]["taints"].append(dict(NOT_READY_TAINT))
                self.provisioning[name] = time.monotonic() + p.provision_seconds
            try:
                return self.store.create(self.nodes_res, None, node)
            except ApiError:
                return None

    def tick(self):
        """Turn provisioned nodes Ready."""
        now = time.monotonic()
        with self.lock:
            due = [n for n, t in self.provisioning.items() if t <= now]
            for n in due:
                del self.provisioning[n]
        for name in due:
            def ready(node):
                node["spec"]["taints"] = [t for t in node["spec"].get("taints") or []
                                          if t.get("key") != NOT_READY_TAINT["key"]]
            self.store.modify(self.nodes_res, None, name, ready)

            def ready_status(node):
                t = now_ts()
                for c in node["status"].get("conditions") or []:
                    if c["type"] == "Ready":
                        c.update(status="True", reason="KubeletReady",
                                 message="kubelet is posting ready status",
                                 lastHeartbeatTime=t, lastTransitionTime=t)
            n = self.store.modify(self.nodes_res, None, name, ready_status, "status")
            if n is not None:
                self.store.record_event(n, "Normal", "NodeReady",
                                        "Node %s status is now: NodeReady" % name, "kubelet", name)

    def is_provisioning(self, name):
        with self.lock:
            return name in self.provisioning

    def remove_node(self, name):
        with self.lock:
            self.provisioning.pop(name, None)
            self.removed_nodes.add(name)
        try:
            self.store.delete(self.nodes_res, None, name, {})
            return True
        except ApiError:
            return False

    def kill_node(self, name):
        """Node loss: the Node disappears at once; its pods are failed and
        removed by the pod garbage collector."""
        if self.store.get_raw(("", "nodes"), "", name) is None:
            return False
        return self.remove_node(name)

    def describe(self):
        out = []
        for p in self.pools:
            nodes = self.nodes_of(p.name)
            out.append({"name": p.name, "min": p.min, "max": p.max,
                        "nodes": [n["metadata"]["name"] for n in nodes],
                        "provisioning": [n["metadata"]["name"] for n in nodes
                                         if self.is_provisioning(n["metadata"]["name"])]})
        return out
