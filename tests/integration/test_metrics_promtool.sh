#!/usr/bin/env bash
# test_metrics_promtool.sh - the controller's metrics and both sides' EMF lines
# against the real tools, without a cluster:
#   - the controller's full exposition (every family, a label value with a
#     quote, a backslash and a newline), dumped by the test_metrics unit test,
#     passes `promtool check metrics` (parser and lint: _total suffixes, base
#     units, help text) with no problem reported;
#   - a real Prometheus server scrapes the controller's registry served by
#     httpd (test_httpd in serve mode) every second; PromQL through its HTTP
#     API sees up == 1, the materializations recorded after the first scrape
#     (the total, and the increase since that scrape, both exactly N), and a
#     histogram quantile within the observed range;
#   - the controller's and the worker's sample EMF lines pass
#     tests/lib/emf_check.py, which rejects deliberately broken lines.
. "$(dirname "$0")/../lib/base.sh"
BUILD=${TERRANE_BUILD:-$ROOT/build}
PY=/usr/bin/python3
EMF_CHECK=$ROOT/tests/lib/emf_check.py
PIDS=()
at_exit 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done'

T_METRICS=$BUILD/tests/controller/test_metrics
T_HTTPD=$BUILD/tests/controller/test_httpd
T_EMF_C=$BUILD/tests/controller/test_emf
T_EMF_W=$BUILD/tests/worker/test_emf
for t in "$T_METRICS" "$T_HTTPD" "$T_EMF_C" "$T_EMF_W"; do
  [ -x "$t" ] || skip "unit test binary $t not built (make $BUILD/tests/...)"
done
command -v promtool >/dev/null || skip "promtool missing: run scripts/deps.sh (Debian package prometheus)"

# --- the exposition through promtool ---------------------------------------------
TERRANE_METRICS_DUMP=$TMP/controller.prom "$T_METRICS" >"$TMP/test_metrics.log" 2>&1 ||
  { tail -20 "$TMP/test_metrics.log"; fail "test_metrics failed"; }
if [ -s "$TMP/controller.prom" ]; then
  out=$(promtool check metrics <"$TMP/controller.prom" 2>&1)
  rc=$?
  if [ $rc = 0 ] && [ -z "$out" ]; then
    ok "promtool check metrics: no problems in $(grep -c '^# TYPE' "$TMP/controller.prom") families"
  else
    fail "promtool check metrics (exit $rc): $out"
  fi
  for fam in controller_runtime_reconcile_total controller_runtime_reconcile_errors_total \
    controller_runtime_reconcile_time_seconds controller_runtime_max_concurrent_reconciles \
    controller_runtime_active_workers workqueue_depth workqueue_adds_total \
    workqueue_queue_duration_seconds workqueue_work_duration_seconds workqueue_retries_total \
    workqueue_unfinished_work_seconds workqueue_longest_running_processor_seconds \
    rest_client_requests_total rest_client_request_duration_seconds leader_election_master_status \
    terrane_materializations_total terrane_materialization_duration_seconds terrane_worker_pods \
    terrane_attempts_total terrane_retries_total terrane_stale_assets \
    terrane_informer_watch_restarts_total terrane_informer_relists_total terrane_build_info; do
    grep -q "^# TYPE $fam " "$TMP/controller.prom" || fail "family $fam missing from the exposition"
  done
  ok "every documented family is exposed"
  if grep -qF 'pool="odd\"pool\\name\nx"' "$TMP/controller.prom"; then
    ok "label value escaped as the format specifies"
  else
    fail "escaped label value not found"
  fi
else
  fail "no exposition dumped"
fi

# The linter is live: it flags what it should.
bad=$(printf '# HELP bad_total a gauge\n# TYPE bad_total gauge\nbad_total 1\n' | promtool check metrics 2>&1)
[ $? != 0 ] && [[ "$bad" == *"_total"* ]] && ok "promtool flags a gauge named *_total" ||
  fail "promtool did not flag a broken sample: $bad"

# --- a real Prometheus scraping the registry over HTTP ------------------------------
if command -v prometheus >/dev/null; then
  N=5
  TERRANE_HTTPD_SERVE=$TMP/port TERRANE_HTTPD_SERVE_N=$N "$T_HTTPD" >"$TMP/serve.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do [ -s "$TMP/port" ] && break; sleep 0.1; done
  [ -s "$TMP/port" ] || { tail -20 "$TMP/serve.log"; fail "metrics server did not start"; }
  MPORT=$(cat "$TMP/port" 2>/dev/null)
  prom_start "127.0.0.1:$MPORT"
  PPORT=$PROM_PORT API=$PROM_API
  # promq QUERY [TIME]: the first sample's value, or "" when the result is empty.
  promq() {
    local args=(--data-urlencode "query=$1")
    [ -n "${2:-}" ] && args+=(--data-urlencode "time=$2")
    curl -sf "${args[@]}" "$API/query" | $PY -c 'import json,sys
d=json.load(sys.stdin); r=d["data"]["result"]
print(r[0]["value"][1] if d["data"]["resultType"]=="vector" and r else (r[1] if d["data"]["resultType"]=="scalar" else ""))' 2>/dev/null
  }
  wait_for() { # seconds description query expected
    local end=$((SECONDS + $1)) got=""
    while [ $SECONDS -lt $end ]; do
      got=$(promq "$3")
      [ "$got" = "$4" ] && { ok "$2 ($3 = $got)"; return 0; }
      sleep 0.5
    done
    fail "$2: $3 = '$got', expected $4"
    return 1
  }
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PPORT/-/ready" >/dev/null && break; sleep 0.2; done
  if wait_for 30 "Prometheus scrapes the controller" 'up{job="terrane"}' 1 &&
    wait_for 20 "the zero series are scraped before any materialization" \
      'count(terrane_materializations_total{result="succeeded"})' 4; then
    start=$($PY -c 'import time; print(round(time.time(), 3))')
    sleep 1.5 # a scrape at zero after start
    touch "$TMP/port.go"
    wait_for 30 "all materializations counted" 'sum(terrane_materializations_total)' $N
    wait_for 10 "the increase since the first scrape is exact" \
      "sum(terrane_materializations_total) - sum(terrane_materializations_total @ $start)" $N
    wait_for 10 "reconciles counted" \
      'sum(controller_runtime_reconcile_total{result="success"})' $N
    wait_for 10 "one series per pool" 'count(sum by (pool) (terrane_materializations_total))' 2
    q=$(promq 'histogram_quantile(0.5, sum by (le) (terrane_materialization_duration_seconds_bucket))')
    if $PY -c 'import sys; v=float(sys.argv[1]); sys.exit(0 if 2 <= v <= 10 else 1)' "$q" 2>/dev/null; then
      ok "median materialization duration from the histogram: $q s"
    else
      fail "histogram_quantile gave '$q'"
    fi
    wait_for 10 "build info" 'terrane_build_info' 1
    wait_for 10 "leader gauge" 'leader_election_master_status{name="terrane-controller"}' 1
  else
    tail -20 "$TMP/prometheus.log"
  fi
  rm -f "$TMP/port"
else
  echo "note: prometheus not installed, scrape part skipped (scripts/deps.sh installs it)"
fi

# --- EMF lines ------------------------------------------------------------------------------
TERRANE_EMF_DUMP=$TMP/controller.emf "$T_EMF_C" >"$TMP/test_emf_c.log" 2>&1 || fail "controller test_emf failed"
TERRANE_EMF_DUMP=$TMP/worker.emf "$T_EMF_W" >"$TMP/test_emf_w.log" 2>&1 || fail "worker test_emf failed"
if out=$($PY "$EMF_CHECK" --min 3 --namespace Terrane --metric MaterializationDuration \
  --metric Materializations "$TMP/controller.emf" 2>&1); then
  ok "controller EMF lines: ${out##*$'\n'}"
else
  fail "controller EMF lines: $out"
fi
if out=$($PY "$EMF_CHECK" --min 3 --namespace Terrane/Worker --metric Duration \
  --metric ComputeDuration --metric PublishDuration --metric BytesWritten "$TMP/worker.emf" 2>&1); then
  ok "worker EMF lines: ${out##*$'\n'}"
else
  fail "worker EMF lines: $out"
fi
# Mixed with ordinary JSON log lines, as on the worker's stderr.
{ echo '{"ts":"2026-01-01T00:00:00Z","level":"info","msg":"task accepted"}'; cat "$TMP/worker.emf"; echo 'not json'; } >"$TMP/stderr.log"
$PY "$EMF_CHECK" --mixed --min 3 "$TMP/stderr.log" >/dev/null && ok "EMF lines found among log lines" ||
  fail "emf_check --mixed"

# The checker rejects what the specification forbids.
reject() { # description line
  if printf '%s\n' "$2" | $PY "$EMF_CHECK" >"$TMP/reject.out" 2>&1; then
    fail "emf_check accepted: $1"
  else
    ok "emf_check rejects $1"
  fi
}
good='{"_aws":{"Timestamp":1714557600123,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[["Op"]],"Metrics":[{"Name":"D","Unit":"Seconds"}]}]},"Op":"x","D":1}'
printf '%s\n' "$good" | $PY "$EMF_CHECK" >/dev/null && ok "emf_check accepts a minimal line" || fail "emf_check rejected a valid line"
reject "a line without _aws" '{"Op":"x","D":1}'
reject "a timestamp in seconds" "${good/1714557600123/1714557600}"
reject "a fractional timestamp" "${good/1714557600123/1714557600123.5}"
reject "a declared metric without a value" "${good/,\"D\":1/}"
reject "a metric value that is a string" "${good/\"D\":1/\"D\":\"1\"}"
reject "an unknown unit" "${good/Seconds/Secs}"
reject "a dimension without a member" "${good/\"Op\":\"x\",/}"
reject "a dimension value that is a number" "${good/\"Op\":\"x\"/\"Op\":7}"
reject "a namespace under AWS/" "${good/\"Namespace\":\"T\"/\"Namespace\":\"AWS/EC2\"}"
reject "a duplicate key" "${good/\"D\":1/\"D\":1,\"D\":2}"
reject "a dimension set over 30 keys" "$($PY -c 'import json
d={"_aws":{"Timestamp":1714557600123,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[["k%d"%i for i in range(31)]],"Metrics":[{"Name":"D"}]}]},"D":1}
d.update({"k%d"%i:"v" for i in range(31)}); print(json.dumps(d))')"
reject "more than 100 metrics" "$($PY -c 'import json
d={"_aws":{"Timestamp":1714557600123,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[],"Metrics":[{"Name":"m%d"%i} for i in range(101)]}]}}
d.update({"m%d"%i:1 for i in range(101)}); print(json.dumps(d))')"
reject "an array of over 100 values" "${good/\"D\":1/\"D\":[$(seq -s, 1 101)]}"

echo
if [ "$fails" -gt 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi
echo "all checks passed"
