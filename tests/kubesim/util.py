"""Shared helpers: API errors as Kubernetes Status objects, timestamps, copying.

Every failure the API server reports is an ApiError carrying the HTTP code and a
metav1.Status body, built here so that messages, reasons and details look like
the real API server's (clients such as kubectl print `message` verbatim).
"""

import datetime
import json
import threading
import time


class ApiError(Exception):
    """An error answered to the client as a metav1.Status."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        st = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            st["details"] = self.details
        return st


def res_label(res):
    """`widgets.example.terrane.io` or `pods`: how errors name a resource."""
    return res.plural + ("." + res.group if res.group else "")


def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (res_label(res), name),
                    {"name": name, "group": res.group, "kind": res.plural})


def already_exists(res, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res_label(res), name),
                    {"name": name, "group": res.group, "kind": res.plural})


def conflict(res, name, why="the object has been modified; please apply your changes "
                            "to the latest version and try again"):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (res_label(res), name, why),
                    {"name": name, "group": res.group, "kind": res.plural})


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def invalid(res, name, causes):
    """422 Invalid. causes: list of (field, reason, message)."""
    kind_label = res.kind + ("." + res.group if res.group else "")
    parts = ["%s: %s" % (f, m) if f else m for f, _, m in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (kind_label, name, joined),
                    {"name": name, "group": res.group, "kind": res.kind,
                     "causes": [{"reason": r, "message": m, "field": f} for f, r, m in causes]})


def rv_required(res, name):
    """422 for a PUT without metadata.resourceVersion where the strategy does
    not allow unconditional updates. As the generic registry store says it:
    the kind is the qualified resource and the value the parsed version 0."""
    msg = "Invalid value: 0x0: must be specified for an update"
    return ApiError(422, "Invalid", '%s "%s" is invalid: metadata.resourceVersion: %s'
                    % (res_label(res), name, msg),
                    {"name": name, "group": res.group, "kind": res.plural,
                     "causes": [{"reason": "FieldValueInvalid", "message": msg,
                                 "field": "metadata.resourceVersion"}]})


def forbidden(message, details=None):
    return ApiError(403, "Forbidden", message, details)


def gone(message):
    return ApiError(410, "Expired", message)


def now_ts(t=None):
    """RFC 3339 timestamp with second precision, as metav1.Time serialises."""
    if t is None:
        t = time.time()
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def parse_ts(s):
    """Seconds since the epoch of an RFC 3339 timestamp, or None."""
    if not isinstance(s, str) or not s:
        return None
    try:
        v = s.replace("Z", "+00:00")
        return datetime.datetime.fromisoformat(v).timestamp()
    except ValueError:
        return None


def human_duration(seconds):
    """Short age as `kubectl get` shows it (5s, 3m20s, 4h, 2d3h, 2y)."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = m // 60
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    if h < 24 * 8:
        return "%dd%dh" % (h // 24, h % 24) if h % 24 else "%dd" % (h // 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    d = h // 24
    if h < 24 * 365 * 8:
        return "%dy%dd" % (d // 365, d % 365) if d % 365 else "%dy" % (d // 365)
    return "%dy" % (d // 365)


def age(ts):
    t = parse_ts(ts)
    if t is None:
        return "<unknown>"
    return human_duration(time.time() - t)


def deepcopy(o):
    # JSON-shaped data only: a round trip through json is faster than copy.deepcopy.
    return json.loads(json.dumps(o))


def dumps(o):
    return json.dumps(o, separators=(",", ":"))


class Worker:
    """A simulated controller's loop on its own daemon thread: subclasses
    implement run() and watch stop_event."""

    def __init__(self, name):
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_event.set()

    def join(self, timeout=None):
        self.thread.join(timeout)
