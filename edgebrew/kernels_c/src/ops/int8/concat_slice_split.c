/* int8 Concat, Slice and Split (int8_reference: Concat rescales each input onto the output's
 * grid; Slice and Split move bytes, outputs on the input's grid). Attributes and shapes are
 * checked by the float kernels' rules (eb_q_check_like_float); the layout is recomputed here.
 *
 * Viewed as (outer, axis span * inner) like the float file: each (outer, piece) is one
 * contiguous run. A Concat input on the output's grid is a copy, skipped when the memory
 * planner already placed it inside the output (zero copy); another grid goes through a
 * 256-entry rescale table (exactly fixed_point.rescale). */
#include <limits.h>

#include "int8_common.h"

typedef struct qcs_params {
    int concat;
    int n_pieces;
    int64_t outer, row;
    int64_t *piece_row, *piece_off; /* inside this allocation */
    int8_t *lut;                    /* Concat: 256 per input */
    uint8_t *identity;              /* Concat: input on the output's grid */
} qcs_params;

static eb_status qcs_prepare(eb_node *node, eb_error *err, int concat)
{
    eb_status st;
    if (concat) {
        if ((st = ebo_check_arity(node, err, 1, INT_MAX, 1, 1, 0)) != EB_OK)
            return st;
    } else if ((st = ebo_check_arity(node, err, 1, 1, 1, -1, 0)) != EB_OK) {
        return st;
    }
    if ((st = eb_q_expect_all_int8(node, err)) != EB_OK ||
        (st = eb_q_check_like_float(node, err)) != EB_OK)
        return st;
    if (!concat && (st = eb_q_outputs_same_grid(node, err)) != EB_OK)
        return st;
    const eb_tensor *whole = concat ? node->outputs[0] : node->inputs[0];
    const int n = concat ? node->n_inputs : node->n_outputs;
    int axis = 1;
    if (node->type != EB_OP_Split) {
        int64_t axis_attr = 1;
        if ((st = eb_attr_int(node, "axis", 1, &axis_attr, err)) != EB_OK)
            return st;
        if (!ebo_axis(axis_attr, whole->ndim, &axis))
            return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range",
                                (long long)axis_attr);
    }
    size_t bytes = sizeof(qcs_params) + 2 * (size_t)n * sizeof(int64_t);
    if (concat)
        bytes += (size_t)n * 257;
    qcs_params *p = (qcs_params *)malloc(bytes);
    if (!p)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    p->concat = concat;
    p->n_pieces = n;
    p->piece_row = (int64_t *)(void *)(p + 1);
    p->piece_off = p->piece_row + n;
    p->lut = concat ? (int8_t *)(p->piece_off + n) : NULL;
    p->identity = concat ? (uint8_t *)(p->lut + (size_t)n * 256) : NULL;
    if (node->type == EB_OP_Split) { /* every output a copy of the input */
        p->outer = 1;
        p->row = whole->count;
        for (int k = 0; k < n; k++) {
            p->piece_row[k] = whole->count;
            p->piece_off[k] = 0;
        }
    } else {
        const int64_t inner = ebo_count(whole->dims, axis + 1, whole->ndim);
        p->outer = ebo_count(whole->dims, 0, axis);
        p->row = whole->dims[axis] * inner;
        int64_t off = 0;
        for (int k = 0; k < n; k++) {
            const eb_tensor *piece = concat ? node->inputs[k] : node->outputs[k];
            /* the float rules checked the pieces' shapes; recheck what the copies rely on */
            if (piece->ndim != whole->ndim || piece->count != p->outer * piece->dims[axis] * inner) {
                free(p);
                return eb_node_fail(node, err, EBO_INVALID, "piece %d has an unexpected shape", k);
            }
            p->piece_row[k] = piece->dims[axis] * inner;
            p->piece_off[k] = off;
            off += p->piece_row[k];
        }
        if (off != p->row) {
            free(p);
            return eb_node_fail(node, err, EBO_INVALID, "pieces do not cover axis %d", axis);
        }
    }
    if (concat)
        for (int k = 0; k < n; k++) {
            int id = 0;
            if ((st = eb_q_rescale_lut(node, err, node->inputs[k], node->outputs[0],
                                       p->lut + (size_t)k * 256, &id)) != EB_OK) {
                free(p);
                return st;
            }
            p->identity[k] = (uint8_t)(id && eb_q_same_grid(node->inputs[k], node->outputs[0]));
        }
    node->params = p;
    node->scratch_bytes = 0;
    return EB_OK;
}

static eb_status concat_prepare(eb_node *node, eb_error *err) { return qcs_prepare(node, err, 1); }
static eb_status slice_prepare(eb_node *node, eb_error *err) { return qcs_prepare(node, err, 0); }

typedef struct qcs_ctx {
    const qcs_params *p;
    eb_exec *ex;
    const eb_node *node;
} qcs_ctx;

static void qcs_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const qcs_ctx *c = (const qcs_ctx *)vctx;
    const qcs_params *p = c->p;
    (void)thread;
    for (int64_t it = begin; it < end; it++) {
        const int64_t o = it / p->n_pieces;
        const int k = (int)(it - o * p->n_pieces);
        const int64_t len = p->piece_row[k];
        const int8_t *src;
        int8_t *dst;
        if (p->concat) {
            src = (const int8_t *)eb_data_raw(c->ex, c->node->inputs[k]) + o * len;
            dst = (int8_t *)eb_data_raw(c->ex, c->node->outputs[0]) + o * p->row + p->piece_off[k];
            if (!p->identity[k]) { /* in place is fine: elementwise */
                eb_q_apply_lut(src, dst, len, p->lut + (size_t)k * 256);
                continue;
            }
        } else {
            src = (const int8_t *)eb_data_raw(c->ex, c->node->inputs[0]) + o * p->row +
                  p->piece_off[k];
            dst = (int8_t *)eb_data_raw(c->ex, c->node->outputs[k]) + o * len;
        }
        if (dst != src) /* equal when the planner placed the piece in the whole (zero copy) */
            memmove(dst, src, (size_t)len);
    }
}

static eb_status qcs_run(const eb_node *node, eb_exec *ex)
{
    qcs_ctx c;
    c.p = (const qcs_params *)node->params;
    c.ex = ex;
    c.node = node;
    const int64_t avg = c.p->row / c.p->n_pieces;
    ebo_parallel(ex, c.p->outer * c.p->n_pieces, avg > 0 ? avg : 1, qcs_range, &c);
    return EB_OK;
}

const eb_op_kernel eb_int8_kernel_Concat = {"Concat", concat_prepare, qcs_run};
const eb_op_kernel eb_int8_kernel_Slice = {"Slice", slice_prepare, qcs_run};
const eb_op_kernel eb_int8_kernel_Split = {"Split", slice_prepare, qcs_run};
