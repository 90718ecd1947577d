"""OpenAPI v3 documents, enough for kubectl.

kubectl reads /openapi/v3 to learn whether the server validates fields itself
(it looks for a `fieldValidation` query parameter on each kind's PATCH
operation) and `kubectl explain` renders the kind's schema from
components.schemas. Custom resources get their CRD's schema; built-in kinds a
loose object schema. Strategic merge patch is not advertised, so kubectl
computes apply patches for built-ins from its compiled-in types.
"""

import hashlib
import json

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_META_SCHEMA = {
    "description": "ObjectMeta is metadata that all persisted resources must have, which "
                   "includes all objects users must create.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {"type": "string", "description": "Prefix for a server-generated name."},
        "namespace": {"type": "string", "description": "Namespace of the object."},
        "labels": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "Map of string keys and values used to select objects."},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "Unstructured key value map."},
        "uid": {"type": "string", "description": "Unique identifier, set by the server."},
        "resourceVersion": {"type": "string", "description": "Opaque version for optimistic "
                                                            "concurrency and watches."},
        "generation": {"type": "integer", "format": "int64",
                       "description": "A sequence number representing a specific generation "
                                      "of the desired state."},
        "creationTimestamp": {"type": "string", "format": "date-time",
                              "description": "When the object was created."},
        "deletionTimestamp": {"type": "string", "format": "date-time",
                              "description": "When the object will be deleted."},
        "finalizers": {"type": "array", "items": {"type": "string"},
                       "description": "Must be empty before the object is deleted."},
        "ownerReferences": {"type": "array", "items": {"type": "object"},
                            "description": "Objects this object depends on."},
    },
}


def _schema_name(r):
    g = ".".join(reversed(r.group.split("."))) if r.group else "io.k8s.api.core"
    return "%s.%s.%s" % (g, r.version, r.kind)


def _kind_schema(r):
    if r.schema:
        s = json.loads(json.dumps(r.schema))
    else:
        s = {"type": "object",
             "description": "%s (built-in kind served by kubesim; its fields are not "
                            "described here)." % r.kind,
             "properties": {"spec": {"type": "object", "description": "Desired state."},
                            "status": {"type": "object", "description": "Observed state."}}}
    s.setdefault("type", "object")
    props = s.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned "
                           "schema of this representation of an object."}
    props["kind"] = {"type": "string", "description": "Kind is a string value representing "
                     "the REST resource this object represents."}
    props["metadata"] = {"allOf": [{"$ref": "#/components/schemas/" + OBJECT_META}],
                         "default": {},
                         "description": "Standard object's metadata."}
    s["x-kubernetes-group-version-kind"] = [r.gvk]
    return s


def _op(r, action, ref):
    op = {"operationId": "%s%s" % (action, r.kind), "tags": [r.group or "core"],
          "x-kubernetes-action": action, "x-kubernetes-group-version-kind": r.gvk,
          "responses": {"200": {"description": "OK", "content": {
              "application/json": {"schema": {"$ref": ref}}}}}}
    if action == "patch":
        op["parameters"] = [
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"},
             "description": "Ignore, Warn or Strict."},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}},
        ]
        op["requestBody"] = {"content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
        }, "required": True}
    elif action in ("post", "put"):
        op["parameters"] = [{"name": "fieldValidation", "in": "query",
                             "schema": {"type": "string"}}]
        op["requestBody"] = {"content": {"application/json": {"schema": {"$ref": ref}}},
                             "required": True}
    return op


def gv_path(group, version):
    return "api/" + version if not group else "apis/%s/%s" % (group, version)


def gv_document(reg, group, version, server_version):
    rs = reg.resources_in(group, version)
    if not rs:
        return None
    paths, schemas = {}, {OBJECT_META: _META_SCHEMA}
    prefix = "/" + gv_path(group, version)
    for r in rs:
        sname = _schema_name(r)
        schemas[sname] = _kind_schema(r)
        ref = "#/components/schemas/" + sname
        base = prefix + ("/namespaces/{namespace}/" if r.namespaced else "/") + r.plural
        paths[base] = {"get": _op(r, "list", ref), "post": _op(r, "post", ref)}
        item = {"get": _op(r, "get", ref), "put": _op(r, "put", ref),
                "patch": _op(r, "patch", ref), "delete": _op(r, "delete", ref)}
        paths[base + "/{name}"] = item
        if r.status_sub:
            paths[base + "/{name}/status"] = {"get": _op(r, "get", ref), "put": _op(r, "put", ref),
                                              "patch": _op(r, "patch", ref)}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": server_version},
            "paths": paths, "components": {"schemas": schemas}}


def index(reg, server_version):
    out = {"paths": {}}
    gvs = []
    for (g, v, _p) in reg.by_gvr:
        if (g, v) not in gvs:
            gvs.append((g, v))
    for g, v in gvs:
        doc = gv_document(reg, g, v, server_version)
        h = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
        out["paths"][gv_path(g, v)] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s"
                                       % (gv_path(g, v), h)}
    return out


# ---- OpenAPI v2 (Swagger), as protobuf ------------------------------------------
#
# kubectl up to 1.27 checks server-side field validation through /openapi/v2,
# which it only accepts in protobuf form (gnostic's openapi.v2.Document). The
# document here carries just what that check reads: for each kind, a PATCH
# operation with the x-kubernetes-group-version-kind extension and a
# `fieldValidation` query parameter. It has no definitions, so kubectl falls
# back to its compiled-in types for apply patches and has no v2 schemas.

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _named_any(name, yaml_text):
    return _field(1, name) + _field(2, _field(2, yaml_text))   # NamedAny{name, Any{yaml}}


def _query_param(name, typ="string"):
    qp = _field(2, "query") + _field(4, name) + _field(6, typ)   # QueryParameterSubSchema
    nbp = _field(3, qp)                                          # NonBodyParameter.query...
    param = _field(2, nbp)                                       # Parameter.non_body_parameter
    return _field(1, param)                                      # ParametersItem.parameter


def _v2_paths(reg):
    for r in sorted(reg.by_gvr.values(), key=lambda r: (r.group, r.version, r.plural)):
        base = "/" + gv_path(r.group, r.version) + \
            ("/namespaces/{namespace}/" if r.namespaced else "/") + r.plural + "/{name}"
        yield base, r


def v2_protobuf(reg, server_version):
    paths = b""
    for path, r in _v2_paths(reg):
        gvk_yaml = "group: %s\nkind: %s\nversion: %s\n" % (json.dumps(r.group), r.kind, r.version)
        op = _field(5, "patch%s" % r.kind)
        for p in ("dryRun", "fieldManager", "fieldValidation", "force"):
            op += _field(8, _query_param(p, "boolean" if p == "force" else "string"))
        op += _field(13, _named_any("x-kubernetes-action", "patch\n"))
        op += _field(13, _named_any("x-kubernetes-group-version-kind", gvk_yaml))
        item = _field(8, op)                                     # PathItem.patch
        paths += _field(2, _field(1, path) + _field(2, item))    # Paths.path: NamedPathItem
    doc = _field(1, "2.0") + _field(2, _field(1, "Kubernetes") + _field(2, server_version))
    doc += _field(8, paths)
    return doc


def v2_json(reg, server_version):
    paths = {}
    for path, r in _v2_paths(reg):
        paths[path] = {"patch": {
            "operationId": "patch%s" % r.kind,
            "parameters": [{"name": p, "in": "query", "type": "boolean" if p == "force" else "string",
                            "uniqueItems": True}
                           for p in ("dryRun", "fieldManager", "fieldValidation", "force")],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": r.gvk}}
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": server_version},
            "paths": paths, "definitions": {}}
