#!/usr/bin/env bash
# Integration: a container asset's three steps against a real S3 server
# (s3rver), run in order as its pod runs them (proto/README.md, "Container
# assets"): terrane-worker fetch, the user's code, terrane-worker
# publish-outputs. The user's code is the example's (examples/ml), run with
# Debian's python3 (numpy, scikit-learn).
#
#  1. upstreams: dem-cog, dem-slope and flood-labels published by `run`
#  2. training: fetch puts each input at /inputs/<name>/<file>, verified
#     against the checksum its upstream recorded; flood_model.py train writes
#     model.pkl, metrics.json, metadata.json; publish-outputs publishes them
#     content-addressed (checksums are the stored bytes'), one STAC Item with
#     the files as assets and their media types, metadata.json in the Item's
#     properties and in the result, the manifest last, the result ≤ 4096 bytes
#  3. prediction: the model from 2 in, risk.tif out: a valid COG on S3 with its
#     projection in the Item, lineage links to the upstream Items
#  4. an upstream object overwritten after publication: fetch fails with
#     ChecksumMismatch (exit 65) naming inputs[i].checksum, nothing left under
#     /inputs/<name>/, and the user's code never runs
#  5. empty outputs: NoOutputs, exit 65, nothing published; only metadata.json:
#     the same; a symbolic link in outputs is refused
#  6. metadata.json over the result's cap (in the Item, metadataTruncated) and
#     over 64 KiB (published as a file, not merged, said so)
#  7. 10,000 small files (local output): one manifest listing all of them,
#     peak RSS reported (and bounded) next to 1,000 files'
. "$(dirname "$0")/../lib/common.sh"

PY=/usr/bin/python3 # Debian's: python3-gdal, python3-numpy, python3-sklearn
$PY -c 'import sklearn' 2>/dev/null || skip "python3-sklearn missing: run scripts/deps.sh"
ML=$ROOT/examples/ml/flood_model.py
s3_start raw assets
export TERRANE_ALLOW_LOCAL_PATHS=1
export GDAL_HTTP_MAX_RETRY=1 GDAL_HTTP_RETRY_DELAY=0.1

# run_op NAME TASK_JSON: `terrane-worker run`; result in $TMP/NAME.out.
run_op() {
  printf '%s\n' "$2" >"$TMP/$1.task"
  "$WORKER" run --task "$TMP/$1.task" --termination-log "$TMP/$1.term" >"$TMP/$1.out" 2>"$TMP/$1.err"
  rc=$?
}
# upstream NAME: an input object for a task, from the result of run_op NAME.
upstream() {
  $PY - "$TMP/$1.out" "$TMP/$1.task" "$2" <<'PY'
import json, sys
r, t, name = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
o = r["output"]
print(json.dumps({"name": name, "uri": o["uri"], "assetKey": t["assetKey"],
                  "dataVersion": t["dataVersion"], "stacItem": o["stacItem"],
                  "checksum": o["checksum"]}))
PY
}
# container_task KEY PARAMS INPUTS [OUTPUT]: a container task document.
container_task() { task_json container "$2" "$3" "${4:-s3://assets/out}" "$1"; }
# pod NAME TASK [user code...]: the pod's three steps in order, each only
# after the one before succeeded, with emptyDirs $TMP/NAME/{inputs,outputs}.
# Exit codes in fetch_rc, user_rc, publish_rc (empty when not run).
pod() {
  local name=$1 task=$2 d=$TMP/$1
  shift 2
  mkdir -p "$d/inputs" "$d/outputs"
  printf '%s\n' "$task" >"$d/task.json"
  fetch_rc= user_rc= publish_rc=
  TERRANE_INPUTS_DIR=$d/inputs "$WORKER" fetch --task "$d/task.json" \
    --termination-log "$d/fetch.term" >"$d/fetch.out" 2>"$d/fetch.err"
  fetch_rc=$?
  [ "$fetch_rc" = 0 ] || return 0
  if [ $# -gt 0 ]; then
    # The user's environment: no task, no credentials, TERRANE_INPUT_<NAME>.
    local envs=() n f
    for f in "$d"/inputs/*/*; do
      n=$(basename "$(dirname "$f")")
      envs+=("TERRANE_INPUT_${n^^}=$f")
    done
    env -i PATH=/usr/bin:/bin HOME="$d" "${envs[@]}" TERRANE_OUTPUT_DIR="$d/outputs" \
      TERRANE_ASSET_KEY=x TERRANE_DATA_VERSION=x "$@" >"$d/user.out" 2>"$d/user.err"
    user_rc=$?
    [ "$user_rc" = 0 ] || return 0
  fi
  TERRANE_OUTPUT_DIR=$d/outputs "$WORKER" publish-outputs --task "$d/task.json" \
    --termination-log "$d/publish.term" >"$d/publish.out" 2>"$d/publish.err"
  publish_rc=$?
}
s3_ls() { find "$S3_DIR/$1" -name '*._S3rver_object' 2>/dev/null | sed "s#^$S3_DIR/$1/##; s#._S3rver_object\$##" | sort | tr '\n' ' '; }
s3_sum() { s3_get "$1" "$TMP/sum.bin" && echo "1220$(sha256sum "$TMP/sum.bin" | cut -d' ' -f1)"; }

# --- 1. upstreams ------------------------------------------------------------------
s3_put "$SAMPLES/elev.tif" s3://raw/lux/elev.tif
run_op dem "$(task_json cog '{}' '[{"name":"dem","uri":"s3://raw/lux/elev.tif"}]' s3://assets/out test/dem_cog)"
assert_eq 0 "$rc" "upstream dem-cog published"
run_op slope "$(task_json terrain '{"mode":"slope","scale":111120}' "[$(upstream dem dem)]" s3://assets/out test/dem_slope)"
assert_eq 0 "$rc" "upstream dem-slope published"
run_op labels "$(task_json calc '{"expression":"where(dem < 300 && slope < 4, 1, 0)","outputType":"Byte"}' "[$(upstream dem dem),$(upstream slope slope)]" s3://assets/out test/flood_labels)"
assert_eq 0 "$rc" "upstream flood-labels published"

# --- 2. training -------------------------------------------------------------------
TRAIN=$(container_task test/flood_model '{"image":"terrane-ml-example:0.1.0","args":["train"],"primaryOutput":"model.pkl"}' \
  "[$(upstream dem dem),$(upstream slope slope),$(upstream labels labels)]")
pod train "$TRAIN" $PY "$ML" train
assert_eq "0 0 0" "$fetch_rc $user_rc $publish_rc" "training pod: fetch, user code and publish-outputs succeed"
assert_eq "asset.tif" "$(ls "$TMP/train/inputs/dem")" "fetch: the input lands at /inputs/<name>/<the URI's file name>"
assert_eq "$(json_get "$TMP/dem.out" 'd["output"]["checksum"]')" "1220$(sha256sum "$TMP/train/inputs/dem/asset.tif" | cut -d' ' -f1)" \
  "fetch: the local copy has the upstream's recorded checksum"
assert_contains "$(cat "$TMP/train/fetch.err")" "input fetched and verified" "fetch: logs each verified input"
R=$TMP/train/publish.out
assert_eq Succeeded "$(json_get "$R" 'd["status"]')" "publish-outputs: Succeeded"
DVT=$(json_get "$TMP/train/task.json" 'd["dataVersion"][7:]')
PFX=s3://assets/out/test/test/flood_model/$DVT
assert_eq "$PFX/model.pkl" "$(json_get "$R" 'd["output"]["uri"]')" "result: primaryOutput is the output URI"
assert_eq "item.json manifest.json metadata.json metrics.json model.pkl " "$(s3_ls "assets/out/test/test/flood_model/$DVT")" \
  "published: every file, item.json and manifest.json under the data version"
assert_eq "$(json_get "$R" 'd["output"]["checksum"]')" "$(s3_sum "$PFX/model.pkl")" "the result's checksum is that of the stored model"
assert_eq 3 "$(json_get "$R" 'd["output"]["files"]')" "result: 3 files"
assert_eq RandomForestClassifier "$(json_get "$R" 'd["output"]["metadata"]["ml:model"]')" "result: metadata.json (capped) in the result"
[ "$(wc -c <"$TMP/train/publish.term")" -le 4096 ] && ok "termination message ≤ 4096 bytes" || fail "termination message over 4096 bytes"
$PY -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' "$R" "$TMP/train/publish.term" &&
  ok "termination message is the printed result" || fail "termination message differs from stdout"
s3_get "$PFX/item.json" "$TMP/train-item.json"
assert_eq "application/octet-stream|application/json|application/json" \
  "$(json_get "$TMP/train-item.json" '"|".join(d["assets"][k]["type"] for k in ("model.pkl","metrics.json","metadata.json"))')" \
  "Item: model and metrics are assets with their media types"
assert_eq "metadata" "$(json_get "$TMP/train-item.json" 'd["assets"]["metadata.json"]["roles"][0]')" "Item: metadata.json has role metadata"
assert_eq "true" "$(json_get "$TMP/train-item.json" '0 < d["properties"]["ml:metrics"]["rocAuc"] <= 1')" "Item: metadata.json merged into properties (ml:metrics)"
assert_eq "$(s3_sum "$PFX/metrics.json")" "$(json_get "$TMP/train-item.json" 'd["assets"]["metrics.json"]["file:checksum"]')" "Item: file:checksum of metrics.json is the stored bytes'"
assert_eq 3 "$(json_get "$TMP/train-item.json" 'sum(l["rel"]=="derived_from" for l in d["links"])')" "Item: a derived_from link per input"
s3_get "$PFX/manifest.json" "$TMP/train-manifest.json"
assert_eq "model.pkl metadata.json metrics.json 3" "$(json_get "$TMP/train-manifest.json" '" ".join(f["name"] for f in d["files"]) + " " + str(d["fileCount"])')" \
  "manifest: every file, the primary first"
assert_eq "terrane-ml-example:0.1.0" "$(json_get "$TMP/train-manifest.json" 'd["params"]["image"]')" "manifest: records the image reference"
pod train-again "$TRAIN" $PY -c 'raise SystemExit(3)'
assert_eq "0 3 " "$fetch_rc $user_rc $publish_rc" "a failing user container stops the pod before publish-outputs"
pod train-again "$TRAIN"
assert_eq true "$(json_get "$TMP/train-again/publish.out" 'd["cacheHit"]')" "the same data version again: cache hit"

# --- 3. prediction -----------------------------------------------------------------
run_op train "$(cat "$TMP/train/task.json")" # a result file for upstream(); the cache answers
cp "$TMP/train/publish.out" "$TMP/train.out"; cp "$TMP/train/task.json" "$TMP/train.task"
PRED=$(container_task test/flood_risk '{"image":"terrane-ml-example:0.1.0","args":["predict"]}' \
  "[$(upstream train model),$(upstream dem dem),$(upstream slope slope)]")
pod predict "$PRED" $PY "$ML" predict
assert_eq "0 0 0" "$fetch_rc $user_rc $publish_rc" "prediction pod succeeds"
R=$TMP/predict/publish.out
DVP=$(json_get "$TMP/predict/task.json" 'd["dataVersion"][7:]')
assert_eq "s3://assets/out/test/test/flood_risk/$DVP/risk.tif" "$(json_get "$R" 'd["output"]["uri"]')" "prediction: the raster is the primary output"
assert_eq "image/tiff; application=geotiff; profile=cloud-optimized" "$(json_get "$R" 'd["output"]["mediaType"]')" "prediction: published as a COG"
if cog_validate "/vsis3/assets/out/test/test/flood_risk/$DVP/risk.tif" >"$TMP/cogv" 2>&1; then ok "risk.tif passes GDAL's COG validator"
else fail "risk.tif is not a valid COG: $(tail -n 2 "$TMP/cogv")"; fi
s3_get "s3://assets/out/test/test/flood_risk/$DVP/item.json" "$TMP/pred-item.json"
assert_eq "true" "$(json_get "$TMP/pred-item.json" 'd["geometry"]["type"] == "Polygon" and any(k in d["properties"] for k in ("proj:code", "proj:epsg", "proj:wkt2"))')" "prediction Item: footprint and projection"
assert_contains "$(json_get "$TMP/pred-item.json" '[l["href"] for l in d["links"] if l["rel"]=="derived_from"]')" "flood_model/$DVT/item.json" "prediction Item: lineage to the model's Item"
for it in train-item pred-item; do
  if out=$(python3 "$ROOT/tests/lib/stac_check.py" "$TMP/$it.json"); then ok "$it: a STAC Item of the declared versions (tests/lib/stac_check.py)"
  else fail "$it: $out"; fi
done

# --- 4. checksum mismatch ------------------------------------------------------------
SLOPE_URI=$(json_get "$TMP/slope.out" 'd["output"]["uri"]')
s3_put "$SAMPLES/olinda_dem_utm25s.tif" "$SLOPE_URI" # overwritten behind its manifest
pod tampered "$TRAIN" sh -c "touch '$TMP/tampered-user-ran'"
assert_eq "65" "$fetch_rc" "changed upstream bytes: fetch exits 65"
assert_eq "ChecksumMismatch|inputs[1].checksum|BadInput" "$(json_get "$TMP/tampered/fetch.term" '"|".join((d["error"]["code"], d["error"]["field"], d["error"]["class"]))')" \
  "changed upstream bytes: ChecksumMismatch naming inputs[1].checksum"
assert_eq "" "$(ls -A "$TMP/tampered/inputs/slope")" "changed upstream bytes: nothing left under /inputs/slope/"
[ -e "$TMP/tampered-user-ran" ] && fail "the user's code ran after a failed fetch" || ok "the user's code never ran"

# --- 5. empty outputs, metadata only, symlinks ---------------------------------------------
E=$(container_task test/empty '{"image":"x:1"}' '[{"name":"dem","uri":"'"$SAMPLES"'/elev.tif"}]')
pod empty "$E" true
assert_eq "65 NoOutputs" "$publish_rc $(json_get "$TMP/empty/publish.out" 'd["error"]["code"]')" "empty outputs: NoOutputs, exit 65"
assert_contains "$(json_get "$TMP/empty/publish.out" 'd["error"]["message"]')" "wrote no files" "empty outputs: the message says so"
assert_eq "" "$(s3_ls assets/out/test/test/empty)" "empty outputs: nothing published"
pod metaonly "$E" sh -c 'echo "{}" > "$TERRANE_OUTPUT_DIR/metadata.json"'
assert_eq "65 NoOutputs" "$publish_rc $(json_get "$TMP/metaonly/publish.out" 'd["error"]["code"]')" "only metadata.json: NoOutputs"
pod symlink "$E" sh -c 'echo 1 > "$TERRANE_OUTPUT_DIR/a.txt"; ln -s /etc/passwd "$TERRANE_OUTPUT_DIR/secrets.txt"'
assert_eq "65" "$publish_rc" "a symbolic link in outputs: refused (exit 65)"
assert_contains "$(json_get "$TMP/symlink/publish.out" 'd["error"]["message"]')" "secrets.txt is not a regular file" "symbolic link: named in the error"
assert_eq "" "$(s3_ls assets/out/test/test/empty)" "symbolic link: nothing published"

# --- 6. metadata.json too large ------------------------------------------------------------
M=$(container_task test/bigmeta '{"image":"x:1"}' '[{"name":"dem","uri":"'"$SAMPLES"'/elev.tif"}]')
pod bigmeta "$M" $PY -c 'import json,os; d=os.environ["TERRANE_OUTPUT_DIR"]
open(d+"/m.txt","w").write("m")
json.dump({"run": "r1", "history": list(range(600))}, open(d+"/metadata.json","w"))'
R=$TMP/bigmeta/publish.out
assert_eq "0 true false" "$publish_rc $(json_get "$R" 'd["output"]["metadataTruncated"]') $(json_get "$R" '"metadata" in d["output"]')" \
  "metadata.json over 1024 bytes: out of the result, metadataTruncated"
assert_contains "$(cat "$TMP/bigmeta/publish.err")" "over the result's cap" "metadata.json over the result's cap: logged"
s3_get "s3://assets/out/test/test/bigmeta/$(json_get "$TMP/bigmeta/task.json" 'd["dataVersion"][7:]')/item.json" "$TMP/bigmeta-item.json"
assert_eq "r1 600" "$(json_get "$TMP/bigmeta-item.json" 'd["properties"]["run"] + " " + str(len(d["properties"]["history"]))')" "metadata.json over 1024 bytes: still merged into the Item"
M2=$(container_task test/hugemeta '{"image":"x:1"}' '[{"name":"dem","uri":"'"$SAMPLES"'/elev.tif"}]')
pod hugemeta "$M2" $PY -c 'import json,os; d=os.environ["TERRANE_OUTPUT_DIR"]
open(d+"/m.txt","w").write("m")
json.dump({"blob": "x" * 70000}, open(d+"/metadata.json","w"))'
R=$TMP/hugemeta/publish.out
assert_eq "0 true" "$publish_rc $(json_get "$R" 'd["output"]["metadataTruncated"]')" "metadata.json over 64 KiB: published, metadataTruncated"
s3_get "s3://assets/out/test/test/hugemeta/$(json_get "$TMP/hugemeta/task.json" 'd["dataVersion"][7:]')/item.json" "$TMP/hugemeta-item.json"
assert_eq "False True True" "$(json_get "$TMP/hugemeta-item.json" '" ".join(str(x) for x in ("blob" in d["properties"], "terrane:metadataOmitted" in d["properties"], "metadata.json" in d["assets"]))')" \
  "metadata.json over 64 KiB: not merged, said so in the Item, still an asset"
assert_contains "$(cat "$TMP/hugemeta/publish.err")" "over the cap" "metadata.json over 64 KiB: logged"

# --- 7. many small files -------------------------------------------------------------------
# On a tmpfs when there is one: local publishing fsyncs every file and its
# directory, which is the disk's time, not the worker's.
MANY=$TMP
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  MANY=$(mktemp -d /dev/shm/terrane-many.XXXXXX)
  at_exit "rm -rf '$MANY'"
fi
many() { # N: publishes N small files to a local output; prints peak RSS in KiB
  local n=$1 d=$MANY/many$1
  mkdir -p "$d/outputs/tiles" "$d/pub"
  $PY -c 'import sys
for i in range(int(sys.argv[2])): open("%s/tiles/t%05d.json" % (sys.argv[1], i), "w").write("{\"i\": %d}" % i)' "$d/outputs" "$n"
  container_task test/many$n '{"image":"x:1"}' '[{"name":"dem","uri":"'"$SAMPLES"'/elev.tif"}]' "$d/pub" >"$d/task.json"
  TERRANE_OUTPUT_DIR=$d/outputs /usr/bin/time -f '%M' -o "$d/rss" "$WORKER" publish-outputs \
    --task "$d/task.json" --termination-log "$d/term" >"$d/out" 2>"$d/err"
  echo "$? $(cat "$d/rss")"
}
read -r rc1 rss1 < <(many 1000)
read -r rc10 rss10 < <(many 10000)
assert_eq "0 0" "$rc1 $rc10" "1,000 and 10,000 small files published"
MAN=$(ls "$MANY"/many10000/pub/test/test/many10000/*/manifest.json)
assert_eq "10000 10000" "$(json_get "$MAN" 'str(d["fileCount"]) + " " + str(len(d["files"]))')" "10,000 files: one manifest listing them all"
assert_eq 10000 "$(find "$MANY"/many10000/pub/test/test/many10000/*/tiles -type f | wc -l)" "10,000 files: all published"
assert_eq 10000 "$(json_get "$MANY/many10000/out" 'd["output"]["files"]')" "10,000 files: the result says so"
echo "measure: publish-outputs peak RSS: 1,000 files $((rss1 / 1024)) MiB, 10,000 files $((rss10 / 1024)) MiB (target: ≤ 64 MiB, growth ≤ 16 MiB)"
[ "$rss10" -le $((64 * 1024)) ] && [ $((rss10 - rss1)) -le $((16 * 1024)) ] && ok "10,000 files: bounded memory" ||
  fail "10,000 files: peak RSS ${rss10} KiB (1,000 files: ${rss1} KiB)"

finish
