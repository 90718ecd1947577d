/* Unit tests: input URI allowlists (no I/O) and GDAL path mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "err.h"
#include "input.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    mem_init();
    err_clear();
    unsetenv("TERRANE_ALLOWED_BUCKETS");
    unsetenv("TERRANE_ALLOWED_HOSTS");
    unsetenv("TERRANE_ALLOW_LOCAL_PATHS");
    return 0;
}

static void allowed(const char *uri)
{
    err_clear();
    if (input_check_uri(uri, "inputs[0].uri") != 0)
        fail_msg("%s refused: %s", uri, err_get_message());
}

static void refused(const char *uri, const char *needle)
{
    err_clear();
    if (input_check_uri(uri, "inputs[3].uri") == 0) fail_msg("%s allowed", uri);
    assert_string_equal(err_get_field(), "inputs[3].uri");
    assert_string_equal(err_get_code(), ERR_INPUT_NOT_ALLOWED);
    if (!strstr(err_get_message(), needle))
        fail_msg("%s: message '%s' lacks '%s'", uri, err_get_message(), needle);
}

static void s3_default_any_bucket(void **state)
{
    (void)state;
    allowed("s3://raw/lux/elev.tif");
    allowed("s3://my.bucket-1/a/b/c.tif");
    refused("s3://raw", "expected s3://bucket/key");
    refused("s3://raw/", "expected s3://bucket/key");
    refused("s3://Raw/x.tif", "valid bucket name");
    refused("s3://raw/../secret/x.tif", "'..'");
}

static void s3_bucket_list(void **state)
{
    (void)state;
    setenv("TERRANE_ALLOWED_BUCKETS", "raw, assets", 1);
    allowed("s3://raw/x.tif");
    allowed("s3://assets/x.tif");
    refused("s3://other/x.tif", "not in the allowed buckets");
    refused("s3://raws/x.tif", "not in the allowed buckets");
}

static void https_hosts(void **state)
{
    (void)state;
    refused("https://data.example.com/x.tif", "not in the allowed hosts");
    setenv("TERRANE_ALLOWED_HOSTS", "data.example.com,*.never", 1);
    allowed("https://data.example.com/x.tif");
    allowed("https://DATA.example.com:8443/x.tif");
    refused("https://evil.example.com/x.tif", "not in the allowed hosts");
    refused("https://user@data.example.com/x.tif", "user information");
    refused("https://data.example.com", "expected https://host/path");
    refused("http://data.example.com/x.tif", "plain http");
    /* metadata endpoints: refused even when allowlisted */
    setenv("TERRANE_ALLOWED_HOSTS", "*", 1);
    refused("https://169.254.169.254/latest/meta-data/", "link-local");
    refused("https://[fd00:ec2::254]/latest/", "link-local");
    refused("https://metadata.google.internal/x", "link-local");
    refused("https://169.254.1.1/x", "link-local");
}

static void local_paths(void **state)
{
    (void)state;
    refused("/data/x.tif", "local paths are not allowed");
    setenv("TERRANE_ALLOW_LOCAL_PATHS", "1", 1);
    allowed("/data/x.tif");
    refused("/vsicurl/http://169.254.169.254/", "never allowed");
    refused("/proc/self/environ", "never allowed");
    refused("/dev/zero", "never allowed");
    refused("relative/x.tif", "unsupported URI");
    refused("file:///etc/passwd", "unsupported URI");
    refused("s3://raw/x\n.tif", "control characters");
}

static void output_uris(void **state)
{
    (void)state;
    assert_int_equal(input_check_output_uri("s3://assets", "output.uri"), 0);
    assert_int_equal(input_check_output_uri("s3://assets/hydro", "output.uri"), 0);
    assert_int_equal(input_check_output_uri("/tmp/out", "output.uri"), -1);
    assert_string_equal(err_get_field(), "output.uri");
    setenv("TERRANE_ALLOW_LOCAL_PATHS", "1", 1);
    assert_int_equal(input_check_output_uri("/tmp/out", "output.uri"), 0);
    assert_int_equal(input_check_output_uri("/tmp/../etc", "output.uri"), -1);
    assert_int_equal(input_check_output_uri("https://x/y", "output.uri"), -1);
}

static void gdal_paths(void **state)
{
    (void)state;
    char *p = input_gdal_path("s3://raw/a/b.tif");
    assert_string_equal(p, "/vsis3/raw/a/b.tif");
    mem_free(p);
    p = input_gdal_path("https://h/x.tif");
    assert_string_equal(p, "/vsiterrane_https/https://h/x.tif");
    mem_free(p);
    p = input_gdal_path("/data/x.tif");
    assert_string_equal(p, "/data/x.tif");
    mem_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(s3_default_any_bucket, setup),
        cmocka_unit_test_setup(s3_bucket_list, setup),
        cmocka_unit_test_setup(https_hosts, setup),
        cmocka_unit_test_setup(local_paths, setup),
        cmocka_unit_test_setup(output_uris, setup),
        cmocka_unit_test_setup(gdal_paths, setup),
    };
    return cmocka_run_group_tests_name("input", tests, NULL, NULL);
}
