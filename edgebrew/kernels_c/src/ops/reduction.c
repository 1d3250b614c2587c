/* Reduction, as edgebrew/ir/ops/tensor_ops.py (Caffe's ReductionLayer): every axis from `axis`
 * on is reduced; the output keeps the leading axes (axis 0 gives a 0-d tensor).
 *
 *   SUM: sum(x)   ASUM: sum(|x|)   SUMSQ: sum(x^2)   MEAN: sum(x) * (coeff / count)
 *   then y = sum * coeff (skipped when coeff is 1), coeff rounded to float32.
 *
 * Sums are accumulated in double in a fixed order (ebo_sum_op); one thread per output value.
 */
#include "ops_common.h"

enum { RED_SUM = 0, RED_ASUM = 1, RED_SUMSQ = 2, RED_MEAN = 3 };

typedef struct red_params {
    int op;
    float coeff;
    int64_t rows, dim;
} red_params;

typedef struct red_ctx {
    const red_params *p;
    const float *x;
    float *y;
} red_ctx;

static void red_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const red_ctx *c = (const red_ctx *)vctx;
    const red_params *p = c->p;
    const int sum_op = p->op == RED_MEAN ? 0 : p->op;
    (void)thread;
    for (int64_t r = begin; r < end; r++) {
        float s = (float)ebo_sum_op(c->x + r * p->dim, p->dim, sum_op, 0.0f);
        c->y[r] = p->coeff != 1.0f ? s * p->coeff : s;
    }
}

static eb_status red_run(const eb_node *node, eb_exec *ex)
{
    red_ctx c;
    c.p = (const red_params *)node->params;
    c.x = eb_data(ex, node->inputs[0]);
    c.y = eb_data(ex, node->outputs[0]);
    ebo_parallel(ex, c.p->rows, c.p->dim, red_range, &c);
    return EB_OK;
}

static eb_status red_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    red_params p;
    const char *opname = NULL;
    int64_t axis_attr = 0;
    int axis;
    memset(&p, 0, sizeof p);
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 0)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = eb_attr_string(node, "operation", "SUM", &opname, err)) != EB_OK ||
        (st = eb_attr_int(node, "axis", 0, &axis_attr, err)) != EB_OK ||
        (st = ebo_attr_f32(node, "coeff", 1.0, &p.coeff, NULL, err)) != EB_OK)
        return st;
    if (strcmp(opname, "SUM") == 0)
        p.op = RED_SUM;
    else if (strcmp(opname, "ASUM") == 0)
        p.op = RED_ASUM;
    else if (strcmp(opname, "SUMSQ") == 0)
        p.op = RED_SUMSQ;
    else if (strcmp(opname, "MEAN") == 0)
        p.op = RED_MEAN;
    else
        return eb_node_fail(node, err, EBO_INVALID, "unknown operation '%.64s'", opname);
    const eb_tensor *x = node->inputs[0];
    if (!ebo_axis(axis_attr, x->ndim, &axis))
        return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range for a %d-d input",
                            (long long)axis_attr, x->ndim);
    if ((st = ebo_expect_shape(node, err, node->outputs[0], "output", 0, axis, x->dims)) != EB_OK)
        return st;
    p.rows = ebo_count(x->dims, 0, axis);
    p.dim = x->count / p.rows;
    if (p.op == RED_MEAN)
        p.coeff = p.coeff / (float)p.dim;
    red_params *o = (red_params *)malloc(sizeof *o);
    if (!o)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    *o = p;
    node->params = o;
    node->scratch_bytes = 0;
    return EB_OK;
}

const eb_op_kernel eb_kernel_Reduction = {"Reduction", red_prepare, red_run};
