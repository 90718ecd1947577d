#!/usr/bin/env bash
# https inputs and redirects: an allowlisted host (localhost, with a test CA)
# serves a raster directly and through redirects. A redirect to another
# allowlisted URL is followed; one to plain http, to a host outside the
# allowlist (127.0.0.1, the same server) or to the metadata address is
# refused with InputNotAllowed naming the Location, and the target is never
# asked (the servers' request logs show it). GDAL's /vsicurl/ follows all of
# these, which is why the worker reads https through its own libcurl.
. "$(dirname "$0")/../lib/common.sh"
command -v openssl >/dev/null || fail "openssl not installed (run scripts/deps.sh)"
s3_start assets
export TERRANE_ALLOWED_BUCKETS=assets TERRANE_ALLOWED_HOSTS=localhost TERRANE_LOG_LEVEL=error
unset TERRANE_ALLOW_LOCAL_PATHS

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 1 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null \
  || fail "cannot make a test certificate"
export CURL_CA_BUNDLE=$TMP/cert.pem
mkdir -p "$TMP/www" "$TMP/plain"
cp "$SAMPLES/elev.tif" "$TMP/www/elev.tif"
cp "$SAMPLES/elev.tif" "$TMP/www/secret.tif"
cp "$SAMPLES/elev.tif" "$TMP/plain/secret.tif"

# start_server NAME DIR [--plain]: sets <NAME>_PORT once the port file exists.
start_server() {
  local name=$1 dir=$2; shift 2
  /usr/bin/python3 "$ROOT/tests/lib/https_server.py" --dir "$dir" --cert "$TMP/cert.pem" \
    --key "$TMP/key.pem" --port-file "$TMP/$name.port" --log-file "$TMP/$name.log" "$@" \
    >"$TMP/$name.out" 2>&1 &
  local pid=$!
  at_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  local i
  for i in $(seq 1 100); do [ -s "$TMP/$name.port" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  [ -s "$TMP/$name.port" ] || { cat "$TMP/$name.out" >&2; fail "$name server did not start"; finish; }
  printf -v "${name}_PORT" %s "$(cat "$TMP/$name.port")"
  : >>"$TMP/$name.log"
}
start_server tls "$TMP/www"
start_server plain "$TMP/plain" --plain
cat >"$TMP/www/redirects.txt" <<EOF
https://localhost:$tls_PORT/elev.tif
http://127.0.0.1:$plain_PORT/secret.tif
https://127.0.0.1:$tls_PORT/secret.tif
https://169.254.169.254/latest/meta-data/secret.tif
https://localhost:$tls_PORT/redirect/0
EOF

run_task() { # NAME URI: runs a cog task, leaves $TMP/NAME.result
  task_json cog '{}' "[{\"name\":\"src\",\"uri\":\"$2\"}]" s3://assets/out "https/$1" > "$TMP/$1.json"
  "$WORKER" run --task "$TMP/$1.json" --termination-log "$TMP/$1.result" > "$TMP/$1.out" 2> "$TMP/$1.err"
}

run_task direct "https://localhost:$tls_PORT/elev.tif"
rc=$?; [ $rc = 0 ] || cat "$TMP/direct.result" "$TMP/direct.err" >&2
assert_eq 0 "$rc" "direct: exit code"
assert_eq Succeeded "$(json_get "$TMP/direct.result" 'd["status"]')" "direct: succeeded"
assert_contains "$(cat "$TMP/tls.log")" "GET /elev.tif 206" "direct: read with range requests"

run_task allowed "https://localhost:$tls_PORT/redirect/4"
assert_eq 0 "$?" "redirects within the allowlist: exit code"
assert_eq "$(json_get "$TMP/direct.result" 'd["output"]["checksum"]')" \
  "$(json_get "$TMP/allowed.result" 'd["output"]["checksum"]')" "redirected read: same bytes"

refused() { # NAME REDIRECT_INDEX NEEDLE
  run_task "$1" "https://localhost:$tls_PORT/redirect/$2"
  assert_eq 65 "$?" "$1: exit code"
  assert_eq InputNotAllowed "$(json_get "$TMP/$1.result" 'd["error"]["code"]')" "$1: error code"
  assert_eq "inputs[0].uri" "$(json_get "$TMP/$1.result" 'd["error"].get("field")')" "$1: field"
  local msg
  msg=$(json_get "$TMP/$1.result" 'd["error"]["message"]')
  assert_contains "$msg" "redirects to" "$1: names the redirect"
  assert_contains "$msg" "$3" "$1: says why"
}
refused to_plain_http 1 "only https://"
refused to_other_host 2 "not in the allowed hosts"
refused to_metadata 3 "link-local and metadata"
if grep -q secret "$TMP/tls.log" "$TMP/plain.log"; then
  fail "a refused redirect target was requested: $(grep -h secret "$TMP/tls.log" "$TMP/plain.log")"
else
  ok "no refused redirect target was ever requested"
fi
if [ -d "$S3_DIR/assets/out/test/https/to_plain_http" ]; then fail "something was published"; else ok "nothing published for refused inputs"; fi
finish
