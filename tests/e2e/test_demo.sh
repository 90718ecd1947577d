#!/usr/bin/env bash
# test_demo.sh - `make demo` as a newcomer meets it: scripts/demo.sh with the
# build under test, non-interactively, in a state directory of its own (so a
# demo the developer has running is left alone):
#   - run 1 leaves everything running: its recorded processes are alive, and
#     the kubectl command and the lineage UI's URL the report prints work
#     against the simulated cluster;
#     make demo-upload puts a file into its S3, and the asset it prints
#     materializes from that file;
#   - run 2 (DEMO_STOP_AT_END=1) first stops run 1, then its report shows every
#     asset Succeeded, every COG valid (checked again here with GDAL's
#     validator), checksums that match, the training section (the model
#     trained on the gpu pool, its imageID and metadata, the Warning for a tag
#     reference), the lineage tree (DEM -> slope -> model -> forecast among
#     the rest), the partitions section (progress of a tiled slope and a
#     daily asset within maxParallel, PARTITIONS n/m, the assembled COG
#     pixel-identical to the unpartitioned slope, its Collection, the
#     LastN and AllToOne readers), the staleness table
#     (dem-cog and everything downstream re-materialized, the Landsat assets
#     unchanged) and a cache hit; at the end no process of either run is left:
#     none of the recorded PIDs, nothing running from the state directory;
#   - make demo-stop when nothing runs is harmless.
. "$(dirname "$0")/../lib/common.sh"

[ -x "$BUILD/terrane-controller" ] || skip "terrane-controller not built ($BUILD/terrane-controller)"
command -v kubectl >/dev/null || skip "kubectl missing"
[ -x "$ROOT/node_modules/.bin/s3rver" ] || skip "s3rver missing: run scripts/deps.sh"
[ -f "$SAMPLES/L7_ETMs.tif" ] || skip "sample data missing: run scripts/deps.sh"

export DEMO_DIR=$TMP/demo DEMO_NONINTERACTIVE=1
# The asset graphs the demo applies (its EXAMPLES), and so how many assets it has.
eval "$(sed -n '/^EXAMPLES=(/,/)/p' "$ROOT/scripts/demo.sh")"
N_ASSETS=$(cd "$ROOT" && cat "${EXAMPLES[@]}" | grep -c '^kind: AssetMaterialization$')
unset DEMO_STOP_AT_END CI
# Whatever happens, nothing of the demo outlives the test.
at_exit '"$ROOT/scripts/demo-stop.sh" >/dev/null 2>&1'

# Prints "NAME PID" for each process of a pids file that is still that process.
alive_of() { # pids-file
  local file=$1 name pid start s
  while read -r name pid start; do
    s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    [ "$1" != Z ] && [ "${20}" = "$start" ] && echo "$name $pid"
  done <"$file"
}
# Processes running from the state directory (kubesim's pods run in it) or
# naming it on their command line, whatever recorded them.
strays() {
  local p cwd cmd
  for p in /proc/[0-9]*; do
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    case "$cwd|$cmd" in *"$DEMO_DIR"*) echo "${p#/proc/} $cmd" ;; esac
  done
}

# --- run 1: left running ---------------------------------------------------------------------------
start=$SECONDS
"$ROOT/scripts/demo.sh" "$BUILD" >"$TMP/run1.txt" 2>&1
rc=$?
echo "--- run 1 ($((SECONDS - start))s, exit $rc), last lines:"
tail -n 5 "$TMP/run1.txt"
assert_eq 0 "$rc" "run 1 exits 0"
[ "$rc" = 0 ] || { cat "$TMP/run1.txt"; finish; }
cp "$DEMO_DIR/pids" "$TMP/pids1"
for name in s3rver kubesim controller; do
  assert_eq 1 "$(grep -c "^$name " "$TMP/pids1")" "run 1 recorded one $name"
done
assert_eq 3 "$(alive_of "$TMP/pids1" | grep -c .)" "run 1's s3rver, kubesim and controller keep running"
assert_contains "$(tail -n 1 "$TMP/run1.txt")" "make demo-stop" "run 1 says how to stop it"
# The exact command the report prints, against the still-running cluster.
cmd=$(grep -E '^  kubectl --kubeconfig [^ ]+ get am -n hydro$' "$TMP/run1.txt" | head -n 1)
assert_contains "$cmd" "--kubeconfig $DEMO_DIR/kubeconfig" "the report prints kubectl with the demo's kubeconfig"
out=$(eval "$cmd" 2>&1)
assert_eq "$N_ASSETS" "$(echo "$out" | grep -c ' Succeeded ')" "the printed kubectl command lists $N_ASSETS Succeeded assets"
assert_contains "$(echo "$out" | head -n 1)" "VERSION" "with the CRD's printer columns"
# The partitioned assets' command it prints, with the PARTITIONS column.
pcmd=$(grep -E '^  kubectl --kubeconfig [^ ]+ get am -n partitions +#' "$TMP/run1.txt" | head -n 1 | sed 's/ *#.*//')
out=$(eval "$pcmd" 2>&1)
assert_eq 5 "$(echo "$out" | grep -c ' Succeeded ')" "the printed kubectl get am -n partitions lists 5 Succeeded assets"
assert_contains "$(echo "$out" | head -n 1)" "PARTITIONS" "with the PARTITIONS column"
# The sources section: one row per AssetSource of the running cluster, each observed.
n_src=$(kubectl --kubeconfig "$DEMO_DIR/kubeconfig" get asrc -n hydro -o name 2>/dev/null | grep -c .)
[ "$n_src" -ge 1 ] && ok "the demo's graph reads $n_src sources" || fail "the demo's cluster has no AssetSource"
sec=$(sed -n '/^.*-- Sources: /,/^  an input/p' "$TMP/run1.txt")
assert_contains "$sec" "SOURCE" "the demo prints a sources section"
assert_eq "$n_src" "$(echo "$sec" | grep -cE '^  [a-z0-9.-]+ +s3://[^ ]+ +1 +[0-9a-f]{12} ')" \
  "one row per source, each with one object and its data version"
assert_contains "$sec" "$n_src sources, each observed once" "each observed once, before its first run"
# The lineage UI's URL the report prints, against the still-running demo.
ui=$(grep -A1 'The lineage UI' "$TMP/run1.txt" | grep -oE 'http://127\.0\.0\.1:[0-9]+/ui/' | head -n 1)
assert_contains "$ui" "/ui/" "the report prints the lineage UI's URL"
assert_eq 200 "$(curl -s -o /dev/null -w '%{http_code}' "$ui")" "the printed UI URL answers"
n=$(curl -sf "${ui%/ui/}/api/v1/assets?namespace=hydro" | /usr/bin/python3 -c 'import json,sys; a=json.load(sys.stdin)["assets"]; print(len([x for x in a if x.get("kind", "AssetMaterialization") == "AssetMaterialization"]), len([x for x in a if x.get("kind") == "AssetSource"]))')
assert_eq "$N_ASSETS" "${n% *}" "the UI's API lists the $N_ASSETS assets"
# every uri: input is observed through a source of its own: the lineage roots
[ "${n#* }" -ge 1 ] && ok "the UI's API lists the ${n#* } sources the assets read" || fail "the UI's API lists no source"

# --- run 1: bring one's own data ------------------------------------------------------------------
assert_contains "$(cat "$TMP/run1.txt")" "make demo-upload FILE=" "the report says how to upload one's own data"
out=$(make -s -C "$ROOT" demo-upload FILE="$SAMPLES/elev.tif" KEY=mine/dem.tif 2>&1)
assert_eq 0 "$?" "make demo-upload exits 0"
assert_contains "$out" "s3://raw/mine/dem.tif" "make demo-upload prints the URI"
(. "$DEMO_DIR/s3.env" && gdalinfo /vsis3/raw/mine/dem.tif >/dev/null 2>&1) \
  && ok "the upload is in the demo's S3 (gdalinfo with $DEMO_DIR/s3.env)" || fail "gdalinfo /vsis3/raw/mine/dem.tif"
# The asset it prints materializes from the uploaded file.
sed -n '/^  apiVersion:/,$p' <<<"$out" | sed 's/^  //' >"$TMP/mine.yaml"
eval "${cmd% get am -n hydro} apply -f $TMP/mine.yaml" >/dev/null 2>&1 || fail "applying the printed asset"
if eval "${cmd% get am -n hydro} wait --for=condition=Ready am/my-slope -n hydro --timeout=90s" >/dev/null 2>&1; then
  ok "the printed asset over the uploaded file becomes Ready"
else
  fail "my-slope did not become Ready: $(eval "${cmd% get am -n hydro} get am my-slope -n hydro -o wide" 2>&1)"
fi
out=$(make -s -C "$ROOT" demo-upload FILE="$SAMPLES/elev.tif" 2>&1)
[ $? != 0 ] && assert_contains "$out" "usage: make demo-upload" "make demo-upload without KEY prints its usage" \
  || fail "make demo-upload without KEY succeeded"

# --- run 2: stops run 1 first, stops itself at the end ------------------------------------------------
start=$SECONDS
DEMO_STOP_AT_END=1 "$ROOT/scripts/demo.sh" "$BUILD" >"$TMP/run2.txt" 2>&1
rc=$?
took=$((SECONDS - start))
echo "--- run 2 (${took}s, exit $rc):"
cat "$TMP/run2.txt"
assert_eq 0 "$rc" "run 2 exits 0"
assert_eq "" "$(alive_of "$TMP/pids1")" "run 2 stopped run 1's processes"
report=$(cat "$TMP/run2.txt")

# every asset Succeeded, every raster a valid COG, every checksum matched
ASSETS=(dem-cog dem-hillshade dem-luref-25m dem-slope slope-by-canton elevation-by-canton l7-ndvi l7-vegetation-mask
        flood-labels flood-model flood-risk)
RASTERS=(dem-cog dem-hillshade dem-luref-25m dem-slope l7-ndvi l7-vegetation-mask flood-labels flood-risk)
table=$(sed -n '/== Report/,/^$/p' "$TMP/run2.txt")
for a in "${ASSETS[@]}"; do
  assert_eq 1 "$(echo "$table" | grep -cE "^  $a +Succeeded ")" "report: $a Succeeded"
done
for a in "${RASTERS[@]}"; do
  assert_eq 1 "$(echo "$table" | grep -cE "^  $a +Succeeded .* [0-9a-f]{12} +valid$")" "report: $a is a valid COG"
  if cog_validate "$DEMO_DIR/out/$a.tif" >/dev/null 2>&1; then ok "GDAL's validator: $a.tif is a COG"; else fail "$a.tif is not a valid COG"; fi
done
assert_eq 0 "$(echo "$report" | grep -c 'INVALID\|FAILED')" "report: nothing INVALID or FAILED"
assert_eq "$N_ASSETS" "$(echo "$report" | grep -cE '^    checksum +1220[0-9a-f]{64}  matches the downloaded copy$')" \
  "report: $N_ASSETS checksums match the downloaded copies"
# gpu-1 or gpu-2: the training's GPU node may come first and be removed before
echo "$table" | grep -qE '^  dem-luref-25m +Succeeded +gpu +gpu-[0-9]+ ' &&
  ok "report: dem-luref-25m ran on an autoscaled gpu node" || fail "report: dem-luref-25m row: $(echo "$table" | grep -E '^  dem-luref-25m ')"
echo "$report" | grep -qE 'node gpu-[0-9]+ added by the autoscaler \(pool gpu\)' &&
  ok "progress: the autoscaler added the gpu node" || fail "progress: no gpu node added by the autoscaler"
for a in dem-slope slope-by-canton; do
  assert_eq 1 "$(echo "$report" | grep -cE "^    output +s3://assets/hydro/lux/${a//-/_}/[0-9a-f]{64}/")" \
    "report: $a's output URI is content-addressed"
done

# lineage tree: elev.tif -> dem-cog -> dem-slope -> slope-by-canton; L7 -> ndvi -> mask
tree=$(sed -n '/^Lineage/,/^$/p' "$TMP/run2.txt")
echo "$tree" | grep -qE '^  s3://raw/lux/elev\.tif$' && ok "lineage: elev.tif is a root" || fail "lineage: no elev.tif root"
echo "$tree" | grep -qE '^  └── dem-cog  lux/dem_cog  [0-9a-f]{12}$' && ok "lineage: └── dem-cog" || fail "lineage: dem-cog line"
echo "$tree" | grep -qE '^      [├└]── dem-slope  lux/dem_slope  [0-9a-f]{12}$' && ok "lineage: dem-cog ─ dem-slope" || fail "lineage: dem-slope line"
echo "$tree" | grep -qE '^      [│ ]   [├└]── slope-by-canton  lux/slope_by_canton  [0-9a-f]{12}  \+ s3://raw/lux/lux\.shp$' &&
  ok "lineage: dem-slope ─ slope-by-canton (+ the cantons)" || fail "lineage: slope-by-canton line"
echo "$tree" | grep -qE '^      [├└]── dem-luref-25m  lux/dem_luref_25m  [0-9a-f]{12}  \[pool gpu\]$' && ok "lineage: dem-cog ─ dem-luref-25m" || fail "lineage: dem-luref-25m line"
echo "$tree" | grep -qE '^  └── l7-ndvi  landsat/l7_ndvi  [0-9a-f]{12}$' && ok "lineage: └── l7-ndvi" || fail "lineage: l7-ndvi line"
echo "$tree" | grep -qE '^      └── l7-vegetation-mask  landsat/l7_vegetation_mask  [0-9a-f]{12}$' && ok "lineage: l7-ndvi ─ l7-vegetation-mask" || fail "lineage: l7-vegetation-mask line"
# DEM -> slope -> model (gpu) -> forecast
# (flood-model is drawn under its first parent, flood-labels, itself under dem-slope)
echo "$tree" | grep -qE '^      [│ ]   [├└]── flood-labels  lux/flood_labels  [0-9a-f]{12}$' &&
  ok "lineage: dem-slope ─ flood-labels" || fail "lineage: flood-labels line under dem-slope"
echo "$tree" | grep -qE '^      [│ ]   [│ ]   [├└]── flood-model  lux/flood_model  [0-9a-f]{12}  \[pool gpu\]$' &&
  ok "lineage: dem-slope ─ flood-labels ─ flood-model on the gpu pool" || fail "lineage: flood-model line"
echo "$tree" | grep -qE '^      [│ ]   [│ ]   [│ ]   [├└]── flood-risk  lux/flood_risk  [0-9a-f]{12}$' &&
  ok "lineage: … ─ flood-model ─ flood-risk" || fail "lineage: flood-risk line under flood-model"
echo "$tree" | grep -qE '^      [│ ]   [├└]── flood-model  lux/flood_model  [0-9a-f]{12}  \[pool gpu\]  \(see above\)$' &&
  ok "lineage: flood-model also read dem-slope" || fail "lineage: flood-model not under dem-slope"
# the training section
train=$(sed -n '/-- Your own code as an asset/,/^$/p' "$TMP/run2.txt")
assert_eq 1 "$(echo "$train" | grep -cE '^  flood-model +train +gpu +s3://assets/hydro/lux/flood_model/[0-9a-f]{64}/model\.pkl$')" \
  "training section: the model, trained on the gpu pool"
assert_eq 1 "$(echo "$train" | grep -cE '^  flood-risk +predict +cpu +s3://assets/hydro/lux/flood_risk/[0-9a-f]{64}/risk\.tif$')" \
  "training section: the forecast COG"
assert_contains "$train" "image ran:  terrane-ml-example@sha256:" "training section: the imageID the kubelet reported"
assert_contains "$train" "RandomForestClassifier" "training section: the model's metadata.json"
assert_contains "$train" "Warning ImageNotPinned" "training section: the Warning for a tag reference"
# the partitions section (crds/examples/partitions.yaml, namespace partitions)
part=$(sed -n '/-- Partitions over space and time/,/== 6\/7/p' "$TMP/run2.txt")
assert_contains "$part" "(crds/examples/partitions.yaml, namespace partitions)" "partitions: the section names its example"
for want in "slope-tiles Running [1-8]/9" "rain-daily Running [1-6]/7" "rain-3day Running [0-4]/5"; do
  read -r a ph pr <<<"$want"
  echo "$part" | grep -qE "^ +[0-9]+s  $a +$ph +$pr " && ok "partitions: progress shows $a part-way ($pr)" ||
    fail "partitions: no progress line of $a at $pr"
done
# RUNNING never above the asset's maxParallel (4 tiles, 3 days)
over=$(echo "$part" | awk '$1 ~ /^[0-9]+s$/ && (($2 == "slope-tiles" && $5 > 4) || ($2 ~ /^rain-(daily|3day)$/ && $5 > 3))')
assert_eq "" "$over" "partitions: progress never shows more running pods than maxParallel"
for row in "slope-tiles +lux/slope_tiles +terrain +cpu +Succeeded +Materialized +[0-9a-f]{12} +9/9 " \
  "rain-daily +rain/daily +cog +cpu +Succeeded +Materialized +[0-9a-f]{12} +7/7 " \
  "rain-3day +rain/three_day +calc +cpu +Succeeded +Materialized +[0-9a-f]{12} +5/5 " \
  "rain-week +rain/week +calc +cpu +Succeeded +Materialized +[0-9a-f]{12} " \
  "slope-whole +lux/slope_whole +terrain +cpu +Succeeded +Materialized +[0-9a-f]{12} "; do
  assert_eq 1 "$(echo "$part" | grep -cE "^    $row")" "partitions: kubectl get am -n partitions: ${row%% *} $(echo "$row" | grep -oE '[0-9]/[0-9]' || echo Succeeded)"
done
assert_contains "$part" "a grid of 3 x 3 tiles of 256 px over 768 x 720 (halo 1)" "partitions: the probed grid"
assert_contains "$part" "pixels         identical to slope-whole's" "partitions: the assembled COG has the unpartitioned slope's pixels"
echo "$part" | grep -qE '^    STAC Collection s3://assets/partitions/lux/slope_tiles/[0-9a-f]{64}/collection\.json: 9 tile Items$' &&
  ok "partitions: the Collection links the 9 tile Items" || fail "partitions: no Collection line"
assert_contains "$part" "rain-daily: partitions 7/7, materialized indices 0-6, failed 0" "partitions: rain-daily's compact record"
assert_contains "$part" "rain-week (AllToOne): read 7 partitions of rain-daily in one pod" "partitions: rain-week's lineage"
assert_contains "$part" "the sum of the 7 daily rasters" "partitions: rain-week's pixels are the week's total"
slope_v=$(echo "$table" | awk '$1 == "dem-slope" {print $5}')
assert_contains "$tree" "dem-slope  lux/dem_slope  $slope_v" "lineage and table agree on dem-slope's version"

# staleness: dem-cog and its downstream have new data versions, the Landsat assets do not
stale=$(sed -n '/== 6\/7/,/== 7\/7/p' "$TMP/run2.txt")
for a in dem-cog dem-slope slope-by-canton dem-hillshade elevation-by-canton dem-luref-25m flood-model flood-risk; do
  row=$(echo "$stale" | grep -E "^  $a +[0-9a-f]{12} +[0-9a-f]{12} ")
  read -r _ before after _ <<<"$row"
  if [ -n "$row" ] && [ "$before" != "$after" ] && [[ "$row" == *"changed"* || "$row" == *"re-materialized"* ]]; then
    ok "staleness: $a re-materialized ($before -> $after)"
  else
    fail "staleness: $a row: '$row'"
  fi
done
for a in l7-ndvi l7-vegetation-mask; do
  row=$(echo "$stale" | grep -E "^  $a +[0-9a-f]{12} +[0-9a-f]{12} ")
  read -r _ before after _ <<<"$row"
  if [ -n "$row" ] && [ "$before" = "$after" ] && [[ "$row" == *"unchanged"* ]]; then
    ok "staleness: $a unchanged ($before)"
  else
    fail "staleness: $a row: '$row'"
  fi
done

# cache hit
assert_eq 1 "$(echo "$report" | grep -cE '^  cache hit: worker result cacheHit=true \(pod dem-hillshade-[0-9a-f]{12}-1\), status\.output\.cacheHit=true$')" \
  "cache hit: the worker and the status say cacheHit=true"

# stopped at the end: no recorded process, nothing running from the state directory
assert_contains "$report" "demo-stop: stopped" "run 2 stopped at the end"
assert_eq "" "$(alive_of "$DEMO_DIR/pids")" "no recorded process of run 2 is left"
assert_eq "" "$(strays)" "no process runs from or names the state directory"

# make demo-stop with nothing running
out=$("$ROOT/scripts/demo-stop.sh" 2>&1)
assert_eq 0 "$?" "demo-stop with nothing running exits 0"
assert_contains "$out" "nothing of the demo" "demo-stop says nothing was running"
assert_contains "$(make -C "$ROOT" -n demo-stop 2>&1)" "scripts/demo-stop.sh" "make demo-stop runs scripts/demo-stop.sh"
echo "run 2 took ${took}s"
finish
