/* A small persistent pthread pool: created with a session, joined when it is freed. */
#ifndef EB_THREADPOOL_H
#define EB_THREADPOOL_H

#include <stdint.h>

#include "op.h" /* eb_range_fn */

typedef struct eb_pool eb_pool;

/* A pool for `threads` threads in all: the caller plus threads - 1 workers. Returns NULL on
 * failure (out of memory, or a thread could not be started). */
eb_pool *eb_pool_create(int threads);
/* Stops and joins the workers. NULL is fine. */
void eb_pool_free(eb_pool *pool);

/* Splits [0, n) into min(threads, n) contiguous chunks of sizes differing by at most one
 * (chunk i goes to thread i; the caller runs chunk 0) and returns when all are done. The split
 * depends only on n and the thread count. A call made from inside a running chunk (nested)
 * runs the whole range inline on the calling thread. pool == NULL runs inline, thread 0. */
void eb_pool_run(eb_pool *pool, int64_t n, eb_range_fn fn, void *ctx);

/* The bounds of chunk i of `chunks` over [0, n). */
void eb_pool_chunk(int64_t n, int chunks, int i, int64_t *begin, int64_t *end);

#endif /* EB_THREADPOOL_H */
