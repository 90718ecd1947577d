"""What the credential stand-ins (creds_server.py, sts_server.py) share: the
arguments every one takes and serving on loopback with the port written to
a file once ready. Python standard library only."""
import http.server
import os


def common_args(ap):
    """The token file the caller's token is checked against, the port and
    log files, and the credentials handed out."""
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log-file", required=True)
    ap.add_argument("--lifetime", type=float, default=3.0)
    ap.add_argument("--key", default="S3RVER")
    ap.add_argument("--secret", default="S3RVER")


def read_token(path):
    """The expected token, read again for every request as the kubelet
    rotates token files; None when the file cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def serve(handler, port_file):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    # Renamed into place, so a reader never sees a half-written port.
    os.replace(port_file + ".tmp", port_file)
    srv.serve_forever()
