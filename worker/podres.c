/*
 * podres.c - the pod's CPU and memory limits and GDAL's share of them
 * (podres.h).
 *
 * Reading the limits. /proc/self/cgroup names the process's cgroup in each
 * hierarchy ("0::/kubepods/pod.../ctr" for v2, "4:memory:/..." for v1). In a
 * container with its own cgroup namespace (containerd's default on cgroup
 * v2) that path is "/" and the limits sit at the mount's root; without one
 * the path may not exist inside the container's view of /sys/fs/cgroup, so
 * a missing directory falls back to the mount's root. From there each
 * ancestor up to the mount's root is read and the smallest limit wins, as
 * the kernel applies them.
 */
#include "podres.h"

#include "err.h"
#include "log.h"
#include "terrane_proto.h"

#include <cpl_conv.h>
#include <ctype.h>
#include <errno.h>
#include <gdal.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024ULL * 1024)
/* cgroup directories, and a file in one. */
#define DIR_CAP 2048
#define PATH_CAP (DIR_CAP + 64)
/* Memory a run needs besides GDAL's block cache: libraries and heap, the
 * compressors' per-thread tile buffers, strip and window buffers. */
#define PODRES_MARGIN (256 * MIB)
#define PODRES_MIN_CACHE (32 * MIB)
/* cgroup v1 writes "no limit" as the largest page-aligned 64-bit value. */
#define PODRES_V1_UNLIMITED (1ULL << 62)

static podres current = {.threads = 1, .threads_from = "default", .cache_from = "default"};

/* ---- files ------------------------------------------------------------ */

/* Reads a small file under root into buf; false when it cannot. */
static bool read_text(const char *root, const char *path, char *buf, size_t cap)
{
    char full[4096];
    snprintf(full, sizeof full, "%s%s", root, path);
    FILE *f = fopen(full, "re");
    if (!f) return false;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    return n > 0;
}

static bool is_dir(const char *root, const char *path)
{
    char full[4096];
    struct stat st;
    snprintf(full, sizeof full, "%s%s", root, path);
    return stat(full, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Parses a decimal byte count; false for "max", "-1" or anything else. */
static bool parse_bytes(const char *s, unsigned long long *out)
{
    char *end;
    if (!isdigit((unsigned char)s[0])) return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0 || v >= PODRES_V1_UNLIMITED) return false;
    *out = v;
    return true;
}

double podres_parse_cpu_max(const char *text)
{
    char quota[32];
    unsigned long long period = 100000, q;
    int n = sscanf(text ? text : "", "%31s %llu", quota, &period);
    if (n < 1 || !parse_bytes(quota, &q) || period == 0) return 0;
    return (double)q / (double)period;
}

/* cgroup v1's quota and period files; 0 when there is no quota. */
static double v1_cpu(const char *root, const char *dir)
{
    char path[PATH_CAP], buf[64];
    unsigned long long quota, period;
    snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
    if (!read_text(root, path, buf, sizeof buf) || !parse_bytes(buf, &quota)) return 0;
    snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
    if (!read_text(root, path, buf, sizeof buf) || !parse_bytes(buf, &period)) return 0;
    return (double)quota / (double)period;
}

enum { RES_CPU, RES_MEMORY };

/* The smallest limit of kind res on the path from mount+cg up to mount.
 * *found says whether any of the files existed (a limit or "max"). */
static double walk_min(const char *root, const char *mount, const char *cg, int version, int res,
                       bool *found)
{
    char dir[DIR_CAP], path[PATH_CAP], buf[128];
    double best = 0;
    size_t mlen = strlen(mount);

    snprintf(dir, sizeof dir, "%s%s", mount, cg && strcmp(cg, "/") ? cg : "");
    if (!is_dir(root, dir)) snprintf(dir, sizeof dir, "%s", mount);
    for (;;) {
        double v = 0;
        if (version == 2) {
            snprintf(path, sizeof path, "%s/%s", dir, res == RES_CPU ? "cpu.max" : "memory.max");
            if (read_text(root, path, buf, sizeof buf)) {
                unsigned long long b;
                *found = true;
                v = res == RES_CPU         ? podres_parse_cpu_max(buf)
                    : parse_bytes(buf, &b) ? (double)b
                                           : 0;
            }
        } else if (res == RES_CPU) {
            snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
            if (read_text(root, path, buf, sizeof buf)) *found = true;
            v = v1_cpu(root, dir);
        } else {
            snprintf(path, sizeof path, "%s/memory.limit_in_bytes", dir);
            unsigned long long b;
            if (read_text(root, path, buf, sizeof buf)) {
                *found = true;
                if (parse_bytes(buf, &b)) v = (double)b;
            }
        }
        if (v > 0 && (best == 0 || v < best)) best = v;
        if (strlen(dir) <= mlen) break;
        char *slash = strrchr(dir + mlen, '/');
        if (!slash) break;
        *slash = '\0';
    }
    return best;
}

void podres_read_limits(const char *root, podres_limits *out)
{
    char line[4096], v2_path[1024] = "", cpu_path[1024] = "", mem_path[1024] = "";
    char full[4096];
    bool have_v2 = false, have_cpu = false, have_mem = false;
    memset(out, 0, sizeof *out);
    if (!root) root = "";

    snprintf(full, sizeof full, "%s/proc/self/cgroup", root);
    FILE *f = fopen(full, "re");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = '\0';
            char *c1 = strchr(line, ':');
            char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!c2) continue;
            *c1 = *c2 = '\0';
            const char *ctrls = c1 + 1, *path = c2 + 1;
            if (!strcmp(line, "0") && !ctrls[0]) {
                snprintf(v2_path, sizeof v2_path, "%s", path);
                have_v2 = true;
                continue;
            }
            /* v1: a comma-separated controller list ("cpu,cpuacct"). */
            char list[256];
            snprintf(list, sizeof list, "%s", ctrls);
            for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
                 tok = strtok_r(NULL, ",", &save)) {
                if (!strcmp(tok, "cpu")) {
                    snprintf(cpu_path, sizeof cpu_path, "%s", path);
                    have_cpu = true;
                } else if (!strcmp(tok, "memory")) {
                    snprintf(mem_path, sizeof mem_path, "%s", path);
                    have_mem = true;
                }
            }
        }
        fclose(f);
    }
    if (!have_v2 && !have_cpu && !have_mem) {
        /* No /proc/self/cgroup (or nothing in it): a namespaced v2 root. */
        have_v2 = true;
        snprintf(v2_path, sizeof v2_path, "/");
    }

    bool found_cpu = false, found_mem = false;
    if (have_v2) {
        /* Unified mount, or the hybrid layout's /sys/fs/cgroup/unified. */
        const char *mount = "/sys/fs/cgroup";
        snprintf(full, sizeof full, "%s/sys/fs/cgroup/cgroup.controllers", root);
        if (access(full, R_OK) != 0 && is_dir(root, "/sys/fs/cgroup/unified"))
            mount = "/sys/fs/cgroup/unified";
        out->cpu_quota = walk_min(root, mount, v2_path, 2, RES_CPU, &found_cpu);
        out->memory = (unsigned long long)walk_min(root, mount, v2_path, 2, RES_MEMORY, &found_mem);
        if (found_cpu || found_mem) out->cgroup_version = 2;
    }
    if (!found_cpu && have_cpu) {
        const char *mount = is_dir(root, "/sys/fs/cgroup/cpu,cpuacct")
                                ? "/sys/fs/cgroup/cpu,cpuacct"
                                : "/sys/fs/cgroup/cpu";
        out->cpu_quota = walk_min(root, mount, cpu_path, 1, RES_CPU, &found_cpu);
        if (found_cpu && !out->cgroup_version) out->cgroup_version = 1;
    }
    if (!found_mem && have_mem) {
        out->memory = (unsigned long long)walk_min(root, "/sys/fs/cgroup/memory", mem_path, 1,
                                                   RES_MEMORY, &found_mem);
        if (found_mem && !out->cgroup_version) out->cgroup_version = 1;
    }
}

/* ---- resolution -------------------------------------------------------- */

unsigned long long podres_cache_for_limit(unsigned long long limit)
{
    if (limit <= PODRES_MARGIN + 2 * PODRES_MIN_CACHE) return PODRES_MIN_CACHE;
    return (limit - PODRES_MARGIN) / 2;
}

/* A positive integer from the environment within [lo, hi]; 0 when unset. */
static int env_int(const char *name, long long lo, long long hi, long long *out)
{
    const char *v = getenv(name);
    char *end;
    *out = 0;
    if (!v || !v[0]) return 0;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || n < lo || n > hi)
        return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL,
                       "$%s: \"%.40s\" is not an integer in [%lld, %lld]", name, v, lo, hi);
    *out = n;
    return 0;
}

int podres_resolve(const cJSON *params, const podres_limits *limits, int cpus, podres *out)
{
    long long n;
    bool cpu_from_env = false;
    memset(out, 0, sizeof *out);
    out->limits = *limits;
    out->cpus = cpus > 0 ? cpus : 1;

    /* The Downward API's limits (the controller passes them; "0" when the
     * container has none): the smaller of them and the cgroup's counts. */
    if (env_int(TERRANE_ENV_CPU_LIMIT, 0, 1024LL * 1000, &n) < 0) return -1;
    if (n > 0 && (out->limits.cpu_quota <= 0 || n / 1000.0 < out->limits.cpu_quota)) {
        out->limits.cpu_quota = n / 1000.0;
        cpu_from_env = true;
    }

    if (params_has(params, "threads")) {
        out->threads = params_int(params, "threads", 1);
        out->threads_from = "params";
    } else {
        if (env_int(TERRANE_ENV_THREADS, 1, 1024, &n) < 0) return -1;
        if (n > 0) {
            out->threads = (int)n;
            out->threads_from = "env";
        } else if (out->limits.cpu_quota > 0) {
            double q = ceil(out->limits.cpu_quota - 1e-9);
            out->threads = q < out->cpus ? (int)q : out->cpus;
            if (out->threads < 1) out->threads = 1;
            out->threads_from = cpu_from_env                  ? TERRANE_ENV_CPU_LIMIT
                                : limits->cgroup_version == 1 ? "cpu.cfs_quota_us"
                                                              : "cpu.max";
        } else {
            out->threads = out->cpus;
            out->threads_from = "cpus";
        }
    }

    if (params_has(params, "cacheMb")) {
        out->cache_bytes = (unsigned long long)params_int(params, "cacheMb", 64) * MIB;
        out->cache_from = "params";
        return 0;
    }
    if (env_int(TERRANE_ENV_CACHE_MB, 16, 1048576, &n) < 0) return -1;
    if (n > 0) {
        out->cache_bytes = (unsigned long long)n * MIB;
        out->cache_from = "env";
        return 0;
    }
    if (getenv("GDAL_CACHEMAX") && getenv("GDAL_CACHEMAX")[0]) {
        out->cache_from = "GDAL_CACHEMAX"; /* GDAL reads it itself */
        return 0;
    }
    unsigned long long limit = limits->memory;
    out->cache_from = limits->cgroup_version == 1 ? "memory.limit_in_bytes" : "memory.max";
    const char *lim = getenv(TERRANE_ENV_MEMORY_LIMIT);
    if (lim && lim[0] && strcmp(lim, "0")) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(lim, &end, 10);
        if (errno || *end || v < 64 * MIB || lim[0] == '-')
            return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL,
                           "$%s: \"%.40s\" is not a byte count of at least 64 MiB",
                           TERRANE_ENV_MEMORY_LIMIT, lim);
        if (limit == 0 || v < limit) {
            limit = v;
            out->cache_from = TERRANE_ENV_MEMORY_LIMIT;
        }
        out->limits.memory = limit;
    }
    if (limit == 0) {
        out->cache_from = "gdal";
        return 0;
    }
    out->cache_bytes = podres_cache_for_limit(limit);
    return 0;
}

static int cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int podres_init(const cJSON *params)
{
    podres_limits limits;
    podres p;
    char num[16];

    podres_read_limits("", &limits);
    if (podres_resolve(params, &limits, cpu_count(), &p) < 0) return -1;
    if (p.cache_bytes > 0)
        GDALSetCacheMax64((GIntBig)p.cache_bytes);
    else
        p.cache_bytes = (unsigned long long)GDALGetCacheMax64();
    current = p;
    /* Read by GDAL wherever no NUM_THREADS option is passed: the GTiff
     * writer's compression, overview computation, the warper. */
    CPLSetConfigOption("GDAL_NUM_THREADS", podres_threads_str(num, sizeof num));
    char cache_mb[24], quota[24], mem[24];
    snprintf(cache_mb, sizeof cache_mb, "%llu", p.cache_bytes / MIB);
    snprintf(quota, sizeof quota, "%g", p.limits.cpu_quota);
    snprintf(mem, sizeof mem, "%llu", p.limits.memory);
    log_kv(LOG_INFO, "sized to the pod", "threads", num, "threadsFrom", p.threads_from, "cacheMb",
           cache_mb, "cacheFrom", p.cache_from, "cpuLimit", quota, "memoryLimit", mem,
           (const char *)NULL);
    return 0;
}

int podres_threads(void)
{
    return current.threads > 0 ? current.threads : 1;
}

unsigned long long podres_cache_bytes(void)
{
    return current.cache_bytes;
}

const podres *podres_get(void)
{
    return &current;
}

const char *podres_threads_str(char *buf, unsigned long cap)
{
    snprintf(buf, cap, "%d", podres_threads());
    return buf;
}
