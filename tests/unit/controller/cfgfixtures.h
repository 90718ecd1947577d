/*
 * cfgfixtures.h - the reconcile configuration the decision tests
 * (test_reconcile.c, test_source.c, test_partall.c) set up once per group:
 * pools from JSON text, the task and result schemas compiled from proto/,
 * a worker image, worker version 0.1.0 and a pod GC delay of 60 s.
 * Header-only, for cmocka tests (include it after <cmocka.h>):
 *   FX_CONFIG_GROUP(POOLS, false)   then cmocka_run_group_tests(tests, setup, teardown)
 */
#ifndef TERRANE_TEST_CFGFIXTURES_H
#define TERRANE_TEST_CFGFIXTURES_H

#include "lib/cmem.h"
#include "lib/jschema.h"
#include "pools.h"
#include "reconcile.h"

#include <string.h>

static const char fx_task_schema_json[] =
#include "task_schema.inc"
    ;
static const char fx_result_schema_json[] =
#include "result_schema.inc"
    ;

typedef struct {
    pools *pools;
    jschema *task, *result;
    podspec_config pod;
    reconcile_config cfg; /* points into this struct: keep it where it is */
} fx_config;

static inline void fx_config_setup(fx_config *f, const char *pools_json)
{
    const char *t[] = {fx_task_schema_json}, *r[] = {fx_result_schema_json, fx_task_schema_json};
    cmem_init();
    memset(f, 0, sizeof *f);
    f->pod.image = "terrane-worker:test";
    assert_int_equal(pools_load_bytes(pools_json, strlen(pools_json), &f->pools), 0);
    assert_int_equal(jschema_new_text(t, 1, &f->task), 0);
    assert_int_equal(jschema_new_text(r, 2, &f->result), 0);
    f->cfg = (reconcile_config){.pools = f->pools,
                                .task_schema = f->task,
                                .result_schema = f->result,
                                .pod = &f->pod,
                                .worker_version = "0.1.0",
                                .pod_gc_delay_s = 60};
}

static inline void fx_config_teardown(fx_config *f)
{
    pools_free(f->pools);
    jschema_free(f->task);
    jschema_free(f->result);
}

/* Defines fx_config g_fx, reconcile_config g_cfg (its configuration, with
 * keep_failed_pods as given; a test may change it) and the group's setup
 * and teardown functions. */
#define FX_CONFIG_GROUP(pools_json, keep_failed)                                                   \
    static fx_config g_fx;                                                                         \
    static reconcile_config g_cfg;                                                                 \
    static int setup(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        fx_config_setup(&g_fx, pools_json);                                                        \
        g_cfg = g_fx.cfg;                                                                          \
        g_cfg.keep_failed_pods = keep_failed;                                                      \
        return 0;                                                                                  \
    }                                                                                              \
    static int teardown(void **state)                                                              \
    {                                                                                              \
        (void)state;                                                                               \
        fx_config_teardown(&g_fx);                                                                 \
        return 0;                                                                                  \
    }

#endif
