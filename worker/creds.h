/*
 * creds.h - AWS credentials the worker fetches itself.
 *
 * The chain, in the AWS SDKs' order: static keys in the environment
 * (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY), then IRSA (AWS_ROLE_ARN +
 * AWS_WEB_IDENTITY_TOKEN_FILE: STS AssumeRoleWithWebIdentity, sts.h), then
 * EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI with the token read
 * from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN); with none of them
 * GDAL's own chain (profiles, instance metadata) is left to work. For IRSA
 * and Pod Identity creds_start fetches credentials over HTTP (libcurl),
 * hands them to GDAL as config options, where /vsis3/ and the worker's own
 * signed requests (s3req.h) both read them, and a background thread
 * refreshes them ahead of their Expiration. GDAL 3.6 could do IRSA alone,
 * but its keys would stay inside /vsis3/, out of reach of s3req.h.
 * Credentials never come from the task.
 */
#ifndef TERRANE_CREDS_H
#define TERRANE_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Where credentials come from, by the environment. */
typedef enum {
    CREDS_NONE,         /* none configured: GDAL's own chain */
    CREDS_STATIC,       /* AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY: nothing to fetch */
    CREDS_WEB_IDENTITY, /* IRSA */
    CREDS_POD_IDENTITY, /* EKS Pod Identity */
} creds_source;

/* The first source of the chain that the environment configures. */
creds_source creds_chain_pick(void);

/* Starts IRSA or Pod Identity credentials when the chain picks one; a no-op
 * otherwise. Fails with code CredentialsUnavailable: class Transient when
 * the endpoint cannot give credentials (after retrying 5xx, throttling and
 * connection failures; STS's error Code and Message are in the message),
 * class Internal when the endpoint is not allowed or the region or session
 * name is invalid (the pod's configuration). The STS endpoint is
 * AWS_ENDPOINT_URL_STS when set, else regional from AWS_REGION (see
 * sts_endpoint); https://, or http:// to loopback only. */
int creds_start(void);
/* Stops the refresh thread. Safe to call when not started. */
void creds_stop(void);
/* creds_chain_pick() == CREDS_POD_IDENTITY. */
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
