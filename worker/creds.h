/*
 * creds.h - AWS credentials the worker must fetch itself.
 *
 * GDAL 3.6 handles static keys (AWS_ACCESS_KEY_ID...), profiles and IRSA
 * (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) on its own. It lacks EKS Pod
 * Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI with the token read from
 * AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (or _TOKEN). When those are set,
 * creds_start fetches credentials over HTTP (libcurl), hands them to GDAL as
 * config options, and a background thread refreshes them ahead of their
 * Expiration. Credentials never come from the task.
 */
#ifndef TERRANE_CREDS_H
#define TERRANE_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Starts Pod Identity credentials when configured; a no-op otherwise.
 * Fails with code CredentialsUnavailable: class Transient when the endpoint
 * cannot give credentials (after retrying 5xx and connection failures),
 * class Internal when its URI is not allowed (the pod's configuration). */
int creds_start(void);
/* Stops the refresh thread. Safe to call when not started. */
void creds_stop(void);
/* True when Pod Identity is configured in the environment (and static keys
 * are not: like the AWS SDKs, static keys in the environment win). */
bool creds_pod_identity_configured(void);

/* The pieces below are exposed for unit tests (tests/unit/worker/test_creds.c). */

/* One set of credentials. Secret: never log it; creds_wipe when done. */
typedef struct creds_set {
    char access_key_id[128];
    char secret_access_key[256];
    char session_token[8192];
    time_t expiration; /* 0: the endpoint gave none (no refresh needed) */
} creds_set;

/* Checks the endpoint URI against the SDKs' rule: https:// anywhere, or
 * http:// only to loopback (127.0.0.0/8, [::1], localhost) and the EKS/ECS
 * agent addresses (169.254.170.23, [fd00:ec2::23], 169.254.170.2). */
int creds_check_uri(const char *uri);
/* Parses the endpoint's JSON {AccessKeyId, SecretAccessKey, Token,
 * Expiration}; from names the endpoint in errors. */
int creds_parse(const char *json, size_t len, const char *from, creds_set *out);
/* Parses an RFC 3339 timestamp ("2026-11-24T06:00:00Z", fractions and
 * numeric offsets allowed) into *out. */
int creds_parse_time(const char *s, time_t *out);
/* When to refresh credentials fetched at `fetched` that expire at
 * `expiration`: at 80% of their lifetime or 5 minutes before expiry,
 * whichever is sooner, but not before half the lifetime nor within 1 s. */
time_t creds_refresh_at(time_t fetched, time_t expiration);
void creds_wipe(creds_set *c);

#endif
