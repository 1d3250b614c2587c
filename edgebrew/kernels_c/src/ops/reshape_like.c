/* Flatten and Reshape, as edgebrew/ir/ops/tensor_ops.py: the data is unchanged, only the shape
 * differs. run() copies the input to the output, or does nothing when the memory planner gave
 * them the same memory.
 *
 * Flatten: axes [axis, end_axis] (both canonical) merged into one; end_axis may be axis - 1,
 *          which inserts a unit axis.
 * Reshape: `shape` replaces input axes [start, end) with start = axis (negative: n + axis + 1)
 *          and end = start + num_axes (-1: to the last); 0 copies the input dim at the same
 *          position, one -1 is inferred; the element count is preserved.
 */
#include "ops_common.h"

static eb_status rs_run(const eb_node *node, eb_exec *ex)
{
    ebo_copy_parallel(ex, eb_data(ex, node->outputs[0]), eb_data(ex, node->inputs[0]),
                      node->inputs[0]->count * (int64_t)sizeof(float));
    return EB_OK;
}

static eb_status rs_finish(eb_node *node, eb_error *err, int ndim, const int64_t *dims)
{
    eb_status st = ebo_expect_shape(node, err, node->outputs[0], "output", 0, ndim, dims);
    if (st != EB_OK)
        return st;
    if (node->outputs[0]->count != node->inputs[0]->count)
        return eb_node_fail(node, err, EBO_INVALID, "output and input counts differ");
    node->params = NULL;
    node->scratch_bytes = 0;
    return EB_OK;
}

static eb_status flatten_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    int64_t axis_attr = 1, end_attr = -1;
    int start, end;
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 0)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = eb_attr_int(node, "axis", 1, &axis_attr, err)) != EB_OK ||
        (st = eb_attr_int(node, "end_axis", -1, &end_attr, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0];
    if (!ebo_axis(axis_attr, x->ndim, &start))
        return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range for a %d-d input",
                            (long long)axis_attr, x->ndim);
    if (!ebo_axis(end_attr, x->ndim, &end))
        return eb_node_fail(node, err, EBO_INVALID,
                            "end_axis %lld out of range for a %d-d input", (long long)end_attr,
                            x->ndim);
    if (end + 1 < start)
        return eb_node_fail(node, err, EBO_INVALID, "end_axis %lld comes before axis %lld",
                            (long long)end_attr, (long long)axis_attr);
    int64_t out[EB_MAX_DIMS + 1];
    int n = 0;
    for (int i = 0; i < start; i++)
        out[n++] = x->dims[i];
    out[n++] = ebo_count(x->dims, start, end + 1);
    for (int i = end + 1; i < x->ndim; i++)
        out[n++] = x->dims[i];
    if (n > EB_MAX_DIMS)
        return eb_node_fail(node, err, EBO_INVALID, "output would have %d axes, over %d", n,
                            EB_MAX_DIMS);
    return rs_finish(node, err, n, out);
}

static eb_status reshape_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    int64_t axis = 0, num_axes = -1;
    int64_t dims[EB_MAX_DIMS + 1];
    int n_dims = 0;
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 0)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = eb_attr_int(node, "axis", 0, &axis, err)) != EB_OK ||
        (st = eb_attr_int(node, "num_axes", -1, &num_axes, err)) != EB_OK ||
        (st = eb_attr_ints(node, "shape", dims, EB_MAX_DIMS, &n_dims, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0];
    const int n = x->ndim;
    int64_t start = axis >= 0 ? axis : n + axis + 1;
    if (start < 0 || start > n)
        return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range for a %d-d input",
                            (long long)axis, n);
    if (num_axes < -1)
        return eb_node_fail(node, err, EBO_INVALID,
                            "num_axes %lld must be >= 0, or -1 for all", (long long)num_axes);
    if (num_axes > n)
        return eb_node_fail(node, err, EBO_INVALID,
                            "axis %lld + num_axes %lld is out of range for a %d-d input",
                            (long long)axis, (long long)num_axes, n);
    int64_t end = num_axes == -1 ? n : start + num_axes;
    if (end > n)
        return eb_node_fail(node, err, EBO_INVALID,
                            "axis %lld + num_axes %lld is out of range for a %d-d input",
                            (long long)axis, (long long)num_axes, n);
    int infer = -1;
    for (int i = 0; i < n_dims; i++) {
        if (dims[i] < -1)
            return eb_node_fail(node, err, EBO_INVALID,
                                "shape has a negative dimension other than -1 (%lld)",
                                (long long)dims[i]);
        if (dims[i] == -1) {
            if (infer >= 0)
                return eb_node_fail(node, err, EBO_INVALID, "shape has more than one -1");
            infer = i;
        }
    }
    int out_n = (int)start + n_dims + (n - (int)end);
    if (out_n > EB_MAX_DIMS)
        return eb_node_fail(node, err, EBO_INVALID, "output would have %d axes, over %d", out_n,
                            EB_MAX_DIMS);
    int64_t out[EB_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < (int)start; i++)
        out[k++] = x->dims[i];
    for (int i = 0; i < n_dims; i++) {
        int64_t d = dims[i];
        if (d == 0) {
            if (start + i >= n)
                return eb_node_fail(node, err, EBO_INVALID,
                                    "shape has a 0 at position %d but the input has no axis "
                                    "%lld to copy",
                                    i, (long long)(start + i));
            d = x->dims[start + i];
        }
        out[k++] = d;
    }
    for (int i = (int)end; i < n; i++)
        out[k++] = x->dims[i];
    const int64_t total = x->count;
    /* products capped: any partial product over the input's count cannot fit */
    if (infer >= 0) {
        int pos = (int)start + infer;
        int64_t known = 1;
        for (int i = 0; i < out_n; i++) {
            if (i == pos)
                continue;
            if (out[i] > total || known > total / (out[i] > 0 ? out[i] : 1)) {
                known = -1;
                break;
            }
            known *= out[i];
        }
        if (known <= 0 || total % known)
            return eb_node_fail(node, err, EBO_INVALID,
                                "input count %lld is not divisible by the product of the other "
                                "dimensions of the new shape",
                                (long long)total);
        out[pos] = total / known;
    }
    int64_t prod = 1;
    for (int i = 0; i < out_n; i++) {
        if (out[i] <= 0 || out[i] > total || prod > total / out[i]) {
            prod = -1;
            break;
        }
        prod *= out[i];
    }
    if (prod != total)
        return eb_node_fail(node, err, EBO_INVALID,
                            "the new shape does not have the input's %lld elements",
                            (long long)total);
    return rs_finish(node, err, out_n, out);
}

const eb_op_kernel eb_kernel_Flatten = {"Flatten", flatten_prepare, rs_run};
const eb_op_kernel eb_kernel_Reshape = {"Reshape", reshape_prepare, rs_run};
