/*
 * test_pool.c — the compute pool (core/pool.c): every index of a run is
 * called exactly once, on a thread id below the pool's size, and the run
 * returns only when all of them have returned; runs follow one another
 * without mixing (a late worker never takes an index of a newer run with an
 * older run's arguments), also after the workers have gone to sleep.
 */
#include "pool.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

struct job {
    atomic_int *hits; /* [n]: calls per index */
    int64_t n;
    int n_threads;
    int tag;         /* the run this job belongs to */
    atomic_int bad;  /* calls with a wrong thread id or tag */
    atomic_int done; /* calls returned */
};

static void task(void *arg, int64_t i, int thread)
{
    struct job *j = arg;
    if (i < 0 || i >= j->n || thread < 0 || thread >= j->n_threads) {
        atomic_fetch_add(&j->bad, 1);
        return;
    }
    if (i % 7 == 3) { /* uneven tasks */
        volatile int64_t x = 0;
        for (int k = 0; k < 2000; k++)
            x += k;
    }
    atomic_fetch_add(&j->hits[i], 1);
    atomic_fetch_add(&j->done, 1);
}

static void run_and_check(struct pool *p, int n_threads, int64_t n, int tag)
{
    struct job j = {.n = n, .n_threads = n_threads, .tag = tag};
    j.hits = calloc((size_t)(n ? n : 1), sizeof *j.hits);
    cr_assert(j.hits);
    atomic_init(&j.bad, 0);
    atomic_init(&j.done, 0);
    pool_run(p, task, &j, n);
    /* everything has returned once pool_run has */
    cr_assert_eq(atomic_load(&j.done), n, "run %d: %d of %lld calls returned", tag,
                 atomic_load(&j.done), (long long)n);
    cr_assert_eq(atomic_load(&j.bad), 0, "run %d: calls with a bad index or thread", tag);
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(atomic_load(&j.hits[i]), 1, "run %d: index %lld called %d times", tag,
                     (long long)i, atomic_load(&j.hits[i]));
    free(j.hits);
}

Test(pool, every_index_once)
{
    static const int threads[] = {1, 2, 3, 4};
    static const int64_t sizes[] = {0, 1, 2, 3, 7, 64, 1000};
    int tag = 0;
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        struct pool *p;
        cr_assert_eq(pool_new(threads[t], &p), 0);
        cr_assert_eq(pool_size(p), threads[t]);
        for (int rep = 0; rep < 200; rep++)
            for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
                run_and_check(p, threads[t], sizes[s], tag++);
        pool_free(p);
    }
    pool_free(NULL);
}

/* Runs after the workers have had time to fall asleep wake them again. */
Test(pool, runs_after_idle)
{
    struct pool *p;
    cr_assert_eq(pool_new(3, &p), 0);
    for (int rep = 0; rep < 4; rep++) {
        run_and_check(p, 3, 100, rep);
        nanosleep(&(struct timespec){0, 30 * 1000 * 1000}, NULL); /* 30 ms idle */
    }
    pool_free(p);
}
