/* Softmax along `axis` (default 1, negative counts from the end), as Caffe computes it:
 * subtract the maximum along the axis, exponentiate, divide by the sum.
 *
 * Viewed as (outer, dim, inner). inner == 1: each row of `dim` values is contiguous. Else the
 * inner positions are processed in blocks of SM_BLOCK with per-position max / sum vectors in
 * per-thread scratch, so the loops over a block are contiguous. Sums are accumulated in double,
 * in axis order, per position; each position is computed by one thread, so any thread count
 * gives the same bits. The max propagates NaN like NumPy's.
 */
#include "ops_common.h"

#define SM_BLOCK 512

typedef struct sm_params {
    int64_t outer, dim, inner, blocks; /* blocks: inner split in SM_BLOCK pieces */
} sm_params;

typedef struct sm_ctx {
    const sm_params *p;
    const float *x;
    float *y;
    eb_exec *ex;
} sm_ctx;

static void sm_rows(const sm_ctx *c, int64_t begin, int64_t end)
{
    const int64_t dim = c->p->dim;
    for (int64_t r = begin; r < end; r++) {
        const float *restrict x = c->x + r * dim;
        float *restrict y = c->y + r * dim;
        /* max in EBO_LANES lanes (the max does not depend on the order, NaN included) */
        float lane[EBO_LANES];
        for (int l = 0; l < EBO_LANES; l++)
            lane[l] = x[0];
        int64_t i = 0, nv = dim - dim % EBO_LANES;
        for (; i < nv; i += EBO_LANES)
            for (int l = 0; l < EBO_LANES; l++) {
                float v = x[i + l];
                lane[l] = (v > lane[l] || v != v) ? v : lane[l];
            }
        for (; i < dim; i++) {
            float v = x[i];
            lane[0] = (v > lane[0] || v != v) ? v : lane[0];
        }
        float m = lane[0];
        for (int l = 1; l < EBO_LANES; l++)
            m = (lane[l] > m || lane[l] != lane[l]) ? lane[l] : m;
        for (i = 0; i < dim; i++)
            y[i] = expf(x[i] - m);
        const float s = (float)ebo_sum_op(y, dim, 0, 0.0f);
        for (i = 0; i < dim; i++)
            y[i] = y[i] / s;
    }
}

static void sm_blocks(const sm_ctx *c, int64_t begin, int64_t end, int thread)
{
    const int64_t dim = c->p->dim, inner = c->p->inner, blocks = c->p->blocks;
    double *restrict sum = (double *)eb_scratch(c->ex, thread);
    float *restrict mx = (float *)(sum + SM_BLOCK);
    for (int64_t it = begin; it < end; it++) {
        int64_t o = it / blocks, j0 = (it - o * blocks) * SM_BLOCK;
        int64_t n = inner - j0 < SM_BLOCK ? inner - j0 : SM_BLOCK;
        const float *restrict x = c->x + o * dim * inner + j0;
        float *restrict y = c->y + o * dim * inner + j0;
        for (int64_t j = 0; j < n; j++)
            mx[j] = x[j];
        for (int64_t d = 1; d < dim; d++) {
            const float *restrict xd = x + d * inner;
            for (int64_t j = 0; j < n; j++) {
                float v = xd[j];
                mx[j] = (v > mx[j] || v != v) ? v : mx[j];
            }
        }
        for (int64_t j = 0; j < n; j++)
            sum[j] = 0.0;
        for (int64_t d = 0; d < dim; d++) {
            const float *restrict xd = x + d * inner;
            float *restrict yd = y + d * inner;
            for (int64_t j = 0; j < n; j++) {
                float e = expf(xd[j] - mx[j]);
                yd[j] = e;
                sum[j] += (double)e;
            }
        }
        for (int64_t j = 0; j < n; j++)
            mx[j] = (float)sum[j];
        for (int64_t d = 0; d < dim; d++) {
            float *restrict yd = y + d * inner;
            for (int64_t j = 0; j < n; j++)
                yd[j] = yd[j] / mx[j];
        }
    }
}

static void sm_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const sm_ctx *c = (const sm_ctx *)vctx;
    if (c->p->inner == 1)
        sm_rows(c, begin, end);
    else
        sm_blocks(c, begin, end, thread);
}

static eb_status sm_run(const eb_node *node, eb_exec *ex)
{
    sm_ctx c;
    c.p = (const sm_params *)node->params;
    c.x = eb_data(ex, node->inputs[0]);
    c.y = eb_data(ex, node->outputs[0]);
    c.ex = ex;
    if (c.p->inner == 1)
        ebo_parallel(ex, c.p->outer, 20 * c.p->dim, sm_range, &c);
    else
        ebo_parallel(ex, c.p->outer * c.p->blocks,
                     20 * c.p->dim * (c.p->inner < SM_BLOCK ? c.p->inner : SM_BLOCK), sm_range,
                     &c);
    return EB_OK;
}

static eb_status sm_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    int64_t axis = 1;
    int a;
    sm_params p;
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 0)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = ebo_outputs_like_input(node, err)) != EB_OK ||
        (st = eb_attr_int(node, "axis", 1, &axis, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0];
    if (!ebo_axis(axis, x->ndim, &a))
        return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range for a %d-d input",
                            (long long)axis, x->ndim);
    p.outer = ebo_count(x->dims, 0, a);
    p.dim = x->dims[a];
    p.inner = ebo_count(x->dims, a + 1, x->ndim);
    p.blocks = (p.inner + SM_BLOCK - 1) / SM_BLOCK;
    sm_params *out = (sm_params *)malloc(sizeof *out);
    if (!out)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    *out = p;
    node->params = out;
    node->scratch_bytes = p.inner == 1 ? 0 : SM_BLOCK * (sizeof(double) + sizeof(float));
    return EB_OK;
}

const eb_op_kernel eb_kernel_Softmax = {"Softmax", sm_prepare, sm_run};
