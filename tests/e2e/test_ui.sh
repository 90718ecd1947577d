#!/usr/bin/env bash
# test_ui.sh - the lineage UI in a real browser (Debian's chromium, driven by
# playwright-core: tests/e2e/ui.mjs) against the demo's cluster: kubesim,
# s3rver with CORS on its buckets, the controller with --ui-addr, the
# example asset graphs.
#   - HTTP: the page and its bundle come from the binary, with a
#     Content-Security-Policy; writes are refused; the API holds no secret
#     of the worker environment; a cross-origin websocket upgrade is refused;
#   - browser: exactly the namespace's assets and edges; a click shows the
#     lineage and a non-blank map preview of the COG (pixels of a
#     screenshot); patching an upstream turns its dependents Stale, then
#     Succeeded, on the page without a reload; hostile strings in params,
#     annotations and messages render as text; a ZSTD COG's preview is drawn
#     (the bundle's own ZSTD decoder) and partition counts in its status a
#     progress bar; an AssetSource is a root of the graph with its data
#     version, counts and freshness, the asset reading it links to it, and
#     an observation on demand reaches the page live. Screenshots go to
#     $UI_SHOTS (default: the test's temporary directory).
. "$(dirname "$0")/lib.sh"

command -v /usr/bin/chromium >/dev/null || skip "chromium missing: run scripts/deps.sh"
[ -f "$ROOT/node_modules/playwright-core/package.json" ] || skip "playwright-core missing: run scripts/deps.sh"
SHOTS=${UI_SHOTS:-$TMP/shots}
mkdir -p "$SHOTS"

export S3_CORS=$E2E/testdata/s3-cors.xml
e2e_start
at_exit e2e_dump
for f in elev.tif lux.shp lux.shx lux.dbf lux.prj L7_ETMs.tif; do
  s3_put "$SAMPLES/$f" "s3://raw/lux/$f" || { fail "uploading $f"; finish; }
done
S3_URL=http://127.0.0.1:$S3_PORT

ctl_start ui --ui-addr 127.0.0.1:0 --ui-s3-endpoint "$S3_URL"
ui_port() { grep -o '"msg":"serving the lineage UI".*"port":[0-9]*' "$TMP/ui.log" | grep -o '[0-9]*$' | head -n 1; }
ui_up() { [ -n "$(ui_port)" ] && curl -sf "http://127.0.0.1:$(ui_port)/api/v1/config" >/dev/null; }
wait_until 30 "the controller serves the UI" ui_up || finish
UI=http://127.0.0.1:$(ui_port)
echo "UI at $UI/ui/"

# --- HTTP -----------------------------------------------------------------------------------------------
hdrs=$(curl -sS -D - -o "$TMP/index.html" "$UI/ui/")
assert_contains "$hdrs" "HTTP/1.1 200" "GET /ui/ is 200"
csp=$(echo "$hdrs" | grep -i '^content-security-policy:' | tr -d '\r')
assert_contains "$csp" "script-src 'self'" "the page has a Content-Security-Policy limiting scripts to its origin"
assert_contains "$csp" "connect-src 'self' $S3_URL" "connections go to the origin and the S3 endpoint only"
assert_contains "$(echo "$hdrs" | tr -d '\r')" "x-content-type-options: nosniff" "nosniff"
assert_contains "$(cat "$TMP/index.html")" '<script src="app.js"></script>' "the page loads its bundle from the origin"
js=$(curl -sf -o /dev/null -w '%{http_code} %{size_download} %{content_type}' "$UI/ui/app.js")
assert_contains "$js" "200 " "the bundle is served from the binary"
assert_contains "$js" "text/javascript" "as JavaScript"
assert_eq 405 "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data '{}' "$UI/api/v1/assets")" "POST is refused (read-only)"
assert_eq 405 "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$UI/api/v1/namespaces/hydro/assets/dem-cog")" "DELETE is refused"
assert_eq 404 "$(curl -s -o /dev/null -w '%{http_code}' "$UI/api/v1/namespaces/hydro/assets/nothing-here")" "an unknown asset is 404"
st=$(curl -s -o /dev/null -w '%{http_code}' "$UI/api/v1/namespaces/hydro/assets/..%2F..%2Fetc%2Fpasswd")
case $st in 400|404) ok "a malformed name is refused ($st)" ;; *) fail "a malformed name answered $st" ;; esac

# the websocket: same origin accepted, any other refused
ws_status() { # origin
  $PY - "$(ui_port)" "$1" <<'PY'
import base64, os, socket, sys
port, origin = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
key = base64.b64encode(os.urandom(16)).decode()
req = ("GET /api/v1/watch HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: terrane-ui.v1\r\n"
       "Origin: %s\r\n\r\n") % (port, key, origin)
s.sendall(req.encode())
data = b""
try:
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
line = data.split(b"\r\n", 1)[0].decode(errors="replace")
print(line.split(" ")[1] if line.startswith("HTTP/") else "closed")
PY
}
assert_eq 101 "$(ws_status "http://127.0.0.1:$(ui_port)")" "a websocket from the UI's own origin is accepted"
st=$(ws_status "http://evil.example")
if [ "$st" != 101 ]; then ok "a cross-origin websocket upgrade is refused ($st)"; else fail "a cross-origin websocket upgrade was accepted"; fi
st=$(ws_status "null")
if [ "$st" != 101 ]; then ok "a websocket with Origin: null is refused ($st)"; else fail "Origin: null was accepted"; fi

# --- the example graphs -------------------------------------------------------------------------------
k apply -f "$ROOT/crds/examples/lux-terrain-catchments.yaml" -f "$ROOT/crds/examples/landsat-ndvi.yaml" \
  -f "$ROOT/crds/examples/gpu-pool.yaml" >/dev/null || { fail "kubectl apply the examples"; finish; }
wait_until 240 "all 8 example assets Succeeded" \
  sh -c "[ \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get am -o jsonpath='{range .items[*]}{.status.phase}{\"\\n\"}{end}' | grep -c Succeeded)\" = 8 ]"

# no secret of the worker's environment in any document
docs=$(curl -sf "$UI/api/v1/assets"; for n in $(k get am -o 'jsonpath={.items[*].metadata.name}'); do curl -sf "$UI/api/v1/namespaces/$NS/assets/$n"; done)
assert_eq 0 "$(echo "$docs" | grep -c 'S3RVER\|AWS_SECRET\|TERRANE_TASK')" "no credential, worker environment or task in any API document"
assert_contains "$(curl -sf "$UI/api/v1/namespaces/$NS/assets/dem-slope")" '"downstream":["slope-by-canton"]' "the detail of dem-slope names its downstream"

# --- the browser ------------------------------------------------------------------------------------------
k get am -o json >"$TMP/expected.json"
UI_URL=$UI NS=$NS KUBECONFIG=$KUBECONFIG SHOTS=$SHOTS EXPECTED=$TMP/expected.json \
  node "$E2E/ui.mjs" demo 2>&1 | tee "$TMP/browser.txt"
rc=${PIPESTATUS[0]}
assert_eq 0 "$rc" "the browser checks pass (tests/e2e/ui.mjs demo)"
fails=$((fails + $(grep -c '^FAIL' "$TMP/browser.txt")))

# --- a ZSTD COG's preview (the bundle decodes ZSTD tiles itself) ------------------------------------------
k apply -f - >/dev/null <<EOF2 || fail "kubectl apply dem-zstd"
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: dem-zstd, namespace: $NS}
spec:
  assetKey: lux/dem_zstd
  operation: cog
  params: {compression: ZSTD, predictor: 2, blockSize: 256}
  inputs: [{name: dem, from: dem-cog}]
  output: {uri: s3://assets}
EOF2
wait_until 120 "dem-zstd Succeeded" sh -c "[ \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get am dem-zstd -o jsonpath='{.status.phase}')\" = Succeeded ]"
UI_URL=$UI NS=$NS KUBECONFIG=$KUBECONFIG SHOTS=$SHOTS TARGET=$NS/dem-zstd \
  node "$E2E/ui.mjs" zstd 2>&1 | tee "$TMP/browser-zstd.txt"
assert_eq 0 "${PIPESTATUS[0]}" "the browser checks pass (tests/e2e/ui.mjs zstd)"

# --- an AssetSource as a lineage root ----------------------------------------------------------------------
k apply -f - >/dev/null <<EOF2 || fail "kubectl apply raw-elev and elev-from-src"
apiVersion: terrane.io/v1alpha1
kind: AssetSource
metadata: {name: raw-elev, namespace: $NS}
spec:
  assetKey: lux/raw_elev
  uri: s3://raw/lux/elev.tif
  listing: {uri: s3://assets/sources}
  freshness: {maxLagSeconds: 86400}
---
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata: {name: elev-from-src, namespace: $NS}
spec:
  assetKey: lux/elev_from_src
  operation: cog
  inputs: [{name: dem, from: raw-elev}]
  output: {uri: s3://assets}
EOF2
wait_until 120 "elev-from-src Succeeded" sh -c "[ \"\$(kubectl --kubeconfig $KUBECONFIG -n $NS get am elev-from-src -o jsonpath='{.status.phase}')\" = Succeeded ]"
doc=$(curl -sf "$UI/api/v1/namespaces/$NS/sources/raw-elev")
assert_contains "$doc" '"kind":"AssetSource"' "GET .../sources/raw-elev is the source's detail"
assert_contains "$doc" '"objectCount":1' "with its object count"
assert_contains "$doc" '"downstream":["elev-from-src"]' "and the asset reading it"
assert_eq 0 "$(echo "$doc" | grep -c 'S3RVER\|AWS_SECRET\|TERRANE_TASK')" "no credential or worker environment in the source's document"
assert_contains "$(curl -sf "$UI/api/v1/namespaces/$NS/assets/elev-from-src")" '"upstreamSources":["raw-elev"]' "the reader names its upstream source"
assert_contains "$(curl -sf "$UI/api/v1/assets?namespace=$NS")" '"kind":"AssetSource","namespace":"'"$NS"'","name":"raw-elev"' "the list holds the source"
assert_eq 404 "$(curl -s -o /dev/null -w '%{http_code}' "$UI/api/v1/namespaces/$NS/sources/dem-cog")" "an asset is not a source (404)"
UI_URL=$UI NS=$NS KUBECONFIG=$KUBECONFIG SHOTS=$SHOTS SOURCE=raw-elev TARGET=elev-from-src \
  node "$E2E/ui.mjs" sources 2>&1 | tee "$TMP/browser-sources.txt"
assert_eq 0 "${PIPESTATUS[0]}" "the browser checks pass (tests/e2e/ui.mjs sources)"
ls -la "$SHOTS"
finish
