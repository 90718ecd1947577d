#!/usr/bin/env bash
# make images: builds the terrane-worker and terrane-controller images from
# Dockerfile.worker and Dockerfile.controller with buildah, then checks each
# image by running its binary inside it. No Docker engine and no container
# registry are needed: the base image is made here with debootstrap.
#
#   scripts/images.sh [all|worker|controller|ml-example]      (make images = all)
#
# Steps
#  1. Tools: installs buildah, debootstrap and python3-gdal with apt-get when
#     missing (only this script needs them; make test does not). Needs root,
#     or sudo, for apt-get, debootstrap and buildah's chroot isolation.
#  2. Base image localhost/terrane-base:bookworm, made only when missing:
#     debootstrap --variant=minbase bookworm into an empty buildah container,
#     apt sources for bookworm, bookworm-updates and bookworm-security on the
#     same mirror (so build and runtime stages see the same package versions),
#     security updates applied, no docs/man pages/translations, no apt lists.
#     Both Dockerfiles take it as ARG BASE_IMAGE; debian:bookworm-slim works
#     the same with a registry at hand.
#  3. Images localhost/terrane-worker:VERSION and
#     localhost/terrane-controller:VERSION (VERSION from the file VERSION),
#     with `buildah bud --isolation chroot --layers`, so the slow apt-get
#     layers are reused until the base image changes. The controller is
#     reported as FAILED, not skipped, while controller/main.c is missing.
#  4. Checks inside each image, as the image's own user: image config
#     (entrypoint, cmd, user, OCI labels, /scratch volume); `--version`;
#     uid/gid 65532; every shared library resolves (ldd); no compiler, make or
#     apt lists/caches; the controller image has no GDAL, the worker image no
#     libwebsockets. The worker also runs two real tasks (cog, then terrain
#     slope on that COG) on a DEM generated here, with TERRANE_ALLOW_LOCAL_PATHS=1
#     and local input/output/scratch directories mounted in: the result says
#     Succeeded, the COG exists with the reported size and checksum, passes
#     GDAL's COG validator, scratch is left empty, and the worker wrote no
#     file outside /scratch and its output directory (pods run with a
#     read-only root filesystem).
#  4b. The container-asset example's image localhost/terrane-ml-example:VERSION
#     from examples/ml/Dockerfile (context examples/ml; no Terrane code in it),
#     checked inside: runs as 65532, python3 imports numpy, sklearn and osgeo,
#     the entrypoint runs flood_model.py (usage error: exit 64).
#  5. Removes its temporary containers and dangling images, prints the image
#     sizes and one line "images: N passed, N failed"; exits non-zero on any
#     failure.
#
# Storage: buildah's vfs driver (no fuse-overlayfs, no kernel overlay needed)
# under .cache/containers/; every layer there is a full copy, so expect a few
# GB. `rm -rf .cache/containers` (after `buildah --root .cache/containers/storage
# --runroot .cache/containers/run --storage-driver vfs rm -a`) starts over.
#
# Environment
#   TERRANE_REBUILD_BASE=1         make the base image again (fresh security updates;
#                                  the cached apt layers of both images follow)
#   TERRANE_DEBIAN_MIRROR          default http://deb.debian.org/debian
#   TERRANE_DEBIAN_SECURITY_MIRROR default http://deb.debian.org/debian-security
#   TERRANE_SOURCE_URL             org.opencontainers.image.source (default: git remote origin)
#   TERRANE_IMAGE_PREFIX           default localhost/  (images are PREFIXterrane-worker:VERSION)
#   TERRANE_CONTAINERS_DIR         buildah storage, default .cache/containers; a directory
#                                  outside the work tree (e.g. /var/lib/terrane-containers)
#                                  keeps the base and cached layers across fresh clones
#
# Using the images elsewhere: `buildah push localhost/terrane-worker:VERSION
# docker-archive:terrane-worker.tar` (or oci-archive:, or a registry) with the
# same --root/--runroot/--storage-driver options as below.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "images: needs root (apt-get, debootstrap, buildah chroot isolation)" >&2; exit 1; }
  exec sudo -E "$0" "$@"
fi

WHAT=${1:-all}
case "$WHAT" in all) SIDES=(worker controller) ;; worker|controller) SIDES=("$WHAT") ;;
  ml-example) SIDES=() ;;
  *) echo "usage: scripts/images.sh [all|worker|controller|ml-example]" >&2; exit 64 ;; esac

VERSION=$(cat VERSION)
PREFIX=${TERRANE_IMAGE_PREFIX:-localhost/}
BASE_IMAGE=localhost/terrane-base:bookworm
MIRROR=${TERRANE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${TERRANE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
STORE=${TERRANE_CONTAINERS_DIR:-$ROOT/.cache/containers}
WORK=$ROOT/.cache/images
LOGS=$WORK/logs
RUNTIME_UID=65532
PYTHON=/usr/bin/python3 # Debian's, which has python3-gdal (not a pyenv or venv one)
mkdir -p "$STORE" "$LOGS"

B() { buildah --root "$STORE/storage" --runroot "$STORE/run" --storage-driver vfs "$@"; }
export BUILDAH_ISOLATION=chroot

T0=$(date +%s)
PASSED=0 FAILED=0
declare -a SUMMARY=() CONTAINERS=() FAILURES=()
say() { echo "images: $*"; }
pass() { PASSED=$((PASSED + 1)); echo "  ok    $1"; }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); echo "  FAIL  $1"; }
since() { echo "$(( $(date +%s) - $1 ))s"; }

cleanup() {
  local c
  for c in "${CONTAINERS[@]}"; do
    [ -n "$c" ] || continue
    # A failed debootstrap can leave proc/sys mounted inside the container.
    local mnt
    mnt=$(B mount "$c" 2>/dev/null) || mnt=""
    if [ -n "$mnt" ]; then
      awk -v m="$mnt/" 'index($2, m) == 1 {print $2}' /proc/mounts | sort -r |
        while read -r p; do umount -l "$p" 2>/dev/null || true; done
    fi
    B rm "$c" >/dev/null 2>&1 || true
  done
  [ -n "${CHECK_DIR:-}" ] && rm -rf "$CHECK_DIR"
  return 0
}
trap cleanup EXIT

# One image build at a time: two runs sharing vfs storage would race.
exec 9>"$STORE/.lock"
flock -n 9 || { say "waiting for another scripts/images.sh to finish"; flock 9; }

# --- 1. tools -------------------------------------------------------------------
TOOLS=(buildah debootstrap debian-archive-keyring python3-gdal)
missing=()
for p in "${TOOLS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
say "$(buildah --version)"

# Containers an interrupted run left behind (this store is ours alone, and
# the lock above is held).
for c in $(B containers --quiet 2>/dev/null || true); do CONTAINERS+=("$c"); done
cleanup
CONTAINERS=()

# --- 2. base image --------------------------------------------------------------
# Writes the apt, dpkg and identity files of the base into rootfs $1.
configure_base_rootfs() {
  local r=$1
  rm -f "$r/etc/apt/sources.list"
  cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$r/etc/dpkg/dpkg.cfg.d/terrane-image" <<'EOF'
# Container image: no documentation, manual pages or translations. The
# copyright files stay, as the packages' licences ask.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
# No fsync per unpacked file: an interrupted image build is simply redone.
force-unsafe-io
EOF
  cat >"$r/etc/apt/apt.conf.d/90terrane-image" <<'EOF'
// Container image: only what is asked for, no translated package
// descriptions, and no .deb files or binary caches left after apt runs.
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
EOF
  # What debootstrap left that is not the image's: downloaded .debs, its log,
  # the host's name and resolver (the runtime provides both), device nodes.
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/var/log/bootstrap.log \
         "$r"/dev/* "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/lintian
  find "$r/usr/share/doc" \( -type f -o -type l \) ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  : >"$r/etc/hostname"
  : >"$r/etc/resolv.conf"
}

build_base() {
  local t c mnt
  t=$(date +%s)
  say "base: debootstrap --variant=minbase bookworm from $MIRROR (log: ${LOGS#$ROOT/}/base.log)"
  c=$(B from --name "terrane-base-build-$$" scratch)
  CONTAINERS+=("$c")
  mnt=$(B mount "$c")
  if ! debootstrap --variant=minbase bookworm "$mnt" "$MIRROR" >"$LOGS/base.log" 2>&1; then
    tail -n 20 "$LOGS/base.log"
    return 1
  fi
  configure_base_rootfs "$mnt"
  B umount "$c" >/dev/null
  # Security and point-release updates, as the image's apt sees them.
  B run --isolation chroot --env DEBIAN_FRONTEND=noninteractive "$c" -- sh -ec '
      apt-get update -qq
      apt-get -y -qq upgrade
      apt-get clean
      rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
             /var/log/alternatives.log' >>"$LOGS/base.log" 2>&1 || { tail -n 20 "$LOGS/base.log"; return 1; }
  B config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd '["/bin/bash"]' \
    --label org.opencontainers.image.title=terrane-base \
    --label "org.opencontainers.image.description=Debian bookworm (debootstrap minbase) for the Terrane images" \
    "$c"
  B commit --quiet --rm "$c" "$BASE_IMAGE" >/dev/null
  CONTAINERS=("${CONTAINERS[@]/$c}")
  SUMMARY+=("base        $BASE_IMAGE: made in $(since "$t")")
}

base_t=$(date +%s)
if [ "${TERRANE_REBUILD_BASE:-}" = 1 ] && B inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  say "base: TERRANE_REBUILD_BASE=1, removing $BASE_IMAGE"
  B rmi "$BASE_IMAGE" >/dev/null 2>&1 || B rmi -f "$BASE_IMAGE" >/dev/null
fi
if B inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  say "base: $BASE_IMAGE present (TERRANE_REBUILD_BASE=1 makes it again)"
  SUMMARY+=("base        $BASE_IMAGE: cached")
elif build_base; then
  pass "base image $BASE_IMAGE made ($(since "$base_t"))"
else
  fail "base image $BASE_IMAGE could not be made (see ${LOGS#$ROOT/}/base.log)"
  echo "images: $PASSED passed, $FAILED failed"
  exit 1
fi

# --- 3 and 4. images and their checks ----------------------------------------------
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$REVISION" != unknown ] && [ -n "$(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  REVISION=$REVISION-dirty
fi
SOURCE_URL=${TERRANE_SOURCE_URL:-$(git config --get remote.origin.url 2>/dev/null || true)}

build_image() {
  local side=$1 img=$2 stage
  # The lineage UI's bundle is made here with esbuild (npm) and enters the
  # build context as build/gen/ui_assets.inc (.dockerignore lets it in): the
  # image's build stage has no Node and compiles it in as it is.
  if [ "$side" = controller ]; then
    [ -x node_modules/.bin/esbuild ] || scripts/deps.sh >"$LOGS/deps.log" 2>&1 || return 1
    make --no-print-directory BUILD=build ui >"$LOGS/ui.build.log" 2>&1 || return 1
  fi
  # Each line of buildah's output with the time, so slow steps show.
  B bud --isolation chroot --layers --pull=never --force-rm \
    -f "Dockerfile.$side" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$VERSION" \
    --build-arg "REVISION=$REVISION" --build-arg "SOURCE_URL=$SOURCE_URL" \
    -t "$img" . 2>&1 | while IFS= read -r l; do printf '%(%H:%M:%S)T %s\n' -1 "$l"; done \
    >"$LOGS/$side.build.log" || return 1
  # Name the build stage's last layer, so that pruning below keeps it and
  # the next run reuses it: the last "--> ID" before the second stage.
  stage=$(awk '/\[2\/2\] STEP 1\//{print id; exit} $2 == "-->" && $3 ~ /^[0-9a-f]+$/ && NF == 3 {id=$3}' \
    "$LOGS/$side.build.log")
  if [ -n "$stage" ]; then
    B tag "$stage" "${img%:*}-build:cache" >/dev/null
  else
    echo "images: $side: build stage not found in the log; its layers will be rebuilt next time" >&2
  fi
}

# in_image [buildah run options] CTR -- CMD...: runs CMD in the container as
# the image's user (unless --user says otherwise); its stderr goes to
# $LOGS/run.stderr, whose end failure messages quote.
in_image() { B run --isolation chroot "$@" 2>"$LOGS/run.stderr"; }
run_err() { tail -n 3 "$LOGS/run.stderr" | tr '\n' ' '; }

# Config checks shared by both images: entrypoint, user, labels.
check_config() {
  local side=$1 img=$2 want_cmd=$3 cfg
  cfg=$(B inspect --type image "$img" | "$PYTHON" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["OCIv1"]["config"]))') || cfg='{}'
  local out
  if out=$("$PYTHON" - "$cfg" "$side" "$VERSION" "$want_cmd" <<'PY'
import json, sys
cfg, side, version, want_cmd = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
errs = []
def want(what, got, exp):
    if got != exp: errs.append(f"{what} is {got!r}, want {exp!r}")
want("Entrypoint", cfg.get("Entrypoint"), [f"/usr/local/bin/terrane-{side}"])
want("Cmd", cfg.get("Cmd"), json.loads(want_cmd))
want("User", cfg.get("User"), "65532:65532")
labels = cfg.get("Labels") or {}
p = "org.opencontainers.image."
want("label version", labels.get(p + "version"), version)
want("label licenses", labels.get(p + "licenses"), "Apache-2.0")
want("label title", labels.get(p + "title"), f"terrane-{side}")
for k in ("description", "source", "revision"):
    if p + k not in labels: errs.append(f"label {p}{k} missing")
if side == "worker":
    env = dict(e.split("=", 1) for e in cfg.get("Env") or [])
    want("TERRANE_SCRATCH_DIR", env.get("TERRANE_SCRATCH_DIR"), "/scratch")
    if "/scratch" not in (cfg.get("Volumes") or {}): errs.append("no /scratch volume")
print("; ".join(errs))
sys.exit(1 if errs else 0)
PY
  ); then
    pass "$side: image config (entrypoint, cmd, user 65532:65532, OCI labels$([ "$side" = worker ] && echo ', /scratch volume'))"
  else
    fail "$side: image config: $out"
  fi
}

# Checks shared by both images, run inside them.
check_runtime() {
  local side=$1 c=$2 out bin=/usr/local/bin/terrane-$side
  if out=$(in_image "$c" -- "$bin" --version) && [[ "$out" == "terrane-$side $VERSION"* ]]; then
    pass "$side: '$bin --version' prints: $out"
  else
    fail "$side: '$bin --version' failed: $out $(run_err)"
  fi
  out=$(in_image "$c" -- sh -c 'echo "$(id -u):$(id -g)"') || true
  if [ "$out" = "$RUNTIME_UID:$RUNTIME_UID" ]; then pass "$side: runs as uid:gid $out (not root)"
  else fail "$side: runs as '$out', want $RUNTIME_UID:$RUNTIME_UID"; fi
  out=$(in_image "$c" -- ldd "$bin" 2>&1) || true
  if [ -n "$out" ] && ! grep -q 'not found' <<<"$out"; then
    pass "$side: all $(grep -c '=>' <<<"$out") shared libraries resolve (ldd)"
  else
    fail "$side: unresolved shared libraries: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
  fi
  out=$(in_image "$c" -- sh -c '
      for t in cc gcc g++ c++ clang cpp ld as make dpkg-buildpackage; do
        command -v "$t" >/dev/null && echo "$t"; done
      find /var/lib/apt/lists /var/cache/apt -type f ! -name lock 2>/dev/null
      find /usr/include -maxdepth 1 -name "*.h" 2>/dev/null | head -n 3' | tr '\n' ' ') || true
  if [ -z "${out// /}" ]; then pass "$side: no compiler, make, headers, apt lists or apt caches"
  else fail "$side: build leftovers in the runtime image: $out"; fi
  out=$(in_image "$c" -- sh -c 'test -s /etc/ssl/certs/ca-certificates.crt && echo yes') || true
  if [ "$out" = yes ]; then pass "$side: CA certificates at /etc/ssl/certs/ca-certificates.crt"
  else fail "$side: no CA bundle /etc/ssl/certs/ca-certificates.crt"; fi
}

check_controller() {
  local c=$1 out
  out=$(in_image "$c" -- sh -c 'ls /usr/lib/*/libgdal.so* 2>/dev/null; ldd /usr/local/bin/terrane-controller | grep -i gdal' | tr '\n' ' ') || true
  if [ -z "${out// /}" ]; then pass "controller: no GDAL in the image"
  else fail "controller: GDAL found in the controller image: $out"; fi
}

# Writes a small projected DEM (UTM 32N, 30 m, a smooth hill, nodata -9999) as
# a plain (non-COG) GeoTIFF.
make_dem() {
  "$PYTHON" - "$1" <<'PY'
import math, sys
from array import array
from osgeo import gdal, osr
gdal.UseExceptions()
w, h = 300, 200
z = array("f", (300 + 120 * math.exp(-(((x - 150) / 70) ** 2 + ((y - 100) / 50) ** 2)) + 0.2 * x
                for y in range(h) for x in range(w)))
for y in range(5):
    for x in range(5):
        z[y * w + x] = -9999
ds = gdal.GetDriverByName("GTiff").Create(sys.argv[1], w, h, 1, gdal.GDT_Float32)
ds.SetGeoTransform((500000, 30, 0, 5500000, 0, -30))
srs = osr.SpatialReference(); srs.ImportFromEPSG(32632)
ds.SetProjection(srs.ExportToWkt())
b = ds.GetRasterBand(1); b.SetNoDataValue(-9999)
b.WriteRaster(0, 0, w, h, z.tobytes(), buf_type=gdal.GDT_Float32)
ds = None
PY
}

# json_field FILE EXPR: prints EXPR evaluated on the JSON document d.
json_field() { "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }

# run_task NAME OP PARAMS INPUT_URI: runs one task in the worker image with
# /in (read-only), /out and /scratch mounted from $CHECK_DIR; checks the result
# and the COG. Sets OUT_URI to the COG's path inside the container.
run_task() {
  local c=$1 name=$2 op=$3 params=$4 input=$5 d=$CHECK_DIR rc=0
  local dv
  dv=sha256:$(printf '%s|%s|%s' "$op" "$params" "$input" | sha256sum | cut -d' ' -f1)
  printf '{"apiVersion":"terrane.io/v1","kind":"Task","namespace":"images","name":"%s","assetKey":"check/%s","dataVersion":"%s","operation":"%s","params":%s,"inputs":[{"name":"dem","uri":"%s"}],"output":{"uri":"/out"},"attempt":1}\n' \
    "$name" "$name" "$dv" "$op" "$params" "$input" >"$d/in/$name.json"
  B run --isolation chroot \
    -v "$d/in:/in:ro" -v "$d/out:/out" -v "$d/scratch:/scratch" \
    --env TERRANE_ALLOW_LOCAL_PATHS=1 --env TERRANE_LOG_LEVEL=info \
    --env "TERRANE_TERMINATION_LOG=/out/$name.termination-log" \
    "$c" -- /usr/local/bin/terrane-worker run --task "/in/$name.json" \
    >"$d/$name.stdout" 2>"$d/$name.stderr" || rc=$?
  cp "$d/$name.stdout" "$LOGS/worker.$name.result.json"; cp "$d/$name.stderr" "$LOGS/worker.$name.log"
  local status uri size sum
  status=$(json_field "$d/$name.stdout" 'd["status"]') || status="(no result JSON)"
  if [ "$rc" != 0 ] || [ "$status" != Succeeded ]; then
    fail "worker: $op task: exit $rc, status $status: $(head -c 600 "$d/$name.stdout") $(tail -n 3 "$d/$name.stderr")"
    return 1
  fi
  uri=$(json_field "$d/$name.stdout" 'd["output"]["uri"]')
  size=$(json_field "$d/$name.stdout" 'd["output"]["sizeBytes"]')
  sum=$(json_field "$d/$name.stdout" 'd["output"]["checksum"]')
  local host=$d$uri problems=()
  [[ "$uri" == /out/images/check/$name/* ]] || problems+=("output.uri $uri is not under /out/images/check/$name/")
  if [ ! -f "$host" ]; then
    problems+=("no file at $uri")
  else
    [ "$(stat -c %s "$host")" = "$size" ] || problems+=("sizeBytes $size != file size $(stat -c %s "$host")")
    [ "$sum" = "1220$(sha256sum "$host" | cut -d' ' -f1)" ] || problems+=("checksum $sum is not the file's")
    [ "$(stat -c %u "$host")" = "$RUNTIME_UID" ] || problems+=("COG owned by uid $(stat -c %u "$host"), not $RUNTIME_UID")
    "$PYTHON" -m osgeo_utils.samples.validate_cloud_optimized_geotiff --full-check=yes "$host" \
      >"$d/$name.validate" 2>&1 || problems+=("not a valid COG: $(tail -n 2 "$d/$name.validate" | tr '\n' ' ')")
  fi
  for f in stacItem manifest; do
    local p
    p=$(json_field "$d/$name.stdout" "d['output'].get('$f', '')")
    [ -n "$p" ] && [ -f "$d$p" ] || problems+=("output.$f '$p' missing")
  done
  "$PYTHON" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' \
    "$d/$name.stdout" "$d/out/$name.termination-log" 2>/dev/null ||
    problems+=("the termination log is not the result printed on stdout")
  if [ ${#problems[@]} -eq 0 ]; then
    pass "worker: $op task as uid $RUNTIME_UID: Succeeded, valid COG $uri ($size bytes, checksum matches), STAC Item and manifest written"
    OUT_URI=$uri
  else
    fail "worker: $op task: $(IFS=';'; echo "${problems[*]}")"
    return 1
  fi
}

check_worker() {
  local c=$1 out
  out=$(in_image "$c" -- sh -c 'ls /usr/lib/*/libwebsockets.so* 2>/dev/null' | tr '\n' ' ') || true
  if [ -z "${out// /}" ]; then pass "worker: no libwebsockets (no HTTP server) in the image"
  else fail "worker: libwebsockets found in the worker image: $out"; fi
  out=$(in_image "$c" -- sh -c 'for f in /usr/share/gdal/gdalvrt.xsd /usr/share/gdal/pci_datum.txt /usr/share/proj/proj.db; do test -s "$f" || echo "$f"; done' | tr '\n' ' ') || true
  if [ -z "${out// /}" ]; then pass "worker: GDAL data (/usr/share/gdal) and PROJ database (/usr/share/proj/proj.db) present"
  else fail "worker: missing GDAL/PROJ data: $out"; fi

  CHECK_DIR=$(mktemp -d "$WORK/check.XXXXXX")
  mkdir -p "$CHECK_DIR/in" "$CHECK_DIR/out" "$CHECK_DIR/scratch"
  if ! make_dem "$CHECK_DIR/in/dem.tif" >"$LOGS/worker.dem.log" 2>&1; then
    fail "worker: could not generate the test DEM with python3-gdal: $(tail -n 2 "$LOGS/worker.dem.log")"
    return
  fi
  chown "$RUNTIME_UID:$RUNTIME_UID" "$CHECK_DIR/out" "$CHECK_DIR/scratch"
  chmod 0755 "$CHECK_DIR" "$CHECK_DIR/in"
  chmod 0644 "$CHECK_DIR/in/dem.tif"
  local t_start
  t_start=$(date +%s)
  sleep 1 # file times below are compared at one-second resolution
  OUT_URI=""
  if run_task "$c" dem-cog cog '{"compression":"DEFLATE","predictor":3,"blockSize":256}' /in/dem.tif; then
    run_task "$c" dem-slope terrain '{"mode":"slope","scale":1}' "$OUT_URI" || true
  fi
  out=$(find "$CHECK_DIR/scratch" -mindepth 1 | head -n 5 | tr '\n' ' ')
  if [ -z "$out" ]; then pass "worker: scratch directory left empty after the tasks"
  else fail "worker: files left in scratch: $out"; fi
  # Files in the image's root filesystem written since the tasks started,
  # except what buildah itself bind-mounts for each run.
  out=$(in_image --user 0:0 "$c" -- find / -xdev \
      \( -path /proc -o -path /sys -o -path /dev -o -path /in -o -path /out -o -path /scratch \
         -o -path /etc/hosts -o -path /etc/hostname -o -path /etc/resolv.conf -o -path /run/.containerenv \) -prune \
      -o -newermt "@$t_start" \( -type f -o -type l \) -print | head -n 10 | tr '\n' ' ') || true
  if [ -z "${out// /}" ]; then pass "worker: wrote nothing outside /scratch and the output directory (read-only root filesystem works)"
  else fail "worker: wrote into the image's root filesystem: $out"; fi
}

declare -A BUILT=()
for side in "${SIDES[@]}"; do
  img=${PREFIX}terrane-$side:$VERSION
  if [ "$side" = controller ] && [ ! -f controller/main.c ]; then
    fail "controller: controller/main.c does not exist yet, so terrane-controller cannot link: image $img NOT built"
    SUMMARY+=("controller  $img: NOT BUILT (controller/main.c missing)")
    continue
  fi
  t=$(date +%s)
  say "$side: building $img (log: ${LOGS#$ROOT/}/$side.build.log)"
  if ! build_image "$side" "$img"; then
    tail -n 25 "$LOGS/$side.build.log" | sed 's/^/    /'
    fail "$side: buildah bud -f Dockerfile.$side failed after $(since "$t") (see ${LOGS#$ROOT/}/$side.build.log)"
    SUMMARY+=("$(printf '%-11s' "$side") $img: BUILD FAILED")
    continue
  fi
  pass "$side: built $img ($(since "$t"))"
  BUILT[$side]=1
  tc=$(date +%s)
  say "$side: checks inside the image"
  check_config "$side" "$img" "$([ "$side" = worker ] && echo '["run"]' || echo 'null')"
  c=$(B from --pull=never --name "terrane-check-$side-$$" "$img")
  CONTAINERS+=("$c")
  check_runtime "$side" "$c"
  if [ "$side" = worker ]; then check_worker "$c"; else check_controller "$c"; fi
  B rm "$c" >/dev/null
  CONTAINERS=("${CONTAINERS[@]/$c}")
  SUMMARY+=("$(printf '%-11s' "$side") $img: built in $(since "$t") (checks $(since "$tc"))")
done

# --- 4b. the container-asset example's image (examples/ml) -------------------------
build_ml_example() {
  local img=${PREFIX}terrane-ml-example:$VERSION t c out
  t=$(date +%s)
  say "ml-example: building $img (log: ${LOGS#$ROOT/}/ml-example.build.log)"
  if ! B bud --isolation chroot --layers --pull=never --force-rm -f examples/ml/Dockerfile \
      --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$VERSION" -t "$img" examples/ml \
      >"$LOGS/ml-example.build.log" 2>&1; then
    tail -n 25 "$LOGS/ml-example.build.log" | sed 's/^/    /'
    fail "ml-example: buildah bud -f examples/ml/Dockerfile failed (see ${LOGS#$ROOT/}/ml-example.build.log)"
    SUMMARY+=("ml-example  $img: BUILD FAILED")
    return
  fi
  pass "ml-example: built $img ($(since "$t"))"
  c=$(B from --pull=never --name "terrane-check-ml-$$" "$img")
  CONTAINERS+=("$c")
  out=$(in_image "$c" -- sh -c 'echo "$(id -u):$(id -g)"') || true
  if [ "$out" = "$RUNTIME_UID:$RUNTIME_UID" ]; then pass "ml-example: runs as uid:gid $out"
  else fail "ml-example: runs as '$out', want $RUNTIME_UID:$RUNTIME_UID"; fi
  out=$(in_image "$c" -- /usr/bin/python3 -c 'import numpy, sklearn; from osgeo import gdal; print(sklearn.__version__)') || out=""
  if [ -n "$out" ]; then pass "ml-example: numpy, scikit-learn $out and GDAL's Python bindings import"
  else fail "ml-example: python3 imports failed: $(run_err)"; fi
  local rc=0
  in_image "$c" -- /usr/bin/python3 /app/flood_model.py >/dev/null || rc=$?
  if [ "$rc" = 64 ]; then pass "ml-example: flood_model.py runs (no subcommand: usage, exit 64)"
  else fail "ml-example: flood_model.py without a subcommand exited $rc, want 64: $(run_err)"; fi
  if out=$(in_image --user 0:0 "$c" -- sh -c 'ls /usr/local/bin/terrane-* 2>/dev/null') && [ -n "$out" ]; then
    fail "ml-example: Terrane binaries in the user's image: $out"
  else pass "ml-example: no Terrane code in the image"; fi
  B rm "$c" >/dev/null
  CONTAINERS=("${CONTAINERS[@]/$c}")
  SUMMARY+=("ml-example  $img: built in $(since "$t")")
}
if [ "$WHAT" = all ] || [ "$WHAT" = ml-example ]; then build_ml_example; fi

# --- 5. tidy up and report ------------------------------------------------------
# Images left untagged by this build (the previous version of a tag, an
# old build stage). What the next run can reuse is an ancestor of a tagged
# image: the base, PREFIXterrane-SIDE:VERSION, PREFIXterrane-SIDE-build:cache.
# Every stale image is untagged; each pass removes the leaves.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  [ -n "$(B rmi --prune 2>/dev/null)" ] || break
done

echo
say "summary"
for line in "${SUMMARY[@]}"; do echo "  $line"; done
echo
# Sizes of the base and of what this run built (uncompressed, as buildah
# counts them; the -build:cache images are build stages kept for next time).
want=("$BASE_IMAGE")
for side in "${!BUILT[@]}"; do want+=("${PREFIX}terrane-$side:$VERSION" "${PREFIX}terrane-$side-build:cache"); done
say "image sizes (uncompressed; -build:cache = build stage kept for the next run)"
B images --format '{{.Name}}:{{.Tag}} {{.Size}}' 2>/dev/null | sort |
  while read -r name size unit; do
    for w in "${want[@]}"; do
      if [ "$name" = "$w" ]; then printf '  %-45s %s %s\n' "$name" "$size" "$unit"; fi
    done
  done
echo "  storage: $(du -sh "$STORE/" 2>/dev/null | cut -f1) in ${STORE#$ROOT/} (vfs keeps one full copy per layer)"
if [ "$FAILED" -gt 0 ]; then
  echo
  say "failures:"
  for f in "${FAILURES[@]}"; do echo "  - $f"; done
fi
echo
say "took $(since "$T0")"
echo "images: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
