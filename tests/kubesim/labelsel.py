"""Label and field selectors, and node selector terms (node affinity).

The string syntax is the API's (`?labelSelector=`): comma-separated
requirements `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
`k>N`, `k<N`. Field selectors take `f=v`, `f==v`, `f!=v`. A malformed selector
raises ValueError, which the API server turns into 400 BadRequest.
"""

import re

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[A-Za-z0-9._/\-]+)")
_NAME = re.compile(r"^[A-Za-z0-9._/\-]*$")


def _tokens(s):
    out = []
    pos = 0
    s = s.rstrip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m:
            raise ValueError("unable to parse requirement: invalid character at %r" % s[pos:])
        out.append(m.group(1))
        pos = m.end()
    return out


class Requirement:
    __slots__ = ("key", "op", "values")

    def __init__(self, key, op, values):
        self.key, self.op, self.values = key, op, values

    def matches(self, labels):
        has = self.key in labels
        v = labels.get(self.key)
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if self.op in ("=", "==", "in"):
            return has and v in self.values
        if self.op in ("!=", "notin"):
            return not has or v not in self.values
        if self.op in (">", "<"):
            if not has:
                return False
            try:
                lv, rv = int(v), int(self.values[0])
            except ValueError:
                return False
            return lv > rv if self.op == ">" else lv < rv
        return False

    def __repr__(self):
        return "Requirement(%r,%r,%r)" % (self.key, self.op, self.values)


def parse_label_selector(s):
    """List of Requirements (empty list selects everything)."""
    if s is None or not s.strip():
        return []
    toks = _tokens(s)
    reqs = []
    i = 0

    def expect_name():
        nonlocal i
        if i >= len(toks) or not _NAME.match(toks[i]) or toks[i] in ("in", "notin"):
            raise ValueError("unable to parse requirement: expected a label key or value")
        i += 1
        return toks[i - 1]

    while i < len(toks):
        if toks[i] == "!":
            i += 1
            reqs.append(Requirement(expect_name(), "!exists", []))
        else:
            key = expect_name()
            if i >= len(toks) or toks[i] == ",":
                reqs.append(Requirement(key, "exists", []))
            elif toks[i] in ("=", "==", "!="):
                op = toks[i]
                i += 1
                if i < len(toks) and toks[i] != "," and _NAME.match(toks[i]):
                    val = toks[i]
                    i += 1
                else:
                    val = ""
                reqs.append(Requirement(key, op, [val]))
            elif toks[i] in (">", "<"):
                op = toks[i]
                i += 1
                val = expect_name()
                try:
                    int(val)
                except ValueError:
                    raise ValueError("for 'Gt', 'Lt' operators, the value must be an integer")
                reqs.append(Requirement(key, op, [val]))
            elif toks[i] in ("in", "notin"):
                op = toks[i]
                i += 1
                if i >= len(toks) or toks[i] != "(":
                    raise ValueError("found '%s', expected: '('" % (toks[i] if i < len(toks) else ""))
                i += 1
                vals = []
                while True:
                    if i >= len(toks):
                        raise ValueError("found '', expected: ',', ')'")
                    if toks[i] == ")":
                        i += 1
                        break
                    if toks[i] == ",":
                        i += 1
                        continue
                    vals.append(expect_name())
                reqs.append(Requirement(key, op, vals))
            else:
                raise ValueError("found '%s', expected: in, notin, =, ==, !=, gt, lt" % toks[i])
        if i < len(toks):
            if toks[i] != ",":
                raise ValueError("found '%s', expected: ','" % toks[i])
            i += 1
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


def parse_field_selector(s):
    """List of (field, op, value) with op one of '=', '!='."""
    out = []
    if s is None or not s.strip():
        return out
    for part in _split_unescaped(s, ","):
        part = part.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            idx = part.find(op)
            if idx > 0:
                field, value = part[:idx].strip(), part[idx + len(op):].strip()
                out.append((field, "!=" if op == "!=" else "=", _unescape(value)))
                break
        else:
            raise ValueError("invalid selector: '%s'; can't understand '%s'" % (s, part))
    return out


def _split_unescaped(s, sep):
    parts, cur, esc = [], [], False
    for ch in s:
        if esc:
            cur.append("\\" + ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _unescape(v):
    return re.sub(r"\\(.)", r"\1", v)


def node_selector_requirement_matches(expr, labels):
    key, op, vals = expr.get("key", ""), expr.get("operator"), expr.get("values") or []
    has = key in labels
    v = labels.get(key)
    if op == "In":
        return has and v in vals
    if op == "NotIn":
        return not has or v not in vals
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt"):
        try:
            lv, rv = int(v), int(vals[0])
        except (TypeError, ValueError, IndexError):
            return False
        return lv > rv if op == "Gt" else lv < rv
    return False


def node_selector_terms_match(terms, node):
    """requiredDuringSchedulingIgnoredDuringExecution: terms are ORed, the
    expressions inside one term ANDed. matchFields supports metadata.name."""
    labels = node.get("metadata", {}).get("labels") or {}
    fields = {"metadata.name": node.get("metadata", {}).get("name", "")}
    for term in terms or []:
        exprs = term.get("matchExpressions") or []
        fexprs = term.get("matchFields") or []
        if not exprs and not fexprs:
            continue  # an empty term matches no objects
        if all(node_selector_requirement_matches(e, labels) for e in exprs) and \
                all(node_selector_requirement_matches(e, fields) for e in fexprs):
            return True
    return False
