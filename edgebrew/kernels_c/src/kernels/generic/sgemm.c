/* The generic (baseline ISA) build of the blocked SGEMM / SGEMV: sgemm_impl.h compiled with the
 * target's default flags (SSE2 on x86-64, NEON on aarch64), tile sizes chosen per architecture
 * for its vector register file. isa_avx2.c and isa_avx512.c build the same body again. */
#if defined(__aarch64__)
/* 32 x 128-bit registers: 8 x 12 accumulators (24 registers) + 3 for B + 2 for A. */
#define EB_MR 8
#define EB_NR 12
#define EB_GEMV_L 8
#define EB_DW_V 32
#else
/* x86-64 SSE2 (16 x 128-bit registers) and anything else: 4 x 8 keeps every accumulator in a
 * register without FMA. */
#define EB_MR 4
#define EB_NR 8
#define EB_GEMV_L 8
#define EB_DW_V 16
#endif
#define EB_KC 256
#define EB_MC 192
#define EB_NC 2048
#define EB_TABLE_NAME eb_kernel_table_generic
#define EB_ISA_NAME "generic"
#include "sgemm_impl.h"
