/*
 * selfpod.h - the digest of the user's image, read from the worker's own pod.
 *
 * A container asset's publish-outputs step runs after the user's step, in
 * the same pod; the kubelet reports the digest it ran (imageID) in the pod's
 * status.initContainerStatuses. The step reads its own pod from the
 * Kubernetes API so that the manifest records that digest, not only the
 * controller's status:
 *
 *   GET https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
 *       /api/v1/namespaces/$TERRANE_POD_NAMESPACE/pods/$TERRANE_POD_NAME
 *
 * with the bearer token in $TERRANE_KUBE_TOKEN_FILE and the cluster's CA in
 * $TERRANE_KUBE_CA_FILE. The controller mounts that token (a projected
 * service account token) into the worker container only, never into the
 * user's, and the chart grants the worker's ServiceAccount `get` on pods in
 * its namespace and nothing else. The status can trail the container's
 * start, so an empty imageID is asked again (every SELFPOD_POLL_MS, for at
 * most SELFPOD_WAIT_MS). Main thread only.
 */
#ifndef TERRANE_SELFPOD_H
#define TERRANE_SELFPOD_H

#include <stddef.h>

#define SELFPOD_ENV_NAME "TERRANE_POD_NAME"
#define SELFPOD_ENV_NAMESPACE "TERRANE_POD_NAMESPACE"
#define SELFPOD_ENV_TOKEN "TERRANE_KUBE_TOKEN_FILE"
#define SELFPOD_ENV_CA "TERRANE_KUBE_CA_FILE"
#define SELFPOD_BODY_MAX (4u << 20) /* a pod object is at most ~1.5 MiB in etcd */
#define SELFPOD_IMAGE_ID_MAX 512
#define SELFPOD_POLL_MS 250
#define SELFPOD_WAIT_MS 30000

/* The imageID of container `container` in initContainerStatuses of the pod
 * JSON body (n bytes, untrusted): 1 and out filled (at most cap - 1 bytes)
 * when present and non-empty, 0 when the status has no imageID for it yet,
 * -1 with the error set (Transient, PodStatusUnavailable) when body is not
 * a pod or the imageID is longer than SELFPOD_IMAGE_ID_MAX. No I/O. Fuzzed
 * by tests/fuzz/fuzz_w_selfpod.c. */
int selfpod_parse(const char *body, size_t n, const char *container, char *out, size_t cap);

/* The imageID of `container` in the worker's own pod: 1 with out filled, 0
 * when the step does not run in a pod that says how to read it
 * (TERRANE_POD_NAME unset: a step run by hand; no KUBERNETES_SERVICE_HOST /
 * KUBERNETES_SERVICE_PORT, which every kubelet sets: logged), -1 with the error set
 * (Transient, PodStatusUnavailable) when the API cannot be read or reports
 * no imageID within SELFPOD_WAIT_MS. */
int selfpod_image_id(const char *container, char *out, size_t cap);

#endif
