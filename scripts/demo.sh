#!/usr/bin/env bash
# make demo: Terrane end to end on one machine. Starts a simulated cluster
# (tests/kubesim: node pools cpu, highmem and a tainted gpu pool that starts
# empty, with the autoscaler on), a local S3 server holding the sample data, and
# terrane-controller; applies the CRD and the example asset graphs with kubectl;
# shows them materialize; applies a partitioned graph (a tiled slope assembled
# into one COG, a daily asset read by last-3-days and all-days assets) and
# shows its partition progress; then changes one upstream asset (only its downstream
# assets re-materialize) and re-creates an unchanged one (a cache hit); ends
# with a report per asset (data version, output, checksum, COG validity,
# lineage) and how to open, query and stop it all.
#
#   scripts/demo.sh [BUILD_DIR]      (make demo: BUILD_DIR=build)
#
# Environment: DEMO_NONINTERACTIVE=1 (or CI=true, or no terminal) prints plain
# lines instead of a table redrawn in place; DEMO_STOP_AT_END=1 stops everything
# at the end (otherwise the cluster keeps running until `make demo-stop`);
# DEMO_DIR moves the state directory (default .cache/demo). A demo already
# running from the same state directory is stopped first.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. "$ROOT/scripts/lib-demo.sh"

BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
CONTROLLER=$BUILD/terrane-controller
WORKER=$BUILD/terrane-worker
SAMPLES=$ROOT/.cache/samples
PY=/usr/bin/python3
NS=hydro
EXAMPLES=(crds/examples/lux-terrain-catchments.yaml crds/examples/landsat-ndvi.yaml crds/examples/gpu-pool.yaml
          crds/examples/hydrology.yaml crds/examples/ml-training.yaml)
# The partitioned graph, in a namespace of its own (its section after step 5).
PARTITIONS_EXAMPLE=crds/examples/partitions.yaml PNS=partitions
T0=$SECONDS
unset KUBECONFIG # never a real cluster: every kubectl here uses the demo's kubeconfig

DEMO_TTY=0
if [ "${DEMO_NONINTERACTIVE:-0}" != 1 ] && [ "${CI:-}" != true ] && [ -t 0 ] && [ -t 1 ]; then DEMO_TTY=1; fi
export DEMO_TTY DEMO_NS=$NS DEMO_REL=$ROOT
if [ $DEMO_TTY = 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi

say() { echo "demo: $*"; }
step() { echo; echo "${B}== $* ==${N}"; }
k() { kubectl --kubeconfig "$KUBECONFIG" "$@"; }
# kubectl with its output indented; its exit status.
kshow() {
  local out rc=0
  out=$(k "$@" 2>&1) || rc=$?
  [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/    /'
  return $rc
}

# --- failure handling: say what failed, show the controller's last words, stop everything -----
FAILED_ONCE=0
fail() {
  FAILED_ONCE=1
  echo
  echo "demo: FAILED: $*" >&2
  if [ -n "${KUBECONFIG:-}" ] && [ -f "$KUBECONFIG" ]; then
    echo "--- kubectl get am -n $NS"
    k get am -n "$NS" -o wide 2>&1 | head -20 || true
    k get am -n "$PNS" -o wide 2>/dev/null | grep -v '^No resources' | sed '1s/^/--- kubectl get am -n '"$PNS"'\n/' || true
  fi
  if [ -f "$DEMO_DIR/controller.log" ]; then
    echo "--- terrane-controller, last log lines ($DEMO_DIR/controller.log)"
    tail -n 15 "$DEMO_DIR/controller.log"
  fi
  echo "--- stopping the demo's processes"
  demo_stop || true
  echo "demo: logs are in $DEMO_DIR (controller.log, kubesim.log, s3rver.log, kubesim/pods/)" >&2
  exit 1
}
on_exit() {
  local rc=$?
  [ $rc = 0 ] || [ $FAILED_ONCE = 1 ] || { FAILED_ONCE=1; echo "demo: stopped unexpectedly (exit $rc)" >&2; demo_stop || true; }
}
trap on_exit EXIT
trap 'echo; echo "demo: interrupted"; FAILED_ONCE=1; demo_stop || true; exit 130' INT TERM

# --- prerequisites ------------------------------------------------------------------------------
[ -x "$CONTROLLER" ] && [ -x "$WORKER" ] || { echo "demo: build first (make): $CONTROLLER, $WORKER" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "demo: kubectl is not installed" >&2; exit 1; }
[ -x node_modules/.bin/s3rver ] || { echo "demo: s3rver missing: run scripts/deps.sh" >&2; exit 1; }
[ -f "$SAMPLES/elev.tif" ] && [ -f "$SAMPLES/L7_ETMs.tif" ] || { echo "demo: sample data missing: run scripts/deps.sh" >&2; exit 1; }
$PY -c 'import osgeo.gdal' 2>/dev/null || { echo "demo: GDAL's Python bindings missing (python3-gdal)" >&2; exit 1; }

# A demo from an earlier run is stopped, then its state is replaced.
case $(realpath -m "$DEMO_DIR") in
  / | "$(realpath -m "$ROOT")" | "$(realpath -m "${HOME:-/}")") echo "demo: refusing DEMO_DIR=$DEMO_DIR" >&2; exit 1 ;;
esac
if [ -f "$DEMO_PIDS" ]; then demo_stop quiet || fail "could not stop the previous demo (see $DEMO_PIDS)"; fi
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR/s3" "$DEMO_DIR/scratch" "$DEMO_DIR/out"
: >"$DEMO_PIDS"
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Background processes get their own session (setsid; no fork, so $! is theirs),
# no terminal and their own log: they outlive this script until demo-stop.
start_bg() { # name log command...
  local name=$1 log=$2
  shift 2
  setsid "$@" </dev/null >"$log" 2>&1 &
  demo_record "$name" $!
  LAST_PID=$!
}
wait_for() { # tenths what command...
  local n=$1 what=$2 i
  shift 2
  for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "timed out after $((n / 10))s waiting for $what"
}
alive() { kill -0 "$1" 2>/dev/null; }
# A path relative to the repository when it is inside it.
rel() { case $1 in "$ROOT"/*) echo "${1#"$ROOT"/}" ;; *) echo "$1" ;; esac; }

echo "${B}Terrane demo${N}: asset-based orchestration of geospatial rasters, on a simulated cluster"
echo "state and logs: $DEMO_DIR"

# --- 1. S3 ------------------------------------------------------------------------------------------
step "1/7  a local S3 server with the sample data"
S3_PORT=$(free_port)
start_bg s3rver "$DEMO_DIR/s3rver.log" "$ROOT/node_modules/.bin/s3rver" -d "$DEMO_DIR/s3" -a 127.0.0.1 \
  -p "$S3_PORT" --silent --configure-bucket raw "$ROOT/tests/e2e/testdata/s3-cors.xml" \
  --configure-bucket assets "$ROOT/tests/e2e/testdata/s3-cors.xml"
S3_PID=$LAST_PID
s3_up() { alive "$S3_PID" && (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null; }
wait_for 150 "s3rver on 127.0.0.1:$S3_PORT (log: $DEMO_DIR/s3rver.log)" s3_up
export AWS_S3_ENDPOINT=127.0.0.1:$S3_PORT AWS_HTTPS=NO AWS_VIRTUAL_HOSTING=FALSE
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE || true
# The S3 environment, for `make demo-upload` and for GDAL or QGIS by hand.
cat >"$DEMO_DIR/s3.env" <<ENV
export AWS_S3_ENDPOINT=$AWS_S3_ENDPOINT AWS_HTTPS=NO AWS_VIRTUAL_HOSTING=FALSE
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
ENV
say "s3rver on http://127.0.0.1:$S3_PORT (pid $S3_PID), buckets raw and assets; environment in $(rel "$DEMO_DIR/s3.env")"
$PY - "$SAMPLES" <<'PY' || fail "uploading the sample data to s3://raw/lux/"
import os, sys
from osgeo import gdal
gdal.UseExceptions()
for name in ["elev.tif", "lux.shp", "lux.shx", "lux.dbf", "lux.prj", "L7_ETMs.tif"]:
    data = open(os.path.join(sys.argv[1], name), "rb").read()
    f = gdal.VSIFOpenL("/vsis3/raw/lux/" + name, "wb")
    gdal.VSIFWriteL(data, 1, len(data), f)
    if gdal.VSIFCloseL(f) != 0:
        sys.exit("upload of %s failed" % name)
    print("demo: uploaded s3://raw/lux/%-12s %8d bytes" % (name, len(data)))
# Three river gauges, the pour points of crds/examples/hydrology.yaml.
gauges = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": name},
     "geometry": {"type": "Point", "coordinates": [lon, lat]}}
    for name, lon, lat in [("Alzette-Sauer", 6.273, 49.873), ("Attert", 6.073, 49.918),
                           ("Syr", 6.452, 49.690)]]}
data = __import__("json").dumps(gauges).encode()
f = gdal.VSIFOpenL("/vsis3/raw/lux/gauges.geojson", "wb")
gdal.VSIFWriteL(data, 1, len(data), f)
if gdal.VSIFCloseL(f) != 0:
    sys.exit("upload of gauges.geojson failed")
print("demo: uploaded s3://raw/lux/%-12s %8d bytes" % ("gauges.geojson", len(data)))

# The inputs of crds/examples/partitions.yaml: the DEM 8 times finer (3 x 3
# tiles of 256 pixels) and one rainfall raster a day (mm, on elev.tif's grid).
def put(local, key):
    f = gdal.VSIFOpenL(local, "rb")
    gdal.VSIFSeekL(f, 0, 2)
    size = gdal.VSIFTellL(f)
    gdal.VSIFSeekL(f, 0, 0)
    data = gdal.VSIFReadL(1, size, f)
    gdal.VSIFCloseL(f)
    gdal.Unlink(local)
    f = gdal.VSIFOpenL("/vsis3/raw/" + key, "wb")
    gdal.VSIFWriteL(data, 1, len(data), f)
    if gdal.VSIFCloseL(f) != 0:
        sys.exit("upload of %s failed" % key)
    print("demo: uploaded s3://raw/%-16s %8d bytes" % (key, len(data)))
gdal.Translate("/vsimem/elev-768.tif", os.path.join(sys.argv[1], "elev.tif"), width=768, height=720,
               resampleAlg="bilinear", creationOptions=["TILED=YES", "COMPRESS=DEFLATE"])
put("/vsimem/elev-768.tif", "lux/elev-768.tif")
import array, math
dem = gdal.Open(os.path.join(sys.argv[1], "elev.tif"))
w, h = dem.RasterXSize, dem.RasterYSize
for d in range(1, 8):
    ds = gdal.GetDriverByName("GTiff").Create("/vsimem/rain.tif", w, h, 1, gdal.GDT_Float32)
    ds.SetGeoTransform(dem.GetGeoTransform())
    ds.SetProjection(dem.GetProjection())
    cells = array.array("f", (d * (1.5 + math.sin((x + 9 * d) / 11.0) * math.cos(y / 13.0))
                              for y in range(h) for x in range(w)))
    ds.GetRasterBand(1).WriteRaster(0, 0, w, h, cells.tobytes())
    ds = None
    put("/vsimem/rain.tif", "rain/2026-11-%02d.tif" % d)
PY

# --- 2. the simulated cluster -------------------------------------------------------------------
step "2/7  a simulated Kubernetes cluster (tests/kubesim) with three node pools"
cat >"$DEMO_DIR/kubesim-pools.json" <<'EOF'
{
  "pools": [
    {"name": "cpu", "labels": {"terrane.io/pool": "cpu"}, "taints": [], "instanceType": "m7i.xlarge",
     "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}, "min": 1, "max": 3},
    {"name": "highmem", "labels": {"terrane.io/pool": "highmem"}, "taints": [], "instanceType": "r7i.2xlarge",
     "allocatable": {"cpu": "8", "memory": "64Gi", "pods": "110"}, "min": 0, "max": 2},
    {"name": "gpu", "labels": {"terrane.io/pool": "gpu"}, "instanceType": "g5.2xlarge",
     "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
     "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "1"},
     "min": 0, "max": 1, "provisionSeconds": 2}
  ],
  "scaleDownDelaySeconds": 30,
  "provisionSeconds": 0.5
}
EOF
KUBECONFIG=$DEMO_DIR/kubeconfig
export KUBECONFIG
start_bg kubesim "$DEMO_DIR/kubesim.log" $PY "$ROOT/tests/kubesim/kubesim.py" --port 0 \
  --kubeconfig "$KUBECONFIG" --state-dir "$DEMO_DIR/kubesim" --pools "$DEMO_DIR/kubesim-pools.json" \
  --ready-file "$DEMO_DIR/kubesim.port" --namespace "$NS" --images "$ROOT/examples/ml/kubesim-images.json" \
  --writable "$DEMO_DIR/scratch"
KUBESIM_PID=$LAST_PID
kubesim_up() { alive "$KUBESIM_PID" && [ -s "$DEMO_DIR/kubesim.port" ]; }
wait_for 200 "kubesim (log: $DEMO_DIR/kubesim.log)" kubesim_up
say "kubesim on http://127.0.0.1:$(cat "$DEMO_DIR/kubesim.port") (pid $KUBESIM_PID); kubeconfig $KUBECONFIG"
say "pools: cpu (1-3 nodes), highmem (0-2), gpu (0-1, tainted nvidia.com/gpu=present:NoSchedule); autoscaler on"
kshow get nodes -L terrane.io/pool,node.kubernetes.io/instance-type || true

# --- 3. the CRD --------------------------------------------------------------------------------------
step "3/7  kubectl apply -f crds/"
kshow apply -f crds/ || fail "kubectl apply -f crds/"
k wait --for=condition=Established crd/assetmaterializations.terrane.io --timeout=20s >/dev/null ||
  fail "the CRD did not become Established"

# --- 4. the controller --------------------------------------------------------------------------------
step "4/7  terrane-controller (leader election on)"
# The pools configuration as the Helm chart renders it from its default values:
# cpu is the default pool, and an OOM-killed attempt there is retried on highmem;
# gpu pods tolerate the GPU nodes' taint and request a GPU.
cat >"$DEMO_DIR/pools.json" <<'EOF'
{
  "defaultPool": "cpu",
  "pools": {
    "cpu": {
      "nodeSelector": {"terrane.io/pool": "cpu"},
      "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
      "oomEscalation": "highmem"
    },
    "highmem": {
      "nodeSelector": {"terrane.io/pool": "highmem"},
      "resources": {"requests": {"cpu": "2", "memory": "16Gi"}, "limits": {"memory": "32Gi"}}
    },
    "gpu": {
      "nodeSelector": {"terrane.io/pool": "gpu"},
      "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
      "resources": {"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                    "limits": {"memory": "30Gi", "nvidia.com/gpu": "1"}}
    }
  }
}
EOF
# The worker pods' environment (the chart's worker-env ConfigMap). Scratch is a
# local directory that kubesim lets the confined worker write (--writable, as a
# hostPath volume would).
$PY - "$DEMO_DIR/worker-env.json" "$AWS_S3_ENDPOINT" "$DEMO_DIR/scratch" <<'PY'
import json, sys
out, endpoint, scratch = sys.argv[1:]
json.dump({"AWS_S3_ENDPOINT": endpoint, "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
           "AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER", "AWS_REGION": "us-east-1",
           "CPL_VSIL_USE_TEMP_FILE_FOR_RANDOM_WRITE": "YES", "TERRANE_ALLOWED_BUCKETS": "raw,assets",
           "TERRANE_SCRATCH_DIR": scratch, "TMPDIR": scratch}, open(out, "w"), indent=1)
PY
k create namespace terrane-system >/dev/null || fail "kubectl create namespace terrane-system"
ctl_args=(--kubeconfig "$KUBECONFIG" --pools "$DEMO_DIR/pools.json"
  --worker-command "$($PY -c 'import json,sys; print(json.dumps([sys.argv[1], "run"]))' "$WORKER")"
  --worker-env "$DEMO_DIR/worker-env.json" --leader-elect=true --lease-namespace terrane-system
  --identity "demo-$(hostname)" --shutdown-timeout 5)
# The metrics server is optional: used when this build has it.
METRICS=0
if "$CONTROLLER" --help 2>&1 | grep -q -- '--metrics-addr'; then
  METRICS=1
  ctl_args+=(--metrics-addr 127.0.0.1:0)
fi
# The lineage UI on loopback (DEMO_UI_PORT, default: a free port); the
# browser reads COGs for its map previews from s3rver (CORS on both buckets).
ctl_args+=(--ui-addr "127.0.0.1:${DEMO_UI_PORT:-0}" --ui-s3-endpoint "http://127.0.0.1:$S3_PORT")
start_bg controller "$DEMO_DIR/controller.log" "$CONTROLLER" "${ctl_args[@]}"
CTL_PID=$LAST_PID
holder() { k get lease terrane-controller -n terrane-system -o 'jsonpath={.spec.holderIdentity}' 2>/dev/null; }
leading() { alive "$CTL_PID" && [ -n "$(holder)" ]; }
wait_for 300 "terrane-controller to take the Lease terrane-system/terrane-controller" leading
say "terrane-controller (pid $CTL_PID) holds the Lease terrane-system/terrane-controller as $(holder)"
METRICS_URL=
if [ $METRICS = 1 ]; then
  for _ in $(seq 1 30); do
    port=$(grep -o '"msg":"serving metrics and probes".*"port":[0-9]*' "$DEMO_DIR/controller.log" | grep -o '[0-9]*$' | head -n 1 || true)
    [ -n "$port" ] && { METRICS_URL=http://127.0.0.1:$port/metrics; break; }
    sleep 0.1
  done
  [ -n "$METRICS_URL" ] && say "metrics: $METRICS_URL"
fi
UI_URL=
for _ in $(seq 1 30); do
  port=$(grep -o '"msg":"serving the lineage UI".*"port":[0-9]*' "$DEMO_DIR/controller.log" | grep -o '[0-9]*$' | head -n 1 || true)
  [ -n "$port" ] && { UI_URL=http://127.0.0.1:$port/ui/; break; }
  sleep 0.1
done
[ -n "$UI_URL" ] || fail "the controller does not serve the lineage UI"
say "lineage UI: $UI_URL"

# --- 5. the asset graph ---------------------------------------------------------------------------
step "5/7  kubectl apply the asset graphs"
apply_args=()
for f in "${EXAMPLES[@]}"; do apply_args+=(-f "$f"); done
demo_py wait --timeout 180 --title "Materializing (kubectl get am -n $NS -w shows the same)" \
  -- kubectl apply "${apply_args[@]}" || fail "the asset graph did not materialize"
NAMES=$(demo_py names | paste -sd, -) || fail "listing the assets"
say "all $(echo "$NAMES" | tr ',' '\n' | grep -c .) assets Succeeded ($((SECONDS - T0))s since the start)"

# Container assets: the example's own image (examples/ml, run by kubesim as a
# local process) trained on the gpu pool between the worker's fetch and
# publish-outputs steps.
echo
echo "${B}-- Your own code as an asset: training on the gpu pool (crds/examples/ml-training.yaml) --${N}"
am_field() { k get am "$1" -n "$NS" -o "jsonpath=$2" 2>/dev/null; }
printf '  %-12s %-8s %-6s %s\n' ASSET IMAGE POOL OUTPUT
for a in flood-model flood-risk; do
  printf '  %-12s %-8s %-6s %s\n' "$a" "$(k get am "$a" -n "$NS" -o 'jsonpath={.spec.container.args[0]}')" \
    "$(am_field "$a" '{.status.pool}')" "$(am_field "$a" '{.status.output.uri}')"
done
echo "  flood-model ran on node $(am_field flood-model '{.status.node}') (added from zero for it; removed once idle)"
echo "  image ran:  $(am_field flood-model '{.status.output.imageID}')  (status.output.imageID)"
echo "  metadata:   $(am_field flood-model '{.status.output.metadata}')"
echo "  files:      $(am_field flood-model '{.status.output.files}') published from /outputs, STAC Item $(am_field flood-model '{.status.output.stacItem}')"
k get events -n "$NS" --field-selector involvedObject.name=flood-model,reason=ImageNotPinned \
  -o 'jsonpath={range .items[*]}  Warning {.reason}: {.message}{"\n"}{end}' 2>/dev/null | head -n 1
[ -n "$(am_field flood-model '{.status.output.imageID}')" ] || fail "flood-model has no imageID in its status"

# Partitions: a tiled slope assembled into one COG, a daily asset, its LastN
# and AllToOne readers (crds/examples/partitions.yaml, namespace partitions).
echo
echo "${B}-- Partitions over space and time ($PARTITIONS_EXAMPLE, namespace $PNS) --${N}"
kshow apply -f "$PARTITIONS_EXAMPLE" || fail "kubectl apply -f $PARTITIONS_EXAMPLE"
# One line per change of an asset's phase, partitions (materialized/total),
# running pods or message, until every asset is Ready at its generation.
part_rows() {
  k get am -n "$PNS" -o 'jsonpath={range .items[*]}{.metadata.name}{"|"}{.status.phase}{"|"}{.status.partitions.summary}{"|"}{.status.partitions.running}{"|"}{.status.conditions[?(@.type=="Ready")].status}{"|"}{.status.observedGeneration}{"|"}{.metadata.generation}{"|"}{.status.message}{"\n"}{end}' 2>/dev/null
}
declare -A PSEEN
p0=$SECONDS pdone=0
printf '  %6s  %-12s %-10s %-10s %-7s %s\n' TIME ASSET PHASE PARTITIONS RUNNING MESSAGE
while [ $((SECONDS - p0)) -lt 240 ]; do
  rows=$(part_rows) || true
  ready=0 total=0
  while IFS='|' read -r n ph sum run rdy og gen msg; do
    [ -n "$n" ] || continue
    total=$((total + 1))
    [ "$ph" = Succeeded ] && [ "$rdy" = True ] && [ "$og" = "$gen" ] && ready=$((ready + 1))
    line=$(printf '%-12s %-10s %-10s %-7s %s' "$n" "${ph:-created}" "${sum:--}" "${run:--}" "${msg:0:70}")
    [ "${PSEEN[$n]:-}" = "$line" ] && continue
    PSEEN[$n]=$line
    printf '  %5ds  %s\n' $((SECONDS - p0)) "$line"
  done <<<"$rows"
  [ "$total" -gt 0 ] && [ "$ready" = "$total" ] && { pdone=1; break; }
  sleep 0.5
done
[ $pdone = 1 ] || fail "the partitioned assets did not all become Ready in 240s"
say "every partitioned asset Ready in $((SECONDS - p0))s; kubectl get am -n $PNS (the PARTITIONS column):"
kshow get am -n "$PNS" || true
pget() { k get am "$1" -n "$PNS" -o "jsonpath=$2" 2>/dev/null; }
echo "  slope-tiles: a grid of $(pget slope-tiles '{.status.partitions.grid.result.cols}') x $(pget slope-tiles '{.status.partitions.grid.result.rows}') tiles of $(pget slope-tiles '{.status.partitions.grid.result.tileWidth}') px over $(pget slope-tiles '{.status.partitions.grid.result.width}') x $(pget slope-tiles '{.status.partitions.grid.result.height}') (halo $(pget slope-tiles '{.status.partitions.grid.result.halo}')), probed by one pod; one pod per tile; one assembly"
echo "    assembled COG  $(pget slope-tiles '{.status.output.uri}')"
$PY - "$(pget slope-tiles '{.status.output.uri}')" "$(pget slope-whole '{.status.output.uri}')" <<'PY' || fail "comparing slope-tiles with slope-whole"
import json, sys
from osgeo import gdal
gdal.UseExceptions()
tiles, whole = (gdal.Open("/vsis3/" + u[len("s3://"):]) for u in sys.argv[1:3])
same = (tiles.RasterXSize, tiles.RasterYSize) == (whole.RasterXSize, whole.RasterYSize) and \
    tiles.GetGeoTransform() == whole.GetGeoTransform() and tiles.ReadRaster() == whole.ReadRaster()
print("    pixels         %s slope-whole's (the same slope in one pod over the whole raster)"
      % ("identical to" if same else "DIFFERENT from"))
coll = sys.argv[1].rsplit("/", 1)[0] + "/collection.json"
f = gdal.VSIFOpenL("/vsis3/" + coll[len("s3://"):], "rb")
c = json.loads(gdal.VSIFReadL(1, 1 << 20, f))
gdal.VSIFCloseL(f)
print("    STAC Collection %s: %d tile Items" % (coll, len([l for l in c["links"] if l["rel"] == "item"])))
sys.exit(0 if same else 1)
PY
for a in rain-daily rain-3day; do
  echo "  $a: partitions $(pget $a '{.status.partitions.summary}'), materialized indices $(pget $a '{.status.partitions.materialized[0].ranges}'), failed $(pget $a '{.status.partitions.failed}'); one COG and STAC Item per day"
done
echo "  rain-week (AllToOne): read $(pget rain-week '{.status.lineage[0].partitions}') partitions of $(pget rain-week '{.status.lineage[0].from}') in one pod: $(pget rain-week '{.status.output.uri}')"
$PY - "$(pget rain-week '{.status.output.uri}')" <<'PY' || fail "rain-week is not the sum of the 7 days"
import struct, sys
from osgeo import gdal
gdal.UseExceptions()
def cells(path):
    ds = gdal.Open(path)
    return struct.unpack("%df" % (ds.RasterXSize * ds.RasterYSize), ds.GetRasterBand(1).ReadRaster(buf_type=gdal.GDT_Float32))
week = cells("/vsis3/" + sys.argv[1][len("s3://"):])
days = [cells("/vsis3/raw/rain/2026-11-%02d.tif" % d) for d in range(1, 8)]
worst = max(abs(w - sum(c)) for w, c in zip(week, zip(*days)))
print("    pixels         the sum of the 7 daily rasters (s3://raw/rain/2026-11-01..07.tif) to %.1e mm" % worst)
sys.exit(0 if worst < 1e-3 else 1)
PY
# Sources: every s3:// uri: input of the graph is read through its own
# AssetSource (controller/implicitsrc.c), observed once by a worker pod on
# the asset's pool; the inputs' data versions are those observations.
echo
echo "${B}-- Sources: the data Terrane reads but does not compute (kubectl get asrc -n $NS) --${N}"
k get asrc -n "$NS" -o json 2>/dev/null | $PY -c 'import json, sys
items = json.load(sys.stdin)["items"]
print("  %-26s %-34s %-7s %-12s %-7s %s" % ("SOURCE", "URI", "OBJECTS", "VERSION", "POOL", "READ BY"))
for o in sorted(items, key=lambda o: o["metadata"]["name"]):
    st, sp = o.get("status") or {}, o["spec"]
    by = (o["metadata"].get("labels") or {}).get("terrane.io/input-of", "from: inputs")
    print("  %-26s %-34s %-7s %-12s %-7s %s" % (o["metadata"]["name"][:26], sp["uri"][:34],
          st.get("objectCount", "-"), st.get("shortDataVersion", "-"),
          (sp.get("observe") or {}).get("pool", "default"), by))
print("  %d sources, each observed %s" % (len(items), "once, before the first run of the asset that reads it"
      if all((o.get("status") or {}).get("finishedObservation") == 1 for o in items) else "(see status.observation)"))' ||
  fail "listing the AssetSources"
echo "  an input's data version is its observation's (ETag, size, version id), so overwriting the"
echo "  object and re-running the asset (kubectl annotate am NAME terrane.io/rerun=\$(date +%s)) gives a"
echo "  new data version, never a cache hit on the old bytes"

# --- 6. staleness: change one upstream -------------------------------------------------------------
step "6/7  staleness: change one upstream, only its downstream assets re-materialize"
declare -A BEFORE AFTER
while read -r n dv; do BEFORE[$n]=$dv; done < <(demo_py versions)
CHANGED=dem-cog
DOWN=$(demo_py downstream "$CHANGED" | paste -sd, -)
PATCH='{"spec":{"params":{"compression":"ZSTD"}}}'
olds=()
for n in $CHANGED ${DOWN//,/ }; do olds+=(--old "$n=${BEFORE[$n]}"); done
say "$CHANGED's COG compression DEFLATE -> ZSTD: a new data version for $CHANGED, and so for its"
say "downstream assets ${DOWN//,/, } (refreshPolicy OnUpstreamChange); none for the others"
demo_py wait --timeout 90 --title "Re-materializing" --names "$NAMES" "${olds[@]}" \
  -- kubectl patch am "$CHANGED" -n "$NS" --type merge -p "$PATCH" ||
  fail "the change to $CHANGED did not propagate downstream"
while read -r n dv; do AFTER[$n]=$dv; done < <(demo_py versions)
echo
printf '  %-20s %-13s %s\n' ASSET BEFORE AFTER
unexpected=0
for n in $(demo_py names); do
  b=${BEFORE[$n]:-} a=${AFTER[$n]:-}
  bs=${b#sha256:} as=${a#sha256:}
  if [ "$n" = "$CHANGED" ]; then
    what="changed: its spec was patched"
  elif [[ ",$DOWN," == *",$n,"* ]]; then
    what="re-materialized: downstream of $CHANGED"
  elif [ "$b" = "$a" ]; then
    what="unchanged: not downstream of $CHANGED"
  else
    what="CHANGED, but it is not downstream of $CHANGED"
    unexpected=1
  fi
  if [ "$b" = "$a" ] && [[ "$what" != unchanged* ]]; then what="NOT re-materialized"; unexpected=1; fi
  printf '  %-20s %-13s %-13s %s\n' "$n" "${bs:0:12}" "${as:0:12}" "$what"
done
[ $unexpected = 0 ] || fail "data versions changed where they should not have (or did not where they should)"

# --- 7. a cache hit: the same spec again ----------------------------------------------------------
step "7/7  cache hit: delete an asset and create it again with the same spec"
CACHED=dem-hillshade
demo_py manifest "$CACHED" >"$DEMO_DIR/$CACHED.json" || fail "reading $CACHED"
dv_before=$(k get am "$CACHED" -n "$NS" -o 'jsonpath={.status.dataVersion}')
echo "  \$ kubectl delete am $CACHED -n $NS --cascade=foreground"
kshow delete am "$CACHED" -n "$NS" --cascade=foreground --timeout=30s || fail "kubectl delete am $CACHED"
demo_py wait --timeout 60 --title "Materializing $CACHED again, from the same spec" --names "$CACHED" \
  -- kubectl create -f "$(rel "$DEMO_DIR/$CACHED.json")" ||
  fail "$CACHED did not materialize again"
dv_after=$(k get am "$CACHED" -n "$NS" -o 'jsonpath={.status.dataVersion}')
pod=$(k get am "$CACHED" -n "$NS" -o 'jsonpath={.status.podName}')
status_hit=$(k get am "$CACHED" -n "$NS" -o 'jsonpath={.status.output.cacheHit}')
worker_hit=$(k get pod "$pod" -n "$NS" -o 'jsonpath={.status.containerStatuses[0].state.terminated.message}' 2>/dev/null |
  $PY -c 'import json,sys; print(str(json.load(sys.stdin).get("cacheHit")).lower())' 2>/dev/null || echo unknown)
echo
printf '  data version:  %s before, %s after (same operation, params, inputs and worker)\n' \
  "$(echo "${dv_before#sha256:}" | cut -c1-12)" "$(echo "${dv_after#sha256:}" | cut -c1-12)"
echo "  cache hit: worker result cacheHit=$worker_hit (pod $pod), status.output.cacheHit=$status_hit"
echo "  (the worker found the manifest of this data version already published and wrote nothing)"
[ "$dv_before" = "$dv_after" ] || fail "$CACHED has a different data version after re-creation"
[ "$status_hit" = true ] && [ "$worker_hit" = true ] || fail "$CACHED was not a cache hit"

# --- the report ------------------------------------------------------------------------------------
echo
echo "${B}== Report: every asset in namespace $NS ==${N}"
demo_py report "$DEMO_DIR/out" || fail "the report found a failed asset, an invalid COG or a checksum mismatch"

slope_uri=$(k get am dem-slope -n "$NS" -o 'jsonpath={.status.output.uri}')
slope_item=$(k get am dem-slope -n "$NS" -o 'jsonpath={.status.output.stacItem}')
S3ENV="AWS_S3_ENDPOINT=$AWS_S3_ENDPOINT AWS_HTTPS=NO AWS_VIRTUAL_HOSTING=FALSE AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER"
KC="kubectl --kubeconfig $KUBECONFIG"
echo
echo "${B}== Open the outputs in QGIS ==${N}"
echo "  Downloaded copies: $(rel "$DEMO_DIR/out")/"
echo "    *.tif      rasters (Layer > Add Layer > Add Raster Layer), e.g. $(rel "$DEMO_DIR/out/dem-slope.tif")"
echo "    *.geojson  zonal statistics per canton (Add Vector Layer)"
echo "    *.item.json the STAC Items: projection, file checksum, derived_from links (the lineage)"
echo "  Straight from S3 while the demo runs: set these in QGIS (Settings > Options > System >"
echo "  Environment) or export them before starting it, then add the /vsis3/ path as a raster layer:"
echo "    $S3ENV"
echo "    /vsis3/${slope_uri#s3://}"
echo "    STAC Item: /vsis3/${slope_item#s3://}"
echo "  The same with GDAL:  env $S3ENV gdalinfo /vsis3/${slope_uri#s3://}"
echo "  (the same variables: . $(rel "$DEMO_DIR/s3.env"))"
echo
echo "${B}== Use your own data ==${N}"
echo "  make demo-upload FILE=my-dem.tif KEY=my/dem.tif     # puts it at s3://raw/my/dem.tif"
echo "  then an asset with  inputs: [{name: dem, uri: s3://raw/my/dem.tif}]  (README: Use your own data)"
echo
echo "${B}== Query the simulated cluster with kubectl (it keeps running) ==${N}"
echo "  $KC get am -n $NS"
echo "  $KC get am dem-slope -n $NS -o yaml    # status: output, lineage, conditions"
echo "  $KC get am -n $PNS    # the partitioned assets: PARTITIONS n/m"
echo "  $KC get pods,nodes -o wide -n $NS -L terrane.io/pool"
echo "  $KC get events -n $NS"
echo "  $KC explain am.spec"
echo "  $KC get asrc -n $NS            # the sources: observed data versions of the uri: inputs"
echo "  $KC get am -n $NS -w      # and in another terminal change an upstream:"
echo "  $KC patch am dem-cog -n $NS --type merge -p '{\"spec\":{\"params\":{\"blockSize\":512}}}'"
[ -z "$METRICS_URL" ] || echo "  curl -s $METRICS_URL      # the controller's Prometheus metrics"
echo "  Logs: $(rel "$DEMO_DIR")/controller.log, kubesim.log, s3rver.log; worker pods: $(rel "$DEMO_DIR")/kubesim/pods/"
echo
echo "${B}== The lineage UI (asset graph, details, map previews; live) ==${N}"
echo "  $UI_URL"
echo "  open it in a browser: it follows the cluster live (try the kubectl patch above and watch"
echo "  the downstream assets turn Stale, then Succeeded); DEMO_UI_PORT=8081 fixes its port"
echo
echo "The demo ran in $((SECONDS - T0))s."
if [ "${DEMO_STOP_AT_END:-0}" = 1 ]; then
  echo "${B}== Stopping (DEMO_STOP_AT_END=1) ==${N}"
  demo_stop || fail "some of the demo's processes did not stop"
else
  echo "${B}The cluster, the S3 server and the controller keep running.${N} Stop them with: make demo-stop"
fi
