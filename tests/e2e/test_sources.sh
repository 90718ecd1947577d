#!/usr/bin/env bash
# test_sources.sh - AssetSources observed by the controller on kubesim with the
# real terrane-worker and s3rver:
#   - a one-object source is observed when created: data version, counts,
#     object ETag, Observed/Available, nextObservationAt from intervalSeconds;
#   - terrane.io/rerun without a change: a new observation pod, the same data
#     version, no SourceChanged Event;
#   - the object overwritten with other bytes, then rerun: a new data version,
#     lastChangedAt moves, a SourceChanged Event;
#   - AssetMaterializations reading it with from: (cog -> slope), beside one
#     with a plain uri: input: the lineage starts at the source with its data
#     version; an unchanged observation starts no worker pod; the overwrite
#     re-materializes exactly the chain below the source with new checksums;
#   - a plain uri: input's own source is observed on the asset's pool
#     (observe: {pool} without a schedule);
#   - a missing object: Available=False SourceNotFound naming it;
#   - kill -9 of the controller while an observation pod runs: the restarted
#     controller adopts it; never two pods for one observation;
#   - terrane.io/rerun on a Failed AssetMaterialization (its input was missing,
#     then uploaded): a new attempt, Succeeded;
#   - a plain uri: input overwritten and its asset re-created: a new data
#     version, not a cache hit (its observation);
#   - an invalid time zone: Observed=False InvalidSchedule and no pod;
#   - an object replaced between its observation and the worker's read:
#     SourceChanged, the source observed at once (terrane.io/observe), the
#     asset Ready on the new version without spending a retry;
#   - the metrics terrane_source_observations_total and
#     terrane_asset_freshness_lag_seconds.
. "$(dirname "$0")/lib.sh"
trap 'e2e_dump; _run_cleanups' EXIT

e2e_start
ctl_start ctl --pod-gc-delay 600 --leader-elect=false

src_get() { k get asrc "$1" -o "jsonpath=$2" 2>/dev/null; }
cond_of() { src_get "$1" "{.status.conditions[?(@.type==\"$2\")].status}/{.status.conditions[?(@.type==\"$2\")].reason}"; }
obs_pods() { k get pods -l "terrane.io/source=$1" -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}' 2>/dev/null; }
finished() { field_is asrc "$1" '{.status.finishedObservation}' "$2"; }
rerun() { k annotate asrc "$1" "terrane.io/rerun=$2" --overwrite >/dev/null || fail "annotate $1"; }
# A one-object source: name, asset key, uri, and an observe line if any.
apply_src() {
  k apply -f - >/dev/null <<YAML || fail "apply $1"
apiVersion: terrane.io/v1alpha1
kind: AssetSource
metadata: {name: $1}
spec:
  assetKey: $2
  uri: $3
  listing: {uri: s3://assets/sources}
${4:+  observe: $4}
YAML
}

apply_src raw-dem lux/raw_dem s3://raw/elev.tif '{intervalSeconds: 3600}
  freshness: {maxLagSeconds: 86400}'

wait_until 60 "first observation of raw-dem" finished raw-dem 1
dv1=$(src_get raw-dem '{.status.dataVersion}')
assert_contains "$dv1" "sha256:" "raw-dem has a data version"
assert_eq "1" "$(src_get raw-dem '{.status.objectCount}')" "one object"
assert_eq "$(stat -c %s "$SAMPLES/elev.tif")" "$(src_get raw-dem '{.status.bytes}')" "bytes = the object's size"
assert_eq "$(md5sum <"$SAMPLES/elev.tif" | cut -c1-32)" "$(src_get raw-dem '{.status.object.etag}')" "object.etag = the object's MD5"
assert_eq "True/Observed" "$(cond_of raw-dem Observed)" "Observed=True"
assert_eq "True/Observed" "$(cond_of raw-dem Available)" "Available=True"
assert_eq "True/Fresh" "$(cond_of raw-dem Fresh)" "Fresh=True"
next=$(src_get raw-dem '{.status.nextObservationAt}')
seen=$(src_get raw-dem '{.status.observedAt}')
assert_eq "3600" "$(( $(date -d "$next" +%s) - $(date -d "$seen" +%s) ))" "nextObservationAt = observedAt + intervalSeconds"
listing=$(src_get raw-dem '{.status.listing}')
s3_get "$listing" "$TMP/listing.jsonl"
assert_eq "${dv1#sha256:}" "$(sha256sum <"$TMP/listing.jsonl" | cut -c1-64)" "the data version is the sha256 of the published listing"
row=$(k get asrc raw-dem --no-headers)
assert_contains "$row" "$(src_get raw-dem '{.status.shortDataVersion}')" "kubectl get asrc shows the short version"

s3_put "$SAMPLES/elev.tif" s3://raw/other.tif || fail "upload other.tif"
# --- materializations reading it ----------------------------------------------------------
k apply -f - >/dev/null <<'YAML' || fail "apply materializations"
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: dem-cog}
spec:
  assetKey: lux/dem_cog
  operation: cog
  inputs: [{name: dem, from: raw-dem}]
  output: {uri: s3://assets}
---
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: dem-slope}
spec:
  assetKey: lux/dem_slope
  operation: terrain
  params: {mode: slope}
  inputs: [{name: dem, from: dem-cog}]
  output: {uri: s3://assets}
---
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: other}
spec:
  assetKey: lux/other
  operation: cog
  inputs: [{name: dem, uri: s3://raw/other.tif}]
  output: {uri: s3://assets}
  tags: {terrane.io/pool: highmem}
YAML
k wait --for=condition=Ready am dem-cog dem-slope other --timeout=90s >/dev/null && ok "the chain below the source is Ready" ||
  fail "dem-cog / dem-slope / other not Ready"
# a plain uri: input is observed on its asset's pool (where its credentials are)
assert_eq "highmem" "$(src_get other-in-dem '{.spec.observe.pool}')" "other's input source: the asset's pool"
assert_eq "" "$(src_get other-in-dem '{.spec.observe.intervalSeconds}{.spec.observe.schedule}')" "and no schedule"
obs_node=$(k get pod other-in-dem-obs-1 -o 'jsonpath={.spec.nodeName}')
assert_eq "highmem" "$(k get node "$obs_node" -o 'jsonpath={.metadata.labels.terrane\.io/pool}' 2>/dev/null)" \
  "its observation pod ran on a highmem node ($obs_node)"
assert_eq "raw-dem" "$(am_get dem-cog '{.status.lineage[0].from}')" "lineage: the source is the root"
assert_eq "lux/raw_dem" "$(am_get dem-cog '{.status.lineage[0].assetKey}')" "lineage: the source's asset key"
assert_eq "$dv1" "$(am_get dem-cog '{.status.lineage[0].dataVersion}')" "lineage: the source's data version"
assert_eq "s3://raw/elev.tif" "$(am_get dem-cog '{.status.lineage[0].uri}')" "lineage: the source's uri"
cog_dv1=$(am_get dem-cog '{.status.dataVersion}'); cog_sum1=$(am_get dem-cog '{.status.output.checksum}')
slope_dv1=$(am_get dem-slope '{.status.dataVersion}'); slope_sum1=$(am_get dem-slope '{.status.output.checksum}')
other_rv=$(am_get other '{.status.dataVersion}'); other_pods=$(pods_of other | wc -l)
worker_pods() { k get pods -l terrane.io/materialization -o name 2>/dev/null | wc -l; }
pods_before=$(worker_pods)

# --- unchanged: a new observation, the same version -------------------------------------
changed_at=$(src_get raw-dem '{.status.lastChangedAt}')
rerun raw-dem one
wait_until 60 "observation 2" finished raw-dem 2
assert_eq "$dv1" "$(src_get raw-dem '{.status.dataVersion}')" "unchanged object: same data version"
assert_eq "$changed_at" "$(src_get raw-dem '{.status.lastChangedAt}')" "unchanged object: lastChangedAt stays"
assert_eq "one" "$(src_get raw-dem '{.status.rerunToken}')" "rerunToken records the annotation"
assert_eq "1" "$(events_of raw-dem SourceChanged)" "one SourceChanged Event (the first observation)"
assert_eq "$pods_before" "$(worker_pods)" "unchanged source: no new worker pod anywhere"
assert_eq "$cog_dv1" "$(am_get dem-cog '{.status.dataVersion}')" "unchanged source: dem-cog keeps its data version"

# --- overwritten: a new version ---------------------------------------------------------
# a corrected DEM: every height 10 % higher (so its slope changes too)
gdal_translate -q -ot Float32 -scale 0 1000 0 1100 "$SAMPLES/elev.tif" "$TMP/elev2.tif" || fail "gdal_translate"
s3_put "$TMP/elev2.tif" s3://raw/elev.tif || fail "overwrite elev.tif"
rerun raw-dem two
wait_until 60 "observation 3" finished raw-dem 3
dv3=$(src_get raw-dem '{.status.dataVersion}')
[ "$dv3" != "$dv1" ] && ok "overwritten object: a new data version" || fail "overwritten object kept $dv1"
assert_eq "$(md5sum <"$TMP/elev2.tif" | cut -c1-32)" "$(src_get raw-dem '{.status.object.etag}')" "object.etag follows"
wait_events 20 "a second SourceChanged Event" raw-dem SourceChanged 2
assert_eq "3" "$(obs_pods raw-dem | wc -l)" "three observations, three pods"
wait_field 90 "dem-cog re-materialized from the new version" am dem-cog '{.status.lineage[0].dataVersion}' "$dv3"
k wait --for=condition=Ready am dem-cog dem-slope --timeout=90s >/dev/null || fail "the chain is not Ready again"
wait_field 90 "dem-slope re-materialized" am dem-slope '{.status.lineage[0].dataVersion}' "$(am_get dem-cog '{.status.dataVersion}')"
[ "$(am_get dem-cog '{.status.dataVersion}')" != "$cog_dv1" ] && ok "dem-cog: a new data version" || fail "dem-cog kept its data version"
[ "$(am_get dem-cog '{.status.output.checksum}')" != "$cog_sum1" ] && ok "dem-cog: new bytes" || fail "dem-cog kept its checksum"
[ "$(am_get dem-slope '{.status.dataVersion}')" != "$slope_dv1" ] && ok "dem-slope: a new data version" || fail "dem-slope kept its data version"
[ "$(am_get dem-slope '{.status.output.checksum}')" != "$slope_sum1" ] && ok "dem-slope: new bytes" || fail "dem-slope kept its checksum"
assert_eq "$other_rv" "$(am_get other '{.status.dataVersion}')" "the asset not below the source did not change"
assert_eq "$other_pods" "$(pods_of other | wc -l)" "and started no pod"
assert_eq "$(md5sum <"$TMP/elev2.tif" | cut -c1-32)" \
  "$(k get pods -l terrane.io/materialization=dem-cog -o json | $PY -c 'import json,sys
for p in json.load(sys.stdin)["items"]:
  t = json.loads(p["spec"]["containers"][0]["env"][0]["value"])
  if t["inputs"][0].get("dataVersion") == sys.argv[1]: print(t["inputs"][0]["observed"]["etag"])' "$dv3")" \
  "the task carries the observed ETag"

# --- missing object ----------------------------------------------------------------------
apply_src missing lux/missing s3://raw/nothing-here.tif
wait_until 60 "observation of missing" finished missing 1
assert_eq "False/SourceNotFound" "$(cond_of missing Available)" "missing object: Available=False SourceNotFound"
assert_contains "$(src_get missing '{.status.conditions[?(@.type=="Available")].message}')" \
  "s3://raw/nothing-here.tif" "the message names the object"
[ -z "$(src_get missing '{.status.nextObservationAt}')" ] && ok "no schedule: no next observation" ||
  fail "missing has a nextObservationAt"

# --- kill -9 while an observation pod runs ----------------------------------------------
faults '{"slowNodes": {"*": 4}}'
rerun raw-dem three
wait_field 30 "observation 4 started" asrc raw-dem '{.status.observation}' 4
ctl_kill ctl
MPORT=$(free_port)
ctl_start ctl2 --pod-gc-delay 600 --leader-elect=false --metrics-addr "127.0.0.1:$MPORT"
wait_until 60 "observation 4 recorded after the restart" finished raw-dem 4
assert_eq "1" "$(obs_pods raw-dem | grep -c -- '-obs-4$')" "one pod for observation 4"
assert_eq "4" "$(obs_pods raw-dem | wc -l)" "four observations, four pods"
faults '{}'

# --- invalid time zone ---------------------------------------------------------------------
apply_src badzone lux/badzone s3://raw/elev.tif '{schedule: "5 * * * *", timeZone: Mars/Olympus}'
wait_field 30 "badzone InvalidSchedule" asrc badzone '{.status.conditions[?(@.type=="Observed")].reason}' InvalidSchedule
assert_eq "0" "$(obs_pods badzone | wc -l)" "an invalid schedule starts no pod"

# --- metrics -----------------------------------------------------------------------------------
m=$(curl -sf "http://127.0.0.1:$MPORT/metrics")
assert_contains "$m" 'terrane_source_observations_total{namespace="hydro",result="succeeded"} 1' \
  "observations counted after the restart"
assert_contains "$m" 'terrane_asset_freshness_lag_seconds{namespace="hydro",asset="lux/raw_dem"}' \
  "freshness lag gauge"

# --- rerun a Failed materialization ---------------------------------------------------------
k apply -f - >/dev/null <<'YAML' || fail "apply late"
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: late}
spec:
  assetKey: lux/late
  operation: cog
  inputs: [{name: dem, uri: s3://raw/late.tif}]
  output: {uri: s3://assets}
YAML
k wait --for=condition=Failed am late --timeout=60s >/dev/null && ok "late fails: its input is missing" || fail "late did not fail"
s3_put "$SAMPLES/elev.tif" s3://raw/late.tif || fail "upload late.tif"
k annotate am late terrane.io/rerun=first --overwrite >/dev/null || fail "annotate late"
k wait --for=condition=Ready am late --timeout=60s >/dev/null && ok "terrane.io/rerun: a new attempt succeeds" ||
  fail "late did not succeed after the rerun"
assert_eq "first" "$(am_get late '{.status.rerunToken}')" "the AM records the rerun token"
# the missing input was found by its observation, not by a worker pod
assert_eq "1" "$(am_get late '{.status.attempts}')" "one attempt (no worker pod ran while the input was missing)"
assert_eq "2" "$(k get pods -l terrane.io/source=late-in-dem -o name | grep -c .)" "the rerun observed the input again"

# --- a plain uri: input overwritten, the asset re-created: no cache hit -----------------------
# (the data version of a uri: input is its observation's, implicitsrc.h)
late_dv=$(am_get late '{.status.dataVersion}')
late_in=$(am_get late '{.status.lineage[0].dataVersion}')
k delete am late --wait=true >/dev/null || fail "delete late"
s3_put "$TMP/elev2.tif" s3://raw/late.tif || fail "overwrite late.tif"
k apply -f - >/dev/null <<'YAML' || fail "re-apply late"
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: late}
spec:
  assetKey: lux/late
  operation: cog
  inputs: [{name: dem, uri: s3://raw/late.tif}]
  output: {uri: s3://assets}
YAML
k wait --for=condition=Ready am late --timeout=60s >/dev/null && ok "re-created late is Ready" ||
  fail "re-created late did not become Ready"
[ "$(am_get late '{.status.dataVersion}')" != "$late_dv" ] && ok "overwritten input: a new data version" ||
  fail "overwritten input: the same data version $late_dv"
[ "$(am_get late '{.status.lineage[0].dataVersion}')" != "$late_in" ] &&
  ok "overwritten input: a new observed input version" || fail "the input's observed version did not change"
assert_eq "false" "$(am_get late '{.status.output.cacheHit}')" "overwritten input: not a cache hit"
s3_get s3://raw/late.tif "$TMP/late-now.tif" || fail "get late.tif"
cmp -s "$TMP/elev2.tif" "$TMP/late-now.tif" && ok "the input holds the new bytes" || fail "late.tif is not the new bytes"

# --- replaced between observation and read: SourceChanged, observed at once ---------------------
# Slow nodes hold the worker pod back; the object is overwritten after the
# observation and before the worker's check (worker/srccheck.h).
s3_put "$SAMPLES/elev.tif" s3://raw/moving.tif || fail "upload moving.tif"
apply_src moving lux/moving s3://raw/moving.tif
wait_until 60 "first observation of moving" finished moving 1
mdv1=$(src_get moving '{.status.dataVersion}')
faults '{"slowNodes": {"*": 3}}'
k apply -f - >/dev/null <<'YAML' || fail "apply moving-cog"
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: moving-cog}
spec:
  assetKey: lux/moving_cog
  operation: cog
  inputs: [{name: dem, from: moving}]
  output: {uri: s3://assets}
  retries: {limit: 0}
YAML
moving_pod() { [ "$(pods_of moving-cog | wc -l)" -ge 1 ]; }
wait_until 30 "moving-cog's first pod" moving_pod
first=$(pods_of moving-cog | head -1)
first_dv=$(k get pod "$first" -o 'jsonpath={.metadata.annotations.terrane\.io/data-version}')
[ -n "$first_dv" ] || fail "no data version on pod $first"
s3_put "$TMP/elev2.tif" s3://raw/moving.tif || fail "overwrite moving.tif"
k wait --for=condition=Ready am moving-cog --timeout=90s >/dev/null &&
  ok "SourceChanged, then Ready on the new version (retries limit 0: none spent)" || fail "moving-cog not Ready"
faults '{}'
ev=$(k get events --field-selector involvedObject.name=moving-cog,reason=SourceChanged -o 'jsonpath={.items[*].message}')
assert_contains "$ev" "SourceChanged: inputs[0].uri: s3://raw/moving.tif changed since it was observed" \
  "the asset's SourceChanged Event names the input"
assert_contains "$ev" "observing source moving again (not counted against retries)" "and the source observed again"
assert_eq "$first" "$(src_get moving '{.status.observeToken}')" "the source was asked by that pod's name"
assert_eq "2" "$(src_get moving '{.status.finishedObservation}')" "one observation more"
mdv2=$(src_get moving '{.status.dataVersion}')
[ "$mdv2" != "$mdv1" ] && ok "the new observation: a new data version" || fail "moving kept $mdv1"
assert_eq "$mdv2" "$(am_get moving-cog '{.status.lineage[0].dataVersion}')" "moving-cog read the new version"
assert_eq "0" "$(am_get moving-cog '{.status.retries}')" "no retry spent"
assert_eq "1" "$(am_get moving-cog '{.status.attempts}')" "the new version's first attempt"
[ "$(am_get moving-cog '{.status.podName}')" != "$first" ] && ok "by a new pod" || fail "moving-cog kept pod $first"
assert_eq "1" "$(events_of moving-cog SourceChanged)" "one SourceChanged Event on the asset"
s3_exists "s3://assets/hydro/lux/moving_cog/${first_dv#sha256:}/manifest.json" &&
  fail "the refused attempt published a manifest" || ok "the refused attempt published nothing"

# --- a deleted source's lag series goes with it --------------------------------------------------
lag_series() { curl -sf "http://127.0.0.1:$MPORT/metrics" | grep -c '^terrane_asset_freshness_lag_seconds{namespace="hydro",asset="lux/raw_dem"}'; }
assert_eq "1" "$(lag_series)" "raw-dem has a lag series before its deletion"
k delete asrc raw-dem --wait=true >/dev/null || fail "delete raw-dem"
lag_gone() { [ "$(lag_series)" = 0 ]; }
wait_until 30 "raw-dem's lag series gone" lag_gone
assert_eq "0" "$(lag_series)" "no stale lag series for the deleted source"

ctl_stop ctl2
finish
