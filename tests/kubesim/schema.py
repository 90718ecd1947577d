"""CRD structural schemas (openAPIV3Schema): defaulting, pruning, validation.

The order matches the API server's for custom resources: defaults are applied,
unknown fields are pruned (unless x-kubernetes-preserve-unknown-fields), then
the object is validated. Validation covers type, required, enum, nullable,
minimum/maximum (and exclusive), minLength/maxLength, pattern,
minItems/maxItems, uniqueItems, minProperties/maxProperties,
x-kubernetes-int-or-string, allOf/anyOf/oneOf/not in a simple form, and
x-kubernetes-validations rules within the CEL subset of cel.py (others, and
`format`, are not checked).

Causes are (field path, reason, message) tuples, the shape of
metav1.StatusCause, with field paths like `spec.operation` or
`spec.inputs[0].name`.
"""

import copy
import json
import re

import cel

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def _fmt(v):
    return json.dumps(v)


def _is_type(v, t, schema):
    if v is None:
        return False
    if schema.get("x-kubernetes-int-or-string"):
        return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, str)
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or \
            (isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return True


def _join(path, key):
    return key if not path else path + "." + key


# ---- defaulting -------------------------------------------------------------

def apply_defaults(schema, value):
    """Fill in `default`s below value, in place; returns value."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for k, sub in props.items():
            if isinstance(sub, dict) and "default" in sub and (k not in value or
                                                               (value[k] is None and not sub.get("nullable"))):
                value[k] = copy.deepcopy(sub["default"])
        for k, v in value.items():
            if k in props:
                apply_defaults(props[k], v)
            elif isinstance(schema.get("additionalProperties"), dict):
                apply_defaults(schema["additionalProperties"], v)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for v in value:
            apply_defaults(schema["items"], v)
    return value


# ---- pruning ----------------------------------------------------------------

def prune(schema, value, path="", root=True):
    """Remove fields the schema does not declare; returns their paths."""
    unknown = []
    if not isinstance(schema, dict):
        return unknown
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
            return unknown
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        embedded = schema.get("x-kubernetes-embedded-resource")
        for k in list(value):
            if (root or embedded) and k in _ROOT_KEEP:
                continue
            p = _join(path, k)
            if props is not None and k in props:
                unknown += prune(props[k], value[k], p, False)
            elif isinstance(addl, dict):
                unknown += prune(addl, value[k], p, False)
            elif addl is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                continue
            elif props is None and addl is None and schema.get("type") != "object":
                continue
            else:
                unknown.append(p)
                del value[k]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            unknown += prune(schema["items"], v, "%s[%d]" % (path, i), False)
    return unknown


# ---- validation -------------------------------------------------------------

def validate(schema, value, path="", root=True):
    causes = []
    _validate(schema, value, path, causes, root)
    return causes


def _validate(schema, v, path, causes, root=False):
    if not isinstance(schema, dict):
        return
    if v is None:
        if schema.get("nullable") or not schema.get("type"):
            return
        causes.append((path, "FieldValueTypeInvalid",
                       'Invalid value: "null": %s in body must be of type %s: "null"'
                       % (path, schema.get("type"))))
        return
    t = schema.get("type")
    if t and not _is_type(v, t, schema):
        actual = ("object" if isinstance(v, dict) else "array" if isinstance(v, list)
                  else "boolean" if isinstance(v, bool) else "string" if isinstance(v, str)
                  else "integer" if isinstance(v, int) else "number")
        causes.append((path, "FieldValueTypeInvalid",
                       'Invalid value: "%s": %s in body must be of type %s: "%s"'
                       % (actual, path, t, actual)))
        return
    if "enum" in schema and isinstance(schema["enum"], list) and v not in schema["enum"]:
        causes.append((path, "FieldValueNotSupported",
                       "Unsupported value: %s: supported values: %s"
                       % (_fmt(v), ", ".join(_fmt(e) for e in schema["enum"]))))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        mn, mx = schema.get("minimum"), schema.get("maximum")
        if mn is not None:
            if schema.get("exclusiveMinimum") and v <= mn:
                causes.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body should be greater than %s"
                               % (_fmt(v), path, _fmt(mn))))
            elif v < mn:
                causes.append((path, "FieldValueInvalid",
                               "Invalid value: %s: %s in body should be greater than or equal to %s"
                               % (_fmt(v), path, _fmt(mn))))
        if mx is not None:
            if schema.get("exclusiveMaximum") and v >= mx:
                causes.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body should be less than %s"
                               % (_fmt(v), path, _fmt(mx))))
            elif v > mx:
                causes.append((path, "FieldValueInvalid",
                               "Invalid value: %s: %s in body should be less than or equal to %s"
                               % (_fmt(v), path, _fmt(mx))))
        mo = schema.get("multipleOf")
        if mo and (v / mo) != int(v / mo):
            causes.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body should be a multiple of %s"
                           % (_fmt(v), path, _fmt(mo))))
    if isinstance(v, str):
        if schema.get("maxLength") is not None and len(v) > schema["maxLength"]:
            causes.append((path, "FieldValueTooLong",
                           "Too long: may not be more than %d bytes" % schema["maxLength"]))
        if schema.get("minLength") is not None and len(v) < schema["minLength"]:
            causes.append((path, "FieldValueInvalid",
                           "Invalid value: %s: %s in body should be at least %d chars long"
                           % (_fmt(v), path, schema["minLength"])))
        if schema.get("pattern"):
            try:
                if not cel.re2_search(schema["pattern"], v):
                    causes.append((path, "FieldValueInvalid",
                                   "Invalid value: %s: %s in body should match '%s'"
                                   % (_fmt(v), path, schema["pattern"])))
            except cel.CelError:
                pass
    if isinstance(v, list):
        if schema.get("maxItems") is not None and len(v) > schema["maxItems"]:
            causes.append((path, "FieldValueTooMany",
                           "Too many: %d: must have at most %d items" % (len(v), schema["maxItems"])))
        if schema.get("minItems") is not None and len(v) < schema["minItems"]:
            causes.append((path, "FieldValueInvalid",
                           "Invalid value: %d: %s in body should have at least %d items"
                           % (len(v), path, schema["minItems"])))
        if schema.get("uniqueItems"):
            seen = set()
            for i, it in enumerate(v):
                key = json.dumps(it, sort_keys=True)
                if key in seen:
                    causes.append(("%s[%d]" % (path, i), "FieldValueDuplicate",
                                   "Duplicate value: %s" % _fmt(it)))
                seen.add(key)
        lt = schema.get("x-kubernetes-list-type")
        if lt in ("set", "map"):
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen = set()
            for i, it in enumerate(v):
                k = json.dumps([it.get(x) for x in keys] if lt == "map" and isinstance(it, dict) else it,
                               sort_keys=True)
                if k in seen:
                    causes.append(("%s[%d]" % (path, i), "FieldValueDuplicate",
                                   "Duplicate value: %s" % (_fmt(it) if lt == "set" else
                                                            _fmt({x: it.get(x) for x in keys}))))
                seen.add(k)
        if isinstance(schema.get("items"), dict):
            for i, it in enumerate(v):
                _validate(schema["items"], it, "%s[%d]" % (path, i), causes)
    if isinstance(v, dict):
        for r in schema.get("required") or []:
            if r not in v:
                causes.append((_join(path, r), "FieldValueRequired", "Required value"))
        if schema.get("maxProperties") is not None and len(v) > schema["maxProperties"]:
            causes.append((path, "FieldValueTooMany", "Too many: %d: must have at most %d items"
                           % (len(v), schema["maxProperties"])))
        if schema.get("minProperties") is not None and len(v) < schema["minProperties"]:
            causes.append((path, "FieldValueInvalid",
                           "Invalid value: %d: %s in body should have at least %d properties"
                           % (len(v), path, schema["minProperties"])))
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, sub in v.items():
            if root and k in _ROOT_KEEP:
                continue
            if k in props:
                _validate(props[k], sub, _join(path, k), causes)
            elif isinstance(addl, dict):
                _validate(addl, sub, _join(path, k), causes)
    for sub in schema.get("allOf") or []:
        _validate(sub, v, path, causes)
    if schema.get("anyOf"):
        if not any(not validate(s, v, path, False) for s in schema["anyOf"]):
            causes.append((path, "FieldValueInvalid",
                           "Invalid value: %s: %s in body must be valid against any of the schemas"
                           % (_fmt(v), path)))
    if schema.get("oneOf"):
        n = sum(1 for s in schema["oneOf"] if not validate(s, v, path, False))
        if n != 1:
            causes.append((path, "FieldValueInvalid",
                           "Invalid value: %s: %s in body must be valid against exactly one of the schemas"
                           % (_fmt(v), path)))
    if isinstance(schema.get("not"), dict) and not validate(schema["not"], v, path, False):
        causes.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body must not validate the schema"
                       % (_fmt(v), path)))
    if not _failed_already(causes, path):
        _check_rules(schema, v, path, causes)


def _failed_already(causes, path):
    """Whether this value already failed its schema: its CEL rules are then skipped."""
    return any(c[0] == path or c[0].startswith(path + ".") or c[0].startswith(path + "[")
               for c in causes) if path else False


_TYPE_NAMES = ((dict, "object"), (list, "array"), (str, "string"), (bool, "boolean"),
               (int, "integer"), (float, "number"))


def _check_rules(schema, v, path, causes):
    for rule in schema.get("x-kubernetes-validations") or []:
        if not isinstance(rule, dict) or not rule.get("rule"):
            continue
        ast = cel.compile_rule(rule["rule"])
        if ast is None:
            continue   # outside the supported CEL subset: not enforced
        where = path + (rule.get("fieldPath") or "")
        tname = next((n for t, n in _TYPE_NAMES if isinstance(v, t)), "null")
        try:
            ok = cel.evaluate(ast, v)
        except cel.CelError as e:
            causes.append((where, "FieldValueInvalid", 'Invalid value: "%s": %s evaluating rule: %s'
                           % (tname, e, rule["rule"])))
            continue
        if ok is not True:
            msg = rule.get("message") or "failed rule: %s" % rule["rule"]
            if rule.get("messageExpression"):
                # The API server falls back to message when the expression fails or is empty.
                mast = cel.compile_rule(rule["messageExpression"])
                try:
                    m = cel.evaluate(mast, v) if mast is not None else None
                except cel.CelError:
                    m = None
                if isinstance(m, str) and m.strip() and "\n" not in m:
                    msg = m
            causes.append((where, rule.get("reason") or "FieldValueInvalid",
                           'Invalid value: "%s": %s' % (tname, msg)))


def process(schema, obj, strict_unknown):
    """Default, prune and validate a custom resource in place.
    Returns (causes, unknown_field_paths)."""
    if not isinstance(schema, dict):
        return [], []
    apply_defaults(schema, obj)
    unknown = prune(schema, obj)
    return validate(schema, obj), unknown


# ---- CRD schema checks ------------------------------------------------------
# What the API server refuses when a CRD is created or updated
# (apiextensions validation): a non-structural schema, a pattern Go's RE2
# cannot compile, uniqueItems, and x-kubernetes-validations rules that do
# not compile: a field CEL cannot see (no type: the server declares no CEL
# type for x-kubernetes-preserve-unknown-fields data), a fieldPath that names
# no field, a reason outside the four allowed.

_RULE_REASONS = ("FieldValueRequired", "FieldValueForbidden", "FieldValueInvalid", "FieldValueDuplicate")
_NOT_RE2 = re.compile(r"\(\?[=!<]|\\[1-9]|\(\?P=")
_JUNCTOR_FORBIDDEN = ("type", "description", "default", "additionalProperties", "nullable")


def _literal_regexes(ast):
    """The literal patterns of a rule's matches() calls, which the API server compiles with the rule."""
    out = []

    def walk(n):
        if isinstance(n, tuple):
            if n[0] == "call" and n[1] == "matches" and len(n[2]) == 2 and n[2][1][0] == "lit" \
                    and isinstance(n[2][1][1], str):
                out.append(n[2][1][1])
            for x in n[1:]:
                walk(x)
        elif isinstance(n, list):
            for x in n:
                walk(x)
    walk(ast)
    return out


def _cel_type(schema):
    """The schema's CEL-visible kind, or None where a rule cannot see the value."""
    if not isinstance(schema, dict):
        return None
    if schema.get("x-kubernetes-int-or-string"):
        return "dyn"
    return schema.get("type") or None


def _field_refs(ast, env):
    """(schema, field name) pairs the rule selects, walking from the variables in env."""
    out = []

    def walk(n, env):
        if not isinstance(n, tuple):
            return None
        k = n[0]
        if k == "var":
            return env.get(n[1], False)
        if k in ("field", "has"):
            base = walk(n[1], env)
            if base is False or base is None:
                return None
            props = base.get("properties") or {}
            sub = props.get(n[2])
            if base.get("type") == "object" and isinstance(base.get("additionalProperties"), dict):
                sub = base["additionalProperties"]
            out.append((base, n[2], sub))
            return sub if _cel_type(sub) else None
        if k == "index":
            base = walk(n[1], env)
            walk(n[2], env)
            if isinstance(base, dict) and base.get("type") == "array":
                return base.get("items")
            if isinstance(base, dict) and isinstance(base.get("additionalProperties"), dict):
                return base["additionalProperties"]
            return None
        if k == "macro":
            _, _, target, var, body = n
            coll = walk(target, env)
            item = None
            if isinstance(coll, dict):
                item = coll.get("items") if coll.get("type") == "array" else (
                    {"type": "string"} if coll.get("type") == "object" else None)
            walk(body, dict(env, **{var: item}))
            return None
        for c in n[1:]:
            if isinstance(c, tuple):
                walk(c, env)
            elif isinstance(c, list):
                for x in c:
                    if isinstance(x, tuple):
                        walk(x, env)
                    elif isinstance(x, (list, tuple)):
                        for y in x:
                            walk(y, env)
        return None

    walk(ast, env)
    return out


def _field_path_ok(schema, fp):
    node = schema
    for name in re.findall(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['([^']*)'\]", fp or ""):
        name = name[0] or name[1]
        props = (node or {}).get("properties") or {}
        if name not in props:
            return False
        node = props[name]
    return True


def check_crd_schema(schema, path="spec.validation.openAPIV3Schema", in_junctor=False, root=True):
    """Causes the API server gives for a CRD version's openAPIV3Schema."""
    causes = []
    if not isinstance(schema, dict):
        return causes
    if in_junctor:
        for k in _JUNCTOR_FORBIDDEN:
            if k in schema:
                causes.append((path + "." + k, "FieldValueForbidden", "Forbidden: must be empty to be structural"))
    elif not schema.get("type") and not schema.get("x-kubernetes-int-or-string") \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        causes.append((path + ".type", "FieldValueRequired", "Required value: must not be empty for specified "
                       "object fields" if not root else "Required value: must not be empty at the root"))
    if schema.get("uniqueItems"):
        causes.append((path + ".uniqueItems", "FieldValueForbidden",
                       "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes "
                       "quadratic"))
    pat = schema.get("pattern")
    if pat is not None:
        try:
            re.compile(pat)
            bad = _NOT_RE2.search(pat)
        except re.error:
            bad = True
        if bad:
            causes.append((path + ".pattern", "FieldValueInvalid",
                           "Invalid value: %s: must be a valid regular expression, but isn't: error parsing "
                           "regexp: invalid or unsupported Perl syntax" % _fmt(pat)))
    for i, rule in enumerate(schema.get("x-kubernetes-validations") or []):
        where = "%s.x-kubernetes-validations[%d]" % (path, i)
        if not isinstance(rule, dict) or not rule.get("rule"):
            causes.append((where + ".rule", "FieldValueRequired", "Required value"))
            continue
        ast = cel.compile_rule(rule["rule"])
        if ast is not None:
            for base, name, sub in _field_refs(ast, {"self": schema}):
                if not _cel_type(sub):
                    causes.append((where + ".rule", "FieldValueInvalid",
                                   "Invalid value: %s: compilation failed: ERROR: <input>: undefined field '%s'"
                                   % (_fmt(rule["rule"]), name)))
                    break
            for rx in _literal_regexes(ast):
                if _NOT_RE2.search(rx):
                    causes.append((where + ".rule", "FieldValueInvalid",
                                   "Invalid value: %s: compilation failed: ERROR: <input>: invalid regex: "
                                   "invalid or unsupported Perl syntax" % _fmt(rule["rule"])))
        if rule.get("messageExpression") and cel.compile_rule(rule["messageExpression"]) is None:
            causes.append((where + ".messageExpression", "FieldValueInvalid",
                           "Invalid value: %s: messageExpression compilation failed"
                           % _fmt(rule["messageExpression"])))
        if rule.get("reason") and rule["reason"] not in _RULE_REASONS:
            causes.append((where + ".reason", "FieldValueNotSupported", "Unsupported value: %s: supported "
                           "values: %s" % (_fmt(rule["reason"]), ", ".join(_fmt(r) for r in _RULE_REASONS))))
        if rule.get("fieldPath") and not _field_path_ok(schema, rule["fieldPath"]):
            causes.append((where + ".fieldPath", "FieldValueInvalid", "Invalid value: %s: fieldPath must "
                           "refer to a field of the schema" % _fmt(rule["fieldPath"])))
        if "\n" in (rule.get("message") or ""):
            causes.append((where + ".message", "FieldValueInvalid", "Invalid value: message must not contain "
                           "line breaks"))
    for k, sub in (schema.get("properties") or {}).items():
        causes += check_crd_schema(sub, "%s.properties[%s]" % (path, k), False, False)
    if isinstance(schema.get("items"), dict):
        causes += check_crd_schema(schema["items"], path + ".items", in_junctor, False)
    if isinstance(schema.get("additionalProperties"), dict):
        causes += check_crd_schema(schema["additionalProperties"], path + ".additionalProperties", in_junctor,
                                   False)
    for j in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(j) or []):
            if schema.get("x-kubernetes-int-or-string") and j in ("anyOf", "allOf") and \
                    sub in ({"type": "integer"}, {"type": "string"}):
                continue   # the one place a junctor may name types
            causes += check_crd_schema(sub, "%s.%s[%d]" % (path, j, i), True, False)
    if isinstance(schema.get("not"), dict):
        causes += check_crd_schema(schema["not"], path + ".not", True, False)
    return causes
