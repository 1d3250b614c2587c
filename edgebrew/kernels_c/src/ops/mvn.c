/* MVN (mean-variance normalization), as edgebrew/ir/ops/normalization.py:
 *
 * per (image, channel) — or per image when across_channels — subtract the mean; with
 * normalize_variance divide by sqrt(E[(x - mean)^2]) + eps. The input has 1 to 4 axes and the
 * output is its shape padded with 1s to 4 axes (Caffe's legacy N, C, H, W accessors).
 *
 * Same formulas as the reference (mean = sum / dim, var = sum((x - mean)^2) / dim,
 * std = sqrt(var) + eps, y = (x - mean) / std), computed in double with sums in a fixed order
 * and rounded to float32 at the end: when the mean is large against the spread (x - mean
 * cancels), float32 intermediates would lose the digits the float64 reference keeps. Each
 * group is computed by one thread, so results do not depend on the thread count.
 */
#include "ops_common.h"

typedef struct mvn_params {
    int normalize_variance;
    float eps;
    int64_t groups, dim;
} mvn_params;

typedef struct mvn_ctx {
    const mvn_params *p;
    const float *x;
    float *y;
} mvn_ctx;

static void mvn_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const mvn_ctx *c = (const mvn_ctx *)vctx;
    const int64_t dim = c->p->dim;
    const double inv_dim = 1.0 / (double)dim;
    (void)thread;
    for (int64_t g = begin; g < end; g++) {
        const float *restrict x = c->x + g * dim;
        float *restrict y = c->y + g * dim;
        const double mean = ebo_sum_op(x, dim, 0, 0.0f) * inv_dim;
        if (c->p->normalize_variance) {
            double acc[EBO_LANES] = {0};
            int64_t i = 0, nv = dim - dim % EBO_LANES;
            for (; i < nv; i += EBO_LANES)
                for (int l = 0; l < EBO_LANES; l++) {
                    double d = (double)x[i + l] - mean;
                    acc[l] += d * d;
                }
            for (int l = 0; i < dim; i++, l++) {
                double d = (double)x[i] - mean;
                acc[l] += d * d;
            }
            const double var = ebo_lanes_total(acc) * inv_dim;
            const double inv_std = 1.0 / (sqrt(var) + (double)c->p->eps);
            for (i = 0; i < dim; i++)
                y[i] = (float)(((double)x[i] - mean) * inv_std);
        } else {
            for (int64_t i = 0; i < dim; i++)
                y[i] = (float)((double)x[i] - mean);
        }
    }
}

static eb_status mvn_run(const eb_node *node, eb_exec *ex)
{
    mvn_ctx c;
    c.p = (const mvn_params *)node->params;
    c.x = eb_data(ex, node->inputs[0]);
    c.y = eb_data(ex, node->outputs[0]);
    ebo_parallel(ex, c.p->groups, 4 * c.p->dim, mvn_range, &c);
    return EB_OK;
}

static eb_status mvn_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    mvn_params p;
    int across = 0;
    memset(&p, 0, sizeof p);
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 0)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = ebo_attr_bool(node, "normalize_variance", 1, &p.normalize_variance, err)) !=
            EB_OK ||
        (st = ebo_attr_bool(node, "across_channels", 0, &across, err)) != EB_OK ||
        (st = ebo_attr_f32(node, "eps", 1e-9, &p.eps, NULL, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0];
    if (x->ndim < 1 || x->ndim > 4)
        return eb_node_fail(node, err, EBO_INVALID,
                            "Caffe's MVN handles inputs of 1 to 4 axes, got %d", x->ndim);
    int64_t d4[4] = {1, 1, 1, 1};
    for (int i = 0; i < x->ndim; i++)
        d4[i] = x->dims[i];
    if ((st = ebo_expect_shape(node, err, node->outputs[0], "output", 0, 4, d4)) != EB_OK)
        return st;
    p.groups = across ? d4[0] : d4[0] * d4[1];
    p.dim = x->count / p.groups;
    mvn_params *out = (mvn_params *)malloc(sizeof *out);
    if (!out)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    *out = p;
    node->params = out;
    node->scratch_bytes = 0;
    return EB_OK;
}

const eb_op_kernel eb_kernel_MVN = {"MVN", mvn_prepare, mvn_run};
