"""meta.k8s.io/v1 Table responses, what `kubectl get` prints.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the
server's columns. Custom resources get Name plus their CRD's
additionalPrinterColumns (JSONPath, first match, typed as the CRD says; `date`
columns become ages); built-ins get the columns the real server shows for them.
"""

import jsonpath
import util

NAME_COL = {"name": "Name", "type": "string", "format": "name", "priority": 0,
            "description": "Name must be unique within a namespace. Is required when "
                           "creating resources, although some resources may allow a client "
                           "to request the generation of an appropriate name automatically."}
AGE_COL = {"name": "Age", "type": "string", "format": "", "priority": 0,
           "description": "CreationTimestamp is a timestamp representing the server time "
                          "when this object was created."}


def _col(name, priority=0, typ="string", desc=""):
    return {"name": name, "type": typ, "format": "", "priority": priority,
            "description": desc or name}


def _age(o):
    return util.age((o.get("metadata") or {}).get("creationTimestamp"))


# ---- built-in printers ------------------------------------------------------

def _pod_status(p):
    spec, st = p.get("spec") or {}, p.get("status") or {}
    reason = st.get("reason") or st.get("phase") or "Pending"
    total = len(spec.get("containers") or [])
    ready = restarts = 0
    init_total = len(spec.get("initContainers") or [])
    initializing = False
    for i, c in enumerate(st.get("initContainerStatuses") or []):
        restarts += int(c.get("restartCount") or 0)
        s = c.get("state") or {}
        term = s.get("terminated")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or "ExitCode:%d" % term.get("exitCode", 0))
        elif (s.get("waiting") or {}).get("reason") and s["waiting"]["reason"] != "PodInitializing":
            reason = "Init:" + s["waiting"]["reason"]
        else:
            reason = "Init:%d/%d" % (i, init_total)
        initializing = True
        break
    has_running = False
    if not initializing:
        for c in reversed(st.get("containerStatuses") or []):
            restarts += int(c.get("restartCount") or 0)
            s = c.get("state") or {}
            if (s.get("waiting") or {}).get("reason"):
                reason = s["waiting"]["reason"]
            elif s.get("terminated"):
                t = s["terminated"]
                if t.get("reason"):
                    reason = t["reason"]
                elif t.get("signal"):
                    reason = "Signal:%d" % t["signal"]
                else:
                    reason = "ExitCode:%d" % t.get("exitCode", 0)
            elif c.get("ready") and s.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running"
    if (p.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Unknown" if st.get("reason") == "NodeLost" else "Terminating"
    return "%d/%d" % (ready, total), reason, str(restarts)


def _pods(o):
    ready, status, restarts = _pod_status(o)
    st = o.get("status") or {}
    gates = (o.get("spec") or {}).get("readinessGates") or []
    return [o["metadata"]["name"], ready, status, restarts, _age(o), st.get("podIP") or "<none>",
            (o.get("spec") or {}).get("nodeName") or "<none>",
            st.get("nominatedNodeName") or "<none>",
            "<none>" if not gates else "%d/%d" % (0, len(gates))]


def _nodes(o):
    st = o.get("status") or {}
    ready = "Unknown"
    for c in st.get("conditions") or []:
        if c.get("type") == "Ready":
            ready = "Ready" if c.get("status") == "True" else "NotReady"
    if (o.get("spec") or {}).get("unschedulable"):
        ready += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in (o["metadata"].get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/"))
    addrs = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    info = st.get("nodeInfo") or {}
    return [o["metadata"]["name"], ready, ",".join(roles) or "<none>", _age(o),
            info.get("kubeletVersion", ""), addrs.get("InternalIP", "<none>"),
            addrs.get("ExternalIP", "<none>"), info.get("osImage", "<unknown>"),
            info.get("kernelVersion", "<unknown>"), info.get("containerRuntimeVersion", "<unknown>")]


def _event_row(o, core):
    if core:
        inv, msg = o.get("involvedObject") or {}, o.get("message", "")
        src = o.get("source") or {}
        count, first, last = o.get("count"), o.get("firstTimestamp"), o.get("lastTimestamp")
    else:
        inv, msg = o.get("regarding") or {}, o.get("note", "")
        src = o.get("deprecatedSource") or {}
        count = o.get("deprecatedCount")
        first, last = o.get("deprecatedFirstTimestamp"), o.get("deprecatedLastTimestamp")
    last = last or o.get("eventTime") or first
    first = first or o.get("eventTime")
    source = src.get("component", "") + ((", " + src["host"]) if src.get("host") else "")
    return [util.age(last), o.get("type", ""), o.get("reason", ""),
            "%s/%s" % ((inv.get("kind") or "").lower(), inv.get("name", "")),
            inv.get("fieldPath", ""), source or o.get("reportingComponent", ""), msg,
            util.age(first), str(count or 1), o["metadata"]["name"]]


_EVENT_COLS = [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"),
               _col("Subobject", 1), _col("Source", 1), _col("Message"), _col("First Seen", 1),
               _col("Count", 1), _col("Name", 1)]

BUILTIN = {
    ("", "pods"): ([NAME_COL, _col("Ready"), _col("Status"), _col("Restarts"), AGE_COL,
                    _col("IP", 1), _col("Node", 1), _col("Nominated Node", 1),
                    _col("Readiness Gates", 1)], _pods),
    ("", "nodes"): ([NAME_COL, _col("Status"), _col("Roles"), AGE_COL, _col("Version"),
                     _col("Internal-IP", 1), _col("External-IP", 1), _col("OS-Image", 1),
                     _col("Kernel-Version", 1), _col("Container-Runtime", 1)], _nodes),
    ("", "namespaces"): ([NAME_COL, _col("Status"), AGE_COL],
                         lambda o: [o["metadata"]["name"],
                                    (o.get("status") or {}).get("phase", ""), _age(o)]),
    ("", "configmaps"): ([NAME_COL, _col("Data"), AGE_COL],
                         lambda o: [o["metadata"]["name"],
                                    len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                                    _age(o)]),
    ("", "secrets"): ([NAME_COL, _col("Type"), _col("Data"), AGE_COL],
                      lambda o: [o["metadata"]["name"], o.get("type", ""),
                                 len(o.get("data") or {}), _age(o)]),
    ("", "serviceaccounts"): ([NAME_COL, _col("Secrets"), AGE_COL],
                              lambda o: [o["metadata"]["name"], len(o.get("secrets") or []),
                                         _age(o)]),
    ("", "services"): (
        [NAME_COL, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), AGE_COL],
        lambda o: [o["metadata"]["name"], (o.get("spec") or {}).get("type", "ClusterIP"),
                   (o.get("spec") or {}).get("clusterIP") or "<none>", "<none>",
                   ",".join("%s/%s" % (p.get("port"), p.get("protocol", "TCP"))
                            for p in (o.get("spec") or {}).get("ports") or []) or "<none>",
                   _age(o)]),
    ("coordination.k8s.io", "leases"): (
        [NAME_COL, _col("Holder"), AGE_COL],
        lambda o: [o["metadata"]["name"], (o.get("spec") or {}).get("holderIdentity", ""),
                   _age(o)]),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        [NAME_COL, _col("Created At", 0, "date")],
        lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp", "")]),
}


def _cell(col, values):
    if not values:
        return None
    v = values[0]
    t = col.get("type", "string")
    if t == "date":
        return util.age(v) if isinstance(v, str) else None
    if t == "integer":
        if isinstance(v, bool):
            return None
        if isinstance(v, (int, float)):
            return int(v)
        return None
    if t == "number":
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if t == "boolean":
        return v if isinstance(v, bool) else None
    return jsonpath.to_text(v)


def columns_and_rows(res, objs):
    if res.crd_name:
        cols = [NAME_COL]
        paths = []
        for c in res.columns or []:
            cols.append({"name": c.get("name", ""), "type": c.get("type", "string"),
                         "format": c.get("format", ""), "priority": c.get("priority", 0),
                         "description": c.get("description") or
                         "Custom resource definition column (in JSONPath format): %s"
                         % c.get("jsonPath", "")})
            try:
                paths.append(jsonpath.parse(c.get("jsonPath", "")))
            except jsonpath.JsonPathError:
                paths.append(None)
        rows = []
        for o in objs:
            cells = [o["metadata"]["name"]]
            for col, p in zip(cols[1:], paths):
                cells.append(_cell(col, jsonpath.evaluate(p, o)) if p is not None else None)
            rows.append(cells)
        return cols, rows
    key = res.skey
    if key == ("", "events"):
        core = res.group == ""
        return _EVENT_COLS, [_event_row(o, core) for o in objs]
    if key in BUILTIN:
        cols, fn = BUILTIN[key]
        return cols, [fn(o) for o in objs]
    return [NAME_COL, AGE_COL], [[o["metadata"]["name"], _age(o)] for o in objs]


def row_object(o, include):
    if include == "None":
        return None
    if include == "Object":
        return o
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata") or {}}


def table(res, objs, include="PartialObjectMetadata", list_meta=None, with_columns=True):
    cols, rows = columns_and_rows(res, objs)
    out = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {},
           "columnDefinitions": cols if with_columns else [], "rows": []}
    for o, cells in zip(objs, rows):
        r = {"cells": cells}
        ro = row_object(o, include)
        if ro is not None:
            r["object"] = ro
        out["rows"].append(r)
    return out
