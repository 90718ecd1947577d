/*
 * lease.h - leader election on a coordination.k8s.io/v1 Lease.
 *
 * As client-go's leaderelection: a candidate acquires the Lease when it is
 * free or its holder has not renewed within leaseDurationSeconds, renews it
 * every retry period, and steps down if it cannot renew within the renew
 * deadline. Updates use the Lease's resourceVersion, so two candidates never
 * both win. Defaults: lease 15 s, renew deadline 10 s, retry 2 s.
 * Callbacks run on the elector's thread.
 */
#ifndef KUBE_LEASE_H
#define KUBE_LEASE_H

#include "kube/kube.h"

#include <stdbool.h>

typedef struct lease_config {
    const char *ns;
    const char *name;
    const char *identity; /* unique per process: hostname + pid */
    int lease_duration_s; /* 15 */
    int renew_deadline_s; /* 10 */
    int retry_period_s;   /* 2 */
    void (*on_started_leading)(void *ctx);
    void (*on_stopped_leading)(void *ctx);
    void (*on_new_leader)(void *ctx, const char *identity);
    void *ctx;
} lease_config;

typedef struct lease_elector lease_elector;

int lease_new(kube_client *c, const lease_config *cfg, lease_elector **out);
int lease_start(lease_elector *e);
bool lease_is_leader(lease_elector *e);
/* Stops the elector; release: when leading, hand the Lease back (clear the
 * holder) so a standby takes over at once instead of after the lease expires. */
void lease_stop(lease_elector *e, bool release);
void lease_free(lease_elector *e);

#endif
