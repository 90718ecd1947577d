"""The JSONPath subset that CRD additionalPrinterColumns and selectableFields use.

Supported: `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[*]`, `.*`, filters
`[?(@.type=="Ready")]` with == != < > <= >= or a bare `@.x` (exists), an
optional leading `$` and optional surrounding braces. Evaluation returns the
list of matches; printer columns use the first.
"""

import json
import re


class JsonPathError(ValueError):
    pass


_FILTER = re.compile(r"^\?\(\s*@((?:\.[A-Za-z0-9_\-/]+|\['[^']*'\]|\[\"[^\"]*\"\])*)\s*"
                     r"(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")


def _parse_filter_value(s):
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    if s in ("true", "false"):
        return s == "true"
    try:
        return json.loads(s)
    except ValueError:
        raise JsonPathError("unrecognised filter value %r" % s)


def parse(path):
    p = path.strip()
    if p.startswith("{") and p.endswith("}"):
        p = p[1:-1].strip()
    if p.startswith("$"):
        p = p[1:]
    steps = []
    i = 0
    while i < len(p):
        c = p[i]
        if c == ".":
            i += 1
            if i < len(p) and p[i] == "*":
                steps.append(("wild",))
                i += 1
                continue
            j = i
            while j < len(p) and p[j] not in ".[":
                j += 1
            name = p[i:j]
            if not name:
                if j < len(p) and p[j] == "[":
                    i = j
                    continue
                if j >= len(p) and not steps:
                    break  # "." alone: the whole object
                raise JsonPathError("unexpected '.' at %d in %r" % (i, path))
            steps.append(("key", name))
            i = j
        elif c == "[":
            depth, j = 0, i
            while j < len(p):
                if p[j] == "[":
                    depth += 1
                elif p[j] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                elif p[j] in "\"'":
                    q = p[j]
                    j += 1
                    while j < len(p) and p[j] != q:
                        j += 1
                j += 1
            if j >= len(p):
                raise JsonPathError("unterminated '[' in %r" % path)
            inner = p[i + 1:j].strip()
            i = j + 1
            if inner == "*":
                steps.append(("wild",))
            elif len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "\"'":
                steps.append(("key", inner[1:-1]))
            elif inner.startswith("?"):
                m = _FILTER.match(inner)
                if not m:
                    raise JsonPathError("unsupported filter %r" % inner)
                sub = parse(m.group(1)) if m.group(1) else []
                op = m.group(2)
                val = _parse_filter_value(m.group(3)) if op else None
                steps.append(("filter", sub, op, val))
            else:
                try:
                    steps.append(("index", int(inner)))
                except ValueError:
                    raise JsonPathError("unsupported subscript [%s] in %r" % (inner, path))
        else:
            # a path may start without a dot (e.g. "spec.x")
            j = i
            while j < len(p) and p[j] not in ".[":
                j += 1
            steps.append(("key", p[i:j]))
            i = j
    return steps


def _cmp(a, op, b):
    if op == "==":
        return a == b or (a is not None and str(a) == str(b) and not isinstance(b, bool))
    if op == "!=":
        return not _cmp(a, "==", b)
    try:
        if op == "<":
            return a < b
        if op == ">":
            return a > b
        if op == "<=":
            return a <= b
        if op == ">=":
            return a >= b
    except TypeError:
        return False
    return False


def evaluate(steps, obj):
    cur = [obj]
    for st in steps:
        nxt = []
        for v in cur:
            if st[0] == "key":
                if isinstance(v, dict) and st[1] in v:
                    nxt.append(v[st[1]])
            elif st[0] == "index":
                if isinstance(v, list) and -len(v) <= st[1] < len(v):
                    nxt.append(v[st[1]])
            elif st[0] == "wild":
                if isinstance(v, list):
                    nxt.extend(v)
                elif isinstance(v, dict):
                    nxt.extend(v.values())
            elif st[0] == "filter":
                items = v if isinstance(v, list) else (list(v.values()) if isinstance(v, dict) else [])
                for it in items:
                    found = evaluate(st[1], it)
                    if st[2] is None:
                        if found:
                            nxt.append(it)
                    elif found and _cmp(found[0], st[2], st[3]):
                        nxt.append(it)
        cur = nxt
    return cur


def to_text(v):
    """A value as kubectl's JSONPath printer renders it."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)
