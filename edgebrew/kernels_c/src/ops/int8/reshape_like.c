/* int8 Flatten, Reshape and Dropout: the bytes unchanged (int8_reference's pass-through),
 * outputs on the input's grid. Shapes and attributes are checked by the float kernel's rules
 * (eb_q_check_like_float); run() copies, or does nothing when the planner aliased the two. */
#include "int8_common.h"


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

static eb_status pass_run(const eb_node *node, eb_exec *ex)
{
    ebo_copy_parallel(ex, eb_data_raw(ex, node->outputs[0]), eb_data_raw(ex, node->inputs[0]),
                      node->inputs[0]->count);
    return EB_OK;
}

const eb_op_kernel eb_int8_kernel_Flatten = {"Flatten", pass_prepare, pass_run};
const eb_op_kernel eb_int8_kernel_Reshape = {"Reshape", pass_prepare, pass_run};
const eb_op_kernel eb_int8_kernel_Dropout = {"Dropout", pass_prepare, pass_run};
