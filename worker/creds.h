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

/* Starts Pod Identity credentials when configured; a no-op otherwise.
 * Fails (class Transient, code CredentialsUnavailable) when the endpoint
 * cannot give credentials. */
int creds_start(void);
/* Stops the refresh thread. Safe to call when not started. */
void creds_stop(void);
/* True when Pod Identity is configured in the environment. */
bool creds_pod_identity_configured(void);

#endif
