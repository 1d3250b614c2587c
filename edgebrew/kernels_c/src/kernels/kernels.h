/* Compute kernels shared by the ops, built once per ISA level (see dispatch.c).
 *
 * The generic C in kernels/generic/ is written so the compiler vectorizes it (-O3); the build
 * compiles the same sources again with -mavx2 -mfma and -mavx512f into separately named
 * symbols, and eb_kernels() picks the best table for the CPU at run time. Hand-written
 * intrinsics for specific ISAs go in kernels/<isa>/ later, behind the same table.
 */
#ifndef EB_KERNELS_H
#define EB_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct eb_kernel_table {
    const char *isa; /* "generic", "avx2", "avx512" */
    /* C[m x n] (+)= A[m x k] * B[k x n], row-major with leading dimensions; accumulate != 0
     * adds to C. Cache-blocked. */
    void (*sgemm)(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                  int64_t ldb, float *c, int64_t ldc, int accumulate);
} eb_kernel_table;

/* The table for this CPU (chosen once, thread-safe). EB_ISA=generic|avx2|avx512 overrides. */
const eb_kernel_table *eb_kernels(void);

#endif
