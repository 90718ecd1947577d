# tests/e2e/lib.sh - set-up shared by the controller's end-to-end tests. Source it
# after nothing else:  . "$(dirname "$0")/lib.sh"
#
# Gives everything tests/lib/common.sh gives, plus:
#   e2e_start [FAULTS_JSON]   s3rver with buckets raw and assets holding the sample DEM
#                             ($KUBESIM_ARGS: more kubesim options, e.g. --audit)
#                             and communes, kubesim (pools cpu, highmem, gpu; autoscaler),
#                             the CRD, namespace $NS, and the controller's pools and
#                             worker-env files ($POOLS, $WORKER_ENV)
#   ctl_start NAME [ARGS...]  starts a terrane-controller logging to $TMP/NAME.log
#   ctl_stop NAME / ctl_kill NAME   SIGTERM and wait / SIGKILL
#   k ARGS...                 kubectl in $NS against kubesim
#   wait_until SECONDS WHAT CMD...  polls CMD until it succeeds; fails the test on timeout
#   am_get NAME JSONPATH      a field of an AssetMaterialization
#   reconciles LOGFILE KEY    how many reconciles of KEY the log shows
#   pods_of NAME              the names of the pods of a materialization
#   faults JSON               replaces kubesim's fault configuration
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

E2E=$ROOT/tests/e2e
CONTROLLER=$BUILD/terrane-controller
NS=hydro
PY=/usr/bin/python3
[ -x "$CONTROLLER" ] || skip "terrane-controller not built ($CONTROLLER)"
[ -f "$ROOT/tests/kubesim/kubesim.py" ] || skip "kubesim missing (tests/kubesim/kubesim.py)"
command -v kubectl >/dev/null || skip "kubectl missing"
[ -x "$ROOT/node_modules/.bin/s3rver" ] || skip "s3rver missing: run scripts/deps.sh"

declare -A CTL_PID

k() { kubectl --kubeconfig "$KUBECONFIG" -n "$NS" "$@"; }

wait_until() { # seconds what cmd...
  local secs=$1 what=$2 end
  shift 2
  end=$((SECONDS + secs))
  while ! "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then fail "timed out after ${secs}s: $what"; return 1; fi
    sleep 0.3
  done
  ok "$what"
}

am_get() { k get am "$1" -o "jsonpath=$2" 2>/dev/null; }

# The Ready condition's reason (or status with ready_status).
ready_reason() { am_get "$1" '{.status.conditions[?(@.type=="Ready")].reason}'; }
ready_status() { am_get "$1" '{.status.conditions[?(@.type=="Ready")].status}'; }

reconciles() { # logfile key
  grep -c "\"msg\":\"reconcile\",\"key\":\"$2\"" "$1" 2>/dev/null || true
}

pods_of() { k get pods -l "terrane.io/materialization=$1" -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}' 2>/dev/null; }

faults() {
  curl -sf -X POST -H 'Content-Type: application/json' --data "$1" "$KUBESIM_URL/kubesim/faults" >/dev/null ||
    fail "posting faults to kubesim"
}

e2e_start() {
  local faults_file=${1:-}
  s3_start raw assets
  local f
  for f in elev.tif lux.shp lux.shx lux.dbf lux.prj; do
    s3_put "$SAMPLES/$f" "s3://raw/$f" || { fail "uploading $f"; finish; }
  done

  KUBECONFIG=$TMP/kubeconfig
  export KUBECONFIG
  local args=(--port 0 --kubeconfig "$KUBECONFIG" --state-dir "$TMP/kubesim" --pools "$E2E/testdata/kubesim-pools.json"
              --ready-file "$TMP/kubesim.port" --namespace "$NS")
  [ -n "$faults_file" ] && args+=(--faults "$faults_file")
  # E2E_KUBESIM_ARGS: more kubesim options (a suite's own, e.g. TLS and RBAC).
  # shellcheck disable=SC2206
  args+=(${E2E_KUBESIM_ARGS:-})
  # Sanitizer settings reach the workers, so a sanitized worker reports where
  # the run asked (scripts/e2e-sanitized.sh).
  local v
  for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do args+=(--pass-env "$v"); done
  # Worker pods have readOnlyRootFilesystem, so kubesim lets them write their
  # emptyDir volumes only; E2E_KUBESIM_WRITABLE names a directory they may
  # write as well (a hostPath stand-in: the sanitizer logs).
  [ -n "${E2E_KUBESIM_WRITABLE:-}" ] && args+=(--writable "$E2E_KUBESIM_WRITABLE")
  $PY "$ROOT/tests/kubesim/kubesim.py" "${args[@]}" >"$TMP/kubesim.log" 2>&1 &
  KUBESIM_PID=$!
  at_exit 'kill $KUBESIM_PID 2>/dev/null; wait $KUBESIM_PID 2>/dev/null'
  local i
  for i in $(seq 1 100); do [ -s "$TMP/kubesim.port" ] && break; sleep 0.1; done
  # A suite that cannot start its server fails: a skip would hide it.
  [ -s "$TMP/kubesim.port" ] || { cat "$TMP/kubesim.log"; fail "kubesim did not start"; finish; }
  KUBESIM_URL=http://127.0.0.1:$(cat "$TMP/kubesim.port")
  [[ " ${E2E_KUBESIM_ARGS:-} " == *" --tls "* ]] && KUBESIM_URL=https://127.0.0.1:$(cat "$TMP/kubesim.port")

  kubectl --kubeconfig "$KUBECONFIG" apply -f "$ROOT/crds/" >/dev/null || { fail "kubectl apply -f crds/"; finish; }
  kubectl --kubeconfig "$KUBECONFIG" create namespace "$NS" >/dev/null || { fail "create namespace"; finish; }
  # Worker pods run where Pod Security Admission enforces "restricted", as
  # the chart documents for worker namespaces: a pod the controller builds
  # that breaks it is refused.
  kubectl --kubeconfig "$KUBECONFIG" label namespace "$NS" pod-security.kubernetes.io/enforce=restricted \
    >/dev/null || { fail "label namespace"; finish; }
  for i in $(seq 1 50); do k get am >/dev/null 2>&1 && break; sleep 0.1; done

  POOLS=$E2E/testdata/pools.json
  WORKER_ENV=$TMP/worker-env.json
  # The scratch is the pod's emptyDir at /scratch (TERRANE_SCRATCH_DIR and
  # TMPDIR as the controller sets them): kubesim maps it to the pod's volume
  # directory and lets the worker write nowhere else.
  cat >"$WORKER_ENV" <<EOF
{"AWS_S3_ENDPOINT": "$AWS_S3_ENDPOINT", "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
 "AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER", "AWS_REGION": "us-east-1",
 "CPL_VSIL_USE_TEMP_FILE_FOR_RANDOM_WRITE": "YES", "TERRANE_ALLOWED_BUCKETS": "raw,assets"}
EOF
}

# ctl_start NAME [extra controller args...]: the worker command can be
# overridden with WORKER_COMMAND (a JSON array).
ctl_start() {
  local name=$1
  shift
  "$CONTROLLER" --kubeconfig "$KUBECONFIG" --pools "$POOLS" \
    --worker-command "${WORKER_COMMAND:-[\"$WORKER\",\"run\"]}" --worker-env "$WORKER_ENV" \
    --identity "$name" --lease-duration 3 --renew-deadline 2 --retry-period 1 --metrics-addr 127.0.0.1:0 "$@" \
    >>"$TMP/$name.log" 2>&1 &
  CTL_PID[$name]=$!
  at_exit "kill -9 ${CTL_PID[$name]} 2>/dev/null"
}

ctl_stop() {
  local pid=${CTL_PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  CTL_RC=$?
  CTL_PID[$1]=
}

ctl_kill() {
  local pid=${CTL_PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  CTL_PID[$1]=
}

# --- partitions: what the partition suites (tests/e2e/test_part*.sh) share -------------------
#   part_start HISTORY [ARGS]  e2e_start with kubesim's audit (HISTORY records kept; ARGS:
#                              more kubesim options), the
#                              dump on failure, and controller "ctl" (no leader election,
#                              finished pods kept 600 s so the audit sees each of them)
#   part_ctl_restart           starts "ctl" again the same way (after ctl_kill ctl)
#   part_daily_rasters DIR DAYS SIZE [VALUE]
#                              DIR/2026-11-DD.tif for DD = 1..DAYS, SIZE x SIZE Byte cells
#                              whose value is the day; with VALUE also DIR/changed.tif of VALUE
#   part_ready AM SECONDS      waits for AM's Ready condition; ok with its partition summary
#   part_succeeded_at_least AM N SECONDS
#                              waits until status.partitions.succeeded >= N
#   part_caught_up AM SINCE    true once AM is Ready with status.partitions.inputsAsOf at or
#                              after SINCE (an RFC 3339 time): it has acted on that change
#   part_audit AM [KEY]        kubesim's audit of AM's pods: "pods=N dups=N parts=N grid=N
#                              assemble=N peak=N key=N nodes=N" (dups: (partition, attempt)
#                              created twice; parts: partition pods, not the tile flow's grid
#                              and assemble; peak: partition pods at once; key: pods of KEY;
#                              nodes: the nodes partition pods were bound to)
#   part_cog_keys PREFIX / part_cogs PREFIX
#                              the .tif keys under s3://assets/$NS/PREFIX/, and their count
part_start() { # history [more kubesim args...]
  trap 'e2e_dump; _run_cleanups' EXIT
  E2E_KUBESIM_ARGS="--audit --history-size $*" e2e_start
  part_ctl_restart
}

part_ctl_restart() { ctl_start ctl --pod-gc-delay 600 --leader-elect=false; }

part_daily_rasters() {
  $PY - "$@" <<'PY' || fail "generating the daily rasters"
import os, sys
from osgeo import gdal
out, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
drv = gdal.GetDriverByName("GTiff")
wgs84 = 'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]]'
files = [("%s/2026-11-%02d.tif" % (out, d), d) for d in range(1, n + 1)]
if len(sys.argv) > 4:
    files.append(("%s/changed.tif" % out, int(sys.argv[4])))
for path, value in files:
    ds = drv.Create(path, size, size, 1, gdal.GDT_Byte)
    ds.SetGeoTransform([6.0, 0.001, 0, 50.0, 0, -0.001])
    ds.SetProjection(wgs84)
    ds.GetRasterBand(1).Fill(value)
    ds = None
PY
}

part_ready() { # am seconds
  if k wait --for=condition=Ready am "$1" --timeout="$2s" >/dev/null; then
    ok "$1 Ready: $(am_get "$1" '{.status.partitions.summary}') $(am_get "$1" '{.status.message}')"
  else
    fail "$1 not Ready: $(am_get "$1" '{.status.message}')"
  fi
}

_part_succeeded_ge() { [ "$(am_get "$1" '{.status.partitions.succeeded}')" -ge "$2" ] 2>/dev/null; }
part_succeeded_at_least() { # am n seconds
  wait_until "$3" "$1: at least $2 partitions materialized" _part_succeeded_ge "$1" "$2"
}

part_caught_up() { # am since
  local wm
  wm=$(am_get "$1" '{.status.partitions.inputsAsOf}')
  [ -n "$wm" ] && [ "$(date -d "$wm" +%s)" -ge "$(date -d "$2" +%s)" ] && [ "$(ready_status "$1")" = True ]
}

part_audit() { # am [key]
  curl -sf "$KUBESIM_URL/kubesim/audit" >"$TMP/audit.json" || { fail "GET /kubesim/audit"; return 1; }
  $PY - "$TMP/audit.json" "$1" "${2:-}" <<'PY'
import collections, json, sys
recs, am, key = json.load(open(sys.argv[1]))["records"], sys.argv[2], sys.argv[3]
created = collections.Counter()
live, peak, nodes = set(), 0, set()
for r in recs:
    l = r.get("labels", {})
    if r["resource"] != "pods" or l.get("terrane.io/materialization") != am:
        continue
    if r.get("node") and l.get("terrane.io/partition") not in ("grid", "assemble"):
        nodes.add(r["node"])
    k = (l.get("terrane.io/partition"), l.get("terrane.io/attempt"))
    if r["type"] == "ADDED":
        created[k] += 1
        if k[0] not in ("grid", "assemble"):
            live.add(r.get("name"))
    elif r["type"] == "DELETED" or r.get("phase") in ("Succeeded", "Failed"):
        live.discard(r.get("name"))
    peak = max(peak, len(live))
count = lambda want: sum(n for (p, a), n in created.items() if want(p))
print("pods=%d dups=%d parts=%d grid=%d assemble=%d peak=%d key=%d nodes=%d" % (
    sum(created.values()), len([k for k, n in created.items() if n > 1]),
    count(lambda p: p not in ("grid", "assemble")), count(lambda p: p == "grid"),
    count(lambda p: p == "assemble"), peak, count(lambda p: p == key), len(nodes)))
PY
}

part_cog_keys() {
  curl -s "http://127.0.0.1:$S3_PORT/assets?prefix=$NS/$1/&list-type=2&max-keys=1000" |
    grep -o '<Key>[^<]*\.tif</Key>' | sed 's/<[^>]*>//g' | sort
}
part_cogs() { part_cog_keys "$1" | grep -c .; }
# --- end of the partitions block ------------------------------------------------------------

# Shows what a failed test needs to be understood.
e2e_dump() {
  if [ "$fails" -gt 0 ]; then
    echo "--- kubectl get am,pods"
    k get am,pods -o wide 2>&1 | head -60
    local l
    for l in "$TMP"/*.log; do
      case $l in *s3rver*) continue ;; esac
      echo "--- $(basename "$l") (tail)"
      tail -n 40 "$l"
    done
  fi
}

# --- waiting on one field or the Events of one object (test_sources.sh) --------------------------
# field_is KIND NAME JSONPATH WANT: the field prints exactly WANT.
field_is() { [ "$(k get "$1" "$2" -o "jsonpath=$3" 2>/dev/null)" = "$4" ]; }
# wait_field SECONDS WHAT KIND NAME JSONPATH WANT: until field_is holds.
wait_field() { local secs=$1 what=$2; shift 2; wait_until "$secs" "$what" field_is "$@"; }
# events_of NAME REASON: how many Events of that reason the object has.
events_of() { k get events --field-selector "involvedObject.name=$1,reason=$2" -o name 2>/dev/null | wc -l; }
events_are() { [ "$(events_of "$1" "$2")" = "$3" ]; }
# wait_events SECONDS WHAT NAME REASON COUNT: until the object has COUNT such Events.
wait_events() { local secs=$1 what=$2; shift 2; wait_until "$secs" "$what" events_are "$@"; }
