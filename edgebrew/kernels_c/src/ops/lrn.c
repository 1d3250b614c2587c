/* LRN (Caffe's LRNLayer, CPU semantics), NCHW.
 *
 * Attributes (edgebrew/ir/ops/normalization.py): local_size (odd, n), alpha, beta, k,
 * norm_region "ACROSS_CHANNELS" / "WITHIN_CHANNEL".
 *
 * ACROSS_CHANNELS: scale = k + alpha/n * (sum of x^2 over the n channels centred on c, zero
 * padded), y = x * scale^-beta. As Caffe's CPU code (and the reference) accumulates it: the
 * first channel's window summed term by term, then a running sum (add the entering channel's
 * term, add minus the leaving one's). Vectorized over a tile of pixels, the running sum held in
 * a small array; threads split (image, pixel tile).
 *
 * WITHIN_CHANNEL: Caffe's Power(x^2) -> AVE pooling (kernel n, pad (n-1)/2, stride 1) ->
 * (1 + alpha * pooled)^-beta: the shift is 1 (k unused), the divisor the padded window (n*n);
 * when alpha * -beta == 0 the factor is exactly 1. Threads split the planes.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_geometry.h"
#include "op.h"

enum { LRN_TILE = 256 };

typedef struct lrn_params {
    int64_t n, c, hw, h, w;
    int64_t size, pre;
    float alpha, beta, k, aos;
    int across;
    int power_is_one; /* WITHIN_CHANNEL with alpha * -beta == 0 */
} lrn_params;

static eb_status lrn_prepare(eb_node *node, eb_error *err)
{
    eb_status s;
    int64_t size;
    double alpha, beta, k;
    const char *region;
    if ((s = eb_attr_int(node, "local_size", 5, &size, err)) != EB_OK) return s;
    if ((s = eb_attr_float(node, "alpha", 1.0, &alpha, err)) != EB_OK) return s;
    if ((s = eb_attr_float(node, "beta", 0.75, &beta, err)) != EB_OK) return s;
    if ((s = eb_attr_float(node, "k", 1.0, &k, err)) != EB_OK) return s;
    if ((s = eb_attr_string(node, "norm_region", "ACROSS_CHANNELS", &region, err)) != EB_OK)
        return s;
    if ((s = eb_check_counts(node, 1, 1, 0, err)) != EB_OK) return s;
    if (size < 1 || size % 2 != 1 || size > EB_GEOM_MAX)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "local_size must be odd and positive, got %lld", (long long)size);
    const int across = strcmp(region, "ACROSS_CHANNELS") == 0;
    if (!across && strcmp(region, "WITHIN_CHANNEL") != 0)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "unknown norm_region '%s'", region);
    const eb_tensor *in = node->inputs[0];
    if ((s = eb_check_ndim(node, in, "input", 4, err)) != EB_OK) return s;
    if ((s = eb_check_shape(node, node->outputs[0], "output", 4, in->dims, err)) != EB_OK) return s;

    lrn_params *p = malloc(sizeof(lrn_params));
    if (!p) return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "no memory for parameters");
    p->n = in->dims[0], p->c = in->dims[1], p->h = in->dims[2], p->w = in->dims[3];
    p->hw = p->h * p->w;
    p->size = size;
    p->pre = (size - 1) / 2;
    p->alpha = (float)alpha, p->beta = (float)beta, p->k = (float)k;
    p->aos = p->alpha / (float)size; /* in float, as the reference: alpha / t(n) */
    p->across = across;
    p->power_is_one = !across && p->alpha * -p->beta == 0.0f;
    node->params = p;
    node->scratch_bytes = 0;
    return EB_OK;
}

typedef struct lrn_ctx {
    const lrn_params *p;
    const float *x;
    float *y;
    int64_t tiles; /* pixel tiles per image (ACROSS) */
} lrn_ctx;

/* y = x * scale^-beta over a row of values */
static void lrn_apply(const float *restrict x, const float *restrict scale, float *restrict y,
                      int64_t count, float beta)
{
    if (beta == 0.75f) { /* scale^-0.75 = 1 / (sqrt(scale) * sqrt(sqrt(scale))) */
        for (int64_t t = 0; t < count; t++) {
            const float r = sqrtf(scale[t]);
            y[t] = x[t] * (1.0f / (r * sqrtf(r)));
        }
    } else {
        for (int64_t t = 0; t < count; t++) y[t] = x[t] * powf(scale[t], -beta);
    }
}

static void lrn_across_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const lrn_ctx *cx = vctx;
    const lrn_params *p = cx->p;
    const int64_t c = p->c, hw = p->hw, pre = p->pre;
    const float aos = p->aos;
    float acc[LRN_TILE];
    for (int64_t it = begin; it < end; it++) {
        const int64_t img = it / cx->tiles, p0 = (it % cx->tiles) * LRN_TILE;
        const int64_t np = hw - p0 < LRN_TILE ? hw - p0 : LRN_TILE;
        const float *x = cx->x + img * c * hw + p0;
        float *y = cx->y + img * c * hw + p0;
        /* channel 0: k + the window's terms, channels -pre .. pre (those that exist) */
        for (int64_t t = 0; t < np; t++) acc[t] = p->k;
        for (int64_t ch = 0; ch <= pre && ch < c; ch++) {
            const float *xc = x + ch * hw;
            for (int64_t t = 0; t < np; t++) acc[t] = acc[t] + aos * (xc[t] * xc[t]);
        }
        lrn_apply(x, acc, y, np, p->beta);
        for (int64_t ch = 1; ch < c; ch++) {
            const int64_t in_ch = ch + pre, out_ch = ch - 1 - pre;
            if (in_ch < c) {
                const float *xi = x + in_ch * hw;
                for (int64_t t = 0; t < np; t++) acc[t] = acc[t] + aos * (xi[t] * xi[t]);
            }
            if (out_ch >= 0) {
                const float *xo = x + out_ch * hw;
                for (int64_t t = 0; t < np; t++) acc[t] = acc[t] + (-aos) * (xo[t] * xo[t]);
            }
            lrn_apply(x + ch * hw, acc, y + ch * hw, np, p->beta);
        }
    }
}

static void lrn_within_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const lrn_ctx *cx = vctx;
    const lrn_params *p = cx->p;
    const int64_t h = p->h, w = p->w, n = p->size, pad = p->pre;
    float scale[LRN_TILE];
    for (int64_t plane = begin; plane < end; plane++) {
        const float *x = cx->x + plane * p->hw;
        float *y = cx->y + plane * p->hw;
        if (p->power_is_one) {
            for (int64_t q = 0; q < p->hw; q++) y[q] = x[q] * 1.0f;
            continue;
        }
        for (int64_t oy = 0; oy < h; oy++) {
            const int64_t hs0 = oy - pad, hs = hs0 < 0 ? 0 : hs0;
            const int64_t he = hs0 + n < h ? hs0 + n : h;
            const int64_t he_pad = hs0 + n < h + pad ? hs0 + n : h + pad;
            for (int64_t ox0 = 0; ox0 < w; ox0 += LRN_TILE) {
                const int64_t cnt = w - ox0 < LRN_TILE ? w - ox0 : LRN_TILE;
                for (int64_t t = 0; t < cnt; t++) {
                    const int64_t ws0 = ox0 + t - pad, ws = ws0 < 0 ? 0 : ws0;
                    const int64_t we = ws0 + n < w ? ws0 + n : w;
                    const int64_t we_pad = ws0 + n < w + pad ? ws0 + n : w + pad;
                    float sum = 0.0f;
                    for (int64_t iy = hs; iy < he; iy++) {
                        const float *row = x + iy * w;
                        for (int64_t ix = ws; ix < we; ix++) sum += row[ix] * row[ix];
                    }
                    const float pooled = sum / (float)((he_pad - hs0) * (we_pad - ws0));
                    scale[t] = pooled * p->alpha + 1.0f;
                }
                lrn_apply(x + oy * w + ox0, scale, y + oy * w + ox0, cnt, p->beta);
            }
        }
    }
}

static eb_status lrn_run(const eb_node *node, eb_exec *ex)
{
    const lrn_params *p = node->params;
    lrn_ctx cx;
    cx.p = p;
    cx.x = eb_data(ex, node->inputs[0]);
    cx.y = eb_data(ex, node->outputs[0]);
    if (p->across) {
        cx.tiles = (p->hw + LRN_TILE - 1) / LRN_TILE;
        eb_parallel_for(ex, p->n * cx.tiles, lrn_across_range, &cx);
    } else {
        cx.tiles = 0;
        eb_parallel_for(ex, p->n * p->c, lrn_within_range, &cx);
    }
    return EB_OK;
}

const eb_op_kernel eb_kernel_LRN = {"LRN", lrn_prepare, lrn_run};
