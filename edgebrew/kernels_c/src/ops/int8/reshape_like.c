/* int8 Flatten, Reshape and Dropout: the bytes unchanged (int8_reference's pass-through),
 * outputs on the input's grid. Shapes and attributes are checked by the float kernel's rules
 * (eb_q_check_like_float); run() copies, or does nothing when the planner aliased the two. */
#include "int8_common.h"

#define Q_CHUNK ((int64_t)1 << 18)

static eb_status pass_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 0)) != EB_OK ||
        (st = eb_q_expect_all_int8(node, err)) != EB_OK ||
        (st = eb_q_outputs_same_grid(node, err)) != EB_OK ||
        (st = eb_q_check_like_float(node, err)) != EB_OK)
        return st;
    if (node->outputs[0]->count != node->inputs[0]->count)
        return eb_node_fail(node, err, EBO_INVALID, "output and input counts differ");
    node->params = NULL;
    node->scratch_bytes = 0;
    return EB_OK;
}

typedef struct pass_ctx {
    const int8_t *x;
    int8_t *y;
    int64_t count;
} pass_ctx;

static void pass_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const pass_ctx *c = (const pass_ctx *)vctx;
    (void)thread;
    int64_t j0 = begin * Q_CHUNK, j1 = end * Q_CHUNK;
    if (j1 > c->count)
        j1 = c->count;
    memcpy(c->y + j0, c->x + j0, (size_t)(j1 - j0));
}

static eb_status pass_run(const eb_node *node, eb_exec *ex)
{
    pass_ctx c;
    c.x = (const int8_t *)eb_data_raw(ex, node->inputs[0]);
    c.y = (int8_t *)eb_data_raw(ex, node->outputs[0]);
    c.count = node->inputs[0]->count;
    if (c.x != c.y)
        ebo_parallel(ex, (c.count + Q_CHUNK - 1) / Q_CHUNK, Q_CHUNK, pass_range, &c);
    return EB_OK;
}

const eb_op_kernel eb_int8_kernel_Flatten = {"Flatten", pass_prepare, pass_run};
const eb_op_kernel eb_int8_kernel_Reshape = {"Reshape", pass_prepare, pass_run};
const eb_op_kernel eb_int8_kernel_Dropout = {"Dropout", pass_prepare, pass_run};
