/* Normalize (SSD fork of Caffe): L2 normalization followed by a learned scale.
 *
 * Follows edgebrew/ir/ops/detection.py (Normalize.run):
 *   across_spatial: norm = sqrt(sum over C*H*W of x^2 + eps) per sample, inv = 1/norm computed
 *                   in double and rounded to float, y = (x * inv) * scale
 *   otherwise:      norm = sqrt(sum over C of x^2 + eps) per sample and position, y = (x / norm)
 *                   * scale
 * with scale one value (channel_shared) or one per channel. Input 2-d to 4-d, (N, C, ...).
 *
 * Sums: per position, the squares are summed in float in channel order (the order NumPy's
 * axis-1 reduction uses); across spatial, each channel row is summed in double (fixed order,
 * ebo_sum_op) and the rows are added in channel order, so 1 and N threads agree bit for bit.
 */
#include "ops_common.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* keep a*b+c as two roundings, like the reference */
#endif

typedef struct norm_params {
    int across_spatial;
    int channel_shared;
    float eps;
    int64_t n, c, spatial;
} norm_params;

static eb_status prepare(eb_node *node, eb_error *err)
{
    eb_status st = ebo_check_arity(node, err, 1, 1, 1, 1, 1);
    if (st != EB_OK)
        return st;
    if ((st = ebo_check_float32(node, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0];
    if (x->ndim < 2 || x->ndim > 4)
        return eb_node_fail(node, err, EBO_INVALID, "needs a 2-d to 4-d input, got %d-d",
                            x->ndim);
    if ((st = ebo_outputs_like_input(node, err)) != EB_OK)
        return st;

    int across = 1, shared = 1;
    float eps = 0;
    if ((st = ebo_attr_bool(node, "across_spatial", 1, &across, err)) != EB_OK)
        return st;
    if ((st = ebo_attr_bool(node, "channel_shared", 1, &shared, err)) != EB_OK)
        return st;
    if ((st = ebo_attr_f32(node, "eps", 1e-10, &eps, NULL, err)) != EB_OK)
        return st;

    const int64_t c = x->dims[1];
    const eb_tensor *w = node->weights[0];
    if (shared && w->count != 1)
        return eb_node_fail(node, err, EBO_INVALID,
                            "scale '%s' has %lld values; channel_shared needs 1", w->name,
                            (long long)w->count);
    if (!shared && (w->count != c || w->ndim > 1))
        return eb_node_fail(node, err, EBO_INVALID,
                            "scale '%s' has %lld values in %d dim(s); needs (%lld,), one per "
                            "channel", w->name, (long long)w->count, w->ndim, (long long)c);

    norm_params *p = calloc(1, sizeof *p);
    if (!p)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    p->across_spatial = across;
    p->channel_shared = shared;
    p->eps = eps;
    p->n = x->dims[0];
    p->c = c;
    p->spatial = ebo_count(x->dims, 2, x->ndim);
    node->params = p;
    /* across_spatial: one double per (sample, channel) row for the partial sums, then one
     * float per sample for the reciprocal norms. n*c <= EB_MAX_TENSOR_ELEMS, so no overflow. */
    if (across) {
        uint64_t bytes = (uint64_t)(p->n * c) * sizeof(double) + (uint64_t)p->n * sizeof(float);
        if (bytes > (uint64_t)SIZE_MAX)
            return eb_node_fail(node, err, EB_ERR_UNSUPPORTED,
                                "needs %llu bytes of scratch, more than this platform can address",
                                (unsigned long long)bytes);
        node->scratch_bytes = (size_t)bytes;
    }
    return EB_OK;
}

typedef struct norm_ctx {
    const norm_params *p;
    const float *x;
    float *y;
    const float *scale;
    double *row_sums; /* across_spatial: (n, c) partial sums */
    const float *inv; /* across_spatial: (n) reciprocal norms */
} norm_ctx;

/* Per-position norms over (sample, position) items; a tile of positions at a time. */
#define NORM_TILE 256
static void per_position(void *vctx, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const norm_ctx *k = vctx;
    const norm_params *p = k->p;
    const int64_t c = p->c, s = p->spatial;
    float acc[NORM_TILE];
    int64_t i = begin;
    while (i < end) {
        const int64_t img = i / s, pos = i % s;
        int64_t len = end - i;
        if (len > s - pos)
            len = s - pos;
        if (len > NORM_TILE)
            len = NORM_TILE;
        const float *x = k->x + img * c * s + pos;
        float *y = k->y + img * c * s + pos;
        for (int64_t t = 0; t < len; t++)
            acc[t] = 0.0f;
        for (int64_t ch = 0; ch < c; ch++) {
            const float *xc = x + ch * s;
            for (int64_t t = 0; t < len; t++) {
                float sq = xc[t] * xc[t];
                acc[t] += sq;
            }
        }
        for (int64_t t = 0; t < len; t++)
            acc[t] = sqrtf(acc[t] + p->eps);
        for (int64_t ch = 0; ch < c; ch++) {
            const float sc = p->channel_shared ? k->scale[0] : k->scale[ch];
            const float *xc = x + ch * s;
            float *yc = y + ch * s;
            for (int64_t t = 0; t < len; t++) {
                float q = xc[t] / acc[t];
                yc[t] = q * sc;
            }
        }
        i += len;
    }
}

/* Across spatial, pass 1: sum of squares of each (sample, channel) row, in double. */
static void row_sums(void *vctx, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const norm_ctx *k = vctx;
    const int64_t s = k->p->spatial;
    for (int64_t r = begin; r < end; r++) {
        const float *x = k->x + r * s;
        double acc[EBO_LANES] = {0};
        int64_t i = 0, nv = s - s % EBO_LANES;
        for (; i < nv; i += EBO_LANES)
            for (int l = 0; l < EBO_LANES; l++) {
                float sq = x[i + l] * x[i + l]; /* the reference squares in float */
                acc[l] += (double)sq;
            }
        for (int l = 0; i < s; i++, l++) {
            float sq = x[i] * x[i];
            acc[l] += (double)sq;
        }
        k->row_sums[r] = ebo_lanes_total(acc);
    }
}

/* Across spatial, pass 2: y = (x * inv) * scale, per (sample, channel) row. */
static void scale_rows(void *vctx, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const norm_ctx *k = vctx;
    const norm_params *p = k->p;
    const int64_t s = p->spatial;
    for (int64_t r = begin; r < end; r++) {
        const int64_t img = r / p->c, ch = r % p->c;
        const float inv = k->inv[img];
        const float sc = p->channel_shared ? k->scale[0] : k->scale[ch];
        const float *x = k->x + r * s;
        float *y = k->y + r * s;
        for (int64_t i = 0; i < s; i++) {
            float q = x[i] * inv;
            y[i] = q * sc;
        }
    }
}

static eb_status run(const eb_node *node, eb_exec *ex)
{
    const norm_params *p = node->params;
    norm_ctx k = {p, eb_data(ex, node->inputs[0]), eb_data(ex, node->outputs[0]),
                  eb_data(ex, node->weights[0]), NULL, NULL};
    if (!p->across_spatial) {
        ebo_parallel(ex, p->n * p->spatial, 3 * p->c, per_position, &k);
        return EB_OK;
    }
    k.row_sums = eb_scratch(ex, 0);
    float *inv = (float *)(void *)(k.row_sums + p->n * p->c);
    ebo_parallel(ex, p->n * p->c, 2 * p->spatial, row_sums, &k);
    for (int64_t img = 0; img < p->n; img++) {
        double total = 0.0;
        for (int64_t ch = 0; ch < p->c; ch++)
            total += k.row_sums[img * p->c + ch];
        float norm = sqrtf((float)total + p->eps);
        inv[img] = (float)(1.0 / (double)norm);
    }
    k.inv = inv;
    ebo_parallel(ex, p->n * p->c, 2 * p->spatial, scale_rows, &k);
    return EB_OK;
}

const eb_op_kernel eb_kernel_Normalize = {"Normalize", prepare, run};
