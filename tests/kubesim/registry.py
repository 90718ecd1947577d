"""Served resources: the built-in kinds and those that CRDs add at run time.

A Resource describes one group/version/plural as discovery shows it, how it is
stored (its storage key is (group, plural); events.k8s.io/v1 Events share the
core Events' storage through converters), which subresources and field
selectors it has, and for custom resources the schema and printer columns of
that version. The Registry is owned by the Store and read under its lock.
"""

import hashlib
import re

VERBS_ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

# Field selectors the real API server accepts per built-in resource, as
# (field label -> dotted path in the object).
_COMMON_FIELDS = {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace"}
FIELDS = {
    ("", "pods"): ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                   "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                   "status.podIP", "status.nominatedNodeName"],
    ("", "nodes"): ["spec.unschedulable"],
    ("", "namespaces"): ["status.phase"],
    ("", "secrets"): ["type"],
    ("", "events"): ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion",
                     "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                     "reportingComponent", "source", "type"],
}


class Resource:
    def __init__(self, group, version, plural, singular, kind, namespaced,
                 short_names=(), categories=(), subresources=None, status_sub=False,
                 verbs=None, crd_name=None, schema=None, columns=None,
                 selectable_fields=(), to_wire=None, from_wire=None, skey=None,
                 has_spec=True):
        self.group, self.version, self.plural = group, version, plural
        self.singular, self.kind, self.namespaced = singular, kind, namespaced
        self.list_kind = kind + "List"
        self.short_names = list(short_names)
        self.categories = list(categories)
        self.subresources = subresources or {}
        if status_sub:
            self.subresources.setdefault("status", (kind, ["get", "patch", "update"]))
        self.status_sub = "status" in self.subresources
        self.verbs = verbs or VERBS_ALL
        self.crd_name = crd_name
        self.schema = schema
        self.columns = columns
        self.selectable_fields = list(selectable_fields)
        self.to_wire = to_wire      # storage form -> this version's form
        self.from_wire = from_wire  # this version's form -> storage form
        self.skey = skey or (group, plural)
        self.has_spec = has_spec

    @property
    def api_version(self):
        return self.version if not self.group else self.group + "/" + self.version

    @property
    def gvk(self):
        return {"group": self.group, "version": self.version, "kind": self.kind}

    def field_labels(self):
        labels = dict(_COMMON_FIELDS)
        for f in FIELDS.get(self.skey, []):
            labels[f] = f
        for f in self.selectable_fields:
            labels[f.lstrip(".")] = f.lstrip(".")
        return labels

    def discovery_entries(self):
        h = hashlib.sha256(("%s/%s/%s" % (self.group, self.version, self.plural)).encode())
        out = [{
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": self.verbs,
            "storageVersionHash": h.hexdigest()[:12],
        }]
        if self.short_names:
            out[0]["shortNames"] = self.short_names
        if self.categories:
            out[0]["categories"] = self.categories
        for sub, (kind, verbs) in sorted(self.subresources.items()):
            e = {"name": "%s/%s" % (self.plural, sub), "singularName": "",
                 "namespaced": self.namespaced, "kind": kind, "verbs": verbs}
            if sub == "eviction":
                e.update(group="policy", version="v1")
            out.append(e)
        return out


# ---- events.k8s.io/v1 <-> core/v1 Event ---------------------------------------

_EV_MAP = [("involvedObject", "regarding"), ("message", "note"),
           ("reportingComponent", "reportingController"), ("source", "deprecatedSource"),
           ("firstTimestamp", "deprecatedFirstTimestamp"),
           ("lastTimestamp", "deprecatedLastTimestamp"), ("count", "deprecatedCount")]
_EV_SAME = ["metadata", "reason", "type", "eventTime", "series", "action", "related",
            "reportingInstance"]


def core_event_to_v1(ev):
    out = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for k in _EV_SAME:
        if k in ev:
            out[k] = ev[k]
    for a, b in _EV_MAP:
        if a in ev:
            out[b] = ev[a]
    return out


def v1_event_to_core(ev):
    out = {"apiVersion": "v1", "kind": "Event"}
    for k in _EV_SAME:
        if k in ev:
            out[k] = ev[k]
    for a, b in _EV_MAP:
        if b in ev:
            out[a] = ev[b]
    return out


def builtin_resources():
    R = Resource
    return [
        R("", "v1", "namespaces", "namespace", "Namespace", False, ["ns"],
          subresources={"status": ("Namespace", ["get", "patch", "update"]),
                        "finalize": ("Namespace", ["update"])}),
        R("", "v1", "pods", "pod", "Pod", True, ["po"], ["all"],
          subresources={"status": ("Pod", ["get", "patch", "update"]),
                        "log": ("Pod", ["get"]),
                        "binding": ("Binding", ["create"]),
                        "eviction": ("Eviction", ["create"])}),
        R("", "v1", "nodes", "node", "Node", False, ["no"], status_sub=True),
        R("", "v1", "events", "event", "Event", True, ["ev"], has_spec=False),
        R("", "v1", "services", "service", "Service", True, ["svc"], ["all"], status_sub=True),
        R("", "v1", "configmaps", "configmap", "ConfigMap", True, ["cm"], has_spec=False),
        R("", "v1", "secrets", "secret", "Secret", True, has_spec=False),
        R("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ["sa"],
          subresources={"token": ("TokenRequest", ["create"])}, has_spec=False),
        R("coordination.k8s.io", "v1", "leases", "lease", "Lease", True),
        R("events.k8s.io", "v1", "events", "event", "Event", True, ["ev"],
          to_wire=core_event_to_v1, from_wire=v1_event_to_core, skey=("", "events"),
          has_spec=False),
        # Stored and served without behaviour: enough to apply a Helm chart.
        R("apps", "v1", "deployments", "deployment", "Deployment", True, ["deploy"], ["all"],
          status_sub=True),
        R("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False,
          has_spec=False),
        R("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
          "ClusterRoleBinding", False, has_spec=False),
        R("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True, has_spec=False),
        R("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True,
          has_spec=False),
        R("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget",
          True, ["pdb"], status_sub=True),
        R("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", True,
          ["netpol"]),
        # Enforced by vap.py on the resources their policies match.
        R("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
          "validatingadmissionpolicy", "ValidatingAdmissionPolicy", False, ["vap"],
          ["api-extensions"], status_sub=True),
        R("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
          "validatingadmissionpolicybinding", "ValidatingAdmissionPolicyBinding", False, ["vapb"],
          ["api-extensions"]),
        R("apiextensions.k8s.io", "v1", "customresourcedefinitions",
          "customresourcedefinition", "CustomResourceDefinition", False, ["crd", "crds"],
          ["api-extensions"], status_sub=True),
    ]


def resources_from_crd(crd):
    """One Resource per served version of a CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    out = []
    for v in spec.get("versions") or []:
        if not v.get("served", True):
            continue
        subs = v.get("subresources") or {}
        cols = v.get("additionalPrinterColumns")
        if not cols:
            cols = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
        sub = {}
        if "status" in subs:
            sub["status"] = (names.get("kind", ""), ["get", "patch", "update"])
        if "scale" in subs:
            sub["scale"] = ("Scale", ["get", "patch", "update"])
        out.append(Resource(
            group, v.get("name", ""), names.get("plural", ""),
            names.get("singular") or names.get("kind", "").lower(), names.get("kind", ""),
            spec.get("scope", "Namespaced") == "Namespaced",
            names.get("shortNames") or [], names.get("categories") or [],
            subresources=sub, crd_name=crd["metadata"]["name"],
            schema=(v.get("schema") or {}).get("openAPIV3Schema"),
            columns=cols,
            selectable_fields=[f.get("jsonPath", "") for f in v.get("selectableFields") or []]))
        if names.get("listKind"):
            out[-1].list_kind = names["listKind"]
    return out


class Registry:
    def __init__(self):
        self.by_gvr = {}
        self.group_order = [""]
        for r in builtin_resources():
            self.add(r)

    def add(self, r):
        self.by_gvr[(r.group, r.version, r.plural)] = r
        if r.group not in self.group_order:
            self.group_order.append(r.group)

    def remove_crd(self, crd_name):
        for k, r in list(self.by_gvr.items()):
            if r.crd_name == crd_name:
                del self.by_gvr[k]
        present = {r.group for r in self.by_gvr.values()}
        self.group_order = [g for g in self.group_order if g in present or g == ""]

    def set_crd(self, crd):
        self.remove_crd(crd["metadata"]["name"])
        for r in resources_from_crd(crd):
            self.add(r)

    def get(self, group, version, plural):
        return self.by_gvr.get((group, version, plural))

    def versions(self, group):
        vs = []
        for (g, v, _p) in self.by_gvr:
            if g == group and v not in vs:
                vs.append(v)
        return sorted(vs, key=_version_priority)

    def resources_in(self, group, version):
        return [r for (g, v, _p), r in self.by_gvr.items() if g == group and v == version]

    def for_storage(self, skey):
        return [r for r in self.by_gvr.values() if r.skey == skey]

    def api_group_list(self):
        groups = []
        for g in self.group_order:
            if g == "":
                continue
            vs = self.versions(g)
            if not vs:
                continue
            groups.append({
                "name": g,
                "versions": [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in vs],
                "preferredVersion": {"groupVersion": "%s/%s" % (g, vs[0]), "version": vs[0]},
            })
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_group(self, group):
        for g in self.api_group_list()["groups"]:
            if g["name"] == group:
                return dict(g, kind="APIGroup", apiVersion="v1")
        return None

    def resource_list(self, group, version):
        rs = self.resources_in(group, version)
        if not rs:
            return None
        entries = []
        for r in sorted(rs, key=lambda r: r.plural):
            entries.extend(r.discovery_entries())
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": version if not group else "%s/%s" % (group, version),
                "resources": entries}


def _version_priority(v):
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0, v)
    major = int(m.group(1))
    if not m.group(2):
        return (0, -major, 0, v)
    return (1 if m.group(2) == "beta" else 2, -major, -int(m.group(3)), v)
