/* int8 Convolution (int8_reference._convolution): any stride, pad, dilation, group.
 * acc[c] = b[c] + sum (x - x_zp) * W[c] (padding contributes 0), out = clamp(out_zp +
 * MBQM(acc, M_c), activation range), M_c = s_x * s_w[c] / s_out. Fused activation: none, ReLU
 * (slope 0) or Clip.
 *
 * Two ways, chosen in prepare():
 *  - DEPTHWISE (one input channel per group): per (image, output channel) plane, the input
 *    plane minus its zero point staged with a zero border in this thread's scratch (int16,
 *    kernel table dwconv_s8_stage; reused by the next output channel of the same input
 *    channel), the plane's int32 sums by dwconv_s8_plane (SIMD across output pixels, taps in
 *    pairs) and requantized by requant_s32.
 *  - GEMM otherwise: the weights packed once here as int16 pairs (kernel table pack_s16_a);
 *    work items are (image, group, tile of output pixels, block of output channels): the tile's
 *    im2col (int8, padding = the zero point; none for 1x1 stride-1 unpadded convolutions) is
 *    packed as (x - zp) int16 pairs (pack_s16_b, reused by the next item of the same tile), the
 *    block multiplied by gemm_s16_packed into int32 scratch and requantized (requant_s32).
 *    Where the kernel table has 8-bit dot products (u8s8_available: AVX-512 VNNI), the same
 *    items run as u8 x s8 instead: weights packed in groups of 4 (pack_u8_a), the tile as
 *    x + 128 (pack_u8_b), gemm_u8s8_packed subtracting corr[c] = (128 + zp) sum_k W[c][k]
 *    (padding, x = zp, contributes (zp + 128) w - (128 + zp) w = 0): the same int32 sums.
 * Integer sums are exact and prepare() bounds them inside int32, so any split over threads
 * gives the same bytes. */
#include "../conv_geometry.h"
#include "kernels/kernels.h"
#include "weights_common.h"

#define QC_MIN_ITEMS 8 /* smaller output-channel blocks until there are this many items */

typedef struct qconv_params {
    int64_t n, c, h, w, m, oh, ow, group, cg, mg, kdim, tile, mblock;
    eb_window win;
    int depthwise, direct; /* direct: 1x1, stride 1, no padding: B is the input itself */
    size_t im_bytes, pack_bytes; /* per thread: int8 im2col, packed B */
    size_t a_group;              /* int16 count of one group's packed weights */
    int16_t *apack;              /* packed weights (in this allocation) */
    int u8;                      /* the u8 x s8 GEMM (kernel table gemm_u8s8_packed) */
    int8_t *apack8;              /* u8 path: packed weights, a_group bytes per group */
    int32_t *corr;               /* u8 path: (128 + x_zp) * sum_k W[c][k] per output channel */
    int32_t x_zp, y_zp, lo, hi;
    size_t col_bytes; /* per thread: im2col (GEMM) or padded plane (depthwise) */
    const eb_kernel_table *kt;
    eb_qmult mult[];  /* per output channel */
} qconv_params;

static eb_status qconv_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    int64_t num_output = 0, group = 1, kernel[2], stride[2], pad[2], dil[2];
    int bias = 1;
    if ((st = eb_attr_int(node, "num_output", 0, &num_output, err)) != EB_OK ||
        (st = eb_read_pair(node, "kernel", 1, 0, 0, kernel, err)) != EB_OK ||
        (st = eb_read_pair(node, "stride", 0, 1, 1, stride, err)) != EB_OK ||
        (st = eb_read_pair(node, "pad", 0, 0, 0, pad, err)) != EB_OK ||
        (st = eb_read_pair(node, "dilation", 0, 1, 1, dil, err)) != EB_OK ||
        (st = eb_attr_int(node, "group", 1, &group, err)) != EB_OK ||
        (st = eb_read_bool(node, "bias_term", 1, &bias, err)) != EB_OK ||
        (st = eb_check_counts(node, 1, 1, bias ? 2 : 1, err)) != EB_OK ||
        (st = eb_check_pair(node, "kernel", kernel, 1, err)) != EB_OK ||
        (st = eb_check_pair(node, "stride", stride, 1, err)) != EB_OK ||
        (st = eb_check_pair(node, "dilation", dil, 1, err)) != EB_OK ||
        (st = eb_check_pair(node, "pad", pad, 0, err)) != EB_OK ||
        (st = eb_q_expect_all_int8(node, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0], *y = node->outputs[0];
    if (x->ndim != 4)
        return eb_node_fail(node, err, EBO_INVALID, "input '%s' must be 4-d", x->name);
    const int64_t n = x->dims[0], c = x->dims[1], h = x->dims[2], w = x->dims[3];
    if (num_output < 1 || num_output > EB_MAX_TENSOR_ELEMS || group < 1 || c % group != 0 ||
        num_output % group != 0)
        return eb_node_fail(node, err, EBO_INVALID,
                            "num_output %lld and group %lld must divide into the %lld input "
                            "channels", (long long)num_output, (long long)group, (long long)c);
    int64_t out[2];
    const int64_t size[2] = {h, w};
    for (int i = 0; i < 2; i++) {
        const int64_t num = size[i] + 2 * pad[i] - (dil[i] * (kernel[i] - 1) + 1);
        if (num < 0)
            return eb_node_fail(node, err, EBO_INVALID,
                                "the dilated kernel does not fit the padded input");
        out[i] = num / stride[i] + 1;
    }
    const int64_t m = num_output, cg = c / group, mg = m / group;
    const int64_t odims[4] = {n, m, out[0], out[1]};
    if ((st = ebo_expect_shape(node, err, y, "output", 0, 4, odims)) != EB_OK)
        return st;
    const eb_tensor *wt = node->weights[0];
    const int64_t wdims[4] = {m, cg, kernel[0], kernel[1]};
    if (!ebo_shape_eq(wt, 4, wdims))
        return ebo_expect_shape(node, err, wt, "weight", 0, 4, wdims);
    const int64_t kdim = cg * kernel[0] * kernel[1];
    const eb_kernel_table *kt = eb_kernels();
    const int dw = cg == 1;
    const int u8 = !dw && kt->u8s8_available && kt->u8s8_available();
    /* a_group: int16 count (s16 path) or bytes (u8 path) of one group's packed weights */
    const size_t a_group = dw ? 0 : u8 ? kt->pack_u8_a_bytes(mg, kdim)
                                       : kt->pack_s16_a_count(mg, kdim);
    const size_t head = eb_align64(sizeof(qconv_params) + (size_t)m * sizeof(eb_qmult));
    if (!dw && (uint64_t)a_group > ((uint64_t)1 << 36) / (uint64_t)group)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "weights too large");
    const size_t a_bytes = u8 ? eb_align64(a_group * (size_t)group) + (size_t)m * sizeof(int32_t)
                              : a_group * (size_t)group * sizeof(int16_t);
    qconv_params *p = (qconv_params *)malloc(head + a_bytes);
    if (!p)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    memset(p, 0, sizeof *p);
    p->a_group = a_group;
    p->u8 = u8;
    if (u8) {
        p->apack8 = (int8_t *)((char *)p + head);
        p->corr = (int32_t *)(void *)((char *)p + head + eb_align64(a_group * (size_t)group));
    } else {
        p->apack = dw ? NULL : (int16_t *)(void *)((char *)p + head);
    }
    if ((st = eb_q_prepare_weights(node, err, x, y, wt, bias ? node->weights[1] : NULL, m, kdim,
                                   p->mult)) != EB_OK ||
        (st = eb_q_activation_range(node, err, y, &p->lo, &p->hi)) != EB_OK) {
        free(p);
        return st;
    }
    p->n = n, p->c = c, p->h = h, p->w = w, p->m = m, p->oh = out[0], p->ow = out[1];
    p->group = group, p->cg = cg, p->mg = mg, p->kdim = kdim;
    p->win = (eb_window){kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1], dil[0], dil[1]};
    p->x_zp = x->quant_zero_point[0];
    p->y_zp = y->quant_zero_point[0];
    p->kt = kt;
    p->depthwise = dw;
    p->direct = !dw && kernel[0] == 1 && kernel[1] == 1 && stride[0] == 1 && stride[1] == 1 &&
                pad[0] == 0 && pad[1] == 0;
    const int64_t npix = p->oh * p->ow;
    uint64_t scratch;
    if (p->depthwise) {
        /* the staged plane (int16, kernel table dwconv_s8_*) and the plane's int32 sums */
        const uint64_t hp = (uint64_t)(h + 2 * pad[0]), wp = (uint64_t)(w + 2 * pad[1]);
        if (hp > ((uint64_t)1 << 40) / (wp + (uint64_t)stride[1]) ||
            (uint64_t)npix > ((uint64_t)1 << 40)) {
            free(p);
            return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "padded plane too large");
        }
        p->col_bytes = eb_align64(kt->dwconv_s8_pad_count(h, w, &p->win) * sizeof(int16_t));
        scratch = p->col_bytes + eb_align64((size_t)npix * sizeof(int32_t));
    } else {
        const int8_t *wd = (const int8_t *)wt->const_data;
        if (u8) {
            for (int64_t g = 0; g < group; g++)
                kt->pack_u8_a(mg, kdim, wd + g * mg * kdim, kdim,
                              p->apack8 + (size_t)g * a_group);
            /* |sum w| * 255 fits int32 (eb_q_prepare_weights), so the product does too */
            for (int64_t oc = 0; oc < m; oc++) {
                int64_t sw = 0;
                for (int64_t i = 0; i < kdim; i++) sw += wd[oc * kdim + i];
                p->corr[oc] = (int32_t)((128 + (int64_t)p->x_zp) * sw);
            }
        } else {
            for (int64_t g = 0; g < group; g++)
                kt->pack_s16_a(mg, kdim, wd + g * mg * kdim, kdim, p->apack + (size_t)g * a_group);
        }
        /* a tile's packed B (kdim x tile int16) about 256 KiB, in multiples of 32 pixels */
        int64_t t = ((int64_t)1 << 17) / kdim / 32 * 32;
        t = t < 32 ? 32 : t > 1024 ? 1024 : t;
        p->tile = npix < t ? npix : t;
        if ((uint64_t)kdim > ((uint64_t)1 << 36) / (uint64_t)p->tile) {
            free(p);
            return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "im2col buffer too large");
        }
        /* output-channel blocks: 64 rows (a multiple of every table's s16_mr), halved while
         * the convolution has fewer than QC_MIN_ITEMS items (small images split by channel) */
        const int64_t items0 = n * group * ((npix + p->tile - 1) / p->tile);
        int64_t mb = 64;
        while (mb > 16 && items0 * ((mg + mb - 1) / mb) < QC_MIN_ITEMS) mb /= 2;
        p->mblock = mg < mb ? mg : mb;
        p->im_bytes = p->direct ? 0 : eb_align64((size_t)kdim * (size_t)p->tile);
        p->pack_bytes = eb_align64(u8 ? kt->pack_u8_b_bytes(kdim, p->tile)
                                      : kt->pack_s16_b_count(kdim, p->tile) * sizeof(int16_t));
        p->col_bytes = p->im_bytes + p->pack_bytes;
        scratch = p->col_bytes +
                  eb_align64((size_t)p->mblock * (size_t)p->tile * sizeof(int32_t));
    }
    node->params = p;
    node->scratch_bytes = (size_t)scratch;
    return EB_OK;
}

typedef struct qconv_ctx {
    const qconv_params *p;
    eb_exec *ex;
    const int8_t *x, *wt;
    const int32_t *bias;
    int8_t *y;
    int64_t n_tiles, n_mblocks;
} qconv_ctx;

/* cols[r * np + t] = x at the input position of im2col row r (ci, i, j) and output pixel
 * p0 + t; the zero point in the padding (so that x - zp is 0 there). */
static void qconv_im2col(const qconv_params *p, const int8_t *xg, int64_t p0, int64_t np,
                         int8_t *cols)
{
    const eb_window *wn = &p->win;
    const int64_t h = p->h, w = p->w, hw = h * w;
    const int8_t zp = (int8_t)p->x_zp;
    int64_t r = 0;
    for (int64_t ci = 0; ci < p->cg; ci++)
        for (int64_t i = 0; i < wn->kh; i++)
            for (int64_t j = 0; j < wn->kw; j++, r++) {
                int8_t *dst = cols + r * np;
                const int8_t *xc = xg + ci * hw;
                int64_t oy = p0 / p->ow, ox = p0 % p->ow, t = 0;
                while (t < np) {
                    const int64_t iy = oy * wn->sh - wn->ph + i * wn->dh;
                    const int64_t run = p->ow - ox < np - t ? p->ow - ox : np - t;
                    if (iy < 0 || iy >= h) {
                        memset(dst + t, zp, (size_t)run);
                    } else {
                        const int8_t *xr = xc + iy * w;
                        int64_t ix = ox * wn->sw - wn->pw + j * wn->dw;
                        if (wn->sw == 1 && ix >= 0 && ix + run <= w) {
                            memcpy(dst + t, xr + ix, (size_t)run);
                        } else {
                            for (int64_t u = 0; u < run; u++, ix += wn->sw)
                                dst[t + u] = ix >= 0 && ix < w ? xr[ix] : zp;
                        }
                    }
                    t += run;
                    ox = 0;
                    oy++;
                }
            }
}

/* Items: ((image * group + g) * n_tiles + tile) * n_mblocks + block. Consecutive items of one
 * tile reuse its packed B. */
static void qconv_gemm_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const qconv_ctx *cx = (const qconv_ctx *)vctx;
    const qconv_params *p = cx->p;
    const eb_kernel_table *kt = p->kt;
    const int64_t npix = p->oh * p->ow, hw = p->h * p->w;
    char *scratch = (char *)eb_scratch(cx->ex, thread);
    int8_t *cols = (int8_t *)scratch;
    int16_t *bpack = (int16_t *)(void *)(scratch + p->im_bytes);
    int32_t *acc = (int32_t *)(void *)(scratch + p->col_bytes);
    int64_t staged = -1;
    for (int64_t it = begin; it < end; it++) {
        const int64_t mblk = it % cx->n_mblocks, key = it / cx->n_mblocks;
        const int64_t tile = key % cx->n_tiles, img_g = key / cx->n_tiles;
        const int64_t g = img_g % p->group, img = img_g / p->group;
        const int64_t p0 = tile * p->tile, np = npix - p0 < p->tile ? npix - p0 : p->tile;
        if (key != staged) {
            const int8_t *xg = cx->x + (img * p->c + g * p->cg) * hw;
            if (p->u8) {
                if (p->direct) {
                    kt->pack_u8_b(p->kdim, np, xg + p0, hw, (uint8_t *)bpack);
                } else {
                    qconv_im2col(p, xg, p0, np, cols);
                    kt->pack_u8_b(p->kdim, np, cols, np, (uint8_t *)bpack);
                }
            } else if (p->direct) {
                kt->pack_s16_b(p->kdim, np, xg + p0, hw, p->x_zp, bpack);
            } else {
                qconv_im2col(p, xg, p0, np, cols);
                kt->pack_s16_b(p->kdim, np, cols, np, p->x_zp, bpack);
            }
            staged = key;
        }
        const int64_t r0 = mblk * p->mblock;
        const int64_t rows = p->mg - r0 < p->mblock ? p->mg - r0 : p->mblock;
        const int64_t oc0 = g * p->mg + r0;
        /* r0 is a multiple of 16, and so of s16_mr: a packed row block starts there */
        if (p->u8) {
            const int8_t *ap8 = p->apack8 + (size_t)g * p->a_group +
                                (size_t)r0 * (size_t)((p->kdim + 3) / 4) * 4;
            kt->gemm_u8s8_packed(rows, np, p->kdim, ap8, (const uint8_t *)bpack, p->corr + oc0,
                                 acc, np);
        } else {
            const int16_t *ap = p->apack + (size_t)g * p->a_group +
                                (size_t)r0 * (size_t)((p->kdim + 1) / 2) * 2;
            kt->gemm_s16_packed(rows, np, p->kdim, ap, bpack, acc, np);
        }
        for (int64_t r = 0; r < rows; r++) {
            const eb_qmult mq = p->mult[oc0 + r];
            kt->requant_s32(acc + r * np, np, cx->bias ? cx->bias[oc0 + r] : 0, mq.m0, mq.shift,
                            p->y_zp, p->lo, p->hi, cx->y + (img * p->m + oc0 + r) * npix + p0);
        }
    }
}

/* Items: image * m + output channel; consecutive channels of one input channel (channel
 * multiplier > 1) reuse its staged plane. */
static void qconv_depthwise_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const qconv_ctx *cx = (const qconv_ctx *)vctx;
    const qconv_params *p = cx->p;
    const eb_kernel_table *kt = p->kt;
    const int64_t hw = p->h * p->w, npix = p->oh * p->ow, khkw = p->win.kh * p->win.kw;
    char *scratch = (char *)eb_scratch(cx->ex, thread);
    int16_t *pad = (int16_t *)(void *)scratch;
    int32_t *acc = (int32_t *)(void *)(scratch + p->col_bytes);
    int64_t staged = -1; /* the (image, input channel) plane in `pad` */
    for (int64_t it = begin; it < end; it++) {
        const int64_t oc = it % p->m, img = it / p->m, ic = oc / p->mg;
        const int64_t key = img * p->c + ic;
        if (key != staged) {
            kt->dwconv_s8_stage(cx->x + key * hw, p->h, p->w, p->x_zp, &p->win, pad);
            staged = key;
        }
        kt->dwconv_s8_plane(pad, p->h, p->w, cx->wt + oc * khkw, &p->win, p->oh, p->ow, acc);
        const eb_qmult mq = p->mult[oc];
        kt->requant_s32(acc, npix, cx->bias ? cx->bias[oc] : 0, mq.m0, mq.shift, p->y_zp, p->lo,
                        p->hi, cx->y + (img * p->m + oc) * npix);
    }
}

static eb_status qconv_run(const eb_node *node, eb_exec *ex)
{
    const qconv_params *p = (const qconv_params *)node->params;
    qconv_ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.p = p;
    cx.ex = ex;
    cx.x = (const int8_t *)eb_data_raw(ex, node->inputs[0]);
    cx.y = (int8_t *)eb_data_raw(ex, node->outputs[0]);
    cx.wt = (const int8_t *)eb_data_raw(ex, node->weights[0]);
    cx.bias = node->n_weights > 1 ? (const int32_t *)eb_data_raw(ex, node->weights[1]) : NULL;
    if (p->depthwise) {
        eb_parallel_for(ex, p->n * p->m, qconv_depthwise_range, &cx);
        return EB_OK;
    }
    const int64_t npix = p->oh * p->ow;
    cx.n_tiles = (npix + p->tile - 1) / p->tile;
    cx.n_mblocks = (p->mg + p->mblock - 1) / p->mblock;
    eb_parallel_for(ex, p->n * p->group * cx.n_tiles * cx.n_mblocks, qconv_gemm_range, &cx);
    return EB_OK;
}

const eb_op_kernel eb_int8_kernel_Convolution = {"Convolution", qconv_prepare, qconv_run};
