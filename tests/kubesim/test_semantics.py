#!/usr/bin/env python3
"""API semantics of kubesim, checked with a scripted HTTP client.

Starts one kubesim (free port, temp state dir) and runs every test_* function
against it in order; each asserts on what the Kubernetes API conventions
promise: resourceVersion and conflicts, watches (order, bookmarks, 410 Gone),
generation, the status subresource, patches, selectors, finalizers, garbage
collection, CRD schemas, fault injection, and the simulated kubelet,
scheduler and autoscaler. Prints "N passed, N failed"; exit 0 when all pass.
"""

import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import q  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = None
C = None

CM = "/api/v1/namespaces/%s/configmaps"
PODS = "/api/v1/namespaces/%s/pods"
WD = "/apis/example.terrane.io/v1/namespaces/%s/widgets"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.terrane.io"},
    "spec": {
        "group": "example.terrane.io", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {"name": "Operation", "type": "string", "jsonPath": ".spec.operation"},
                {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                {"name": "Ready", "type": "string",
                 "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "required": ["operation"],
                             "x-kubernetes-validations": [
                                 {"rule": "self.operation != 'warp' || has(self.params)",
                                  "message": "warp needs params"}],
                             "properties": {
                        "operation": {"type": "string", "enum": ["cog", "warp", "terrain"]},
                        "size": {"type": "integer", "minimum": 1, "default": 1},
                        "params": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}},
                    "status": {"type": "object", "properties": {
                        "phase": {"type": "string"},
                        "conditions": {"type": "array", "items": {"type": "object", "properties": {
                            "type": {"type": "string"}, "status": {"type": "string"}}}}}}}}},
        }],
    },
}


def cm(name, ns="default", labels=None, data=None, **meta):
    m = {"name": name, "namespace": ns}
    if labels:
        m["labels"] = labels
    m.update(meta)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": data or {"k": "v"}}


def widget(name, ns="default", **spec):
    s = {"operation": "cog"}
    s.update(spec)
    return {"apiVersion": "example.terrane.io/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": ns}, "spec": s}


def ok(code, body, want=(200, 201)):
    want = (want,) if isinstance(want, int) else want
    assert code in want, "HTTP %s (wanted %s): %s" % (code, want, json.dumps(body)[:1500])
    return body


def mkns(name):
    """Create a namespace (or keep the existing one): tests may run alone."""
    code, body, _ = C.post("/api/v1/namespaces", {"metadata": {"name": name}})
    assert code in (201, 409), body


def ensure_widget_crd():
    code, body, _ = C.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    assert code in (201, 409), body


def pod(name, cmd, ns="default", labels=None, limits=None, requests=None, restart="Never", **spec):
    c = {"name": "main", "image": "terrane-worker", "command": ["sh", "-c", cmd]}
    res = {}
    if limits:
        res["limits"] = limits
    if requests:
        res["requests"] = requests
    if res:
        c["resources"] = res
    s = {"restartPolicy": restart, "containers": [c], "terminationGracePeriodSeconds": 2}
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "spec": s}


def phase_in(*phases):
    return lambda p: (p.get("status") or {}).get("phase") in phases


def cond(obj, ctype):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def terminated(p):
    return ((p["status"]["containerStatuses"][0].get("state") or {}).get("terminated")) or {}


def events_for(name, reason=None, ns="default"):
    code, lst, _ = C.get(q(CM.replace("configmaps", "events") % ns,
                            fieldSelector="involvedObject.name=%s" % name))
    ok(code, lst)
    return [e for e in lst["items"] if reason is None or e["reason"] == reason]


# ---- CRUD, versions, conflicts ------------------------------------------------

def test_create_get_conflicts():
    code, a, _ = C.post(CM % "default", cm("c1"))
    ok(code, a, 201)
    m = a["metadata"]
    assert m["uid"] and m["creationTimestamp"] and int(m["resourceVersion"]) > 0
    code, st, _ = C.post(CM % "default", cm("c1"))
    assert code == 409 and st["reason"] == "AlreadyExists", st
    code, st, _ = C.get(CM % "default" + "/nope")
    assert code == 404 and st["reason"] == "NotFound" and st["kind"] == "Status", st
    code, g, _ = C.post(CM % "default", {"metadata": {"generateName": "gen-"}, "data": {}})
    ok(code, g, 201)
    assert g["metadata"]["name"].startswith("gen-") and len(g["metadata"]["name"]) == 9
    # update with the current version works, then the old version conflicts
    a["data"] = {"k": "v2"}
    code, b, _ = C.put(CM % "default" + "/c1", a)
    ok(code, b)
    assert int(b["metadata"]["resourceVersion"]) > int(m["resourceVersion"])
    a["data"] = {"k": "v3"}
    code, st, _ = C.put(CM % "default" + "/c1", a)
    assert code == 409 and st["reason"] == "Conflict", st
    assert "the object has been modified" in st["message"]
    # unconditional update (no resourceVersion) is allowed
    del a["metadata"]["resourceVersion"]
    ok(*C.put(CM % "default" + "/c1", a)[:2])
    # a no-op update keeps the resourceVersion
    code, cur, _ = C.get(CM % "default" + "/c1")
    code, same, _ = C.put(CM % "default" + "/c1", cur)
    assert same["metadata"]["resourceVersion"] == cur["metadata"]["resourceVersion"]
    # missing namespace: 404 like the real server
    code, st, _ = C.post(CM % "no-such-ns", cm("x", ns="no-such-ns"))
    assert code == 404 and 'namespaces "no-such-ns" not found' in st["message"], st
    # invalid name
    code, st, _ = C.post(CM % "default", cm("Bad_Name"))
    assert code == 422 and st["reason"] == "Invalid", st


def test_pagination():
    mkns("pages")
    for i in range(5):
        ok(*C.post(CM % "pages", cm("p%d" % i, ns="pages"))[:2])
    names, cont, pages = [], None, 0
    while True:
        params = {"limit": 2}
        if cont:
            params["continue"] = cont
        code, lst, _ = C.get(q(CM % "pages", **params))
        ok(code, lst)
        names += [i["metadata"]["name"] for i in lst["items"]]
        pages += 1
        cont = lst["metadata"].get("continue")
        if not cont:
            break
        assert lst["metadata"]["remainingItemCount"] > 0
    assert names == ["p0", "p1", "p2", "p3", "p4"] and pages == 3, (names, pages)


def test_pagination_follows_creates_and_deletes():
    # the store's sorted key index: lists across namespaces and within one
    # stay ordered and exact while objects come and go between pages
    for ns in ("pix-b", "pix-a"):
        mkns(ns)
        for i in (3, 1, 2):
            ok(*C.post(CM % ns, cm("k%d" % i, ns=ns))[:2])
    all_cm = CM.replace("/namespaces/%s", "")

    def names(path, limit, between=None):
        out, cont = [], None
        while True:
            params = {"limit": limit}
            if cont:
                params["continue"] = cont
            code, lst, _ = C.get(q(path, **params))
            ok(code, lst)
            out += [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in lst["items"]]
            cont = lst["metadata"].get("continue")
            if not cont:
                return out
            left = lst["metadata"]["remainingItemCount"]
            if between:
                between()
                between = None
            assert left > 0, lst["metadata"]

    assert names(CM % "pix-a", 2) == [("pix-a", "k1"), ("pix-a", "k2"), ("pix-a", "k3")]
    ours = [k for k in names(all_cm, 2) if k[0].startswith("pix-")]
    assert ours == sorted(ours) and len(ours) == 6, ours
    ok(*C.delete(CM % "pix-a" + "/k2")[:2])
    ok(*C.post(CM % "pix-a", cm("k0", ns="pix-a"))[:2])
    assert names(CM % "pix-a", 1) == [("pix-a", "k0"), ("pix-a", "k1"), ("pix-a", "k3")]

    def churn():
        ok(*C.delete(CM % "pix-a" + "/k3")[:2])
        ok(*C.post(CM % "pix-a", cm("k4", ns="pix-a"))[:2])
    # a page boundary after k0: k3 goes and k4 comes before the next page
    assert names(CM % "pix-a", 1, churn) == [("pix-a", "k0"), ("pix-a", "k1"), ("pix-a", "k4")]
    code, lst, _ = C.get(q(CM % "pix-a", limit=1, labelSelector="nope=1"))
    ok(code, lst)
    assert lst["items"] == [] and "continue" not in lst["metadata"], lst


def test_watchers_share_event_lines():
    mkns("wsh")
    code, a, _ = C.post(CM % "wsh", cm("a", ns="wsh"))
    rv0 = a["metadata"]["resourceVersion"]
    ok(*C.patch(CM % "wsh" + "/a", {"data": {"k": "shared"}})[:2])
    ok(*C.delete(CM % "wsh" + "/a")[:2])
    got = [list(C.watch(q(CM % "wsh", watch=1, resourceVersion=rv0), timeout=0.8))
           for _ in range(2)]
    assert got[0] == got[1], got
    assert [e["type"] for e in got[0]] == ["MODIFIED", "DELETED"], got[0]
    o = got[0][0]["object"]
    assert o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" and o["data"] == {"k": "shared"}, o


# ---- selectors ---------------------------------------------------------------------

def test_label_and_field_selectors():
    mkns("sel")
    for name, labels in (("a", {"tier": "gold", "env": "prod"}), ("b", {"tier": "silver"}),
                         ("c", {"env": "dev"})):
        ok(*C.post(CM % "sel", cm(name, ns="sel", labels=labels))[:2])

    def names(**params):
        code, lst, _ = C.get(q(CM % "sel", **params))
        ok(code, lst)
        return sorted(i["metadata"]["name"] for i in lst["items"])

    assert names(labelSelector="tier=gold") == ["a"]
    assert names(labelSelector="tier==gold") == ["a"]
    assert names(labelSelector="tier!=gold") == ["b", "c"]
    assert names(labelSelector="tier in (gold,silver)") == ["a", "b"]
    assert names(labelSelector="tier notin (gold)") == ["b", "c"]
    assert names(labelSelector="env") == ["a", "c"]
    assert names(labelSelector="!env") == ["b"]
    assert names(labelSelector="tier,env=prod") == ["a"]
    assert names(fieldSelector="metadata.name=b") == ["b"]
    assert names(fieldSelector="metadata.name!=b") == ["a", "c"]
    assert names(fieldSelector="metadata.namespace=sel,metadata.name=c") == ["c"]
    code, st, _ = C.get(q(CM % "sel", labelSelector="tier in (gold"))
    assert code == 400, st
    code, st, _ = C.get(q(CM % "sel", fieldSelector="spec.bogus=1"))
    assert code == 400 and "field selector" in st["message"], st
    # pods: status.phase and spec.nodeName
    ok(*C.post(PODS % "sel", pod("quick", "true", ns="sel"))[:2])
    p = C.wait_for(PODS % "sel" + "/quick", phase_in("Succeeded"))
    node = p["spec"]["nodeName"]
    code, lst, _ = C.get(q(PODS % "sel", fieldSelector="status.phase=Succeeded,spec.nodeName=" + node))
    assert [i["metadata"]["name"] for i in ok(code, lst)["items"]] == ["quick"]
    code, lst, _ = C.get(q("/api/v1/pods", fieldSelector="status.phase=Running,metadata.namespace=sel"))
    assert ok(code, lst)["items"] == []


def test_label_index_follows_changes():
    # the store's label index: selected lists (paged, in one namespace or
    # all) and a watch's initial state stay exact while labels change
    for ns in ("lix-a", "lix-b"):
        mkns(ns)
        for i in range(4):
            ok(*C.post(CM % ns, cm("m%d" % i, ns=ns, labels={"own": "x" if i % 2 else "y"}))[:2])
    all_cm = CM.replace("/namespaces/%s", "")

    def names(path, sel, limit=0):
        out, cont = [], None
        while True:
            params = {"labelSelector": sel}
            if limit:
                params["limit"] = limit
            if cont:
                params["continue"] = cont
            code, lst, _ = C.get(q(path, **params))
            ok(code, lst)
            out += [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in lst["items"]]
            cont = lst["metadata"].get("continue")
            if not cont:
                return [k for k in out if k[0].startswith("lix-")]

    assert names(CM % "lix-a", "own=x") == [("lix-a", "m1"), ("lix-a", "m3")]
    assert names(all_cm, "own=x", limit=1) == [("lix-a", "m1"), ("lix-a", "m3"), ("lix-b", "m1"),
                                               ("lix-b", "m3")]
    # relabel m0 (y -> x), drop m1's label, delete m3, add m9
    ok(*C.patch(CM % "lix-a" + "/m0", {"metadata": {"labels": {"own": "x"}}})[:2])
    ok(*C.patch(CM % "lix-a" + "/m1", {"metadata": {"labels": {"own": None}}})[:2])
    ok(*C.delete(CM % "lix-a" + "/m3")[:2])
    ok(*C.post(CM % "lix-a", cm("m9", ns="lix-a", labels={"own": "x", "more": "1"}))[:2])
    assert names(CM % "lix-a", "own=x") == [("lix-a", "m0"), ("lix-a", "m9")]
    assert names(CM % "lix-a", "own=x", limit=1) == [("lix-a", "m0"), ("lix-a", "m9")]
    assert names(CM % "lix-a", "own in (x,y)") == [("lix-a", "m0"), ("lix-a", "m2"), ("lix-a", "m9")]
    assert names(CM % "lix-a", "own") == [("lix-a", "m0"), ("lix-a", "m2"), ("lix-a", "m9")]
    assert names(CM % "lix-a", "own=x,more") == [("lix-a", "m9")]
    assert names(CM % "lix-a", "own=y") == [("lix-a", "m2")]
    assert names(CM % "lix-a", "own!=x") == [("lix-a", "m1"), ("lix-a", "m2")]
    assert names(CM % "lix-a", "own=nothing") == []
    got = list(C.watch(q(CM % "lix-a", watch=1, labelSelector="own=x"), timeout=0.8))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [
        ("ADDED", "m0"), ("ADDED", "m9")], got


# ---- watches -------------------------------------------------------------------------

def test_watch_from_resource_version():
    mkns("w1")
    code, a, _ = C.post(CM % "w1", cm("a", ns="w1"))
    rv0 = a["metadata"]["resourceVersion"]
    ok(*C.post(CM % "w1", cm("b", ns="w1"))[:2])
    ok(*C.patch(CM % "w1" + "/b", {"data": {"k": "changed"}})[:2])
    ok(*C.delete(CM % "w1" + "/a")[:2])
    ok(*C.post(CM % "default", cm("elsewhere"))[:2])   # other namespace: not seen
    evs = list(C.watch(q(CM % "w1", watch=1, resourceVersion=rv0), timeout=1.5))
    got = [(e["type"], e["object"]["metadata"]["name"]) for e in evs]
    assert got == [("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "a")], got
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
    assert rvs == sorted(rvs) and rvs[0] > int(rv0), rvs
    assert evs[1]["object"]["data"]["k"] == "changed"
    # without a resourceVersion: the current state first, as ADDED
    evs = list(C.watch(q(CM % "w1", watch="true"), timeout=0.8))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [("ADDED", "b")], evs
    # label selector: an object that stops matching is DELETED for the watcher
    code, b, _ = C.patch(CM % "w1" + "/b", {"metadata": {"labels": {"x": "1"}}})
    rv1 = b["metadata"]["resourceVersion"]
    ok(*C.patch(CM % "w1" + "/b", {"metadata": {"labels": {"x": "2"}}})[:2])
    ok(*C.patch(CM % "w1" + "/b", {"metadata": {"labels": {"x": "1"}}})[:2])
    evs = list(C.watch(q(CM % "w1", watch=1, resourceVersion=rv1, labelSelector="x=1"), timeout=0.8))
    assert [e["type"] for e in evs] == ["DELETED", "ADDED"], evs


def test_too_large_resource_version():
    """A resourceVersion beyond the server's: after --fresh-wait, a watch gets
    one ERROR event and a list a 504, both "Too large resource version" with
    the watch cache's cause; a version the server reaches in time is served."""
    mkns("tl")
    code, a, _ = C.post(CM % "tl", cm("a", ns="tl"))
    cur = int(ok(code, a, 201)["metadata"]["resourceVersion"])
    t0 = time.monotonic()
    evs = list(C.watch(q(CM % "tl", watch=1, resourceVersion=cur + 1000), timeout=5))
    assert time.monotonic() - t0 >= 0.5, "answered before waiting"
    assert len(evs) == 1 and evs[0]["type"] == "ERROR", evs
    st = evs[0]["object"]
    assert st["code"] == 504 and st["reason"] == "Timeout", st
    assert st["message"].startswith("Too large resource version: %d, current: " % (cur + 1000)), st
    assert st["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge", st
    assert st["details"]["retryAfterSeconds"] == 1, st
    code, st, _ = C.get(q(CM % "tl", resourceVersion=cur + 1000))
    assert code == 504 and st["message"].startswith("Too large resource version"), st
    # one version ahead, created while the watch waits: served
    import threading
    threading.Timer(0.1, lambda: C.post(CM % "tl", cm("b", ns="tl"))).start()
    evs = list(C.watch(q(CM % "tl", watch=1, resourceVersion=cur + 1), timeout=1.5))
    assert all(e["type"] != "ERROR" for e in evs), evs


def test_watch_bookmarks_and_timeout():
    code, lst, _ = C.get(CM % "default")
    rv = lst["metadata"]["resourceVersion"]
    t0 = time.monotonic()
    evs = list(C.watch(q(CM % "default", watch=1, resourceVersion=rv, allowWatchBookmarks="true",
                         timeoutSeconds=2), timeout=6))
    took = time.monotonic() - t0
    bms = [e for e in evs if e["type"] == "BOOKMARK"]
    assert len(bms) >= 2, evs   # periodic (every 0.5s here), not just the one before timing out
    assert bms[0]["object"]["kind"] == "ConfigMap" and int(bms[0]["object"]["metadata"]["resourceVersion"]) >= int(rv)
    assert took < 5.5, "timeoutSeconds=2 did not end the watch (%.1fs)" % took
    # no bookmarks unless asked
    evs = list(C.watch(q(CM % "default", watch=1, resourceVersion=rv, timeoutSeconds=1), timeout=3))
    assert not [e for e in evs if e["type"] == "BOOKMARK"], evs


def test_idle_watch_disconnect_is_noticed():
    def active():
        return C.get("/kubesim/state")[1]["activeWatches"]
    base = active()
    gen = C.watch(q(CM % "default", watch=1, resourceVersion=C.get(CM % "default")[1]["metadata"]["resourceVersion"]),
                  timeout=0.3)
    assert list(gen) == []          # idle watch; the client gives up and closes
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and active() > base:
        time.sleep(0.1)
    assert active() == base, (active(), base)


def test_gone_after_compaction():
    code, a, _ = C.post(CM % "default", cm("before-compact"))
    old_rv = a["metadata"]["resourceVersion"]
    code, lst, _ = C.get(q(CM % "default", limit=1))
    cont = lst["metadata"]["continue"]
    ok(*C.post(CM % "default", cm("after-compact"))[:2])
    code, r, _ = C.post("/kubesim/compact", {})
    ok(code, r)
    evs = list(C.watch(q(CM % "default", watch=1, resourceVersion=old_rv), timeout=3))
    assert len(evs) == 1 and evs[0]["type"] == "ERROR", evs
    st = evs[0]["object"]
    assert st["code"] == 410 and st["reason"] == "Expired" and st["kind"] == "Status", st
    code, st, _ = C.get(q(CM % "default", limit=1, **{"continue": cont}))
    assert code == 410, (code, st)
    # a watch from the current version still works
    evs = list(C.watch(q(CM % "default", watch=1, resourceVersion=r["resourceVersion"]), timeout=0.5))
    assert not [e for e in evs if e["type"] == "ERROR"], evs


# ---- generation, status subresource, patches ------------------------------------------

def test_crd_generation_and_status_subresource():
    ensure_widget_crd()
    code, rl, _ = C.get("/apis/example.terrane.io/v1")
    names = {r["name"]: r for r in ok(code, rl)["resources"]}
    assert "widgets" in names and "widgets/status" in names and names["widgets"]["shortNames"] == ["wd"]
    code, w, _ = C.post(WD % "default", widget("gen"))
    ok(code, w, 201)
    assert w["metadata"]["generation"] == 1 and w["spec"]["size"] == 1  # default applied
    code, w, _ = C.patch(WD % "default" + "/gen", {"metadata": {"labels": {"a": "b"}}})
    assert ok(code, w)["metadata"]["generation"] == 1
    # status through the main resource is ignored
    code, w, _ = C.patch(WD % "default" + "/gen", {"status": {"phase": "Hacked"}})
    assert "status" not in ok(code, w) and w["metadata"]["generation"] == 1
    # spec through /status is ignored; status is kept; generation unchanged
    code, w, _ = C.patch(WD % "default" + "/gen/status",
                         {"spec": {"operation": "warp"}, "status": {"phase": "Running"}})
    ok(code, w)
    assert w["spec"]["operation"] == "cog" and w["status"]["phase"] == "Running"
    assert w["metadata"]["generation"] == 1
    code, w, _ = C.patch(WD % "default" + "/gen", {"spec": {"size": 4}})
    assert ok(code, w)["metadata"]["generation"] == 2 and w["status"]["phase"] == "Running"
    # PUT on /status with a stale resourceVersion conflicts
    stale = dict(w, status={"phase": "Done"})
    stale["metadata"] = dict(w["metadata"], resourceVersion="1")
    code, st, _ = C.put(WD % "default" + "/gen/status", stale)
    assert code == 409, st
    # table with the CRD's printer columns
    code, tbl, _ = C.get(WD % "default", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    ok(code, tbl)
    assert tbl["kind"] == "Table"
    assert [c["name"] for c in tbl["columnDefinitions"]] == ["Name", "Operation", "Size", "Ready"]
    row = [r for r in tbl["rows"] if r["cells"][0] == "gen"][0]
    assert row["cells"][1:3] == ["cog", 4], row


def test_put_without_resource_version():
    """Custom resources (and CRDs) do not allow unconditional updates: a PUT
    without metadata.resourceVersion is 422, worded as the generic registry
    store words it; built-ins such as ConfigMaps accept it."""
    ensure_widget_crd()
    code, w, _ = C.post(WD % "default", widget("norv"))
    ok(code, w, 201)
    bare = dict(w, metadata={k: v for k, v in w["metadata"].items() if k != "resourceVersion"})
    for path in (WD % "default" + "/norv", WD % "default" + "/norv/status"):
        code, st, _ = C.put(path, bare)
        assert code == 422, (path, code, st)
        assert st["reason"] == "Invalid" and st["message"] == (
            'widgets.example.terrane.io "norv" is invalid: metadata.resourceVersion: '
            'Invalid value: 0x0: must be specified for an update'), st
        assert st["details"]["causes"][0]["field"] == "metadata.resourceVersion", st
    code, crd, _ = C.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.terrane.io")
    ok(code, crd)
    crd["metadata"].pop("resourceVersion")
    code, st, _ = C.put("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.terrane.io", crd)
    assert code == 422, st
    code, c, _ = C.post(CM % "default", cm("norv", data={"a": "1"}))
    ok(code, c, 201)
    c["metadata"].pop("resourceVersion")
    c["data"] = {"a": "2"}
    code, c, _ = C.put(CM % "default" + "/norv", c)
    assert ok(code, c)["data"] == {"a": "2"}


def test_pod_security_admission_restricted():
    """A namespace labelled pod-security.kubernetes.io/enforce=restricted
    refuses a pod without the restricted securityContext, 403 with the
    plugin's message; a compliant pod (what the controller builds) is
    admitted; an unlabelled namespace admits anything."""
    code, ns, _ = C.post("/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "psa", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    ok(code, ns, 201)
    code, st, _ = C.post(PODS % "psa", pod("loose", "true", ns="psa"))
    assert code == 403 and st["reason"] == "Forbidden", st
    assert st["message"] == (
        'pods "loose" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "main" must set '
        'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "main" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "main" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "main" must set securityContext.seccompProfile.type '
        'to "RuntimeDefault" or "Localhost")'), st["message"]
    p = pod("hostpath", "true", ns="psa", volumes=[{"name": "h", "hostPath": {"path": "/"}}],
            securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}})
    p["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    code, st, _ = C.post(PODS % "psa", p)
    assert code == 403 and st["message"].endswith(
        'violates PodSecurity "restricted:latest": hostPath volumes (volume "h"), '
        'restricted volume types (volume "h" uses restricted volume type "hostPath")'), st
    p["metadata"]["name"] = "tight"
    p["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    code, got, _ = C.post(PODS % "psa", p)
    ok(code, got, 201)
    C.delete(PODS % "psa" + "/tight")
    code, got, _ = C.post(PODS % "default", pod("loose-elsewhere", "true"))
    ok(code, got, 201)
    C.delete(PODS % "default" + "/loose-elsewhere")


def test_pod_validation():
    """The pod fields Terrane's pods use are validated as the real server does."""
    def refused(p, field, message, code=422):
        c, st, _ = C.post(PODS % "default", p)
        assert c == code, (c, st)
        if code == 422:
            causes = {x["field"]: x["message"] for x in st["details"]["causes"]}
            assert causes.get(field) == message, (field, causes)
        else:
            assert st["message"] == message, st["message"]
    p = pod("v-env", "true")
    p["spec"]["containers"][0]["env"] = [{"name": "1BAD", "value": "x"}]
    refused(p, "spec.containers[0].env[0].name",
            "Invalid value: \"1BAD\": a valid environment variable name must consist of alphabetic "
            "characters, digits, '_', '-', or '.', and must not start with a digit (e.g. "
            "'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is "
            "'[-._a-zA-Z][-._a-zA-Z0-9]*')")
    p = pod("v-mount", "true")
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    refused(p, "spec.containers[0].volumeMounts[0].name", 'Not found: "scratch"')
    refused(pod("v-req", "true", requests={"cpu": "2"}, limits={"cpu": "1"}),
            "spec.containers[0].resources.requests[cpu]",
            'Invalid value: "2": must be less than or equal to cpu limit of 1')
    refused(pod("v-gpu", "true", requests={"nvidia.com/gpu": "2"}, limits={"nvidia.com/gpu": "1"}),
            "spec.containers[0].resources.requests[nvidia.com/gpu]",
            'Invalid value: "2": must be equal to nvidia.com/gpu limit of 1')
    refused(pod("v-gpu2", "true", requests={"nvidia.com/gpu": "1"}),
            "spec.containers[0].resources.limits",
            "Required value: Limit must be set for non overcommitable resources")
    refused(pod("v-tol", "true", tolerations=[{"key": "k", "operator": "In", "value": "v"}]),
            "spec.tolerations[0].operator", 'Unsupported value: "In": supported values: "Equal", "Exists"')
    refused(pod("v-eff", "true", tolerations=[{"key": "k", "operator": "Exists", "effect": "Sometimes"}]),
            "spec.tolerations[0].effect",
            'Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"')
    refused(pod("v-sc", "true", securityContext={"runAsUser": "root"}), None,
            'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go '
            'struct field PodSecurityContext.spec.securityContext.runAsUser of type int64', code=400)
    good = pod("v-good", "true", requests={"cpu": "1", "nvidia.com/gpu": "1"},
               limits={"cpu": "2", "nvidia.com/gpu": "1"},
               tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
               volumes=[{"name": "scratch", "emptyDir": {}}])
    good["spec"]["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    good["spec"]["containers"][0]["env"] = [{"name": "TERRANE_TASK", "value": "{}"}]
    c, got, _ = C.post(PODS % "default", good)
    ok(c, got, 201)
    C.delete(PODS % "default" + "/v-good")


def test_crd_schema_enforcement():
    ensure_widget_crd()
    code, st, _ = C.post(WD % "default", {"apiVersion": "example.terrane.io/v1", "kind": "Widget",
                                          "metadata": {"name": "noop"}, "spec": {"size": 2}})
    assert code == 422 and st["reason"] == "Invalid", st
    causes = st["details"]["causes"]
    assert any(c["field"] == "spec.operation" and c["reason"] == "FieldValueRequired" for c in causes), st
    code, st, _ = C.post(WD % "default", widget("badenum", operation="teleport"))
    assert code == 422, st
    c = st["details"]["causes"][0]
    assert c["field"] == "spec.operation" and c["reason"] == "FieldValueNotSupported", st
    assert '"cog"' in c["message"] and "teleport" in st["message"]
    code, st, _ = C.post(WD % "default", widget("badtype", size="big"))
    assert code == 422 and st["details"]["causes"][0]["field"] == "spec.size", st
    code, st, _ = C.post(WD % "default", widget("toosmall", size=0))
    assert code == 422 and "greater than or equal to 1" in st["message"], st
    # x-kubernetes-validations (CEL)
    code, st, _ = C.post(WD % "default", widget("celrule", operation="warp"))
    assert code == 422 and st["details"]["causes"][0]["field"] == "spec", st
    assert 'Invalid value: "object": warp needs params' in st["message"], st
    ok(*C.post(WD % "default", widget("celok", operation="warp", params={"crs": "EPSG:3857"}))[:2])
    # unknown fields: Strict rejects, default warns and prunes
    code, st, _ = C.post(q(WD % "default", fieldValidation="Strict"), widget("strict", colour="red"))
    assert code == 400 and 'unknown field "spec.colour"' in st["message"], st
    code, w, hdrs = C.post(WD % "default", widget("pruned", colour="red", params={"free": {"x": 1}}))
    ok(code, w, 201)
    assert "colour" not in w["spec"] and w["spec"]["params"] == {"free": {"x": 1}}, w
    assert "spec.colour" in hdrs.get("warning", ""), hdrs
    # updates are validated too
    code, st, _ = C.patch(WD % "default" + "/pruned", {"spec": {"operation": "nope"}})
    assert code == 422, st


def test_crd_refused_like_the_api_server():
    """What apiextensions validation refuses; what a valid rule set then enforces."""
    import copy
    crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

    def gizmo_crd(spec_schema):
        c = copy.deepcopy(WIDGET_CRD)
        c["metadata"]["name"] = "gizmos.example.terrane.io"
        c["spec"]["names"] = {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"}
        c["spec"]["versions"][0]["additionalPrinterColumns"] = []
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] = spec_schema
        return c

    untyped = {"type": "object", "properties": {
        "p": {"type": "object", "properties": {"n": {"x-kubernetes-preserve-unknown-fields": True}}}},
        "x-kubernetes-validations": [{"rule": "!has(self.p.n)"}]}
    code, st, _ = C.post(crd_path, gizmo_crd(untyped))
    assert code == 422 and "undefined field 'n'" in st["message"], st
    lookahead = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(?!x)"}}}
    code, st, _ = C.post(crd_path, gizmo_crd(lookahead))
    assert code == 422 and "regular expression" in st["message"], st
    unique = {"type": "object", "properties": {"l": {"type": "array", "uniqueItems": True,
                                                      "items": {"type": "string"}}}}
    code, st, _ = C.post(crd_path, gizmo_crd(unique))
    assert code == 422 and "uniqueItems" in st["message"], st
    typed_in_anyof = {"type": "object", "properties": {"v": {"anyOf": [{"type": "number"}, {"type": "string"}]}}}
    code, st, _ = C.post(crd_path, gizmo_crd(typed_in_anyof))
    assert code == 422 and "structural" in st["message"], st
    lookahead_rule = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 8}},
                      "x-kubernetes-validations": [{"rule": "!self.s.matches('^(?!x)')"}]}
    code, st, _ = C.post(crd_path, gizmo_crd(lookahead_rule))
    assert code == 422 and "invalid regex" in st["message"], st
    # CEL cost: a regex over an unbounded string in each item of an unbounded list.
    costly = {"type": "object", "properties": {"l": {"type": "array", "items": {
        "type": "object", "properties": {"s": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.s.matches('^[a-z]+$')"}]}}}}
    code, st, _ = C.post(crd_path, gizmo_crd(costly))
    assert code == 422 and "estimated rule cost exceeds budget by factor of more than 100x" in st["message"] \
        and "cost total for entire OpenAPIv3 schema" in st["message"], st
    bad_path = {"type": "object", "properties": {"a": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "true", "fieldPath": ".b"}]}
    code, st, _ = C.post(crd_path, gizmo_crd(bad_path))
    assert code == 422 and "fieldPath" in st["message"], st
    good = {"type": "object", "properties": {
        "op": {"type": "string"},
        "w": {"type": "string", "maxLength": 16, "pattern": "^[a-z]+$",
              "x-kubernetes-validations": [{"rule": "!self.matches('^x+$')", "message": "not only x"}]},
        "l": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "p": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        "x-kubernetes-validations": [{"rule": "self.op != 'a' || !has(self.p) || !has(self.p.n)",
                                      "message": "static", "fieldPath": ".p.n", "reason": "FieldValueForbidden",
                                      "messageExpression": "'n is not for ' + self.op"}]}
    ok(*C.post(crd_path, gizmo_crd(good))[:2])
    gd = "/apis/example.terrane.io/v1/namespaces/default/gizmos"
    gadget = {"apiVersion": "example.terrane.io/v1", "kind": "Gizmo", "metadata": {"name": "g1"},
              "spec": {"op": "a", "p": {"n": 1}}}
    code, st = None, None
    for _ in range(50):   # the resource is served once the CRD is Established
        code, st, _ = C.post(gd, gadget)
        if code != 404:
            break
        time.sleep(0.1)
    assert code == 422, st
    c = st["details"]["causes"][0]
    assert c["field"] == "spec.p.n" and c["reason"] == "FieldValueForbidden", st
    assert "n is not for a" in c["message"], st
    gadget["spec"] = {"op": "b", "l": ["x", "y", "x"]}
    code, st, _ = C.post(gd, gadget)
    assert code == 422 and st["details"]["causes"][0]["field"] == "spec.l[2]", st
    assert st["details"]["causes"][0]["reason"] == "FieldValueDuplicate", st
    # RE2's $ is the end of the text (Python's re would also match before a final newline).
    for w, field in (("ab\n", "spec.w"), ("xx\n", "spec.w"), ("xx", "spec.w")):
        gadget["spec"] = {"op": "b", "w": w}
        code, st, _ = C.post(gd, gadget)
        assert code == 422 and st["details"]["causes"][0]["field"] == field, (w, st)
    gadget["spec"] = {"op": "b", "w": "xy"}
    code, st, _ = C.post(gd, gadget)
    assert code in (200, 201), st


def test_validating_admission_policy():
    """A bound policy denies what its expression rejects, with the API server's message; unbound, it does not."""
    ensure_widget_crd()
    vp = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
    vb = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
    ok(*C.post(vp, {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                    "metadata": {"name": "no-big"},
                    "spec": {"matchConstraints": {"resourceRules": [{
                        "apiGroups": ["example.terrane.io"], "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"], "resources": ["widgets"]}]},
                        "validations": [{"expression": "!has(object.spec.params) || !has(object.spec.params.n) || "
                                                       "(type(object.spec.params.n) == int && object.spec.params.n < 10)",
                                         "message": "spec.params.n: must be an integer below 10"}]}})[:2])
    ok(*C.post(WD % "default", widget("vap-unbound", params={"n": 99}))[:2])   # no binding yet
    ok(*C.post(vb, {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                    "metadata": {"name": "no-big"},
                    "spec": {"policyName": "no-big", "validationActions": ["Deny"]}})[:2])
    code, st, _ = C.post(WD % "default", widget("vap-big", params={"n": 99}))
    assert code == 422 and st["reason"] == "Invalid", st
    assert "ValidatingAdmissionPolicy 'no-big' with binding 'no-big' denied request: spec.params.n" in st["message"], st
    code, st, _ = C.post(WD % "default", widget("vap-float", params={"n": 1.5}))   # untyped: seen as a double
    assert code == 422, st
    ok(*C.post(WD % "default", widget("vap-small", params={"n": 3}))[:2])
    code, st, _ = C.patch(WD % "default" + "/vap-small", {"spec": {"params": {"n": 12}}})
    assert code == 422 and "denied request" in st["message"], st   # updates too
    for path in (vb + "/no-big", vp + "/no-big"):
        C.delete(path)


def test_patch_types():
    ok(*C.post(CM % "default", cm("pt", labels={"a": "1", "b": "2"}, data={"x": "1", "y": "2"}))[:2])
    code, o, _ = C.patch(CM % "default" + "/pt", {"metadata": {"labels": {"a": None}}, "data": {"z": "3"}})
    ok(code, o)
    assert o["metadata"]["labels"] == {"b": "2"} and o["data"] == {"x": "1", "y": "2", "z": "3"}
    code, o, _ = C.patch(CM % "default" + "/pt", [
        {"op": "test", "path": "/data/x", "value": "1"},
        {"op": "replace", "path": "/data/x", "value": "one"},
        {"op": "remove", "path": "/data/y"},
        {"op": "add", "path": "/metadata/labels/c~1d", "value": "slash"}],
        ctype="application/json-patch+json")
    ok(code, o)
    assert o["data"] == {"x": "one", "z": "3"} and o["metadata"]["labels"]["c/d"] == "slash", o
    code, st, _ = C.patch(CM % "default" + "/pt", [{"op": "test", "path": "/data/x", "value": "nope"}],
                          ctype="application/json-patch+json")
    assert code == 422, st
    # strategic merge patch: lists with a merge key are merged by it
    ok(*C.post(PODS % "default", pod("smp", "sleep 30", labels={"app": "smp"}))[:2])
    code, p, _ = C.patch(PODS % "default" + "/smp",
                         {"metadata": {"labels": {"extra": "yes"}},
                          "spec": {"containers": [{"name": "main", "image": "terrane-worker:v2"}]}},
                         ctype="application/strategic-merge-patch+json")
    ok(code, p)
    c = p["spec"]["containers"][0]
    assert c["image"] == "terrane-worker:v2" and c["command"][0] == "sh", c
    assert p["metadata"]["labels"] == {"app": "smp", "extra": "yes"}
    # pod spec is otherwise immutable
    code, st, _ = C.patch(PODS % "default" + "/smp", {"spec": {"restartPolicy": "Always"}},
                          ctype="application/strategic-merge-patch+json")
    assert code == 422 and "Forbidden" in st["message"], st
    # custom resources do not take strategic merge patches
    ensure_widget_crd()
    assert C.post(WD % "default", widget("smp-target"))[0] in (201, 409)
    code, st, _ = C.patch(WD % "default" + "/smp-target", {"spec": {"size": 2}},
                          ctype="application/strategic-merge-patch+json")
    assert code == 415, st
    ok(*C.delete(PODS % "default" + "/smp", {"gracePeriodSeconds": 0})[:2])


# ---- deletion: finalizers, owners, namespaces ------------------------------------------

def test_finalizers():
    ok(*C.post(CM % "default", cm("fin", finalizers=["example.terrane.io/hold"]))[:2])
    code, o, _ = C.delete(CM % "default" + "/fin")
    ok(code, o)
    code, o, _ = C.get(CM % "default" + "/fin")
    assert code == 200 and o["metadata"].get("deletionTimestamp"), o
    code, st, _ = C.patch(CM % "default" + "/fin",
                          {"metadata": {"finalizers": ["example.terrane.io/hold", "new/one"]}})
    assert code == 422, st   # no new finalizers while deleting
    ok(*C.patch(CM % "default" + "/fin", {"metadata": {"finalizers": None}})[:2])
    code, st, _ = C.get(CM % "default" + "/fin")
    assert code == 404, st


def test_owner_reference_gc():
    mkns("gc")
    code, owner, _ = C.post(CM % "gc", cm("owner", ns="gc"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    for i in range(3):
        ok(*C.post(CM % "gc", cm("dep%d" % i, ns="gc", ownerReferences=[ref]))[:2])
    code, other, _ = C.post(CM % "gc", cm("other-owner", ns="gc"))
    ref2 = {"apiVersion": "v1", "kind": "ConfigMap", "name": "other-owner",
            "uid": other["metadata"]["uid"]}
    ok(*C.post(CM % "gc", cm("shared", ns="gc", ownerReferences=[ref, ref2]))[:2])
    ok(*C.post(CM % "gc", cm("loner", ns="gc"))[:2])
    ok(*C.delete(CM % "gc" + "/owner")[:2])

    def names():
        code, lst, _ = C.get(CM % "gc")
        return sorted(i["metadata"]["name"] for i in lst["items"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and names() != ["loner", "other-owner", "shared"]:
        time.sleep(0.1)
    assert names() == ["loner", "other-owner", "shared"], names()
    code, sh, _ = C.get(CM % "gc" + "/shared")
    assert [r["name"] for r in sh["metadata"]["ownerReferences"]] == ["other-owner"], sh
    # foreground: the owner waits for its dependents
    ok(*C.post(CM % "gc", cm("fdep", ns="gc", ownerReferences=[ref2],
                            finalizers=["example.terrane.io/slow"]))[:2])
    ok(*C.delete(CM % "gc" + "/other-owner", {"propagationPolicy": "Foreground"})[:2])
    time.sleep(0.6)
    code, o, _ = C.get(CM % "gc" + "/other-owner")
    assert code == 200 and "foregroundDeletion" in o["metadata"]["finalizers"], o
    ok(*C.patch(CM % "gc" + "/fdep", {"metadata": {"finalizers": None}})[:2])
    C.wait_for(CM % "gc", lambda l: sorted(i["metadata"]["name"] for i in l["items"]) == ["loner"],
               timeout=10)
    # orphan: dependents stay, without the reference
    code, o3, _ = C.post(CM % "gc", cm("o3", ns="gc"))
    ref3 = {"apiVersion": "v1", "kind": "ConfigMap", "name": "o3", "uid": o3["metadata"]["uid"]}
    ok(*C.post(CM % "gc", cm("kept", ns="gc", ownerReferences=[ref3]))[:2])
    ok(*C.delete(CM % "gc" + "/o3", {"propagationPolicy": "Orphan"})[:2])
    kept = C.wait_for(CM % "gc" + "/kept", lambda o: not o["metadata"].get("ownerReferences"), timeout=10)
    assert kept["metadata"]["name"] == "kept"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and C.get(CM % "gc" + "/o3")[0] != 404:
        time.sleep(0.1)
    assert C.get(CM % "gc" + "/o3")[0] == 404


def test_namespace_deletion():
    mkns("doomed")
    ok(*C.post(CM % "doomed", cm("x", ns="doomed"))[:2])
    ok(*C.post(PODS % "doomed", pod("sleeper", "sleep 60", ns="doomed"))[:2])
    C.wait_for(PODS % "doomed" + "/sleeper", phase_in("Running"))
    ok(*C.delete("/api/v1/namespaces/doomed")[:2])
    code, ns, _ = C.get("/api/v1/namespaces/doomed")
    assert code == 404 or ns["status"]["phase"] == "Terminating", ns
    code, st, _ = C.post(CM % "doomed", cm("late", ns="doomed"))
    assert code in (403, 404), st
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and C.get("/api/v1/namespaces/doomed")[0] != 404:
        time.sleep(0.1)
    assert C.get("/api/v1/namespaces/doomed")[0] == 404
    code, procs, _ = C.get("/kubesim/processes")
    assert not [p for p in procs["processes"] if p["namespace"] == "doomed"], procs


# ---- other kinds ---------------------------------------------------------------------

def test_events_both_groups_and_leases():
    ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
          "metadata": {"name": "e1", "namespace": "default"},
          "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "terrane.io/controller",
          "reportingInstance": "c-1", "action": "Reconcile", "reason": "Materialized",
          "type": "Normal", "note": "asset built",
          "regarding": {"kind": "Widget", "name": "gen", "namespace": "default"}}
    ok(*C.post("/apis/events.k8s.io/v1/namespaces/default/events", ev)[:2])
    code, core, _ = C.get("/api/v1/namespaces/default/events/e1")
    ok(code, core)
    assert core["message"] == "asset built" and core["involvedObject"]["name"] == "gen", core
    code, lst, _ = C.get(q("/api/v1/namespaces/default/events", fieldSelector="reason=Materialized"))
    assert [e["metadata"]["name"] for e in ok(code, lst)["items"]] == ["e1"]
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "terrane-leader", "namespace": "kube-system"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                      "acquireTime": "2024-01-01T00:00:00.000000Z",
                      "renewTime": "2024-01-01T00:00:00.000000Z", "leaseTransitions": 0}}
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
    code, l1, _ = C.post(path, lease)
    ok(code, l1, 201)
    l2 = json.loads(json.dumps(l1))
    l2["spec"]["holderIdentity"] = "b"
    ok(*C.put(path + "/terrane-leader", l2)[:2])
    l1["spec"]["holderIdentity"] = "c"
    code, st, _ = C.put(path + "/terrane-leader", l1)
    assert code == 409, st   # the other candidate lost the race


def test_discovery():
    code, apis, _ = C.get("/apis")
    groups = {g["name"] for g in ok(code, apis)["groups"]}
    assert {"coordination.k8s.io", "events.k8s.io", "apiextensions.k8s.io",
            "example.terrane.io"} <= groups, groups
    code, v1, _ = C.get("/api/v1")
    names = {r["name"] for r in ok(code, v1)["resources"]}
    assert {"pods", "pods/status", "pods/log", "nodes", "namespaces", "events", "configmaps",
            "secrets", "serviceaccounts"} <= names, names
    code, oa, _ = C.get("/openapi/v3")
    assert "apis/example.terrane.io/v1" in ok(code, oa)["paths"]


# ---- fault injection -------------------------------------------------------------------

def test_fault_error_rate_is_deterministic():
    doc = {"seed": 7, "errors": [{"verbs": ["list"], "resources": ["configmaps"], "rate": 0.5}]}

    def run():
        SIM.faults(doc)
        out = []
        for _ in range(24):
            code, body, _ = C.get(CM % "default")
            if code == 500:
                assert body["reason"] == "InternalError" and body["kind"] == "Status", body
            else:
                assert code == 200, body
            out.append(code)
        return out
    a = run()
    b = run()
    SIM.faults({})
    assert 500 in a and 200 in a, a
    assert a == b, (a, b)
    # other verbs were untouched
    assert C.get(CM % "default" + "/c1")[0] == 200


def test_fault_throttle_retry_after():
    SIM.faults({"throttle": [{"verbs": ["create"], "count": 2, "retryAfterSeconds": 3}]})
    try:
        codes, hdrs = [], []
        for i in range(3):
            code, body, h = C.post(CM % "default", cm("thr%d" % i))
            codes.append(code)
            hdrs.append(h)
        assert codes == [429, 429, 201], codes
        assert hdrs[0].get("retry-after") == "3", hdrs[0]
    finally:
        SIM.faults({})


def test_fault_dropped_watch():
    code, lst, _ = C.get(CM % "default")
    rv = lst["metadata"]["resourceVersion"]
    for i in range(4):
        ok(*C.post(CM % "default", cm("drop%d" % i))[:2])
    SIM.faults({"watch": {"dropAfterEvents": 2}})
    try:
        t0 = time.monotonic()
        evs = list(C.watch(q(CM % "default", watch=1, resourceVersion=rv), timeout=5))
        assert len(evs) == 2 and time.monotonic() - t0 < 4, evs
    finally:
        SIM.faults({})
    evs = list(C.watch(q(CM % "default", watch=1, resourceVersion=rv), timeout=0.7))
    assert len(evs) == 4, evs


# ---- authentication, then authorization -----------------------------------------------

def _auth_probe(c, token=None):
    h = {"Authorization": "Bearer " + token} if token is not None else {}
    return c.get("/api/v1/namespaces/default/configmaps", headers=h)[0]


def _sa_token(c, admin, ns, name):
    h = {"Authorization": "Bearer " + admin} if admin else {}
    code, body, _ = c.post("/api/v1/namespaces/%s/serviceaccounts" % ns,
                           {"metadata": {"name": name}}, headers=h)
    assert code in (201, 409), body
    code, body, _ = c.post("/api/v1/namespaces/%s/serviceaccounts/%s/token" % (ns, name),
                           {"spec": {}}, headers=h)
    ok(code, body)
    return body["status"]["token"]


def test_authentication_one_path():
    """Every request is authenticated, whatever the authorizer: with no
    --token, no credentials is system:anonymous and a bad token is 401;
    ServiceAccount tokens are accepted (and die with their ServiceAccount)
    under AlwaysAllow as under RBAC; with --token, no credentials is 401."""
    assert _auth_probe(C) == 200
    assert _auth_probe(C, "not-a-token") == 401
    code, body, _ = C.get("/api/v1/namespaces", headers={"Authorization": "Basic dTpw"})
    assert code == 401 and body["reason"] == "Unauthorized", body
    tok = _sa_token(C, None, "default", "authn-sa")
    assert _auth_probe(C, tok) == 200
    ok(*C.delete("/api/v1/namespaces/default/serviceaccounts/authn-sa")[:2])
    assert _auth_probe(C, tok) == 401
    with harness.running(args=["--token", "adm1n"]) as sim:
        c = sim.client
        assert _auth_probe(c) == 401
        assert c.get("/version")[0] == 401
        assert _auth_probe(c, "wrong") == 401
        assert _auth_probe(c, "adm1n") == 200
        tok = _sa_token(c, "adm1n", "default", "sa")
        assert _auth_probe(c, tok) == 200   # AlwaysAllow: authenticated is enough


def test_rbac_authorizes_after_authentication():
    with harness.running(args=["--token", "adm1n", "--authorization", "RBAC"]) as sim:
        c = sim.client
        adm = {"Authorization": "Bearer adm1n"}
        assert _auth_probe(c) == 401 and _auth_probe(c, "wrong") == 401
        tok = _sa_token(c, "adm1n", "default", "reader")
        code, body, _ = c.get("/api/v1/namespaces/default/configmaps",
                              headers={"Authorization": "Bearer " + tok})
        assert code == 403 and body["message"] == (
            'configmaps is forbidden: User "system:serviceaccount:default:reader" cannot list '
            'resource "configmaps" in API group "" in the namespace "default"'), body
        assert c.get("/version", headers={"Authorization": "Bearer " + tok})[0] == 200
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "cm-read", "namespace": "default"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}
        ok(*c.post("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", role,
                   headers=adm)[:2])
        rb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
              "metadata": {"name": "cm-read", "namespace": "default"},
              "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-read"},
              "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}]}
        ok(*c.post("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", rb,
                   headers=adm)[:2])
        assert _auth_probe(c, tok) == 200
        code, body, _ = c.get("/api/v1/namespaces/default/configmaps/x",
                              headers={"Authorization": "Bearer " + tok})
        assert code == 403 and "cannot get resource" in body["message"], body


# ---- kubelet ---------------------------------------------------------------------------

def test_pod_success_failure_and_messages():
    mkns("run")
    spec = pod("ok", 'echo "pod=$POD ns=$NS"; printf \'{"result":"done"}\' > "$TERRANE_TERMINATION_LOG"',
               ns="run")
    spec["spec"]["containers"][0]["env"] = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    ok(*C.post(PODS % "run", spec)[:2])
    bad = pod("bad", "echo about to fail; echo reason: disk full >&2; exit 3", ns="run")
    bad["spec"]["containers"][0]["terminationMessagePolicy"] = "FallbackToLogsOnError"
    ok(*C.post(PODS % "run", bad)[:2])
    p = C.wait_for(PODS % "run" + "/ok", phase_in("Succeeded", "Failed"))
    assert p["status"]["phase"] == "Succeeded", p["status"]
    t = terminated(p)
    assert t["exitCode"] == 0 and t["reason"] == "Completed" and t["message"] == '{"result":"done"}', t
    assert t["startedAt"] and t["finishedAt"]
    for ctype, want in (("PodScheduled", "True"), ("Initialized", "True"), ("Ready", "False"),
                        ("ContainersReady", "False")):
        assert cond(p, ctype)["status"] == want, (ctype, p["status"]["conditions"])
    code, log, _ = C.get(PODS % "run" + "/ok/log", raw=True)
    assert code == 200 and log == "pod=ok ns=run\n", log
    p = C.wait_for(PODS % "run" + "/bad", phase_in("Succeeded", "Failed"))
    t = terminated(p)
    assert p["status"]["phase"] == "Failed" and t["exitCode"] == 3 and t["reason"] == "Error", p["status"]
    assert "reason: disk full" in t["message"], t
    reasons = [e["reason"] for e in events_for("ok", ns="run")]
    assert "Scheduled" in reasons and "Started" in reasons, reasons


def test_pod_running_then_deleted():
    mkns("run")
    ok(*C.post(PODS % "run", pod("sleeper", "trap 'exit 0' TERM; sleep 30 & wait", ns="run"))[:2])
    p = C.wait_for(PODS % "run" + "/sleeper", phase_in("Running"))
    assert p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    assert cond(p, "Ready")["status"] == "True"
    code, procs, _ = C.get("/kubesim/processes")
    mine = [x for x in procs["processes"] if x["pod"] == "sleeper"]
    assert len(mine) == 1, procs
    pid = mine[0]["pid"]
    ok(*C.delete(PODS % "run" + "/sleeper")[:2])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and C.get(PODS % "run" + "/sleeper")[0] != 404:
        time.sleep(0.1)
    assert C.get(PODS % "run" + "/sleeper")[0] == 404
    assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"


def test_oom_killed_by_memory_limit():
    mkns("run")
    hog = pod("hog", "exec python3 -c 'x = bytearray(400 << 20); import time; time.sleep(10)'",
              ns="run", limits={"memory": "100Mi"})
    ok(*C.post(PODS % "run", hog)[:2])
    p = C.wait_for(PODS % "run" + "/hog", phase_in("Failed", "Succeeded"), timeout=20)
    t = terminated(p)
    assert p["status"]["phase"] == "Failed" and t["reason"] == "OOMKilled" and t["exitCode"] == 137, p["status"]
    assert events_for("hog", "OOMKilling", ns="run"), events_for("hog", ns="run")


def test_forced_oom_and_preemption():
    mkns("run")
    SIM.faults({"oom": [{"selector": "app=victim", "count": 1, "afterSeconds": 0.3}],
                "preempt": [{"name": "pre-*", "count": 1, "afterSeconds": 0.3}]})
    try:
        ok(*C.post(PODS % "run", pod("v1", "sleep 20", ns="run", labels={"app": "victim"}))[:2])
        ok(*C.post(PODS % "run", pod("pre-1", "sleep 20", ns="run"))[:2])
        p = C.wait_for(PODS % "run" + "/v1", phase_in("Failed", "Succeeded"))
        assert terminated(p)["reason"] == "OOMKilled" and terminated(p)["exitCode"] == 137, p["status"]
        p = C.wait_for(PODS % "run" + "/pre-1", phase_in("Failed", "Succeeded"))
        dt = cond(p, "DisruptionTarget")
        assert dt and dt["status"] == "True" and dt["reason"] == "PreemptionByScheduler", p["status"]
        assert p["status"]["phase"] == "Failed" and p["status"]["reason"] == "Preempted", p["status"]
        # count 1: the next victim is left alone
        ok(*C.post(PODS % "run", pod("v2", "sleep 1", ns="run", labels={"app": "victim"}))[:2])
        p = C.wait_for(PODS % "run" + "/v2", phase_in("Failed", "Succeeded"))
        assert p["status"]["phase"] == "Succeeded", p["status"]
    finally:
        SIM.faults({})
    # admin endpoint: eviction by the kubelet
    ok(*C.post(PODS % "run", pod("evictme", "sleep 20", ns="run"))[:2])
    C.wait_for(PODS % "run" + "/evictme", phase_in("Running"))
    ok(*C.post("/kubesim/evict", {"namespace": "run", "name": "evictme"})[:2])
    p = C.wait_for(PODS % "run" + "/evictme", phase_in("Failed"))
    assert cond(p, "DisruptionTarget")["reason"] == "TerminationByKubelet" and p["status"]["reason"] == "Evicted"


def test_restarts_init_containers_and_previous_logs():
    mkns("run")
    p = pod("retry", 'cat init.txt; if [ -f marker ]; then echo second; exit 0; fi; '
            'touch marker; echo first; exit 1', ns="run", restart="OnFailure")
    p["spec"]["initContainers"] = [{"name": "prep", "image": "terrane-worker",
                                    "command": ["sh", "-c", "echo prepared > init.txt"]}]
    ok(*C.post(PODS % "run", p)[:2])
    p = C.wait_for(PODS % "run" + "/retry", phase_in("Succeeded", "Failed"), timeout=20)
    cs = p["status"]["containerStatuses"][0]
    assert p["status"]["phase"] == "Succeeded" and cs["restartCount"] == 1, p["status"]
    assert cs["lastState"]["terminated"]["exitCode"] == 1, cs
    ics = p["status"]["initContainerStatuses"][0]
    assert ics["state"]["terminated"]["reason"] == "Completed", ics
    code, log, _ = C.get(PODS % "run" + "/retry/log?container=main", raw=True)
    assert log == "prepared\nsecond\n", log
    code, log, _ = C.get(PODS % "run" + "/retry/log?container=main&previous=true", raw=True)
    assert log == "prepared\nfirst\n", log
    code, st, _ = C.get(PODS % "run" + "/retry/log", raw=True)
    assert code == 200   # one regular container: no name needed
    assert [e for e in events_for("retry", "BackOff", ns="run")]


def test_emptydir_volumes_and_images():
    """Init containers and the main container share an emptyDir; a container
    without a command runs its image's entrypoint from the images file."""
    mkns("run")
    p = pod("vol", 'cat "$1" "$SHARED/greeting"; echo "$KUBESIM_VOLUME_MOUNTS"', ns="run",
            volumes=[{"name": "shared", "emptyDir": {}}])
    main_c = p["spec"]["containers"][0]
    main_c["args"] = ["_", "/shared/a.txt"]          # a path argument, rewritten
    main_c["volumeMounts"] = [{"name": "shared", "mountPath": "/shared"}]
    main_c["env"] = [{"name": "SHARED", "value": "/shared"}]
    p["spec"]["initContainers"] = [
        {"name": "writer", "image": "terrane-worker",
         "command": ["sh", "-c", 'echo one > "$SHARED/a.txt"'],
         "env": [{"name": "SHARED", "value": "/shared"}],
         "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
        {"name": "greeter", "image": "example/greeter:1.0",   # entrypoint from the images file
         "volumeMounts": [{"name": "shared", "mountPath": "/shared", "subPath": ""}]}]
    ok(*C.post(PODS % "run", p)[:2])
    p = C.wait_for(PODS % "run" + "/vol", phase_in("Succeeded", "Failed"), timeout=20)
    assert p["status"]["phase"] == "Succeeded", p["status"]
    code, log, _ = C.get(PODS % "run" + "/vol/log?container=main", raw=True)
    lines = log.splitlines()
    assert lines[0] == "one" and lines[1] == "hello from the greeter image", log
    assert lines[2].startswith("/shared=") and lines[2].endswith("/volumes/shared"), log
    ics = {c["name"]: c for c in p["status"]["initContainerStatuses"]}
    assert ics["greeter"]["imageID"] == "example/greeter@sha256:" + "ab" * 32, ics
    assert ics["writer"]["imageID"] == "", ics   # not in the images file


def test_read_only_root_filesystem():
    """A container with readOnlyRootFilesystem writes its emptyDir volumes and
    nothing else (EROFS), as under a container runtime; a readOnly mount is
    read-only; a container without it may write outside its volumes."""
    import tempfile
    mkns("run")
    outside = tempfile.mkdtemp(prefix="kubesim-outside-")
    try:
        # Mount paths are mapped in env values, so the script takes them from there.
        script = ('for d in scratch:$SCRATCH config:$CONFIG outside:$OUTSIDE pod:. tmp:/tmp; do '
                  'if (echo x > "${d#*:}/probe") 2>/dev/null; then echo "${d%%:*}=w"; '
                  'else echo "${d%%:*}=ro"; fi; done; cat "$CONFIG/seed"')
        env = [{"name": "SCRATCH", "value": "/scratch"}, {"name": "CONFIG", "value": "/config"},
               {"name": "OUTSIDE", "value": outside}]
        def mk(name, ro_root):
            p = pod(name, script, ns="run",
                    volumes=[{"name": "scratch", "emptyDir": {}}, {"name": "config", "emptyDir": {}},
                             {"name": "unmounted", "emptyDir": {}}])
            p["spec"]["initContainers"] = [
                {"name": "seed", "image": "terrane-worker", "command": ["sh", "-c", 'echo seeded > "$CONFIG/seed"'],
                 "env": env, "securityContext": {"readOnlyRootFilesystem": True}, "volumeMounts": [{"name": "config", "mountPath": "/config"}]}]
            c = p["spec"]["containers"][0]
            c["env"] = env
            c["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"},
                                 {"name": "config", "mountPath": "/config", "readOnly": True}]
            if ro_root:
                c["securityContext"] = {"readOnlyRootFilesystem": True}
            return p
        ok(*C.post(PODS % "run", mk("confined", True))[:2])
        p = C.wait_for(PODS % "run" + "/confined", phase_in("Succeeded", "Failed"), timeout=20)
        assert p["status"]["phase"] == "Succeeded", p["status"]
        code, log, _ = C.get(PODS % "run" + "/confined/log", raw=True)
        want = ["scratch=w", "config=ro", "outside=ro", "pod=ro", "tmp=ro", "seeded"]
        assert log.splitlines() == want, log
        assert not os.listdir(outside), os.listdir(outside)
        ok(*C.post(PODS % "run", mk("unconfined", False))[:2])
        p = C.wait_for(PODS % "run" + "/unconfined", phase_in("Succeeded", "Failed"), timeout=20)
        code, log, _ = C.get(PODS % "run" + "/unconfined/log", raw=True)
        assert log.splitlines() == ["scratch=w", "config=w", "outside=w", "pod=w", "tmp=w",
                                    "seeded"], log
    finally:
        for f in os.listdir(outside):
            os.unlink(os.path.join(outside, f))
        os.rmdir(outside)
        try:
            os.unlink("/tmp/probe")
        except OSError:
            pass


def test_projected_volumes():
    """A projected volume as the kubelet sets it up, on a kubesim serving TLS
    with RBAC: the serviceAccountToken source is a TokenRequest token of the
    pod's ServiceAccount (it authenticates as that ServiceAccount: allowed
    what its Role allows, 403 otherwise), kube-root-ca.crt holds the CA the
    API server's certificate verifies with, downwardAPI items hold the pod's
    name and namespace, and a readOnly mount cannot be written. A pod of a
    ServiceAccount that does not exist is refused; a ConfigMap or
    ServiceAccount missing when the pod starts leaves it in
    ContainerCreating with FailedMount Events, no container run, until the
    source exists."""
    adm = {"Authorization": "Bearer adm1n"}
    with harness.running(args=["--tls", "--token", "adm1n", "--authorization", "RBAC"]) as sim:
        c = sim.client
        c.headers = adm
        ok(*c.post("/api/v1/namespaces", {"metadata": {"name": "proj"}}, headers=adm)[:2])
        for path, obj in (
                ("/api/v1/namespaces/proj/serviceaccounts", {"metadata": {"name": "reader"}}),
                ("/apis/rbac.authorization.k8s.io/v1/namespaces/proj/roles",
                 {"metadata": {"name": "pods-get"},
                  "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
                ("/apis/rbac.authorization.k8s.io/v1/namespaces/proj/rolebindings",
                 {"metadata": {"name": "pods-get"},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods-get"},
                  "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "proj"}]})):
            ok(*c.post(path, obj, headers=adm)[:2])

        def mk(name, sa, sources, script, sched=None):
            p = pod(name, script, ns="proj", serviceAccountName=sa,
                    volumes=[{"name": "api", "projected": {"sources": sources}}])
            if sched:
                p["spec"]["schedulerName"] = sched
            main_c = p["spec"]["containers"][0]
            main_c["env"] = [{"name": "D", "value": "/var/run/api"}]
            main_c["volumeMounts"] = [{"name": "api", "mountPath": "/var/run/api", "readOnly": True}]
            main_c["securityContext"] = {"readOnlyRootFilesystem": True}
            return p
        sources = [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                   {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                   {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                                              {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]
        script = ('cat "$D/name"; echo; cat "$D/namespace"; echo; cat "$D/token"; echo; '
                  'cat "$D/ca.crt" > /dev/null && echo ca; '
                  'if (echo x > "$D/probe") 2>/dev/null; then echo rw; else echo ro; fi')
        ok(*c.post(PODS % "proj", mk("projected", "reader", sources, script), headers=adm)[:2])
        p = c.wait_for(PODS % "proj" + "/projected", phase_in("Succeeded", "Failed"), timeout=20)
        assert p["status"]["phase"] == "Succeeded", p["status"]
        code, log, _ = c.get(PODS % "proj" + "/projected/log", headers=adm, raw=True)
        name, ns, token, ca, ro = log.splitlines()
        assert (name, ns, ca, ro) == ("projected", "proj", "ca", "ro"), log
        # kube-root-ca.crt's ca.crt: the certificate this client verifies the server with
        found = [os.path.join(d, "ca.crt") for d, _, fs in os.walk(sim.state_dir)
                 if "ca.crt" in fs and "/volumes/api" in d]
        with open(sim.ca_file) as f:
            assert len(found) == 1 and open(found[0]).read() == f.read(), found
        # the token is the pod's ServiceAccount's
        h = {"Authorization": "Bearer " + token}
        code, body, _ = c.get(PODS % "proj" + "/projected", headers=h)
        assert code == 200 and body["metadata"]["name"] == "projected", body
        code, body, _ = c.get(PODS % "proj", headers=h)
        assert code == 403 and body["message"] == (
            'pods is forbidden: User "system:serviceaccount:proj:reader" cannot list resource '
            '"pods" in API group "" in the namespace "proj"'), body

        # a ServiceAccount that does not exist: the pod is refused
        code, body, _ = c.post(PODS % "proj", mk("nosa", "nobody", sources, "true"), headers=adm)
        assert code == 403 and body["message"] == (
            'pods "nosa" is forbidden: error looking up service account proj/nobody: '
            'serviceaccount "nobody" not found'), body

        # a ConfigMap missing at start: ContainerCreating and FailedMount until it exists
        missing = [{"configMap": {"name": "settings"}}]
        ok(*c.post(PODS % "proj", mk("nocm", "reader", missing, 'cat "$D/region"'), headers=adm)[:2])
        def failed_mount(name, want):
            deadline = time.monotonic() + 10
            evs = []
            while time.monotonic() < deadline:
                code, lst, _ = c.get(q("/api/v1/namespaces/proj/events",
                                       fieldSelector="involvedObject.name=" + name), headers=adm)
                evs = [(e["type"], e["reason"], e["message"]) for e in lst["items"]]
                if ("Warning", "FailedMount", want) in evs:
                    return
                time.sleep(0.1)
            raise AssertionError("no FailedMount %r: %s" % (want, evs))
        failed_mount("nocm", 'MountVolume.SetUp failed for volume "api" : configmap "settings" not found')
        code, p, _ = c.get(PODS % "proj" + "/nocm", headers=adm)
        st = p["status"]["containerStatuses"][0]
        assert p["status"]["phase"] == "Pending" and st["state"]["waiting"]["reason"] == "ContainerCreating", p["status"]
        assert "started" not in [e["reason"].lower() for e in events_for_c(c, "nocm")]
        ok(*c.post(CM % "proj", cm("settings", ns="proj", data={"region": "eu-west-1"}), headers=adm)[:2])
        p = c.wait_for(PODS % "proj" + "/nocm", phase_in("Succeeded", "Failed"), timeout=20)
        assert p["status"]["phase"] == "Succeeded", p["status"]
        assert c.get(PODS % "proj" + "/nocm/log", headers=adm, raw=True)[1] == "eu-west-1"

        # a ServiceAccount deleted before the pod starts: no token, FailedMount
        ok(*c.post("/api/v1/namespaces/proj/serviceaccounts", {"metadata": {"name": "brief"}},
                   headers=adm)[:2])
        ok(*c.post(PODS % "proj", mk("nosa2", "brief", sources, "true", sched="manual"), headers=adm)[:2])
        ok(*c.delete("/api/v1/namespaces/proj/serviceaccounts/brief", headers=adm)[:2])
        code, nodes, _ = c.get("/api/v1/nodes", headers=adm)
        ok(*c.post(PODS % "proj" + "/nosa2/binding",
                   {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "nosa2"},
                    "target": {"apiVersion": "v1", "kind": "Node",
                               "name": nodes["items"][0]["metadata"]["name"]}}, headers=adm)[:2])
        failed_mount("nosa2", 'MountVolume.SetUp failed for volume "api" : failed to fetch token: '
                              'serviceaccounts "brief" not found')
        code, p, _ = c.get(PODS % "proj" + "/nosa2", headers=adm)
        assert p["status"]["phase"] == "Pending", p["status"]


def events_for_c(c, name, ns="proj"):
    code, lst, _ = c.get(q("/api/v1/namespaces/%s/events" % ns, fieldSelector="involvedObject.name=" + name),
                         headers={"Authorization": "Bearer adm1n"})
    ok(code, lst)
    return lst["items"]


def test_env_sources_binding_and_eviction():
    mkns("run")
    ok(*C.post(CM % "run", cm("settings", ns="run", data={"region": "eu-west-1", "tier": "gold"}))[:2])
    p = pod("envy", 'echo "$REGION $ALL_tier $GREETING ${KUBESIM_T_PASSED:-no} ${KUBESIM_T_HIDDEN:-hidden}"',
            ns="run", schedulerName="manual")
    c = p["spec"]["containers"][0]
    c["env"] = [{"name": "REGION", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "region"}}},
                {"name": "WHO", "value": "terrane"},
                {"name": "GREETING", "value": "hello-$(WHO)"}]
    c["envFrom"] = [{"configMapRef": {"name": "settings"}, "prefix": "ALL_"}]
    ok(*C.post(PODS % "run", p)[:2])
    time.sleep(0.5)
    code, p, _ = C.get(PODS % "run" + "/envy")
    assert not p["spec"].get("nodeName") and p["status"]["phase"] == "Pending", p
    code, st, _ = C.get(PODS % "run" + "/envy/log")
    assert code == 400 and "waiting to start" in st["message"], st
    code, nodes, _ = C.get(q("/api/v1/nodes", labelSelector="terrane.io/pool=cpu"))
    node = nodes["items"][0]["metadata"]["name"]
    code, st, _ = C.post(PODS % "run" + "/envy/binding",
                         {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "envy"},
                          "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    ok(code, st, 201)
    p = C.wait_for(PODS % "run" + "/envy", phase_in("Succeeded", "Failed"))
    assert p["spec"]["nodeName"] == node and cond(p, "PodScheduled")["status"] == "True"
    code, log, _ = C.get(PODS % "run" + "/envy/log", raw=True)
    assert log == "eu-west-1 gold hello-terrane yes hidden\n", log   # only --pass-env variables
    # the Eviction API: DisruptionTarget, then the pod goes away
    ok(*C.post(PODS % "run", pod("evicted", "sleep 30", ns="run"))[:2])
    C.wait_for(PODS % "run" + "/evicted", phase_in("Running"))
    code, st, _ = C.post(PODS % "run" + "/evicted/eviction",
                         {"apiVersion": "policy/v1", "kind": "Eviction",
                          "metadata": {"name": "evicted", "namespace": "run"}})
    ok(code, st, 201)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and C.get(PODS % "run" + "/evicted")[0] != 404:
        time.sleep(0.1)
    assert C.get(PODS % "run" + "/evicted")[0] == 404


def test_crd_deletion_unregisters():
    crd = json.loads(json.dumps(WIDGET_CRD))
    crd["metadata"]["name"] = "gadgets.example.terrane.io"
    crd["spec"]["scope"] = "Cluster"
    crd["spec"]["names"] = {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"}
    ok(*C.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)[:2])
    g = {"apiVersion": "example.terrane.io/v1", "kind": "Gadget", "metadata": {"name": "g1"},
         "spec": {"operation": "terrain"}}
    code, o, _ = C.post("/apis/example.terrane.io/v1/gadgets", g)
    ok(code, o, 201)
    assert "namespace" not in o["metadata"]
    code, st, _ = C.post("/apis/example.terrane.io/v1/namespaces/default/gadgets", g)
    assert code == 404, st   # cluster-scoped: no namespaced path
    ok(*C.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.terrane.io")[:2])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and C.get("/apis/example.terrane.io/v1/gadgets")[0] != 404:
        time.sleep(0.1)
    assert C.get("/apis/example.terrane.io/v1/gadgets")[0] == 404
    code, rl, _ = C.get("/apis/example.terrane.io/v1")
    names = [r["name"] for r in ok(code, rl)["resources"]]
    assert "gadgets" not in names and "widgets" in names, names
    assert C.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.terrane.io")[0] == 404


# ---- scheduler and autoscaler -------------------------------------------------------------

def test_unschedulable_pod():
    mkns("run")
    ok(*C.post(PODS % "run", pod("huge", "true", ns="run", requests={"memory": "500Gi"}))[:2])
    p = C.wait_for(PODS % "run" + "/huge", lambda p: (cond(p, "PodScheduled") or {}).get("reason") == "Unschedulable")
    msg = cond(p, "PodScheduled")["message"]
    assert msg.startswith("0/") and "Insufficient memory" in msg, msg
    assert p["status"]["phase"] == "Pending" and not p["spec"].get("nodeName")
    assert events_for("huge", "FailedScheduling", ns="run")
    ok(*C.post(PODS % "run", pod("nosel", "true", ns="run", nodeSelector={"terrane.io/pool": "tpu"}))[:2])
    p = C.wait_for(PODS % "run" + "/nosel", lambda p: (cond(p, "PodScheduled") or {}).get("reason") == "Unschedulable")
    assert "didn't match Pod's node affinity/selector" in cond(p, "PodScheduled")["message"]
    time.sleep(0.6)
    code, nodes, _ = C.get("/api/v1/nodes")
    assert not [n for n in nodes["items"] if n["metadata"]["labels"].get("terrane.io/pool") == "tpu"]
    assert events_for("nosel", "NotTriggerScaleUp", ns="run")
    # a tainted node (added through the admin endpoint) rejects pods without a toleration
    code, n, _ = C.post("/kubesim/nodes", {"pool": "gpu"})
    ok(code, n, 201)
    ok(*C.post(PODS % "run", pod("notol", "true", ns="run", nodeSelector={"terrane.io/pool": "gpu"}))[:2])
    p = C.wait_for(PODS % "run" + "/notol", lambda p: "untolerated taint {nvidia.com/gpu: present}"
                   in ((cond(p, "PodScheduled") or {}).get("message") or ""))
    assert not p["spec"].get("nodeName")
    ok(*C.delete(PODS % "run" + "/notol")[:2])


def test_autoscaler_up_and_down():
    mkns("run")
    def pool_nodes(pool):
        code, lst, _ = C.get(q("/api/v1/nodes", labelSelector="terrane.io/pool=" + pool))
        return [n["metadata"]["name"] for n in ok(code, lst)["items"]]
    assert pool_nodes("highmem") == []
    big = pod("bigmem", "sleep 1", ns="run", requests={"memory": "40Gi"})
    big["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "terrane.io/pool", "operator": "In", "values": ["highmem", "gpu"]}]}]}}}
    ok(*C.post(PODS % "run", big)[:2])
    gpu = pod("gpujob", "sleep 1", ns="run", limits={"nvidia.com/gpu": "1"},
              tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    ok(*C.post(PODS % "run", gpu)[:2])
    p = C.wait_for(PODS % "run" + "/bigmem", phase_in("Succeeded", "Failed"), timeout=20)
    assert p["status"]["phase"] == "Succeeded" and p["spec"]["nodeName"].startswith("highmem-"), p["spec"]
    g = C.wait_for(PODS % "run" + "/gpujob", phase_in("Succeeded", "Failed"), timeout=20)
    assert g["spec"]["nodeName"].startswith("gpu-"), g["spec"]
    assert events_for("bigmem", "TriggeredScaleUp", ns="run")
    assert pool_nodes("highmem") or pool_nodes("gpu")
    # idle for scaleDownDelaySeconds (2s): back to min (0)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (pool_nodes("highmem") or pool_nodes("gpu")):
        time.sleep(0.2)
    assert pool_nodes("highmem") == [] and pool_nodes("gpu") == [], (pool_nodes("highmem"), pool_nodes("gpu"))
    assert len(pool_nodes("cpu")) >= 1   # min 1
    code, lst, _ = C.get(q("/api/v1/namespaces/default/events", fieldSelector="reason=ScaleDown"))
    assert ok(code, lst)["items"], "no ScaleDown event"


def test_node_loss():
    mkns("run")
    ok(*C.post(PODS % "run", pod("onnode", "sleep 30", ns="run"))[:2])
    p = C.wait_for(PODS % "run" + "/onnode", phase_in("Running"))
    node, rv = p["spec"]["nodeName"], p["metadata"]["resourceVersion"]
    ok(*C.post("/kubesim/nodes/%s/kill" % node, {})[:2])
    evs = list(C.watch(q(PODS % "run", watch=1, resourceVersion=rv, fieldSelector="metadata.name=onnode"),
                       timeout=10, stop=lambda e: e["type"] == "DELETED"))
    failed = [e for e in evs if e["type"] == "MODIFIED" and e["object"]["status"]["phase"] == "Failed"]
    assert failed and evs[-1]["type"] == "DELETED", [(e["type"], e["object"].get("status", {}).get("phase")) for e in evs]
    assert cond(failed[0]["object"], "DisruptionTarget")["reason"] == "DeletionByPodGC"
    assert C.get("/api/v1/nodes/" + node)[0] == 404
    # pending work brings the pool back
    ok(*C.post(PODS % "run", pod("after-loss", "true", ns="run"))[:2])
    p = C.wait_for(PODS % "run" + "/after-loss", phase_in("Succeeded"), timeout=20)
    assert p["spec"]["nodeName"] != node


# ---- runner --------------------------------------------------------------------------

def main():
    global SIM, C
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    only = os.environ.get("KUBESIM_TEST")
    passed = failed = 0
    os.environ["KUBESIM_T_PASSED"] = "yes"
    os.environ["KUBESIM_T_HIDDEN"] = "leaked"
    with harness.running(pools=os.path.join(HERE, "testdata", "pools-fast.json"),
                         args=["--bookmark-interval", "0.5", "--fresh-wait", "0.5", "--seed", "1",
                               "--pass-env", "KUBESIM_T_PASSED",
                               "--images", os.path.join(HERE, "testdata", "images.json")]) as sim:
        SIM, C = sim, sim.client
        for name, fn in tests:
            if only and only not in name:
                continue
            t0 = time.monotonic()
            try:
                fn()
                passed += 1
                print("PASS %-45s %5.1fs" % (name, time.monotonic() - t0), flush=True)
            except Exception:
                failed += 1
                print("FAIL %-45s %5.1fs" % (name, time.monotonic() - t0), flush=True)
                traceback.print_exc()
        code, procs, _ = C.get("/kubesim/processes")
        pids = [p["pid"] for p in procs.get("processes", [])]
        rc = sim.stop()
        if rc != 0:
            failed += 1
            print("FAIL kubesim exit status %s\n%s" % (rc, sim.log()))
        if failed:
            print("--- kubesim log ---\n" + sim.log()[-4000:])
    alive = [p for p in pids if os.path.exists("/proc/%d" % p)
             and open("/proc/%d/stat" % p).read().split()[2] != "Z"]
    if alive:
        failed += 1
        print("FAIL processes left running after shutdown: %s" % alive)
    else:
        passed += 1
        print("PASS %-45s" % "shutdown_kills_children")
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
