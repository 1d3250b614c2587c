/* IEEE 754 binary16 <-> binary32, written out (no compiler _Float16 needed): fp16 bundles'
 * weights are widened at load (core/model.c); fine-tuning saves an fp16 layer back
 * (train/quant.c). float_to_half rounds to nearest, ties to even, as NumPy's astype(float16). */
#ifndef EB_KERNELS_HALF_H
#define EB_KERNELS_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint16_t eb_float_to_half(float f) {
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

static inline float eb_half_to_float(uint16_t h) {
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

#endif /* EB_KERNELS_HALF_H */
