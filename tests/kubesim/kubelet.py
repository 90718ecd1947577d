"""The kubelet: runs bound pods' containers as local processes.

For every pod bound to an existing Node it creates a directory under
<state-dir>/pods/, runs init containers one after another and then the
containers (command + args, or `sleep infinity` when the image's entrypoint
would be needed), each in its own session with stdout+stderr in
<container>.log, and reports what the real kubelet reports: phase,
containerStatuses (waiting/running/terminated, exitCode, reason Completed,
Error or OOMKilled, startedAt, finishedAt, message), restartCount with
back-off for restartPolicy Always/OnFailure, and the Initialized,
ContainersReady, Ready and PodScheduled conditions.

The termination message is read from the file named by TERRANE_TERMINATION_LOG
(set for every container: processes cannot write /dev/termination-log here),
capped at 4096 bytes; FallbackToLogsOnError uses the log's last 80 lines /
2048 bytes. Memory limits are enforced by sampling the RSS of each container's
session from /proc and killing it (OOMKilled, 137). Pod deletion sends SIGTERM
and SIGKILL after the grace period. Faults: forced OOM, preemption/eviction,
slow nodes. One thread starts and polls every process, so PR_SET_PDEATHSIG
(through setpriv) ties the children to kubesim's life.

emptyDir volumes are shared directories with mount paths rewritten in each
container's env, command, args and workingDir (volumes.py); a container with
readOnlyRootFilesystem can write only to its volumes (bubblewrap); a container
without a command runs what the images file maps its image to (images.py),
and its status reports that image's imageID. Main containers wait with reason
PodInitializing until every init container has succeeded.
"""

import base64
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse

import images as imagesmod
import quantity
import volumes as volumesmod
from cluster import POOL_LABEL
from scheduler import set_condition
import util
from util import ApiError, bad_request, now_ts

COMPONENT = "kubelet"
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048
PAGE = os.sysconf("SC_PAGE_SIZE")
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(s, env):
    """$(VAR) references as Kubernetes expands them in env, command and args."""
    def rep(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _VAR.sub(rep, s)


class MountError(Exception):
    """A volume of the pod cannot be set up, in the kubelet's words."""

    def __init__(self, volume, why):
        super().__init__('MountVolume.SetUp failed for volume "%s" : %s' % (volume, why))


class ConfigError(Exception):
    pass


class Ctr:
    """One container of a pod run."""

    def __init__(self, spec, init, pod_dir):
        self.spec = spec
        self.name = spec.get("name", "")
        self.init = init
        self.log = os.path.join(pod_dir, self.name + ".log")
        self.term = os.path.join(pod_dir, self.name + ".termination-log")
        self.proc = None
        self.started_at = None
        self.started_mono = None
        self.finished_at = None
        self.exit_code = None
        self.reason = None
        self.message = None
        self.restarts = 0
        self.last_state = None
        self.next_start = 0.0
        self.waiting = ("ContainerCreating", None)
        self.kill_reason = None   # OOMKilled or None when we kill it
        self.term_sent = None
        self.mounts = []
        limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
        self.mem_limit = quantity.parse_or(limit, 0) if limit else 0

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class PodRun:
    def __init__(self, pod, pod_dir, node, start_at, ip):
        m = pod["metadata"]
        self.uid, self.ns, self.name = m["uid"], m.get("namespace", ""), m["name"]
        self.node = node
        self.dir = pod_dir
        self.start_at = start_at
        self.ip = ip
        self.start_time = now_ts()
        spec = pod.get("spec") or {}
        self.restart_policy = spec.get("restartPolicy", "Always")
        self.init = [Ctr(c, True, pod_dir) for c in spec.get("initContainers") or []]
        self.main = [Ctr(c, False, pod_dir) for c in spec.get("containers") or []]
        self.grace = int(spec.get("terminationGracePeriodSeconds", 30) or 0)
        self.volumes = volumesmod.make_pod_volumes(spec, pod_dir)
        self.disruption = None    # (condition reason, message, status reason)
        self.delete_after_disruption = False
        self.killing_deadline = None
        self.finished = False
        self.last_status = None
        self.running_since = None
        self.events = []

    def all(self):
        return self.init + self.main

    def alive(self):
        return any(c.alive() for c in self.all())


class Kubelet(util.Worker):
    def __init__(self, store, faults, state_dir, pass_env=(), api_url=None, tick=0.1,
                 images=None, writable=()):
        util.Worker.__init__(self, "kubesim-kubelet")
        self.store = store
        self.faults = faults
        self.pods_dir = os.path.join(state_dir, "pods")
        os.makedirs(self.pods_dir, exist_ok=True)
        self.pass_env = list(pass_env)
        self.api_url = api_url
        self.tick = tick
        self.runs = {}
        self.lock = threading.RLock()
        self.requests = []   # actions asked by other threads, run on this one
        self.ip_counter = 0
        self.pods_res = store.res("", "v1", "pods")
        self.setpriv = shutil.which("setpriv")
        self.bwrap = shutil.which("bwrap")
        self.writable = [os.path.abspath(d) for d in writable]
        self.images = images or imagesmod.Images()
        # set by kubesim.py: (ns, serviceaccount) -> token, and its CA (PEM) when TLS
        self.token_issuer = None
        self.ca_pem = None
        store.pod_alive = self.pod_alive

    # ---- other threads' entry points ------------------------------------------

    def pod_alive(self, uid):
        with self.lock:
            r = self.runs.get(uid)
            return bool(r and r.alive())

    def _find(self, ns, name):
        with self.lock:
            for r in self.runs.values():
                if r.ns == ns and r.name == name:
                    return r
        return None

    def disrupt(self, ns, name, reason, message=None, delete=False):
        """Preemption or eviction of a running pod (admin endpoint, Eviction
        API, faults): DisruptionTarget condition, processes killed, phase
        Failed with reason Preempted or Evicted."""
        r = self._find(ns, name)
        if r is None or r.finished:
            return False
        status_reason = "Preempted" if reason == "PreemptionByScheduler" else "Evicted"
        if message is None:
            message = {"PreemptionByScheduler": "%s: preempting to accommodate a higher "
                                                "priority pod" % "default-scheduler",
                       "TerminationByKubelet": "The node was low on resource: memory.",
                       "EvictionByEvictionAPI": "Eviction API: evicting"}.get(reason, reason)
        with self.lock:
            r.disruption = (reason, message, status_reason)
            r.delete_after_disruption = delete
        return True

    def force_oom(self, ns, name):
        r = self._find(ns, name)
        if r is None or r.finished:
            return False
        with self.lock:
            for c in r.all():
                if c.alive():
                    c.kill_reason = "OOMKilled"
                    self._killpg(c, signal.SIGKILL)
                    return True
        return False

    def processes(self):
        out = []
        rss = self._rss_by_session()
        with self.lock:
            for r in self.runs.values():
                for c in r.all():
                    if c.alive():
                        out.append({"namespace": r.ns, "pod": r.name, "container": c.name,
                                    "node": r.node, "pid": c.proc.pid,
                                    "rssBytes": rss.get(c.proc.pid, 0),
                                    "memoryLimitBytes": int(c.mem_limit)})
        return out

    def log_source(self, pod, container, previous=False):
        """(log path, running predicate) for GET pods/<name>/log."""
        name = pod["metadata"]["name"]
        spec = pod.get("spec") or {}
        names = [c.get("name") for c in spec.get("containers") or []]
        init_names = [c.get("name") for c in spec.get("initContainers") or []]
        if not container:
            if len(names) != 1:
                raise bad_request("a container name must be specified for pod %s, choose one "
                                  "of: [%s]" % (name, " ".join(names)))
            container = names[0]
        if container not in names and container not in init_names:
            raise bad_request("container %s is not valid for pod %s" % (container, name))
        with self.lock:
            r = self.runs.get(pod["metadata"].get("uid"))
            c = next((x for x in r.all() if x.name == container), None) if r else None
        if c is None or (c.started_at is None and c.restarts == 0):
            why = c.waiting[0] if c is not None and c.waiting else "ContainerCreating"
            raise bad_request('container "%s" in pod "%s" is waiting to start: %s'
                              % (container, name, why))
        if previous:
            if c.restarts == 0:
                raise bad_request('previous terminated container "%s" in pod "%s" not found'
                                  % (container, name))
            return "%s.%d" % (c.log, c.restarts - 1), lambda: False
        return c.log, c.alive

    # ---- the loop ---------------------------------------------------------


    def run(self):
        last = 0
        prev = 0.0
        while not self.stop_event.is_set():
            last = self.store.wait_change(last, self.tick)
            if self.stop_event.is_set():
                break
            # at most ~20 passes a second, however busy the store is
            pause = prev + 0.05 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            prev = time.monotonic()
            try:
                self.sync()
            except Exception:
                import traceback
                traceback.print_exc()
        self.kill_all()

    def kill_all(self, grace=1.0):
        with self.lock:
            ctrs = [c for r in self.runs.values() for c in r.all() if c.alive()]
        for c in ctrs:
            self._killpg(c, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(c.alive() for c in ctrs):
            time.sleep(0.05)
        for c in ctrs:
            self._killpg(c, signal.SIGKILL)
            if c.proc is not None:
                try:
                    c.proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass

    def _killpg(self, c, sig):
        if c.proc is None:
            return
        try:
            os.killpg(c.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                c.proc.send_signal(sig)
            except (ProcessLookupError, OSError):
                pass

    def sync(self):
        store = self.store
        with store.lock:
            # what a kubelet acts on: bound pods, and unbound ones being
            # deleted (it confirms their deletion); never the pending rest
            pods = store.pods_bound()
            bucket = store.data.get(("", "pods"), {})
            pods += [bucket[(ns, name)] for skey, ns, name in sorted(store.terminating)
                     if skey == ("", "pods") and (ns, name) in bucket
                     and not (bucket[(ns, name)].get("spec") or {}).get("nodeName")]
            nodes = {n["metadata"]["name"]: n for n in store.objects(("", "nodes"))}
        seen = set()
        for p in pods:
            uid = p["metadata"]["uid"]
            node = (p.get("spec") or {}).get("nodeName")
            seen.add(uid)
            with self.lock:
                r = self.runs.get(uid)
            if r is not None and r.finished and r.last_status is not None and \
                    node in nodes and not p["metadata"].get("deletionTimestamp"):
                continue  # nothing left to do for a finished pod
            if r is None:
                if p["metadata"].get("deletionTimestamp"):
                    # bound to no live node, or never started: confirm deletion
                    if node and node not in nodes:
                        continue
                    store.finish_delete(self.pods_res, p["metadata"]["namespace"],
                                        p["metadata"]["name"], uid)
                    continue
                if not node or node not in nodes:
                    continue
                if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                r = self._admit(p, nodes[node])
            self._step(r, p, node in nodes)
        with self.lock:
            gone = [r for uid, r in self.runs.items() if uid not in seen]
        for r in gone:
            # deleted (force or finished graceful delete): make sure nothing runs
            for c in r.all():
                if c.alive():
                    self._killpg(c, signal.SIGKILL)
            with self.lock:
                if not r.alive():
                    self.runs.pop(r.uid, None)
        self._oom_check()

    def _admit(self, p, node):
        m = p["metadata"]
        pod_dir = os.path.join(self.pods_dir, "%s_%s_%s" % (m.get("namespace"), m["name"], m["uid"][:8]))
        os.makedirs(pod_dir, exist_ok=True)
        pool = (node["metadata"].get("labels") or {}).get(POOL_LABEL, "")
        delay = self.faults.slow_delay(pool) if pool else self.faults.slow_delay("*")
        self.ip_counter += 1
        ip = "10.244.%d.%d" % (self.ip_counter // 250, self.ip_counter % 250 + 1)
        r = PodRun(p, pod_dir, node["metadata"]["name"], time.monotonic() + delay, ip)
        r.host_ip = next((a.get("address") for a in (node.get("status") or {}).get("addresses") or []
                          if a.get("type") == "InternalIP"), "127.0.0.1")
        with self.lock:
            self.runs[r.uid] = r
        return r

    # ---- one pod ------------------------------------------------------------

    def _step(self, r, pod, node_alive):
        now = time.monotonic()
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        if not node_alive:
            for c in r.all():
                if c.alive():
                    c.kill_reason = c.kill_reason or "NodeLost"
                    self._killpg(c, signal.SIGKILL)
            self._reap(r)
            return
        # faults and disruptions aimed at running pods
        if r.running_since is not None and not r.finished and not deleting:
            running_for = now - r.running_since
            rule = self.faults.pod_fault("oom", pod, running_for)
            if rule is not None:
                for c in r.all():
                    if c.alive():
                        c.kill_reason = "OOMKilled"
                        self._killpg(c, signal.SIGKILL)
                        break
            rule = self.faults.pod_fault("preempt", pod, running_for)
            if rule is not None:
                self.disrupt(r.ns, r.name, rule.reason or "PreemptionByScheduler", rule.message,
                             rule.delete)
        if r.disruption and not r.finished:
            for c in r.all():
                if c.alive() and c.term_sent is None:
                    c.term_sent = now
                    self._killpg(c, signal.SIGTERM)
                    self._event(r, pod, "Normal", "Killing", "Stopping container %s" % c.name)
                elif c.alive() and now - c.term_sent > min(r.grace, 2):
                    self._killpg(c, signal.SIGKILL)
        if deleting:
            if r.killing_deadline is None:
                grace = pod["metadata"].get("deletionGracePeriodSeconds")
                r.killing_deadline = now + (r.grace if grace is None else int(grace))
                for c in r.all():
                    if c.alive():
                        c.term_sent = now
                        self._killpg(c, signal.SIGTERM)
                        self._event(r, pod, "Normal", "Killing", "Stopping container %s" % c.name)
            elif now >= r.killing_deadline:
                for c in r.all():
                    if c.alive():
                        self._killpg(c, signal.SIGKILL)
        self._reap(r)
        if not deleting and not r.disruption and not r.finished and now >= r.start_at:
            self._advance(r, pod, now)
        self._report(r, pod, deleting)
        if deleting and not r.alive():
            self.store.finish_delete(self.pods_res, r.ns, r.name, r.uid)

    def _reap(self, r):
        for c in r.all():
            if c.proc is not None and c.exit_code is None and c.proc.poll() is not None:
                rc = c.proc.returncode
                c.exit_code = 128 - rc if rc < 0 else rc
                c.finished_at = now_ts()
                if c.kill_reason == "OOMKilled":
                    c.exit_code, c.reason = 137, "OOMKilled"
                else:
                    c.reason = "Completed" if c.exit_code == 0 else "Error"
                c.message = self._termination_message(c)
                try:
                    c.log_fh.close()
                except (AttributeError, OSError):
                    pass

    def _termination_message(self, c):
        msg = ""
        try:
            with open(c.term, "rb") as f:
                msg = f.read(MAX_TERMINATION_MESSAGE).decode("utf-8", "replace")
        except OSError:
            pass
        if not msg and c.exit_code != 0 and \
                c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            try:
                with open(c.log, "rb") as f:
                    f.seek(0, 2)
                    size = f.tell()
                    f.seek(max(0, size - 64 * 1024))
                    data = f.read()
                lines = data.splitlines(keepends=True)[-FALLBACK_LINES:]
                msg = b"".join(lines)[-FALLBACK_BYTES:].decode("utf-8", "replace")
            except OSError:
                pass
        return msg

    def _advance(self, r, pod, now):
        """Start whatever should run next."""
        for c in r.init:
            if c.exit_code == 0 and not c.alive():
                continue
            if c.alive():
                return
            if c.exit_code is not None:  # failed init container
                if r.restart_policy == "Never":
                    return
                self._maybe_restart(r, pod, c, now)
                return
            self._start(r, pod, c)
            return
        for c in r.main:
            if c.proc is None and c.exit_code is None:
                self._start(r, pod, c)
            elif c.exit_code is not None and not c.alive():
                if r.restart_policy == "Always" or (r.restart_policy == "OnFailure" and c.exit_code != 0):
                    self._maybe_restart(r, pod, c, now)

    def _maybe_restart(self, r, pod, c, now):
        if c.next_start == 0.0:
            backoff = min(30.0, 1.0 * (2 ** c.restarts))
            c.next_start = now + backoff
            c.waiting = ("CrashLoopBackOff", "back-off %ds restarting failed container=%s pod=%s_%s(%s)"
                         % (int(backoff), c.name, r.name, r.ns, r.uid))
            self._event(r, pod, "Warning", "BackOff", "Back-off restarting failed container %s "
                        "in pod %s_%s(%s)" % (c.name, r.name, r.ns, r.uid))
            return
        if now < c.next_start:
            return
        c.last_state = {"terminated": self._terminated(c)}
        try:
            os.replace(c.log, "%s.%d" % (c.log, c.restarts))
        except OSError:
            pass
        c.restarts += 1
        c.next_start = 0.0
        c.proc, c.exit_code, c.reason, c.message = None, None, None, None
        c.kill_reason, c.term_sent, c.finished_at, c.started_at = None, None, None, None
        self._start(r, pod, c)

    def _project(self, r, pod):
        """Fills the pod's projected volumes, once, before any of its
        containers starts (a kubelet mounts every volume of a pod first).
        A source that cannot be had (a ConfigMap or ServiceAccount gone)
        raises MountError, and no container starts until it can."""
        if getattr(r, "projected", False):
            return
        for name, sources in volumesmod.projected_sources(pod.get("spec") or {}).items():
            files = {}
            for src in sources:
                if "serviceAccountToken" in src:
                    sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
                    if not self.token_issuer:
                        raise MountError(name, "no token issuer")
                    try:
                        token = self.token_issuer(r.ns, sa)
                    except Exception as e:  # the API's NotFound: no such ServiceAccount
                        raise MountError(name, "failed to fetch token: %s" % e)
                    files[src["serviceAccountToken"].get("path", "token")] = token.encode()
                elif "configMap" in src:
                    ref = src["configMap"]
                    with self.store.lock:
                        o = self.store.get_raw(("", "configmaps"), r.ns, ref.get("name", ""))
                    data = dict((o or {}).get("data") or {})
                    if o is None and ref.get("name") == "kube-root-ca.crt":
                        # every namespace has it in Kubernetes; a server
                        # without TLS has no certificate to put in it
                        data = {"ca.crt": self.ca_pem.decode() if self.ca_pem else ""}
                    if o is None and not data and not ref.get("optional"):
                        raise MountError(name, 'configmap "%s" not found' % ref.get("name"))
                    items = ref.get("items") or [{"key": k, "path": k} for k in data]
                    for it in items:
                        if it.get("key") in data:
                            files[it.get("path") or it["key"]] = data[it["key"]].encode()
                        elif not ref.get("optional"):
                            raise MountError(name, 'configmap references non-existent config key: %s'
                                             % it.get("key"))
                elif "downwardAPI" in src:
                    meta = pod.get("metadata") or {}
                    for it in src["downwardAPI"].get("items") or []:
                        fp = (it.get("fieldRef") or {}).get("fieldPath", "")
                        if fp in ("metadata.name", "metadata.namespace"):
                            files[it.get("path")] = str(meta.get(fp.split(".")[1], "")).encode()
            try:
                volumesmod.write_projected(r.volumes[name], files)
            except volumesmod.VolumeError as e:
                raise MountError(name, str(e))
        r.projected = True

    def _env(self, r, pod, c):
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
        for k in self.pass_env:
            if k in os.environ:
                env[k] = os.environ[k]
        env["HOSTNAME"] = r.name
        env["TERRANE_TERMINATION_LOG"] = c.term
        if self.api_url:
            env["KUBESIM_API_URL"] = self.api_url
            # where the API server is, as every kubelet says; only when it
            # serves TLS, as a real one always does (pods speak https to it)
            u = urllib.parse.urlsplit(self.api_url)
            if u.scheme == "https":
                env["KUBERNETES_SERVICE_HOST"] = u.hostname or ""
                env["KUBERNETES_SERVICE_PORT"] = str(u.port or 443)
        store = self.store
        for src in c.spec.get("envFrom") or []:
            prefix = src.get("prefix", "")
            for kind, skey in (("configMapRef", ("", "configmaps")), ("secretRef", ("", "secrets"))):
                ref = src.get(kind)
                if not ref:
                    continue
                with store.lock:
                    o = store.get_raw(skey, r.ns, ref.get("name", ""))
                if o is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError('%s "%s" not found' % (
                        "configmap" if kind == "configMapRef" else "secret", ref.get("name")))
                for k, v in (o.get("data") or {}).items():
                    env[prefix + k] = _decode(v) if kind == "secretRef" else v
        for e in c.spec.get("env") or []:
            name = e.get("name")
            if not name:
                continue
            if "valueFrom" in e:
                env[name] = self._value_from(r, pod, c, e["valueFrom"])
            else:
                env[name] = expand(str(e.get("value", "")), env)
        return env

    def _value_from(self, r, pod, c, vf):
        if "fieldRef" in vf:
            path = (vf["fieldRef"] or {}).get("fieldPath", "")
            m = pod["metadata"]
            simple = {"metadata.name": m.get("name"), "metadata.namespace": m.get("namespace"),
                      "metadata.uid": m.get("uid"), "spec.nodeName": r.node,
                      "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
                      "status.podIP": r.ip, "status.hostIP": r.host_ip,
                      "status.podIPs": r.ip, "status.hostIPs": r.host_ip}
            if path in simple:
                return str(simple[path] or "")
            mm = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
            if mm:
                return str((m.get(mm.group(1)) or {}).get(mm.group(2), ""))
            raise ConfigError("unsupported fieldRef %s" % path)
        if "resourceFieldRef" in vf:
            ref = vf["resourceFieldRef"]
            part, _, res_name = ref.get("resource", "").partition(".")
            cname = ref.get("containerName") or c.name
            spec_c = next((x for x in pod["spec"].get("containers") or [] if x.get("name") == cname), {})
            v = ((spec_c.get("resources") or {}).get(part) or {}).get(res_name)
            if v is None:
                return "0"
            div = quantity.parse_or(ref.get("divisor", "1"), 1.0) or 1.0
            n = quantity.parse_or(v) / div
            return str(int(-(-n // 1)))
        for kind, skey in (("configMapKeyRef", ("", "configmaps")), ("secretKeyRef", ("", "secrets"))):
            if kind in vf:
                ref = vf[kind]
                with self.store.lock:
                    o = self.store.get_raw(skey, r.ns, ref.get("name", ""))
                what = "configmap" if kind == "configMapKeyRef" else "secret"
                if o is None or ref.get("key") not in (o.get("data") or {}):
                    if ref.get("optional"):
                        return ""
                    if o is None:
                        raise ConfigError('%s "%s" not found' % (what, ref.get("name")))
                    raise ConfigError("couldn't find key %s in %s %s/%s"
                                      % (ref.get("key"), what.capitalize(), r.ns, ref.get("name")))
                v = o["data"][ref["key"]]
                return _decode(v) if kind == "secretKeyRef" else v
        raise ConfigError("unsupported valueFrom")

    def _start(self, r, pod, c):
        try:
            self._project(r, pod)
        except MountError as e:
            # the pod's volumes are not set up: its containers wait in
            # ContainerCreating, with a FailedMount Event per new cause
            if getattr(r, "mount_error", None) != str(e):
                r.mount_error = str(e)
                self._event(r, pod, "Warning", "FailedMount", str(e))
            c.waiting = ("ContainerCreating", None)
            return
        try:
            c.mounts = volumesmod.container_mounts(c.spec, r.volumes)
            argv, image_wd, image_env = self.images.argv(c.spec)
            env = dict(image_env)
            env.update(self._env(r, pod, c))
            if c.mounts:
                env = {k: volumesmod.rewrite(v, c.mounts) for k, v in env.items()}
                env["KUBESIM_VOLUME_MOUNTS"] = volumesmod.mounts_env(c.mounts)
        except (ConfigError, volumesmod.VolumeError) as e:
            if c.waiting != ("CreateContainerConfigError", str(e)):
                self._event(r, pod, "Warning", "Failed", "Error: %s" % e)
            c.waiting = ("CreateContainerConfigError", str(e))
            return
        argv = [volumesmod.rewrite(expand(str(a), env), c.mounts) for a in argv]
        cwd = r.dir
        wd = c.spec.get("workingDir") or image_wd
        if wd:
            wd = volumesmod.rewrite(wd, c.mounts)
            if os.path.isdir(wd):
                cwd = wd
        if not argv:
            argv = ["sleep", "infinity"]
        if volumesmod.read_only_root(c.spec):
            try:
                open(c.term, "wb").close()  # a bind mount needs the file to exist
                argv = volumesmod.confine(self.bwrap, argv, c.mounts, [c.term] + self.writable)
            except (OSError, volumesmod.VolumeError) as e:
                c.waiting = ("CreateContainerError", str(e))
                return
        if self.setpriv:
            argv = [self.setpriv, "--pdeathsig", "KILL", "--"] + argv
        try:
            open(c.term, "wb").close()
            fh = open(c.log, "wb")  # a restart moved the previous log aside
        except OSError as e:
            c.waiting = ("CreateContainerError", str(e))
            return
        try:
            self._event(r, pod, "Normal", "Pulled", 'Container image "%s" already present on machine'
                        % c.spec.get("image", ""))
            c.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                      stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                      close_fds=True)
            c.log_fh = fh
        except OSError as e:
            fh.write(("kubesim: cannot start %s: %s\n" % (argv, e)).encode())
            fh.close()
            c.proc = None
            c.exit_code, c.reason = 128, "StartError"
            c.message = "failed to create containerd task: exec: %s" % e
            c.finished_at = now_ts()
            c.started_at = c.started_at or c.finished_at
            self._event(r, pod, "Warning", "Failed", "Error: %s" % c.message)
            return
        c.started_at = now_ts()
        c.started_mono = time.monotonic()
        c.waiting = None
        if r.running_since is None and not c.init:
            r.running_since = time.monotonic()
        self._event(r, pod, "Normal", "Created", "Created container %s" % c.name)
        self._event(r, pod, "Normal", "Started", "Started container %s" % c.name)

    # ---- status -------------------------------------------------------------

    @staticmethod
    def _terminated(c):
        t = {"exitCode": c.exit_code, "reason": c.reason, "startedAt": c.started_at,
             "finishedAt": c.finished_at, "containerID": "kubesim://%d" % (c.proc.pid if c.proc else 0)}
        if c.message:
            t["message"] = c.message
        return t

    def _cstatus(self, c):
        st = {"name": c.name, "image": c.spec.get("image", ""),
              "imageID": self.images.image_id(c.spec.get("image", "")) if c.started_at else "",
              "restartCount": c.restarts, "started": False, "ready": False}
        if c.proc is not None:
            st["containerID"] = "kubesim://%d" % c.proc.pid
        if c.exit_code is not None and c.next_start == 0.0:
            st["state"] = {"terminated": self._terminated(c)}
        elif c.alive():
            st["state"] = {"running": {"startedAt": c.started_at}}
            st["started"] = True
            st["ready"] = not c.init
        else:
            w = c.waiting or ("ContainerCreating", None)
            st["state"] = {"waiting": {"reason": w[0], **({"message": w[1]} if w[1] else {})}}
        if c.last_state:
            st["lastState"] = c.last_state
        else:
            st["lastState"] = {}
        return st

    def _phase(self, r):
        init_done = all(c.exit_code == 0 for c in r.init)
        init_failed = any(c.exit_code not in (None, 0) and not c.alive() for c in r.init)
        if init_failed and r.restart_policy == "Never":
            return "Failed"
        if not init_done:
            return "Pending"
        if any(c.alive() for c in r.main):
            return "Running"
        done = [c for c in r.main if c.exit_code is not None and not c.alive()]
        if len(done) < len(r.main):
            return "Running" if any(c.started_at or c.restarts for c in r.main) else "Pending"
        failed = any(c.exit_code != 0 for c in done)
        if r.restart_policy == "Always":
            return "Running"
        if r.restart_policy == "OnFailure" and failed:
            return "Running"
        return "Failed" if failed else "Succeeded"

    def _report(self, r, pod, deleting):
        phase = self._phase(r)
        if r.disruption and not r.alive():
            phase = "Failed"
        terminal = phase in ("Succeeded", "Failed")
        if terminal and not r.alive():
            r.finished = True
            for c in r.all():  # stop anything still waiting to start
                if c.exit_code is None:
                    c.waiting = c.waiting or ("ContainerCreating", None)
        init_done = all(c.exit_code == 0 for c in r.init)
        if not init_done:
            for c in r.main:
                if c.proc is None and c.exit_code is None:
                    c.waiting = ("PodInitializing", None)
        cs = [self._cstatus(c) for c in r.main]
        ics = [self._cstatus(c) for c in r.init]
        ready = phase == "Running" and all(s["ready"] for s in cs) and not deleting
        started = time.monotonic() >= r.start_at
        status = {"phase": phase, "hostIP": r.host_ip, "hostIPs": [{"ip": r.host_ip}],
                  "podIP": r.ip, "podIPs": [{"ip": r.ip}], "startTime": r.start_time,
                  "containerStatuses": cs}
        if ics:
            status["initContainerStatuses"] = ics
        conds_key = (init_done, ready, bool(r.disruption), started)
        want = (phase, repr(cs), repr(ics), conds_key)
        if want == r.last_status:
            return
        if r.disruption and not r.alive():
            status["reason"] = r.disruption[2]
            status["message"] = r.disruption[1]

        def fn(p):
            st = p.setdefault("status", {})
            conds = st.setdefault("conditions", [])
            if r.disruption:
                set_condition(conds, "DisruptionTarget", "True", r.disruption[0], r.disruption[1])
            set_condition(conds, "PodReadyToStartContainers", "True" if started else "False")
            set_condition(conds, "Initialized", "True" if init_done else "False",
                          None if init_done else "ContainersNotInitialized",
                          None if init_done else "containers with incomplete status: [%s]"
                          % " ".join(c.name for c in r.init if c.exit_code != 0))
            not_ready = [c["name"] for c in cs if not c["ready"]]
            msg = "containers with unready status: [%s]" % " ".join(not_ready)
            reason = "PodCompleted" if terminal else "ContainersNotReady"
            set_condition(conds, "Ready", "True" if ready else "False",
                          None if ready else reason, None if ready or terminal else msg)
            set_condition(conds, "ContainersReady", "True" if ready else "False",
                          None if ready else reason, None if ready or terminal else msg)
            set_condition(conds, "PodScheduled", "True")
            order = ["DisruptionTarget", "PodReadyToStartContainers", "Initialized", "Ready",
                     "ContainersReady", "PodScheduled"]
            conds.sort(key=lambda c: order.index(c["type"]) if c["type"] in order else 99)
            st.update(status)
        if self.store.modify(self.pods_res, r.ns, r.name, fn, "status") is not None:
            r.last_status = want
            self._after_report(r, pod)

    def _after_report(self, r, pod):
        for c in r.all():
            if c.reason == "OOMKilled" and not getattr(c, "oom_reported", False):
                c.oom_reported = True
                self._event(r, pod, "Warning", "OOMKilling",
                            "Memory cgroup out of memory: Killed process %d (%s), limit %s"
                            % (c.proc.pid if c.proc else 0, c.name,
                               quantity.fmt_bytes(int(c.mem_limit)) if c.mem_limit else "forced"))
        if r.disruption and not r.alive() and not getattr(r, "disruption_reported", False):
            r.disruption_reported = True
            self._event(r, pod, "Warning", r.disruption[2], r.disruption[1])
            if r.delete_after_disruption:
                try:
                    self.store.delete(self.pods_res, r.ns, r.name, {"gracePeriodSeconds": 0})
                except ApiError:
                    pass

    def _event(self, r, pod, etype, reason, msg):
        self.store.record_event(pod, etype, reason, msg, COMPONENT, r.node)

    # ---- memory -------------------------------------------------------------

    @staticmethod
    def _rss_by_session():
        """session id -> summed RSS bytes of its processes."""
        out = {}
        try:
            entries = os.listdir("/proc")
        except OSError:
            return out
        for e in entries:
            if not e.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % e, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            fields = data[data.rfind(b")") + 2:].split()
            try:
                sid, rss = int(fields[3]), int(fields[21]) * PAGE
            except (IndexError, ValueError):
                continue
            out[sid] = out.get(sid, 0) + rss
        return out

    def _oom_check(self):
        now = time.monotonic()
        if now - getattr(self, "_last_oom_check", 0.0) < 0.1:
            return
        self._last_oom_check = now
        with self.lock:
            limited = [c for r in self.runs.values() for c in r.all() if c.mem_limit and c.alive()]
        if not limited:
            return
        rss = self._rss_by_session()
        for c in limited:
            if rss.get(c.proc.pid, 0) > c.mem_limit:
                c.kill_reason = "OOMKilled"
                self._killpg(c, signal.SIGKILL)


def _decode(v):
    try:
        return base64.b64decode(v).decode("utf-8", "replace")
    except (ValueError, TypeError):
        return ""
