/*
 * tpool.h - a parallel for loop over the pod's threads.
 *
 * tpool_for runs fn(i, worker, arg) for every i in [0, n) on up to `threads`
 * threads, the calling thread being one of them (worker 0); items are handed
 * out in increasing order from a shared counter, so each worker index is
 * used by one thread at a time and can own per-thread buffers. Threads are
 * started per call and joined before it returns: calls are meant to be few
 * and each item large (a strip of rows, a chunk of a window).
 *
 * After the first failing item no new items are handed out; the call
 * returns -1 with that item's error (err.h is per thread) set on the calling
 * thread. fn must set the error when it fails. Called from the run thread.
 */
#ifndef TERRANE_TPOOL_H
#define TERRANE_TPOOL_H

#include <stddef.h>

/* More are not started; callers with per-thread state size it to this. */
#define TPOOL_MAX_THREADS 64

typedef int (*tpool_fn)(size_t i, int worker, void *arg);

/* threads < 1 counts as 1; more threads than items start no idle ones. */
int tpool_for(int threads, size_t n, tpool_fn fn, void *arg);

#endif
