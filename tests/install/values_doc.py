#!/usr/bin/env python3
"""values_doc.py - keeps helm/terrane/README.md's table of values in step with
values.yaml and values.schema.json.

    python3 tests/install/values_doc.py [--write] [--helm PATH]

Rows are the chart's values down to their leaves: a value is descended into
when the schema gives it named properties (controller.image.tag), and is a
leaf otherwise (maps such as nodeSelector, lists, scalars). For each leaf the
row holds its name, its type from values.schema.json, its default from
values.yaml as Helm reads it (Helm itself renders the values as JSON, so
YAML details never differ) and its description: the comment lines right
above the key in values.yaml.

Without --write, checks that README.md lists exactly those rows, in order,
with the same type, default and description, and that every leaf has a
comment; prints each difference and exits 1. With --write, rewrites the table
between the README's <!-- values:begin --> and <!-- values:end --> markers.
Python standard library only.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.environ.get("TERRANE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "helm", "terrane")
BEGIN, END = "<!-- values:begin -->", "<!-- values:end -->"
HEADER = ["| value | type | default | description |", "|---|---|---|---|"]


def helm_values(helm, values_files=()):
    """The chart's values as Helm parses and merges them (defaults, then
    values_files), via a throwaway copy of the chart with one extra template
    that prints them as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = os.path.join(tmp, "terrane")
        shutil.copytree(CHART, chart, symlinks=False)
        with open(os.path.join(chart, "templates", "zz-values-json.yaml"), "w") as f:
            f.write("# values-json: {{ toJson .Values }}\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: values-json}\n")
        out = subprocess.run(
            [helm, "template", "values-doc", chart, "--show-only", "templates/zz-values-json.yaml"]
            + [a for f in values_files for a in ("-f", f)],
            check=True, capture_output=True, text=True,
        ).stdout
    for line in out.splitlines():
        if line.startswith("# values-json: "):
            return json.loads(line[len("# values-json: "):])
    raise SystemExit("values_doc: helm did not print the values")


def resolve(schema, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/definitions/"), ref
        node = schema["definitions"][ref[len("#/definitions/"):]]
    return node


def type_name(schema, node):
    node = resolve(schema, node)
    names = {"integer": "int", "number": "number", "string": "string", "boolean": "bool",
             "array": "list", "object": "object", "null": "null"}
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        return " or ".join(names[t] for t in types)
    for key in ("oneOf", "anyOf"):
        if key in node:
            out = []
            for alt in node[key]:
                alt = resolve(schema, alt)
                t = type_name(schema, alt) if ("type" in alt or "oneOf" in alt or "anyOf" in alt) else \
                    {str: "string", int: "int", float: "number", bool: "bool"}.get(type(alt.get("const")), "any")
                if t not in out:
                    out.append(t)
            return " or ".join(out)
    return "any"


def leaves(schema, node, value, path, out):
    node = resolve(schema, node)
    props = node.get("properties")
    if props and isinstance(value, dict):
        extra = node.get("additionalProperties")
        for key, sub in value.items():
            child = props.get(key, extra if isinstance(extra, dict) else None)
            if child is None:
                raise SystemExit(f"values_doc: {'.'.join(path + [key])} is not in values.schema.json")
            leaves(schema, child, sub, path + [key], out)
        return
    out.append((".".join(path), type_name(schema, node), value))


KEY = re.compile(r'^(\s*)([A-Za-z0-9_][A-Za-z0-9_.\-/]*):(\s|$)')


def comments(values_text):
    """{dotted path: (line number, description)} for every block-mapping key
    of values.yaml, the description from the comment lines directly above it."""
    out, stack, pending = {}, [], []
    for lineno, line in enumerate(values_text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        m = KEY.match(line)
        if m:
            indent = len(m.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, m.group(2)))
            out[".".join(k for _, k in stack)] = (lineno, " ".join(p for p in pending if p))
        pending = []
    return out


def cell(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def uncell(text):
    return text.replace("\\|", "|").replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")


def rows(helm):
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    with open(os.path.join(CHART, "values.yaml")) as f:
        docs = comments(f.read())
    values = helm_values(helm)
    values.pop("global", None)  # Helm's own, not the chart's
    found = []
    leaves(schema, schema, values, [], found)
    out, problems = [], []
    # Helm prints maps sorted by key; the table follows values.yaml instead.
    found.sort(key=lambda r: docs.get(r[0], (1 << 30, ""))[0])
    for path, typ, default in found:
        desc = docs[path][1] if path in docs else None
        if desc is None:
            problems.append(f"{path}: no key line found in values.yaml")
        elif not desc:
            problems.append(f"{path}: no comment above it in values.yaml")
        out.append((path, typ, json.dumps(default, separators=(", ", ": "), ensure_ascii=False), desc or ""))
    return out, problems


def all_set(helm, values_file):
    """Every leaf of the defaults differs in the merged values of values_file."""
    with open(values_file) as f:
        text = f.read()
    m = re.search(r"^# defaults-kept:(.*)$", text, re.M)
    kept = set(m.group(1).split()) if m else set()
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    defaults, merged = [], []
    leaves(schema, schema, helm_values(helm), [], defaults)
    leaves(schema, schema, helm_values(helm, [values_file]), [], merged)
    now = {p: v for p, _, v in merged}
    problems = []
    for path, _, default in defaults:
        if path == "global":
            continue
        same = now.get(path, default) == default
        if same and path not in kept:
            problems.append(f"{path} keeps its default {json.dumps(default)} in {os.path.relpath(values_file, ROOT)}")
        elif not same and path in kept:
            problems.append(f"{path} is listed on the defaults-kept line but is changed")
    for k in kept - {p for p, _, _ in defaults}:
        problems.append(f"defaults-kept names {k}, which is not a value")
    for p in problems:
        print(f"FAIL {p}")
    if problems:
        return 1
    print(f"ok   {os.path.relpath(values_file, ROOT)} sets all {len(defaults)} values "
          f"({len(kept)} kept at their default on purpose: {' '.join(sorted(kept))})")
    return 0


def render(table):
    lines = list(HEADER)
    for path, typ, default, desc in table:
        lines.append(f"| `{path}` | {typ} | `{default.replace('|', chr(92) + '|')}` | {cell(desc)} |")
    return lines


ROW = re.compile(r"^\| `([^`]+)` \| (.*?) \| `(.*?)` \| (.*) \|$")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite the README table")
    ap.add_argument("--helm", help="helm binary (default: scripts/helm.sh extracts it)")
    ap.add_argument("--all-set", metavar="VALUES_FILE",
                    help="instead: check that VALUES_FILE gives every value a non-default setting, "
                         "except those on its '# defaults-kept:' line")
    args = ap.parse_args()
    helm = args.helm or subprocess.run([os.path.join(ROOT, "scripts", "helm.sh")], check=True,
                                       capture_output=True, text=True).stdout.strip()
    if args.all_set:
        return all_set(helm, args.all_set)
    table, problems = rows(helm)
    readme_path = os.path.join(CHART, "README.md")
    with open(readme_path) as f:
        readme = f.read()
    if BEGIN not in readme or END not in readme:
        print(f"FAIL {readme_path}: markers {BEGIN} / {END} missing")
        return 1
    head, rest = readme.split(BEGIN, 1)
    old, tail = rest.split(END, 1)
    want = render(table)
    if args.write:
        with open(readme_path, "w") as f:
            f.write(head + BEGIN + "\n" + "\n".join(want) + "\n" + END + tail)
        print(f"wrote {len(table)} rows to {os.path.relpath(readme_path, ROOT)}")
    else:
        have = {}
        order = []
        for line in old.strip().splitlines():
            m = ROW.match(line.strip())
            if m:
                have[m.group(1)] = (m.group(2), m.group(3).replace(chr(92) + "|", "|"), uncell(m.group(4)))
                order.append(m.group(1))
            elif line.strip() and line.strip() not in HEADER:
                problems.append(f"README: not a table row: {line.strip()[:100]}")
        paths = [r[0] for r in table]
        for path in paths:
            if path not in have:
                problems.append(f"README: value {path} missing from the table")
        for path in order:
            if path not in paths:
                problems.append(f"README: {path} is not a value of values.yaml")
        for path, typ, default, desc in table:
            if path in have:
                h = have[path]
                if h[0] != typ:
                    problems.append(f"README: {path}: type {h[0]!r}, values.schema.json says {typ!r}")
                if h[1] != default:
                    problems.append(f"README: {path}: default {h[1]} , values.yaml has {default}")
                if h[2] != desc:
                    problems.append(f"README: {path}: description differs from the values.yaml comment")
        if [p for p in order if p in paths] != [p for p in paths if p in have]:
            problems.append("README: rows are not in values.yaml's order")
    for p in problems:
        print(f"FAIL {p}")
    if problems:
        print(f"{len(problems)} problem(s); after editing values.yaml run: python3 tests/install/values_doc.py --write")
        return 1
    print(f"ok   README.md lists the {len(table)} values of values.yaml with their types, defaults and comments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
