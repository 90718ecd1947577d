#!/usr/bin/env bash
# Integration: terrane-worker publishing to a real S3 server (s3rver).
#
#  1. a cog task publishes asset.tif, item.json, manifest.json under
#     <output>/<namespace>/<assetKey>/<dataVersion hex>/; the checksum is the
#     SHA-256 multihash of the bytes S3 holds; Content-Type is set; the STAC
#     Item links its input (derived_from)
#  2. the same task again is a cache hit: same checksum, nothing recomputed
#     or re-uploaded
#  3. without the manifest it recomputes, byte-identical; an object changed
#     behind the manifest (new ETag, other bytes) is re-hashed and republished
#  4. a downstream task links the upstream's STAC Item; a multipart upload
#     has the right checksum and is a cache hit by its ETag
#  5. a missing output bucket: S3ClientError naming the operation and URI
#  6. S3 answering 503 to the item.json upload: S3ServerError, exit 75, and
#     the already uploaded asset.tif is rolled back: nothing under the prefix
#  7. S3 dying mid-publication: exit 75, no manifest; after a restart the
#     incomplete prefix is not a cache hit and is completed
#  8. scratch space full (a 64 KiB tmpfs): ScratchUnavailable, exit 75,
#     scratch removed, nothing published
. "$(dirname "$0")/../lib/common.sh"

s3_start assets
export TERRANE_ALLOW_LOCAL_PATHS=1 # inputs are the local sample rasters
# Fail fast on injected 5xx instead of main.c's default 3 retries at 1 s.
export GDAL_HTTP_MAX_RETRY=1 GDAL_HTTP_RETRY_DELAY=0.1

ELEV=$SAMPLES/elev.tif
hex_of() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# make_task FILE KEY OUTPUT INPUTS_JSON: a cog task with a data version
# derived from the key and inputs.
make_task() {
  local dv
  dv=$(hex_of "$2|$4")
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"test","assetKey":"%s","dataVersion":"sha256:%s","operation":"cog","params":{},"inputs":%s,"output":{"uri":"%s"},"attempt":1}\n' \
    "$2" "$dv" "$4" "$3" >"$1"
  echo "$dv"
}

# run NAME TASKFILE: runs the worker; result in $TMP/NAME.out, log in $TMP/NAME.err, exit in $rc.
run() {
  "$WORKER" run --task "$2" --termination-log "$TMP/$1.term" >"$TMP/$1.out" 2>"$TMP/$1.err"
  rc=$?
}

# Object names stored by s3rver under a prefix (its files end in ._S3rver_object).
s3_ls() { # dir under S3_DIR
  find "$S3_DIR/$1" -name '*._S3rver_object' 2>/dev/null | sed "s#^$S3_DIR/$1/##; s#._S3rver_object\$##" | sort | tr '\n' ' '
}

gdal_headers() { # s3://bucket/key -> JSON of the object's HTTP headers
  /usr/bin/python3 -c 'import json,sys
from osgeo import gdal
print(json.dumps(gdal.GetFileMetadata("/vsis3/"+sys.argv[1][5:], "HEADERS") or {}))' "$1"
}

# --- 1. publish --------------------------------------------------------------
INPUTS='[{"name":"src","uri":"'$ELEV'"}]'
DV1=$(make_task "$TMP/t1.json" test/elev_cog s3://assets/out "$INPUTS")
PREFIX=out/test/test/elev_cog/$DV1
run first "$TMP/t1.json"
assert_eq 0 "$rc" "publish: exit code"
assert_eq Succeeded "$(json_get "$TMP/first.out" 'd["status"]')" "publish: status"
assert_eq "s3://assets/$PREFIX/asset.tif" "$(json_get "$TMP/first.out" 'd["output"]["uri"]')" \
  "publish: content-addressed key <output>/<namespace>/<assetKey>/<dataVersion hex>/asset.tif"
assert_eq "s3://assets/$PREFIX/item.json" "$(json_get "$TMP/first.out" 'd["output"]["stacItem"]')" "publish: stacItem URI"
assert_eq "s3://assets/$PREFIX/manifest.json" "$(json_get "$TMP/first.out" 'd["output"]["manifest"]')" "publish: manifest URI"
assert_eq "asset.tif item.json manifest.json " "$(s3_ls "assets/$PREFIX")" "publish: exactly the three objects"

SUM1=$(json_get "$TMP/first.out" 'd["output"]["checksum"]')
s3_get "s3://assets/$PREFIX/asset.tif" "$TMP/first.tif"
assert_eq "1220$(sha256sum "$TMP/first.tif" | cut -d' ' -f1)" "$SUM1" "publish: checksum is the multihash of the stored bytes"
assert_eq "$(stat -c %s "$TMP/first.tif")" "$(json_get "$TMP/first.out" 'd["output"]["sizeBytes"]')" "publish: sizeBytes"
if cog_validate "$TMP/first.tif" >/dev/null 2>&1; then ok "publish: a valid COG"; else fail "publish: not a valid COG"; fi

H=$(gdal_headers "s3://assets/$PREFIX/asset.tif")
assert_eq "image/tiff; application=geotiff; profile=cloud-optimized" \
  "$(json_get - 'd.get("Content-Type")' <<<"$H")" "publish: Content-Type of the COG"
assert_eq "sha256:$DV1" "$(json_get - 'd.get("x-amz-meta-terrane-data-version")' <<<"$H")" "publish: data version in object metadata"
assert_eq "application/geo+json" \
  "$(gdal_headers "s3://assets/$PREFIX/item.json" | json_get - 'd.get("Content-Type")')" "publish: Content-Type of the STAC Item"

s3_get "s3://assets/$PREFIX/manifest.json" "$TMP/manifest.json"
assert_eq Manifest "$(json_get "$TMP/manifest.json" 'd["kind"]')" "manifest: kind"
assert_eq "sha256:$DV1" "$(json_get "$TMP/manifest.json" 'd["dataVersion"]')" "manifest: data version"
assert_eq "asset.tif" "$(json_get "$TMP/manifest.json" '",".join(f["name"] for f in d["files"])')" "manifest: lists the files"
assert_eq "$SUM1" "$(json_get "$TMP/manifest.json" 'd["files"][0]["checksum"]')" "manifest: checksum"
assert_eq "$ELEV" "$(json_get "$TMP/manifest.json" 'd["inputs"][0]["uri"]')" "manifest: inputs"
assert_eq "s3://assets/$PREFIX/item.json" "$(json_get "$TMP/manifest.json" 'd["stacItem"]')" "manifest: stacItem"

s3_get "s3://assets/$PREFIX/item.json" "$TMP/item.json"
assert_eq "1.0.0" "$(json_get "$TMP/item.json" 'd["stac_version"]')" "item: STAC 1.0.0"
assert_eq "$ELEV" "$(json_get "$TMP/item.json" '[l["href"] for l in d["links"] if l["rel"]=="derived_from"][0]')" "item: derived_from the input"
assert_eq "$SUM1" "$(json_get "$TMP/item.json" 'd["assets"]["asset.tif"]["file:checksum"]')" "item: file:checksum"
assert_eq EPSG:4326 "$(json_get "$TMP/item.json" 'd["properties"]["proj:code"]')" "item: proj:code (projection v2.0.0)"
if out=$(python3 "$ROOT/tests/lib/stac_check.py" "$TMP/item.json"); then
  ok "item: STAC 1.0.0 with projection v2.0.0, file v2.1.0, processing v1.2.0, raster v1.1.0 (tests/lib/stac_check.py)"
else
  fail "item: $out"
fi

# --- 2. cache hit ------------------------------------------------------------
MTIME=$(stat -c %Y.%N "$S3_DIR/assets/$PREFIX/asset.tif._S3rver_object")
sleep 1 # a re-upload would show in the stored object's mtime
run second "$TMP/t1.json"
assert_eq 0 "$rc" "cache hit: exit code"
assert_eq true "$(json_get "$TMP/second.out" 'd["cacheHit"]')" "cache hit: cacheHit"
assert_eq "$SUM1" "$(json_get "$TMP/second.out" 'd["output"]["checksum"]')" "cache hit: same checksum"
assert_contains "$(cat "$TMP/second.err")" "cache hit" "cache hit: logged"
if grep -q '"msg":"progress"' "$TMP/second.err"; then fail "cache hit: the operation ran again"; else ok "cache hit: nothing recomputed"; fi
assert_eq "$MTIME" "$(stat -c %Y.%N "$S3_DIR/assets/$PREFIX/asset.tif._S3rver_object")" "cache hit: nothing re-uploaded"
if grep -q "re-hashing" "$TMP/second.err"; then fail "cache hit: re-hashed despite an unchanged ETag"; else ok "cache hit: verified by ETag, no re-read"; fi

# --- 3. no manifest: recompute, byte-identical --------------------------------
/usr/bin/python3 -c 'import sys
from osgeo import gdal
assert gdal.Unlink("/vsis3/assets/" + sys.argv[1]) == 0' "$PREFIX/manifest.json"
run third "$TMP/t1.json"
assert_eq 0 "$rc" "recompute: exit code"
assert_eq false "$(json_get "$TMP/third.out" 'd["cacheHit"]')" "recompute: not a cache hit without the manifest"
assert_contains "$(cat "$TMP/third.err")" '"msg":"progress"' "recompute: the operation ran"
assert_eq "$SUM1" "$(json_get "$TMP/third.out" 'd["output"]["checksum"]')" "recompute: same checksum"
s3_get "s3://assets/$PREFIX/asset.tif" "$TMP/third.tif"
if cmp -s "$TMP/first.tif" "$TMP/third.tif"; then ok "recompute: byte-identical COG"; else fail "recompute: bytes differ"; fi
assert_eq "asset.tif item.json manifest.json " "$(s3_ls "assets/$PREFIX")" "recompute: manifest back"

# --- 3b. an object changed behind the manifest's back is no hit -----------------
/usr/bin/python3 - "$TMP/first.tif" "$TMP/tampered.tif" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 0xFF
open(sys.argv[2], "wb").write(b)
PY
s3_put "$TMP/tampered.tif" "s3://assets/$PREFIX/asset.tif"
run tampered "$TMP/t1.json"
assert_eq 0 "$rc" "tampered: exit code"
assert_eq false "$(json_get "$TMP/tampered.out" 'd["cacheHit"]')" "tampered: not a cache hit"
assert_contains "$(cat "$TMP/tampered.err")" "re-hashing" "tampered: ETag changed, object re-hashed"
assert_contains "$(cat "$TMP/tampered.err")" "checksum differs" "tampered: checksum mismatch found"
s3_get "s3://assets/$PREFIX/asset.tif" "$TMP/repaired.tif"
if cmp -s "$TMP/first.tif" "$TMP/repaired.tif"; then ok "tampered: republished"; else fail "tampered: object not repaired"; fi

# --- 4. lineage to an upstream asset -------------------------------------------
UP_INPUTS='[{"name":"dem","uri":"s3://assets/'$PREFIX'/asset.tif","assetKey":"test/elev_cog","dataVersion":"sha256:'$DV1'","stacItem":"s3://assets/'$PREFIX'/item.json"}]'
DV2=$(make_task "$TMP/t2.json" test/elev_cog2 s3://assets/out "$UP_INPUTS")
run downstream "$TMP/t2.json"
assert_eq 0 "$rc" "downstream: exit code"
s3_get "s3://assets/out/test/test/elev_cog2/$DV2/item.json" "$TMP/item2.json"
assert_eq "s3://assets/$PREFIX/item.json" \
  "$(json_get "$TMP/item2.json" '[l["href"] for l in d["links"] if l["rel"]=="derived_from"][0]')" \
  "downstream: derived_from the upstream's STAC Item"
s3_get "s3://assets/out/test/test/elev_cog2/$DV2/manifest.json" "$TMP/manifest2.json"
assert_eq "sha256:$DV1" "$(json_get "$TMP/manifest2.json" 'd["inputs"][0]["dataVersion"]')" "downstream: manifest records the input's data version"

# --- 4b. multipart upload ------------------------------------------------------
# 64 KiB parts (a GDAL test knob) turn the ~800 KiB COG into a multipart upload,
# the path every production-sized raster takes.
MP_INPUTS='[{"name":"src","uri":"'$SAMPLES'/L7_ETMs.tif"}]'
DVM=$(make_task "$TMP/tm.json" test/multipart s3://assets/out "$MP_INPUTS")
VSIS3_CHUNK_SIZE_BYTES=65536 TERRANE_LOG_LEVEL=debug run multipart "$TMP/tm.json"
assert_eq 0 "$rc" "multipart: exit code"
assert_contains "$(cat "$TMP/multipart.err")" "Etag for part 2" "multipart: uploaded in parts"
s3_get "s3://assets/out/test/test/multipart/$DVM/asset.tif" "$TMP/mp.tif"
assert_eq "1220$(sha256sum "$TMP/mp.tif" | cut -d' ' -f1)" "$(json_get "$TMP/multipart.out" 'd["output"]["checksum"]')" \
  "multipart: checksum of the assembled object"
run multipart2 "$TMP/tm.json"
assert_eq true "$(json_get "$TMP/multipart2.out" 'd["cacheHit"]')" "multipart: cache hit"
if grep -q "re-hashing" "$TMP/multipart2.err"; then fail "multipart: re-hashed"; else ok "multipart: verified by its multipart ETag"; fi

# --- 5. missing bucket ---------------------------------------------------------
make_task "$TMP/t5.json" test/nobucket s3://no-such-bucket/out "$INPUTS" >/dev/null
run nobucket "$TMP/t5.json"
assert_eq 70 "$rc" "missing bucket: exit 70 (the installation's fault, retried and counted apart)"
assert_eq S3ClientError "$(json_get "$TMP/nobucket.out" 'd["error"]["code"]')" "missing bucket: S3ClientError"
MSG=$(json_get "$TMP/nobucket.out" 'd["error"]["message"]')
assert_contains "$MSG" "s3://no-such-bucket/out/test/test/nobucket/" "missing bucket: message names the URI"
assert_contains "$MSG" "NoSuchBucket" "missing bucket: message gives S3's error code"
[ ! -e "$S3_DIR/no-such-bucket" ] && ok "missing bucket: nothing created" || fail "missing bucket: something was created"

# --- a fault-injecting proxy in front of s3rver --------------------------------
cat >"$TMP/s3_proxy.py" <<'PY'
"""Forwards S3 requests to s3rver; one rule injects a fault.
--fail-match S --fail-status N: requests whose path contains S get HTTP N (S3 XML error).
--kill-match S --kill-pid P: the first request whose path contains S kills P (the S3
server) and is dropped without an answer; so is every request after it."""
import argparse, http.client, http.server, os, signal, sys
ap = argparse.ArgumentParser()
ap.add_argument("--upstream-port", type=int, required=True)
ap.add_argument("--port-file", required=True)
ap.add_argument("--fail-match"); ap.add_argument("--fail-status", type=int, default=503)
ap.add_argument("--kill-match"); ap.add_argument("--kill-pid", type=int)
a = ap.parse_args()
state = {"dead": False}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def handle_one(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if state["dead"] or (a.kill_match and a.kill_match in self.path and self.command == "PUT"):
            if not state["dead"] and a.kill_pid:
                os.kill(a.kill_pid, signal.SIGKILL)
            state["dead"] = True
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if a.fail_match and a.fail_match in self.path and self.command in ("PUT", "POST"):
            err = b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>Please reduce your request rate.</Message></Error>'
            self.send_response(a.fail_status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(err)))
            self.end_headers()
            self.wfile.write(err)
            return
        c = http.client.HTTPConnection("127.0.0.1", a.upstream_port, timeout=30)
        c.request(self.command, self.path, body=body if (body or self.command in ("PUT", "POST")) else None,
                  headers={k: v for k, v in self.headers.items() if k.lower() not in ("expect",)})
        r = c.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)) if self.command != "HEAD" else (r.getheader("Content-Length") or "0"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        c.close()
    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one
    def log_message(self, *args): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(a.port_file + ".tmp", "w").write(str(srv.server_address[1])); os.replace(a.port_file + ".tmp", a.port_file)
srv.serve_forever()
PY
PROXY_PID=
proxy_start() { # extra args...
  rm -f "$TMP/proxy.port"
  /usr/bin/python3 "$TMP/s3_proxy.py" --upstream-port "$S3_PORT" --port-file "$TMP/proxy.port" "$@" &
  PROXY_PID=$!
  local i
  for i in $(seq 1 100); do [ -s "$TMP/proxy.port" ] && break; sleep 0.05; done
  PROXY_PORT=$(cat "$TMP/proxy.port")
}
proxy_stop() { if [ -n "$PROXY_PID" ]; then kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null; PROXY_PID=; fi; }
at_exit proxy_stop

# --- 6. S3 answers 503 to the item.json upload: rollback ----------------------
proxy_start --fail-match item.json --fail-status 503
DV6=$(make_task "$TMP/t6.json" test/flaky s3://assets/out "$INPUTS")
AWS_S3_ENDPOINT=127.0.0.1:$PROXY_PORT run flaky "$TMP/t6.json"
proxy_stop
assert_eq 75 "$rc" "503 on item.json: exit 75 (retried)"
assert_eq S3ServerError "$(json_get "$TMP/flaky.out" 'd["error"]["code"]')" "503 on item.json: S3ServerError"
MSG=$(json_get "$TMP/flaky.out" 'd["error"]["message"]')
assert_contains "$MSG" "upload s3://assets/out/test/test/flaky/$DV6/item.json" "503 on item.json: message names the operation and URI"
assert_contains "$MSG" "HTTP 503" "503 on item.json: message gives the status"
assert_contains "$(cat "$TMP/flaky.err")" "rolled back" "503 on item.json: rollback logged"
assert_eq "" "$(s3_ls "assets/out/test/test/flaky/$DV6")" "503 on item.json: nothing left under the prefix (asset.tif removed)"

# --- 7. S3 dies mid-publication ---------------------------------------------------
disown "$S3_PID" 2>/dev/null # its death is the point: no job notice from bash
proxy_start --kill-match item.json --kill-pid "$S3_PID"
DV7=$(make_task "$TMP/t7.json" test/killed s3://assets/out "$INPUTS")
AWS_S3_ENDPOINT=127.0.0.1:$PROXY_PORT run killed "$TMP/t7.json"
proxy_stop
for i in $(seq 1 50); do kill -0 "$S3_PID" 2>/dev/null || break; sleep 0.1; done
assert_eq 75 "$rc" "S3 killed: exit 75"
assert_eq S3ServerError "$(json_get "$TMP/killed.out" 'd["error"]["code"]')" "S3 killed: S3ServerError"
MSG=$(json_get "$TMP/killed.out" 'd["error"]["message"]')
assert_contains "$MSG" "upload s3://assets/out/test/test/killed/$DV7/item.json" "S3 killed: message names the operation and URI"
assert_contains "$MSG" "no response" "S3 killed: message says nothing answered"
[ ! -e "$S3_DIR/assets/out/test/test/killed/$DV7/manifest.json._S3rver_object" ] &&
  ok "S3 killed: no manifest" || fail "S3 killed: a manifest exists"
# Restart the same store on the same port; the worker completes the prefix.
"$ROOT/node_modules/.bin/s3rver" -d "$S3_DIR" -a 127.0.0.1 -p "$S3_PORT" --silent --configure-bucket assets \
  >>"$TMP/s3rver.log" 2>&1 &
S3_PID=$!
for i in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && break; sleep 0.1; done
run killed2 "$TMP/t7.json"
assert_eq 0 "$rc" "after restart: exit 0"
assert_eq false "$(json_get "$TMP/killed2.out" 'd["cacheHit"]')" "after restart: the incomplete prefix is not a cache hit"
assert_eq "$SUM1" "$(json_get "$TMP/killed2.out" 'd["output"]["checksum"]')" "after restart: same bytes as any cog of this input"
assert_eq "asset.tif item.json manifest.json " "$(s3_ls "assets/out/test/test/killed/$DV7")" "after restart: complete"

# --- 8. scratch full ------------------------------------------------------------
TINY=$TMP/tiny-scratch
mkdir -p "$TINY"
if mount -t tmpfs -o size=64k tmpfs "$TINY" 2>/dev/null; then
  at_exit "umount '$TINY'"
  make_task "$TMP/t8.json" test/scratchfull s3://assets/out '[{"name":"src","uri":"'$SAMPLES'/L7_ETMs.tif"}]' >/dev/null
  TERRANE_SCRATCH_DIR=$TINY run scratch "$TMP/t8.json"
  assert_eq 75 "$rc" "scratch full: exit 75"
  assert_eq ScratchUnavailable "$(json_get "$TMP/scratch.out" 'd["error"]["code"]')" "scratch full: ScratchUnavailable"
  assert_eq "" "$(ls -A "$TINY")" "scratch full: scratch directory removed"
  assert_eq "" "$(s3_ls assets/out/test/test/scratchfull)" "scratch full: nothing published"
else
  echo "note: cannot mount a tmpfs here (not root?); scratch-full case not run"
fi

finish
