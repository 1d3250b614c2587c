/* Helpers shared by the op files in src/ops/ (header-only: everything is static inline).
 *
 * Validation helpers for prepare() (counts, dtypes, shapes, axes, each failing with
 * EB_ERR_INVALID_BUNDLE and a message naming the problem), summation helpers whose order is
 * fixed (so 1 and N threads give bit-identical results), and ebo_parallel(), which runs small
 * loops inline and splits big ones with eb_parallel_for().
 */
#ifndef EB_OPS_COMMON_H
#define EB_OPS_COMMON_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

#define EBO_INVALID EB_ERR_INVALID_BUNDLE

/* Elementary operations below which a loop runs on the calling thread. */
#define EBO_PAR_MIN_WORK ((int64_t)32768)

/* Runs fn over [0, n): inline when the work (n items of about `cost` elementary operations)
 * is small or there is one thread, else split over the session's workers. Every kernel
 * computes each item independently of how [0, n) is partitioned. */
static inline void ebo_parallel(eb_exec *ex, int64_t n, int64_t cost, eb_range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (cost < 1)
        cost = 1;
    if (n == 1 || eb_num_threads(ex) <= 1 || n < (EBO_PAR_MIN_WORK + cost - 1) / cost)
        fn(ctx, 0, n, 0);
    else
        eb_parallel_for(ex, n, fn, ctx);
}

/* Copies `bytes` bytes from src to dst (distinct, non-overlapping buffers) in 256 KiB chunks
 * over the workers: the data movement of the reshaping ops, float or int8 alike. */
typedef struct ebo_copy_ctx {
    const char *src;
    char *dst;
    int64_t bytes;
} ebo_copy_ctx;

#define EBO_COPY_CHUNK ((int64_t)1 << 18)

static inline void ebo_copy_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const ebo_copy_ctx *c = (const ebo_copy_ctx *)vctx;
    (void)thread;
    int64_t j0 = begin * EBO_COPY_CHUNK, j1 = end * EBO_COPY_CHUNK;
    if (j1 > c->bytes)
        j1 = c->bytes;
    memcpy(c->dst + j0, c->src + j0, (size_t)(j1 - j0));
}

static inline void ebo_copy_parallel(eb_exec *ex, void *dst, const void *src, int64_t bytes)
{
    if (dst == src)       /* the memory plan put the output over the input */
        return;
    ebo_copy_ctx c = {(const char *)src, (char *)dst, bytes};
    ebo_parallel(ex, (bytes + EBO_COPY_CHUNK - 1) / EBO_COPY_CHUNK, EBO_COPY_CHUNK,
                 ebo_copy_range, &c);
}

/* Product of dims[a..b) (a verified tensor's sub-products cannot overflow). */
static inline int64_t ebo_count(const int64_t *dims, int a, int b)
{
    int64_t c = 1;
    for (int i = a; i < b; i++)
        c *= dims[i];
    return c;
}

/* "(1, 3, 224, 224)" into buf. */
static inline const char *ebo_shape_str(char *buf, size_t size, int ndim, const int64_t *dims)
{
    size_t used = 0;
    if (size == 0)
        return buf;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "",
                                 (long long)dims[i]);
    if (ndim == 1 && used < size)
        used += (size_t)snprintf(buf + used, size - used, ",");
    if (used < size)
        snprintf(buf + used, size - used, ")");
    return buf;
}

/* Caffe's CanonicalAxisIndex: -ndim <= axis < ndim; 0 if out of range. */
static inline int ebo_axis(int64_t axis, int ndim, int *out)
{
    if (axis < -(int64_t)ndim || axis >= (int64_t)ndim)
        return 0;
    *out = (int)(axis < 0 ? axis + ndim : axis);
    return 1;
}

/* Checks the numbers of inputs, outputs and weights (max_out < 0: no upper bound). */
static inline eb_status ebo_check_arity(eb_node *node, eb_error *err, int min_in, int max_in,
                                        int min_out, int max_out, int n_weights)
{
    if (node->n_inputs < min_in || node->n_inputs > max_in) {
        if (min_in == max_in)
            return eb_node_fail(node, err, EBO_INVALID, "takes %d input(s), got %d", min_in,
                                node->n_inputs);
        return eb_node_fail(node, err, EBO_INVALID, "takes %d to %d inputs, got %d", min_in,
                            max_in, node->n_inputs);
    }
    if (node->n_outputs < min_out || (max_out >= 0 && node->n_outputs > max_out)) {
        if (min_out == max_out)
            return eb_node_fail(node, err, EBO_INVALID, "has %d output(s), expected %d",
                                node->n_outputs, min_out);
        return eb_node_fail(node, err, EBO_INVALID, "has %d output(s), expected at least %d",
                            node->n_outputs, min_out);
    }
    if (node->n_weights != n_weights)
        return eb_node_fail(node, err, EBO_INVALID, "takes %d weight blob(s), has %d", n_weights,
                            node->n_weights);
    return EB_OK;
}

/* Every input, output and weight is float32; weights are constants with data. */
static inline eb_status ebo_check_float32(eb_node *node, eb_error *err)
{
    for (int r = 0; r < 3; r++) {
        int n = r == 0 ? node->n_inputs : r == 1 ? node->n_outputs : node->n_weights;
        const eb_tensor **ts = r == 0 ? node->inputs : r == 1 ? node->outputs : node->weights;
        const char *role = r == 0 ? "input" : r == 1 ? "output" : "weight";
        for (int i = 0; i < n; i++) {
            const eb_tensor *t = ts[i];
            if (t->dtype != EB_FLOAT32)
                return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                                    "%s %d '%s' has dtype %d; this op runs float32 only", role,
                                    i, t->name, (int)t->dtype);
            if (r == 2 && (!t->is_constant || t->const_data == NULL))
                return eb_node_fail(node, err, EBO_INVALID, "weight %d '%s' is not a constant",
                                    i, t->name);
            if (r < 2 && t->is_constant)
                return eb_node_fail(node, err, EBO_INVALID, "%s %d '%s' is a constant", role, i,
                                    t->name);
        }
    }
    return EB_OK;
}

static inline int ebo_shape_eq(const eb_tensor *t, int ndim, const int64_t *dims)
{
    if (t->ndim != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (t->dims[i] != dims[i])
            return 0;
    return 1;
}

/* Fails unless tensor t (e.g. "output 0") has exactly the shape (ndim, dims). */
static inline eb_status ebo_expect_shape(eb_node *node, eb_error *err, const eb_tensor *t,
                                         const char *role, int index, int ndim,
                                         const int64_t *dims)
{
    char want[200], got[200];
    if (ebo_shape_eq(t, ndim, dims))
        return EB_OK;
    return eb_node_fail(node, err, EBO_INVALID, "%s %d '%s' has shape %s, expected %s", role,
                        index, t->name, ebo_shape_str(got, sizeof got, t->ndim, t->dims),
                        ebo_shape_str(want, sizeof want, ndim, dims));
}

/* Every output has input 0's shape. */
static inline eb_status ebo_outputs_like_input(eb_node *node, eb_error *err)
{
    const eb_tensor *x = node->inputs[0];
    for (int i = 0; i < node->n_outputs; i++) {
        eb_status st = ebo_expect_shape(node, err, node->outputs[i], "output", i, x->ndim,
                                        x->dims);
        if (st != EB_OK)
            return st;
    }
    return EB_OK;
}

/* Reads a boolean attribute stored as INT (0/1). */
static inline eb_status ebo_attr_bool(const eb_node *node, const char *key, int dflt, int *out,
                                      eb_error *err)
{
    int64_t v = 0;
    eb_status st = eb_attr_int(node, key, dflt, &v, err);
    if (st != EB_OK)
        return st;
    if (v != 0 && v != 1)
        return eb_node_fail(node, err, EBO_INVALID, "attribute '%s' must be 0 or 1, got %lld",
                            key, (long long)v);
    *out = (int)v;
    return EB_OK;
}

/* A float attribute rounded to float32, as Caffe's Dtype params are. */
static inline eb_status ebo_attr_f32(const eb_node *node, const char *key, double dflt,
                                     float *out, double *raw, eb_error *err)
{
    double v = 0;
    eb_status st = eb_attr_float(node, key, dflt, &v, err);
    if (st != EB_OK)
        return st;
    *out = (float)v;
    if (raw)
        *raw = v;
    return EB_OK;
}

/* ---- summations in a fixed order (8 double lanes, then the lanes in order) ------------------ */
#define EBO_LANES 8

static inline double ebo_lanes_total(const double *acc)
{
    double s = 0.0;
    for (int l = 0; l < EBO_LANES; l++)
        s += acc[l];
    return s;
}

/* op: 0 sum, 1 sum of |x|, 2 sum of x^2, 3 sum of (x - c)^2 */
static inline double ebo_sum_op(const float *restrict x, int64_t n, int op, float c)
{
    double acc[EBO_LANES] = {0};
    int64_t i = 0, nv = n - n % EBO_LANES;
    switch (op) {
    case 0:
        for (; i < nv; i += EBO_LANES)
            for (int l = 0; l < EBO_LANES; l++)
                acc[l] += (double)x[i + l];
        break;
    case 1:
        for (; i < nv; i += EBO_LANES)
            for (int l = 0; l < EBO_LANES; l++)
                acc[l] += (double)fabsf(x[i + l]);
        break;
    case 2:
        for (; i < nv; i += EBO_LANES)
            for (int l = 0; l < EBO_LANES; l++) {
                double v = (double)x[i + l];
                acc[l] += v * v;
            }
        break;
    default:
        for (; i < nv; i += EBO_LANES)
            for (int l = 0; l < EBO_LANES; l++) {
                double v = (double)(x[i + l] - c);
                acc[l] += v * v;
            }
        break;
    }
    for (int l = 0; i < n; i++, l++) {
        double v = (double)(op == 3 ? x[i] - c : x[i]);
        acc[l] += op == 0 ? v : op == 1 ? fabs(v) : v * v;
    }
    return ebo_lanes_total(acc);
}

#endif /* EB_OPS_COMMON_H */
