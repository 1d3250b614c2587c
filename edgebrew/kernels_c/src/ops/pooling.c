/* Pooling (Caffe's PoolingLayer, CPU semantics), 2-D, NCHW, MAX and AVE.
 *
 * Attributes (edgebrew/ir/ops/pooling.py): method "MAX"/"AVE", kernel, stride, pad (pairs),
 * global_pooling, round_mode "CEIL"/"FLOOR". Exactly as the reference:
 *  - output size ceil((H + 2p - k) / s) + 1 (floor with FLOOR); when either pad is nonzero, an
 *    axis whose last window starts at or past H + p loses it;
 *  - MAX: start at -FLT_MAX, take values strictly greater, over the window clipped to the input
 *    (padding and NaN never win);
 *  - AVE: sum (in double) over the clipped window, divided by (hend - hstart) * (wend - wstart) with
 *    hend = min(hstart + k, H + p) taken before clipping (padding counts, the ceil overhang
 *    does not); a window wholly past the input gives 0 / pool_size (NaN or -0), as Caffe.
 * Threads split the N*C planes.
 */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_geometry.h"
#include "op.h"

typedef struct pool_params {
    int64_t planes, h, w, oh, ow;
    int64_t kh, kw, sh, sw, ph, pw;
    int max; /* MAX, else AVE */
} pool_params;

static int64_t floor_div(int64_t a, int64_t b) /* b > 0 */
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static eb_status pool_prepare(eb_node *node, eb_error *err)
{
    eb_status s;
    const char *method, *round_mode;
    int global = 0;
    int64_t kernel[2], stride[2], pad[2];
    if ((s = eb_attr_string(node, "method", "MAX", &method, err)) != EB_OK) return s;
    if ((s = eb_attr_string(node, "round_mode", "CEIL", &round_mode, err)) != EB_OK) return s;
    if ((s = eb_read_bool(node, "global_pooling", 0, &global, err)) != EB_OK) return s;
    if ((s = eb_read_pair(node, "stride", 0, 1, 1, stride, err)) != EB_OK) return s;
    if ((s = eb_read_pair(node, "pad", 0, 0, 0, pad, err)) != EB_OK) return s;
    if ((s = eb_check_counts(node, 1, 1, 0, err)) != EB_OK) return s;
    const int is_max = strcmp(method, "MAX") == 0;
    if (!is_max && strcmp(method, "AVE") != 0)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "pooling method '%s' is not supported (MAX or AVE)", method);
    const int ceil_mode = strcmp(round_mode, "CEIL") == 0;
    if (!ceil_mode && strcmp(round_mode, "FLOOR") != 0)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "round_mode '%s' is not CEIL or FLOOR", round_mode);
    const eb_tensor *in = node->inputs[0];
    if ((s = eb_check_ndim(node, in, "input", 4, err)) != EB_OK) return s;
    const int64_t size[2] = {in->dims[2], in->dims[3]};
    if (global) {
        if (pad[0] || pad[1] || stride[0] != 1 || stride[1] != 1)
            return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                                "global pooling needs pad 0 and stride 1, got pad (%lld, %lld), "
                                "stride (%lld, %lld)", (long long)pad[0], (long long)pad[1],
                                (long long)stride[0], (long long)stride[1]);
        kernel[0] = size[0];
        kernel[1] = size[1];
    } else {
        if ((s = eb_read_pair(node, "kernel", 1, 0, 0, kernel, err)) != EB_OK) return s;
        if ((s = eb_check_pair(node, "kernel", kernel, 1, err)) != EB_OK) return s;
    }
    if ((s = eb_check_pair(node, "stride", stride, 1, err)) != EB_OK) return s;
    if ((s = eb_check_pair(node, "pad", pad, 0, err)) != EB_OK) return s;
    if ((pad[0] || pad[1]) && (pad[0] >= kernel[0] || pad[1] >= kernel[1]))
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "pad (%lld, %lld) must be smaller than the kernel (%lld, %lld)",
                            (long long)pad[0], (long long)pad[1], (long long)kernel[0],
                            (long long)kernel[1]);
    int64_t out[2];
    for (int i = 0; i < 2; i++) {
        const int64_t num = size[i] + 2 * pad[i] - kernel[i]; /* |num| <= 2^41 */
        out[i] = (ceil_mode ? -floor_div(-num, stride[i]) : floor_div(num, stride[i])) + 1;
    }
    if (pad[0] || pad[1])
        for (int i = 0; i < 2; i++)
            if ((out[i] - 1) * stride[i] >= size[i] + pad[i]) out[i]--;
    if (out[0] < 1 || out[1] < 1)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "kernel (%lld, %lld) (pad (%lld, %lld)) does not fit the %lldx%lld "
                            "input", (long long)kernel[0], (long long)kernel[1],
                            (long long)pad[0], (long long)pad[1], (long long)size[0],
                            (long long)size[1]);
    const int64_t odims[4] = {in->dims[0], in->dims[1], out[0], out[1]};
    if ((s = eb_check_shape(node, node->outputs[0], "output", 4, odims, err)) != EB_OK) return s;

    pool_params *p = malloc(sizeof(pool_params));
    if (!p) return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "no memory for parameters");
    p->planes = in->dims[0] * in->dims[1];
    p->h = size[0], p->w = size[1], p->oh = out[0], p->ow = out[1];
    p->kh = kernel[0], p->kw = kernel[1], p->sh = stride[0], p->sw = stride[1];
    p->ph = pad[0], p->pw = pad[1];
    p->max = is_max;
    node->params = p;
    node->scratch_bytes = 0;
    return EB_OK;
}

typedef struct pool_ctx {
    const pool_params *p;
    const float *x;
    float *y;
} pool_ctx;

static void pool_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const pool_ctx *cx = vctx;
    const pool_params *p = cx->p;
    const int64_t h = p->h, w = p->w;
    for (int64_t plane = begin; plane < end; plane++) {
        const float *x = cx->x + plane * h * w;
        float *y = cx->y + plane * p->oh * p->ow;
        for (int64_t oy = 0; oy < p->oh; oy++) {
            const int64_t hs0 = oy * p->sh - p->ph;
            const int64_t hs = hs0 < 0 ? 0 : hs0;
            const int64_t he = hs0 + p->kh < h ? hs0 + p->kh : h;
            /* AVE's divisor: the window up to the padded edge, before clipping */
            const int64_t he_pad = hs0 + p->kh < h + p->ph ? hs0 + p->kh : h + p->ph;
            float *yrow = y + oy * p->ow;
            for (int64_t ox = 0; ox < p->ow; ox++) {
                const int64_t ws0 = ox * p->sw - p->pw;
                const int64_t ws = ws0 < 0 ? 0 : ws0;
                const int64_t we = ws0 + p->kw < w ? ws0 + p->kw : w;
                if (p->max) {
                    float m = -FLT_MAX;
                    for (int64_t iy = hs; iy < he; iy++) {
                        const float *row = x + iy * w;
                        for (int64_t ix = ws; ix < we; ix++)
                            if (row[ix] > m) m = row[ix];
                    }
                    yrow[ox] = m;
                } else {
                    const int64_t we_pad = ws0 + p->kw < w + p->pw ? ws0 + p->kw : w + p->pw;
                    const float pool = (float)((he_pad - hs0) * (we_pad - ws0));
                    double sum = 0.0; /* in double: a mean near zero keeps its digits */
                    for (int64_t iy = hs; iy < he; iy++) {
                        const float *row = x + iy * w;
                        for (int64_t ix = ws; ix < we; ix++) sum += row[ix];
                    }
                    yrow[ox] = (float)sum / pool;
                }
            }
        }
    }
}

static eb_status pool_run(const eb_node *node, eb_exec *ex)
{
    const pool_params *p = node->params;
    pool_ctx cx;
    cx.p = p;
    cx.x = eb_data(ex, node->inputs[0]);
    cx.y = eb_data(ex, node->outputs[0]);
    eb_parallel_for(ex, p->planes, pool_range, &cx);
    return EB_OK;
}

const eb_op_kernel eb_kernel_Pooling = {"Pooling", pool_prepare, pool_run};
