"""InnerProduct (Caffe's InnerProductLayer): a fully connected layer over a flattened tail.

The input is viewed as ``(M, K)`` with ``M = prod(shape[:axis])`` and ``K = prod(shape[axis:])``;
the output has shape ``shape[:axis] + (num_output,)``. Weights: ``(num_output, K)``, or
``(K, num_output)`` when ``transpose``; bias ``(num_output,)`` when ``bias_term``.

After optimization it may carry a fused activation (see ``activations.py``), applied after the
bias; a fused PReLU adds a last blob ``slope`` with one value per channel of the output's axis 1.
"""
from __future__ import annotations

import math

from .activations import (FUSED_ACTIVATION_ATTRS, apply_fused_activation,
                          check_fused_activation, has_fused_prelu)
from .base import Attr, OpDef, canonical_axis, register


@register
class InnerProduct(OpDef):
    type = "InnerProduct"
    attrs = (
        Attr("num_output"),
        Attr("bias_term", True),
        Attr("axis", 1, "first flattened axis; negative counts from the end"),
        Attr("transpose", False, "weight stored as (K, N) instead of (N, K)"),
    ) + FUSED_ACTIVATION_ATTRS
    weights = ("weight", "bias", "slope")

    def num_weights(self, node):
        return len(self.weight_names(node))

    def weight_names(self, node):
        return (["weight"] + (["bias"] if node.attrs.get("bias_term", True) else [])
                + (["slope"] if has_fused_prelu(node) else []))

    def _split(self, node, in_shape):
        n = node.attrs["num_output"]
        if int(n) <= 0:
            raise self.shape_error(node, f"num_output must be positive, got {n}")
        axis = canonical_axis(node, node.attrs["axis"], len(in_shape), self)
        return axis, math.prod(in_shape[:axis]), math.prod(in_shape[axis:])

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        axis, _, _ = self._split(node, s)
        out = tuple(s[:axis]) + (node.attrs["num_output"],)
        check_fused_activation(self, node, out)
        return [out]

    def weight_shapes(self, node, input_shapes):
        a = node.attrs
        s = input_shapes[0]
        axis, _, k = self._split(node, s)
        n = a["num_output"]
        shapes = [(k, n) if a["transpose"] else (n, k)]
        if a["bias_term"]:
            shapes.append((n,))
        if has_fused_prelu(node):
            out = tuple(s[:axis]) + (n,)
            shapes.append((out[1] if len(out) > 1 else n,))
        return shapes

    def run(self, node, inputs, weights):
        a = node.attrs
        x = inputs[0]
        axis, m, k = self._split(node, x.shape)
        w = weights[0].astype(x.dtype, copy=False)
        y = x.reshape(m, k) @ (w if a["transpose"] else w.T)
        if a["bias_term"]:
            y += weights[1].astype(x.dtype, copy=False).reshape(1, -1)
        y = y.reshape(tuple(x.shape[:axis]) + (a["num_output"],))
        return [apply_fused_activation(node, y, weights[-1] if has_fused_prelu(node) else None)]

    def macs(self, node, input_shapes, output_shapes):
        s = input_shapes[0]
        axis, m, k = self._split(node, s)
        per_image = m // s[0] if axis >= 1 else 1   # axis 0 flattens the batch into K
        return per_image * node.attrs["num_output"] * k
