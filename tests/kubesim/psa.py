"""Pod Security Admission, enforce mode, as the real admission plugin does it.

A namespace labelled pod-security.kubernetes.io/enforce=baseline|restricted
refuses pods that break that Pod Security Standard with 403 Forbidden and the
plugin's message:

  pods "p" is forbidden: violates PodSecurity "restricted:latest": <check> (<detail>), ...

The checks are the ones of the standards that a pod built by a controller
can break (host namespaces, privileged, capabilities, hostPath and other
volume types, host ports, privilege escalation, non-root, seccomp), in the
plugin's order, with its wording: "container" or "containers" with the
names quoted and comma-separated, "pod or container" where the pod-level
field would do. The level's version (…/enforce-version) only changes the
label in the message. Called by admission.validate for pod creation.
"""

from util import ApiError

LABEL = "pod-security.kubernetes.io/enforce"
VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
LEVELS = ("privileged", "baseline", "restricted")
# Volume types the restricted profile allows.
RESTRICTED_VOLUMES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret")
# Capabilities baseline allows to be added.
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                 "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def _quoted(names):
    return ", ".join('"%s"' % n for n in names)


def _containers(names):
    return ("container " if len(names) == 1 else "containers ") + _quoted(names)


def _all_containers(spec):
    out = []
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        out += [c for c in spec.get(kind) or [] if isinstance(c, dict)]
    return out


def _sc(obj):
    sc = obj.get("securityContext")
    return sc if isinstance(sc, dict) else {}


def _baseline(spec, cs):
    found = []
    host = ["%s=true" % k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    if host:
        found.append("host namespaces (%s)" % ", ".join(host))
    priv = [c.get("name") for c in cs if _sc(c).get("privileged") is True]
    if priv:
        found.append("privileged (%s must not set securityContext.privileged=true)" % _containers(priv))
    bad_caps = {}
    for c in cs:
        for cap in (_sc(c).get("capabilities") or {}).get("add") or []:
            if cap not in BASELINE_CAPS:
                bad_caps.setdefault(cap, []).append(c.get("name"))
    if bad_caps:
        added = sorted({cap for cap in bad_caps})
        names = []
        for c in cs:
            if c.get("name") not in names and any(c.get("name") in v for v in bad_caps.values()):
                names.append(c.get("name"))
        found.append("non-default capabilities (%s must not include %s in securityContext.capabilities.add)"
                     % (_containers(names), _quoted(added)))
    vols = [v for v in spec.get("volumes") or [] if isinstance(v, dict)]
    hostpath = [v.get("name") for v in vols if "hostPath" in v]
    if hostpath:
        found.append("hostPath volumes (%s %s)" % ("volume" if len(hostpath) == 1 else "volumes",
                                                 _quoted(hostpath)))
    ports = []
    pnames = []
    for c in cs:
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("hostPort"):
                ports.append(str(p["hostPort"]))
                if c.get("name") not in pnames:
                    pnames.append(c.get("name"))
    if ports:
        found.append("hostPort (%s %s %s %s)" % (_containers(pnames), "uses" if len(pnames) == 1 else "use",
                                                 "hostPort" if len(ports) == 1 else "hostPorts",
                                                 ", ".join(ports)))
    psc = _sc(spec)
    if (psc.get("seccompProfile") or {}).get("type") == "Unconfined" or any(
            (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined" for c in cs):
        found.append('seccompProfile (pod or containers must not set securityContext.seccompProfile.type to "Unconfined")')
    return found


def _restricted(spec, cs):
    found = []
    vols = [v for v in spec.get("volumes") or [] if isinstance(v, dict)]
    bad = []
    types = []
    for v in vols:
        kind = next((k for k in v if k != "name"), None)
        if kind is not None and kind not in RESTRICTED_VOLUMES:
            bad.append(v.get("name"))
            if kind not in types:
                types.append(kind)
    if bad:
        found.append("restricted volume types (%s %s %s restricted volume %s %s)"
                     % ("volume" if len(bad) == 1 else "volumes", _quoted(bad),
                        "uses" if len(bad) == 1 else "use",
                        "type" if len(types) == 1 else "types", _quoted(types)))
    esc = [c.get("name") for c in cs if _sc(c).get("allowPrivilegeEscalation") is not False]
    if esc:
        found.append("allowPrivilegeEscalation != false (%s must set "
                     "securityContext.allowPrivilegeEscalation=false)" % _containers(esc))
    nodrop = [c.get("name") for c in cs
              if "ALL" not in ((_sc(c).get("capabilities") or {}).get("drop") or [])]
    adds = {}
    for c in cs:
        for cap in (_sc(c).get("capabilities") or {}).get("add") or []:
            if cap != "NET_BIND_SERVICE":
                adds.setdefault(c.get("name"), []).append(cap)
    if nodrop or adds:
        parts = []
        if nodrop:
            parts.append('%s must set securityContext.capabilities.drop=["ALL"]' % _containers(nodrop))
        if adds:
            names = list(adds)
            caps = sorted({cap for v in adds.values() for cap in v})
            parts.append("%s must not include %s in securityContext.capabilities.add"
                         % (_containers(names), _quoted(caps)))
        found.append("unrestricted capabilities (%s)" % "; ".join(parts))
    psc = _sc(spec)
    pod_nonroot = psc.get("runAsNonRoot")
    explicit_false = [c.get("name") for c in cs if _sc(c).get("runAsNonRoot") is False]
    unset = [c.get("name") for c in cs if _sc(c).get("runAsNonRoot") is None]
    if pod_nonroot is False or explicit_false or (pod_nonroot is not True and unset):
        parts = []
        if pod_nonroot is False:
            parts.append("pod must not set securityContext.runAsNonRoot=false")
        if explicit_false:
            parts.append("%s must not set securityContext.runAsNonRoot=false" % _containers(explicit_false))
        if pod_nonroot is None and unset:
            parts.append("pod or %s must set securityContext.runAsNonRoot=true" % _containers(unset))
        found.append("runAsNonRoot != true (%s)" % "; ".join(parts))
    root = [c.get("name") for c in cs if _sc(c).get("runAsUser") == 0]
    if psc.get("runAsUser") == 0 or root:
        parts = []
        if psc.get("runAsUser") == 0:
            parts.append("pod must not set runAsUser=0")
        if root:
            parts.append("%s must not set runAsUser=0" % _containers(root))
        found.append("runAsUser=0 (%s)" % "; ".join(parts))
    ok_types = ("RuntimeDefault", "Localhost")
    pod_type = (psc.get("seccompProfile") or {}).get("type")
    bad_sc = [c.get("name") for c in cs if (_sc(c).get("seccompProfile") or {}).get("type") not in ok_types
              and ((_sc(c).get("seccompProfile") or {}).get("type") is not None or pod_type not in ok_types)]
    if bad_sc:
        who = ("pod or %s" % _containers(bad_sc)) if pod_type not in ok_types else _containers(bad_sc)
        found.append('seccompProfile (%s must set securityContext.seccompProfile.type to '
                     '"RuntimeDefault" or "Localhost")' % who)
    return found


def violations(level, pod):
    spec = pod.get("spec") or {}
    cs = _all_containers(spec)
    found = []
    if level in ("baseline", "restricted"):
        found += _baseline(spec, cs)
    if level == "restricted":
        found += _restricted(spec, cs)
    return found


def enforce(store, pod):
    """Raises 403 when the pod's namespace enforces a level the pod breaks."""
    meta = pod.get("metadata") or {}
    ns = store.get_raw(("", "namespaces"), "", meta.get("namespace", ""))
    labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(LABEL)
    if level not in ("baseline", "restricted"):
        return
    found = violations(level, pod)
    if found:
        name = meta.get("name") or meta.get("generateName", "")
        raise ApiError(403, "Forbidden", 'pods "%s" is forbidden: violates PodSecurity "%s:%s": %s'
                       % (name, level, labels.get(VERSION_LABEL, "latest"), ", ".join(found)),
                       {"name": name, "kind": "pods"})
