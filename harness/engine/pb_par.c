/* pb_par: the worker pool behind pb_par_run (see pb_par.h). */
#include "pb_par.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

void openblas_set_num_threads(int);
int openblas_get_num_threads(void);

/* A run is published under mu by bumping gen; every worker takes part in
 * every run (those without a part just check in), so pending counts workers. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    unsigned gen;      /* written under mu, read by polling threads too */
    unsigned gen_at_start; /* gen when the workers were started */
    int quit;
    int nworkers; /* threads besides the caller */
    unsigned pending; /* workers still in the current run; written under mu, polled too */
    pb_par_fn fn;
    void *ctx;
    int nparts;
    pthread_t tid[PB_PAR_MAX_THREADS];
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .start = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

/* A thread about to wait for the pool polls this long before it sleeps on
 * the condition variable: the next run or the end of this one usually comes
 * within microseconds, while a sleeping thread takes tens of them to wake
 * (a dozen handoffs per training step). Only the pool's threads and its
 * caller poll, so they take no core from a thread with work unless more
 * threads than cores were asked for. */
#define POLL_NS 50000

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Polls *v, without the lock, until (*v == val) == equal or POLL_NS pass. */
static void poll_until(const unsigned *v, unsigned val, int equal)
{
    const int64_t t0 = now_ns();
    do {
        for (int i = 0; i < 64; i++) {
            if ((__atomic_load_n(v, __ATOMIC_ACQUIRE) == val) == equal)
                return;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    } while (now_ns() - t0 < POLL_NS);
}

static void run_parts(pb_par_fn fn, void *ctx, int nparts, int first, int stride)
{
    for (int i = first; i < nparts; i += stride)
        fn(ctx, i, nparts);
}

static void *worker(void *arg)
{
    const int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&pool.mu);
    /* not pool.gen: a run may have been published before this thread got here */
    unsigned seen = pool.gen_at_start;
    for (;;) {
        if (pool.gen == seen && !pool.quit) {
            pthread_mutex_unlock(&pool.mu);
            poll_until(&pool.gen, seen, 0);
            pthread_mutex_lock(&pool.mu);
        }
        while (pool.gen == seen && !pool.quit)
            pthread_cond_wait(&pool.start, &pool.mu);
        if (pool.quit)
            break;
        seen = pool.gen;
        const pb_par_fn fn = pool.fn;
        void *const ctx = pool.ctx;
        const int nparts = pool.nparts, stride = pool.nworkers + 1;
        pthread_mutex_unlock(&pool.mu);
        run_parts(fn, ctx, nparts, id, stride);
        pthread_mutex_lock(&pool.mu);
        __atomic_store_n(&pool.pending, pool.pending - 1, __ATOMIC_RELEASE);
        if (pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

static void stop_workers(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.quit = 1;
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 1; i <= pool.nworkers; i++)
        pthread_join(pool.tid[i], NULL);
    pool.nworkers = 0;
    pool.quit = 0;
}

/* A forked child (prunebench run's workers) has only the forking thread:
 * it starts with no workers and a mutex no thread holds. */
static void before_fork(void) { pthread_mutex_lock(&pool.mu); }
static void after_fork_parent(void) { pthread_mutex_unlock(&pool.mu); }
static void after_fork_child(void)
{
    pool.nworkers = 0;
    pool.pending = 0;
    pool.quit = 0;
    pthread_cond_init(&pool.start, NULL);
    pthread_cond_init(&pool.done, NULL);
    pthread_mutex_unlock(&pool.mu);
}

int pb_par_set_threads(int n)
{
    static int atfork_done;
    if (n < 1)
        n = 1;
    if (n > PB_PAR_MAX_THREADS)
        n = PB_PAR_MAX_THREADS;
    if (n == pool.nworkers + 1)
        return n;
    if (!atfork_done && pthread_atfork(before_fork, after_fork_parent, after_fork_child) == 0)
        atfork_done = 1;
    stop_workers();
    pool.gen_at_start = pool.gen;
    for (int i = 1; i < n; i++) {
        if (pthread_create(&pool.tid[i], NULL, worker, (void *)(intptr_t)i) != 0)
            break;
        pool.nworkers = i; /* workers read it only during a run, which cannot be now */
    }
    return pool.nworkers + 1;
}

int pb_par_threads(void) { return pool.nworkers + 1; }

void pb_par_run(pb_par_fn fn, void *ctx, int nparts)
{
    if (nparts <= 1 || pool.nworkers == 0) {
        run_parts(fn, ctx, nparts, 0, 1);
        return;
    }
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.nparts = nparts;
    pool.pending = (unsigned)pool.nworkers;
    __atomic_store_n(&pool.gen, pool.gen + 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.mu);
    run_parts(fn, ctx, nparts, 0, pool.nworkers + 1);
    poll_until(&pool.pending, 0, 1);
    pthread_mutex_lock(&pool.mu);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
}

void pb_par_use_threads(int threads)
{
    /* without --threads, OpenBLAS's default (all cores, or OPENBLAS_NUM_THREADS) */
    if (threads < 1)
        threads = openblas_get_num_threads();
    /* The layers split their SGEMMs over our pool (pb_layer.c's gemm), so
     * OpenBLAS's own threads would only spin and take cores from it. */
    openblas_set_num_threads(1);
    pb_par_set_threads(threads);
}
