/* BatchNorm (inference, global statistics), as edgebrew/ir/ops/normalization.py:
 *
 *   blobs: mean (C,), variance (C,), moving-average factor (1,)
 *   f = factor[0] == 0 ? 0 : 1 / factor[0];  mean_c = f * mean[c];  std_c = sqrt(f * var[c] + eps)
 *   y = (x - mean_c) / std_c,   channels on axis 1, any rank >= 2.
 *
 * All in float32, in the reference's order. In place: y may be x's memory (same-index loop).
 */
#include "ops_common.h"

typedef struct bn_params {
    float eps;
    int64_t channels, inner;
} bn_params;

typedef struct bn_ctx {
    const bn_params *p;
    const float *x, *mean, *var;
    float *y;
    float f;
} bn_ctx;

static void bn_row(const float *x, float *y, int64_t n, float mean, float std)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] - mean) / std;
}

static void bn_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const bn_ctx *c = (const bn_ctx *)vctx;
    const int64_t inner = c->p->inner, channels = c->p->channels;
    (void)thread;
    int64_t i = begin;
    while (i < end) {
        int64_t row = i / inner, off = i - row * inner;
        int64_t len = inner - off;
        if (len > end - i)
            len = end - i;
        int64_t ch = row % channels;
        float mean = c->f * c->mean[ch];
        float std = sqrtf(c->f * c->var[ch] + c->p->eps);
        bn_row(c->x + i, c->y + i, len, mean, std);
        i += len;
    }
}

static eb_status bn_run(const eb_node *node, eb_exec *ex)
{
    bn_ctx c;
    c.p = (const bn_params *)node->params;
    c.x = eb_data(ex, node->inputs[0]);
    c.y = eb_data(ex, node->outputs[0]);
    c.mean = eb_data(ex, node->weights[0]);
    c.var = eb_data(ex, node->weights[1]);
    float f0 = eb_data(ex, node->weights[2])[0];
    c.f = f0 == 0.0f ? 0.0f : 1.0f / f0;
    ebo_parallel(ex, node->inputs[0]->count, 2, bn_range, &c);
    return EB_OK;
}

static eb_status bn_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    bn_params p;
    memset(&p, 0, sizeof p);
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 3)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = ebo_outputs_like_input(node, err)) != EB_OK ||
        (st = ebo_attr_f32(node, "eps", 1e-5, &p.eps, NULL, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0];
    if (x->ndim < 2)
        return eb_node_fail(node, err, EBO_INVALID, "needs at least 2 axes (N, C, ...), got %d",
                            x->ndim);
    p.channels = x->dims[1];
    p.inner = ebo_count(x->dims, 2, x->ndim);
    const int64_t one = 1;
    if ((st = ebo_expect_shape(node, err, node->weights[0], "weight", 0, 1, &p.channels)) !=
            EB_OK ||
        (st = ebo_expect_shape(node, err, node->weights[1], "weight", 1, 1, &p.channels)) !=
            EB_OK ||
        (st = ebo_expect_shape(node, err, node->weights[2], "weight", 2, 1, &one)) != EB_OK)
        return st;
    bn_params *out = (bn_params *)malloc(sizeof *out);
    if (!out)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    *out = p;
    node->params = out;
    node->scratch_bytes = 0;
    return EB_OK;
}

const eb_op_kernel eb_kernel_BatchNorm = {"BatchNorm", bn_prepare, bn_run};
