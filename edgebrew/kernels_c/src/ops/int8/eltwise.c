/* int8 Eltwise SUM (coefficients) and MAX (int8_reference._eltwise):
 *  SUM: T = 2 max_i |c_i| s_i (double), M_i = |c_i| s_i / T, M_out = T / (2^20 s_out);
 *       raw = saturate_int32(sum_i sign(c_i) MBQM((x_i - zp_i) 2^20, M_i)) (c_i == 0 skipped),
 *       out = clamp(zp_out + MBQM(raw, M_out), activation range).
 *  MAX: out = clamp(max_i rescale(x_i -> output grid), activation range).
 * A term depends on one int8 value only: it is a 256-entry table per input, built here.
 * Attributes and shapes are checked by the float kernel's rules. */
#include "int8_common.h"

#define QE_BLOCK 256

typedef struct qelt_params {
    int n, max;
    int32_t lo, hi, zp_out;
    eb_qmult m_out;
    int64_t count;
    uint8_t *active;  /* SUM: input used (c_i != 0) */
    int32_t *term;    /* SUM: 256 per input (signed) */
    int8_t *lut;      /* MAX: 256 per input */
    int8_t *lut2;     /* SUM of two inputs: the output for every (x0, x1), 256 x 256 (or NULL) */
} qelt_params;

static eb_status qelt_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    if ((st = eb_q_expect_all_int8(node, err)) != EB_OK ||
        (st = eb_q_check_like_float(node, err)) != EB_OK)
        return st;
    if (node->n_outputs != 1 || node->n_inputs < 1 || node->n_weights != 0)
        return eb_node_fail(node, err, EBO_INVALID, "needs inputs, one output and no weights");
    const char *op = NULL;
    if ((st = eb_attr_string(node, "operation", "SUM", &op, err)) != EB_OK)
        return st;
    const int is_max = strcmp(op, "MAX") == 0;
    if (!is_max && strcmp(op, "SUM") != 0)
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED, "Eltwise %s has no int8 kernel", op);
    const int n = node->n_inputs;
    const eb_tensor *y = node->outputs[0];
    for (int i = 0; i < n; i++)
        if (node->inputs[i]->count != y->count)
            return eb_node_fail(node, err, EBO_INVALID, "input %d and the output differ in size",
                                i);
    const int two = !is_max && n == 2;
    size_t bytes = sizeof(qelt_params) + (size_t)n * (256 * sizeof(int32_t) + 256 + 1) +
                   (two ? 65536 : 0);
    qelt_params *p = (qelt_params *)calloc(1, bytes);
    if (!p)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    p->term = (int32_t *)(void *)(p + 1);
    p->lut = (int8_t *)(p->term + (size_t)n * 256);
    p->active = (uint8_t *)(p->lut + (size_t)n * 256);
    p->lut2 = two ? (int8_t *)(p->active + n) : NULL;
    p->n = n;
    p->max = is_max;
    p->count = y->count;
    p->zp_out = y->quant_zero_point[0];
    if ((st = eb_q_activation_range(node, err, y, &p->lo, &p->hi)) != EB_OK)
        goto fail;
    if (is_max) {
        for (int i = 0; i < n; i++)
            if ((st = eb_q_rescale_lut(node, err, node->inputs[i], y, p->lut + (size_t)i * 256,
                                       NULL)) != EB_OK)
                goto fail;
    } else {
        double coeff[64];
        double *c = coeff;
        int nc = 0;
        if (n > 64) {
            c = (double *)malloc((size_t)n * sizeof(double));
            if (!c) {
                st = eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
                goto fail;
            }
        }
        st = eb_attr_floats(node, "coeff", c, n, &nc, err);
        if (st == EB_OK && nc != 0 && nc != n)
            st = eb_node_fail(node, err, EBO_INVALID, "%d coefficients for %d inputs", nc, n);
        if (st == EB_OK && nc == 0)
            for (int i = 0; i < n; i++) c[i] = 1.0;
        double twice_max = 0.0;
        for (int i = 0; st == EB_OK && i < n; i++) {
            if (!isfinite(c[i]))
                st = eb_node_fail(node, err, EBO_INVALID, "coefficient %d is not finite", i);
            else {
                const double wt = fabs(c[i]) * (double)node->inputs[i]->quant_scale[0];
                twice_max = wt > twice_max ? wt : twice_max;
            }
        }
        twice_max *= 2.0;
        for (int i = 0; st == EB_OK && i < n; i++) {
            if (c[i] == 0.0)
                continue;
            eb_qmult m;
            const double wt = fabs(c[i]) * (double)node->inputs[i]->quant_scale[0];
            if ((st = eb_q_multiplier(node, err, wt / twice_max, "|c_i| s_i / T", &m)) != EB_OK)
                break;
            const int32_t zp = node->inputs[i]->quant_zero_point[0];
            p->active[i] = 1;
            for (int q = EB_Q_MIN; q <= EB_Q_MAX; q++) {
                const int32_t t = eb_q_mbqm((int64_t)(q - zp) * 1048576, m);
                p->term[(size_t)i * 256 + (size_t)(q + 128)] = c[i] > 0 ? t : -t;
            }
        }
        if (st == EB_OK && twice_max != 0.0)
            st = eb_q_multiplier(node, err,
                                 twice_max / (1048576.0 * (double)y->quant_scale[0]),
                                 "T / (2^20 s_out)", &p->m_out);
        if (c != coeff)
            free(c);
        if (st != EB_OK)
            goto fail;
        if (p->lut2) /* the run's arithmetic below, for all 65536 input pairs */
            for (int a = 0; a < 256; a++)
                for (int b = 0; b < 256; b++) {
                    const int64_t acc = (int64_t)p->term[a] + (int64_t)p->term[256 + b];
                    const int32_t raw = eb_q_clamp(acc, INT32_MIN, INT32_MAX);
                    p->lut2[a * 256 + b] = (int8_t)eb_q_clamp(
                        (int64_t)p->zp_out + eb_q_mbqm(raw, p->m_out), p->lo, p->hi);
                }
    }
    node->params = p;
    return EB_OK;
fail:
    free(p);
    return st;
}

typedef struct qelt_ctx {
    const qelt_params *p;
    const eb_node *node;
    eb_exec *ex;
} qelt_ctx;

static void qelt_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const qelt_ctx *c = (const qelt_ctx *)vctx;
    const qelt_params *p = c->p;
    int8_t *y = (int8_t *)eb_data_raw(c->ex, c->node->outputs[0]);
    (void)thread;
    if (p->max) {
        int8_t acc[QE_BLOCK];
        for (int64_t j0 = begin; j0 < end; j0 += QE_BLOCK) {
            const int64_t nb = end - j0 < QE_BLOCK ? end - j0 : QE_BLOCK;
            for (int i = 0; i < p->n; i++) {
                const int8_t *x = (const int8_t *)eb_data_raw(c->ex, c->node->inputs[i]) + j0;
                const int8_t *lut = p->lut + (size_t)i * 256;
                if (i == 0)
                    for (int64_t j = 0; j < nb; j++) acc[j] = lut[x[j] + 128];
                else
                    for (int64_t j = 0; j < nb; j++) {
                        const int8_t v = lut[x[j] + 128];
                        acc[j] = v > acc[j] ? v : acc[j];
                    }
            }
            for (int64_t j = 0; j < nb; j++)
                y[j0 + j] = (int8_t)eb_q_clamp(acc[j], p->lo, p->hi);
        }
        return;
    }
    if (p->lut2) {
        const uint8_t *x0 = (const uint8_t *)eb_data_raw(c->ex, c->node->inputs[0]);
        const uint8_t *x1 = (const uint8_t *)eb_data_raw(c->ex, c->node->inputs[1]);
        const int8_t *l2 = p->lut2;
        /* (x + 128) as an index is the byte with its top bit flipped */
        for (int64_t j = begin; j < end; j++)
            y[j] = l2[((x0[j] ^ 0x80u) << 8) | (x1[j] ^ 0x80u)];
        return;
    }
    int64_t acc[QE_BLOCK];
    for (int64_t j0 = begin; j0 < end; j0 += QE_BLOCK) {
        const int64_t nb = end - j0 < QE_BLOCK ? end - j0 : QE_BLOCK;
        for (int64_t j = 0; j < nb; j++) acc[j] = 0;
        for (int i = 0; i < p->n; i++) {
            if (!p->active[i])
                continue;
            const int8_t *x = (const int8_t *)eb_data_raw(c->ex, c->node->inputs[i]) + j0;
            const int32_t *term = p->term + (size_t)i * 256;
            for (int64_t j = 0; j < nb; j++) acc[j] += term[x[j] + 128];
        }
        for (int64_t j = 0; j < nb; j++) {
            const int32_t raw = eb_q_clamp(acc[j], INT32_MIN, INT32_MAX);
            y[j0 + j] = (int8_t)eb_q_clamp((int64_t)p->zp_out + eb_q_mbqm(raw, p->m_out), p->lo,
                                           p->hi);
        }
    }
}

static eb_status qelt_run(const eb_node *node, eb_exec *ex)
{
    qelt_ctx c;
    c.p = (const qelt_params *)node->params;
    c.node = node;
    c.ex = ex;
    ebo_parallel(ex, c.p->count, 4 * c.p->n, qelt_range, &c);
    return EB_OK;
}

const eb_op_kernel eb_int8_kernel_Eltwise = {"Eltwise", qelt_prepare, qelt_run};
