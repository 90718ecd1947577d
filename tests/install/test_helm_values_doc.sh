#!/usr/bin/env bash
# helm/terrane/README.md's table lists exactly the values of values.yaml, in
# order, with the type values.schema.json gives, the default Helm reads and the
# comment above the key (tests/install/values_doc.py; regenerate the table
# with `python3 tests/install/values_doc.py --write`).
# Exit 0 pass, 77 skip (no helm), anything else fail.
. "$(dirname "$0")/lib.sh"
need_helm
"$PY" "$HERE/values_doc.py" --helm "$HELM" || fail "README values table out of date"
finish
