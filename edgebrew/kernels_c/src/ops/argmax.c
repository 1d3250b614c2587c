/* ArgMax, as edgebrew/ir/ops/tensor_ops.py (Caffe's ArgMaxLayer):
 *
 * The top_k (value, index) pairs of each row, in descending order of (value, index): ties are
 * broken towards the larger index (Caffe sorts pairs with std::greater), and NaN ranks below
 * every number (the reference's sort puts it last), NaNs among themselves by index.
 *
 * With `axis` (present): rows run along that axis; the output is the input with that axis
 *   resized to top_k, holding indices, or only values when out_max_val.
 * Without `axis`: rows are each sample's flattened values; the output is (N, 1 or 2, top_k)
 *   padded with unit axes to the input's rank (at least 3), channel 0 indices and, with
 *   out_max_val, channel 1 values.
 * Indices are written as float values.
 *
 * top_k == 1 is a scan: in EBO_LANES lanes along a contiguous row, or across a block of
 * AM_BLOCK inner positions at once along a strided axis (both vectorizable; the winner is the
 * maximum of a total order, so lanes and blocks cannot change it). Otherwise a size-k heap (in per-thread scratch) keeps the best k,
 * then is sorted, so a row costs O(dim log k). Each row is computed by one thread.
 */
#include "ops_common.h"

typedef struct am_params {
    int has_axis, out_max_val;
    int64_t k, outer, dim, inner; /* rows are (outer, inner) pairs; values at stride inner */
} am_params;

typedef struct am_pair {
    float v;
    int64_t i;
} am_pair;

typedef struct am_ctx {
    const am_params *p;
    const float *x;
    float *y;
    eb_exec *ex;
} am_ctx;

/* a ranks before b: (value, index) greater, NaN lowest */
static inline int am_before(float av, int64_t ai, float bv, int64_t bi)
{
    int an = av != av, bn = bv != bv;
    if (an || bn) {
        if (an && bn)
            return ai > bi;
        return bn; /* the non-NaN one ranks first */
    }
    return av > bv || (av == bv && ai > bi);
}

/* Min-heap on the ranking: h[0] is the worst kept pair. */
static void am_sift_down(am_pair *h, int64_t n, int64_t i)
{
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && am_before(h[w].v, h[w].i, h[l].v, h[l].i))
            w = l;
        if (r < n && am_before(h[w].v, h[w].i, h[r].v, h[r].i))
            w = r;
        if (w == i)
            return;
        am_pair t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void am_row(const am_ctx *c, const float *x, int64_t stride, float *y, int64_t ystride,
                   am_pair *h)
{
    const am_params *p = c->p;
    const int64_t dim = p->dim, k = p->k;
    if (k == 1 && stride == 1 && dim >= EBO_LANES && dim <= INT32_MAX) {
        float lv[EBO_LANES];
        int32_t li[EBO_LANES]; /* 32-bit indices: same width as the values, vectorizes */
        for (int l = 0; l < EBO_LANES; l++) {
            lv[l] = x[l];
            li[l] = l;
        }
        int32_t d = EBO_LANES;
        for (; d <= (int32_t)dim - EBO_LANES; d += EBO_LANES)
            for (int l = 0; l < EBO_LANES; l++) {
                float v = x[d + l];
                /* = am_before(v, d + l, lv, li), as d + l > li */
                int32_t take = (v >= lv[l]) | (lv[l] != lv[l]);
                lv[l] = take ? v : lv[l];
                li[l] = take ? d + l : li[l];
            }
        for (int l = 0; d < (int32_t)dim; d++, l++) {
            float v = x[d];
            int32_t take = (v >= lv[l]) | (lv[l] != lv[l]);
            lv[l] = take ? v : lv[l];
            li[l] = take ? d : li[l];
        }
        h[0].v = lv[0];
        h[0].i = li[0];
        for (int l = 1; l < EBO_LANES; l++)
            if (am_before(lv[l], li[l], h[0].v, h[0].i)) {
                h[0].v = lv[l];
                h[0].i = li[l];
            }
    } else if (k == 1) {
        float bv = x[0];
        int64_t bi = 0;
        for (int64_t d = 1; d < dim; d++) {
            float v = x[d * stride];
            if (am_before(v, d, bv, bi)) {
                bv = v;
                bi = d;
            }
        }
        h[0].v = bv;
        h[0].i = bi;
    } else {
        for (int64_t d = 0; d < k; d++) {
            h[d].v = x[d * stride];
            h[d].i = d;
        }
        for (int64_t i = k / 2; i-- > 0;)
            am_sift_down(h, k, i);
        for (int64_t d = k; d < dim; d++) {
            float v = x[d * stride];
            if (am_before(v, d, h[0].v, h[0].i)) {
                h[0].v = v;
                h[0].i = d;
                am_sift_down(h, k, 0);
            }
        }
        /* heap sort: repeatedly move the worst to the end -> best first */
        for (int64_t n = k; n > 1; n--) {
            am_pair t = h[0];
            h[0] = h[n - 1];
            h[n - 1] = t;
            am_sift_down(h, n - 1, 0);
        }
    }
    if (p->has_axis) {
        for (int64_t j = 0; j < k; j++)
            y[j * ystride] = p->out_max_val ? h[j].v : (float)h[j].i;
    } else {
        for (int64_t j = 0; j < k; j++)
            y[j] = (float)h[j].i;
        if (p->out_max_val)
            for (int64_t j = 0; j < k; j++)
                y[k + j] = h[j].v;
    }
}

#define AM_BLOCK 256

/* top_k == 1 along a strided axis: item = (outer index, block of AM_BLOCK inner positions). */
static void am_top1_blocks(const am_ctx *c, int64_t begin, int64_t end)
{
    const am_params *p = c->p;
    const int64_t dim = p->dim, inner = p->inner;
    const int64_t nblk = (inner + AM_BLOCK - 1) / AM_BLOCK;
    float bv[AM_BLOCK];
    int32_t bi[AM_BLOCK]; /* dim <= INT32_MAX here */
    for (int64_t it = begin; it < end; it++) {
        int64_t o = it / nblk, j0 = (it - o * nblk) * AM_BLOCK;
        int64_t n = inner - j0 < AM_BLOCK ? inner - j0 : AM_BLOCK;
        const float *x = c->x + o * dim * inner + j0;
        float *y = c->y + o * inner + j0;
        for (int64_t j = 0; j < n; j++) {
            bv[j] = x[j];
            bi[j] = 0;
        }
        for (int32_t d = 1; d < (int32_t)dim; d++) {
            const float *restrict xd = x + d * inner;
            for (int64_t j = 0; j < n; j++) {
                float v = xd[j];
                int32_t take = (v >= bv[j]) | (bv[j] != bv[j]); /* am_before, as d > bi */
                bv[j] = take ? v : bv[j];
                bi[j] = take ? d : bi[j];
            }
        }
        if (p->out_max_val)
            for (int64_t j = 0; j < n; j++)
                y[j] = bv[j];
        else
            for (int64_t j = 0; j < n; j++)
                y[j] = (float)bi[j];
    }
}

static int am_blocked(const am_params *p)
{
    return p->k == 1 && p->has_axis && p->inner > 1 && p->dim <= INT32_MAX;
}

static void am_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const am_ctx *c = (const am_ctx *)vctx;
    const am_params *p = c->p;
    if (am_blocked(p)) {
        am_top1_blocks(c, begin, end);
        return;
    }
    am_pair one;
    am_pair *h = p->k == 1 ? &one : (am_pair *)eb_scratch(c->ex, thread);
    for (int64_t r = begin; r < end; r++) {
        int64_t o = r / p->inner, i = r - o * p->inner;
        const float *x = c->x + o * p->dim * p->inner + i;
        if (p->has_axis)
            am_row(c, x, p->inner, c->y + o * p->k * p->inner + i, p->inner, h);
        else
            am_row(c, x, 1, c->y + o * p->k * (p->out_max_val ? 2 : 1), 1, h);
    }
}

static eb_status am_run(const eb_node *node, eb_exec *ex)
{
    am_ctx c;
    c.p = (const am_params *)node->params;
    c.x = eb_data(ex, node->inputs[0]);
    c.y = eb_data(ex, node->outputs[0]);
    c.ex = ex;
    if (am_blocked(c.p))
        ebo_parallel(ex, c.p->outer * ((c.p->inner + AM_BLOCK - 1) / AM_BLOCK),
                     2 * c.p->dim * AM_BLOCK, am_range, &c);
    else
        ebo_parallel(ex, c.p->outer * c.p->inner, 2 * c.p->dim, am_range, &c);
    return EB_OK;
}

static eb_status am_prepare(eb_node *node, eb_error *err)
{
    eb_status st;
    am_params p;
    int64_t axis = 0;
    memset(&p, 0, sizeof p);
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, 0)) != EB_OK ||
        (st = ebo_check_float32(node, err)) != EB_OK ||
        (st = ebo_attr_bool(node, "out_max_val", 0, &p.out_max_val, err)) != EB_OK ||
        (st = eb_attr_int(node, "top_k", 1, &p.k, err)) != EB_OK)
        return st;
    p.has_axis = eb_attr_has(node, "axis");
    if (p.has_axis && (st = eb_attr_int(node, "axis", 0, &axis, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0];
    const int n = x->ndim;
    if (p.k < 1)
        return eb_node_fail(node, err, EBO_INVALID, "top_k %lld must be at least 1",
                            (long long)p.k);
    int64_t out[EB_MAX_DIMS];
    int out_n;
    if (p.has_axis) {
        int a;
        if (!ebo_axis(axis, n, &a))
            return eb_node_fail(node, err, EBO_INVALID, "axis %lld out of range for a %d-d input",
                                (long long)axis, n);
        if (p.k > x->dims[a])
            return eb_node_fail(node, err, EBO_INVALID, "top_k %lld exceeds the size %lld of axis %d",
                                (long long)p.k, (long long)x->dims[a], a);
        p.outer = ebo_count(x->dims, 0, a);
        p.dim = x->dims[a];
        p.inner = ebo_count(x->dims, a + 1, n);
        out_n = n;
        memcpy(out, x->dims, sizeof(int64_t) * (size_t)n);
        out[a] = p.k;
    } else {
        if (n < 1)
            return eb_node_fail(node, err, EBO_INVALID, "needs at least 1 axis");
        p.outer = x->dims[0];
        p.dim = ebo_count(x->dims, 1, n);
        p.inner = 1;
        if (p.k > p.dim)
            return eb_node_fail(node, err, EBO_INVALID,
                                "top_k %lld exceeds the %lld values per sample", (long long)p.k,
                                (long long)p.dim);
        out_n = n > 3 ? n : 3;
        for (int i = 0; i < out_n; i++)
            out[i] = 1;
        out[0] = x->dims[0];
        out[1] = p.out_max_val ? 2 : 1;
        out[2] = p.k;
    }
    if ((st = ebo_expect_shape(node, err, node->outputs[0], "output", 0, out_n, out)) != EB_OK)
        return st;
    if ((uint64_t)p.k > (uint64_t)(SIZE_MAX / sizeof(am_pair)))
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED, "top_k %lld is too large",
                            (long long)p.k);
    am_params *o = (am_params *)malloc(sizeof *o);
    if (!o)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    *o = p;
    node->params = o;
    node->scratch_bytes = p.k == 1 ? 0 : (size_t)p.k * sizeof(am_pair);
    return EB_OK;
}

const eb_op_kernel eb_kernel_ArgMax = {"ArgMax", am_prepare, am_run};
