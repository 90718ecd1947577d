/*
 * Unit tests: Pod Identity and IRSA credentials (creds.h): the endpoint
 * allowlist, the credentials document and its RFC 3339 expiry, the refresh
 * schedule, the chain's order by environment, and creds_start against a
 * one-request HTTP server on loopback run by this test (token header or
 * STS form body, config options handed to GDAL, a refused token, an STS
 * error, an oversized body).
 * The refresh thread and 5xx retries over time are exercised by
 * tests/integration/test_pod_identity.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "creds.h"
#include "err.h"
#include "mem.h"

#include <arpa/inet.h>
#include <cpl_conv.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int setup(void **state)
{
    (void)state;
    mem_init();
    err_clear();
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_ROLE_ARN");
    unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    unsetenv("AWS_ENDPOINT_URL_STS");
    unsetenv("AWS_ROLE_SESSION_NAME");
    return 0;
}

static void uri_allowlist(void **state)
{
    (void)state;
    static const char *const ok[] = {"http://127.0.0.1/v1/credentials",
                                     "http://127.0.0.1:2703/creds",
                                     "http://127.1.2.3:80/x",
                                     "http://localhost:8080/x",
                                     "http://169.254.170.23/v1/credentials",
                                     "http://[fd00:ec2::23]/v1/credentials",
                                     "http://[::1]:9/x",
                                     "http://169.254.170.2/v2/credentials/abc",
                                     "https://creds.example.com/x",
                                     "HTTPS://Creds.Example.com:8443/x",
                                     NULL};
    static const char *const bad[] = {"http://10.0.0.1/creds",
                                      "http://169.254.169.254/latest/meta-data",
                                      "http://example.com/creds",
                                      "http://[fd00:ec2::254]/x",
                                      "ftp://127.0.0.1/x",
                                      "file:///etc/passwd",
                                      "http://user:pw@127.0.0.1/x",
                                      "127.0.0.1/creds",
                                      "",
                                      "http://127.0.0.1.evil.com/x",
                                      NULL};
    for (int i = 0; ok[i]; i++) {
        err_clear();
        if (creds_check_uri(ok[i]) != 0) fail_msg("refused %s: %s", ok[i], err_get_message());
    }
    for (int i = 0; bad[i]; i++) {
        err_clear();
        if (creds_check_uri(bad[i]) != -1) fail_msg("allowed %s", bad[i]);
        assert_string_equal(err_get_code(), ERR_CREDENTIALS);
        assert_int_equal(err_get_class(), ERR_INTERNAL);
    }
}

static void time_parsing(void **state)
{
    (void)state;
    time_t t = 0;
    assert_int_equal(creds_parse_time("2026-11-24T06:00:00Z", &t), 0);
    assert_int_equal((long long)t, 1795500000LL);
    assert_int_equal(creds_parse_time("2026-11-24T06:00:00.123456Z", &t), 0);
    assert_int_equal((long long)t, 1795500000LL);
    assert_int_equal(creds_parse_time("2026-11-24T08:00:00+02:00", &t), 0);
    assert_int_equal((long long)t, 1795500000LL);
    assert_int_equal(creds_parse_time("2026-11-24t05:30:00-00:30", &t), 0);
    assert_int_equal((long long)t, 1795500000LL);
    assert_int_equal(creds_parse_time("1970-01-01T00:00:00Z", &t), 0);
    assert_int_equal((long long)t, 0);
    static const char *const bad[] = {"2026-11-24 06:00:00Z",
                                      "2026-11-24T06:00:00",
                                      "2026-13-24T06:00:00Z",
                                      "2026-11-24T06:00:00Zjunk",
                                      "2026-11-24T06:00Z",
                                      "20261124T060000Z",
                                      "2026-11-24T06:00:00.Z",
                                      "2026-11-24T06:00:00+0200",
                                      "",
                                      NULL};
    for (int i = 0; bad[i]; i++) {
        err_clear();
        if (creds_parse_time(bad[i], &t) != -1) fail_msg("accepted \"%s\"", bad[i]);
        assert_string_equal(err_get_code(), ERR_CREDENTIALS);
    }
}

static void document_parsing(void **state)
{
    (void)state;
    creds_set c;
    const char *good = "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":\"s3cr3t\","
                       "\"Token\":\"tok\",\"Expiration\":\"2026-11-24T06:00:00Z\","
                       "\"AccountId\":\"123456789012\"}";
    assert_int_equal(creds_parse(good, strlen(good), "ep", &c), 0);
    assert_string_equal(c.access_key_id, "ASIAEXAMPLE");
    assert_string_equal(c.secret_access_key, "s3cr3t");
    assert_string_equal(c.session_token, "tok");
    assert_int_equal((long long)c.expiration, 1795500000LL);
    creds_wipe(&c);
    assert_string_equal(c.secret_access_key, "");

    /* No Token and no Expiration: long-lived keys, nothing to refresh. */
    const char *minimal = "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}";
    assert_int_equal(creds_parse(minimal, strlen(minimal), "ep", &c), 0);
    assert_string_equal(c.session_token, "");
    assert_int_equal((long long)c.expiration, 0);

    static const struct {
        const char *doc, *needle;
    } bad[] = {{"not json", "not a JSON object"},
               {"[1]", "not a JSON object"},
               {"{\"SecretAccessKey\":\"S\"}", "AccessKeyId is missing"},
               {"{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"S\"}", "AccessKeyId"},
               {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":5}", "SecretAccessKey"},
               {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":\"tomorrow\"}",
                "Expiration"},
               {"{\"AccessKeyId\":\"A\\nB\",\"SecretAccessKey\":\"S\"}", "control characters"},
               {NULL, NULL}};
    for (int i = 0; bad[i].doc; i++) {
        err_clear();
        assert_int_equal(creds_parse(bad[i].doc, strlen(bad[i].doc), "http://ep", &c), -1);
        assert_string_equal(err_get_code(), ERR_CREDENTIALS);
        if (!strstr(err_get_message(), bad[i].needle) || !strstr(err_get_message(), "http://ep"))
            fail_msg("%s: message \"%s\"", bad[i].doc, err_get_message());
        /* A secret must never end up in a message. */
        assert_null(strstr(err_get_message(), "\"S\""));
    }
    /* Field longer than its cap */
    char big[600];
    snprintf(big, sizeof big, "{\"AccessKeyId\":\"%0300d\",\"SecretAccessKey\":\"S\"}", 0);
    assert_int_equal(creds_parse(big, strlen(big), "ep", &c), -1);
    assert_non_null(strstr(err_get_message(), "longer than"));
}

static void refresh_schedule(void **state)
{
    (void)state;
    const time_t f = 1000000;
    assert_int_equal((long long)creds_refresh_at(f, 0), 0);                 /* never */
    assert_int_equal((long long)creds_refresh_at(f, f + 3600), f + 2880);   /* 80% < 55 min */
    assert_int_equal((long long)creds_refresh_at(f, f + 21600), f + 17280); /* 80% of 6 h */
    assert_int_equal((long long)creds_refresh_at(f, f + 1200), f + 900);    /* 5 min before */
    assert_int_equal((long long)creds_refresh_at(f, f + 900), f + 600);
    assert_int_equal((long long)creds_refresh_at(f, f + 400), f + 200); /* half, not past */
    assert_int_equal((long long)creds_refresh_at(f, f + 3), f + 1);
    assert_int_equal((long long)creds_refresh_at(f, f - 10), f + 1); /* already expired */
}

static void configured_only_without_static_keys(void **state)
{
    (void)state;
    assert_false(creds_pod_identity_configured());
    assert_int_equal(creds_start(), 0); /* not configured: a no-op */
    creds_stop();
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds", 1);
    assert_true(creds_pod_identity_configured());
    setenv("AWS_ACCESS_KEY_ID", "A", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S", 1);
    assert_false(creds_pod_identity_configured()); /* static keys win, as in the SDKs */
    assert_int_equal(creds_start(), 0);
    creds_stop();
}

static void chain_order(void **state)
{
    (void)state;
    assert_int_equal(creds_chain_pick(), CREDS_NONE);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds", 1);
    assert_int_equal(creds_chain_pick(), CREDS_POD_IDENTITY);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r", 1);
    assert_int_equal(creds_chain_pick(), CREDS_POD_IDENTITY); /* IRSA needs its token file too */
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks.amazonaws.com/token", 1);
    assert_int_equal(creds_chain_pick(), CREDS_WEB_IDENTITY); /* before Pod Identity */
    assert_false(creds_pod_identity_configured());
    setenv("AWS_ACCESS_KEY_ID", "A", 1);
    assert_int_equal(creds_chain_pick(), CREDS_WEB_IDENTITY); /* a key id alone is no key */
    setenv("AWS_SECRET_ACCESS_KEY", "S", 1);
    assert_int_equal(creds_chain_pick(), CREDS_STATIC); /* static keys first */
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unsetenv("AWS_ACCESS_KEY_ID");
    assert_int_equal(creds_chain_pick(), CREDS_WEB_IDENTITY);
    setenv("AWS_ROLE_ARN", "", 1);
    assert_int_equal(creds_chain_pick(), CREDS_NONE); /* empty is unset */
}

static void refused_endpoint_fails_start(void **state)
{
    (void)state;
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://198.51.100.7/creds", 1);
    assert_int_equal(creds_start(), -1);
    assert_int_equal(err_get_class(), ERR_INTERNAL);
    assert_string_equal(err_get_code(), ERR_CREDENTIALS);
    assert_non_null(strstr(err_get_message(), "198.51.100.7"));
    creds_stop();
}

/* ---- a one-shot HTTP server on loopback -------------------------------- */

typedef struct server {
    int fd, port;
    pthread_t thread;
    const char *status_line; /* "200 OK" */
    char *body;
    char auth[512];  /* Authorization header received */
    char line[128];  /* the request line */
    char form[2048]; /* the request body */
} server;

static void *serve_one(void *arg)
{
    server *s = arg;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) return NULL;
    char req[8192];
    size_t n = 0;
    while (n < sizeof req - 1) {
        ssize_t r = read(c, req + n, sizeof req - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n")) break;
    }
    req[n] = '\0';
    snprintf(s->line, sizeof s->line, "%.*s", (int)strcspn(req, "\r\n"), req);
    const char *cl = strstr(req, "Content-Length: "), *eoh = strstr(req, "\r\n\r\n");
    if (cl && eoh) {
        size_t want = strtoul(cl + strlen("Content-Length: "), NULL, 10),
               have = n - (size_t)(eoh + 4 - req);
        while (have < want && n < sizeof req - 1) {
            ssize_t r = read(c, req + n, sizeof req - 1 - n);
            if (r <= 0) break;
            n += (size_t)r;
            have += (size_t)r;
        }
        req[n] = '\0';
        eoh = strstr(req, "\r\n\r\n");
        snprintf(s->form, sizeof s->form, "%s", eoh + 4);
    }
    const char *a = strstr(req, "Authorization: ");
    if (a) {
        a += strlen("Authorization: ");
        size_t len = strcspn(a, "\r\n");
        snprintf(s->auth, sizeof s->auth, "%.*s", (int)len, a);
    }
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      s->status_line, strlen(s->body));
    if (write(c, head, (size_t)hl) < 0 || write(c, s->body, strlen(s->body)) < 0) {
    }
    close(c);
    return NULL;
}

static void server_start(server *s, const char *status_line, char *body)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    memset(s, 0, sizeof *s);
    s->status_line = status_line;
    s->body = body;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s->fd, 4), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sa, &len), 0);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve_one, s), 0);
    char uri[64];
    snprintf(uri, sizeof uri, "http://127.0.0.1:%d/v1/credentials", s->port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);
}

static void server_stop(server *s)
{
    pthread_join(s->thread, NULL);
    close(s->fd);
}

static char token_file[64];

static void write_token(const char *tok)
{
    snprintf(token_file, sizeof token_file, "/tmp/test_creds_token.XXXXXX");
    int fd = mkstemp(token_file);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, tok, strlen(tok)), (ssize_t)strlen(tok));
    close(fd);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file, 1);
}

/* An Expiration an hour ahead, as RFC 3339 (32 bytes). */
static void an_hour_from_now(char *exp)
{
    time_t later = time(NULL) + 3600;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(exp, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void start_hands_credentials_to_gdal(void **state)
{
    (void)state;
    char body[512], exp[32];
    an_hour_from_now(exp);
    snprintf(body, sizeof body,
             "{\"AccessKeyId\":\"ASIATEST\",\"SecretAccessKey\":\"sekret\",\"Token\":\"sess\","
             "\"Expiration\":\"%s\"}",
             exp);
    server s;
    write_token("pod-token-123\n"); /* the trailing newline is not part of it */
    server_start(&s, "200 OK", body);
    assert_int_equal(creds_start(), 0);
    server_stop(&s);
    assert_string_equal(s.auth, "pod-token-123");
    assert_string_equal(CPLGetConfigOption("AWS_ACCESS_KEY_ID", ""), "ASIATEST");
    assert_string_equal(CPLGetConfigOption("AWS_SECRET_ACCESS_KEY", ""), "sekret");
    assert_string_equal(CPLGetConfigOption("AWS_SESSION_TOKEN", ""), "sess");
    creds_stop(); /* wakes the refresher, which would sleep 48 minutes */
    unlink(token_file);
    CPLSetConfigOption("AWS_ACCESS_KEY_ID", NULL);
    CPLSetConfigOption("AWS_SECRET_ACCESS_KEY", NULL);
    CPLSetConfigOption("AWS_SESSION_TOKEN", NULL);
}

/* Points IRSA at the test server, with the token in a file. */
static void irsa_env(const server *s, const char *token)
{
    char uri[64];
    snprintf(uri, sizeof uri, "http://127.0.0.1:%d/", s->port);
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    setenv("AWS_ENDPOINT_URL_STS", uri, 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/terrane-worker", 1);
    write_token(token);
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token_file, 1);
}

static void start_with_web_identity(void **state)
{
    (void)state;
    char body[1024], exp[32];
    an_hour_from_now(exp);
    snprintf(body, sizeof body,
             "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
             "<AccessKeyId>ASIAIRSA</AccessKeyId><SecretAccessKey>irsa-secret</SecretAccessKey>"
             "<SessionToken>irsa-session</SessionToken><Expiration>%s</Expiration>"
             "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
             exp);
    server s;
    server_start(&s, "200 OK", body);
    irsa_env(&s, "eyJ.web+token/1\n");
    setenv("AWS_ROLE_SESSION_NAME", "unit-session", 1);
    assert_int_equal(creds_start(), 0);
    server_stop(&s);
    assert_string_equal(s.line, "POST / HTTP/1.1");
    assert_string_equal(s.auth, ""); /* the call is not signed */
    assert_string_equal(s.form,
                        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                        "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fterrane-worker"
                        "&RoleSessionName=unit-session&WebIdentityToken=eyJ.web%2Btoken%2F1");
    assert_string_equal(CPLGetConfigOption("AWS_ACCESS_KEY_ID", ""), "ASIAIRSA");
    assert_string_equal(CPLGetConfigOption("AWS_SECRET_ACCESS_KEY", ""), "irsa-secret");
    assert_string_equal(CPLGetConfigOption("AWS_SESSION_TOKEN", ""), "irsa-session");
    creds_stop();
    unlink(token_file);
    CPLSetConfigOption("AWS_ACCESS_KEY_ID", NULL);
    CPLSetConfigOption("AWS_SECRET_ACCESS_KEY", NULL);
    CPLSetConfigOption("AWS_SESSION_TOKEN", NULL);
}

static void sts_error_is_reported(void **state)
{
    (void)state;
    char body[] = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                  "<Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message>"
                  "</Error><RequestId>1</RequestId></ErrorResponse>";
    server s;
    server_start(&s, "403 Forbidden", body);
    irsa_env(&s, "tok");
    assert_int_equal(creds_start(), -1); /* AccessDenied is not retried */
    server_stop(&s);
    assert_int_equal(err_get_class(), ERR_TRANSIENT);
    assert_string_equal(err_get_code(), ERR_CREDENTIALS);
    const char *m = err_get_message();
    if (!strstr(m, "IRSA credentials unavailable") || !strstr(m, "HTTP 403") ||
        !strstr(m, "STS error AccessDenied: Not authorized to perform") ||
        !strstr(m, "role/terrane-worker") || !strstr(m, token_file))
        fail_msg("message: %s", m);
    creds_stop();
    unlink(token_file);

    /* Plain http to a host that is not loopback: refused before any request. */
    err_clear();
    setenv("AWS_ENDPOINT_URL_STS", "http://198.51.100.7/", 1);
    assert_int_equal(creds_start(), -1);
    assert_int_equal(err_get_class(), ERR_INTERNAL);
    assert_non_null(strstr(err_get_message(), "AWS_ENDPOINT_URL_STS=http://198.51.100.7/"));
    creds_stop();
    /* Nor is a session name STS would refuse. */
    err_clear();
    unsetenv("AWS_ENDPOINT_URL_STS");
    setenv("AWS_REGION", "eu-west-1", 1);
    setenv("AWS_ROLE_SESSION_NAME", "a b", 1);
    assert_int_equal(creds_start(), -1);
    assert_non_null(strstr(err_get_message(), "AWS_ROLE_SESSION_NAME"));
    creds_stop();
    unsetenv("AWS_REGION");
}

static void refused_token_is_reported(void **state)
{
    (void)state;
    char body[] = "invalid token";
    server s;
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong", 1);
    server_start(&s, "401 Unauthorized", body);
    assert_int_equal(creds_start(), -1); /* a 4xx is not retried */
    server_stop(&s);
    assert_string_equal(s.auth, "wrong");
    assert_int_equal(err_get_class(), ERR_TRANSIENT);
    assert_string_equal(err_get_code(), ERR_CREDENTIALS);
    const char *m = err_get_message();
    if (!strstr(m, "HTTP 401") || !strstr(m, "127.0.0.1") || !strstr(m, "token"))
        fail_msg("message: %s", m);
    creds_stop();
}

static void oversized_response_is_refused(void **state)
{
    (void)state;
    size_t n = 200 * 1024;
    char *body = malloc(n + 1);
    assert_non_null(body);
    memset(body, ' ', n);
    body[n] = '\0';
    server s;
    server_start(&s, "200 OK", body);
    assert_int_equal(creds_start(), -1);
    server_stop(&s);
    assert_non_null(strstr(err_get_message(), "over 65536 bytes"));
    free(body);
    creds_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(uri_allowlist, setup),
        cmocka_unit_test_setup(time_parsing, setup),
        cmocka_unit_test_setup(document_parsing, setup),
        cmocka_unit_test_setup(refresh_schedule, setup),
        cmocka_unit_test_setup(configured_only_without_static_keys, setup),
        cmocka_unit_test_setup(chain_order, setup),
        cmocka_unit_test_setup(refused_endpoint_fails_start, setup),
        cmocka_unit_test_setup(start_hands_credentials_to_gdal, setup),
        cmocka_unit_test_setup(start_with_web_identity, setup),
        cmocka_unit_test_setup(sts_error_is_reported, setup),
        cmocka_unit_test_setup(refused_token_is_reported, setup),
        cmocka_unit_test_setup(oversized_response_is_refused, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
