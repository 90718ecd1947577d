/*
 * test_kubeconfig.c - kubeconfig parsing (kube_config_parse / _load) and the
 * in-cluster configuration (kube_config_in_cluster, with TERRANE_SA_DIR
 * pointing at a temporary service account directory). Every refusal and
 * malformed field must fail with a message naming its YAML path; every
 * error path must free what it allocated (cmem_live) and running out of
 * memory anywhere must be reported as such.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/kube.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" */
#define PEM_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
#define PEM_TEXT "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
/* "-----BEGIN PRIVATE KEY-----\nMC4\n-----END PRIVATE KEY-----\n" */
#define KEY_B64 "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1DNAotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg=="
#define KEY_TEXT "-----BEGIN PRIVATE KEY-----\nMC4\n-----END PRIVATE KEY-----\n"

static const char full[] = "apiVersion: v1\n"
                           "kind: Config\n"
                           "current-context: prod\n"
                           "clusters:\n"
                           "- name: other\n"
                           "  cluster:\n"
                           "    server: http://127.0.0.1:8080\n"
                           "- name: eks\n"
                           "  cluster:\n"
                           "    server: https://ABC.gr7.eu-west-1.eks.amazonaws.com/\n"
                           "    certificate-authority-data: " PEM_B64 "\n"
                           "contexts:\n"
                           "- name: dev\n"
                           "  context:\n"
                           "    cluster: other\n"
                           "    user: dev-user\n"
                           "- name: prod\n"
                           "  context:\n"
                           "    cluster: eks\n"
                           "    user: admin\n"
                           "    namespace: hydro\n"
                           "users:\n"
                           "- name: dev-user\n"
                           "  user:\n"
                           "    token: dev-token\n"
                           "- name: admin\n"
                           "  user:\n"
                           "    client-certificate-data: " PEM_B64 "\n"
                           "    client-key-data: " KEY_B64 "\n"
                           "    token: \"s3cret\"\n"
                           "preferences: {}\n";

static int setup(void **state)
{
    (void)state;
    cmem_init();
    return 0;
}

static kube_config *parse_ok(const char *yaml, const char *base, const char *ctx)
{
    kube_config *cfg = NULL;
    int rc = kube_config_parse(yaml, strlen(yaml), base, ctx, &cfg);
    if (rc) fail_msg("parse failed: %s (%s)", cerr_message(), cerr_name(rc));
    assert_non_null(cfg);
    return cfg;
}

/* Parses yaml, expecting code and a message containing want. */
static void parse_err(const char *yaml, const char *ctx, int code, const char *want)
{
    kube_config *cfg = (kube_config *)0x1;
    long live = cmem_live();
    int rc = kube_config_parse(yaml, strlen(yaml), "/base", ctx, &cfg);
    if (rc != code || !strstr(cerr_message(), want))
        fail_msg("expected %s containing \"%s\", got %s: \"%s\"", cerr_name(code), want,
                 cerr_name(rc), cerr_message());
    assert_null(cfg);
    assert_int_equal(cmem_live(), live);
}

/* --- valid configurations ---------------------------------------------------------------- */

static void current_context_with_client_cert(void **state)
{
    (void)state;
    long live = cmem_live();
    kube_config *cfg = parse_ok(full, "/home/me/.kube", NULL);
    assert_string_equal(cfg->server, "https://ABC.gr7.eu-west-1.eks.amazonaws.com");
    assert_string_equal(cfg->ca_data, PEM_TEXT);
    assert_null(cfg->ca_file);
    assert_string_equal(cfg->cert_data, PEM_TEXT);
    assert_string_equal(cfg->key_data, KEY_TEXT);
    assert_string_equal(cfg->token, "s3cret");
    assert_null(cfg->token_file);
    assert_string_equal(cfg->namespace_, "hydro");
    assert_true(cfg->qps > 0);
    assert_true(cfg->burst > 0);
    assert_true(cfg->timeout_ms > 0);
    kube_config_free(cfg);
    assert_int_equal(cmem_live(), live);
}

static void named_context_wins_over_current(void **state)
{
    (void)state;
    kube_config *cfg = parse_ok(full, NULL, "dev");
    assert_string_equal(cfg->server, "http://127.0.0.1:8080");
    assert_string_equal(cfg->token, "dev-token");
    assert_null(cfg->namespace_);
    assert_null(cfg->ca_data);
    assert_null(cfg->cert_data);
    kube_config_free(cfg);
}

static void relative_paths_resolve_against_the_kubeconfig_dir(void **state)
{
    (void)state;
    const char *y = "current-context: c\n"
                    "clusters: [{name: k, cluster: {server: 'k.example:6443', "
                    "certificate-authority: ca.pem}}]\n"
                    "contexts: [{name: c, context: {cluster: k, user: u, namespace: ~}}]\n"
                    "users:\n"
                    "- name: u\n"
                    "  user:\n"
                    "    client-certificate: certs/me.crt\n"
                    "    client-key: /abs/me.key\n"
                    "    tokenFile: ../token\n";
    kube_config *cfg = parse_ok(y, "/etc/kube", NULL);
    assert_string_equal(cfg->server, "https://k.example:6443"); /* no scheme: https, as kubectl */
    assert_string_equal(cfg->ca_file, "/etc/kube/ca.pem");
    assert_string_equal(cfg->cert_file, "/etc/kube/certs/me.crt");
    assert_string_equal(cfg->key_file, "/abs/me.key");
    assert_string_equal(cfg->token_file, "/etc/kube/../token");
    assert_null(cfg->token);
    assert_null(cfg->namespace_); /* "~" is null */
    kube_config_free(cfg);
}

static void context_without_user_and_false_insecure_flag(void **state)
{
    (void)state;
    const char *y = "current-context: c\n"
                    "clusters:\n- name: k\n  cluster:\n    server: http://10.1.2.3:80\n"
                    "    insecure-skip-tls-verify: false\n"
                    "contexts:\n- name: c\n  context:\n    cluster: k\n    namespace:\n"
                    "users: []\n";
    kube_config *cfg = parse_ok(y, NULL, NULL);
    assert_string_equal(cfg->server, "http://10.1.2.3:80");
    assert_null(cfg->token);
    assert_null(cfg->namespace_);
    kube_config_free(cfg);
}

static void base64_with_folded_whitespace_and_no_padding(void **state)
{
    (void)state;
    /* The same PEM, split over lines (a folded scalar turns them into
     * spaces) and without its "=" padding. */
    char y[1024];
    snprintf(y, sizeof y,
             "current-context: c\n"
             "clusters:\n- name: k\n  cluster:\n    server: https://h\n"
             "    certificate-authority-data: %.40s\n      %.39s\n"
             "contexts:\n- name: c\n  context: {cluster: k}\n",
             PEM_B64, &PEM_B64[40]);
    kube_config *cfg = parse_ok(y, NULL, NULL);
    assert_string_equal(cfg->ca_data, PEM_TEXT);
    kube_config_free(cfg);
}

static void load_reads_the_file_and_uses_its_directory(void **state)
{
    (void)state;
    char dir[] = "/tmp/kcfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/config", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(
        "current-context: c\n"
        "clusters: [{name: k, cluster: {server: https://h:6443, certificate-authority: ca.crt}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "users: [{name: u, user: {tokenFile: tok}}]\n",
        f);
    fclose(f);
    kube_config *cfg = NULL;
    long live = cmem_live();
    assert_int_equal(kube_config_load(path, NULL, &cfg), 0);
    char want[300];
    snprintf(want, sizeof want, "%s/ca.crt", dir);
    assert_string_equal(cfg->ca_file, want);
    snprintf(want, sizeof want, "%s/tok", dir);
    assert_string_equal(cfg->token_file, want);
    kube_config_free(cfg);

    /* NULL path: $KUBECONFIG's first entry. */
    char env[600];
    snprintf(env, sizeof env, "%s:/nonexistent/other", path);
    setenv("KUBECONFIG", env, 1);
    assert_int_equal(kube_config_load(NULL, NULL, &cfg), 0);
    assert_string_equal(cfg->server, "https://h:6443");
    kube_config_free(cfg);
    unsetenv("KUBECONFIG");

    /* A missing file names itself. */
    snprintf(want, sizeof want, "%s/missing", dir);
    assert_int_equal(kube_config_load(want, NULL, &cfg), CERR_NOTFOUND);
    assert_non_null(strstr(cerr_message(), want));
    assert_null(cfg);
    assert_int_equal(cmem_live(), live);
    unlink(path);
    rmdir(dir);
}

/* --- errors name their path ----------------------------------------------------------------- */

#define HEAD "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
#define CLUSTER "clusters: [{name: k, cluster: {server: https://h}}]\n"
#define USERS "users: [{name: u, user: {}}]\n"

static void errors_name_the_yaml_path(void **state)
{
    (void)state;
    parse_err(HEAD CLUSTER "users:\n- name: u\n  user:\n    client-certificate-data: " PEM_B64
                           "\n    client-key-data: LS0t*bad\n",
              NULL, CERR_INVALID, "users[0].user.client-key-data: invalid base64 at byte 4");
    parse_err(HEAD
              "clusters: [{name: x, cluster: {server: a}}, {name: k, cluster: {server: https://h, "
              "insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {}}]\n",
              NULL, CERR_INVALID, "clusters[1].cluster.insecure-skip-tls-verify: refused");
    parse_err(HEAD CLUSTER "users: [{name: u, user: {exec: {command: aws}}}]\n", NULL, CERR_INVALID,
              "users[0].user.exec: exec credential plugins are not supported");
    parse_err(HEAD CLUSTER "users: [{name: u, user: {auth-provider: {name: gcp}}}]\n", NULL,
              CERR_INVALID, "users[0].user.auth-provider");
    parse_err(HEAD CLUSTER "users: [{name: u, user: {username: a, password: b}}]\n", NULL,
              CERR_INVALID, "basic authentication is not supported");
    parse_err(HEAD CLUSTER "users: [{name: u, user: {}}]\n", "nope", CERR_NOTFOUND,
              "contexts: no entry named \"nope\"");
    parse_err("contexts: []\n", NULL, CERR_INVALID, "current-context: not set");
    parse_err(HEAD "clusters: []\nusers: [{name: u, user: {}}]\n", NULL, CERR_NOTFOUND,
              "clusters: no entry named \"k\"");
    parse_err(HEAD CLUSTER "users: [{name: x, user: {}}]\n", NULL, CERR_NOTFOUND,
              "users: no entry named \"u\"");
    parse_err(HEAD "clusters: [{name: k, cluster: {certificate-authority: ca}}]\n" USERS, NULL,
              CERR_INVALID, "clusters[0].cluster.server: missing");
    parse_err(HEAD "clusters: [{name: k, cluster: {server: {a: b}}}]\n" USERS, NULL, CERR_INVALID,
              "clusters[0].cluster.server: expected a string, got a mapping");
    parse_err(HEAD "clusters: {k: 1}\n" USERS, NULL, CERR_INVALID,
              "clusters: expected a list, got a mapping");
    parse_err(HEAD "clusters: [x]\n" USERS, NULL, CERR_INVALID,
              "clusters[0]: expected a mapping, got a string");
    parse_err(HEAD "clusters: [{name: k, cluster: [1]}]\n" USERS, NULL, CERR_INVALID,
              "clusters[0].cluster: expected a mapping, got a list");
    parse_err(HEAD "clusters: [{name: k}]\n" USERS, NULL, CERR_INVALID,
              "clusters[0].cluster: missing");
    parse_err(HEAD CLUSTER "users: [{name: u, user: {client-key: a.key, client-key-data: " KEY_B64
                           "}}]\n",
              NULL, CERR_INVALID, "users[0].user: both client-key and client-key-data are set");
    parse_err(HEAD CLUSTER "users: [{name: u, user: {client-certificate: a.crt}}]\n", NULL,
              CERR_INVALID, "users[0].user: client-certificate without client-key");
    parse_err(HEAD "clusters: [{name: k, cluster: {server: https://h, certificate-authority-data: "
                   "aGVsbG8=}}]\n" USERS,
              NULL, CERR_INVALID, "clusters[0].cluster.certificate-authority-data: not PEM");
    parse_err(HEAD "clusters: [{name: k, cluster: {server: https://h, certificate-authority-data: "
                   "aGVsbG8==}}]\n" USERS,
              NULL, CERR_INVALID, "clusters[0].cluster.certificate-authority-data: invalid base64");
    parse_err(HEAD "clusters: [{name: k, cluster: {server: 'ftp://h'}}]\n" USERS, NULL,
              CERR_INVALID, "only http:// and https:// are supported");
    parse_err(HEAD "clusters: [{name: k, cluster: {server: 'https://'}}]\n" USERS, NULL,
              CERR_INVALID, "clusters[0].cluster.server: \"https://\" has no host");
    parse_err(HEAD "clusters: [{name: k, cluster: {server: 'http:////'}}]\n" USERS, NULL,
              CERR_INVALID, "has no host");
    parse_err(HEAD "clusters: [{name: k, cluster: {server: 'https://h x'}}]\n" USERS, NULL,
              CERR_INVALID, "clusters[0].cluster.server: contains whitespace");
    parse_err(HEAD
              "clusters: [{name: k, cluster: {server: https://h, proxy-url: http://p}}]\n" USERS,
              NULL, CERR_INVALID, "clusters[0].cluster.proxy-url: not supported");
    parse_err(HEAD "clusters: [{name: k, cluster: {server: \"https://h\\0\"}}]\n" USERS, NULL,
              CERR_INVALID, "contains a NUL byte");
    parse_err("current-context: c\ncontexts: [{name: c, context: {user: u}}]\n", NULL, CERR_INVALID,
              "contexts[0].context.cluster: missing");
    parse_err("clusters: [\n  {name: k\n", NULL, CERR_INVALID, "kubeconfig: line ");
    parse_err("- a\n- b\n", NULL, CERR_INVALID, "expected a mapping at the top, got a list");
    parse_err("", NULL, CERR_INVALID, "kubeconfig: empty document");
    parse_err("kind: Pod\n", NULL, CERR_INVALID, "kind: expected Config");
    parse_err("current-context: [a]\n", NULL, CERR_INVALID,
              "current-context: expected a string, got a list");
    assert_int_equal(strncmp(cerr_message(), "current-context:", 16),
                     0); /* a top-level key: no leading dot */
}

static void oversized_input_is_refused(void **state)
{
    (void)state;
    size_t n = (4u << 20) + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, '#', n);
    kube_config *cfg = NULL;
    assert_int_equal(kube_config_parse(big, n, NULL, NULL, &cfg), CERR_TOOBIG);
    assert_null(cfg);
    free(big);
}

static void aliases_and_anchors_are_harmless(void **state)
{
    (void)state;
    /* A self-referencing anchor must not send the lookup into a loop. */
    const char *y = "current-context: c\n"
                    "contexts: &x [{name: c, context: {cluster: k}}, *x]\n"
                    "clusters: [{name: k, cluster: &s {server: https://h, extra: *s}}]\n";
    kube_config *cfg = parse_ok(y, NULL, NULL);
    assert_string_equal(cfg->server, "https://h");
    kube_config_free(cfg);
}

static void out_of_memory_anywhere_is_reported_and_leaks_nothing(void **state)
{
    (void)state;
    long live = cmem_live();
    int failures = 0;
    for (unsigned long n = 1; n < 200; n++) {
        kube_config *cfg = NULL;
        cmem_fail_at(n);
        int rc = kube_config_parse(full, strlen(full), "/d", NULL, &cfg);
        cmem_fail_at(0);
        if (rc == 0) {
            kube_config_free(cfg);
            break;
        }
        failures++;
        assert_int_equal(rc, CERR_NOMEM);
        assert_null(cfg);
        assert_int_equal(cmem_live(), live);
    }
    assert_true(failures > 5);
    assert_int_equal(cmem_live(), live);
}

/* --- in-cluster ----------------------------------------------------------------------------- */

static char sa_dir[64];

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int sa_setup(void **state)
{
    (void)state;
    cmem_init();
    snprintf(sa_dir, sizeof sa_dir, "/tmp/sa-XXXXXX");
    if (!mkdtemp(sa_dir)) return -1;
    write_file(sa_dir, "token", "eyJhbGciOi.token\n");
    write_file(sa_dir, "ca.crt", PEM_TEXT);
    write_file(sa_dir, "namespace", "terrane-system\n");
    setenv("TERRANE_SA_DIR", sa_dir, 1);
    return 0;
}

static int sa_teardown(void **state)
{
    (void)state;
    char path[256];
    const char *names[] = {"token", "ca.crt", "namespace"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", sa_dir, names[i]);
        unlink(path);
    }
    rmdir(sa_dir);
    unsetenv("TERRANE_SA_DIR");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    return 0;
}

static void in_cluster_reads_the_service_account(void **state)
{
    (void)state;
    long live = cmem_live();
    kube_config *cfg = NULL;
    unsetenv("KUBERNETES_SERVICE_HOST");
    assert_int_equal(kube_config_in_cluster(getenv("TERRANE_SA_DIR"), &cfg), CERR_NOTFOUND);
    assert_non_null(strstr(cerr_message(), "KUBERNETES_SERVICE_HOST"));

    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(kube_config_in_cluster(getenv("TERRANE_SA_DIR"), &cfg), 0);
    assert_string_equal(cfg->server, "https://10.96.0.1:443");
    assert_string_equal(cfg->token, "eyJhbGciOi.token");
    char want[128];
    snprintf(want, sizeof want, "%s/token", sa_dir);
    assert_string_equal(cfg->token_file, want);
    snprintf(want, sizeof want, "%s/ca.crt", sa_dir);
    assert_string_equal(cfg->ca_file, want);
    assert_string_equal(cfg->namespace_, "terrane-system");
    kube_config_free(cfg);

    /* IPv6 service address: bracketed in the URL. */
    setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
    assert_int_equal(kube_config_in_cluster(getenv("TERRANE_SA_DIR"), &cfg), 0);
    assert_string_equal(cfg->server, "https://[fd00:10:96::1]:443");
    kube_config_free(cfg);

    setenv("KUBERNETES_SERVICE_PORT", "44x", 1);
    assert_int_equal(kube_config_in_cluster(getenv("TERRANE_SA_DIR"), &cfg), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "KUBERNETES_SERVICE_PORT"));
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    setenv("KUBERNETES_SERVICE_HOST", "evil/path", 1);
    assert_int_equal(kube_config_in_cluster(getenv("TERRANE_SA_DIR"), &cfg), CERR_INVALID);
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);

    /* No namespace file: no namespace. No token: an error naming the file. */
    snprintf(want, sizeof want, "%s/namespace", sa_dir);
    unlink(want);
    assert_int_equal(kube_config_in_cluster(getenv("TERRANE_SA_DIR"), &cfg), 0);
    assert_null(cfg->namespace_);
    kube_config_free(cfg);
    snprintf(want, sizeof want, "%s/token", sa_dir);
    unlink(want);
    assert_int_equal(kube_config_in_cluster(getenv("TERRANE_SA_DIR"), &cfg), CERR_NOTFOUND);
    assert_non_null(strstr(cerr_message(), want));
    assert_null(cfg);
    write_file(sa_dir, "token", "\n");
    assert_int_equal(kube_config_in_cluster(getenv("TERRANE_SA_DIR"), &cfg), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "is empty"));
    assert_int_equal(cmem_live(), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(current_context_with_client_cert),
        cmocka_unit_test(named_context_wins_over_current),
        cmocka_unit_test(relative_paths_resolve_against_the_kubeconfig_dir),
        cmocka_unit_test(context_without_user_and_false_insecure_flag),
        cmocka_unit_test(base64_with_folded_whitespace_and_no_padding),
        cmocka_unit_test(load_reads_the_file_and_uses_its_directory),
        cmocka_unit_test(errors_name_the_yaml_path),
        cmocka_unit_test(oversized_input_is_refused),
        cmocka_unit_test(aliases_and_anchors_are_harmless),
        cmocka_unit_test(out_of_memory_anywhere_is_reported_and_leaks_nothing),
        cmocka_unit_test_setup_teardown(in_cluster_reads_the_service_account, sa_setup,
                                        sa_teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
