/*
 * sts.h - IRSA's exchange with AWS STS, without the I/O: the endpoint, the
 * AssumeRoleWithWebIdentity request and the parsing of its answer.
 *
 * IRSA (IAM Roles for Service Accounts) gives a pod AWS_ROLE_ARN and
 * AWS_WEB_IDENTITY_TOKEN_FILE (a projected service-account token the kubelet
 * rotates). The token is exchanged for temporary credentials through STS's
 * query API: an unsigned POST of Action=AssumeRoleWithWebIdentity&
 * Version=2011-06-15&RoleArn=..&RoleSessionName=..&WebIdentityToken=.. whose
 * answer is XML: <AssumeRoleWithWebIdentityResponse> with
 * <AssumeRoleWithWebIdentityResult><Credentials> {AccessKeyId,
 * SecretAccessKey, SessionToken, Expiration}, or <ErrorResponse><Error>
 * {Type, Code, Message}. creds.c does the HTTP and the refreshing.
 * No I/O; any thread. sts_parse is fuzzed by tests/fuzz/fuzz_w_sts.c.
 */
#ifndef TERRANE_STS_H
#define TERRANE_STS_H

#include "creds.h"

#include <stdbool.h>
#include <stddef.h>

#define STS_ENDPOINT_MAX 512
#define STS_ARN_MAX 2048
#define STS_CODE_MAX 128
#define STS_MESSAGE_MAX 512

/* The STS endpoint, into out (STS_ENDPOINT_MAX bytes):
 *  - override (AWS_ENDPOINT_URL_STS) when set: used as it is;
 *  - regional (AWS_STS_REGIONAL_ENDPOINTS) "legacy", or no region: the
 *    global https://sts.amazonaws.com;
 *  - otherwise https://sts.<region>.amazonaws.com (.com.cn for cn-*), the
 *    SDKs' default and what the EKS webhook asks for with "regional".
 * Fails (class Internal, CredentialsUnavailable) on a region that is not a
 * region name or a mode that is neither "regional" nor "legacy". */
int sts_endpoint(const char *override, const char *regional, const char *region, char *out);

/* The form-encoded request body (RFC 3986 percent-encoding of every value),
 * allocated: the caller frees it after explicit_bzero (it holds the token).
 * NULL on allocation failure, with the error set. */
char *sts_request_body(const char *role_arn, const char *session_name, const char *token);

/* True if session (AWS_ROLE_SESSION_NAME) is a valid RoleSessionName:
 * 2..64 characters of [A-Za-z0-9+=,.@_-]. */
bool sts_session_name_ok(const char *session);

/* Parses a 200 answer into *out (all four fields required, no control
 * characters, each within its creds_set cap) and the assumed role's ARN
 * into arn (STS_ARN_MAX bytes, "" when absent). On failure returns -1 with
 * the error set (class Transient, CredentialsUnavailable), naming `from`
 * and, for a malformed document, the byte offset; out is wiped. */
int sts_parse(const char *doc, size_t len, const char *from, creds_set *out, char *arn);

/* Reads an <ErrorResponse>'s Code and Message (STS_CODE_MAX and
 * STS_MESSAGE_MAX bytes, control characters replaced by spaces; "" when
 * absent or malformed). Never fails. */
void sts_parse_error(const char *doc, size_t len, char *code, char *message);

/* Whether a failed call is worth repeating: HTTP 429 or 5xx, or an STS
 * error code that names a passing condition (throttling, the identity
 * provider unreachable, a token that expired and is rotated on disk). */
bool sts_retryable(long status, const char *code);

#endif
