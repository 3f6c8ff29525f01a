/*
 * pool.c — persistent compute threads (see pool.h).
 *
 * A decode step runs a few hundred short parallel sections (every matrix
 * product, attention), so handing work to the threads must cost well under
 * a microsecond, not the tens of microseconds of a condition-variable wake.
 * Hence: a run publishes (fn, arg, n) and bumps an atomic generation;
 * workers spin on the generation (with a pause hint) for a while before they
 * fall back to sleeping on a condition variable, and claim indexes from an
 * atomic counter tagged with the generation; the caller works too, then
 * spins until every index is done. The caller never waits for a worker that
 * has not started: on a busy desktop another process may hold that core for
 * a whole time slice, and waiting for it made each product cost
 * milliseconds. Idle workers sleep after ~1 ms of spinning, so an idle
 * daemon does not burn CPU.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* spins before a worker sleeps (a pause is ~10-100 ns) */
#define SPIN_LIMIT (1 << 15)

/* One run's arguments. Runs alternate between two slots so that the slot
 * of the run in progress is never written while a worker may read it. */
struct run {
    pool_fn fn;
    void *arg;
    int64_t n;
};

struct pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint_fast32_t generation; /* the current run; bumped to start one */
    atomic_int sleepers;
    atomic_bool stop;
    struct run runs[2]; /* run g uses runs[g & 1], written before g is published */
    /* (generation << 32) | next unclaimed index: a claim succeeds only for
     * the run it was made for, so a worker that wakes late can never take
     * an index of a newer run with an older run's arguments */
    atomic_uint_fast64_t claim;
    atomic_int_fast64_t done; /* indexes of the current run finished */
};
struct worker_arg {
    struct pool *pool;
    int id;
};

/* Claims and runs indexes of run `gen` until none is left (or a newer run
 * has started). */
static void work(struct pool *p, uint32_t gen, int id)
{
    const struct run *r = &p->runs[gen & 1];
    pool_fn fn = r->fn;
    void *arg = r->arg;
    uint64_t n = (uint64_t)r->n;
    uint64_t v = atomic_load(&p->claim);
    for (;;) {
        if ((uint32_t)(v >> 32) != gen || (v & 0xffffffffu) >= n)
            return;
        if (!atomic_compare_exchange_weak(&p->claim, &v, v + 1))
            continue; /* v now holds the current value */
        fn(arg, (int64_t)(v & 0xffffffffu), id);
        atomic_fetch_add(&p->done, 1);
        v = atomic_load(&p->claim);
    }
}

/* Waits until the generation differs from `seen`; returns false on stop. */
static bool wait_generation(struct pool *p, uint32_t seen)
{
    for (int spins = 0; atomic_load(&p->generation) == seen; spins++) {
        if (atomic_load(&p->stop))
            return false;
        if (spins < SPIN_LIMIT) {
            cpu_relax();
            continue;
        }
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add(&p->sleepers, 1);
        while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
            pthread_cond_wait(&p->wake, &p->mu);
        atomic_fetch_sub(&p->sleepers, 1);
        pthread_mutex_unlock(&p->mu);
        spins = 0;
    }
    return !atomic_load(&p->stop);
}

static void *worker_main(void *varg)
{
    struct pool *p = ((struct worker_arg *)varg)->pool;
    int id = ((struct worker_arg *)varg)->id;
    free(varg);
    uint32_t seen = 0;
    while (wait_generation(p, seen)) {
        seen = (uint32_t)atomic_load(&p->generation);
        work(p, seen, id);
    }
    return NULL;
}

int pool_new(int n_threads, struct pool **out)
{
    if (n_threads < 1)
        n_threads = 1;
    struct pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->claim, 0);
    atomic_init(&p->done, 0);
    p->n_threads = 1; /* counts threads started so far, for cleanup */
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads)
        goto fail;
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa)
            goto fail;
        wa->pool = p;
        wa->id = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            goto fail;
        }
        p->n_threads = i + 1;
    }
    *out = p;
    return 0;
fail:
    pool_free(p);
    return -ENOMEM;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p);
}

int pool_size(const struct pool *p)
{
    return p->n_threads;
}

void pool_run(struct pool *p, pool_fn fn, void *arg, int64_t n)
{
    if (n <= 0)
        return;
    if (p->n_threads == 1 || n == 1 || n > (int64_t)0xffffffff) { /* the claim holds 32 bits */
        for (int64_t i = 0; i < n; i++)
            fn(arg, i, 0);
        return;
    }
    uint32_t gen = (uint32_t)atomic_load(&p->generation) + 1;
    p->runs[gen & 1] = (struct run){fn, arg, n};
    atomic_store(&p->done, 0);
    atomic_store(&p->claim, (uint64_t)gen << 32);
    atomic_store(&p->generation, gen); /* publishes the run */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    work(p, gen, 0);
    /* Wait for the indexes, not for the workers: a worker the OS has not
     * scheduled yet (another process holds its core) finds nothing left
     * when it wakes, so it costs this run nothing. */
    while (atomic_load(&p->done) < n)
        cpu_relax();
}
