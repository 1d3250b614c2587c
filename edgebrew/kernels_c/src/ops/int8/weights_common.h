/* Shared by the int8 Convolution and InnerProduct: weight / bias checks, per-channel
 * multipliers and the int32 accumulator bound. */
#ifndef EB_OPS_INT8_WEIGHTS_H
#define EB_OPS_INT8_WEIGHTS_H

#include "int8_common.h"

/* sum |w| over n int8 values: int32 partial sums over blocks (2^16 * 128 < 2^31) so that the
 * compiler vectorizes the loop (a model load runs it over every weight). */
static inline int64_t eb_q_abs_sum(const int8_t *w, int64_t n)
{
    int64_t total = 0;
    for (int64_t i0 = 0; i0 < n; i0 += (int64_t)1 << 16) {
        const int64_t i1 = n - i0 < ((int64_t)1 << 16) ? n : i0 + ((int64_t)1 << 16);
        int32_t part = 0;
        for (int64_t i = i0; i < i1; i++) {
            const int32_t v = w[i];
            part += v < 0 ? -v : v;
        }
        total += part;
    }
    return total;
}

/* W: an INT8 constant of `count` values, m rows (output channels), symmetric quantization
 * (one scale, or one per channel on axis 0); bias (may be NULL): INT32 constant of m values.
 * Fills mult[m] with M_c = s_in * s_w[c] / s_out (double, in that order; fixed_point.
 * product_multipliers) and checks that sum_k |W[c,k]| * 255 + |b[c]| fits int32 for every c,
 * so that the int32 accumulation is exact in any order. */
static inline eb_status eb_q_prepare_weights(eb_node *node, eb_error *err, const eb_tensor *x,
                                             const eb_tensor *y, const eb_tensor *w,
                                             const eb_tensor *b, int64_t m, int64_t k,
                                             eb_qmult *mult)
{
    if (w->dtype != EB_INT8 || !w->is_constant || !w->const_data)
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                            "weight '%s' must be an INT8 constant for the int8 kernel", w->name);
    if (w->count != m * k)
        return eb_node_fail(node, err, EBO_INVALID, "weight '%s' has %lld values, expected %lld",
                            w->name, (long long)w->count, (long long)(m * k));
    if (w->quant_count < 1 || (w->quant_count != 1 && (w->quant_axis != 0 || w->quant_count != m)))
        return eb_node_fail(node, err, EBO_INVALID,
                            "weight '%s' needs one scale per output channel (axis 0, %lld) or "
                            "one per tensor", w->name, (long long)m);
    for (int i = 0; i < w->quant_count; i++)
        if (w->quant_zero_point[i] != 0)
            return eb_node_fail(node, err, EBO_INVALID,
                                "weight '%s' has zero point %d: int8 weights are symmetric",
                                w->name, (int)w->quant_zero_point[i]);
    if (b) {
        if (b->dtype != EB_INT32 || !b->is_constant || !b->const_data)
            return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                                "bias '%s' must be an INT32 constant for the int8 kernel", b->name);
        if (b->count != m)
            return eb_node_fail(node, err, EBO_INVALID, "bias '%s' has %lld values, expected %lld",
                                b->name, (long long)b->count, (long long)m);
    }
    const double s_in = (double)x->quant_scale[0], s_out = (double)y->quant_scale[0];
    const int8_t *wd = (const int8_t *)w->const_data;
    const int32_t *bd = b ? (const int32_t *)b->const_data : NULL;
    for (int64_t c = 0; c < m; c++) {
        const double sw = (double)w->quant_scale[w->quant_count == 1 ? 0 : c];
        eb_status st = eb_q_multiplier(node, err, s_in * sw / s_out, "s_in * s_w / s_out",
                                       &mult[c]);
        if (st != EB_OK)
            return st;
        int64_t bound = bd ? (bd[c] < 0 ? -(int64_t)bd[c] : (int64_t)bd[c]) : 0;
        bound += eb_q_abs_sum(wd + c * k, k) * 255;
        if (bound > INT32_MAX)
            return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                                "output channel %lld could overflow the int32 accumulator "
                                "(sum |w| * 255 + |bias| = %lld)", (long long)c,
                                (long long)bound);
    }
    return EB_OK;
}

/* Requantizes one run of accumulators (one output channel c) to int8. */
static inline void eb_q_requant_row(const int32_t *acc, int64_t n, int32_t bias, eb_qmult m,
                                    int32_t zp, int32_t lo, int32_t hi, int8_t *y)
{
    for (int64_t t = 0; t < n; t++) {
        const int32_t v = eb_q_mbqm((int64_t)acc[t] + bias, m);
        y[t] = (int8_t)eb_q_clamp((int64_t)zp + v, lo, hi);
    }
}

#endif
