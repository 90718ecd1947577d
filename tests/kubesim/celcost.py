"""The API server's static cost estimate of CRD validation rules (apiextensions).

When a CRD is created or updated the API server estimates, for every
x-kubernetes-validations rule, the worst-case cost of one evaluation from the
schema alone (cel-go's checker cost model, with the sizes of strings, lists and
maps bounded by maxLength, maxItems and maxProperties, or, where the schema
sets none, by what fits in the largest request), multiplies it by the number
of times the rule can run in one object (the product of the bounds of the
lists and maps above it) and refuses the CRD when

  * one rule's cost exceeds PER_RULE (10^7, StaticEstimatedCostLimit), or
  * the sum over all rules exceeds PER_CRD (10^8, StaticEstimatedCRDCostLimit).

The model, per node of a rule (maximum costs):
  literal 0; variable or field selection 1 (plus its operand); has() 1;
  a function or operator 1 plus its arguments, except:
  && and || the sum of both sides; ?: the condition plus the dearer branch;
  ==, !=, <, <=, >, >= ceil(0.1 * the smaller operand size) (1 for scalars);
  x in list the list's size; startsWith/endsWith ceil(0.1 * argument size);
  contains ceil(0.1 * size) * ceil(0.1 * argument size);
  matches ceil(0.1 * (size + 1)) * ceil(0.25 * regex size);
  a macro over a collection of n items: n * (its per-item condition and
  step, cel-go's expansion: all 3 + body, exists 4 + body, exists_one
  2 + body, map and filter 2 + body) + 1 for the result.
Sizes are in characters for strings, items for lists and maps, 1 for scalars.

Used by kubesim (tests/kubesim/schema.py refuses what the API server refuses)
and by scripts/gen-crd.py, which fails when a generated rule would be refused.
"""

import math

import cel

MAX_REQUEST = 3 * 1024 * 1024
PER_RULE = 10 ** 7
PER_CRD = 10 ** 8
_UNBOUNDED = MAX_REQUEST - 2   # an unbounded string: what fits in a request, quotes aside

_MACRO_STEP = {"all": 3, "exists": 4, "exists_one": 2, "map": 2, "filter": 2}


def _ceil(x, f):
    return int(math.ceil(x * f))


def _min_serialized(schema):
    """The fewest bytes an item of this schema takes in JSON (apiextensions' minSerializedSize)."""
    t = (schema or {}).get("type")
    return 1 if t in ("integer", "number", "boolean") else 2


def max_size(schema):
    """The largest size a value of this schema can have (characters, items or properties)."""
    if not isinstance(schema, dict):
        return _UNBOUNDED
    t = schema.get("type")
    if schema.get("x-kubernetes-int-or-string") or t in ("integer", "number", "boolean"):
        return 1
    if t == "string":
        if "maxLength" in schema:
            return schema["maxLength"]
        if schema.get("enum"):
            return max(len(v) for v in schema["enum"] if isinstance(v, str))
        return _UNBOUNDED
    if t == "array":
        if "maxItems" in schema:
            return schema["maxItems"]
        return (MAX_REQUEST - 2) // (_min_serialized(schema.get("items")) + 1)
    if t == "object":
        if "maxProperties" in schema:
            return schema["maxProperties"]
        if isinstance(schema.get("additionalProperties"), dict):
            # a key ("":) and a value per entry
            return (MAX_REQUEST - 2) // (_min_serialized(schema["additionalProperties"]) + 4)
        return len(schema.get("properties") or {}) or 1
    return _UNBOUNDED


class _Est:
    def __init__(self, env):
        self.env = env   # variable -> schema

    def node(self, n):
        """(maximum cost, maximum size, schema or None) of an AST node."""
        k = n[0]
        if k == "lit":
            v = n[1]
            return 0, (len(v) if isinstance(v, str) else 1), None
        if k == "var":
            sch = self.env.get(n[1])
            return 1, (max_size(sch) if sch is not None else 1), sch
        if k in ("field", "has"):
            c, _, base = self.node(n[1])
            sub = None
            if isinstance(base, dict):
                sub = (base.get("properties") or {}).get(n[2])
                if sub is None and isinstance(base.get("additionalProperties"), dict):
                    sub = base["additionalProperties"]
            if k == "has":
                return c + 1, 1, None
            return c + 1, (max_size(sub) if sub is not None else _UNBOUNDED), sub
        if k == "index":
            c1, _, base = self.node(n[1])
            c2, _, _ = self.node(n[2])
            sub = None
            if isinstance(base, dict):
                sub = base.get("items") if base.get("type") == "array" else base.get("additionalProperties")
            return c1 + c2 + 1, (max_size(sub) if isinstance(sub, dict) else _UNBOUNDED), sub
        if k in ("not", "neg"):
            c, _, _ = self.node(n[1])
            return c + 1, 1, None
        if k == "cond":
            c0 = self.node(n[1])[0]
            a, b = self.node(n[2]), self.node(n[3])
            return c0 + max(a[0], b[0]), max(a[1], b[1]), a[2] or b[2]
        if k == "list":
            cs = [self.node(x) for x in n[1]]
            return sum(c for c, _, _ in cs) + 10, len(n[1]), None
        if k == "map":
            return sum(self.node(a)[0] + self.node(b)[0] for a, b in n[1]) + 30, len(n[1]), None
        if k == "bin":
            return self.binary(n[1], n[2], n[3])
        if k == "call":
            return self.call(n[1], n[2])
        if k == "macro":
            _, name, target, var, body = n
            ct, size, sch = self.node(target)
            item = None
            if isinstance(sch, dict):
                item = sch.get("items") if sch.get("type") == "array" else None
                if item is None and sch.get("type") == "object":
                    item = {"type": "string"}   # a map's keys
            inner = _Est(dict(self.env, **{var: item if item is not None else {}}))
            cb = inner.node(body)[0]
            return ct + size * (_MACRO_STEP[name] + cb) + 1, size, None
        raise ValueError("no cost for node %s" % k)

    def binary(self, op, a, b):
        ca, sa, _ = self.node(a)
        cb, sb, schb = self.node(b)
        if op in ("&&", "||"):
            return ca + cb, 1, None
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return ca + cb + _ceil(min(sa, sb), 0.1), 1, None
        if op == "in":
            return ca + cb + sb, 1, None
        if op == "+":
            return ca + cb + _ceil(sa + sb, 0.1), sa + sb, None
        return ca + cb + 1, 1, None

    def call(self, name, args):
        ests = [self.node(a) for a in args]
        argc = sum(c for c, _, _ in ests)
        sizes = [s for _, s, _ in ests]
        if name in ("startsWith", "endsWith") and len(args) == 2:
            return argc + _ceil(sizes[1], 0.1), 1, None
        if name == "contains" and len(args) == 2:
            return argc + _ceil(sizes[0], 0.1) * _ceil(sizes[1], 0.1), 1, None
        if name == "matches" and len(args) == 2:
            return argc + _ceil(sizes[0] + 1, 0.1) * _ceil(sizes[1], 0.25), 1, None
        return argc + 1, (sizes[0] if name == "string" and sizes else 1), None


def rule_cost(src, schema):
    """The estimated maximum cost of one evaluation of rule src with self of this schema."""
    ast = cel.compile_rule(src)
    if ast is None:
        return None
    return _Est({"self": schema}).node(ast)[0]


def crd_rule_costs(schema, path="openAPIV3Schema", cardinality=1):
    """(path of the rule, cost of one evaluation, cardinality) for every rule under schema."""
    out = []
    if not isinstance(schema, dict):
        return out
    for i, rule in enumerate(schema.get("x-kubernetes-validations") or []):
        if isinstance(rule, dict) and rule.get("rule"):
            c = rule_cost(rule["rule"], schema)
            if c is not None:
                out.append(("%s.x-kubernetes-validations[%d].rule" % (path, i), c, cardinality))
    for k, sub in (schema.get("properties") or {}).items():
        out += crd_rule_costs(sub, "%s.properties[%s]" % (path, k), cardinality)
    if isinstance(schema.get("items"), dict):
        out += crd_rule_costs(schema["items"], path + ".items", cardinality * max_size(schema))
    if isinstance(schema.get("additionalProperties"), dict):
        out += crd_rule_costs(schema["additionalProperties"], path + ".additionalProperties",
                              cardinality * max_size(schema))
    return out


def _factor(cost, limit):
    f = cost / limit
    return "more than 100x" if f > 100 else "%.1fx" % f


def refusals(schema, path="spec.validation.openAPIV3Schema"):
    """(path, message) for what the API server refuses of the schema's rule costs."""
    out, total = [], 0
    for where, cost, card in crd_rule_costs(schema, path):
        c = cost * card
        total += c
        if c > PER_RULE:
            out.append((where, "Forbidden: estimated rule cost exceeds budget by factor of %s (try simplifying "
                        "the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and "
                        "strings are declared)" % _factor(c, PER_RULE)))
    if total > PER_CRD:
        out.append((path, "Forbidden: x-kubernetes-validations estimated rule cost total for entire "
                    "OpenAPIv3 schema exceeds budget by factor of %s" % _factor(total, PER_CRD)))
    return out
