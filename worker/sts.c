/*
 * sts.c - AssumeRoleWithWebIdentity's request and answer (sts.h).
 *
 * The answer is read with the xml.h scanner: the four credential leaves
 * are taken only at their place (Response > Result > Credentials > leaf),
 * each at most once, straight into the caller's fixed buffers; anything
 * else well formed (SubjectFromWebIdentityToken, Audience, Provider,
 * ResponseMetadata...) is skipped. Secrets never reach a message: errors
 * name the element and the offset, never its text.
 */
#include "sts.h"

#include "err.h"
#include "mem.h"
#include "xml.h"

#include <stdio.h>
#include <string.h>

#define ROOT_OK "AssumeRoleWithWebIdentityResponse"
#define RESULT "AssumeRoleWithWebIdentityResult"

int sts_endpoint(const char *override, const char *regional, const char *region, char *out)
{
    out[0] = '\0';
    if (override && override[0]) {
        if (strlen(override) >= STS_ENDPOINT_MAX)
            return err_set(ERR_INTERNAL, ERR_CREDENTIALS, NULL,
                           "AWS_ENDPOINT_URL_STS is longer than %d bytes", STS_ENDPOINT_MAX - 1);
        snprintf(out, STS_ENDPOINT_MAX, "%s", override);
        return 0;
    }
    if (regional && regional[0] && strcmp(regional, "regional") && strcmp(regional, "legacy"))
        return err_set(ERR_INTERNAL, ERR_CREDENTIALS, NULL,
                       "AWS_STS_REGIONAL_ENDPOINTS=%.40s: expected regional or legacy", regional);
    if ((regional && !strcmp(regional, "legacy")) || !region || !region[0]) {
        snprintf(out, STS_ENDPOINT_MAX, "https://sts.amazonaws.com");
        return 0;
    }
    size_t n = strlen(region);
    bool ok = n >= 3 && n <= 40 && region[0] != '-' && region[n - 1] != '-';
    for (size_t i = 0; ok && i < n; i++)
        ok = (region[i] >= 'a' && region[i] <= 'z') || (region[i] >= '0' && region[i] <= '9') ||
             region[i] == '-';
    if (!ok)
        return err_set(ERR_INTERNAL, ERR_CREDENTIALS, NULL,
                       "AWS_REGION=%.60s is not a region name (like eu-west-1)", region);
    snprintf(out, STS_ENDPOINT_MAX, "https://sts.%s.amazonaws.com%s", region,
             strncmp(region, "cn-", 3) ? "" : ".cn");
    return 0;
}

bool sts_session_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 2 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("+=,.@_-", c)))
            return false;
    }
    return true;
}

/* Appends the percent-encoding of s (RFC 3986: all but unreserved). */
static size_t encode(char *dst, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            dst[n++] = (char)*p;
        } else {
            dst[n++] = '%';
            dst[n++] = hex[*p >> 4];
            dst[n++] = hex[*p & 15];
        }
    }
    return n;
}

char *sts_request_body(const char *role_arn, const char *session_name, const char *token)
{
    static const char head[] = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15";
    const char *names[] = {"&RoleArn=", "&RoleSessionName=", "&WebIdentityToken="};
    const char *values[] = {role_arn, session_name, token};
    size_t cap = sizeof head;
    for (int i = 0; i < 3; i++)
        cap += strlen(names[i]) + 3 * strlen(values[i]);
    char *out = mem_malloc(cap);
    if (!out) {
        err_oom();
        return NULL;
    }
    size_t n = sizeof head - 1;
    memcpy(out, head, n);
    for (int i = 0; i < 3; i++) {
        size_t k = strlen(names[i]);
        memcpy(out + n, names[i], k);
        n += k;
        n += encode(out + n, values[i]);
    }
    out[n] = '\0';
    return out;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

/* The credential leaves, where they go and whether they were seen. */
typedef struct leaf {
    const char *name;
    char *dst;
    size_t cap;
    bool seen;
} leaf;

int sts_parse(const char *doc, size_t len, const char *from, creds_set *out, char *arn)
{
    xml x;
    char name[XML_NAME_MAX], exp[64], code[STS_CODE_MAX], msg[STS_MESSAGE_MAX];
    xml_tag kind;
    bool saw_root = false;
    leaf leaves[] = {
        {"AccessKeyId", out->access_key_id, sizeof out->access_key_id, false},
        {"SecretAccessKey", out->secret_access_key, sizeof out->secret_access_key, false},
        {"SessionToken", out->session_token, sizeof out->session_token, false},
        {"Expiration", exp, sizeof exp, false},
    };
    const size_t n_leaves = sizeof leaves / sizeof leaves[0];

    memset(out, 0, sizeof *out);
    arn[0] = exp[0] = '\0';
    xml_init(&x, doc, len);
    for (;;) {
        if (xml_next_tag(&x, &kind, name) < 0) goto malformed;
        if (kind == XML_END) break;
        if (kind == XML_CLOSE) {
            if (xml_pop(&x, name) < 0) goto malformed;
            continue;
        }
        if (x.depth == 0) {
            if (!strcmp(name, "ErrorResponse") && !saw_root) {
                sts_parse_error(doc, len, code, msg);
                err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL, "STS (%s) answered an error: %s: %s",
                        from, code[0] ? code : "(no code)", msg[0] ? msg : "(no message)");
                goto fail;
            }
            if (saw_root || strcmp(name, ROOT_OK)) {
                xml_fail(&x, "root element is not <" ROOT_OK ">");
                goto malformed;
            }
            saw_root = true;
        }
        if (kind == XML_EMPTY) continue;
        if (x.depth == 3 && !strcmp(x.stack[1], RESULT)) {
            if (!strcmp(x.stack[2], "Credentials")) {
                leaf *l = NULL;
                for (size_t i = 0; i < n_leaves && !l; i++)
                    if (!strcmp(name, leaves[i].name)) l = &leaves[i];
                if (l) {
                    if (l->seen) {
                        xml_fail(&x, "a credential element appears twice");
                        goto malformed;
                    }
                    if (xml_leaf_text(&x, name, l->dst, l->cap) < 0) goto malformed;
                    l->seen = true;
                    continue;
                }
            } else if (!strcmp(x.stack[2], "AssumedRoleUser") && !strcmp(name, "Arn")) {
                if (xml_leaf_text(&x, name, arn, STS_ARN_MAX) < 0) goto malformed;
                if (has_control(arn)) arn[0] = '\0'; /* only ever logged */
                continue;
            }
        }
        if (xml_push(&x, name) < 0) goto malformed;
    }
    if (!saw_root || x.depth != 0) {
        xml_fail(&x, saw_root ? "document ends inside an element" : "no <" ROOT_OK ">");
        goto malformed;
    }
    for (size_t i = 0; i < n_leaves; i++) {
        if (!leaves[i].seen || !leaves[i].dst[0]) {
            err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL,
                    "STS (%s): the answer has no Credentials/%s", from, leaves[i].name);
            goto fail;
        }
        /* They become HTTP headers and GDAL options: no line breaks. */
        if (has_control(leaves[i].dst)) {
            err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL,
                    "STS (%s): Credentials/%s contains control characters", from, leaves[i].name);
            goto fail;
        }
    }
    if (creds_parse_time(exp, &out->expiration) < 0) {
        err_prefix("STS (%s): Credentials/Expiration", from);
        goto fail;
    }
    return 0;
malformed:
    err_set(ERR_TRANSIENT, ERR_CREDENTIALS, NULL,
            "STS (%s): malformed AssumeRoleWithWebIdentity answer at byte %zu: %s", from, x.at,
            x.why);
fail:
    creds_wipe(out);
    explicit_bzero(exp, sizeof exp);
    arn[0] = '\0';
    return -1;
}

static void blank_controls(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = ' ';
}

void sts_parse_error(const char *doc, size_t len, char *code, char *message)
{
    xml x;
    char name[XML_NAME_MAX];
    xml_tag kind;
    code[0] = message[0] = '\0';
    xml_init(&x, doc, len);
    for (;;) {
        if (xml_next_tag(&x, &kind, name) < 0 || kind == XML_END) break;
        if (kind == XML_CLOSE) {
            if (x.depth == 0) break;
            x.depth--;
            continue;
        }
        if (kind == XML_EMPTY) continue;
        if (x.depth == 0 && strcmp(name, "ErrorResponse")) break;
        if (x.depth == 1 && strcmp(name, "Error")) {
            /* RequestId and the like: not needed. */
        } else if (x.depth == 2 && !strcmp(name, "Code")) {
            if (xml_leaf_text(&x, name, code, STS_CODE_MAX) < 0) code[0] = '\0';
            continue;
        } else if (x.depth == 2 && !strcmp(name, "Message")) {
            if (xml_leaf_text(&x, name, message, STS_MESSAGE_MAX) < 0) message[0] = '\0';
            continue;
        }
        if (x.depth >= XML_DEPTH_MAX) break;
        x.depth++;
    }
    blank_controls(code);
    blank_controls(message);
}

bool sts_retryable(long status, const char *code)
{
    static const char *const passing[] = {"Throttling",
                                          "ThrottlingException",
                                          "RequestLimitExceeded",
                                          "IDPCommunicationError",
                                          "ExpiredTokenException",
                                          "ServiceUnavailable",
                                          "InternalFailure",
                                          NULL};
    if (status == 429 || status >= 500) return true;
    for (const char *const *c = passing; code && *c; c++)
        if (!strcmp(code, *c)) return true;
    return false;
}
