"""The autoscaler: grows pools for unschedulable pods, shrinks idle ones.

Scale-up follows cluster-autoscaler's idea: a pod the scheduler marked
Unschedulable is packed (first fit) onto simulated fresh nodes of the pools
whose template node it would fit, highest `priority` first then file order;
nodes that exist or are being provisioned count first. Each pool grows up to its max.
Scale-down removes a Ready node that has had no non-terminated pods for
scaleDownDelaySeconds, down to the pool's min. Events: TriggeredScaleUp and
NotTriggerScaleUp on pods, ScaleDown on nodes. Runs in its own thread.
"""

import time

import scheduler
import util
from cluster import POOL_LABEL, TO_BE_DELETED_TAINT

COMPONENT = "cluster-autoscaler"


class Autoscaler(util.Worker):
    def __init__(self, store, cluster):
        util.Worker.__init__(self, "kubesim-autoscaler")
        self.store = store
        self.cluster = cluster
        self.idle_since = {}
        self.pods_res = store.res("", "v1", "pods")


    def run(self):
        while not self.stop_event.wait(self.cluster.scan_interval):
            try:
                self.cluster.tick()
                self.scale_up()
                self.scale_down()
            except Exception:
                import traceback
                traceback.print_exc()

    @staticmethod
    def _unschedulable(p):
        if (p.get("spec") or {}).get("nodeName") or p["metadata"].get("deletionTimestamp"):
            return False
        if (p.get("status") or {}).get("phase", "Pending") != "Pending":
            return False
        for c in (p.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False" and \
                    c.get("reason") == "Unschedulable":
                return True
        return False

    def scale_up(self):
        store, cl = self.store, self.cluster
        with store.lock:
            pods = store.pods_unbound()
            nodes = store.objects(("", "nodes"))
        pending = [p for p in pods if self._unschedulable(p)]
        if not pending:
            return
        pools = sorted(cl.pools, key=lambda p: (-p.priority, cl.pools.index(p)))
        templates = {p.name: cl.template(p) for p in pools}
        counts = {p.name: 0 for p in pools}
        bins = {p.name: [] for p in pools}   # simulated free capacity: list of used dicts
        usage = scheduler.node_usage(pods)
        for n in nodes:
            pool = (n["metadata"].get("labels") or {}).get(POOL_LABEL)
            if pool in counts:
                counts[pool] += 1
        # Pods that fit a node that exists (Ready or still provisioning) need
        # no new node: the scheduler will place them there.
        existing = []
        for n in nodes:
            if n["metadata"].get("deletionTimestamp"):
                continue
            node = dict(n)
            node["spec"] = dict(n.get("spec") or {})
            node["spec"]["taints"] = [t for t in node["spec"].get("taints") or []
                                      if t.get("key") != "node.kubernetes.io/not-ready"]
            existing.append((node, dict(usage.get(n["metadata"]["name"], {}))))
        added = {p.name: 0 for p in pools}
        triggered = []
        for pod in pending:
            placed = False
            for node, used in existing:
                if not scheduler.fits(pod, node, used, check_ready=False):
                    self._add(used, pod)
                    placed = True
                    break
            if placed:
                continue
            fitting = [p for p in pools
                       if not scheduler.fits(pod, templates[p.name], {}, check_ready=False)]
            for p in fitting:
                tmpl = templates[p.name]
                for used in bins[p.name]:
                    if not scheduler.fits(pod, tmpl, used, check_ready=False):
                        self._add(used, pod)
                        placed = True
                        break
                if placed:
                    break
                if counts[p.name] + added[p.name] < p.max:
                    used = {}
                    self._add(used, pod)
                    bins[p.name].append(used)
                    added[p.name] += 1
                    triggered.append((pod, p))
                    placed = True
                    break
            if not placed and not fitting:
                reasons = {}
                for p in pools:
                    for r in scheduler.fits(pod, templates[p.name], {}, check_ready=False):
                        reasons[r] = reasons.get(r, 0) + 1
                msg = "pod didn't trigger scale-up: " + ", ".join(
                    sorted("%d %s" % (c, r.replace("node(s)", "node group(s)", 1))
                           for r, c in reasons.items())) if reasons else \
                    "pod didn't trigger scale-up: no node groups"
                store.record_event(pod, "Normal", "NotTriggerScaleUp", msg, COMPONENT)
            elif not placed:
                maxed = [p.name for p in fitting]
                store.record_event(pod, "Normal", "NotTriggerScaleUp",
                                   "pod didn't trigger scale-up: %d max node group size reached (%s)"
                                   % (len(maxed), ", ".join(maxed)), COMPONENT)
        for p in pools:
            for _ in range(added[p.name]):
                cl.add_node(p.name)
        for pod, p in triggered:
            before = counts[p.name]
            store.record_event(pod, "Normal", "TriggeredScaleUp",
                               "pod triggered scale-up: [{%s %d->%d (max: %d)}]"
                               % (p.name, before, before + added[p.name], p.max), COMPONENT)

    @staticmethod
    def _add(used, pod):
        for k, v in scheduler.pod_requests(pod).items():
            used[k] = used.get(k, 0.0) + v

    def scale_down(self):
        store, cl = self.store, self.cluster
        now = time.monotonic()
        with store.lock:
            nodes = store.objects(("", "nodes"))
            busy = set()
            for p in store.pods_bound():
                if (p.get("status") or {}).get("phase") not in scheduler.TERMINAL:
                    busy.add(p["spec"]["nodeName"])
            for p in store.pods_unbound():  # a pending pod nominated to a node keeps it
                if (p.get("status") or {}).get("nominatedNodeName"):
                    busy.add(p["status"]["nominatedNodeName"])
            counts = {}
            for n in nodes:
                pool = (n["metadata"].get("labels") or {}).get(POOL_LABEL)
                counts[pool] = counts.get(pool, 0) + 1
            names = set()
            for n in nodes:
                name = n["metadata"]["name"]
                names.add(name)
                pool = cl.pool((n["metadata"].get("labels") or {}).get(POOL_LABEL))
                if pool is None or name in busy or cl.is_provisioning(name) or \
                        n["metadata"].get("deletionTimestamp"):
                    self.idle_since.pop(name, None)
                    continue
                since = self.idle_since.setdefault(name, now)
                if now - since < cl.scale_down_delay or counts[pool.name] <= pool.min:
                    continue
                counts[pool.name] -= 1
                self.idle_since.pop(name, None)

                def taint(node):
                    node["spec"].setdefault("taints", []).append(
                        {"key": TO_BE_DELETED_TAINT, "value": str(int(time.time())),
                         "effect": "NoSchedule"})
                n2 = store.modify(store.res("", "v1", "nodes"), None, name, taint)
                store.record_event(n2 or n, "Normal", "ScaleDown",
                                   "node removed by cluster autoscaler: empty for %ds (pool %s)"
                                   % (int(now - since), pool.name), COMPONENT)
                cl.remove_node(name)
            for k in list(self.idle_since):
                if k not in names:
                    del self.idle_since[k]
