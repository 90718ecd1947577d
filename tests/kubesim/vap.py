"""ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1), as the API server runs it.

A policy's validations are CEL expressions over `object` and `oldObject`
(null on create), evaluated on every create and update of a resource its
matchConstraints.resourceRules name, for each ValidatingAdmissionPolicyBinding
(policyName) whose validationActions include Deny. `object` is dynamically
typed, as in the API server: rules see every field of the stored object,
including those a CRD schema declares with x-kubernetes-preserve-unknown-fields.
A false expression denies the request with the API server's message:

    <kind> "<name>" is invalid: : ValidatingAdmissionPolicy '<p>' with binding
    '<b>' denied request: <message>

An expression that errors is a denial too (failurePolicy Fail, the default);
with failurePolicy Ignore it is skipped. matchConditions, paramKind,
namespaceSelector/objectSelector, variables, auditAnnotations and the Warn
and Audit actions are not implemented (a policy using them matches nothing).
Called by the Store under its lock.
"""

import cel
from util import ApiError

GROUP = "admissionregistration.k8s.io"


def _matches(policy, res, operation):
    spec = policy.get("spec") or {}
    if spec.get("paramKind") or spec.get("matchConditions") or spec.get("variables"):
        return False
    for rule in (spec.get("matchConstraints") or {}).get("resourceRules") or []:
        ok = lambda key, v: "*" in (rule.get(key) or []) or v in (rule.get(key) or [])
        if ok("apiGroups", res.group) and ok("apiVersions", res.version) and \
                ok("resources", res.plural) and ok("operations", operation):
            return True
    return False


def admit(store, res, obj, old, operation):
    """Raises 422 when a bound policy denies the request."""
    if res.group == GROUP:
        return
    policies = list(store.data.get((GROUP, "validatingadmissionpolicies"), {}).values())
    if not policies:
        return
    bindings = list(store.data.get((GROUP, "validatingadmissionpolicybindings"), {}).values())
    env = {"object": obj, "oldObject": old}
    for p in policies:
        if not _matches(p, res, operation):
            continue
        pname = p["metadata"]["name"]
        fail_open = (p.get("spec") or {}).get("failurePolicy") == "Ignore"
        for b in bindings:
            bs = b.get("spec") or {}
            if bs.get("policyName") != pname or "Deny" not in (bs.get("validationActions") or []):
                continue
            for v in (p.get("spec") or {}).get("validations") or []:
                ast = cel.compile_rule(v.get("expression") or "")
                if ast is None:
                    continue   # outside kubesim's CEL: not enforced
                try:
                    ok = cel.evaluate_env(ast, env)
                except cel.CelError as e:
                    if fail_open:
                        continue
                    ok, why = False, "expression '%s' resulted in error: %s" % (v.get("expression"), e)
                else:
                    why = v.get("message") or "failed expression: %s" % v.get("expression")
                if ok is not True:
                    kind_label = res.kind + ("." + res.group if res.group else "")
                    name = (obj.get("metadata") or {}).get("name", "")
                    msg = "ValidatingAdmissionPolicy '%s' with binding '%s' denied request: %s" % (
                        pname, b["metadata"]["name"], why)
                    raise ApiError(v.get("reason") and {"Forbidden": 403, "Invalid": 422}.get(v["reason"], 422)
                                   or 422, v.get("reason") or "Invalid",
                                   '%s "%s" is invalid: : %s' % (kind_label, name, msg),
                                   {"name": name, "group": res.group, "kind": res.kind,
                                    "causes": [{"message": msg, "field": ""}]})
