/*
 * tpool.c - a parallel for loop (tpool.h).
 */
#include "tpool.h"

#include "err.h"
#include "mem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct pool {
    tpool_fn fn;
    void *arg;
    size_t n;
    atomic_size_t next;
    atomic_bool failed;
    pthread_mutex_t lock; /* guards the error copy below */
    bool have_err;
    err_class cls;
    char code[64];
    char field[128];
    char message[1024];
} pool;

typedef struct worker_arg {
    pool *p;
    int index;
} worker_arg;

/* Copies this thread's error into the pool; the first one wins. */
static void keep_error(pool *p)
{
    pthread_mutex_lock(&p->lock);
    if (!p->have_err) {
        p->have_err = true;
        p->cls = err_is_set() ? err_get_class() : ERR_INTERNAL;
        snprintf(p->code, sizeof p->code, "%s", err_is_set() ? err_get_code() : ERR_INTERNAL_CODE);
        snprintf(p->field, sizeof p->field, "%s", err_get_field());
        snprintf(p->message, sizeof p->message, "%s",
                 err_is_set() ? err_get_message() : "a worker thread failed without a message");
    }
    pthread_mutex_unlock(&p->lock);
}

static void run_items(pool *p, int index)
{
    while (!atomic_load(&p->failed)) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n) return;
        if (p->fn(i, index, p->arg) < 0) {
            keep_error(p);
            atomic_store(&p->failed, true);
            return;
        }
    }
}

static void *worker_main(void *arg)
{
    worker_arg *w = arg;
    run_items(w->p, w->index);
    err_clear(); /* this thread's slot dies with it */
    return NULL;
}

int tpool_for(int threads, size_t n, tpool_fn fn, void *arg)
{
    pool p = {.fn = fn, .arg = arg, .n = n};
    pthread_t tids[TPOOL_MAX_THREADS];
    worker_arg wargs[TPOOL_MAX_THREADS];
    int started = 0;

    if (threads < 1) threads = 1;
    if ((size_t)threads > n) threads = n > 0 ? (int)n : 1;
    if (threads > TPOOL_MAX_THREADS) threads = TPOOL_MAX_THREADS;
    atomic_init(&p.next, 0);
    atomic_init(&p.failed, false);
    pthread_mutex_init(&p.lock, NULL);
    for (int k = 1; k < threads; k++) {
        wargs[k] = (worker_arg){.p = &p, .index = k};
        /* Too few threads is slower, not wrong: the others do the work. */
        if (pthread_create(&tids[k], NULL, worker_main, &wargs[k]) != 0) break;
        started++;
    }
    run_items(&p, 0);
    for (int k = 1; k <= started; k++)
        pthread_join(tids[k], NULL);
    pthread_mutex_destroy(&p.lock);
    if (!p.have_err) return 0;
    return err_set(p.cls, p.code, p.field[0] ? p.field : NULL, "%s", p.message);
}
