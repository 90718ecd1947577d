/*
 * part_cost.c - the controller's cost per partition: a backfill of one asset
 * with N partitions (daily windows x static keys) decided by partfan_decide
 * as the executor would, every started pod succeeding before the next
 * decision (maxParallel 200). Prints, per N: CPU seconds of the decisions,
 * CPU per partition, the peak heap in use above the start (mallinfo2) per
 * partition, the final status.partitions size and its worst case (every
 * other partition done, every fourth failed). The baseline, measured in the
 * same run: one unpartitioned asset's materialization decided by
 * reconcile_decide (create, running, succeeded), whose CPU a partition's
 * share is compared with.
 *
 *   part_cost N...
 */
#include "dataversion.h"
#include "kube/kobj.h"
#include "lib/cmem.h"
#include "lib/jschema.h"
#include "partfan.h"
#include "partstate.h"
#include "pools.h"
#include "reconcile.h"
#include "spec.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char POOLS[] = "{\"defaultPool\":\"cpu\",\"pools\":{\"cpu\":{\"nodeSelector\":{\"terrane.io/pool\":"
                            "\"cpu\"},\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"1Gi\"}}}}}";
static const char task_schema_json[] =
#include "task_schema.inc"
    ;
static const char result_schema_json[] =
#include "result_schema.inc"
    ;
#define NOW 4102444800L /* 2100-01-01 */
#define PAR 200

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long heap_in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return (long)m.uordblks;
}

static json_t *am_new(const char *spec_text)
{
    json_t *spec = json_loads(spec_text, 0, NULL);
    if (!spec) abort();
    return json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:i,s:s,s:{}},s:o}", "apiVersion", "terrane.io/v1alpha1", "kind",
                     "AssetMaterialization", "metadata", "name", "big", "namespace", "hydro", "uid", "uid-big",
                     "generation", 1, "resourceVersion", "1", "annotations", "spec", spec);
}

static void succeed(json_t *pod)
{
    json_t *st = json_object_get(pod, "status");
    json_object_set_new(st, "phase", json_string("Succeeded"));
    json_object_set_new(st, "containerStatuses",
                        json_pack("[{s:s,s:{s:{s:i,s:s}}}]", "name", "worker", "state", "terminated", "exitCode", 0,
                                  "message", "{}"));
}

static json_t *as_pod(const json_t *create)
{
    json_t *p = json_deep_copy(create);
    json_object_set_new(json_object_get(p, "metadata"), "uid", json_string(kobj_name(create)));
    json_object_set_new(p, "status", json_pack("{s:s}", "phase", "Pending"));
    return p;
}

static double baseline(const reconcile_config *cfg)
{
    json_t *am = am_new("{\"assetKey\":\"a/b\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"src\",\"uri\":"
                        "\"s3://raw/x.tif\"}],\"output\":{\"uri\":\"s3://assets\"}}");
    am_spec *s = NULL;
    double t0 = cpu_now();
    int rounds = 2000;
    for (int r = 0; r < rounds; r++) {
        json_object_del(am, "status");
        json_t *pod = NULL;
        for (int step = 0; step < 3; step++) {
            spec_decode(am, NULL, &s, NULL);
            reconcile_input in = {.namespace_ = "hydro", .name = "big", .am = am, .spec = s,
                                  .pods = (const json_t *const *)&pod, .n_pods = pod ? 1 : 0, .now = NOW};
            reconcile_plan p = {0};
            if (reconcile_decide(cfg, &in, &p)) abort();
            if (p.status) json_object_set(am, "status", p.status);
            if (p.create && !pod) pod = as_pod(p.create);
            else if (pod && step == 1) succeed(pod);
            reconcile_plan_clear(&p);
            spec_free(s);
        }
        json_decref(pod);
    }
    double per = (cpu_now() - t0) / rounds;
    json_decref(am);
    return per;
}

static void run(const reconcile_config *cfg, long n, double base)
{
    long keys = n >= 100000 ? 100 : 10, days = n / keys;
    char spec[1400], keylist[1100] = "";
    for (long k = 0; k < keys; k++)
        snprintf(keylist + strlen(keylist), sizeof keylist - strlen(keylist), "%s\"k%ld\"", k ? "," : "", k);
    /* days from 1900-01-01, closed */
    long long endday = days; /* days since 1900-01-01 */
    int y = 1900;
    while (endday >= 365 + ((y % 4 == 0 && y % 100) || y % 400 == 0)) endday -= 365 + ((y % 4 == 0 && y % 100) || y % 400 == 0), y++;
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int m = 0;
    bool leap = (y % 4 == 0 && y % 100) || y % 400 == 0;
    while (endday >= dm[m] + (m == 1 && leap)) endday -= dm[m] + (m == 1 && leap), m++;
    snprintf(spec, sizeof spec,
             "{\"assetKey\":\"a/big\",\"operation\":\"cog\",\"inputs\":[{\"name\":\"src\",\"uri\":"
             "\"s3://raw/{date}/{key}.tif\"}],\"partitions\":[{\"name\":\"day\",\"time\":{\"start\":\"1900-01-01\","
             "\"end\":\"%04d-%02d-%02d\",\"cadence\":\"daily\"}},{\"name\":\"k\",\"static\":{\"keys\":[%s]}}],"
             "\"maxParallel\":%d,\"output\":{\"uri\":\"s3://assets\"}}",
             y, m + 1, (int)endday + 1, keylist, PAR);
    json_t *am = am_new(spec);
    json_t **pods = calloc(4 * PAR, sizeof *pods);
    size_t n_pods = 0, decisions = 0;
    long heap0 = heap_in_use(), peak = 0;
    double t0 = cpu_now();
    for (;;) {
        am_spec *s = NULL;
        if (spec_decode(am, NULL, &s, NULL)) abort();
        reconcile_input in = {.namespace_ = "hydro", .name = "big", .am = am, .spec = s,
                              .pods = (const json_t *const *)pods, .n_pods = n_pods, .now = NOW};
        partfan_plan p;
        if (partfan_decide(cfg, &in, &p)) abort();
        decisions++;
        for (size_t i = 0; i < p.n_creates; i++) pods[n_pods++] = as_pod(p.creates[i]);
        if (p.status) json_object_set(am, "status", p.status);
        for (size_t i = 0; i < p.n_deletes; i++)
            for (size_t k = 0; k < n_pods; k++)
                if (!strcmp(kobj_name(pods[k]), p.deletes[i].name)) {
                    json_decref(pods[k]);
                    pods[k] = pods[--n_pods];
                    break;
                }
        bool idle = !p.n_creates && !p.n_deletes && !p.status;
        partfan_plan_clear(&p);
        spec_free(s);
        if (decisions % 16 == 0) {
            long h = heap_in_use() - heap0;
            if (h > peak) peak = h;
        }
        if (decisions > (size_t)n) {
            fprintf(stderr, "no progress after %zu decisions: %s\n", decisions,
                    json_string_value(json_object_get(json_object_get(am, "status"), "message")));
            abort();
        }
        const char *ph = json_string_value(json_object_get(json_object_get(am, "status"), "phase"));
        if (idle && ph && !strcmp(ph, "Succeeded")) break;
        for (size_t k = 0; k < n_pods; k++)
            if (!strcmp(json_string_value(json_object_get(json_object_get(pods[k], "status"), "phase")), "Pending"))
                succeed(pods[k]);
    }
    double cpu = cpu_now() - t0;
    char *st = json_dumps(json_object_get(json_object_get(am, "status"), "partitions"), JSON_COMPACT);
    size_t size = strlen(st);
    free(st);
    /* worst order for the record */
    partstate *ps = partstate_new();
    partstate_load(ps, NULL, "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    partstate_set_total(ps, (uint64_t)n);
    char msg[300];
    memset(msg, 'x', sizeof msg - 1);
    msg[sizeof msg - 1] = 0;
    for (long i = 0; i < n; i++) {
        if (i % 2 == 0) partstate_succeeded(ps, (uint64_t)i);
        else if (i % 4 == 1) partstate_failed(ps, (uint64_t)i, "2026-11-30/basin-a", 4, msg);
    }
    json_t *wj = partstate_json(ps);
    char *ws = json_dumps(wj, JSON_COMPACT);
    size_t worst = strlen(ws);
    free(ws);
    json_decref(wj);
    partstate_free(ps);
    double per = cpu / (double)n;
    printf("%ld partitions (%ld days x %ld keys): %zu decisions, %.2f s CPU\n", n, days, keys, decisions, cpu);
    printf("  CPU per partition           %8.1f us   %.2fx one unpartitioned materialization (%.1f us)  target <= 1x\n",
           per * 1e6, per / base, base * 1e6);
    printf("  peak heap per partition     %8.1f B    target < 1024 B\n", (double)peak / (double)n);
    printf("  status.partitions, in order %8zu B    target < 65536 B\n", size);
    printf("  status.partitions, worst    %8zu B    target < 65536 B\n", worst);
    for (size_t k = 0; k < n_pods; k++) json_decref(pods[k]);
    free(pods);
    json_decref(am);
}

int main(int argc, char **argv)
{
    cmem_init();
    pools *pl = NULL;
    podspec_config pod = {.image = "terrane-worker:bench"};
    if (pools_load_bytes(POOLS, strlen(POOLS), &pl)) return 1;
    jschema *task = NULL, *result = NULL;
    const char *t[] = {task_schema_json}, *r[] = {result_schema_json, task_schema_json};
    if (jschema_new_text(t, 1, &task) || jschema_new_text(r, 2, &result)) return 1;
    reconcile_config cfg = {.pools = pl, .task_schema = task, .result_schema = result, .pod = &pod,
                            .worker_version = "0.1.0", .pod_gc_delay_s = 0};
    double base = baseline(&cfg);
    for (int i = 1; i < argc; i++) run(&cfg, atol(argv[i]), base);
    pools_free(pl);
    jschema_free(task);
    jschema_free(result);
    return 0;
}
