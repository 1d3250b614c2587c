/* int8 Pooling, MAX and AVE (global too), output on the input's grid (int8_reference):
 *  - MAX: the largest q over the window's part inside the input; -128 for a window wholly in
 *    the padding (Caffe's -FLT_MAX);
 *  - AVE: zp + div_round(sum (x - zp) over the in-input part, pool_size), pool_size the window
 *    clipped to input + pad (Caffe's), div_round rounding half away from zero; then clamped.
 * Attributes and the output shape are checked by the float kernel's rules. Threads split the
 * N*C planes. Global windows (the whole plane, no padding) reduce the plane in one pass; other
 * windows go by output row: the window rows' column-wise max (int8) or sum (int32) into a row
 * of this thread's scratch (loops the compiler vectorizes), then each output reduces its
 * columns of that row. Integer max and sums are exact: the same bytes as the reference. */
#include "../conv_geometry.h"
#include "int8_common.h"

typedef struct qpool_params {
    int64_t planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
    int max, global;
    int32_t zp;
} qpool_params;

static eb_status qpool_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    const char *method;
    int global = 0;
    int64_t kernel[2] = {1, 1}, stride[2] = {1, 1}, pad[2] = {0, 0};
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 0)) != EB_OK ||
        (st = eb_q_expect_all_int8(node, err)) != EB_OK ||
        (st = eb_q_outputs_same_grid(node, err)) != EB_OK ||
        (st = eb_q_check_like_float(node, err)) != EB_OK)
        return st;
    if ((st = eb_attr_string(node, "method", "MAX", &method, err)) != EB_OK ||
        (st = eb_read_bool(node, "global_pooling", 0, &global, err)) != EB_OK ||
        (st = eb_read_pair(node, "stride", 0, 1, 1, stride, err)) != EB_OK ||
        (st = eb_read_pair(node, "pad", 0, 0, 0, pad, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0], *y = node->outputs[0];
    if (x->ndim != 4 || y->ndim != 4)
        return eb_node_fail(node, err, EBO_INVALID, "needs 4-d input and output");
    if (global) {
        kernel[0] = x->dims[2];
        kernel[1] = x->dims[3];
    } else if ((st = eb_read_pair(node, "kernel", 1, 0, 0, kernel, err)) != EB_OK) {
        return st;
    }
    qpool_params *p = (qpool_params *)malloc(sizeof *p);
    if (!p)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    p->planes = x->dims[0] * x->dims[1];
    p->h = x->dims[2], p->w = x->dims[3], p->oh = y->dims[2], p->ow = y->dims[3];
    p->kh = kernel[0], p->kw = kernel[1], p->sh = stride[0], p->sw = stride[1];
    p->ph = pad[0], p->pw = pad[1];
    p->max = strcmp(method, "MAX") == 0;
    p->zp = x->quant_zero_point[0];
    p->global = p->oh == 1 && p->ow == 1 && p->kh == p->h && p->kw == p->w && p->ph == 0 &&
                p->pw == 0;
    node->params = p;
    node->scratch_bytes = eb_align64((size_t)p->w * sizeof(int32_t));
    return EB_OK;
}

typedef struct qpool_ctx {
    const qpool_params *p;
    eb_exec *ex;
    const int8_t *x;
    int8_t *y;
} qpool_ctx;

/* div_round of int8_reference: half away from zero, pool > 0 */
static inline int8_t qpool_ave_out(int64_t sum, int64_t pool, int32_t zp)
{
    const int64_t half = pool / 2;
    const int64_t q = sum >= 0 ? (sum + half) / pool : -((-sum + half) / pool);
    return (int8_t)eb_q_clamp((int64_t)zp + q, EB_Q_MIN, EB_Q_MAX);
}

/* The whole plane (n values) in one window. */
static int8_t qpool_global(const qpool_params *p, const int8_t *restrict x, int64_t n)
{
    if (p->max) {
        int8_t m = EB_Q_MIN;
        for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
        return m;
    }
    int64_t sum = 0;
    for (int64_t i0 = 0; i0 < n; i0 += (int64_t)1 << 20) { /* int32 partial sums stay exact */
        const int64_t i1 = n - i0 < ((int64_t)1 << 20) ? n : i0 + ((int64_t)1 << 20);
        int32_t s = 0;
        for (int64_t i = i0; i < i1; i++) s += x[i];
        sum += s;
    }
    return qpool_ave_out(sum - (int64_t)p->zp * n, n, p->zp);
}

static void qpool_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const qpool_ctx *cx = (const qpool_ctx *)vctx;
    const qpool_params *p = cx->p;
    const int64_t h = p->h, w = p->w;
    const int tall = p->kh >= ((int64_t)1 << 23); /* 2^23 * 128 < 2^31 */
    int32_t *restrict colsum = (int32_t *)eb_scratch(cx->ex, thread); /* AVE: w int32 */
    int8_t *restrict colmax = (int8_t *)colsum;                          /* MAX: w int8 */
    for (int64_t plane = begin; plane < end; plane++) {
        const int8_t *x = cx->x + plane * h * w;
        int8_t *y = cx->y + plane * p->oh * p->ow;
        if (p->global) {
            y[0] = qpool_global(p, x, h * w);
            continue;
        }
        for (int64_t oy = 0; oy < p->oh; oy++) {
            const int64_t hs0 = oy * p->sh - p->ph;
            const int64_t hs = hs0 < 0 ? 0 : hs0;
            const int64_t he = hs0 + p->kh < h ? hs0 + p->kh : h;
            const int64_t he_pad = hs0 + p->kh < h + p->ph ? hs0 + p->kh : h + p->ph;
            int8_t *yrow = y + oy * p->ow;
            /* the window rows reduced column by column (none: every window is empty) */
            if (p->max) {
                for (int64_t ix = 0; ix < w; ix++) colmax[ix] = EB_Q_MIN;
                for (int64_t iy = hs; iy < he; iy++) {
                    const int8_t *restrict row = x + iy * w;
                    for (int64_t ix = 0; ix < w; ix++)
                        colmax[ix] = row[ix] > colmax[ix] ? row[ix] : colmax[ix];
                }
            } else if (!tall) {
                for (int64_t ix = 0; ix < w; ix++) colsum[ix] = 0;
                for (int64_t iy = hs; iy < he; iy++) {
                    const int8_t *restrict row = x + iy * w;
                    for (int64_t ix = 0; ix < w; ix++) colsum[ix] += row[ix];
                }
            }
            const int64_t rows = he > hs ? he - hs : 0;
            for (int64_t ox = 0; ox < p->ow; ox++) {
                const int64_t ws0 = ox * p->sw - p->pw;
                const int64_t ws = ws0 < 0 ? 0 : ws0;
                const int64_t we = ws0 + p->kw < w ? ws0 + p->kw : w;
                if (p->max) {
                    int8_t m = EB_Q_MIN;
                    for (int64_t ix = ws; ix < we; ix++) m = colmax[ix] > m ? colmax[ix] : m;
                    yrow[ox] = m;
                } else {
                    const int64_t we_pad = ws0 + p->kw < w + p->pw ? ws0 + p->kw : w + p->pw;
                    const int64_t pool = (he_pad - hs0) * (we_pad - ws0);
                    int64_t sum = 0;
                    if (tall) { /* int32 column sums could overflow: straight from x */
                        for (int64_t iy = hs; iy < he; iy++)
                            for (int64_t ix = ws; ix < we; ix++) sum += x[iy * w + ix];
                    } else {
                        for (int64_t ix = ws; ix < we; ix++) sum += colsum[ix];
                    }
                    if (we > ws) sum -= (int64_t)p->zp * rows * (we - ws);
                    yrow[ox] = qpool_ave_out(sum, pool, p->zp);
                }
            }
        }
    }
}

static eb_status qpool_run(const eb_node *node, eb_exec *ex)
{
    const qpool_params *p = (const qpool_params *)node->params;
    qpool_ctx cx;
    cx.p = p;
    cx.ex = ex;
    cx.x = (const int8_t *)eb_data_raw(ex, node->inputs[0]);
    cx.y = (int8_t *)eb_data_raw(ex, node->outputs[0]);
    ebo_parallel(ex, p->planes, p->oh * p->ow, qpool_range, &cx);
    return EB_OK;
}

const eb_op_kernel eb_int8_kernel_Pooling = {"Pooling", qpool_prepare, qpool_run};
