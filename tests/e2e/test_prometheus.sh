#!/usr/bin/env bash
# test_prometheus.sh - a real Prometheus server scraping a running
# terrane-controller (kubesim, the real worker, S3 on loopback):
#   - /healthz answers at once, /readyz turns 200 once the informers synced
#     and this replica leads; /metrics passes `promtool check metrics`;
#   - Prometheus scrapes it every second (up == 1); N AssetMaterializations
#     applied after the first scrape all become Ready, and PromQL through the
#     HTTP API sees sum(terrane_materializations_total) == N, all succeeded,
#     the increase since the first scrape == N, reconciles and work-queue adds
#     counted, API requests counted, this replica the leader;
#   - with --emf, the controller's stdout carries one valid EMF line per
#     materialization (tests/lib/emf_check.py);
#   - SIGTERM: exit status 0.
# Exits 77 until the controller has a --metrics-addr flag (the manager serving
# httpd.h with ctlmetrics.h's registry).
. "$(dirname "$0")/lib.sh"
trap 'e2e_dump; _run_cleanups' EXIT

command -v prometheus >/dev/null || skip "prometheus missing: run scripts/deps.sh (Debian package prometheus)"
command -v promtool >/dev/null || skip "promtool missing: run scripts/deps.sh"
help=$("$CONTROLLER" --help 2>&1)
[[ "$help" == *--metrics-addr* ]] ||
  skip "terrane-controller has no --metrics-addr flag yet (metrics not wired into the manager)"

N=${PROM_ASSETS:-4}
e2e_start

# --- the controller, with its metrics endpoint -------------------------------------------
MPORT=$(free_port)
METRICS=http://127.0.0.1:$MPORT
extra=()
[[ "$help" == *--emf* ]] && extra+=(--emf)
ctl_start ctl --metrics-addr "127.0.0.1:$MPORT" "${extra[@]}"
wait_until 20 "/healthz answers" curl -sf "$METRICS/healthz"
wait_until 60 "/readyz is 200 (informers synced, leading)" curl -sf "$METRICS/readyz"
assert_eq "ok" "$(curl -s "$METRICS/healthz")" "/healthz body"
assert_eq "404" "$(curl -s -o /dev/null -w '%{http_code}' "$METRICS/nope")" "unknown path is 404"
ctype=$(curl -s -o /dev/null -w '%{content_type}' "$METRICS/metrics")
assert_eq "text/plain; version=0.0.4; charset=utf-8" "$ctype" "/metrics content type"
curl -s "$METRICS/metrics" >"$TMP/scrape.prom"
if out=$(promtool check metrics <"$TMP/scrape.prom" 2>&1) && [ -z "$out" ]; then
  ok "promtool check metrics on the live endpoint"
else
  fail "promtool check metrics: $out"
fi

# --- Prometheus ------------------------------------------------------------------------
prom_start "127.0.0.1:$MPORT"
PPORT=$PROM_PORT API=$PROM_API

# promq QUERY: the first sample's value ("" when the result is empty).
promq() {
  curl -sf --data-urlencode "query=$1" "$API/query" | $PY -c 'import json,sys
d=json.load(sys.stdin)["data"]; r=d["result"]
print(r[0]["value"][1] if d["resultType"]=="vector" and r else (r[1] if d["resultType"]=="scalar" else ""))' 2>/dev/null
}
prom_is() { [ "$(promq "$1")" = "$2" ]; }
prom_positive() { $PY -c 'import sys; sys.exit(0 if float(sys.argv[1] or 0) > 0 else 1)' "$(promq "$1")"; }

wait_until 30 "Prometheus is ready" curl -sf "http://127.0.0.1:$PPORT/-/ready"
wait_until 30 "Prometheus scrapes the controller (up == 1)" prom_is 'up{job="terrane"}' 1
wait_until 15 "the first scrape holds the reconcile counters" prom_is \
  'count(controller_runtime_reconcile_total) > bool 0' 1
start=$($PY -c 'import time; print(round(time.time(), 3))')
sleep 1.5 # a scrape before any asset exists

# --- N assets --------------------------------------------------------------------------------
for i in $(seq 0 $((N - 1))); do
  cat <<EOF
---
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata:
  name: prom-$i
spec:
  assetKey: metrics/cog_$i
  operation: cog
  params: {blockSize: $((16 * (i + 1)))}
  inputs:
    - name: dem
      uri: s3://raw/elev.tif
  output: {uri: s3://assets}
EOF
done >"$TMP/assets.yaml"
k apply -f "$TMP/assets.yaml" >/dev/null || fail "kubectl apply assets"
if k wait --for=condition=Ready am --all --timeout=180s >/dev/null; then
  ok "$N assets Ready"
else
  fail "the assets did not become Ready"
fi

wait_until 20 "sum(terrane_materializations_total) == $N" prom_is 'sum(terrane_materializations_total)' "$N"
wait_until 10 "all succeeded" prom_is 'sum(terrane_materializations_total{result="succeeded"})' "$N"
wait_until 10 "the increase since the first scrape is $N" prom_is \
  "sum(terrane_materializations_total) - (sum(terrane_materializations_total @ $start) or vector(0))" "$N"
wait_until 10 "a duration observed per materialization" prom_is \
  'sum(terrane_materialization_duration_seconds_count)' "$N"
wait_until 10 "reconciles counted" prom_positive \
  "sum(controller_runtime_reconcile_total) - sum(controller_runtime_reconcile_total @ $start)"
wait_until 10 "work-queue adds counted" prom_positive 'sum(workqueue_adds_total)'
wait_until 10 "API requests counted" prom_positive 'sum(rest_client_requests_total)'
wait_until 10 "this replica leads" prom_is 'max(leader_election_master_status)' 1
wait_until 10 "workers configured" prom_positive 'max(controller_runtime_max_concurrent_reconciles)'
wait_until 10 "nothing stuck in the queue" prom_is 'sum(workqueue_depth)' 0

# --- EMF ---------------------------------------------------------------------------------------
if [[ "$help" == *--emf* ]]; then
  if out=$($PY "$ROOT/tests/lib/emf_check.py" --mixed --min "$N" --namespace Terrane \
    --metric MaterializationDuration "$TMP/ctl.log" 2>&1); then
    ok "EMF lines: ${out##*$'\n'}"
  else
    fail "EMF lines: $out"
  fi
else
  echo "note: terrane-controller has no --emf flag: EMF lines not checked"
fi

ctl_stop ctl
assert_eq 0 "${CTL_RC:-1}" "SIGTERM: exit status 0"
finish
