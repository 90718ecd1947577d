"""emptyDir volumes for pods whose containers are local processes.

Every emptyDir volume of a pod is a directory <pod dir>/volumes/<name>/, made
when the pod is admitted and removed with the pod directory, shared by all of
the pod's containers as in Kubernetes. Processes cannot see a mount namespace
here, so a container's mount paths are mapped by rewriting, not by chroot:
in its env values, command, args and workingDir every word that is a
mountPath, or starts with mountPath + "/" (also after a "NAME=" prefix, as in
--flag=/outputs/x), gets the volume's directory instead (longest mountPath
first; subPath is honoured). The mapping itself is in the container's
environment as KUBESIM_VOLUME_MOUNTS ("/inputs=/state/.../inputs:/outputs=...").
Programs that build paths themselves must take them from the environment
(Terrane's container steps do: TERRANE_INPUTS_DIR, TERRANE_OUTPUT_DIR, ...).

projected volumes are directories too, filled when the first container that
mounts one starts (the kubelet's project callback): a serviceAccountToken
source gets a token of the pod's ServiceAccount from the API server's
TokenRequest, a configMap source its keys (kube-root-ca.crt, which every
namespace has in Kubernetes, is kubesim's CA when it serves TLS), a
downwardAPI source metadata.name / metadata.namespace. Other volume kinds are
not simulated.

A container with securityContext.readOnlyRootFilesystem runs confined, as a
container runtime would run it: in a private mount namespace (bubblewrap,
`bwrap`) where the whole host is mounted read-only and only the directories
of the volumes the container mounts are writable (read-only ones too with
readOnly: true), so a write anywhere else fails with EROFS. The other
volumes of the pod stay read-only to it. kubesim's own files for the
container (its termination-message file) and the --writable directories of
kubesim (a hostPath stand-in, for sanitizer logs) are writable as well.
"""

import os
import re


class VolumeError(Exception):
    pass


def make_pod_volumes(spec, pod_dir):
    """name -> host directory for the pod's emptyDir volumes (created)."""
    out = {}
    for v in spec.get("volumes") or []:
        name = v.get("name")
        if not name or ("emptyDir" not in v and "projected" not in v):
            continue
        d = os.path.join(pod_dir, "volumes", name)
        os.makedirs(d, exist_ok=True)
        out[name] = d
    return out


def projected_sources(spec):
    """name -> [sources] of the pod's projected volumes."""
    return {v["name"]: (v["projected"].get("sources") or [])
            for v in spec.get("volumes") or [] if v.get("name") and isinstance(v.get("projected"), dict)}


def write_projected(d, files):
    """files {relative path: bytes} into directory d (paths checked)."""
    for rel, data in files.items():
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise VolumeError("invalid projected path %r" % rel)
        path = os.path.join(d, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def container_mounts(cspec, volumes):
    """[(mountPath, host path, readOnly)] for a container, longest mountPath first."""
    mounts = []
    for m in cspec.get("volumeMounts") or []:
        name, path = m.get("name"), m.get("mountPath", "")
        if name not in volumes:
            continue  # a volume kind kubesim does not simulate
        host = volumes[name]
        sub = m.get("subPath")
        if sub:
            if sub.startswith("/") or ".." in sub.split("/"):
                raise VolumeError("invalid subPath %r" % sub)
            host = os.path.join(host, sub)
            os.makedirs(host, exist_ok=True)
        mounts.append((path.rstrip("/") or "/", host, bool(m.get("readOnly"))))
    mounts.sort(key=lambda m: -len(m[0]))
    return mounts


def rewrite(value, mounts):
    """value with a leading mount path (or one after NAME=) mapped to its host path."""
    if not mounts or not isinstance(value, str):
        return value
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_.\-]*=|--[A-Za-z0-9_.\-]+=)?(/.*)$", value)
    if not m:
        return value
    prefix, path = m.group(1) or "", m.group(2)
    for mount, host, _ in mounts:
        if path == mount or path.startswith(mount + "/"):
            return prefix + host + path[len(mount):]
    return value


def mounts_env(mounts):
    return ":".join("%s=%s" % (p, h) for p, h, _ in sorted(mounts))


def read_only_root(cspec):
    return (cspec.get("securityContext") or {}).get("readOnlyRootFilesystem") is True


def confine(bwrap, argv, mounts, writable=()):
    """argv run with the host read-only but for the container's volumes and `writable`."""
    if not bwrap:
        raise VolumeError("readOnlyRootFilesystem needs bubblewrap (bwrap) on the node "
                          "(scripts/deps.sh installs it)")
    out = [bwrap, "--die-with-parent", "--cap-drop", "ALL", "--ro-bind", "/", "/",
           "--dev", "/dev", "--proc", "/proc"]
    for path in writable:
        out += ["--bind", path, path]
    # Shorter mount paths first, so a volume mounted inside another one stays on top.
    for _, host, ro in sorted(mounts, key=lambda m: len(m[0])):
        out += ["--ro-bind" if ro else "--bind", host, host]
    return out + ["--"] + list(argv)
