/*
 * podres.h - the pod's CPU and memory, and how much of them GDAL gets.
 *
 * GDAL's ALL_CPUS is the node's core count and its default block cache is 5%
 * of the node's RAM; in a pod both are wrong (a 2-CPU pod on a 64-core node
 * would start 64 compression threads and be throttled). The container's own
 * limits are in its cgroup: cgroup v2 cpu.max ("<quota> <period>" or "max")
 * and memory.max (bytes or "max"), or with cgroup v1 cpu.cfs_quota_us /
 * cpu.cfs_period_us and memory.limit_in_bytes; the smallest limit on the
 * path from the process's cgroup up to the hierarchy's root applies.
 *
 * Resolution, strongest first: params.threads / params.cacheMb, then the
 * environment ($TERRANE_THREADS, $TERRANE_CACHE_MB, and GDAL's own
 * $GDAL_CACHEMAX), then the limits (threads = the CPU quota rounded up, at
 * most the CPUs this process may run on; cache = a share of the memory
 * limit left after a margin for everything that is not the block cache),
 * then the CPU count and GDAL's default cache. $TERRANE_MEMORY_LIMIT (bytes)
 * and $TERRANE_CPU_LIMIT (millicores), which the controller sets from the
 * Downward API's resourceFieldRef limits.memory / limits.cpu, stand in for
 * limits the cgroup does not show; the smaller figure counts, "0" (no
 * limit) is ignored.
 *
 * podres_init runs once on the main thread before any operation; the
 * getters may be called from any thread afterwards.
 */
#ifndef TERRANE_PODRES_H
#define TERRANE_PODRES_H

#include "params.h"

#include <cJSON.h>
#include <stdbool.h>

/* The params every operation accepts for sizing (proto/README.md); each op
 * lists both in its spec table, e.g. via cog_param_specs. */
/* clang-format off */
#define PODRES_PARAM_THREADS {"threads", PARAM_INT, false, NULL, 1, 1024}
#define PODRES_PARAM_CACHE_MB {"cacheMb", PARAM_INT, false, NULL, 16, 1048576}
/* clang-format on */

/* Limits read from the cgroup files. 0 means no limit found. */
typedef struct podres_limits {
    double cpu_quota;          /* CPUs: quota / period, e.g. 1.5 */
    unsigned long long memory; /* bytes */
    int cgroup_version;        /* 2, 1, or 0 when no cgroup files were readable */
} podres_limits;

/* What the worker uses, and where each figure came from. */
typedef struct podres {
    int threads;
    const char *threads_from;       /* "params", "env", "cpu.max", "cpu.cfs_quota_us",
                                       "TERRANE_CPU_LIMIT", "cpus" */
    unsigned long long cache_bytes; /* 0: GDAL's default (no limit known) */
    const char *cache_from;         /* "params", "env", "GDAL_CACHEMAX", "memory.max", ... "gdal" */
    podres_limits limits;
    int cpus; /* CPUs this process may run on (sched_getaffinity) */
} podres;

/* Reads the cgroup limits of this process under root ("" or NULL: the real
 * filesystem; tests pass a fixture directory holding proc/self/cgroup and
 * sys/fs/cgroup/...). Missing files mean no limit; never fails. */
void podres_read_limits(const char *root, podres_limits *out);

/* Parses cgroup v2 cpu.max text: CPUs, or 0 for "max" or bad text. */
double podres_parse_cpu_max(const char *text);

/* The block cache for a memory limit: what is left after the margin, halved
 * (GDAL's cache is not the only thing that grows with the work). */
unsigned long long podres_cache_for_limit(unsigned long long limit);

/* Resolves the figures from params (may be NULL), the environment, limits
 * and cpus. Returns 0, or -1 with the error set for a bad environment value
 * (params are checked by params_check before). */
int podres_resolve(const cJSON *params, const podres_limits *limits, int cpus, podres *out);

/* Reads the limits, resolves them for params and applies them to GDAL: the
 * block cache (GDALSetCacheMax64) and GDAL_NUM_THREADS. Main thread, once. */
int podres_init(const cJSON *params);

/* The resolved figures (podres_init not called yet: 1 thread, cache 0). */
int podres_threads(void);
unsigned long long podres_cache_bytes(void);
const podres *podres_get(void);

/* "4" for NUM_THREADS=...; buf of at least 12 bytes. */
const char *podres_threads_str(char *buf, unsigned long cap);

#endif
