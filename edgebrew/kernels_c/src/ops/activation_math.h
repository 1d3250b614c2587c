/* The activation loops shared by the standalone activation ops (activations.c) and the
 * activations fused into Convolution / Deconvolution / InnerProduct / Eltwise (fused_activation.h),
 * so a fused op computes exactly what the op pair computed.
 *
 * In place: y may be x (same index read then written); the pointers are deliberately not
 * `restrict`. NaN behaves as in edgebrew/ir/ops/activations.py.
 */
#ifndef EB_ACTIVATION_MATH_H
#define EB_ACTIVATION_MATH_H

#include <math.h>
#include <stdint.h>

static inline void ebo_relu(const float *x, float *y, int64_t n, float slope)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float mx = v < 0.0f ? 0.0f : v; /* std::max(v, 0): NaN stays */
        float mn = 0.0f < v ? 0.0f : v; /* std::min(v, 0): NaN stays */
        y[i] = mx + slope * mn;
    }
}

static inline void ebo_sigmoid(const float *x, float *y, int64_t n)
{
    /* Caffe's 0.5 tanh(0.5 x) + 0.5 rewritten: 1 / (1 + exp(-x)) is accurate to a few ulp in
     * float32 everywhere (no cancellation) and costs one expf */
    for (int64_t i = 0; i < n; i++)
        y[i] = 1.0f / (1.0f + expf(-x[i]));
}

static inline void ebo_tanh(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = tanhf(x[i]);
}

static inline void ebo_clip(const float *x, float *y, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        v = hi < v ? hi : v;    /* std::min(v, max) */
        y[i] = lo < v ? v : lo; /* std::max(min, v): a NaN gives min */
    }
}

#endif
