#!/usr/bin/env python3
"""Generate the AssetMaterialization CRD's params schema from the task contract.

    scripts/gen-crd.py            rewrite the CRD (crds/, helm/terrane/crds/) and the params policy
                                  (crds/, helm/terrane/templates/) from the template and the schema,
                                  and the AssetSource CRD from its template
    scripts/gen-crd.py --check    exit 1 when a committed file differs from the generated one
    scripts/gen-crd.py --costs    also print the rules' estimated CEL cost (see below)

The template crds/template/assetmaterializations.yaml.in holds everything
written by hand; its @OPERATIONS@, @PARAMS@ and @SPEC_RULES@ lines are replaced
with what proto/schema/task.v1.json says, so that `kubectl explain am.spec.params`
shows each operation's params and the API server rejects a wrong param at
apply time, by its own machinery:

  * spec.params is a structural schema: the union of every operation's params,
    each with its type, description and the value validations all operations
    agree on (enum, minimum, pattern, ...). A name no operation knows is an
    unknown field (kubectl apply's default --validate=strict makes it an error).
  * Everything that depends on the operation (a param another operation owns,
    required params, an enum that differs between operations, the schema's
    if/then/else blocks, a param that must name an input) becomes an
    x-kubernetes-validations CEL rule on spec, with fieldPath naming the param.

Operations are read from the schema's per-operation `if: {operation: const}`
blocks, so an operation added to the schema needs no change here. An operation
in SPEC_FIELDS keeps its params in a spec field of its own (container: the
user's image in spec.container, @CONTAINER@ in the template): that field is its
params schema made structural, spec.params takes none of the other operations'
params for it, and a rule ties the field to the operation.

Limits of the real API server this stays within (and what it cannot say):
  * Structural schemas: every field has one type, except int-or-string and
    x-kubernetes-preserve-unknown-fields nodes; no type or description inside
    anyOf/allOf/oneOf/not; no uniqueItems (x-kubernetes-list-type: set instead).
    A param of several types (nodata: a number or "none"; resolution: a number
    or [x, y]) is therefore a preserve-unknown-fields node carrying only the
    value validations that are safe for every type.
  * CEL sees no field without a type (the apiserver ignores
    preserve-unknown-fields data in rules), so rules about those params go to
    a ValidatingAdmissionPolicy (crds/...-params-policy.yaml and the chart's
    templates/params-policy.yaml), whose `object` is dynamically typed: each
    check there is guarded by a type test. What neither can say is left to
    the controller, which checks the whole task contract before any pod is
    created, and listed in the generated CRD's params description.
  * Patterns are Go RE2: no lookahead. A pattern with one is relaxed (the
    lookahead dropped) and, where the lookahead sits where every match has
    read the same literal text (the pattern's start, or the start of a branch
    no other branch begins like), a CEL rule on the field says it exactly
    (`!self.startsWith('TERRANE_')`, `!self.matches('^\\+proj=(?:...)')`);
    any other lookahead is left to the controller and listed as such.
  * CEL cost: the API server estimates each rule's worst-case cost from the
    schema (string, list and map sizes bounded by maxLength, maxItems and
    maxProperties, or by the request size limit where unbounded), times the
    number of times it can run (the bounds of the lists above it), and refuses
    a CRD with a rule above 10^7 or a total above 10^8
    (tests/kubesim/celcost.py has the model). The generator computes the same
    estimate and fails when the CRD would be refused; `--costs` prints it.
"""

import json
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SCHEMA_FILE = os.path.join(ROOT, "proto/schema/task.v1.json")
TEMPLATE = os.path.join(ROOT, "crds/template/assetmaterializations.yaml.in")
OUTPUTS = [os.path.join(ROOT, "crds/terrane.io_assetmaterializations.yaml"),
           os.path.join(ROOT, "helm/terrane/crds/terrane.io_assetmaterializations.yaml")]
# The AssetSource CRD has no generated part: its template is copied as it is,
# so that crds/ and the chart always ship the same file.
SOURCE_TEMPLATE = os.path.join(ROOT, "crds/template/assetsources.yaml.in")
SOURCE_OUTPUTS = [os.path.join(ROOT, "crds/terrane.io_assetsources.yaml"),
                  os.path.join(ROOT, "helm/terrane/crds/terrane.io_assetsources.yaml")]
POLICY = os.path.join(ROOT, "crds/terrane.io_assetmaterializations-params-policy.yaml")
POLICY_CHART = os.path.join(ROOT, "helm/terrane/templates/params-policy.yaml")
POLICY_NAME = "terrane-params"

SCHEMA = json.load(open(SCHEMA_FILE, encoding="utf-8"))
NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
STRINGY = ("minLength", "maxLength", "pattern")
ARRAYISH = ("minItems", "maxItems")


class Untranslatable(Exception):
    """A constraint CEL cannot evaluate on the API server."""


def resolve(s):
    """The schema with its $ref followed; sibling keywords win over the target's."""
    while isinstance(s, dict) and "$ref" in s:
        ref = s["$ref"]
        if not ref.startswith("#/$defs/"):
            raise SystemExit("unsupported $ref %s" % ref)
        target = dict(SCHEMA["$defs"][ref[len("#/$defs/"):]])
        rest = {k: v for k, v in s.items() if k != "$ref"}
        target.update(rest)
        s = target
    return s


def jtype(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "integer" if v.is_integer() and abs(v) < 2 ** 53 else "number"
    return {str: "string", list: "array", dict: "object"}.get(type(v), "null")


def types_of(s):
    """JSON types a schema admits (None: any), integer folded into number when both."""
    s = resolve(s)
    if s is True or s is False:
        return None if s else set()
    if "type" in s:
        t = set([s["type"]] if isinstance(s["type"], str) else s["type"])
    elif "enum" in s:
        t = {jtype(v) for v in s["enum"]}
    elif "const" in s:
        t = {jtype(s["const"])}
    elif "anyOf" in s or "oneOf" in s:
        t = set()
        for b in s.get("anyOf") or s.get("oneOf"):
            bt = types_of(b)
            if bt is None:
                return None
            t |= bt
    else:
        return None
    if "integer" in t and "number" in t:
        t.discard("integer")
    return t


# ---- CEL text -----------------------------------------------------------------

def lit(v, t=None):
    """A CEL literal; numbers as double when the field is a number."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        if t == "number":
            r = repr(float(v))
            return r if ("." in r or "e" in r) else r + ".0"
        return str(int(v))
    if isinstance(v, str):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise Untranslatable("literal %r" % (v,))


def show(v):
    return v if isinstance(v, str) else json.dumps(v)


def re2(pattern):
    """The pattern with lookaheads dropped (RE2 has none), and whether it was relaxed."""
    out, i, relaxed = [], 0, False
    while i < len(pattern):
        if pattern.startswith("(?!", i) or pattern.startswith("(?=", i):
            depth, j = 0, i
            while j < len(pattern):
                c = pattern[j]
                if c == "\\":
                    j += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            i, relaxed = j + 1, True
            continue
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(pattern[i:i + 2])
            i += 2
            continue
        out.append(pattern[i])
        i += 1
    return "".join(out), relaxed


# ---- lookaheads ----------------------------------------------------------------
# RE2 has no lookahead. A lookahead at a place every match reaches after the same
# literal text (the start of the pattern, or the start of an alternation branch no
# other branch can begin like) says something of the string's start alone: s
# matches ^P(?!X)R$ iff s matches ^PR$ and not ^P(?:X). Those become CEL rules
# beside the relaxed pattern; a lookahead anywhere else is Untranslatable.

LOOK = ("(?!", "(?=")
QUANT = ("*", "+", "?", "{")
# Readable words for lookahead bodies the schema uses (the generic message names the regex).
PHRASES = {r".*(^|/)\.\.?(/|$)": "have a '.' or '..' path segment",
           r".*/\.\.(/|$)": "have a '..' path segment"}
ANY_RUN = ("(.|[\\r\\n])*", "[\\s\\S]*")


def _close(p, i):
    """The index of the ')' closing the group opened at p[i]."""
    depth, j, cls = 0, i, False
    while j < len(p):
        c = p[j]
        if c == "\\":
            j += 2
            continue
        if cls:
            cls = c != "]"
        elif c == "[":
            cls = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise Untranslatable("unbalanced group in %s" % p)


def _alts(p):
    """The top-level alternatives of p."""
    out, start, j = [], 0, 0
    while j < len(p):
        c = p[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            k = j + 1
            while k < len(p) and p[k] != "]":
                k += 2 if p[k] == "\\" else 1
            j = k + 1
            continue
        if c == "(":
            j = _close(p, j) + 1
            continue
        if c == "|":
            out.append(p[start:j])
            start = j + 1
        j += 1
    return out + [p[start:]]


def _literal(p):
    """(regex text, the string it matches) of p's longest prefix that matches one fixed string."""
    i, s = 0, ""
    while i < len(p):
        if p[i] == "\\" and i + 1 < len(p) and not p[i + 1].isalnum():
            step, ch = 2, p[i + 1]
        elif p[i] in ".[](){}*+?|^$\\":
            break
        else:
            step, ch = 1, p[i]
        if p[i + step:i + step + 1] in QUANT:
            break
        s += ch
        i += step
    return p[:i], s


def _first(p):
    """The characters a match of p can begin with, or None when that is not simply known."""
    _, s = _literal(p)
    if s:
        return {s[0]}
    if p.startswith("(") and not p.startswith(LOOK):
        j = _close(p, 0)
        if p[j + 1:j + 2] in ("*", "?", "{"):
            return None
        inner = p[1:j][2:] if p[1:j].startswith("?:") else p[1:j]
        out = set()
        for a in _alts(inner):
            f = _first(a)
            if f is None:
                return None
            out |= f
        return out
    return None


def _take_looks(p):
    """The lookaheads at the start of p, as (negative, body), and the rest of p."""
    looks = []
    while p.startswith(LOOK):
        j = _close(p, 0)
        body = p[3:j]
        if any(x in body for x in LOOK):
            raise Untranslatable("nested lookahead")
        looks.append((p[2] == "!", body))
        p = p[j + 1:]
    return looks, p


def lookaheads(pattern):
    """The pattern without its lookaheads, and those as (negative, prefix, prefix literal, body)."""
    relaxed, had = re2(pattern)
    if not had:
        return relaxed, []
    if not (pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")):
        raise Untranslatable("lookahead in an unanchored pattern")
    looks, body = _take_looks(pattern[1:-1])
    out = [(neg_, "", "", b) for neg_, b in looks]
    if any(x in body for x in LOOK):
        if len(_alts(body)) != 1:
            raise Untranslatable("lookahead beside a top-level alternation")
        alts = [body]
        if body.startswith("(") and _close(body, 0) == len(body) - 1:
            inner = body[1:-1][2:] if body[1:-1].startswith("?:") else body[1:-1]
            alts = _alts(inner)
        for k, a in enumerate(alts):
            if not any(x in a for x in LOOK):
                continue
            raw, s = _literal(a)
            ls, rest = _take_looks(a[len(raw):])
            if not ls or any(x in rest for x in LOOK):
                raise Untranslatable("lookahead after a variable prefix")
            if len(alts) > 1:
                firsts = [_first(b) for i, b in enumerate(alts) if i != k]
                if not s or any(f is None or s[0] in f for f in firsts):
                    raise Untranslatable("lookahead in a branch other branches may begin like")
            out += [(neg_, raw, s, b) for neg_, b in ls]
    return relaxed, out


def lookahead_checks(pattern, e):
    """(CEL predicate, message) pairs saying what the lookaheads of pattern say of e."""
    out = []
    for negative, raw, s, body in lookaheads(pattern)[1]:
        braw, bs = _literal(body)
        whole = "^%s(?:%s)" % (raw, body)
        if braw == body:
            c = "%s.startsWith(%s)" % (e, lit(s + bs))
            m = "start with %s" % lit(s + bs)
        else:
            c = "%s.matches(%s)" % (e, lit(whole))
            m = PHRASES.get(body) or "match %s" % whole
            for run in ANY_RUN:
                tail = body[len(run):]
                if body.startswith(run) and tail and _literal(tail)[0] == tail:
                    m = "contain %s" % lit(_literal(tail)[1])
            if s:
                m = "%s when it starts with %s" % (m, lit(s))
        if negative:
            out.append(("!" + c, "must not " + m))
        else:
            out.append(("!%s.startsWith(%s) || %s" % (e, lit(s), c) if s else c, "must " + m))
    return out


def lookahead_rules(pattern):
    """x-kubernetes-validations rules on a string node for the lookaheads of its pattern."""
    return [{"rule": c, "message": m, "reason": "FieldValueInvalid"}
            for c, m in lookahead_checks(pattern, "self")]


class Types:
    """CEL-visible types of the expressions rules use ('self.params.mode' -> 'string')."""

    def __init__(self, table):
        self.table = table

    def of(self, expr):
        if expr not in self.table:
            raise Untranslatable("%s has no type CEL can see" % expr)
        return self.table[expr]


def checks(s, e, t, types):
    """(CEL predicate, message) pairs that together mean `value at e satisfies s`."""
    s = resolve(s)
    if s is True:
        return []
    if s is False:
        return [("false", "not allowed")]
    out = []
    if "enum" in s:
        out.append(("%s in [%s]" % (e, ", ".join(lit(v, t) for v in s["enum"])),
                    "must be one of: %s" % ", ".join(show(v) for v in s["enum"])))
    if "const" in s:
        out.append(("%s == %s" % (e, lit(s["const"], t)), "must be %s" % show(s["const"])))
    if t in ("integer", "number"):
        for k, op, word in (("minimum", ">=", "at least"), ("maximum", "<=", "at most"),
                            ("exclusiveMinimum", ">", "greater than"),
                            ("exclusiveMaximum", "<", "less than")):
            if k in s and not isinstance(s[k], bool):
                out.append(("%s %s %s" % (e, op, lit(s[k], t)), "must be %s %s" % (word, show(s[k]))))
        if "multipleOf" in s:
            if t != "integer":
                raise Untranslatable("multipleOf on a number")
            out.append(("%s %% %s == 0" % (e, lit(s["multipleOf"], t)),
                        "must be a multiple of %s" % show(s["multipleOf"])))
    if t == "string":
        if "minLength" in s:
            out.append(("size(%s) >= %d" % (e, s["minLength"]), "must be at least %d characters" % s["minLength"]))
        if "maxLength" in s:
            out.append(("size(%s) <= %d" % (e, s["maxLength"]), "must be at most %d characters" % s["maxLength"]))
        if "pattern" in s:
            p, _ = lookaheads(s["pattern"])
            out.append(("%s.matches(%s)" % (e, lit(p)), "must match %s" % p))
            out += lookahead_checks(s["pattern"], e)
    if t == "array":
        if "minItems" in s:
            out.append(("size(%s) >= %d" % (e, s["minItems"]), "must have at least %d items" % s["minItems"]))
        if "maxItems" in s:
            out.append(("size(%s) <= %d" % (e, s["maxItems"]), "must have at most %d items" % s["maxItems"]))
        item_t = types.table.get(e + "[]")
        if "contains" in s:
            c = resolve(s["contains"])
            if set(c) - {"const", "description"} == set():
                out.append(("%s in %s" % (lit(c["const"]), e), "must contain %s" % show(c["const"])))
            elif item_t:
                v, sub = loop_var(e, types)
                out.append(("%s.exists(%s, %s)" % (e, v, pred(c, v, item_t, sub)),
                            "must contain %s" % (c.get("description") or "a matching item").rstrip(".").lower()))
            else:
                raise Untranslatable("contains on items of no known type")
        if "items" in s:
            if not item_t:
                raise Untranslatable("items of no known type")
            v, sub = loop_var(e, types)
            it = resolve(s["items"])
            out.append(("%s.all(%s, %s)" % (e, v, pred(it, v, item_t, sub)),
                        "each must be %s" % (it.get("description") or "valid").rstrip(".").lower()))
        if "uniqueItems" in s:
            raise Untranslatable("uniqueItems in a conditional rule")
    if "not" in s:
        ns = resolve(s["not"])
        inner = checks(ns, e, t, types)
        if set(ns) - {"description"} == {"enum"}:
            msg = "must not be one of: %s" % ", ".join(show(v) for v in ns["enum"])
        elif set(ns) - {"description"} == {"const"}:
            msg = "must not be %s" % show(ns["const"])
        else:
            msg = "must not be: %s" % "; ".join(m for _, m in inner)
        out.append((neg(conj([c for c, _ in inner])) if inner else "false", msg))
    for b in s.get("allOf") or []:
        out += checks(b, e, t, types)
    if "anyOf" in s or "oneOf" in s:
        branches = []
        for b in s.get("anyOf") or s.get("oneOf"):
            bt = types_of(b)
            if bt is not None and t not in bt and not (t == "integer" and "number" in bt):
                continue
            bc = checks(b, e, t, types)
            branches.append((conj([c for c, _ in bc]), "; ".join(m for _, m in bc)))
        out.append(("(%s)" % " || ".join("(%s)" % c for c, _ in branches) if branches else "false",
                    " or ".join(m for _, m in branches if m)))
    if "if" in s:
        p = pred(s["if"], e, t, types)
        for branch, cond in (("then", neg(p)), ("else", p)):
            if branch in s:
                bc = checks(s[branch], e, t, types)
                if bc:
                    out.append(("%s || (%s)" % (cond, conj([c for c, _ in bc])),
                                "; ".join(m for _, m in bc)))
    if t == "object":
        req = s.get("required") or []
        for r in req:
            out.append(("has(%s.%s)" % (e, r), "%s is required" % r))
        for f, sub in (s.get("properties") or {}).items():
            fe = "%s.%s" % (e, f)
            if f in req and sub is not False:
                # present, so the property's checks apply without a presence guard
                out += [(c, "%s: %s" % (f, m)) for c, m in checks(sub, fe, types.of(fe), types)]
                continue
            if sub is True:
                continue
            if sub is False:
                types.of(fe)
                out.append(("!has(%s)" % fe, "%s is not allowed" % f))
                continue
            sub_c = checks(sub, fe, types.of(fe), types)
            if sub_c:
                out.append(("!has(%s) || (%s)" % (fe, conj([c for c, _ in sub_c])),
                            "%s: %s" % (f, "; ".join(m for _, m in sub_c))))
    return out


def loop_var(e, types):
    """A macro variable for the items of list e, with the item's fields typed."""
    v = "i%d" % e.count(".")
    table = dict(types.table)
    for k, t in types.table.items():
        if k.startswith(e + "[]."):
            table[v + k[len(e) + 2:]] = t
    table[v] = types.table[e + "[]"]
    return v, Types(table)


def conj(cs):
    """CEL conjunction of predicates, each parenthesized when it has a lower-precedence operator."""
    cs = [c for c in cs if c != "true"]
    if not cs:
        return "true"
    return " && ".join("(%s)" % c if "||" in c or " ? " in c else c for c in cs)


def neg(p):
    """The negation of a predicate, without a double negation of an atom."""
    if re.fullmatch(r"has\([\w.]+\)", p):
        return "!" + p
    if re.fullmatch(r"!has\([\w.]+\)", p):
        return p[1:]
    if p.startswith("(") and p.endswith(")") and re.fullmatch(r"\((!?has\([\w.]+\))\)", p):
        return neg(p[1:-1])
    return "!(%s)" % p


def pred(s, e, t, types):
    return conj([x for x, _ in checks(s, e, t, types)])


# ---- dynamically typed CEL (ValidatingAdmissionPolicy) -------------------------
# A policy's `object` is untyped: it sees params of several types, which CRD
# rules cannot. Each keyword applies only to values of its JSON type, as in
# JSON Schema, so every check is guarded by a type test.

IS_NUM = "(type({e}) == int || type({e}) == double)"
# An integer-valued double, without int() of a double out of int64's range.
IS_INT = ("(type({e}) == int || (type({e}) == double && {e} >= -9.0e18 && {e} <= 9.0e18 && "
          "double(int({e})) == {e}))")


def dyn_eq(e, v):
    if isinstance(v, str):
        return "(type(%s) == string && %s == %s)" % (e, e, lit(v))
    if isinstance(v, bool):
        return "(type(%s) == bool && %s == %s)" % (e, e, lit(v))
    if isinstance(v, (int, float)):
        return "(%s && double(%s) == %s)" % (IS_NUM.format(e=e), e, lit(v, "number"))
    raise Untranslatable("const %r" % (v,))


def dyn_pred(s, e, depth=0):
    """A CEL predicate over a dynamically typed value e: e satisfies s."""
    s = resolve(s)
    if s is True:
        return "true"
    if s is False:
        return "false"
    parts = []
    t = s.get("type")
    if t == "number":
        parts.append(IS_NUM.format(e=e))
    elif t == "integer":
        parts.append(IS_INT.format(e=e))
    elif t in ("string", "boolean", "array", "object"):
        parts.append("type(%s) == %s" % (e, {"string": "string", "boolean": "bool", "array": "list",
                                             "object": "map"}[t]))
    elif t is not None:
        raise Untranslatable("type %r" % (t,))
    if "const" in s:
        parts.append(dyn_eq(e, s["const"]))
    if "enum" in s:
        parts.append("(%s)" % " || ".join(dyn_eq(e, v) for v in s["enum"]))
    num = []
    for k, op in (("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")):
        if k in s and not isinstance(s[k], bool):
            num.append("double(%s) %s %s" % (e, op, lit(s[k], "number")))
    if num:
        parts.append("(!%s || (%s))" % (IS_NUM.format(e=e), " && ".join(num)))
    strs = []
    if "minLength" in s:
        strs.append("size(%s) >= %d" % (e, s["minLength"]))
    if "maxLength" in s:
        strs.append("size(%s) <= %d" % (e, s["maxLength"]))
    if "pattern" in s:
        strs.append("%s.matches(%s)" % (e, lit(lookaheads(s["pattern"])[0])))
        strs += [c for c, _ in lookahead_checks(s["pattern"], e)]
    if strs:
        parts.append("(type(%s) != string || (%s))" % (e, " && ".join(strs)))
    arr = []
    if "minItems" in s:
        arr.append("size(%s) >= %d" % (e, s["minItems"]))
    if "maxItems" in s:
        arr.append("size(%s) <= %d" % (e, s["maxItems"]))
    if "items" in s:
        v = "v%d" % depth
        arr.append("%s.all(%s, %s)" % (e, v, dyn_pred(s["items"], v, depth + 1)))
    if arr:
        parts.append("(type(%s) != list || (%s))" % (e, " && ".join(arr)))
    if "not" in s:
        parts.append(neg(dyn_pred(s["not"], e, depth)))
    for b in s.get("allOf") or []:
        parts.append(dyn_pred(b, e, depth))
    if "anyOf" in s or "oneOf" in s:
        parts.append("(%s)" % " || ".join("(%s)" % dyn_pred(b, e, depth)
                                          for b in s.get("anyOf") or s.get("oneOf")))
    for k in ("uniqueItems", "contains", "properties", "if", "multipleOf"):
        if k in s:
            raise Untranslatable(k)
    return conj(parts)


POLICY_RULES = []


def vap_add(guard, check, message):
    expr = " || ".join(guard + [check])
    expr = re.sub(r"\bself\.", "object.spec.", expr)
    POLICY_RULES.append({"expression": expr, "message": message, "reason": "Invalid"})


# ---- the structural schema of params ---------------------------------------

# Operations of the contract that no AssetMaterialization runs: `observe` is
# what the controller runs for an AssetSource (crds/terrane.io_assetsources.yaml);
# `grid`, `assemble` and `collection` are the tasks it runs around the partitions
# of a partitioned asset (proto/README.md "Partitions").
NOT_ASSET_OPERATIONS = {"observe", "grid", "assemble", "collection"}


def operations():
    """(operation, its `then` block) for each per-operation block of the schema."""
    out = []
    for block in SCHEMA.get("allOf") or []:
        cond = (block.get("if") or {}).get("properties", {}).get("operation", {})
        if "const" in cond and "then" in block and cond["const"] not in NOT_ASSET_OPERATIONS:
            out.append((cond["const"], block["then"]))
    known = SCHEMA["properties"]["operation"]["enum"]
    for op in known:
        if op not in [o for o, _ in out] and op not in NOT_ASSET_OPERATIONS:
            out.append((op, {}))
    return out


# Operations whose params are a spec field of their own: operation -> field.
SPEC_FIELDS = {"container": "container"}


def op_params(then, op=None):
    if op in SPEC_FIELDS:
        return {"type": "object", "additionalProperties": False, "properties": {}}
    p = (then.get("properties") or {}).get("params")
    return resolve(p) if p else {"type": "object"}


def structural(s):
    """A JSON Schema of objects, arrays and strings as a structural CRD schema."""
    s = resolve(s)
    out = {k: s[k] for k in ("type", "description") if k in s}
    for k in ("required", "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum",
              "enum"):
        if k in s:
            out[k] = s[k]
    if "pattern" in s:
        out["pattern"] = re2(s["pattern"])[0]
        out.update(pattern_rules(s["pattern"], s.get("description")))
    if "properties" in s:
        out["properties"] = {k: structural(v) for k, v in s["properties"].items()}
    if "items" in s:
        out["items"] = structural(s["items"])
    return out


# What the controller alone checks of structural fields: lookaheads no rule can say.
STRUCT_GAPS = []


def pattern_rules(pattern, what):
    """{x-kubernetes-validations: ...} for the lookaheads of a string node's pattern, or {}."""
    try:
        rs = lookahead_rules(pattern)
    except Untranslatable:
        STRUCT_GAPS.append("the full pattern of %s (a lookahead RE2 lacks)" % (what or pattern))
        return {}
    return {"x-kubernetes-validations": rs} if rs else {}


def spec_fields():
    """(field, structural schema, rule) for each SPEC_FIELDS operation."""
    out = []
    for op, then in operations():
        if op not in SPEC_FIELDS:
            continue
        f = SPEC_FIELDS[op]
        sch = structural((then.get("properties") or {}).get("params") or {"type": "object"})
        sch["description"] = ("For operation %s only: %s The controller hands it to the worker as"
                              " the task's params." % (op, sch.get("description", "")))
        rule = {"rule": "has(self.%s) == (self.operation == %s)" % (f, lit(op)),
                "message": "spec.%s is set exactly when operation is %s" % (f, op),
                "fieldPath": "." + f, "reason": "FieldValueInvalid"}
        out.append((f, sch, rule))
    return out


def native(s, t):
    """What of schema s the structural schema says itself, for a field of type t."""
    s = resolve(s)
    n = {}
    if t is None:
        # Several types: only validations that cannot misfire on another type.
        for b in s.get("anyOf") or s.get("oneOf") or []:
            b = resolve(b)
            bt = types_of(b)
            if bt == {"number"} or bt == {"integer"}:
                for k in NUMERIC:
                    if k in b:
                        n[k] = b[k]
            if bt == {"array"}:
                for k in ARRAYISH:
                    if k in b:
                        n[k] = b[k]
        strs = [resolve(b) for b in s.get("anyOf") or s.get("oneOf") or []
                if types_of(b) == {"string"}]
        if strs and all(set(b) - {"description"} <= {"const", "enum"} for b in strs):
            vals = [v for b in strs for v in ([b["const"]] if "const" in b else b["enum"])]
            n["pattern"] = "^(%s)$" % "|".join(re.escape(v) for v in vals)
        if "exclusiveMinimum" in n:
            n["minimum"], n["exclusiveMinimum"] = n["exclusiveMinimum"], True
        if "exclusiveMaximum" in n:
            n["maximum"], n["exclusiveMaximum"] = n["exclusiveMaximum"], True
        return n
    if "enum" in s:
        n["enum"] = [float(v) if t == "number" else v for v in s["enum"]]
    for k in NUMERIC + STRINGY + ARRAYISH:
        if k in s:
            n[k] = s[k]
    if "pattern" in n:
        n["pattern"], _ = re2(n["pattern"])
        n.update(pattern_rules(s["pattern"], s.get("description")))
    for k in ("exclusiveMinimum", "exclusiveMaximum"):
        if k in n and not isinstance(n[k], bool):
            bound = "minimum" if k == "exclusiveMinimum" else "maximum"
            n[bound], n[k] = n[k], True
    if t == "array" and "items" in s:
        it = resolve(s["items"])
        itt = types_of(it)
        if not itt or len(itt) != 1:
            raise SystemExit("array items of several types")
        items = {"type": next(iter(itt))}
        if it.get("description"):
            items["description"] = it["description"]
        items.update(native(it, items["type"]))
        n["items"] = items
        if s.get("uniqueItems"):
            n["x-kubernetes-list-type"] = "set"
            if "enum" in it and "maxItems" not in n:
                n["maxItems"] = len(it["enum"])   # a set of enum values is bounded
    return n


def first_sentence(d):
    return d.strip()


def build():
    ops = operations()
    fields = {}                      # name -> {op: schema}
    for op, then in ops:
        for f, sub in (op_params(then, op).get("properties") or {}).items():
            fields.setdefault(f, {})[op] = sub
    # spec.inputs items as the CRD declares them, for the operations' rules on inputs.
    props, residual = {}, {}
    types_table = {"self.params": "object", "self.inputs": "array", "self.inputs[]": "object",
                   "self.inputs[].name": "string", "self.inputs[].from": "string",
                   "self.inputs[].uri": "string"}
    untyped = []
    for f in sorted(fields, key=lambda k: list(fields).index(k)):
        per_op = fields[f]
        ts = set()
        for sub in per_op.values():
            st = types_of(sub)
            ts |= st if st is not None else {"any"}
        t = next(iter(ts)) if len(ts) == 1 and "any" not in ts else None
        descs = []
        for op, sub in per_op.items():
            d = resolve(sub).get("description", "")
            descs.append((op, d))
        if len({d for _, d in descs}) == 1:
            desc = "%s (%s)" % (descs[0][1], ", ".join(op for op, _ in descs))
        else:
            desc = " ".join("%s: %s" % (op, d) for op, d in descs)
        prop = {}
        if t:
            prop["type"] = t
            types_table["self.params." + f] = t
        else:
            prop["x-kubernetes-preserve-unknown-fields"] = True
            untyped.append(f)
        prop["description"] = desc
        nat = {op: native(sub, t) for op, sub in per_op.items()}
        common = {}
        for k, v in next(iter(nat.values())).items():
            if all(k in n and n[k] == v for n in nat.values()):
                common[k] = v
        prop.update(common)
        props[f] = prop
        for op, sub in per_op.items():
            residual[(op, f)] = {k for k in nat[op] if k not in common}
    return ops, fields, props, Types(types_table), residual, untyped


RULE_KEYS = {"enum": ("enum",), "minimum": ("minimum", "exclusiveMinimum"),
             "maximum": ("maximum", "exclusiveMaximum")}


def residual_schema(sub, keys):
    """The part of a param's schema its structural property does not already say."""
    s = resolve(sub)
    out = {}
    for k in keys:
        if k in ("items", "x-kubernetes-list-type"):
            raise SystemExit("array items that differ between operations")
        if k in s:
            out[k] = s[k]
        elif k == "minimum" and "exclusiveMinimum" in s:
            out["exclusiveMinimum"] = s["exclusiveMinimum"]
        elif k == "maximum" and "exclusiveMaximum" in s:
            out["exclusiveMaximum"] = s["exclusiveMaximum"]
    return out


def rules():
    ops, fields, props, types, residual, untyped = build()
    out, gaps = [], []

    def add(guard, check, field, msg, reason="FieldValueInvalid", expr_msg=None):
        r = {"rule": " || ".join(guard + [check]), "message": msg, "fieldPath": field, "reason": reason}
        if expr_msg:
            r["messageExpression"] = expr_msg
        out.append(r)

    op_names = [op for op, _ in ops]
    # A param of another operation.
    for f, per_op in fields.items():
        foreign = [op for op, then in ops if op not in per_op
                   and op_params(then, op).get("additionalProperties") is False]
        if not foreign:
            continue
        if f in untyped:
            vap_add(["!(self.operation in [%s])" % ", ".join(lit(o) for o in foreign), "!has(self.params)"],
                    "!has(self.params.%s)" % f,
                    "spec.params.%s: %s is not a param of this operation; it is a param of %s"
                    % (f, f, ", ".join(per_op)))
            continue
        owners = ", ".join(per_op)
        add(["!(self.operation in [%s])" % ", ".join(lit(o) for o in foreign), "!has(self.params)"],
            "!has(self.params.%s)" % f, ".params." + f,
            "%s is not a param of this operation; it is a param of %s" % (f, owners),
            "FieldValueForbidden",
            "'%s is not a param of ' + self.operation + '; it is a param of %s'" % (f, owners))
    for op, then in ops:
        neg_op = "self.operation != %s" % lit(op)
        if op in SPEC_FIELDS:
            continue  # its params are spec.<field>: rules from spec_fields()
        if "params" in (then.get("required") or []):
            add([neg_op], "has(self.params)", ".params", "params are required for %s" % op,
                "FieldValueRequired")
        ps = op_params(then)
        guard = [neg_op, "!has(self.params)"]
        for r in ps.get("required") or []:
            add(guard, "has(self.params.%s)" % r, ".params." + r, "%s is required for %s" % (r, op),
                "FieldValueRequired")
        for f, sub in (ps.get("properties") or {}).items():
            if f in untyped:
                try:
                    vap_add(guard + ["!has(self.params.%s)" % f], dyn_pred(sub, "self.params." + f),
                            "spec.params.%s is not valid for %s: %s" % (
                                f, op, resolve(sub).get("description", "").rstrip(".")))
                except Untranslatable:
                    gaps.append("%s for %s" % (f, op))
        for f, sub in (ps.get("properties") or {}).items():
            keys = residual.get((op, f)) or set()
            if not keys:
                continue
            e = "self.params." + f
            try:
                cs = checks(residual_schema(sub, keys), e, types.of(e), types)
            except Untranslatable:
                gaps.append("%s for %s" % (f, op))
                continue
            for c, m in cs:
                add(guard + ["!has(%s)" % e], c, ".params." + f, "%s %s for %s" % (f, m, op))
            # A param naming an input: an identifier that is one of spec.inputs.
        for f, sub in (ps.get("properties") or {}).items():
            if sub.get("$ref") == "#/$defs/identifier" and f not in untyped:
                add(guard + ["!has(self.params.%s)" % f],
                    "has(self.inputs) && self.inputs.exists(i, i.name == self.params.%s)" % f,
                    ".params." + f, "%s must name one of this asset's inputs" % f)
        idents = [f for f, sub in (ps.get("properties") or {}).items()
                  if sub.get("$ref") == "#/$defs/identifier"]
        for a_i, a in enumerate(idents):
            for b in idents[a_i + 1:]:
                add(guard + ["!has(self.params.%s)" % a, "!has(self.params.%s)" % b],
                    "self.params.%s != self.params.%s" % (a, b), ".params." + b,
                    "%s and %s must name different inputs" % (a, b))
        # Conditional rules (allOf, if/then/else) of the params schema.
        for blk in ps.get("allOf") or []:
            emit_block(blk, guard, op, types, add, gaps, (blk.get("description") or "").rstrip("."))
        # Rules on spec.inputs in the operation's block.
        inputs = (then.get("properties") or {}).get("inputs")
        if inputs:
            try:
                cs = checks(inputs, "self.inputs", "array", types)
            except Untranslatable:
                gaps.append("the inputs of %s" % op)  # e.g. which names (items): the controller's
                cs = []
            for c, m in cs:
                add([neg_op, "!has(self.inputs)"], c, ".inputs", "%s: inputs %s" % (
                    resolve(inputs).get("description", op).rstrip("."), m))
        if "if" in then:
            try:
                p = pred(then["if"], "self", "object", Types(dict(types.table, self="object")))
            except Untranslatable:
                gaps.append("the conditional inputs of %s" % op)
                p = None
            for branch, cond in (("then", neg(p) if p else None), ("else", p)):
                b = (then.get(branch) or {}).get("properties", {}).get("inputs")
                if p and b:
                    for c, m in checks(b, "self.inputs", "array", types):
                        add([neg_op, cond, "!has(self.inputs)"], c, ".inputs",
                            "%s: inputs %s" % (resolve(b).get("description", op).rstrip("."), m))
    gaps += STRUCT_GAPS
    return op_names, props, merge(out, op_names), gaps, untyped, fields


def merge(rs, op_names):
    """One rule for the operations whose rules differ only in the operation."""
    out, index = [], {}
    for r in rs:
        m = re.match(r"self\.operation != '([^']*)' \|\| (.*)$", r["rule"])
        if not m or any(re.search(r"\b%s\b" % re.escape(o), r["message"]) for o in op_names):
            out.append(r)
            continue
        key = (m.group(2), r["message"], r["fieldPath"], r["reason"])
        if key in index:
            index[key]["ops"].append(m.group(1))
            continue
        r = dict(r, ops=[m.group(1)], tail=m.group(2))
        index[key] = r
        out.append(r)
    for r in out:
        if "ops" in r:
            ops, tail = r.pop("ops"), r.pop("tail")
            r["rule"] = ("self.operation != %s" % lit(ops[0]) if len(ops) == 1 else
                         "!(self.operation in [%s])" % ", ".join(lit(o) for o in ops)) + " || " + tail
        assert "\n" not in r["rule"]
    return out


def emit_block(blk, guard, op, types, add, gaps, why):
    """Rules of one allOf entry of an operation's params (itself maybe an if/then)."""
    blk = resolve(blk)
    for sub in blk.get("allOf") or []:
        emit_block(sub, guard, op, types, add, gaps, (resolve(sub).get("description") or why).rstrip("."))
    cond = []
    if "if" in blk:
        try:
            cond = [neg(pred(blk["if"], "self.params", "object", types))]
        except Untranslatable:
            gaps.append("%s (%s)" % (why, op))
            return
    for branch in ("then",) if "if" in blk else (None,):
        body = blk.get(branch) if branch else {k: v for k, v in blk.items() if k not in ("allOf", "description")}
        for f, sub in ((body or {}).get("properties") or {}).items():
            e = "self.params." + f
            try:
                t = types.of(e)
                cs = [("!has(%s)" % e, "is not allowed")] if sub is False else checks(sub, e, t, types)
            except Untranslatable:
                try:
                    check = "!has(%s)" % e if sub is False else dyn_pred(sub, e)
                    vap_add(guard + cond + ([] if sub is False else ["!has(%s)" % e]), check,
                            "spec.params.%s: %s" % (f, why))
                except Untranslatable:
                    gaps.append("%s (%s)" % (why, op))
                continue
            for c, m in cs:
                present = [] if sub is False else ["!has(%s)" % e]
                add(guard + cond + present, c, ".params." + f, "%s %s: %s" % (f, m, why),
                    "FieldValueForbidden" if sub is False else "FieldValueInvalid")
    if "else" in blk:
        gaps.append("%s (%s): else branch" % (why, op))


# ---- YAML ---------------------------------------------------------------------

def yscalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        # YAML 1.1 (which kubectl's parser follows) reads yes/no/on/off/y/n as booleans.
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9 ,.()/_-]*", v) \
                and v.lower() not in ("true", "false", "null", "yes", "no", "on", "off", "y", "n") \
                and not v.endswith(" ") and ": " not in v and " #" not in v:
            return v
        return json.dumps(v, ensure_ascii=False)
    raise TypeError(v)


def yaml(v, indent):
    pad = " " * indent
    lines = []
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                if isinstance(x, list) and all(not isinstance(i, (dict, list)) for i in x):
                    lines.append("%s%s: [%s]" % (pad, k, ", ".join(yscalar(i) for i in x)))
                else:
                    lines.append("%s%s:" % (pad, k))
                    lines += yaml(x, indent + 2)
            elif isinstance(x, dict):
                lines.append("%s%s: {}" % (pad, k))
            else:
                lines.append("%s%s: %s" % (pad, k, yscalar(x)))
    else:
        for x in v:
            sub = yaml(x, indent + 2)
            lines.append(pad + "- " + sub[0].lstrip())
            lines += sub[1:]
    return lines


def render():
    extra = spec_fields()
    op_names, props, rs, gaps, untyped, fields = rules()
    text = open(TEMPLATE, encoding="utf-8").read()

    def fill(marker, make):
        nonlocal text
        m = re.search(r"^( *)%s\n" % re.escape(marker), text, re.M)
        if not m:
            raise SystemExit("%s: no %s line" % (TEMPLATE, marker))
        text = text[:m.start()] + "\n".join(make(len(m.group(1)))) + "\n" + text[m.end():]

    per_op = {op: [f for f in fields if op in fields[f]] for op in op_names}
    lines = ["Parameters of the operation. Checked when the asset is applied (each param's type and",
             "values below, and which params each operation takes) and again by the controller",
             "against the worker's task contract (proto/schema/task.v1.json) before any pod is",
             "created. By operation:"]
    for op in op_names:
        lines.append("%s: %s." % (op, ", ".join(per_op.get(op, [])) or "none"))
    if POLICY_RULES:
        lines.append("CRD rules cannot see params of several types (%s): the ValidatingAdmissionPolicy"
                     " %s (crds/%s, also in the chart) checks them." % (
                         ", ".join(untyped), POLICY_NAME, os.path.basename(POLICY)))
    if gaps:
        lines.append("Checked by the controller only (status reason InvalidSpec), as API server"
                     " patterns have no lookahead: %s." % "; ".join(gaps))
    params = {"type": "object", "description": " ".join(lines), "properties": props}
    fill("@OPERATIONS@", lambda n: yaml({"enum": op_names}, n))
    fill("@PARAMS@", lambda n: yaml({"params": params}, n))
    fill("@SPEC_RULES@", lambda n: yaml({"x-kubernetes-validations": rs + [r for _, _, r in extra]}, n))
    fill("@CONTAINER@", lambda n: yaml({f: sch for f, sch, _ in extra}, n))
    header = ("# GENERATED by scripts/gen-crd.py from crds/template/assetmaterializations.yaml.in\n"
              "# and proto/schema/task.v1.json; edit those, then run `make crd`.\n")
    return header + text


def render_policy():
    """The ValidatingAdmissionPolicy and its binding, for the rules CRD rules cannot say."""
    group, version = "terrane.io", re.search(r"^    - name: (\S+)", open(TEMPLATE).read(), re.M).group(1)
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": POLICY_NAME, "labels": {"app.kubernetes.io/name": "terrane",
                                                           "app.kubernetes.io/part-of": "terrane"}},
              "spec": {"failurePolicy": "Fail",
                       "matchConstraints": {"resourceRules": [{
                           "apiGroups": [group], "apiVersions": [version],
                           "operations": ["CREATE", "UPDATE"], "resources": ["assetmaterializations"]}]},
                       "validations": POLICY_RULES}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": POLICY_NAME, "labels": policy["metadata"]["labels"]},
               "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"]}}
    body = "\n".join(yaml(policy, 0)) + "\n---\n" + "\n".join(yaml(binding, 0)) + "\n"
    head = ("# GENERATED by scripts/gen-crd.py from proto/schema/task.v1.json; run `make crd`.\n"
            "# The params rules the CRD's own CEL rules cannot express: CRD rules see no field\n"
            "# without a type, and params such as nodata (a number or \"none\") have several.\n"
            "# A ValidatingAdmissionPolicy's object is dynamically typed. Needs Kubernetes 1.30+.\n")
    plain = head + body
    chart = head + ('{{- if .Capabilities.APIVersions.Has '
                    '"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy" }}\n') + body + "{{- end }}\n"
    return plain, chart


def cost_report(text):
    """(refusals, per-rule lines) of the API server's CEL cost estimate of the rendered CRD."""
    import yaml
    sys.path.insert(0, os.path.join(ROOT, "tests/kubesim"))
    import celcost
    refused, lines = [], []
    for i, v in enumerate(yaml.safe_load(text)["spec"]["versions"]):
        sch = v["schema"]["openAPIV3Schema"]
        where = "spec.versions[%d].schema.openAPIV3Schema" % i
        refused += celcost.refusals(sch, where)
        costs = sorted(celcost.crd_rule_costs(sch, where), key=lambda r: -r[1] * r[2])
        total = sum(c * n for _, c, n in costs)
        lines.append("%s: %d rules, estimated cost total %d (limit %d); dearest %d (limit %d per rule): %s"
                     % (v["name"], len(costs), total, celcost.PER_CRD, costs[0][1] * costs[0][2] if costs else 0,
                        celcost.PER_RULE, costs[0][0] if costs else "-"))
    return refused, lines


def main():
    text = render()
    refused, lines = cost_report(text)
    if "--costs" in sys.argv[1:]:
        print("\n".join(lines))
    if refused:
        for where, msg in refused:
            print("%s: %s" % (where, msg), file=sys.stderr)
        return 1
    plain, chart = render_policy()
    want = [(p, text) for p in OUTPUTS] + [(POLICY, plain), (POLICY_CHART, chart)]
    source = ("# GENERATED by scripts/gen-crd.py from crds/template/assetsources.yaml.in;\n"
              "# edit that, then run `make crd`.\n" + open(SOURCE_TEMPLATE, encoding="utf-8").read())
    want += [(p, source) for p in SOURCE_OUTPUTS]
    if "--check" in sys.argv[1:]:
        bad = [p for p, t in want if not os.path.exists(p) or open(p, encoding="utf-8").read() != t]
        for p in bad:
            print("%s differs from the generated one: run `make crd`" % os.path.relpath(p, ROOT))
        return 1 if bad else 0
    for p, t in want:
        with open(p, "w", encoding="utf-8") as fh:
            fh.write(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
