/* Helpers of the int8 kernels (src/ops/int8/): the fixed-point arithmetic of
 * edgebrew/quant/fixed_point.py, bit for bit, and prepare()-time checks.
 *
 * real = scale * (q - zero_point); int8 activations are per tensor (the core verified scale
 * finite > 0 and zero point in [-128, 127]); int8 weights per output channel (zero points 0);
 * biases int32. A real multiplier M is (m0, shift) with M = m0 * 2^(shift - 31), m0 in
 * [2^30, 2^31); eb_q_mbqm() is the saturating rounding doubling high multiply followed by the
 * rounding right shift (ties away from zero), as fixed_point.multiply_by_quantized_multiplier.
 */
#ifndef EB_OPS_INT8_COMMON_H
#define EB_OPS_INT8_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../ops_common.h"
#include "../../kernels/fixed_point.h"

/* Fails unless t has dtype `dt` and is an activation. */
static inline eb_status eb_q_expect(eb_node *node, eb_error *err, const eb_tensor *t,
                                    const char *role, int index, eb_dtype dt)
{
    static const char *const names[] = {"FLOAT32", "FLOAT16", "INT8", "UINT8", "INT32"};
    const int d = (int)t->dtype;
    if (d != (int)dt)
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                            "%s %d '%s' is %s, the int8 kernel needs %s", role, index, t->name,
                            d >= 0 && d <= 4 ? names[d] : "?", names[dt]);
    if (t->is_constant)
        return eb_node_fail(node, err, EBO_INVALID, "%s %d '%s' is a constant", role, index,
                            t->name);
    if (dt == EB_INT8 && (t->quant_count != 1 || t->quant_axis != -1))
        return eb_node_fail(node, err, EBO_INVALID,
                            "%s %d '%s' needs per-tensor quantization parameters", role, index,
                            t->name);
    return EB_OK;
}

/* Every input and output INT8 (activations, per tensor). */
static inline eb_status eb_q_expect_all_int8(eb_node *node, eb_error *err)
{
    eb_status st;
    for (int i = 0; i < node->n_inputs; i++)
        if ((st = eb_q_expect(node, err, node->inputs[i], "input", i, EB_INT8)) != EB_OK)
            return st;
    for (int i = 0; i < node->n_outputs; i++)
        if ((st = eb_q_expect(node, err, node->outputs[i], "output", i, EB_INT8)) != EB_OK)
            return st;
    return EB_OK;
}

static inline int eb_q_same_grid(const eb_tensor *a, const eb_tensor *b)
{
    return a->quant_scale[0] == b->quant_scale[0] &&
           a->quant_zero_point[0] == b->quant_zero_point[0];
}

/* Every output on input 0's grid (ops that move or compare values without rescaling). */
static inline eb_status eb_q_outputs_same_grid(eb_node *node, eb_error *err)
{
    for (int i = 0; i < node->n_outputs; i++)
        if (!eb_q_same_grid(node->inputs[0], node->outputs[i]))
            return eb_node_fail(node, err, EBO_INVALID,
                                "int8 output '%s' must keep the quantization parameters of input "
                                "'%s' (scale %g, zero point %d)", node->outputs[i]->name,
                                node->inputs[0]->name, (double)node->inputs[0]->quant_scale[0],
                                (int)node->inputs[0]->quant_zero_point[0]);
    return EB_OK;
}

/* A multiplier, failing with a message naming `what` when it is out of range. */
static inline eb_status eb_q_multiplier(eb_node *node, eb_error *err, double real,
                                        const char *what, eb_qmult *out)
{
    const int r = eb_q_quantize_multiplier(real, out);
    if (r == 1)
        return eb_node_fail(node, err, EBO_INVALID,
                            "requantization multiplier %s = %g is too large (>= 2^30): the "
                            "quantization scales are inconsistent", what, real);
    if (r == 2)
        return eb_node_fail(node, err, EBO_INVALID,
                            "requantization multiplier %s = %g is not a finite value >= 0", what,
                            real);
    return EB_OK;
}

/* fixed_point.quantize_real: zero_point + round_half_away(value / scale), clamped to a range
 * that keeps it an exact int (only its comparison with [-128, 127] matters). */
static inline int64_t eb_q_quantize_real(double value, double scale, int32_t zp)
{
    double v = eb_q_round_half_away(value / scale) + (double)zp;
    if (v > 1e12)
        v = 1e12;
    if (v < -1e12)
        v = -1e12;
    return (int64_t)v;
}

/* fixed_point.activation_range over the node's fused activation (attributes `activation`,
 * `negative_slope`, `clip_min`, `clip_max`) and its output grid. */
static inline eb_status eb_q_activation_range(eb_node *node, eb_error *err, const eb_tensor *out,
                                              int32_t *lo_out, int32_t *hi_out)
{
    const char *act = NULL;
    eb_status st = eb_attr_string(node, "activation", NULL, &act, err);
    if (st != EB_OK)
        return st;
    const double scale = (double)out->quant_scale[0];
    const int32_t zp = out->quant_zero_point[0];
    int64_t lo = EB_Q_MIN, hi = EB_Q_MAX;
    if (act == NULL || act[0] == '\0' || strcmp(act, "none") == 0) {
    } else if (strcmp(act, "ReLU") == 0) {
        double slope = 0;
        if ((st = eb_attr_float(node, "negative_slope", 0.0, &slope, err)) != EB_OK)
            return st;
        if (slope != 0.0)
            return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                                "a fused leaky ReLU (negative_slope %g) has no int8 form", slope);
        lo = zp > lo ? zp : lo;
    } else if (strcmp(act, "Clip") == 0) {
        double cmin = 0, cmax = 0;
        if (!eb_attr_has(node, "clip_min") || !eb_attr_has(node, "clip_max"))
            return eb_node_fail(node, err, EBO_INVALID, "a fused Clip needs clip_min and clip_max");
        if ((st = eb_attr_float(node, "clip_min", 0.0, &cmin, err)) != EB_OK ||
            (st = eb_attr_float(node, "clip_max", 0.0, &cmax, err)) != EB_OK)
            return st;
        if (!isfinite(cmin) || !isfinite(cmax))
            return eb_node_fail(node, err, EBO_INVALID, "fused Clip bounds must be finite");
        const int64_t qlo = eb_q_quantize_real(cmin, scale, zp);
        const int64_t qhi = eb_q_quantize_real(cmax, scale, zp);
        lo = qlo > lo ? qlo : lo;
        hi = qhi < hi ? qhi : hi;
    } else {
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                            "a fused %s has no int8 form (only ReLU and Clip)", act);
    }
    if (lo > hi) {
        int64_t v = lo < EB_Q_MIN ? EB_Q_MIN : lo;
        v = v > EB_Q_MAX ? EB_Q_MAX : v;
        lo = hi = v;
    }
    *lo_out = (int32_t)lo;
    *hi_out = (int32_t)hi;
    return EB_OK;
}

/* fixed_point.rescale as a 256-entry table: lut[q + 128] = clamp(out_zp + MBQM((q - in_zp) *
 * 2^20, (s_in / s_out) * 2^-20)) (RESCALE_SHIFT = 20: one rounding at full precision). Fails
 * when the multiplier is too large. *identity: every entry maps q to itself. */
#define EB_Q_RESCALE_SHIFT 20
static inline eb_status eb_q_rescale_lut(eb_node *node, eb_error *err, const eb_tensor *in,
                                         const eb_tensor *out, int8_t lut[256], int *identity)
{
    eb_qmult m;
    const double real = (double)in->quant_scale[0] / (double)out->quant_scale[0];
    eb_status st = eb_q_multiplier(node, err, ldexp(real, -EB_Q_RESCALE_SHIFT),
                                   "(input scale / output scale) * 2^-20", &m);
    if (st != EB_OK)
        return st;
    const int32_t zi = in->quant_zero_point[0], zo = out->quant_zero_point[0];
    int id = 1;
    for (int q = EB_Q_MIN; q <= EB_Q_MAX; q++) {
        const int64_t x = (int64_t)(q - zi) * ((int64_t)1 << EB_Q_RESCALE_SHIFT);
        const int32_t v = eb_q_clamp((int64_t)zo + eb_q_mbqm(x, m), EB_Q_MIN, EB_Q_MAX);
        lut[q + 128] = (int8_t)v;
        id &= v == q;
    }
    if (identity)
        *identity = id;
    return EB_OK;
}

static inline void eb_q_apply_lut(const int8_t *x, int8_t *y, int64_t n, const int8_t lut[256])
{
    for (int64_t i = 0; i < n; i++)
        y[i] = lut[x[i] + 128];
}

/* Runs the float kernel's prepare() on a shadow of the node whose activations are FLOAT32:
 * the attribute and shape rules of an op are written once, in its float file. What it
 * allocates is discarded. */
static inline eb_status eb_q_check_like_float(eb_node *node, eb_error *err)
{
    const eb_op_kernel *k = eb_find_kernel(node->type);
    if (!k)
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED, "no float kernel to check shapes");
    const int n = node->n_inputs + node->n_outputs;
    eb_tensor *shadow = (eb_tensor *)malloc((size_t)(n > 0 ? n : 1) * sizeof(eb_tensor));
    const eb_tensor **ptrs =
        (const eb_tensor **)malloc((size_t)(n > 0 ? n : 1) * sizeof(eb_tensor *));
    if (!shadow || !ptrs) {
        free(shadow);
        free((void *)ptrs);
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        shadow[i] = i < node->n_inputs ? *node->inputs[i] : *node->outputs[i - node->n_inputs];
        shadow[i].dtype = EB_FLOAT32;
        shadow[i].quant_count = 0;
        shadow[i].quant_axis = -1;
        shadow[i].quant_scale = NULL;
        shadow[i].quant_zero_point = NULL;
        ptrs[i] = &shadow[i];
    }
    eb_node copy = *node;
    copy.inputs = ptrs;
    copy.outputs = ptrs + node->n_inputs;
    copy.params = NULL;
    copy.scratch_bytes = 0;
    const eb_status st = k->prepare(&copy, err);
    free(copy.params);
    free(shadow);
    free((void *)ptrs);
    return st;
}

#endif /* EB_OPS_INT8_COMMON_H */
