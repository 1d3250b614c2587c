"""Convolution and Deconvolution (Caffe's ConvolutionLayer / DeconvolutionLayer), 2-D.

Geometry attributes are pairs (h, w): the importer resolves Caffe's kernel_size / kernel_h /
kernel_w forms. Weights: Convolution ``(num_output, C/group, kh, kw)``, Deconvolution
``(C, num_output/group, kh, kw)``; bias ``(num_output,)`` when ``bias_term``.

After optimization an op may carry a fused activation (``activation`` and its attributes, see
``activations.py``), applied after the bias; a fused PReLU adds a last blob ``slope``
``(num_output,)``.
"""
from __future__ import annotations

import numpy as np

from .activations import (FUSED_ACTIVATION_ATTRS, apply_fused_activation,
                          check_fused_activation, has_fused_prelu)
from .base import Attr, OpDef, register

_GEOMETRY = (
    Attr("num_output"),
    Attr("kernel"),                 # (kh, kw)
    Attr("stride", (1, 1)),
    Attr("pad", (0, 0)),
    Attr("dilation", (1, 1)),
    Attr("group", 1),
    Attr("bias_term", True),
) + FUSED_ACTIVATION_ATTRS


def conv_out_size(size, k, s, p, d):
    """Caffe's convolution output size (floor)."""
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def deconv_out_size(size, k, s, p, d):
    return s * (size - 1) + d * (k - 1) + 1 - 2 * p


class _ConvBase(OpDef):
    attrs = _GEOMETRY
    weights = ("weight", "bias", "slope")

    def num_weights(self, node):
        return len(self.weight_names(node))

    def weight_names(self, node):
        return (["weight"] + (["bias"] if node.attrs.get("bias_term", True) else [])
                + (["slope"] if has_fused_prelu(node) else []))

    def _weight_shapes(self, node, first):
        a = node.attrs
        shapes = [first] + ([(a["num_output"],)] if a["bias_term"] else [])
        return shapes + ([(a["num_output"],)] if has_fused_prelu(node) else [])

    def _finish(self, node, y, weights):
        """Bias, then the fused activation."""
        if node.attrs["bias_term"]:
            y += weights[1].reshape(1, -1, 1, 1)
        return apply_fused_activation(node, y, weights[-1] if has_fused_prelu(node) else None)

    def _check(self, node, in_shape):
        a = node.attrs
        if len(in_shape) != 4:
            raise self.shape_error(node, f"needs a 4-d NCHW input, got {in_shape}")
        g, c, m = a["group"], in_shape[1], a["num_output"]
        if g <= 0 or c % g or m % g:
            raise self.shape_error(node, f"group {g} must divide the input channels {c} and "
                                         f"num_output {m}")
        if min(*a["kernel"], *a["stride"], *a["dilation"]) <= 0 or min(a["pad"]) < 0:
            raise self.shape_error(node, "kernel, stride and dilation must be positive and pad "
                                         "non-negative")


@register
class Convolution(_ConvBase):
    type = "Convolution"

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        self._check(node, s)
        a = node.attrs
        oh, ow = (conv_out_size(s[2 + i], a["kernel"][i], a["stride"][i], a["pad"][i],
                                a["dilation"][i]) for i in range(2))
        out = (s[0], a["num_output"], oh, ow)
        check_fused_activation(self, node, out)
        return [out]

    def weight_shapes(self, node, input_shapes):
        a, c = node.attrs, input_shapes[0][1]
        return self._weight_shapes(node, (a["num_output"], c // a["group"], *a["kernel"]))

    def run(self, node, inputs, weights):
        a = node.attrs
        y = conv2d(inputs[0], weights[0], a["stride"], a["pad"], a["dilation"], a["group"])
        return [self._finish(node, y, weights)]

    def macs(self, node, input_shapes, output_shapes):
        a = node.attrs
        _, m, oh, ow = output_shapes[0]
        kh, kw = a["kernel"]
        return m * oh * ow * (input_shapes[0][1] // a["group"]) * kh * kw


@register
class Deconvolution(_ConvBase):
    type = "Deconvolution"

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        self._check(node, s)
        a = node.attrs
        oh, ow = (deconv_out_size(s[2 + i], a["kernel"][i], a["stride"][i], a["pad"][i],
                                  a["dilation"][i]) for i in range(2))
        out = (s[0], a["num_output"], oh, ow)
        check_fused_activation(self, node, out)
        return [out]

    def weight_shapes(self, node, input_shapes):
        a, c = node.attrs, input_shapes[0][1]
        return self._weight_shapes(node, (c, a["num_output"] // a["group"], *a["kernel"]))

    def run(self, node, inputs, weights):
        a = node.attrs
        y = deconv2d(inputs[0], weights[0], a["num_output"], a["stride"], a["pad"],
                     a["dilation"], a["group"])
        return [self._finish(node, y, weights)]

    def macs(self, node, input_shapes, output_shapes):
        a = node.attrs
        _, c, h, w = input_shapes[0]
        kh, kw = a["kernel"]
        return c * h * w * (a["num_output"] // a["group"]) * kh * kw


def conv2d(x, w, stride, pad, dilation, group):
    """Grouped, dilated 2-D cross-correlation via im2col and one batched matmul."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    oh = conv_out_size(h, kh, sh, ph, dh)
    ow = conv_out_size(wd, kw, sw, pw, dw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            r, q = i * dh, j * dw
            cols[:, :, i, j] = xp[:, :, r:r + sh * (oh - 1) + 1:sh, q:q + sw * (ow - 1) + 1:sw]
    cols = cols.reshape(n, group, cg * kh * kw, oh * ow)
    wg = w.reshape(1, group, m // group, cg * kh * kw).astype(x.dtype, copy=False)
    return np.matmul(wg, cols).reshape(n, m, oh, ow)


def deconv2d(x, w, num_output, stride, pad, dilation, group):
    """Transposed convolution as Caffe computes it: matmul to columns, then col2im."""
    n, c, h, wd = x.shape
    _, mg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    oh = deconv_out_size(h, kh, sh, ph, dh)
    ow = deconv_out_size(wd, kw, sw, pw, dw)
    cgrp = c // group
    wg = w.reshape(group, cgrp, mg * kh * kw).transpose(0, 2, 1).astype(x.dtype, copy=False)
    cols = np.matmul(wg[None], x.reshape(n, group, cgrp, h * wd))
    cols = cols.reshape(n, group * mg, kh, kw, h, wd)
    full = np.zeros((n, num_output, oh + 2 * ph, ow + 2 * pw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            r, q = i * dh, j * dw
            full[:, :, r:r + sh * (h - 1) + 1:sh, q:q + sw * (wd - 1) + 1:sw] += cols[:, :, i, j]
    return full[:, :, ph:ph + oh, pw:pw + ow]
