#!/usr/bin/env bash
# Installs what building, testing and the demo need, idempotently:
# Debian packages (only those missing; chromium is the browser the UI tests
# drive), npm packages (from package-lock.json: s3rver, esbuild and the UI's
# libraries, playwright-core),
# and the sample rasters shipped inside Debian's r-cran-terra and r-cran-stars
# packages (downloaded and unpacked, R itself is not installed).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(
  build-essential pkg-config clang libclang-rt-14-dev
  libgdal-dev gdal-bin python3-gdal python3-numpy python3-sklearn python3-yaml time
  libcurl4-openssl-dev libssl-dev libjansson-dev libcjson-dev libwebsockets-dev libyaml-dev
  libcmocka-dev nodejs npm ca-certificates openssl prometheus xxd chromium tzdata
  grass-core saga
  cppcheck clang-tidy clang-format valgrind bubblewrap
)
[ -n "${TERRANE_EXTRA_APT:-}" ] && APT_PKGS+=(${TERRANE_EXTRA_APT})

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

missing=()
for p in "${APT_PKGS[@]}"; do
  # node/npm may come from elsewhere (nvm, NodeSource): accept them on PATH.
  if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
  if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages: reinstall only when the lock file changed since the last install.
stamp=node_modules/.terrane-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "deps: installing npm packages"
  npm ci --omit=peer --no-audit --no-fund --loglevel=error >/dev/null 2>&1 || npm ci --omit=peer --no-audit --no-fund
  echo "$want" > "$stamp"
fi

# Sample rasters: unpack the two Debian packages into .cache/samples.
samples=.cache/samples
if [ ! -f "$samples/.done" ]; then
  echo "deps: fetching sample rasters (r-cran-terra, r-cran-stars)"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download r-cran-terra r-cran-stars >/dev/null 2>&1) || {
    $SUDO apt-get update -qq && (cd "$tmp" && apt-get download r-cran-terra r-cran-stars >/dev/null)
  }
  mkdir -p "$samples"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/x"; done
  cp "$tmp"/x/usr/lib/R/site-library/terra/ex/elev.tif "$samples/"
  cp "$tmp"/x/usr/lib/R/site-library/terra/ex/lux.{shp,shx,dbf,prj} "$samples/"
  cp "$tmp"/x/usr/lib/R/site-library/stars/tif/L7_ETMs.tif "$samples/"
  cp "$tmp"/x/usr/lib/R/site-library/stars/tif/olinda_dem_utm25s.tif "$samples/"
  rm -rf "$tmp"
  touch "$samples/.done"
fi
