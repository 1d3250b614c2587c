/* Precision of the trained layer when the bundle is int8 or fp16 (train.h, "quant.c").
 *
 * int8: the converter's weight quantization (edgebrew/quant/quantizer.py: _weight_int8 and
 * _quantize_weights), re-done on the trained float32 weights, and the integer arithmetic of the
 * int8 Convolution / InnerProduct kernels (edgebrew/quant/fixed_point.py), so that evaluation
 * sees the head exactly as the saved bundle runs it. The arithmetic is
 * kernels/fixed_point.h, shared with the int8 kernels; the tests check it against the Python
 * reference bit for bit.
 *
 * fp16: IEEE 754 binary32 -> binary16 rounding to nearest, ties to even (what NumPy's
 * astype(float16) does), and back.
 */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "kernels/fixed_point.h"
#include "train.h"

/* quantizer._weight_int8 with min_scale = |b| / (s_in * BIAS_LIMIT), then the bias on the
 * s_in * scale_c grid:
 *   scale_c = float32(max(float32(max_k |W_ck|) / 127 in float32 (1.0 for an all-zero channel),
 *                         |b_c| / (s_in * 2^30) in double))
 *   q = clamp(round_half_away(W / scale_c), -127, 127) in double
 *   q_b = clamp(round_half_away(b / (s_in * scale_c)), INT32_MIN, INT32_MAX) in double.
 * One deviation, where the converter would write an invalid bundle: a channel whose
 * max|W| / 127 underflows float32 to 0 is treated as all-zero (scale 1.0). Weights must be
 * finite (checked by the caller). */
void eb_tq_quantize_weights(const float *w, const float *b, int64_t n, int64_t k, float s_in,
                            int8_t *qw, int32_t *qb, float *scale) {
    const double bias_limit = 1073741824.0; /* quantizer.BIAS_LIMIT = 2^30 */
    for (int64_t c = 0; c < n; c++) {
        const float *row = w + c * k;
        float absmax = 0.0f;
        for (int64_t i = 0; i < k; i++) {
            const float a = fabsf(row[i]);
            if (a > absmax) absmax = a;
        }
        float s = absmax / 127.0f;
        if (!(s > 0.0f)) s = 1.0f;
        double sd = (double)s;
        if (b) {
            const double min_scale = fabs((double)b[c]) / ((double)s_in * bias_limit);
            if (min_scale > sd) sd = min_scale;
        }
        const float sf = (float)sd;
        scale[c] = sf;
        for (int64_t i = 0; i < k; i++) {
            double q = eb_q_round_half_away((double)row[i] / (double)sf);
            if (q > 127.0) q = 127.0;
            if (q < -127.0) q = -127.0;
            qw[c * k + i] = (int8_t)q;
        }
        if (b && qb) {
            const double bs = (double)s_in * (double)sf;
            double q = eb_q_round_half_away((double)b[c] / bs);
            if (q > 2147483647.0) q = 2147483647.0;
            if (q < -2147483648.0) q = -2147483648.0;
            qb[c] = (int32_t)q;
        }
    }
}

int eb_train_fits_half(const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (fabsf(v[i]) > 65504.0f) return 0; /* as quantizer.to_fp16: keep such blobs float32 */
    return 1;
}
