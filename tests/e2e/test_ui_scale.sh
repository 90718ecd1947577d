#!/usr/bin/env bash
# test_ui_scale.sh - the lineage UI with 10,000 assets (UI_SCALE_ASSETS to
# change it) in headless chromium: the whole graph reaches the page and is
# painted (grouped by asset-key prefix) under 2 s after navigation, a group
# expands and a search finds one asset in well under 2 s, and a status write
# reaches the page under 1 s. The assets are generated straight into kubesim
# with statuses (tests/e2e/testdata/gen_assets.py); the controller serving
# the UI is a standby (another holder keeps its Lease), so its caches and
# UI are live but it runs no pods for them.
. "$(dirname "$0")/lib.sh"

command -v /usr/bin/chromium >/dev/null || skip "chromium missing: run scripts/deps.sh"
[ -f "$ROOT/node_modules/playwright-core/package.json" ] || skip "playwright-core missing: run scripts/deps.sh"
SHOTS=${UI_SHOTS:-$TMP/shots}
N=${UI_SCALE_ASSETS:-10000}
mkdir -p "$SHOTS"

e2e_start
at_exit e2e_dump
SNS=scale
kubectl --kubeconfig "$KUBECONFIG" create namespace "$SNS" >/dev/null || { fail "create namespace $SNS"; finish; }
now=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
kubectl --kubeconfig "$KUBECONFIG" apply -f - >/dev/null <<EOF2 || { fail "the Lease held elsewhere"; finish; }
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: ui-scale, namespace: $SNS}
spec: {holderIdentity: another-replica, leaseDurationSeconds: 3600, acquireTime: "$now", renewTime: "$now"}
EOF2
start=$SECONDS
TARGET=$($PY "$E2E/testdata/gen_assets.py" "$KUBECONFIG" "$SNS" "$N") || { fail "generating $N assets"; finish; }
echo "generated $N assets with statuses in $((SECONDS - start))s"

ctl_start standby --namespace "$SNS" --lease-name ui-scale --lease-namespace "$SNS" \
  --ui-addr 127.0.0.1:0 --ui-s3-endpoint "http://127.0.0.1:$S3_PORT"
synced() { grep -q "\"msg\":\"caches synced\",\"assetmaterializations\":$N," "$TMP/standby.log"; }
wait_until 120 "the standby's caches hold the $N assets" synced || finish
grep -q '"msg":"started leading"' "$TMP/standby.log" && fail "the standby took the Lease held elsewhere"
port=$(grep -o '"msg":"serving the lineage UI".*"port":[0-9]*' "$TMP/standby.log" | grep -o '[0-9]*$' | head -n 1)
UI=http://127.0.0.1:$port
t=$(curl -sf -o "$TMP/assets.json" -w '%{time_total} %{size_download}' "$UI/api/v1/assets") || fail "GET /api/v1/assets"
echo "measure: GET /api/v1/assets with $N assets: ${t% *} s, ${t#* } bytes"
assert_eq "$N" "$(json_get "$TMP/assets.json" 'len(d["assets"])')" "the API lists all $N assets"

UI_URL=$UI NS=$SNS KUBECONFIG=$KUBECONFIG SHOTS=$SHOTS ASSETS=$N TARGET="$SNS/$TARGET" \
  node "$E2E/ui.mjs" scale 2>&1 | tee "$TMP/browser.txt"
rc=${PIPESTATUS[0]}
assert_eq 0 "$rc" "the browser checks pass (tests/e2e/ui.mjs scale)"
grep -q '"msg":"started leading"' "$TMP/standby.log" && fail "the standby took the Lease held elsewhere"
assert_eq 0 "$(k -n "$SNS" get pods -o name 2>/dev/null | grep -c .)" "no pod was created for the generated assets"
finish
