#!/usr/bin/env bash
# test_partitions.sh - a daily time-partitioned asset against kubesim, the real
# kubectl, the real terrane-worker and an S3 server on loopback:
#   - 21 daily windows over generated daily rasters (s3://raw/daily/{date}.tif),
#     maxParallel 3: backfilled in order, never more than 3 pods of the asset at
#     once, the PARTITIONS column and status.partitions counts;
#   - kill -9 of the controller in the middle of the fan-out, then a restart:
#     no duplicate pod per (asset, partition, attempt) in kubesim's audit;
#   - the last day's input is missing: that partition fails (listed with its
#     message), the others succeed; once the input exists, the annotation
#     terrane.io/rerun-failed runs only that partition again;
#   - every partition's COG exists under its own derived data version.
. "$(dirname "$0")/lib.sh"
part_start 100000
DAYS=21

# 32x32 rasters whose pixels are the day of the month; the last day is missing
part_daily_rasters "$TMP/daily" "$DAYS" 32
for d in $(seq -w 1 $((DAYS - 1))); do
  s3_put "$TMP/daily/2026-11-$d.tif" "s3://raw/daily/2026-11-$d.tif" || fail "uploading day $d"
done

cat >"$TMP/daily.yaml" <<YAML
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: daily-cog, namespace: $NS}
spec:
  assetKey: forecast/daily_cog
  operation: cog
  inputs:
    - {name: src, uri: "s3://raw/daily/{date}.tif"}
  partitions:
    - name: day
      time: {start: "2026-11-01", end: "2026-11-22", cadence: daily}
  maxParallel: 3
  retries: {limit: 0, backoffSeconds: 1}
  output: {uri: s3://assets}
YAML
k apply -f "$TMP/daily.yaml" >/dev/null || fail "kubectl apply daily.yaml"

succeeded() { am_get daily-cog '{.status.partitions.succeeded}'; }
# the fan-out is under way: kill -9 the controller in its middle
part_succeeded_at_least daily-cog 4 90
mid=$(succeeded)
ctl_kill ctl
ok "controller killed with $mid/$DAYS partitions recorded"
part_ctl_restart

wait_until 180 "the fan-out ended" sh -c "kubectl --kubeconfig $KUBECONFIG -n $NS get am daily-cog -o jsonpath='{.status.phase}' | grep -qx Failed"
assert_eq "$((DAYS - 1))" "$(succeeded)" "every day with an input materialized"
assert_eq "1" "$(am_get daily-cog '{.status.partitions.failed}')" "one partition failed"
assert_eq "2026-11-21" "$(am_get daily-cog '{.status.partitions.failures[0].key}')" "the failed partition is listed by key"
assert_eq "20" "$(am_get daily-cog '{.status.partitions.failedRanges}')" "failed indices recorded as ranges"
assert_eq "0-19" "$(am_get daily-cog '{.status.partitions.materialized[0].ranges}')" "materialized indices as one run"
msg=$(am_get daily-cog '{.status.partitions.failures[0].message}')
[ -n "$msg" ] && ok "failure message: ${msg:0:100}" || fail "the failed partition has no message"
row=$(k get am daily-cog --no-headers 2>&1)
assert_contains "$row" "20/21" "kubectl get shows PARTITIONS 20/21"

# the missing day appears; one annotation reruns only it
s3_put "$TMP/daily/2026-11-21.tif" "s3://raw/daily/2026-11-21.tif" || fail "uploading the last day"
k annotate am daily-cog terrane.io/rerun-failed=1 >/dev/null || fail "kubectl annotate"
part_ready daily-cog 90
assert_contains "$(k get am daily-cog --no-headers 2>&1)" "21/21" "kubectl get shows PARTITIONS 21/21"

# The audit: one pod per (asset, partition, attempt); at most maxParallel at once;
# the rerun started exactly one pod.
out=$(part_audit daily-cog 2026-11-21)
echo "audit: $out"
assert_contains "$out" "pods=22 dups=0" "21 partitions and one rerun: 22 pods, no duplicate pod per (asset, partition, attempt) across the kill"
assert_contains "$out" "key=2" "the rerun started only the failed partition"
peak=${out#*peak=}
peak=${peak%% *}
[ "$peak" -ge 1 ] && [ "$peak" -le 3 ] && ok "never more than maxParallel (3) pods of the asset at once ($peak)" ||
  fail "$peak pods of the asset at once, maxParallel is 3"

# each partition's output lives under its own derived data version
assert_eq "21" "$(part_cogs forecast/daily_cog)" "21 COGs under forecast/daily_cog/<partition dv>/"

ctl_stop ctl
finish
