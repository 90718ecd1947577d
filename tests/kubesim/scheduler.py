"""The scheduler: binds pending pods to nodes.

Filters in kube-scheduler's order (NodeUnschedulable, TaintToleration,
NodeAffinity, NodeResourcesFit) and keeps, per node, the reasons of the first
filter that rejects it, so an unschedulable pod's PodScheduled condition says
what the real one says, e.g. "0/3 nodes are available: 1 Insufficient memory,
2 node(s) didn't match Pod's node affinity/selector." Feasible nodes are
scored least-allocated first, ties by name. No preemption of lower-priority
pods. Runs in its own thread; `fits` is shared with the autoscaler.
"""

import time

import labelsel
import quantity
import util
from util import now_ts

SCHEDULER = "default-scheduler"
TERMINAL = ("Succeeded", "Failed")


def pod_requests(pod):
    """Effective requests: max(sum of containers, largest init container), plus one pod."""
    spec = pod.get("spec") or {}
    total = {}
    for c in spec.get("containers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            total[k] = total.get(k, 0.0) + quantity.parse_or(v)
    for c in spec.get("initContainers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            total[k] = max(total.get(k, 0.0), quantity.parse_or(v))
    total["pods"] = 1.0
    return total


def node_allocatable(node):
    return {k: quantity.parse_or(v) for k, v in
            ((node.get("status") or {}).get("allocatable") or {}).items()}


def node_ready(node):
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def tolerates(tolerations, taint):
    for t in tolerations or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if op == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def untolerated_taint(pod, node):
    tols = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not tolerates(tols, taint):
            return taint
    return None


def matches_affinity(pod, node):
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if req is not None:
        return labelsel.node_selector_terms_match(req.get("nodeSelectorTerms"), node)
    return True


def fits(pod, node, used, check_ready=True):
    """[] when pod fits node given `used` (resource -> amount already
    requested there), else the first failing filter's reasons."""
    if (node.get("spec") or {}).get("unschedulable"):
        return ["node(s) were unschedulable"]
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return ["node(s) had untolerated taint {%s: %s}" % (taint.get("key"), taint.get("value", ""))]
    if check_ready and not node_ready(node):
        return ["node(s) were not ready"]
    if not matches_affinity(pod, node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    alloc = node_allocatable(node)
    reasons = []
    for k, v in sorted(pod_requests(pod).items()):
        if v <= 0:
            continue
        have = alloc.get(k, 0.0) - used.get(k, 0.0)
        if v > have + 1e-9:
            reasons.append("Too many pods" if k == "pods" else "Insufficient %s" % k)
    return reasons


def node_usage(pods):
    """node name -> summed requests of its non-terminated pods."""
    usage = {}
    for p in pods:
        n = (p.get("spec") or {}).get("nodeName")
        if not n or (p.get("status") or {}).get("phase") in TERMINAL:
            continue
        u = usage.setdefault(n, {})
        for k, v in pod_requests(p).items():
            u[k] = u.get(k, 0.0) + v
    return usage


def fit_error(n_nodes, reasons_count):
    if n_nodes == 0:
        return "no nodes available to schedule pods"
    parts = sorted("%d %s" % (c, r) for r, c in reasons_count.items())
    return "0/%d nodes are available: %s." % (n_nodes, ", ".join(parts))


def set_condition(conds, ctype, status, reason=None, message=None):
    """Set a pod condition, keeping lastTransitionTime when status is unchanged.
    Returns the list (modified in place)."""
    t = now_ts()
    for c in conds:
        if c.get("type") == ctype:
            if c.get("status") != status:
                c["lastTransitionTime"] = t
            c["status"] = status
            c["lastProbeTime"] = None
            for k, v in (("reason", reason), ("message", message)):
                if v is None:
                    c.pop(k, None)
                else:
                    c[k] = v
            return conds
    c = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": t}
    if reason is not None:
        c["reason"] = reason
    if message is not None:
        c["message"] = message
    conds.append(c)
    return conds


def mark_scheduled(store, ns, name, node_name):
    pods = store.res("", "v1", "pods")

    def fn(p):
        st = p.setdefault("status", {})
        set_condition(st.setdefault("conditions", []), "PodScheduled", "True")
        st.pop("nominatedNodeName", None)
    p = store.modify(pods, ns, name, fn, "status")
    if p is not None:
        store.record_event(p, "Normal", "Scheduled", "Successfully assigned %s/%s to %s"
                           % (ns, name, node_name), SCHEDULER)


class Scheduler(util.Worker):
    def __init__(self, store, min_interval=0.02):
        util.Worker.__init__(self, "kubesim-scheduler")
        self.store = store
        self.min_interval = min_interval
        self.pods = store.res("", "v1", "pods")
        self.last_sig = None
        self.tried = set()   # unschedulable pods already tried against last_sig


    def run(self):
        last = 0
        while not self.stop_event.is_set():
            rv = self.store.wait_change(last, 0.5)
            if self.stop_event.is_set():
                return
            last = rv
            try:
                self.schedule_once()
            except Exception:  # keep scheduling whatever one pod does
                import traceback
                traceback.print_exc()
            time.sleep(self.min_interval)

    def schedule_once(self):
        store = self.store
        with store.lock:
            nodes = [n for n in store.objects(("", "nodes"))
                     if not n["metadata"].get("deletionTimestamp")]
            unbound = store.pods_unbound()
            bound = store.pods_bound()
        pending = [p for p in unbound
                   if not (p.get("spec") or {}).get("nodeName")
                   and (p.get("spec") or {}).get("schedulerName", SCHEDULER) == SCHEDULER
                   and (p.get("status") or {}).get("phase", "Pending") == "Pending"
                   and not p["metadata"].get("deletionTimestamp")]
        if not pending:
            self.tried.clear()
            return
        # Retry a pod that did not fit only when capacity may have changed:
        # nodes changed, or the set of pods holding resources did.
        sig = (tuple((n["metadata"]["name"], n["metadata"].get("resourceVersion")) for n in nodes),
               frozenset(p["metadata"]["uid"] for p in bound
                         if (p.get("status") or {}).get("phase") not in TERMINAL))
        if sig != self.last_sig:
            self.last_sig = sig
            self.tried.clear()
        pending = [p for p in pending if p["metadata"]["uid"] not in self.tried]
        if not pending:
            return
        pending.sort(key=lambda p: (-int((p.get("spec") or {}).get("priority") or 0),
                                    p["metadata"].get("creationTimestamp", ""),
                                    p["metadata"].get("namespace", ""), p["metadata"]["name"]))
        usage = node_usage(bound)
        for pod in pending:
            if store.stopping:
                return
            reasons = {}
            best, best_score = None, None
            req = pod_requests(pod)
            for n in nodes:
                nn = n["metadata"]["name"]
                used = usage.get(nn, {})
                why = fits(pod, n, used)
                if why:
                    for r in why:
                        reasons[r] = reasons.get(r, 0) + 1
                    continue
                alloc = node_allocatable(n)
                free = []
                for k in ("cpu", "memory"):
                    a = alloc.get(k, 0.0)
                    if a > 0:
                        free.append((a - used.get(k, 0.0) - req.get(k, 0.0)) / a)
                score = sum(free) / len(free) if free else 0.0
                if best is None or score > best_score + 1e-12:
                    best, best_score = n, score
            ns, name = pod["metadata"].get("namespace"), pod["metadata"]["name"]
            if best is not None:
                if self._bind(pod, best["metadata"]["name"]):
                    u = usage.setdefault(best["metadata"]["name"], {})
                    for k, v in req.items():
                        u[k] = u.get(k, 0.0) + v
                continue
            msg = fit_error(len(nodes), reasons)
            self._unschedulable(pod, msg)
            self.tried.add(pod["metadata"]["uid"])

    def _bind(self, pod, node_name):
        store = self.store
        ns, name = pod["metadata"].get("namespace"), pod["metadata"]["name"]
        uid = pod["metadata"].get("uid")

        def bind(p):
            if p["spec"].get("nodeName") or p["metadata"].get("uid") != uid or \
                    p["metadata"].get("deletionTimestamp"):
                return False
            p["spec"]["nodeName"] = node_name
        with store.lock:
            if store.modify(self.pods, ns, name, bind, "binding") is None:
                return False
            mark_scheduled(store, ns, name, node_name)
        return True

    def _unschedulable(self, pod, msg):
        store = self.store
        ns, name = pod["metadata"].get("namespace"), pod["metadata"]["name"]
        conds = (pod.get("status") or {}).get("conditions") or []
        cur = next((c for c in conds if c.get("type") == "PodScheduled"), None)
        if cur and cur.get("status") == "False" and cur.get("message") == msg:
            return

        def fn(p):
            if p["spec"].get("nodeName"):
                return False
            set_condition(p.setdefault("status", {}).setdefault("conditions", []),
                          "PodScheduled", "False", "Unschedulable", msg)
        p = store.modify(self.pods, ns, name, fn, "status")
        if p is not None:
            store.record_event(p, "Warning", "FailedScheduling", msg, SCHEDULER)
