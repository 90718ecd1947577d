/*
 * cmem.h - the controller's one allocation wrapper.
 *
 * Every allocation in terrane-controller goes through these functions, and
 * cmem_init hooks jansson to them (json_set_alloc_funcs), so tests can count
 * allocations and make the Nth one fail on purpose (cmem_fail_at) to prove
 * that every error path frees what it took. Counters are atomics: any thread
 * may allocate. They return NULL on failure like malloc; callers must check
 * (and usually `return cerr_oom();`). cmem_free(NULL) is a no-op.
 *
 * Call cmem_init once, from main (or a test's setup), before any jansson
 * value exists, so that every jansson block is both allocated and freed
 * here. Strings and blocks returned by these functions belong to the
 * caller, who releases them with cmem_free.
 */
#ifndef LIB_CMEM_H
#define LIB_CMEM_H

#include <stddef.h>

void cmem_init(void);
void *cmem_malloc(size_t n);
void *cmem_calloc(size_t count, size_t size); /* NULL also when count*size overflows */
void *cmem_realloc(void *p, size_t n);        /* on failure p is left untouched */
/* realloc of an array, NULL when count*size overflows (p is then untouched). */
void *cmem_reallocarray(void *p, size_t count, size_t size);
char *cmem_strdup(const char *s);            /* NULL in, NULL out */
char *cmem_strndup(const char *s, size_t n); /* copies at most n bytes, adds NUL */
/* printf into a new string; NULL on failure. */
char *cmem_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cmem_free(void *p);

/* Tests: make the nth allocation from now fail (1 = the next one); 0
 * disables. Counts allocations from every thread. */
void cmem_fail_at(unsigned long nth);
/* Allocations attempted since start (failed ones included). */
unsigned long cmem_count(void);
/* Allocations that failed on the calling thread since it started. A
 * parser that cannot tell "out of memory" from "invalid input" (jansson
 * reports a failed allocation as a syntax error) compares it before and
 * after. */
unsigned long cmem_failures(void);
/* Blocks handed out and not yet freed: a test compares it before and after
 * an operation to find leaks on error paths. */
long cmem_live(void);

#endif
