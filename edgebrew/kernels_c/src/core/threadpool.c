/* Persistent pthread pool with static chunking; see threadpool.h. */
#define _POSIX_C_SOURCE 200809L
#include "threadpool.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

typedef struct worker_arg {
    struct eb_pool *pool;
    int index; /* 1 .. threads-1 */
} worker_arg;

struct eb_pool {
    int threads;            /* caller + workers */
    int n_started;          /* workers actually started */
    pthread_t *workers;
    worker_arg *args;       /* one per worker, alive as long as the pool */
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    pthread_cond_t cv_done;
    uint64_t generation;    /* bumped for each job */
    int pending;            /* workers that have not finished the current job */
    int stop;
    /* the current job */
    eb_range_fn fn;
    void *ctx;
    int64_t n;
    int chunks;
};

/* Index of the chunk the current thread is running, and whether it is inside one. */
static _Thread_local int tl_worker = 0;
static _Thread_local int tl_in_chunk = 0;

void eb_pool_chunk(int64_t n, int chunks, int i, int64_t *begin, int64_t *end) {
    if (chunks < 1 || n <= 0 || i < 0 || i >= chunks) {
        *begin = *end = 0;
        return;
    }
    int64_t base = n / chunks, rem = n % chunks;
    int64_t b = (int64_t)i * base + (i < rem ? i : rem);
    *begin = b;
    *end = b + base + (i < rem ? 1 : 0);
}

static void run_chunk(eb_range_fn fn, void *ctx, int64_t n, int chunks, int i) {
    int64_t b, e;
    eb_pool_chunk(n, chunks, i, &b, &e);
    if (b >= e) return;
    int saved_worker = tl_worker, saved_in = tl_in_chunk;
    tl_worker = i;
    tl_in_chunk = 1;
    fn(ctx, b, e, i);
    tl_worker = saved_worker;
    tl_in_chunk = saved_in;
}

static void *worker_main(void *p) {
    worker_arg *arg = (worker_arg *)p;
    eb_pool *pool = arg->pool;
    const int me = arg->index;
    /* Jobs are numbered from 1: a worker that starts late still sees job 1 (a job is not
     * finished, so the next cannot be posted, until every worker has taken part). */
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->stop && pool->generation == seen) pthread_cond_wait(&pool->cv_work, &pool->mu);
        if (pool->stop) break;
        seen = pool->generation;
        eb_range_fn fn = pool->fn;
        void *ctx = pool->ctx;
        int64_t n = pool->n;
        int chunks = pool->chunks;
        pthread_mutex_unlock(&pool->mu);

        if (me < chunks) run_chunk(fn, ctx, n, chunks, me);

        pthread_mutex_lock(&pool->mu);
        if (--pool->pending == 0) pthread_cond_signal(&pool->cv_done);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static void stop_workers(eb_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->cv_work);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->n_started; i++) pthread_join(pool->workers[i], NULL);
    pool->n_started = 0;
}

eb_pool *eb_pool_create(int threads) {
    if (threads < 1) threads = 1;
    eb_pool *pool = (eb_pool *)calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->threads = threads;
    int n_workers = threads - 1;
    worker_arg *args = NULL;
    if (n_workers > 0) {
        pool->workers = (pthread_t *)calloc((size_t)n_workers, sizeof *pool->workers);
        args = (worker_arg *)calloc((size_t)n_workers, sizeof *args);
        if (!pool->workers || !args) {
            free(pool->workers);
            free(args);
            free(pool);
            return NULL;
        }
    }
    pool->args = args;
    if (pthread_mutex_init(&pool->mu, NULL) != 0) {
        free(pool->workers);
        free(args);
        free(pool);
        return NULL;
    }
    if (pthread_cond_init(&pool->cv_work, NULL) != 0) {
        pthread_mutex_destroy(&pool->mu);
        free(pool->workers);
        free(args);
        free(pool);
        return NULL;
    }
    if (pthread_cond_init(&pool->cv_done, NULL) != 0) {
        pthread_cond_destroy(&pool->cv_work);
        pthread_mutex_destroy(&pool->mu);
        free(pool->workers);
        free(args);
        free(pool);
        return NULL;
    }
    /* Workers never take the process's signals: block them all while creating. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int ok = 1;
    for (int i = 0; i < n_workers; i++) {
        args[i].pool = pool;
        args[i].index = i + 1;
        if (pthread_create(&pool->workers[i], NULL, worker_main, &args[i]) != 0) {
            ok = 0;
            break;
        }
        pool->n_started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!ok) {
        stop_workers(pool);
        pthread_cond_destroy(&pool->cv_done);
        pthread_cond_destroy(&pool->cv_work);
        pthread_mutex_destroy(&pool->mu);
        free(pool->workers);
        free(args);
        free(pool);
        return NULL;
    }
    return pool;
}

void eb_pool_free(eb_pool *pool) {
    if (!pool) return;
    stop_workers(pool);
    pthread_cond_destroy(&pool->cv_done);
    pthread_cond_destroy(&pool->cv_work);
    pthread_mutex_destroy(&pool->mu);
    free(pool->workers);
    free(pool->args);
    free(pool);
}

void eb_pool_run(eb_pool *pool, int64_t n, eb_range_fn fn, void *ctx) {
    if (n <= 0 || fn == NULL) return;
    if (pool == NULL || pool->threads <= 1 || pool->n_started == 0 || tl_in_chunk) {
        /* inline: one chunk; a nested call keeps the thread index of the chunk it is in */
        int saved = tl_in_chunk;
        tl_in_chunk = 1;
        fn(ctx, 0, n, tl_worker);
        tl_in_chunk = saved;
        return;
    }
    int chunks = pool->threads;
    if ((int64_t)chunks > n) chunks = (int)n;
    if (chunks <= 1) {
        run_chunk(fn, ctx, n, 1, 0);
        return;
    }
    pthread_mutex_lock(&pool->mu);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->chunks = chunks;
    pool->pending = pool->n_started;
    pool->generation++;
    pthread_cond_broadcast(&pool->cv_work);
    pthread_mutex_unlock(&pool->mu);

    run_chunk(fn, ctx, n, chunks, 0);

    pthread_mutex_lock(&pool->mu);
    while (pool->pending > 0) pthread_cond_wait(&pool->cv_done, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
}
