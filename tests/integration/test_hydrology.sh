#!/usr/bin/env bash
# Integration: the hydrology operations run by the real terrane-worker on the
# sample DEMs (Olinda: UTM, Float32; Luxembourg: EPSG:4326, Int16 with
# nodata), chained as a user chains them (fill -> flow-direction ->
# flow-accumulation -> streams, basins, watershed, twi, hand), and compared
# with GRASS GIS and SAGA run on the same data in the same test:
#   - fill against SAGA's Fill Sinks XXL (Wang & Liu, minimum slope 0): the
#     same algorithm, so every cell must be equal; against GRASS r.fill.dir
#     (an iterative method) the share of differing cells is reported;
#   - D8 directions on the epsilon-filled DEM against r.watershed -s: where
#     they differ ours must be at least as steep (r.watershed follows its A*
#     search order, not the steepest descent); the share is reported;
#   - accumulation against SAGA's D8 flow accumulation (share reported) and
#     the mass rules: each basin's outlet accumulates exactly the basin's
#     cells, the outlets sum to all valid cells, every valid cell lies in
#     exactly one basin;
#   - the catchment of a snapped pour point against GRASS r.water.outlet on
#     our own directions: the same cells, exactly; the catchment polygons
#     rasterized back give the label raster;
#   - streams (cells above the threshold, Strahler lines), HAND (0 on
#     streams, >= 0 on a filled DEM), TWI finite where the DEM is valid;
#   - failures: a direction raster with a code outside the encoding, inputs
#     on different grids.
# The comparison table goes to stdout (and $TERRANE_HYDRO_REPORT if set).
. "$(dirname "$0")/../lib/common.sh"

/usr/bin/python3 -c 'import numpy' 2>/dev/null || fail "python3-numpy missing (scripts/deps.sh installs it)"
command -v grass >/dev/null || { fail "grass missing (scripts/deps.sh installs grass-core)"; finish; }
command -v saga_cmd >/dev/null || { fail "saga_cmd missing (scripts/deps.sh installs saga)"; finish; }

export TERRANE_ALLOW_LOCAL_PATHS=1
OUT=$TMP/out
REPORT=$TMP/report.txt
CHECK="/usr/bin/python3 $ROOT/tests/integration/hydrology_check.py"

# run NAME OP PARAMS INPUTS: runs the worker; prints the primary output path.
run() {
  local name=$1 op=$2 params=$3 inputs=$4
  task_json "$op" "$params" "$inputs" "$OUT" "test/$name" >"$TMP/$name.task.json"
  if ! "$WORKER" run --task "$TMP/$name.task.json" >"$TMP/$name.result.json" 2>"$TMP/$name.log"; then
    fail "$name: $(cat "$TMP/$name.result.json") $(tail -n 3 "$TMP/$name.log")"
    return 1
  fi
  json_get "$TMP/$name.result.json" 'd["output"]["uri"]'
}
# dir_of NAME: the output directory of a run.
dir_of() { dirname "$(json_get "$TMP/$1.result.json" 'd["output"]["uri"]')"; }
in1() { printf '[{"name":"%s","uri":"%s"}]' "$1" "$2"; }

# grass_run DEM CMD...: runs commands in a throw-away GRASS location on DEM's grid.
grass_run() {
  local dem=$1
  shift
  rm -rf "$TMP/grassdb"
  grass -c "$dem" -e "$TMP/grassdb/loc" >"$TMP/grass.log" 2>&1 &&
    grass "$TMP/grassdb/loc/PERMANENT" --exec bash -c "$*" >>"$TMP/grass.log" 2>&1
}

check_dem() {
  local tag=$1 dem=$2 threshold=$3
  local filled filled_eps d8 d8g dinf acc accd basins streams ws twi hand

  filled=$(run "$tag-fill" fill '{}' "$(in1 dem "$dem")") || return
  filled_eps=$(run "$tag-fill-eps" fill '{"epsilon":0.0001}' "$(in1 dem "$dem")") || return
  d8=$(run "$tag-d8" flow-direction '{}' "$(in1 dem "$filled")") || return
  d8g=$(run "$tag-d8-grass" flow-direction '{"encoding":"grass"}' "$(in1 dem "$filled_eps")") || return
  dinf=$(run "$tag-dinf" flow-direction '{"method":"dinf"}' "$(in1 dem "$filled")") || return
  acc=$(run "$tag-acc" flow-accumulation '{}' "$(in1 direction "$d8")") || return
  accg=$(run "$tag-acc-grass" flow-accumulation '{}' "$(in1 direction "$d8g")") || return
  accd=$(run "$tag-acc-dinf" flow-accumulation '{"method":"dinf"}' "$(in1 direction "$dinf")") || return
  basins=$(run "$tag-basins" basins '{}' "$(in1 direction "$d8")") || return
  streams=$(run "$tag-streams" streams "{\"threshold\":$threshold}" \
    "[{\"name\":\"direction\",\"uri\":\"$d8\"},{\"name\":\"accumulation\",\"uri\":\"$acc\"}]") || return
  twi=$(run "$tag-twi" twi '{}' \
    "[{\"name\":\"dem\",\"uri\":\"$filled\"},{\"name\":\"accumulation\",\"uri\":\"$acc\"}]") || return
  hand=$(run "$tag-hand" hand '{}' \
    "[{\"name\":\"dem\",\"uri\":\"$filled\"},{\"name\":\"direction\",\"uri\":\"$d8\"},{\"name\":\"streams\",\"uri\":\"$streams\"}]") || return

  # A pour point one cell off the cell of highest interior accumulation,
  # in EPSG:4326 (the worker reprojects it), snapped back within 2 cells.
  $CHECK pour-point "$accg" "$TMP/$tag-point.geojson" >"$TMP/$tag-point.txt" ||
    { fail "$tag: no pour point"; return; }
  local snap_x snap_y cell
  read -r snap_x snap_y cell <"$TMP/$tag-point.txt"
  ws=$(run "$tag-watershed" watershed "{\"snapDistance\":$cell}" \
    "[{\"name\":\"direction\",\"uri\":\"$d8g\"},{\"name\":\"points\",\"uri\":\"$TMP/$tag-point.geojson\"},{\"name\":\"accumulation\",\"uri\":\"$accg\"}]") ||
    return

  # The reference tools, on the same inputs.
  saga_cmd ta_preprocessor 5 -ELEV "$dem" -FILLED "$TMP/$tag-saga-fill.sdat" -MINSLOPE 0 \
    >"$TMP/saga.log" 2>&1 || fail "$tag: SAGA fill: $(tail -n 3 "$TMP/saga.log")"
  saga_cmd ta_hydrology 0 -ELEVATION "$filled_eps" -FLOW "$TMP/$tag-saga-acc.sdat" -METHOD 0 \
    -FLOW_UNIT 0 >"$TMP/saga.log" 2>&1 || fail "$tag: SAGA accumulation: $(tail -n 3 "$TMP/saga.log")"
  grass_run "$dem" "r.in.gdal -o input=$dem output=dem --q && g.region raster=dem &&
    r.fill.dir input=dem output=filled direction=fdir --q &&
    r.out.gdal -c input=filled output=$TMP/$tag-grass-fill.tif --q &&
    r.in.gdal -o input=$filled_eps output=fe --q &&
    r.watershed -s elevation=fe drainage=drain accumulation=acc --q &&
    r.out.gdal -c input=drain output=$TMP/$tag-grass-drain.tif --q &&
    r.out.gdal -c input=acc output=$TMP/$tag-grass-acc.tif --q &&
    r.in.gdal -o input=$d8g output=ourdrain --q &&
    r.water.outlet input=ourdrain output=outlet coordinates=$snap_x,$snap_y --q &&
    r.out.gdal -c type=UInt32 input=outlet output=$TMP/$tag-grass-outlet.tif --q" ||
    { fail "$tag: GRASS: $(tail -n 5 "$TMP/grass.log")"; return; }

  if $CHECK compare "$tag" "$dem" "$filled" "$filled_eps" "$d8" "$d8g" "$acc" "$accg" "$accd" \
    "$basins" "$(dir_of "$tag-basins")/basins.geojson" "$streams" \
    "$(dir_of "$tag-streams")/streams.geojson" "$threshold" "$ws" \
    "$(dir_of "$tag-watershed")/catchments.geojson" "$twi" "$hand" "$TMP/$tag" >>"$REPORT" \
    2>"$TMP/$tag-check.err"; then
    ok "$tag: every comparison and rule holds"
  else
    fail "$tag: $(cat "$TMP/$tag-check.err")"
  fi
}

check_dem olinda "$SAMPLES/olinda_dem_utm25s.tif" 50
check_dem lux "$SAMPLES/elev.tif" 30
cat "$REPORT"
[ -n "${TERRANE_HYDRO_REPORT:-}" ] && cp "$REPORT" "$TERRANE_HYDRO_REPORT"

# Failures: codes outside the encoding, and inputs on two grids.
d8=$(json_get "$TMP/olinda-d8.result.json" 'd["output"]["uri"]')
/usr/bin/python3 - "$d8" "$TMP/bad-dirs.tif" <<'PY'
import sys
from osgeo import gdal
src = gdal.Open(sys.argv[1])
dst = gdal.GetDriverByName('GTiff').CreateCopy(sys.argv[2], src)
dst.GetRasterBand(1).WriteArray(__import__('numpy').full((1, 1), 3, 'uint8'), 5, 7)
dst = None
PY
task_json flow-accumulation '{"encoding":"esri"}' "$(in1 direction "$TMP/bad-dirs.tif")" "$OUT" \
  test/bad-dirs >"$TMP/bad.task.json"
"$WORKER" run --task "$TMP/bad.task.json" >"$TMP/bad.result.json" 2>/dev/null
assert_eq 65 "$?" "bad direction code: exit code"
assert_eq InputInvalid "$(json_get "$TMP/bad.result.json" 'd["error"]["code"]')" "bad direction code: error"
assert_contains "$(json_get "$TMP/bad.result.json" 'd["error"]["message"]')" "row 7, column 5" \
  "bad direction code: the cell is named"
lux_acc=$(json_get "$TMP/lux-acc.result.json" 'd["output"]["uri"]')
task_json streams '{"threshold":10}' \
  "[{\"name\":\"direction\",\"uri\":\"$d8\"},{\"name\":\"accumulation\",\"uri\":\"$lux_acc\"}]" \
  "$OUT" test/two-grids >"$TMP/grids.task.json"
"$WORKER" run --task "$TMP/grids.task.json" >"$TMP/grids.result.json" 2>/dev/null
assert_eq 65 "$?" "two grids: exit code"
assert_eq CRSMismatch "$(json_get "$TMP/grids.result.json" 'd["error"]["code"]')" "two grids: error"
assert_eq "inputs[1].uri" "$(json_get "$TMP/grids.result.json" 'd["error"]["field"]')" \
  "two grids: field"
finish
