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
#   - the watermark status.partitions.inputsAsOf follows the change;
#   - daily-3d reads the last 3 days of daily (LastN): the changed day re-runs
#     exactly the 3 partitions reading it; november (unpartitioned) mosaics
#     every day of daily (AllToOne): it runs once, and once more after the
#     change, with a new data version folding in every day's;
#   - the changed day's new COG has the pixels of the overwritten input
#     through gdal_translate -of COG.
. "$(dirname "$0")/lib.sh"
part_start 100000
DAYS=30
CHANGED=2026-11-17

part_daily_rasters "$TMP/daily" "$DAYS" 16 200
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
---
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: daily-3d, namespace: $NS}
spec:
  assetKey: forecast/daily_3d
  operation: mosaic
  inputs:
    - {name: src, from: daily, partitionMapping: {type: LastN, count: 3}}
  partitions:
    - name: day
      time: {start: "2026-11-01", end: "2026-12-01", cadence: daily, timezone: Europe/Luxembourg}
  maxParallel: 4
  retries: {limit: 1, backoffSeconds: 1}
  output: {uri: s3://assets}
---
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: november, namespace: $NS}
spec:
  assetKey: forecast/november
  operation: mosaic
  inputs:
    - {name: days, from: daily, partitionMapping: {type: AllToOne}}
  retries: {limit: 1, backoffSeconds: 1}
  output: {uri: s3://assets}
YAML
t0=$(date +%s)
k apply -f "$TMP/sources.yaml" >/dev/null || fail "kubectl apply sources"
k apply -f "$TMP/graph.yaml" >/dev/null || fail "kubectl apply graph"

for am in daily daily-pyramid daily-3d november; do part_ready $am 100; done
t1=$(date +%s)
ok "30 sources, 3 x 30 partitions and an all-to-one mosaic materialized in $((t1 - t0)) s"
assert_eq "30" "$(am_get november '{.status.lineage[0].partitions}')" "november's lineage: 30 partitions of daily"
assert_eq "daily" "$(am_get november '{.status.lineage[0].from}')" "november's lineage names daily"
nov_dv1=$(am_get november '{.status.dataVersion}')
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
assert_eq "30" "$(part_cogs forecast/daily)" "30 COGs of daily"
assert_eq "30" "$(part_cogs forecast/daily_pyramid)" "30 COGs of daily-pyramid"
part_cog_keys forecast/daily >"$TMP/daily_keys1"
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
for am in daily daily-pyramid daily-3d; do
  wait_until 90 "$am caught up with the change" part_caught_up $am "$changed_at"
done
nov_ok() { [ "$(am_get november '{.status.dataVersion}')" != "$nov_dv1" ] && [ "$(ready_status november)" = True ]; }
wait_until 90 "november re-materialized with a new data version" nov_ok
t3=$(date +%s)
ok "the changed day went through every asset in $((t3 - t2)) s"

curl -sf "$KUBESIM_URL/kubesim/audit" >"$TMP/audit.json" || fail "GET /kubesim/audit"
out=$($PY - "$TMP/audit.json" "$CHANGED" <<'PY'
import collections, json, sys
recs, changed = json.load(open(sys.argv[1]))["records"], sys.argv[2]
pods = collections.Counter()
for r in recs:
    l = r.get("labels", {})
    if r["resource"] == "pods" and r["type"] == "ADDED" and l.get("terrane.io/partition"):
        pods[(l.get("terrane.io/materialization"), l["terrane.io/partition"])] += 1
for am in ("daily", "daily-pyramid", "daily-3d"):
    mine = {p: n for (a, p), n in pods.items() if a == am}
    twice = sorted(p for p, n in mine.items() if n == 2)
    others = sorted(set(n for p, n in mine.items() if p not in twice))
    print("%s partitions=%d changed=%d twice=%s others=%s" % (am, len(mine), mine.get(changed, 0),
          ",".join(twice), ",".join(map(str, others))))
nov = sum(1 for r in recs if r["resource"] == "pods" and r["type"] == "ADDED"
          and r.get("labels", {}).get("terrane.io/materialization") == "november")
print("november pods=%d" % nov)
PY
)
echo "audit: $out"
assert_contains "$out" "daily partitions=30 changed=2 twice=$CHANGED others=1" "daily: only the changed day ran again"
assert_contains "$out" "daily-pyramid partitions=30 changed=2 twice=$CHANGED others=1" "daily-pyramid: only the identity-mapped day ran again"
assert_contains "$out" "daily-3d partitions=30 changed=2 twice=2026-11-17,2026-11-18,2026-11-19 others=1" "daily-3d: exactly the 3 partitions reading the changed day ran again"
assert_contains "$out" "november pods=2" "november (all-to-one): one run, and one more after the change"
assert_eq "33" "$(part_cogs forecast/daily_3d)" "daily-3d: 30 COGs and 3 new ones"
assert_eq "31" "$(part_cogs forecast/daily)" "daily: one new COG, under the changed day's new partition data version"
assert_eq "31" "$(part_cogs forecast/daily_pyramid)" "daily-pyramid: one new COG"
# The changed day's new COG holds the overwritten input's pixels as
# gdal_translate -of COG makes them.
part_cog_keys forecast/daily >"$TMP/daily_keys2"
new_key=$(comm -13 "$TMP/daily_keys1" "$TMP/daily_keys2")
[ "$(echo "$new_key" | grep -c .)" = 1 ] || fail "one new COG of daily expected: $new_key"
curl -sf "http://127.0.0.1:$S3_PORT/assets/$new_key" -o "$TMP/new.tif" || fail "GET $new_key"
gdal_translate -q -of COG "$TMP/daily/changed.tif" "$TMP/ref.tif" || fail "gdal_translate"
px=$($PY - "$TMP/new.tif" "$TMP/ref.tif" <<'PY'
import sys
from osgeo import gdal
a, b = (gdal.Open(p) for p in sys.argv[1:3])
same = a.ReadRaster() == b.ReadRaster() and (a.RasterXSize, a.RasterYSize) == (b.RasterXSize, b.RasterYSize)
print("equal" if same else "differ", a.GetRasterBand(1).ReadAsArray().min())
PY
)
assert_eq "equal 200" "$px" "the changed day's COG ($new_key) has the pixels of gdal_translate -of COG on the new input"
pod2=$(pdv_of daily-pyramid $CHANGED)
[ -n "$pod1" ] && [ "$pod1" != "$pod2" ] && ok "the changed day's pod is named by its new partition data version ($pod1 -> $pod2)" \
  || fail "pod names: $pod1 / $pod2"
ctl_stop ctl
finish
