"""BatchNorm, Scale, Bias, LRN and MVN (Caffe's normalization layers), CPU semantics.

BatchNorm (inference, global statistics): blobs ``mean (C,)``, ``variance (C,)`` and the moving-
average factor ``(1,)``; ``f = blob2[0] == 0 ? 0 : 1 / blob2[0]``, ``mean = f * blob0``,
``var = f * blob1``, ``y = (x - mean) / sqrt(var + eps)``, channels on axis 1, any rank >= 2.

Scale / Bias: ``y = x * scale (+ bias)`` / ``y = x + bias``, the operand broadcast along
``x.shape[axis : axis + operand.ndim]``. The operand is a weight blob of shape
``x.shape[axis : axis + num_axes]`` (num_axes -1: to the end; 0: a scalar) or, with two inputs,
the second input (then ``num_axes`` is unused and its own shape says which axes it spans).
Scale's blobs are ``[scale, bias]``, or ``[bias]`` when the scale is the second input; Caffe
builds the bias with the same axis and, with a second input, that input's number of axes.

LRN ACROSS_CHANNELS: ``scale = k + alpha / n * sum(x^2 over the n channels centred on c,
zero-padded)``, ``y = x * scale^-beta``. WITHIN_CHANNEL: Caffe composes Power(x^2), an AVE pooling
(kernel n, pad (n-1)/2, stride 1), then ``(1 + alpha * pooled)^-beta``: the shift is 1, so ``k``
is unused, and the pooling divisor is the padded window, i.e. always n*n.

MVN: per (image, channel) — or per image when across_channels — subtract the mean; with
normalize_variance divide by ``sqrt(E[(x - mean)^2]) + eps``. Caffe's MVN reshapes its top with the
legacy 4-axis accessors: an input of fewer than 4 axes gives a ``(N, C, H, W)`` output padded with
1s, and an input of more than 4 axes is an error.
"""
from __future__ import annotations

import numpy as np

from ...errors import GraphError
from .base import Attr, OpDef, canonical_axis, register
from .pooling import ave_pool, pooling_geometry


def _t(x):
    return x.dtype.type


# ------------------------------------------------------------------------------ BatchNorm
@register
class BatchNorm(OpDef):
    type = "BatchNorm"
    attrs = (Attr("eps", 1e-5),)
    weights = ("mean", "variance", "factor")
    elementwise = True          # per-channel affine: the output may overwrite the input

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        if len(s) < 2:
            raise self.shape_error(node, f"needs at least 2 axes (N, C, ...), got {tuple(s)}")
        return [tuple(s)]

    def weight_shapes(self, node, input_shapes):
        c = input_shapes[0][1]
        return [(c,), (c,), (1,)]

    def run(self, node, inputs, weights):
        x = inputs[0]
        t = _t(x)
        mean, var, factor = (w.astype(x.dtype, copy=False) for w in weights)
        f0 = factor.reshape(-1)[0]
        f = t(0) if f0 == 0 else t(1) / f0
        bshape = (1, -1) + (1,) * (x.ndim - 2)
        mean = (f * mean).reshape(bshape)
        std = np.sqrt(f * var + t(node.attrs["eps"])).reshape(bshape)
        with np.errstate(divide="ignore", invalid="ignore"):
            return [(x - mean) / std]


# ------------------------------------------------------------------------------ Scale / Bias
def _span(op, node, x_shape, axis, n_axes):
    """Caffe's (Scale|Bias)Layer::Reshape: the first axis the operand covers, checked."""
    if n_axes == 0:
        return 0
    axis = canonical_axis(node, axis, len(x_shape), op)
    if len(x_shape) < axis + n_axes:
        raise op.shape_error(node, f"an operand of {n_axes} axes starting at axis {axis} "
                                   f"extends past the {len(x_shape)}-axis input")
    return axis


def _param_shape(op, node, x_shape, axis, num_axes):
    """Shape of a parameter blob made by Caffe's LayerSetUp: x_shape[axis : axis + num_axes]."""
    axis = canonical_axis(node, axis, len(x_shape), op)
    if num_axes < -1:
        raise op.shape_error(node, f"num_axes must be -1 or more, got {num_axes}")
    if num_axes == -1:
        return tuple(x_shape[axis:])
    if len(x_shape) < axis + num_axes:
        raise op.shape_error(node, f"num_axes {num_axes} from axis {axis} extends past the "
                                   f"{len(x_shape)}-axis input")
    return tuple(x_shape[axis:axis + num_axes])


def _check_operand(op, node, x_shape, operand_shape, axis, what):
    start = _span(op, node, x_shape, axis, len(operand_shape))
    covered = tuple(x_shape[start:start + len(operand_shape)])
    if covered != tuple(operand_shape):
        raise op.shape_error(node, f"{what} of shape {tuple(operand_shape)} does not match the "
                                   f"input's axes {start}.. {covered} (input {tuple(x_shape)})")


def _broadcast(x, operand, axis):
    """Reshape operand so that it spans x's axes [axis, axis + operand.ndim)."""
    if operand.ndim == 0:
        return operand
    shape = (1,) * axis + operand.shape + (1,) * (x.ndim - axis - operand.ndim)
    return operand.reshape(shape)


@register
class Scale(OpDef):
    type = "Scale"
    attrs = (Attr("axis", 1), Attr("num_axes", 1), Attr("bias_term", False))
    weights = ("scale", "bias")
    max_inputs = 2
    elementwise = True

    def num_weights(self, node):
        return (len(node.inputs) < 2) + bool(node.attrs.get("bias_term", False))

    def weight_names(self, node):
        names = ["scale"] if len(node.inputs) < 2 else []
        return names + (["bias"] if node.attrs.get("bias_term", False) else [])

    def _shapes(self, node, input_shapes):
        """(scale shape, bias shape or None), validated against the input."""
        a, x = node.attrs, input_shapes[0]
        if len(input_shapes) > 1:
            scale = tuple(input_shapes[1])
            bias_axes = len(scale)
        else:
            scale = _param_shape(self, node, x, a["axis"], a["num_axes"])
            bias_axes = a["num_axes"]
        _check_operand(self, node, x, scale, a["axis"], "scale")
        bias = _param_shape(self, node, x, a["axis"], bias_axes) if a["bias_term"] else None
        return scale, bias

    def infer_shapes(self, node, input_shapes):
        self._shapes(node, input_shapes)
        return [tuple(input_shapes[0])]

    def weight_shapes(self, node, input_shapes):
        scale, bias = self._shapes(node, input_shapes)
        shapes = [scale] if len(input_shapes) < 2 else []
        return shapes + ([bias] if bias is not None else [])

    def run(self, node, inputs, weights):
        a, x = node.attrs, inputs[0]
        scale, rest = (inputs[1], weights) if len(inputs) > 1 else (weights[0], weights[1:])
        scale = scale.astype(x.dtype, copy=False)
        axis = _span(self, node, x.shape, a["axis"], scale.ndim)
        y = x * _broadcast(x, scale, axis)
        if a["bias_term"]:
            bias = rest[0].astype(x.dtype, copy=False)
            y += _broadcast(x, bias, _span(self, node, x.shape, a["axis"], bias.ndim))
        return [y]


@register
class Bias(OpDef):
    type = "Bias"
    attrs = (Attr("axis", 1), Attr("num_axes", 1))
    weights = ("bias",)
    max_inputs = 2
    elementwise = True

    def num_weights(self, node):
        return 1 if len(node.inputs) < 2 else 0

    def _shape(self, node, input_shapes):
        a, x = node.attrs, input_shapes[0]
        if len(input_shapes) > 1:
            bias = tuple(input_shapes[1])
        else:
            bias = _param_shape(self, node, x, a["axis"], a["num_axes"])
        _check_operand(self, node, x, bias, a["axis"], "bias")
        return bias

    def infer_shapes(self, node, input_shapes):
        self._shape(node, input_shapes)
        return [tuple(input_shapes[0])]

    def weight_shapes(self, node, input_shapes):
        return [self._shape(node, input_shapes)] if len(input_shapes) < 2 else []

    def run(self, node, inputs, weights):
        x = inputs[0]
        bias = (inputs[1] if len(inputs) > 1 else weights[0]).astype(x.dtype, copy=False)
        axis = _span(self, node, x.shape, node.attrs["axis"], bias.ndim)
        return [x + _broadcast(x, bias, axis)]


# ------------------------------------------------------------------------------ LRN
@register
class LRN(OpDef):
    type = "LRN"
    attrs = (
        Attr("local_size", 5),
        Attr("alpha", 1.0),
        Attr("beta", 0.75),
        Attr("k", 1.0, "unused by WITHIN_CHANNEL, as in Caffe"),
        Attr("norm_region", "ACROSS_CHANNELS", "ACROSS_CHANNELS or WITHIN_CHANNEL"),
    )

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        a = node.attrs
        if len(s) != 4:
            raise self.shape_error(node, f"needs a 4-d NCHW input, got {tuple(s)}")
        n = a["local_size"]
        if n <= 0 or n % 2 != 1:
            raise GraphError(f"layer '{node.name}' (LRN): local_size must be odd, got {n}")
        if a["norm_region"] not in ("ACROSS_CHANNELS", "WITHIN_CHANNEL"):
            raise GraphError(f"layer '{node.name}' (LRN): unknown norm_region "
                             f"{a['norm_region']!r}")
        return [tuple(s)]

    def run(self, node, inputs, weights):
        a, x = node.attrs, inputs[0]
        t = _t(x)
        n, alpha, beta = a["local_size"], t(a["alpha"]), t(a["beta"])
        if a["norm_region"] == "ACROSS_CHANNELS":
            scale = lrn_across_scale(x, n, alpha, t(a["k"]))
        else:
            pad = (n - 1) // 2
            geom = dict(global_pooling=False, kernel=(n, n), stride=(1, 1), pad=(pad, pad),
                        round_mode="CEIL")
            kernel, stride, padp, out = pooling_geometry(geom, x.shape[2:])
            pooled = ave_pool(x * x, kernel, stride, padp, out)
            if alpha * -beta == 0:      # Caffe's Power layer ignores its input: the factor is 1
                return [x * t(1)]
            scale = pooled * alpha + t(1)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return [x * np.power(scale, -beta)]


def lrn_across_scale(x, n, alpha, k):
    """k + alpha/n * the sum of squares over the n channels centred on each channel.

    Accumulated as Caffe's CPU code does: the first channel's window summed term by term, then a
    running sum (add the entering channel, subtract the leaving one)."""
    c = x.shape[1]
    pre = (n - 1) // 2
    t = _t(x)
    sq = np.zeros((x.shape[0], c + n - 1) + x.shape[2:], dtype=x.dtype)
    sq[:, pre:pre + c] = x * x
    aos = alpha / t(n)
    scale = np.empty_like(x)
    acc = np.full((x.shape[0],) + x.shape[2:], k, dtype=x.dtype)
    for j in range(n):
        acc += aos * sq[:, j]
    scale[:, 0] = acc
    for ch in range(1, c):
        acc = acc + aos * sq[:, ch + n - 1]
        acc = acc + (-aos) * sq[:, ch - 1]
        scale[:, ch] = acc
    return scale


# ------------------------------------------------------------------------------ MVN
@register
class MVN(OpDef):
    type = "MVN"
    attrs = (
        Attr("normalize_variance", True),
        Attr("across_channels", False),
        Attr("eps", 1e-9),
    )

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        if not 1 <= len(s) <= 4:
            raise self.shape_error(node, "Caffe's MVN handles inputs of at most 4 axes (its "
                                         f"legacy N, C, H, W accessors), got {tuple(s)}")
        return [tuple(s) + (1,) * (4 - len(s))]

    def run(self, node, inputs, weights):
        a, x = node.attrs, inputs[0]
        t = _t(x)
        x4 = x.reshape(tuple(x.shape) + (1,) * (4 - x.ndim))
        groups = x4.shape[0] if a["across_channels"] else x4.shape[0] * x4.shape[1]
        flat = x4.reshape(groups, -1)
        dim = flat.shape[1]
        inv_dim = t(1) / t(dim)
        centred = flat - (flat.sum(axis=1, keepdims=True) * inv_dim)
        if a["normalize_variance"]:
            var = (centred * centred).sum(axis=1, keepdims=True) * inv_dim
            std = np.sqrt(var) + t(a["eps"])
            with np.errstate(divide="ignore", invalid="ignore"):
                centred = centred / std
        return [centred.reshape(x4.shape)]
