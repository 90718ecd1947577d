/*
 * test_pools.c - the pools configuration: loading the documented example,
 * selection by tag, the unknown-pool message, resource overrides, OOM
 * escalation, invalid configurations (each error names its JSON path) and
 * Kubernetes quantities.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/cerr.h"
#include "lib/cmem.h"
#include "pools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char example[] =
    "{\"defaultPool\":\"cpu\",\"pools\":{"
    "\"cpu\":{\"nodeSelector\":{\"terrane.io/pool\":\"cpu\"},\"tolerations\":[],"
    "\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"2Gi\"},\"limits\":{\"memory\":\"4Gi\"}"
    "},"
    "\"oomEscalation\":\"highmem\"},"
    "\"highmem\":{\"nodeSelector\":{\"terrane.io/pool\":\"highmem\"},"
    "\"tolerations\":[{\"key\":\"terrane.io/"
    "highmem\",\"operator\":\"Equal\",\"value\":\"true\",\"effect\":\"NoSchedule\"}],"
    "\"resources\":{\"requests\":{\"cpu\":\"2\",\"memory\":\"16Gi\"},\"limits\":{\"memory\":"
    "\"32Gi\"}}},"
    "\"gpu\":{\"nodeSelector\":{\"terrane.io/pool\":\"gpu\"},"
    "\"tolerations\":[{\"key\":\"nvidia.com/"
    "gpu\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}],"
    "\"resources\":{\"limits\":{\"nvidia.com/gpu\":\"1\"}}}}}";

static pools *load_example(void)
{
    pools *ps = NULL;
    if (pools_load_bytes(example, strlen(example), &ps)) fail_msg("example: %s", cerr_message());
    return ps;
}

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    if (!j) fail_msg("bad test JSON: %s", e.text);
    return j;
}

static const char *qstr(const json_t *obj, const char *part, const char *name)
{
    return json_string_value(json_object_get(json_object_get(obj, part), name));
}

static void loads_the_example(void **state)
{
    (void)state;
    pools *ps = load_example();
    assert_int_equal(pools_count(ps), 3);
    assert_string_equal(pool_name(pools_at(ps, 0)), "cpu"); /* sorted */
    assert_string_equal(pool_name(pools_at(ps, 1)), "gpu");
    assert_string_equal(pool_name(pools_at(ps, 2)), "highmem");
    assert_null(pools_at(ps, 3));
    assert_string_equal(pool_name(pools_default(ps)), "cpu");
    const pool *gpu = pools_find(ps, "gpu");
    assert_non_null(gpu);
    assert_string_equal(
        json_string_value(json_object_get(pool_node_selector(gpu), "terrane.io/pool")), "gpu");
    assert_int_equal(json_array_size(pool_tolerations(gpu)), 1);
    assert_string_equal(json_string_value(json_object_get(pool_limits(gpu), "nvidia.com/gpu")),
                        "1");
    assert_int_equal(json_object_size(pool_requests(gpu)), 0);
    assert_null(pools_find(ps, "tpu"));
    assert_null(pools_find(ps, NULL));
    pools_free(ps);
}

static void loads_from_a_file(void **state)
{
    (void)state;
    char path[] = "/tmp/terrane-pools-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, example, strlen(example)), (ssize_t)strlen(example));
    close(fd);
    pools *ps = NULL;
    assert_int_equal(pools_load_file(path, &ps), 0);
    assert_int_equal(pools_count(ps), 3);
    pools_free(ps);
    unlink(path);
    assert_int_equal(pools_load_file(path, &ps), CERR_IO);
    assert_null(ps);
    assert_non_null(strstr(cerr_message(), path));
}

static void selects_by_tag(void **state)
{
    (void)state;
    pools *ps = load_example();
    const pool *p;
    assert_int_equal(pools_select(ps, NULL, &p), 0);
    assert_string_equal(pool_name(p), "cpu");
    json_t *tags = parse("{\"team\":\"hydro\"}");
    assert_int_equal(pools_select(ps, tags, &p), 0);
    assert_string_equal(pool_name(p), "cpu");
    json_decref(tags);
    tags = parse("{\"terrane.io/pool\":\"highmem\"}");
    assert_int_equal(pools_select(ps, tags, &p), 0);
    assert_string_equal(pool_name(p), "highmem");
    json_decref(tags);

    tags = parse("{\"terrane.io/pool\":\"gpux\"}");
    assert_int_equal(pools_select(ps, tags, &p), CERR_NOTFOUND);
    assert_null(p);
    assert_string_equal(
        cerr_message(),
        "spec.tags.terrane.io/pool: unknown pool \"gpux\" (pools: cpu, gpu, highmem)");
    json_decref(tags);
    tags = parse("{\"terrane.io/pool\":3}");
    assert_int_equal(pools_select(ps, tags, &p), CERR_INVALID);
    assert_string_equal(cerr_message(), "spec.tags.terrane.io/pool: expected string, got integer");
    json_decref(tags);
    tags = parse("[\"gpu\"]");
    assert_int_equal(pools_select(ps, tags, &p), CERR_INVALID);
    json_decref(tags);
    pools_free(ps);
}

static void resources_and_overrides(void **state)
{
    (void)state;
    pools *ps = load_example();
    const pool *cpu = pools_find(ps, "cpu"), *gpu = pools_find(ps, "gpu");
    json_t *r = NULL;

    assert_int_equal(pools_resources(cpu, NULL, &r), 0);
    assert_string_equal(qstr(r, "requests", "cpu"), "1");
    assert_string_equal(qstr(r, "requests", "memory"), "2Gi");
    assert_string_equal(qstr(r, "limits", "memory"), "4Gi");
    json_decref(r);

    /* memory above the pool's limit raises the limit; cpu has no limit */
    json_t *ov = parse("{\"cpu\":\"2\",\"memory\":\"8Gi\"}");
    assert_int_equal(pools_resources(cpu, ov, &r), 0);
    assert_string_equal(qstr(r, "requests", "cpu"), "2");
    assert_string_equal(qstr(r, "requests", "memory"), "8Gi");
    assert_string_equal(qstr(r, "limits", "memory"), "8Gi");
    assert_null(qstr(r, "limits", "cpu"));
    json_decref(r);
    json_decref(ov);

    /* below the limit: the limit stays; numbers are quantities too */
    ov = parse("{\"memory\":\"1Gi\",\"cpu\":0.5}");
    assert_int_equal(pools_resources(cpu, ov, &r), 0);
    assert_string_equal(qstr(r, "requests", "memory"), "1Gi");
    assert_string_equal(qstr(r, "limits", "memory"), "4Gi");
    assert_string_equal(qstr(r, "requests", "cpu"), "0.5");
    json_decref(r);
    json_decref(ov);

    /* the pool's own limits survive (GPU), and requests appear only when set */
    assert_int_equal(pools_resources(gpu, NULL, &r), 0);
    assert_null(json_object_get(r, "requests"));
    assert_string_equal(qstr(r, "limits", "nvidia.com/gpu"), "1");
    json_decref(r);
    ov = parse("{\"cpu\":\"4\"}");
    assert_int_equal(pools_resources(gpu, ov, &r), 0);
    assert_string_equal(qstr(r, "requests", "cpu"), "4");
    json_decref(r);
    json_decref(ov);

    /* the pool is not modified by overrides */
    assert_string_equal(json_string_value(json_object_get(pool_requests(cpu), "memory")), "2Gi");

    static const struct {
        const char *ov, *msg;
    } bad[] = {
        {"{\"gpu\":\"1\"}", "spec.resources.gpu: unknown field"},
        {"{\"memory\":\"lots\"}", "spec.resources.memory: quantity \"lots\""},
        {"{\"cpu\":\"-1\"}", "spec.resources.cpu: quantity \"-1\" is negative"},
        {"{\"cpu\":\"0\"}", "spec.resources.cpu: must be greater than zero"},
        {"{\"cpu\":true}",
         "spec.resources.cpu: expected a quantity (string or number), got boolean"},
        {"[1]", "spec.resources: expected object, got array"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ov = parse(bad[i].ov);
        r = (json_t *)1;
        assert_int_equal(pools_resources(cpu, ov, &r), CERR_INVALID);
        assert_null(r);
        if (!strstr(cerr_message(), bad[i].msg))
            fail_msg("%s: got \"%s\"", bad[i].ov, cerr_message());
        json_decref(ov);
    }
    pools_free(ps);
}

static void oom_escalation(void **state)
{
    (void)state;
    pools *ps = load_example();
    const pool *cpu = pools_find(ps, "cpu");
    assert_string_equal(pool_name(pool_escalation(cpu)), "highmem");
    assert_null(pool_escalation(pool_escalation(cpu)));
    assert_null(pool_escalation(pools_find(ps, "gpu")));
    pools_free(ps);

    const char *chain =
        "{\"defaultPool\":\"s\",\"pools\":{\"s\":{\"oomEscalation\":\"m\"},"
        "\"m\":{\"oomEscalation\":\"l\"},\"l\":{\"oomEscalation\":\"xl\"},\"xl\":{}}}";
    assert_int_equal(pools_load_bytes(chain, strlen(chain), &ps), 0);
    const pool *p = pools_find(ps, "s");
    const char *want[] = {"s", "m", "l", "xl"};
    for (int i = 0; i < 4; i++, p = pool_escalation(p))
        assert_string_equal(pool_name(p), want[i]);
    assert_null(p);
    pools_free(ps);
}

static void invalid_configurations_name_the_path(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *msg;
    } cases[] = {
        {"[]", "pools configuration: expected object, got array"},
        {"{\"pools\":{\"cpu\":{}}}", "defaultPool: expected string, got nothing"},
        {"{\"defaultPool\":\"cpu\"}", "pools: expected object, got nothing"},
        {"{\"defaultPool\":\"cpu\",\"pools\":{}}", "pools: at least one pool is needed"},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{}},\"extra\":1}", "extra: unknown field"},
        {"{\"defaultPool\":\"gpu\",\"pools\":{\"cpu\":{}}}", "defaultPool: unknown pool \"gpu\""},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":[]}}",
         "pools.cpu: expected object, got array"},
        {"{\"defaultPool\":\"Cpu\",\"pools\":{\"Cpu\":{}}}",
         "pools.Cpu: pool names are DNS labels"},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"nodeSelectr\":{}}}}",
         "pools.cpu.nodeSelectr: unknown field"},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"nodeSelector\":{\"a\":1}}}}",
         "pools.cpu.nodeSelector.a: expected string, got integer"},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"tolerations\":{}}}}",
         "pools.cpu.tolerations: expected array, got object"},
        {"{\"defaultPool\":\"gpu\",\"pools\":{\"gpu\":{\"tolerations\":[{\"key\":\"k\",\"effect\":"
         "\"NoSchedul\"}]}}}",
         "pools.gpu.tolerations[0].effect: must be one of NoSchedule, PreferNoSchedule, NoExecute "
         "(got \"NoSchedul\")"},
        {"{\"defaultPool\":\"gpu\",\"pools\":{\"gpu\":{\"tolerations\":[{\"key\":\"k\","
         "\"operator\":\"Exists\"},"
         "{\"key\":\"k\",\"operator\":\"In\"}]}}}",
         "pools.gpu.tolerations[1].operator: must be Exists or Equal (got \"In\")"},
        {"{\"defaultPool\":\"gpu\",\"pools\":{\"gpu\":{\"tolerations\":[{\"key\":\"k\","
         "\"operator\":\"Exists\",\"value\":\"v\"}]}}}",
         "pools.gpu.tolerations[0].value: must be empty when operator is Exists"},
        {"{\"defaultPool\":\"gpu\",\"pools\":{\"gpu\":{\"tolerations\":[{\"operator\":\"Equal\"}]}}"
         "}",
         "pools.gpu.tolerations[0].operator: must be Exists when key is empty"},
        {"{\"defaultPool\":\"gpu\",\"pools\":{\"gpu\":{\"tolerations\":[{\"key\":\"k\",\"effect\":"
         "\"NoSchedule\",\"tolerationSeconds\":5}]}}}",
         "pools.gpu.tolerations[0].tolerationSeconds: only allowed with effect NoExecute"},
        {"{\"defaultPool\":\"gpu\",\"pools\":{\"gpu\":{\"tolerations\":[{\"key\":1}]}}}",
         "pools.gpu.tolerations[0].key: expected string, got integer"},
        {"{\"defaultPool\":\"gpu\",\"pools\":{\"gpu\":{\"tolerations\":[{\"key\":\"k\",\"opertor\":"
         "\"Exists\"}]}}}",
         "pools.gpu.tolerations[0].opertor: unknown field"},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"resources\":{\"requests\":{\"memory\":"
         "\"2GB\"}}}}}",
         "pools.cpu.resources.requests.memory: quantity \"2GB\""},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"resources\":{\"requests\":{\"cpu\":[]}}}}"
         "}",
         "pools.cpu.resources.requests.cpu: expected a quantity"},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"resources\":{\"request\":{}}}}}",
         "pools.cpu.resources.request: unknown field"},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"resources\":{\"requests\":{\"memory\":"
         "\"8Gi\"},\"limits\":{\"memory\":\"4Gi\"}}}}}",
         "pools.cpu.resources.requests.memory: 8Gi exceeds limits.memory 4Gi"},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"oomEscalation\":\"big\"}}}",
         "pools.cpu.oomEscalation: unknown pool \"big\""},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"oomEscalation\":\"cpu\"}}}",
         "pools.cpu.oomEscalation: a pool cannot escalate to itself"},
        {"{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"oomEscalation\":5}}}",
         "pools.cpu.oomEscalation: expected string, got integer"},
        {"{\"defaultPool\":\"a\",\"pools\":{\"a\":{\"oomEscalation\":\"b\"},\"b\":{"
         "\"oomEscalation\":\"c\"},"
         "\"c\":{\"oomEscalation\":\"b\"}}}",
         "pools.b.oomEscalation: escalation cycle b -> c -> b"},
        {"{\"defaultPool\":\"cpu\",", "pools configuration: line 1 column"},
        {"{\"defaultPool\":\"cpu\",\"defaultPool\":\"gpu\",\"pools\":{\"cpu\":{}}}",
         "duplicate object key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pools *ps = (pools *)1;
        cerr_clear();
        assert_int_equal(pools_load_bytes(cases[i].doc, strlen(cases[i].doc), &ps), CERR_INVALID);
        assert_null(ps);
        if (!strstr(cerr_message(), cases[i].msg))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, cerr_message(), cases[i].msg);
    }
}

static void quantities(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        long long milli;
    } good[] = {
        {"0", 0},
        {"1", 1000},
        {"2", 2000},
        {"500m", 500},
        {"0.5", 500},
        {".5", 500},
        {"1.", 1000},
        {"1.5", 1500},
        {"+3", 3000},
        {"-2", -2000},
        {"100m", 100},
        {"1m", 1},
        {"1u", 1},
        {"1n", 1},
        {"1500u", 2},
        {"1k", 1000000},
        {"1M", 1000000000LL},
        {"1G", 1000000000000LL},
        {"512Mi", 536870912000LL},
        {"8Gi", 8589934592000LL},
        {"1Ki", 1024000},
        {"1.5Gi", 1610612736000LL},
        {"1Ti", 1099511627776000LL},
        {"2Pi", 2251799813685248000LL},
        {"1e3", 1000000},
        {"1E3", 1000000},
        {"1e-3", 1},
        {"1.5e2", 150000},
        {"12e+1", 120000},
        {"0.0001", 1},
        {"000123", 123000},
        {"0.000000000000000000001", 1},
        {"123456789", 123456789000LL},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        long long v = -42;
        if (pools_quantity_parse(good[i].s, &v)) fail_msg("\"%s\": %s", good[i].s, cerr_message());
        if (v != good[i].milli)
            fail_msg("\"%s\" = %lld milli, want %lld", good[i].s, v, good[i].milli);
    }
    static const char *bad[] = {
        "",
        ".",
        "m",
        "Gi",
        "1GB",
        "1gi",
        "1 Gi",
        " 1",
        "1Gi ",
        "1.2.3",
        "1e",
        "1e+",
        "1e3.5",
        "1Ei1",
        "1x",
        "0x10",
        "1i",
        "--1",
        "1Ki2",
        "1e10000",
        "1234567890123456789",
        "1Ei",
        "9999999999999999Pi",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long long v;
        if (pools_quantity_parse(bad[i], &v) != CERR_INVALID)
            fail_msg("accepted \"%s\" as %lld", bad[i], v);
    }
    long long v;
    assert_int_equal(pools_quantity_parse(NULL, &v), CERR_INVALID);
    /* exa in milli-units does not fit in int64: refused, not wrapped */
    assert_int_equal(pools_quantity_parse("1E", &v), CERR_INVALID);
    assert_non_null(strstr(cerr_message(), "too large"));
    assert_int_equal(pools_quantity_parse("9E-3", &v), 0); /* E followed by digits: exponent */
    assert_int_equal(v, 9);
    /* the largest values that fit */
    assert_int_equal(pools_quantity_parse("9223372036854775807m", &v),
                     CERR_INVALID); /* 19 digits */
    assert_int_equal(pools_quantity_parse("922337203685477580m", &v), 0);
    assert_int_equal(v, 922337203685477580LL);
    assert_int_equal(pools_quantity_parse("8Pi", &v), 0);
    assert_int_equal(v, 9007199254740992000LL);
    assert_int_equal(pools_quantity_parse("9Pi", &v), CERR_INVALID);
}

static void load_out_of_memory_does_not_leak(void **state)
{
    (void)state;
    int failed = 0;
    for (unsigned long n = 1; n < 2000; n++) {
        long live = cmem_live();
        pools *ps = NULL;
        cmem_fail_at(n);
        int rc = pools_load_bytes(example, strlen(example), &ps);
        cmem_fail_at(0);
        if (rc == 0) {
            assert_int_equal(pools_count(ps), 3);
            pools_free(ps);
            assert_int_equal(cmem_live(), live);
            break;
        }
        if (rc != CERR_NOMEM) fail_msg("allocation %lu: %s (%s)", n, cerr_name(rc), cerr_message());
        assert_null(ps);
        assert_int_equal(cmem_live(), live);
        failed++;
    }
    assert_true(failed > 10);
}

int main(void)
{
    cmem_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_the_example), cmocka_unit_test(loads_from_a_file),
        cmocka_unit_test(selects_by_tag),    cmocka_unit_test(resources_and_overrides),
        cmocka_unit_test(oom_escalation),    cmocka_unit_test(invalid_configurations_name_the_path),
        cmocka_unit_test(quantities),        cmocka_unit_test(load_out_of_memory_does_not_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
