#!/usr/bin/env python3
"""The CEL rules scripts/gen-crd.py writes for a pattern's lookaheads say what the lookaheads say.

For every pattern of proto/schema/task.v1.json with a lookahead, and many strings
(the golden tasks' values, strings built to hit each lookahead, and mutations of
both), the full pattern (Python's re has lookaheads) must accept exactly the strings
that the relaxed RE2 pattern and the generated rules accept, the rules evaluated by
kubesim's CEL (tests/kubesim/cel.py). Also: each rule's estimated cost is within the
API server's per-rule limit at the field's maxLength. Prints `N passed, N failed`.
"""

import importlib.util
import itertools
import json
import os
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
sys.path.insert(0, os.path.join(ROOT, "tests/kubesim"))
import cel  # noqa: E402
import celcost  # noqa: E402

spec = importlib.util.spec_from_file_location("gencrd", os.path.join(ROOT, "scripts/gen-crd.py"))
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)


def patterns(o):
    if isinstance(o, dict):
        if isinstance(o.get("pattern"), str) and any(x in o["pattern"] for x in gen.LOOK):
            yield o
        for v in o.values():
            yield from patterns(v)
    elif isinstance(o, list):
        for v in o:
            yield from patterns(v)


def strings_of(o):
    if isinstance(o, str):
        yield o
    elif isinstance(o, dict):
        for v in o.values():
            yield from strings_of(v)
    elif isinstance(o, list):
        for v in o:
            yield from strings_of(v)


BITS = ["+init=", "TERRANE_", "TERRANE", "..", ".", "/", "/../", "/..", "../", "./", "/vsi", "/proc/",
        "\n", "\r", "a", "x.tif", "s3://raw/", "https://h/", "+proj=", "EPSG:4326", "GEOGCS[", "_"]


def corpus():
    seen = set(BITS)
    for d in ("valid", "invalid"):
        base = os.path.join(ROOT, "proto/examples/task", d)
        for f in sorted(os.listdir(base)):
            if f.endswith(".json"):
                with open(os.path.join(base, f)) as fh:
                    seen.update(s for s in strings_of(json.load(fh)) if len(s) < 300)
    for a, b in itertools.product(BITS, repeat=2):
        seen.add(a + b)
    for a, b, c in itertools.product(["+proj=", "TERRANE_", "a/", "/", "s3://raw/", ".."], BITS, BITS):
        seen.add(a + b + c)
    out = set(seen)
    for s in seen:
        out.update((s + "\n", "/" + s, s + "/..", "../" + s, s.replace("+", "+init=+")))
    return sorted(out)


def main():
    passed = failed = 0
    strings = corpus()
    for node in patterns(gen.SCHEMA):
        full = node["pattern"]
        try:
            relaxed, _ = gen.lookaheads(full)
        except gen.Untranslatable as e:
            print("ok   %s: left to the controller (%s)" % (full[:50], e))
            passed += 1
            continue
        rules = [(cel.compile_rule(r["rule"]), r["rule"]) for r in gen.lookahead_rules(full)]
        bad = []
        for s in strings:
            want = cel.re2_search(full, s)
            got = cel.re2_search(relaxed, s) and all(cel.evaluate(a, s) for a, _ in rules)
            if want != got:
                bad.append(s)
        if bad:
            failed += 1
            print("FAIL %s: the rules disagree with the pattern on %d strings, e.g. %r" % (full, len(bad), bad[:3]))
        else:
            passed += 1
            print("ok   %s: %d strings agree (%s)" % (full[:50], len(strings), "; ".join(r for _, r in rules)))
        for _, src in rules:
            c = celcost.rule_cost(src, {"type": "string", "maxLength": node.get("maxLength", 1 << 20)})
            if c is None or c > celcost.PER_RULE:
                failed += 1
                print("FAIL %s: estimated cost %s above %d" % (src, c, celcost.PER_RULE))
            else:
                passed += 1
    # The model against figures worked by hand from cel-go's cost formulas (celcost.py).
    for src, sch, want in [
            ("self.startsWith('TERRANE_')", {"type": "string", "maxLength": 128}, 1 + 1),
            ("self.matches('^a+b$')", {"type": "string", "maxLength": 99}, 1 + 10 * 2),
            ("self.contains('abcdefghijk')", {"type": "string", "maxLength": 100}, 1 + 10 * 2),
            ("self.all(x, x > 1)", {"type": "array", "maxItems": 10, "items": {"type": "integer"}},
             1 + 10 * (3 + 1 + 1) + 1)]:
        got = celcost.rule_cost(src, sch)
        if got == want:
            passed += 1
            print("ok   cost of %s at %s: %d" % (src, sch, got))
        else:
            failed += 1
            print("FAIL cost of %s at %s: %s, want %d" % (src, sch, got, want))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
