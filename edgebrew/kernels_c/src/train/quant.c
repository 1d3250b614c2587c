/* Precision of the trained layer when the bundle is int8 or fp16 (train.h, "quant.c").
 *
 * int8: the converter's weight quantization (edgebrew/quant/quantizer.py: _weight_int8 and
 * _quantize_weights), re-done on the trained float32 weights, and the integer arithmetic of the
 * int8 Convolution / InnerProduct kernels (edgebrew/quant/fixed_point.py), so that evaluation
 * sees the head exactly as the saved bundle runs it. Written here (not shared with
 * src/ops/int8/) so the training code depends on the specification only; the tests check both
 * against the Python reference bit for bit.
 *
 * fp16: IEEE 754 binary32 -> binary16 rounding to nearest, ties to even (what NumPy's
 * astype(float16) does), and back.
 */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "train.h"

double eb_tq_round_half_away(double x) {
    const double r = floor(fabs(x) + 0.5);
    return x < 0 ? -r : r;
}

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
            double q = eb_tq_round_half_away((double)row[i] / (double)sf);
            if (q > 127.0) q = 127.0;
            if (q < -127.0) q = -127.0;
            qw[c * k + i] = (int8_t)q;
        }
        if (b && qb) {
            const double bs = (double)s_in * (double)sf;
            double q = eb_tq_round_half_away((double)b[c] / bs);
            if (q > 2147483647.0) q = 2147483647.0;
            if (q < -2147483648.0) q = -2147483648.0;
            qb[c] = (int32_t)q;
        }
    }
}

/* fixed_point.quantize_multiplier: 0 ok; 1 real >= 2^30; 2 not finite or < 0. */
int eb_tq_multiplier(double real, eb_tq_mult *out) {
    out->m0 = 0;
    out->shift = 0;
    if (!isfinite(real) || real < 0) return 2;
    if (real == 0.0) return 0;
    int e = 0;
    const double q = frexp(real, &e);
    int64_t m = (int64_t)eb_tq_round_half_away(q * 2147483648.0);
    if (m == ((int64_t)1 << 31)) {
        m /= 2;
        e += 1;
    }
    if (e < -31) return 0;
    if (e > 30) return 1;
    out->m0 = (int32_t)m;
    out->shift = e;
    return 0;
}

/* fixed_point.saturating_rounding_doubling_high_mul */
static int32_t srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates */
}

/* fixed_point.rounding_divide_by_pot, 0 <= e <= 31 */
static int32_t rdbp(int32_t x, int e) {
    const int64_t mask = ((int64_t)1 << e) - 1;
    const int64_t xx = x;
    const int64_t rem = xx & mask;
    const int64_t threshold = (mask >> 1) + (xx < 0);
    const int64_t q = xx >= 0 ? (xx >> e) : -(((-xx) + mask) >> e); /* floor division */
    return (int32_t)(q + (rem > threshold));
}

/* fixed_point.multiply_by_quantized_multiplier(saturate_int32(x), m): x is an exact int64 sum. */
int32_t eb_tq_mbqm(int64_t x, eb_tq_mult m) {
    const int left = m.shift > 0 ? m.shift : 0, right = m.shift < 0 ? -m.shift : 0;
    if (x > INT32_MAX) x = INT32_MAX;
    if (x < INT32_MIN) x = INT32_MIN;
    int64_t v = x * ((int64_t)1 << left); /* |x| <= 2^31, left <= 30: fits int64 */
    if (v > INT32_MAX) v = INT32_MAX;
    if (v < INT32_MIN) v = INT32_MIN;
    return rdbp(srdhm((int32_t)v, m.m0), right);
}

uint16_t eb_train_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf, NaN (quiet, payload's top bits kept) */
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0u));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: rounds to inf */
    if (a >= 0x38800000u) { /* a normal half (>= 2^-14) */
        uint32_t h = ((a >> 23) - 112u) << 10 | ((a >> 13) & 0x3ffu);
        const uint32_t rem = a & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* a carry bumps the exponent */
        return (uint16_t)(sign | h);
    }
    if (a <= 0x33000000u) return sign; /* <= 2^-25: rounds to (signed) zero */
    /* a subnormal half: units of 2^-24 */
    const uint32_t e = a >> 23;                 /* 102 .. 112 */
    const uint32_t man = (a & 0x7fffffu) | 0x800000u;
    const int shift = (int)(126u - e);          /* 14 .. 24 */
    uint32_t h = man >> shift;
    const uint32_t rem = man & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) h++; /* 0x400: the smallest normal */
    return (uint16_t)(sign | h);
}

float eb_train_half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1fu) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while ((man & 0x400u) == 0);
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

int eb_train_fits_half(const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (fabsf(v[i]) > 65504.0f) return 0; /* as quantizer.to_fp16: keep such blobs float32 */
    return 1;
}
