/* int8 ReLU (negative_slope 0): out = max(x, zero point), output on the input's grid. */
#include "int8_common.h"

typedef struct relu_ctx {
    const int8_t *x;
    int8_t *y;
    int8_t zp;
} relu_ctx;

static eb_status relu_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    double slope = 0;
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 0)) != EB_OK ||
        (st = eb_q_expect_all_int8(node, err)) != EB_OK ||
        (st = eb_q_outputs_same_grid(node, err)) != EB_OK ||
        (st = eb_q_check_like_float(node, err)) != EB_OK ||
        (st = eb_attr_float(node, "negative_slope", 0.0, &slope, err)) != EB_OK)
        return st;
    if (slope != 0.0)
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                            "leaky ReLU (negative_slope %g) has no int8 kernel", slope);
    if (node->outputs[0]->count != node->inputs[0]->count)
        return eb_node_fail(node, err, EBO_INVALID, "output and input counts differ");
    return EB_OK;
}

static void relu_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const relu_ctx *c = (const relu_ctx *)vctx;
    const int8_t zp = c->zp;
    (void)thread;
    for (int64_t i = begin; i < end; i++)
        c->y[i] = c->x[i] > zp ? c->x[i] : zp;
}

static eb_status relu_run(const eb_node *node, eb_exec *ex)
{
    relu_ctx c;
    c.x = (const int8_t *)eb_data_raw(ex, node->inputs[0]);
    c.y = (int8_t *)eb_data_raw(ex, node->outputs[0]);
    c.zp = (int8_t)node->inputs[0]->quant_zero_point[0];
    ebo_parallel(ex, node->inputs[0]->count, 1, relu_range, &c);
    return EB_OK;
}

const eb_op_kernel eb_int8_kernel_ReLU = {"ReLU", relu_prepare, relu_run};
