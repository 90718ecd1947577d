/* Unit tests: S3 XML (ListObjectsV2 pages, <Error>), response headers,
 * SigV4 signing, source URIs and globs. No network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "err.h"
#include "mem.h"
#include "observe.h"
#include "result.h"
#include "s3list.h"
#include "s3req.h"

#include <cJSON.h>
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

typedef struct seen {
    char keys[8][S3LIST_KEY_MAX + 1];
    char etags[8][S3LIST_ETAG_MAX + 1];
    unsigned long long sizes[8];
    int n, stop_at;
} seen;

static int collect(void *arg, const s3list_object *o)
{
    seen *s = arg;
    if (s->n == s->stop_at) return err_set(ERR_BAD_INPUT, ERR_SOURCE_TOO_LARGE, NULL, "stop");
    snprintf(s->keys[s->n], sizeof s->keys[0], "%s", o->key);
    snprintf(s->etags[s->n], sizeof s->etags[0], "%s", o->etag);
    s->sizes[s->n] = o->size;
    s->n++;
    return 0;
}

static const char page1[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>raw</Name><Prefix>precip/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
    "<IsTruncated>true</IsTruncated>"
    "<Contents><Key>precip/a&amp;b.tif</Key><LastModified>2026-12-02T10:00:00.000Z</LastModified>"
    "<ETag>&quot;7b003c8d99535e2c14389c50ff792bea&quot;</ETag><Size>11</Size>"
    "<Owner><ID>x</ID><Key>not the object key</Key></Owner>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<!-- a comment --><Contents><Key>precip/caf&#233;&#x2F;x.tif</Key>"
    "<ETag>\"abc-2\"</ETag><Size>18446744073709551615</Size></Contents>"
    "<CommonPrefixes><Prefix>precip/old/</Prefix></CommonPrefixes>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "<EncodingType/></ListBucketResult>";

static void parses_a_page(void **state)
{
    (void)state;
    seen s = {.stop_at = -1};
    s3list_page p;
    assert_int_equal(s3list_parse(page1, strlen(page1), collect, &s, &p), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.keys[0], "precip/a&b.tif");
    assert_string_equal(s.etags[0], "7b003c8d99535e2c14389c50ff792bea");
    assert_true(s.sizes[0] == 11);
    assert_string_equal(s.keys[1], "precip/caf\xc3\xa9/x.tif");
    assert_string_equal(s.etags[1], "abc-2");
    assert_true(s.sizes[1] == 18446744073709551615ULL);
    assert_true(p.truncated);
    assert_string_equal(p.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    assert_int_equal(p.n_objects, 2);
    assert_int_equal(p.n_prefixes, 1);
}

static void callback_stops_parsing(void **state)
{
    (void)state;
    seen s = {.stop_at = 1};
    s3list_page p;
    assert_int_equal(s3list_parse(page1, strlen(page1), collect, &s, &p), -1);
    assert_int_equal(s.n, 1);
    assert_string_equal(err_get_code(), ERR_SOURCE_TOO_LARGE);
}

static void last_page_and_empty(void **state)
{
    (void)state;
    static const char empty[] = "<ListBucketResult><Name>raw</Name><KeyCount>0</KeyCount>"
                                "<IsTruncated>false</IsTruncated></ListBucketResult>";
    seen s = {.stop_at = -1};
    s3list_page p;
    assert_int_equal(s3list_parse(empty, strlen(empty), collect, &s, &p), 0);
    assert_false(p.truncated);
    assert_int_equal(s.n, 0);
}

/* Each document is malformed for one reason; all are refused as a server
 * fault (Transient, S3ServerError) with the byte offset. */
static void refuses_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "<Error><Code>x</Code></Error>",
        "<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a</Key><Size>1x</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a&bogus;</Key><Size>1</Size></Contents>"
        "</ListBucketResult>",
        "<ListBucketResult><Contents><Key>a&#0;</Key><Size>1</Size></Contents>"
        "</ListBucketResult>",
        "<ListBucketResult><Contents><Key>a&#xD800;</Key><Size>1</Size></Contents>"
        "</ListBucketResult>",
        "<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>",
        "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
        "<ListBucketResult><Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>",
        "<ListBucketResult><!DOCTYPE x></ListBucketResult>",
        "<ListBucketResult><Contents><Key><b/>a</Key><Size>1</Size></Contents></ListBucketResult>",
        "<ListBucketResult></ListBucketResult><ListBucketResult></ListBucketResult>",
        "<ListBucketResult><a><b><c><d><e><f><g><h></h></g></f></e></d></c></b></a>"
        "</ListBucketResult>",
        "<ListBucketResult attr=\"unterminated></ListBucketResult>",
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        seen s = {.stop_at = -1};
        s3list_page p;
        err_clear();
        if (s3list_parse(bad[i], strlen(bad[i]), collect, &s, &p) != -1)
            fail_msg("accepted bad[%d]: %s", i, bad[i]);
        assert_string_equal(err_get_code(), ERR_S3_SERVER);
        assert_int_equal(err_get_class(), ERR_TRANSIENT);
        assert_non_null(strstr(err_get_message(), "at byte"));
    }
}

static void key_over_limit(void **state)
{
    (void)state;
    char *doc = malloc(S3LIST_KEY_MAX + 200);
    assert_non_null(doc);
    int n = sprintf(doc, "<ListBucketResult><Contents><Key>");
    memset(doc + n, 'k', S3LIST_KEY_MAX + 1);
    n += S3LIST_KEY_MAX + 1;
    sprintf(doc + n, "</Key><Size>1</Size></Contents></ListBucketResult>");
    seen s = {.stop_at = -1};
    s3list_page p;
    assert_int_equal(s3list_parse(doc, strlen(doc), collect, &s, &p), -1);
    assert_non_null(strstr(err_get_message(), "longer than its limit"));
    /* Exactly the limit is fine. */
    memmove(doc + n - 1, doc + n, strlen(doc + n) + 1);
    s.n = 0;
    assert_int_equal(s3list_parse(doc, strlen(doc), NULL, NULL, &p), 0);
    assert_int_equal(p.n_objects, 1);
    free(doc);
}

static void error_documents(void **state)
{
    (void)state;
    char code[64], msg[256];
    static const char doc[] = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>"
                              "<Message>The specified bucket does not exist</Message>"
                              "<BucketName>nosuch</BucketName></Error>";
    s3list_parse_error(doc, strlen(doc), code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "NoSuchBucket");
    assert_string_equal(msg, "The specified bucket does not exist");
    s3list_parse_error("<html>", 6, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "");
    s3list_parse_error("<Error><Code>", 13, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "");
}

static void headers(void **state)
{
    (void)state;
    s3req_resp r = {0};
    static const char *const lines[] = {
        "ETag: \"9a0364b9e99bb480dd25e1f0284c8555\"\r\n",
        "x-amz-version-id:   3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY  \r\n",
        "Last-Modified: Wed, 02 Dec 2026 10:00:00 GMT\r\n",
        "content-length: 1843207\r\n",
        "Content-Type: image/tiff\r\n",
        "X-Other: ignored\r\n",
        "no colon here\r\n",
        NULL,
    };
    for (int i = 0; lines[i]; i++)
        s3req_parse_header(lines[i], strlen(lines[i]), &r);
    assert_string_equal(r.etag, "\"9a0364b9e99bb480dd25e1f0284c8555\"");
    assert_string_equal(r.version_id, "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY");
    assert_string_equal(r.last_modified, "Wed, 02 Dec 2026 10:00:00 GMT");
    assert_true(r.has_length && r.content_length == 1843207);
    s3req_resp q = {0};
    s3req_parse_header("x-amz-version-id: null\r\n", 24, &q);
    assert_string_equal(q.version_id, "");
    s3req_parse_header("Content-Length: 12abc\r\n", 23, &q);
    assert_false(q.has_length);
    char big[600];
    int n = snprintf(big, sizeof big, "ETag: ");
    memset(big + n, 'e', sizeof big - (size_t)n - 1);
    big[sizeof big - 1] = '\0';
    s3req_parse_header(big, strlen(big), &q);
    assert_int_equal(strlen(q.etag), sizeof q.etag - 1);
}

static void uri_encoding(void **state)
{
    (void)state;
    char *e = s3req_uri_encode("precip/2026/a b+c=\xc3\xa9~_-.", true);
    assert_string_equal(e, "precip/2026/a%20b%2Bc%3D%C3%A9~_-.");
    mem_free(e);
    e = s3req_uri_encode("a/b", false);
    assert_string_equal(e, "a%2Fb");
    mem_free(e);
}

/* SigV4 vectors: AWS's documented "GET Bucket (List Objects)" example, and
 * requests shaped like ours (a session token, an encoded key), whose
 * signatures were cross-checked with another SigV4 implementation. */
static void sigv4(void **state)
{
    (void)state;
    char auth[512];
    const char *id = "AKIAIOSFODNN7EXAMPLE", *secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    assert_int_equal(s3req_sign("GET", "examplebucket.s3.amazonaws.com", "/", "max-keys=2&prefix=J",
                                "20130524T000000Z", "us-east-1", id, secret, NULL, auth,
                                sizeof auth),
                     0);
    assert_string_equal(auth,
                        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                        "s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef6"
                        "9dc6f7");
    assert_int_equal(
        s3req_sign(
            "GET", "127.0.0.1:4568", "/raw/",
            "continuation-token=a%2Fb%3D&delimiter=%2F&list-type=2&prefix=precip%2F2026%2Fp_",
            "20130524T000000Z", "us-east-1", id, secret, "TOKEN/x+y=", auth, sizeof auth),
        0);
    assert_non_null(strstr(auth, "SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
                                 "x-amz-security-token, Signature=640e0de2f3f423abf195a849420a20a5"
                                 "ebe4df253cb06d2584293ad6f245b625"));
    char *path = s3req_uri_encode("raw/lux/elev \xc3\xa9.tif", true);
    char *p = mem_printf("/%s", path);
    assert_int_equal(s3req_sign("HEAD", "127.0.0.1:4568", p, "", "20130524T000000Z", "us-east-1",
                                id, secret, NULL, auth, sizeof auth),
                     0);
    assert_non_null(strstr(auth,
                           "Signature=02304c8f12376943c53069a00119a6394c95c8eafc811517474ebdc1"
                           "a35532e2"));
    mem_free(p);
    mem_free(path);
    assert_int_equal(s3req_sign("GET", "h", "/", "", "20130524T000000Z", "us-east-1", id, secret,
                                NULL, auth, 40),
                     -1);
}

static void source_uris(void **state)
{
    (void)state;
    src_uri s;
    assert_int_equal(observe_parse_uri("s3://raw/lux/elev.tif", "f", &s), 0);
    assert_int_equal(s.kind, SRC_OBJECT);
    assert_string_equal(s.bucket, "raw");
    assert_string_equal(s.key, "lux/elev.tif");
    assert_int_equal(observe_parse_uri("s3://raw/precip/", "f", &s), 0);
    assert_int_equal(s.kind, SRC_PREFIX);
    assert_string_equal(s.key, "precip/");
    assert_int_equal(observe_parse_uri("s3://raw/precip/2026/p_*.tif", "f", &s), 0);
    assert_int_equal(s.kind, SRC_GLOB);
    assert_string_equal(s.key, "precip/2026/p_");
    assert_string_equal(s.pattern, "p_*.tif");
    assert_int_equal(s.dir_len, strlen("precip/2026/"));
    assert_int_equal(observe_parse_uri("s3://raw/*.tif", "f", &s), 0);
    assert_int_equal(s.dir_len, 0);
    assert_string_equal(s.key, "");
    assert_int_equal(observe_parse_uri("https://h.example/a/b.tif", "f", &s), 0);
    assert_int_equal(s.kind, SRC_URL);
    static const char *const bad[] = {"s3://raw/precip/*/a.tif",
                                      "s3://raw/p*/",
                                      "https://h.example/a/*.tif",
                                      "s3://raw",
                                      "s3://raw/",
                                      "gs://raw/a",
                                      NULL};
    for (int i = 0; bad[i]; i++) {
        err_clear();
        if (observe_parse_uri(bad[i], "inputs[0].uri", &s) != -1) fail_msg("accepted %s", bad[i]);
        assert_string_equal(err_get_field(), "inputs[0].uri");
        assert_int_equal(err_get_class(), ERR_BAD_INPUT);
    }
}

static void globs(void **state)
{
    (void)state;
    static const struct {
        const char *p, *s;
        bool m;
    } cases[] = {
        {"*.tif", "a.tif", true},
        {"*.tif", ".tif", true},
        {"*.tif", "a.tiff", false},
        {"p_??.tif", "p_01.tif", true},
        {"p_??.tif", "p_1.tif", false},
        {"[ab]*", "b1", true},
        {"[!ab]*", "b1", false},
        {"[a-c]x", "bx", true},
        {"[a-c]x", "dx", false},
        {"[]]x", "]x", true},
        {"[x", "[x", true},
        {"*", "a/b", false},
        {"a?b", "a/b", false},
        {"**a", "bba", true},
        {"", "", true},
        {"*", "", true},
        {"a*b*c", "aXbYc", true},
        {"a*b*c", "aXbY", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (observe_glob_match(cases[i].p, cases[i].s) != cases[i].m)
            fail_msg("glob %s vs %s: expected %d", cases[i].p, cases[i].s, cases[i].m);
    /* Pathological patterns stay fast: no exponential backtracking. */
    char name[1025], pat[256];
    memset(name, 'a', 1024);
    name[1024] = '\0';
    for (int i = 0; i < 254; i += 2)
        pat[i] = '*', pat[i + 1] = 'a';
    pat[254] = 'b';
    pat[255] = '\0';
    assert_false(observe_glob_match(pat, name));
}

static void observation_result(void **state)
{
    (void)state;
    result_observation ob = {
        .object_count = 10000, .bytes = 7340032000ULL, .single = true, .size_bytes = 12};
    snprintf(ob.data_version, sizeof ob.data_version, "sha256:%064d", 1);
    snprintf(ob.listing, sizeof ob.listing, "s3://assets/s/hydro/a/observations/%064d.jsonl", 1);
    snprintf(ob.etag, sizeof ob.etag, "abc");
    result r = {.asset_key = "a", .data_version = "sha256:00", .observation = &ob};
    char buf[4096];
    result_render(&r, buf, sizeof buf);
    cJSON *doc = cJSON_Parse(buf);
    assert_non_null(doc);
    cJSON *o = cJSON_GetObjectItem(doc, "observation");
    assert_non_null(o);
    assert_null(cJSON_GetObjectItem(doc, "output"));
    assert_null(cJSON_GetObjectItem(doc, "cacheHit"));
    assert_true(cJSON_GetObjectItem(o, "bytes")->valuedouble == 7340032000.0);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "object"), "etag")->valuestring,
                        "abc");
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "object"), "versionId"));
    cJSON_Delete(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(parses_a_page, setup),
        cmocka_unit_test_setup(callback_stops_parsing, setup),
        cmocka_unit_test_setup(last_page_and_empty, setup),
        cmocka_unit_test_setup(refuses_malformed, setup),
        cmocka_unit_test_setup(key_over_limit, setup),
        cmocka_unit_test_setup(error_documents, setup),
        cmocka_unit_test_setup(headers, setup),
        cmocka_unit_test_setup(uri_encoding, setup),
        cmocka_unit_test_setup(sigv4, setup),
        cmocka_unit_test_setup(source_uris, setup),
        cmocka_unit_test_setup(globs, setup),
        cmocka_unit_test_setup(observation_result, setup),
    };
    return cmocka_run_group_tests_name("s3list", tests, NULL, NULL);
}
