/* Scale and Bias, as edgebrew/ir/ops/normalization.py (Caffe's ScaleLayer / BiasLayer):
 *
 *   Scale: y = x * scale (+ bias);   Bias: y = x + bias
 *
 * The operand spans x's axes [axis, axis + operand.ndim) and is broadcast over the others
 * (a 0-axis operand is a scalar). It is a weight blob of shape x.shape[axis : axis + num_axes]
 * (num_axes -1: to the end; 0: scalar) or, with two inputs, the second input (then num_axes is
 * unused). Scale's blobs are [scale, bias], or [bias] when the scale is the second input; the
 * bias has shape x.shape[axis : axis + k], k = num_axes, or the second input's number of axes.
 *
 * Viewed as (outer, mid, inner) with mid = the operand's count: y = x * s[m] (+ b[m]).
 * In place: y may be x's memory (every loop reads x[i] before writing y[i] at that index).
 */
#include "ops_common.h"

typedef struct sb_params {
    int has_scale, has_bias;
    int scale_is_input;   /* scale comes from input 1 */
    int bias_weight;      /* index of the bias weight, if has_bias */
    int64_t mid, inner;   /* operand count, and count of the axes after its span */
} sb_params;

typedef struct sb_ctx {
    const sb_params *p;
    const float *x, *s, *b;
    float *y;
} sb_ctx;

/* One operand value over a contiguous run. */
static void sb_row_scalar(const float *x, float *y, int64_t n, const float *s, const float *b)
{
    if (s && b) {
        const float sv = *s, bv = *b;
        for (int64_t i = 0; i < n; i++) {
            float t = x[i] * sv;
            y[i] = t + bv;
        }
    } else if (s) {
        const float sv = *s;
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * sv;
    } else {
        const float bv = *b;
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] + bv;
    }
}

/* Operand values varying along the run (inner == 1). */
static void sb_row_vector(const float *x, float *y, int64_t n, const float *s, const float *b)
{
    if (s && b) {
        for (int64_t i = 0; i < n; i++) {
            float t = x[i] * s[i];
            y[i] = t + b[i];
        }
    } else if (s) {
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * s[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] + b[i];
    }
}

static void sb_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const sb_ctx *c = (const sb_ctx *)vctx;
    const int64_t mid = c->p->mid, inner = c->p->inner;
    (void)thread;
    int64_t i = begin;
    if (inner == 1) {
        /* rows of `mid` values, operand index = position in the row */
        while (i < end) {
            int64_t off = i % mid, len = mid - off;
            if (len > end - i)
                len = end - i;
            sb_row_vector(c->x + i, c->y + i, len, c->s ? c->s + off : NULL,
                          c->b ? c->b + off : NULL);
            i += len;
        }
    } else {
        /* rows of `inner` values sharing operand (row % mid) */
        while (i < end) {
            int64_t row = i / inner, off = i - row * inner, len = inner - off;
            if (len > end - i)
                len = end - i;
            int64_t m = row % mid;
            sb_row_scalar(c->x + i, c->y + i, len, c->s ? c->s + m : NULL,
                          c->b ? c->b + m : NULL);
            i += len;
        }
    }
}

static eb_status sb_run(const eb_node *node, eb_exec *ex)
{
    const sb_params *p = (const sb_params *)node->params;
    sb_ctx c;
    c.p = p;
    c.x = eb_data(ex, node->inputs[0]);
    c.y = eb_data(ex, node->outputs[0]);
    c.s = NULL;
    c.b = NULL;
    if (p->has_scale)
        c.s = p->scale_is_input ? eb_data(ex, node->inputs[1]) : eb_data(ex, node->weights[0]);
    if (p->has_bias) {
        if (p->bias_weight >= 0)
            c.b = eb_data(ex, node->weights[p->bias_weight]);
        else
            c.b = eb_data(ex, node->inputs[1]);
    }
    ebo_parallel(ex, node->inputs[0]->count, 1, sb_range, &c);
    return EB_OK;
}

/* Caffe's LayerSetUp parameter shape x.shape[axis : axis + num_axes] (num_axes -1: to the
 * end), checked; writes its ndim and dims. */
static eb_status param_shape(eb_node *node, eb_error *err, const eb_tensor *x, int64_t axis,
                             int64_t num_axes, int *ndim, int64_t *dims)
{
    int a;
    if (!ebo_axis(axis, x->ndim, &a))
        return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range for a %d-d input",
                            (long long)axis, x->ndim);
    if (num_axes < -1)
        return eb_node_fail(node, err, EBO_INVALID, "num_axes must be -1 or more, got %lld",
                            (long long)num_axes);
    int64_t n = num_axes == -1 ? x->ndim - a : num_axes;
    if (a + n > x->ndim)
        return eb_node_fail(node, err, EBO_INVALID,
                            "num_axes %lld from axis %d extends past the %d-axis input",
                            (long long)num_axes, a, x->ndim);
    *ndim = (int)n;
    for (int i = 0; i < (int)n; i++)
        dims[i] = x->dims[a + i];
    return EB_OK;
}

/* Caffe's Reshape check: an operand of shape (ndim, dims) must equal x's axes from `axis`
 * (a 0-axis operand is a scalar and needs no axis). Sets *start (the first spanned axis). */
static eb_status check_operand(eb_node *node, eb_error *err, const eb_tensor *x, int64_t axis,
                               int ndim, const int64_t *dims, const char *what, int *start)
{
    char a_str[200], b_str[200];
    *start = 0;
    if (ndim == 0)
        return EB_OK;
    int a;
    if (!ebo_axis(axis, x->ndim, &a))
        return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range for a %d-d input",
                            (long long)axis, x->ndim);
    if (a + ndim > x->ndim)
        return eb_node_fail(node, err, EBO_INVALID,
                            "an operand of %d axes starting at axis %d extends past the %d-axis "
                            "input",
                            ndim, a, x->ndim);
    for (int i = 0; i < ndim; i++)
        if (dims[i] != x->dims[a + i])
            return eb_node_fail(node, err, EBO_INVALID,
                                "%s of shape %s does not match the input's axes from %d (input "
                                "%s)",
                                what, ebo_shape_str(a_str, sizeof a_str, ndim, dims), a,
                                ebo_shape_str(b_str, sizeof b_str, x->ndim, x->dims));
    *start = a;
    return EB_OK;
}

static eb_status sb_prepare(eb_node *node, eb_error *err, int is_scale)
{
    eb_status st;
    sb_params p;
    int64_t axis = 1, num_axes = 1;
    int bias_term = 0;
    memset(&p, 0, sizeof p);
    p.bias_weight = -1;

    if ((st = eb_attr_int(node, "axis", 1, &axis, err)) != EB_OK ||
        (st = eb_attr_int(node, "num_axes", 1, &num_axes, err)) != EB_OK)
        return st;
    if (is_scale && (st = ebo_attr_bool(node, "bias_term", 0, &bias_term, err)) != EB_OK)
        return st;
    const int two = node->n_inputs >= 2;
    int n_weights = is_scale ? (!two) + bias_term : !two;
    if ((st = ebo_check_arity(node, err, 1, 2, 1, 1, n_weights)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = ebo_outputs_like_input(node, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0];

    /* the main operand: Scale's scale, or Bias's bias */
    int op_ndim = 0, start = 0;
    int64_t op_dims[EB_MAX_DIMS];
    int64_t bias_axes = num_axes;
    if (two) {
        const eb_tensor *o = node->inputs[1];
        op_ndim = o->ndim;
        memcpy(op_dims, o->dims, sizeof(int64_t) * (size_t)o->ndim);
        bias_axes = o->ndim;
    } else if ((st = param_shape(node, err, x, axis, num_axes, &op_ndim, op_dims)) != EB_OK) {
        return st;
    }
    if ((st = check_operand(node, err, x, axis, op_ndim, op_dims, is_scale ? "scale" : "bias",
                            &start)) != EB_OK)
        return st;
    if (!two && (st = ebo_expect_shape(node, err, node->weights[0], "weight", 0, op_ndim,
                                       op_dims)) != EB_OK)
        return st;
    p.mid = ebo_count(op_dims, 0, op_ndim);
    p.inner = ebo_count(x->dims, start + op_ndim, x->ndim);

    if (is_scale) {
        p.has_scale = 1;
        p.scale_is_input = two;
        if (bias_term) {
            /* Caffe's bias: same axis, num_axes = scale's (input's ndim, or num_axes). */
            int b_ndim = 0, b_start = 0;
            int64_t b_dims[EB_MAX_DIMS];
            if ((st = param_shape(node, err, x, axis, bias_axes, &b_ndim, b_dims)) != EB_OK ||
                (st = check_operand(node, err, x, axis, b_ndim, b_dims, "bias", &b_start)) !=
                    EB_OK)
                return st;
            p.bias_weight = two ? 0 : 1;
            if ((st = ebo_expect_shape(node, err, node->weights[p.bias_weight], "weight",
                                       p.bias_weight, b_ndim, b_dims)) != EB_OK)
                return st;
            /* It spans the scale's axes, so one (mid, inner) view serves both. */
            if (ebo_count(b_dims, 0, b_ndim) != p.mid ||
                ebo_count(x->dims, b_start + b_ndim, x->ndim) != p.inner)
                return eb_node_fail(node, err, EBO_INVALID,
                                    "bias does not span the same axes as the scale");
            p.has_bias = 1;
        }
    } else {
        p.has_bias = 1;
        p.bias_weight = two ? -1 : 0;
    }

    sb_params *out = (sb_params *)malloc(sizeof *out);
    if (!out)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    *out = p;
    node->params = out;
    node->scratch_bytes = 0;
    return EB_OK;
}

static eb_status scale_prepare(eb_node *node, eb_error *err) { return sb_prepare(node, err, 1); }
static eb_status bias_prepare(eb_node *node, eb_error *err) { return sb_prepare(node, err, 0); }

const eb_op_kernel eb_kernel_Scale = {"Scale", scale_prepare, sb_run};
const eb_op_kernel eb_kernel_Bias = {"Bias", bias_prepare, sb_run};
