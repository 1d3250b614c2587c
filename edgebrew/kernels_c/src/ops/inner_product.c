/* InnerProduct (Caffe's InnerProductLayer): y[M x N] = x[M x K] W^T (+ bias).
 *
 * Attributes: num_output (N), bias_term, axis (first flattened axis, negative from the end),
 * transpose (W stored (K, N) instead of (N, K)). M = prod(shape[:axis]), K = prod(shape[axis:]),
 * output shape[:axis] + (N,).
 *
 * Few rows (M < 4, e.g. batch 1): one GEMV per row, the weights streamed once per row: row dot
 * products for (N, K) weights, sums of scaled rows for (K, N). More rows: a GEMM with the
 * weights as B (transposed packing for (N, K)). Threads split the outputs into column blocks
 * (and, for many rows, row blocks); each output's arithmetic does not depend on the split.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_geometry.h"
#include "fused_activation.h"
#include "kernels/kernels.h"
#include "op.h"

enum { IP_GEMV_MAX_ROWS = 3, IP_COL_BLOCK = 192, IP_ROW_BLOCK = 240 };

typedef struct ip_params {
    int64_t m, k, n;
    int transpose, bias;
    int64_t col_block, row_block;
    size_t work_bytes;
    const eb_kernel_table *kt;
    ebo_fused_act act;          /* fused activation (optimizer) */
    int64_t act_channels, act_inner; /* output axis 1 and the values per channel after it */
} ip_params;

static eb_status ip_prepare(eb_node *node, eb_error *err)
{
    eb_status s;
    int64_t num_output, axis;
    int bias = 1, transpose = 0;
    if ((s = eb_attr_int(node, "num_output", 0, &num_output, err)) != EB_OK) return s;
    if (!eb_attr_has(node, "num_output"))
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "attribute 'num_output' is required");
    if ((s = eb_read_bool(node, "bias_term", 1, &bias, err)) != EB_OK) return s;
    if ((s = eb_attr_int(node, "axis", 1, &axis, err)) != EB_OK) return s;
    if ((s = eb_read_bool(node, "transpose", 0, &transpose, err)) != EB_OK) return s;
    const int extra = ebo_fused_act_extra_weights(node) > 0;
    if ((s = eb_check_counts(node, 1, 1, (bias ? 2 : 1) + extra, err)) != EB_OK) return s;
    if (num_output < 1 || num_output > EB_MAX_TENSOR_ELEMS)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "num_output %lld out of range",
                            (long long)num_output);
    const eb_tensor *in = node->inputs[0];
    if (in->dtype != EB_FLOAT32)
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED, "input '%s' is not float32", in->name);
    const int nd = in->ndim;
    if (axis < -nd || axis >= nd)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "axis %lld out of range for a %d-d input", (long long)axis, nd);
    const int ax = (int)(axis < 0 ? axis + nd : axis);
    int64_t m = 1, k = 1;
    for (int i = 0; i < ax; i++) m *= in->dims[i];
    for (int i = ax; i < nd; i++) k *= in->dims[i]; /* both <= count <= 2^40 */
    const int64_t n = num_output;
    int64_t odims[EB_MAX_DIMS];
    for (int i = 0; i < ax; i++) odims[i] = in->dims[i];
    odims[ax] = n;
    if ((s = eb_check_shape(node, node->outputs[0], "output", ax + 1, odims, err)) != EB_OK) return s;
    const int64_t wdims[2] = {transpose ? k : n, transpose ? n : k};
    if ((s = eb_check_shape(node, node->weights[0], "weight", 2, wdims, err)) != EB_OK) return s;
    if (bias && (s = eb_check_shape(node, node->weights[1], "bias", 1, &n, err)) != EB_OK) return s;

    ebo_fused_act act;
    const int64_t act_channels = ax + 1 >= 2 ? odims[1] : 1;
    const int64_t act_inner = ax + 1 >= 2 ? ebo_count(odims, 2, ax + 1) : 1;
    if ((s = ebo_fused_act_prepare(node, err, act_channels, &act)) != EB_OK) return s;

    ip_params *p = malloc(sizeof(ip_params));
    if (!p) return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "no memory for parameters");
    memset(p, 0, sizeof(*p));
    p->act = act, p->act_channels = act_channels, p->act_inner = act_inner;
    p->m = m, p->k = k, p->n = n, p->transpose = transpose, p->bias = bias;
    p->kt = eb_kernels();
    if (m <= IP_GEMV_MAX_ROWS) {
        p->col_block = 256;
        p->row_block = m;
    } else {
        p->col_block = IP_COL_BLOCK;
        p->row_block = m < IP_ROW_BLOCK ? m : IP_ROW_BLOCK;
        p->work_bytes = eb_align64(p->kt->sgemm_work_bytes(p->row_block, p->col_block, k));
    }
    node->params = p;
    node->scratch_bytes = p->work_bytes;
    return EB_OK;
}

typedef struct ip_ctx {
    const ip_params *p;
    eb_exec *ex;
    const float *x, *w, *bias;
    float *y;
    int64_t n_col_blocks;
} ip_ctx;

static void ip_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const ip_ctx *cx = vctx;
    const ip_params *p = cx->p;
    const int64_t k = p->k, n = p->n;
    for (int64_t it = begin; it < end; it++) {
        const int64_t cb = it % cx->n_col_blocks, rb = it / cx->n_col_blocks;
        const int64_t n0 = cb * p->col_block, nb = n - n0 < p->col_block ? n - n0 : p->col_block;
        const int64_t i0 = rb * p->row_block, mb = p->m - i0 < p->row_block ? p->m - i0 : p->row_block;
        float *y = cx->y + i0 * n + n0;
        if (p->m <= IP_GEMV_MAX_ROWS) {
            for (int64_t i = 0; i < mb; i++) {
                const float *xi = cx->x + (i0 + i) * k;
                if (p->transpose) /* W (K x N): y[n0:n0+nb] = W[:, n0:n0+nb]^T x */
                    p->kt->sgemv(1, k, nb, cx->w + n0, n, xi, y + i * n, 0);
                else /* W (N x K): rows n0.. dot x */
                    p->kt->sgemv(0, nb, k, cx->w + n0 * k, k, xi, y + i * n, 0);
            }
        } else {
            const float *b = p->transpose ? cx->w + n0 : cx->w + n0 * k;
            p->kt->sgemm_ex(0, !p->transpose, mb, nb, k, cx->x + i0 * k, k, b,
                            p->transpose ? n : k, y, n, 0, eb_scratch(cx->ex, thread),
                            p->work_bytes);
        }
        if (cx->bias)
            for (int64_t i = 0; i < mb; i++)
                for (int64_t j = 0; j < nb; j++) y[i * n + j] += cx->bias[n0 + j];
        if (p->act.kind != EBO_ACT_NONE)
            for (int64_t i = 0; i < mb; i++)
                ebo_fused_act_apply_flat(&p->act, y + i * n, (i0 + i) * n + n0, nb,
                                         p->act_channels, p->act_inner);
    }
}

static eb_status ip_run(const eb_node *node, eb_exec *ex)
{
    const ip_params *p = node->params;
    ip_ctx cx;
    cx.p = p;
    cx.ex = ex;
    cx.x = eb_data(ex, node->inputs[0]);
    cx.y = eb_data(ex, node->outputs[0]);
    cx.w = eb_data(ex, node->weights[0]);
    cx.bias = p->bias ? eb_data(ex, node->weights[1]) : NULL;
    cx.n_col_blocks = (p->n + p->col_block - 1) / p->col_block;
    const int64_t n_row_blocks = (p->m + p->row_block - 1) / p->row_block;
    eb_parallel_for(ex, cx.n_col_blocks * n_row_blocks, ip_range, &cx);
    return EB_OK;
}

const eb_op_kernel eb_kernel_InnerProduct = {"InnerProduct", ip_prepare, ip_run};
