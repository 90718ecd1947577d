"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and an
approximation of strategic merge patch.

Strategic merge patch is what `kubectl apply` sends for built-in kinds. Here
lists whose Go type declares a merge key (containers by name, env by name,
conditions by type, ...) are merged by that key and the patch directives
`$patch`, `$setElementOrder/...`, `$deleteFromPrimitiveList/...` and
`$retainKeys` are honoured; every other list is replaced, as in a merge patch.
All functions take and return fresh JSON-shaped values; PatchError becomes 422.
"""

import copy


class PatchError(ValueError):
    pass


# ---- JSON merge patch -------------------------------------------------------

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# ---- JSON patch -------------------------------------------------------------

def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer %r" % path)
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(container, tok, allow_end=False):
    if tok == "-" and allow_end:
        return len(container)
    try:
        i = int(tok)
    except ValueError:
        raise PatchError("invalid array index %r" % tok)
    if i < 0 or i > len(container) or (i == len(container) and not allow_end):
        raise PatchError("array index %d out of bounds" % i)
    return i


def _walk(doc, toks):
    cur = doc
    for t in toks:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError("path component %r not found" % t)
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t)]
        else:
            raise PatchError("cannot descend into a scalar at %r" % t)
    return cur


def _get(doc, path):
    return _walk(doc, _ptr(path))


def _add(doc, path, value):
    toks = _ptr(path)
    if not toks:
        return value
    parent = _walk(doc, toks[:-1])
    last = toks[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise PatchError("cannot add to a scalar at %r" % path)
    return doc


def _remove(doc, path):
    toks = _ptr(path)
    if not toks:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, toks[:-1])
    last = toks[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError("unable to remove nonexistent key: %s: missing value" % last)
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last))
    raise PatchError("cannot remove from a scalar at %r" % path)


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("invalid json patch operation %r" % (op,))
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            toks = _ptr(path)
            if not toks:
                doc = copy.deepcopy(op.get("value"))
                continue
            _get(doc, path)  # must exist
            parent = _walk(doc, toks[:-1])
            if isinstance(parent, dict):
                parent[toks[-1]] = copy.deepcopy(op.get("value"))
            else:
                parent[_index(parent, toks[-1])] = copy.deepcopy(op.get("value"))
        elif kind == "move":
            v = _remove(doc, op.get("from", ""))
            doc = _add(doc, path, v)
        elif kind == "copy":
            v = copy.deepcopy(_get(doc, op.get("from", "")))
            doc = _add(doc, path, v)
        elif kind == "test":
            try:
                cur = _get(doc, path)
            except PatchError:
                cur = None
            if cur != op.get("value"):
                raise PatchError("testing value %s failed" % path)
        else:
            raise PatchError("unexpected kind: %s" % kind)
    return doc


# ---- strategic merge patch (approximation) ----------------------------------

MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "volumeMounts": "mountPath",
    "volumeDevices": "devicePath", "imagePullSecrets": "name", "ownerReferences": "uid",
    "conditions": "type", "hostAliases": "ip", "secrets": "name", "addresses": "type",
    "topologySpreadConstraints": "topologyKey", "taints": "key", "resourceClaims": "name",
}
# Primitive lists whose Go field carries patchStrategy "merge".
MERGE_PRIMITIVE = {"finalizers"}


def _list_key(field, items):
    if field == "ports":
        for it in items:
            if isinstance(it, dict):
                return "containerPort" if "containerPort" in it else "port"
        return "containerPort"
    return MERGE_KEYS.get(field)


def strategic_merge_patch(target, patch):
    return _smp_map(copy.deepcopy(target) if isinstance(target, dict) else {}, patch)


def _smp_map(orig, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = orig if isinstance(orig, dict) else {}
    orders = {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in (v or [])]
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict):
            merged = _smp_map(result.get(k), v)
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        elif isinstance(v, list):
            result[k] = _smp_list(k, result.get(k), v)
        else:
            result[k] = v
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(field, result[field], order)
    if isinstance(patch.get("$retainKeys"), list):
        keep = set(patch["$retainKeys"])
        for k in list(result):
            if k not in keep:
                del result[k]
    return result


def _smp_list(field, orig, patch):
    orig = orig if isinstance(orig, list) else []
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [copy.deepcopy(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    key = _list_key(field, patch + orig)
    if key and all(isinstance(x, dict) for x in patch):
        result = list(orig)
        for el in patch:
            kv = el.get(key)
            idx = next((i for i, o in enumerate(result)
                        if isinstance(o, dict) and o.get(key) == kv), None)
            if el.get("$patch") == "delete":
                if idx is not None:
                    result.pop(idx)
                continue
            if idx is None:
                result.append({k: copy.deepcopy(v) for k, v in el.items() if k != "$patch"})
            else:
                merged = _smp_map(result[idx], el)
                if merged is None:
                    result.pop(idx)
                else:
                    result[idx] = merged
        return result
    if field in MERGE_PRIMITIVE:
        result = list(orig)
        for x in patch:
            if x not in result:
                result.append(x)
        return result
    return copy.deepcopy(patch)


def _reorder(field, items, order):
    key = _list_key(field, items)

    def ident(x):
        if key and isinstance(x, dict):
            return x.get(key)
        return x if not isinstance(x, (dict, list)) else repr(x)

    wanted = [(o.get(key) if (key and isinstance(o, dict)) else o) for o in order]
    pos = {w: i for i, w in enumerate(wanted)}
    ranked = [(pos.get(ident(x), len(wanted) + i), x) for i, x in enumerate(items)]
    ranked.sort(key=lambda t: t[0])
    return [x for _, x in ranked]
