/* im2col / col2im over tiles of pixels (see im2col.h). Each row of the column matrix is
 * produced segment by segment along output rows: a segment is zeros, a strided copy of an
 * input row, zeros (the valid range worked out once per segment, no per-pixel tests). */
#include <string.h>

#include "../im2col.h"

static int64_t floor_div(int64_t a, int64_t b) /* b > 0 */
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* The [lo, hi) of positions o in [0, n_out) with 0 <= o * s + off < n_in. */
static void valid_range(int64_t off, int64_t s, int64_t n_in, int64_t n_out, int64_t *lo,
                        int64_t *hi)
{
    int64_t a = -floor_div(off, s); /* ceil(-off / s) */
    int64_t b = floor_div(n_in - 1 - off, s) + 1;
    if (a < 0) a = 0;
    if (b > n_out) b = n_out;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

void eb_im2col_tile(const float *x, int64_t channels, int64_t h, int64_t w, const eb_window *win,
                    int64_t ow, int64_t p0, int64_t np, float *cols, int64_t ldc)
{
    const int64_t kh = win->kh, kw = win->kw, sh = win->sh, sw = win->sw;
    const int64_t oy0 = p0 / ow, ox0 = p0 % ow;
    for (int64_t c = 0; c < channels; c++) {
        const float *plane = x + c * h * w;
        for (int64_t i = 0; i < kh; i++) {
            for (int64_t j = 0; j < kw; j++) {
                float *dst = cols + ((c * kh + i) * kw + j) * ldc;
                const int64_t xoff = j * win->dw - win->pw;
                int64_t lo, hi;
                valid_range(xoff, sw, w, ow, &lo, &hi);
                int64_t t = 0, oy = oy0, ox = ox0;
                while (t < np) {
                    const int64_t seg = (ow - ox < np - t) ? ow - ox : np - t; /* ox .. ox+seg */
                    const int64_t iy = oy * sh - win->ph + i * win->dh;
                    float *d = dst + t; /* d[o - ox] for output column o */
                    if (iy < 0 || iy >= h) {
                        memset(d, 0, (size_t)seg * sizeof(float));
                    } else {
                        const int64_t e = ox + seg;
                        const int64_t a = lo > ox ? (lo < e ? lo : e) : ox;
                        const int64_t b = hi < e ? (hi > a ? hi : a) : e;
                        /* columns [a, b) read x[iy][o * sw + xoff], all inside the row */
                        memset(d, 0, (size_t)(a - ox) * sizeof(float));
                        if (b > a) {
                            const float *src = plane + iy * w + (a * sw + xoff);
                            float *dd = d + (a - ox);
                            if (sw == 1) {
                                memcpy(dd, src, (size_t)(b - a) * sizeof(float));
                            } else {
                                for (int64_t q = 0; q < b - a; q++) dd[q] = src[q * sw];
                            }
                        }
                        memset(d + (b - ox), 0, (size_t)(e - b) * sizeof(float));
                    }
                    t += seg;
                    ox = 0;
                    oy++;
                }
            }
        }
    }
}

void eb_col2im_tile_add(const float *cols, int64_t ldc, int64_t channels, int64_t w,
                        const eb_window *win, int64_t oh, int64_t ow, int64_t p0, int64_t np,
                        float *y)
{
    const int64_t kh = win->kh, kw = win->kw, sh = win->sh, sw = win->sw;
    const int64_t iy0 = p0 / w, ix0 = p0 % w;
    for (int64_t c = 0; c < channels; c++) {
        float *plane = y + c * oh * ow;
        for (int64_t i = 0; i < kh; i++) {
            for (int64_t j = 0; j < kw; j++) {
                const float *src = cols + ((c * kh + i) * kw + j) * ldc;
                const int64_t xoff = j * win->dw - win->pw;
                int64_t lo, hi; /* input columns ix whose target ix * sw + xoff is in [0, ow) */
                valid_range(xoff, sw, ow, w, &lo, &hi);
                int64_t t = 0, iy = iy0, ix = ix0;
                while (t < np) {
                    const int64_t seg = (w - ix < np - t) ? w - ix : np - t;
                    const int64_t oy = iy * sh - win->ph + i * win->dh;
                    if (oy >= 0 && oy < oh) {
                        const int64_t a = lo > ix ? lo : ix, e = ix + seg;
                        const int64_t b = hi < e ? hi : e;
                        if (b > a) { /* input columns [a, b) land inside the output row */
                            const float *restrict s = src + t + (a - ix);
                            float *restrict row = plane + oy * ow + (a * sw + xoff);
                            if (sw == 1) {
                                for (int64_t q = 0; q < b - a; q++) row[q] += s[q];
                            } else {
                                for (int64_t q = 0; q < b - a; q++) row[q * sw] += s[q];
                            }
                        }
                    }
                    t += seg;
                    ix = 0;
                    iy++;
                }
            }
        }
    }
}
