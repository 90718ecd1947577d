"""Pod spec validation beyond the basics in admission.py, worded as the real
API server's (pkg/apis/core/validation) for every field Terrane's pods use:

  - container names: RFC 1123 labels;
  - env var names ([-._a-zA-Z][-._a-zA-Z0-9]*);
  - volumeMounts naming a volume of the pod, volumes with unique names;
  - requests <= limits; extended resources (a name with a domain, such as
    nvidia.com/gpu) need a limit, an integer, and a request equal to it;
  - toleration operators (Equal, Exists; Exists takes no value) and effects;
  - securityContext field types, which the real server's decoder refuses
    with 400 before validation ("cannot unmarshal ...").

validate(spec) returns (field, reason, message) causes for a 422;
check_types(pod) raises the 400.
"""

import re

import quantity
from util import ApiError

ENV_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
ENV_MSG = ("a valid environment variable name must consist of alphabetic characters, digits, "
           "'_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or "
           "'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is "
           "'[-._a-zA-Z][-._a-zA-Z0-9]*')")
LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
STANDARD = ("cpu", "memory", "ephemeral-storage", "storage")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# securityContext fields and the Go types the decoder wants.
SC_TYPES = {
    "pod": {"runAsUser": int, "runAsGroup": int, "fsGroup": int, "runAsNonRoot": bool,
            "supplementalGroups": list, "seccompProfile": dict},
    "container": {"runAsUser": int, "runAsGroup": int, "runAsNonRoot": bool, "privileged": bool,
                  "allowPrivilegeEscalation": bool, "readOnlyRootFilesystem": bool,
                  "capabilities": dict, "seccompProfile": dict},
}
GO_TYPE = {int: "int64", bool: "bool", list: "[]int64", dict: "struct"}
GO_STRUCT = {"pod": "PodSecurityContext", "container": "SecurityContext"}


def _json_type(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _type_ok(v, t):
    if v is None:
        return True
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, t)


def check_types(pod):
    spec = pod.get("spec") or {}
    checks = [("pod", "spec.securityContext", spec.get("securityContext"))]
    for kind in ("initContainers", "containers"):
        for c in spec.get(kind) or []:
            if isinstance(c, dict):
                checks.append(("container", "spec.%s.securityContext" % kind, c.get("securityContext")))
    for level, path, sc in checks:
        if not isinstance(sc, dict):
            continue
        for k, t in SC_TYPES[level].items():
            if k in sc and not _type_ok(sc[k], t):
                raise ApiError(400, "BadRequest",
                               'Pod in version "v1" cannot be handled as a Pod: json: cannot '
                               "unmarshal %s into Go struct field %s.%s.%s of type %s"
                               % (_json_type(sc[k]), GO_STRUCT[level], path, k, GO_TYPE[t]))


def _extended(name):
    return "/" in name and not name.startswith("kubernetes.io/") and name not in STANDARD


def validate(spec):
    causes = []
    vols = set()
    for i, v in enumerate(spec.get("volumes") or []):
        if not isinstance(v, dict):
            continue
        n = v.get("name")
        if n in vols:
            causes.append(("spec.volumes[%d].name" % i, "FieldValueDuplicate", 'Duplicate value: "%s"' % n))
        vols.add(n)
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            if not isinstance(c, dict):
                continue
            p = "spec.%s[%d]" % (kind, i)
            n = c.get("name")
            if isinstance(n, str) and n and (len(n) > 63 or not LABEL_RE.match(n)):
                causes.append((p + ".name", "FieldValueInvalid", 'Invalid value: "%s": %s'
                               % (n, "must be no more than 63 characters" if len(n) > 63 else LABEL_MSG)))
            for j, e in enumerate(c.get("env") or []):
                en = (e or {}).get("name", "")
                if not en:
                    causes.append(("%s.env[%d].name" % (p, j), "FieldValueRequired", "Required value"))
                elif not ENV_RE.match(en):
                    causes.append(("%s.env[%d].name" % (p, j), "FieldValueInvalid",
                                   'Invalid value: "%s": %s' % (en, ENV_MSG)))
            for j, m in enumerate(c.get("volumeMounts") or []):
                mn = (m or {}).get("name", "")
                if mn not in vols:
                    causes.append(("%s.volumeMounts[%d].name" % (p, j), "FieldValueNotFound",
                                   'Not found: "%s"' % mn))
                if not (m or {}).get("mountPath"):
                    causes.append(("%s.volumeMounts[%d].mountPath" % (p, j), "FieldValueRequired",
                                   "Required value"))
            res = c.get("resources") or {}
            req, lim = res.get("requests") or {}, res.get("limits") or {}
            for r, v in req.items():
                try:
                    qv = quantity.parse(v)
                except ValueError:
                    continue  # admission.py reports unparsable quantities
                rp = "%s.resources.requests[%s]" % (p, r)
                if _extended(r):
                    if r not in lim:
                        causes.append(("%s.resources.limits" % p, "FieldValueRequired",
                                       "Required value: Limit must be set for non overcommitable resources"))
                    elif qv != int(qv):
                        causes.append((rp, "FieldValueInvalid", 'Invalid value: "%s": must be an integer' % v))
                    else:
                        try:
                            if quantity.parse(lim[r]) != qv:
                                causes.append((rp, "FieldValueInvalid", 'Invalid value: "%s": must be equal '
                                               "to %s limit of %s" % (v, r, lim[r])))
                        except ValueError:
                            pass
                elif r in lim:
                    try:
                        if qv > quantity.parse(lim[r]):
                            causes.append((rp, "FieldValueInvalid", 'Invalid value: "%s": must be less '
                                           "than or equal to %s limit of %s" % (v, r, lim[r])))
                    except ValueError:
                        pass
    for i, t in enumerate(spec.get("tolerations") or []):
        if not isinstance(t, dict):
            continue
        p = "spec.tolerations[%d]" % i
        op = t.get("operator") or "Equal"
        if op not in ("Equal", "Exists"):
            causes.append((p + ".operator", "FieldValueNotSupported",
                           'Unsupported value: "%s": supported values: "Equal", "Exists"' % op))
        elif op == "Exists" and t.get("value"):
            causes.append((p + ".operator", "FieldValueInvalid", 'Invalid value: "%s": value must be '
                           "empty when `operator` is 'Exists'" % t.get("value")))
        eff = t.get("effect")
        if eff and eff not in EFFECTS:
            causes.append((p + ".effect", "FieldValueNotSupported",
                           'Unsupported value: "%s": supported values: "NoSchedule", '
                           '"PreferNoSchedule", "NoExecute"' % eff))
        if not t.get("key") and op != "Exists":
            causes.append((p + ".operator", "FieldValueInvalid", 'Invalid value: "%s": operator must be '
                           "Exists when `key` is empty, which means \"match all values and all keys\"" % op))
    return causes
