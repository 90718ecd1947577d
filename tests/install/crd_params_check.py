#!/usr/bin/env python3
"""Params of the golden tasks through `kubectl apply`, against kubesim.

    crd_params_check.py ROOT OUTDIR         write one AssetMaterialization per golden task
    crd_params_check.py ROOT OUTDIR STDERR  check kubectl's answers (stderr of `kubectl apply -f`)

Each proto/examples/task/{valid,invalid}/*.json becomes an AssetMaterialization
with the task's operation, params and inputs (by uri). Valid tasks must apply;
every invalid task whose .field names a param must be rejected by the API
server (the CRD's schema and rules, or the ValidatingAdmissionPolicy of
crds/terrane.io_assetmaterializations-params-policy.yaml) with a message
naming that param (spec.params.<name>), except the cases listed in
CONTROLLER_ONLY (none now), which neither could express (the generated CRD
would say so in its params description) and which must then apply, so the list
cannot go stale. Prints one ok/FAIL line per case and exits 1 on any failure.
"""

import json
import os
import re
import sys

# Params of several types (nodata, resolution), which CRD rules cannot see,
# are checked by the generated ValidatingAdmissionPolicy; a pattern's
# lookahead becomes a CEL rule beside the relaxed pattern (scripts/gen-crd.py
# lookaheads()). A case neither can say would be listed here: none is.
CONTROLLER_ONLY = {}


def cases(root):
    base = os.path.join(root, "proto/examples/task")
    for kind in ("valid", "invalid"):
        for f in sorted(os.listdir(os.path.join(base, kind))):
            if not f.endswith(".json"):
                continue
            name = f[:-5]
            field = None
            if kind == "invalid":
                with open(os.path.join(base, kind, name + ".field")) as fh:
                    field = fh.read().strip()
                if not (field == "params" or field.startswith("params.")):
                    continue
            with open(os.path.join(base, kind, f)) as fh:
                task = json.load(fh)
            # observe tasks are what an AssetSource runs, grid, assemble and collection
            # what the controller runs around partitions, not AssetMaterializations
            # (scripts/gen-crd.py NOT_ASSET_OPERATIONS; tests/install/test_assetsource_crd.sh).
            if task.get("operation") in ("observe", "grid", "assemble", "collection"):
                continue
            yield kind, name, field, task


def spec_fields(root):
    """Operations whose params live in a spec field of their own (scripts/gen-crd.py)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("gencrd", os.path.join(root, "scripts/gen-crd.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, "SPEC_FIELDS", {})


def resource(kind, name, task, own=None):
    spec = {"assetKey": task["assetKey"], "operation": task["operation"],
            "inputs": [{"name": i["name"], "uri": i["uri"]} for i in task["inputs"]],
            "output": {"uri": "s3://assets/golden"}}
    if "params" in task:
        spec[(own or {}).get(task["operation"], "params")] = task["params"]
    return {"apiVersion": "terrane.io/v1alpha1", "kind": "AssetMaterialization",
            "metadata": {"name": "%s-%s" % (kind, name), "namespace": "golden"}, "spec": spec}


def write(root, outdir):
    own = spec_fields(root)
    for kind, name, _, task in cases(root):
        d = os.path.join(outdir, kind)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name + ".json"), "w") as fh:
            json.dump(resource(kind, name, task, own), fh, indent=1)


def check(root, outdir, stderr_file):
    with open(stderr_file) as fh:
        err = fh.read()
    # kubectl apply -f DIR: one `Error from server ...: error when creating "FILE": ...` per failure.
    errors = {}
    for m in re.finditer(r'error when (?:creating|applying patch)[^"]*"([^"]+)":(.*?)(?=\nError from server|\Z)',
                         err, re.S):
        errors[os.path.basename(m.group(1))[:-5]] = m.group(2).strip()
    for m in re.finditer(r'Error from server \(BadRequest\): error when creating "([^"]+)": (.*)', err):
        errors[os.path.basename(m.group(1))[:-5]] = m.group(2).strip()
    bad = 0
    own = spec_fields(root)
    for kind, name, field, task in cases(root):
        msg = errors.get(name)
        if kind == "valid" or name in CONTROLLER_ONLY:
            if msg is None:
                print("ok   %s/%s applies%s" % (kind, name, " (%s; the controller rejects it)"
                                                % CONTROLLER_ONLY[name] if kind == "invalid" else ""))
            else:
                bad += 1
                print("FAIL %s/%s was rejected: %s" % (kind, name, msg))
            continue
        want = "spec." + field
        if task.get("operation") in own and field.startswith("params"):
            want = "spec." + own[task["operation"]] + field[len("params"):]
        named = msg is not None and re.search(r'(^|[\s"])%s([:"\s\[]|$)' % re.escape(want), msg)
        if named:
            print("ok   %s/%s rejected: %s" % (kind, name, msg.splitlines()[0][:300]))
        else:
            bad += 1
            print("FAIL %s/%s: want a rejection naming %s, got %s" % (kind, name, want, msg))
    print("%d failed" % bad)
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3:
        write(sys.argv[1], sys.argv[2])
        sys.exit(0)
    sys.exit(check(*sys.argv[1:4]))
