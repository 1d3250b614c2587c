/* Concat, Slice and Split (data movement, exact copies), as edgebrew/ir/ops/tensor_ops.py.
 *
 * Concat: inputs of equal rank and equal dims outside `axis`, joined along it.
 * Slice: `slice_point` strictly increasing and positive cut positions (one per top but the last),
 *        leaving room on the axis; without it, equal parts, one per top (must divide evenly).
 * Split: every output a copy of the input (skipped where an output is the input's memory).
 *
 * Viewed as (outer, axis span * inner): each (outer, piece) is one contiguous copy, skipped
 * when the memory planner already placed the piece inside the whole (Concat zero copy: the
 * producers wrote straight into the output). Split skips outputs that are the input's memory.
 */
#include <limits.h>

#include "ops_common.h"

/* ---- shared copy driver ------------------------------------------------------------------- */

typedef struct cs_params {
    int concat;          /* 1: pieces are inputs gathered into output 0; 0: outputs cut from input 0 */
    int n_pieces;
    int64_t outer;
    int64_t row;         /* values per outer index of the whole (span * inner) */
    int64_t piece_row[]; /* values per outer index of each piece; then the offsets */
} cs_params;

typedef struct cs_ctx {
    const cs_params *p;
    const int64_t *piece_off; /* offset of each piece in the whole row */
    eb_exec *ex;
    const eb_node *node;
} cs_ctx;

static void cs_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const cs_ctx *c = (const cs_ctx *)vctx;
    const cs_params *p = c->p;
    (void)thread;
    for (int64_t it = begin; it < end; it++) {
        int64_t o = it / p->n_pieces;
        int k = (int)(it - o * p->n_pieces);
        const int64_t len = p->piece_row[k];
        const float *src;
        float *dst;
        if (p->concat) {
            src = eb_data(c->ex, c->node->inputs[k]) + o * len;
            dst = eb_data(c->ex, c->node->outputs[0]) + o * p->row + c->piece_off[k];
        } else {
            src = eb_data(c->ex, c->node->inputs[0]) + o * p->row + c->piece_off[k];
            dst = eb_data(c->ex, c->node->outputs[k]) + o * len;
        }
        if (dst != src) /* equal when the planner placed the piece in the whole (zero copy) */
            memcpy(dst, src, (size_t)len * sizeof(float));
    }
}

static eb_status cs_run(const eb_node *node, eb_exec *ex)
{
    cs_ctx c;
    c.p = (const cs_params *)node->params;
    c.piece_off = c.p->piece_row + c.p->n_pieces;
    c.ex = ex;
    c.node = node;
    int64_t avg = c.p->row / c.p->n_pieces;
    ebo_parallel(ex, c.p->outer * c.p->n_pieces, avg > 0 ? avg : 1, cs_range, &c);
    return EB_OK;
}

/* Allocates params for n pieces with the given per-piece spans along the axis. */
static eb_status cs_make(eb_node *node, eb_error *err, int concat, int n, const int64_t *spans,
                         const eb_tensor *whole, int axis)
{
    cs_params *p = (cs_params *)malloc(sizeof(cs_params) + 2 * (size_t)n * sizeof(int64_t));
    if (!p)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    int64_t inner = ebo_count(whole->dims, axis + 1, whole->ndim);
    p->concat = concat;
    p->n_pieces = n;
    p->outer = ebo_count(whole->dims, 0, axis);
    p->row = whole->dims[axis] * inner;
    int64_t off = 0;
    for (int k = 0; k < n; k++) {
        p->piece_row[k] = spans[k] * inner;
        p->piece_row[n + k] = off;
        off += spans[k] * inner;
    }
    node->params = p;
    node->scratch_bytes = 0;
    return EB_OK;
}

/* ---- Concat --------------------------------------------------------------------------------- */

static eb_status concat_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    int64_t axis_attr = 1;
    int axis;
    char a_str[200], b_str[200];
    if ((st = ebo_check_arity(node, err, 1, INT_MAX, 1, 1, 0)) !=
            EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = eb_attr_int(node, "axis", 1, &axis_attr, err)) != EB_OK)
        return st;
    const eb_tensor *first = node->inputs[0];
    if (!ebo_axis(axis_attr, first->ndim, &axis))
        return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range for a %d-d input",
                            (long long)axis_attr, first->ndim);
    int n = node->n_inputs;
    int64_t *spans = (int64_t *)malloc((size_t)n * sizeof(int64_t));
    if (!spans)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const eb_tensor *s = node->inputs[i];
        int bad = s->ndim != first->ndim;
        for (int a = 0; !bad && a < first->ndim; a++)
            bad = a != axis && s->dims[a] != first->dims[a];
        if (bad) {
            free(spans);
            return eb_node_fail(node, err, EBO_INVALID,
                                "input %d shape %s differs from input 0 shape %s outside axis %d",
                                i, ebo_shape_str(a_str, sizeof a_str, s->ndim, s->dims),
                                ebo_shape_str(b_str, sizeof b_str, first->ndim, first->dims),
                                axis);
        }
        spans[i] = s->dims[axis];
        total += s->dims[axis]; /* each <= 2^40, at most INT_MAX inputs: no overflow */
    }
    int64_t out[EB_MAX_DIMS];
    memcpy(out, first->dims, sizeof(int64_t) * (size_t)first->ndim);
    out[axis] = total;
    if ((st = ebo_expect_shape(node, err, node->outputs[0], "output", 0, first->ndim, out)) !=
        EB_OK) {
        free(spans);
        return st;
    }
    st = cs_make(node, err, 1, n, spans, node->outputs[0], axis);
    free(spans);
    return st;
}

/* ---- Slice ---------------------------------------------------------------------------------- */

static eb_status slice_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    int64_t axis_attr = 1;
    int axis, n_points = 0;
    if ((st = ebo_check_arity(node, err, 1, 1, 1, -1, 0)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = eb_attr_int(node, "axis", 1, &axis_attr, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0];
    if (!ebo_axis(axis_attr, x->ndim, &axis))
        return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range for a %d-d input",
                            (long long)axis_attr, x->ndim);
    const int n_tops = node->n_outputs;
    const int64_t dim = x->dims[axis];
    /* room for one more point than valid, so a count one too many gets our message */
    int64_t *points = (int64_t *)malloc((size_t)n_tops * sizeof(int64_t));
    int64_t *spans = (int64_t *)malloc((size_t)n_tops * sizeof(int64_t));
    if (!points || !spans) {
        free(points);
        free(spans);
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    }
    st = eb_attr_ints(node, "slice_point", points, n_tops, &n_points, err);
    if (st == EB_OK && n_points > 0) {
        if (n_points != n_tops - 1) {
            st = eb_node_fail(node, err, EBO_INVALID,
                              "%d slice_point(s) need %d outputs, the op has %d", n_points,
                              n_points + 1, n_tops);
        } else {
            int64_t prev = 0;
            for (int i = 0; i < n_points && st == EB_OK; i++) {
                if (points[i] <= prev)
                    st = eb_node_fail(node, err, EBO_INVALID,
                                      "slice_point must be strictly increasing and positive "
                                      "(point %d is %lld)",
                                      i, (long long)points[i]);
                else {
                    spans[i] = points[i] - prev;
                    prev = points[i];
                }
            }
            if (st == EB_OK && dim - prev <= 0)
                st = eb_node_fail(node, err, EBO_INVALID,
                                  "slice_point %lld leaves no room on axis %d of size %lld",
                                  (long long)prev, axis, (long long)dim);
            if (st == EB_OK)
                spans[n_tops - 1] = dim - prev;
        }
    } else if (st == EB_OK) {
        if (dim % n_tops)
            st = eb_node_fail(node, err, EBO_INVALID,
                              "%d outputs do not evenly divide axis %d of size %lld", n_tops,
                              axis, (long long)dim);
        for (int i = 0; i < n_tops && st == EB_OK; i++)
            spans[i] = dim / n_tops;
    }
    for (int i = 0; i < n_tops && st == EB_OK; i++) {
        int64_t shape[EB_MAX_DIMS];
        memcpy(shape, x->dims, sizeof(int64_t) * (size_t)x->ndim);
        shape[axis] = spans[i];
        st = ebo_expect_shape(node, err, node->outputs[i], "output", i, x->ndim, shape);
    }
    if (st == EB_OK)
        st = cs_make(node, err, 0, n_tops, spans, x, axis);
    free(points);
    free(spans);
    return st;
}

/* ---- Split ---------------------------------------------------------------------------------- */

typedef struct split_ctx {
    const float *x;
    float *const *outs;
    int n_out;
    int64_t count, chunk;
} split_ctx;

#define SPLIT_CHUNK ((int64_t)1 << 16)

static void split_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const split_ctx *c = (const split_ctx *)vctx;
    (void)thread;
    for (int64_t it = begin; it < end; it++) {
        int64_t k = it / c->chunk, j0 = (it - k * c->chunk) * SPLIT_CHUNK;
        int64_t n = c->count - j0 < SPLIT_CHUNK ? c->count - j0 : SPLIT_CHUNK;
        memcpy(c->outs[k] + j0, c->x + j0, (size_t)n * sizeof(float));
    }
}

static eb_status split_run(const eb_node *node, eb_exec *ex)
{
    float *outs[64];
    split_ctx c;
    c.x = eb_data(ex, node->inputs[0]);
    c.count = node->inputs[0]->count;
    c.chunk = (c.count + SPLIT_CHUNK - 1) / SPLIT_CHUNK;
    c.outs = outs;
    /* outputs in groups of 64 (the list of outputs that need a copy) */
    for (int base = 0; base < node->n_outputs; base += 64) {
        c.n_out = 0;
        for (int k = base; k < node->n_outputs && k < base + 64; k++) {
            float *y = eb_data(ex, node->outputs[k]);
            if (y != c.x)
                outs[c.n_out++] = y;
        }
        ebo_parallel(ex, c.n_out * c.chunk, SPLIT_CHUNK, split_range, &c);
    }
    return EB_OK;
}

static eb_status split_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    if ((st = ebo_check_arity(node, err, 1, 1, 1, -1, 0)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = ebo_outputs_like_input(node, err)) != EB_OK)
        return st;
    node->params = NULL;
    node->scratch_bytes = 0;
    return EB_OK;
}

const eb_op_kernel eb_kernel_Concat = {"Concat", concat_prepare, cs_run};
const eb_op_kernel eb_kernel_Slice = {"Slice", slice_prepare, cs_run};
const eb_op_kernel eb_kernel_Split = {"Split", split_prepare, split_run};
