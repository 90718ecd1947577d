#!/usr/bin/python3
"""A stand-in for AWS STS's AssumeRoleWithWebIdentity (IRSA), for tests.

Serves POST / with a form body like STS's query API
(Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=..&
RoleSessionName=..&WebIdentityToken=..): checks the token against the token
file (re-read on every request, as the kubelet rotates it) and the role ARN
against --role-arn, and answers with STS's XML:

  <AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>
    <Credentials><AccessKeyId/><SecretAccessKey/><SessionToken/><Expiration/>
    </Credentials>...

s3rver accepts any signature made with a key id it knows (S3RVER), so the
default credentials are AccessKeyId=S3RVER, SecretAccessKey=S3RVER and a
fresh SessionToken per call.

Modes (--mode):
  normal      credentials valid for an hour
  short       credentials valid for --lifetime seconds (default 3)
  badkey      valid-looking credentials with a key id s3rver does not know
  throttle    the first two calls get HTTP 400 <Code>Throttling</Code>, then normal
  error500    every call gets HTTP 500 with an InternalFailure ErrorResponse

A wrong token gets HTTP 400 InvalidIdentityToken, a wrong role ARN HTTP 403
AccessDenied, in every mode, with STS's <ErrorResponse> body. The port is
written to --port-file once ready; each call appends one line to --log-file:
"<status> token=<the token received> session=<RoleSessionName>
issued=<SessionToken or ->", so tests can check what was sent and given.
Python standard library only.
"""
import argparse
import datetime
import http.server
import secrets
import standin
import threading
import urllib.parse
from xml.sax.saxutils import escape


def error_doc(kind, code, message):
    return ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f'<Error><Type>{kind}</Type><Code>{code}</Code><Message>{escape(message)}</Message></Error>'
            f'<RequestId>{secrets.token_hex(8)}</RequestId></ErrorResponse>')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["normal", "short", "badkey", "throttle", "error500"], default="normal")
    ap.add_argument("--role-arn", required=True)
    standin.common_args(ap)
    args = ap.parse_args()
    lock = threading.Lock()
    calls = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, status, body, form, issued="-"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            tok = form.get("WebIdentityToken", ["-"])[0]
            sess = form.get("RoleSessionName", ["-"])[0]
            with lock, open(args.log_file, "a") as f:
                f.write(f"{status} token={tok} session={sess} issued={issued}\n")

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(n).decode(), keep_blank_values=True)
            one = lambda k: form.get(k, [None])[0]
            with lock:
                calls[0] += 1
                nth = calls[0]
            want = standin.read_token(args.token_file)
            if self.path != "/" or one("Action") != "AssumeRoleWithWebIdentity" or one("Version") != "2011-06-15":
                self.reply(400, error_doc("Sender", "InvalidAction", "not an AssumeRoleWithWebIdentity call"), form)
                return
            if args.mode == "error500":
                self.reply(500, error_doc("Receiver", "InternalFailure", "the service is down"), form)
                return
            if args.mode == "throttle" and nth <= 2:
                self.reply(400, error_doc("Sender", "Throttling", "Rate exceeded"), form)
                return
            if not want or one("WebIdentityToken") != want:
                self.reply(400, error_doc("Sender", "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider"), form)
                return
            if one("RoleArn") != args.role_arn:
                self.reply(403, error_doc("Sender", "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"), form)
                return
            life = args.lifetime if args.mode == "short" else 3600
            exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=life)
            session = "irsa-session-" + secrets.token_hex(16)
            key = "UNKNOWNKEY" if args.mode == "badkey" else args.key
            sess_name = escape(one("RoleSessionName") or "")
            body = ('<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                    '<AssumeRoleWithWebIdentityResult>'
                    '<SubjectFromWebIdentityToken>system:serviceaccount:irsa:terrane-worker</SubjectFromWebIdentityToken>'
                    '<Audience>sts.amazonaws.com</Audience>'
                    f'<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/terrane-worker/{sess_name}</Arn>'
                    f'<AssumedRoleId>AROAEXAMPLE:{sess_name}</AssumedRoleId></AssumedRoleUser>'
                    f'<Credentials><SessionToken>{session}</SessionToken>'
                    f'<SecretAccessKey>{escape(args.secret)}</SecretAccessKey>'
                    f'<Expiration>{exp.strftime("%Y-%m-%dT%H:%M:%S.000Z")}</Expiration>'
                    f'<AccessKeyId>{escape(key)}</AccessKeyId></Credentials>'
                    '<Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.example</Provider>'
                    '</AssumeRoleWithWebIdentityResult>'
                    f'<ResponseMetadata><RequestId>{secrets.token_hex(8)}</RequestId></ResponseMetadata>'
                    '</AssumeRoleWithWebIdentityResponse>')
            self.reply(200, body, form, session)

        def log_message(self, *a):
            pass

    standin.serve(Handler, args.port_file)


if __name__ == "__main__":
    main()
