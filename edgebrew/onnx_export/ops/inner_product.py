"""InnerProduct -> [Flatten] -> Gemm -> [Reshape] (plus an optimizer-fused activation).

Caffe views the input as (M, K) with the split at ``axis``; ONNX Flatten(axis) is that view, Gemm
with ``transB = !transpose`` multiplies by the (N, K) or (K, N) blob, and a Reshape restores
``shape[:axis] + (N,)`` when axis != 1 (batch-agnostic: -1 on the batch axis).
"""
from __future__ import annotations

from ...ir.ops.base import canonical_axis
from ..builders import FUSED_ACTIVATION_ATTRS, apply_fused_activation, fused_activation, reshape
from ..registry import maps


@maps("InnerProduct",
      attrs=("num_output", "bias_term", "axis", "transpose") + FUSED_ACTIVATION_ATTRS)
def inner_product(ctx, node):
    a, x, out = node.attrs, node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    axis = canonical_axis(node, a["axis"], len(shape), node.op)
    if axis == 0 and ctx.dynamic_axes(x):
        raise ctx.error("axis 0 flattens the batch into the weight's input size, so the layer "
                        "only fits one batch size: export without dynamic_batch")
    flat = x
    if not (len(shape) == 2 and axis == 1):
        flat = ctx.emit("Flatten", [x], ctx.fresh("flat"), axis=axis)
    inputs = [flat, ctx.weight(node, 0)]
    if a["bias_term"]:
        inputs.append(ctx.weight(node, 1))
    needs_reshape = axis != 1
    has_act = fused_activation(node) is not None
    gemm_out = ctx.fresh("gemm") if needs_reshape else (ctx.fresh("pre_activation") if has_act
                                                        else out)
    y = ctx.emit("Gemm", inputs, gemm_out, transB=0 if a["transpose"] else 1)
    if not needs_reshape:
        apply_fused_activation(ctx, node, y, 2)
    elif has_act:
        # The fused activation sees the op's real output (channels on axis 1).
        r = reshape(ctx, y, out, ctx.fresh("reshaped"))
        apply_fused_activation(ctx, node, r, len(ctx.shape(out)))
    else:
        reshape(ctx, y, out, out)
