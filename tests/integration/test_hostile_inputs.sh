#!/usr/bin/env bash
# Hostile inputs: each is refused with a clear error naming the input, exit 65,
# and nothing is published. Covers the driver allowlist (a VRT disguised as a
# GeoTIFF that points at a local file), metadata and link-local addresses,
# buckets outside the allowlist, local paths and GDAL virtual paths.
. "$(dirname "$0")/../lib/common.sh"
s3_start raw assets
export TERRANE_ALLOWED_BUCKETS=raw,assets TERRANE_ALLOWED_HOSTS=data.example.com TERRANE_LOG_LEVEL=error
unset TERRANE_ALLOW_LOCAL_PATHS

# A VRT that would make the worker read a file on its own disk.
cat > "$TMP/evil.tif" <<XML
<VRTDataset rasterXSize="10" rasterYSize="10">
  <VRTRasterBand dataType="Byte" band="1">
    <SimpleSource><SourceFilename relativeToVRT="0">$SAMPLES/elev.tif</SourceFilename>
      <SourceBand>1</SourceBand></SimpleSource>
  </VRTRasterBand>
</VRTDataset>
XML
s3_put "$TMP/evil.tif" s3://raw/evil.tif
# ENVI-style raw binary with a header: a raw driver, not allowed either.
head -c 100 /dev/zero > "$TMP/raw.bin"
printf 'ENVI\nsamples = 10\nlines = 10\nbands = 1\ndata type = 1\ninterleave = bsq\n' > "$TMP/raw.hdr"
s3_put "$TMP/raw.bin" s3://raw/raw.bin
s3_put "$TMP/raw.hdr" s3://raw/raw.hdr

# expect NAME URI CODE [NEEDLE]: runs a cog task on URI, expects exit 65,
# the error code, the field inputs[0].uri, and nothing under the output.
expect() {
  local name=$1 uri=$2 code=$3 needle=${4:-}
  local key=hostile/$name
  task_json cog '{}' "[{\"name\":\"src\",\"uri\":\"$uri\"}]" s3://assets/out "$key" > "$TMP/$name.json"
  "$WORKER" run --task "$TMP/$name.json" --termination-log "$TMP/$name.result" > "$TMP/$name.out" 2> "$TMP/$name.err"
  assert_eq 65 "$?" "$name: exit code"
  assert_eq "$code" "$(json_get "$TMP/$name.result" 'd["error"]["code"]')" "$name: error code"
  assert_eq "inputs[0].uri" "$(json_get "$TMP/$name.result" 'd["error"].get("field")')" "$name: field"
  [ -n "$needle" ] && assert_contains "$(json_get "$TMP/$name.result" 'd["error"]["message"]')" "$needle" "$name: message"
  if [ -d "$S3_DIR/assets/out/test/$key" ]; then fail "$name: something was published"; else ok "$name: nothing published"; fi
}

expect vrt_as_tif s3://raw/evil.tif InputInvalid "not a readable raster"
expect envi_raw s3://raw/raw.bin InputInvalid "not a readable raster"
expect metadata_ip https://169.254.169.254/latest/meta-data/iam/x.tif InputNotAllowed "link-local"
expect metadata_name https://metadata.google.internal/computeMetadata/x.tif InputNotAllowed "link-local"
expect ecs_agent https://169.254.170.2/v2/credentials/x.tif InputNotAllowed "link-local"
expect host_not_allowed https://evil.example.com/x.tif InputNotAllowed "not in the allowed hosts"
expect plain_http http://data.example.com/x.tif InputNotAllowed "plain http"
expect bucket_not_allowed s3://secrets/x.tif InputNotAllowed "not in the allowed buckets"
expect local_path "$SAMPLES/elev.tif" InputNotAllowed "local paths are not allowed"
expect file_scheme "file://$SAMPLES/elev.tif" InputNotAllowed "unsupported URI"
expect dotdot s3://raw/../assets/x.tif InputNotAllowed "'..'"
expect missing_object s3://raw/nope.tif InputUnreadable "does not exist"

# GDAL virtual paths stay refused even where local paths are allowed.
export TERRANE_ALLOW_LOCAL_PATHS=1
expect vsicurl /vsicurl/http://169.254.169.254/latest/x.tif InputNotAllowed "never allowed"
expect proc /proc/self/environ InputNotAllowed "never allowed"
# And the VRT is refused as a local file too: the driver allowlist, not the URI, stops it.
expect vrt_local "$TMP/evil.tif" InputInvalid "not a readable raster"
finish
