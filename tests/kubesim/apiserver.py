"""The HTTP front end: Kubernetes REST paths, discovery, watches, admin.

One thread per connection (ThreadingHTTPServer), HTTP/1.1 with keep-alive;
watches and `logs -f` stream with chunked transfer encoding. Requests on
resources pass through fault injection (latency, 429, errors) and then the
Store. Paths under /kubesim/ are the admin endpoints the tests use to change
faults, compact history, preempt or OOM-kill pods and add or lose nodes; they
are never subject to faults.
"""

import json
import select
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import freshness
import labelsel
import openapi
import rbac
import scheduler
import store as store_mod
import tables
from util import ApiError, bad_request, dumps

MAX_BODY = 64 << 20


def _status_ok(details=None, code=200):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}
    if details:
        st["details"] = details
    return st


class Sim:
    """What the handler needs: set up by kubesim.py."""

    def __init__(self, store, faults, kubelet=None, cluster=None, bookmark_interval=60.0,
                 server_version="v1.30.0", token=None, verbose=False, fresh_wait=3.0,
                 authorization="AlwaysAllow"):
        self.store, self.faults, self.kubelet, self.cluster = store, faults, kubelet, cluster
        self.bookmark_interval = bookmark_interval
        self.fresh_wait = fresh_wait
        self.server_version = server_version
        # Every API request is authenticated, then authorized (rbac.py).
        self.authz = rbac.Authz(store, token, authorization)
        self.verbose = verbose
        self.stopping = False
        self.watch_lock = threading.Lock()
        self.active_watches = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY every
    # response on a reused connection waits for the client's delayed ACK.
    disable_nagle_algorithm = True
    server_version = "kubesim"
    sim = None  # set by make_server

    def log_message(self, fmt, *args):
        if self.sim.verbose:
            sys.stderr.write("kubesim: %s %s\n" % (self.address_string(), fmt % args))

    # ---- plumbing -----------------------------------------------------------

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537).strip()
                size = int(line.split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ApiError(413, "RequestEntityTooLarge", "request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge", "request body too large")
        return self.rfile.read(n) if n else b""

    def _send(self, code, data, ctype="application/json", headers=None):
        if isinstance(data, (dict, list)):
            data = dumps(data).encode()
        elif isinstance(data, str):
            data = data.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error(self, e):
        self._send(e.code, e.status(), headers=e.headers)

    def _start_stream(self, ctype="application/json"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def _chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def _end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_HEAD(self):
        self._dispatch("GET")

    def _dispatch(self, method):
        try:
            url = urllib.parse.urlsplit(self.path)
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
            raw = self._read_body()
            store_mod.REQUEST.agent = self.headers.get("User-Agent", "")
            # /kubesim/* is the simulator's control plane, outside the API.
            self.who = rbac.ADMIN
            if not url.path.startswith("/kubesim/"):
                self.who = self.sim.authz.authenticate(self.headers.get("Authorization", ""))
            self._route(method, url.path, q, raw)
        except ApiError as e:
            self._safe(lambda: self._send_error(e))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug: answer 500 and keep serving
            traceback.print_exc()
            self._safe(lambda: self._send_error(ApiError(500, "InternalError",
                                                         "Internal error occurred: %s" % e)))

    def _safe(self, fn):
        try:
            fn()
        except OSError:
            self.close_connection = True

    def _json_body(self, raw):
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise bad_request("the body of the request could not be decoded as JSON "
                              "(kubesim accepts JSON bodies only): %s" % e)

    # ---- routing ------------------------------------------------------------

    def _route(self, method, path, q, raw):
        sim = self.sim
        store = sim.store
        if path.startswith("/kubesim/") or path == "/kubesim":
            return self._admin(method, path, q, raw)
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return self._send(200, "ok", "text/plain; charset=utf-8")
        if path == "/version":
            v = sim.server_version.lstrip("v").split(".")
            return self._send(200, {"major": v[0], "minor": v[1] if len(v) > 1 else "0",
                                    "gitVersion": sim.server_version, "gitCommit": "kubesim",
                                    "gitTreeState": "clean", "buildDate": "2024-01-01T00:00:00Z",
                                    "goVersion": "go1.22.0", "compiler": "gc",
                                    "platform": "linux/amd64"})
        if path == "/api" or path == "/api/":
            host = self.headers.get("Host", "127.0.0.1")
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [
                                        {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        if path == "/apis" or path == "/apis/":
            with store.lock:
                return self._send(200, store.registry.api_group_list())
        if path.startswith("/openapi/"):
            return self._openapi(path)
        segs = [urllib.parse.unquote(s) for s in path.strip("/").split("/")]
        if segs[0] == "api":
            if len(segs) < 2:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            group, version, rest = "", segs[1], segs[2:]
        elif segs[0] == "apis" and len(segs) >= 2:
            group = segs[1]
            if len(segs) == 2:
                with store.lock:
                    g = store.registry.api_group(group)
                if not g:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return self._send(200, g)
            version, rest = segs[2], segs[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            with store.lock:
                rl = store.registry.resource_list(group, version)
            if not rl:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._send(200, rl)
        watch = False
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        with store.lock:
            res = store.registry.get(group, version, plural)
        if res is None or (ns is not None and not res.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub and sub not in res.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if watch or q.get("watch") in ("1", "true", "True"):
            verb = "watch"
        elif method == "GET":
            verb = "get" if name else "list"
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        else:
            verb = "delete" if name else "deletecollection"
        if res.namespaced and ns is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and ns is None and verb in ("create", "deletecollection"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                                                    "the requested resource")
        sim.authz.authorize(self.who, verb, res, ns, name, sub)
        if res.skey == ("", "serviceaccounts") and sub == "token":
            if verb != "create":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                                                        "the requested resource")
            with store.lock:
                return self._send(201, sim.authz.token_request(ns, name, self._json_body(raw)))
        fault_res = plural + ("/" + sub if sub else "")
        delay, err = sim.faults.api_fault(verb, fault_res, ns or "")
        if delay > 0:
            time.sleep(delay)
        if err:
            code, reason, msg, headers, details = err
            raise ApiError(code, reason, msg, details, headers)
        getattr(self, "_verb_" + verb)(res, ns, name, sub, q, raw)

    # ---- content negotiation --------------------------------------------------

    def _want(self):
        accept = self.headers.get("Accept", "") or ""
        for part in accept.split(","):
            p = part.replace(" ", "")
            if "as=Table" in p and ("g=meta.k8s.io" in p):
                return "table"
            if "as=PartialObjectMetadata" in p and "g=meta.k8s.io" in p:
                return "meta"
            if p.startswith("application/json") or p.startswith("*/*") or not p:
                return "json"
        return "json"

    def _render_one(self, res, obj, q):
        want = self._want()
        if want == "table":
            return tables.table(res, [obj], q.get("includeObject", "PartialObjectMetadata"),
                                {"resourceVersion": obj["metadata"].get("resourceVersion", "")})
        if want == "meta":
            return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata", {})}
        return obj

    def _warn_headers(self, warnings):
        return {"Warning": ", ".join('299 - %s' % json.dumps(w) for w in warnings)} if warnings else {}

    # ---- verbs --------------------------------------------------------------

    def _selectors(self, q):
        try:
            lreqs = labelsel.parse_label_selector(q.get("labelSelector"))
            freqs = labelsel.parse_field_selector(q.get("fieldSelector"))
        except ValueError as e:
            raise bad_request("unable to parse requirement: %s" % e)
        return lreqs, freqs

    def _verb_get(self, res, ns, name, sub, q, raw):
        if sub == "log":
            return self._logs(res, ns, name, q)
        if sub not in (None, "status"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                                                    "the requested resource")
        obj = self.sim.store.get(res, ns, name)
        self._send(200, self._render_one(res, obj, q))

    def _verb_list(self, res, ns, name, sub, q, raw):
        lreqs, freqs = self._selectors(q)
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise bad_request("limit must be an integer")
        err = freshness.too_large(self.sim.store, q.get("resourceVersion"), self.sim.fresh_wait)
        if err:
            raise err
        lst = self.sim.store.list(res, ns, lreqs, freqs, max(0, limit), q.get("continue") or None)
        want = self._want()
        if want == "table":
            out = tables.table(res, lst["items"], q.get("includeObject", "PartialObjectMetadata"),
                               lst["metadata"])
        elif want == "meta":
            out = {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                   "metadata": lst["metadata"],
                   "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                              "metadata": i["metadata"]} for i in lst["items"]]}
        else:
            out = lst
        self._send(200, out)

    def _verb_watch(self, res, ns, name, sub, q, raw):
        sim, store = self.sim, self.sim.store
        lreqs, freqs = self._selectors(q)
        if name:
            freqs = freqs + [("metadata.name", "=", name)]
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true", "True")
        send_initial = q.get("sendInitialEvents") in ("1", "true", "True")
        try:
            timeout = float(q.get("timeoutSeconds") or 0)
        except ValueError:
            raise bad_request("timeoutSeconds must be a number")
        err = freshness.too_large(store, q.get("resourceVersion"), sim.fresh_wait)
        if err:
            self._start_stream()
            self._chunk((json.dumps({"type": "ERROR", "object": err.status()}) + "\n").encode())
            self._end_stream()
            return
        w = store.watch_start(res, ns, q.get("resourceVersion"), lreqs, freqs, send_initial)
        want = self._want()
        include = q.get("includeObject", "PartialObjectMetadata")
        with sim.faults.lock:
            drop_events = sim.faults.watch_drop_events
            drop_seconds = sim.faults.watch_drop_seconds
            drop_mode = sim.faults.watch_drop_mode
        start = time.monotonic()
        deadline = start + timeout if timeout > 0 else None
        drop_at = start + float(drop_seconds) if drop_seconds else None
        self._start_stream()
        with sim.watch_lock:
            sim.active_watches += 1
        try:
            self._stream_watch(res, w, want, include, bookmarks, send_initial, deadline, drop_at,
                               drop_events, drop_mode)
        finally:
            with sim.watch_lock:
                sim.active_watches -= 1

    def _stream_watch(self, res, w, want, include, bookmarks, send_initial, deadline, drop_at,
                      drop_events, drop_mode):
        sim, store = self.sim, self.sim.store
        sent = 0

        def emit(etype, obj, wire=False):
            nonlocal sent
            if not wire and want not in ("table", "meta"):
                self._chunk(store.watch_line(res, etype, obj))
                sent += 1
                return
            o = obj if wire else store.to_wire(res, obj)
            if etype not in ("BOOKMARK", "ERROR"):
                if want == "table":
                    o = tables.table(res, [o], include,
                                     {"resourceVersion": o["metadata"].get("resourceVersion", "")})
                elif want == "meta":
                    o = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": o.get("metadata", {})}
            self._chunk(dumps({"type": etype, "object": o}).encode() + b"\n")
            sent += 1

        def bookmark(initial_end=False):
            m = {"resourceVersion": str(w.after)}
            if initial_end:
                m["annotations"] = {"k8s.io/initial-events-end": "true"}
            emit("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version, "metadata": m},
                 wire=True)

        def client_gone():
            # An idle watch notices a closed connection only by reading from
            # it; a watching client sends nothing else, so a read that finds
            # end-of-file means the client is gone.
            conn = self.connection
            try:
                r, _, _ = select.select([conn], [], [], 0)
                if not r:
                    return False
                if isinstance(conn, ssl.SSLSocket):
                    conn.setblocking(False)
                    try:
                        return conn.recv(1) == b""
                    except (ssl.SSLWantReadError, BlockingIOError):
                        return False
                    finally:
                        conn.setblocking(True)
                return conn.recv(1, socket.MSG_PEEK) == b""
            except (OSError, ValueError):
                return True

        def dropped():
            return (drop_events and sent >= int(drop_events)) or \
                (drop_at and time.monotonic() >= drop_at)

        try:
            for o in w.initial:
                emit("ADDED", o)
                if dropped():
                    return self._drop(drop_mode)
            w.initial = []
            if send_initial and bookmarks:
                bookmark(True)
            last_bm = time.monotonic()
            while not sim.stopping:
                now = time.monotonic()
                wait = 1.0
                if bookmarks:
                    wait = min(wait, max(0.01, last_bm + sim.bookmark_interval - now))
                if deadline:
                    wait = min(wait, max(0.0, deadline - now))
                if drop_at:
                    wait = min(wait, max(0.0, drop_at - now))
                try:
                    evs = store.watch_next(w, wait)
                except ApiError as e:
                    emit("ERROR", e.status(), wire=True)
                    break
                for etype, o in evs:
                    emit(etype, o)
                    if dropped():
                        return self._drop(drop_mode)
                now = time.monotonic()
                if dropped():
                    return self._drop(drop_mode)
                if not evs and client_gone():
                    self.close_connection = True
                    return
                if deadline and now >= deadline:
                    if bookmarks:
                        bookmark()
                    break
                if bookmarks and now - last_bm >= sim.bookmark_interval:
                    bookmark()
                    last_bm = now
            self._end_stream()
        except OSError:
            self.close_connection = True

    def _drop(self, mode):
        if mode == "close":
            self._end_stream()
            return
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _options(self, q):
        fv = q.get("fieldValidation", "")
        dry = q.get("dryRun") == "All"
        return dry, fv

    def _verb_create(self, res, ns, name, sub, q, raw):
        body = self._json_body(raw)
        dry, fv = self._options(q)
        store = self.sim.store
        if sub == "binding":
            return self._binding(res, ns, name, body)
        if sub == "eviction":
            return self._eviction(res, ns, name, body)
        if name is not None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                                                    "the requested resource")
        warnings = []
        obj = store.create(res, ns, body, dry, fv, warnings)
        self._send(201, self._render_one(res, obj, q), headers=self._warn_headers(warnings))

    def _verb_update(self, res, ns, name, sub, q, raw):
        body = self._json_body(raw)
        dry, fv = self._options(q)
        if sub not in (None, "status", "finalize"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                                                    "the requested resource")
        warnings = []
        obj = self.sim.store.update(res, ns, name, body, sub, dry, fv, warnings)
        self._send(200, self._render_one(res, obj, q), headers=self._warn_headers(warnings))

    def _verb_patch(self, res, ns, name, sub, q, raw):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        body = self._json_body(raw)
        dry, fv = self._options(q)
        if sub not in (None, "status"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                                                    "the requested resource")
        warnings = []
        obj, created = self.sim.store.patch(res, ns, name, ctype, body, sub, dry, fv, warnings,
                                            q.get("force") == "true")
        self._send(201 if created else 200, self._render_one(res, obj, q),
                   headers=self._warn_headers(warnings))

    def _delete_opts(self, q, raw):
        body = self._json_body(raw) or {}
        if not isinstance(body, dict):
            raise bad_request("DeleteOptions must be an object")
        for k in ("gracePeriodSeconds", "propagationPolicy", "orphanDependents"):
            if k in q and k not in body:
                v = q[k]
                if k == "gracePeriodSeconds":
                    v = int(v)
                elif k == "orphanDependents":
                    v = v == "true"
                body[k] = v
        if q.get("dryRun") == "All":
            body["dryRun"] = ["All"]
        return body

    def _verb_delete(self, res, ns, name, sub, q, raw):
        opts = self._delete_opts(q, raw)
        obj, code = self.sim.store.delete(res, ns, name, opts, "All" in (opts.get("dryRun") or []))
        self._send(code, self._render_one(res, obj, q))

    def _verb_deletecollection(self, res, ns, name, sub, q, raw):
        opts = self._delete_opts(q, raw)
        lreqs, freqs = self._selectors(q)
        store = self.sim.store
        lst = store.list(res, ns, lreqs, freqs)
        for o in lst["items"]:
            try:
                store.delete(res, o["metadata"].get("namespace"), o["metadata"]["name"], opts,
                             "All" in (opts.get("dryRun") or []))
            except ApiError as e:
                if e.code != 404:
                    raise
        self._send(200, {"apiVersion": res.api_version, "kind": res.list_kind,
                         "metadata": {"resourceVersion": str(store.rv)}, "items": lst["items"]})

    # ---- pods: binding, eviction, logs ---------------------------------------

    def _binding(self, res, ns, name, body):
        target = ((body or {}).get("target") or {}).get("name")
        if not target:
            raise ApiError(422, "Invalid", "Binding.target.name: Required value")
        store = self.sim.store
        with store.lock:
            pod = store.get(res, ns, name)
            if pod["spec"].get("nodeName"):
                raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on pods/binding "%s": '
                               "pod %s is already assigned to node \"%s\""
                               % (name, name, pod["spec"]["nodeName"]))
            pod["spec"]["nodeName"] = target
            store.update(res, ns, name, pod, "binding", internal=True)
            scheduler.mark_scheduled(store, ns, name, target)
        self._send(201, _status_ok(code=201))

    def _eviction(self, res, ns, name, body):
        store, kl = self.sim.store, self.sim.kubelet
        store.get(res, ns, name)   # 404 for a missing pod
        running = kl is not None and kl.disrupt(ns, name, "EvictionByEvictionAPI",
                                                "Eviction API: evicting", delete=True)
        if not running:   # nothing runs yet (or any more): evicting is deleting
            opts = (body or {}).get("deleteOptions") or {}
            store.delete(res, ns, name, opts)
        self._send(201, _status_ok(code=201))

    def _logs(self, res, ns, name, q):
        kl = self.sim.kubelet
        if kl is None:
            raise ApiError(404, "NotFound", "no kubelet")
        store = self.sim.store
        pod = store.get(res, ns, name)
        follow = q.get("follow") in ("true", "1")
        try:
            tail = int(q["tailLines"]) if q.get("tailLines") else None
            limit = int(q["limitBytes"]) if q.get("limitBytes") else None
        except ValueError:
            raise bad_request("tailLines and limitBytes must be integers")
        path, running = kl.log_source(pod, q.get("container"), q.get("previous") in ("true", "1"))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        if tail is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail:]) if tail > 0 else b""
        if limit is not None:
            data = data[:limit]
        if not follow:
            return self._send(200, data, "text/plain")
        self._start_stream("text/plain")
        try:
            self._chunk(data)
            sent = len(data)
            with open(path, "rb") as f:
                f.seek(0, 2)
                pos = f.tell()
                while not self.sim.stopping:
                    chunk = f.read(65536)
                    if chunk:
                        if limit is not None:
                            chunk = chunk[:max(0, limit - sent)]
                        self._chunk(chunk)
                        sent += len(chunk)
                        pos += len(chunk)
                        if limit is not None and sent >= limit:
                            break
                        continue
                    if not running():
                        rest = f.read()
                        if rest:
                            self._chunk(rest)
                        break
                    time.sleep(0.1)
            self._end_stream()
        except OSError:
            self.close_connection = True

    # ---- openapi --------------------------------------------------------------

    def _openapi(self, path):
        store, sim = self.sim.store, self.sim
        if path.rstrip("/") == "/openapi/v2":
            accept = self.headers.get("Accept", "") or ""
            with store.lock:
                if "protobuf" in accept:
                    return self._send(200, openapi.v2_protobuf(store.registry, sim.server_version),
                                      "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
                return self._send(200, openapi.v2_json(store.registry, sim.server_version))
        if path.rstrip("/") == "/openapi/v3":
            with store.lock:
                return self._send(200, openapi.index(store.registry, sim.server_version))
        if path.startswith("/openapi/v3/"):
            rest = path[len("/openapi/v3/"):].strip("/").split("/")
            doc = None
            with store.lock:
                if len(rest) == 2 and rest[0] == "api":
                    doc = openapi.gv_document(store.registry, "", rest[1], sim.server_version)
                elif len(rest) == 3 and rest[0] == "apis":
                    doc = openapi.gv_document(store.registry, rest[1], rest[2], sim.server_version)
            if doc:
                return self._send(200, doc)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # ---- admin ----------------------------------------------------------------

    def _admin(self, method, path, q, raw):
        sim, store = self.sim, self.sim.store
        parts = path.strip("/").split("/")[1:]
        what = parts[0] if parts else ""
        body = self._json_body(raw) if raw else None
        if what == "healthz":
            return self._send(200, {"ok": True})
        if what == "faults":
            if method in ("POST", "PUT"):
                try:
                    sim.faults.load(body or {})
                except (ValueError, TypeError) as e:
                    raise bad_request("invalid faults: %s" % e)
            return self._send(200, sim.faults.snapshot())
        if what == "compact" and method == "POST":
            rv = (body or {}).get("resourceVersion")
            return self._send(200, {"compactedResourceVersion": store.compact(rv),
                                    "resourceVersion": store.rv})
        if what == "state":
            with store.lock:
                out = {"resourceVersion": store.rv, "compactedResourceVersion": store.compacted_rv,
                       "historyLength": len(store.hist), "historySize": store.history_size,
                       "activeWatches": sim.active_watches}
            if sim.cluster:
                out["pools"] = sim.cluster.describe()
            return self._send(200, out)
        if what == "audit":
            with store.lock:
                recs = list(store.audit) if store.audit is not None else None
            if recs is None:
                raise ApiError(404, "NotFound", "kubesim runs without --audit")
            return self._send(200, {"records": recs})
        if what == "processes":
            return self._send(200, {"processes": sim.kubelet.processes() if sim.kubelet else []})
        if what in ("preempt", "oom", "evict") and method == "POST":
            b = body or {}
            if not b.get("name"):
                raise bad_request("name is required")
            ns = b.get("namespace", "default")
            if what == "oom":
                ok = sim.kubelet.force_oom(ns, b["name"])
            else:
                reason = b.get("reason") or ("PreemptionByScheduler" if what == "preempt"
                                             else "TerminationByKubelet")
                ok = sim.kubelet.disrupt(ns, b["name"], reason, b.get("message"),
                                         delete=bool(b.get("delete")))
            if not ok:
                raise ApiError(404, "NotFound", 'pod "%s/%s" is not running' % (ns, b["name"]))
            return self._send(200, {"ok": True})
        if what == "nodes" and sim.cluster:
            if method == "POST" and len(parts) == 1:
                b = body or {}
                node = sim.cluster.add_node(b.get("pool", ""), reason="admin")
                if node is None:
                    raise bad_request("unknown pool or pool at max: %r" % b.get("pool"))
                return self._send(201, node)
            if method in ("POST", "DELETE") and len(parts) >= 2:
                if not sim.cluster.kill_node(parts[1]):
                    raise ApiError(404, "NotFound", 'node "%s" not found' % parts[1])
                return self._send(200, {"ok": True})
            if method == "GET":
                return self._send(200, sim.cluster.describe())
        raise ApiError(404, "NotFound", "unknown kubesim admin endpoint %s %s" % (method, path))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    ssl_ctx = None

    def finish_request(self, request, client_address):
        # The TLS handshake runs on the connection's own thread, never in
        # the accept loop.
        if self.ssl_ctx is not None:
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (OSError, ValueError):
                return
        super().finish_request(request, client_address)


def make_server(sim, host="127.0.0.1", port=0, ssl_ctx=None):
    handler = type("BoundHandler", (Handler,), {"sim": sim})
    srv = Server((host, port), handler)
    srv.ssl_ctx = ssl_ctx
    return srv


