#!/usr/bin/env bash
# make demo: runs terrane-worker on the real Luxembourg DEM and its communes
# against a local S3 server: DEM -> COG -> slope and hillshade -> catchment
# (commune) statistics, plus NDVI from a Landsat 7 scene. Prints where each
# output is, its checksum, and GDAL's COG validator's verdict.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORKER=$ROOT/$BUILD/terrane-worker
SAMPLES=$ROOT/.cache/samples
DEMO=$ROOT/.cache/demo
rm -rf "$DEMO" && mkdir -p "$DEMO/s3" "$DEMO/out" "$DEMO/tasks"

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
node_modules/.bin/s3rver -d "$DEMO/s3" -a 127.0.0.1 -p "$port" --silent \
  --configure-bucket raw --configure-bucket assets >"$DEMO/s3rver.log" 2>&1 &
s3pid=$!
trap 'kill $s3pid 2>/dev/null; wait $s3pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
export AWS_S3_ENDPOINT=127.0.0.1:$port AWS_HTTPS=NO AWS_VIRTUAL_HOSTING=FALSE
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
export TERRANE_ALLOWED_BUCKETS=raw,assets TERRANE_LOG_LEVEL=${TERRANE_LOG_LEVEL:-warn}
echo "demo: local S3 server on http://127.0.0.1:$port (buckets raw, assets)"

/usr/bin/python3 - "$SAMPLES" <<'PY'
import sys, os
from osgeo import gdal
for name in ["elev.tif", "lux.shp", "lux.shx", "lux.dbf", "lux.prj", "L7_ETMs.tif"]:
    data = open(os.path.join(sys.argv[1], name), "rb").read()
    f = gdal.VSIFOpenL("/vsis3/raw/lux/" + name, "wb")
    gdal.VSIFWriteL(data, 1, len(data), f); assert gdal.VSIFCloseL(f) == 0
PY
echo "demo: uploaded the sample DEM, communes and Landsat scene to s3://raw/lux/"

dv() { printf 'sha256:%s' "$(printf '%s' "$*" | sha256sum | cut -d' ' -f1)"; }
# run NAME OP PARAMS INPUTS: runs one task, prints a line, records the result.
run() {
  local name=$1 op=$2 params=$3 inputs=$4
  local task=$DEMO/tasks/$name.json
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"demo","name":"%s","assetKey":"lux/%s","dataVersion":"%s","operation":"%s","params":%s,"inputs":%s,"output":{"uri":"s3://assets"}}\n' \
    "${name//_/-}" "$name" "$(dv "$op$params$inputs")" "$op" "$params" "$inputs" > "$task"
  if ! "$WORKER" run --task "$task" --termination-log "$DEMO/tasks/$name.result.json" \
       > "$DEMO/tasks/$name.stdout" 2> "$DEMO/tasks/$name.log"; then
    echo "demo: $name FAILED:"; cat "$DEMO/tasks/$name.result.json"; echo; tail -5 "$DEMO/tasks/$name.log"; exit 1
  fi
}
field() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$DEMO/tasks/$1.result.json" "$2"; }

echo "demo: running the asset graph"
run dem_cog cog '{"compression":"DEFLATE","predictor":2,"blockSize":256}' '[{"name":"dem","uri":"s3://raw/lux/elev.tif"}]'
up=$(field dem_cog 'd["output"]["uri"]'); upv=$(field dem_cog 'd["dataVersion"]'); upi=$(field dem_cog 'd["output"]["stacItem"]')
from="[{\"name\":\"dem\",\"uri\":\"$up\",\"assetKey\":\"lux/dem_cog\",\"dataVersion\":\"$upv\",\"stacItem\":\"$upi\"}]"
run dem_slope terrain '{"mode":"slope","scale":111120,"compression":"DEFLATE"}' "$from"
run dem_hillshade terrain '{"mode":"hillshade","scale":111120,"zFactor":2}' "$from"
sl=$(field dem_slope 'd["output"]["uri"]'); slv=$(field dem_slope 'd["dataVersion"]')
run slope_by_commune zonal-stats '{"raster":"slope","zones":"communes","key":"NAME_2"}' \
  "[{\"name\":\"slope\",\"uri\":\"$sl\",\"assetKey\":\"lux/dem_slope\",\"dataVersion\":\"$slv\"},{\"name\":\"communes\",\"uri\":\"s3://raw/lux/lux.shp\"}]"
run landsat_ndvi calc '{"expression":"(l7[4] - l7[3]) / (l7[4] + l7[3])","outputType":"Float32"}' '[{"name":"l7","uri":"s3://raw/lux/L7_ETMs.tif"}]'
# the same task again: a cache hit
"$WORKER" run --task "$DEMO/tasks/dem_cog.json" --termination-log "$DEMO/tasks/again.json" >/dev/null 2>&1

echo
printf '%-18s %-12s %-9s %-10s %s\n' ASSET OPERATION COG SIZE OUTPUT
for name in dem_cog dem_slope dem_hillshade slope_by_commune landsat_ndvi; do
  uri=$(field $name 'd["output"]["uri"]')
  local_copy=$DEMO/out/$name.${uri##*.}
  /usr/bin/python3 -c 'import sys
from osgeo import gdal
p="/vsis3/"+sys.argv[1][5:]; st=gdal.VSIStatL(p); f=gdal.VSIFOpenL(p,"rb")
open(sys.argv[2],"wb").write(gdal.VSIFReadL(1,st.size,f)); gdal.VSIFCloseL(f)' "$uri" "$local_copy"
  verdict=n/a
  if [[ "$uri" == *.tif ]]; then
    if /usr/bin/python3 -m osgeo_utils.samples.validate_cloud_optimized_geotiff --full-check=yes "$local_copy" >/dev/null 2>&1; then verdict=valid; else verdict=INVALID; fi
  fi
  printf '%-18s %-12s %-9s %-10s %s\n' "$name" "$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["operation"])' "$DEMO/tasks/$name.json")" \
    "$verdict" "$(field $name 'd["output"]["sizeBytes"]')" "$uri"
  printf '%-18s checksum %s  STAC %s\n' "" "$(field $name 'd["output"]["checksum"]')" "$(field $name 'd["output"]["stacItem"]')"
done
echo
echo "second run of dem_cog: cacheHit=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cacheHit"])' "$DEMO/tasks/again.json")"
echo "local copies of the outputs: $DEMO/out/ (open the .tif files in QGIS; stats as GeoJSON)"
echo "task and result documents:   $DEMO/tasks/"
