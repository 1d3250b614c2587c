/* Compute kernels shared by the ops, built once per ISA level (see dispatch.c).
 *
 * The generic C in kernels/generic/ (sgemm_impl.h) is written so the compiler vectorizes it
 * (-O2/-O3): fixed-size register tiles as plain loops. generic/sgemm.c builds it for the
 * baseline ISA (SSE2 on x86-64, NEON on aarch64); isa_avx2.c and isa_avx512.c build it again
 * under #pragma GCC target (x86-64 GNU C only) into separately named tables, and eb_kernels()
 * picks the best table for the CPU at run time (dispatch.c). Hand-written intrinsics for
 * specific ISAs can go in kernels/<isa>/ later, behind the same table.
 *
 * Every kernel is single-threaded (the ops split work with eb_parallel_for) and deterministic:
 * an element of the result depends only on the operands and on k, never on how a caller splits
 * m or n into pieces, so 1 and N threads give bit-identical results.
 */
#ifndef EB_KERNELS_H
#define EB_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* A 2-D window: kernel, stride, pad, dilation as (h, w). */
typedef struct eb_window {
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
} eb_window;

typedef struct eb_kernel_table {
    const char *isa; /* "generic", "avx2", "avx512" */
    /* C[m x n] (+)= A[m x k] * B[k x n], row-major with leading dimensions; accumulate != 0
     * adds to C. Cache-blocked. Packs through a small buffer on the stack (< 48 KiB); for large
     * products in ops prefer sgemm_ex with a workspace from eb_scratch. */
    void (*sgemm)(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                  int64_t ldb, float *c, int64_t ldc, int accumulate);
    /* C[m x n] (+)= op(A) * op(B). op(A) is A, stored m x k (lda), or with trans_a A^T where a
     * is stored k x m; op(B) is B, stored k x n (ldb), or with trans_b B^T where b is stored
     * n x k. work: packing buffer of work_bytes (64-aligned is best); sgemm_work_bytes(m, n, k)
     * bytes give the full blocking, less works down to EB_SGEMM_MIN_WORK_BYTES (smaller blocks;
     * below that it falls back to the stack buffer). Results do not depend on work_bytes. */
    void (*sgemm_ex)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc,
                     int accumulate, void *work, size_t work_bytes);
    /* Bytes of workspace for sgemm_ex's full blocking of an m x n x k product. */
    size_t (*sgemm_work_bytes)(int64_t m, int64_t n, int64_t k);
    /* y (+)= op(A) x with A stored m x n row-major (lda): without trans_a y has m entries and
     * x n (row dot products); with trans_a y has n entries and x m (y += sum_i x[i] A[i, :]). */
    void (*sgemv)(int trans_a, int64_t m, int64_t n, const float *a, int64_t lda, const float *x,
                  float *y, int accumulate);

    /* Weights packed once at load (prepare) for repeated products with a changing B. The
     * packed layout belongs to this table (its micro-tile and depth blocking). */
    int mr; /* rows of the micro-tile: row offsets into a packed matrix are multiples of it */
    /* Bytes of op(A) (m x k) packed. */
    size_t (*pack_a_bytes)(int64_t m, int64_t k);
    /* Pack op(A): A stored m x k (lda), or with trans_a A^T where a is stored k x m. */
    void (*pack_a)(int trans_a, int64_t m, int64_t k, const float *a, int64_t lda, float *dst);
    /* C[m x n] (+)= rows [i0, i0 + m) of the packed m_total x k matrix times op(B) (as in
     * sgemm_ex); i0 a multiple of mr. Bit-identical to sgemm_ex on the same operands. work as
     * for sgemm_ex (sgemm_work_bytes is enough; it needs only the B block). */
    void (*sgemm_packed_a)(const float *apacked, int64_t m_total, int64_t i0, int64_t m,
                           int64_t n, int64_t k, int trans_b, const float *b, int64_t ldb,
                           float *c, int64_t ldc, int accumulate, void *work,
                           size_t work_bytes);

    /* Depthwise convolution of one plane: y[oh x ow] = x[h x w] cross-correlated with
     * k[kh x kw] under `win` (zero padding), no bias; oh, ow as Convolution computes them
     * (every window inside the padded plane). All kh*kw taps summed in (i, j) order from zero,
     * padding zeros included. pad: dwconv_pad_bytes(h, w, win) bytes of scratch (the plane
     * staged with its zero border, each row split into stride phases; 0 bytes, and pad unused,
     * without padding at column stride 1). */
    size_t (*dwconv_pad_bytes)(int64_t h, int64_t w, const eb_window *win);
    void (*dwconv_plane)(const float *x, int64_t h, int64_t w, const float *k,
                         const eb_window *win, int64_t oh, int64_t ow, float *y, float *pad);

    /* ---- int8 path (src/ops/int8/): exact integer arithmetic, so the result never depends
     * on blocking, vector width or threads; SIMD variants (VNNI, AVX2 madd, NEON sdot) slot in
     * here. A: int8 weights as stored in the bundle; B / x: int16 activations minus their zero
     * point ([-255, 255]); the caller guarantees every partial sum fits int32 (prepare()
     * bounds sum |w| * 255 + |bias| per output channel). */
    /* C[m x n] = A[m x k] B[k x n]: A int8 row-major (lda), B int16 row-major (ldb), C int32
     * (ldc), overwritten. */
    void (*gemm_s8s16)(int64_t m, int64_t n, int64_t k, const int8_t *a, int64_t lda,
                       const int16_t *b, int64_t ldb, int32_t *c, int64_t ldc);
    /* sum_i w[i] x[i] over n pairs, in int32. */
    int32_t (*dot_s8s16)(const int8_t *w, const int16_t *x, int64_t n);

    /* Packed int8 GEMM (convolution): int16 operands interleaved in k pairs for pairwise
     * multiply-add (AVX2 / AVX-512 madd, VNNI dpwssd). kp = (k + 1) / 2 pairs (an odd k is
     * padded with a zero row). A packed: blocks of s16_mr rows, each kp x s16_mr x 2 int16
     * (rows past m zero); B packed: panels of s16_nr columns, each kp x s16_nr x 2 int16
     * (columns past n zero). */
    int s16_mr, s16_nr;
    /* int16 count of packed A (m x k) and packed B (k x n). */
    size_t (*pack_s16_a_count)(int64_t m, int64_t k);
    size_t (*pack_s16_b_count)(int64_t k, int64_t n);
    /* Pack int8 A (m x k, lda) widened. */
    void (*pack_s16_a)(int64_t m, int64_t k, const int8_t *a, int64_t lda, int16_t *dst);
    /* Pack B[r][j] = x[r * ldx + j] - zp (int8 rows, k x n). */
    void (*pack_s16_b)(int64_t k, int64_t n, const int8_t *x, int64_t ldx, int32_t zp,
                       int16_t *dst);
    /* C[m x n] = A B on packed operands: ap starts at a row block, bp at a column panel; C int32
     * (ldc), overwritten. */
    void (*gemm_s16_packed)(int64_t m, int64_t n, int64_t k, const int16_t *ap,
                            const int16_t *bp, int32_t *c, int64_t ldc);
    /* y[t] = clamp(zp + MBQM(acc[t] + bias, (m0, shift)), lo, hi) (fixed_point, bit for bit;
     * acc[t] + bias must fit int32). */
    void (*requant_s32)(const int32_t *acc, int64_t n, int32_t bias, int32_t m0, int32_t shift,
                        int32_t zp, int32_t lo, int32_t hi, int8_t *y);
    /* Quantize: y = clamp(round_half_away(double(x) / scale) + zp, -128, 127), NaN -> zp
     * (fixed_point.quantize_tensor, bit for bit). Dequantize: y = float(q - zp) * scale_f. */
    void (*quantize_s8)(const float *x, int64_t n, double scale, int32_t zp, int8_t *y);
    void (*dequantize_s8)(const int8_t *q, int64_t n, float scale_f, int32_t zp, float *y);

    /* int8 depthwise convolution of one plane, in two steps. dwconv_s8_stage copies x (h x w
     * int8) minus zp as int16 into pad with a zero border (the padding is the real value 0),
     * each padded row split into win->sw stride phases (as dwconv_plane's staging) so that
     * adjacent outputs read adjacent inputs; pad holds dwconv_s8_pad_count(h, w, win) int16
     * (slack past the plane included). dwconv_s8_plane then sums, for every output pixel,
     * the kh*kw taps k[i * kw + j] * staged input in exact int32 (no bias): acc[oh x ow],
     * overwritten; oh, ow as Convolution computes them. One staged plane serves every output
     * channel of its input channel. Exact integers: every ISA gives the same acc. */
    size_t (*dwconv_s8_pad_count)(int64_t h, int64_t w, const eb_window *win);
    void (*dwconv_s8_stage)(const int8_t *x, int64_t h, int64_t w, int32_t zp,
                            const eb_window *win, int16_t *pad);
    void (*dwconv_s8_plane)(const int16_t *pad, int64_t h, int64_t w, const int8_t *k,
                            const eb_window *win, int64_t oh, int64_t ow, int32_t *acc);

    /* Packed u8 x s8 GEMM (convolution) for CPUs with 8-bit dot products (AVX-512 VNNI
     * vpdpbusd: 4 u8 x s8 products per int32 lane). Present when u8s8_available is non-NULL
     * and returns nonzero (the CPU has the instructions); NULL / 0 otherwise. The activations
     * enter as xu = x + 128 (u8), the weights as stored (s8); kq = (k + 3) / 4 groups of 4
     * (k past the end: zero weights). A packed: blocks of u8_mr rows, each kq x u8_mr x 4 int8;
     * B packed: panels of u8_nr columns, each kq x u8_nr x 4 u8. gemm_u8s8_packed gives
     * C[r][j] = sum_k xu[k][j] w[r][k] - corr[r]; with corr[r] = (128 + zp) sum_k w[r][k] that
     * is sum_k (x - zp) w exactly, the same int32 as gemm_s16_packed (under the same bound). */
    int u8_mr, u8_nr;
    int (*u8s8_available)(void);
    size_t (*pack_u8_a_bytes)(int64_t m, int64_t k);
    size_t (*pack_u8_b_bytes)(int64_t k, int64_t n);
    void (*pack_u8_a)(int64_t m, int64_t k, const int8_t *a, int64_t lda, int8_t *dst);
    /* Pack B[r][j] = x[r * ldx + j] + 128 (int8 rows, k x n). */
    void (*pack_u8_b)(int64_t k, int64_t n, const int8_t *x, int64_t ldx, uint8_t *dst);
    /* ap starts at a row block, corr at its first row; C int32 (ldc), overwritten. */
    void (*gemm_u8s8_packed)(int64_t m, int64_t n, int64_t k, const int8_t *ap,
                             const uint8_t *bp, const int32_t *corr, int32_t *c, int64_t ldc);
} eb_kernel_table;

/* The least workspace sgemm_ex uses without falling back to the stack (any ISA). */
#define EB_SGEMM_MIN_WORK_BYTES ((size_t)(256 * (16 + 32) * 4 + 256))

/* The table for this CPU (chosen once, thread-safe). EB_ISA=generic|avx2|avx512 overrides
 * (capped at what the CPU supports). */
const eb_kernel_table *eb_kernels(void);
/* A named table ("generic", "avx2", "avx512") if this build has it and the CPU runs it, else
 * NULL (for tests and benchmarks). */
const eb_kernel_table *eb_kernels_named(const char *isa);
/* sgemm_work_bytes of the chosen table: what prepare() reserves in scratch for sgemm_ex. */
size_t eb_sgemm_work_bytes(int64_t m, int64_t n, int64_t k);

#endif
