/* int8 InnerProduct (int8_reference._inner_product), transpose false only:
 * acc[r, c] = b[c] + sum_k (x[r, k] - x_zp) W[c, k], out = clamp(out_zp + MBQM(acc, M_c),
 * activation range). M rows = prod(shape[:axis]), K = prod(shape[axis:]), output shape[:axis] +
 * (N,). Threads split the output neurons; each range stages a row of (x - zp) as int16 in its
 * scratch and takes dot products with the int8 weight rows (kernel table dot_s8s16). */
#include "../conv_geometry.h"
#include "kernels/kernels.h"
#include "weights_common.h"

typedef struct qip_params {
    int64_t rows, k, n;
    int32_t x_zp, y_zp, lo, hi;
    const eb_kernel_table *kt;
    eb_qmult mult[];
} qip_params;

static eb_status qip_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    int64_t num_output = 0, axis = 1;
    int bias = 1, transpose = 0;
    if ((st = eb_attr_int(node, "num_output", 0, &num_output, err)) != EB_OK ||
        (st = eb_attr_int(node, "axis", 1, &axis, err)) != EB_OK ||
        (st = eb_read_bool(node, "transpose", 0, &transpose, err)) != EB_OK ||
        (st = eb_read_bool(node, "bias_term", 1, &bias, err)) != EB_OK ||
        (st = eb_check_counts(node, 1, 1, bias ? 2 : 1, err)) != EB_OK ||
        (st = eb_q_expect_all_int8(node, err)) != EB_OK)
        return st;
    if (transpose)
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                            "int8 InnerProduct needs transpose false");
    const eb_tensor *x = node->inputs[0], *y = node->outputs[0];
    int ax;
    if (!ebo_axis(axis, x->ndim, &ax))
        return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range for a %d-d input",
                            (long long)axis, x->ndim);
    if (num_output < 1 || num_output > EB_MAX_TENSOR_ELEMS)
        return eb_node_fail(node, err, EBO_INVALID, "num_output %lld out of range",
                            (long long)num_output);
    const int64_t rows = ebo_count(x->dims, 0, ax), k = ebo_count(x->dims, ax, x->ndim);
    int64_t odims[EB_MAX_DIMS];
    for (int d = 0; d < ax; d++) odims[d] = x->dims[d];
    odims[ax] = num_output;
    if ((st = ebo_expect_shape(node, err, y, "output", 0, ax + 1, odims)) != EB_OK)
        return st;
    const int64_t wdims[2] = {num_output, k};
    if (!ebo_shape_eq(node->weights[0], 2, wdims))
        return ebo_expect_shape(node, err, node->weights[0], "weight", 0, 2, wdims);
    qip_params *p = (qip_params *)malloc(sizeof(qip_params) +
                                         (size_t)num_output * sizeof(eb_qmult));
    if (!p)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    if ((st = eb_q_prepare_weights(node, err, x, y, node->weights[0],
                                   bias ? node->weights[1] : NULL, num_output, k, p->mult)) !=
            EB_OK ||
        (st = eb_q_activation_range(node, err, y, &p->lo, &p->hi)) != EB_OK) {
        free(p);
        return st;
    }
    p->rows = rows, p->k = k, p->n = num_output;
    p->x_zp = x->quant_zero_point[0];
    p->y_zp = y->quant_zero_point[0];
    p->kt = eb_kernels();
    node->params = p;
    node->scratch_bytes = eb_align64((size_t)k * sizeof(int16_t));
    return EB_OK;
}

typedef struct qip_ctx {
    const qip_params *p;
    eb_exec *ex;
    const int8_t *x, *w;
    const int32_t *bias;
    int8_t *y;
} qip_ctx;

static void qip_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const qip_ctx *cx = (const qip_ctx *)vctx;
    const qip_params *p = cx->p;
    int16_t *xs = (int16_t *)eb_scratch(cx->ex, thread);
    for (int64_t r = 0; r < p->rows; r++) {
        const int8_t *xr = cx->x + r * p->k;
        for (int64_t i = 0; i < p->k; i++) xs[i] = (int16_t)(xr[i] - p->x_zp);
        int8_t *yr = cx->y + r * p->n;
        for (int64_t c = begin; c < end; c++) {
            const int32_t acc = p->kt->dot_s8s16(cx->w + c * p->k, xs, p->k);
            const int32_t v = eb_q_mbqm((int64_t)acc + (cx->bias ? cx->bias[c] : 0), p->mult[c]);
            yr[c] = (int8_t)eb_q_clamp((int64_t)p->y_zp + v, p->lo, p->hi);
        }
    }
}

static eb_status qip_run(const eb_node *node, eb_exec *ex)
{
    const qip_params *p = (const qip_params *)node->params;
    qip_ctx cx;
    cx.p = p;
    cx.ex = ex;
    cx.x = (const int8_t *)eb_data_raw(ex, node->inputs[0]);
    cx.y = (int8_t *)eb_data_raw(ex, node->outputs[0]);
    cx.w = (const int8_t *)eb_data_raw(ex, node->weights[0]);
    cx.bias = node->n_weights > 1 ? (const int32_t *)eb_data_raw(ex, node->weights[1]) : NULL;
    ebo_parallel(ex, p->n, p->rows * p->k, qip_range, &cx);
    return EB_OK;
}

const eb_op_kernel eb_int8_kernel_InnerProduct = {"InnerProduct", qip_prepare, qip_run};
