/* The fixed-point arithmetic of edgebrew's int8 scheme, bit for bit as
 * edgebrew/quant/fixed_point.py specifies it: shared by the int8 kernels (src/ops/int8/) and by
 * fine-tuning, which re-quantizes a trained int8 layer (src/train/quant.c).
 *
 * A real multiplier M is (m0, shift) with M = m0 * 2^(shift - 31), m0 in [2^30, 2^31);
 * eb_q_mbqm() is the saturating rounding doubling high multiply followed by the rounding right
 * shift, as fixed_point.multiply_by_quantized_multiplier.
 */
#ifndef EB_KERNELS_FIXED_POINT_H
#define EB_KERNELS_FIXED_POINT_H

#include <math.h>
#include <stdint.h>

#define EB_Q_MIN (-128)
#define EB_Q_MAX 127

typedef struct eb_qmult {
    int32_t m0;
    int32_t shift; /* in [-31, 30] */
} eb_qmult;

/* fixed_point.round_half_away: sign(x) * floor(|x| + 0.5), in double. */
static inline double eb_q_round_half_away(double x)
{
    const double r = floor(fabs(x) + 0.5);
    return x < 0 ? -r : r;
}

/* fixed_point.quantize_multiplier. 0: ok; 1: real >= 2^30 (too large); 2: not finite or < 0. */
static inline int eb_q_quantize_multiplier(double real, eb_qmult *out)
{
    out->m0 = 0;
    out->shift = 0;
    if (!isfinite(real) || real < 0)
        return 2;
    if (real == 0.0)
        return 0;
    int e = 0;
    const double q = frexp(real, &e);
    int64_t m = (int64_t)eb_q_round_half_away(q * 2147483648.0);
    if (m == ((int64_t)1 << 31)) {
        m /= 2;
        e += 1;
    }
    if (e < -31)
        return 0;
    if (e > 30)
        return 1;
    out->m0 = (int32_t)m;
    out->shift = e;
    return 0;
}

/* fixed_point.saturating_rounding_doubling_high_mul */
static inline int32_t eb_q_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* truncates towards zero */
}

/* fixed_point.rounding_divide_by_pot, 0 <= e <= 31 */
static inline int32_t eb_q_rdbp(int32_t x, int e)
{
    const int64_t mask = ((int64_t)1 << e) - 1;
    const int64_t xx = x;
    const int64_t rem = xx & mask;
    const int64_t threshold = (mask >> 1) + (xx < 0);
    /* arithmetic shift as floor division (no implementation-defined shift of negatives) */
    const int64_t q = xx >= 0 ? (xx >> e) : -(((-xx) + mask) >> e);
    return (int32_t)(q + (rem > threshold));
}

/* fixed_point.multiply_by_quantized_multiplier of saturate_int32(x): saturate_int32(x << left),
 * the high multiply, then the rounding right shift. */
static inline int32_t eb_q_mbqm(int64_t x, eb_qmult m)
{
    const int left = m.shift > 0 ? m.shift : 0, right = m.shift < 0 ? -m.shift : 0;
    if (x > INT32_MAX)
        x = INT32_MAX;
    if (x < INT32_MIN)
        x = INT32_MIN;
    int64_t v = x * ((int64_t)1 << left); /* |x| <= 2^31, left <= 30: fits int64 */
    if (v > INT32_MAX)
        v = INT32_MAX;
    if (v < INT32_MIN)
        v = INT32_MIN;
    return eb_q_rdbp(eb_q_srdhm((int32_t)v, m.m0), right);
}

static inline int32_t eb_q_clamp(int64_t v, int32_t lo, int32_t hi)
{
    return (int32_t)(v < lo ? lo : v > hi ? hi : v);
}

#endif /* EB_KERNELS_FIXED_POINT_H */
