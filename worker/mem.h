/*
 * mem.h - the worker's one allocation wrapper.
 *
 * Every allocation in terrane-worker goes through these functions (cJSON is
 * hooked to them in mem_init), so tests can count allocations and make the
 * Nth one fail on purpose (mem_fail_at) to prove every error path frees what
 * it took. They return NULL on failure like malloc; callers must check.
 * mem_free(NULL) is a no-op.
 */
#ifndef TERRANE_MEM_H
#define TERRANE_MEM_H

#include <stddef.h>

void mem_init(void);
void *mem_malloc(size_t n);
void *mem_calloc(size_t count, size_t size);
void *mem_realloc(void *p, size_t n);
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t n);
/* printf into a new string; NULL on failure. */
char *mem_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mem_free(void *p);

/* Tests: fail the nth allocation from now (1 = the next one); 0 disables.
 * mem_count() returns allocations made since mem_init or the last reset. */
void mem_fail_at(unsigned long nth);
unsigned long mem_count(void);

#endif
