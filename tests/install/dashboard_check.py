#!/usr/bin/env python3
"""dashboard_check.py - checks the chart's Grafana dashboard against the
controller's real metrics.

    python3 tests/install/dashboard_check.py DASHBOARD.json EXPOSITION.prom CTLMETRICS_H RULES_OUT [EVAL_OUT]

DASHBOARD.json is helm/terrane/dashboards/terrane.json; EXPOSITION.prom a
/metrics text the controller's registry rendered (the test_metrics unit test
dumps one with TERRANE_METRICS_DUMP); CTLMETRICS_H controller/ctlmetrics.h,
whose table lists every series the controller exports.

Checks:
  - structure: uid terrane-overview, title Terrane, schemaVersion >= 36, a
    `datasource` variable of type datasource for prometheus; panel ids unique;
    every panel but rows has targets, and its datasource (and its targets')
    is that variable; panels inside the 24-column grid and not overlapping;
  - Grafana variables in expressions are defined (or built in: $__rate_interval,
    $__interval, $__range), sit inside label values or ranges only, and a
    multi-value variable is matched with =~ or !~ (Grafana expands it to a regex);
  - every metric an expression or a label_values() variable query names is a
    family of the exposition (name_bucket/_sum/_count map to their histogram)
    and of ctlmetrics.h's table;
  - every label a selector matches, a by/without/on/ignoring/group_left list or
    a {{legend}} names exists where it is used: on the series (exposition; the
    table for a family without samples there), on the aggregation's or
    function's output, or among the target labels Prometheus adds when it
    scrapes (job, instance; namespace, pod, service, endpoint, container from
    Kubernetes service discovery); histogram_quantile gets `le`; one-to-one
    vector matches compare equal label sets;
  - a literal label value matched with = or != occurs in the exposition
    (phase="running", not "Running");
  - the dashboard shows the series the controller is observed by (REQUIRED).

Writes every expression, variables replaced by concrete values, as a recording
rule to RULES_OUT (JSON, which is YAML) for `promtool check rules`, which
decides syntax. With EVAL_OUT, also writes a `promtool test rules` file there:
the exposition's series as input (with the target labels a scrape adds;
counters and histograms growing by 1 a minute, gauges constant) and, for every
rule whose families have samples, the assertion that it returns at least one
series after 15 minutes - so a query that matches nothing, or that Prometheus
cannot evaluate (many-to-many matching, say), fails. Prints one FAIL line per
problem and exits 1 if any.
Python standard library only.
"""
import json
import os
import re
import sys

# Labels the scrape adds: Prometheus always sets job and instance; Kubernetes
# service discovery as the Prometheus Operator's ServiceMonitor (and the
# usual kubernetes-service-endpoints relabelling) maps these.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}
# Grafana's built-in interval variables and the durations used instead.
BUILTIN_DURATIONS = {"__rate_interval": "2m", "__interval": "30s", "__range": "6h"}
# The target labels every input series gets in the evaluation test.
# A series label that a target label also names is kept as exported_<label>
# (Prometheus' honor_labels: false, the ServiceMonitor default): the source
# metrics' namespace (the asset's) becomes exported_namespace, namespace the
# controller's.
def scraped(label):
    return "exported_" + label if label in TARGET_LABELS else label


SCRAPE = {"job": "terrane-controller", "instance": "10.0.0.7:8080", "namespace": "terrane-system",
          "pod": "terrane-controller-0", "service": "terrane-metrics"}
# Values for the dashboard's own variables when writing promtool's rules.
SAMPLE_VALUES = {"namespace": "terrane-system", "pool": "cpu|highmem", "operation": "cog|terrain"}
# Families the dashboard must show: what the controller is observed by.
REQUIRED = [
    "terrane_materializations_total", "terrane_materialization_duration_seconds",
    "controller_runtime_reconcile_total", "controller_runtime_reconcile_errors_total",
    "controller_runtime_reconcile_time_seconds", "workqueue_depth", "workqueue_adds_total",
    "workqueue_queue_duration_seconds", "workqueue_retries_total", "terrane_worker_pods",
    "terrane_attempts_total", "terrane_retries_total", "terrane_stale_assets",
    "rest_client_requests_total", "rest_client_request_duration_seconds",
    "leader_election_master_status", "terrane_informer_relists_total",
    "terrane_informer_watch_restarts_total", "terrane_build_info",
    "terrane_asset_freshness_lag_seconds", "terrane_source_observations_total",
    "terrane_source_changes_total", "terrane_source_observation_duration_seconds",
]
PANEL_TYPES = {"row", "timeseries", "stat", "table", "heatmap", "gauge", "bargauge", "text", "piechart"}

problems = []


def problem(msg):
    problems.append(msg)


# --- the exposition and ctlmetrics.h ------------------------------------------------------------

SAMPLE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+\S+')
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """Families and their series' label names and values, from an exposition
    and from ctlmetrics.h's table."""

    def __init__(self, exposition, header):
        self.types = {}     # family -> counter|gauge|histogram|...
        self.labels = {}    # sample name -> {label: {values}}
        for line in exposition.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(None, 3)
                self.types[name] = typ.strip()
            elif line and not line.startswith("#"):
                m = SAMPLE.match(line)
                if not m:
                    problem(f"exposition: cannot read sample line {line[:80]!r}")
                    continue
                d = self.labels.setdefault(m.group(1), {})
                for k, v in LABEL.findall(m.group(3) or ""):
                    d.setdefault(scraped(k), set()).add(v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
        # ctlmetrics.h: " *  name[, name]   type   labels" rows of its table.
        self.table = {}
        row = re.compile(r"^ \*  ([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*)\s+(counter|gauge|histogram)\s+(.+?)\s*$")
        for line in header.splitlines():
            m = row.match(line)
            if m:
                labels = set() if m.group(3) == "-" else {scraped(x.strip()) for x in m.group(3).split(",")}
                for name in m.group(1).split(", "):
                    self.table[name] = (m.group(2), labels)
        if len(self.table) < 20:
            problem(f"ctlmetrics.h: only {len(self.table)} rows read from its table of series")

    def family(self, name):
        """(family, suffix) of a series name, or (None, None)."""
        if name in self.types:
            return name, ""
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and self.types.get(base) in ("histogram", "summary"):
                if suffix == "_bucket" and self.types[base] != "histogram":
                    break
                return base, suffix
        return None, None

    def series_labels(self, name):
        """Label names a series of this name carries, and whether they came
        from samples (True) or only from ctlmetrics.h's table (False)."""
        if name in self.labels:
            return set(self.labels[name]), True
        fam, suffix = self.family(name)
        if fam in self.table:
            labels = set(self.table[fam][1])
            return (labels | {"le"}) if suffix == "_bucket" else labels, False
        return set(), False

    def values(self, name, label):
        return self.labels.get(name, {}).get(label)

    def has_samples(self, family):
        return any(self.family(name)[0] == family for name in self.labels)


# --- Grafana variables ------------------------------------------------------------------------

VAR = re.compile(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)\]\]")


def var_names(text):
    return [a or b or c for a, b, c in VAR.findall(text)]


def substitute(text, values):
    return VAR.sub(lambda m: values.get(m.group(1) or m.group(2) or m.group(3), m.group(0)), text)


# --- PromQL: tokens, parser, label inference ----------------------------------------------------

TOKEN = re.compile(r"""
   (?P<ws>\s+)
 | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
 | (?P<dur>(?:[0-9]+(?:ms|[smhdwy]))+(?![A-Za-z0-9_:]))
 | (?P<num>0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)
 | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
 | (?P<op>==|!=|=~|!~|<=|>=|[-+*/%^<>=(){}\[\],@:])
""", re.X)
BINOPS = {"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, "<": 3, ">": 3, "<=": 3, ">=": 3,
          "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6}
SETOPS = {"or", "and", "unless"}
AGGS = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk",
        "quantile", "count_values"}
# Functions whose output keeps the labels of their (first) vector argument.
KEEP = {"rate", "irate", "increase", "delta", "idelta", "deriv", "resets", "changes", "abs", "ceil",
        "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "round", "clamp", "clamp_min", "clamp_max",
        "sort", "sort_desc", "timestamp", "predict_linear", "holt_winters", "avg_over_time",
        "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time",
        "stddev_over_time", "stdvar_over_time", "present_over_time", "quantile_over_time",
        "absent", "absent_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month",
        "hour", "minute", "month", "year"}


class ParseError(Exception):
    pass


class Parser:
    def __init__(self, text):
        self.toks, pos = [], 0
        while pos < len(text):
            m = TOKEN.match(text, pos)
            if not m:
                raise ParseError(f"unexpected character {text[pos]!r} at offset {pos}")
            if m.lastgroup != "ws":
                self.toks.append((m.lastgroup, m.group()))
            pos = m.end()
        self.i = 0

    def peek(self, k=0):
        return self.toks[self.i + k] if self.i + k < len(self.toks) else (None, None)

    def next(self):
        t = self.peek()
        if t[0] is None:
            raise ParseError("unexpected end of expression")
        self.i += 1
        return t

    def expect(self, val):
        t = self.next()
        if t[1] != val:
            raise ParseError(f"expected {val!r}, got {t[1]!r}")

    def parse(self):
        e = self.expr(1)
        if self.peek()[0] is not None:
            raise ParseError(f"unexpected {self.peek()[1]!r}")
        return e

    def labels(self):
        self.expect("(")
        out = []
        while self.peek()[1] != ")":
            kind, val = self.next()
            if kind != "ident":
                raise ParseError(f"expected a label name, got {val!r}")
            out.append(val)
            if self.peek()[1] == ",":
                self.next()
        self.next()
        return out

    def expr(self, minp):
        lhs = self.unary()
        while True:
            kind, val = self.peek()
            if kind not in ("op", "ident") or val not in BINOPS or BINOPS[val] < minp:
                return lhs
            self.next()
            node = {"k": "bin", "op": val, "l": lhs, "on": None, "ignoring": None, "group": None, "extra": []}
            if self.peek()[1] == "bool":
                self.next()
                node["bool"] = True
            if self.peek()[1] in ("on", "ignoring"):
                which = self.next()[1]
                node[which] = self.labels()
                if self.peek()[1] in ("group_left", "group_right"):
                    node["group"] = self.next()[1]
                    if self.peek()[1] == "(":
                        node["extra"] = self.labels()
            prec = BINOPS[val]
            node["r"] = self.expr(prec if val == "^" else prec + 1)
            lhs = node

    def unary(self):
        if self.peek()[1] in ("-", "+"):
            self.next()
            return {"k": "neg", "e": self.unary()}
        return self.postfix(self.primary())

    def postfix(self, node):
        while True:
            val = self.peek()[1]
            if val == "[":
                self.next()
                if self.next()[0] != "dur":
                    raise ParseError("expected a duration in [...]")
                if self.peek()[1] == ":":
                    self.next()
                    if self.peek()[0] == "dur":
                        self.next()
                self.expect("]")
                node = {"k": "range", "e": node}
            elif val == "offset":
                self.next()
                if self.peek()[1] == "-":
                    self.next()
                if self.next()[0] != "dur":
                    raise ParseError("expected a duration after offset")
            elif val == "@":
                self.next()
                kind, v = self.next()
                if v in ("start", "end"):
                    self.expect("(")
                    self.expect(")")
                elif kind != "num":
                    raise ParseError("expected a timestamp after @")
            else:
                return node

    def matchers(self):
        self.expect("{")
        out = []
        while self.peek()[1] != "}":
            kind, label = self.next()
            if kind != "ident":
                raise ParseError(f"expected a label name in {{...}}, got {label!r}")
            op = self.next()[1]
            if op not in ("=", "!=", "=~", "!~"):
                raise ParseError(f"expected a matcher operator after {label}, got {op!r}")
            kind, val = self.next()
            if kind != "str":
                raise ParseError(f"expected a string after {label}{op}")
            out.append((label, op, unquote(val)))
            if self.peek()[1] == ",":
                self.next()
        self.next()
        return out

    def args(self):
        self.expect("(")
        out = []
        while self.peek()[1] != ")":
            out.append(self.expr(1))
            if self.peek()[1] == ",":
                self.next()
            elif self.peek()[1] != ")":
                raise ParseError(f"expected ',' or ')', got {self.peek()[1]!r}")
        self.next()
        return out

    def primary(self):
        kind, val = self.peek()
        if val == "(":
            self.next()
            e = self.expr(1)
            self.expect(")")
            return {"k": "paren", "e": e}
        if kind == "num" or val in ("Inf", "NaN", "inf", "nan"):
            self.next()
            return {"k": "num"}
        if kind == "str":
            self.next()
            return {"k": "str", "v": unquote(val)}
        if val == "{":
            ms = self.matchers()
            name = next((v for l, o, v in ms if l == "__name__" and o == "="), None)
            return {"k": "sel", "name": name, "matchers": [m for m in ms if m[0] != "__name__"]}
        if kind == "ident":
            self.next()
            if val in AGGS and (self.peek()[1] in ("(", "by", "without")):
                node = {"k": "agg", "op": val, "mode": None, "labels": []}
                if self.peek()[1] in ("by", "without"):
                    node["mode"] = self.next()[1]
                    node["labels"] = self.labels()
                node["args"] = self.args()
                if node["mode"] is None and self.peek()[1] in ("by", "without"):
                    node["mode"] = self.next()[1]
                    node["labels"] = self.labels()
                return node
            if self.peek()[1] == "(":
                return {"k": "call", "f": val, "args": self.args()}
            ms = self.matchers() if self.peek()[1] == "{" else []
            return {"k": "sel", "name": val, "matchers": ms}
        raise ParseError(f"unexpected {val!r}")


def unquote(s):
    if s[0] == "`":
        return s[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s[1:-1])


class Checker:
    """Infers the label names each node of an expression outputs (None for a
    scalar) and reports every label used where no series carries it."""

    def __init__(self, metrics, where, multi_vars):
        self.m, self.where, self.multi = metrics, where, multi_vars
        self.families = set()

    def fail(self, msg):
        problem(f"{self.where}: {msg}")

    def need(self, used, have, what):
        missing = [l for l in used if l not in have]
        if missing:
            self.fail(f"{what}: label(s) {', '.join(missing)} not on {{{', '.join(sorted(have)) or 'no labels'}}}")

    def labels(self, n):
        k = n["k"]
        if k in ("paren", "neg", "range"):
            return self.labels(n["e"])
        if k == "num":
            return None
        if k == "str":
            return None
        if k == "sel":
            return self.selector(n)
        if k == "agg":
            return self.agg(n)
        if k == "call":
            return self.call(n)
        if k == "bin":
            return self.binary(n)
        raise AssertionError(k)

    def selector(self, n):
        name = n["name"]
        if not name:
            self.fail("selector without a metric name")
            return set(TARGET_LABELS)
        fam, _ = self.m.family(name)
        if fam is None:
            self.fail(f"{name}: no such series in the controller's exposition")
            return set(TARGET_LABELS)
        if fam not in self.m.table:
            self.fail(f"{name}: family {fam} is not in ctlmetrics.h's table")
        self.families.add(fam)
        own, sampled = self.m.series_labels(name)
        have = own | TARGET_LABELS
        for label, op, value in n["matchers"]:
            if label not in have:
                self.fail(f"{name}{{{label}{op}...}}: {name} has no label {label} "
                          f"(it has {', '.join(sorted(own)) or 'none'}; scrape adds {', '.join(sorted(TARGET_LABELS))})")
                continue
            used_vars = var_names(value)
            for v in used_vars:
                if v in self.multi and op in ("=", "!="):
                    self.fail(f"{name}{{{label}{op}\"{value}\"}}: ${v} is multi-value; match it with =~ or !~")
            if (op in ("=", "!=") and not used_vars and value and label in own and sampled):
                known = self.m.values(name, label) or set()
                if value not in known:
                    self.fail(f"{name}{{{label}{op}\"{value}\"}}: value never exposed "
                              f"(exposition has {', '.join(sorted(known))})")
        return have

    def agg(self, n):
        args = n["args"]
        if not args:
            self.fail(f"{n['op']}() without argument")
            return set()
        for a in args[:-1]:
            self.labels(a)
        inner = self.labels(args[-1])
        if inner is None:
            self.fail(f"{n['op']}() over a scalar")
            return set()
        if n["labels"]:
            self.need(n["labels"], inner, f"{n['op']} {n['mode']} ({', '.join(n['labels'])})")
        if n["op"] in ("topk", "bottomk"):
            out = set(inner)
        elif n["mode"] == "by":
            out = set(n["labels"])
        elif n["mode"] == "without":
            out = inner - set(n["labels"])
        else:
            out = set()
        if n["op"] == "count_values" and args[0]["k"] == "str":
            out.add(args[0]["v"])
        return out

    def call(self, n):
        f, args = n["f"], n["args"]
        ls = [self.labels(a) for a in args]
        vectors = [l for l in ls if l is not None]
        if f == "histogram_quantile":
            if len(args) != 2 or ls[1] is None:
                self.fail("histogram_quantile(phi, buckets) takes a scalar and a vector")
                return set()
            if "le" not in ls[1]:
                self.fail(f"histogram_quantile over series without le (labels: {', '.join(sorted(ls[1]))})")
            return ls[1] - {"le"}
        if f in ("label_replace", "label_join"):
            if not args or ls[0] is None or any(a["k"] != "str" for a in args[1:]):
                self.fail(f"{f}: expects a vector and string arguments")
                return set()
            src = [args[4]["v"]] if f == "label_replace" and len(args) == 5 else [a["v"] for a in args[3:]]
            self.need([s for s in src if s], ls[0], f"{f} source")
            return ls[0] | {args[1]["v"]}
        if f == "vector":
            return set()
        if f in ("scalar", "time", "pi"):
            return None
        if f in KEEP:
            if not vectors:
                self.fail(f"{f}() without a vector argument")
                return set()
            return vectors[0]
        self.fail(f"unknown function {f}()")
        return vectors[0] if vectors else set()

    def binary(self, n):
        L, R = self.labels(n["l"]), self.labels(n["r"])
        op = n["op"]
        if L is None or R is None:
            if n["on"] is not None or n["ignoring"] is not None:
                self.fail(f"'{op}' with on/ignoring between a scalar and a vector")
            return R if L is None else L
        if n["on"] is not None:
            self.need(n["on"], L, f"left of '{op} on ({', '.join(n['on'])})'")
            self.need(n["on"], R, f"right of '{op} on ({', '.join(n['on'])})'")
        if n["ignoring"] is not None:
            self.need(n["ignoring"], L | R, f"'{op} ignoring ({', '.join(n['ignoring'])})'")
        if op in SETOPS:
            return (L | R) if op == "or" else L
        if n["group"] == "group_left":
            self.need(n["extra"], R, f"group_left ({', '.join(n['extra'])})")
            return L | set(n["extra"])
        if n["group"] == "group_right":
            self.need(n["extra"], L, f"group_right ({', '.join(n['extra'])})")
            return R | set(n["extra"])
        if n["on"] is None:
            ign = set(n["ignoring"] or [])
            if (L - ign) != (R - ign):
                self.fail(f"'{op}' matches one-to-one but the sides' labels differ: "
                          f"{{{', '.join(sorted(L - ign))}}} vs {{{', '.join(sorted(R - ign))}}}")
        return L


# --- the dashboard ---------------------------------------------------------------------------------

def is_ds_var(ds):
    return isinstance(ds, dict) and ds.get("uid") in ("${datasource}", "$datasource") and \
        ds.get("type", "prometheus") == "prometheus"


def all_panels(panels):
    """(panel, group): top-level panels in group None, those inside a
    collapsed row in that row's group (their gridPos is where they show when
    it is expanded, so they are only compared with each other)."""
    for p in panels:
        yield p, None
        for sub in p.get("panels", []) or []:
            yield sub, p.get("id")


def main():
    if len(sys.argv) not in (5, 6):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    dash_path, expo_path, header_path, rules_path = sys.argv[1:5]
    eval_path = sys.argv[5] if len(sys.argv) == 6 else None
    with open(dash_path) as f:
        try:
            dash = json.load(f)
        except ValueError as e:
            print(f"FAIL {dash_path}: not JSON: {e}")
            return 1
    with open(expo_path) as f:
        expo = f.read()
    with open(header_path) as f:
        header = f.read()
    metrics = Metrics(expo, header)

    # top level
    if dash.get("uid") != "terrane-overview":
        problem(f"uid is {dash.get('uid')!r}, want 'terrane-overview'")
    if dash.get("title") != "Terrane":
        problem(f"title is {dash.get('title')!r}, want 'Terrane'")
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        problem(f"schemaVersion {dash.get('schemaVersion')!r} < 36")
    if dash.get("id") is not None:
        problem("id must be null: Grafana assigns it; a fixed id clashes between instances")

    # variables
    variables = (dash.get("templating") or {}).get("list") or []
    names = [v.get("name") for v in variables]
    for dup in sorted({x for x in names if names.count(x) > 1}):
        problem(f"variable {dup} defined twice")
    ds_vars = [v for v in variables if v.get("name") == "datasource"]
    if not ds_vars or ds_vars[0].get("type") != "datasource" or ds_vars[0].get("query") != "prometheus":
        problem("no variable 'datasource' of type datasource with query prometheus")
    defined = set(names)
    multi = {v["name"] for v in variables if v.get("multi") or v.get("includeAll")}
    values = dict(BUILTIN_DURATIONS)
    for name in defined:
        if name != "datasource":
            values[name] = SAMPLE_VALUES.get(name, "x")

    rules, used_families, evaluable = [], set(), []

    def check_expr(expr, where, legend=None, record=None):
        for v in var_names(expr):
            if v not in defined and v not in BUILTIN_DURATIONS:
                problem(f"{where}: ${v} is not a variable of the dashboard")
        # Label check: interval variables become durations; others stay inside
        # their strings (a variable outside one is an error in Grafana too).
        text = substitute(expr, BUILTIN_DURATIONS)
        outside = VAR.sub("", re.sub(r'"(?:[^"\\]|\\.)*"', '""', text))
        if "$" in outside or "[[" in outside:
            problem(f"{where}: a variable outside a label value or range: {expr}")
        out, families = None, set()
        try:
            tree = Parser(text).parse()
        except ParseError as e:
            problem(f"{where}: cannot parse {expr!r}: {e} (promtool reports the exact error)")
            tree = None
        if tree is not None:
            c = Checker(metrics, where, multi)
            out = c.labels(tree)
            families = c.families
            used_families.update(families)
            for label in re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", legend or ""):
                if out is None or label not in out:
                    problem(f"{where}: legend {{{{{label}}}}} is not a label of the result "
                            f"({', '.join(sorted(out or [])) or 'no labels'})")
        if record:
            concrete = substitute(expr, values)
            if "$" in VAR.sub("", concrete) or var_names(concrete):
                problem(f"{where}: variables left after substitution: {concrete}")
            rules.append({"record": record, "expr": concrete, "labels": {"where": where}})
            if families and all(metrics.has_samples(f) for f in families):
                evaluable.append(record)
        return out

    for v in variables:
        if v.get("type") != "query":
            continue
        where = f"variable {v.get('name')}"
        if not is_ds_var(v.get("datasource")):
            problem(f"{where}: datasource is not the datasource variable: {v.get('datasource')}")
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q or "", re.S)
        if not m:
            problem(f"{where}: query {q!r} is not label_values(selector, label)")
            continue
        out = check_expr(m.group(1), where, record=f"terrane_dashboard:variable_{v['name']}")
        if out is not None and m.group(2) not in out:
            problem(f"{where}: label_values over {m.group(1)}: no label {m.group(2)}")

    # panels
    grouped = list(all_panels(dash.get("panels") or []))
    panels = [p for p, _ in grouped]
    if not panels:
        problem("no panels")
    ids = [p.get("id") for p in panels]
    for dup in sorted({i for i in ids if ids.count(i) > 1}, key=str):
        problem(f"panel id {dup} used by {ids.count(dup)} panels")
    for p in panels:
        if not isinstance(p.get("id"), int):
            problem(f"panel {p.get('title')!r}: id {p.get('id')!r} is not an integer")
    boxes = []
    ntargets = 0
    for p, group in grouped:
        where = f"panel {p.get('id')} {p.get('title')!r}"
        if p.get("type") not in PANEL_TYPES:
            problem(f"{where}: unknown type {p.get('type')!r}")
        if not p.get("title"):
            problem(f"{where}: no title")
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")) or g["w"] <= 0 or g["h"] <= 0 \
                or g["x"] < 0 or g["x"] + g["w"] > 24:
            problem(f"{where}: gridPos {g} is not inside the 24-column grid")
        else:
            for other, og, ogroup in boxes:
                if ogroup == group and g["x"] < og["x"] + og["w"] and og["x"] < g["x"] + g["w"] and \
                        g["y"] < og["y"] + og["h"] and og["y"] < g["y"] + g["h"]:
                    problem(f"{where}: overlaps {other}")
            boxes.append((where, g, group))
        if p.get("type") == "row":
            if p.get("targets"):
                problem(f"{where}: a row with targets")
            continue
        if not is_ds_var(p.get("datasource")):
            problem(f"{where}: datasource {p.get('datasource')} is not the datasource variable")
        targets = p.get("targets") or []
        if not targets:
            problem(f"{where}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            problem(f"{where}: refIds {refs} missing or not unique")
        for t in targets:
            tw = f"{where} target {t.get('refId')}"
            if "datasource" in t and not is_ds_var(t["datasource"]):
                problem(f"{tw}: datasource {t['datasource']} is not the datasource variable")
            expr = t.get("expr")
            if not expr or not expr.strip():
                problem(f"{tw}: no expr")
                continue
            ntargets += 1
            check_expr(expr, tw, legend=t.get("legendFormat"),
                       record=f"terrane_dashboard:panel_{p.get('id')}:{t.get('refId')}")

    for fam in REQUIRED:
        if fam not in used_families:
            problem(f"no panel shows {fam}")

    with open(rules_path, "w") as f:
        json.dump({"groups": [{"name": "terrane-dashboard", "rules": rules}]}, f, indent=1)
    if eval_path:
        write_eval_tests(eval_path, os.path.abspath(rules_path), expo, metrics, evaluable)
    for p in problems:
        print(f"FAIL {p}")
    if problems:
        return 1
    print(f"ok   {len(panels)} panels, {ntargets} queries and {len(rules) - ntargets} variable queries over "
          f"{len(used_families)} families: metrics, labels, label values and legends exist")
    if eval_path:
        print(f"ok   {len(evaluable)} of {len(rules)} queries to evaluate with promtool test rules "
              f"(the others use families without samples in the exposition: "
              f"{', '.join(sorted(f for f in used_families if not metrics.has_samples(f))) or 'none'})")
    return 0


def write_eval_tests(path, rules_path, expo, metrics, records):
    """A promtool rule test: the exposition's samples as input series, and
    for each record "returns something at 15m"."""
    series = []
    for line in expo.splitlines():
        m = SAMPLE.match(line)
        if not m or line.startswith("#") or "\\" in line:
            continue  # label values with escapes: the series notation is not the exposition's
        name, value = m.group(1), float(line.rsplit(None, 1)[1])
        labels = {scraped(k): v for k, v in LABEL.findall(m.group(3) or "")}
        labels.update(SCRAPE)
        fam, _ = metrics.family(name)
        grows = metrics.types.get(fam) in ("counter", "histogram")
        text = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        series.append({"series": f"{name}{{{text}}}", "values": f"{value:f}+{1 if grows else 0}x15"})
    tests = [{"expr": f"count({r}) > bool 0", "eval_time": "15m", "exp_samples": [{"labels": "{}", "value": 1}]}
             for r in records]
    doc = {"rule_files": [rules_path], "evaluation_interval": "1m",
           "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
