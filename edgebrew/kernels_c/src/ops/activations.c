/* Elementwise activations (Caffe's neuron layers): ReLU, PReLU, ELU, Sigmoid, TanH, AbsVal,
 * BNLL, Power, Exp, Log, Threshold, Clip, Dropout. Output shape = input shape.
 *
 * Formulas are those of edgebrew/ir/ops/activations.py (Caffe's Forward_cpu), with the float
 * attributes rounded to float32 first. NaN behaves as there: max/min are written as C++'s
 * std::max/std::min-like selects so a NaN input propagates where NumPy's maximum/minimum do.
 *
 * Where the literal float32 form of a formula cancels, it is evaluated so that it does not
 * (the oracle is the float64 reference): ELU's exp(x) - 1 (near 0) and BNLL's
 * log(1 + exp(-|x|)) (large |x|) in double, rounded once; Sigmoid's 0.5 tanh(0.5 x) + 0.5
 * (7e-4 relative error at x = -10 in float32) as the equal 1 / (1 + exp(-x)) in float32.
 * Beyond x = -23 the float64 reference itself cancels in Sigmoid and BNLL (its digits there
 * depend on its libm), so neither form can match it there to 1e-5 per element.
 *
 * In place: the output may be the input's memory. The loops read x[i] and then write y[i] at
 * the same index only, so x == y is correct; the pointers are deliberately not `restrict`
 * (gcc versions these loops with a run-time overlap check that accepts x == y and vectorizes
 * both ways).
 */
#include "activation_math.h"
#include "ops_common.h"

enum {
    ACT_RELU, ACT_PRELU, ACT_ELU, ACT_SIGMOID, ACT_TANH, ACT_ABSVAL, ACT_BNLL, ACT_POWER,
    ACT_EXP, ACT_LOG, ACT_THRESHOLD, ACT_CLIP, ACT_DROPOUT
};

typedef struct act_params {
    int kind;
    int channel_shared;           /* PReLU */
    int64_t channels, inner;      /* PReLU: dims[1] and the count after it */
    float a, b;                   /* per-op constants, set by act_prepare */
    float power, scale, shift;    /* Power / Exp / Log */
    int power_const;              /* Power: power * scale == 0, output = a */
} act_params;

/* ---- loops ---------------------------------------------------------------------------------- */

static void k_elu(const float *x, float *y, int64_t n, float alpha)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float mx = v < 0.0f ? 0.0f : v;
        float mn = 0.0f < v ? 0.0f : v;
        y[i] = (float)((double)mx + (double)alpha * (exp((double)mn) - 1.0));
    }
}

static void k_abs(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = fabsf(x[i]);
}

static void k_bnll(const float *x, float *y, int64_t n)
{
    /* max(x, 0) + log(1 + exp(-|x|)): both branches of Caffe's stable formula as one. */
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float pos = v > 0.0f ? v : 0.0f;
        y[i] = (float)((double)pos + log(1.0 + exp(-fabs((double)v))));
    }
}

static void k_fill(float *y, int64_t n, float value)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = value;
}

static void k_power(const act_params *p, const float *x, float *y, int64_t n)
{
    const float scale = p->scale, shift = p->shift, power = p->power;
    if (p->power_const) {
        k_fill(y, n, p->a);
        return;
    }
    /* Each step as the reference: y = x; y *= scale; y += shift; y = y ^ power. */
    if (power == 1.0f) {
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            if (scale != 1.0f)
                v = v * scale;
            if (shift != 0.0f)
                v = v + shift;
            y[i] = v;
        }
    } else if (power == 2.0f) {
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            if (scale != 1.0f)
                v = v * scale;
            if (shift != 0.0f)
                v = v + shift;
            y[i] = v * v;
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            if (scale != 1.0f)
                v = v * scale;
            if (shift != 0.0f)
                v = v + shift;
            y[i] = powf(v, power);
        }
    }
}

static void k_exp(const act_params *p, const float *x, float *y, int64_t n)
{
    const float inner = p->a, outer = p->b;
    /* y = exp(inner == 1 ? x : inner * x); y = outer == 1 ? y : outer * y */
    if (inner == 1.0f && outer == 1.0f) {
        for (int64_t i = 0; i < n; i++)
            y[i] = expf(x[i]);
    } else if (inner == 1.0f) {
        for (int64_t i = 0; i < n; i++)
            y[i] = outer * expf(x[i]);
    } else if (outer == 1.0f) {
        for (int64_t i = 0; i < n; i++)
            y[i] = expf(inner * x[i]);
    } else {
        for (int64_t i = 0; i < n; i++)
            y[i] = outer * expf(inner * x[i]);
    }
}

static void k_log(const act_params *p, const float *x, float *y, int64_t n)
{
    const float scale = p->scale, shift = p->shift, base_scale = p->a;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        if (scale != 1.0f)
            v = v * scale;
        if (shift != 0.0f)
            v = v + shift;
        v = logf(v);
        y[i] = base_scale == 1.0f ? v : base_scale * v;
    }
}

static void k_threshold(const float *x, float *y, int64_t n, float th)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > th ? 1.0f : 0.0f;
}

/* ---- driver ----------------------------------------------------------------------------------- */

typedef struct act_ctx {
    const act_params *p;
    const float *x;
    float *y;
    const float *slope; /* PReLU */
} act_ctx;

static void act_range(void *vctx, int64_t begin, int64_t end, int thread)
{
    const act_ctx *c = (const act_ctx *)vctx;
    const act_params *p = c->p;
    const float *x = c->x + begin;
    float *y = c->y + begin;
    int64_t n = end - begin;
    (void)thread;
    switch (p->kind) {
    case ACT_RELU: ebo_relu(x, y, n, p->a); break;
    case ACT_PRELU:
        if (p->channel_shared) {
            ebo_relu(x, y, n, c->slope[0]);
        } else {
            /* rows of `inner` values share channel (row % channels)'s slope */
            int64_t i = begin;
            while (i < end) {
                int64_t row = i / p->inner, off = i - row * p->inner;
                int64_t len = p->inner - off;
                if (len > end - i)
                    len = end - i;
                ebo_relu(c->x + i, c->y + i, len, c->slope[row % p->channels]);
                i += len;
            }
        }
        break;
    case ACT_ELU: k_elu(x, y, n, p->a); break;
    case ACT_SIGMOID: ebo_sigmoid(x, y, n); break;
    case ACT_TANH: ebo_tanh(x, y, n); break;
    case ACT_ABSVAL: k_abs(x, y, n); break;
    case ACT_BNLL: k_bnll(x, y, n); break;
    case ACT_POWER: k_power(p, x, y, n); break;
    case ACT_EXP: k_exp(p, x, y, n); break;
    case ACT_LOG: k_log(p, x, y, n); break;
    case ACT_THRESHOLD: k_threshold(x, y, n, p->a); break;
    case ACT_CLIP: ebo_clip(x, y, n, p->a, p->b); break;
    default: /* Dropout: identity (a copy unless in place) */
        if (x != y)
            memcpy(y, x, (size_t)n * sizeof(float));
        break;
    }
}

/* Rough elementary operations per element, for deciding when to split. */
static int64_t act_cost(int kind)
{
    switch (kind) {
    case ACT_RELU: case ACT_PRELU: case ACT_ABSVAL: case ACT_THRESHOLD: case ACT_CLIP:
    case ACT_DROPOUT:
        return 1;
    default:
        return 16;
    }
}

static eb_status act_run(const eb_node *node, eb_exec *ex)
{
    const act_params *p = (const act_params *)node->params;
    act_ctx c;
    c.p = p;
    c.x = eb_data(ex, node->inputs[0]);
    c.y = eb_data(ex, node->outputs[0]);
    c.slope = p->kind == ACT_PRELU ? eb_data(ex, node->weights[0]) : NULL;
    if (p->kind == ACT_DROPOUT && c.x == c.y)
        return EB_OK;
    ebo_parallel(ex, node->inputs[0]->count, act_cost(p->kind), act_range, &c);
    return EB_OK;
}

/* Caffe's Exp/Log set-up: base -1 means e, otherwise it must be positive. */
static eb_status check_base(eb_node *node, eb_error *err, double base)
{
    if (base == -1.0)
        return EB_OK;
    if (!(base > 0.0))
        return eb_node_fail(node, err, EBO_INVALID,
                            "base must be positive (or -1 for e), got %g", base);
    return EB_OK;
}

static eb_status act_prepare(eb_node *node, eb_error *err, int kind)
{
    act_params p;
    eb_status st;
    double raw = 0;
    memset(&p, 0, sizeof p);
    p.kind = kind;

    if (kind == ACT_PRELU) {
        if ((st = ebo_attr_bool(node, "channel_shared", 0, &p.channel_shared, err)) != EB_OK)
            return st;
    }
    if ((st = ebo_check_arity(node, err, 1, 1, 1, 1, kind == ACT_PRELU ? 1 : 0)) != EB_OK)
        return st;
    if ((st = ebo_check_float32(node, err)) != EB_OK)
        return st;
    if ((st = ebo_outputs_like_input(node, err)) != EB_OK)
        return st;
    const eb_tensor *x = node->inputs[0];

    switch (kind) {
    case ACT_RELU:
        st = ebo_attr_f32(node, "negative_slope", 0.0, &p.a, NULL, err);
        break;
    case ACT_PRELU: {
        /* Caffe reads the channel count with the legacy accessor (2 to 4 axes). */
        if (x->ndim < 2 || x->ndim > 4)
            return eb_node_fail(node, err, EBO_INVALID, "needs a 2- to 4-axis input, got %d axes",
                                x->ndim);
        p.channels = x->dims[1];
        p.inner = ebo_count(x->dims, 2, x->ndim);
        const eb_tensor *w = node->weights[0];
        if (p.channel_shared)
            st = ebo_expect_shape(node, err, w, "weight", 0, 0, NULL);
        else
            st = ebo_expect_shape(node, err, w, "weight", 0, 1, &p.channels);
        break;
    }
    case ACT_ELU:
        st = ebo_attr_f32(node, "alpha", 1.0, &p.a, NULL, err);
        break;
    case ACT_POWER:
        if ((st = ebo_attr_f32(node, "power", 1.0, &p.power, NULL, err)) != EB_OK ||
            (st = ebo_attr_f32(node, "scale", 1.0, &p.scale, NULL, err)) != EB_OK ||
            (st = ebo_attr_f32(node, "shift", 0.0, &p.shift, NULL, err)) != EB_OK)
            return st;
        {
            float ps = p.power * p.scale; /* float32 product, as the reference */
            if (ps == 0.0f) {
                p.power_const = 1;
                p.a = p.power == 0.0f ? 1.0f : powf(p.shift, p.power);
            }
        }
        break;
    case ACT_EXP: {
        float base;
        if ((st = ebo_attr_f32(node, "base", -1.0, &base, &raw, err)) != EB_OK ||
            (st = check_base(node, err, raw)) != EB_OK ||
            (st = ebo_attr_f32(node, "scale", 1.0, &p.scale, NULL, err)) != EB_OK ||
            (st = ebo_attr_f32(node, "shift", 0.0, &p.shift, NULL, err)) != EB_OK)
            return st;
        float log_base = base == -1.0f ? 1.0f : logf(base);
        p.a = log_base * p.scale; /* inner */
        if (p.shift == 0.0f)
            p.b = 1.0f;
        else
            p.b = base == -1.0f ? expf(p.shift) : powf(base, p.shift); /* outer */
        break;
    }
    case ACT_LOG: {
        float base;
        if ((st = ebo_attr_f32(node, "base", -1.0, &base, &raw, err)) != EB_OK ||
            (st = check_base(node, err, raw)) != EB_OK)
            return st;
        if (raw == 1.0)
            return eb_node_fail(node, err, EBO_INVALID, "base 1 has no logarithm");
        if ((st = ebo_attr_f32(node, "scale", 1.0, &p.scale, NULL, err)) != EB_OK ||
            (st = ebo_attr_f32(node, "shift", 0.0, &p.shift, NULL, err)) != EB_OK)
            return st;
        p.a = base == -1.0f ? 1.0f : 1.0f / logf(base); /* base_scale */
        break;
    }
    case ACT_THRESHOLD:
        st = ebo_attr_f32(node, "threshold", 0.0, &p.a, NULL, err);
        break;
    case ACT_CLIP:
        if (!eb_attr_has(node, "min") || !eb_attr_has(node, "max"))
            return eb_node_fail(node, err, EBO_INVALID, "attributes 'min' and 'max' are required");
        if ((st = ebo_attr_f32(node, "min", 0.0, &p.a, NULL, err)) != EB_OK ||
            (st = ebo_attr_f32(node, "max", 0.0, &p.b, NULL, err)) != EB_OK)
            return st;
        break;
    default:
        break;
    }
    if (st != EB_OK)
        return st;

    act_params *out = (act_params *)malloc(sizeof *out);
    if (!out)
        return eb_node_fail(node, err, EB_ERR_OUT_OF_MEMORY, "out of memory");
    *out = p;
    node->params = out;
    node->scratch_bytes = 0;
    return EB_OK;
}

#define EBO_ACT(Type, KIND)                                                                     \
    static eb_status prepare_##Type(eb_node *node, eb_error *err)                               \
    {                                                                                           \
        return act_prepare(node, err, KIND);                                                    \
    }                                                                                           \
    const eb_op_kernel eb_kernel_##Type = {#Type, prepare_##Type, act_run};

EBO_ACT(ReLU, ACT_RELU)
EBO_ACT(PReLU, ACT_PRELU)
EBO_ACT(ELU, ACT_ELU)
EBO_ACT(Sigmoid, ACT_SIGMOID)
EBO_ACT(TanH, ACT_TANH)
EBO_ACT(AbsVal, ACT_ABSVAL)
EBO_ACT(BNLL, ACT_BNLL)
EBO_ACT(Power, ACT_POWER)
EBO_ACT(Exp, ACT_EXP)
EBO_ACT(Log, ACT_LOG)
EBO_ACT(Threshold, ACT_THRESHOLD)
EBO_ACT(Clip, ACT_CLIP)
EBO_ACT(Dropout, ACT_DROPOUT)
