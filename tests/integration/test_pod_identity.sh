#!/usr/bin/env bash
# Integration: EKS Pod Identity credentials (worker/creds.c) against a local
# stand-in for the Pod Identity agent (tests/lib/creds_server.py) and s3rver.
# The worker gets no static keys: only AWS_CONTAINER_CREDENTIALS_FULL_URI and
# a token file (or inline token).
#
#  1. without any credentials the publication fails: S3 access really needs them
#  2. normal: credentials fetched once with the token, task published; no
#     secret in the logs
#  3. the served key id is the one used: an unknown key id is refused by S3
#  4. short-lived credentials during a run of several seconds: refreshed (the
#     endpoint sees >= 2 fetches) and the run succeeds
#  5. endpoint answering 500: retried, then exit 75 CredentialsUnavailable
#     naming the endpoint
#  6. wrong token: HTTP 401, a clear error, not retried
#  7. an endpoint outside the allowlist: refused before any request
#  8. rotation: an input opened with the previous key pair (S3 answers
#     InvalidAccessKeyId, as it does a pair caught mid-rotation) fails
#     Transient, exit 75, so the task is retried, and the retry, signing with
#     the current pair, succeeds
. "$(dirname "$0")/../lib/common.sh"

s3_start assets
# s3_start exports static keys for GDAL; this test is about running without them.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export TERRANE_ALLOW_LOCAL_PATHS=1
export AWS_EC2_METADATA_DISABLED=true CPL_AWS_AUTODETECT_EC2=NO # no instance-metadata probing

CREDS_PID=
creds_start() { # mode [extra creds_server args...]
  local mode=$1
  shift
  rm -f "$TMP/creds.port"
  : >"$TMP/creds.log"
  /usr/bin/python3 "$ROOT/tests/lib/creds_server.py" --mode "$mode" --token-file "${SERVER_TOKEN:-$TMP/token}" \
    --port-file "$TMP/creds.port" --log-file "$TMP/creds.log" "$@" &
  CREDS_PID=$!
  local i
  for i in $(seq 1 100); do [ -s "$TMP/creds.port" ] && break; sleep 0.05; done
  CREDS_URI=http://127.0.0.1:$(cat "$TMP/creds.port")/v1/credentials
}
creds_stop() { if [ -n "$CREDS_PID" ]; then kill "$CREDS_PID" 2>/dev/null; wait "$CREDS_PID" 2>/dev/null; CREDS_PID=; fi; }
at_exit creds_stop
fetches() { grep -c "^200 " "$TMP/creds.log"; }

printf 'eks-pod-identity-token-1\n' >"$TMP/token"

# task FILE KEY INPUT [PARAMS]
task() {
  local dv params=${4:-}
  [ -n "$params" ] || params='{}'
  dv=$(printf '%s|%s|%s' "$2" "$3" "$params" | sha256sum | cut -d' ' -f1)
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"pi","assetKey":"%s","dataVersion":"sha256:%s","operation":"cog","params":%s,"inputs":[{"name":"src","uri":"%s"}],"output":{"uri":"s3://assets/pi"},"attempt":1}\n' \
    "$2" "$dv" "$params" "$3" >"$1"
  echo "$dv"
}
run() { # name taskfile [env assignments for the worker...]
  local name=$1 file=$2
  shift 2
  env "$@" "$WORKER" run --task "$file" --termination-log "$TMP/$name.term" >"$TMP/$name.out" 2>"$TMP/$name.err"
  rc=$?
}

# --- 1. no credentials at all ---------------------------------------------------
task "$TMP/t1.json" pi/nocreds "$SAMPLES/elev.tif" >/dev/null
run nocreds "$TMP/t1.json"
assert_eq 70 "$rc" "no credentials: fails (exit 70)"
assert_eq S3ClientError "$(json_get "$TMP/nocreds.out" 'd["error"]["code"]')" "no credentials: S3ClientError"

# --- 2. normal ----------------------------------------------------------------------
creds_start normal
DV=$(task "$TMP/t2.json" pi/normal "$SAMPLES/elev.tif")
run normal "$TMP/t2.json" AWS_CONTAINER_CREDENTIALS_FULL_URI="$CREDS_URI" AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$TMP/token"
assert_eq 0 "$rc" "pod identity: published"
assert_eq Succeeded "$(json_get "$TMP/normal.out" 'd["status"]')" "pod identity: status"
[ -e "$S3_DIR/assets/pi/pi/pi/normal/$DV/manifest.json._S3rver_object" ] && ok "pod identity: manifest in S3" ||
  fail "pod identity: no manifest in S3"
assert_eq 1 "$(fetches)" "pod identity: one fetch for a short run"
assert_contains "$(cat "$TMP/normal.err")" "Pod Identity credentials obtained" "pod identity: logged"
if grep -q -e 'session-' -e 'eks-pod-identity-token' "$TMP/normal.err" "$TMP/normal.out"; then
  fail "pod identity: a secret appears in the output"
else
  ok "pod identity: no token or session token in logs or result"
fi
# the inline token works too
task "$TMP/t2b.json" pi/inline "$SAMPLES/elev.tif" >/dev/null
run inline "$TMP/t2b.json" AWS_CONTAINER_CREDENTIALS_FULL_URI="$CREDS_URI" \
  AWS_CONTAINER_AUTHORIZATION_TOKEN="$(cat "$TMP/token")"
assert_eq 0 "$rc" "pod identity: AWS_CONTAINER_AUTHORIZATION_TOKEN works too"
creds_stop

# --- 3. the served credentials are the ones used ------------------------------------
creds_start badkey
task "$TMP/t3.json" pi/badkey "$SAMPLES/elev.tif" >/dev/null
run badkey "$TMP/t3.json" AWS_CONTAINER_CREDENTIALS_FULL_URI="$CREDS_URI" AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$TMP/token"
assert_eq 70 "$rc" "unknown key id: refused by S3 (exit 70)"
assert_contains "$(json_get "$TMP/badkey.out" 'd["error"]["message"]')" "InvalidAccessKeyId" "unknown key id: S3's error code reported"
creds_stop

# --- 4. short-lived credentials are refreshed during a run ----------------------------
# A 3000 x 3000 Float32 raster compressed hard keeps the worker busy for seconds.
gdal_translate -q -outsize 3000 3000 -r bilinear -ot Float32 "$SAMPLES/elev.tif" "$TMP/big.tif" ||
  fail "could not make the large input"
creds_start short --lifetime 2
DV=$(task "$TMP/t4.json" pi/refresh "$TMP/big.tif" '{"compression":"DEFLATE","level":9,"predictor":3}')
run refresh "$TMP/t4.json" AWS_CONTAINER_CREDENTIALS_FULL_URI="$CREDS_URI" AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$TMP/token"
assert_eq 0 "$rc" "short-lived credentials: published"
n=$(fetches)
if [ "$n" -ge 2 ]; then ok "short-lived credentials: refreshed during the run ($n fetches)"; else fail "short-lived credentials: only $n fetch(es)"; fi
assert_contains "$(cat "$TMP/refresh.err")" "Pod Identity credentials refreshed" "short-lived credentials: refresh logged"
[ -e "$S3_DIR/assets/pi/pi/pi/refresh/$DV/manifest.json._S3rver_object" ] && ok "short-lived credentials: manifest in S3" ||
  fail "short-lived credentials: no manifest"
creds_stop

# --- 5. endpoint failing with 500 ------------------------------------------------------
creds_start error500
task "$TMP/t5.json" pi/e500 "$SAMPLES/elev.tif" >/dev/null
run e500 "$TMP/t5.json" AWS_CONTAINER_CREDENTIALS_FULL_URI="$CREDS_URI" AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$TMP/token"
assert_eq 75 "$rc" "endpoint 500: exit 75 (retried by the controller)"
assert_eq CredentialsUnavailable "$(json_get "$TMP/e500.out" 'd["error"]["code"]')" "endpoint 500: CredentialsUnavailable"
assert_eq Transient "$(json_get "$TMP/e500.out" 'd["error"]["class"]')" "endpoint 500: class Transient"
MSG=$(json_get "$TMP/e500.out" 'd["error"]["message"]')
assert_contains "$MSG" "$CREDS_URI" "endpoint 500: message names the endpoint"
assert_contains "$MSG" "HTTP 500" "endpoint 500: message gives the status"
assert_eq 4 "$(grep -c '^500 ' "$TMP/creds.log")" "endpoint 500: retried (4 attempts)"
creds_stop

# --- 6. wrong token ------------------------------------------------------------------------
printf 'the-right-token\n' >"$TMP/server-token"
SERVER_TOKEN=$TMP/server-token creds_start normal
task "$TMP/t6.json" pi/wrongtoken "$SAMPLES/elev.tif" >/dev/null
run wrongtoken "$TMP/t6.json" AWS_CONTAINER_CREDENTIALS_FULL_URI="$CREDS_URI" AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$TMP/token"
assert_eq 75 "$rc" "wrong token: exit 75"
assert_eq CredentialsUnavailable "$(json_get "$TMP/wrongtoken.out" 'd["error"]["code"]')" "wrong token: CredentialsUnavailable"
MSG=$(json_get "$TMP/wrongtoken.out" 'd["error"]["message"]')
assert_contains "$MSG" "HTTP 401" "wrong token: message gives the status"
assert_contains "$MSG" "refused the authorization token" "wrong token: message says what is wrong"
assert_contains "$MSG" "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" "wrong token: message names where the token came from"
assert_eq 1 "$(grep -c '^401 ' "$TMP/creds.log")" "wrong token: not retried"
creds_stop

# --- 7. endpoint outside the allowlist -------------------------------------------------------
task "$TMP/t7.json" pi/refused "$SAMPLES/elev.tif" >/dev/null
run refused "$TMP/t7.json" AWS_CONTAINER_CREDENTIALS_FULL_URI=http://203.0.113.9/creds AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$TMP/token"
assert_eq 70 "$rc" "endpoint not allowed: exit 70 (the pod's configuration)"
assert_eq CredentialsUnavailable "$(json_get "$TMP/refused.out" 'd["error"]["code"]')" "endpoint not allowed: CredentialsUnavailable"
assert_contains "$(json_get "$TMP/refused.out" 'd["error"]["message"]')" "203.0.113.9" "endpoint not allowed: message names it"

# --- 8. credentials rotated mid-run: the input open is retried ---------------------------
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER s3_put "$SAMPLES/elev.tif" s3://assets/pi-in/elev.tif
creds_start rotate
# The output is a local directory, so the input open is the first S3 request.
mkdir -p "$TMP/out8"
task "$TMP/t8.json" pi/rotate s3://assets/pi-in/elev.tif >/dev/null
sed -i "s|\"uri\":\"s3://assets/pi\"|\"uri\":\"$TMP/out8\"|" "$TMP/t8.json"
run rotate1 "$TMP/t8.json" AWS_CONTAINER_CREDENTIALS_FULL_URI="$CREDS_URI" AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$TMP/token"
assert_eq 75 "$rc" "previous key pair on input open: exit 75 (retried), not 65 (bad input)"
assert_eq Transient "$(json_get "$TMP/rotate1.out" 'd["error"]["class"]')" "previous key pair: class Transient"
assert_eq CredentialsUnavailable "$(json_get "$TMP/rotate1.out" 'd["error"]["code"]')" "previous key pair: CredentialsUnavailable"
assert_contains "$(json_get "$TMP/rotate1.out" 'd["error"]["message"]')" "InvalidAccessKeyId" "previous key pair: S3's error code reported"
run rotate2 "$TMP/t8.json" AWS_CONTAINER_CREDENTIALS_FULL_URI="$CREDS_URI" AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$TMP/token"
assert_eq 0 "$rc" "the retried attempt, with the rotated pair, publishes"
[ -n "$(find "$TMP/out8" -name manifest.json)" ] && ok "rotation: manifest written" || fail "rotation: no manifest"
assert_eq 2 "$(fetches)" "rotation: one credentials fetch per attempt"
creds_stop

finish
