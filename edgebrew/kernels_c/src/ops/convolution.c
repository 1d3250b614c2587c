/* Convolution (Caffe's ConvolutionLayer), 2-D, NCHW: grouped, strided, padded, dilated.
 *
 * Attributes (edgebrew/ir/ops/convolution.py): num_output, kernel (kh, kw), stride, pad,
 * dilation (pairs), group, bias_term. Weights: (num_output, C/group, kh, kw) and, with
 * bias_term, (num_output,).
 *
 * Three ways to compute it, chosen in prepare():
 *  - DEPTHWISE (one input channel per group, C/group == 1, any channel multiplier): a direct
 *    loop per output plane (the kernel table's dwconv_plane: the plane copied with its zero
 *    border into this thread's scratch, then register blocks of outputs over all taps).
 *  - GEMM_1X1 (1x1 kernel, stride 1, pad 0): per group, Y[M/g x HW] = W[M/g x C/g] X[C/g x HW]
 *    straight from the input, no copies.
 *  - IM2COL otherwise: per group and tile of output pixels, im2col into this thread's scratch,
 *    then Y[M/g x tile] = W[M/g x K] cols[K x tile], K = C/g*kh*kw.
 * The GEMM modes use the weights packed once here (kernel table's pack_a) and split work into
 * items (image, group, pixel tile, block of output channels) across threads; the blocks of
 * channels exist only when there are too few tiles for the threads. An item's arithmetic does
 * not depend on the split, so any thread count gives the same bits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_geometry.h"
#include "fused_activation.h"
#include "kernels/im2col.h"
#include "kernels/kernels.h"
#include "op.h"

enum { CONV_DEPTHWISE = 0, CONV_GEMM_1X1 = 1, CONV_IM2COL = 2 };

typedef struct conv_params {
    int64_t n, c, h, w;       /* input */
    int64_t m, oh, ow;        /* output channels and size */
    int64_t group, cg, mg;    /* groups, input and output channels per group */
    int64_t kdim;             /* GEMM depth: cg * kh * kw */
    eb_window win;
    int bias, mode;
    int64_t tile;             /* output pixels per work item (GEMM modes) */
    size_t col_bytes;         /* per-thread im2col buffer, or padded plane (64-aligned) */
    size_t work_bytes;        /* per-thread sgemm workspace */
    const eb_kernel_table *kt;
    ebo_fused_act act;        /* fused activation (optimizer), applied after the bias */
    size_t group_packed;      /* floats of packed weights per group */
    float *packed;            /* packed weights (inside this allocation), GEMM modes */
} conv_params;

static eb_status conv_prepare(eb_node *node, eb_error *err)
{
    eb_status s;
    eb_conv_attrs a;
    if ((s = eb_read_conv_attrs(node, ebo_fused_act_extra_weights(node) > 0, &a, err)) != EB_OK)
        return s;
    const eb_tensor *in = node->inputs[0];
    const int64_t n = in->dims[0], c = in->dims[1], h = in->dims[2], w = in->dims[3];
    const int64_t num_output = a.num_output, group = a.group;
    const int64_t *kernel = a.kernel, *stride = a.stride, *pad = a.pad, *dil = a.dil;
    const int bias = a.bias;
    int64_t out[2];
    const int64_t size[2] = {h, w};
    for (int i = 0; i < 2; i++) {
        const int64_t num = size[i] + 2 * pad[i] - (dil[i] * (kernel[i] - 1) + 1);
        if (num < 0)
            return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                                "the dilated kernel (%lld, %lld) does not fit the padded %lldx%lld "
                                "input", (long long)(dil[0] * (kernel[0] - 1) + 1),
                                (long long)(dil[1] * (kernel[1] - 1) + 1),
                                (long long)(h + 2 * pad[0]), (long long)(w + 2 * pad[1]));
        out[i] = num / stride[i] + 1;
    }
    const int64_t m = num_output, cg = c / group, mg = m / group;
    const int64_t odims[4] = {n, m, out[0], out[1]};
    if ((s = eb_check_shape(node, node->outputs[0], "output", 4, odims, err)) != EB_OK) return s;
    const int64_t wdims[4] = {m, cg, kernel[0], kernel[1]};
    if ((s = eb_check_shape(node, node->weights[0], "weight", 4, wdims, err)) != EB_OK) return s;
    if (bias && (s = eb_check_shape(node, node->weights[1], "bias", 1, &m, err)) != EB_OK) return s;

    conv_params p;
    memset(&p, 0, sizeof(p));
    p.n = n, p.c = c, p.h = h, p.w = w, p.m = m, p.oh = out[0], p.ow = out[1];
    p.group = group, p.cg = cg, p.mg = mg;
    p.kdim = cg * kernel[0] * kernel[1]; /* = weight count / m: in range */
    p.win = (eb_window){kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1], dil[0], dil[1]};
    p.bias = bias;
    p.kt = eb_kernels();
    if ((s = ebo_fused_act_prepare(node, err, m, &p.act)) != EB_OK) return s;
    const int64_t npix = p.oh * p.ow;
    if (cg == 1) {
        p.mode = CONV_DEPTHWISE;
        /* the padded plane's floats, (h + 2ph)(w + 2pw), must fit a size_t (each factor is
         * below 2^41; the product is checked by division) */
        const uint64_t ph2 = (uint64_t)(h + 2 * pad[0]), pw2 = (uint64_t)(w + 2 * pad[1]);
        if (ph2 > (uint64_t)(SIZE_MAX / 8) / pw2)
            return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "padded plane too large");
        p.col_bytes = eb_align64(p.kt->dwconv_pad_bytes(h, w, &p.win));
    } else if (kernel[0] == 1 && kernel[1] == 1 && stride[0] == 1 && stride[1] == 1 &&
               pad[0] == 0 && pad[1] == 0) {
        p.mode = CONV_GEMM_1X1;
        p.tile = npix < 480 ? npix : 480;
    } else {
        p.mode = CONV_IM2COL;
        /* a tile's columns (kdim x tile floats) about 512 KiB: in L2 next to the packed blocks;
         * a multiple of 96 (every ISA's micro-tile width divides it), at least 96 */
        int64_t t = ((int64_t)1 << 17) / p.kdim / 96 * 96;
        t = t < 96 ? 96 : t > 1056 ? 1056 : t;
        p.tile = npix < t ? npix : t;
        const uint64_t cb = (uint64_t)p.kdim * (uint64_t)p.tile * sizeof(float);
        if (cb > (uint64_t)SIZE_MAX / 4)
            return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "im2col buffer too large");
        p.col_bytes = eb_align64((size_t)cb);
    }

    size_t extra = 0;
    if (p.mode != CONV_DEPTHWISE) {
        p.work_bytes = eb_align64(p.kt->sgemm_work_bytes(mg, p.tile, p.kdim));
        p.group_packed = p.kt->pack_a_bytes(mg, p.kdim) / sizeof(float);
        const uint64_t total = (uint64_t)p.group_packed * (uint64_t)group * sizeof(float);
        if (total > (uint64_t)SIZE_MAX / 2)
            return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "packed weights too large");
        extra = (size_t)total + 64;
        if (!node->weights[0]->is_constant || !node->weights[0]->const_data)
            return eb_node_fail(node, err, EB_ERR_UNSUPPORTED, "weight '%s' is not a constant",
                                node->weights[0]->name);
    }
    conv_params *pp = malloc(sizeof(conv_params) + extra);
    if (!pp) return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "no memory for parameters");
    *pp = p;
    if (p.mode != CONV_DEPTHWISE) {
        pp->packed = (float *)eb_align64((size_t)((uintptr_t)(pp + 1)));
        const float *wt = (const float *)node->weights[0]->const_data;
        for (int64_t g = 0; g < group; g++)
            p.kt->pack_a(0, mg, p.kdim, wt + g * mg * p.kdim, p.kdim,
                         pp->packed + (size_t)g * p.group_packed);
    }
    node->params = pp;
    node->scratch_bytes = p.col_bytes + p.work_bytes;
    return EB_OK;
}

typedef struct conv_ctx {
    const conv_params *p;
    eb_exec *ex;
    const float *x, *wt, *bias;
    float *y;
    int64_t n_tiles, n_mb, mb_rows; /* GEMM modes: pixel tiles, channel blocks and their size */
} conv_ctx;

/* Work items (image, group, tile, channel block), the block innermost so that a thread's
 * consecutive items reuse one im2col. */
static void conv_gemm_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const conv_ctx *cx = vctx;
    const conv_params *p = cx->p;
    const int64_t npix = p->oh * p->ow, hw = p->h * p->w;
    char *scratch = eb_scratch(cx->ex, thread);
    float *cols = (float *)scratch;
    void *work = scratch + p->col_bytes;
    int64_t have = -1; /* the (image, group, tile) whose columns are in `cols` */
    for (int64_t it = begin; it < end; it++) {
        const int64_t mb = it % cx->n_mb, key = it / cx->n_mb;
        const int64_t tile = key % cx->n_tiles, img_g = key / cx->n_tiles;
        const int64_t g = img_g % p->group, img = img_g / p->group;
        const int64_t p0 = tile * p->tile, np = npix - p0 < p->tile ? npix - p0 : p->tile;
        const int64_t r0 = mb * cx->mb_rows;
        const int64_t nrows = p->mg - r0 < cx->mb_rows ? p->mg - r0 : cx->mb_rows;
        const float *xg = cx->x + (img * p->c + g * p->cg) * hw;
        float *yg = cx->y + (img * p->m + g * p->mg + r0) * npix + p0;
        const float *b;
        int64_t ldb;
        if (p->mode == CONV_GEMM_1X1) {
            b = xg + p0;
            ldb = hw;
        } else {
            if (have != key) {
                eb_im2col_tile(xg, p->cg, p->h, p->w, &p->win, p->ow, p0, np, cols, np);
                have = key;
            }
            b = cols;
            ldb = np;
        }
        p->kt->sgemm_packed_a(p->packed + (size_t)g * p->group_packed, p->mg, r0, nrows, np,
                              p->kdim, 0, b, ldb, yg, npix, 0, work, p->work_bytes);
        if (cx->bias) {
            for (int64_t r = 0; r < nrows; r++) {
                const float bv = cx->bias[g * p->mg + r0 + r];
                float *row = yg + r * npix;
                for (int64_t t = 0; t < np; t++) row[t] += bv;
            }
        }
        if (p->act.kind != EBO_ACT_NONE)
            for (int64_t r = 0; r < nrows; r++)
                ebo_fused_act_apply(&p->act, yg + r * npix, np, g * p->mg + r0 + r);
    }
}

/* One output plane per item: (image, output channel), through the kernel table. */
static void conv_depthwise_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const conv_ctx *cx = vctx;
    const conv_params *p = cx->p;
    const int64_t npix = p->oh * p->ow, hw = p->h * p->w, khkw = p->win.kh * p->win.kw;
    float *pad = eb_scratch(cx->ex, thread);
    for (int64_t it = begin; it < end; it++) {
        const int64_t oc = it % p->m, img = it / p->m;
        float *out = cx->y + (img * p->m + oc) * npix;
        p->kt->dwconv_plane(cx->x + (img * p->c + oc / p->mg) * hw, p->h, p->w,
                            cx->wt + oc * khkw, &p->win, p->oh, p->ow, out, pad);
        if (cx->bias) {
            const float bv = cx->bias[oc];
            for (int64_t q = 0; q < npix; q++) out[q] += bv;
        }
        ebo_fused_act_apply(&p->act, out, npix, oc);
    }
}

static eb_status conv_run(const eb_node *node, eb_exec *ex)
{
    const conv_params *p = node->params;
    conv_ctx cx;
    memset(&cx, 0, sizeof(cx));
    cx.p = p;
    cx.ex = ex;
    cx.x = eb_data(ex, node->inputs[0]);
    cx.y = eb_data(ex, node->outputs[0]);
    cx.wt = eb_data(ex, node->weights[0]);
    cx.bias = p->bias ? eb_data(ex, node->weights[1]) : NULL;
    if (p->mode == CONV_DEPTHWISE) {
        eb_parallel_for(ex, p->n * p->m, conv_depthwise_range, &cx);
        return EB_OK;
    }
    const int64_t npix = p->oh * p->ow;
    cx.n_tiles = (npix + p->tile - 1) / p->tile;
    cx.n_mb = 1;
    cx.mb_rows = p->mg;
    const int64_t threads = eb_num_threads(ex), items = p->n * p->group * cx.n_tiles;
    if (threads > 1 && items < 4 * threads) {
        /* too few tiles: also split the output channels, in blocks of a multiple of the
         * micro-tile rows (packed panels start there), at least two micro-tiles tall */
        const int64_t mr = p->kt->mr;
        int64_t want = (4 * threads + items - 1) / items;
        int64_t rows = (p->mg + want - 1) / want;
        rows = (rows + mr - 1) / mr * mr;
        if (rows < 2 * mr) rows = 2 * mr;
        if (rows < p->mg) {
            cx.mb_rows = rows;
            cx.n_mb = (p->mg + rows - 1) / rows;
        }
    }
    eb_parallel_for(ex, items * cx.n_mb, conv_gemm_range, &cx);
    return EB_OK;
}

const eb_op_kernel eb_kernel_Convolution = {"Convolution", conv_prepare, conv_run};
