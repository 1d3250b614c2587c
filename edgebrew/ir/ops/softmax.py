"""Softmax (Caffe's SoftmaxLayer) along ``axis`` (default 1, negative counts from the end).

As Caffe computes it: subtract the maximum along the axis, exponentiate, divide by the sum.
"""
from __future__ import annotations

import numpy as np

from .base import Attr, OpDef, canonical_axis, register


@register
class Softmax(OpDef):
    type = "Softmax"
    attrs = (Attr("axis", 1),)

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        canonical_axis(node, node.attrs["axis"], len(s), self)
        return [tuple(s)]

    def run(self, node, inputs, weights):
        x = inputs[0]
        axis = canonical_axis(node, node.attrs["axis"], x.ndim, self)
        with np.errstate(under="ignore"):
            e = np.exp(x - x.max(axis=axis, keepdims=True))
            return [e / e.sum(axis=axis, keepdims=True)]
