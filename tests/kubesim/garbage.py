"""Garbage collection and the other deletion controllers.

- ownerReferences: when an owner is gone, dependents whose owners are all gone
  are deleted (background propagation); dangling references are dropped from
  dependents that still have a live owner. Foreground deletion (finalizer
  foregroundDeletion) deletes the dependents first; orphan deletion (finalizer
  orphan) strips the references, then lets the owner go.
- Namespaces being deleted are emptied, then finalized.
- CRDs being deleted lose their instances, then the cleanup finalizer.
- Pods bound to a node kubesim removed are failed and deleted (PodGC).
Runs in its own thread, woken by store changes.
"""

import time

import admission
from scheduler import TERMINAL, set_condition
import util
from util import ApiError

FULL_SCAN_SECONDS = 3.0


class GarbageCollector(util.Worker):
    def __init__(self, store, cluster=None):
        util.Worker.__init__(self, "kubesim-gc")
        self.store = store
        self.cluster = cluster
        self.last_full = 0.0


    def run(self):
        last = 0
        while not self.stop_event.is_set():
            rv = self.store.wait_change(last, 0.25)
            if self.stop_event.is_set():
                return
            last = rv
            try:
                self.collect()
            except Exception:
                import traceback
                traceback.print_exc()
            time.sleep(0.02)

    def _res_for(self, skey):
        rs = [r for r in self.store.registry.for_storage(skey) if not r.to_wire]
        return rs[0] if rs else None

    def _delete_obj(self, skey, ns, name, opts=None):
        res = self._res_for(skey)
        if res is None:
            return
        try:
            self.store.delete(res, ns, name, opts or {"propagationPolicy": "Background"})
        except ApiError:
            pass

    def collect(self):
        store = self.store
        with store.lock:
            deleted = store.deleted_uids
            store.deleted_uids = []
            full = time.monotonic() - self.last_full > FULL_SCAN_SECONDS
        check = set()
        with store.lock:
            for uid in deleted:
                check.update(store.owner_index.get(uid, ()))
            if full:
                self.last_full = time.monotonic()
                for uid, deps in list(store.owner_index.items()):
                    if uid not in store.uid_index:
                        check.update(deps)
        for key in sorted(check):
            self._check_dependent(*key)
        self._finalizers()
        if full or deleted:
            self._pod_gc()

    def _check_dependent(self, skey, ns, name):
        store = self.store
        with store.lock:
            o = store.get_raw(skey, ns, name)
            if o is None:
                return
            refs = o["metadata"].get("ownerReferences") or []
            live = [r for r in refs if r.get("uid") in store.uid_index]
            if len(live) == len(refs):
                return
            if live:
                res = self._res_for(skey)
                if res is None:
                    return
                live_uids = {r.get("uid") for r in live}

                def drop(obj):
                    obj["metadata"]["ownerReferences"] = [
                        r for r in obj["metadata"].get("ownerReferences") or []
                        if r.get("uid") in live_uids]
                store.modify(res, ns or None, name, drop)
                return
            self._delete_obj(skey, ns, name)

    def _finalizers(self):
        store = self.store
        with store.lock:
            work = []
            for skey, ns, name in sorted(store.terminating):
                o = store.get_raw(skey, ns, name)
                if o is None:
                    continue
                fins = o["metadata"].get("finalizers") or []
                if "foregroundDeletion" in fins or "orphan" in fins or \
                        admission.CRD_FINALIZER in fins or skey == ("", "namespaces"):
                    work.append((skey, ns, name, o))
        for skey, ns, name, o in work:
            m = o["metadata"]
            fins = m.get("finalizers") or []
            uid = m.get("uid")
            if "orphan" in fins:
                self._orphan(uid)
                self._remove_finalizer(skey, ns, name, "orphan")
            elif "foregroundDeletion" in fins:
                with store.lock:
                    deps = sorted(store.owner_index.get(uid, ()))
                    deps = [d for d in deps if store.get_raw(*d) is not None]
                if deps:
                    for d in deps:
                        with store.lock:
                            dep = store.get_raw(*d)
                        if dep is not None and not dep["metadata"].get("deletionTimestamp"):
                            self._delete_obj(d[0], d[1], d[2], {"propagationPolicy": "Foreground"})
                else:
                    self._remove_finalizer(skey, ns, name, "foregroundDeletion")
            elif admission.CRD_FINALIZER in fins:
                spec = o.get("spec") or {}
                ikey = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
                with store.lock:
                    insts = list((store.data.get(ikey) or {}).items())
                if insts:
                    for (ins, iname), io in insts:
                        if not io["metadata"].get("deletionTimestamp"):
                            self._delete_obj(ikey, ins, iname)
                else:
                    self._remove_finalizer(skey, ns, name, admission.CRD_FINALIZER)
            elif skey == ("", "namespaces"):
                self._empty_namespace(name)

    def _orphan(self, uid):
        store = self.store
        with store.lock:
            deps = sorted(store.owner_index.get(uid, ()))
        for skey, ns, name in deps:
            res = self._res_for(skey)
            if res is None:
                continue

            def drop(obj):
                obj["metadata"]["ownerReferences"] = [
                    r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                if not obj["metadata"]["ownerReferences"]:
                    del obj["metadata"]["ownerReferences"]
            store.modify(res, ns or None, name, drop)

    def _remove_finalizer(self, skey, ns, name, fin):
        res = self._res_for(skey)
        if res is None:
            return

        def fn(obj):
            fins = obj["metadata"].get("finalizers") or []
            if fin not in fins:
                return False
            obj["metadata"]["finalizers"] = [f for f in fins if f != fin]
        self.store.modify(res, ns or None, name, fn)

    def _empty_namespace(self, ns):
        store = self.store
        left = 0
        with store.lock:
            todo = []
            for skey, bucket in store.data.items():
                res = self._res_for(skey)
                if res is None or not res.namespaced:
                    continue
                for (ons, name), o in bucket.items():
                    if ons == ns:
                        left += 1
                        if not o["metadata"].get("deletionTimestamp"):
                            todo.append((skey, name))
        for skey, name in todo:
            self._delete_obj(skey, ns, name)
        if left == 0:
            nres = store.res("", "v1", "namespaces")
            with store.lock:
                o = store.get_raw(("", "namespaces"), "", ns)
                if o is None:
                    return
                body = store.to_wire(nres, o)
                body["spec"]["finalizers"] = []
                try:
                    store.update(nres, None, ns, body, "finalize", internal=True)
                except ApiError:
                    pass

    def _pod_gc(self):
        if self.cluster is None:
            return
        store = self.store
        pres = store.res("", "v1", "pods")
        with store.lock:
            removed = set(self.cluster.removed_nodes)
            live = {n["metadata"]["name"] for n in store.objects(("", "nodes"))}
            orphans = [p for p in store.pods_bound()
                       if (p.get("spec") or {}).get("nodeName") in removed
                       and p["spec"]["nodeName"] not in live]
        for p in orphans:
            ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
            if (p.get("status") or {}).get("phase") not in TERMINAL:
                def fail(pod):
                    st = pod.setdefault("status", {})
                    set_condition(st.setdefault("conditions", []), "DisruptionTarget", "True",
                                  "DeletionByPodGC", "PodGC: node no longer exists")
                    st["phase"] = "Failed"
                    for cs in st.get("containerStatuses") or []:
                        if "terminated" not in (cs.get("state") or {}):
                            cs["state"] = {"terminated": {
                                "exitCode": 137, "reason": "ContainerStatusUnknown",
                                "message": "The container could not be located when the pod "
                                           "was terminated"}}
                            cs["ready"] = False
                store.modify(pres, ns, name, fail, "status")
            try:
                store.delete(pres, ns, name, {"gracePeriodSeconds": 0})
            except ApiError:
                pass
