# tests/lib/common.sh - shared helpers for shell tests. Source it:
#   . "$(dirname "$0")/../lib/common.sh"
# Gives what tests/lib/base.sh gives, plus BUILD, WORKER, SAMPLES, s3_start/s3_stop
# (s3rver on loopback), s3_put/s3_get/s3_exists, cog_validate and task_json.
. "$(dirname "${BASH_SOURCE[0]}")/base.sh"
BUILD=${TERRANE_BUILD:-$ROOT/build}
WORKER=$BUILD/terrane-worker
SAMPLES=$ROOT/.cache/samples

[ -x "$WORKER" ] || skip "terrane-worker not built ($WORKER)"
[ -f "$SAMPLES/elev.tif" ] || skip "sample rasters missing: run scripts/deps.sh"

# Starts s3rver on a free loopback port with the given buckets and points
# GDAL (and the worker) at it. Sets S3_DIR (its storage) and S3_PORT.
s3_start() {
  local buckets=("$@") args=() b
  S3_PORT=$(free_port)
  S3_DIR=$TMP/s3
  mkdir -p "$S3_DIR"
  # S3_CORS: a CORS configuration file applied to every bucket (browsers
  # reading COGs straight from the bucket, as the lineage UI's previews do).
  for b in "${buckets[@]}"; do args+=(--configure-bucket "$b" ${S3_CORS:+"$S3_CORS"}); done
  "$ROOT/node_modules/.bin/s3rver" -d "$S3_DIR" -a 127.0.0.1 -p "$S3_PORT" --silent "${args[@]}" \
    >"$TMP/s3rver.log" 2>&1 &
  S3_PID=$!
  at_exit "s3_stop"
  local i
  for i in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/$S3_PORT) 2>/dev/null; then break; fi
    sleep 0.1
  done
  export AWS_S3_ENDPOINT=127.0.0.1:$S3_PORT AWS_HTTPS=NO AWS_VIRTUAL_HOSTING=FALSE
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
  export CPL_VSIL_USE_TEMP_FILE_FOR_RANDOM_WRITE=YES
  unset AWS_SESSION_TOKEN AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_ROLE_ARN || true
}
s3_stop() {
  if [ -n "${S3_PID:-}" ]; then kill "$S3_PID" 2>/dev/null; wait "$S3_PID" 2>/dev/null; S3_PID=; fi
}
# Copies a local file into the S3 server (through GDAL, like the worker reads).
s3_put() { # local_file s3://bucket/key
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
from osgeo import gdal
src, dst = sys.argv[1], sys.argv[2]
data = open(src, 'rb').read()
path = '/vsis3/' + dst[len('s3://'):]
f = gdal.VSIFOpenL(path, 'wb'); assert f, 'cannot open ' + path
gdal.VSIFWriteL(data, 1, len(data), f); assert gdal.VSIFCloseL(f) == 0
PY
}
# Prints a copy of an S3 object to a local file.
s3_get() { # s3://bucket/key local_file
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
from osgeo import gdal
path = '/vsis3/' + sys.argv[1][len('s3://'):]
st = gdal.VSIStatL(path); assert st, 'missing ' + path
f = gdal.VSIFOpenL(path, 'rb'); data = gdal.VSIFReadL(1, st.size, f); gdal.VSIFCloseL(f)
open(sys.argv[2], 'wb').write(data)
PY
}
# True when the S3 object exists.
s3_exists() {
  /usr/bin/python3 -c 'import sys
from osgeo import gdal
gdal.SetConfigOption("CPL_VSIL_CURL_NON_CACHED", "/vsis3/")
sys.exit(0 if gdal.VSIStatL("/vsis3/"+sys.argv[1][5:]) else 1)' "$1"
}

# GDAL's own COG validator; prints its verdict, returns non-zero if invalid.
cog_validate() { # path (local or /vsis3/...)
  /usr/bin/python3 -m osgeo_utils.samples.validate_cloud_optimized_geotiff --full-check=yes "$1"
}

# A valid task document: task_json OP PARAMS_JSON INPUTS_JSON [OUTPUT_URI] [ASSET_KEY]
task_json() {
  local op=$1 params=$2 inputs=$3 out=${4:-s3://assets/out} key=${5:-test/$1}
  local dv
  dv=sha256:$(printf '%s|%s|%s|%s' "$op" "$params" "$inputs" "$key" | sha256sum | cut -d' ' -f1)
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"test","assetKey":"%s","dataVersion":"%s","operation":"%s","params":%s,"inputs":%s,"output":{"uri":"%s"},"attempt":1}\n' \
    "$key" "$dv" "$op" "$params" "$inputs" "$out"
}
