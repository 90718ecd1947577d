#!/usr/bin/env bash
# test_controller_faults.sh - worker pods killed by the simulated cluster
# (kubesim faults, testdata/faults.json):
#   - OOMKilled: the next attempt runs on the pool's oomEscalation pool
#     (cpu -> highmem) and counts as a retry;
#   - preempted: retried without consuming the retry budget;
#   - finished pods are garbage-collected after --pod-gc-delay, and the
#     failed ones once the asset has succeeded.
. "$(dirname "$0")/lib.sh"
trap 'e2e_dump; _run_cleanups' EXIT

e2e_start "$E2E/testdata/faults.json"
# The worker is slowed by a second so that the faults, which hit running
# containers, find it running; its subcommand stays last ("run", which
# observation pods replace with "observe").
MPORT=$(free_port)
WORKER_COMMAND="[\"/bin/sh\",\"-c\",\"sleep 1; exec \\\"\$0\\\" \\\"\$@\\\"\",\"$WORKER\",\"run\"]" \
  ctl_start ctl --pod-gc-delay 3 --leader-elect=false --metrics-addr "127.0.0.1:$MPORT"

k apply -f "$E2E/testdata/faults.yaml" >/dev/null || fail "kubectl apply faults.yaml"
if k wait --for=condition=Ready am/oom-cog am/pre-cog --timeout=90s >/dev/null; then
  ok "both assets became Ready despite the faults"
else
  fail "the faulted assets did not become Ready"
fi

# OOM: second attempt on highmem, counted
assert_eq 2 "$(am_get oom-cog '{.status.attempts}')" "oom-cog: two attempts"
assert_eq 1 "$(am_get oom-cog '{.status.retries}')" "oom-cog: the OOM kill counts as a retry"
assert_eq highmem "$(am_get oom-cog '{.status.pool}')" "oom-cog: the last attempt ran on highmem"
node=$(am_get oom-cog '{.status.node}')
assert_eq highmem "$(kubectl --kubeconfig "$KUBECONFIG" get node "$node" -o 'jsonpath={.metadata.labels.terrane\.io/pool}' 2>/dev/null)" \
  "oom-cog: status.node ($node) is a highmem node"
ev=$(k get events --field-selector involvedObject.name=oom-cog,reason=OOMKilled -o 'jsonpath={.items[*].message}' 2>&1)
assert_contains "$ev" "OOMKilled on pool cpu; retrying on pool highmem" "oom-cog: Event Warning OOMKilled"

# preemption: retried, not counted
assert_eq 2 "$(am_get pre-cog '{.status.attempts}')" "pre-cog: two attempts"
assert_eq 0 "$(am_get pre-cog '{.status.retries}')" "pre-cog: preemption does not count as a retry"
ev=$(k get events --field-selector involvedObject.name=pre-cog,reason=Disrupted -o 'jsonpath={.items[*].message}' 2>&1)
assert_contains "$ev" "not counted" "pre-cog: Event Warning Disrupted"

# the same story in the metrics: attempts and retries by reason
metric() { # NAME_AND_LABELS: the sample's value, or 0
  curl -sf "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" 'index($0, m " ") == 1 {print $2; f=1} END {if (!f) print 0}'
}
assert_eq 1 "$(metric 'terrane_attempts_total{pool="cpu",reason="OOMKilled"}')" "metrics: one OOMKilled attempt on cpu"
assert_eq 1 "$(metric 'terrane_retries_total{reason="OOMKilled"}')" "metrics: one retry after an OOM kill"
assert_eq 1 "$(metric 'terrane_attempts_total{pool="cpu",reason="Preempted"}')" "metrics: one preempted attempt on cpu"
assert_eq 1 "$(metric 'terrane_retries_total{reason="Preempted"}')" "metrics: one retry after a preemption"
assert_eq 1 "$(metric 'terrane_attempts_total{pool="highmem",reason="Succeeded"}')" "metrics: the OOM retry succeeded on highmem"

# garbage collection: the failed first attempts go once the assets succeed,
# the successful ones --pod-gc-delay (3 s) after they finished
no_pods() { [ -z "$( (pods_of oom-cog; pods_of pre-cog) | tr -d '[:space:]')" ]; }
wait_until 20 "finished and failed pods were garbage-collected" no_pods
grep -q '"msg":"pod deleted".*"why":"finished"' "$TMP/ctl.log" && ok "the controller logged the deletions" ||
  fail "no pod deletion in the log"
# and the outputs stay
if s3_exists "$(am_get oom-cog '{.status.output.uri}')"; then ok "published data is kept"; else fail "output gone"; fi
finish
