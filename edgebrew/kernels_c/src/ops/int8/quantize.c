/* Quantize (FLOAT32 -> INT8, the output's parameters) and Dequantize (INT8 -> FLOAT32, the
 * input's parameters): fixed_point.quantize_tensor / dequantize_tensor.
 *
 * Quantize: q = clamp(round_half_away(x / scale) + zp) with the division in double; NaN -> zp,
 * +-inf -> the range ends. Dequantize: float32(q - zp) * float32(scale), in float32. */
#include "int8_common.h"

typedef struct qdq_params {
    double scale; /* the float32 scale, widened */
    float scale_f;
    int32_t zp;
    int64_t count;
} qdq_params;

static eb_status qdq_prepare(eb_node *node, eb_error *err, int quantize)
{
    eb_status st;
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 0)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0], *y = node->outputs[0];
    if ((st = eb_q_expect(node, err, x, "input", 0, quantize ? EB_FLOAT32 : EB_INT8)) != EB_OK ||
        (st = eb_q_expect(node, err, y, "output", 0, quantize ? EB_INT8 : EB_FLOAT32)) != EB_OK ||
        (st = ebo_expect_shape(node, err, y, "output", 0, x->ndim, x->dims)) != EB_OK)
        return st;
    const eb_tensor *q = quantize ? y : x;
    qdq_params *p = (qdq_params *)malloc(sizeof *p);
    if (!p)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    p->scale_f = q->quant_scale[0];
    p->scale = (double)p->scale_f;
    p->zp = q->quant_zero_point[0];
    p->count = x->count;
    node->params = p;
    return EB_OK;
}

static eb_status quantize_prepare(eb_node *node, eb_error *err)
{
    return qdq_prepare(node, err, 1);
}

static eb_status dequantize_prepare(eb_node *node, eb_error *err)
{
    return qdq_prepare(node, err, 0);
}

typedef struct qdq_ctx {
    const qdq_params *p;
    const void *x;
    void *y;
} qdq_ctx;

static void quantize_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const qdq_ctx *c = (const qdq_ctx *)vctx;
    const float *x = (const float *)c->x;
    int8_t *y = (int8_t *)c->y;
    const double s = c->p->scale, zp = (double)c->p->zp;
    (void)thread;
    for (int64_t i = begin; i < end; i++) {
        double v = (double)x[i] / s;
        if (v != v)
            v = 0.0;
        else if (v > 1e9)
            v = 1e9; /* nan_to_num's +-1e9 for infinities; any value this large clamps anyway */
        else if (v < -1e9)
            v = -1e9;
        double q = eb_q_round_half_away(v) + zp;
        q = q < EB_Q_MIN ? EB_Q_MIN : q > EB_Q_MAX ? EB_Q_MAX : q;
        y[i] = (int8_t)q;
    }
}

static void dequantize_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const qdq_ctx *c = (const qdq_ctx *)vctx;
    const int8_t *x = (const int8_t *)c->x;
    float *y = (float *)c->y;
    const float s = c->p->scale_f;
    const int32_t zp = c->p->zp;
    (void)thread;
    for (int64_t i = begin; i < end; i++)
        y[i] = (float)(x[i] - zp) * s;
}

static eb_status qdq_run(const eb_node *node, eb_exec *ex, eb_range_fn fn)
{
    qdq_ctx c;
    c.p = (const qdq_params *)node->params;
    c.x = eb_data_raw(ex, node->inputs[0]);
    c.y = eb_data_raw(ex, node->outputs[0]);
    ebo_parallel(ex, c.p->count, 8, fn, &c);
    return EB_OK;
}

static eb_status quantize_run(const eb_node *node, eb_exec *ex)
{
    return qdq_run(node, ex, quantize_range);
}

static eb_status dequantize_run(const eb_node *node, eb_exec *ex)
{
    return qdq_run(node, ex, dequantize_range);
}

const eb_op_kernel eb_int8_kernel_Quantize = {"Quantize", quantize_prepare, quantize_run};
const eb_op_kernel eb_int8_kernel_Dequantize = {"Dequantize", dequantize_prepare, dequantize_run};
