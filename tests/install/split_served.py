#!/usr/bin/env python3
"""split_served.py - splits rendered manifests by what the current cluster serves.

    python3 tests/install/split_served.py RENDERED.jsonl SERVED.json

Reads the API server's discovery documents with kubectl (the KUBECONFIG in
the environment), writes the documents whose apiVersion and kind it serves
to SERVED.json as one v1 List (kubectl apply -f takes it), and prints one
line per kind it does not serve: "<kind> <apiVersion> <name>".
Python standard library only.
"""
import json
import subprocess
import sys


def raw(path):
    out = subprocess.run(["kubectl", "get", "--raw", path], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else None


def served_kinds():
    served = set()
    core = raw("/api/v1") or {}
    for r in core.get("resources", []):
        served.add(("v1", r["kind"]))
    for g in (raw("/apis") or {}).get("groups", []):
        for v in g.get("versions", []):
            gv = v["groupVersion"]
            for r in (raw(f"/apis/{gv}") or {}).get("resources", []):
                if "/" not in r["name"]:
                    served.add((gv, r["kind"]))
    return served


def main():
    rendered, out = sys.argv[1], sys.argv[2]
    with open(rendered) as f:
        docs = [json.loads(line) for line in f if line.strip()]
    served = served_kinds()
    keep = [d for d in docs if (d["apiVersion"], d["kind"]) in served]
    for d in docs:
        if (d["apiVersion"], d["kind"]) not in served:
            print(f"{d['kind']} {d['apiVersion']} {d['metadata']['name']}")
    with open(out, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": keep}, f)


if __name__ == "__main__":
    main()
