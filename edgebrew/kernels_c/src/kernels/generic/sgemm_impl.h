/* Body of the per-ISA kernels (cache-blocked SGEMM with prepacked-A variant, SGEMV, depthwise
 * convolution), compiled once per ISA (generic/sgemm.c, isa_avx2.c, isa_avx512.c). Not a
 * header to include elsewhere: every function is static and the file ends by defining one
 * kernel table. Before including it, define:
 *
 *   EB_TABLE_NAME  the name of the eb_kernel_table to define (e.g. eb_kernel_table_avx2)
 *   EB_ISA_NAME    its isa string ("generic", "avx2", "avx512")
 *   EB_MR, EB_NR   micro-tile: EB_MR rows of A times EB_NR columns of B, accumulated in
 *                  EB_MR x EB_NR registers (EB_NR a multiple of the vector width)
 *   EB_KC          depth of a packed block (a B micro-panel, EB_KC x EB_NR, stays in L1)
 *   EB_MC, EB_NC   rows of the packed A block (L2) and columns of the packed B block (L3)
 *   EB_GEMV_L      partial sums per row in sgemv (two or more vectors' worth)
 *   EB_DW_V        outputs per register block of the depthwise convolution (four vectors)
 *
 * The scheme is the GotoBLAS / BLIS one: for each EB_NC column block and EB_KC depth block pack
 * B into EB_NR-wide micro-panels; for each EB_MC row block pack A into EB_MR-tall micro-panels;
 * then the micro-kernel multiplies a micro-panel pair into an EB_MR x EB_NR tile of C. Packing
 * pads the edges with zeros, so the micro-kernel always runs the full tile and a tile's
 * arithmetic is the same wherever it lies: the result of an element does not depend on how the
 * caller splits m or n (threads), only on k (the depth blocking is fixed by k alone).
 *
 * The micro-kernel is plain C over fixed-size arrays; gcc -O3 unrolls it completely and keeps
 * the accumulators in vector registers (checked in the assembly for the tile sizes chosen in
 * the including files), using FMA where the ISA has it.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../kernels.h"

#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__aarch64__)
#define EB_FMADD(a, b, c) fmaf((a), (b), (c))
#else
#define EB_FMADD(a, b, c) ((a) * (b) + (c))
#endif

#if defined(__clang__)
#define EB_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define EB_UNROLL _Pragma("GCC unroll 64")
#else
#define EB_UNROLL
#endif

_Static_assert((size_t)EB_KC * (EB_MR + EB_NR) * sizeof(float) + 128 <= EB_SGEMM_MIN_WORK_BYTES,
               "EB_SGEMM_MIN_WORK_BYTES (kernels.h) must cover this ISA's blocking");
_Static_assert(EB_DW_V >= 4 && EB_DW_V % 4 == 0, "EB_DW_V: four vectors' worth");
_Static_assert(EB_GEMV_L >= 1 && (EB_GEMV_L & (EB_GEMV_L - 1)) == 0, "EB_GEMV_L: a power of 2");

#if defined(__GNUC__)
#define EB_NOINLINE __attribute__((noinline))
#else
#define EB_NOINLINE
#endif

#define EB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EB_ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))

/* ---- micro-kernel ------------------------------------------------------------------------ */

/* C[mr x nr] (+)= Ap * Bp over depth kc. ap: kc groups of EB_MR values; bp: kc groups of EB_NR.
 * load != 0 adds to C. mr <= EB_MR, nr <= EB_NR. */
EB_NOINLINE static void eb_ukernel(int64_t kc, const float *restrict ap, const float *restrict bp,
                       float *restrict c, int64_t ldc, int mr, int nr, int load)
{
    /* Only the row loop carries an unroll pragma: unrolling the zeroing or the column loop as
     * well makes gcc 12's SLP vectorizer split rows into odd pieces and spill. */
    float acc[EB_MR][EB_NR];
    for (int i = 0; i < EB_MR; i++)
        for (int j = 0; j < EB_NR; j++) acc[i][j] = 0.0f;
    for (int64_t p = 0; p < kc; p++) {
        EB_UNROLL for (int i = 0; i < EB_MR; i++) {
            const float av = ap[i];
            for (int j = 0; j < EB_NR; j++) acc[i][j] = EB_FMADD(av, bp[j], acc[i][j]);
        }
        ap += EB_MR;
        bp += EB_NR;
    }
    if (mr == EB_MR && nr == EB_NR) {
        if (load) {
            EB_UNROLL for (int i = 0; i < EB_MR; i++)
                EB_UNROLL for (int j = 0; j < EB_NR; j++) c[i * ldc + j] += acc[i][j];
        } else {
            EB_UNROLL for (int i = 0; i < EB_MR; i++)
                EB_UNROLL for (int j = 0; j < EB_NR; j++) c[i * ldc + j] = acc[i][j];
        }
        return;
    }
    for (int i = 0; i < mr; i++) {
        if (load) {
            for (int j = 0; j < nr; j++) c[i * ldc + j] += acc[i][j];
        } else {
            for (int j = 0; j < nr; j++) c[i * ldc + j] = acc[i][j];
        }
    }
}

/* ---- packing ----------------------------------------------------------------------------- */

/* Pack rows [0, mb) x depth [0, kb) of op(A) (a already offset to the block's corner) into
 * EB_MR-row micro-panels, zero-padding the last. */
static void eb_pack_a(int trans, int64_t mb, int64_t kb, const float *a, int64_t lda,
                      float *restrict dst)
{
    for (int64_t i0 = 0; i0 < mb; i0 += EB_MR) {
        const int mr = (int)EB_MIN((int64_t)EB_MR, mb - i0);
        if (trans) { /* op(A)(i, p) = a[p * lda + i]: rows of the panel are contiguous in a */
            for (int64_t p = 0; p < kb; p++) {
                const float *src = a + p * lda + i0;
                float *d = dst + p * EB_MR;
                if (mr == EB_MR) {
                    EB_UNROLL for (int i = 0; i < EB_MR; i++) d[i] = src[i];
                } else {
                    int i = 0;
                    for (; i < mr; i++) d[i] = src[i];
                    for (; i < EB_MR; i++) d[i] = 0.0f;
                }
            }
        } else { /* op(A)(i, p) = a[i * lda + p] */
            if (mr == EB_MR) {
                const float *rows[EB_MR];
                EB_UNROLL for (int i = 0; i < EB_MR; i++) rows[i] = a + (i0 + i) * lda;
                for (int64_t p = 0; p < kb; p++) {
                    EB_UNROLL for (int i = 0; i < EB_MR; i++) dst[p * EB_MR + i] = rows[i][p];
                }
            } else {
                for (int64_t p = 0; p < kb; p++) {
                    int i = 0;
                    for (; i < mr; i++) dst[p * EB_MR + i] = a[(i0 + i) * lda + p];
                    for (; i < EB_MR; i++) dst[p * EB_MR + i] = 0.0f;
                }
            }
        }
        dst += kb * EB_MR;
    }
}

/* Pack depth [0, kb) x columns [0, nb) of op(B) (b offset to the block's corner) into
 * EB_NR-column micro-panels, zero-padding the last. */
static void eb_pack_b(int trans, int64_t kb, int64_t nb, const float *b, int64_t ldb,
                      float *restrict dst)
{
    for (int64_t j0 = 0; j0 < nb; j0 += EB_NR) {
        const int nr = (int)EB_MIN((int64_t)EB_NR, nb - j0);
        if (!trans) { /* op(B)(p, j) = b[p * ldb + j]: a panel row is contiguous */
            for (int64_t p = 0; p < kb; p++) {
                const float *src = b + p * ldb + j0;
                float *d = dst + p * EB_NR;
                if (nr == EB_NR) {
                    EB_UNROLL for (int j = 0; j < EB_NR; j++) d[j] = src[j];
                } else {
                    int j = 0;
                    for (; j < nr; j++) d[j] = src[j];
                    for (; j < EB_NR; j++) d[j] = 0.0f;
                }
            }
        } else { /* op(B)(p, j) = b[j * ldb + p] */
            if (nr == EB_NR) {
                const float *cols[EB_NR];
                EB_UNROLL for (int j = 0; j < EB_NR; j++) cols[j] = b + (j0 + j) * ldb;
                for (int64_t p = 0; p < kb; p++) {
                    EB_UNROLL for (int j = 0; j < EB_NR; j++) dst[p * EB_NR + j] = cols[j][p];
                }
            } else {
                for (int64_t p = 0; p < kb; p++) {
                    int j = 0;
                    for (; j < nr; j++) dst[p * EB_NR + j] = b[(j0 + j) * ldb + p];
                    for (; j < EB_NR; j++) dst[p * EB_NR + j] = 0.0f;
                }
            }
        }
        dst += kb * EB_NR;
    }
}

/* ---- driver ------------------------------------------------------------------------------ */

/* The depth block for k: balanced blocks of at most EB_KC (a function of k only). */
static int64_t eb_depth_block(int64_t k)
{
    const int64_t nblocks = (k + EB_KC - 1) / EB_KC;
    return (k + nblocks - 1) / nblocks;
}

static size_t eb_sgemm_work_bytes_impl(int64_t m, int64_t n, int64_t k)
{
    if (m <= 0 || n <= 0 || k <= 0) return 0;
    const int64_t kc = eb_depth_block(k);
    const int64_t mc = EB_MIN((int64_t)EB_MC, EB_ALIGN_UP(m, EB_MR));
    const int64_t nc = EB_MIN((int64_t)EB_NC, EB_ALIGN_UP(n, EB_NR));
    return (size_t)(kc * (mc + nc)) * sizeof(float) + 128;
}

static void eb_sgemm_stack(int64_t m, int64_t n, int64_t k, int trans_a, int trans_b,
                           const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                           int64_t ldc, int accumulate);

static void eb_sgemm_ex_impl(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                             const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                             int64_t ldc, int accumulate, void *work, size_t work_bytes)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
    const int64_t kc = eb_depth_block(k);
    /* Carve the workspace: 64-aligned, Ap (mc x kc) then Bp (kc x nc). */
    uintptr_t base = EB_ALIGN_UP((uintptr_t)work, (uintptr_t)64);
    size_t skip = work ? (size_t)(base - (uintptr_t)work) : 0;
    int64_t avail = (work && work_bytes > skip + 64) ? (int64_t)((work_bytes - skip - 64) / 4) : 0;
    int64_t mc = EB_MIN((int64_t)EB_MC, EB_ALIGN_UP(m, EB_MR));
    int64_t nc = EB_MIN((int64_t)EB_NC, EB_ALIGN_UP(n, EB_NR));
    if (avail < kc * (EB_MR + EB_NR)) {
        eb_sgemm_stack(m, n, k, trans_a, trans_b, a, lda, b, ldb, c, ldc, accumulate);
        return;
    }
    if (kc * (mc + nc) > avail) { /* shrink the B block, then the A block, to fit */
        int64_t room = avail / kc - mc;
        if (room >= EB_NR) {
            nc = EB_MIN(nc, room / EB_NR * EB_NR);
        } else {
            nc = EB_NR;
            mc = EB_MIN(mc, (avail / kc - nc) / EB_MR * EB_MR);
        }
    }
    /* kc * (mc + nc) <= avail, and the 64 bytes held back cover aligning bp. */
    float *ap = (float *)base;
    float *bp = (float *)EB_ALIGN_UP((uintptr_t)(ap + kc * mc), (uintptr_t)64);

    for (int64_t jc = 0; jc < n; jc += nc) {
        const int64_t nb = EB_MIN(nc, n - jc);
        for (int64_t pc = 0; pc < k; pc += kc) {
            const int64_t kb = EB_MIN(kc, k - pc);
            const int load = accumulate || pc > 0;
            eb_pack_b(trans_b, kb, nb, trans_b ? b + jc * ldb + pc : b + pc * ldb + jc, ldb, bp);
            for (int64_t ic = 0; ic < m; ic += mc) {
                const int64_t mb = EB_MIN(mc, m - ic);
                eb_pack_a(trans_a, mb, kb, trans_a ? a + pc * lda + ic : a + ic * lda + pc, lda,
                          ap);
                for (int64_t jr = 0; jr < nb; jr += EB_NR) {
                    const int nr = (int)EB_MIN((int64_t)EB_NR, nb - jr);
                    const float *bpanel = bp + jr * kb;
                    for (int64_t ir = 0; ir < mb; ir += EB_MR) {
                        const int mr = (int)EB_MIN((int64_t)EB_MR, mb - ir);
                        eb_ukernel(kb, ap + ir * kb, bpanel, c + (ic + ir) * ldc + jc + jr, ldc,
                                   mr, nr, load);
                    }
                }
            }
        }
    }
}

/* ---- prepacked A (weights packed once at load) ------------------------------------------- */

/* Layout: for each depth block (offset pc, size kb, as eb_depth_block(k) cuts k), the rows in
 * EB_MR-row micro-panels of kb x EB_MR: panel of row r (a multiple of EB_MR) at
 * pc * m_pad + r * kb, m_pad = m rounded up to EB_MR. */
static size_t eb_pack_a_bytes_impl(int64_t m, int64_t k)
{
    if (m <= 0 || k <= 0) return 0;
    return (size_t)(EB_ALIGN_UP(m, EB_MR) * k) * sizeof(float);
}

static void eb_pack_a_full_impl(int trans_a, int64_t m, int64_t k, const float *a, int64_t lda,
                                float *dst)
{
    if (m <= 0 || k <= 0) return;
    const int64_t kc = eb_depth_block(k), m_pad = EB_ALIGN_UP(m, EB_MR);
    for (int64_t pc = 0; pc < k; pc += kc) {
        const int64_t kb = EB_MIN(kc, k - pc);
        eb_pack_a(trans_a, m, kb, trans_a ? a + pc * lda : a + pc, lda, dst + pc * m_pad);
    }
}

/* C[m x n] (+)= rows [i0, i0 + m) of the packed m_total x k matrix times op(B). */
static void eb_sgemm_packed_a_impl(const float *apacked, int64_t m_total, int64_t i0, int64_t m,
                                   int64_t n, int64_t k, int trans_b, const float *b,
                                   int64_t ldb, float *c, int64_t ldc, int accumulate,
                                   void *work, size_t work_bytes)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
    const int64_t kc = eb_depth_block(k), m_pad = EB_ALIGN_UP(m_total, EB_MR);
    uintptr_t base = EB_ALIGN_UP((uintptr_t)work, (uintptr_t)64);
    size_t skip = work ? (size_t)(base - (uintptr_t)work) : 0;
    int64_t avail = (work && work_bytes > skip) ? (int64_t)((work_bytes - skip) / 4) : 0;
    _Alignas(64) float stackbuf[EB_KC * EB_NR];
    float *bp = (float *)base;
    if (avail < kc * EB_NR) { /* too small a workspace: one B micro-panel on the stack */
        bp = stackbuf;
        avail = EB_KC * EB_NR;
    }
    const int64_t nc = EB_MIN(EB_MIN((int64_t)EB_NC, EB_ALIGN_UP(n, EB_NR)),
                              avail / kc / EB_NR * EB_NR);
    for (int64_t jc = 0; jc < n; jc += nc) {
        const int64_t nb = EB_MIN(nc, n - jc);
        for (int64_t pc = 0; pc < k; pc += kc) {
            const int64_t kb = EB_MIN(kc, k - pc);
            const int load = accumulate || pc > 0;
            eb_pack_b(trans_b, kb, nb, trans_b ? b + jc * ldb + pc : b + pc * ldb + jc, ldb, bp);
            const float *ablock = apacked + pc * m_pad + i0 * kb;
            for (int64_t ic = 0; ic < m; ic += EB_MC) { /* EB_MC rows of A stay in L2 */
                const int64_t mb = EB_MIN((int64_t)EB_MC, m - ic);
                for (int64_t jr = 0; jr < nb; jr += EB_NR) {
                    const int nr = (int)EB_MIN((int64_t)EB_NR, nb - jr);
                    const float *bpanel = bp + jr * kb;
                    for (int64_t ir = ic; ir < ic + mb; ir += EB_MR) {
                        const int mr = (int)EB_MIN((int64_t)EB_MR, m - ir);
                        eb_ukernel(kb, ablock + ir * kb, bpanel, c + ir * ldc + jc + jr, ldc, mr,
                                   nr, load);
                    }
                }
            }
        }
    }
}

/* The stack-buffer path: one micro-panel of each operand (EB_KC x (EB_MR + EB_NR) floats). */
static void eb_sgemm_stack(int64_t m, int64_t n, int64_t k, int trans_a, int trans_b,
                           const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                           int64_t ldc, int accumulate)
{
    _Alignas(64) float buf[EB_KC * (EB_MR + EB_NR) + 32];
    eb_sgemm_ex_impl(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, accumulate, buf,
                     sizeof(buf));
}

static void eb_sgemm_impl(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                          const float *b, int64_t ldb, float *c, int64_t ldc, int accumulate)
{
    eb_sgemm_stack(m, n, k, 0, 0, a, lda, b, ldb, c, ldc, accumulate);
}

/* ---- sgemv ------------------------------------------------------------------------------- */

/* Sum of EB_GEMV_L partial sums, in a fixed pairwise order. */
static float eb_hsum(const float *v)
{
    float t[EB_GEMV_L];
    EB_UNROLL for (int l = 0; l < EB_GEMV_L; l++) t[l] = v[l];
    EB_UNROLL for (int w = EB_GEMV_L / 2; w >= 1; w /= 2)
        EB_UNROLL for (int l = 0; l < w; l++) t[l] += t[l + w];
    return t[0];
}

/* y[i] (+)= dot(A[i, :], x) for rows [0, m); four rows share each load of x. A row's arithmetic
 * is the same whichever group it falls in. */
static void eb_gemv_n(int64_t m, int64_t n, const float *a, int64_t lda, const float *x,
                      float *y, int accumulate)
{
    const int64_t nv = n / EB_GEMV_L * EB_GEMV_L;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
        float acc[4][EB_GEMV_L];
        const float *r[4] = {a + i * lda, a + (i + 1) * lda, a + (i + 2) * lda, a + (i + 3) * lda};
        for (int q = 0; q < 4; q++)
            for (int l = 0; l < EB_GEMV_L; l++) acc[q][l] = 0.0f;
        for (int64_t p = 0; p < nv; p += EB_GEMV_L) {
            EB_UNROLL for (int q = 0; q < 4; q++)
                for (int l = 0; l < EB_GEMV_L; l++)
                    acc[q][l] = EB_FMADD(r[q][p + l], x[p + l], acc[q][l]);
        }
        for (int q = 0; q < 4; q++) {
            float tail = 0.0f;
            for (int64_t p = nv; p < n; p++) tail = EB_FMADD(r[q][p], x[p], tail);
            const float s = eb_hsum(acc[q]) + tail;
            y[i + q] = accumulate ? y[i + q] + s : s;
        }
    }
    for (; i < m; i++) {
        float acc[EB_GEMV_L];
        const float *r = a + i * lda;
        for (int l = 0; l < EB_GEMV_L; l++) acc[l] = 0.0f;
        for (int64_t p = 0; p < nv; p += EB_GEMV_L) {
            for (int l = 0; l < EB_GEMV_L; l++) acc[l] = EB_FMADD(r[p + l], x[p + l], acc[l]);
        }
        float tail = 0.0f;
        for (int64_t p = nv; p < n; p++) tail = EB_FMADD(r[p], x[p], tail);
        const float s = eb_hsum(acc) + tail;
        y[i] = accumulate ? y[i] + s : s;
    }
}

/* y[j] (+)= sum_i x[i] A[i, j] for columns [0, n). Columns go in chunks that stay in L1 while
 * four rows of A at a time stream past; rows in blocks of ROWS, each block summed apart and then
 * added to y (error growth ~ ROWS + m / ROWS, not m). Each y[j] sees the same sequence of
 * operations whatever the column split. */
static void eb_gemv_t(int64_t m, int64_t n, const float *a, int64_t lda, const float *x,
                      float *y, int accumulate)
{
    enum { CHUNK = 512, ROWS = 128 };
    float acc[CHUNK];
    for (int64_t j0 = 0; j0 < n; j0 += CHUNK) {
        const int64_t nb = EB_MIN((int64_t)CHUNK, n - j0);
        float *restrict yy = y + j0;
        for (int64_t r0 = 0; r0 < m; r0 += ROWS) {
            const int64_t r1 = EB_MIN(m, r0 + ROWS);
            float *restrict t = acc;
            for (int64_t j = 0; j < nb; j++) t[j] = 0.0f;
            int64_t i = r0;
            for (; i + 4 <= r1; i += 4) {
                const float x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];
                const float *restrict a0 = a + i * lda + j0, *restrict a1 = a0 + lda;
                const float *restrict a2 = a1 + lda, *restrict a3 = a2 + lda;
                for (int64_t j = 0; j < nb; j++) {
                    float v = t[j];
                    v = EB_FMADD(x0, a0[j], v);
                    v = EB_FMADD(x1, a1[j], v);
                    v = EB_FMADD(x2, a2[j], v);
                    v = EB_FMADD(x3, a3[j], v);
                    t[j] = v;
                }
            }
            for (; i < r1; i++) {
                const float xi = x[i];
                const float *restrict ai = a + i * lda + j0;
                for (int64_t j = 0; j < nb; j++) t[j] = EB_FMADD(xi, ai[j], t[j]);
            }
            if (r0 == 0 && !accumulate) {
                for (int64_t j = 0; j < nb; j++) yy[j] = t[j];
            } else {
                for (int64_t j = 0; j < nb; j++) yy[j] += t[j];
            }
        }
    }
}

static void eb_sgemv_impl(int trans_a, int64_t m, int64_t n, const float *a, int64_t lda,
                          const float *x, float *y, int accumulate)
{
    if (m <= 0 || n <= 0) {
        /* an empty sum: y = 0 (or unchanged) */
        const int64_t ny = trans_a ? n : m;
        if (!accumulate)
            for (int64_t i = 0; i < ny; i++) y[i] = 0.0f;
        return;
    }
    if (trans_a)
        eb_gemv_t(m, n, a, lda, x, y, accumulate);
    else
        eb_gemv_n(m, n, a, lda, x, y, accumulate);
}

/* ---- depthwise convolution of a plane ---------------------------------------------------- */

/* Register blocks of outputs: ROWS output rows (rstride apart in the input) x LANES adjacent
 * outputs, acc[r][l] += k_t * in[r * rstride + off_t + l] over the taps t. Only the tap loop is
 * a loop (rows and lanes unrolled), so gcc keeps acc in registers: ROWS * LANES / vector width
 * independent FMA chains (four), instead of jamming the tap loop into scalar code. */
#define EB_DW_BLOCK(NAME, ROWS, LANES)                                                          \
    static void NAME(const float *restrict base, int64_t rstride, const int64_t *restrict toff, \
                     const float *restrict tw, int64_t ntaps, float *restrict out,              \
                     int64_t ostride)                                                          \
    {                                                                                          \
        float acc[ROWS][LANES];                                                                \
        for (int r = 0; r < ROWS; r++)                                                         \
            for (int l = 0; l < LANES; l++) acc[r][l] = 0.0f;                                  \
        for (int64_t t = 0; t < ntaps; t++) {                                                  \
            const float kv = tw[t];                                                            \
            const float *restrict src = base + toff[t];                                        \
            EB_UNROLL for (int r = 0; r < ROWS; r++)                                           \
                EB_UNROLL for (int l = 0; l < LANES; l++)                                      \
                    acc[r][l] = EB_FMADD(kv, src[r * rstride + l], acc[r][l]);                 \
        }                                                                                      \
        for (int r = 0; r < ROWS; r++)                                                         \
            for (int l = 0; l < LANES; l++) out[r * ostride + l] = acc[r][l];                  \
    }
EB_DW_BLOCK(eb_dw_block_1xv, 1, EB_DW_V)     /* one row, four vectors */
EB_DW_BLOCK(eb_dw_block_4x1, 4, EB_DW_V / 4) /* four rows, one vector */
EB_DW_BLOCK(eb_dw_block_1x1, 1, EB_DW_V / 4) /* one row, one vector */

/* The staging buffer: with padding or a column stride sw > 1, each row of the zero-padded
 * plane is stored as sw phase rows (columns q, q + sw, q + 2 sw, ...), so that the inputs of
 * adjacent outputs are adjacent for every tap. */
static size_t eb_dwconv_pad_bytes_impl(int64_t h, int64_t w, const eb_window *wn)
{
    if (wn->ph == 0 && wn->pw == 0 && wn->sw == 1) return 0;
    const int64_t ldp = (w + 2 * wn->pw + wn->sw - 1) / wn->sw;
    return (size_t)((h + 2 * wn->ph) * wn->sw * ldp) * sizeof(float);
}

/* All kh*kw taps of every output, in (i, j) order, padding zeros included (as the reference
 * sums them). Output rows go four at a time in one-vector column blocks, the rest one at a time
 * in four-vector blocks; a row's last block ends at the row's end and may overlap the one
 * before (those pixels recomputed with the same arithmetic); rows narrower than a vector go
 * pixel by pixel, as do kernels of more than EB_DW_TAPS taps. */
enum { EB_DW_TAPS = 64 };

static float eb_dw_pixel(const float *base, const int64_t *toff, const float *tw, int64_t ntaps)
{
    float acc = 0.0f;
    for (int64_t t = 0; t < ntaps; t++) acc = EB_FMADD(tw[t], base[toff[t]], acc);
    return acc;
}

static void eb_dwconv_plane_impl(const float *x, int64_t h, int64_t w, const float *k,
                                 const eb_window *wn, int64_t oh, int64_t ow, float *y,
                                 float *pad)
{
    const int64_t kh = wn->kh, kw = wn->kw, sw = wn->sw, ph = wn->ph, pw = wn->pw;
    const int64_t V = EB_DW_V, V1 = EB_DW_V / 4;
    const float *src = x;
    int64_t ld = w, ldp = w; /* input row stride; phase row stride */
    if (ph || pw || sw > 1) {
        ldp = (w + 2 * pw + sw - 1) / sw;
        ld = sw * ldp;
        memset(pad, 0, (size_t)(ph * ld) * sizeof(float));
        memset(pad + (ph + h) * ld, 0, (size_t)(ph * ld) * sizeof(float));
        for (int64_t r = 0; r < h; r++) {
            float *dst = pad + (r + ph) * ld;
            const float *in = x + r * w;
            if (sw == 1) {
                memset(dst, 0, (size_t)pw * sizeof(float));
                memcpy(dst + pw, in, (size_t)w * sizeof(float));
                memset(dst + pw + w, 0, (size_t)(ldp - pw - w) * sizeof(float));
            } else if (sw == 2) { /* the common case, as one interleaved pass gcc vectorizes */
                float *restrict d0 = dst, *restrict d1 = dst + ldp;
                /* padded columns 2*pos and 2*pos + 1 are both inside the row for pos in
                 * [lo, hi) */
                int64_t lo = (pw + 1) / 2, hi = (w + pw) / 2;
                if (hi > ldp) hi = ldp;
                if (lo > hi) lo = hi;
                for (int64_t pos = 0; pos < lo; pos++) {
                    const int64_t c0 = 2 * pos - pw, c1 = c0 + 1;
                    d0[pos] = (c0 >= 0 && c0 < w) ? in[c0] : 0.0f;
                    d1[pos] = (c1 >= 0 && c1 < w) ? in[c1] : 0.0f;
                }
                const float *restrict pair = in + (2 * lo - pw); /* in the row when lo < hi */
                for (int64_t pos = 0; pos < hi - lo; pos++) {
                    d0[lo + pos] = pair[2 * pos];
                    d1[lo + pos] = pair[2 * pos + 1];
                }
                for (int64_t pos = hi; pos < ldp; pos++) {
                    const int64_t c0 = 2 * pos - pw, c1 = c0 + 1;
                    d0[pos] = (c0 >= 0 && c0 < w) ? in[c0] : 0.0f;
                    d1[pos] = (c1 >= 0 && c1 < w) ? in[c1] : 0.0f;
                }
            } else { /* padded column c = pos * sw + q goes to phase q, position pos */
                for (int64_t q = 0; q < sw; q++) {
                    float *d = dst + q * ldp;
                    /* input column pos * sw + q - pw in [0, w) for pos in [lo, hi) */
                    int64_t lo = pw - q <= 0 ? 0 : (pw - q + sw - 1) / sw;
                    int64_t hi = w - 1 + pw - q < 0 ? 0 : (w - 1 + pw - q) / sw + 1;
                    if (hi > ldp) hi = ldp;
                    if (lo > hi) lo = hi;
                    for (int64_t pos = 0; pos < lo; pos++) d[pos] = 0.0f;
                    const float *col = in + (lo * sw + q - pw); /* in the row when lo < hi */
                    for (int64_t pos = lo; pos < hi; pos++) d[pos] = col[(pos - lo) * sw];
                    for (int64_t pos = hi; pos < ldp; pos++) d[pos] = 0.0f;
                }
            }
        }
        src = pad;
    }
    const int64_t rstride = wn->sh * ld; /* input distance between output rows */
    const int64_t ntaps = kh * kw;
    /* tap (i, j): padded row i*dh, padded column ox*sw + j*dw -> phase (j*dw) % sw, position
     * ox + (j*dw) / sw */
    if (ntaps > EB_DW_TAPS) { /* big kernels: pixel by pixel, taps in (i, j) order */
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                const float *base = src + oy * rstride + ox;
                float acc = 0.0f;
                for (int64_t i = 0; i < kh; i++)
                    for (int64_t j = 0; j < kw; j++) {
                        const int64_t jd = j * wn->dw;
                        acc = EB_FMADD(k[i * kw + j],
                                       base[i * wn->dh * ld + (jd % sw) * ldp + jd / sw], acc);
                    }
                y[oy * ow + ox] = acc;
            }
        return;
    }
    int64_t toff[EB_DW_TAPS];
    float tw[EB_DW_TAPS];
    for (int64_t i = 0; i < kh; i++)
        for (int64_t j = 0; j < kw; j++) {
            const int64_t jd = j * wn->dw;
            toff[i * kw + j] = i * wn->dh * ld + (jd % sw) * ldp + jd / sw;
            tw[i * kw + j] = k[i * kw + j];
        }
    int64_t oy = 0;
    if (ow >= V1)
        for (; oy + 4 <= oh; oy += 4) {
            const float *base = src + oy * rstride;
            float *yr = y + oy * ow;
            for (int64_t ox = 0;; ox += V1) {
                if (ox + V1 > ow) ox = ow - V1; /* the last block, overlapping */
                eb_dw_block_4x1(base + ox, rstride, toff, tw, ntaps, yr + ox, ow);
                if (ox + V1 >= ow) break;
            }
        }
    for (; oy < oh; oy++) {
        const float *base = src + oy * rstride;
        float *yr = y + oy * ow;
        int64_t ox = 0;
        for (; ox + V <= ow; ox += V) eb_dw_block_1xv(base + ox, 0, toff, tw, ntaps, yr + ox, 0);
        if (ox < ow && ow >= V1) {
            for (; ox + V1 <= ow; ox += V1)
                eb_dw_block_1x1(base + ox, 0, toff, tw, ntaps, yr + ox, 0);
            if (ox < ow) {
                ox = ow - V1;
                eb_dw_block_1x1(base + ox, 0, toff, tw, ntaps, yr + ox, 0);
                ox = ow;
            }
        }
        for (; ox < ow; ox++) yr[ox] = eb_dw_pixel(base + ox, toff, tw, ntaps);
    }
}

_Static_assert(EB_MC % EB_MR == 0, "EB_MC: a multiple of EB_MR");

#include "int8_gemm_impl.h" /* eb_gemm_s8s16_impl, eb_dot_s8s16_impl (the int8 path) */
#include "int8_dwconv_impl.h" /* eb_dwconv_s8_*_impl (int8 depthwise convolution) */

const eb_kernel_table EB_TABLE_NAME = {
    EB_ISA_NAME,          eb_sgemm_impl,         eb_sgemm_ex_impl,      eb_sgemm_work_bytes_impl,
    eb_sgemv_impl,        EB_MR,                 eb_pack_a_bytes_impl,  eb_pack_a_full_impl,
    eb_sgemm_packed_a_impl, eb_dwconv_pad_bytes_impl, eb_dwconv_plane_impl,
    eb_gemm_s8s16_impl,   eb_dot_s8s16_impl,
    EB_S16P_MR,           EB_S16P_NR,            eb_pack_s16_a_count_impl,
    eb_pack_s16_b_count_impl, eb_pack_s16_a_impl, eb_pack_s16_b_impl,
    eb_gemm_s16_packed_impl, eb_requant_s32_impl, eb_quantize_s8_impl, eb_dequantize_s8_impl,
    eb_dwconv_s8_pad_count_impl, eb_dwconv_s8_stage_impl, eb_dwconv_s8_plane_impl,
    EB_U8_TABLE_ENTRIES,
};
