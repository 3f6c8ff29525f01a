/*
 * pool.h — a persistent pool of compute threads.
 *
 * pool_run(pool, fn, arg, n) calls fn(arg, i, thread) for i in [0, n) spread
 * over the pool's threads (the caller's thread takes part as thread 0) and
 * returns when every call has returned. Workers sleep between runs; nothing
 * is created or allocated per run. One pool serves one caller at a time.
 */
#ifndef HEARTH_CORE_POOL_H
#define HEARTH_CORE_POOL_H

#include <stdint.h>

struct pool;
typedef void (*pool_fn)(void *arg, int64_t i, int thread);

/* n_threads >= 1 (1: no worker threads, everything runs in the caller). */
int pool_new(int n_threads, struct pool **out);
void pool_free(struct pool *pool);
int pool_size(const struct pool *pool);
void pool_run(struct pool *pool, pool_fn fn, void *arg, int64_t n);

#endif
