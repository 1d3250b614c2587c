/* Crop, as edgebrew/ir/ops/tensor_ops.py (Caffe's CropLayer): bottom 0 cropped to bottom 1's
 * size on every axis from `axis` on. One offset applies to every cropped axis, several give
 * one per cropped axis, none means 0. Offsets are non-negative (Caffe's are uint32) and the
 * window must fit: offset + out_dim <= in_dim. Exact copy, one contiguous run per output row.
 */
#include "ops_common.h"

typedef struct crop_params {
    int ndim;
    int64_t out_dims[EB_MAX_DIMS];
    int64_t in_strides[EB_MAX_DIMS];
    int64_t base;   /* input offset of the window's first element */
    int64_t rows;   /* output count / last dim */
} crop_params;

typedef struct crop_ctx {
    const crop_params *p;
    const float *x;
    float *y;
} crop_ctx;

static void crop_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const crop_ctx *c = (const crop_ctx *)vctx;
    const crop_params *p = c->p;
    const int nd = p->ndim;
    const int64_t len = p->out_dims[nd - 1];
    int64_t idx[EB_MAX_DIMS];
    (void)thread;
    /* multi-index of row `begin` over axes 0..nd-2 */
    int64_t r = begin, src = p->base;
    for (int a = nd - 2; a >= 0; a--) {
        idx[a] = r % p->out_dims[a];
        r /= p->out_dims[a];
        src += idx[a] * p->in_strides[a];
    }
    for (int64_t row = begin; row < end; row++) {
        memcpy(c->y + row * len, c->x + src, (size_t)len * sizeof(float));
        for (int a = nd - 2; a >= 0; a--) { /* odometer step */
            src += p->in_strides[a];
            if (++idx[a] < p->out_dims[a])
                break;
            src -= idx[a] * p->in_strides[a];
            idx[a] = 0;
        }
    }
}

static eb_status crop_run(const eb_node *node, eb_exec *ex)
{
    crop_ctx c;
    c.p = (const crop_params *)node->params;
    c.x = eb_data(ex, node->inputs[0]);
    c.y = eb_data(ex, node->outputs[0]);
    ebo_parallel(ex, c.p->rows, c.p->out_dims[c.p->ndim - 1] + 8, crop_range, &c);
    return EB_OK;
}

static eb_status crop_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    int64_t axis_attr = 2, offs[EB_MAX_DIMS];
    int n_offs = 0, start;
    if ((st = ebo_check_arity(node, err, 2, 2, 1, 1, 0)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = eb_attr_int(node, "axis", 2, &axis_attr, err)) != EB_OK ||
        (st = eb_attr_ints(node, "offset", offs, EB_MAX_DIMS, &n_offs, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0], *ref = node->inputs[1];
    const int n = x->ndim;
    if (ref->ndim != n)
        return eb_node_fail(node, err, EBO_INVALID, "input 0 has %d axes, input 1 has %d", n,
                            ref->ndim);
    if (!ebo_axis(axis_attr, n, &start))
        return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range for a %d-d input",
                            (long long)axis_attr, n);
    if (n_offs > 1 && start + n_offs != n)
        return eb_node_fail(node, err, EBO_INVALID,
                            "%d offsets for %d cropped axes (axis %d of a %d-d input)", n_offs,
                            n - start, start, n);
    crop_params p;
    memset(&p, 0, sizeof p);
    p.ndim = n;
    int64_t stride = 1;
    for (int i = n - 1; i >= 0; i--) {
        p.in_strides[i] = stride;
        stride *= x->dims[i];
    }
    for (int i = 0; i < n; i++) {
        int64_t off = 0;
        p.out_dims[i] = x->dims[i];
        if (i >= start) {
            off = n_offs == 1 ? offs[0] : n_offs ? offs[i - start] : 0;
            if (off < 0)
                return eb_node_fail(node, err, EBO_INVALID, "offset %lld of axis %d is negative",
                                    (long long)off, i);
            if (x->dims[i] - off < ref->dims[i])
                return eb_node_fail(node, err, EBO_INVALID,
                                    "crop of axis %d to size %lld at offset %lld is out of "
                                    "bounds for size %lld",
                                    i, (long long)ref->dims[i], (long long)off,
                                    (long long)x->dims[i]);
            p.out_dims[i] = ref->dims[i];
        }
        p.base += off * p.in_strides[i];
    }
    if ((st = ebo_expect_shape(node, err, node->outputs[0], "output", 0, n, p.out_dims)) != EB_OK)
        return st;
    p.rows = node->outputs[0]->count / p.out_dims[n - 1];
    crop_params *out = (crop_params *)malloc(sizeof *out);
    if (!out)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    *out = p;
    node->params = out;
    node->scratch_bytes = 0;
    return EB_OK;
}

const eb_op_kernel eb_kernel_Crop = {"Crop", crop_prepare, crop_run};
