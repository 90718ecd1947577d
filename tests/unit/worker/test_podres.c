/*
 * test_podres.c - sizing the worker to its pod: the cgroup limits read from
 * the fixture trees in tests/data/podres/ (cgroup v2 with and without its own
 * namespace, nested limits where the smallest wins, "max", cgroup v1 in the
 * hybrid layout and namespaced, no cgroup at all), cpu.max parsing, and the
 * resolution order params > environment > limits > CPU count, with bad
 * environment values reported.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "mem.h"
#include "podres.h"
#include "terrane_proto.h"

#include <cJSON.h>
#include <cpl_conv.h>
#include <gdal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024ULL * 1024)

static void clear_env(void)
{
    unsetenv(TERRANE_ENV_THREADS);
    unsetenv(TERRANE_ENV_CACHE_MB);
    unsetenv(TERRANE_ENV_MEMORY_LIMIT);
    unsetenv(TERRANE_ENV_CPU_LIMIT);
    unsetenv("GDAL_CACHEMAX");
}

static int setup(void **state)
{
    (void)state;
    mem_init();
    err_clear();
    clear_env();
    return 0;
}

static void fixture(const char *name, podres_limits *out)
{
    const char *root = getenv("TERRANE_ROOT");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/data/podres/%s", root && root[0] ? root : ".", name);
    podres_read_limits(dir, out);
}

static void cpu_max_text(void **state)
{
    (void)state;
    assert_true(podres_parse_cpu_max("200000 100000") == 2.0);
    assert_true(podres_parse_cpu_max("150000 100000") == 1.5);
    assert_true(podres_parse_cpu_max("50000") == 0.5); /* period defaults to 100 ms */
    assert_true(podres_parse_cpu_max("max 100000") == 0);
    assert_true(podres_parse_cpu_max("") == 0);
    assert_true(podres_parse_cpu_max("-1 100000") == 0);
    assert_true(podres_parse_cpu_max("100000 0") == 0);
    assert_true(podres_parse_cpu_max(NULL) == 0);
}

static void limits_from_cgroup_files(void **state)
{
    (void)state;
    static const struct {
        const char *fixture;
        int version;
        double cpus;
        unsigned long long memory_mib;
    } cases[] = {
        {"v2-namespaced", 2, 2.0, 1024},
        /* The pod's 1.5 CPUs two levels up, and kubepods' 2 GiB above it. */
        {"v2-nested", 2, 1.5, 2048},
        {"v2-unlimited", 2, 0, 0},
        /* v1 next to an empty unified hierarchy; the root's "no limit"
         * values (-1 and 2^63 rounded down to a page) are no limit. */
        {"v1-hybrid", 1, 3.0, 512},
        /* The cgroup path is not visible inside the container: the mount's root. */
        {"v1-namespaced", 1, 0.5, 768},
        {"none", 0, 0, 0},
        {"does-not-exist", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        podres_limits l;
        fixture(cases[i].fixture, &l);
        if (l.cgroup_version != cases[i].version || l.cpu_quota != cases[i].cpus ||
            l.memory != cases[i].memory_mib * MIB)
            fail_msg("%s: got v%d, %g CPUs, %llu bytes", cases[i].fixture, l.cgroup_version,
                     l.cpu_quota, l.memory);
    }
}

static void threads_resolution(void **state)
{
    (void)state;
    podres p;
    podres_limits l = {.cpu_quota = 1.5, .memory = 0, .cgroup_version = 2};

    /* Quota rounded up, at most the CPUs we may run on. */
    assert_int_equal(podres_resolve(NULL, &l, 64, &p), 0);
    assert_int_equal(p.threads, 2);
    assert_string_equal(p.threads_from, "cpu.max");
    l.cpu_quota = 8;
    assert_int_equal(podres_resolve(NULL, &l, 2, &p), 0);
    assert_int_equal(p.threads, 2);
    l.cpu_quota = 0.25;
    assert_int_equal(podres_resolve(NULL, &l, 4, &p), 0);
    assert_int_equal(p.threads, 1);
    l.cgroup_version = 1;
    assert_int_equal(podres_resolve(NULL, &l, 4, &p), 0);
    assert_string_equal(p.threads_from, "cpu.cfs_quota_us");

    /* The Downward API's millicores: the smaller limit counts, "0" is none. */
    l.cgroup_version = 2;
    l.cpu_quota = 4;
    setenv(TERRANE_ENV_CPU_LIMIT, "1500", 1);
    assert_int_equal(podres_resolve(NULL, &l, 8, &p), 0);
    assert_int_equal(p.threads, 2);
    assert_string_equal(p.threads_from, TERRANE_ENV_CPU_LIMIT);
    assert_true(p.limits.cpu_quota == 1.5);
    setenv(TERRANE_ENV_CPU_LIMIT, "6000", 1);
    assert_int_equal(podres_resolve(NULL, &l, 8, &p), 0);
    assert_int_equal(p.threads, 4);
    assert_string_equal(p.threads_from, "cpu.max");
    setenv(TERRANE_ENV_CPU_LIMIT, "0", 1);
    assert_int_equal(podres_resolve(NULL, &l, 8, &p), 0);
    assert_int_equal(p.threads, 4);
    l.cpu_quota = 0;
    setenv(TERRANE_ENV_CPU_LIMIT, "3000", 1);
    assert_int_equal(podres_resolve(NULL, &l, 8, &p), 0);
    assert_int_equal(p.threads, 3);
    setenv(TERRANE_ENV_CPU_LIMIT, "-5", 1);
    assert_int_equal(podres_resolve(NULL, &l, 8, &p), -1);
    assert_non_null(strstr(err_get_message(), TERRANE_ENV_CPU_LIMIT));
    err_clear();
    unsetenv(TERRANE_ENV_CPU_LIMIT);

    /* No quota: the CPU count. */
    l.cpu_quota = 0;
    assert_int_equal(podres_resolve(NULL, &l, 6, &p), 0);
    assert_int_equal(p.threads, 6);
    assert_string_equal(p.threads_from, "cpus");

    /* The environment beats the limits, params beat the environment. */
    setenv(TERRANE_ENV_THREADS, "3", 1);
    assert_int_equal(podres_resolve(NULL, &l, 6, &p), 0);
    assert_int_equal(p.threads, 3);
    assert_string_equal(p.threads_from, "env");
    cJSON *params = cJSON_Parse("{\"threads\":5}");
    assert_int_equal(podres_resolve(params, &l, 6, &p), 0);
    assert_int_equal(p.threads, 5);
    assert_string_equal(p.threads_from, "params");
    cJSON_Delete(params);

    setenv(TERRANE_ENV_THREADS, "0", 1);
    assert_int_equal(podres_resolve(NULL, &l, 6, &p), -1);
    assert_non_null(strstr(err_get_message(), TERRANE_ENV_THREADS));
    err_clear();
    setenv(TERRANE_ENV_THREADS, "2x", 1);
    assert_int_equal(podres_resolve(NULL, &l, 6, &p), -1);
    err_clear();
    unsetenv(TERRANE_ENV_THREADS);
}

static void cache_resolution(void **state)
{
    (void)state;
    podres p;
    podres_limits l = {.memory = 1024 * MIB, .cgroup_version = 2};

    /* (limit - 256 MiB margin) / 2 */
    assert_true(podres_cache_for_limit(1024 * MIB) == 384 * MIB);
    assert_true(podres_cache_for_limit(8192 * MIB) == 3968 * MIB);
    assert_true(podres_cache_for_limit(256 * MIB) == 32 * MIB); /* the floor */
    assert_true(podres_cache_for_limit(1) == 32 * MIB);

    assert_int_equal(podres_resolve(NULL, &l, 2, &p), 0);
    assert_true(p.cache_bytes == 384 * MIB);
    assert_string_equal(p.cache_from, "memory.max");

    /* A smaller limit from the Downward API wins; a larger one does not. */
    setenv(TERRANE_ENV_MEMORY_LIMIT, "536870912", 1);
    assert_int_equal(podres_resolve(NULL, &l, 2, &p), 0);
    assert_true(p.cache_bytes == 128 * MIB);
    assert_string_equal(p.cache_from, TERRANE_ENV_MEMORY_LIMIT);
    assert_true(p.limits.memory == 512 * MIB);
    setenv(TERRANE_ENV_MEMORY_LIMIT, "4294967296", 1);
    assert_int_equal(podres_resolve(NULL, &l, 2, &p), 0);
    assert_true(p.cache_bytes == 384 * MIB);
    setenv(TERRANE_ENV_MEMORY_LIMIT, "0", 1); /* the Downward API without a limit */
    assert_int_equal(podres_resolve(NULL, &l, 2, &p), 0);
    assert_true(p.cache_bytes == 384 * MIB);
    assert_string_equal(p.cache_from, "memory.max");
    setenv(TERRANE_ENV_MEMORY_LIMIT, "12", 1);
    assert_int_equal(podres_resolve(NULL, &l, 2, &p), -1);
    err_clear();
    unsetenv(TERRANE_ENV_MEMORY_LIMIT);

    /* GDAL's own variable is left to GDAL; ours and params beat it. */
    setenv("GDAL_CACHEMAX", "200", 1);
    assert_int_equal(podres_resolve(NULL, &l, 2, &p), 0);
    assert_true(p.cache_bytes == 0);
    assert_string_equal(p.cache_from, "GDAL_CACHEMAX");
    setenv(TERRANE_ENV_CACHE_MB, "100", 1);
    assert_int_equal(podres_resolve(NULL, &l, 2, &p), 0);
    assert_true(p.cache_bytes == 100 * MIB);
    assert_string_equal(p.cache_from, "env");
    cJSON *params = cJSON_Parse("{\"cacheMb\":64}");
    assert_int_equal(podres_resolve(params, &l, 2, &p), 0);
    assert_true(p.cache_bytes == 64 * MIB);
    assert_string_equal(p.cache_from, "params");
    cJSON_Delete(params);
    setenv(TERRANE_ENV_CACHE_MB, "lots", 1);
    assert_int_equal(podres_resolve(NULL, &l, 2, &p), -1);
    err_clear();
    clear_env();

    /* No limit anywhere: GDAL's default. */
    podres_limits none = {0};
    assert_int_equal(podres_resolve(NULL, &none, 2, &p), 0);
    assert_true(p.cache_bytes == 0);
    assert_string_equal(p.cache_from, "gdal");
}

/* podres_init on this machine: applied to GDAL, readable from the getters. */
static void init_applies_to_gdal(void **state)
{
    (void)state;
    char buf[16];
    assert_int_equal(podres_threads(), 1); /* before init */
    cJSON *params = cJSON_Parse("{\"threads\":3,\"cacheMb\":48}");
    assert_int_equal(podres_init(params), 0);
    cJSON_Delete(params);
    assert_int_equal(podres_threads(), 3);
    assert_string_equal(podres_threads_str(buf, sizeof buf), "3");
    assert_string_equal(CPLGetConfigOption("GDAL_NUM_THREADS", ""), "3");
    assert_true(podres_cache_bytes() == 48 * MIB);
    assert_true((unsigned long long)GDALGetCacheMax64() == 48 * MIB);
    assert_string_equal(podres_get()->threads_from, "params");

    /* Unsized: the CPU count or less, and GDAL's cache is reported. */
    assert_int_equal(podres_init(NULL), 0);
    assert_true(podres_threads() >= 1 && podres_threads() <= podres_get()->cpus);
    assert_true(podres_cache_bytes() > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(cpu_max_text, setup),
        cmocka_unit_test_setup(limits_from_cgroup_files, setup),
        cmocka_unit_test_setup(threads_resolution, setup),
        cmocka_unit_test_setup(cache_resolution, setup),
        cmocka_unit_test_setup(init_applies_to_gdal, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
