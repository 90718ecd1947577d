#!/usr/bin/env bash
# Integration: https sources, against a real HTTPS server on loopback
# (tests/lib/https_server.py, a self-signed certificate for localhost that
# the worker trusts through CURL_CA_BUNDLE / SSL_CERT_FILE, as GDAL does).
#
#  1. an object with Last-Modified only: observed (lastModified, size); the
#     same file again gives the same data version, new bytes with a new
#     mtime a new one
#  2. an object with an ETag: the ETag is recorded
#  3. no ETag and no Last-Modified: SourceUnversioned, exit 65 (a change
#     could not be seen, so no data version is made up)
#  4. 404: SourceNotFound naming the URL; a redirect (to the metadata
#     address) is not followed: exit 65
#  5. a cog task reading the https input with its observed Last-Modified
#     succeeds; after the file changed it fails with SourceChanged, exit 75
. "$(dirname "$0")/../lib/common.sh"
command -v openssl >/dev/null || fail "openssl missing"
s3_start assets
WWW=$TMP/www
mkdir -p "$WWW"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -days 2 -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1 || fail "cannot make a certificate"
/usr/bin/python3 "$ROOT/tests/lib/https_server.py" --dir "$WWW" --cert "$TMP/cert.pem" --key "$TMP/key.pem" \
  --port-file "$TMP/https.port" --log-file "$TMP/https.requests" 2>"$TMP/https.log" &
HTTPS_PID=$!
at_exit 'kill $HTTPS_PID 2>/dev/null; wait $HTTPS_PID 2>/dev/null'
for i in $(seq 100); do [ -s "$TMP/https.port" ] && break; sleep 0.05; done
[ -s "$TMP/https.port" ] || { cat "$TMP/https.log"; fail "https server did not start"; finish; }
BASE=https://localhost:$(cat "$TMP/https.port")
export CURL_CA_BUNDLE=$TMP/cert.pem SSL_CERT_FILE=$TMP/cert.pem TERRANE_ALLOWED_HOSTS=localhost

observe() { # NAME URI
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"hydro","assetKey":"src/%s","dataVersion":"sha256:%064d","operation":"observe","inputs":[{"name":"source","uri":"%s"}],"output":{"uri":"s3://assets/sources"}}\n' \
    "$1" 0 "$2" >"$TMP/$1.task"
  OUT=$TMP/$1.out
  "$WORKER" observe --task "$TMP/$1.task" >"$OUT" 2>"$TMP/$1.err"
  RC=$?
}
field() { json_get "$OUT" "$1"; }

cp "$SAMPLES/elev.tif" "$WWW/elev.tif"
touch -d '2026-01-01 00:00:00 UTC' "$WWW/elev.tif"
observe elev "$BASE/elev.tif"
assert_eq 0 "$RC" "Last-Modified only: exit 0"
LM=$(field 'd["observation"]["object"]["lastModified"]')
assert_eq "Thu, 01 Jan 2026 00:00:00 GMT" "$LM" "Last-Modified recorded as sent"
assert_eq "$(stat -c %s "$WWW/elev.tif")" "$(field 'd["observation"]["object"]["sizeBytes"]')" "size recorded"
D1=$(field 'd["observation"]["dataVersion"]')
observe elev "$BASE/elev.tif"
assert_eq "$D1" "$(field 'd["observation"]["dataVersion"]')" "unchanged https object: identical data version"

cp "$SAMPLES/elev.tif" "$WWW/dem.etag.tif"
observe etag "$BASE/dem.etag.tif"
assert_eq "$(sha256sum <"$WWW/dem.etag.tif" | cut -c1-32)" "$(field 'd["observation"]["object"]["etag"]')" "ETag recorded without quotes"

printf 'x' >"$WWW/noversion.bin"
observe nover "$BASE/noversion.bin"
assert_eq 65 "$RC" "no validators: exit 65"
assert_eq SourceUnversioned "$(field 'd["error"]["code"]')" "no validators: SourceUnversioned"

observe gone "$BASE/gone.tif"
assert_eq SourceNotFound "$(field 'd["error"]["code"]')" "404: SourceNotFound"
assert_contains "$(field 'd["error"]["message"]')" "$BASE/gone.tif does not exist" "404: the message names the URL"
echo https://169.254.169.254/latest/meta-data >"$WWW/redirects.txt"
observe moved "$BASE/redirect/0"
assert_eq 65 "$RC" "302: exit 65, the redirect is not followed"
assert_contains "$(field 'd["error"]["message"]')" "HTTP 302" "302: said so"

# 5. reading the observed version
export TERRANE_ALLOW_LOCAL_PATHS=1
# cog FILE LASTMODIFIED KEY: a cog task reading the https input (a new asset
# key each time: the same data version again would be a cache hit, rightly).
cog() {
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"hydro","assetKey":"%s","dataVersion":"sha256:%s","operation":"cog","inputs":[{"name":"dem","uri":"%s/elev.tif","dataVersion":"%s","observed":{"lastModified":"%s"}}],"output":{"uri":"%s/out"}}\n' \
    "$3" "$(printf '%s' "$2" | sha256sum | cut -d' ' -f1)" "$BASE" "$D1" "$2" "$TMP" >"$1"
}
cog "$TMP/c1.task" "$LM" lux/https_cog
"$WORKER" run --task "$TMP/c1.task" >"$TMP/c1.out" 2>"$TMP/c1.err"
rc=$?
assert_eq 0 "$rc" "https input at its observed Last-Modified: exit 0"
[ "$rc" = 0 ] || cat "$TMP/c1.out" >&2
gdal_translate -q -scale 0 1000 0 2000 -ot Float32 "$SAMPLES/elev.tif" "$WWW/elev.tif"
touch -d '2026-02-01 00:00:00 UTC' "$WWW/elev.tif"
cog "$TMP/c2.task" "$LM" lux/https_cog2
"$WORKER" run --task "$TMP/c2.task" >"$TMP/c2.out" 2>"$TMP/c2.err"
assert_eq 75 "$?" "https input changed: exit 75"
assert_eq SourceChanged "$(json_get "$TMP/c2.out" 'd["error"]["code"]')" "https input changed: SourceChanged"
observe elev "$BASE/elev.tif"
D2=$(field 'd["observation"]["dataVersion"]')
[ "$D2" != "$D1" ] && ok "changed https object: new data version" || fail "changed https object kept $D1"
finish
