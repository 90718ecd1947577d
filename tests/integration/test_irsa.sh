#!/usr/bin/env bash
# Integration: IRSA credentials (worker/creds.c, worker/sts.c) against a local
# stand-in for STS AssumeRoleWithWebIdentity (tests/lib/sts_server.py) and
# s3rver behind a recording proxy (tests/lib/s3fault.py --record). The worker
# gets no static keys: only AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and
# AWS_ENDPOINT_URL_STS pointing at the stand-in.
#
#  1. normal: one STS call carrying the token from the file and the role ARN;
#     the task is published; every S3 request (GDAL's /vsis3/) is signed with
#     the returned key id and carries the returned session token; no secret
#     in the logs
#  2. the worker's own signed requests (`terrane-worker observe`, s3req.c)
#     use the same credentials
#  3. short-lived credentials during a run of several seconds: refreshed,
#     and the token file is read again for the refresh (rotated on disk
#     mid-run: the stand-in sees the new token)
#  4. the returned key id is the one used: an unknown one is refused by S3
#  5. a token STS refuses: HTTP 400 InvalidIdentityToken, STS's Code and
#     Message in the error, exit 75, not retried; a role it refuses:
#     AccessDenied
#  6. throttling twice, then credentials: retried, published
#  7. STS failing with 500: retried 4 times, exit 75, InternalFailure named
#  8. an http:// STS endpoint off loopback: refused before any request
#  9. the chain: static keys win over IRSA (no STS call); IRSA wins over Pod
#     Identity (its endpoint, closed here, is never asked)
. "$(dirname "$0")/../lib/common.sh"

s3_start assets
# s3_start exports static keys for GDAL; this test is about running without them.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export TERRANE_ALLOW_LOCAL_PATHS=1
export AWS_EC2_METADATA_DISABLED=true CPL_AWS_AUTODETECT_EC2=NO # no instance-metadata probing
ROLE=arn:aws:iam::123456789012:role/terrane-worker

# The recording proxy in front of s3rver.
/usr/bin/python3 "$ROOT/tests/lib/s3fault.py" --upstream "127.0.0.1:$S3_PORT" --ready-file "$TMP/proxy.port" \
  --record "$TMP/s3.log" 2>"$TMP/proxy.err" &
PROXY_PID=$!
# proxy_rules JSON: replaces the proxy's rules (tests/lib/s3fault.py)
proxy_rules() { curl -sf -X PUT --data "$1" "http://127.0.0.1:$(cat "$TMP/proxy.port")/__faults" >/dev/null || fail "cannot set the proxy's rules $1"; }
at_exit 'kill $PROXY_PID 2>/dev/null; wait $PROXY_PID 2>/dev/null'
for i in $(seq 100); do [ -s "$TMP/proxy.port" ] && break; sleep 0.05; done
[ -s "$TMP/proxy.port" ] || fail "the recording proxy did not start"
export AWS_S3_ENDPOINT=127.0.0.1:$(cat "$TMP/proxy.port")

STS_PID=
sts_start() { # mode [extra sts_server args...]
  local mode=$1
  shift
  rm -f "$TMP/sts.port"
  : >"$TMP/sts.log"
  /usr/bin/python3 "$ROOT/tests/lib/sts_server.py" --mode "$mode" --token-file "${SERVER_TOKEN:-$TMP/token}" \
    --role-arn "$ROLE" --port-file "$TMP/sts.port" --log-file "$TMP/sts.log" "$@" &
  STS_PID=$!
  local i
  for i in $(seq 1 100); do [ -s "$TMP/sts.port" ] && break; sleep 0.05; done
  [ -s "$TMP/sts.port" ] || fail "the STS stand-in did not start"
  STS_URI=http://127.0.0.1:$(cat "$TMP/sts.port")/
}
sts_stop() { if [ -n "$STS_PID" ]; then kill "$STS_PID" 2>/dev/null; wait "$STS_PID" 2>/dev/null; STS_PID=; fi; }
at_exit sts_stop
calls() { grep -c "^$1 " "$TMP/sts.log"; }

printf 'eyJhbGciOiJSUzI1NiJ9.irsa-web-identity-token-1.sig\n' >"$TMP/token"

# task FILE KEY INPUT [PARAMS]: a cog task publishing to s3://assets/irsa;
# prints the hex of its data version.
task() {
  local params=${4:-'{}'}
  task_json cog "$params" "[{\"name\":\"src\",\"uri\":\"$3\"}]" s3://assets/irsa "$2" >"$1"
  json_get "$1" 'd["dataVersion"][len("sha256:"):]'
}
IRSA_ENV=()
irsa_env() { IRSA_ENV=(AWS_ROLE_ARN="$ROLE" AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/token" AWS_ENDPOINT_URL_STS="$STS_URI"); }
run() { # name taskfile [env assignments for the worker...]
  local name=$1 file=$2
  shift 2
  env "$@" "$WORKER" run --task "$file" --termination-log "$TMP/$name.term" >"$TMP/$name.out" 2>"$TMP/$name.err"
  rc=$?
}

# --- 1. normal ----------------------------------------------------------------------
sts_start normal
irsa_env
: >"$TMP/s3.log"
DV=$(task "$TMP/t1.json" irsa/normal "$SAMPLES/elev.tif")
run normal "$TMP/t1.json" "${IRSA_ENV[@]}"
assert_eq 0 "$rc" "irsa: published"
[ "$rc" = 0 ] || cat "$TMP/normal.out" "$TMP/normal.err" >&2
assert_eq Succeeded "$(json_get "$TMP/normal.out" 'd["status"]')" "irsa: status"
[ -e "$S3_DIR/assets/irsa/test/irsa/normal/$DV/manifest.json._S3rver_object" ] && ok "irsa: manifest in S3" ||
  fail "irsa: no manifest in S3"
assert_eq 1 "$(calls 200)" "irsa: one STS call for a short run"
assert_eq 1 "$(grep -c "^200 token=eyJhbGciOiJSUzI1NiJ9.irsa-web-identity-token-1.sig session=terrane-worker-" "$TMP/sts.log")" \
  "irsa: STS got the token from the file and a terrane-worker session name"
ISSUED=$(sed -n 's/^200 .* issued=//p' "$TMP/sts.log")
n_req=$(grep -c . "$TMP/s3.log")
n_ok=$(grep -c " key=S3RVER token=$ISSUED\$" "$TMP/s3.log")
if [ "$n_req" -ge 3 ] && [ "$n_ok" = "$n_req" ]; then
  ok "irsa: all $n_req S3 requests signed with the returned key id and session token"
else
  fail "irsa: $n_ok of $n_req S3 requests used the returned credentials: $(head -3 "$TMP/s3.log")"
fi
grep -q '^PUT .*manifest.json' "$TMP/s3.log" && ok "irsa: the manifest PUT went through the proxy" ||
  fail "irsa: no manifest PUT recorded"
assert_contains "$(cat "$TMP/normal.err")" "IRSA credentials obtained" "irsa: logged"
assert_contains "$(cat "$TMP/normal.err")" "$ROLE" "irsa: the log names the role"
if grep -q -e 'irsa-session-' -e 'irsa-web-identity-token' "$TMP/normal.err" "$TMP/normal.out"; then
  fail "irsa: a secret appears in the output"
else
  ok "irsa: no web identity token or session token in logs or result"
fi

# --- 2. the worker's own signed requests -----------------------------------------------
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER s3_put "$SAMPLES/elev.tif" s3://assets/irsa-in/elev.tif
: >"$TMP/sts.log"
: >"$TMP/s3.log"
printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"irsa","name":"src","assetKey":"src/irsa","dataVersion":"sha256:%s","operation":"observe","inputs":[{"name":"source","uri":"s3://assets/irsa-in/elev.tif"}],"output":{"uri":"s3://assets/sources"}}\n' \
  "$(printf obs | sha256sum | cut -d' ' -f1)" >"$TMP/obs.json"
env "${IRSA_ENV[@]}" "$WORKER" observe --task "$TMP/obs.json" --termination-log "$TMP/obs.term" >"$TMP/obs.out" 2>"$TMP/obs.err"
rc=$?
assert_eq 0 "$rc" "observe with irsa: exit 0"
[ "$rc" = 0 ] || cat "$TMP/obs.out" "$TMP/obs.err" >&2
ISSUED=$(sed -n 's/^200 .* issued=//p' "$TMP/sts.log")
[ -n "$ISSUED" ] && grep -q "^HEAD /assets/irsa-in/elev.tif key=S3RVER token=$ISSUED\$" "$TMP/s3.log" &&
  ok "observe with irsa: its own HEAD signed with the returned credentials" ||
  fail "observe with irsa: no HEAD with the returned credentials: $(head -3 "$TMP/s3.log")"
sts_stop

# --- 3. short-lived credentials, refreshed with the token read again ---------------------
# A 1500 x 1500 Float32 raster compressed hard keeps the worker busy for seconds.
gdal_translate -q -outsize 1500 1500 -r bilinear -ot Float32 "$SAMPLES/elev.tif" "$TMP/big.tif" ||
  fail "could not make the large input"
sts_start short --lifetime 2
irsa_env
# and every PUT is slowed, so that the run outlasts the credentials' first
# second however fast the machine (refreshed at half their life)
proxy_rules '[{"method": "PUT", "delaySeconds": 0.6}]'
DV=$(task "$TMP/t3.json" irsa/refresh "$TMP/big.tif" '{"compression":"DEFLATE","level":9,"predictor":3}')
env "${IRSA_ENV[@]}" "$WORKER" run --task "$TMP/t3.json" --termination-log "$TMP/refresh.term" >"$TMP/refresh.out" 2>"$TMP/refresh.err" &
WPID=$!
# As soon as the first credentials are out, the kubelet "rotates" the token.
for i in $(seq 1 200); do [ "$(calls 200)" -ge 1 ] && break; sleep 0.05; done
printf 'eyJhbGciOiJSUzI1NiJ9.irsa-web-identity-token-2.sig\n' >"$TMP/token.new" && mv "$TMP/token.new" "$TMP/token"
wait $WPID
rc=$?
assert_eq 0 "$rc" "short-lived credentials: published"
n=$(calls 200)
if [ "$n" -ge 2 ]; then ok "short-lived credentials: refreshed during the run ($n STS calls)"; else fail "short-lived credentials: only $n STS call(s)"; fi
grep -q '^200 token=eyJhbGciOiJSUzI1NiJ9.irsa-web-identity-token-2.sig ' "$TMP/sts.log" &&
  ok "short-lived credentials: the refresh read the rotated token file" ||
  fail "short-lived credentials: the rotated token never reached STS: $(cat "$TMP/sts.log")"
assert_eq 0 "$(calls 400)" "short-lived credentials: no call with a stale token"
assert_contains "$(cat "$TMP/refresh.err")" "IRSA credentials refreshed" "short-lived credentials: refresh logged"
proxy_rules '[]'
[ -e "$S3_DIR/assets/irsa/test/irsa/refresh/$DV/manifest.json._S3rver_object" ] && ok "short-lived credentials: manifest in S3" ||
  fail "short-lived credentials: no manifest"
sts_stop

# --- 4. the returned key id is the one used ------------------------------------------------
sts_start badkey
irsa_env
task "$TMP/t4.json" irsa/badkey "$SAMPLES/elev.tif" >/dev/null
run badkey "$TMP/t4.json" "${IRSA_ENV[@]}"
assert_eq 70 "$rc" "unknown key id: refused by S3 (exit 70)"
assert_contains "$(json_get "$TMP/badkey.out" 'd["error"]["message"]')" "InvalidAccessKeyId" "unknown key id: S3's error code reported"
sts_stop

# --- 5. a token or a role STS refuses --------------------------------------------------------
printf 'the-right-token\n' >"$TMP/server-token"
SERVER_TOKEN=$TMP/server-token sts_start normal
irsa_env
task "$TMP/t5.json" irsa/wrongtoken "$SAMPLES/elev.tif" >/dev/null
run wrongtoken "$TMP/t5.json" "${IRSA_ENV[@]}"
assert_eq 75 "$rc" "refused token: exit 75"
assert_eq CredentialsUnavailable "$(json_get "$TMP/wrongtoken.out" 'd["error"]["code"]')" "refused token: CredentialsUnavailable"
MSG=$(json_get "$TMP/wrongtoken.out" 'd["error"]["message"]')
assert_contains "$MSG" "IRSA credentials unavailable" "refused token: says which source"
assert_contains "$MSG" "STS error InvalidIdentityToken: Couldn't retrieve verification key" "refused token: STS's Code and Message"
assert_contains "$MSG" "HTTP 400" "refused token: the status"
assert_contains "$MSG" "$ROLE" "refused token: the role"
assert_contains "$MSG" "AWS_WEB_IDENTITY_TOKEN_FILE=$TMP/token" "refused token: where the token came from"
assert_eq 1 "$(calls 400)" "refused token: not retried"
sts_stop
sts_start normal
irsa_env
run wrongrole "$TMP/t5.json" "${IRSA_ENV[@]}" AWS_ROLE_ARN=arn:aws:iam::123456789012:role/other
assert_eq 75 "$rc" "refused role: exit 75"
assert_contains "$(json_get "$TMP/wrongrole.out" 'd["error"]["message"]')" "STS error AccessDenied: Not authorized" "refused role: STS's Code and Message"
sts_stop

# --- 6. throttled, then fine ---------------------------------------------------------------
sts_start throttle
irsa_env
task "$TMP/t6.json" irsa/throttle "$SAMPLES/elev.tif" >/dev/null
run throttle "$TMP/t6.json" "${IRSA_ENV[@]}"
assert_eq 0 "$rc" "throttled twice: published"
assert_eq 2 "$(calls 400)" "throttled twice: two throttled calls"
assert_eq 1 "$(calls 200)" "throttled twice: then credentials"
assert_contains "$(cat "$TMP/throttle.err")" "Throttling" "throttled twice: the retry logged with STS's code"
sts_stop

# --- 7. STS failing ------------------------------------------------------------------------
sts_start error500
irsa_env
run e500 "$TMP/t6.json" "${IRSA_ENV[@]}"
assert_eq 75 "$rc" "STS 500: exit 75"
assert_eq Transient "$(json_get "$TMP/e500.out" 'd["error"]["class"]')" "STS 500: class Transient"
MSG=$(json_get "$TMP/e500.out" 'd["error"]["message"]')
assert_contains "$MSG" "after 4 attempts" "STS 500: retried"
assert_contains "$MSG" "InternalFailure" "STS 500: STS's code"
assert_contains "$MSG" "$STS_URI" "STS 500: the endpoint"
assert_eq 4 "$(calls 500)" "STS 500: 4 calls"
sts_stop

# --- 8. an endpoint outside the allowlist ---------------------------------------------------
run refused "$TMP/t6.json" AWS_ROLE_ARN="$ROLE" AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/token" AWS_ENDPOINT_URL_STS=http://203.0.113.9/
assert_eq 70 "$rc" "http STS endpoint off loopback: exit 70 (the pod's configuration)"
assert_contains "$(json_get "$TMP/refused.out" 'd["error"]["message"]')" "AWS_ENDPOINT_URL_STS=http://203.0.113.9/ is not allowed" "http STS endpoint off loopback: named"

# --- 9. the chain's order -------------------------------------------------------------------
sts_start normal
irsa_env
task "$TMP/t9.json" irsa/static "$SAMPLES/elev.tif" >/dev/null
run static "$TMP/t9.json" "${IRSA_ENV[@]}" AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
assert_eq 0 "$rc" "static keys and irsa: published"
assert_eq 0 "$(grep -c . "$TMP/sts.log")" "static keys and irsa: STS never called"
CLOSED=$(free_port)
task "$TMP/t9b.json" irsa/overpod "$SAMPLES/elev.tif" >/dev/null
run overpod "$TMP/t9b.json" "${IRSA_ENV[@]}" AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$CLOSED/v1/credentials" \
  AWS_CONTAINER_AUTHORIZATION_TOKEN=unused
assert_eq 0 "$rc" "irsa and pod identity: published"
assert_eq 1 "$(calls 200)" "irsa and pod identity: IRSA used"
assert_contains "$(cat "$TMP/overpod.err")" "IRSA (AWS_ROLE_ARN) takes precedence over Pod Identity" "irsa and pod identity: logged"
sts_stop

finish
