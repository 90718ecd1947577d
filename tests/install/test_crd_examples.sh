#!/usr/bin/env bash
# The CRD's examples and its negative cases against the CRD's openAPIV3Schema
# with ajv (tests/install/crd_check.mjs): crds/examples/*.yaml are valid
# (schema, the CEL rule has(self.from) != has(self.uri), list-map keys,
# upstream graph, and the worker Task contract for their params); each
# tests/install/crd-invalid/*.yaml is rejected for the reason its first line
# states; helm/terrane/crds/ holds the same CRD file as crds/.
# Exit 0 pass, 77 skip (node, ajv or kubectl missing), anything else fail.
. "$(dirname "$0")/lib.sh"
command -v node >/dev/null || skip "node not installed (run scripts/deps.sh)"
need_kubectl
cd "$ROOT" || exit 1
exec node tests/install/crd_check.mjs "$ROOT"
