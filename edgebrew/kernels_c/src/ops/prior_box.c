/* PriorBox (SSD fork of Caffe): the default boxes of one feature map, and their variances.
 *
 * Follows edgebrew/ir/ops/detection.py (PriorBox.run, prior_box_sizes, prior_box_aspect_ratios):
 *   - aspect ratios: [1], then each given ratio (rounded to float) unless within 1e-6 of one
 *     already listed, followed by its reciprocal (1/ar in double, rounded) when flip is set;
 *   - priors per location, for each min_size in order: the min_size square, the
 *     sqrt(min_size * max_size) square when max sizes are given, then one box per ratio other
 *     than 1, min_size*sqrt(ar) wide and min_size/sqrt(ar) high. Sizes are truncated to integers
 *     first (the fork keeps them in int variables), then the box sides are rounded to float;
 *   - img_h/img_w: the attributes when both are nonzero, else the image input's H and W;
 *     step_h/step_w: the attributes when both are nonzero, else float(img) / float(layer);
 *   - centres (h + offset) * step in float; corners (centre -/+ side/2) / img in double, rounded
 *     to float, then clipped to [0, 1] when clip is set;
 *   - output (1, 2, H*W*P*4): the boxes (per row, per column, per prior: xmin ymin xmax ymax),
 *     then the variances (one value everywhere, or four repeated per prior).
 *
 * The output depends only on shapes and attributes. prepare() resolves everything (prior sides,
 * steps, image size, variances) into node->params; run() writes the values (a few double
 * operations per number, cheaper than keeping a precomputed copy of the output per model).
 */
#include "ops_common.h"

#include <float.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* keep a*b+c as two roundings, like the reference */
#endif

/* Attribute list limits (a bundle exceeding them is refused in prepare). */
#define PB_MAX_SIZES 256
#define PB_MAX_RATIOS 256
/* Sizes and image dimensions are kept far from int overflow. */
#define PB_MAX_PIXELS 2147483647.0

typedef struct pb_params {
    int64_t layer_h, layer_w;
    double img_h, img_w; /* resolved, >= 1 */
    float step_h, step_w, offset;
    int clip;
    int n_var;
    float var[4];
    int64_t num_priors;  /* per location */
    float sides[];       /* num_priors (width, height) pairs */
} pb_params;

static eb_status prepare(eb_node *node, eb_error *err)
{
    eb_status st = ebo_check_arity(node, err, 2, 2, 1, 1, 0);
    if (st != EB_OK)
        return st;
    if ((st = ebo_check_float32(node, err)) != EB_OK)
        return st;
    const eb_tensor *feat = node->inputs[0], *img = node->inputs[1];
    if (feat->ndim != 4 || img->ndim != 4)
        return eb_node_fail(node, err, EBO_INVALID,
                            "needs 4-d feature map and image inputs, got %d-d and %d-d",
                            feat->ndim, img->ndim);

    double min_size[PB_MAX_SIZES], max_size[PB_MAX_SIZES], ar_in[PB_MAX_RATIOS], var[4];
    int n_min = 0, n_max = 0, n_ar = 0, n_var = 0;
    if ((st = eb_attr_floats(node, "min_size", min_size, PB_MAX_SIZES, &n_min, err)) != EB_OK)
        return st;
    if ((st = eb_attr_floats(node, "max_size", max_size, PB_MAX_SIZES, &n_max, err)) != EB_OK)
        return st;
    if ((st = eb_attr_floats(node, "aspect_ratio", ar_in, PB_MAX_RATIOS, &n_ar, err)) != EB_OK)
        return st;
    if (!eb_attr_has(node, "variance")) {
        var[0] = 0.1;
        n_var = 1;
    } else if ((st = eb_attr_floats(node, "variance", var, 4, &n_var, err)) != EB_OK) {
        return st;
    }
    int flip = 1, clip = 0;
    int64_t img_h_attr = 0, img_w_attr = 0;
    double step_h_attr = 0, step_w_attr = 0, offset = 0.5;
    if ((st = ebo_attr_bool(node, "flip", 1, &flip, err)) != EB_OK ||
        (st = ebo_attr_bool(node, "clip", 0, &clip, err)) != EB_OK ||
        (st = eb_attr_int(node, "img_h", 0, &img_h_attr, err)) != EB_OK ||
        (st = eb_attr_int(node, "img_w", 0, &img_w_attr, err)) != EB_OK ||
        (st = eb_attr_float(node, "step_h", 0.0, &step_h_attr, err)) != EB_OK ||
        (st = eb_attr_float(node, "step_w", 0.0, &step_w_attr, err)) != EB_OK ||
        (st = eb_attr_float(node, "offset", 0.5, &offset, err)) != EB_OK)
        return st;

    /* ---- attribute ranges ---- */
    if (n_min == 0)
        return eb_node_fail(node, err, EBO_INVALID, "min_size must be given");
    for (int s = 0; s < n_min; s++)
        if (!(min_size[s] > 0) || !((float)min_size[s] < (float)PB_MAX_PIXELS))
            return eb_node_fail(node, err, EBO_INVALID,
                                "min_size %g must be positive and below 2^31", min_size[s]);
    if (n_max != 0) {
        if (n_max != n_min)
            return eb_node_fail(node, err, EBO_INVALID, "%d max_size(s) for %d min_size(s)",
                                n_max, n_min);
        for (int s = 0; s < n_max; s++) {
            if (!(max_size[s] > min_size[s]))
                return eb_node_fail(node, err, EBO_INVALID, "max_size %g must exceed min_size %g",
                                    max_size[s], min_size[s]);
            if (!((float)max_size[s] < (float)PB_MAX_PIXELS))
                return eb_node_fail(node, err, EBO_INVALID, "max_size %g must be below 2^31",
                                    max_size[s]);
        }
    }
    for (int r = 0; r < n_ar; r++) {
        float a = (float)ar_in[r];
        if (!(ar_in[r] > 0) || !isfinite(ar_in[r]) || !(a > 0) || !isfinite(a) ||
            !isfinite((double)(float)(1.0 / (double)a)))
            return eb_node_fail(node, err, EBO_INVALID,
                                "aspect_ratio %g must be positive and finite (as a float, and "
                                "its reciprocal too)", ar_in[r]);
    }
    if (n_var != 1 && n_var != 4)
        return eb_node_fail(node, err, EBO_INVALID, "variance has %d values; needs 1 or 4",
                            n_var);
    for (int v = 0; v < n_var; v++)
        if (!(var[v] > 0) || !isfinite(var[v]))
            return eb_node_fail(node, err, EBO_INVALID, "variance %g must be positive and finite",
                                var[v]);
    if (img_h_attr < 0 || img_w_attr < 0 || img_h_attr > (int64_t)PB_MAX_PIXELS ||
        img_w_attr > (int64_t)PB_MAX_PIXELS)
        return eb_node_fail(node, err, EBO_INVALID,
                            "img_h %lld and img_w %lld must be in [0, 2^31)",
                            (long long)img_h_attr, (long long)img_w_attr);
    if (!(step_h_attr >= 0) || !(step_w_attr >= 0) || !isfinite(step_h_attr) ||
        !isfinite(step_w_attr))
        return eb_node_fail(node, err, EBO_INVALID,
                            "step_h %g and step_w %g must be finite and not negative",
                            step_h_attr, step_w_attr);
    if (!isfinite(offset))
        return eb_node_fail(node, err, EBO_INVALID, "offset %g must be finite", offset);

    /* ---- aspect ratios, as prior_box_aspect_ratios ---- */
    float ratios[1 + 2 * PB_MAX_RATIOS];
    int n_ratios = 0;
    ratios[n_ratios++] = 1.0f;
    for (int r = 0; r < n_ar; r++) {
        float a = (float)ar_in[r];
        int seen = 0;
        for (int q = 0; q < n_ratios; q++) {
            float d = fabsf(a - ratios[q]);
            if ((double)d < 1e-6)
                seen = 1;
        }
        if (seen)
            continue;
        ratios[n_ratios++] = a;
        if (flip)
            ratios[n_ratios++] = (float)(1.0 / (double)a);
    }

    /* ---- output geometry ---- */
    const int64_t num_priors = (int64_t)n_ratios * n_min + n_max; /* <= 513*256 + 256 */
    const int64_t layer_h = feat->dims[2], layer_w = feat->dims[3];
    int64_t n_values = 0; /* layer_h * layer_w * num_priors * 4, checked */
    if (__builtin_mul_overflow(layer_h, layer_w, &n_values) ||
        __builtin_mul_overflow(n_values, num_priors * 4, &n_values) ||
        n_values > EB_MAX_TENSOR_ELEMS)
        return eb_node_fail(node, err, EBO_INVALID, "a %lld x %lld feature map with %lld priors "
                            "per location gives too many boxes", (long long)layer_h,
                            (long long)layer_w, (long long)num_priors);
    const int64_t want[3] = {1, 2, n_values};
    if ((st = ebo_expect_shape(node, err, node->outputs[0], "output", 0, 3, want)) != EB_OK)
        return st;

    pb_params *p = calloc(1, sizeof *p + (size_t)num_priors * 2 * sizeof(float));
    if (!p)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    p->layer_h = layer_h;
    p->layer_w = layer_w;
    int64_t img_h = img_h_attr, img_w = img_w_attr;
    if (img_h == 0 || img_w == 0) {
        img_h = img->dims[2];
        img_w = img->dims[3];
    }
    p->img_h = (double)img_h;
    p->img_w = (double)img_w;
    if (step_h_attr == 0 || step_w_attr == 0) {
        p->step_h = (float)img_h / (float)layer_h;
        p->step_w = (float)img_w / (float)layer_w;
    } else {
        p->step_h = (float)step_h_attr;
        p->step_w = (float)step_w_attr;
    }
    p->offset = (float)offset;
    p->clip = clip;
    p->n_var = n_var;
    for (int v = 0; v < n_var; v++)
        p->var[v] = (float)var[v];
    p->num_priors = num_priors;

    /* ---- prior sides, as prior_box_sizes ---- */
    float *sd = p->sides;
    for (int s = 0; s < n_min; s++) {
        const int64_t m = (int64_t)(float)min_size[s]; /* truncation, as the fork's int */
        *sd++ = (float)m;
        *sd++ = (float)m;
        if (n_max) {
            const int64_t mx = (int64_t)(float)max_size[s];
            float side = (float)sqrt((double)m * (double)mx);
            *sd++ = side;
            *sd++ = side;
        }
        for (int r = 0; r < n_ratios; r++) {
            if (fabs((double)ratios[r] - 1.0) < 1e-6)
                continue;
            double q = sqrt((double)ratios[r]);
            *sd++ = (float)((double)m * q);
            *sd++ = (float)((double)m / q);
        }
    }
    node->params = p;
    node->scratch_bytes = 0;
    return EB_OK;
}

typedef struct pb_ctx {
    const pb_params *p;
    float *boxes;
    float *vars;
} pb_ctx;

static inline float clip01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* Rows [begin, end) of the feature map. */
static void fill_rows(void *vctx, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const pb_ctx *k = vctx;
    const pb_params *p = k->p;
    const int64_t np = p->num_priors, row = p->layer_w * np * 4;
    for (int64_t h = begin; h < end; h++) {
        float cyf = ((float)h + p->offset) * p->step_h;
        const double cy = (double)cyf;
        float *out = k->boxes + h * row;
        float *vout = k->vars + h * row;
        for (int64_t w = 0; w < p->layer_w; w++) {
            float cxf = ((float)w + p->offset) * p->step_w;
            const double cx = (double)cxf;
            for (int64_t q = 0; q < np; q++) {
                const double hw = (double)p->sides[2 * q] / 2.0;
                const double hh = (double)p->sides[2 * q + 1] / 2.0;
                float b[4] = {(float)((cx - hw) / p->img_w), (float)((cy - hh) / p->img_h),
                              (float)((cx + hw) / p->img_w), (float)((cy + hh) / p->img_h)};
                for (int j = 0; j < 4; j++)
                    out[j] = p->clip ? clip01(b[j]) : b[j];
                for (int j = 0; j < 4; j++)
                    vout[j] = p->var[p->n_var == 4 ? j : 0];
                out += 4;
                vout += 4;
            }
        }
    }
}

static eb_status run(const eb_node *node, eb_exec *ex)
{
    const pb_params *p = node->params;
    float *out = eb_data(ex, node->outputs[0]);
    pb_ctx k = {p, out, out + p->layer_h * p->layer_w * p->num_priors * 4};
    ebo_parallel(ex, p->layer_h, p->layer_w * p->num_priors * 24, fill_rows, &k);
    return EB_OK;
}

const eb_op_kernel eb_kernel_PriorBox = {"PriorBox", prepare, run};
