# tests/lib/base.sh - the base every shell test sources (directly, or through
# tests/lib/common.sh or tests/install/lib.sh): ROOT, TMP (removed on exit),
# at_exit, ok/fail/finish/skip, assert_eq/assert_contains, json_get, free_port,
# prom_start. It needs nothing built.
set -uo pipefail
ROOT=${TERRANE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/terrane-test.XXXXXX")
_cleanups=()
_run_cleanups() {
  local i
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[$i]}" || true; done
  rm -rf "$TMP"
}
trap _run_cleanups EXIT
at_exit() { _cleanups+=("$1"); }

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
# Ends the test: exit 1 if any check failed.
finish() { if [ "$fails" -gt 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi; echo "all checks passed"; exit 0; }
skip() { echo "skip: $*"; exit 77; }
assert_eq() { # expected actual what
  if [ "$1" == "$2" ]; then ok "$3"; else fail "$3: expected '$1', got '$2'"; fi
}
assert_contains() { # haystack needle what
  if [[ "$1" == *"$2"* ]]; then ok "$3"; else fail "$3: '$2' not in: ${1:0:600}"; fi
}
# json_get FILE_OR_- EXPR: prints a value from JSON with a Python expression on `d`.
json_get() {
  /usr/bin/python3 -c 'import json,sys
src=sys.argv[1]; d=json.load(sys.stdin if src=="-" else open(src))
v=eval(sys.argv[2])
print(json.dumps(v) if isinstance(v,(dict,list)) else ("" if v is None else str(v).lower() if isinstance(v,bool) else v))' "$1" "$2"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts a Prometheus server on a free loopback port scraping TARGET
# (host:port) every second. Sets PROM_PORT and PROM_API; stopped at exit.
prom_start() { # TARGET
  PROM_PORT=$(free_port)
  printf 'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: terrane\n    static_configs:\n      - targets: ["%s"]\n' "$1" >"$TMP/prometheus.yml"
  prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prom-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$TMP/prometheus.log" 2>&1 &
  PROM_PID=$!
  at_exit 'kill $PROM_PID 2>/dev/null; wait $PROM_PID 2>/dev/null'
  PROM_API=http://127.0.0.1:$PROM_PORT/api/v1
}
