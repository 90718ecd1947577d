#!/usr/bin/env python3
"""bench_controller.py - the real terrane-controller against kubesim at scale.

For each N (AssetMaterializations) and layout (one namespace, or spread over ten)
it starts kubesim, creates the N objects (each waits on an upstream that does not
exist, so no pods run and the work measured is the controller's own), starts the
controller and measures:

  converge   wall time from the controller's start until every object has a status
             (counted from a watch of the objects by this script)
  cpu/rec    controller CPU (user+sys, /proc) over that time / reconciles it made
  rss        steady (after converging) and peak (VmHWM) resident memory
  resync     one informer resync of everything (wall and controller CPU): the time
             from the last metrics sample before the burst of reconciles (once the
             reconciles that followed converging have stopped for 2 s) to the one
             where N more have been counted
  p50/p99    reconcile time from controller_runtime_reconcile_time_seconds (the
             controller's own histogram, linear interpolation inside a bucket)

Both processes' CPU is printed for every phase: kubesim is one Python thread, so a
phase where kubesim used >= 85 % of a core is marked as limited by kubesim ("sim"),
one where the controller used >= 85 % of the cores it can use is marked "ctl", and
anything else "wait" (client-side rate limits, latency).

  settled    controller CPU and reconciles once the reconciles that follow converging
             (each status write comes back as an update event) have stopped: per
             reconcile and per object, every object's reconciles counted

The headline is the ratio of settled controller CPU per object at the second N to
the first (10,000 / 1,000 by default): a flat algorithm gives 1.0. Per reconcile
until converged depends on how many of the echo reconciles happen to be done at
that moment (about one per object at 1,000, almost none at 10,000), so it divides
the same work by a count that moves with timing.

  bench/bench_controller.py BUILD [--n 1000,10000] [--ns 1,10] [--resync S]
"""
import argparse
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HZ = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
GROUP = "/apis/terrane.io/v1alpha1"

SINGLES = 100  # objects created one at a time after the pods burst

TARGETS = {"ratio": 1.3, "cpu_ms": 0.3, "resync10k_s": 2.0, "rss10k_mb": 40, "rss100k_mb": 300}


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / HZ


def mem_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Api:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def req(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data else {}
        self.conn.request(method, path, body=data, headers=hdrs)
        r = self.conn.getresponse()
        out = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {out[:300]!r}")
        return json.loads(out) if out else None


def am(ns, i, pods=False):
    # pods: a local-path input, so every object gets a worker pod at once (an
    # s3:// or https:// input would first be observed through its own
    # AssetSource, implicitsrc.h, which /bin/true never reports); otherwise an
    # upstream that does not exist (no pods, the controller's own work)
    src = {"name": "dem", "uri": f"/bench/raw/{i}.tif"} if pods else {"name": "dem", "from": "not-there"}
    return {"apiVersion": "terrane.io/v1alpha1", "kind": "AssetMaterialization",
            "metadata": {"name": f"a-{i}", "namespace": ns},
            "spec": {"assetKey": f"bench/a_{i}", "operation": "cog", "params": {},
                     "inputs": [src], "output": {"uri": "s3://assets"}}}


class StatusWatch(threading.Thread):
    """Counts the objects that have a status, from one watch of all namespaces
    (pods: the AssetMaterializations that have a worker pod, from a watch of pods)."""

    def __init__(self, port, rv, pods=False):
        super().__init__(daemon=True)
        self.port, self.rv, self.pods = port, rv, pods
        self.with_status = set()
        self.lock = threading.Lock()
        self.stop = False

    def count(self):
        with self.lock:
            return len(self.with_status)

    def run(self):
        while not self.stop:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                path = "/api/v1/pods" if self.pods else f"{GROUP}/assetmaterializations"
                c.request("GET", f"{path}?watch=1&allowWatchBookmarks=true"
                          f"&resourceVersion={self.rv}")
                r = c.getresponse()
                for line in r:
                    ev = json.loads(line)
                    o = ev.get("object", {})
                    md = o.get("metadata", {})
                    if md.get("resourceVersion"):
                        self.rv = md["resourceVersion"]
                    owner = (md.get("labels") or {}).get("terrane.io/materialization")
                    if self.pods and ev.get("type") == "ADDED" and owner:
                        with self.lock:
                            self.with_status.add((md.get("namespace"), owner))
                    elif (not self.pods and ev.get("type") in ("ADDED", "MODIFIED")
                          and (o.get("status") or {}).get("phase")):
                        with self.lock:
                            self.with_status.add((md.get("namespace"), md.get("name")))
                    if self.stop:
                        return
            except Exception:
                if self.stop:
                    return
                time.sleep(0.2)


def scrape(port):
    """controller_runtime_reconcile_total and the reconcile-time histogram."""
    # a retry on a cut response: the controller's HTTP server closes a
    # connection it could not finish in 5 s, which a machine at a load of
    # 30 sometimes makes it do
    for attempt in range(5):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
            break
        except (http.client.HTTPException, OSError):
            if attempt == 4:
                raise
            time.sleep(0.5)
    total, buckets, e2p = 0.0, {}, {}
    for line in text.splitlines():
        if line.startswith("controller_runtime_reconcile_total"):
            total += float(line.rsplit(" ", 1)[1])
        for name, into in (("controller_runtime_reconcile_time_seconds_bucket", buckets),
                           ("terrane_event_to_pod_create_seconds_bucket", e2p)):
            if line.startswith(name):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                into[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    scrape.event_to_pod = e2p
    return total, buckets


def quantile(buckets, q):
    items = sorted(buckets.items())
    if not items or items[-1][1] == 0:
        return float("nan")
    want = q * items[-1][1]
    prev_le, prev_n = 0.0, 0.0
    for le, n in items:
        if n >= want:
            if le == float("inf"):
                return prev_le
            frac = (want - prev_n) / (n - prev_n) if n > prev_n else 1.0
            return prev_le + (le - prev_le) * frac
        prev_le, prev_n = le, n
    return prev_le


def limiter(ctl_cpu, sim_cpu, wall):
    if wall <= 0:
        return "-"
    if sim_cpu / wall >= 0.85:
        return "sim"
    if ctl_cpu / wall >= 0.85 * CORES:
        return "ctl"
    return "wait"


def run_case(build, n, nns, resync, tmp, log, timeout, pods=False):
    d = tempfile.mkdtemp(prefix=f"n{n}-ns{nns}{'-pods' if pods else ''}-", dir=tmp)
    kcfg = os.path.join(d, "kubeconfig")
    portf = os.path.join(d, "port")
    sim = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tests/kubesim/kubesim.py"), "--port", "0",
         "--kubeconfig", kcfg, "--state-dir", os.path.join(d, "state"),
         "--pools", os.path.join(ROOT, "tests/e2e/testdata/kubesim-pools.json"),
         "--ready-file", portf, "--history-size", str(max(10000, 4 * n))],
        stdout=open(os.path.join(d, "kubesim.log"), "w"), stderr=subprocess.STDOUT)
    ctl = None
    watch = None
    try:
        for _ in range(300):
            if os.path.exists(portf) and open(portf).read().strip():
                break
            time.sleep(0.1)
        port = int(open(portf).read())
        subprocess.run(["kubectl", "--kubeconfig", kcfg, "apply", "-f", os.path.join(ROOT, "crds/")],
                       check=True, stdout=subprocess.DEVNULL)
        api = Api(port)
        spaces = [f"bench-{k}" for k in range(nns)]
        for ns in spaces:
            api.req("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": ns}})
        for _ in range(100):
            try:
                api.req("GET", f"{GROUP}/namespaces/{spaces[0]}/assetmaterializations")
                break
            except RuntimeError:
                time.sleep(0.1)
        t = time.monotonic()
        for i in range(n):
            ns = spaces[i % nns]
            api.req("POST", f"{GROUP}/namespaces/{ns}/assetmaterializations", am(ns, i, pods))
        create_s = time.monotonic() - t
        rv = api.req("GET", f"{GROUP}/assetmaterializations?limit=1")["metadata"]["resourceVersion"]
        watch = StatusWatch(port, rv, pods)
        watch.start()

        mport = free_port()
        sim_cpu0 = cpu_s(sim.pid)
        t0 = time.monotonic()
        # BENCH_CTL_WRAP: a command the controller runs under (a heap
        # profiler, say); the figures are then that command's, not the controller's
        ctl = subprocess.Popen(
            shlex.split(os.environ.get("BENCH_CTL_WRAP", "")) +
            [os.path.join(build, "terrane-controller"), "--kubeconfig", kcfg,
             "--pools", os.path.join(ROOT, "tests/e2e/testdata/pools.json"),
             "--worker-command", '["/bin/true"]' if pods else '["/bin/false"]',
             "--leader-elect=false",
             "--qps", "5000", "--burst", "5000", "--resync", str(resync),
             "--log-level", "warn", "--metrics-addr", f"127.0.0.1:{mport}"],
            stdout=open(os.path.join(d, "controller.log"), "w"), stderr=subprocess.STDOUT,
            start_new_session=True)  # a wrapper's children end with it (killpg below)
        deadline = t0 + timeout
        while watch.count() < n:
            if time.monotonic() > deadline or ctl.poll() is not None:
                raise RuntimeError(f"N={n}: {watch.count()} of {n} statuses after "
                                   f"{time.monotonic() - t0:.0f} s (controller rc {ctl.poll()})")
            time.sleep(0.05)
        conv = time.monotonic() - t0
        ctl_cpu = cpu_s(ctl.pid)
        sim_conv = cpu_s(sim.pid) - sim_cpu0
        recs, _ = scrape(mport)
        if pods:
            # the controller's side of creating pods: its histogram and rate.
            # The burst (every object due at once) measures mostly queueing;
            # then single objects, one at a time, into a settled cache of n
            e2p = scrape.event_to_pod
            ns0 = spaces[0]
            for j in range(SINGLES):
                api.req("POST", f"{GROUP}/namespaces/{ns0}/assetmaterializations", am(ns0, n + j, True))
                t_one = time.monotonic()
                while watch.count() < n + j + 1 and time.monotonic() - t_one < 30:
                    time.sleep(0.002)
            scrape(mport)
            single = {le: v - e2p.get(le, 0) for le, v in scrape.event_to_pod.items()}
            row = {"n": n, "ns": nns, "pods": True, "create_s": create_s, "converge_s": conv,
                   "pods_per_s": n / conv, "ctl_cpu_s": ctl_cpu, "sim_cpu_s": sim_conv,
                   "reconciles": recs, "cpu_ms_per_reconcile": 1000 * ctl_cpu / max(recs, 1),
                   "cpu_ms_per_pod": 1000 * ctl_cpu / n,
                   "e2p_p50_ms": 1000 * quantile(e2p, 0.5), "e2p_p99_ms": 1000 * quantile(e2p, 0.99),
                   "e2p_count": max(e2p.values()) if e2p else 0,
                   "single_p50_ms": 1000 * quantile(single, 0.5),
                   "single_p99_ms": 1000 * quantile(single, 0.99),
                   "rss_mb": mem_kb(ctl.pid, "VmRSS") / 1024, "load1": os.getloadavg()[0],
                   "limit_converge": limiter(ctl_cpu, sim_conv, conv)}
            log.write(json.dumps(row) + "\n")
            log.flush()
            return row
        time.sleep(1.0)
        rss_steady = mem_kb(ctl.pid, "VmRSS")

        # the resync: first sample after which reconciles grow again (a
        # resync that does not finish in time is reported as such, the
        # figures until converging still count)
        rs_wall = rs_cpu = rs_sim = settled_cpu = settled_recs = float("nan")
        settled_overlap = False
        try:
            # the base: once the reconciles that followed converging (each
            # status write is an update event) have stopped for 2 s, so a
            # late one is not taken for the resync starting
            rs_deadline = time.monotonic() + resync + timeout
            base, _ = scrape(mport)
            settled_cpu = cpu_s(ctl.pid)
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < 2.0:
                time.sleep(0.25)
                now_tot, _ = scrape(mport)
                if now_tot != base:
                    base, quiet_since, settled_cpu = now_tot, time.monotonic(), cpu_s(ctl.pid)
                if time.monotonic() > rs_deadline:
                    raise RuntimeError("reconciles never stopped after converging")
            settled_recs = base
            # a resync due before the reconciles stopped is inside the settled figures
            settled_overlap = quiet_since - t0 > resync
            prev_t, prev_cpu, prev_sim = time.monotonic(), cpu_s(ctl.pid), cpu_s(sim.pid)
            while True:
                now_tot, _ = scrape(mport)
                if now_tot > base:
                    break
                prev_t, prev_cpu, prev_sim = time.monotonic(), cpu_s(ctl.pid), cpu_s(sim.pid)
                if prev_t > rs_deadline:
                    raise RuntimeError(f"no resync within {resync} s")
                time.sleep(0.1)
            while now_tot < base + n:
                time.sleep(0.05)
                now_tot, buckets = scrape(mport)
                if time.monotonic() > rs_deadline:
                    raise RuntimeError(f"resync incomplete ({now_tot - base:.0f} of {n})")
            rs_wall = time.monotonic() - prev_t
            rs_cpu = cpu_s(ctl.pid) - prev_cpu
            rs_sim = cpu_s(sim.pid) - prev_sim
        except RuntimeError as e:
            print(f"N={n} ns={nns}: {e}", flush=True)
        total, buckets = scrape(mport)
        peak = mem_kb(ctl.pid, "VmHWM")
        row = {"n": n, "ns": nns, "create_s": create_s, "converge_s": conv,
               "ctl_cpu_s": ctl_cpu, "sim_cpu_s": sim_conv, "reconciles": recs,
               "cpu_ms_per_reconcile": 1000 * ctl_cpu / max(recs, 1),
               "cpu_ms_per_object": 1000 * ctl_cpu / n,
               "settled_cpu_s": settled_cpu, "settled_reconciles": settled_recs,
               "settled_cpu_ms_per_reconcile": 1000 * settled_cpu / max(settled_recs, 1),
               "settled_cpu_ms_per_object": 1000 * settled_cpu / n,
               "settled_includes_resync": settled_overlap,
               "rss_steady_mb": rss_steady / 1024, "rss_peak_mb": peak / 1024,
               "resync_wall_s": rs_wall, "resync_cpu_s": rs_cpu, "resync_sim_cpu_s": rs_sim,
               "resync_cpu_ms_per_reconcile": 1000 * rs_cpu / n,
               "p50_ms": 1000 * quantile(buckets, 0.5), "p99_ms": 1000 * quantile(buckets, 0.99),
               "load1": os.getloadavg()[0],
               "limit_converge": limiter(ctl_cpu, sim_conv, conv),
               "limit_resync": limiter(rs_cpu, rs_sim, rs_wall)}
        log.write(json.dumps(row) + "\n")
        log.flush()
        return row
    finally:
        if watch:
            watch.stop = True
        if ctl:
            try:
                os.killpg(ctl.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in (ctl, sim):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def mark(v, target):
    return "ok" if v <= target else "OVER"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--n", default="1000,10000")
    ap.add_argument("--ns", default="1,10")
    ap.add_argument("--resync", type=int, default=0,
                    help="informer resync period; 0: 30 s + 3 s per 1,000 objects (longer than converging)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds allowed for each phase")
    ap.add_argument("--pods", default="1000,10000",
                    help="N of the pods phase (every object gets a pod at once; '' skips it)")
    ap.add_argument("--out", help="JSON lines of every case (default BUILD/bench/controller.jsonl)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    out = a.out or os.path.join(build, "bench", "controller.jsonl")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="bench-controller-")
    rows = []
    try:
        with open(out, "w") as log:
            for nns in [int(x) for x in a.ns.split(",")]:
                for n in [int(x) for x in a.n.split(",") if x]:
                    resync = a.resync or 30 + 3 * n // 1000
                    rows.append(run_case(build, n, nns, resync, tmp, log, a.timeout))
                    r = rows[-1]
                    print(f"N={n:>7} ns={nns:>2}  converge {r['converge_s']:7.2f} s "
                          f"[{r['limit_converge']}]  cpu/rec {r['cpu_ms_per_reconcile']:6.3f} ms "
                          f"(target <= {TARGETS['cpu_ms']}: {mark(r['cpu_ms_per_reconcile'], TARGETS['cpu_ms'])})  "
                          f"reconciles {r['reconciles']:.0f}  per object {r['cpu_ms_per_object']:.3f} ms  ctl cpu {r['ctl_cpu_s']:.2f} s  "
                          f"sim cpu {r['sim_cpu_s']:.2f} s", flush=True)
                    print(f"{'':18}settled (every reconcile done, before the resync): "
                          f"{r['settled_reconciles']:.0f} reconciles, ctl cpu {r['settled_cpu_s']:.2f} s, "
                          f"cpu/rec {r['settled_cpu_ms_per_reconcile']:.3f} ms (target <= {TARGETS['cpu_ms']}: "
                          f"{mark(r['settled_cpu_ms_per_reconcile'], TARGETS['cpu_ms'])}), "
                          f"cpu/object {r['settled_cpu_ms_per_object']:.3f} ms"
                          + ("  (INCLUDES a resync: converging outlasted --resync; raise it)"
                             if r["settled_includes_resync"] else ""), flush=True)
                    print(f"{'':18}rss {r['rss_steady_mb']:.0f} MB steady / {r['rss_peak_mb']:.0f} MB peak  "
                          f"resync {r['resync_wall_s']:.2f} s wall / {r['resync_cpu_s']:.2f} s cpu "
                          f"[{r['limit_resync']}] (sim {r['resync_sim_cpu_s']:.2f} s)  "
                          f"reconcile p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms  load {r['load1']:.1f}", flush=True)
            prow = []
            for n in [int(x) for x in a.pods.split(",") if x]:
                r = run_case(build, n, 1, 30 + 3 * n // 1000, tmp, log, a.timeout, pods=True)
                prow.append(r)
                print(f"pods N={n:>6}  {r['pods_per_s']:7.1f} pods/s [{r['limit_converge']}]  "
                      f"event->pod burst p50 {r['e2p_p50_ms']:.1f} ms p99 {r['e2p_p99_ms']:.1f} ms, "
                      f"one at a time p50 {r['single_p50_ms']:.3f} ms p99 {r['single_p99_ms']:.3f} ms "
                      f"(target p99 <= 5 ms at 10k)  ctl cpu/pod {r['cpu_ms_per_pod']:.3f} ms "
                      f"(<= 1 ms: >= 1,000 pods/s controller-side; now {1000 / max(r['cpu_ms_per_pod'], 1e-9):.0f} "
                      f"per core)  sim cpu {r['sim_cpu_s']:.1f} s ({1000 * r['sim_cpu_s'] / n:.2f} ms per pod)  "
                      f"rss {r['rss_mb']:.0f} MB  load {r['load1']:.1f}", flush=True)
        ns_list = sorted({r["ns"] for r in rows})
        print()
        print("| AMs | namespaces | until every status | ctl CPU / reconcile | RSS steady / peak "
              "| full resync wall / CPU | reconcile p50 / p99 | limited by |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['n']:,} | {r['ns']} | {r['converge_s']:.2f} s | {r['cpu_ms_per_reconcile']:.3f} ms "
                  f"| {r['rss_steady_mb']:.0f} / {r['rss_peak_mb']:.0f} MB "
                  f"| {r['resync_wall_s']:.2f} s / {r['resync_cpu_s']:.2f} s "
                  f"| {r['p50_ms']:.3f} / {r['p99_ms']:.3f} ms "
                  f"| {r['limit_converge']} / {r['limit_resync']} |")
        for nns in ns_list:
            by_n = {r["n"]: r for r in rows if r["ns"] == nns}
            ns_sorted = sorted(by_n)
            if len(ns_sorted) >= 2:
                lo, hi = by_n[ns_sorted[0]], by_n[ns_sorted[1]]
                ratio = hi["cpu_ms_per_reconcile"] / lo["cpu_ms_per_reconcile"]
                rs_ratio = hi["resync_cpu_ms_per_reconcile"] / max(lo["resync_cpu_ms_per_reconcile"], 1e-9)
                obj_ratio = hi["cpu_ms_per_object"] / lo["cpu_ms_per_object"]
                set_ratio = hi["settled_cpu_ms_per_object"] / lo["settled_cpu_ms_per_object"]
                set_rec = hi["settled_cpu_ms_per_reconcile"] / lo["settled_cpu_ms_per_reconcile"]
                print(f"headline ({nns} ns): CPU per object, settled, {hi['n']:,} / {lo['n']:,} = "
                      f"{set_ratio:.2f}x (target <= {TARGETS['ratio']}: {mark(set_ratio, TARGETS['ratio'])}); "
                      f"per reconcile settled {set_rec:.2f}x; until converged: per reconcile {ratio:.2f}x, "
                      f"per object {obj_ratio:.2f}x; resync CPU per object {rs_ratio:.2f}x")
            if 10000 in by_n:
                r = by_n[10000]
                print(f"  N=10,000 ({nns} ns): resync {r['resync_wall_s']:.2f} s (target <= "
                      f"{TARGETS['resync10k_s']}: {mark(r['resync_wall_s'], TARGETS['resync10k_s'])}), "
                      f"RSS {r['rss_peak_mb']:.0f} MB (target <= {TARGETS['rss10k_mb']}: "
                      f"{mark(r['rss_peak_mb'], TARGETS['rss10k_mb'])})")
            if 100000 in by_n:
                r = by_n[100000]
                print(f"  N=100,000 ({nns} ns): RSS {r['rss_peak_mb']:.0f} MB (target <= "
                      f"{TARGETS['rss100k_mb']}: {mark(r['rss_peak_mb'], TARGETS['rss100k_mb'])})")
        if prow:
            print()
            print("| AMs with a pod each | pods / s | ctl CPU / pod | kubesim CPU / pod "
                  "| event -> pod p50 / p99, burst "
                  "| event -> pod p50 / p99, one at a time | limited by |")
            print("|---|---|---|---|---|---|---|")
            for r in prow:
                print(f"| {r['n']:,} | {r['pods_per_s']:.1f} | {r['cpu_ms_per_pod']:.3f} ms "
                      f"| {1000 * r['sim_cpu_s'] / r['n']:.3f} ms "
                      f"| {r['e2p_p50_ms']:.0f} / {r['e2p_p99_ms']:.0f} ms "
                      f"| {r['single_p50_ms']:.3f} / {r['single_p99_ms']:.3f} ms | {r['limit_converge']} |")
        print(f"raw: {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
