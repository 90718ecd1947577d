#!/usr/bin/env bash
# make demo-upload FILE=path KEY=key: puts a file into the running demo's S3
# server, at s3://raw/KEY (or s3://BUCKET/REST when KEY starts with raw/ or
# assets/, the two buckets the demo's workers may read), with the endpoint
# and credentials `make demo` wrote to .cache/demo/s3.env (DEMO_DIR moves it).
# Prints the URI to use as an input and a minimal asset using it.
# A shapefile's companions (.shx, .dbf, .prj, .cpg) are uploaded beside it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=${DEMO_DIR:-$ROOT/.cache/demo}
FILE=${1:-}
KEY=${2:-}
usage() { echo "usage: make demo-upload FILE=path/to/data.tif KEY=some/key.tif" >&2; exit 64; }
[ -n "$FILE" ] && [ -n "$KEY" ] || usage
[ -f "$FILE" ] || { echo "demo-upload: no such file: $FILE" >&2; exit 66; }
[ -f "$DEMO_DIR/s3.env" ] || { echo "demo-upload: no demo S3 environment ($DEMO_DIR/s3.env): run make demo first" >&2; exit 69; }
# shellcheck disable=SC1091
. "$DEMO_DIR/s3.env"
case $KEY in
  s3://*) echo "demo-upload: KEY is a key, not a URI (for example KEY=my/dem.tif)" >&2; exit 64 ;;
  raw/* | assets/*) BUCKET=${KEY%%/*} KEY=${KEY#*/} ;;
  *) BUCKET=raw ;;
esac
case /$KEY/ in */../* | */./* | //) echo "demo-upload: KEY must be a plain key (no '.', '..' or empty segments)" >&2; exit 64 ;; esac
exec /usr/bin/python3 - "$FILE" "$BUCKET" "$KEY" <<'PY'
import os, sys
from osgeo import gdal
gdal.UseExceptions()
path, bucket, key = sys.argv[1:4]
files = [(path, key)]
stem, ext = os.path.splitext(path)
if ext.lower() == ".shp":
    kstem = os.path.splitext(key)[0]
    for e in (".shx", ".dbf", ".prj", ".cpg"):
        if os.path.exists(stem + e):
            files.append((stem + e, kstem + e))
for src, k in files:
    data = open(src, "rb").read()
    uri = "/vsis3/%s/%s" % (bucket, k)
    try:
        f = gdal.VSIFOpenL(uri, "wb")
        gdal.VSIFWriteL(data, 1, len(data), f)
        ok = gdal.VSIFCloseL(f) == 0
    except RuntimeError as e:
        sys.exit("demo-upload: %s: %s (is the demo running? make demo)" % (uri, e))
    if not ok or gdal.VSIStatL(uri) is None:
        sys.exit("demo-upload: uploading %s to s3://%s/%s failed (is the demo running? make demo)" % (src, bucket, k))
    print("demo-upload: s3://%s/%s  %d bytes" % (bucket, k, len(data)))
print("""
Use it as an input, for example:
  apiVersion: terrane.io/v1alpha1
  kind: AssetMaterialization
  metadata: {name: my-slope, namespace: hydro}
  spec:
    assetKey: mine/slope
    operation: terrain
    params: {mode: slope}
    inputs: [{name: dem, uri: "s3://%s/%s"}]
    output: {uri: "s3://assets"}""" % (bucket, key))
PY
