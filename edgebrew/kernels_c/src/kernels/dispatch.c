/* Picks the kernel table for this CPU once, at first use (thread-safe through pthread_once).
 * x86-64 GNU C builds carry generic, AVX2 and AVX-512 tables and choose from what the CPU and
 * OS report (__builtin_cpu_supports checks XCR0, so an OS that does not save AVX-512 state
 * gets AVX2); other targets have the generic table only. EB_ISA=generic|avx2|avx512 caps the
 * choice (a level the CPU lacks falls back to the best it has below). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

extern const eb_kernel_table eb_kernel_table_generic;
#if defined(__x86_64__) && defined(__GNUC__)
#define EB_HAVE_X86_TABLES 1
extern const eb_kernel_table eb_kernel_table_avx2;
extern const eb_kernel_table eb_kernel_table_avx512;
#endif

enum { EB_LEVEL_GENERIC = 0, EB_LEVEL_AVX2 = 1, EB_LEVEL_AVX512 = 2 };

static int eb_cpu_level(void)
{
#if defined(EB_HAVE_X86_TABLES)
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    return avx512 ? EB_LEVEL_AVX512 : avx2 ? EB_LEVEL_AVX2 : EB_LEVEL_GENERIC;
#else
    return EB_LEVEL_GENERIC;
#endif
}

static const eb_kernel_table *eb_table_of_level(int level)
{
#if defined(EB_HAVE_X86_TABLES)
    if (level >= EB_LEVEL_AVX512) return &eb_kernel_table_avx512;
    if (level == EB_LEVEL_AVX2) return &eb_kernel_table_avx2;
#else
    (void)level;
#endif
    return &eb_kernel_table_generic;
}

static int eb_level_of_name(const char *isa)
{
    if (!isa) return -1;
    if (strcmp(isa, "generic") == 0) return EB_LEVEL_GENERIC;
    if (strcmp(isa, "avx2") == 0) return EB_LEVEL_AVX2;
    if (strcmp(isa, "avx512") == 0) return EB_LEVEL_AVX512;
    return -1;
}

static const eb_kernel_table *g_table;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void eb_choose_table(void)
{
    int level = eb_cpu_level();
    const int wanted = eb_level_of_name(getenv("EB_ISA")); /* unknown or unset: automatic */
    if (wanted >= 0 && wanted < level) level = wanted;
    g_table = eb_table_of_level(level);
}

const eb_kernel_table *eb_kernels(void)
{
    pthread_once(&g_once, eb_choose_table);
    return g_table;
}

const eb_kernel_table *eb_kernels_named(const char *isa)
{
    const int level = eb_level_of_name(isa);
    if (level < 0 || level > eb_cpu_level()) return NULL;
    const eb_kernel_table *t = eb_table_of_level(level);
    return strcmp(t->isa, isa) == 0 ? t : NULL;
}

size_t eb_sgemm_work_bytes(int64_t m, int64_t n, int64_t k)
{
    return eb_kernels()->sgemm_work_bytes(m, n, k);
}
