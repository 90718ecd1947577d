#!/usr/bin/env bash
# Integration: the raster operations (cog, warp, mosaic, terrain) run by the
# real terrane-worker against a real S3 server (s3rver on loopback) on the
# sample rasters, each output compared with what the GDAL command line tool
# gives for the same options, and validated as a COG. Then the failure
# cases: exit code, error code and field, and nothing left under the output
# prefix.
. "$(dirname "$0")/../lib/common.sh"

/usr/bin/python3 -c 'import numpy' 2>/dev/null || skip "python3-numpy missing (Debian: python3-numpy)"
command -v gdaldem >/dev/null || skip "gdal-bin missing"

s3_start raw assets
s3_put "$SAMPLES/elev.tif" s3://raw/elev.tif
s3_put "$SAMPLES/olinda_dem_utm25s.tif" s3://raw/olinda.tif
for ext in shp shx dbf prj; do s3_put "$SAMPLES/lux.$ext" "s3://raw/lux.$ext"; done

# The options cog.c spells out for every COG; the GDAL tools get the same.
# base_co COMPRESSION [KEY=VALUE...] prints "-co" "K=V" lines, later keys
# replacing earlier ones (GDAL would take the first of a duplicate).
base_co() {
  local -A v=([COMPRESS]=$1 [PREDICTOR]=NO [BLOCKSIZE]=512 [OVERVIEW_RESAMPLING]=NEAREST
              [BIGTIFF]=IF_SAFER [NUM_THREADS]=ALL_CPUS)
  local kv k
  shift
  for kv in "$@"; do v[${kv%%=*}]=${kv#*=}; done
  for k in "${!v[@]}"; do printf '%s\n' -co "$k=${v[$k]}"; done
}

# run_task NAME OP PARAMS INPUTS: runs the worker; sets RC and RESULT (file).
run_task() {
  local name=$1 op=$2 params=$3 inputs=$4
  task_json "$op" "$params" "$inputs" s3://assets/out "test/$name" >"$TMP/$name.task.json"
  RESULT=$TMP/$name.result.json
  TERRANE_TERMINATION_LOG=$TMP/$name.term.log "$WORKER" run --task "$TMP/$name.task.json" \
    >"$RESULT" 2>"$TMP/$name.log"
  RC=$?
}

# expect_ok NAME OP PARAMS INPUTS: runs, checks success, downloads the COG to
# $TMP/NAME.tif and validates it.
expect_ok() {
  local name=$1
  run_task "$@"
  if [ "$RC" != 0 ]; then
    fail "$name: exit $RC: $(cat "$RESULT") $(tail -n 3 "$TMP/$name.log")"
    return 1
  fi
  assert_eq Succeeded "$(json_get "$RESULT" 'd["status"]')" "$name: status"
  assert_eq "image/tiff; application=geotiff; profile=cloud-optimized" \
    "$(json_get "$RESULT" 'd["output"]["mediaType"]')" "$name: media type"
  local uri
  uri=$(json_get "$RESULT" 'd["output"]["uri"]')
  assert_contains "$uri" "s3://assets/out/test/test/$name/" "$name: output location"
  s3_get "$uri" "$TMP/$name.tif" || { fail "$name: cannot download $uri"; return 1; }
  assert_eq "$(json_get "$RESULT" 'd["output"]["sizeBytes"]')" "$(stat -c %s "$TMP/$name.tif")" \
    "$name: sizeBytes"
  assert_eq "$(json_get "$RESULT" 'd["output"]["checksum"]')" \
    "1220$(sha256sum "$TMP/$name.tif" | cut -d' ' -f1)" "$name: checksum is the file's"
  if cog_validate "$TMP/$name.tif" >"$TMP/$name.validate" 2>&1; then
    ok "$name: valid COG"
  else
    fail "$name: not a valid COG: $(cat "$TMP/$name.validate")"
  fi
}

# expect_fail NAME EXIT CODE FIELD OP PARAMS INPUTS
expect_fail() {
  local name=$1 want_rc=$2 code=$3 field=$4
  shift 4
  run_task "$name" "$@"
  assert_eq "$want_rc" "$RC" "$name: exit code"
  assert_eq Failed "$(json_get "$RESULT" 'd.get("status")')" "$name: status"
  assert_eq "$code" "$(json_get "$RESULT" 'd["error"]["code"]')" "$name: error code"
  assert_eq "$field" "$(json_get "$RESULT" 'd["error"].get("field")')" "$name: error field"
  # The termination log holds the same document.
  assert_eq "$(cat "$RESULT")" "$(cat "$TMP/$name.term.log")" "$name: termination log"
  # Nothing published for this data version, not even in part.
  local left
  left=$(find "$S3_DIR" -path "*test/$name/*" -type f 2>/dev/null | head -n 3)
  assert_eq "" "$left" "$name: nothing under the output prefix"
}

# Pixel checksums of every band and overview, as gdalinfo prints them.
checksums() { gdalinfo -checksum "$1" | grep -E 'Checksum=' | tr -d ' '; }

# pixels_equal A B TOL: band 1 arrays equal within TOL, nodata masks equal.
pixels_equal() {
  /usr/bin/python3 - "$@" <<'PY'
import sys
import numpy as np
from osgeo import gdal
a_path, b_path, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
def load(p):
    ds = gdal.Open(p)
    b = ds.GetRasterBand(1)
    arr = b.ReadAsArray().astype(np.float64)
    nd = b.GetNoDataValue()
    mask = np.isnan(arr) if nd is None else (arr == nd) | np.isnan(arr)
    return arr, mask, ds.RasterXSize, ds.RasterYSize, ds.GetGeoTransform()
a, ma, aw, ah, agt = load(a_path)
b, mb, bw, bh, bgt = load(b_path)
if (aw, ah) != (bw, bh):
    sys.exit("size %dx%d != %dx%d" % (aw, ah, bw, bh))
if max(abs(x - y) for x, y in zip(agt, bgt)) > 1e-9:
    sys.exit("geotransform %s != %s" % (agt, bgt))
if not np.array_equal(ma, mb):
    sys.exit("nodata masks differ in %d pixels" % int((ma != mb).sum()))
valid = ~ma
d = float(np.max(np.abs(a[valid] - b[valid]))) if valid.any() else 0.0
if d > tol:
    sys.exit("max abs difference %g > %g" % (d, tol))
print("max abs difference %g over %d valid pixels" % (d, int(valid.sum())))
PY
}

ELEV='[{"name":"dem","uri":"s3://raw/elev.tif"}]'
OLINDA='[{"name":"dem","uri":"s3://raw/olinda.tif"}]'

echo "--- cog: the worker vs gdal_translate -of COG, same options"
cog_case() { # name input_json local_src params compression [extra -co...]
  local name=$1 inputs=$2 src=$3 params=$4
  shift 4
  expect_ok "$name" cog "$params" "$inputs" || return
  mapfile -t co < <(base_co "$@")
  gdal_translate -q -of COG "${co[@]}" "$src" "$TMP/$name.ref.tif"
  assert_eq "$(checksums "$TMP/$name.ref.tif")" "$(checksums "$TMP/$name.tif")" \
    "$name: pixel checksums equal gdal_translate's (all bands and overviews)"
  assert_eq "$(sha256sum <"$TMP/$name.ref.tif")" "$(sha256sum <"$TMP/$name.tif")" \
    "$name: byte-identical to gdal_translate's"
}
cog_case cog_deflate "$ELEV" "$SAMPLES/elev.tif" '{}' DEFLATE
cog_case cog_zstd "$ELEV" "$SAMPLES/elev.tif" '{"compression":"ZSTD","level":15}' ZSTD LEVEL=15
cog_case cog_lzw_pred "$ELEV" "$SAMPLES/elev.tif" '{"compression":"LZW","predictor":2}' LZW \
  PREDICTOR=STANDARD
cog_case cog_block256 "$OLINDA" "$SAMPLES/olinda_dem_utm25s.tif" \
  '{"blockSize":256,"predictor":3,"overviewResampling":"average"}' DEFLATE \
  PREDICTOR=FLOATING_POINT BLOCKSIZE=256 OVERVIEW_RESAMPLING=AVERAGE OVERVIEWS=IGNORE_EXISTING
cog_case cog_bigtiff "$ELEV" "$SAMPLES/elev.tif" '{"bigtiff":"YES","compression":"NONE"}' NONE \
  BIGTIFF=YES
if [ -f "$TMP/cog_bigtiff.tif" ]; then
  assert_eq "BigTIFF" "$(head -c 4 "$TMP/cog_bigtiff.tif" | od -An -tx1 | tr -d ' ' |
    sed 's/^49492b00$/BigTIFF/')" "cog_bigtiff: the file is a BigTIFF"
fi
mapfile -t co < <(base_co DEFLATE)
gdal_translate -q -of COG "${co[@]}" -a_nodata 0 "$SAMPLES/elev.tif" "$TMP/nodata.ref.tif"
expect_ok cog_nodata cog '{"nodata":0}' "$ELEV" &&
  assert_eq "$(checksums "$TMP/nodata.ref.tif")" "$(checksums "$TMP/cog_nodata.tif")" \
    "cog_nodata: same as gdal_translate -a_nodata 0" &&
  assert_contains "$(gdalinfo "$TMP/cog_nodata.tif")" "NoData Value=0" "cog_nodata: nodata set"
expect_ok cog_nodata_none cog '{"nodata":"none"}' "$ELEV" &&
  assert_eq "" "$(gdalinfo "$TMP/cog_nodata_none.tif" | grep NoData)" "cog_nodata_none: unset"

# Determinism: the same input and options under another data version give
# the same bytes.
expect_ok cog_deflate_again cog '{}' "$ELEV" &&
  assert_eq "$(sha256sum <"$TMP/cog_deflate.tif")" "$(sha256sum <"$TMP/cog_deflate_again.tif")" \
    "cog: two runs byte-identical"

echo "--- warp: the worker vs gdalwarp, same options"
warp_case() { # name params_json gdalwarp-args...
  local name=$1 params=$2
  shift 2
  expect_ok "$name" warp "$params" "$WARP_INPUTS" || return
  gdalwarp -q -overwrite "$@" "$SAMPLES/elev.tif" "$TMP/$name.ref.tif"
  local msg
  if msg=$(pixels_equal "$TMP/$name.ref.tif" "$TMP/$name.tif" 0 2>&1); then
    ok "$name: pixels equal gdalwarp's ($msg)"
  else
    fail "$name: pixels differ from gdalwarp's: $msg"
  fi
}
WARP_INPUTS=$ELEV
warp_case warp_3035 '{"dstCrs":"EPSG:3035","resolution":500}' -t_srs EPSG:3035 -tr 500 500
if [ -f "$TMP/warp_3035.tif" ]; then
  assert_contains "$(gdalsrsinfo -o epsg "$TMP/warp_3035.tif")" "EPSG:3035" "warp_3035: CRS"
fi
warp_case warp_utm_bilinear '{"dstCrs":"EPSG:32632","resolution":[250,300],"resampling":"bilinear"}' \
  -t_srs EPSG:32632 -tr 250 300 -r bilinear
WARP_INPUTS='[{"name":"dem","uri":"s3://raw/elev.tif"},{"name":"communes","uri":"s3://raw/lux.shp"}]'
warp_case warp_cutline '{"dstCrs":"EPSG:3035","resolution":500,"cutline":"communes"}' \
  -t_srs EPSG:3035 -tr 500 500 -cutline "$SAMPLES/lux.shp" -crop_to_cutline
warp_case warp_cutline_nocrop '{"cutline":"communes","cropToCutline":false,"nodata":-1}' \
  -cutline "$SAMPLES/lux.shp" -dstnodata -1

echo "--- mosaic: two halves of the DEM give the DEM back"
gdal_translate -q -srcwin 0 0 50 90 "$SAMPLES/elev.tif" "$TMP/west.tif"
gdal_translate -q -srcwin 50 0 45 90 "$SAMPLES/elev.tif" "$TMP/east.tif"
s3_put "$TMP/west.tif" s3://raw/west.tif
s3_put "$TMP/east.tif" s3://raw/east.tif
if expect_ok mosaic_halves mosaic '{}' \
  '[{"name":"west","uri":"s3://raw/west.tif"},{"name":"east","uri":"s3://raw/east.tif"}]'; then
  if msg=$(pixels_equal "$SAMPLES/elev.tif" "$TMP/mosaic_halves.tif" 0 2>&1); then
    ok "mosaic_halves: pixels equal the original ($msg)"
  else
    fail "mosaic_halves: $msg"
  fi
  assert_eq "$(gdalinfo -checksum "$SAMPLES/elev.tif" | grep -m1 Checksum | tr -d ' ')" \
    "$(gdalinfo -checksum "$TMP/mosaic_halves.tif" | grep -m1 Checksum | tr -d ' ')" \
    "mosaic_halves: band checksum equals the original's"
fi

echo "--- terrain: the worker vs gdaldem -of COG, same options"
terrain_case() { # name input_json local_src params gdaldem-mode gdaldem-args...
  local name=$1 inputs=$2 src=$3 params=$4 mode=$5
  shift 5
  expect_ok "$name" terrain "$params" "$inputs" || return
  mapfile -t co < <(base_co DEFLATE)
  gdaldem "$mode" -q -of COG "${co[@]}" "$@" "$src" "$TMP/$name.ref.tif"
  local msg
  if msg=$(pixels_equal "$TMP/$name.ref.tif" "$TMP/$name.tif" 1e-6 2>&1); then
    ok "$name: equals gdaldem $mode ($msg)"
  else
    fail "$name: differs from gdaldem $mode: $msg"
  fi
  assert_eq "$(checksums "$TMP/$name.ref.tif")" "$(checksums "$TMP/$name.tif")" \
    "$name: pixel checksums equal gdaldem's"
  # Computed in strips on several threads, written by the same COG writer:
  # the very bytes gdaldem writes.
  if cmp -s "$TMP/$name.ref.tif" "$TMP/$name.tif"; then
    ok "$name: byte-identical to gdaldem's COG"
  else
    fail "$name: not byte-identical to gdaldem's COG"
  fi
}
O=$SAMPLES/olinda_dem_utm25s.tif
terrain_case t_hillshade "$OLINDA" "$O" '{"mode":"hillshade","azimuth":300,"altitude":40,"zFactor":2}' \
  hillshade -az 300 -alt 40 -z 2
terrain_case t_slope "$OLINDA" "$O" '{"mode":"slope"}' slope
terrain_case t_slope_pct "$OLINDA" "$O" '{"mode":"slope","slopeFormat":"percent","alg":"ZevenbergenThorne","computeEdges":true}' \
  slope -p -alg ZevenbergenThorne -compute_edges
terrain_case t_aspect "$OLINDA" "$O" '{"mode":"aspect"}' aspect
terrain_case t_tri "$OLINDA" "$O" '{"mode":"TRI"}' TRI
terrain_case t_tpi "$OLINDA" "$O" '{"mode":"TPI","computeEdges":true}' TPI -compute_edges
terrain_case t_roughness "$OLINDA" "$O" '{"mode":"roughness"}' roughness
terrain_case t_slope_geo "$ELEV" "$SAMPLES/elev.tif" '{"mode":"slope","scale":111120}' slope -s 111120
terrain_case t_hillshade_geo "$ELEV" "$SAMPLES/elev.tif" '{"mode":"hillshade","scale":111120,"band":1}' \
  hillshade -s 111120 -b 1

echo "--- threads: 1 thread and several give the same bytes; params beat the environment"
# same_bytes NAME OP PARAMS INPUTS: runs PARAMS plus "threads":1 and "threads":3
# (3 > the CPUs here: more strips and compression jobs than cores).
same_bytes() {
  local name=$1 op=$2 params=$3 inputs=$4 sum1 sum3
  expect_ok "${name}_t1" "$op" "${params%\}},\"threads\":1}" "$inputs" || return
  sum1=$(json_get "$RESULT" 'd["output"]["checksum"]')
  assert_eq 1 "$(json_get "$RESULT" 'd["timings"]["threads"]')" "${name}_t1: timings.threads"
  expect_ok "${name}_t3" "$op" "${params%\}},\"threads\":3}" "$inputs" || return
  sum3=$(json_get "$RESULT" 'd["output"]["checksum"]')
  assert_eq 3 "$(json_get "$RESULT" 'd["timings"]["threads"]')" "${name}_t3: timings.threads"
  assert_eq "$sum1" "$sum3" "$name: same checksum with 1 and 3 threads"
}
same_bytes th_cog cog '{"compression":"ZSTD","blockSize":32}' "$OLINDA"
same_bytes th_slope terrain '{"mode":"slope","blockSize":32}' "$OLINDA"
same_bytes th_hillshade terrain '{"mode":"hillshade","computeEdges":true,"scale":111120,"blockSize":16}' "$ELEV"
same_bytes th_tpi terrain '{"mode":"TPI","blockSize":16}' "$ELEV"
same_bytes th_warp warp '{"dstCrs":"EPSG:4326","blockSize":32}' "$OLINDA"
TERRANE_THREADS=2 run_task th_env cog '{}' "$OLINDA"
assert_eq 2 "$(json_get "$RESULT" 'd["timings"]["threads"]')" "th_env: \$TERRANE_THREADS"
TERRANE_THREADS=2 TERRANE_CACHE_MB=40 run_task th_params cog '{"threads":1,"cacheMb":24}' "$OLINDA"
assert_eq 1 "$(json_get "$RESULT" 'd["timings"]["threads"]')" "th_params: params.threads beats the env"
assert_eq 24 "$(json_get "$RESULT" 'd["timings"]["gdalCacheMb"]')" "th_params: params.cacheMb"
assert_contains "$(grep '"_aws"' "$TMP/th_params.log")" '"Threads":1' "th_params: EMF Threads"
assert_contains "$(grep '"_aws"' "$TMP/th_params.log")" '"GdalCacheMB":24' "th_params: EMF GdalCacheMB"
TERRANE_MEMORY_LIMIT=1073741824 run_task th_limit cog '{}' "$OLINDA"
assert_eq 384 "$(json_get "$RESULT" 'd["timings"]["gdalCacheMb"]')" "th_limit: cache from a 1 GiB limit"
TERRANE_THREADS=lots run_task th_bad_env cog '{}' "$OLINDA"
assert_eq 70 "$RC" "th_bad_env: a bad \$TERRANE_THREADS is the installation's fault"
assert_contains "$(json_get "$RESULT" 'd["error"]["message"]')" TERRANE_THREADS "th_bad_env: message"

echo "--- failures"
size=$(stat -c %s "$O")
head -c $((size / 2)) "$O" >"$TMP/truncated.tif"
s3_put "$TMP/truncated.tif" s3://raw/truncated.tif
expect_fail fail_truncated 65 InputInvalid 'inputs[0].uri' cog '{}' \
  '[{"name":"dem","uri":"s3://raw/truncated.tif"}]'
assert_contains "$(json_get "$RESULT" 'd["error"]["class"]')" BadInput "fail_truncated: class"
head -c 300 "$O" >"$TMP/stub.tif"
s3_put "$TMP/stub.tif" s3://raw/stub.tif
expect_fail fail_header_only 65 InputInvalid 'inputs[0].uri' terrain '{"mode":"slope"}' \
  '[{"name":"dem","uri":"s3://raw/stub.tif"}]'
expect_fail fail_missing 65 InputUnreadable 'inputs[0].uri' cog '{}' \
  '[{"name":"dem","uri":"s3://raw/does-not-exist.tif"}]'
# Luxembourg's communes moved 20 degrees east.
ogr2ogr -q "$TMP/far.shp" "$SAMPLES/lux.shp" -dialect sqlite \
  -sql "SELECT ST_Translate(geometry, 20, 0, 0) AS geometry FROM lux"
for ext in shp shx dbf prj; do s3_put "$TMP/far.$ext" "s3://raw/far.$ext"; done
expect_fail fail_far_cutline 65 EmptyIntersection 'inputs[1].uri' warp '{"cutline":"far"}' \
  '[{"name":"dem","uri":"s3://raw/elev.tif"},{"name":"far","uri":"s3://raw/far.shp"}]'
expect_fail fail_mosaic_crs 65 CRSMismatch 'inputs[1].uri' mosaic '{}' \
  '[{"name":"a","uri":"s3://raw/elev.tif"},{"name":"b","uri":"s3://raw/olinda.tif"}]'
expect_fail fail_bad_crs 65 InvalidParam 'params.dstCrs' warp '{"dstCrs":"EPSG:1"}' "$ELEV"
expect_fail fail_crs_syntax 65 InvalidParam 'params.dstCrs' warp '{"dstCrs":"/etc/passwd"}' "$ELEV"
expect_fail fail_predictor 65 InvalidParam 'params.predictor' cog '{"predictor":3}' "$ELEV"
expect_fail fail_azimuth 65 InvalidParam 'params.azimuth' terrain '{"mode":"slope","azimuth":1}' "$ELEV"

finish
