#!/usr/bin/env bash
# The chart's Grafana dashboard (helm/terrane/dashboards/terrane.json) against
# the controller's real metrics, and its ConfigMap for Grafana's sidecar:
#  - the JSON parses and has the structure Grafana and the sidecar need (uid
#    terrane-overview, title Terrane, schemaVersion >= 36, a prometheus
#    `datasource` variable that every panel and query uses, unique panel ids,
#    targets on every panel, a grid without overlaps) - dashboard_check.py;
#  - every metric and label the queries, variable queries and legends name is
#    in a real exposition of the controller (dumped by the test_metrics unit
#    test, as tests/integration/test_metrics_promtool.sh does) and in
#    controller/ctlmetrics.h's table - dashboard_check.py;
#  - every query, Grafana variables replaced by values, is valid PromQL:
#    `promtool check rules` on them as recording rules;
#  - every query returns data when Prometheus evaluates it over the
#    exposition's series: `promtool test rules`;
#  - the checks are live: broken copies of the dashboard are rejected, each
#    for its own reason;
#  - `helm template` renders no dashboard by default, and with
#    grafana.dashboard.enabled a ConfigMap holding the file byte for byte, with
#    the sidecar's labels, annotations and namespace; values.schema.json
#    rejects ill-typed grafana values; the packaged chart carries the file.
# Exit 0 pass, 77 skip (no promtool, helm or kubectl, or test_metrics not
# built), anything else fail.
. "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null || skip "promtool missing: run scripts/deps.sh (Debian package prometheus)"
need_helm
need_kubectl
BUILD=${TERRANE_BUILD:-$ROOT/build}
T_METRICS=$BUILD/tests/controller/test_metrics
[ -x "$T_METRICS" ] || skip "unit test binary $T_METRICS not built (make $T_METRICS)"
CHART=$ROOT/helm/terrane
DASH=$CHART/dashboards/terrane.json
HEADER=$ROOT/controller/ctlmetrics.h
CHECK=$HERE/dashboard_check.py
NS=terrane-system

# --- the controller's exposition ----------------------------------------------------------
EXPO=$TMP/controller.prom
if TERRANE_METRICS_DUMP=$EXPO "$T_METRICS" >"$TMP/test_metrics.log" 2>&1 && [ -s "$EXPO" ]; then
  ok "exposition dumped by test_metrics: $(grep -c '^# TYPE' "$EXPO") families"
else
  tail -20 "$TMP/test_metrics.log"
  fail "test_metrics did not dump an exposition"
  finish
fi

# --- the dashboard ------------------------------------------------------------------------------
if out=$("$PY" "$CHECK" "$DASH" "$EXPO" "$HEADER" "$TMP/rules.json" "$TMP/eval.json" 2>&1); then
  while IFS= read -r line; do ok "${line#ok   }"; done <<<"$out"
else
  fail "dashboard_check.py:"$'\n'"$out"
fi
if out=$(promtool check rules "$TMP/rules.json" 2>&1); then
  ok "promtool check rules: every query is valid PromQL ($(grep -o '[0-9]* rules found' <<<"$out"))"
else
  fail "promtool check rules: $out"
fi
if out=$(promtool test rules "$TMP/eval.json" 2>&1); then
  ok "promtool test rules: every query over sampled families returns data"
else
  fail "promtool test rules: $out"
fi

# --- the checks are live --------------------------------------------------------------------------
# mutate NAME: writes $TMP/mut-NAME.json, the dashboard broken in one way.
mutate() {
  "$PY" - "$DASH" "$1" "$TMP/mut-$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
what = sys.argv[2]
panels = d["panels"]
def panel(title):
    return next(p for p in panels if p.get("title") == title)
def edit(title, old, new, field="expr"):
    t = next(t for t in panel(title)["targets"] if old in t[field])
    t[field] = t[field].replace(old, new, 1)
if what == "uid":
    d["uid"] = "terrane"
elif what == "dupid":
    panel("Materializations by pool")["id"] = panel("Materializations by result")["id"]
elif what == "datasource":
    panel("Queue depth")["datasource"] = {"type": "prometheus", "uid": "PBFA97CFB590B2093"}
elif what == "notargets":
    panel("Stale assets")["targets"] = []
elif what == "metric":
    edit("Materializations by result", "terrane_materializations_total", "terrane_materialisations_total")
elif what == "label":
    edit("API requests by code", "by (code)", "by (verb)")
elif what == "value":
    edit("Running worker pods", 'phase="running"', 'phase="Running"')
elif what == "legend":
    panel("Materializations by pool")["targets"][0]["legendFormat"] = "{{result}}"
elif what == "onetoone":
    edit("Failure and cache-hit ratio", "sum(rate(", "sum by (pool) (rate(")
elif what == "multi":
    edit("Pending worker pods", 'pool=~"$pool"', 'pool="$pool"')
elif what == "variable":
    edit("Reconciles by result", "$namespace", "$ns")
elif what == "overlap":
    panel("Queue adds and retries")["gridPos"] = dict(panel("Queue depth")["gridPos"])
elif what == "required":
    d["panels"] = [p for p in panels if "terrane_retries_total" not in json.dumps(p.get("targets", []))]
elif what == "syntax":
    edit("Reconcile duration", "sum by (le) (", "sum by (le) ((")
elif what == "nomatch":
    edit("Failure and cache-hit ratio", 'result="failed"', 'result=~"fail"')
json.dump(d, open(sys.argv[3], "w"))
PY
}
# rejects NAME TEXT: dashboard_check.py fails on mutation NAME, saying TEXT.
rejects() {
  mutate "$1" || { fail "mutation $1 could not be made"; return; }
  local out
  if out=$("$PY" "$CHECK" "$TMP/mut-$1.json" "$EXPO" "$HEADER" "$TMP/mut-rules.json" 2>&1); then
    fail "dashboard_check.py accepted mutation $1"
  elif [[ "$out" == *"$2"* ]]; then
    ok "rejects $1: $(grep -F -m1 -- "$2" <<<"$out" | sed 's/^FAIL //' | cut -c1-160)"
  else
    fail "mutation $1 rejected without '$2': $out"
  fi
}
rejects uid "uid is 'terrane'"
rejects dupid "used by 2 panels"
rejects datasource "is not the datasource variable"
rejects notargets "no targets"
rejects metric "terrane_materialisations_total: no such series"
rejects label "label(s) verb not on"
rejects value 'phase="Running"}: value never exposed'
rejects legend "legend {{result}} is not a label of the result"
rejects onetoone "labels differ"
rejects multi "\$pool is multi-value"
rejects variable "\$ns is not a variable"
rejects overlap "overlaps"
rejects required "no panel shows terrane_retries_total"
# What only Prometheus decides: syntax, and whether a query matches anything.
mutate syntax && "$PY" "$CHECK" "$TMP/mut-syntax.json" "$EXPO" "$HEADER" "$TMP/mut-rules.json" >/dev/null 2>&1
if out=$(promtool check rules "$TMP/mut-rules.json" 2>&1); then
  fail "promtool check rules accepted an unbalanced parenthesis"
else
  ok "promtool check rules rejects an unbalanced parenthesis: $(grep -m1 -o 'parse error.*' <<<"$out" | cut -c1-100)"
fi
mutate nomatch && "$PY" "$CHECK" "$TMP/mut-nomatch.json" "$EXPO" "$HEADER" "$TMP/mut-rules.json" "$TMP/mut-eval.json" >/dev/null 2>&1
if out=$(promtool test rules "$TMP/mut-eval.json" 2>&1); then
  fail "promtool test rules accepted a query that matches nothing"
elif [[ "$out" == *"got: nil"* ]]; then
  ok "promtool test rules rejects a query that matches nothing (result=~\"fail\")"
else
  fail "promtool test rules failed otherwise: $out"
fi

# --- the ConfigMap ---------------------------------------------------------------------------------
# render NAME ARGS...: helm template into $TMP/NAME.yaml and, parsed by kubectl, $TMP/NAME.jsonl.
render() {
  local name=$1; shift
  local out
  if ! out=$("$HELM" template terrane "$@" --namespace "$NS" 2>&1 >"$TMP/$name.yaml"); then
    fail "helm template ($name): $out"; return 1
  fi
  if ! yaml_json "$TMP/$name.yaml" >"$TMP/$name.jsonl" 2>"$TMP/$name.err"; then
    fail "kubectl cannot parse the $name rendering: $(cat "$TMP/$name.err")"; return 1
  fi
}
# configmap NAME EXPECT...: checks the dashboard ConfigMaps of rendering NAME;
# EXPECT is "none" or key=value pairs (name, namespace, label:K, annotation:K, labels).
configmap() {
  local out
  if out=$("$PY" - "$TMP/$1.jsonl" "$DASH" "${@:2}" <<'PY'
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
want = dict(a.split("=", 1) for a in sys.argv[3:] if a != "none")
cms = [d for d in docs if d["kind"] == "ConfigMap" and "terrane.json" in d.get("data", {})]
bad = []
if "none" in sys.argv[3:]:
    bad += [f"dashboard ConfigMap {c['metadata']['name']} rendered" for c in cms]
elif len(cms) != 1:
    bad.append(f"{len(cms)} dashboard ConfigMaps")
else:
    (cm,) = cms
    md = cm["metadata"]
    if cm["data"]["terrane.json"] != open(sys.argv[2]).read():
        bad.append("data terrane.json differs from dashboards/terrane.json")
    if json.loads(cm["data"]["terrane.json"]).get("uid") != "terrane-overview":
        bad.append("dashboard uid")
    for k, v in want.items():
        if k == "labels":
            got = len(md.get("labels", {}))
            if str(got) != v:
                bad.append(f"{got} labels, want {v}")
        elif k.startswith("label:"):
            if md.get("labels", {}).get(k[6:]) != v:
                bad.append(f"label {k[6:]}={md.get('labels', {}).get(k[6:])!r}, want {v!r}")
        elif k.startswith("annotation:"):
            if (md.get("annotations") or {}).get(k[11:]) != v:
                bad.append(f"annotation {k[11:]}={(md.get('annotations') or {}).get(k[11:])!r}, want {v!r}")
        elif k == "annotations":
            if str(len(md.get("annotations") or {})) != v:
                bad.append(f"annotations {md.get('annotations')}")
        elif md.get(k) != v:
            bad.append(f"{k} {md.get(k)!r}, want {v!r}")
print("; ".join(bad))
sys.exit(1 if bad else 0)
PY
  ); then
    return 0
  fi
  fail "$1: $out"
  return 1
}
render default "$CHART" && configmap default none && ok "no dashboard ConfigMap by default"
render enabled "$CHART" --set grafana.dashboard.enabled=true &&
  configmap enabled name=terrane-dashboard namespace=$NS label:grafana_dashboard=1 \
    label:app.kubernetes.io/part-of=terrane label:app.kubernetes.io/component=dashboard labels=8 annotations=0 &&
  ok "grafana.dashboard.enabled: ConfigMap terrane-dashboard in $NS holds dashboards/terrane.json byte for byte, labelled grafana_dashboard=\"1\""
render custom "$CHART" --set grafana.dashboard.enabled=true --set grafana.dashboard.namespace=monitoring \
  --set-string grafana.dashboard.labels.grafana_dashboard=terrane --set commonLabels.grafana_dashboard=common \
  --set commonLabels.team=hydrology --set grafana.dashboard.annotations.grafana_folder=Geospatial &&
  configmap custom namespace=monitoring label:grafana_dashboard=terrane label:team=hydrology \
    annotation:grafana_folder=Geospatial &&
  ok "namespace, annotations and labels of the dashboard ConfigMap; its labels win over commonLabels"
# The dashboard's document only: commonLabels label every other one too.
n=$(awk '/^---/ {doc = ""} /^# Source: terrane\/templates\/dashboard-configmap.yaml/ {doc = 1} doc' "$TMP/custom.yaml" |
  grep -c '^    grafana_dashboard:')
[ "$n" = 1 ] && ok "a label in both commonLabels and grafana.dashboard.labels is rendered once" ||
  fail "grafana_dashboard rendered $n times in the labels"
render nolabels "$CHART" --set grafana.dashboard.enabled=true --set grafana.dashboard.labels=null &&
  configmap nolabels labels=7 && ok "grafana.dashboard.labels=null leaves the chart's own labels"
size=$(stat -c %s "$DASH")
[ "$size" -lt 262144 ] && ok "dashboard is $size bytes, below the 256 KiB kubectl apply's last-applied annotation allows" ||
  fail "dashboard is $size bytes: client-side kubectl apply of its ConfigMap would fail"

# reject WHAT TEXT ARGS...: helm template fails, saying TEXT.
reject() {
  local what=$1 want=$2; shift 2
  local out
  if out=$("$HELM" template terrane "$CHART" "$@" 2>&1 >/dev/null); then
    fail "$what: accepted"
  elif [[ "$out" == *"$want"* ]]; then
    ok "$what: rejected ($(grep -F -m1 -- "$want" <<<"$out" | sed 's/^[- ]*//'))"
  else
    fail "$what: rejected, but without '$want': $out"
  fi
}
reject 'unquoted numeric label value' "at '/grafana/dashboard/labels/grafana_dashboard': got number, want string" \
  --set grafana.dashboard.labels.grafana_dashboard=1
reject 'namespace not a DNS label' "'Monitoring' does not match pattern" --set grafana.dashboard.namespace=Monitoring
reject 'misspelt key' "additional properties 'enable' not allowed" --set grafana.dashboard.enable=true

# --- the packaged chart ---------------------------------------------------------------------------
if out=$("$HELM" package "$CHART" -d "$TMP/pkg" 2>&1); then
  tgz=$(ls "$TMP"/pkg/terrane-*.tgz)
  tar tzf "$tgz" | grep -qx 'terrane/dashboards/terrane.json' && ok "package has dashboards/terrane.json" ||
    fail "package lacks dashboards/terrane.json"
  render packaged "$tgz" --set grafana.dashboard.enabled=true && configmap packaged name=terrane-dashboard &&
    ok "the packaged chart renders the dashboard ConfigMap"
else
  fail "helm package: $out"
fi
finish
