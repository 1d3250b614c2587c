/* Layout transforms for convolution as GEMM (compiled once, generic; memory-bound). */
#ifndef EB_IM2COL_H
#define EB_IM2COL_H

#include <stdint.h>

#include "kernels.h" /* eb_window */

/* im2col of a tile of output pixels: x holds `channels` planes of h x w; output pixels
 * p in [p0, p0 + np) of an (any height) x ow grid, row-major. Writes cols[r * ldc + (p - p0)]
 * for r = (c * kh + i) * kw + j: x[c][oy * sh - ph + i * dh][ox * sw - pw + j * dw], or 0
 * outside the input. */
void eb_im2col_tile(const float *x, int64_t channels, int64_t h, int64_t w, const eb_window *win,
                    int64_t ow, int64_t p0, int64_t np, float *cols, int64_t ldc);

/* The adjoint, for deconvolution: cols rows r = (c * kh + i) * kw + j, columns the input pixels
 * p in [p0, p0 + np) of an (any) x w grid; adds cols[r * ldc + (p - p0)] to
 * y[c][iy * sh - ph + i * dh][ix * sw - pw + j * dw] where that lies in the oh x ow output.
 * Order: rows, then pixels (fixed: results do not depend on how callers split channels). */
void eb_col2im_tile_add(const float *cols, int64_t ldc, int64_t channels, int64_t w,
                        const eb_window *win, int64_t oh, int64_t ow, int64_t p0, int64_t np,
                        float *y);

#endif
