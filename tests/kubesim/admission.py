"""Per-kind behaviour of the built-in resources, called by the Store.

What the real API server's registry strategies and admission plugins do for
the kinds simulated here: pod defaults, QoS class and spec immutability,
graceful pod deletion, namespace defaults and finalizers, the default
ServiceAccount, Secret stringData, and CRDs (validation, status, the cleanup
finalizer, and registering their resources with the Registry). All functions
run under the Store's lock.
"""

import base64
import json

import celcost
import podvalidation
import psa
import quantity
import schema as schemamod
from util import ApiError, now_ts

CRD_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
POD_MUTABLE_HINT = ("pod updates may not change fields other than `spec.containers[*].image`,"
                    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                    "`spec.tolerations` (only additions to existing tolerations),"
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
                    "was previously negative)")


def _skey(res):
    return res.skey


# ---- pods -------------------------------------------------------------------

def qos_class(spec):
    req_any = lim_any = False
    guaranteed = True
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        r = (c.get("resources") or {})
        req, lim = r.get("requests") or {}, r.get("limits") or {}
        if req or lim:
            req_any = req_any or bool(req)
            lim_any = lim_any or bool(lim)
        for k in ("cpu", "memory"):
            if k not in lim or quantity.parse_or(req.get(k, lim.get(k))) != quantity.parse_or(lim[k]):
                guaranteed = False
    if not req_any and not lim_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _default_container(c):
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image") or ""
    tag = image.rsplit("/", 1)[-1]
    c.setdefault("imagePullPolicy",
                 "Always" if (":" not in tag or tag.endswith(":latest")) and "@" not in image
                 else "IfNotPresent")
    res = c.setdefault("resources", {})
    lim = res.get("limits") or {}
    if lim:
        req = res.setdefault("requests", {})
        for k, v in lim.items():
            req.setdefault(k, v)


def _default_pod(obj):
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = sa
    spec["serviceAccount"] = sa
    tols = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key and t.get("effect") in ("NoExecute", None) for t in tols):
            tols.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": 300})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            _default_container(c)


def _validate_pod(new, old, subresource):
    podvalidation.check_types(new)
    causes = []
    spec = new.get("spec") or {}
    cs = spec.get("containers")
    if not isinstance(cs, list) or not cs:
        causes.append(("spec.containers", "FieldValueRequired", "Required value"))
    names = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            p = "spec.%s[%d]" % (kind, i)
            if not isinstance(c, dict):
                causes.append((p, "FieldValueInvalid", "Invalid value: must be an object"))
                continue
            if not c.get("name"):
                causes.append((p + ".name", "FieldValueRequired", "Required value"))
            elif c["name"] in names:
                causes.append((p + ".name", "FieldValueDuplicate", 'Duplicate value: "%s"' % c["name"]))
            names.add(c.get("name"))
            if not c.get("image"):
                causes.append((p + ".image", "FieldValueRequired", "Required value"))
            for part in ("requests", "limits"):
                for k, v in ((c.get("resources") or {}).get(part) or {}).items():
                    try:
                        quantity.parse(v)
                    except ValueError as e:
                        causes.append(("%s.resources.%s[%s]" % (p, part, k), "FieldValueInvalid",
                                       'Invalid value: "%s": %s' % (v, e)))
    causes += podvalidation.validate(spec)
    if spec.get("restartPolicy") not in ("Always", "OnFailure", "Never"):
        causes.append(("spec.restartPolicy", "FieldValueNotSupported",
                       'Unsupported value: "%s": supported values: "Always", "OnFailure", "Never"'
                       % spec.get("restartPolicy")))
    if old is not None and subresource in (None, ""):
        a, b = json.loads(json.dumps(spec)), json.loads(json.dumps(old.get("spec") or {}))
        for s in (a, b):
            for kind in ("containers", "initContainers"):
                for c in s.get(kind) or []:
                    if isinstance(c, dict):
                        c.pop("image", None)
            for k in ("activeDeadlineSeconds", "terminationGracePeriodSeconds", "tolerations"):
                s.pop(k, None)
        if a != b:
            causes.append(("spec", "FieldValueForbidden", "Forbidden: " + POD_MUTABLE_HINT))
    return causes


# ---- CRDs -------------------------------------------------------------------

def _validate_crd(obj):
    causes = []
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group")
    if not group:
        causes.append(("spec.group", "FieldValueRequired", "Required value"))
    elif "." not in group:
        causes.append(("spec.group", "FieldValueInvalid",
                       'Invalid value: "%s": should be a domain with at least one dot' % group))
    if not names.get("plural"):
        causes.append(("spec.names.plural", "FieldValueRequired", "Required value"))
    if not names.get("kind"):
        causes.append(("spec.names.kind", "FieldValueRequired", "Required value"))
    if names.get("plural") and group and obj["metadata"].get("name") != "%s.%s" % (names["plural"], group):
        causes.append(("metadata.name", "FieldValueInvalid",
                       'Invalid value: "%s": must be spec.names.plural+"."+spec.group'
                       % obj["metadata"].get("name")))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("spec.scope", "FieldValueNotSupported",
                       'Unsupported value: "%s": supported values: "Cluster", "Namespaced"'
                       % spec.get("scope")))
    vs = spec.get("versions")
    if not isinstance(vs, list) or not vs:
        causes.append(("spec.versions", "FieldValueInvalid", "Invalid value: must have at least one version"))
    elif sum(1 for v in vs if isinstance(v, dict) and v.get("storage")) != 1:
        causes.append(("spec.versions", "FieldValueInvalid",
                       "Invalid value: must have exactly one version marked as storage version"))
    else:
        for i, v in enumerate(vs):
            if not (v.get("schema") or {}).get("openAPIV3Schema"):
                causes.append(("spec.versions[%d].schema.openAPIV3Schema" % i, "FieldValueRequired",
                               "Required value: schemas are required"))
            else:
                causes += schemamod.check_crd_schema(v["schema"]["openAPIV3Schema"],
                                                     "spec.versions[%d].schema.openAPIV3Schema" % i)
                causes += [(where, "FieldValueForbidden", msg) for where, msg in celcost.refusals(
                    v["schema"]["openAPIV3Schema"], "spec.versions[%d].schema.openAPIV3Schema" % i)]
    return causes


def _crd_status(obj):
    spec = obj.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", names.get("kind", "") + "List")
    t = now_ts()
    status = obj.setdefault("status", {})
    status["acceptedNames"] = names
    status["conditions"] = [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
         "message": "no conflicts found", "lastTransitionTime": t},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted", "lastTransitionTime": t},
    ]
    stored = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
    status["storedVersions"] = sorted(set((status.get("storedVersions") or []) + stored))


# ---- hooks ------------------------------------------------------------------

def prepare_create(store, res, obj):
    sk = _skey(res)
    m = obj["metadata"]
    if sk == ("", "pods"):
        _default_pod(obj)
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj["spec"])}
    elif sk == ("", "namespaces"):
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
        m.setdefault("labels", {})["kubernetes.io/metadata.name"] = m.get("name", "")
    elif sk == ("apiextensions.k8s.io", "customresourcedefinitions"):
        fins = m.setdefault("finalizers", [])
        if CRD_FINALIZER not in fins:
            fins.append(CRD_FINALIZER)
        _crd_status(obj)
    elif sk == ("", "secrets"):
        obj.setdefault("type", "Opaque")
        _secret_string_data(obj)
    elif sk == ("", "events") and obj.get("firstTimestamp"):
        obj.setdefault("count", 1)


def _secret_string_data(obj):
    sd = obj.pop("stringData", None)
    if isinstance(sd, dict):
        data = obj.setdefault("data", {})
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def prepare_update(store, res, new, old, subresource):
    sk = _skey(res)
    if sk == ("", "pods") and subresource in (None, ""):
        _default_pod(new)
    elif sk == ("", "pods") and subresource == "binding":
        pass
    elif sk == ("apiextensions.k8s.io", "customresourcedefinitions") and subresource in (None, ""):
        _crd_status(new)
    elif sk == ("", "secrets"):
        _secret_string_data(new)
    elif sk == ("", "namespaces") and subresource in (None, ""):
        new["spec"] = json.loads(json.dumps(old.get("spec") or {}))
        new.setdefault("metadata", {}).setdefault("labels", {})[
            "kubernetes.io/metadata.name"] = new["metadata"].get("name", "")


def _service_account_exists(store, pod):
    """The ServiceAccount admission plugin: a new pod's ServiceAccount must
    exist (a pod of a missing one is refused, with the real server's message)."""
    meta = pod.get("metadata") or {}
    ns, sa = meta.get("namespace") or "default", (pod.get("spec") or {}).get("serviceAccountName")
    if sa and store.get_raw(("", "serviceaccounts"), ns, sa) is None:
        raise ApiError(403, "Forbidden",
                       'pods "%s" is forbidden: error looking up service account %s/%s: '
                       'serviceaccount "%s" not found' % (meta.get("name", ""), ns, sa, sa),
                       {"name": meta.get("name", ""), "kind": "pods"})


def allows_unconditional_update(res):
    """AllowUnconditionalUpdate of the kind's registry strategy: false for
    custom resources (and their status) and for CRDs themselves, true for the
    other built-ins simulated here (pods, config maps, leases, ...)."""
    if res.crd_name:
        return False
    return _skey(res) != ("apiextensions.k8s.io", "customresourcedefinitions")


def validate(store, res, new, old, subresource=None):
    sk = _skey(res)
    if sk == ("", "pods"):
        if old is None:
            _service_account_exists(store, new)
        causes = _validate_pod(new, old, subresource)
        if old is None and not causes:
            psa.enforce(store, new)
        return causes
    if sk == ("apiextensions.k8s.io", "customresourcedefinitions"):
        return _validate_crd(new)
    return []


def after_commit(store, skey, etype, obj, prev):
    if skey == ("apiextensions.k8s.io", "customresourcedefinitions"):
        if etype == "DELETED":
            spec = obj.get("spec") or {}
            store.registry.remove_crd(obj["metadata"]["name"])
            store.data.pop((spec.get("group", ""), (spec.get("names") or {}).get("plural", "")), None)
        else:
            store.registry.set_crd(obj)
    elif skey == ("", "namespaces") and etype == "ADDED":
        ns = obj["metadata"]["name"]
        sa_res = store.res("", "v1", "serviceaccounts")
        if store.get_raw(sa_res.skey, ns, "default") is None:
            store.create(sa_res, ns, {"metadata": {"name": "default", "namespace": ns}})


def grace_period(store, res, obj, opts):
    if _skey(res) != ("", "pods"):
        return 0
    g = opts.get("gracePeriodSeconds")
    if g is None:
        g = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
    try:
        g = max(0, int(g))
    except (TypeError, ValueError):
        g = 30
    if not (obj.get("spec") or {}).get("nodeName") or \
            (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    return g


def on_delete_requested(store, res, obj):
    if _skey(res) == ("", "namespaces"):
        obj.setdefault("status", {})["phase"] = "Terminating"


def may_finish_delete(store, res, obj):
    sk = _skey(res)
    if sk == ("", "namespaces"):
        return not (obj.get("spec") or {}).get("finalizers")
    if sk == ("", "pods"):
        return not store.pod_alive(obj["metadata"].get("uid"))
    return True
