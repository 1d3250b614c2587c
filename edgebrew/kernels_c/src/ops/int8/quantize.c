/* Quantize (FLOAT32 -> INT8, the output's parameters) and Dequantize (INT8 -> FLOAT32, the
 * input's parameters): fixed_point.quantize_tensor / dequantize_tensor.
 *
 * Quantize: q = clamp(round_half_away(x / scale) + zp) with the division in double; NaN -> zp,
 * +-inf -> the range ends. Dequantize: float32(q - zp) * float32(scale), in float32. */
#include "int8_common.h"
#include "kernels/kernels.h"

typedef struct qdq_params {
    double scale; /* the float32 scale, widened */
    float scale_f;
    int32_t zp;
    int64_t count;
    const eb_kernel_table *kt;
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
    p->kt = eb_kernels();
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

/* The kernel table's loops (vectorized per ISA), over chunks of the range. */
static void quantize_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const qdq_ctx *c = (const qdq_ctx *)vctx;
    (void)thread;
    c->p->kt->quantize_s8((const float *)c->x + begin, end - begin, c->p->scale, c->p->zp,
                          (int8_t *)c->y + begin);
}

static void dequantize_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const qdq_ctx *c = (const qdq_ctx *)vctx;
    (void)thread;
    c->p->kt->dequantize_s8((const int8_t *)c->x + begin, end - begin, c->p->scale_f, c->p->zp,
                            (float *)c->y + begin);
}

static eb_status qdq_run(const eb_node *node, eb_exec *ex, eb_range_fn fn)
{
    qdq_ctx c;
    c.p = (const qdq_params *)node->params;
    c.x = eb_data_raw(ex, node->inputs[0]);
    c.y = eb_data_raw(ex, node->outputs[0]);
    ebo_parallel(ex, c.p->count, 4, fn, &c);
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
