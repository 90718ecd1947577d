#!/usr/bin/env bash
# make demo-stop: stops what `make demo` started — the controller, kubesim (and
# with it the worker processes of its pods) and the S3 server — by the process
# ids it recorded in .cache/demo/pids (DEMO_DIR moves it). Nothing else is
# touched; state and logs stay in .cache/demo until the next `make demo`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib-demo.sh"
demo_stop
