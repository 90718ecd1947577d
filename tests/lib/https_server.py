#!/usr/bin/python3
"""A small https file server for tests, with redirects.

  https_server.py --dir D --cert C --key K --port-file F --log-file L [--plain]

Serves the files of D with HTTP Range support (206, Content-Range), and
answers GET /redirect/<n> with "302 Location: <line n of D/redirects.txt>",
so a test can point an allowlisted host at any other place. Each request
appends "<method> <path> <status>" to the log file, so a test can show a
place was never asked. The listening port (127.0.0.1, chosen by the system)
is written to the port file once the server is ready. --plain serves plain
http (the redirect target a worker must not follow). Files carry
Last-Modified (their mtime), and an ETag (a digest of the bytes) when the
name ends in .etag.tif; names starting with "noversion" carry neither (the
https-source tests observe these validators). Python standard library only.
"""
import argparse
import email.utils
import hashlib
import http.server
import os
import re
import ssl
import threading


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log-file", required=True)
    ap.add_argument("--plain", action="store_true")
    args = ap.parse_args()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def note(self, status):
            with lock, open(args.log_file, "a") as f:
                f.write("%s %s %d\n" % (self.command, self.path, status))

        def reply(self, status, headers=(), body=b""):
            self.note(status)
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self):
            m = re.fullmatch(r"/redirect/(\d+)", self.path)
            if m:
                with open(os.path.join(args.dir, "redirects.txt")) as f:
                    targets = f.read().splitlines()
                n = int(m.group(1))
                if n >= len(targets):
                    return self.reply(404)
                return self.reply(302, [("Location", targets[n])])
            path = os.path.join(args.dir, os.path.basename(self.path.split("?")[0]))
            if not os.path.isfile(path):
                return self.reply(404, body=b"no such file")
            data = open(path, "rb").read()
            name = os.path.basename(path)
            v = []
            if not name.startswith("noversion"):
                v.append(("Last-Modified",
                          email.utils.formatdate(os.stat(path).st_mtime, usegmt=True)))
            if name.endswith(".etag.tif"):
                v.append(("ETag", '"%s"' % hashlib.sha256(data).hexdigest()[:32]))
            rng = self.headers.get("Range")
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
            if not m:
                return self.reply(200, [("Accept-Ranges", "bytes")] + v, data)
            a = int(m.group(1))
            b = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            if a >= len(data):
                return self.reply(416, [("Content-Range", "bytes */%d" % len(data))])
            return self.reply(206, [("Content-Range", "bytes %d-%d/%d" % (a, b, len(data)))] + v,
                              data[a:b + 1])

        do_HEAD = do_GET

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if not args.plain:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
