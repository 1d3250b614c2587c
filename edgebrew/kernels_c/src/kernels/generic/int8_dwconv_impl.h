/* The int8 depthwise convolution (kernels.h: dwconv_s8_*), compiled once per ISA with
 * sgemm_impl.h (after int8_gemm_impl.h). Not a header to include elsewhere.
 *
 * Staging: the plane minus its zero point as int16, with a zero border (the padding is the
 * real value 0, as int8_reference pads) and, for a column stride sw > 1, each padded row split
 * into sw phase rows (columns q, q + sw, ...): tap (i, j) of output (oy, ox) is then at
 * pad[oy * sh * ld + i * dh * ld + ((j * dw) % sw) * ldp + ox + (j * dw) / sw], so adjacent
 * outputs read adjacent int16 for every tap. EB_DWS8_SLACK int16 past the plane let a vector
 * block read past the last row (lanes that are dropped).
 *
 * Plane: with AVX2 / AVX-512 (EB_I8_AVX2 / EB_I8_AVX512), output rows in blocks of 16 pixels
 * (then one of 8), taps in pairs: the two taps' inputs interleaved (unpacklo / unpackhi_epi16)
 * and multiplied by the pair of weights with one pmaddwd per 8 pixels, summed in int32; a
 * block past the row's end computes its extra lanes from the slack and drops them. Otherwise
 * plain C: each tap adds weight * its input row into the int32 output row (vectorizable).
 * Integer sums are exact: every variant gives the same acc. */
#include <stdint.h>
#include <string.h>

#define EB_DWS8_SLACK 64
#define EB_DWS8_TAPS 64 /* taps kept in registers / on the stack; bigger kernels go tap by tap */

static void eb_dws8_geometry(int64_t w, const eb_window *wn, int64_t *ldp, int64_t *ld)
{
    *ldp = (w + 2 * wn->pw + wn->sw - 1) / wn->sw;
    *ld = wn->sw * *ldp;
}

static size_t eb_dwconv_s8_pad_count_impl(int64_t h, int64_t w, const eb_window *wn)
{
    int64_t ldp, ld;
    eb_dws8_geometry(w, wn, &ldp, &ld);
    return (size_t)((h + 2 * wn->ph) * ld + EB_DWS8_SLACK);
}

static void eb_dwconv_s8_stage_impl(const int8_t *x, int64_t h, int64_t w, int32_t zp,
                                    const eb_window *wn, int16_t *pad)
{
    const int64_t ph = wn->ph, pw = wn->pw, sw = wn->sw;
    int64_t ldp, ld;
    eb_dws8_geometry(w, wn, &ldp, &ld);
    const int16_t z = (int16_t)zp;
    memset(pad, 0, (size_t)(ph * ld) * sizeof(int16_t));
    memset(pad + (ph + h) * ld, 0, (size_t)(ph * ld + EB_DWS8_SLACK) * sizeof(int16_t));
    for (int64_t r = 0; r < h; r++) {
        int16_t *restrict dst = pad + (r + ph) * ld;
        const int8_t *restrict in = x + r * w;
        if (sw == 1) {
            for (int64_t c = 0; c < pw; c++) dst[c] = 0;
            int64_t c = 0;
#if defined(EB_I8_AVX512) || defined(EB_I8_AVX2)
            const __m256i zv = _mm256_set1_epi16(z);
            for (; c + 16 <= w; c += 16)
                _mm256_storeu_si256(
                    (__m256i *)(void *)(dst + pw + c),
                    _mm256_sub_epi16(
                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(in + c))),
                        zv));
#endif
            for (; c < w; c++) dst[pw + c] = (int16_t)(in[c] - z);
            for (int64_t c = pw + w; c < ldp; c++) dst[c] = 0;
        } else if (sw == 2) {
            int16_t *restrict d0 = dst, *restrict d1 = dst + ldp;
            /* padded columns 2 pos and 2 pos + 1 both inside the row for pos in [lo, hi) */
            int64_t lo = (pw + 1) / 2, hi = (w + pw) / 2;
            if (hi > ldp) hi = ldp;
            if (lo > hi) lo = hi;
            for (int64_t pos = 0; pos < lo; pos++) {
                const int64_t c0 = 2 * pos - pw, c1 = c0 + 1;
                d0[pos] = (c0 >= 0 && c0 < w) ? (int16_t)(in[c0] - z) : 0;
                d1[pos] = (c1 >= 0 && c1 < w) ? (int16_t)(in[c1] - z) : 0;
            }
            const int8_t *restrict pair = in + (2 * lo - pw); /* in the row when lo < hi */
            int64_t pos = 0;
#if defined(EB_I8_AVX512) || defined(EB_I8_AVX2)
            /* 32 input bytes: even ones to the low 8 bytes of each lane, odd ones to the high
             * 8 (pshufb), lanes' halves gathered (vpermq), widened and offset */
            const __m256i zv = _mm256_set1_epi16(z);
            const __m256i deint = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11,
                                                   13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5,
                                                   7, 9, 11, 13, 15);
            for (; pos + 16 <= hi - lo; pos += 16) {
                const __m256i v = _mm256_permute4x64_epi64(
                    _mm256_shuffle_epi8(
                        _mm256_loadu_si256((const __m256i *)(const void *)(pair + 2 * pos)),
                        deint),
                    0xD8);
                _mm256_storeu_si256(
                    (__m256i *)(void *)(d0 + lo + pos),
                    _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)), zv));
                _mm256_storeu_si256(
                    (__m256i *)(void *)(d1 + lo + pos),
                    _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1)), zv));
            }
#endif
            for (; pos < hi - lo; pos++) {
                d0[lo + pos] = (int16_t)(pair[2 * pos] - z);
                d1[lo + pos] = (int16_t)(pair[2 * pos + 1] - z);
            }
            for (int64_t pos = hi; pos < ldp; pos++) {
                const int64_t c0 = 2 * pos - pw, c1 = c0 + 1;
                d0[pos] = (c0 >= 0 && c0 < w) ? (int16_t)(in[c0] - z) : 0;
                d1[pos] = (c1 >= 0 && c1 < w) ? (int16_t)(in[c1] - z) : 0;
            }
        } else { /* padded column c = pos * sw + q goes to phase q, position pos */
            for (int64_t q = 0; q < sw; q++) {
                int16_t *d = dst + q * ldp;
                for (int64_t pos = 0; pos < ldp; pos++) {
                    const int64_t c = pos * sw + q - pw;
                    d[pos] = (c >= 0 && c < w) ? (int16_t)(in[c] - z) : 0;
                }
            }
        }
    }
}

#if defined(EB_I8_AVX512) || defined(EB_I8_AVX2)
/* 16 outputs from `b` (pixels b[0..15] of tap offset 0): npairs tap pairs (toff, weight pair
 * (w0 low, w1 high) in wp). */
static inline void eb_dws8_block16(const int16_t *b, const int64_t *toff, const int32_t *wp,
                                   int64_t npairs, __m256i *r0, __m256i *r1)
{
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    for (int64_t p = 0; p < npairs; p++) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(b + toff[2 * p]));
        const __m256i c =
            _mm256_loadu_si256((const __m256i *)(const void *)(b + toff[2 * p + 1]));
        const __m256i wv = _mm256_set1_epi32(wp[p]);
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, c), wv));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, c), wv));
    }
    /* s0: pixels 0-3 | 8-11, s1: 4-7 | 12-15 */
    *r0 = _mm256_permute2x128_si256(s0, s1, 0x20);
    *r1 = _mm256_permute2x128_si256(s0, s1, 0x31);
}

/* The 3x3 kernel (5 pairs, the last with a zero weight) with its weights in registers, two
 * 16-pixel blocks per step. */
static inline void eb_dws8_row3x3(const int16_t *b, const int64_t *toff, const int32_t *wp,
                                  int64_t ow, int32_t *out)
{
    const __m256i w0 = _mm256_set1_epi32(wp[0]), w1 = _mm256_set1_epi32(wp[1]);
    const __m256i w2 = _mm256_set1_epi32(wp[2]), w3 = _mm256_set1_epi32(wp[3]);
    const __m256i w4 = _mm256_set1_epi32(wp[4]);
    const int64_t t0 = toff[0], t1 = toff[1], t2 = toff[2], t3 = toff[3], t4 = toff[4];
    const int64_t t5 = toff[5], t6 = toff[6], t7 = toff[7], t8 = toff[8];
#define EB_DWS8_LD(o) _mm256_loadu_si256((const __m256i *)(const void *)(q + (o)))
#define EB_DWS8_PAIR(ta, tb, wv)                                                              \
    do {                                                                                      \
        const __m256i a_ = EB_DWS8_LD(ta), c_ = EB_DWS8_LD(tb);                               \
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_unpacklo_epi16(a_, c_), wv));      \
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_unpackhi_epi16(a_, c_), wv));      \
    } while (0)
    int64_t ox = 0;
    for (; ox < ow; ox += 16) {
        const int16_t *q = b + ox;
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
        EB_DWS8_PAIR(t0, t1, w0);
        EB_DWS8_PAIR(t2, t3, w1);
        EB_DWS8_PAIR(t4, t5, w2);
        EB_DWS8_PAIR(t6, t7, w3);
        {
            const __m256i a_ = EB_DWS8_LD(t8), c_ = _mm256_setzero_si256();
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_unpacklo_epi16(a_, c_), w4));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_unpackhi_epi16(a_, c_), w4));
        }
        const __m256i r0 = _mm256_permute2x128_si256(s0, s1, 0x20);
        const __m256i r1 = _mm256_permute2x128_si256(s0, s1, 0x31);
        if (ox + 16 <= ow) {
            _mm256_storeu_si256((__m256i *)(void *)(out + ox), r0);
            _mm256_storeu_si256((__m256i *)(void *)(out + ox + 8), r1);
        } else {
            int32_t tmp[16];
            _mm256_storeu_si256((__m256i *)(void *)tmp, r0);
            _mm256_storeu_si256((__m256i *)(void *)(tmp + 8), r1);
            memcpy(out + ox, tmp, (size_t)(ow - ox) * sizeof(int32_t));
        }
    }
#undef EB_DWS8_PAIR
#undef EB_DWS8_LD
}
#endif

static void eb_dwconv_s8_plane_impl(const int16_t *pad, int64_t h, int64_t w, const int8_t *k,
                                    const eb_window *wn, int64_t oh, int64_t ow, int32_t *acc)
{
    (void)h;
    const int64_t kh = wn->kh, kw = wn->kw, sw = wn->sw, ntaps = kh * kw;
    int64_t ldp, ld;
    eb_dws8_geometry(w, wn, &ldp, &ld);
    const int64_t rstride = wn->sh * ld;
    if (ntaps > EB_DWS8_TAPS) { /* big kernels: tap by tap over each output row */
        for (int64_t oy = 0; oy < oh; oy++) {
            int32_t *out = acc + oy * ow;
            for (int64_t ox = 0; ox < ow; ox++) out[ox] = 0;
            for (int64_t i = 0; i < kh; i++)
                for (int64_t j = 0; j < kw; j++) {
                    const int64_t jd = j * wn->dw;
                    const int16_t *src =
                        pad + oy * rstride + i * wn->dh * ld + (jd % sw) * ldp + jd / sw;
                    const int32_t wt = k[i * kw + j];
                    for (int64_t ox = 0; ox < ow; ox++) out[ox] += wt * (int32_t)src[ox];
                }
        }
        return;
    }
    int64_t toff[EB_DWS8_TAPS + 1];
    int32_t tw[EB_DWS8_TAPS + 1];
    for (int64_t i = 0; i < kh; i++)
        for (int64_t j = 0; j < kw; j++) {
            const int64_t jd = j * wn->dw;
            toff[i * kw + j] = i * wn->dh * ld + (jd % sw) * ldp + jd / sw;
            tw[i * kw + j] = k[i * kw + j];
        }
    toff[ntaps] = toff[ntaps - 1]; /* an odd count's last pair: its second tap weighs 0 */
    tw[ntaps] = 0;
#if defined(EB_I8_AVX512) || defined(EB_I8_AVX2)
    const int64_t npairs = (ntaps + 1) / 2;
    int32_t wp[EB_DWS8_TAPS / 2 + 1];
    for (int64_t p = 0; p < npairs; p++)
        wp[p] = (int32_t)((uint32_t)(uint16_t)(int16_t)tw[2 * p] |
                          ((uint32_t)(uint16_t)(int16_t)tw[2 * p + 1] << 16));
    for (int64_t oy = 0; oy < oh; oy++) {
        const int16_t *b = pad + oy * rstride;
        int32_t *out = acc + oy * ow;
        if (ntaps == 9) {
            eb_dws8_row3x3(b, toff, wp, ow, out);
            continue;
        }
        for (int64_t ox = 0; ox < ow; ox += 16) {
            __m256i r0, r1;
            eb_dws8_block16(b + ox, toff, wp, npairs, &r0, &r1);
            if (ox + 16 <= ow) {
                _mm256_storeu_si256((__m256i *)(void *)(out + ox), r0);
                _mm256_storeu_si256((__m256i *)(void *)(out + ox + 8), r1);
            } else {
                int32_t tmp[16];
                _mm256_storeu_si256((__m256i *)(void *)tmp, r0);
                _mm256_storeu_si256((__m256i *)(void *)(tmp + 8), r1);
                memcpy(out + ox, tmp, (size_t)(ow - ox) * sizeof(int32_t));
            }
        }
    }
#else
    for (int64_t oy = 0; oy < oh; oy++) {
        const int16_t *b = pad + oy * rstride;
        int32_t *restrict out = acc + oy * ow;
        for (int64_t ox = 0; ox < ow; ox++) out[ox] = 0;
        for (int64_t t = 0; t < ntaps; t++) {
            const int16_t *restrict src = b + toff[t];
            const int32_t wt = tw[t];
            for (int64_t ox = 0; ox < ow; ox++) out[ox] += wt * (int32_t)src[ox];
        }
    }
#endif
}
