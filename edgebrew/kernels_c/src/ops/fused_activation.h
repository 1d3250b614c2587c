/* Activations the optimizer fused into Convolution, Deconvolution, InnerProduct and Eltwise
 * (attributes `activation`, `negative_slope`, `clip_min`, `clip_max`; a fused PReLU's slopes are
 * the op's last weight blob, one per channel of axis 1). Declared in edgebrew/ir/ops/activations.py.
 *
 * prepare: ebo_fused_act_prepare() reads and checks them; the op counts one more weight blob when
 * ebo_fused_act_extra_weights() says so. run: ebo_fused_act_apply() over each contiguous run of
 * output values that share a channel, right after the op wrote them (still in cache).
 */
#ifndef EB_FUSED_ACTIVATION_H
#define EB_FUSED_ACTIVATION_H

#include <string.h>

#include "activation_math.h"
#include "ops_common.h"

enum { EBO_ACT_NONE, EBO_ACT_RELU, EBO_ACT_PRELU, EBO_ACT_CLIP, EBO_ACT_SIGMOID, EBO_ACT_TANH };

typedef struct ebo_fused_act {
    int kind;
    float slope;          /* ReLU */
    float lo, hi;         /* Clip */
    const float *prelu;   /* PReLU: one slope per channel */
} ebo_fused_act;

/* 1 if the node carries a fused PReLU (whose slope blob is its last weight), else 0; -1 on a
 * malformed `activation` attribute (prepare then reports it through ebo_fused_act_prepare). */
static inline int ebo_fused_act_extra_weights(const eb_node *node)
{
    const char *act = NULL;
    eb_error scratch;
    if (eb_attr_string(node, "activation", NULL, &act, &scratch) != EB_OK)
        return -1;
    return act != NULL && strcmp(act, "PReLU") == 0;
}

/* Reads the fused activation of `node`, whose output has `channels` channels on axis 1. */
static inline eb_status ebo_fused_act_prepare(eb_node *node, eb_error *err, int64_t channels,
                                              ebo_fused_act *a)
{
    const char *act = NULL;
    eb_status st = eb_attr_string(node, "activation", NULL, &act, err);
    memset(a, 0, sizeof *a);
    if (st != EB_OK || act == NULL)
        return st;
    if (strcmp(act, "ReLU") == 0) {
        a->kind = EBO_ACT_RELU;
        return ebo_attr_f32(node, "negative_slope", 0.0, &a->slope, NULL, err);
    }
    if (strcmp(act, "Sigmoid") == 0) {
        a->kind = EBO_ACT_SIGMOID;
        return EB_OK;
    }
    if (strcmp(act, "TanH") == 0) {
        a->kind = EBO_ACT_TANH;
        return EB_OK;
    }
    if (strcmp(act, "Clip") == 0) {
        a->kind = EBO_ACT_CLIP;
        if (!eb_attr_has(node, "clip_min") || !eb_attr_has(node, "clip_max"))
            return eb_node_fail(node, err, EBO_INVALID, "a fused Clip needs clip_min and clip_max");
        if ((st = ebo_attr_f32(node, "clip_min", 0.0, &a->lo, NULL, err)) != EB_OK)
            return st;
        return ebo_attr_f32(node, "clip_max", 0.0, &a->hi, NULL, err);
    }
    if (strcmp(act, "PReLU") == 0) {
        const eb_tensor *w = node->n_weights > 0 ? node->weights[node->n_weights - 1] : NULL;
        if (w == NULL || w->dtype != EB_FLOAT32 || !w->is_constant || w->const_data == NULL ||
            w->count != channels)
            return eb_node_fail(node, err, EBO_INVALID, "a fused PReLU needs a float32 slope "
                                "blob of %lld values as its last weight",
                                (long long)channels);
        a->kind = EBO_ACT_PRELU;
        a->prelu = (const float *)w->const_data;
        return EB_OK;
    }
    return eb_node_fail(node, err, EB_ERR_UNSUPPORTED, "unknown fused activation '%s'", act);
}

/* Applies the activation in place to y[0..n), values of channel `channel`. */
static inline void ebo_fused_act_apply(const ebo_fused_act *a, float *y, int64_t n,
                                       int64_t channel)
{
    switch (a->kind) {
    case EBO_ACT_RELU: ebo_relu(y, y, n, a->slope); break;
    case EBO_ACT_PRELU: ebo_relu(y, y, n, a->prelu[channel]); break;
    case EBO_ACT_CLIP: ebo_clip(y, y, n, a->lo, a->hi); break;
    case EBO_ACT_SIGMOID: ebo_sigmoid(y, y, n); break;
    case EBO_ACT_TANH: ebo_tanh(y, y, n); break;
    default: break;
    }
}

/* Applies it to a [channels x inner] block starting at channel `c0` (NCHW planes, or one
 * InnerProduct row with inner = 1). */
static inline void ebo_fused_act_apply_planes(const ebo_fused_act *a, float *y, int64_t c0,
                                              int64_t channels, int64_t inner)
{
    if (a->kind == EBO_ACT_NONE)
        return;
    if (a->kind != EBO_ACT_PRELU) {
        ebo_fused_act_apply(a, y, channels * inner, 0);
        return;
    }
    for (int64_t c = 0; c < channels; c++)
        ebo_fused_act_apply(a, y + c * inner, inner, c0 + c);
}

/* Applies it to y[0..n), the values at flat indices [begin, begin + n) of an output whose
 * axis 1 has `channels` channels of `inner` values each (inner = product of the later axes). */
static inline void ebo_fused_act_apply_flat(const ebo_fused_act *a, float *y, int64_t begin,
                                            int64_t n, int64_t channels, int64_t inner)
{
    if (a->kind == EBO_ACT_NONE)
        return;
    if (a->kind != EBO_ACT_PRELU) {
        ebo_fused_act_apply(a, y, n, 0);
        return;
    }
    for (int64_t i = 0; i < n;) {
        const int64_t flat = begin + i, plane = flat / inner;
        int64_t len = inner - (flat - plane * inner);
        if (len > n - i)
            len = n - i;
        ebo_fused_act_apply(a, y + i, len, plane % channels);
        i += len;
    }
}

#endif
