#!/usr/bin/env python3
"""kubesim: a simulated Kubernetes cluster for Terrane's tests and demo.

    python3 tests/kubesim/kubesim.py --port 0 --kubeconfig OUT --state-dir DIR \
        --pools POOLS.json [--faults FAULTS.json] [--seed N] [--ready-file F]

Starts the API server on loopback, writes a kubeconfig for it, prints
"kubesim: listening on http://127.0.0.1:PORT" once it accepts connections,
and runs the scheduler, autoscaler, kubelet and garbage collector until
SIGTERM or SIGINT, when it stops every process it started. Python 3 standard
library only. See README.md beside this file.
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import apiserver  # noqa: E402
import autoscaler  # noqa: E402
import cluster  # noqa: E402
import faults as faultsmod  # noqa: E402
import garbage  # noqa: E402
import images as imagesmod  # noqa: E402
import kubelet  # noqa: E402
import sampler  # noqa: E402
import scheduler  # noqa: E402
import store as storemod  # noqa: E402

DEFAULT_POOLS = {"pools": [{"name": "default", "labels": {}, "taints": [],
                            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                            "min": 1, "max": 3}],
                 "scaleDownDelaySeconds": 10}


def make_tls(state_dir, host):
    """A self-signed certificate for host (made with the openssl CLI) and a
    server SSLContext; returns (context, PEM bytes of the certificate)."""
    import shutil
    import ssl
    import subprocess
    if not shutil.which("openssl"):
        sys.exit("kubesim: --tls needs the openssl command")
    d = os.path.join(state_dir, "tls")
    os.makedirs(d, exist_ok=True)
    key, crt = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    san = "IP:%s,DNS:localhost" % host if host[0].isdigit() else "DNS:%s,DNS:localhost" % host
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "30", "-subj", "/CN=kubesim",
                    "-addext", "subjectAltName=" + san], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    with open(crt, "rb") as f:
        return ctx, f.read()


def write_kubeconfig(path, url, token, namespace, ca_pem=None):
    user = "    token: %s\n" % token if token else "    {}\n"
    ca = ""
    if ca_pem:
        import base64
        ca = "    certificate-authority-data: %s\n" % base64.b64encode(ca_pem).decode()
    text = (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: kubesim\n"
        "  cluster:\n"
        "    server: %s\n%s"
        "contexts:\n"
        "- name: kubesim\n"
        "  context:\n"
        "    cluster: kubesim\n"
        "    user: kubesim\n"
        "    namespace: %s\n"
        "current-context: kubesim\n"
        "preferences: {}\n"
        "users:\n"
        "- name: kubesim\n"
        "  user:\n%s" % (url, ca, namespace, user))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit("kubesim: cannot read %s file %s: %s" % (what, path, e))


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Simulated Kubernetes API server and cluster.")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    ap.add_argument("--port", type=int, default=0, help="port, 0 picks a free one")
    ap.add_argument("--kubeconfig", help="write a kubeconfig for clients here")
    ap.add_argument("--state-dir", help="pod directories and logs (default: a temp dir)")
    ap.add_argument("--pools", help="node pools file (JSON); default: one 'default' pool")
    ap.add_argument("--faults", help="fault injection file (JSON)")
    ap.add_argument("--seed", type=int, default=0, help="seed for injected faults and names")
    ap.add_argument("--history-size", type=int, default=10000,
                    help="watch events retained; older versions get 410 Gone")
    ap.add_argument("--bookmark-interval", type=float, default=60.0,
                    help="seconds between watch BOOKMARK events (the real server: about a minute)")
    ap.add_argument("--fresh-wait", type=float, default=3.0,
                    help="seconds a list or watch waits for a resourceVersion newer than the "
                         "server's before 504 Too large resource version")
    ap.add_argument("--server-version", default="v1.30.0", help="version reported at /version")
    ap.add_argument("--pass-env", action="append", default=[], metavar="NAME",
                    help="pass this environment variable to pod processes (repeatable)")
    ap.add_argument("--writable", action="append", default=[], metavar="DIR",
                    help="a host directory that containers with readOnlyRootFilesystem may "
                         "write as well, as through a hostPath volume (repeatable; e.g. "
                         "sanitizer logs)")
    ap.add_argument("--images", help="images file (JSON): image -> local entrypoint (images.py)")
    ap.add_argument("--ready-file", help="write the port here once listening")
    ap.add_argument("--authorization", choices=["AlwaysAllow", "RBAC"], default="AlwaysAllow",
                    help="RBAC: requests need the --token (the administrator) or a ServiceAccount "
                         "token (kubectl create token) and are authorized by Roles, ClusterRoles "
                         "and their bindings (rbac.py)")
    ap.add_argument("--token", help="require this bearer token (and put it in the kubeconfig); "
                    "kubectl sends tokens over TLS only, so combine with --tls for it")
    ap.add_argument("--tls", action="store_true",
                    help="serve HTTPS with a self-signed certificate (CA data in the kubeconfig)")
    ap.add_argument("--namespace", default="default", help="kubeconfig context namespace")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    ap.add_argument("--audit", action="store_true",
                    help="record every change of pods, AssetMaterializations and Leases with the "
                    "client's User-Agent (GET /kubesim/audit)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    pools_doc = load_json(args.pools, "pools") if args.pools else DEFAULT_POOLS
    state_dir = args.state_dir or tempfile.mkdtemp(prefix="kubesim-")
    os.makedirs(state_dir, exist_ok=True)

    st = storemod.Store(history_size=args.history_size, seed=args.seed)
    if args.audit:
        st.audit = []
    flt = faultsmod.Faults(seed=args.seed)
    if args.faults:
        try:
            flt.load(load_json(args.faults, "faults"))
        except (ValueError, TypeError) as e:
            sys.exit("kubesim: invalid faults file: %s" % e)
    try:
        cl = cluster.Cluster(st, pools_doc, args.server_version)
    except (ValueError, TypeError) as e:
        sys.exit("kubesim: invalid pools file: %s" % e)

    if args.authorization == "RBAC" and not args.token:
        ap.error("--authorization RBAC needs --token (the administrator's)")
    sim = apiserver.Sim(st, flt, cluster=cl, bookmark_interval=args.bookmark_interval,
                        fresh_wait=args.fresh_wait,
                        server_version=args.server_version, token=args.token,
                        verbose=args.verbose, authorization=args.authorization)
    ssl_ctx, ca_pem = make_tls(state_dir, args.host) if args.tls else (None, None)
    try:
        srv = apiserver.make_server(sim, args.host, args.port, ssl_ctx)
    except OSError as e:
        sys.exit("kubesim: cannot listen on %s:%d: %s" % (args.host, args.port, e))
    port = srv.server_address[1]
    url = "%s://%s:%d" % ("https" if args.tls else "http", args.host, port)

    try:
        imgs = imagesmod.Images(args.images)
    except (OSError, ValueError) as e:
        sys.exit("kubesim: invalid images file: %s" % e)
    kl = kubelet.Kubelet(st, flt, state_dir, args.pass_env, api_url=url, images=imgs,
                         writable=args.writable)
    sim.kubelet = kl
    kl.token_issuer = lambda ns, sa: sim.authz.token_request(ns, sa, {})["status"]["token"]
    kl.ca_pem = ca_pem
    workers = [kl, scheduler.Scheduler(st), autoscaler.Autoscaler(st, cl),
               garbage.GarbageCollector(st, cl)]
    cl.start()
    for w in workers:
        w.start()

    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    prof = None
    if os.environ.get("KUBESIM_PROFILE"):
        prof = sampler.Sampler(os.environ["KUBESIM_PROFILE"])
        prof.start()
    server_thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                                     name="kubesim-http", daemon=True)
    server_thread.start()
    if args.kubeconfig:
        write_kubeconfig(args.kubeconfig, url, args.token, args.namespace, ca_pem)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.ready_file)
    print("kubesim: listening on %s (state %s)" % (url, state_dir), flush=True)

    last_compact = time.monotonic()
    while not stop.wait(0.2):
        every = flt.compact_every
        if every and time.monotonic() - last_compact >= float(every):
            st.compact()
            last_compact = time.monotonic()
        elif not every:
            last_compact = time.monotonic()

    print("kubesim: shutting down", flush=True)
    if prof:
        prof.stop()
    sim.stopping = True
    st.stop()
    for w in workers:
        w.stop()
    kl.join(timeout=5)
    kl.kill_all(grace=0.5)
    srv.shutdown()
    srv.server_close()
    for w in workers[1:]:
        w.join(timeout=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
