#!/usr/bin/python3
"""A stand-in for the EKS Pod Identity agent, for tests.

Serves GET <any path> like the agent: checks the Authorization header against
the token file (re-read on every request, as the agent sees rotated tokens)
and answers with temporary credentials as JSON:

  {"AccessKeyId": ..., "SecretAccessKey": ..., "Token": ..., "AccountId": ...,
   "Expiration": "<RFC 3339>"}

s3rver accepts any signature made with a key id it knows (S3RVER by default),
so the default credentials are AccessKeyId=S3RVER, SecretAccessKey=S3RVER and
a fresh session Token per fetch.

Modes (--mode):
  normal      credentials valid for an hour
  short       credentials valid for --lifetime seconds (default 3): a worker
              that runs longer must refresh them
  error500    every request gets HTTP 500
  badkey      valid-looking credentials with a key id s3rver does not know
  rotate      the first answer is the previous pair, whose key id s3rver no
              longer knows (InvalidAccessKeyId, what S3 answers a pair caught
              mid-rotation or expired; s3rver does not check SigV4 signatures,
              so SignatureDoesNotMatch cannot be provoked); every later answer
              is the current pair

A wrong or missing token gets HTTP 401 in every mode. The listening port is
written to --port-file once the server is ready; each request appends one
line to --log-file ("<status> <path>"), so tests can count fetches.
Python standard library only.
"""
import argparse
import datetime
import http.server
import json
import secrets
import standin
import threading


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["normal", "short", "error500", "badkey", "rotate"], default="normal")
    standin.common_args(ap)
    args = ap.parse_args()
    lock = threading.Lock()
    served = [0]

    def log(status, path):
        with lock, open(args.log_file, "a") as f:
            f.write(f"{status} {path}\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, status, body, ctype="application/json"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            log(status, self.path)

        def do_GET(self):
            want = standin.read_token(args.token_file)
            if not want or self.headers.get("Authorization") != want:
                self.reply(401, "invalid authorization token", "text/plain")
                return
            if args.mode == "error500":
                self.reply(500, '{"message":"internal error"}')
                return
            life = args.lifetime if args.mode == "short" else 3600
            with lock:
                served[0] += 1
                first = served[0] == 1
            previous = args.mode == "rotate" and first
            now = datetime.datetime.now(datetime.timezone.utc)
            exp = now + datetime.timedelta(seconds=life)
            self.reply(200, json.dumps({
                "AccessKeyId": "UNKNOWNKEY" if args.mode == "badkey" else "PREVIOUSKEY" if previous else args.key,
                "SecretAccessKey": args.secret,
                "Token": "session-" + secrets.token_hex(16),
                "AccountId": "123456789012",
                "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }))

        def log_message(self, *a):
            pass

    standin.serve(Handler, args.port_file)


if __name__ == "__main__":
    main()
