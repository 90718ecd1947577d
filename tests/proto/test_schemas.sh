#!/usr/bin/env bash
# Checks the contract's JSON Schemas against its golden documents
# (proto/examples/): valid ones pass, invalid ones fail in the field their
# .field file names, results fit the 4096-byte termination message.
# Exit 0 pass, 77 skip (node or ajv missing), anything else fail.
set -uo pipefail
ROOT=${TERRANE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$ROOT" || exit 1
if ! command -v node >/dev/null; then
  echo "skip: node not installed (run scripts/deps.sh)"
  exit 77
fi
exec node tests/proto/validate.mjs "$ROOT"
