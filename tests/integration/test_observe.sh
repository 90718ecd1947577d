#!/usr/bin/env bash
# Integration: `terrane-worker observe` against a real S3 server (s3rver),
# with a fault-injecting proxy (tests/lib/s3fault.py) where s3rver cannot
# produce the answer.
#
#  1. one object: data version = sha256 of the published listing, ETag and
#     size in the result; observing again without a change gives the same
#     data version and writes no new listing; overwriting with other bytes
#     gives a new data version and ETag
#  2. a glob prefix: only the matching objects directly in the directory;
#     a recursive prefix includes sub-directories; adding and removing
#     objects changes the data version, putting back the same bytes gives
#     the earlier one again
#  3. pagination: 2,500 objects are listed over 3 ListObjectsV2 pages
#     (continuation tokens), in key order, and counted exactly
#  4. 404 (object, bucket) => SourceNotFound, exit 65, naming the object;
#     403 (an unknown access key, and an AccessDenied from S3) => SourceAccessDenied,
#     exit 65; 503 twice then fine => retried, succeeds; 500 always =>
#     SourceUnavailable, exit 75; an https source that redirects is refused
#     (an https source must be the address the allowlist approved)
#  5. a source replaced between observation and read: the cog task carrying
#     the observed ETag fails with SourceChanged, exit 75, publishes nothing;
#     after a new observation it succeeds on the new version
#  6. allowlists: a bucket outside TERRANE_ALLOWED_BUCKETS is refused before
#     any request
. "$(dirname "$0")/../lib/common.sh"

s3_start raw assets
export GDAL_HTTP_MAX_RETRY=3 GDAL_HTTP_RETRY_DELAY=0.05
W=$WORKER
hex_of() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# put KEY CONTENT: writes an object with the given bytes.
put() { printf '%s' "$2" >"$TMP/obj"; s3_put "$TMP/obj" "s3://raw/$1"; }
# rm_obj KEY
rm_obj() {
  /usr/bin/python3 -c 'import sys
from osgeo import gdal
assert gdal.Unlink("/vsis3/raw/" + sys.argv[1]) == 0' "$1"
}

# observe NAME URI [ENDPOINT]: runs an observe task; sets RC and OUT (the
# result file) and prints nothing.
observe() {
  local name=$1 uri=$2
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"hydro","name":"%s","assetKey":"src/%s","dataVersion":"sha256:%s","operation":"observe","inputs":[{"name":"source","uri":"%s"}],"output":{"uri":"s3://assets/sources"}}\n' \
    "$name" "$name" "$(hex_of "$name$RANDOM")" "$uri" >"$TMP/$name.task"
  OUT=$TMP/$name.out
  "$W" observe --task "$TMP/$name.task" --termination-log "$TMP/$name.term" >"$OUT" 2>"$TMP/$name.err"
  RC=$?
}
dv() { json_get "$OUT" 'd["observation"]["dataVersion"]'; }
field() { json_get "$OUT" "$1"; }

# --- 1. one object ---------------------------------------------------------------------
put lux/dem.tif "first bytes"
observe dem s3://raw/lux/dem.tif
assert_eq 0 "$RC" "one object: exit 0"
DV1=$(dv)
LISTING=$(field 'd["observation"]["listing"]')
assert_eq "s3://assets/sources/hydro/src/dem/observations/${DV1#sha256:}.jsonl" "$LISTING" "one object: listing is content-addressed under the source"
s3_get "$LISTING" "$TMP/listing1"
assert_eq "${DV1#sha256:}" "$(sha256sum <"$TMP/listing1" | cut -d' ' -f1)" "one object: data version = sha256 of the published listing"
assert_eq "$(printf 'first bytes' | md5sum | cut -d' ' -f1)" "$(field 'd["observation"]["object"]["etag"]')" "one object: ETag (the content MD5 on s3rver) without quotes"
assert_eq 11 "$(field 'd["observation"]["object"]["sizeBytes"]')" "one object: size"
assert_eq 1 "$(field 'd["observation"]["objectCount"]')" "one object: objectCount 1"
[ "$(wc -c <"$TMP/dem.term")" -le 4096 ] && ok "one object: result fits the termination log" || fail "result over 4096 bytes"
assert_eq "$(cat "$TMP/dem.term")" "$(cat "$OUT")" "one object: termination log = stdout"

observe dem s3://raw/lux/dem.tif
assert_eq "$DV1" "$(dv)" "unchanged object: identical data version"
grep -q '"msg":"listing already published"' "$TMP/dem.err" && ok "unchanged object: no new listing written" || fail "unchanged object: the listing was written again"

put lux/dem.tif "other bytes"
observe dem s3://raw/lux/dem.tif
DV2=$(dv)
[ "$DV2" != "$DV1" ] && ok "overwritten object: new data version" || fail "overwritten object kept data version $DV1"
assert_eq "$(printf 'other bytes' | md5sum | cut -d' ' -f1)" "$(field 'd["observation"]["object"]["etag"]')" "overwritten object: new ETag"
put lux/dem.tif "first bytes"
observe dem s3://raw/lux/dem.tif
assert_eq "$DV1" "$(dv)" "the first bytes back: the first data version again"

# --- 2. prefixes -------------------------------------------------------------------------
for k in a b c; do put "precip/2026/p_$k.tif" "grid $k"; done
put precip/2026/readme.txt "not a grid"
put precip/2026/old/p_z.tif "older grid"
observe precip 's3://raw/precip/2026/p_*.tif'
assert_eq 0 "$RC" "glob: exit 0"
assert_eq 3 "$(field 'd["observation"]["objectCount"]')" "glob: 3 matching objects (not readme.txt, not old/)"
assert_eq 18 "$(field 'd["observation"]["bytes"]')" "glob: bytes summed"
G1=$(dv)
s3_get "$(field 'd["observation"]["listing"]')" "$TMP/glob.jsonl"
assert_eq "precip/2026/p_a.tif precip/2026/p_b.tif precip/2026/p_c.tif" \
  "$(/usr/bin/python3 -c 'import json,sys; print(" ".join(json.loads(l)["key"] for l in open(sys.argv[1])))' "$TMP/glob.jsonl")" \
  "glob: the listing holds the keys in order"
observe precip 's3://raw/precip/2026/p_*.tif'
assert_eq "$G1" "$(dv)" "glob unchanged: identical data version"
observe precipall s3://raw/precip/2026/
assert_eq 5 "$(field 'd["observation"]["objectCount"]')" "recursive prefix: all 5 objects below it"
put precip/2026/p_d.tif "grid d"
observe precip 's3://raw/precip/2026/p_*.tif'
G2=$(dv)
assert_eq 4 "$(field 'd["observation"]["objectCount"]')" "object added: 4 objects"
[ "$G2" != "$G1" ] && ok "object added: new data version" || fail "object added: same data version"
rm_obj precip/2026/p_b.tif
observe precip 's3://raw/precip/2026/p_*.tif'
G3=$(dv)
assert_eq 3 "$(field 'd["observation"]["objectCount"]')" "object removed: 3 objects"
[ "$G3" != "$G2" ] && [ "$G3" != "$G1" ] && ok "object removed: a third data version" || fail "object removed: data version reused"
rm_obj precip/2026/p_d.tif
put precip/2026/p_b.tif "grid b"
observe precip 's3://raw/precip/2026/p_*.tif'
assert_eq "$G1" "$(dv)" "the same objects back: the first data version again"
observe empty 's3://raw/precip/2026/q_*.tif'
assert_eq 0 "$RC" "glob without matches: exit 0"
assert_eq 0 "$(field 'd["observation"]["objectCount"]')" "glob without matches: objectCount 0 (the controller reports Available=False NoObjects)"

# --- 3. pagination ------------------------------------------------------------------------
/usr/bin/python3 - <<'PY'
from osgeo import gdal
for i in range(2500):
    p = "/vsis3/raw/many/k%05d.bin" % i
    f = gdal.VSIFOpenL(p, "wb"); gdal.VSIFWriteL(b"x" * (i % 7), 1, i % 7, f); assert gdal.VSIFCloseL(f) == 0
PY
PROXY_DIR=$TMP/proxy
mkdir -p "$PROXY_DIR"
/usr/bin/python3 "$ROOT/tests/lib/s3fault.py" --upstream "127.0.0.1:$S3_PORT" --ready-file "$PROXY_DIR/port" 2>"$PROXY_DIR/log" &
PROXY_PID=$!
at_exit 'kill $PROXY_PID 2>/dev/null; wait $PROXY_PID 2>/dev/null'
for i in $(seq 100); do [ -s "$PROXY_DIR/port" ] && break; sleep 0.05; done
PROXY=127.0.0.1:$(cat "$PROXY_DIR/port")
faults() { curl -sf -X PUT --data "$1" "http://$PROXY/__faults" >/dev/null || fail "cannot set faults"; }
requests() { curl -sf "http://$PROXY/__stats" | json_get - 'd["requests"]'; }
via_proxy() { AWS_S3_ENDPOINT=$PROXY "$@"; }

faults '[]'
before=$(requests)
via_proxy observe many s3://raw/many/
[ "$RC" = 0 ] || cat "$OUT" "$TMP/many.err" >&2
assert_eq 0 "$RC" "2,500 objects: exit 0"
assert_eq 2500 "$(field 'd["observation"]["objectCount"]')" "2,500 objects: all counted"
assert_eq "$(/usr/bin/python3 -c "print(sum(i % 7 for i in range(2500)))")" "$(field 'd["observation"]["bytes"]')" "2,500 objects: bytes summed"
lists=$(( $(requests) - before ))
# 3 ListObjectsV2 pages, then a HEAD and a PUT of the listing.
[ "$lists" -ge 3 ] && [ "$lists" -le 6 ] && ok "2,500 objects: $lists requests (3 list pages with continuation tokens)" || fail "2,500 objects: $lists requests"
s3_get "$(field 'd["observation"]["listing"]')" "$TMP/many.jsonl"
/usr/bin/python3 -c 'import json,sys
keys=[json.loads(l)["key"] for l in open(sys.argv[1])]
want = ["many/k%05d.bin" % i for i in range(2500)]
assert keys == want, "keys: %d, missing %s, extra %s" % (len(keys), sorted(set(want) - set(keys))[:5], sorted(set(keys) - set(want))[:5])' "$TMP/many.jsonl" \
  && ok "2,500 objects: listing complete and in key order" || fail "2,500 objects: listing wrong"

# --- 4. errors ------------------------------------------------------------------------------
observe missing s3://raw/lux/missing.tif
assert_eq 65 "$RC" "404 object: exit 65"
assert_eq SourceNotFound "$(field 'd["error"]["code"]')" "404 object: SourceNotFound"
assert_eq inputs[0].uri "$(field 'd["error"]["field"]')" "404 object: field inputs[0].uri"
assert_contains "$(field 'd["error"]["message"]')" "s3://raw/lux/missing.tif does not exist" "404 object: the message names the object"
observe nobucket s3://nosuchbucket/precip/
assert_eq 65 "$RC" "404 bucket: exit 65"
assert_eq SourceNotFound "$(field 'd["error"]["code"]')" "404 bucket: SourceNotFound"
assert_contains "$(field 'd["error"]["message"]')" "NoSuchBucket" "404 bucket: S3's error code in the message"
AWS_ACCESS_KEY_ID=NOBODY observe badkey s3://raw/lux/dem.tif
assert_eq 65 "$RC" "403 (unknown access key): exit 65"
assert_eq SourceAccessDenied "$(field 'd["error"]["code"]')" "403 (unknown access key): SourceAccessDenied"
AWS_ACCESS_KEY_ID=NOBODY observe badkeylist s3://raw/precip/2026/
assert_eq SourceAccessDenied "$(field 'd["error"]["code"]')" "403 on a list (unknown access key): SourceAccessDenied"
assert_contains "$(field 'd["error"]["message"]')" "InvalidAccessKeyId" "403 on a list: S3's error code in the message"
faults '[{"method":"GET","match":"list-type=2","status":403,"code":"AccessDenied"}]'
via_proxy observe denied 's3://raw/precip/2026/*.tif'
assert_eq 65 "$RC" "403 AccessDenied: exit 65, not retried"
assert_eq SourceAccessDenied "$(field 'd["error"]["code"]')" "403 AccessDenied: SourceAccessDenied"
faults '[{"method":"GET","match":"list-type=2","status":503,"code":"SlowDown","count":2}]'
via_proxy observe flaky 's3://raw/precip/2026/p_*.tif'
assert_eq 0 "$RC" "503 twice: retried, exit 0"
assert_eq "$G1" "$(dv)" "503 twice: the same data version as without faults"
faults '[{"method":"HEAD","match":"dem.tif","status":500,"code":"InternalError"}]'
before=$(requests)
via_proxy observe broken s3://raw/lux/dem.tif
assert_eq 75 "$RC" "500 always: exit 75 (transient)"
assert_eq SourceUnavailable "$(field 'd["error"]["code"]')" "500 always: SourceUnavailable"
assert_eq Transient "$(field 'd["error"]["class"]')" "500 always: class Transient"
assert_eq 4 "$(( $(requests) - before ))" "500 always: 1 + GDAL_HTTP_MAX_RETRY=3 attempts"
faults '[{"method":"HEAD","match":"dem.tif","status":301,"code":"PermanentRedirect"}]'
via_proxy observe moved s3://raw/lux/dem.tif
assert_eq 65 "$RC" "301: exit 65 (redirects are not followed)"
faults '[]'

# --- 5. replaced between observation and read ------------------------------------------------
export TERRANE_ALLOW_LOCAL_PATHS=1
s3_put "$SAMPLES/elev.tif" s3://raw/lux/elev.tif
observe elev s3://raw/lux/elev.tif
E1=$(field 'd["observation"]["object"]["etag"]')
SDV1=$(dv)
# cog_task FILE ETAG SOURCE_DV: reads the source with the observed ETag.
cog_task() {
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"hydro","assetKey":"lux/dem_cog","dataVersion":"sha256:%s","operation":"cog","inputs":[{"name":"dem","uri":"s3://raw/lux/elev.tif","assetKey":"src/elev","dataVersion":"%s","observed":{"etag":"%s"}}],"output":{"uri":"s3://assets/out"}}\n' \
    "$(hex_of "$3")" "$3" "$2" >"$1"
}
gdal_translate -q -scale 0 1000 0 2000 -ot Float32 "$SAMPLES/elev.tif" "$TMP/elev2.tif"
s3_put "$TMP/elev2.tif" s3://raw/lux/elev.tif
cog_task "$TMP/cog1.task" "$E1" "$SDV1"
"$W" run --task "$TMP/cog1.task" >"$TMP/cog1.out" 2>"$TMP/cog1.err"
assert_eq 75 "$?" "replaced after observation: exit 75"
assert_eq SourceChanged "$(json_get "$TMP/cog1.out" 'd["error"]["code"]')" "replaced after observation: SourceChanged"
assert_contains "$(json_get "$TMP/cog1.out" 'd["error"]["message"]')" "s3://raw/lux/elev.tif changed since it was observed" "SourceChanged names the object"
s3_exists "s3://assets/out/hydro/lux/dem_cog/$(hex_of "$SDV1")/manifest.json" && fail "SourceChanged published a manifest" || ok "SourceChanged published nothing"
observe elev s3://raw/lux/elev.tif
E2=$(field 'd["observation"]["object"]["etag"]')
SDV2=$(dv)
[ "$SDV2" != "$SDV1" ] && [ "$E2" != "$E1" ] && ok "re-observed: new ETag and data version" || fail "re-observation did not see the change"
cog_task "$TMP/cog2.task" "$E2" "$SDV2"
"$W" run --task "$TMP/cog2.task" >"$TMP/cog2.out" 2>"$TMP/cog2.err"
assert_eq 0 "$?" "the new version: exit 0"
s3_get "$(json_get "$TMP/cog2.out" 'd["output"]["uri"]')" "$TMP/cog2.tif"
max=$(gdalinfo -stats "$TMP/cog2.tif" 2>/dev/null | sed -n 's/.*STATISTICS_MAXIMUM=//p' | head -1)
[ -n "$max" ] && /usr/bin/python3 -c "import sys; sys.exit(0 if float('$max') > 1000 else 1)" \
  && ok "the output is made from the new bytes (max $max)" || fail "output not from the new bytes (max '$max')"

# --- 6. allowlists ---------------------------------------------------------------------------
before=$(requests)
TERRANE_ALLOWED_BUCKETS=assets AWS_S3_ENDPOINT=$PROXY observe notallowed s3://raw/lux/dem.tif
assert_eq 65 "$RC" "bucket not allowed: exit 65"
assert_eq InputNotAllowed "$(field 'd["error"]["code"]')" "bucket not allowed: InputNotAllowed"
assert_eq "$before" "$(requests)" "bucket not allowed: no request sent"
observe https-nothost https://data.example.com/lux/dem.tif
assert_eq InputNotAllowed "$(field 'd["error"]["code"]')" "https host not in TERRANE_ALLOWED_HOSTS: InputNotAllowed"
TERRANE_ALLOWED_HOSTS=169.254.169.254 observe https-meta https://169.254.169.254/latest/meta-data
assert_eq InputNotAllowed "$(field 'd["error"]["code"]')" "metadata address: InputNotAllowed even when listed"

finish
