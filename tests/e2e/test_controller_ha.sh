#!/usr/bin/env bash
# test_controller_ha.sh - restarts and leader election:
#   - SIGKILL the controller while it creates pods, start a new one: every
#     asset reaches Ready and no pod is ever created twice (one pod per
#     asset, data version and attempt; here one attempt each);
#   - two controllers: only the Lease holder reconciles; SIGKILL it and the
#     standby takes over once the holder's last renewal is a lease duration
#     (3 s) old and within a retry period of that (the Lease's own times),
#     and finishes the work; SIGTERM releases the Lease at once.
. "$(dirname "$0")/lib.sh"
trap 'e2e_dump; _run_cleanups' EXIT

e2e_start
holder() { kubectl --kubeconfig "$KUBECONFIG" -n "$NS" get lease terrane-controller -o 'jsonpath={.spec.holderIdentity}' 2>/dev/null; }
holder_is() { [ "$(holder)" = "$1" ]; }
# Every (materialization, data version, attempt) has at most one pod, and
# every asset of the list ran exactly one; the observation pods of uri:
# inputs (terrane.io/source, one name per observation) are counted apart.
check_no_duplicates() {
  local out
  out=$(k get pods -o json | $PY -c '
import json, sys, collections
pods = json.load(sys.stdin)["items"]
seen = collections.Counter()
per_am = collections.Counter()
obs = collections.Counter()
for p in pods:
    l = p["metadata"]["labels"]
    if "terrane.io/source" in l:
        obs[l["terrane.io/source"]] += 1
        continue
    seen[(l["terrane.io/materialization"], l["terrane.io/data-version"], l["terrane.io/attempt"])] += 1
    per_am[l["terrane.io/materialization"]] += 1
dups = [k for k, n in seen.items() if n > 1]
extra = sorted(a for a, n in per_am.items() if n != 1)
reobserved = sorted(s for s, n in obs.items() if n != 1)
print("dups=%d extra=%s reobserved=%s total=%d" % (len(dups), ",".join(extra) or "-",
      ",".join(reobserved) or "-", len(pods)))')
  assert_contains "$out" "dups=0 extra=- reobserved=- " "no duplicate pods ($out)"
}

# --- SIGKILL mid-run, restart ---------------------------------------------------------------
# c1's API rate limit is low, so it is killed halfway through creating pods
# (before its first worker pod it creates and observes a source per uri: input)
ctl_start c1 --pod-gc-delay 600 --qps 8 --burst 2
wait_until 15 "c1 holds the Lease" holder_is c1
k apply -f "$E2E/testdata/many.yaml" -f "$E2E/testdata/graph.yaml" >/dev/null || fail "kubectl apply"
worker_pods() { k get pods -l terrane.io/materialization --no-headers 2>/dev/null | grep -c .; }
some_pods() { [ "$(worker_pods)" -ge 3 ]; }
wait_until 60 "c1 started creating pods" some_pods
ctl_kill c1
# c1 must really have been interrupted mid-graph: fewer pods than assets and
# assets not Ready yet, or the restart below would prove nothing.
total=$(cat "$E2E/testdata/many.yaml" "$E2E/testdata/graph.yaml" | grep -c '^kind: AssetMaterialization$')
created=$(worker_pods)
ready=$(k get am -o 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c '^True$')
echo "c1 killed with $created pods created, $ready of $total assets Ready"
[ "$created" -lt "$total" ] && [ "$ready" -lt "$total" ] && ok "c1 was killed mid-graph ($created pods, $ready/$total Ready)" ||
  fail "c1 was not killed mid-graph: $created pods, $ready/$total Ready"
ctl_start c2 --pod-gc-delay 600
# c1 never released the Lease: c2 waits for it to expire
wait_until 15 "c2 takes the Lease over from the killed c1" holder_is c2
if k wait --for=condition=Ready am --all --timeout=90s >/dev/null; then
  ok "every asset became Ready after the restart"
else
  fail "not every asset became Ready after the restart"
fi
check_no_duplicates
# (a 409 on a status write is expected now and then: the cache had not seen
# the controller's own last write yet; it is retried, never forced)
assert_eq 0 "$(grep -c '"msg":"pod create failed"\|"msg":"reconcile failed"' "$TMP/c2.log")" "c2 logged no failures"

# --- standby and failover ----------------------------------------------------------------------
ctl_start c3 --pod-gc-delay 600
wait_until 10 "c3 runs as a standby" grep -q '"msg":"caches synced"' "$TMP/c3.log"
k apply -f - >/dev/null <<'EOF'
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata:
  name: extra-1
spec:
  assetKey: test/extra_1
  operation: cog
  params: {blockSize: 1024}
  inputs:
    - name: dem
      uri: s3://raw/elev.tif
  output: {uri: s3://assets}
EOF
k wait --for=condition=Ready am/extra-1 --timeout=30s >/dev/null && ok "the leader handles new work" || fail "extra-1 not Ready"
assert_eq 0 "$(grep -c '"msg":"reconcile"' "$TMP/c3.log")" "the standby c3 reconciles nothing"
assert_eq c2 "$(holder)" "c2 still holds the Lease"

ctl_kill c2
# c2 is dead: the Lease's renewTime is its last renewal.
lease_json() { kubectl --kubeconfig "$KUBECONFIG" -n "$NS" get lease terrane-controller -o json; }
lease_json >"$TMP/lease-c2.json"
wait_until 30 "c3 takes over after c2 is killed" holder_is c3
lease_json >"$TMP/lease-c3.json"
# Lease semantics, in the Lease's own times rather than the wall clock of a
# loaded machine: c3 acquired only once c2's last renewal was a lease
# duration old (3 s), and within its retry period (1 s, jittered up to 1.2x)
# of that moment, plus the time a renewal request takes.
out=$($PY - "$TMP/lease-c2.json" "$TMP/lease-c3.json" <<'PY'
import datetime, json, sys
def t(s):
    return datetime.datetime.strptime(s.replace("Z", ""), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
a, b = (json.load(open(p))["spec"] for p in sys.argv[1:3])
gap = t(b["acquireTime"]) - t(a["renewTime"])
dur = a["leaseDurationSeconds"]
print("%.2f %d %s %s" % (gap, dur, a.get("leaseTransitions", 0), b.get("leaseTransitions", 0)))
sys.exit(0 if dur <= gap <= dur + 2 * 1.2 + 1.0 and b.get("leaseTransitions", 0) == a.get("leaseTransitions", 0) + 1 else 1)
PY
) && ok "c3 acquired the Lease $(echo "$out" | cut -d' ' -f1)s after c2's last renewal (lease duration 3 s, retry period 1 s), one more transition" ||
  fail "Lease takeover outside its semantics (gap, duration, transitions before/after): $out"
assert_eq c3 "$(holder)" "c3 holds the Lease"
k apply -f - >/dev/null <<'EOF'
apiVersion: terrane.io/v1alpha1
kind: AssetMaterialization
metadata:
  name: extra-2
spec:
  assetKey: test/extra_2
  operation: terrain
  params: {mode: hillshade}
  inputs:
    - name: dem
      from: extra-1
  output: {uri: s3://assets}
EOF
k wait --for=condition=Ready am/extra-2 --timeout=30s >/dev/null && ok "c3 finishes the work" || fail "extra-2 not Ready"
grep -q '"key":"hydro/extra-2"' "$TMP/c3.log" && ok "c3 reconciled extra-2" || fail "c3 did not reconcile extra-2"
check_no_duplicates

# --- SIGTERM releases the Lease --------------------------------------------------------------------
ctl_stop c3
assert_eq 0 "$CTL_RC" "c3 exits 0 on SIGTERM"
assert_eq "" "$(holder)" "the Lease was released"
finish
