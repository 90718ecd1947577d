/*
 * Unit tests: IRSA's STS exchange (sts.h): the AssumeRoleWithWebIdentity
 * answer (fields, entities, caps, control characters, duplicates, structure
 * with byte offsets, an <ErrorResponse>), STS's error documents, which
 * failures are retried, the endpoint from the environment's settings, the
 * form-encoded request and session names. The HTTP exchange, refreshes and
 * the chain's order in a running worker are in test_creds.c and
 * tests/integration/test_irsa.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "creds.h"
#include "err.h"
#include "mem.h"
#include "sts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    mem_init();
    err_clear();
    return 0;
}

/* An answer as STS gives it, with the four credential leaves replaced. */
static char *answer(const char *creds)
{
    char *doc = mem_printf(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
        "  <AssumeRoleWithWebIdentityResult>\n"
        "    <SubjectFromWebIdentityToken>system:serviceaccount:hydro:terrane-worker"
        "</SubjectFromWebIdentityToken>\n"
        "    <Audience>sts.amazonaws.com</Audience>\n"
        "    <AssumedRoleUser>\n"
        "      <Arn>arn:aws:sts::123456789012:assumed-role/terrane-worker/s1</Arn>\n"
        "      <AssumedRoleId>AROAEXAMPLE:s1</AssumedRoleId>\n"
        "    </AssumedRoleUser>\n"
        "    <Credentials>%s</Credentials>\n"
        "    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks</Provider>\n"
        "  </AssumeRoleWithWebIdentityResult>\n"
        "  <ResponseMetadata><RequestId>ad4156e9</RequestId></ResponseMetadata>\n"
        "</AssumeRoleWithWebIdentityResponse>\n",
        creds);
    assert_non_null(doc);
    return doc;
}

#define GOOD_CREDS                                                                                 \
    "<SessionToken>FwoGZXIvYXdzE&amp;Pq/+=</SessionToken>"                                         \
    "<SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey>"                                     \
    "<Expiration>2026-11-24T06:00:00.000Z</Expiration>"                                            \
    "<AccessKeyId>ASIAEXAMPLE</AccessKeyId>"

static void answer_parsing(void **state)
{
    (void)state;
    creds_set c;
    char arn[STS_ARN_MAX];
    char *doc = answer(GOOD_CREDS);
    assert_int_equal(sts_parse(doc, strlen(doc), "https://sts.x", &c, arn), 0);
    assert_string_equal(c.access_key_id, "ASIAEXAMPLE");
    assert_string_equal(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG");
    assert_string_equal(c.session_token, "FwoGZXIvYXdzE&Pq/+="); /* entity decoded */
    assert_int_equal((long long)c.expiration, 1795500000LL);
    assert_string_equal(arn, "arn:aws:sts::123456789012:assumed-role/terrane-worker/s1");
    creds_wipe(&c);
    mem_free(doc);

    /* A token as long as creds_set allows passes; one byte more does not. */
    size_t cap = sizeof c.session_token;
    char *tok = mem_malloc(cap + 1);
    assert_non_null(tok);
    memset(tok, 'T', cap);
    tok[cap - 1] = '\0';
    char *leaves = mem_printf("<SessionToken>%s</SessionToken><SecretAccessKey>S</SecretAccessKey>"
                              "<Expiration>2026-11-24T06:00:00Z</Expiration>"
                              "<AccessKeyId>A</AccessKeyId>",
                              tok);
    doc = answer(leaves);
    assert_int_equal(sts_parse(doc, strlen(doc), "ep", &c, arn), 0);
    assert_int_equal(strlen(c.session_token), cap - 1);
    mem_free(doc);
    mem_free(leaves);
    tok[cap - 1] = 'T';
    tok[cap] = '\0';
    leaves = mem_printf("<SessionToken>%s</SessionToken><SecretAccessKey>S</SecretAccessKey>"
                        "<Expiration>2026-11-24T06:00:00Z</Expiration><AccessKeyId>A</AccessKeyId>",
                        tok);
    doc = answer(leaves);
    err_clear();
    assert_int_equal(sts_parse(doc, strlen(doc), "ep", &c, arn), -1);
    assert_non_null(strstr(err_get_message(), "longer than its limit"));
    assert_string_equal(c.access_key_id, ""); /* wiped on failure */
    mem_free(doc);
    mem_free(leaves);
    mem_free(tok);
}

static void answer_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *creds, *needle;
    } bad[] = {
        {"<SecretAccessKey>S</SecretAccessKey><SessionToken>T</SessionToken>"
         "<Expiration>2026-11-24T06:00:00Z</Expiration>",
         "no Credentials/AccessKeyId"},
        {"<AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
         "<Expiration>2026-11-24T06:00:00Z</Expiration>",
         "no Credentials/SessionToken"},
        {"<AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
         "<SessionToken>T</SessionToken>",
         "no Credentials/Expiration"},
        {"<AccessKeyId></AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
         "<SessionToken>T</SessionToken><Expiration>2026-11-24T06:00:00Z</Expiration>",
         "no Credentials/AccessKeyId"},
        {"<AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
         "<SessionToken>T&#10;X-Evil: 1</SessionToken><Expiration>2026-11-24T06:00:00Z"
         "</Expiration>",
         "SessionToken contains control characters"},
        {"<AccessKeyId>A</AccessKeyId><AccessKeyId>B</AccessKeyId><SecretAccessKey>S"
         "</SecretAccessKey><SessionToken>T</SessionToken><Expiration>2026-11-24T06:00:00Z"
         "</Expiration>",
         "appears twice"},
        {"<AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
         "<SessionToken>T</SessionToken><Expiration>next week</Expiration>",
         "Expiration"},
        {"<AccessKeyId><b>A</b></AccessKeyId>", "expected text and a closing tag"},
        {"<AccessKeyId>A</AccessKeyId></Credentials></Credentials>", "closing tag does not match"},
        {NULL, NULL}};
    creds_set c;
    char arn[STS_ARN_MAX];
    for (int i = 0; bad[i].creds; i++) {
        char *doc = answer(bad[i].creds);
        err_clear();
        assert_int_equal(sts_parse(doc, strlen(doc), "https://sts.ep", &c, arn), -1);
        assert_string_equal(err_get_code(), ERR_CREDENTIALS);
        assert_int_equal(err_get_class(), ERR_TRANSIENT);
        const char *m = err_get_message();
        if (!strstr(m, bad[i].needle) || !strstr(m, "https://sts.ep"))
            fail_msg("case %d: message \"%s\"", i, m);
        /* The secret never reaches a message. */
        assert_null(strstr(m, ">S<"));
        mem_free(doc);
    }

    /* Whole-document problems, with the byte offset. */
    static const struct {
        const char *doc, *needle;
    } docs[] = {
        {"", "no <AssumeRoleWithWebIdentityResponse>"},
        {"{\"AccessKeyId\":\"A\"}", "no <AssumeRoleWithWebIdentityResponse>"},
        {"<GetCallerIdentityResponse/>", "root element is not"},
        {"<AssumeRoleWithWebIdentityResponse><A>", "document ends inside an element"},
        {"<AssumeRoleWithWebIdentityResponse><!DOCTYPE x [<!ENTITY e \"e\">]>",
         "DTD or CDATA not expected"},
        {"<AssumeRoleWithWebIdentityResponse><a><b><c><d><e><f><g><h>", "nested too deeply"},
        {"<AssumeRoleWithWebIdentityResponse></AssumeRoleWithWebIdentityResponse>"
         "<AssumeRoleWithWebIdentityResponse>",
         "root element is not"},
        {NULL, NULL}};
    for (int i = 0; docs[i].doc; i++) {
        err_clear();
        assert_int_equal(sts_parse(docs[i].doc, strlen(docs[i].doc), "ep", &c, arn), -1);
        const char *m = err_get_message();
        if (!strstr(m, docs[i].needle) || (i > 1 && !strstr(m, "at byte ")))
            fail_msg("doc %d: message \"%s\"", i, m);
    }
    /* An empty answer has no credentials, though it is well formed. */
    const char *empty = "<AssumeRoleWithWebIdentityResponse/>";
    assert_int_equal(sts_parse(empty, strlen(empty), "ep", &c, arn), -1);
    assert_non_null(strstr(err_get_message(), "no Credentials/AccessKeyId"));
}

static void error_documents(void **state)
{
    (void)state;
    char code[STS_CODE_MAX], msg[STS_MESSAGE_MAX];
    const char *doc =
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
        "  <Error>\n    <Type>Sender</Type>\n    <Code>InvalidIdentityToken</Code>\n"
        "    <Message>Couldn&apos;t retrieve verification key from your identity provider,\n"
        "  please reference AssumeRoleWithWebIdentity documentation for requirements</Message>\n"
        "  </Error>\n  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n"
        "</ErrorResponse>\n";
    sts_parse_error(doc, strlen(doc), code, msg);
    assert_string_equal(code, "InvalidIdentityToken");
    /* The line break becomes a space: messages are one line. */
    assert_string_equal(msg, "Couldn't retrieve verification key from your identity provider,   "
                             "please reference AssumeRoleWithWebIdentity documentation for "
                             "requirements");

    /* An ErrorResponse with HTTP 200 is reported as an error, not parsed as credentials. */
    creds_set c;
    char arn[STS_ARN_MAX];
    err_clear();
    assert_int_equal(sts_parse(doc, strlen(doc), "ep", &c, arn), -1);
    assert_non_null(strstr(err_get_message(), "STS (ep) answered an error: InvalidIdentityToken"));

    static const char *const junk[] = {"", "Service Unavailable", "<Error><Code>X</Code></Error>",
                                       "<ErrorResponse><Error><Code>", NULL};
    for (int i = 0; junk[i]; i++) {
        sts_parse_error(junk[i], strlen(junk[i]), code, msg);
        if (i < 3) assert_string_equal(code, ""); /* S3's <Error> root is not STS's */
        assert_string_equal(msg, "");
    }
    /* A Code longer than its cap is dropped rather than cut. */
    char big[400];
    snprintf(big, sizeof big, "<ErrorResponse><Error><Code>%0200d</Code></Error></ErrorResponse>",
             0);
    sts_parse_error(big, strlen(big), code, msg);
    assert_string_equal(code, "");
}

static void retry_decisions(void **state)
{
    (void)state;
    assert_true(sts_retryable(500, ""));
    assert_true(sts_retryable(503, NULL));
    assert_true(sts_retryable(429, ""));
    assert_true(sts_retryable(400, "Throttling"));
    assert_true(sts_retryable(400, "IDPCommunicationError"));
    assert_true(sts_retryable(400, "ExpiredTokenException"));
    assert_false(sts_retryable(400, "InvalidIdentityToken"));
    assert_false(sts_retryable(403, "AccessDenied"));
    assert_false(sts_retryable(400, "ValidationError"));
    assert_false(sts_retryable(404, ""));
}

static void endpoints(void **state)
{
    (void)state;
    char ep[STS_ENDPOINT_MAX];
    static const struct {
        const char *override, *regional, *region, *want;
    } ok[] = {{NULL, NULL, "eu-west-1", "https://sts.eu-west-1.amazonaws.com"},
              {"", "regional", "us-east-1", "https://sts.us-east-1.amazonaws.com"},
              {NULL, "legacy", "eu-west-1", "https://sts.amazonaws.com"},
              {NULL, NULL, NULL, "https://sts.amazonaws.com"},
              {NULL, "regional", "", "https://sts.amazonaws.com"},
              {NULL, NULL, "cn-north-1", "https://sts.cn-north-1.amazonaws.com.cn"},
              {"http://127.0.0.1:4566/", "regional", "eu-west-1", "http://127.0.0.1:4566/"},
              {NULL, NULL, NULL, NULL}};
    for (int i = 0; ok[i].want; i++) {
        err_clear();
        if (sts_endpoint(ok[i].override, ok[i].regional, ok[i].region, ep) != 0)
            fail_msg("case %d: %s", i, err_get_message());
        assert_string_equal(ep, ok[i].want);
    }
    static const struct {
        const char *regional, *region, *needle;
    } bad[] = {{"global", "eu-west-1", "AWS_STS_REGIONAL_ENDPOINTS=global"},
               {NULL, "eu-west-1.evil.com/x?", "AWS_REGION=eu-west-1.evil.com"},
               {NULL, "EU-WEST-1", "not a region name"},
               {NULL, "-x-", "not a region name"},
               {NULL, NULL, NULL}};
    for (int i = 0; bad[i].needle; i++) {
        err_clear();
        assert_int_equal(sts_endpoint(NULL, bad[i].regional, bad[i].region, ep), -1);
        assert_int_equal(err_get_class(), ERR_INTERNAL);
        if (!strstr(err_get_message(), bad[i].needle))
            fail_msg("case %d: message \"%s\"", i, err_get_message());
    }
}

static void request_body(void **state)
{
    (void)state;
    char *b = sts_request_body("arn:aws:iam::123456789012:role/a b", "s1", "eyJ.a+b/c=&d~");
    assert_non_null(b);
    assert_string_equal(b, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                           "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fa%20b"
                           "&RoleSessionName=s1&WebIdentityToken=eyJ.a%2Bb%2Fc%3D%26d~");
    mem_free(b);
    /* Allocation failure is reported, not crashed on. */
    mem_fail_at(1);
    err_clear();
    assert_null(sts_request_body("r", "s", "t"));
    assert_string_equal(err_get_code(), ERR_NO_MEMORY);
    mem_fail_at(0);

    assert_true(sts_session_name_ok("terrane-worker-1795500000"));
    assert_true(sts_session_name_ok("a.b@c=d,e+f_g"));
    assert_false(sts_session_name_ok("x"));
    assert_false(sts_session_name_ok("has space"));
    assert_false(sts_session_name_ok("a/b"));
    assert_false(sts_session_name_ok(""));
    assert_false(sts_session_name_ok(NULL));
    char long_name[70];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_false(sts_session_name_ok(long_name));
    long_name[64] = '\0';
    assert_true(sts_session_name_ok(long_name));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(answer_parsing, setup),
        cmocka_unit_test_setup(answer_refusals, setup),
        cmocka_unit_test_setup(error_documents, setup),
        cmocka_unit_test_setup(retry_decisions, setup),
        cmocka_unit_test_setup(endpoints, setup),
        cmocka_unit_test_setup(request_body, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
