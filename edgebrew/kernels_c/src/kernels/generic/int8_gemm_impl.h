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
