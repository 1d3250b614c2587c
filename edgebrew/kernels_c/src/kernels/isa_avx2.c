/* The AVX2 + FMA build of kernels/generic/sgemm_impl.h (picked by dispatch.c when the CPU has
 * both). 6 x 16 tile: 12 ymm accumulators + 2 for B + 1 broadcast of A = 15 of 16 registers;
 * pressure-aware scheduling keeps gcc from hoisting the broadcasts into spills. */
#if defined(__x86_64__) && defined(__GNUC__)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#pragma GCC optimize("schedule-insns", "sched-pressure")
#endif

#define EB_MR 6
#define EB_NR 16
#define EB_KC 256
#define EB_MC 192
#define EB_NC 2048
#define EB_DW_V 32
#define EB_GEMV_L 16
#define EB_TABLE_NAME eb_kernel_table_avx2
#define EB_ISA_NAME "avx2"
#define EB_I8_AVX2 1 /* int8_gemm_impl.h: the intrinsics micro-kernel */
#include "generic/sgemm_impl.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else
typedef int eb_isa_avx2_unused; /* not an x86-64 GNU C build: no AVX2 table */
#endif
