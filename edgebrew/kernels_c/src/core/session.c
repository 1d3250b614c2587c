/* Sessions: arena, scratch, thread pool; running the ops; the eb_exec services of op.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* calloc'd block of `size` bytes (at least 1) with an EB_ALIGN-aligned interior pointer.
 * calloc: large blocks come from mmap and are zeroed lazily, so an arena costs nothing until
 * it is touched. */
static void *aligned_zeroed(size_t size, void **block) {
    *block = NULL;
    if (size == 0) size = 1;
    if (size > SIZE_MAX - EB_ALIGN) return NULL;
    uint8_t *raw = (uint8_t *)calloc(1, size + EB_ALIGN);
    if (!raw) return NULL;
    uintptr_t p = ((uintptr_t)raw + (EB_ALIGN - 1)) & ~(uintptr_t)(EB_ALIGN - 1);
    *block = raw;
    return raw + (p - (uintptr_t)raw);
}

static void reset_output_shapes(eb_session *s) {
    const eb_model *m = s->model;
    for (int i = 0; i < m->n_outputs; i++) {
        const eb_tensor *t = &m->tensors[m->outputs[i]];
        s->out_ndim[i] = t->ndim;
        memset(s->out_dims[i], 0, sizeof s->out_dims[i]);
        for (int d = 0; d < t->ndim; d++) s->out_dims[i][d] = t->dims[d];
    }
}

void eb_session_free(eb_session *s) {
    if (!s) return;
    eb_pool_free(s->pool);
    free(s->arena_block);
    free(s->scratch_block);
    free(s->out_ndim);
    free(s->out_dims);
    free(s);
}

eb_status eb_session_create(const eb_model *model, const eb_session_options *options,
                            eb_session **out) {
    if (!out) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_session_create: out is NULL");
    *out = NULL;
    if (!model) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_session_create: model is NULL");
    int threads = options ? options->threads : 1;
    if (threads < 1) threads = 1;
    if (threads > EB_MAX_THREADS)
        return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_session_create: %d threads (at most %d)",
                            threads, EB_MAX_THREADS);
    eb_session *s = (eb_session *)calloc(1, sizeof *s);
    if (!s) return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    s->model = model;
    s->threads = threads;

    s->arena = (uint8_t *)aligned_zeroed(model->arena_bytes, &s->arena_block);
    if (!s->arena) {
        eb_session_free(s);
        return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory allocating the %zu-byte arena",
                            model->arena_bytes);
    }
    if (model->scratch_stride > 0) {
        if (model->scratch_stride > SIZE_MAX / (size_t)threads) {
            eb_session_free(s);
            return eb_set_error(EB_ERR_OUT_OF_MEMORY, "scratch memory too large");
        }
        size_t total = model->scratch_stride * (size_t)threads;
        s->scratch = (uint8_t *)aligned_zeroed(total, &s->scratch_block);
        if (!s->scratch) {
            eb_session_free(s);
            return eb_set_error(EB_ERR_OUT_OF_MEMORY,
                                "out of memory allocating %zu bytes of scratch memory", total);
        }
    }
    size_t n_out = model->n_outputs > 0 ? (size_t)model->n_outputs : 1;
    s->out_ndim = (int *)calloc(n_out, sizeof *s->out_ndim);
    s->out_dims = (int64_t(*)[EB_MAX_DIMS])calloc(n_out, sizeof *s->out_dims);
    if (!s->out_ndim || !s->out_dims) {
        eb_session_free(s);
        return eb_set_error(EB_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (threads > 1) {
        s->pool = eb_pool_create(threads);
        if (!s->pool) {
            eb_session_free(s);
            return eb_set_error(EB_ERR_OUT_OF_MEMORY, "cannot start %d worker threads",
                                threads - 1);
        }
    }
    reset_output_shapes(s);
    *out = s;
    return EB_OK;
}

eb_status eb_session_set_input(eb_session *s, int index, const float *data, size_t count) {
    if (!s) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_session_set_input: session is NULL");
    const eb_model *m = s->model;
    if (index < 0 || index >= m->n_inputs)
        return eb_set_error(EB_ERR_INVALID_ARGUMENT,
                            "eb_session_set_input: input index %d out of range (%d inputs)",
                            index, m->n_inputs);
    const eb_tensor *t = &m->tensors[m->inputs[index]];
    if ((uint64_t)count != (uint64_t)t->count)
        return eb_set_error(EB_ERR_INVALID_ARGUMENT,
                            "input '%.64s' has %lld elements, got %zu", t->name,
                            (long long)t->count, count);
    if (!data) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_session_set_input: data is NULL");
    memcpy(s->arena + t->arena_offset, data, count * sizeof(float));
    return EB_OK;
}

eb_status eb_session_run(eb_session *s) {
    if (!s) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_session_run: session is NULL");
    return eb_session_run_ops(s, s->model->n_nodes);
}

/* Runs ops [0, n_ops) (fine-tuning stops before the trainable layer). */
eb_status eb_session_run_ops(eb_session *s, int n_ops) {
    const eb_model *m = s->model;
    if (n_ops < 0 || n_ops > m->n_nodes) n_ops = m->n_nodes;
    reset_output_shapes(s);
    eb_exec *ex = &s->ex;
    ex->session = s;
    ex->arena = s->arena;
    ex->scratch = s->scratch;
    ex->scratch_stride = m->scratch_stride;
    ex->threads = s->threads;
    ex->pool = s->pool;
    for (int i = 0; i < n_ops; i++) {
        const eb_node *node = &m->nodes[i];
        ex->node = node;
        ex->failed = 0;
        ex->fail_msg[0] = '\0';
        eb_status st = m->kernels[i]->run(node, ex);
        if (st == EB_OK && ex->failed) st = EB_ERR_RUNTIME;
        if (st != EB_OK) {
            ex->node = NULL;
            return eb_set_error(st, "op '%.64s' (%s) failed while running: %s", node->name,
                                eb_op_type_name(node->type),
                                ex->fail_msg[0] ? ex->fail_msg : eb_status_name(st));
        }
    }
    ex->node = NULL;
    return EB_OK;
}

eb_status eb_session_get_output(eb_session *s, int index, const float **data, size_t *count) {
    if (!s) return eb_set_error(EB_ERR_INVALID_ARGUMENT, "eb_session_get_output: session is NULL");
    const eb_model *m = s->model;
    if (index < 0 || index >= m->n_outputs)
        return eb_set_error(EB_ERR_INVALID_ARGUMENT,
                            "eb_session_get_output: output index %d out of range (%d outputs)",
                            index, m->n_outputs);
    const eb_tensor *t = &m->tensors[m->outputs[index]];
    int64_t n = 1;
    for (int d = 0; d < s->out_ndim[index]; d++) n *= s->out_dims[index][d];
    if (data) *data = (const float *)(const void *)(s->arena + t->arena_offset);
    if (count) *count = (size_t)n;
    return EB_OK;
}

int eb_session_output_shape(const eb_session *s, int index, int64_t dims[EB_MAX_DIMS]) {
    if (!s || index < 0 || index >= s->model->n_outputs) return -1;
    if (dims)
        for (int d = 0; d < s->out_ndim[index]; d++) dims[d] = s->out_dims[index][d];
    return s->out_ndim[index];
}

/* ---- services for kernels (op.h) --------------------------------------------------------- */

float *eb_data(eb_exec *ex, const eb_tensor *t) {
    if (!t) return NULL;
    if (t->is_constant) return (float *)(uintptr_t)t->const_data; /* kernels never write it */
    if (!ex || !ex->arena) return NULL;
    return (float *)(void *)(ex->arena + t->arena_offset);
}

void *eb_scratch(eb_exec *ex, int thread) {
    if (!ex || !ex->scratch || thread < 0 || thread >= ex->threads) return NULL;
    return ex->scratch + (size_t)thread * ex->scratch_stride;
}

int eb_num_threads(const eb_exec *ex) { return ex && ex->threads > 0 ? ex->threads : 1; }

void eb_parallel_for(eb_exec *ex, int64_t n, eb_range_fn fn, void *ctx) {
    eb_pool_run(ex ? ex->pool : NULL, n, fn, ctx);
}

static void exec_fail(eb_exec *ex, const char *msg) {
    if (ex->failed) return;
    ex->failed = 1;
    snprintf(ex->fail_msg, sizeof ex->fail_msg, "%s", msg);
}

void eb_exec_fail(eb_exec *ex, const char *fmt, ...) {
    char msg[sizeof ex->fail_msg];
    va_list ap;
    if (!ex) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    exec_fail(ex, msg);
}

void eb_set_output_shape(eb_exec *ex, const eb_node *node, int output, int ndim,
                         const int64_t *dims) {
    if (!ex || !ex->session) return;
    if (!node || node != ex->node || output < 0 || output >= node->n_outputs) {
        exec_fail(ex, "eb_set_output_shape: bad node or output index");
        return;
    }
    if (ndim < 0 || ndim > EB_MAX_DIMS || (ndim > 0 && !dims)) {
        exec_fail(ex, "eb_set_output_shape: bad ndim");
        return;
    }
    const eb_tensor *t = node->outputs[output];
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 0 || (dims[d] > 0 && n > t->count / dims[d])) {
            exec_fail(ex, "eb_set_output_shape: shape exceeds the declared output");
            return;
        }
        n *= dims[d];
    }
    if (n > t->count) {
        exec_fail(ex, "eb_set_output_shape: shape exceeds the declared output");
        return;
    }
    const eb_model *m = ex->session->model;
    int slot = m->tensor_output_slot[t->index];
    if (slot < 0) return; /* not a model output: nothing to report */
    eb_session *s = ex->session;
    s->out_ndim[slot] = ndim;
    memset(s->out_dims[slot], 0, sizeof s->out_dims[slot]);
    for (int d = 0; d < ndim; d++) s->out_dims[slot][d] = dims[d];
}
