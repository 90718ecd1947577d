#!/usr/bin/env bash
# test_partmap.sh - partition mappings against kubesim, the real kubectl, the
# real terrane-worker and an S3 server on loopback, over 30 daily partitions:
#   - 30 AssetSources raw-2026-11-DD (one daily raster each) read by a daily
#     partitioned asset through the templated from: raw-{date}; a second daily
#     asset reads the first one with the Identity mapping (partition k reads
#     the upstream's partition k, its data version derived from it);
#   - one day's raster overwritten and its source observed again: exactly
#     that day's partition of both assets is materialized again (one more pod
#     each, a new partition data version, a new COG), every other partition
#     starts no pod and keeps its output;
#   - the watermark status.partitions.inputsAsOf follows the change.
. "$(dirname "$0")/lib.sh"
trap 'e2e_dump; _run_cleanups' EXIT

E2E_KUBESIM_ARGS="--audit --history-size 100000" e2e_start
DAYS=30
CHANGED=2026-11-17

$PY - "$TMP/daily" "$DAYS" <<'PY'
import os, sys
from osgeo import gdal
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
drv = gdal.GetDriverByName("GTiff")
for d in range(1, n + 1):
    ds = drv.Create("%s/2026-11-%02d.tif" % (out, d), 16, 16, 1, gdal.GDT_Byte)
    ds.SetGeoTransform([6.0, 0.001, 0, 50.0, 0, -0.001])
    ds.SetProjection('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]]')
    ds.GetRasterBand(1).Fill(d)
    ds = None
ds = drv.Create("%s/changed.tif" % out, 16, 16, 1, gdal.GDT_Byte)
ds.SetGeoTransform([6.0, 0.001, 0, 50.0, 0, -0.001])
ds.SetProjection('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]]')
ds.GetRasterBand(1).Fill(200)
ds = None
PY
{
  for d in $(seq -w 1 $DAYS); do
    s3_put "$TMP/daily/2026-11-$d.tif" "s3://raw/daily/2026-11-$d.tif" || fail "uploading day $d"
    cat <<YAML
---
apiVersion: terrane.io/v1alpha1
kind: AssetSource
metadata: {name: raw-2026-11-$d, namespace: $NS}
spec:
  assetKey: raw/daily_2026_11_$d
  uri: s3://raw/daily/2026-11-$d.tif
  listing: {uri: s3://assets/sources}
YAML
  done
} >"$TMP/sources.yaml"

ctl_start ctl --pod-gc-delay 600 --leader-elect=false
cat >"$TMP/graph.yaml" <<YAML
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: daily, namespace: $NS}
spec:
  assetKey: forecast/daily
  operation: cog
  inputs:
    - {name: src, from: "raw-{date}"}
  partitions:
    - name: day
      time: {start: "2026-11-01", end: "2026-12-01", cadence: daily, timezone: Europe/Luxembourg}
  maxParallel: 4
  retries: {limit: 1, backoffSeconds: 1}
  output: {uri: s3://assets}
---
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: daily-pyramid, namespace: $NS}
spec:
  assetKey: forecast/daily_pyramid
  operation: cog
  params: {overviewResampling: average}
  inputs:
    - {name: src, from: daily, partitionMapping: {type: Identity}}
  partitions:
    - name: day
      time: {start: "2026-11-01", end: "2026-12-01", cadence: daily, timezone: Europe/Luxembourg}
  maxParallel: 4
  retries: {limit: 1, backoffSeconds: 1}
  output: {uri: s3://assets}
YAML
t0=$(date +%s)
k apply -f "$TMP/sources.yaml" >/dev/null || fail "kubectl apply sources"
k apply -f "$TMP/graph.yaml" >/dev/null || fail "kubectl apply graph"

for am in daily daily-pyramid; do
  if k wait --for=condition=Ready am $am --timeout=100s >/dev/null; then
    ok "$am Ready: $(am_get $am '{.status.partitions.summary}')"
  else
    fail "$am not Ready: $(am_get $am '{.status.message}')"
  fi
done
t1=$(date +%s)
ok "30 sources, 2 x 30 partitions materialized in $((t1 - t0)) s"
assert_contains "$(k get am daily-pyramid --no-headers 2>&1)" "30/30" "kubectl get shows PARTITIONS 30/30"

pdv_of() { # am key: the partition data version of its pod in the audit
  curl -sf "$KUBESIM_URL/kubesim/audit" | $PY -c '
import json, sys
am, key = sys.argv[1], sys.argv[2]
for r in json.load(sys.stdin)["records"]:
    if r["resource"] == "pods" and r["type"] == "ADDED" and r.get("labels", {}).get("terrane.io/materialization") == am \
       and r.get("labels", {}).get("terrane.io/partition") == key:
        v = r.get("name")
print(v if "v" in dir() else "")' "$1" "$2"
}
cogs() { curl -s "http://127.0.0.1:$S3_PORT/assets?prefix=$NS/$1/&list-type=2&max-keys=1000" | grep -o '<Key>[^<]*\.tif</Key>' | wc -l; }
assert_eq "30" "$(cogs forecast/daily)" "30 COGs of daily"
assert_eq "30" "$(cogs forecast/daily_pyramid)" "30 COGs of daily-pyramid"
mark1=$(am_get daily '{.status.partitions.inputsAsOf}')
[ -n "$mark1" ] && ok "daily's watermark inputsAsOf=$mark1" || fail "daily has no inputsAsOf"
pod1=$(pdv_of daily-pyramid $CHANGED)

# One day's raster changes; its source is observed again (lastChangedAt moves
# a second later at the least, the watermark's resolution).
sleep 1
s3_put "$TMP/daily/changed.tif" "s3://raw/daily/$CHANGED.tif" || fail "overwriting $CHANGED"
old_dv=$(k get asrc raw-$CHANGED -o jsonpath='{.status.dataVersion}')
t2=$(date +%s)
k annotate asrc raw-$CHANGED terrane.io/rerun=1 --overwrite >/dev/null || fail "annotate the source"
wait_until 60 "raw-$CHANGED observed with a new data version" sh -c "[ \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get asrc raw-$CHANGED -o jsonpath='{.status.dataVersion}')\" != '$old_dv' ]"
changed_at=$(k get asrc raw-$CHANGED -o jsonpath='{.status.lastChangedAt}')
wm_ok() { # am: its watermark covers the change and it is Ready
  local wm; wm=$(am_get "$1" '{.status.partitions.inputsAsOf}')
  [ -n "$wm" ] && [ "$(date -d "$wm" +%s)" -ge "$(date -d "$changed_at" +%s)" ] && [ "$(ready_status "$1")" = True ]
}
export -f am_get ready_status k wm_ok 2>/dev/null
wait_until 90 "daily caught up with the change" wm_ok daily
wait_until 90 "daily-pyramid caught up with the change" wm_ok daily-pyramid
t3=$(date +%s)
ok "the changed day went through both assets in $((t3 - t2)) s"

curl -sf "$KUBESIM_URL/kubesim/audit" >"$TMP/audit.json" || fail "GET /kubesim/audit"
out=$($PY - "$TMP/audit.json" "$CHANGED" <<'PY'
import collections, json, sys
recs, changed = json.load(open(sys.argv[1]))["records"], sys.argv[2]
pods = collections.Counter()
for r in recs:
    l = r.get("labels", {})
    if r["resource"] == "pods" and r["type"] == "ADDED" and l.get("terrane.io/partition"):
        pods[(l.get("terrane.io/materialization"), l["terrane.io/partition"])] += 1
for am in ("daily", "daily-pyramid"):
    mine = {p: n for (a, p), n in pods.items() if a == am}
    others = sorted(set(n for p, n in mine.items() if p != changed))
    print("%s partitions=%d changed=%d others=%s" % (am, len(mine), mine.get(changed, 0),
                                                      ",".join(map(str, others))))
PY
)
echo "audit: $out"
assert_contains "$out" "daily partitions=30 changed=2 others=1" "daily: only the changed day ran again"
assert_contains "$out" "daily-pyramid partitions=30 changed=2 others=1" "daily-pyramid: only the identity-mapped day ran again"
assert_eq "31" "$(cogs forecast/daily)" "daily: one new COG, under the changed day's new partition data version"
assert_eq "31" "$(cogs forecast/daily_pyramid)" "daily-pyramid: one new COG"
pod2=$(pdv_of daily-pyramid $CHANGED)
[ -n "$pod1" ] && [ "$pod1" != "$pod2" ] && ok "the changed day's pod is named by its new partition data version ($pod1 -> $pod2)" \
  || fail "pod names: $pod1 / $pod2"
ctl_stop ctl
finish
