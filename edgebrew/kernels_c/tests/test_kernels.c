/* Standalone tests of the kernel tables (src/kernels/): sgemm / sgemm_ex / sgemv of every ISA
 * this CPU runs, against naive double-precision loops, on random sizes (odd ones, tile and
 * block edges), all transpose combinations, accumulate on and off, workspaces from full to
 * none; and a check that splitting m and n (as the ops do across threads) gives bit-identical
 * results. `bench` measures single-threaded GFLOP/s instead.
 *
 *   gcc -std=c11 -O3 -Wall -Wextra -Iedgebrew/kernels_c/src edgebrew/kernels_c/tests/test_kernels.c \
 *       edgebrew/kernels_c/src/kernels/dispatch.c edgebrew/kernels_c/src/kernels/isa_avx2.c \
 *       edgebrew/kernels_c/src/kernels/isa_avx512.c edgebrew/kernels_c/src/kernels/generic/sgemm.c \
 *       -lpthread -lm -o /tmp/test_kernels
 *   /tmp/test_kernels            # tests, exit status 0 on success
 *   /tmp/test_kernels bench      # GFLOP/s of a 256 x 3136 x 1152 product per ISA
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static int64_t rnd_int(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }
static float rnd_float(void) { return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static float *rnd_buf(int64_t n)
{
    float *p = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = rnd_float();
    return p;
}

static int failures = 0;
static long checks = 0;

#define FAIL(...)                                                                              \
    do {                                                                                       \
        failures++;                                                                            \
        if (failures <= 20) {                                                                  \
            fprintf(stderr, "FAIL: " __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

/* element (i, p) of op(A) and (p, j) of op(B) */
static float at_a(int ta, const float *a, int64_t lda, int64_t i, int64_t p)
{
    return ta ? a[p * lda + i] : a[i * lda + p];
}
static float at_b(int tb, const float *b, int64_t ldb, int64_t p, int64_t j)
{
    return tb ? b[j * ldb + p] : b[p * ldb + j];
}

static void check_gemm(const eb_kernel_table *t, int ta, int tb, int64_t m, int64_t n, int64_t k,
                       int accumulate, int workmode)
{
    const int64_t lda = (ta ? m : k) + rnd_int(0, 3), ldb = (tb ? k : n) + rnd_int(0, 3);
    const int64_t ldc = n + rnd_int(0, 3);
    float *a = rnd_buf((ta ? k : m) * lda + 1), *b = rnd_buf((tb ? n : k) * ldb + 1);
    float *c = rnd_buf(m * ldc + 1), *c0 = xmalloc((size_t)(m * ldc + 1) * sizeof(float));
    memcpy(c0, c, (size_t)(m * ldc + 1) * sizeof(float));
    size_t wbytes = 0;
    void *work = NULL;
    if (workmode == 0) wbytes = t->sgemm_work_bytes(m, n, k);            /* full blocking */
    else if (workmode == 1) wbytes = EB_SGEMM_MIN_WORK_BYTES + (size_t)rnd_int(0, 64) * 64;
    else if (workmode == 2) wbytes = (size_t)rnd_int(0, 4096);            /* stack fallback */
    if (workmode <= 2) work = xmalloc(wbytes + 64);
    if (workmode == 3) {
        if (ta || tb) goto done;
        t->sgemm(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    } else {
        /* an odd offset exercises the alignment of the carved buffers */
        char *w = (char *)work + (workmode == 1 ? 4 * rnd_int(0, 15) : 0);
        t->sgemm_ex(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, accumulate, w, wbytes);
    }
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double s = accumulate ? c0[i * ldc + j] : 0.0, mag = fabs(s);
            for (int64_t p = 0; p < k; p++) {
                const double v = (double)at_a(ta, a, lda, i, p) * at_b(tb, b, ldb, p, j);
                s += v;
                mag += fabs(v);
            }
            checks++;
            const double got = c[i * ldc + j];
            if (!(fabs(got - s) <= 2e-6 * mag + 1e-30)) {
                FAIL("%s sgemm%s ta=%d tb=%d m=%lld n=%lld k=%lld acc=%d work=%d: C[%lld,%lld] = "
                     "%.9g, want %.9g", t->isa, workmode == 3 ? "" : "_ex", ta, tb, (long long)m,
                     (long long)n, (long long)k, accumulate, workmode, (long long)i, (long long)j,
                     got, s);
                goto done;
            }
        }
        /* the padding between rows is untouched */
        for (int64_t j = n; j < ldc && i < m - 1; j++)
            if (memcmp(&c[i * ldc + j], &c0[i * ldc + j], sizeof(float)) != 0) {
                FAIL("%s: sgemm wrote C's padding at row %lld col %lld", t->isa, (long long)i,
                     (long long)j);
                goto done;
            }
    }
done:
    free(a);
    free(b);
    free(c);
    free(c0);
    free(work);
}

/* Splitting m and n into pieces (as threads do) gives the same bits as one call. */
static void check_split(const eb_kernel_table *t, int ta, int tb, int64_t m, int64_t n, int64_t k)
{
    const int64_t lda = ta ? m : k, ldb = tb ? k : n;
    float *a = rnd_buf((ta ? k : m) * lda), *b = rnd_buf((tb ? n : k) * ldb);
    float *c1 = xmalloc((size_t)(m * n) * sizeof(float)), *c2 = xmalloc((size_t)(m * n) * sizeof(float));
    const size_t wb = t->sgemm_work_bytes(m, n, k);
    void *work = xmalloc(wb);
    t->sgemm_ex(ta, tb, m, n, k, a, lda, b, ldb, c1, n, 0, work, wb);
    int64_t i0 = 0;
    while (i0 < m) {
        const int64_t mb = rnd_int(1, m - i0);
        int64_t j0 = 0;
        while (j0 < n) {
            const int64_t nb = rnd_int(1, n - j0);
            const float *ap = ta ? a + i0 : a + i0 * lda;
            const float *bp = tb ? b + j0 * ldb : b + j0;
            /* a smaller workspace in the pieces: blocking must not matter either */
            const size_t wpiece = EB_SGEMM_MIN_WORK_BYTES + (size_t)rnd_int(0, 1) * wb;
            void *w2 = xmalloc(wpiece);
            t->sgemm_ex(ta, tb, mb, nb, k, ap, lda, bp, ldb, c2 + i0 * n + j0, n, 0, w2, wpiece);
            free(w2);
            j0 += nb;
        }
        i0 += mb;
    }
    checks++;
    if (memcmp(c1, c2, (size_t)(m * n) * sizeof(float)) != 0)
        FAIL("%s: sgemm_ex ta=%d tb=%d %lldx%lldx%lld split into pieces differs from one call",
             t->isa, ta, tb, (long long)m, (long long)n, (long long)k);
    free(a);
    free(b);
    free(c1);
    free(c2);
    free(work);
}

/* Packed A: rows [i0, i0 + mrows) of the packed matrix give the bits sgemm_ex gives. */
static void check_packed(const eb_kernel_table *t, int ta, int tb, int64_t m, int64_t n, int64_t k,
                         int accumulate)
{
    const int64_t lda = (ta ? m : k) + rnd_int(0, 2), ldb = (tb ? k : n) + rnd_int(0, 2);
    float *a = rnd_buf((ta ? k : m) * lda + 1), *b = rnd_buf((tb ? n : k) * ldb + 1);
    float *packed = xmalloc(t->pack_a_bytes(m, k) + 4);
    t->pack_a(ta, m, k, a, lda, packed);
    const int64_t i0 = rnd_int(0, (m - 1) / t->mr) * t->mr, mrows = rnd_int(1, m - i0);
    float *c1 = rnd_buf(mrows * n), *c2 = xmalloc((size_t)(mrows * n) * sizeof(float));
    memcpy(c2, c1, (size_t)(mrows * n) * sizeof(float));
    const size_t wb = t->sgemm_work_bytes(mrows, n, k);
    const int small = (int)rnd_int(0, 2);
    const size_t wb2 = small == 0 ? wb : small == 1 ? EB_SGEMM_MIN_WORK_BYTES : 16;
    void *work = xmalloc(wb + 64), *work2 = xmalloc(wb2 + 64);
    t->sgemm_ex(ta, tb, mrows, n, k, ta ? a + i0 : a + i0 * lda, lda, b, ldb, c1, n, accumulate,
                work, wb);
    t->sgemm_packed_a(packed, m, i0, mrows, n, k, tb, b, ldb, c2, n, accumulate, work2, wb2);
    checks++;
    if (memcmp(c1, c2, (size_t)(mrows * n) * sizeof(float)) != 0)
        FAIL("%s sgemm_packed_a ta=%d tb=%d m=%lld (rows %lld+%lld) n=%lld k=%lld acc=%d differs "
             "from sgemm_ex", t->isa, ta, tb, (long long)m, (long long)i0, (long long)mrows,
             (long long)n, (long long)k, accumulate);
    free(a);
    free(b);
    free(packed);
    free(c1);
    free(c2);
    free(work);
    free(work2);
}

static void check_gemv(const eb_kernel_table *t, int ta, int64_t m, int64_t n, int accumulate)
{
    const int64_t lda = n + rnd_int(0, 3);
    float *a = rnd_buf(m * lda + 1);
    const int64_t nx = ta ? m : n, ny = ta ? n : m;
    float *x = rnd_buf(nx + 1), *y = rnd_buf(ny + 1), *y0 = xmalloc((size_t)(ny + 1) * sizeof(float));
    memcpy(y0, y, (size_t)(ny + 1) * sizeof(float));
    t->sgemv(ta, m, n, a, lda, x, y, accumulate);
    for (int64_t o = 0; o < ny; o++) {
        double s = accumulate ? y0[o] : 0.0, mag = fabs(s);
        for (int64_t p = 0; p < nx; p++) {
            const double v = (double)(ta ? a[p * lda + o] : a[o * lda + p]) * x[p];
            s += v;
            mag += fabs(v);
        }
        checks++;
        if (!(fabs(y[o] - s) <= 2e-6 * mag + 1e-30)) {
            FAIL("%s sgemv ta=%d m=%lld n=%lld acc=%d: y[%lld] = %.9g, want %.9g", t->isa, ta,
                 (long long)m, (long long)n, accumulate, (long long)o, y[o], s);
            break;
        }
    }
    if (memcmp(&y[ny], &y0[ny], sizeof(float)) != 0) FAIL("%s sgemv wrote past y", t->isa);
    /* split the outputs: identical bits */
    if (ny > 1) {
        float *y2 = xmalloc((size_t)ny * sizeof(float));
        const int64_t cut = rnd_int(1, ny - 1);
        memcpy(y2, y0, (size_t)ny * sizeof(float));
        if (ta) {
            t->sgemv(1, m, cut, a, lda, x, y2, accumulate);
            t->sgemv(1, m, n - cut, a + cut, lda, x, y2 + cut, accumulate);
        } else {
            t->sgemv(0, cut, n, a, lda, x, y2, accumulate);
            t->sgemv(0, m - cut, n, a + cut * lda, lda, x, y2 + cut, accumulate);
        }
        checks++;
        if (memcmp(y, y2, (size_t)ny * sizeof(float)) != 0)
            FAIL("%s sgemv ta=%d m=%lld n=%lld: split at %lld differs", t->isa, ta, (long long)m,
                 (long long)n, (long long)cut);
        free(y2);
    }
    free(a);
    free(x);
    free(y);
    free(y0);
}

/* Timing: EB_BENCH_CPUTIME=1 counts this thread's CPU time instead of wall time (on a shared,
 * oversubscribed host it leaves out the time the thread was not running). */
/* Depthwise plane against a naive double loop. */
static void check_dwconv(const eb_kernel_table *t)
{
    eb_window wn;
    wn.kh = rnd_int(1, 5), wn.kw = rnd_int(1, 5), wn.sh = rnd_int(1, 3), wn.sw = rnd_int(1, 3);
    wn.ph = rnd_int(0, 3), wn.pw = rnd_int(0, 3), wn.dh = rnd_int(1, 3), wn.dw = rnd_int(1, 3);
    if (rnd_int(0, 9) == 0) wn.kh = rnd_int(8, 12), wn.kw = rnd_int(7, 9); /* > 64 taps */
    const int64_t h = rnd_int(1, 40), w = rnd_int(1, 150);
    const int64_t nh = h + 2 * wn.ph - (wn.dh * (wn.kh - 1) + 1);
    const int64_t nw = w + 2 * wn.pw - (wn.dw * (wn.kw - 1) + 1);
    if (nh < 0 || nw < 0) return;
    const int64_t oh = nh / wn.sh + 1, ow = nw / wn.sw + 1;
    float *x = rnd_buf(h * w), *k = rnd_buf(wn.kh * wn.kw), *y = rnd_buf(oh * ow + 1);
    const size_t pb = t->dwconv_pad_bytes(h, w, &wn);
    float *pad = rnd_buf((int64_t)(pb / 4) + 1);
    const float guard = y[oh * ow], pguard = pad[pb / 4];
    t->dwconv_plane(x, h, w, k, &wn, oh, ow, y, pad);
    if (memcmp(&pad[pb / 4], &pguard, sizeof(float)) != 0) FAIL("%s dwconv_plane wrote past pad", t->isa);
    free(pad);
    for (int64_t oy = 0; oy < oh; oy++)
        for (int64_t ox = 0; ox < ow; ox++) {
            double s = 0.0, mag = 0.0;
            for (int64_t i = 0; i < wn.kh; i++)
                for (int64_t j = 0; j < wn.kw; j++) {
                    const int64_t iy = oy * wn.sh - wn.ph + i * wn.dh, ix = ox * wn.sw - wn.pw + j * wn.dw;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                    const double v = (double)k[i * wn.kw + j] * x[iy * w + ix];
                    s += v;
                    mag += fabs(v);
                }
            checks++;
            if (!(fabs(y[oy * ow + ox] - s) <= 2e-6 * mag + 1e-30)) {
                FAIL("%s dwconv_plane %lldx%lld k=%lldx%lld s=%lld,%lld p=%lld,%lld d=%lld,%lld: "
                     "y[%lld,%lld] = %.9g, want %.9g", t->isa, (long long)h, (long long)w,
                     (long long)wn.kh, (long long)wn.kw, (long long)wn.sh, (long long)wn.sw,
                     (long long)wn.ph, (long long)wn.pw, (long long)wn.dh, (long long)wn.dw,
                     (long long)oy, (long long)ox, y[oy * ow + ox], s);
                oy = oh;
                break;
            }
        }
    if (memcmp(&y[oh * ow], &guard, sizeof(float)) != 0) FAIL("%s dwconv_plane wrote past y", t->isa);
    free(x);
    free(k);
    free(y);
}

static double now(void)
{
    struct timespec ts;
    const char *cpu = getenv("EB_BENCH_CPUTIME");
    clock_gettime(cpu && *cpu == '1' ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void bench(const eb_kernel_table *t, int64_t m, int64_t n, int64_t k, int ta, int tb)
{
    float *a = rnd_buf(m * k), *b = rnd_buf(k * n), *c = rnd_buf(m * n);
    const size_t wb = t->sgemm_work_bytes(m, n, k);
    void *work = xmalloc(wb);
    t->sgemm_ex(ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, c, n, 0, work, wb); /* warm up */
    double best = 1e30;
    for (int r = 0; r < 7; r++) {
        const double t0 = now();
        t->sgemm_ex(ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, c, n, 0, work, wb);
        const double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("%-8s sgemm_ex ta=%d tb=%d %lldx%lldx%lld: %7.1f GFLOP/s (best of 7, %.2f ms)\n",
           t->isa, ta, tb, (long long)m, (long long)n, (long long)k,
           2.0 * (double)m * (double)n * (double)k / best * 1e-9, best * 1e3);
    free(a);
    free(b);
    free(c);
    free(work);
}

static void bench_packed(const eb_kernel_table *t, int64_t m, int64_t n, int64_t k)
{
    float *a = rnd_buf(m * k), *b = rnd_buf(k * n), *c = rnd_buf(m * n);
    float *packed = xmalloc(t->pack_a_bytes(m, k));
    t->pack_a(0, m, k, a, k, packed);
    const size_t wb = t->sgemm_work_bytes(m, n, k);
    void *work = xmalloc(wb);
    double best = 1e30;
    for (int r = 0; r < 8; r++) {
        const double t0 = now();
        t->sgemm_packed_a(packed, m, 0, m, n, k, 0, b, n, c, n, 0, work, wb);
        const double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("%-8s sgemm_packed_a %lldx%lldx%lld: %7.1f GFLOP/s (best of 8, %.2f ms)\n", t->isa,
           (long long)m, (long long)n, (long long)k,
           2.0 * (double)m * (double)n * (double)k / best * 1e-9, best * 1e3);
    free(a);
    free(b);
    free(c);
    free(packed);
    free(work);
}

static void bench_dwconv(const eb_kernel_table *t, int64_t hw, int64_t stride)
{
    const eb_window wn = {3, 3, stride, stride, 1, 1, 1, 1};
    const int64_t o = (hw + 2 - 3) / stride + 1, planes = 128;
    float *x = rnd_buf(hw * hw * planes), *k = rnd_buf(9 * planes), *y = rnd_buf(o * o * planes);
    float *pad = xmalloc(t->dwconv_pad_bytes(hw, hw, &wn));
    double best = 1e30;
    for (int r = 0; r < 7; r++) {
        const double t0 = now();
        for (int64_t q = 0; q < planes; q++)
            t->dwconv_plane(x + q * hw * hw, hw, hw, k + 9 * q, &wn, o, o, y + q * o * o, pad);
        const double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("%-8s dwconv 3x3 s%lld %lldx%lld x %lld planes: %7.1f GFLOP/s\n", t->isa,
           (long long)stride, (long long)hw, (long long)hw, (long long)planes,
           2.0 * 9 * (double)(o * o * planes) / best * 1e-9);
    free(pad);
    free(x);
    free(k);
    free(y);
}

static void bench_gemv(const eb_kernel_table *t, int ta, int64_t m, int64_t n)
{
    float *a = rnd_buf(m * n), *x = rnd_buf(ta ? m : n), *y = rnd_buf(ta ? n : m);
    t->sgemv(ta, m, n, a, n, x, y, 0);
    double best = 1e30;
    for (int r = 0; r < 7; r++) {
        const double t0 = now();
        t->sgemv(ta, m, n, a, n, x, y, 0);
        const double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("%-8s sgemv ta=%d %lldx%lld: %7.1f GFLOP/s, %6.1f GB/s of A\n", t->isa, ta,
           (long long)m, (long long)n, 2.0 * (double)m * (double)n / best * 1e-9,
           4.0 * (double)m * (double)n / best * 1e-9);
    free(a);
    free(x);
    free(y);
}

int main(int argc, char **argv)
{
    static const char *const isas[] = {"generic", "avx2", "avx512"};
    const eb_kernel_table *tables[3];
    int nt = 0;
    for (int i = 0; i < 3; i++) {
        const eb_kernel_table *t = eb_kernels_named(isas[i]);
        if (t) tables[nt++] = t;
    }
    printf("tables on this CPU:");
    for (int i = 0; i < nt; i++) printf(" %s", tables[i]->isa);
    printf("; eb_kernels() picks %s\n", eb_kernels()->isa);

    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        for (int i = 0; i < nt; i++) {
            bench(tables[i], 256, 3136, 1152, 0, 0);
            bench(tables[i], 64, 3136, 576, 0, 0);
            bench(tables[i], 512, 196, 4608, 0, 0);
            bench(tables[i], 64, 4096, 9216, 0, 1);
            bench_packed(tables[i], 256, 3136, 1152);
            bench_packed(tables[i], 256, 96, 1152);
            bench_dwconv(tables[i], 56, 1);
            bench_dwconv(tables[i], 112, 2);
            bench_gemv(tables[i], 0, 4096, 9216);
            bench_gemv(tables[i], 1, 9216, 4096);
        }
        return 0;
    }

    /* edge sizes around every ISA's tiles and blocks, then random ones */
    static const int64_t edge[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 31, 32, 33, 47, 49, 65};
    const int ne = (int)(sizeof(edge) / sizeof(edge[0]));
    for (int ti = 0; ti < nt; ti++) {
        const eb_kernel_table *t = tables[ti];
        for (int r = 0; r < 150; r++) {
            const int64_t m = edge[rnd_int(0, ne - 1)], n = edge[rnd_int(0, ne - 1)];
            const int64_t k = rnd_int(0, 3) == 0 ? edge[rnd_int(0, ne - 1)] : rnd_int(0, 600);
            check_gemm(t, (int)rnd_int(0, 1), (int)rnd_int(0, 1), m, n, k, (int)rnd_int(0, 1),
                       (int)rnd_int(0, 3));
        }
        for (int r = 0; r < 60; r++) {
            const int64_t m = rnd_int(1, 300), n = rnd_int(1, 300), k = rnd_int(1, 700);
            check_gemm(t, (int)rnd_int(0, 1), (int)rnd_int(0, 1), m, n, k, (int)rnd_int(0, 1),
                       (int)rnd_int(0, 3));
        }
        /* k = 0 (C = 0 or unchanged) and blocks larger than one EB_MC / EB_NC / EB_KC */
        check_gemm(t, 0, 0, 5, 7, 0, 0, 0);
        check_gemm(t, 0, 0, 5, 7, 0, 1, 0);
        check_gemm(t, 0, 0, 400, 2100, 300, 0, 0);
        check_gemm(t, 1, 1, 397, 2113, 513, 1, 1);
        for (int r = 0; r < 25; r++)
            check_split(t, (int)rnd_int(0, 1), (int)rnd_int(0, 1), rnd_int(1, 200),
                        rnd_int(1, 200), rnd_int(1, 600));
        for (int r = 0; r < 60; r++)
            check_packed(t, (int)rnd_int(0, 1), (int)rnd_int(0, 1), rnd_int(1, 250),
                         rnd_int(1, 250), rnd_int(1, 700), (int)rnd_int(0, 1));
        check_packed(t, 0, 0, 600, 70, 300, 0);
        for (int r = 0; r < 80; r++)
            check_gemv(t, (int)rnd_int(0, 1), rnd_int(1, 300), rnd_int(1, 1200), (int)rnd_int(0, 1));
        for (int r = 0; r < 300; r++) check_dwconv(t);
        check_gemv(t, 0, 3, 0, 0);
        check_gemv(t, 1, 0, 5, 0);
    }
    /* Across ISAs the results agree to rounding (FMA or not), checked above against double. */
    printf("%ld checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
