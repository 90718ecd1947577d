#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of the local S3 server (s3rver).

    s3fault.py --listen-port 0 --upstream 127.0.0.1:PORT --ready-file FILE

Requests are forwarded unchanged (headers included, so SigV4 signatures made
for the proxy's host:port still verify upstream), unless a fault rule
matches: then the proxy answers itself with the rule's status and an S3
<Error> body. Rules are set over HTTP by the test:

    PUT /__faults   [{"method": "GET", "match": "list-type=2", "status": 503,
                      "code": "SlowDown", "count": 2}, ...]
    GET /__stats    {"requests": N, "faulted": M, "byMethod": {...}}

`match` is a regular expression searched in the request target (path and
query); `count` is how many matching requests fail (-1: all). A rule with
`delaySeconds` and no `status` does not fail the request: it forwards it
after that pause (a slow S3). The rule list is replaced by each PUT.

--record FILE appends one line per forwarded request, "<METHOD> <target>
key=<the SigV4 Credential's key id or -> token=<X-Amz-Security-Token or ->",
so a test can see which credentials signed what (s3rver checks neither the
signature nor the session token). Standard library only: test infrastructure.
"""

import argparse
import http.client
import http.server
import json
import re
import sys
import time
import threading


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.requests = 0
        self.faulted = 0
        self.by_method = {}


STATE = State()
UPSTREAM = None
RECORD = None
SIGV4_KEY = re.compile(r"Credential=([^/,\s]+)/")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reply(self, status, body, ctype="application/xml", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _control(self):
        if self.path == "/__faults" and self.command == "PUT":
            rules = json.loads(self._body() or b"[]")
            with STATE.lock:
                STATE.rules = [dict(r, _re=re.compile(r.get("match", ""))) for r in rules]
            self._reply(200, b"{}", "application/json")
            return True
        if self.path == "/__stats" and self.command == "GET":
            with STATE.lock:
                body = json.dumps({"requests": STATE.requests, "faulted": STATE.faulted,
                                   "byMethod": STATE.by_method}).encode()
            self._reply(200, body, "application/json")
            return True
        return False

    def _fault(self):
        with STATE.lock:
            STATE.requests += 1
            STATE.by_method[self.command] = STATE.by_method.get(self.command, 0) + 1
            for r in STATE.rules:
                if r.get("method", self.command) != self.command:
                    continue
                if not r["_re"].search(self.path):
                    continue
                if r.get("count", -1) == 0:
                    continue
                if r.get("count", -1) > 0:
                    r["count"] -= 1
                STATE.faulted += 1
                return r
        return None

    def _handle(self):
        if self.path.startswith("/__"):
            if not self._control():
                self._reply(404, b"")
            return
        body = self._body()
        rule = self._fault()
        if rule and "status" not in rule:
            time.sleep(float(rule.get("delaySeconds", 0)))
            rule = None
        if rule:
            code = rule.get("code", "InternalError")
            err = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                   "<Message>injected by s3fault</Message><RequestId>0</RequestId></Error>"
                   % code).encode()
            self._reply(int(rule["status"]), err)
            return
        if RECORD:
            m = SIGV4_KEY.search(self.headers.get("Authorization") or "")
            line = "%s %s key=%s token=%s\n" % (self.command, self.path, m.group(1) if m else "-",
                                                 self.headers.get("X-Amz-Security-Token") or "-")
            with STATE.lock, open(RECORD, "a") as f:
                f.write(line)
        conn = http.client.HTTPConnection(UPSTREAM, timeout=60)
        try:
            hdrs = {k: v for k, v in self.headers.items()
                    if k.lower() not in ("connection", "keep-alive", "expect",
                                         "transfer-encoding", "content-length")}
            hdrs["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() in ("connection", "keep-alive", "transfer-encoding",
                                 "content-length"):
                    continue
                self.send_header(k, v)
            # HEAD answers keep the upstream's Content-Length: it is the object's size.
            length = resp.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length if length is not None else str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def main():
    global UPSTREAM, RECORD
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen-port", type=int, default=0)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--record")
    a = ap.parse_args()
    UPSTREAM = a.upstream
    RECORD = a.record
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.listen_port), Handler)
    with open(a.ready_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.replace(a.ready_file + ".tmp", a.ready_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
