"""Small subgraph builders shared by the op mappings: reshapes that stay batch-agnostic,
unsqueeze/slice helpers, broadcast shapes, and the activation an optimizer fused into a node."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .registry import FUSED_ACTIVATION_ATTRS  # noqa: F401  (re-exported for the op modules)


def reshape_target(ctx, out_tensor: str, out_shape: Sequence[int] | None = None) -> list[int]:
    """The Reshape target for a result shaped like IR tensor ``out_tensor``: its static dims,
    with -1 on the one axis that scales with the batch, so the same Reshape is right at any
    batch size. A result with two batch-scaled axes has no such target (dynamic batch only)."""
    shape = list(ctx.shape(out_tensor) if out_shape is None else out_shape)
    axes = sorted(ctx.batch_axes(out_tensor))
    if len(axes) > 1:
        if ctx.dynamic_batch:
            raise ctx.error(f"the result {tuple(shape)} has several axes {axes} that scale with "
                            "the batch: no Reshape target fits every batch size")
        return shape
    for a in axes:
        shape[a] = -1
    return shape


def reshape(ctx, x: str, out_tensor: str, out: str | None = None, out_shape=None) -> str:
    """Reshape ``x`` to IR tensor ``out_tensor``'s shape (batch-agnostic); writes ``out``."""
    target = reshape_target(ctx, out_tensor, out_shape)
    return ctx.emit("Reshape", [x, ctx.ints(target, "shape")], out)


def reshape_to(ctx, x: str, target: Sequence[int], out: str | None = None) -> str:
    """Reshape with an explicit ONNX target (0 copies, -1 infers)."""
    return ctx.emit("Reshape", [x, ctx.ints(target, "shape")], out)


def unsqueeze(ctx, x: str, axes: Sequence[int], out: str | None = None) -> str:
    return ctx.emit("Unsqueeze", [x, ctx.ints(axes, "axes")], out)


def slice_(ctx, x: str, starts, ends, axes, steps=None, out: str | None = None) -> str:
    inputs = [x, ctx.ints(starts, "starts"), ctx.ints(ends, "ends"), ctx.ints(axes, "axes")]
    if steps is not None:
        inputs.append(ctx.ints(steps, "steps"))
    return ctx.emit("Slice", inputs, out)


def reduce_sum(ctx, x: str, axes: Sequence[int], keepdims: bool, out: str | None = None) -> str:
    """ReduceSum (axes as an input: opset 13 and later)."""
    return ctx.emit("ReduceSum", [x, ctx.ints(axes, "axes")], out, keepdims=int(keepdims))


def broadcast_shape(operand_shape: Sequence[int], axis: int, rank: int) -> tuple[int, ...]:
    """Shape that makes an operand spanning axes [axis, axis + len) of a rank-``rank`` tensor
    broadcast in NumPy/ONNX style (trailing unit axes; leading ones are implied)."""
    operand_shape = tuple(int(d) for d in operand_shape)
    if not operand_shape:
        return ()
    return operand_shape + (1,) * (rank - axis - len(operand_shape))


def channel_shape(array: np.ndarray, rank: int) -> np.ndarray:
    """A per-channel (axis 1) vector reshaped to broadcast over a rank-``rank`` tensor; a
    0-axis or 1-element 'shared' value stays a scalar."""
    a = np.asarray(array, np.float32)
    if a.ndim == 0:
        return a
    return a.reshape((-1,) + (1,) * (rank - 2))


# ------------------------------------------------------------------ fused activations
FUSED_ACTIVATIONS = (None, "ReLU", "PReLU", "Clip", "Sigmoid", "TanH")


def fused_activation(node):
    """The activation an optimizer fused into ``node`` (None when there is none)."""
    act = node.attrs.get("activation")
    if act not in FUSED_ACTIVATIONS:
        raise_unsupported_activation(node, act)
    return act


def raise_unsupported_activation(node, act):
    from .context import OnnxExportError
    raise OnnxExportError(f"ONNX export: layer '{node.name}' ({node.op_type}): fused activation "
                          f"{act!r} is not one of {[a for a in FUSED_ACTIVATIONS if a]}")


def main_output(ctx, node) -> str:
    """Where a node with an optional fused activation writes its main op's result: the node's
    output itself, or a fresh tensor that the activation then reads."""
    return node.outputs[0] if fused_activation(node) is None else ctx.fresh("pre_activation")


def apply_fused_activation(ctx, node, x: str, rank: int) -> str:
    """Emit the fused activation of ``node`` from ``x`` into ``node.outputs[0]`` (identity when
    there is none: then ``x`` already is the output). Each follows the IR op of that name."""
    act, out, a = fused_activation(node), node.outputs[0], node.attrs
    if act is None:
        return x
    if act == "ReLU":
        slope = float(np.float32(a.get("negative_slope", 0.0) or 0.0))
        if slope == 0.0:
            return ctx.emit("Relu", [x], out)
        return ctx.emit("LeakyRelu", [x], out, alpha=slope)
    if act == "PReLU":
        slope = channel_shape(ctx.weight_array(node, len(node.weights) - 1), rank)
        if slope.size == 1:
            slope = slope.reshape(())
        return ctx.emit("PRelu", [x, ctx.weight(node, len(node.weights) - 1, slope)], out)
    if act == "Clip":
        return clip(ctx, x, a.get("clip_min"), a.get("clip_max"), out)
    if act == "Sigmoid":
        return ctx.emit("Sigmoid", [x], out)
    return ctx.emit("Tanh", [x], out)


def clip(ctx, x: str, lo, hi, out: str) -> str:
    """Caffe's Clip: ``max(lo, min(x, hi))`` (so lo wins when lo > hi). ONNX Clip when
    lo <= hi (ORT can fuse it), else Min then Max in Caffe's order."""
    lo = np.float32(-np.finfo(np.float32).max if lo is None else lo)
    hi = np.float32(np.finfo(np.float32).max if hi is None else hi)
    if lo <= hi:
        return ctx.emit("Clip", [x, ctx.scalar(lo, "clip_min"), ctx.scalar(hi, "clip_max")], out)
    y = ctx.emit("Min", [x, ctx.scalar(hi, "clip_max")])
    return ctx.emit("Max", [y, ctx.scalar(lo, "clip_min")], out)
