/* Deconvolution (Caffe's DeconvolutionLayer), 2-D, NCHW: the transpose of Convolution.
 *
 * Attributes as Convolution; weights (C, num_output/group, kh, kw) and, with bias_term,
 * (num_output,). Output size s*(H-1) + d*(k-1) + 1 - 2p per axis.
 *
 * As Caffe computes it: per group, columns[mg*kh*kw x HW] = W_g^T[mg*kh*kw x cg] X_g[cg x HW],
 * then col2im adds every column entry into the output. Work items are (image, group, block of
 * output channels): an item owns its channels' output planes, so col2im never races; inside an
 * item the input pixels go in tiles (columns of one tile in this thread's scratch). W_g^T is
 * packed once here, per channel block. A 1x1, stride-1, pad-0 deconvolution writes the GEMM
 * straight into the output.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_geometry.h"
#include "kernels/im2col.h"
#include "kernels/kernels.h"
#include "fused_activation.h"
#include "op.h"

typedef struct deconv_params {
    int64_t n, c, h, w;       /* input */
    int64_t m, oh, ow;        /* output */
    int64_t group, cg, mg;
    eb_window win;
    int bias, direct;         /* direct: 1x1, stride 1, pad 0 (columns are the output) */
    int64_t mb;               /* output channels per block */
    int64_t nblocks;          /* blocks per group */
    int64_t tile;             /* input pixels per GEMM */
    size_t col_bytes, work_bytes;
    size_t block_stride;      /* floats between packed blocks */
    const eb_kernel_table *kt;
    ebo_fused_act act;        /* fused activation (optimizer) */
    float *packed;            /* [group][block] packed W_g^T rows of the block */
} deconv_params;

static eb_status deconv_prepare(eb_node *node, eb_error *err)
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
        /* stride * (size - 1) <= 2^62 and dilation * (kernel - 1) < 2^60: no overflow here or
         * in run() (every position computed there is at most this sum) */
        if (size[i] - 1 > ((int64_t)1 << 62) / stride[i])
            return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                                "stride (%lld, %lld) too large for the %lldx%lld input",
                                (long long)stride[0], (long long)stride[1], (long long)h,
                                (long long)w);
        out[i] = stride[i] * (size[i] - 1) + dil[i] * (kernel[i] - 1) + 1 - 2 * pad[i];
        if (out[i] < 1)
            return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                                "pad (%lld, %lld) leaves no output from the %lldx%lld input",
                                (long long)pad[0], (long long)pad[1], (long long)h, (long long)w);
    }
    const int64_t m = num_output, cg = c / group, mg = m / group;
    const int64_t odims[4] = {n, m, out[0], out[1]};
    if ((s = eb_check_shape(node, node->outputs[0], "output", 4, odims, err)) != EB_OK) return s;
    const int64_t wdims[4] = {c, mg, kernel[0], kernel[1]};
    if ((s = eb_check_shape(node, node->weights[0], "weight", 4, wdims, err)) != EB_OK) return s;
    if (bias && (s = eb_check_shape(node, node->weights[1], "bias", 1, &m, err)) != EB_OK) return s;
    if (!node->weights[0]->is_constant || !node->weights[0]->const_data)
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED, "weight '%s' is not a constant",
                            node->weights[0]->name);

    deconv_params p;
    memset(&p, 0, sizeof(p));
    p.n = n, p.c = c, p.h = h, p.w = w, p.m = m, p.oh = out[0], p.ow = out[1];
    p.group = group, p.cg = cg, p.mg = mg;
    p.win = (eb_window){kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1], dil[0], dil[1]};
    p.bias = bias;
    p.kt = eb_kernels();
    p.direct = kernel[0] == 1 && kernel[1] == 1 && stride[0] == 1 && stride[1] == 1 &&
               pad[0] == 0 && pad[1] == 0;
    const int64_t khkw = kernel[0] * kernel[1], npix = h * w; /* khkw <= weight count */
    /* blocks of at least 128 GEMM rows (to amortize packing the input tile), columns of one
     * tile about 256 KiB, tiles a multiple of 96 (every ISA's micro-tile width divides it) */
    p.mb = (128 + khkw - 1) / khkw;
    if (p.mb > mg) p.mb = mg;
    p.nblocks = (mg + p.mb - 1) / p.mb;
    const int64_t rows = p.mb * khkw;
    int64_t t = ((int64_t)1 << 16) / rows / 96 * 96;
    t = t < 96 ? 96 : t > 4032 ? 4032 : t;
    p.tile = npix < t ? npix : t;
    if (!p.direct) {
        const uint64_t cb = (uint64_t)rows * (uint64_t)p.tile * sizeof(float);
        if (cb > (uint64_t)SIZE_MAX / 4)
            return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "column buffer too large");
        p.col_bytes = eb_align64((size_t)cb);
    }
    p.work_bytes = eb_align64(p.kt->sgemm_work_bytes(rows, p.tile, cg));
    p.block_stride = p.kt->pack_a_bytes(rows, cg) / sizeof(float);
    const uint64_t total = (uint64_t)p.block_stride * (uint64_t)(group * p.nblocks) * sizeof(float);
    if (total > (uint64_t)SIZE_MAX / 2)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "packed weights too large");

    if ((s = ebo_fused_act_prepare(node, err, num_output, &p.act)) != EB_OK) return s;
    deconv_params *pp = malloc(sizeof(deconv_params) + (size_t)total + 64);
    if (!pp) return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "no memory for parameters");
    *pp = p;
    pp->packed = (float *)eb_align64((size_t)((uintptr_t)(pp + 1)));
    const float *wt = (const float *)node->weights[0]->const_data;
    const int64_t ld = mg * khkw; /* W_g is cg x (mg*kh*kw); W_g^T rows are its columns */
    for (int64_t g = 0; g < group; g++)
        for (int64_t b = 0; b < p.nblocks; b++) {
            const int64_t c0 = b * p.mb, nch = mg - c0 < p.mb ? mg - c0 : p.mb;
            p.kt->pack_a(1, nch * khkw, cg, wt + g * cg * ld + c0 * khkw, ld,
                         pp->packed + (size_t)(g * p.nblocks + b) * p.block_stride);
        }
    node->params = pp;
    node->scratch_bytes = p.col_bytes + p.work_bytes;
    return EB_OK;
}

typedef struct deconv_ctx {
    const deconv_params *p;
    eb_exec *ex;
    const float *x, *bias;
    float *y;
} deconv_ctx;

static void deconv_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const deconv_ctx *cx = vctx;
    const deconv_params *p = cx->p;
    const int64_t khkw = p->win.kh * p->win.kw, npix = p->h * p->w, opix = p->oh * p->ow;
    char *scratch = eb_scratch(cx->ex, thread);
    float *cols = (float *)scratch;
    void *work = scratch + p->col_bytes;
    for (int64_t it = begin; it < end; it++) {
        const int64_t b = it % p->nblocks, img_g = it / p->nblocks;
        const int64_t g = img_g % p->group, img = img_g / p->group;
        const int64_t c0 = b * p->mb, nch = p->mg - c0 < p->mb ? p->mg - c0 : p->mb;
        const int64_t rows = nch * khkw;
        const float *packed = p->packed + (size_t)(g * p->nblocks + b) * p->block_stride;
        const float *xg = cx->x + (img * p->c + g * p->cg) * npix;
        float *yb = cx->y + (img * p->m + g * p->mg + c0) * opix;
        if (!p->direct) memset(yb, 0, (size_t)(nch * opix) * sizeof(float));
        for (int64_t p0 = 0; p0 < npix; p0 += p->tile) {
            const int64_t np = npix - p0 < p->tile ? npix - p0 : p->tile;
            if (p->direct) { /* rows are output channels, pixels the same grid */
                p->kt->sgemm_packed_a(packed, rows, 0, rows, np, p->cg, 0, xg + p0, npix,
                                      yb + p0, opix, 0, work, p->work_bytes);
            } else {
                p->kt->sgemm_packed_a(packed, rows, 0, rows, np, p->cg, 0, xg + p0, npix, cols,
                                      np, 0, work, p->work_bytes);
                eb_col2im_tile_add(cols, np, nch, p->w, &p->win, p->oh, p->ow, p0, np, yb);
            }
        }
        if (cx->bias) {
            for (int64_t ch = 0; ch < nch; ch++) {
                const float bv = cx->bias[g * p->mg + c0 + ch];
                float *plane = yb + ch * opix;
                for (int64_t q = 0; q < opix; q++) plane[q] += bv;
            }
        }
        ebo_fused_act_apply_planes(&p->act, yb, g * p->mg + c0, nch, opix);
    }
}

static eb_status deconv_run(const eb_node *node, eb_exec *ex)
{
    const deconv_params *p = node->params;
    deconv_ctx cx;
    cx.p = p;
    cx.ex = ex;
    cx.x = eb_data(ex, node->inputs[0]);
    cx.y = eb_data(ex, node->outputs[0]);
    cx.bias = p->bias ? eb_data(ex, node->weights[1]) : NULL;
    eb_parallel_for(ex, p->n * p->group * p->nblocks, deconv_range, &cx);
    return EB_OK;
}

const eb_op_kernel eb_kernel_Deconvolution = {"Deconvolution", deconv_prepare, deconv_run};
