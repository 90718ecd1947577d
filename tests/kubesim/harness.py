"""Test helpers: start a kubesim process and talk to it over HTTP.

    with harness.running(pools="testdata/pools-fast.json") as sim:
        code, obj, hdrs = sim.client.post("/api/v1/namespaces/default/configmaps", {...})
        for ev in sim.client.watch("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=5"):
            ...

Standard library only, usable by any Python test in the project.
"""

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
KUBESIM = os.path.join(HERE, "kubesim.py")


class Client:
    def __init__(self, host, port, timeout=30, ca_file=None):
        """ca_file: kubesim serves https (--tls) with that certificate."""
        self.host, self.port, self.timeout = host, port, timeout
        self.headers = {}  # sent with every request (e.g. an Authorization)
        self.ssl = None
        if ca_file:
            import ssl
            self.ssl = ssl.create_default_context(cafile=ca_file)

    def _conn(self, timeout):
        if self.ssl:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.ssl)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, ctype=None, headers=None, raw=False):
        """(status, decoded JSON body or text, headers dict)."""
        conn = self._conn(self.timeout)
        try:
            h = {"Accept": "application/json"}
            h.update(self.headers)
            data = None
            if body is not None:
                data = body if isinstance(body, (bytes, str)) else json.dumps(body)
                if isinstance(data, str):
                    data = data.encode()
                h["Content-Type"] = ctype or "application/json"
            h.update(headers or {})
            conn.request(method, path, data, h)
            resp = conn.getresponse()
            payload = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            if raw or not payload:
                return resp.status, payload.decode("utf-8", "replace"), hdrs
            try:
                return resp.status, json.loads(payload), hdrs
            except ValueError:
                return resp.status, payload.decode("utf-8", "replace"), hdrs
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body, ctype="application/merge-patch+json", **kw):
        return self.request("PATCH", path, body, ctype=ctype, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body, **kw)

    def watch(self, path, timeout=10.0, max_events=None, stop=None):
        """Yield watch events (dicts) from a streaming GET until the server
        ends the stream, `timeout` seconds pass, max_events arrive or
        stop(event) returns True. A dropped connection just ends the stream."""
        conn = self._conn(timeout)
        deadline = time.monotonic() + timeout
        n = 0
        try:
            conn.request("GET", path, headers={"Accept": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                yield {"type": "HTTP", "code": resp.status, "object": json.loads(resp.read() or b"{}")}
                return
            while time.monotonic() < deadline:
                conn.sock.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    line = resp.readline()
                except (TimeoutError, OSError, http.client.HTTPException):
                    return
                if not line:
                    return
                ev = json.loads(line)
                yield ev
                n += 1
                if (max_events and n >= max_events) or (stop and stop(ev)):
                    return
        finally:
            conn.close()

    def wait_for(self, path, pred, timeout=20.0, interval=0.1):
        """Poll GET path until pred(obj) is true; returns the object or raises."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            code, obj, _ = self.get(path)
            last = (code, obj)
            if code == 200 and pred(obj):
                return obj
            time.sleep(interval)
        raise AssertionError("timed out waiting on %s; last: %s" % (path, json.dumps(last)[:2000]))


class Sim:
    def __init__(self, proc, port, kubeconfig, state_dir, workdir, log_path, tls=False):
        self.proc, self.port = proc, port
        self.kubeconfig, self.state_dir, self.workdir = kubeconfig, state_dir, workdir
        self.log_path = log_path
        self.ca_file = os.path.join(state_dir, "tls", "cert.pem") if tls else None
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", port)
        self.client = Client("127.0.0.1", port, ca_file=self.ca_file)

    def faults(self, doc):
        code, body, _ = self.client.post("/kubesim/faults", doc)
        assert code == 200, body
        return body

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""


def start(pools=None, faults=None, args=(), python=None, workdir=None, startup_timeout=15):
    workdir = workdir or tempfile.mkdtemp(prefix="kubesim-test-")
    ready = os.path.join(workdir, "ready")
    kubeconfig = os.path.join(workdir, "kubeconfig")
    state = os.path.join(workdir, "state")
    log_path = os.path.join(workdir, "kubesim.log")
    cmd = [python or sys.executable, KUBESIM, "--port", "0", "--kubeconfig", kubeconfig,
           "--state-dir", state, "--ready-file", ready]
    if pools:
        cmd += ["--pools", pools]
    if faults:
        cmd += ["--faults", faults]
    cmd += list(args)
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("kubesim exited (%s): %s" % (proc.returncode, open(log_path).read()))
        if os.path.exists(ready):
            with open(ready) as f:
                port = int(f.read().strip())
            return Sim(proc, port, kubeconfig, state, workdir, log_path, tls="--tls" in args)
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("kubesim did not become ready: " + open(log_path).read())


@contextlib.contextmanager
def running(**kw):
    sim = start(**kw)
    try:
        yield sim
    finally:
        sim.stop()
        if not os.environ.get("KUBESIM_KEEP"):
            shutil.rmtree(sim.workdir, ignore_errors=True)


def q(path, **params):
    """path with URL-encoded query parameters."""
    return path + ("?" + urllib.parse.urlencode(params) if params else "")
