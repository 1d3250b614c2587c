/* Helpers shared by the Convolution, Deconvolution, Pooling, InnerProduct and LRN ops: reading
 * and range-checking attributes and tensors in prepare(), carving per-thread scratch. */
#ifndef EB_OPS_CONV_GEOMETRY_H
#define EB_OPS_CONV_GEOMETRY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "op.h"

/* Upper bound on any geometry attribute (kernel, stride, pad, dilation, local_size): keeps
 * every product of two of them, and of one with a dimension, inside int64. */
#define EB_GEOM_MAX ((int64_t)1 << 30)

static inline size_t eb_align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* An (h, w) pair from an INTS attribute; absent: (d0, d1), or an error when `required`. */
static inline eb_status eb_read_pair(const eb_node *node, const char *key, int required,
                                     int64_t d0, int64_t d1, int64_t out[2], eb_error *err)
{
    if (!eb_attr_has(node, key)) {
        if (required)
            return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "attribute '%s' is required",
                                key);
        out[0] = d0;
        out[1] = d1;
        return EB_OK;
    }
    int64_t v[2];
    int n = 0;
    eb_status s = eb_attr_ints(node, key, v, 2, &n, err);
    if (s != EB_OK) return s;
    if (n != 2)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "attribute '%s' must hold 2 values (h, w), it holds %d", key, n);
    out[0] = v[0];
    out[1] = v[1];
    return EB_OK;
}

/* Both values of a pair in [lo, EB_GEOM_MAX]. */
static inline eb_status eb_check_pair(const eb_node *node, const char *key, const int64_t v[2],
                                      int64_t lo, eb_error *err)
{
    for (int i = 0; i < 2; i++)
        if (v[i] < lo || v[i] > EB_GEOM_MAX)
            return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                                "%s (%lld, %lld) out of range: each must be in [%lld, %lld]", key,
                                (long long)v[0], (long long)v[1], (long long)lo,
                                (long long)EB_GEOM_MAX);
    return EB_OK;
}

/* An INT attribute that must be 0 or 1 (a bool). */
static inline eb_status eb_read_bool(const eb_node *node, const char *key, int dflt, int *out,
                                     eb_error *err)
{
    int64_t v;
    eb_status s = eb_attr_int(node, key, dflt, &v, err);
    if (s != EB_OK) return s;
    if (v != 0 && v != 1)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "attribute '%s' must be 0 or 1 (a bool), got %lld", key,
                            (long long)v);
    *out = (int)v;
    return EB_OK;
}

/* Input/output/weight counts. */
static inline eb_status eb_check_counts(const eb_node *node, int n_in, int n_out, int n_w,
                                        eb_error *err)
{
    if (node->n_inputs != n_in || node->n_outputs != n_out || node->n_weights != n_w)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "needs %d input(s), %d output(s) and %d weight(s), has %d, %d and %d",
                            n_in, n_out, n_w, node->n_inputs, node->n_outputs, node->n_weights);
    return EB_OK;
}

/* A float32 tensor of exactly the given shape; `what` names it in the message. */
static inline eb_status eb_check_shape(const eb_node *node, const eb_tensor *t, const char *what,
                                       int ndim, const int64_t *dims, eb_error *err)
{
    if (t->dtype != EB_FLOAT32)
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED, "%s '%s' is not float32", what,
                            t->name);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->dims[i] == dims[i];
    if (!same) {
        char want[160], have[160];
        size_t a = 0, b = 0;
        want[0] = have[0] = '\0';
        for (int i = 0; i < ndim && a < sizeof(want); i++)
            a += (size_t)snprintf(want + a, sizeof(want) - a, "%s%lld", i ? ", " : "",
                                  (long long)dims[i]);
        for (int i = 0; i < t->ndim && b < sizeof(have); i++)
            b += (size_t)snprintf(have + b, sizeof(have) - b, "%s%lld", i ? ", " : "",
                                  (long long)t->dims[i]);
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "%s '%s' has shape (%s), needs (%s)",
                            what, t->name, have, want);
    }
    return EB_OK;
}

/* A float32 tensor of `ndim` axes (any sizes). */
static inline eb_status eb_check_ndim(const eb_node *node, const eb_tensor *t, const char *what,
                                      int ndim, eb_error *err)
{
    if (t->dtype != EB_FLOAT32)
        return eb_node_fail(node, err, EB_ERR_UNSUPPORTED, "%s '%s' is not float32", what,
                            t->name);
    if (t->ndim != ndim)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "%s '%s' must be %d-d, it is %d-d",
                            what, t->name, ndim, t->ndim);
    return EB_OK;
}


/* The attributes Convolution and Deconvolution share (edgebrew/ir/ops/convolution.py), read and
 * checked with the node's tensor counts (bias and a fused PReLU's slope are extra weights), its
 * 4-d input, num_output's range and group's divisibility. */
typedef struct eb_conv_attrs {
    int64_t num_output, group, kernel[2], stride[2], pad[2], dil[2];
    int bias;
} eb_conv_attrs;

static inline eb_status eb_read_conv_attrs(eb_node *node, int extra_weights, eb_conv_attrs *a,
                                           eb_error *err)
{
    eb_status s;
    a->bias = 1;
    if ((s = eb_attr_int(node, "num_output", 0, &a->num_output, err)) != EB_OK) return s;
    if (!eb_attr_has(node, "num_output"))
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "attribute 'num_output' is required");
    if ((s = eb_read_pair(node, "kernel", 1, 0, 0, a->kernel, err)) != EB_OK) return s;
    if ((s = eb_read_pair(node, "stride", 0, 1, 1, a->stride, err)) != EB_OK) return s;
    if ((s = eb_read_pair(node, "pad", 0, 0, 0, a->pad, err)) != EB_OK) return s;
    if ((s = eb_read_pair(node, "dilation", 0, 1, 1, a->dil, err)) != EB_OK) return s;
    if ((s = eb_attr_int(node, "group", 1, &a->group, err)) != EB_OK) return s;
    if ((s = eb_read_bool(node, "bias_term", 1, &a->bias, err)) != EB_OK) return s;
    if ((s = eb_check_counts(node, 1, 1, (a->bias ? 2 : 1) + extra_weights, err)) != EB_OK)
        return s;
    if ((s = eb_check_pair(node, "kernel", a->kernel, 1, err)) != EB_OK) return s;
    if ((s = eb_check_pair(node, "stride", a->stride, 1, err)) != EB_OK) return s;
    if ((s = eb_check_pair(node, "dilation", a->dil, 1, err)) != EB_OK) return s;
    if ((s = eb_check_pair(node, "pad", a->pad, 0, err)) != EB_OK) return s;
    const eb_tensor *in = node->inputs[0];
    if ((s = eb_check_ndim(node, in, "input", 4, err)) != EB_OK) return s;
    if (a->num_output < 1 || a->num_output > EB_MAX_TENSOR_ELEMS)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE, "num_output %lld out of range",
                            (long long)a->num_output);
    const int64_t c = in->dims[1];
    if (a->group < 1 || c % a->group != 0 || a->num_output % a->group != 0)
        return eb_node_fail(node, err, EB_ERR_INVALID_BUNDLE,
                            "group %lld must divide the input channels %lld and num_output %lld",
                            (long long)a->group, (long long)c, (long long)a->num_output);
    return EB_OK;
}

#endif
