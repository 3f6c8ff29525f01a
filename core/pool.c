/*
 * pool.c — persistent compute threads (see pool.h).
 *
 * A decode step runs a few hundred short parallel sections (every matrix
 * product, attention), so handing work to the threads must cost well under
 * a microsecond, not the tens of microseconds of a condition-variable wake.
 * Hence: a run publishes (fn, arg, n) and bumps an atomic generation;
 * workers spin on the generation (with a pause hint) for a while before they
 * fall back to sleeping on a condition variable, claim indexes from an
 * atomic counter, and count themselves out on `pending`; the caller works
 * too, then spins until `pending` is zero. Idle workers sleep after ~1 ms of
 * spinning, so an idle daemon does not burn CPU.
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

struct pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint_fast64_t generation;
    atomic_int sleepers;
    atomic_int pending; /* workers still inside the current generation */
    atomic_bool stop;
    /* the current run; written before the generation is bumped */
    pool_fn fn;
    void *arg;
    int64_t n;
    atomic_int_fast64_t next;
};

struct worker_arg {
    struct pool *pool;
    int id;
};

static void work(struct pool *p, int id)
{
    for (;;) {
        int64_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n)
            break;
        p->fn(p->arg, i, id);
    }
}

/* Waits until the generation differs from `seen`; returns false on stop. */
static bool wait_generation(struct pool *p, uint64_t seen)
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
    uint64_t seen = 0;
    while (wait_generation(p, seen)) {
        seen = atomic_load(&p->generation);
        work(p, id);
        atomic_fetch_sub(&p->pending, 1);
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
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->next, 0);
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
    if (p->n_threads == 1 || n == 1) {
        for (int64_t i = 0; i < n; i++)
            fn(arg, i, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->pending, p->n_threads - 1);
    atomic_fetch_add(&p->generation, 1); /* publishes the fields above */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    work(p, 0);
    while (atomic_load(&p->pending) > 0)
        cpu_relax();
}
