/*
 * podctr.h - the pod of a container asset (operation: container), and
 * reading its steps back (proto/README.md, "Container assets").
 *
 * podspec_build makes the usual one-container worker pod; podctr_shape
 * turns it into three steps the kubelet runs in order (on every
 * Kubernetes version from 1.27: init containers run one after the other
 * and the first failure fails a restartPolicy Never pod):
 *
 *   initContainers[0] "fetch"   the worker image, `<command> fetch`: every
 *                               input to /inputs/<name>/<file>, checked
 *                               against inputs[].checksum
 *   initContainers[1] "user"    params.image with params.command / args /
 *                               workingDir / env and the TERRANE_INPUT_*,
 *                               TERRANE_OUTPUT_DIR, TERRANE_ASSET_KEY,
 *                               TERRANE_DATA_VERSION variables; the pool's
 *                               resources (GPU included); no task, no
 *                               worker environment (no S3 credentials)
 *   containers[0] "worker"      the worker image, `<command> publish-outputs`:
 *                               its termination message is the Result, as
 *                               for every pod
 *
 * <command> is the configured worker command with its last element "run"
 * replaced by the step's subcommand (appended when it does not end in
 * "run"). The worker steps get small fixed resources (PODCTR_STEP_*); the
 * pod's effective request is the largest init container's, so the user's
 * request is what schedules it. Volumes: emptyDirs inputs, outputs and
 * scratch, and kube-api: a projected service account token (one hour) and
 * the cluster's CA (ConfigMap kube-root-ca.crt), mounted read-only into the
 * worker container only, with TERRANE_POD_NAME / TERRANE_POD_NAMESPACE from
 * the Downward API, so that publish-outputs can read the user's imageID
 * from its own pod (worker/selfpod.h); the pod keeps
 * automountServiceAccountToken: false, so the user's container has no
 * token. The annotation eks.amazonaws.com/skip-containers: user keeps the
 * EKS pod identity webhook from giving the user's container the role.
 *
 * Readers are lenient like status.h's: a field of the wrong type reads as
 * absent; strings are borrowed from the pod. Pure, any thread. jansson
 * rule: parameters are borrowed.
 */
#ifndef TERRANE_PODCTR_H
#define TERRANE_PODCTR_H

#include "podspec.h"
#include "spec.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define PODCTR_OPERATION "container"
#define PODCTR_FETCH "fetch"
#define PODCTR_USER "user"
#define PODCTR_INPUTS "/inputs"
#define PODCTR_OUTPUTS "/outputs"
#define PODCTR_STEP_CPU "250m"
#define PODCTR_STEP_MEMORY "256Mi"
#define PODCTR_STEP_MEMORY_LIMIT "512Mi"
#define PODCTR_SKIP_CONTAINERS "eks.amazonaws.com/skip-containers"
#define PODCTR_FILE_MAX 128
#define PODCTR_KUBE_API_VOLUME "kube-api"
#define PODCTR_KUBE_API_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* Rewrites pod (podspec_build's, for a Task whose operation is container)
 * into the three steps. 0, CERR_INVALID (the pod is not podspec's shape or
 * the task has no params.image), CERR_NOMEM. */
int podctr_shape(const podspec_config *cfg, const podspec_attempt *a, json_t *pod);

/* The file name fetch gives an input: the URI's last '/'-segment before
 * '?' / '#' when it is 1..PODCTR_FILE_MAX of [A-Za-z0-9._-] and not "." or
 * "..", else "data" (worker/op_container.c container_input_file). */
void podctr_input_file(const char *uri, char *out, size_t size);

/* true when pod has the init container "user" (a container asset's pod),
 * in its status or its spec. */
bool podctr_is_container_pod(const json_t *pod);

/* A step that failed before the worker container ran. */
typedef struct {
    const char *step;    /* "fetch" or "user" */
    long long exit_code; /* -1 when not reported */
    const char *reason;  /* terminated.reason ("Error", "OOMKilled"), or NULL */
    const char *message; /* terminated.message (a failed Result from fetch, the end
                          * of the user's log), or NULL */
} podctr_failure;

/* true with *out when an init container of pod terminated with a non-zero
 * exit code or was OOMKilled (the first such, in order). */
bool podctr_failed_step(const json_t *pod, podctr_failure *out);

/* The step running or waiting now ("fetch", "user", or NULL when the
 * worker container has started or no step has a status), with its waiting
 * reason and message when it waits for something other than its turn
 * (ErrImagePull, ImagePullBackOff, ...). */
const char *podctr_current_step(const json_t *pod, const char **wait_reason,
                                const char **wait_message);

/* initContainerStatuses[name=user].imageID (the digest the kubelet ran),
 * or NULL. */
const char *podctr_image_id(const json_t *pod);

/* true when image names a digest ("...@sha256:<64 hex>"): a tag can move
 * to other code without the data version changing. */
bool podctr_image_pinned(const char *image);

/* The end of a step's log (its termination message with
 * FallbackToLogsOnError) on one line: at most size - 1 bytes of its last
 * lines, newlines as " | ", a leading "..." when cut. */
void podctr_log_tail(const char *msg, char *out, size_t size);

/* The Result's container fields (files, metadata, metadataTruncated, from
 * result_output) and the user's imageID (from pod) into the status output
 * object out. 0 or CERR_NOMEM; nothing for other pods. */
int podctr_output_fields(const json_t *pod, const json_t *result_output, json_t *out);

/* spec.container.image of a container asset when it names a tag rather
 * than a digest, else NULL. Borrowed from spec. */
const char *podctr_unpinned_image(const am_spec *spec);

#endif
