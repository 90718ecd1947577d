/*
 * retries.h - every retry and backoff in Terrane, and where each is
 * decided. Documentation only: each value lives (as a #define or a
 * configuration default) in the file named, next to the code that uses
 * it; change it there and here together.
 *
 * Layers, from the wire up: a request is retried inside the API client;
 * a failed list or watch is resumed by the informer; a failed reconcile
 * is requeued by the work queue; a failed worker attempt is retried by
 * the reconciler through the AssetMaterialization's retry policy; inside
 * a worker, GDAL and the credential client retry their own HTTP calls.
 * Nothing retries a decision the layer above makes again anyway, so the
 * waits do not multiply: the API client gives up after a few seconds and
 * lets the work queue's backoff take over.
 */
/* clang-format off */
/*
 *  what                             when                              how long / how often                        decided in
 *  -------------------------------  --------------------------------  ------------------------------------------  ---------------------------------------
 *  API client: 429 Too Many         any verb (the server did not      Retry-After (1 s if absent, at most         kube/kube.c do_request: RETRIES_429 5,
 *    Requests                         process it)                       RETRY_AFTER_MAX_S 30 s), up to 5 times      RETRY_AFTER_MAX_S
 *  API client: 5xx (not 501)        reads only (GET, LIST: a write     200 ms x 2^n or Retry-After, up to 2 times  kube/kube.c do_request: RETRIES_5XX 2
 *                                     may have been applied)
 *  API client: lost connection,     reads only                        200 ms x 2^n, up to 2 times                 kube/kube.c do_request: RETRIES_5XX
 *    timeout
 *  API client: client-side rate     every request                     token bucket, --qps 50 / --burst 100        kube/ratelimit.c; main.c flags;
 *    limit                                                                                                          kube/kubeconfig.c defaults
 *  API client: per-request timeout  every request but watches         30 s (connect 10 s)                         kube/kubeconfig.c DEFAULT_TIMEOUT_MS,
 *                                                                                                                   kube/kube.c CONNECT_TIMEOUT_MS
 *  list pages: continue token       a paged LIST answered 410         one unpaginated LIST, once                  kube/kube.c kube_list
 *    expired
 *  informer: list or watch fails    any error                         250 ms x 2 .. 30 s, +20 % jitter; reset     kube/informer.c BACKOFF_MIN, BACKOFF_MAX,
 *                                                                       after a watch that delivered events         back_off
 *  informer: watch ends             server timeout (5..10 min,        at once, from the last resourceVersion      kube/informer.c WATCH_TIMEOUT_MIN_S, run
 *                                     client-chosen)
 *  informer: 410 Gone, lost event   resourceVersion compacted, an     relist at once (410) or after the backoff   kube/informer.c run, on_watch_event
 *                                     undecodable event
 *  informer: resync                 every --resync s (300)            on_update(obj, obj) for every object        kube/informer.c resync; main.c flag
 *  work queue: reconcile failed     API error, 409 Conflict, OOM       per key 5 ms x 2^n .. 1000 s, and an        kube/wq.c, kube/ratelimit.h
 *                                                                       overall 10 qps / burst 100 bucket           RATELIMIT_DEFAULT_*; executor.c
 *                                                                       (the larger); reset on success              executor_process (wq_add_rate_limited)
 *  work queue: timed requeue        a plan's requeue_after_s (GC      the plan's delay                            reconcile.c requeue_in; executor.c
 *                                     due, backoff due)                                                             (wq_add_after)
 *  attempt: worker failed           exit 70 Internal, 75 Transient,   spec.retries.backoffSeconds (30, at most    reconcile.c materialize, MAX_BACKOFF_S;
 *                                     other failures                    3600) x 2^retries, capped at 24 h; up to    spec.h SPEC_RETRY_LIMIT_DEFAULT 3,
 *                                                                       spec.retries.limit (3, at most 20)          SPEC_RETRY_LIMIT_MAX, SPEC_BACKOFF_*
 *  attempt: OOMKilled               the container's last state (a     next attempt at once on the pool's          reconcile.c materialize; pools.c
 *                                     container asset: its user step)   oomEscalation pool; counts as a retry      (oomEscalation); podctr.c
 *  attempt: disrupted               preempted, evicted, node lost     next attempt at once, not counted           reconcile.c classify, disruption_kind
 *  attempt: bad input               exit 65 (EX_DATAERR), also of a   never: Failed / BadInput                    reconcile.c classify, classify_step;
 *                                     container asset's fetch or user                                               proto/terrane_proto.h TERRANE_EXIT_*
 *                                     step (ChecksumMismatch, ...)
 *  attempt: invalid result          exit 0 with a Result that fails   as an Internal failure (backoff above)      reconcile.c record_success
 *                                     the schema
 *  pod garbage collection           finished pods                     --pod-gc-delay s (60) after they end        reconcile.c collect_garbage; main.c flag
 *  leader election                  acquire / renew                   try every --retry-period (2 s) x up to 1.2  kube/lease.c JITTER; main.c flags
 *                                                                       (acquire); give up after --renew-deadline
 *                                                                       (10 s); others wait --lease-duration (15 s)
 *  Events                           post fails                        dropped after one try (5 s timeout); the    kube/events.c REQUEST_TIMEOUT_MS,
 *                                                                       same Event is aggregated for 10 min         AGGREGATE_S
 *  worker: S3 and HTTP reads        GDAL's /vsis3/, /vsicurl/          GDAL_HTTP_MAX_RETRY 3, GDAL_HTTP_RETRY_     worker/main.c (unless set in the
 *                                                                       DELAY 1 s (GDAL doubles it)                 environment)
 *  worker: credentials              EKS Pod Identity agent at start;   0.5, 1, 2 s between 4 tries at start;       worker/creds.c START_ATTEMPTS,
 *                                     refresh before expiry             failed refreshes back off to 60 s           REFRESH_BACKOFF_MAX
 *  worker: anything else fails      S3 errors a retry heals, scratch  exit 75 Transient: the attempt backoff      worker/publish.c (classification),
 *                                     space, network                    above decides                               worker/main.c
 */
/* clang-format on */
#ifndef TERRANE_RETRIES_H
#define TERRANE_RETRIES_H
#endif
