"""Softmax -> Softmax(axis): since opset 13 ONNX normalizes along one axis, as Caffe does
(``exp(x - max) / sum``)."""
from __future__ import annotations

from ...ir.ops.base import canonical_axis
from ..registry import maps


@maps("Softmax", attrs=("axis",))
def softmax(ctx, node):
    x = node.inputs[0]
    axis = canonical_axis(node, node.attrs["axis"], len(ctx.shape(x)), node.op)
    ctx.emit("Softmax", [x], node.outputs[0], axis=axis)
