/*
 * lease.c - leader election on a coordination.k8s.io/v1 Lease (see
 * lease.h), with client-go's leaderelection semantics:
 *
 *  - The Lease's spec is the election record: holderIdentity,
 *    leaseDurationSeconds, acquireTime, renewTime (metav1.MicroTime) and
 *    leaseTransitions. It is created when absent.
 *  - Expiry is judged on the LOCAL clock: a candidate notes when it last
 *    saw the record change (observed time, CLOCK_MONOTONIC) and takes the
 *    Lease over once leaseDurationSeconds pass without a change. The
 *    holder's renewTime is never compared with our wall clock, so clock
 *    skew between nodes does not matter.
 *  - Every write is a PUT carrying the resourceVersion just read: of two
 *    candidates racing for a free Lease, one gets 409 Conflict and reads
 *    again next round.
 *  - The leader renews every retry period; when it cannot renew within the
 *    renew deadline, or sees another holder, it steps down
 *    (on_stopped_leading) and campaigns again. Each request is bounded by
 *    the time left (kube_set_thread_timeout), so one hung request cannot
 *    keep a stale leader believing it leads past the deadline.
 *  - lease_stop(release) hands the Lease back like client-go's
 *    ReleaseOnCancel: holderIdentity "" and leaseDurationSeconds 1, so a
 *    standby takes over on its next retry.
 *
 * One thread per elector runs the loop and the callbacks.
 */
#include "kube/lease.h"

#include "kube/kobj.h"
#include "kube/ratelimit.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JITTER 1.2 /* client-go's JitterFactor for the acquire loop */

struct lease_elector {
    kube_client *c;
    char *ns, *name, *identity;
    uint64_t lease_ns, renew_ns, retry_ns;
    void (*on_started)(void *);
    void (*on_stopped)(void *);
    void (*on_new_leader)(void *, const char *);
    void *ctx;

    pthread_t thread;
    bool started;
    atomic_bool stop, release, leader;
    _Atomic uint64_t last_renew; /* monotonic ns of the last successful renew */
    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* elector thread only */
    json_t *lease;        /* the Lease as last read or written (its resourceVersion) */
    char *observed;       /* the record as a string, to notice changes */
    uint64_t observed_at; /* monotonic ns when it last changed */
    char *reported;       /* the holder last passed to on_new_leader */
    uint64_t rng;
};

static uint64_t now_ns(void)
{
    return ratelimit_now();
}

static bool nap(lease_elector *e, uint64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_nsec + ns;
    ts.tv_sec += (time_t)(t / RATELIMIT_S);
    ts.tv_nsec = (long)(t % RATELIMIT_S);
    pthread_mutex_lock(&e->mu);
    while (!atomic_load(&e->stop))
        if (pthread_cond_timedwait(&e->cv, &e->mu, &ts) != 0) break;
    pthread_mutex_unlock(&e->mu);
    return !atomic_load(&e->stop);
}

static double rand01(lease_elector *e)
{
    uint64_t x = e->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    e->rng = x;
    return (double)(x >> 11) / 9007199254740992.0;
}

static const char *spec_str(const json_t *spec, const char *key)
{
    const json_t *v = json_object_get(spec, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

static long long spec_int(const json_t *spec, const char *key)
{
    const json_t *v = json_object_get(spec, key);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* Keeps lease (a new reference is taken) and notes when its record changed. */
static int observe(lease_elector *e, json_t *lease, uint64_t now)
{
    const json_t *spec = json_object_get(lease, "spec");
    char *rec = cmem_printf("%s|%lld|%s|%s|%lld", spec_str(spec, "holderIdentity"),
                            spec_int(spec, "leaseDurationSeconds"), spec_str(spec, "acquireTime"),
                            spec_str(spec, "renewTime"), spec_int(spec, "leaseTransitions"));
    if (!rec) return cerr_oom();
    if (!e->observed || strcmp(rec, e->observed) != 0) {
        cmem_free(e->observed);
        e->observed = rec;
        e->observed_at = now;
    } else {
        cmem_free(rec);
    }
    json_decref(e->lease);
    e->lease = json_incref(lease);
    const char *holder = spec_str(spec, "holderIdentity");
    if (holder[0] && (!e->reported || strcmp(holder, e->reported) != 0)) {
        char *h = cmem_strdup(holder);
        if (h) {
            cmem_free(e->reported);
            e->reported = h;
            if (e->on_new_leader) e->on_new_leader(e->ctx, holder);
        }
    }
    return 0;
}

/* spec fields for holding the Lease from now. */
static int fill_spec(lease_elector *e, json_t *spec, const char *holder, long long duration_s,
                     bool keep_acquire, long long transitions)
{
    struct timespec ts;
    char now[KOBJ_MICROTIME_LEN];
    clock_gettime(CLOCK_REALTIME, &ts);
    int rc = kobj_microtime_format(&ts, now);
    if (rc) return rc;
    if (json_object_set_new(spec, "holderIdentity", json_string(holder)) ||
        json_object_set_new(spec, "leaseDurationSeconds", json_integer(duration_s)) ||
        json_object_set_new(spec, "renewTime", json_string(now)) ||
        (!keep_acquire && json_object_set_new(spec, "acquireTime", json_string(now))) ||
        json_object_set_new(spec, "leaseTransitions", json_integer(transitions)))
        return cerr_oom();
    (void)e;
    return 0;
}

/* One round of client-go's tryAcquireOrRenew. *held: we hold the Lease
 * now; *other: someone else holds it and it has not expired. */
static int try_acquire_or_renew(lease_elector *e, bool *held, bool *other)
{
    int rc;
    json_t *cur = NULL, *next = NULL, *written = NULL;
    long long lease_s = (long long)(e->lease_ns / RATELIMIT_S);
    *held = *other = false;
    rc = kube_get(e->c, &KUBE_LEASES, e->ns, e->name, &cur);
    if (rc == CERR_NOTFOUND) {
        next = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{}}", "apiVersion", "coordination.k8s.io/v1",
                         "kind", "Lease", "metadata", "name", e->name, "namespace", e->ns, "spec");
        if (!next) {
            rc = cerr_oom();
            goto cleanup;
        }
        if ((rc = fill_spec(e, json_object_get(next, "spec"), e->identity, lease_s, false, 0)))
            goto cleanup;
        if ((rc = kube_create(e->c, &KUBE_LEASES, e->ns, next, &written))) goto cleanup;
        if ((rc = observe(e, written, now_ns()))) goto cleanup;
        *held = true;
        goto cleanup;
    }
    if (rc) goto cleanup;
    uint64_t now = now_ns();
    if ((rc = observe(e, cur, now))) goto cleanup;
    const json_t *spec = json_object_get(cur, "spec");
    const char *holder = spec_str(spec, "holderIdentity");
    long long dur = spec_int(spec, "leaseDurationSeconds");
    uint64_t dur_ns = dur > 0 ? (uint64_t)dur * RATELIMIT_S : e->lease_ns;
    bool mine = strcmp(holder, e->identity) == 0;
    if (holder[0] && !mine && now < e->observed_at + dur_ns) {
        *other = true; /* held and renewed within its duration, as far as we can tell */
        goto cleanup;
    }
    if (!(next = json_deep_copy(cur))) {
        rc = cerr_oom();
        goto cleanup;
    }
    json_t *nspec = json_object_get(next, "spec");
    if (!json_is_object(nspec)) {
        if (json_object_set_new(next, "spec", json_object())) {
            rc = cerr_oom();
            goto cleanup;
        }
        nspec = json_object_get(next, "spec");
    }
    long long transitions = spec_int(spec, "leaseTransitions");
    if ((rc =
             fill_spec(e, nspec, e->identity, lease_s, mine, mine ? transitions : transitions + 1)))
        goto cleanup;
    /* Conditional on the resourceVersion read above: 409 if anyone wrote since. */
    if ((rc = kube_update(e->c, &KUBE_LEASES, next, &written))) goto cleanup;
    if ((rc = observe(e, written, now_ns()))) goto cleanup;
    *held = true;
cleanup:
    json_decref(cur);
    json_decref(next);
    json_decref(written);
    return rc;
}

/* ReleaseOnCancel: an empty holder with a 1 s duration, same transitions. */
static void release_lease(lease_elector *e)
{
    json_t *next = NULL, *written = NULL;
    if (!e->lease) return;
    const json_t *spec = json_object_get(e->lease, "spec");
    if (strcmp(spec_str(spec, "holderIdentity"), e->identity) != 0) return;
    if (!(next = json_deep_copy(e->lease))) return;
    json_t *nspec = json_object_get(next, "spec");
    kube_set_thread_timeout((long)(e->renew_ns / RATELIMIT_MS));
    if (json_is_object(nspec) &&
        fill_spec(e, nspec, "", 1, false, spec_int(spec, "leaseTransitions")) == 0 &&
        kube_update(e->c, &KUBE_LEASES, next, &written) == 0)
        observe(e, written, now_ns());
    kube_set_thread_timeout(0);
    json_decref(next);
    json_decref(written);
}

static void set_leader(lease_elector *e, bool on)
{
    atomic_store(&e->leader, on);
    if (on && e->on_started) e->on_started(e->ctx);
    if (!on && e->on_stopped) e->on_stopped(e->ctx);
}

static void *run(void *arg)
{
    lease_elector *e = arg;
    bool held, other;
    while (!atomic_load(&e->stop)) {
        /* Campaign: every retry period, with client-go's jitter. */
        for (;;) {
            kube_set_thread_timeout((long)(e->renew_ns / RATELIMIT_MS));
            try_acquire_or_renew(e, &held, &other);
            if (held || atomic_load(&e->stop)) break;
            if (!nap(e, (uint64_t)((double)e->retry_ns * (1.0 + rand01(e) * JITTER)))) break;
        }
        if (!held || atomic_load(&e->stop)) break;
        atomic_store(&e->last_renew, now_ns());
        set_leader(e, true);

        /* Lead: renew every retry period; give up after the renew deadline
         * without success, or at once when another holder shows up. */
        bool lost = false;
        while (!lost && nap(e, e->retry_ns)) {
            for (;;) {
                uint64_t deadline = atomic_load(&e->last_renew) + e->renew_ns, now = now_ns();
                if (now >= deadline) {
                    lost = true;
                    break;
                }
                kube_set_thread_timeout((long)((deadline - now) / RATELIMIT_MS) + 1);
                try_acquire_or_renew(e, &held, &other);
                if (held) {
                    atomic_store(&e->last_renew, now_ns());
                    break;
                }
                if (other || atomic_load(&e->stop)) {
                    lost = other;
                    break;
                }
                uint64_t left = deadline > now_ns() ? deadline - now_ns() : 0;
                if (!nap(e, left < e->retry_ns ? left : e->retry_ns)) break;
            }
        }
        if (atomic_load(&e->stop)) break;
        set_leader(e, false);
    }
    kube_set_thread_timeout(0);
    if (atomic_load(&e->leader)) {
        if (atomic_load(&e->release)) release_lease(e);
        set_leader(e, false);
    }
    return NULL;
}

int lease_new(kube_client *c, const lease_config *cfg, lease_elector **out)
{
    lease_elector *e = NULL;
    *out = NULL;
    if (!c || !cfg || !cfg->ns || !cfg->ns[0] || !cfg->name || !cfg->name[0] || !cfg->identity ||
        !cfg->identity[0])
        return cerr_set(CERR_INVALID, "lease: namespace, name and identity are required");
    int lease_s = cfg->lease_duration_s > 0 ? cfg->lease_duration_s : 15;
    int renew_s = cfg->renew_deadline_s > 0 ? cfg->renew_deadline_s : 10;
    int retry_s = cfg->retry_period_s > 0 ? cfg->retry_period_s : 2;
    /* client-go's checks: otherwise a healthy leader could lose the Lease
     * between two renewals. */
    if (lease_s <= renew_s)
        return cerr_set(CERR_INVALID,
                        "lease: lease duration (%d s) must exceed the renew deadline (%d s)",
                        lease_s, renew_s);
    if ((double)renew_s <= JITTER * retry_s)
        return cerr_set(CERR_INVALID,
                        "lease: renew deadline (%d s) must exceed %.1f x the retry period (%d s)",
                        renew_s, JITTER, retry_s);
    if (!(e = cmem_calloc(1, sizeof *e))) return cerr_oom();
    e->c = c;
    e->lease_ns = (uint64_t)lease_s * RATELIMIT_S;
    e->renew_ns = (uint64_t)renew_s * RATELIMIT_S;
    e->retry_ns = (uint64_t)retry_s * RATELIMIT_S;
    e->on_started = cfg->on_started_leading;
    e->on_stopped = cfg->on_stopped_leading;
    e->on_new_leader = cfg->on_new_leader;
    e->ctx = cfg->ctx;
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e->rng = ((uint64_t)ts.tv_nsec << 21) ^ (uint64_t)(uintptr_t)e ^ (uint64_t)ts.tv_sec;
    if (!e->rng) e->rng = 0x9E3779B97F4A7C15ull;
    if (!(e->ns = cmem_strdup(cfg->ns)) || !(e->name = cmem_strdup(cfg->name)) ||
        !(e->identity = cmem_strdup(cfg->identity))) {
        lease_free(e);
        return cerr_oom();
    }
    *out = e;
    return 0;
}

int lease_start(lease_elector *e)
{
    if (e->started) return cerr_set(CERR_INVALID, "lease %s/%s: already started", e->ns, e->name);
    atomic_store(&e->stop, false);
    atomic_store(&e->release, false);
    int err = pthread_create(&e->thread, NULL, run, e);
    if (err)
        return cerr_set(CERR_ERROR, "lease %s/%s: pthread_create: %s", e->ns, e->name,
                        strerror(err));
    e->started = true;
    return 0;
}

bool lease_is_leader(lease_elector *e)
{
    /* Also false once the renew deadline has passed without a renewal,
     * even before the elector thread has noticed. */
    return atomic_load(&e->leader) && now_ns() < atomic_load(&e->last_renew) + e->renew_ns;
}

void lease_stop(lease_elector *e, bool release)
{
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    atomic_store(&e->release, release);
    atomic_store(&e->stop, true);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->started) {
        pthread_join(e->thread, NULL);
        e->started = false;
    }
}

void lease_free(lease_elector *e)
{
    if (!e) return;
    lease_stop(e, false);
    json_decref(e->lease);
    cmem_free(e->observed);
    cmem_free(e->reported);
    cmem_free(e->ns);
    cmem_free(e->name);
    cmem_free(e->identity);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    cmem_free(e);
}
