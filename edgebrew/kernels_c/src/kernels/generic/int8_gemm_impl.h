/* The int8 path's GEMM and dot product in plain C, compiled once per ISA with sgemm_impl.h (it
 * includes this file before defining its kernel table). Not a header to include elsewhere.
 *
 * gemm_s8s16: for each EB_S16_NB-column panel of B and EB_S16_KC-deep block, the panel is packed
 * contiguous (zero-padded columns) on the stack, then EB_S16_MR rows of A at a time multiply it
 * into an EB_S16_MR x EB_S16_NB block of int32 accumulators (the compiler keeps them in vector
 * registers). Integer sums are exact: blocking changes nothing in the result.
 */
#include <stdint.h>

#define EB_S16_MR 4
#define EB_S16_NB 16
#define EB_S16_KC 256

static void eb_gemm_s8s16_impl(int64_t m, int64_t n, int64_t k, const int8_t *a, int64_t lda,
                               const int16_t *b, int64_t ldb, int32_t *c, int64_t ldc)
{
    int16_t bp[EB_S16_KC * EB_S16_NB];
    if (k <= 0) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = 0;
        return;
    }
    for (int64_t j0 = 0; j0 < n; j0 += EB_S16_NB) {
        const int64_t nb = EB_MIN(EB_S16_NB, n - j0);
        for (int64_t k0 = 0; k0 < k; k0 += EB_S16_KC) {
            const int64_t kc = EB_MIN(EB_S16_KC, k - k0);
            for (int64_t kk = 0; kk < kc; kk++) {
                const int16_t *br = b + (k0 + kk) * ldb + j0;
                int16_t *dst = bp + kk * EB_S16_NB;
                int64_t j = 0;
                for (; j < nb; j++) dst[j] = br[j];
                for (; j < EB_S16_NB; j++) dst[j] = 0;
            }
            int64_t i0 = 0;
            for (; i0 + EB_S16_MR <= m; i0 += EB_S16_MR) {
                int32_t acc[EB_S16_MR][EB_S16_NB];
                const int8_t *ar[EB_S16_MR];
                for (int r = 0; r < EB_S16_MR; r++) {
                    ar[r] = a + (i0 + r) * lda + k0;
                    for (int j = 0; j < EB_S16_NB; j++) acc[r][j] = 0;
                }
                for (int64_t kk = 0; kk < kc; kk++) {
                    const int16_t *bv = bp + kk * EB_S16_NB;
                    EB_UNROLL
                    for (int r = 0; r < EB_S16_MR; r++) {
                        const int32_t av = ar[r][kk];
                        EB_UNROLL
                        for (int j = 0; j < EB_S16_NB; j++) acc[r][j] += av * (int32_t)bv[j];
                    }
                }
                for (int r = 0; r < EB_S16_MR; r++) {
                    int32_t *cr = c + (i0 + r) * ldc + j0;
                    if (k0 == 0)
                        for (int64_t j = 0; j < nb; j++) cr[j] = acc[r][j];
                    else
                        for (int64_t j = 0; j < nb; j++) cr[j] += acc[r][j];
                }
            }
            for (; i0 < m; i0++) {
                int32_t acc[EB_S16_NB];
                const int8_t *ar = a + i0 * lda + k0;
                for (int j = 0; j < EB_S16_NB; j++) acc[j] = 0;
                for (int64_t kk = 0; kk < kc; kk++) {
                    const int32_t av = ar[kk];
                    const int16_t *bv = bp + kk * EB_S16_NB;
                    for (int j = 0; j < EB_S16_NB; j++) acc[j] += av * (int32_t)bv[j];
                }
                int32_t *cr = c + i0 * ldc + j0;
                if (k0 == 0)
                    for (int64_t j = 0; j < nb; j++) cr[j] = acc[j];
                else
                    for (int64_t j = 0; j < nb; j++) cr[j] += acc[j];
            }
        }
    }
}

static int32_t eb_dot_s8s16_impl(const int8_t *w, const int16_t *x, int64_t n)
{
    int32_t s = 0;
    for (int64_t i = 0; i < n; i++) s += (int16_t)w[i] * (int32_t)x[i];
    return s;
}

/* ---- packed int16 GEMM (kernels.h: pack_s16_*, gemm_s16_packed) and requantization ---------
 * The micro-kernel multiplies a kp x EB_S16P_MR x 2 block of A by a kp x EB_S16P_NR x 2 panel of
 * B: for each pair p, C[r][j] += A[r][2p] B[2p][j] + A[r][2p+1] B[2p+1][j]. With AVX2 / AVX-512
 * intrinsics (the including file defines EB_I8_AVX2 or EB_I8_AVX512) that is one pmaddwd (or
 * VNNI vpdpwssd) per row and vector; otherwise plain C. Exact integer sums: every variant gives
 * the same int32 results. */
#if defined(EB_I8_AVX512) || defined(EB_I8_AVX2)
#include <immintrin.h>
#endif

#if defined(EB_I8_AVX512)
#define EB_S16P_MR 8
#define EB_S16P_NR 32
#elif defined(EB_I8_AVX2)
#define EB_S16P_MR 4
#define EB_S16P_NR 16
#else
#define EB_S16P_MR 4
#define EB_S16P_NR 8
#endif

static size_t eb_pack_s16_a_count_impl(int64_t m, int64_t k)
{
    const int64_t mb = (m + EB_S16P_MR - 1) / EB_S16P_MR, kp = (k + 1) / 2;
    return (size_t)(mb * kp * EB_S16P_MR * 2);
}

static size_t eb_pack_s16_b_count_impl(int64_t k, int64_t n)
{
    const int64_t nb = (n + EB_S16P_NR - 1) / EB_S16P_NR, kp = (k + 1) / 2;
    return (size_t)(nb * kp * EB_S16P_NR * 2);
}

static void eb_pack_s16_a_impl(int64_t m, int64_t k, const int8_t *a, int64_t lda, int16_t *dst)
{
    const int64_t kp = (k + 1) / 2;
    for (int64_t i0 = 0; i0 < m; i0 += EB_S16P_MR)
        for (int64_t p = 0; p < kp; p++)
            for (int r = 0; r < EB_S16P_MR; r++, dst += 2) {
                const int64_t i = i0 + r;
                dst[0] = i < m ? a[i * lda + 2 * p] : 0;
                dst[1] = i < m && 2 * p + 1 < k ? a[i * lda + 2 * p + 1] : 0;
            }
}

static void eb_pack_s16_b_impl(int64_t k, int64_t n, const int8_t *x, int64_t ldx, int32_t zp,
                               int16_t *dst)
{
    const int64_t kp = (k + 1) / 2;
    const int16_t z = (int16_t)zp;
    for (int64_t j0 = 0; j0 < n; j0 += EB_S16P_NR) {
        const int64_t nb = EB_MIN((int64_t)EB_S16P_NR, n - j0);
        for (int64_t p = 0; p < kp; p++, dst += 2 * EB_S16P_NR) {
            const int8_t *r0 = x + 2 * p * ldx + j0;
            const int8_t *r1 = 2 * p + 1 < k ? r0 + ldx : NULL;
            if (nb == EB_S16P_NR && r1) {
#if defined(EB_I8_AVX512)
                /* 32-bit lane j: (r0[j] - zp) in the low half, (r1[j] - zp) in the high one */
                const __m512i zv = _mm512_set1_epi32(zp), lo16 = _mm512_set1_epi32(0xffff);
                for (int h = 0; h < 2; h++) {
                    const __m512i a = _mm512_sub_epi32(
                        _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(r0 + 16 * h))), zv);
                    const __m512i b = _mm512_sub_epi32(
                        _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(r1 + 16 * h))), zv);
                    _mm512_storeu_si512((void *)(dst + 32 * h),
                                        _mm512_or_si512(_mm512_and_si512(a, lo16),
                                                        _mm512_slli_epi32(b, 16)));
                }
#elif defined(EB_I8_AVX2)
                const __m256i zv = _mm256_set1_epi32(zp), lo16 = _mm256_set1_epi32(0xffff);
                for (int h = 0; h < 2; h++) {
                    const __m256i a = _mm256_sub_epi32(
                        _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(r0 + 8 * h))), zv);
                    const __m256i b = _mm256_sub_epi32(
                        _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(r1 + 8 * h))), zv);
                    _mm256_storeu_si256((__m256i *)(void *)(dst + 16 * h),
                                        _mm256_or_si256(_mm256_and_si256(a, lo16),
                                                        _mm256_slli_epi32(b, 16)));
                }
#else
                EB_UNROLL
                for (int j = 0; j < EB_S16P_NR; j++) {
                    dst[2 * j] = (int16_t)(r0[j] - z);
                    dst[2 * j + 1] = (int16_t)(r1[j] - z);
                }
#endif
            } else {
                for (int j = 0; j < EB_S16P_NR; j++) {
                    dst[2 * j] = j < nb ? (int16_t)(r0[j] - z) : 0;
                    dst[2 * j + 1] = j < nb && r1 ? (int16_t)(r1[j] - z) : 0;
                }
            }
        }
    }
}

#if defined(EB_I8_AVX512)
#if defined(__GNUC__) && !defined(__clang__)
#define EB_I8_HAVE_VNNI 1
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) static void
eb_s16_micro_vnni(int64_t kp, const int16_t *ap, const int16_t *bp, int32_t *c, int64_t ldc)
{
    __m512i acc[EB_S16P_MR][2];
    for (int r = 0; r < EB_S16P_MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    for (int64_t p = 0; p < kp; p++, ap += 2 * EB_S16P_MR, bp += 2 * EB_S16P_NR) {
        const __m512i b0 = _mm512_loadu_si512((const void *)bp);
        const __m512i b1 = _mm512_loadu_si512((const void *)(bp + 32));
        EB_UNROLL
        for (int r = 0; r < EB_S16P_MR; r++) {
            int32_t w;
            memcpy(&w, ap + 2 * r, sizeof w);
            const __m512i a = _mm512_set1_epi32(w);
            acc[r][0] = _mm512_dpwssd_epi32(acc[r][0], a, b0);
            acc[r][1] = _mm512_dpwssd_epi32(acc[r][1], a, b1);
        }
    }
    for (int r = 0; r < EB_S16P_MR; r++) {
        _mm512_storeu_si512((void *)(c + r * ldc), acc[r][0]);
        _mm512_storeu_si512((void *)(c + r * ldc + 16), acc[r][1]);
    }
}
#endif

/* C tile (EB_S16P_MR x EB_S16P_NR, ldc) = kp pairs of ap x bp. */
static void eb_s16_micro(int64_t kp, const int16_t *ap, const int16_t *bp, int32_t *c,
                         int64_t ldc)
{
    __m512i acc[EB_S16P_MR][2];
    for (int r = 0; r < EB_S16P_MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    for (int64_t p = 0; p < kp; p++, ap += 2 * EB_S16P_MR, bp += 2 * EB_S16P_NR) {
        const __m512i b0 = _mm512_loadu_si512((const void *)bp);
        const __m512i b1 = _mm512_loadu_si512((const void *)(bp + 32));
        EB_UNROLL
        for (int r = 0; r < EB_S16P_MR; r++) {
            int32_t w;
            memcpy(&w, ap + 2 * r, sizeof w);
            const __m512i a = _mm512_set1_epi32(w);
            acc[r][0] = _mm512_add_epi32(acc[r][0], _mm512_madd_epi16(a, b0));
            acc[r][1] = _mm512_add_epi32(acc[r][1], _mm512_madd_epi16(a, b1));
        }
    }
    for (int r = 0; r < EB_S16P_MR; r++) {
        _mm512_storeu_si512((void *)(c + r * ldc), acc[r][0]);
        _mm512_storeu_si512((void *)(c + r * ldc + 16), acc[r][1]);
    }
}
#elif defined(EB_I8_AVX2)
static void eb_s16_micro(int64_t kp, const int16_t *ap, const int16_t *bp, int32_t *c,
                         int64_t ldc)
{
    __m256i acc[EB_S16P_MR][2];
    for (int r = 0; r < EB_S16P_MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int64_t p = 0; p < kp; p++, ap += 2 * EB_S16P_MR, bp += 2 * EB_S16P_NR) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)bp);
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(const void *)(bp + 16));
        EB_UNROLL
        for (int r = 0; r < EB_S16P_MR; r++) {
            int32_t w;
            memcpy(&w, ap + 2 * r, sizeof w);
            const __m256i a = _mm256_set1_epi32(w);
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(a, b0));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(a, b1));
        }
    }
    for (int r = 0; r < EB_S16P_MR; r++) {
        _mm256_storeu_si256((__m256i *)(void *)(c + r * ldc), acc[r][0]);
        _mm256_storeu_si256((__m256i *)(void *)(c + r * ldc + 8), acc[r][1]);
    }
}
#else
static void eb_s16_micro(int64_t kp, const int16_t *ap, const int16_t *bp, int32_t *c,
                         int64_t ldc)
{
    int32_t acc[EB_S16P_MR][EB_S16P_NR];
    for (int r = 0; r < EB_S16P_MR; r++)
        for (int j = 0; j < EB_S16P_NR; j++) acc[r][j] = 0;
    for (int64_t p = 0; p < kp; p++, ap += 2 * EB_S16P_MR, bp += 2 * EB_S16P_NR) {
        EB_UNROLL
        for (int r = 0; r < EB_S16P_MR; r++) {
            const int32_t a0 = ap[2 * r], a1 = ap[2 * r + 1];
            EB_UNROLL
            for (int j = 0; j < EB_S16P_NR; j++)
                acc[r][j] += a0 * (int32_t)bp[2 * j] + a1 * (int32_t)bp[2 * j + 1];
        }
    }
    for (int r = 0; r < EB_S16P_MR; r++)
        for (int j = 0; j < EB_S16P_NR; j++) c[r * ldc + j] = acc[r][j];
}
#endif

static void eb_gemm_s16_packed_impl(int64_t m, int64_t n, int64_t k, const int16_t *ap,
                                    const int16_t *bp, int32_t *c, int64_t ldc)
{
    const int64_t kp = (k + 1) / 2;
    void (*micro)(int64_t, const int16_t *, const int16_t *, int32_t *, int64_t) = eb_s16_micro;
#if defined(EB_I8_HAVE_VNNI)
    if (__builtin_cpu_supports("avx512vnni"))
        micro = eb_s16_micro_vnni;
#endif
    int32_t tmp[EB_S16P_MR * EB_S16P_NR];
    for (int64_t i0 = 0; i0 < m; i0 += EB_S16P_MR, ap += kp * 2 * EB_S16P_MR) {
        const int64_t mr = EB_MIN((int64_t)EB_S16P_MR, m - i0);
        const int16_t *b = bp;
        for (int64_t j0 = 0; j0 < n; j0 += EB_S16P_NR, b += kp * 2 * EB_S16P_NR) {
            const int64_t nr = EB_MIN((int64_t)EB_S16P_NR, n - j0);
            int32_t *ct = c + i0 * ldc + j0;
            if (mr == EB_S16P_MR && nr == EB_S16P_NR) {
                micro(kp, ap, b, ct, ldc);
            } else {
                micro(kp, ap, b, tmp, EB_S16P_NR);
                for (int64_t r = 0; r < mr; r++)
                    for (int64_t j = 0; j < nr; j++) ct[r * ldc + j] = tmp[r * EB_S16P_NR + j];
            }
        }
    }
}

/* ---- u8 x s8 packed GEMM (kernels.h: pack_u8_*, gemm_u8s8_packed), AVX-512 VNNI only ---------
 * vpdpbusd sums 4 u8 x s8 products per int32 lane without saturation. The activations enter as
 * xu = x + 128 (u8), the weights as they are (s8); C = sum_k xu w - corr[r] with corr[r] =
 * (128 + zp) sum_k w[r][k] = sum_k (x - zp) w + ... exactly (the caller's bound keeps every
 * partial sum inside int32: |sum xu w| <= 255 sum |w|). kq = (k + 3) / 4 quads; A packed: blocks
 * of EB_U8_MR rows, each kq x EB_U8_MR x 4 int8 (rows past m and k past the end zero); B packed:
 * panels of EB_U8_NR columns, each kq x EB_U8_NR x 4 u8 (columns past n, k past the end: 0,
 * which meet zero weights or are discarded). */
#if defined(EB_I8_HAVE_VNNI)
#define EB_U8_MR 8
#define EB_U8_NR 32

static int eb_u8s8_available_impl(void)
{
    return __builtin_cpu_supports("avx512vnni");
}

static size_t eb_pack_u8_a_bytes_impl(int64_t m, int64_t k)
{
    const int64_t mb = (m + EB_U8_MR - 1) / EB_U8_MR, kq = (k + 3) / 4;
    return (size_t)(mb * kq * EB_U8_MR * 4);
}

static size_t eb_pack_u8_b_bytes_impl(int64_t k, int64_t n)
{
    const int64_t nb = (n + EB_U8_NR - 1) / EB_U8_NR, kq = (k + 3) / 4;
    return (size_t)(nb * kq * EB_U8_NR * 4);
}

static void eb_pack_u8_a_impl(int64_t m, int64_t k, const int8_t *a, int64_t lda, int8_t *dst)
{
    const int64_t kq = (k + 3) / 4;
    for (int64_t i0 = 0; i0 < m; i0 += EB_U8_MR)
        for (int64_t q = 0; q < kq; q++)
            for (int r = 0; r < EB_U8_MR; r++)
                for (int t = 0; t < 4; t++, dst++) {
                    const int64_t i = i0 + r, kk = 4 * q + t;
                    *dst = i < m && kk < k ? a[i * lda + kk] : 0;
                }
}

/* B[r][j] = x[r * ldx + j] + 128 as u8 (int8 rows, k x n). */
static void eb_pack_u8_b_impl(int64_t k, int64_t n, const int8_t *x, int64_t ldx, uint8_t *dst)
{
    const int64_t kq = (k + 3) / 4;
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (int64_t j0 = 0; j0 < n; j0 += EB_U8_NR) {
        const int64_t nb = EB_MIN((int64_t)EB_U8_NR, n - j0);
        for (int64_t q = 0; q < kq; q++, dst += 4 * EB_U8_NR) {
            const int8_t *r0 = x + 4 * q * ldx + j0;
            if (nb == EB_U8_NR && 4 * q + 4 <= k) {
                /* a 4 x 32 byte transpose: lane j of the output is (r0[j], r1[j], r2[j], r3[j]) */
                const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)r0);
                const __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(r0 + ldx));
                const __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(r0 + 2 * ldx));
                const __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(r0 + 3 * ldx));
                const __m256i ab_l = _mm256_unpacklo_epi8(a, b), ab_h = _mm256_unpackhi_epi8(a, b);
                const __m256i cd_l = _mm256_unpacklo_epi8(c, d), cd_h = _mm256_unpackhi_epi8(c, d);
                const __m256i q0 = _mm256_unpacklo_epi16(ab_l, cd_l); /* cols 0-3 | 16-19 */
                const __m256i q1 = _mm256_unpackhi_epi16(ab_l, cd_l); /* cols 4-7 | 20-23 */
                const __m256i q2 = _mm256_unpacklo_epi16(ab_h, cd_h); /* cols 8-11 | 24-27 */
                const __m256i q3 = _mm256_unpackhi_epi16(ab_h, cd_h); /* cols 12-15 | 28-31 */
                __m256i *o = (__m256i *)(void *)dst;
                _mm256_storeu_si256(o, _mm256_xor_si256(_mm256_permute2x128_si256(q0, q1, 0x20), flip));
                _mm256_storeu_si256(o + 1, _mm256_xor_si256(_mm256_permute2x128_si256(q2, q3, 0x20), flip));
                _mm256_storeu_si256(o + 2, _mm256_xor_si256(_mm256_permute2x128_si256(q0, q1, 0x31), flip));
                _mm256_storeu_si256(o + 3, _mm256_xor_si256(_mm256_permute2x128_si256(q2, q3, 0x31), flip));
            } else {
                for (int j = 0; j < EB_U8_NR; j++)
                    for (int t = 0; t < 4; t++)
                        dst[4 * j + t] = j < nb && 4 * q + t < k
                                             ? (uint8_t)(r0[t * ldx + j] ^ (int8_t)0x80) : 0;
            }
        }
    }
}

/* C tile (EB_U8_MR x EB_U8_NR, ldc) = kq quads of ap x bp, minus corr[r] per row. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) static void
eb_u8_micro_vnni(int64_t kq, const int8_t *ap, const uint8_t *bp, const int32_t *corr,
                 int32_t *c, int64_t ldc)
{
    __m512i acc[EB_U8_MR][2];
    for (int r = 0; r < EB_U8_MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    for (int64_t q = 0; q < kq; q++, ap += 4 * EB_U8_MR, bp += 4 * EB_U8_NR) {
        const __m512i b0 = _mm512_loadu_si512((const void *)bp);
        const __m512i b1 = _mm512_loadu_si512((const void *)(bp + 64));
        EB_UNROLL
        for (int r = 0; r < EB_U8_MR; r++) {
            int32_t w;
            memcpy(&w, ap + 4 * r, sizeof w);
            const __m512i a = _mm512_set1_epi32(w);
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], b0, a);
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], b1, a);
        }
    }
    for (int r = 0; r < EB_U8_MR; r++) {
        const __m512i cr = _mm512_set1_epi32(corr[r]);
        _mm512_storeu_si512((void *)(c + r * ldc), _mm512_sub_epi32(acc[r][0], cr));
        _mm512_storeu_si512((void *)(c + r * ldc + 16), _mm512_sub_epi32(acc[r][1], cr));
    }
}

static void eb_gemm_u8s8_packed_impl(int64_t m, int64_t n, int64_t k, const int8_t *ap,
                                     const uint8_t *bp, const int32_t *corr, int32_t *c,
                                     int64_t ldc)
{
    const int64_t kq = (k + 3) / 4;
    int32_t tmp[EB_U8_MR * EB_U8_NR], cpad[EB_U8_MR];
    for (int64_t i0 = 0; i0 < m; i0 += EB_U8_MR, ap += kq * 4 * EB_U8_MR) {
        const int64_t mr = EB_MIN((int64_t)EB_U8_MR, m - i0);
        const int32_t *cr = corr + i0;
        if (mr < EB_U8_MR) {
            for (int r = 0; r < EB_U8_MR; r++) cpad[r] = r < mr ? corr[i0 + r] : 0;
            cr = cpad;
        }
        const uint8_t *b = bp;
        for (int64_t j0 = 0; j0 < n; j0 += EB_U8_NR, b += kq * 4 * EB_U8_NR) {
            const int64_t nr = EB_MIN((int64_t)EB_U8_NR, n - j0);
            int32_t *ct = c + i0 * ldc + j0;
            if (mr == EB_U8_MR && nr == EB_U8_NR) {
                eb_u8_micro_vnni(kq, ap, b, cr, ct, ldc);
            } else {
                eb_u8_micro_vnni(kq, ap, b, cr, tmp, EB_U8_NR);
                for (int64_t r = 0; r < mr; r++)
                    for (int64_t j = 0; j < nr; j++) ct[r * ldc + j] = tmp[r * EB_U8_NR + j];
            }
        }
    }
}
#define EB_U8_TABLE_ENTRIES                                                                   \
    EB_U8_MR, EB_U8_NR, eb_u8s8_available_impl, eb_pack_u8_a_bytes_impl,                     \
        eb_pack_u8_b_bytes_impl, eb_pack_u8_a_impl, eb_pack_u8_b_impl, eb_gemm_u8s8_packed_impl
#else
#define EB_U8_TABLE_ENTRIES 0, 0, NULL, NULL, NULL, NULL, NULL, NULL
#endif

/* fixed_point.multiply_by_quantized_multiplier + zero point + clamp, as int8_common.h's
 * eb_q_mbqm, in branch-free int64 lanes the compiler vectorizes. m0 >= 0, so the srdhm
 * saturation case (both INT32_MIN) cannot occur. */
static void eb_requant_s32_impl(const int32_t *acc, int64_t n, int32_t bias, int32_t m0,
                                int32_t shift, int32_t zp, int32_t lo, int32_t hi, int8_t *y)
{
    const int left = shift > 0 ? shift : 0, right = shift < 0 ? -shift : 0;
    const int64_t mask = ((int64_t)1 << right) - 1, half = mask >> 1;
    const int64_t mul = m0, bias64 = bias;
    int64_t t = 0;
#if defined(EB_I8_AVX512) || defined(EB_I8_AVX2)
    /* 8 lanes at a time, the same steps: acc + bias (fits int32, the caller's guarantee),
     * shifted left with saturation (an overflowing lane is the one whose shift does not undo);
     * the srdhm as floor((v * m0 + 2^30) / 2^31): for a product ab < 0 the nudge 1 - 2^30 and
     * the truncating division equal floor((ab + 1 - 2^30 + 2^31 - 1) / 2^31), the same
     * expression; the 64-bit products of even and odd lanes (pmuldq), whose bits 31..62 are
     * the int32 result; then rounding_divide_by_pot in int32. Four vectors per step, packed to
     * 32 int8. */
    {
        const __m256i vb = _mm256_set1_epi32(bias), vm = _mm256_set1_epi32(m0);
        const __m128i cl = _mm_cvtsi32_si128(left), cr = _mm_cvtsi32_si128(right);
        const __m256i vmax = _mm256_set1_epi32(INT32_MAX), vmin = _mm256_set1_epi32(INT32_MIN);
        const __m256i c30 = _mm256_set1_epi64x((int64_t)1 << 30);
        const __m256i vmask = _mm256_set1_epi32((int32_t)mask);
        const __m256i vhalf = _mm256_set1_epi32((int32_t)half);
        const __m256i vzp = _mm256_set1_epi32(zp), vlo = _mm256_set1_epi32(lo);
        const __m256i vhi = _mm256_set1_epi32(hi);
#define EB_RQ8(src, out)                                                                      \
    do {                                                                                      \
        __m256i v_ = _mm256_add_epi32(                                                        \
            _mm256_loadu_si256((const __m256i *)(const void *)(src)), vb);                    \
        if (left) {                                                                           \
            const __m256i sh_ = _mm256_sll_epi32(v_, cl);                                     \
            const __m256i ok_ = _mm256_cmpeq_epi32(_mm256_sra_epi32(sh_, cl), v_);            \
            const __m256i sat_ = _mm256_blendv_epi8(vmax, vmin, _mm256_srai_epi32(v_, 31));   \
            v_ = _mm256_blendv_epi8(sat_, sh_, ok_);                                          \
        }                                                                                     \
        const __m256i te_ = _mm256_add_epi64(_mm256_mul_epi32(v_, vm), c30);                  \
        const __m256i to_ = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(v_, 32), vm), \
                                             c30);                                            \
        const __m256i x_ = _mm256_blend_epi32(_mm256_srli_epi64(te_, 31),                     \
                                              _mm256_slli_epi64(to_, 1), 0xAA);               \
        const __m256i rem_ = _mm256_and_si256(x_, vmask);                                     \
        const __m256i thr_ = _mm256_add_epi32(vhalf, _mm256_srli_epi32(x_, 31));              \
        __m256i o_ = _mm256_sub_epi32(_mm256_sra_epi32(x_, cr), _mm256_cmpgt_epi32(rem_, thr_)); \
        o_ = _mm256_add_epi32(o_, vzp);                                                       \
        (out) = _mm256_min_epi32(_mm256_max_epi32(o_, vlo), vhi);                             \
    } while (0)
        for (; t + 32 <= n; t += 32) {
            __m256i o0, o1, o2, o3;
            EB_RQ8(acc + t, o0);
            EB_RQ8(acc + t + 8, o1);
            EB_RQ8(acc + t + 16, o2);
            EB_RQ8(acc + t + 24, o3);
            /* in-lane packs: bytes [o0 lo, o1 lo, o2 lo, o3 lo | o0 hi, ...] in 4-byte groups */
            const __m256i p8 = _mm256_packs_epi16(_mm256_packs_epi32(o0, o1),
                                                  _mm256_packs_epi32(o2, o3));
            _mm256_storeu_si256((__m256i *)(void *)(y + t),
                                _mm256_permutevar8x32_epi32(
                                    p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        }
        for (; t + 8 <= n; t += 8) {
            __m256i o;
            EB_RQ8(acc + t, o);
            const __m256i p16 = _mm256_packs_epi32(o, o);
            const __m256i p8 = _mm256_packs_epi16(p16, p16);
            _mm_storel_epi64((__m128i *)(void *)(y + t),
                             _mm_unpacklo_epi32(_mm256_castsi256_si128(p8),
                                                _mm256_extracti128_si256(p8, 1)));
        }
#undef EB_RQ8
    }
#endif
    for (; t < n; t++) {
        int64_t v = ((int64_t)acc[t] + bias64) * ((int64_t)1 << left);
        v = v > INT32_MAX ? INT32_MAX : v;
        v = v < INT32_MIN ? INT32_MIN : v;
        const int64_t ab = v * mul;
        const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
        const int64_t s = ab + nudge;
        /* s / 2^31 truncating; then the floor shift of rounding_divide_by_pot (right shifts
         * of non-negative values only: ~x >= 0 when x < 0, and ~(~x >> e) = floor(x / 2^e)) */
        const int64_t x = s >= 0 ? s >> 31 : -((-s) >> 31);
        const int64_t rem = x & mask;
        const int64_t threshold = half + (x < 0);
        const int64_t q = x >= 0 ? x >> right : ~((~x) >> right);
        int64_t o = (int64_t)zp + q + (rem > threshold);
        o = o < lo ? lo : o;
        o = o > hi ? hi : o;
        y[t] = (int8_t)o;
    }
}

/* |v| <= 1e9 after the clamp (NaN -> 0, as nan_to_num; +-inf -> +-1e9, which clamps anyway), so
 * floor(|v| + 0.5) is the truncating conversion of that (non-negative) double: no libm floor,
 * and the loop vectorizes (the division stays a double division, as the spec has it). */
static void eb_quantize_s8_impl(const float *x, int64_t n, double scale, int32_t zp, int8_t *y)
{
    const double z = (double)zp;
    int64_t i = 0;
#if defined(EB_I8_AVX512) || defined(EB_I8_AVX2)
    /* the same steps on 4 doubles at a time: t = trunc(|v| + 0.5) with v's sign, + zp, clamped
     * in double (exact integers), converted and narrowed */
    const __m256d vs = _mm256_set1_pd(scale), vz = _mm256_set1_pd(z);
    const __m256d big = _mm256_set1_pd(1e9), nbig = _mm256_set1_pd(-1e9);
    const __m256d half = _mm256_set1_pd(0.5), sign = _mm256_set1_pd(-0.0);
    const __m256d qlo = _mm256_set1_pd(-128.0), qhi = _mm256_set1_pd(127.0);
    for (; i + 8 <= n; i += 8) {
        const __m256 xf = _mm256_loadu_ps(x + i);
        __m128i q32[2];
        for (int h = 0; h < 2; h++) {
            __m256d v = _mm256_div_pd(
                _mm256_cvtps_pd(h ? _mm256_extractf128_ps(xf, 1) : _mm256_castps256_ps128(xf)),
                vs);
            v = _mm256_and_pd(v, _mm256_cmp_pd(v, v, _CMP_ORD_Q)); /* NaN -> 0 */
            v = _mm256_min_pd(_mm256_max_pd(v, nbig), big);
            const __m256d a = _mm256_round_pd(_mm256_add_pd(_mm256_andnot_pd(sign, v), half),
                                              _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __m256d q = _mm256_add_pd(_mm256_or_pd(a, _mm256_and_pd(v, sign)), vz);
            q = _mm256_min_pd(_mm256_max_pd(q, qlo), qhi);
            q32[h] = _mm256_cvttpd_epi32(q);
        }
        const __m128i q16 = _mm_packs_epi32(q32[0], q32[1]);
        _mm_storel_epi64((__m128i *)(void *)(y + i), _mm_packs_epi16(q16, q16));
    }
#endif
    for (; i < n; i++) {
        double v = (double)x[i] / scale;
        v = v != v ? 0.0 : v;
        v = v > 1e9 ? 1e9 : v;
        v = v < -1e9 ? -1e9 : v;
        const double a = (double)(int64_t)(fabs(v) + 0.5);
        double q = (v < 0 ? -a : a) + z;
        q = q < -128.0 ? -128.0 : q;
        q = q > 127.0 ? 127.0 : q;
        y[i] = (int8_t)(int32_t)q;
    }
}

static void eb_dequantize_s8_impl(const int8_t *q, int64_t n, float scale_f, int32_t zp, float *y)
{
    for (int64_t i = 0; i < n; i++) y[i] = (float)((int32_t)q[i] - zp) * scale_f;
}
