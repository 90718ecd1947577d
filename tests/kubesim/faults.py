"""Fault injection: what the API and the simulated nodes do wrong on purpose.

The configuration is one JSON document (README.md, "Faults"), loaded from
--faults and replaced at run time by POST /kubesim/faults. Random choices are
deterministic for a given seed: the n-th request that a rule sees draws from
a generator seeded with (seed, rule index, n), so the same sequence of
requests meets the same faults whatever the thread timing.
"""

import fnmatch
import random
import threading
import time

import labelsel


def _as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


class Rule:
    """One API fault rule: which requests it applies to, and how often."""

    def __init__(self, d, idx, seed):
        self.verbs = set(_as_list(d.get("verbs") or d.get("verb")))
        self.resources = set(_as_list(d.get("resources") or d.get("resource")))
        self.namespaces = set(_as_list(d.get("namespaces")))
        self.rate = float(d.get("rate", 1))
        self.count = d.get("count")
        self.skip = int(d.get("skip", 0))
        self.code = int(d.get("code", 500))
        self.retry_after = d.get("retryAfterSeconds", 1)
        self.ms = float(d.get("ms", d.get("latencyMs", 0)))
        self.message = d.get("message")
        self.seen = 0
        self.fired = 0
        self.idx, self.seed = idx, seed

    def applies(self, verb, resource, ns):
        if self.verbs and verb not in self.verbs and "*" not in self.verbs:
            return False
        if self.resources and resource not in self.resources and \
                resource.split("/")[0] not in self.resources and "*" not in self.resources:
            return False
        if self.namespaces and ns not in self.namespaces:
            return False
        return True

    def fire(self):
        """Called with the Faults lock held, for a request this rule applies to."""
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.count is not None and self.fired >= int(self.count):
            return False
        if self.rate >= 1:
            hit = True
        elif self.rate <= 0:
            hit = False
        else:
            hit = random.Random("%s:%d:%d" % (self.seed, self.idx, self.seen)).random() < self.rate
        if hit:
            self.fired += 1
        return hit


class PodRule:
    """A kubelet fault (oom / preempt) aimed at pods by selector or name."""

    def __init__(self, d):
        self.selector = labelsel.parse_label_selector(d.get("selector", ""))
        self.name = d.get("name") or d.get("namePattern") or "*"
        self.namespace = d.get("namespace")
        self.count = d.get("count")
        self.after = float(d.get("afterSeconds", 0))
        self.reason = d.get("reason")
        self.message = d.get("message")
        self.delete = bool(d.get("delete", False))
        self.fired = 0

    def matches(self, pod):
        m = pod.get("metadata") or {}
        if self.namespace and m.get("namespace") != self.namespace:
            return False
        if not fnmatch.fnmatchcase(m.get("name", ""), self.name):
            return False
        return labelsel.labels_match(self.selector, m.get("labels"))

    def take(self):
        if self.count is not None and self.fired >= int(self.count):
            return False
        self.fired += 1
        return True


class Faults:
    def __init__(self, seed=0):
        self.lock = threading.Lock()
        self.default_seed = seed
        self.load({})

    def load(self, doc):
        if not isinstance(doc, dict):
            raise ValueError("faults must be a JSON object")
        seed = doc.get("seed", self.default_seed)
        errors = [Rule(d, i, seed) for i, d in enumerate(_as_list(doc.get("errors")))]
        throttle = [Rule(dict(d, code=429), 1000 + i, seed)
                    for i, d in enumerate(_as_list(doc.get("throttle")))]
        latency = [Rule(d, 2000 + i, seed) for i, d in enumerate(_as_list(doc.get("latency")))]
        w = doc.get("watch") or {}
        comp = doc.get("compact") or {}
        oom = [PodRule(d) for d in _as_list(doc.get("oom"))]
        pre = [PodRule(d) for d in _as_list(doc.get("preempt"))]
        slow = doc.get("slowNodes") or {}
        if not isinstance(slow, dict):
            raise ValueError("slowNodes must map pool names to seconds")
        with self.lock:
            self.doc = doc
            self.errors, self.throttle, self.latency = errors, throttle, latency
            self.watch_drop_events = w.get("dropAfterEvents")
            self.watch_drop_seconds = w.get("dropAfterSeconds")
            self.watch_drop_mode = w.get("mode", "reset")
            self.compact_every = comp.get("everySeconds")
            self.oom, self.preempt = oom, pre
            self.slow = {k: float(v) for k, v in slow.items()}
            self.started = time.monotonic()

    def snapshot(self):
        with self.lock:
            out = dict(self.doc)
            out["_counters"] = {
                "errors": [{"seen": r.seen, "fired": r.fired} for r in self.errors],
                "throttle": [{"seen": r.seen, "fired": r.fired} for r in self.throttle],
                "oom": [{"fired": r.fired} for r in self.oom],
                "preempt": [{"fired": r.fired} for r in self.preempt],
            }
            return out

    def api_fault(self, verb, resource, ns):
        """(latency seconds, None or (code, reason, message, headers))."""
        with self.lock:
            delay = sum(r.ms for r in self.latency if r.applies(verb, resource, ns)) / 1000.0
            for r in self.throttle:
                if r.applies(verb, resource, ns) and r.fire():
                    return delay, (429, "TooManyRequests",
                                   r.message or "Too many requests, please try again later.",
                                   {"Retry-After": str(int(r.retry_after))},
                                   {"causes": [{"reason": "RetryAfter",
                                                "message": "retry after %ss" % r.retry_after}],
                                    "retryAfterSeconds": int(r.retry_after)})
            for r in self.errors:
                if r.applies(verb, resource, ns) and r.fire():
                    reason = {500: "InternalError", 503: "ServiceUnavailable",
                              504: "Timeout", 409: "Conflict"}.get(r.code, "InternalError")
                    return delay, (r.code, reason, r.message or
                                   "Internal error occurred: injected fault (kubesim)", {}, None)
        return delay, None

    def pod_fault(self, kind, pod, running_for):
        """The first oom/preempt rule due for this running pod, consumed."""
        with self.lock:
            for r in (self.oom if kind == "oom" else self.preempt):
                if running_for >= r.after and r.matches(pod) and r.take():
                    return r
        return None

    def slow_delay(self, pool):
        with self.lock:
            return self.slow.get(pool, self.slow.get("*", 0.0))
