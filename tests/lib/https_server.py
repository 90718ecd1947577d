#!/usr/bin/env python3
"""A small HTTPS file server for the https-source tests.

    https_server.py --dir DIR --cert CERT --key KEY --ready-file FILE

Serves DIR like a static web server (Content-Length, Last-Modified from the
file's mtime, HEAD and GET with Range), plus an ETag (the file's SHA-256
prefix) for names ending in .etag.tif, no validators at all for names
starting with noversion, and a 302 to /elsewhere for /moved. Standard
library only: test infrastructure.
"""

import argparse
import email.utils
import hashlib
import http.server
import os
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = "."

    def log_message(self, fmt, *args):
        pass

    def _serve(self, with_body):
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "https://169.254.169.254/latest/meta-data")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        name = os.path.basename(self.path.split("?")[0])
        path = os.path.join(self.root, name)
        if not name or not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = open(path, "rb").read()
        start, end = 0, len(data) - 1
        rng = self.headers.get("Range")
        status = 200
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a or 0)
            end = min(int(b) if b else len(data) - 1, len(data) - 1)
            status = 206
        self.send_response(status)
        if not name.startswith("noversion"):
            mtime = os.stat(path).st_mtime
            self.send_header("Last-Modified", email.utils.formatdate(mtime, usegmt=True))
            if name.endswith(".etag.tif"):
                self.send_header("ETag", '"%s"' % hashlib.sha256(data).hexdigest()[:32])
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, len(data)))
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if with_body:
            self.wfile.write(data[start:end + 1])

    def do_GET(self):
        self._serve(True)

    def do_HEAD(self):
        self._serve(False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ready-file", required=True)
    a = ap.parse_args()
    Handler.root = a.dir
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(a.ready_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(a.ready_file + ".tmp", a.ready_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
