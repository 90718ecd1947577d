#!/usr/bin/env bash
# bench/bench_ui.sh BUILD - the lineage UI's time bounds, strict, each beside a
# baseline measured in the same run (tests/e2e/ui.mjs bench, headless chromium).
#
# Two namespaces of generated assets with statuses (tests/e2e/testdata/gen_assets.py):
# BENCH_UI_ASSETS (default 10,000) and BENCH_UI_BASE (default 100), each served by
# its own standby controller (another holder keeps the Lease, so its caches and
# UI are live and it runs no pods). Prints:
#   page ready   first paint of the big graph (ms after navigation, a fresh browser
#                each time, BENCH_REPS times, alternating with the small one);
#                target < 2000 ms; baseline: the small namespace's first paint;
#   live update  status write (a PATCH of the status subresource sent) to the
#                changed node on the page, with the whole grouped graph on
#                screen (the target's group opened, no search); target < 1000 ms;
#                baseline: the same write to a plain API watch of the object,
#                opened before the write. Each hop is printed: the response, the
#                API watch, the controller's message queued (its debug log),
#                the message in the page, the node re-drawn. The same through
#                `kubectl patch` (timed from kubectl's start) is printed beside:
#                kubectl's own start-up comes before its write.
# The page during the live updates: BUILD/bench/ui-live-N.png.
# Medians, the ratio to the baseline, and `ok`/`OVER` against the target (a miss is
# printed, not a failure: timings on a shared machine are noisy). The e2e test
# tests/e2e/test_ui_scale.sh holds the same bounds with UI_TIME_SLACK.
set -uo pipefail
BUILD=${1:-build}
export TERRANE_BUILD=$BUILD
. "$(dirname "$0")/../tests/e2e/lib.sh"
command -v /usr/bin/chromium >/dev/null || { echo "chromium missing: run scripts/deps.sh"; exit 1; }
N=${BENCH_UI_ASSETS:-10000}
NB=${BENCH_UI_BASE:-100}

e2e_start
now=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
declare -A PORT
for ns in big base; do
  n=$N; [ "$ns" = base ] && n=$NB
  kubectl --kubeconfig "$KUBECONFIG" create namespace "$ns" >/dev/null || exit 1
  kubectl --kubeconfig "$KUBECONFIG" apply -f - >/dev/null <<EOF2 || exit 1
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: ui-bench, namespace: $ns}
spec: {holderIdentity: another-replica, leaseDurationSeconds: 3600, acquireTime: "$now", renewTime: "$now"}
EOF2
  t=$($PY "$E2E/testdata/gen_assets.py" "$KUBECONFIG" "$ns" "$n") || exit 1
  [ "$ns" = big ] && TARGET=big/$t
  # the big one at debug level: its "ui: changes queued" lines time the controller's hop
  lvl=info; [ "$ns" = big ] && lvl=debug
  ctl_start "ui-$ns" --namespace "$ns" --lease-name ui-bench --lease-namespace "$ns" \
    --ui-addr 127.0.0.1:0 --ui-s3-endpoint "http://127.0.0.1:$S3_PORT" --log-level "$lvl"
  synced() { grep -q "\"msg\":\"caches synced\",\"assetmaterializations\":$n," "$TMP/ui-$ns.log"; }
  wait_until 180 "the $ns controller's caches hold the $n assets" synced || exit 1
  PORT[$ns]=$(grep -o '"msg":"serving the lineage UI".*"port":[0-9]*' "$TMP/ui-$ns.log" | grep -o '[0-9]*$' | head -n 1)
done
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores)"
mkdir -p "$BUILD/bench"
UI_URL=http://127.0.0.1:${PORT[big]} UI_BASE_URL=http://127.0.0.1:${PORT[base]} NS=big SHOTS=$TMP \
  CTL_LOG=$TMP/ui-big.log BENCH_SHOT=$BUILD/bench/ui-live-$N.png \
  KUBECONFIG=$KUBECONFIG TARGET=$TARGET ASSETS=$N BASE_ASSETS=$NB REPS=${BENCH_REPS:-3} \
  node "$E2E/ui.mjs" bench
