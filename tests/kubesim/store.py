"""The object store: every API object in memory, under one lock.

Objects are kept in their storage form in dicts keyed by storage key
(group, plural) and (namespace, name). A committed object is never mutated
again: every change builds a fresh dict, so watch history entries and readers
can share them without copying. Each commit takes the next value of one global
resourceVersion counter and is appended to a bounded history that watches read
from; a watch from a version older than the retained history gets 410 Gone.

The HTTP layer calls create/update/patch/delete/get/list with a Resource from
the registry; the simulated controllers (scheduler, kubelet, autoscaler,
garbage collector) call the same methods, or modify() for read-modify-write
under the lock, so their changes reach watchers like any client's. Threads:
any; all state is guarded by `lock` (re-entrant) and `cond` wakes watchers.
"""

import base64
import bisect
import json
import random
import re
import threading
import time
import uuid

import admission
import labelsel
import patch as patchmod
import registry
import schema as schemamod
import vap
from util import (ApiError, already_exists, bad_request, conflict, deepcopy, dumps, forbidden, gone,
                  rv_required,
                  invalid, not_found, now_ts)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SERVER_META = ("uid", "creationTimestamp", "resourceVersion", "generation",
                "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields")


class HistEvent:
    __slots__ = ("rv", "type", "skey", "ns", "name", "obj", "prev")

    def __init__(self, rv, etype, skey, ns, name, obj, prev):
        self.rv, self.type, self.skey, self.ns, self.name = rv, etype, skey, ns, name
        self.obj, self.prev = obj, prev


class Watcher:
    def __init__(self, res, ns, after, lreqs, freqs):
        self.res, self.ns, self.after = res, ns, after
        self.lreqs, self.freqs = lreqs, freqs
        self.initial = []


def _meta(o):
    return o.setdefault("metadata", {}) if isinstance(o, dict) else {}


def field_value(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            cur = None
            break
        cur = cur.get(part)
    if cur is None:
        return "false" if path in ("spec.unschedulable", "spec.hostNetwork") else ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, dict):
        # event `source` is matched on its component
        return str(cur.get("component", ""))
    return str(cur)


# The User-Agent of the request being served on this thread (set by the
# API server), for the audit records.
REQUEST = threading.local()


class _KeyIndex:
    """The sorted (namespace, name) keys of one storage bucket, in all and per
    namespace, kept current by _commit, so a list page or a namespace's list
    costs what it returns instead of sorting the bucket. Built on first use
    and rebuilt when the bucket it was built from is replaced (a CRD's
    instances dropped at once)."""

    __slots__ = ("bucket", "all", "by_ns")

    def __init__(self, bucket):
        self.bucket = bucket
        self.all = sorted(bucket)
        self.by_ns = {}
        for k in self.all:
            self.by_ns.setdefault(k[0], []).append(k)

    def keys(self, ns):
        return self.all if ns is None else self.by_ns.get(ns, [])

    def add(self, key):
        bisect.insort(self.all, key)
        bisect.insort(self.by_ns.setdefault(key[0], []), key)

    def remove(self, key):
        for lst in (self.all, self.by_ns.get(key[0])):
            if lst:
                i = bisect.bisect_left(lst, key)
                if i < len(lst) and lst[i] == key:
                    del lst[i]
        if not self.by_ns.get(key[0], True):
            del self.by_ns[key[0]]


class _LabelIndex:
    """Keys of one kind by label: label key -> value -> set of (ns, name).
    Built on first use, then kept by _commit; a list or initial watch with a
    label selector reads the keys of its most selective requirement instead
    of every object of the kind."""

    __slots__ = ("bucket", "by")

    def __init__(self, bucket):
        self.bucket = bucket
        self.by = {}
        for k, o in bucket.items():
            self.add(k, o)

    def add(self, key, obj):
        for lk, lv in (obj["metadata"].get("labels") or {}).items():
            self.by.setdefault(lk, {}).setdefault(lv, set()).add(key)

    def remove(self, key, obj):
        for lk, lv in (obj["metadata"].get("labels") or {}).items():
            vals = self.by.get(lk)
            keys = vals.get(lv) if vals else None
            if keys is None:
                continue
            keys.discard(key)
            if not keys:
                del vals[lv]
                if not vals:
                    del self.by[lk]

    def candidates(self, lreqs):
        """A set of keys holding every match of lreqs, or None when no
        requirement narrows them (only !=, notin, !exists, < and >)."""
        best = None
        for r in lreqs:
            vals = self.by.get(r.key, {})
            if r.op in ("=", "==", "in"):
                n = sum(len(vals.get(v, ())) for v in r.values)
                pick = lambda vals=vals, r=r: set().union(*(vals.get(v, ()) for v in r.values))
            elif r.op == "exists":
                n = sum(len(ks) for ks in vals.values())
                pick = lambda vals=vals: set().union(*vals.values())
            else:
                continue
            if best is None or n < best[0]:
                best = (n, pick)
        return best[1]() if best else None


class _PodNodeIndex:
    """Pods by spec.nodeName: the keys of the unbound ones and of the bound
    ones, kept by _commit, so the scheduler, the autoscaler and the kubelet
    read the pods that concern them instead of every pod."""

    __slots__ = ("bucket", "unbound", "bound")

    def __init__(self, bucket):
        self.bucket = bucket
        self.unbound, self.bound = set(), set()
        for k, o in bucket.items():
            self.add(k, o)

    def add(self, key, obj):
        (self.bound if (obj.get("spec") or {}).get("nodeName") else self.unbound).add(key)

    def remove(self, key):
        self.unbound.discard(key)
        self.bound.discard(key)


PODS = ("", "pods")


class Store:
    def __init__(self, history_size=10000, seed=None, cluster_name="kubesim"):
        self.lock = threading.RLock()
        # With --audit: every committed change of these resources, never
        # trimmed (tests count what was ever created, not what is left).
        self.audit = None
        self.audit_resources = ("pods", "assetmaterializations", "leases")
        self.cond = threading.Condition(self.lock)
        self.rv = 1
        self.data = {}
        self.key_index = {}     # skey -> _KeyIndex (see sorted_keys)
        self.label_index = {}   # skey -> _LabelIndex (see label_keys)
        self.pod_nodes = None   # _PodNodeIndex (see pods_unbound, pods_bound)
        # (id(obj), etype, apiVersion) -> (obj, bytes): the watch line of an
        # event, encoded once for every watcher of the resource (obj is kept
        # so its id is not reused while the entry lives); bounded
        self.wire_lines = {}
        self.hist = []
        self.hist_rv = []
        self.history_size = max(10, int(history_size))
        self.compacted_rv = 0
        self.registry = registry.Registry()
        self.owner_index = {}   # owner uid -> set of (skey, ns, name)
        self.uid_index = {}     # uid -> (skey, ns, name)
        self.deleted_uids = []  # consumed by the garbage collector
        self.terminating = set()  # (skey, ns, name) of objects with a deletionTimestamp
        self.event_keys = {}    # event aggregation key -> (ns, name)
        self.stopping = False
        self.pod_alive = lambda uid: False  # replaced by the kubelet
        self.rng = random.Random(seed)
        self.cluster_name = cluster_name
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.res("", "v1", "namespaces"), None,
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        self.create(self.res("", "v1", "services"), "default", {
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver",
                                                          "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": 6443}]}})

    # ---- lookups ------------------------------------------------------------

    def res(self, group, version, plural):
        return self.registry.get(group, version, plural)

    def get_raw(self, skey, ns, name):
        """The committed storage object, or None. Read-only for callers."""
        return self.data.get(skey, {}).get((ns or "", name))

    def sorted_keys(self, skey, ns=None):
        """The keys of one kind (in ns, or all), sorted; under the lock, and
        only to read."""
        bucket = self.data.get(skey)
        if not bucket:
            return []
        idx = self.key_index.get(skey)
        if idx is None or idx.bucket is not bucket:
            idx = self.key_index[skey] = _KeyIndex(bucket)
        return idx.keys(ns)

    def label_keys(self, skey, ns, lreqs):
        """The sorted keys (in ns, or all) that may match lreqs, from the
        label index; None when the selector does not narrow them. Under
        the lock."""
        if not lreqs:
            return None
        bucket = self.data.get(skey)
        if not bucket:
            return []
        idx = self.label_index.get(skey)
        if idx is None or idx.bucket is not bucket:
            idx = self.label_index[skey] = _LabelIndex(bucket)
        keys = idx.candidates(lreqs)
        if keys is None:
            return None
        return sorted(keys if ns is None else (k for k in keys if k[0] == ns))

    def _pod_index(self):
        bucket = self.data.setdefault(PODS, {})
        if self.pod_nodes is None or self.pod_nodes.bucket is not bucket:
            self.pod_nodes = _PodNodeIndex(bucket)
        return self.pod_nodes

    def pods_unbound(self):
        """Committed pods without spec.nodeName (read-only), ordered by key."""
        with self.lock:
            idx, bucket = self._pod_index(), self.data[PODS]
            return [bucket[k] for k in sorted(idx.unbound)]

    def pods_bound(self):
        """Committed pods with a spec.nodeName (read-only), ordered by key."""
        with self.lock:
            idx, bucket = self._pod_index(), self.data[PODS]
            return [bucket[k] for k in sorted(idx.bound)]

    def objects(self, skey, ns=None):
        """Committed storage objects of one kind (read-only), ordered by key."""
        with self.lock:
            items = self.data.get(skey, {})
            return [items[k] for k in self.sorted_keys(skey, ns)]

    def watch_line(self, res, etype, obj):
        """The JSON line of a watch event of a storage object, in res's
        version: encoded once and shared by every watcher that sends it."""
        if res.to_wire:
            return dumps({"type": etype, "object": self.to_wire(res, obj)}).encode() + b"\n"
        key = (id(obj), etype, res.api_version)
        with self.lock:
            hit = self.wire_lines.get(key)
            if hit is not None and hit[0] is obj:
                return hit[1]
        # committed objects are never mutated: a shallow copy is enough to
        # set the version's apiVersion and kind (what to_wire does)
        o = dict(obj)
        o["apiVersion"] = res.api_version
        o["kind"] = res.kind
        line = dumps({"type": etype, "object": o}).encode() + b"\n"
        with self.lock:
            if len(self.wire_lines) >= 4096:
                self.wire_lines.clear()
            self.wire_lines[key] = (obj, line)
        return line

    def to_wire(self, res, obj):
        o = deepcopy(obj)
        if res.to_wire:
            return res.to_wire(o)
        o["apiVersion"] = res.api_version
        o["kind"] = res.kind
        return o

    def _from_wire(self, res, obj):
        if res.from_wire:
            obj = res.from_wire(obj)
        else:
            obj["apiVersion"] = res.api_version
            obj["kind"] = res.kind
        return obj

    # ---- commit and history -------------------------------------------------

    def _commit(self, res_skey, ns, name, obj, etype, prev):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        bucket = self.data.setdefault(res_skey, {})
        key = (ns or "", name)
        uid = obj["metadata"].get("uid")
        if prev is not None:
            for ref in prev["metadata"].get("ownerReferences") or []:
                s = self.owner_index.get(ref.get("uid"))
                if s:
                    s.discard((res_skey, ns or "", name))
        tkey = (res_skey, ns or "", name)
        if etype != "DELETED" and obj["metadata"].get("deletionTimestamp"):
            self.terminating.add(tkey)
        else:
            self.terminating.discard(tkey)
        idx = self.key_index.get(res_skey)
        if idx is not None and idx.bucket is not bucket:
            idx = self.key_index[res_skey] = None
        lidx = self.label_index.get(res_skey)
        if lidx is not None and lidx.bucket is not bucket:
            lidx = self.label_index[res_skey] = None
        pidx = self.pod_nodes if res_skey == PODS else None
        if pidx is not None and pidx.bucket is not bucket:
            pidx = self.pod_nodes = None
        if prev is not None:
            if lidx:
                lidx.remove(key, prev)
            if pidx:
                pidx.remove(key)
        if etype == "DELETED":
            if bucket.pop(key, None) is not None and idx:
                idx.remove(key)
            self.uid_index.pop(uid, None)
            self.deleted_uids.append(uid)
        else:
            if idx and key not in bucket:
                idx.add(key)
            bucket[key] = obj
            if lidx:
                lidx.add(key, obj)
            if pidx:
                pidx.add(key, obj)
            self.uid_index[uid] = (res_skey, ns or "", name)
            for ref in obj["metadata"].get("ownerReferences") or []:
                self.owner_index.setdefault(ref.get("uid"), set()).add((res_skey, ns or "", name))
        if self.audit is not None and res_skey[-1] in self.audit_resources:
            self._audit(res_skey, etype, ns, name, obj)
        self.hist.append(HistEvent(self.rv, etype, res_skey, ns or "", name, obj, prev))
        self.hist_rv.append(self.rv)
        if len(self.hist) > self.history_size + self.history_size // 4:
            self._trim(len(self.hist) - self.history_size)
        admission.after_commit(self, res_skey, etype, obj, prev)
        self.cond.notify_all()
        return obj

    def _audit(self, res_skey, etype, ns, name, obj):
        md = obj.get("metadata", {})
        rec = {"rv": self.rv, "type": etype, "resource": res_skey[-1],
               "namespace": ns or "", "name": name, "uid": md.get("uid"),
               "agent": getattr(REQUEST, "agent", "") or ""}
        if rec["resource"] == "pods":
            rec["labels"] = dict(md.get("labels") or {})
            rec["phase"] = (obj.get("status") or {}).get("phase")
            rec["node"] = (obj.get("spec") or {}).get("nodeName")
        elif rec["resource"] == "leases":
            rec["holder"] = (obj.get("spec") or {}).get("holderIdentity")
        self.audit.append(rec)

    def _trim(self, n):
        if n <= 0:
            return
        self.compacted_rv = self.hist_rv[n - 1]
        del self.hist[:n]
        del self.hist_rv[:n]

    def compact(self, to_rv=None):
        """Forget history up to to_rv (default: everything so far), as etcd
        compaction does: watches from older versions then get 410 Gone."""
        with self.lock:
            to_rv = self.rv if to_rv is None else min(int(to_rv), self.rv)
            n = bisect.bisect_right(self.hist_rv, to_rv)
            self._trim(n)
            self.compacted_rv = max(self.compacted_rv, to_rv)
            self.cond.notify_all()
            return self.compacted_rv

    # ---- reads --------------------------------------------------------------

    def get(self, res, ns, name):
        with self.lock:
            o = self.get_raw(res.skey, ns, name)
            if o is None:
                raise not_found(res, name)
            return self.to_wire(res, o)

    def _matcher(self, res, lreqs, freqs):
        labels = res.field_labels()
        for f, _op, _v in freqs:
            if f not in labels:
                raise bad_request('"%s" is not a known field selector: only "%s"'
                                  % (f, '", "'.join(sorted(labels))))

        def match(o):
            if o is None:
                return False
            if lreqs and not labelsel.labels_match(lreqs, o["metadata"].get("labels")):
                return False
            if freqs:
                w = res.to_wire(deepcopy(o)) if res.to_wire and any(
                    not f.startswith("metadata.") for f, _, _ in freqs) else o
                for f, op, v in freqs:
                    actual = field_value(w, labels[f])
                    if (actual == v) != (op == "="):
                        return False
            return True
        return match

    def list(self, res, ns, lreqs=(), freqs=(), limit=0, cont=None):
        match = self._matcher(res, lreqs, freqs)
        with self.lock:
            start = None
            list_rv = self.rv
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont.encode() + b"==="))
                    list_rv, start = int(tok["rv"]), tuple(tok["start"])
                except (ValueError, KeyError, TypeError):
                    raise bad_request("continue key is not valid: invalid continue token")
                if list_rv < self.compacted_rv:
                    raise gone("The provided continue parameter is too old to display a "
                               "consistent list result. You can start a new list without "
                               "the continue parameter.")
            bucket = self.data.get(res.skey, {})
            keys = self.label_keys(res.skey, ns, lreqs)
            if keys is None:
                keys = self.sorted_keys(res.skey, ns)
            first = bisect.bisect_right(keys, start) if start is not None else 0
            items, next_key, remaining, items_last = [], None, 0, None
            for i in range(first, len(keys)):
                k = keys[i]
                o = bucket[k]
                if not match(o):
                    continue
                if limit and len(items) >= limit:
                    next_key = items_last
                    # without selectors every object matches
                    remaining = sum(1 for kk in keys[i:] if match(bucket[kk])) \
                        if lreqs or freqs else len(keys) - i
                    break
                items.append(self.to_wire(res, o))
                items_last = k
            meta = {"resourceVersion": str(list_rv)}
            if next_key is not None:
                meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                    {"rv": list_rv, "start": list(next_key)}).encode()).decode().rstrip("=")
                meta["remainingItemCount"] = remaining
            return {"apiVersion": res.api_version, "kind": res.list_kind,
                    "metadata": meta, "items": items}

    # ---- watch --------------------------------------------------------------

    def watch_start(self, res, ns, rv, lreqs, freqs, send_initial=None):
        """A Watcher positioned per the resourceVersion semantics of watch:
        unset or "0" starts with ADDED events for the current state."""
        match = self._matcher(res, lreqs, freqs)
        with self.lock:
            if rv in (None, "", "0") or send_initial:
                w = Watcher(res, ns, self.rv, lreqs, freqs)
                bucket = self.data.get(res.skey, {})
                keys = self.label_keys(res.skey, ns, lreqs)
                for k in self.sorted_keys(res.skey, ns) if keys is None else keys:
                    if match(bucket[k]):
                        w.initial.append(bucket[k])
            else:
                try:
                    after = int(rv)
                except ValueError:
                    raise bad_request('invalid resource version "%s"' % rv)
                w = Watcher(res, ns, after, lreqs, freqs)
            w.match = match
            return w

    def watch_next(self, w, timeout):
        """Events after w.after for w, waiting up to timeout. Returns a list
        of (type, storage object) already filtered, or raises ApiError 410."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if w.after < self.compacted_rv:
                    raise gone("too old resource version: %d (%d)" % (w.after, self.compacted_rv))
                if self.rv > w.after or self.stopping:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self.cond.wait(left)
            i = bisect.bisect_right(self.hist_rv, w.after)
            evs = [e for e in self.hist[i:] if e.skey == w.res.skey]
            w.after = self.rv
        out = []
        for e in evs:
            if w.ns is not None and e.ns != w.ns:
                continue
            if e.type == "MODIFIED":
                now, before = w.match(e.obj), w.match(e.prev)
                if now and before:
                    out.append(("MODIFIED", e.obj))
                elif now:
                    out.append(("ADDED", e.obj))
                elif before:
                    old = dict(e.prev)
                    old["metadata"] = dict(e.prev["metadata"], resourceVersion=str(e.rv))
                    out.append(("DELETED", old))
            elif w.match(e.obj):
                out.append((e.type, e.obj))
        return out

    def wait_change(self, after_rv, timeout):
        """Block until the store moves past after_rv (or timeout); returns the
        current resourceVersion. Used by the simulated controllers."""
        with self.cond:
            if self.rv <= after_rv and not self.stopping:
                self.cond.wait(timeout)
            return self.rv

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    # ---- writes -------------------------------------------------------------

    def _check_namespace(self, res, ns, name="", creating=True):
        if not res.namespaced:
            return
        nso = self.get_raw(("", "namespaces"), "", ns)
        if nso is None:
            raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns,
                           {"name": ns, "kind": "namespaces"})
        if creating and nso["metadata"].get("deletionTimestamp"):
            raise forbidden('%s "%s" is forbidden: unable to create new content in namespace %s '
                            "because it is being terminated" % (res.plural, name, ns),
                            {"name": ns, "kind": "namespaces"})

    def _validate_meta(self, res, obj, causes):
        m = obj["metadata"]
        name = m.get("name", "")
        rx, what, maxlen = ((_DNS_LABEL, "RFC 1123 label", 63) if res.skey == ("", "namespaces")
                            else (_DNS_SUBDOMAIN, "RFC 1123 subdomain", 253))
        if res.skey != ("", "events") and (not rx.match(name) or len(name) > maxlen):
            causes.append(("metadata.name", "FieldValueInvalid",
                           'Invalid value: "%s": a lowercase %s must consist of lower case '
                           "alphanumeric characters, '-'%s, and must start and end with an "
                           "alphanumeric character" % (name, what,
                                                       "" if rx is _DNS_LABEL else " or '.'")))
        for k, v in (m.get("labels") or {}).items():
            prefix, _, nm = k.rpartition("/")
            if (prefix and not _DNS_SUBDOMAIN.match(prefix)) or not _LABEL_NAME.match(nm) \
                    or len(nm) > 63:
                causes.append(("metadata.labels", "FieldValueInvalid",
                               'Invalid value: "%s": name part must consist of alphanumeric '
                               "characters, '-', '_' or '.', and must start and end with an "
                               "alphanumeric character" % k))
            if not isinstance(v, str) or (v and (not _LABEL_NAME.match(v) or len(v) > 63)):
                causes.append(("metadata.labels", "FieldValueInvalid",
                               'Invalid value: "%s": a valid label must be an empty string or '
                               "consist of alphanumeric characters, '-', '_' or '.', and must "
                               "start and end with an alphanumeric character" % (v,)))
        for k, v in (m.get("annotations") or {}).items():
            if not isinstance(v, str):
                causes.append(("metadata.annotations", "FieldValueInvalid",
                               "Invalid value: %s: annotation values must be strings" % json.dumps(v)))

    def _apply_schema(self, res, obj, field_validation, warnings):
        if res.schema is None:
            return []
        causes, unknown = schemamod.process(res.schema, obj, field_validation == "Strict")
        if unknown:
            if field_validation == "Strict":
                raise bad_request("strict decoding error: " + ", ".join(
                    'unknown field "%s"' % u for u in unknown))
            if field_validation != "Ignore":
                warnings.extend('unknown field "%s"' % u for u in unknown)
        return causes

    def _check_body(self, res, body):
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format - accepted "
                              "media types include: application/json, application/yaml")
        av, kind = body.get("apiVersion"), body.get("kind")
        if av and av != res.api_version:
            raise bad_request("the API version in the data (%s) does not match the expected "
                              "API version (%s)" % (av, res.api_version))
        if kind and kind != res.kind:
            raise bad_request("the kind in the data (%s) does not match the expected kind (%s)"
                              % (kind, res.kind))
        if "metadata" in body and not isinstance(body["metadata"], dict):
            raise bad_request("metadata must be an object")

    def create(self, res, ns, body, dry_run=False, field_validation="", warnings=None):
        warnings = [] if warnings is None else warnings
        self._check_body(res, body)
        obj = self._from_wire(res, deepcopy(body))
        m = _meta(obj)
        if res.namespaced:
            if m.get("namespace") and ns and m["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            ns = ns or m.get("namespace") or "default"
            m["namespace"] = ns
        else:
            m.pop("namespace", None)
            ns = ""
        with self.lock:
            self._check_namespace(res, ns, m.get("name") or m.get("generateName") or "")
            if not m.get("name") and m.get("generateName"):
                for _ in range(20):
                    cand = m["generateName"] + "".join(self.rng.choice(_GEN_ALPHABET)
                                                       for _ in range(5))
                    if self.get_raw(res.skey, ns, cand) is None:
                        break
                m["name"] = cand
            name = m.get("name", "")
            if not name:
                raise invalid(res, "", [("metadata.name", "FieldValueRequired",
                                         "Required value: name or generateName is required")])
            for k in _SERVER_META:
                m.pop(k, None)
            m["uid"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            m["creationTimestamp"] = now_ts()
            if res.has_spec or res.crd_name:
                m["generation"] = 1
            if res.status_sub and res.crd_name:
                obj.pop("status", None)
            admission.prepare_create(self, res, obj)
            causes = []
            self._validate_meta(res, obj, causes)
            causes += self._apply_schema(res, obj, field_validation, warnings)
            causes += admission.validate(self, res, obj, None)
            if causes:
                raise invalid(res, name, causes)
            vap.admit(self, res, obj, None, "CREATE")
            if self.get_raw(res.skey, ns, name) is not None:
                raise already_exists(res, name)
            if dry_run:
                obj["metadata"]["resourceVersion"] = ""
                return self.to_wire(res, obj)
            self._commit(res.skey, ns, name, obj, "ADDED", None)
            return self.to_wire(res, obj)

    def _generation_changed(self, res, new, old):
        if res.crd_name:
            def strip(o):
                return {k: v for k, v in o.items()
                        if k != "metadata" and not (res.status_sub and k == "status")}
            return strip(new) != strip(old)
        if res.has_spec:
            return new.get("spec") != old.get("spec")
        return False

    def update(self, res, ns, name, body, subresource=None, dry_run=False,
               field_validation="", warnings=None, internal=False):
        """PUT semantics. internal=True skips the resourceVersion precondition
        (read-modify-write under the lock by the simulated controllers)."""
        warnings = [] if warnings is None else warnings
        self._check_body(res, body)
        new = self._from_wire(res, deepcopy(body))
        nm = _meta(new)
        ns = ns or "" if res.namespaced else ""
        with self.lock:
            old = self.get_raw(res.skey, ns, name)
            if old is None:
                raise not_found(res, name)
            if nm.get("name", name) != name:
                raise bad_request("the name of the object (%s) does not match the name on the "
                                  "URL (%s)" % (nm.get("name"), name))
            if res.namespaced and nm.get("namespace", ns) != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            om = old["metadata"]
            want_rv = nm.get("resourceVersion")
            if want_rv and not internal and want_rv != om.get("resourceVersion"):
                raise conflict(res, name)
            if not want_rv and not internal and not admission.allows_unconditional_update(res):
                raise rv_required(res, name)
            if subresource == "status":
                status = new.get("status")
                new = deepcopy(old)
                if status is None:
                    new.pop("status", None)
                else:
                    new["status"] = status
                nm = new["metadata"]
            elif subresource == "finalize" and res.skey == ("", "namespaces"):
                spec = new.get("spec")
                new = deepcopy(old)
                new["spec"] = spec if isinstance(spec, dict) else {}
                nm = new["metadata"]
            elif subresource in (None, "", "binding"):
                if res.status_sub:
                    if "status" in old:
                        new["status"] = deepcopy(old["status"])
                    else:
                        new.pop("status", None)
                nm["name"] = name
                if res.namespaced:
                    nm["namespace"] = ns
                else:
                    nm.pop("namespace", None)
                for k in _SERVER_META:
                    nm.pop(k, None)
                    if k in om:
                        nm[k] = deepcopy(om[k])
                nm.pop("generateName", None)
                if "generateName" in om:
                    nm["generateName"] = om["generateName"]
            else:
                raise not_found(res, name)
            if om.get("deletionTimestamp"):
                added = set(nm.get("finalizers") or []) - set(om.get("finalizers") or [])
                if added:
                    raise invalid(res, name, [("metadata.finalizers", "FieldValueForbidden",
                                               "Forbidden: no new finalizers can be added if "
                                               "the object is being deleted, found new "
                                               "finalizers %s" % json.dumps(sorted(added)))])
            admission.prepare_update(self, res, new, old, subresource)
            causes = []
            self._validate_meta(res, new, causes)
            causes += self._apply_schema(res, new, field_validation, warnings)
            causes += admission.validate(self, res, new, old, subresource)
            if causes:
                raise invalid(res, name, causes)
            if not subresource:
                vap.admit(self, res, new, old, "UPDATE")
            if self._generation_changed(res, new, old) and "generation" in om:
                nm["generation"] = om["generation"] + 1
            nm["resourceVersion"] = om.get("resourceVersion")
            if new == old:
                return self.to_wire(res, old)
            if dry_run:
                return self.to_wire(res, new)
            if nm.get("deletionTimestamp") and not nm.get("finalizers") and \
                    admission.may_finish_delete(self, res, new):
                self._commit(res.skey, ns, name, new, "DELETED", old)
            else:
                self._commit(res.skey, ns, name, new, "MODIFIED", old)
            return self.to_wire(res, new)

    def patch(self, res, ns, name, ptype, body, subresource=None, dry_run=False,
              field_validation="", warnings=None, force=False):
        ns = ns if res.namespaced else ""
        with self.lock:
            old = self.get_raw(res.skey, ns, name)
            if old is None:
                if ptype == "application/apply-patch+yaml":
                    # Server-side apply creates missing objects.
                    if subresource:
                        raise not_found(res, name)
                    b = dict(body) if isinstance(body, dict) else body
                    if isinstance(b, dict):
                        b.setdefault("metadata", {}).setdefault("name", name)
                    return self.create(res, ns, b, dry_run, field_validation, warnings), True
                raise not_found(res, name)
            cur = self.to_wire(res, old)
            try:
                if ptype == "application/json-patch+json":
                    patched = patchmod.json_patch(cur, body)
                elif ptype == "application/merge-patch+json":
                    if not isinstance(body, dict):
                        raise patchmod.PatchError("merge patch must be a JSON object")
                    patched = patchmod.merge_patch(cur, body)
                elif ptype == "application/strategic-merge-patch+json":
                    if res.crd_name:
                        raise ApiError(415, "UnsupportedMediaType",
                                       "the body of the request was in an unknown format - "
                                       "accepted media types include: application/json-patch+json, "
                                       "application/merge-patch+json, application/apply-patch+yaml")
                    if not isinstance(body, dict):
                        raise patchmod.PatchError("strategic merge patch must be a JSON object")
                    patched = patchmod.strategic_merge_patch(cur, body)
                elif ptype == "application/apply-patch+yaml":
                    if not isinstance(body, dict):
                        raise patchmod.PatchError("apply patch must be a JSON object")
                    b = deepcopy(body)
                    b.get("metadata", {}).pop("resourceVersion", None)
                    patched = patchmod.merge_patch(cur, b)
                else:
                    raise ApiError(415, "UnsupportedMediaType",
                                   "the body of the request was in an unknown format - accepted "
                                   "media types include: application/json-patch+json, "
                                   "application/merge-patch+json, application/apply-patch+yaml")
            except patchmod.PatchError as e:
                raise ApiError(422, "Invalid", str(e))
            if not isinstance(patched, dict):
                raise ApiError(422, "Invalid", "patch produced a non-object")
            pm = _meta(patched)
            if pm.get("uid") and pm["uid"] != old["metadata"].get("uid"):
                raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID "
                                          "in object meta: %s" % (pm["uid"], old["metadata"]["uid"]))
            return self.update(res, ns, name, patched, subresource, dry_run, field_validation,
                               warnings), False

    def delete(self, res, ns, name, opts=None, dry_run=False):
        opts = opts or {}
        ns = ns if res.namespaced else ""
        with self.lock:
            old = self.get_raw(res.skey, ns, name)
            if old is None:
                raise not_found(res, name)
            om = old["metadata"]
            pre = opts.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != om.get("uid"):
                raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID in "
                                          "object meta: %s" % (pre["uid"], om.get("uid")))
            if pre.get("resourceVersion") and pre["resourceVersion"] != om.get("resourceVersion"):
                raise conflict(res, name, "Precondition failed: ResourceVersion in precondition: "
                                          "%s, ResourceVersion in object meta: %s"
                               % (pre["resourceVersion"], om.get("resourceVersion")))
            new = deepcopy(old)
            nm = new["metadata"]
            fins = list(nm.get("finalizers") or [])
            policy = opts.get("propagationPolicy")
            if policy is None and opts.get("orphanDependents") is not None:
                policy = "Orphan" if opts["orphanDependents"] else "Background"
            has_dependents = bool(self.owner_index.get(om.get("uid")))
            if not nm.get("deletionTimestamp"):
                if policy == "Orphan" and has_dependents and "orphan" not in fins:
                    fins.append("orphan")
                elif policy == "Foreground" and has_dependents and "foregroundDeletion" not in fins:
                    fins.append("foregroundDeletion")
            grace = admission.grace_period(self, res, old, opts)
            must_wait = bool(fins) or grace > 0 or not admission.may_finish_delete(self, res, new)
            if must_wait or nm.get("deletionTimestamp"):
                changed = False
                if not nm.get("deletionTimestamp"):
                    nm["deletionTimestamp"] = now_ts(time.time() + grace)
                    nm["deletionGracePeriodSeconds"] = grace
                    if "generation" in nm:
                        nm["generation"] += 1
                    changed = True
                elif grace < (nm.get("deletionGracePeriodSeconds") or 0):
                    nm["deletionTimestamp"] = now_ts(time.time() + grace)
                    nm["deletionGracePeriodSeconds"] = grace
                    changed = True
                if fins != list(nm.get("finalizers") or []):
                    nm["finalizers"] = fins
                    changed = True
                admission.on_delete_requested(self, res, new)
                if dry_run:
                    return self.to_wire(res, new), 200
                if not must_wait:
                    self._commit(res.skey, ns, name, new, "DELETED", old)
                    return self.to_wire(res, new), 200
                if changed:
                    self._commit(res.skey, ns, name, new, "MODIFIED", old)
                return self.to_wire(res, new), 200
            if dry_run:
                return self.to_wire(res, old), 200
            self._commit(res.skey, ns, name, new, "DELETED", old)
            return self.to_wire(res, new), 200

    def finish_delete(self, res, ns, name, uid=None):
        """Remove an object whose graceful deletion has completed (kubelet,
        namespace controller). Keeps it while finalizers remain."""
        with self.lock:
            old = self.get_raw(res.skey, ns, name)
            if old is None or (uid and old["metadata"].get("uid") != uid):
                return False
            if old["metadata"].get("finalizers"):
                return False
            new = deepcopy(old)
            if not new["metadata"].get("deletionTimestamp"):
                new["metadata"]["deletionTimestamp"] = now_ts()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
            self._commit(res.skey, ns, name, new, "DELETED", old)
            return True

    def modify(self, res, ns, name, fn, subresource=None):
        """Read-modify-write by a simulated controller: fn(obj) edits a copy
        of the wire object and returns False to skip. Returns the new object,
        or None when the object is gone or nothing changed."""
        with self.lock:
            old = self.get_raw(res.skey, ns if res.namespaced else "", name)
            if old is None:
                return None
            cur = self.to_wire(res, old)
            if fn(cur) is False:
                return None
            try:
                return self.update(res, ns, name, cur, subresource, internal=True)
            except ApiError:
                return None

    # ---- events -------------------------------------------------------------

    def record_event(self, involved, etype, reason, message, component, host=None):
        """Create or aggregate a core/v1 Event about a storage object, as the
        components' event recorders do (same object, reason and message:
        count and lastTimestamp go up)."""
        res = self.res("", "v1", "events")
        im = involved.get("metadata", {})
        ns = im.get("namespace") or "default"
        key = (im.get("uid"), reason, message, component)
        t = now_ts()
        with self.lock:
            existing = self.event_keys.get(key)
            if existing and self.get_raw(res.skey, *existing) is not None:
                def bump(ev):
                    ev["count"] = int(ev.get("count") or 1) + 1
                    ev["lastTimestamp"] = t
                self.modify(res, existing[0], existing[1], bump)
                return
            ref = {"kind": involved.get("kind"), "namespace": im.get("namespace"),
                   "name": im.get("name"), "uid": im.get("uid"),
                   "apiVersion": involved.get("apiVersion"),
                   "resourceVersion": im.get("resourceVersion")}
            ref = {k: v for k, v in ref.items() if v}
            name = "%s.%x" % (im.get("name", "event"), time.time_ns() + self.rng.getrandbits(16))
            ev = {"apiVersion": "v1", "kind": "Event",
                  "metadata": {"name": name, "namespace": ns},
                  "involvedObject": ref, "reason": reason, "message": message,
                  "source": {"component": component, **({"host": host} if host else {})},
                  "firstTimestamp": t, "lastTimestamp": t, "count": 1, "type": etype,
                  "eventTime": None, "reportingComponent": component,
                  "reportingInstance": host or ""}
            try:
                self.create(res, ns, ev)
            except ApiError:
                return
            self.event_keys[key] = (ns, name)
