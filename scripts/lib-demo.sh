# shellcheck shell=bash
# scripts/lib-demo.sh - what scripts/demo.sh and scripts/demo-stop.sh share:
# where the demo keeps its state, the record of the processes it started, and
# stopping exactly those. Source it after setting ROOT:
#
#   DEMO_DIR      state directory (default $ROOT/.cache/demo; the test uses its own)
#   DEMO_PIDS     $DEMO_DIR/pids: one line "NAME PID STARTTIME" per process the
#                 demo started. STARTTIME (field 22 of /proc/PID/stat) makes a
#                 record name one process, never a later one that reuses its PID.
#   demo_record NAME PID       append a record
#   demo_running PID START     true while that very process is alive (not a zombie)
#   demo_stop [quiet]          stop every recorded process: controller, then kubesim
#                              (after recording its pods' worker processes), then
#                              s3rver; SIGTERM, then SIGKILL after a bound
DEMO_DIR=${DEMO_DIR:-$ROOT/.cache/demo}
DEMO_PIDS=$DEMO_DIR/pids

# Prints "STATE STARTTIME" of a process, or nothing if there is none. The
# command name in parentheses may hold spaces, so fields count from its end.
_demo_stat() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo "$1 ${20}"
}

demo_record() { # name pid
  local st
  st=$(_demo_stat "$2") || return 0
  echo "$1 $2 ${st#* }" >>"$DEMO_PIDS"
}

demo_running() { # pid starttime
  local st
  st=$(_demo_stat "$1") || return 1
  [ "${st%% *}" != Z ] && [ "${st#* }" = "$2" ]
}

# Waits up to $3 tenths of a second for the process to end; true if it did.
_demo_wait_gone() { # pid starttime tenths
  local i
  for ((i = 0; i < $3; i++)); do
    demo_running "$1" "$2" || return 0
    sleep 0.1
  done
  ! demo_running "$1" "$2"
}

# Worker processes kubesim is running now, recorded so that they are checked
# (and killed if need be) after kubesim itself has stopped.
_demo_record_workers() {
  local port
  port=$(cat "$DEMO_DIR/kubesim.port" 2>/dev/null) || return 0
  /usr/bin/python3 - "$port" <<'PY' 2>/dev/null | while read -r pod pid; do demo_record "worker:$pod" "$pid"; done
import json, sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:%s/kubesim/processes" % sys.argv[1], timeout=3) as r:
    for p in json.load(r).get("processes", []):
        print("%s/%s %d" % (p.get("namespace"), p.get("pod"), p["pid"]))
PY
}

_demo_stop_one() { # name pid start tenths
  local name=$1 pid=$2 start=$3
  demo_running "$pid" "$start" || return 0
  [ "$quiet" = 1 ] || echo "demo-stop: stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! _demo_wait_gone "$pid" "$start" "$4"; then
    echo "demo-stop: $name (pid $pid) did not stop after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    _demo_wait_gone "$pid" "$start" 30 || echo "demo-stop: $name (pid $pid) is still there" >&2
  fi
  # A process this shell started is its child: reap it so no zombie remains.
  wait "$pid" 2>/dev/null || true
}

demo_stop() { # [quiet]
  local quiet=0 name pid start any=0
  [ "${1:-}" = quiet ] && quiet=1
  [ -f "$DEMO_PIDS" ] || { [ $quiet = 1 ] || echo "demo-stop: no demo recorded in $DEMO_DIR"; return 0; }
  while read -r name pid start; do
    demo_running "$pid" "$start" && any=1
  done <"$DEMO_PIDS"
  if [ $any = 0 ]; then
    [ $quiet = 1 ] || echo "demo-stop: nothing of the demo in $DEMO_DIR is running"
    return 0
  fi
  _demo_record_workers
  # The controller first (it finishes in-flight work and releases its Lease while
  # the API is still there), then kubesim (which stops its pods), then S3.
  local order=(controller kubesim s3rver) n
  for n in "${order[@]}"; do
    while read -r name pid start; do
      [ "$name" = "$n" ] && _demo_stop_one "$name" "$pid" "$start" 150
    done <"$DEMO_PIDS"
  done
  # Anything else recorded (worker processes that outlived kubesim).
  while read -r name pid start; do
    case " ${order[*]} " in *" $name "*) continue ;; esac
    _demo_stop_one "$name" "$pid" "$start" 20
  done <"$DEMO_PIDS"
  local left=0
  while read -r name pid start; do
    if demo_running "$pid" "$start"; then
      echo "demo-stop: $name (pid $pid) is still running" >&2
      left=1
    fi
  done <"$DEMO_PIDS"
  [ $quiet = 1 ] || { [ $left = 0 ] && echo "demo-stop: stopped; state and logs kept in $DEMO_DIR"; }
  return $left
}

# demo_py COMMAND ARGS...: the demo's view of the cluster, through the API
# server named in $KUBECONFIG (Python standard library and GDAL's bindings).
#   wait TIMEOUT TITLE NAMES FOCUS [NAME=OLD_DATA_VERSION...]
#        follows the AssetMaterializations NAMES (comma-separated) and the
#        nodes with watches, showing progress (a table redrawn in place when
#        DEMO_TTY=1, else one line per change; FOCUS names get a first line
#        even when unchanged) until every one of NAMES has Succeeded for its
#        current generation, is not Stale and, for NAME=OLD, has a data version
#        other than OLD. Exit 1 when one Failed, 2 on timeout, after printing
#        what was wrong with each asset left and its worker pod's last log lines.
#   names                 every asset, upstreams first
#   versions              "NAME DATA_VERSION" per asset
#   downstream NAME       the assets that re-materialize on their own when NAME
#                         changes (refreshPolicy OnUpstreamChange, transitively)
#   manifest NAME         the resource as it was applied (no status or server fields)
#   report OUTDIR         per asset: phase, pool, node, data version, output,
#                         checksum (checked against a downloaded copy in OUTDIR),
#                         GDAL's COG validator's verdict; then the lineage tree
demo_py() {
  /usr/bin/python3 - "$@" <<'PY'
import os, signal
# Ctrl-C: die of the signal without a traceback; demo.sh's trap stops everything.
signal.signal(signal.SIGINT, lambda *_: (signal.signal(signal.SIGINT, signal.SIG_DFL), os.kill(os.getpid(), signal.SIGINT)))
import hashlib, http.client, json, os, queue, shlex, shutil, subprocess, sys, threading, time

NS = os.environ.get("DEMO_NS", "hydro")
AMS = "/apis/terrane.io/v1alpha1/namespaces/%s/assetmaterializations" % NS
TTY = os.environ.get("DEMO_TTY") == "1"
PYTHON = "/usr/bin/python3"


def api_address():
    with open(os.environ["KUBECONFIG"]) as f:
        for line in f:
            line = line.strip()
            if line.startswith("server:"):
                hostport = line.split(None, 1)[1].split("://", 1)[1].rstrip("/")
                host, port = hostport.rsplit(":", 1)
                return host, int(port)
    sys.exit("demo: no server in %s" % os.environ["KUBECONFIG"])


HOST, PORT = api_address()


def get(path, raw=False):
    c = http.client.HTTPConnection(HOST, PORT, timeout=10)
    try:
        c.request("GET", path, headers={"Accept": "application/json"})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError("GET %s: HTTP %d %s" % (path, r.status, body[:200].decode(errors="replace")))
        return body.decode(errors="replace") if raw else json.loads(body)
    finally:
        c.close()


def list_ams():
    return {o["metadata"]["name"]: o for o in get(AMS)["items"]}


def st(o):
    return o.get("status") or {}


def cond(o, ctype):
    for c in st(o).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return {}


def short(dv):
    return (dv or "").split(":", 1)[-1][:12]


def current(o):
    return st(o).get("observedGeneration") == o["metadata"].get("generation")


def settled(o, old=None):
    s, gen = st(o), o["metadata"].get("generation")
    ready = cond(o, "Ready")
    return (current(o) and s.get("phase") == "Succeeded" and ready.get("status") == "True"
            and ready.get("observedGeneration", gen) == gen
            and cond(o, "Stale").get("status") != "True"
            and (old is None or s.get("dataVersion") != old))


def failed(o):
    return current(o) and st(o).get("phase") == "Failed"


def upstreams(o):
    return [i["from"] for i in (o.get("spec") or {}).get("inputs") or [] if i.get("from")]


def topo(objs):
    """Names, upstreams first; siblings in name order, roots by first source."""
    order, seen = [], set()

    def visit(n):
        if n in seen or n not in objs:
            return
        seen.add(n)
        for u in upstreams(objs[n]):
            visit(u)
        order.append(n)
    for n in sorted(objs):
        visit(n)
    # stable reordering: depth-first from the roots, so a chain reads top-down
    children = {n: [] for n in objs}
    for n in order:
        for u in upstreams(objs[n]):
            if u in children and n not in children[u]:
                children[u].append(n)
    out, done = [], set()

    def walk(n):
        if n in done:
            return
        if any(u in objs and u not in done for u in upstreams(objs[n])):
            return  # reached again from its last upstream
        done.add(n)
        out.append(n)
        for c in children[n]:
            walk(c)
    for n in order:
        if not any(u in objs for u in upstreams(objs[n])):
            walk(n)
    out += [n for n in order if n not in done]
    return out


# --- progress ------------------------------------------------------------------------------

def watcher(path, kind, q):
    """Lists, then watches from the list's resourceVersion; relists on 410 or errors.
    Puts (receive time, kind, event type, object or list) on q."""
    rv = None
    while True:
        try:
            if rv is None:
                lst = get(path)
                rv = lst["metadata"]["resourceVersion"]
                q.put((time.monotonic(), kind, "LIST", lst["items"]))
            c = http.client.HTTPConnection(HOST, PORT, timeout=15)
            c.request("GET", "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=60&resourceVersion=%s"
                      % (path, rv), headers={"Accept": "application/json"})
            r = c.getresponse()
            if r.status != 200:
                r.read()
                rv = None
                time.sleep(0.5)
                continue
            for line in r:
                if not line.strip():
                    continue
                ev = json.loads(line)
                if ev["type"] == "ERROR":  # 410 Gone: list again
                    rv = None
                    break
                rv = ev["object"]["metadata"].get("resourceVersion", rv)
                if ev["type"] != "BOOKMARK":
                    q.put((time.monotonic(), kind, ev["type"], ev["object"]))
            c.close()
        except Exception:
            rv = None
            time.sleep(0.5)


def row_of(o):
    s = st(o)
    phase = s.get("phase") or "created"
    reason = cond(o, "Ready").get("reason") or ""
    if cond(o, "Stale").get("status") == "True" and phase != "Failed":
        reason = "Stale: " + (cond(o, "Stale").get("reason") or "")
    return {"name": o["metadata"]["name"], "asset": (o.get("spec") or {}).get("assetKey", ""),
            "op": (o.get("spec") or {}).get("operation", ""), "pool": s.get("pool") or "-",
            "node": s.get("node") or "-", "phase": phase, "version": short(s.get("dataVersion")) or "-",
            "reason": reason}


def node_ready(o):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (o.get("status") or {}).get("conditions") or [])


def node_pool(o):
    return (o["metadata"].get("labels") or {}).get("terrane.io/pool", "?")


COLOURS = {"Succeeded": "32", "Failed": "31", "Running": "33", "Pending": "36", "Waiting": "36"}


class TableView:
    """A table of every asset redrawn in place (at most every 0.2 s); lines are
    cut to the terminal's width so that the number of lines to move up is known."""
    FMT = "  %-20s %-27s %-11s %-5s %-9s %-10s %-13s %s"
    PHASE_AT = 2 + 21 + 28 + 12 + 6 + 10

    def __init__(self, title):
        self.title, self.lines, self.last, self.drawn = title, 0, None, 0.0

    def prime(self, objs):
        pass

    def start(self):
        pass

    def event(self, t, kind, etype, obj, old):
        pass

    def show(self, ams, nodes, order, elapsed, final=False):
        now = time.monotonic()
        if not final and now - self.drawn < 0.2:
            return
        width = shutil.get_terminal_size((120, 24)).columns - 1
        out = ["%s  %ds" % (self.title, elapsed),
               (self.FMT % ("NAME", "ASSET", "OPERATION", "POOL", "NODE", "PHASE", "VERSION", "REASON"))[:width]]
        for n in order:
            if n not in ams:
                continue
            r = row_of(ams[n])
            line = (self.FMT % (r["name"], r["asset"], r["op"], r["pool"], r["node"], r["phase"], r["version"],
                                r["reason"]))[:width]
            c = COLOURS.get(r["phase"])
            if c and len(line) > self.PHASE_AT:  # colour the phase only, after cutting
                a = self.PHASE_AT
                line = line[:a] + "\033[%sm%s\033[0m" % (c, line[a:a + 10]) + line[a + 10:]
            out.append(line)
        out.append(("  nodes: " + (", ".join("%s%s" % (n, "" if node_ready(nodes[n]) else " (starting)")
                                             for n in sorted(nodes)) or "-"))[:width])
        text = "\n".join(out)
        if text == self.last:
            return
        if self.lines:
            sys.stdout.write("\033[%dA\033[J" % self.lines)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        self.lines, self.last, self.drawn = len(out), text, now


class LineView:
    """One line per change of an asset's phase, reason, node or version, and per
    node added, ready or removed, stamped with the time it was seen."""

    def __init__(self, title):
        self.sig, self.title = {}, title

    def start(self):
        print(self.title, flush=True)

    @staticmethod
    def signature(o):
        r = row_of(o)
        return (r["phase"], r["reason"], r["pool"], r["node"], r["version"])

    def prime(self, objs):
        """Where things stand before a command: only later changes are printed."""
        self.sig = {n: self.signature(o) for n, o in objs.items()}

    def event(self, t, kind, etype, obj, old):
        name = obj["metadata"]["name"]
        if kind == "node":
            if etype == "DELETED":
                msg = "removed by the autoscaler (idle)"
            elif old is None:
                msg = "added by the autoscaler (pool %s)%s" % (node_pool(obj), "" if node_ready(obj) else ", starting")
            elif node_ready(obj) and not node_ready(old):
                msg = "Ready"
            else:
                return
            print("  %5.1fs  node %s %s" % (t, name, msg), flush=True)
            return
        if etype == "DELETED":
            print("  %5.1fs  %-20s deleted" % (t, name), flush=True)
            self.sig.pop(name, None)
            return
        r, sig = row_of(obj), self.signature(obj)
        if self.sig.get(name) == sig:
            return
        self.sig[name] = sig
        where = "%s/%s" % (r["pool"], r["node"]) if r["pool"] != "-" else "-"
        print("  %5.1fs  %-20s %-10s %-14s %-13s %s" % (t, name, r["phase"], where, r["version"], r["reason"]),
              flush=True)

    def show(self, ams, nodes, order, elapsed, final=False):
        pass


def explain(o, why):
    s = st(o)
    print("\n%s: %s" % (o["metadata"]["name"], why))
    print("  phase %s, generation %s, observedGeneration %s, pod %s, node %s" % (
        s.get("phase"), o["metadata"].get("generation"), s.get("observedGeneration"),
        s.get("podName"), s.get("node")))
    if s.get("message"):
        print("  message: %s" % s["message"])
    for c in s.get("conditions") or []:
        print("  condition %s=%s %s: %s" % (c.get("type"), c.get("status"), c.get("reason"), c.get("message", "")))
    if s.get("podName"):
        try:
            log = get("/api/v1/namespaces/%s/pods/%s/log?tailLines=8" % (NS, s["podName"]), raw=True)
            print("  worker pod %s, last log lines:" % s["podName"])
            for line in log.rstrip("\n").split("\n"):
                print("    " + line[:300])
        except Exception as e:  # the pod may be gone already
            print("  (no pod log: %s)" % e)


def cmd_wait(*argv):
    """wait [--timeout S] [--title T] [--names A,B|*] [--old NAME=DV]... [-- COMMAND...]"""
    timeout, title, names, old, command = 120.0, "", "*", {}, []
    argv = list(argv)
    while argv:
        a = argv.pop(0)
        if a == "--":
            command = argv
            break
        v = argv.pop(0)
        if a == "--timeout":
            timeout = float(v)
        elif a == "--title":
            title = v
        elif a == "--names":
            names = v
        elif a == "--old":
            n, dv = v.split("=", 1)
            old[n] = dv
        else:
            sys.exit("demo: wait: unknown option %s" % a)
    q = queue.Queue()
    for path, kind in ((AMS, "am"), ("/api/v1/nodes", "node")):
        threading.Thread(target=watcher, args=(path, kind, q), daemon=True).start()
    state, synced = {"am": {}, "node": {}}, set()
    deadline = time.monotonic() + timeout

    def take(block_s):
        """Applies queued events to state; returns them."""
        got = []
        try:
            got.append(q.get(timeout=block_s))
            while True:
                got.append(q.get_nowait())
        except queue.Empty:
            pass
        out = []
        for t, kind, etype, obj in got:
            if etype == "LIST":
                state[kind] = {o["metadata"]["name"]: o for o in obj}
                synced.add(kind)
                continue
            name = obj["metadata"]["name"]
            out.append((t, kind, etype, obj, state[kind].get(name)))
            if etype == "DELETED":
                state[kind].pop(name, None)
            else:
                state[kind][name] = obj
        return out

    while len(synced) < 2:
        take(0.25)
        if time.monotonic() > deadline:
            print("demo: the API server did not answer list requests")
            return 2
    view = TableView(title) if TTY else LineView(title)
    t0 = time.monotonic()
    if command:
        view.prime(state["am"])
        print("  $ " + shlex.join(command), flush=True)
        r = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in r.stdout.rstrip("\n").split("\n"):
            if line:
                print("    " + line, flush=True)
        if r.returncode != 0:
            print("demo: the command failed (exit %d)" % r.returncode)
            return 1
    names = sorted(list_ams()) if names == "*" else [n for n in names.split(",") if n]
    view.start()
    if not command and not TTY:  # where things stand before the first change
        for n in topo(state["am"]):
            if n in names:
                view.event(0.0, "am", "MODIFIED", state["am"][n], None)
    while True:
        for t, kind, etype, obj, prev in take(0.25):
            if kind == "node" or obj["metadata"]["name"] in names:
                view.event(max(0.0, t - t0), kind, etype, obj, prev)
        elapsed = time.monotonic() - t0
        ams = state["am"]
        order = [n for n in topo(ams) if n in names]
        view.show(ams, state["node"], order, elapsed)
        bad = [n for n in order if failed(ams[n])]
        if bad:
            view.show(ams, state["node"], order, elapsed, final=True)
            for n in bad:
                explain(ams[n], "Failed")
            return 1
        if all(n in ams and settled(ams[n], old.get(n)) for n in names):
            view.show(ams, state["node"], order, elapsed, final=True)
            return 0
        if time.monotonic() > deadline:
            view.show(ams, state["node"], order, elapsed, final=True)
            left = [n for n in names if not (n in ams and settled(ams[n], old.get(n)))]
            print("\ndemo: timed out after %ds waiting for: %s" % (timeout, ", ".join(left)))
            for n in left:
                if n not in ams:
                    print("\n%s: does not exist" % n)
                else:
                    same = n in old and st(ams[n]).get("dataVersion") == old[n]
                    explain(ams[n], "not done" + (" (data version still %s)" % short(old[n]) if same else ""))
            return 2


# --- queries -----------------------------------------------------------------------------------

def cmd_names():
    print("\n".join(topo(list_ams())))


def cmd_versions():
    for n, o in sorted(list_ams().items()):
        print(n, st(o).get("dataVersion", "-"))


def cmd_downstream(name):
    objs, out, frontier = list_ams(), [], [name]
    while frontier:
        u = frontier.pop()
        for n in topo(objs):
            o = objs[n]
            if u in upstreams(o) and n not in out and (o.get("spec") or {}).get("refreshPolicy") != "Manual":
                out.append(n)
                frontier.append(n)
    print("\n".join(n for n in topo(objs) if n in out))


def cmd_manifest(name):
    o = get(AMS + "/" + name)
    m = o["metadata"]
    keep = {k: m[k] for k in ("name", "namespace", "labels", "annotations") if k in m}
    keep.get("annotations", {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
    print(json.dumps({"apiVersion": o["apiVersion"], "kind": o["kind"], "metadata": keep, "spec": o["spec"]}))


# --- the report ----------------------------------------------------------------------------------

def download(uri, path):
    from osgeo import gdal
    gdal.UseExceptions()
    src = "/vsis3/" + uri[len("s3://"):]
    stat = gdal.VSIStatL(src)
    if stat is None:
        raise RuntimeError("%s: not found" % uri)
    f = gdal.VSIFOpenL(src, "rb")
    try:
        data = gdal.VSIFReadL(1, stat.size, f)
    finally:
        gdal.VSIFCloseL(f)
    with open(path, "wb") as out:
        out.write(data)
    return data


def validate(path):
    r = subprocess.run([PYTHON, "-m", "osgeo_utils.samples.validate_cloud_optimized_geotiff", "--full-check=yes", path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode == 0 and "is a valid cloud optimized GeoTIFF" in r.stdout:
        return "valid", ""
    return "INVALID", " ".join(r.stdout.split())[:300]


def lineage_tree(objs, order):
    """Lines of the lineage tree, from status.lineage: what each output was made from."""
    kids, roots, extra = {}, [], {}
    for n in order:
        lin = st(objs[n]).get("lineage") or []
        ups = [e for e in lin if e.get("from")]
        ext = [e.get("uri", "?") for e in lin if not e.get("from")]
        if ups:
            for e in ups:
                kids.setdefault(e["from"], []).append((n, e))
            extra[n] = ext
        else:
            key = " + ".join(ext) or "(no inputs)"
            if key not in roots:
                roots.append(key)
            kids.setdefault(key, []).append((n, None))
            extra[n] = []
    lines, shown = [], set()

    def label(n, edge):
        o = objs[n]
        s = st(o)
        text = "%s  %s  %s" % (n, o["spec"].get("assetKey", ""), short(s.get("dataVersion")))
        if s.get("pool") and s.get("pool") != "cpu":
            text += "  [pool %s]" % s["pool"]
        if extra.get(n):
            text += "  + " + ", ".join(extra[n])
        if edge and edge.get("from") in objs and edge.get("dataVersion") != st(objs[edge["from"]]).get("dataVersion"):
            text += "  (read %s's older version %s)" % (edge["from"], short(edge.get("dataVersion")))
        return text

    def walk(n, edge, prefix, last):
        lines.append(prefix + ("└── " if last else "├── ") + label(n, edge) + ("  (see above)" if n in shown else ""))
        if n in shown:
            return
        shown.add(n)
        ch = kids.get(n, [])
        for i, (c, e) in enumerate(ch):
            walk(c, e, prefix + ("    " if last else "│   "), i == len(ch) - 1)

    for r in roots:
        lines.append(r)
        ch = kids[r]
        for i, (c, e) in enumerate(ch):
            walk(c, e, "", i == len(ch) - 1)
    return lines


def cmd_report(outdir):
    os.makedirs(outdir, exist_ok=True)
    objs = list_ams()
    order = topo(objs)
    rows, details, bad = [], [], 0
    for n in order:
        o, s = objs[n], st(objs[n])
        out = s.get("output") or {}
        uri = out.get("uri", "")
        ext = os.path.splitext(uri)[1] or ".bin"
        local = os.path.join(outdir, n + ext)
        cog, why, check = "-", "", "not checked"
        try:
            data = download(uri, local)
            mh = "1220" + hashlib.sha256(data).hexdigest()
            check = "matches the downloaded copy" if mh == out.get("checksum") else "DIFFERS from the downloaded copy (%s)" % mh
            if mh != out.get("checksum"):
                bad += 1
            if out.get("stacItem"):
                download(out["stacItem"], os.path.join(outdir, n + ".item.json"))
            if ext == ".tif":
                cog, why = validate(local)
                bad += cog != "valid"
            else:
                cog = "n/a (%s)" % ("GeoJSON" if ext == ".geojson" else ext[1:])
        except Exception as e:
            cog, why = "ERROR", str(e)
            bad += 1
        if s.get("phase") != "Succeeded":
            bad += 1
        rows.append((n, s.get("phase", "-"), s.get("pool", "-"), s.get("node", "-"), short(s.get("dataVersion")), cog))
        details.append((n, o, out, check, local, why))
    fmt = "  %-20s %-10s %-7s %-10s %-13s %s"
    print(fmt % ("ASSET", "PHASE", "POOL", "NODE", "VERSION", "COG (GDAL validate_cloud_optimized_geotiff)"))
    for r in rows:
        print(fmt % r)
    for n, o, out, check, local, why in details:
        print("\n  %s  (%s, %s)" % (n, o["spec"].get("assetKey"), o["spec"].get("operation")))
        print("    data version  %s" % st(o).get("dataVersion"))
        print("    output        %s  (%s bytes)" % (out.get("uri"), out.get("sizeBytes")))
        print("    checksum      %s  %s" % (out.get("checksum"), check))
        print("    STAC Item     %s" % out.get("stacItem"))
        print("    local copy    %s" % os.path.relpath(local, os.environ.get("DEMO_REL", os.getcwd())))
        if why:
            print("    validator     %s" % why)
    print("\nLineage (status.lineage: the exact inputs each output was made from)")
    for line in lineage_tree(objs, order):
        print("  " + line)
    return 1 if bad else 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {"wait": cmd_wait, "names": cmd_names, "versions": cmd_versions, "downstream": cmd_downstream,
          "manifest": cmd_manifest, "report": cmd_report}[cmd]
    sys.exit(fn(*args) or 0)


main()
PY
}
