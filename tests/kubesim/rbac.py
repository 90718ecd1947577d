"""Authentication, then authorization, of every API request: one path, as in
the real API server, whatever the flags.

Who (authentication, always): a bearer token that is the --token is the
cluster administrator (group system:masters, allowed everything); a
ServiceAccount token, issued by the TokenRequest subresource (POST
.../serviceaccounts/NAME/token, what `kubectl create token` calls), is
"system:serviceaccount:NS:NAME" in the groups system:serviceaccounts,
system:serviceaccounts:NS and system:authenticated; a token stops working
when its ServiceAccount is deleted or recreated. Any other bearer token, or
another scheme, is 401, as a presented credential that fails is never
anonymous. A request without credentials is "system:anonymous" (group
system:unauthenticated) when anonymous requests are enabled, which they are
only on a server without --token (like --anonymous-auth with the
AlwaysAllow authorizer of a development server); with --token it is 401.

What (authorization, --authorization): AlwaysAllow allows every
authenticated request. RBAC: a request is allowed when a rule of a
ClusterRole bound by a ClusterRoleBinding, or of a Role or ClusterRole bound
by a RoleBinding in the request's namespace, to the user, one of its groups
or its ServiceAccount, matches its verb, API group, resource (or
"resource/subresource") and, for requests naming an object other than
create, resourceNames; "*" matches any verb, group or resource. Otherwise 403
with the real server's wording, e.g.

  pods "p" is forbidden: User "system:serviceaccount:ns:sa" cannot get
  resource "pods" in API group "" in the namespace "ns"

Discovery, /version and /openapi are open to authenticated users (the
system:discovery and system:public-info-viewer roles). /kubesim/* is the
simulator's own control plane and needs no token.
"""

import secrets
import time

from util import ApiError, now_ts

ADMIN = ("kubernetes-admin", ("system:masters", "system:authenticated"))
ANONYMOUS = ("system:anonymous", ("system:unauthenticated",))


def unauthorized():
    return ApiError(401, "Unauthorized", "Unauthorized")


class Authz:
    def __init__(self, store, admin_token, mode="AlwaysAllow"):
        if mode not in ("AlwaysAllow", "RBAC"):
            raise ValueError("unknown authorization mode %r" % mode)
        self.store = store
        self.admin_token = admin_token
        self.mode = mode
        self.anonymous = not admin_token
        self.tokens = {}  # token -> (namespace, name, uid)

    # ---- who -------------------------------------------------------------------

    def authenticate(self, header):
        """(user, groups) for an Authorization header (or none), or raises 401."""
        if not header:
            if self.anonymous:
                return ANONYMOUS
            raise unauthorized()
        if not header.startswith("Bearer "):
            raise unauthorized()
        token = header[len("Bearer "):].strip()
        if self.admin_token and secrets.compare_digest(token, self.admin_token):
            return ADMIN
        sa = self.tokens.get(token)
        if sa is None:
            raise unauthorized()
        ns, name, uid = sa
        obj = self.store.get_raw(("", "serviceaccounts"), ns, name)
        if obj is None or obj["metadata"].get("uid") != uid:
            raise unauthorized()
        return ("system:serviceaccount:%s:%s" % (ns, name),
                ("system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"))

    def token_request(self, ns, name, body):
        """The TokenRequest answer for ServiceAccount ns/name."""
        sa = self.store.get_raw(("", "serviceaccounts"), ns, name)
        if sa is None:
            raise ApiError(404, "NotFound", 'serviceaccounts "%s" not found' % name,
                           {"name": name, "kind": "serviceaccounts"})
        token = "kubesim-sa." + secrets.token_urlsafe(32)
        self.tokens[token] = (ns, name, sa["metadata"].get("uid"))
        spec = dict((body or {}).get("spec") or {})
        secs = int(spec.get("expirationSeconds") or 3600)
        spec["expirationSeconds"] = secs
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns, "creationTimestamp": now_ts()},
                "spec": spec,
                "status": {"token": token, "expirationTimestamp": now_ts(time.time() + secs)}}

    # ---- what ------------------------------------------------------------------

    def _subjects_match(self, subjects, user, groups, ns_of_binding):
        for s in subjects or []:
            kind = s.get("kind")
            if kind == "User" and s.get("name") == user:
                return True
            if kind == "Group" and s.get("name") in groups:
                return True
            if kind == "ServiceAccount":
                sns = s.get("namespace") or ns_of_binding
                if user == "system:serviceaccount:%s:%s" % (sns, s.get("name")):
                    return True
        return False

    @staticmethod
    def _rule_allows(rule, verb, group, resource, name):
        def has(lst, v):
            return "*" in (lst or []) or v in (lst or [])
        if not has(rule.get("verbs"), verb) or not has(rule.get("apiGroups"), group):
            return False
        if not has(rule.get("resources"), resource):
            base, _, sub = resource.partition("/")
            if not (sub and "*/" + sub in (rule.get("resources") or [])):
                return False
        names = rule.get("resourceNames") or []
        return not names or (name is not None and verb != "create" and name in names)

    def _role_rules(self, ref, ns):
        kind, rname = ref.get("kind"), ref.get("name")
        if kind == "ClusterRole":
            role = self.store.get_raw(("rbac.authorization.k8s.io", "clusterroles"), "", rname)
        elif kind == "Role":
            role = self.store.get_raw(("rbac.authorization.k8s.io", "roles"), ns, rname)
        else:
            role = None
        return (role or {}).get("rules") or []

    def allowed(self, user, groups, verb, group, resource, ns, name):
        if "system:masters" in groups:
            return True
        store = self.store
        with store.lock:
            bindings = [(b, "") for b in store.data.get(
                ("rbac.authorization.k8s.io", "clusterrolebindings"), {}).values()]
            if ns:
                bindings += [(b, ns) for (bns, _), b in store.data.get(
                    ("rbac.authorization.k8s.io", "rolebindings"), {}).items() if bns == ns]
            for b, bns in bindings:
                if not self._subjects_match(b.get("subjects"), user, groups, bns):
                    continue
                for rule in self._role_rules(b.get("roleRef") or {}, bns):
                    if self._rule_allows(rule, verb, group, resource, name):
                        return True
        return False

    def authorize(self, who, verb, res, ns, name, sub):
        """Returns when `who` may do it; raises 403 otherwise."""
        if self.mode == "AlwaysAllow":
            return
        user, groups = who
        resource = res.plural + ("/" + sub if sub else "")
        if self.allowed(user, groups, verb, res.group, resource, ns, name):
            return
        label = res.plural + ("." + res.group if res.group else "")
        subject = '%s "%s"' % (label, name) if name else label
        where = 'in the namespace "%s"' % ns if ns else "at the cluster scope"
        details = {"kind": res.plural}
        if res.group:
            details["group"] = res.group
        if name:
            details["name"] = name
        raise ApiError(403, "Forbidden",
                       '%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" %s'
                       % (subject, user, verb, resource, res.group, where), details)
