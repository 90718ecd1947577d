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
trap 'e2e_dump; _run_cleanups' EXIT

E2E_KUBESIM_ARGS="--audit --history-size 100000" e2e_start
DAYS=21

# 32x32 rasters whose pixels are the day of the month; the last day is missing
$PY - "$TMP/daily" "$DAYS" <<'PY'
import os, sys
from osgeo import gdal
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
drv = gdal.GetDriverByName("GTiff")
for d in range(1, n + 1):
    ds = drv.Create("%s/2026-11-%02d.tif" % (out, d), 32, 32, 1, gdal.GDT_Byte)
    ds.SetGeoTransform([6.0, 0.001, 0, 50.0, 0, -0.001])
    ds.SetProjection('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]]')
    ds.GetRasterBand(1).Fill(d)
    ds = None
PY
for d in $(seq -w 1 $((DAYS - 1))); do
  s3_put "$TMP/daily/2026-11-$d.tif" "s3://raw/daily/2026-11-$d.tif" || fail "uploading day $d"
done

ctl_start ctl --pod-gc-delay 600 --leader-elect=false
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
wait_until 90 "some partitions materialized" sh -c "[ \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get am daily-cog -o jsonpath='{.status.partitions.succeeded}' 2>/dev/null || echo 0)\" -ge 4 ]"
mid=$(succeeded)
ctl_kill ctl
ok "controller killed with $mid/$DAYS partitions recorded"
ctl_start ctl --pod-gc-delay 600 --leader-elect=false

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
if k wait --for=condition=Ready am daily-cog --timeout=90s >/dev/null; then
  ok "Ready after the rerun"
else
  fail "not Ready after the rerun: $(am_get daily-cog '{.status.message}')"
fi
assert_contains "$(k get am daily-cog --no-headers 2>&1)" "21/21" "kubectl get shows PARTITIONS 21/21"

# The audit: one pod per (asset, partition, attempt); at most maxParallel at once;
# the rerun started exactly one pod.
curl -sf "$KUBESIM_URL/kubesim/audit" >"$TMP/audit.json" || fail "GET /kubesim/audit"
out=$($PY - "$TMP/audit.json" <<'PY'
import collections, json, sys
recs = json.load(open(sys.argv[1]))["records"]
created = collections.Counter()
live, peak = set(), 0
for r in recs:
    if r["resource"] != "pods":
        continue
    l = r.get("labels", {})
    if l.get("terrane.io/materialization") != "daily-cog":
        continue
    k = (l.get("terrane.io/partition"), l.get("terrane.io/attempt"))
    if r["type"] == "ADDED":
        created[k] += 1
    # running or pending pods of the asset: ADDED until a terminal phase or deletion
    name = r.get("name")
    if r["type"] == "ADDED":
        live.add(name)
    elif r["type"] == "DELETED" or r.get("phase") in ("Succeeded", "Failed"):
        live.discard(name)
    peak = max(peak, len(live))
dups = [k for k, n in created.items() if n > 1]
last = sum(n for (p, a), n in created.items() if p == "2026-11-21")
print("pods=%d dups=%d last_day=%d peak=%d within=%d" % (sum(created.values()), len(dups), last, peak,
                                                         1 <= peak <= 3))
PY
)
echo "audit: $out"
assert_contains "$out" "dups=0" "no duplicate pod per (asset, partition, attempt) across the kill"
assert_contains "$out" "within=1" "never more than maxParallel (3) pods of the asset at once"
assert_contains "$out" "pods=22" "21 partitions and one rerun: 22 pods"
assert_contains "$out" "last_day=2" "the rerun started only the failed partition"

# each partition's output lives under its own derived data version
n=$(curl -s "http://127.0.0.1:$S3_PORT/assets?prefix=$NS/forecast/daily_cog/&list-type=2&max-keys=1000" 2>/dev/null | grep -o '<Key>[^<]*\.tif</Key>' | wc -l)
assert_eq "21" "$n" "21 COGs under forecast/daily_cog/<partition dv>/"

ctl_stop ctl
finish
