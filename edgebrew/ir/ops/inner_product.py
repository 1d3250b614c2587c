"""InnerProduct (Caffe's InnerProductLayer): a fully connected layer over a flattened tail.

The input is viewed as ``(M, K)`` with ``M = prod(shape[:axis])`` and ``K = prod(shape[axis:])``;
the output has shape ``shape[:axis] + (num_output,)``. Weights: ``(num_output, K)``, or
``(K, num_output)`` when ``transpose``; bias ``(num_output,)`` when ``bias_term``.
"""
from __future__ import annotations

import math

from .base import Attr, OpDef, canonical_axis, register


@register
class InnerProduct(OpDef):
    type = "InnerProduct"
    attrs = (
        Attr("num_output"),
        Attr("bias_term", True),
        Attr("axis", 1, "first flattened axis; negative counts from the end"),
        Attr("transpose", False, "weight stored as (K, N) instead of (N, K)"),
    )
    weights = ("weight", "bias")

    def num_weights(self, node):
        return 2 if node.attrs.get("bias_term", True) else 1

    def _split(self, node, in_shape):
        n = node.attrs["num_output"]
        if int(n) <= 0:
            raise self.shape_error(node, f"num_output must be positive, got {n}")
        axis = canonical_axis(node, node.attrs["axis"], len(in_shape), self)
        return axis, math.prod(in_shape[:axis]), math.prod(in_shape[axis:])

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        axis, _, _ = self._split(node, s)
        return [tuple(s[:axis]) + (node.attrs["num_output"],)]

    def weight_shapes(self, node, input_shapes):
        a = node.attrs
        _, _, k = self._split(node, input_shapes[0])
        n = a["num_output"]
        shapes = [(k, n) if a["transpose"] else (n, k)]
        return shapes + [(n,)] if a["bias_term"] else shapes

    def run(self, node, inputs, weights):
        a = node.attrs
        x = inputs[0]
        axis, m, k = self._split(node, x.shape)
        w = weights[0].astype(x.dtype, copy=False)
        y = x.reshape(m, k) @ (w if a["transpose"] else w.T)
        if a["bias_term"]:
            y += weights[1].astype(x.dtype, copy=False).reshape(1, -1)
        return [y.reshape(tuple(x.shape[:axis]) + (a["num_output"],))]

    def macs(self, node, input_shapes, output_shapes):
        s = input_shapes[0]
        axis, m, k = self._split(node, s)
        per_image = m // s[0] if axis >= 1 else 1   # axis 0 flattens the batch into K
        return per_image * node.attrs["num_output"] * k
