/* The AVX-512 build of kernels/generic/sgemm_impl.h (picked by dispatch.c when the CPU and OS
 * support AVX-512F/BW/VL). 8 x 32 tile: 16 zmm accumulators + 2 for B + 1 broadcast of A. */
#if defined(__x86_64__) && defined(__GNUC__)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
#endif

#define EB_MR 8
#define EB_NR 32
#define EB_KC 256
#define EB_MC 192
#define EB_NC 2048
#define EB_DW_V 64
#define EB_GEMV_L 32
#define EB_TABLE_NAME eb_kernel_table_avx512
#define EB_ISA_NAME "avx512"
#define EB_I8_AVX512 1 /* int8_gemm_impl.h: the intrinsics micro-kernel */
#include "generic/sgemm_impl.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else
typedef int eb_isa_avx512_unused; /* not an x86-64 GNU C build: no AVX-512 table */
#endif
