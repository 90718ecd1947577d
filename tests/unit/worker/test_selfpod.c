/* Unit tests: reading the user's imageID from the worker's own pod
 * (selfpod.h): the pod JSON parser on good, pending and hostile answers,
 * and the environment rules before any request. The request itself runs
 * against kubesim in tests/e2e/test_controller_container.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "err.h"
#include "mem.h"
#include "selfpod.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ID                                                                                         \
    "docker.io/library/ml@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int setup(void **state)
{
    (void)state;
    mem_init();
    err_clear();
    return 0;
}

static int parse(const char *body, char *out, size_t cap)
{
    err_clear();
    return selfpod_parse(body, strlen(body), "user", out, cap);
}

static void parses_pods(void **state)
{
    (void)state;
    char out[SELFPOD_IMAGE_ID_MAX + 1];
    assert_int_equal(
        parse("{\"status\":{\"initContainerStatuses\":[{\"name\":\"fetch\",\"imageID\":"
              "\"w@sha256:1\"},{\"name\":\"user\",\"imageID\":\"" ID "\"}]}}",
              out, sizeof out),
        1);
    assert_string_equal(out, ID);
    /* not reported yet: asked again */
    assert_int_equal(parse("{\"status\":{}}", out, sizeof out), 0);
    assert_int_equal(parse("{\"status\":{\"initContainerStatuses\":[{\"name\":\"user\","
                           "\"imageID\":\"\"}]}}",
                           out, sizeof out),
                     0);
    assert_int_equal(
        parse("{\"status\":{\"initContainerStatuses\":[{\"name\":\"user\"}]}}", out, sizeof out),
        0);
    assert_int_equal(
        parse("{\"status\":{\"initContainerStatuses\":{\"name\":\"user\"}}}", out, sizeof out), 0);
    /* another container's imageID is not the user's */
    assert_int_equal(
        parse("{\"status\":{\"initContainerStatuses\":[{\"name\":\"fetch\",\"imageID\":"
              "\"w@sha256:1\"},{\"name\":7,\"imageID\":\"x\"}]}}",
              out, sizeof out),
        0);
    /* not a pod */
    static const char *const bad[] = {"", "[]", "{\"status\":", "null", "\"x\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i], out, sizeof out), -1);
        assert_string_equal(err_get_code(), ERR_POD_STATUS);
        assert_int_equal(err_get_class(), ERR_TRANSIENT);
    }
    /* an imageID over the cap, or over the caller's buffer */
    char *big = mem_malloc(SELFPOD_IMAGE_ID_MAX + 200);
    assert_non_null(big);
    int n = snprintf(big, SELFPOD_IMAGE_ID_MAX + 200,
                     "{\"status\":{\"initContainerStatuses\":[{\"name\":\"user\",\"imageID\":\"");
    memset(big + n, 'a', SELFPOD_IMAGE_ID_MAX + 1);
    snprintf(big + n + SELFPOD_IMAGE_ID_MAX + 1, 8, "\"}]}}");
    assert_int_equal(parse(big, out, sizeof out), -1);
    mem_free(big);
    char small[8];
    assert_int_equal(parse("{\"status\":{\"initContainerStatuses\":[{\"name\":\"user\",\"imageID\":"
                           "\"" ID "\"}]}}",
                           small, sizeof small),
                     -1);
}

static void environment(void **state)
{
    (void)state;
    char out[SELFPOD_IMAGE_ID_MAX + 1] = "";
    unsetenv(SELFPOD_ENV_NAME);
    /* a step run by hand: nothing to read */
    assert_int_equal(selfpod_image_id("user", out, sizeof out), 0);
    /* in a pod without the API server's address: logged, nothing recorded */
    setenv(SELFPOD_ENV_NAME, "p-1", 1);
    unsetenv("KUBERNETES_SERVICE_HOST");
    assert_int_equal(selfpod_image_id("user", out, sizeof out), 0);
    /* told to read it but without a token: a failure, retried */
    setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "1", 1);
    setenv(SELFPOD_ENV_NAMESPACE, "hydro", 1);
    unsetenv(SELFPOD_ENV_TOKEN);
    err_clear();
    assert_int_equal(selfpod_image_id("user", out, sizeof out), -1);
    assert_string_equal(err_get_code(), ERR_POD_STATUS);
    setenv(SELFPOD_ENV_TOKEN, "/nonexistent/token", 1);
    err_clear();
    assert_int_equal(selfpod_image_id("user", out, sizeof out), -1);
    assert_non_null(strstr(err_get_message(), "/nonexistent/token"));
    assert_string_equal(out, "");
    unsetenv(SELFPOD_ENV_NAME);
}

/* A token file that is too long, has a second line or a byte that cannot go
 * into a header is refused whole, before any request; never cut. */
static void hostile_tokens(void **state)
{
    (void)state;
    char path[] = "/tmp/test_selfpod_token.XXXXXX", out[SELFPOD_IMAGE_ID_MAX + 1] = "";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    setenv(SELFPOD_ENV_NAME, "p-1", 1);
    setenv(SELFPOD_ENV_NAMESPACE, "hydro", 1);
    setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "1", 1);
    setenv(SELFPOD_ENV_TOKEN, path, 1);
    static char big[16385 + 1];
    memset(big, 'a', sizeof big - 1);
    const struct {
        const char *bytes;
        size_t len;
        const char *says;
    } cases[] = {
        {big, sizeof big - 1, "over 16384 bytes"},
        {"abc\r\nX-Injected: 1\n", 19, "more than one line"},
        {"ab\x01"
         "c\n",
         5, "a control character"},
        {"ab c", 4, "a control character or space"},
        {"ab\0cd", 5, "a NUL byte"},
        {"\n\n", 2, "is empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(cases[i].bytes, 1, cases[i].len, f), cases[i].len);
        fclose(f);
        err_clear();
        assert_int_equal(selfpod_image_id("user", out, sizeof out), -1);
        if (!strstr(err_get_message(), cases[i].says))
            fail_msg("case %zu: '%s' does not say '%s'", i, err_get_message(), cases[i].says);
        assert_string_equal(err_get_code(), ERR_POD_STATUS);
    }
    unlink(path);
    unsetenv(SELFPOD_ENV_NAME);
    unsetenv(SELFPOD_ENV_TOKEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(parses_pods, setup),
        cmocka_unit_test_setup(environment, setup),
        cmocka_unit_test_setup(hostile_tokens, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
