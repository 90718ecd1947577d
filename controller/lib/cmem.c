/*
 * cmem.c - allocation wrapper with failure injection for tests.
 *
 * The counters are C11 atomics because reconcile workers, informers and the
 * HTTP server all allocate concurrently.
 */
#include "lib/cmem.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong alloc_count;
static atomic_ulong fail_at; /* absolute allocation number that fails, 0 = never */
static atomic_long live_blocks;
static _Thread_local unsigned long thread_failures;

static int should_fail(void)
{
    unsigned long n = atomic_fetch_add(&alloc_count, 1) + 1;
    unsigned long f = atomic_load(&fail_at);
    if (f != 0 && n == f) {
        thread_failures++;
        return 1;
    }
    return 0;
}

static void *counted(void *p)
{
    if (p)
        atomic_fetch_add(&live_blocks, 1);
    else
        thread_failures++;
    return p;
}

void cmem_init(void)
{
    json_set_alloc_funcs(cmem_malloc, cmem_free);
}

void *cmem_malloc(size_t n)
{
    if (should_fail()) return NULL;
    return counted(malloc(n ? n : 1));
}

void *cmem_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    if (should_fail()) return NULL;
    return counted(calloc(count ? count : 1, size ? size : 1));
}

void *cmem_realloc(void *p, size_t n)
{
    if (!p) return cmem_malloc(n);
    if (should_fail()) return NULL;
    /* n == 0 would free p in some libcs; always keep a block. */
    void *np = realloc(p, n ? n : 1);
    if (!np) thread_failures++;
    return np;
}

void *cmem_reallocarray(void *p, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    return cmem_realloc(p, count * size);
}

char *cmem_strndup(const char *s, size_t n)
{
    if (!s) return NULL;
    size_t len = strnlen(s, n);
    char *d = cmem_malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *cmem_strdup(const char *s)
{
    return s ? cmem_strndup(s, strlen(s)) : NULL;
}

char *cmem_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = cmem_malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void cmem_free(void *p)
{
    if (!p) return;
    atomic_fetch_sub(&live_blocks, 1);
    free(p);
}

void cmem_fail_at(unsigned long nth)
{
    atomic_store(&fail_at, nth ? atomic_load(&alloc_count) + nth : 0);
}

unsigned long cmem_count(void)
{
    return atomic_load(&alloc_count);
}

unsigned long cmem_failures(void)
{
    return thread_failures;
}

long cmem_live(void)
{
    return atomic_load(&live_blocks);
}
