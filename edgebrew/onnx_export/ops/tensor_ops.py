"""Tensor plumbing: Concat, Slice, Split, Eltwise, Flatten, Reshape, Crop, Permute, ArgMax,
Reduction.

* Concat -> Concat(axis). Slice -> Split with Caffe's part sizes. Split -> one Identity per top.
* Eltwise SUM -> ``0 + c0*x0 + c1*x1 + ...`` as a chain of Add in bottom order (a coefficient of
  1 needs no Mul; -1 becomes Sub), PROD -> Mul chain, MAX -> Max chain (Caffe keeps the earlier
  value on ties; equal values are the same value). An optimizer-fused activation follows.
* Flatten / Reshape -> Reshape to the IR's output shape, -1 on the batch-scaled axis.
* Crop -> Slice of the cropped axes at Caffe's offsets (axes left whole are not sliced).
* Permute -> Transpose.
* ArgMax -> TopK on the reversed axis (ONNX breaks ties towards the lower index, Caffe towards the
  higher: reversing makes them agree), indices mapped back and cast to float.
* Reduction -> ReduceSum over every axis from ``axis`` (of x, |x| or x*x), times Caffe's coeff
  (``coeff / count`` for MEAN, computed in float32).
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ...ir.ops.base import canonical_axis
from ..builders import (FUSED_ACTIVATION_ATTRS, apply_fused_activation, main_output, reduce_sum,
                        reshape, reshape_to, slice_, unsqueeze)
from ..registry import maps

f32 = np.float32


@maps("Concat", attrs=("axis",))
def concat(ctx, node):
    shape = ctx.shape(node.inputs[0])
    axis = canonical_axis(node, node.attrs["axis"], len(shape), node.op)
    if len(node.inputs) == 1:
        ctx.emit("Identity", node.inputs, node.outputs[0])
        return
    ctx.emit("Concat", node.inputs, node.outputs[0], axis=axis)


@maps("Slice", attrs=("axis", "slice_point"))
def slice_op(ctx, node):
    x = node.inputs[0]
    axis, sizes = node.op._sizes(node, ctx.shape(x))
    if axis in ctx.dynamic_axes(x):
        raise ctx.error(f"slicing axis {axis}, which scales with the batch, has fixed slice "
                        "points: export without dynamic_batch")
    if len(node.outputs) == 1:
        ctx.emit("Identity", [x], node.outputs[0])
        return
    ctx.emit("Split", [x, ctx.ints(sizes, "split")], list(node.outputs), axis=axis)


@maps("Split")
def split(ctx, node):
    for t in node.outputs:
        ctx.emit("Identity", node.inputs, t)


@maps("Eltwise", attrs=("operation", "coeff") + FUSED_ACTIVATION_ATTRS)
def eltwise(ctx, node):
    a, xs = node.attrs, list(node.inputs)
    out = main_output(ctx, node)
    op = a["operation"]
    last = len(xs) - 1
    if op == "SUM":
        coeff = [f32(c) for c in (a["coeff"] or (1.0,) * len(xs))]
        # Caffe starts from 0: 0 + c0*x0 is c0*x0 (up to the sign of a zero).
        y = xs[0] if coeff[0] == 1 else ctx.emit("Mul", [xs[0], ctx.scalar(coeff[0], "coeff")])
        for i in range(1, len(xs)):
            dst = out if i == last else None
            if coeff[i] == 1:
                y = ctx.emit("Add", [y, xs[i]], dst)
            elif coeff[i] == -1:
                y = ctx.emit("Sub", [y, xs[i]], dst)
            else:
                term = ctx.emit("Mul", [xs[i], ctx.scalar(coeff[i], "coeff")])
                y = ctx.emit("Add", [y, term], dst)
    else:
        onnx_op = "Mul" if op == "PROD" else "Max"
        y = xs[0]
        for i in range(1, len(xs)):
            y = ctx.emit(onnx_op, [y, xs[i]], out if i == last else None)
    apply_fused_activation(ctx, node, y, len(ctx.shape(xs[0])))


def _reshape_node(ctx, node):
    reshape(ctx, node.inputs[0], node.outputs[0], node.outputs[0])


maps("Flatten", attrs=("axis", "end_axis"))(_reshape_node)
maps("Reshape", attrs=("shape", "axis", "num_axes"))(_reshape_node)


@maps("Crop", attrs=("axis", "offset"))
def crop(ctx, node):
    x, ref = node.inputs
    s0, s1 = ctx.shape(x), ctx.shape(ref)
    offsets, shape = node.op._plan(node, s0, s1)
    axes = [i for i in range(len(s0)) if offsets[i] != 0 or shape[i] != s0[i]]
    batch = ctx.dynamic_axes(x) | ctx.dynamic_axes(ref)
    if any(i in batch for i in axes):
        raise ctx.error("cropping an axis that scales with the batch: export without "
                        "dynamic_batch")
    if not axes:
        ctx.emit("Identity", [x], node.outputs[0])
        return
    slice_(ctx, x, [offsets[i] for i in axes], [offsets[i] + shape[i] for i in axes], axes,
           out=node.outputs[0])


@maps("Permute", attrs=("order",))
def permute(ctx, node):
    x = node.inputs[0]
    order = node.op.full_order(node, len(ctx.shape(x)))
    if order == sorted(order):
        ctx.emit("Identity", [x], node.outputs[0])
    else:
        ctx.emit("Transpose", [x], node.outputs[0], perm=order)


@maps("ArgMax", attrs=("out_max_val", "top_k", "axis"))
def argmax(ctx, node):
    a, x, out = node.attrs, node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    k, axis = node.op._check(node, shape)
    if axis is not None:
        rows, ax = x, axis
    else:
        rows = reshape_to(ctx, x, [0, -1],
                          ctx.fresh("rows"))
        ax = 1
    dim = shape[axis] if axis is not None else int(np.prod(shape[1:]))
    rev = slice_(ctx, rows, [-1], [-(2 ** 62)], [ax], [-1], out=ctx.fresh("reversed"))
    vals, idx = ctx.emit("TopK", [rev, ctx.ints([k], "k")],
                         [ctx.fresh("values"), ctx.fresh("rev_indices")], axis=ax, largest=1,
                         sorted=1)
    ind = ctx.emit("Sub", [ctx.const(np.array(dim - 1, np.int64), "last", np.int64), idx],
                   ctx.fresh("indices"))
    indf = ctx.emit("Cast", [ind], ctx.fresh("indices_f"), to=TensorProto.FLOAT)
    if axis is not None:
        ctx.emit("Identity", [vals if a["out_max_val"] else indf], out)
        return
    if a["out_max_val"]:
        res = ctx.emit("Concat", [unsqueeze(ctx, indf, [1]), unsqueeze(ctx, vals, [1])],
                       ctx.fresh("stacked"), axis=1)
    else:
        res = unsqueeze(ctx, indf, [1], ctx.fresh("stacked"))
    reshape(ctx, res, out, out)


@maps("Reduction", attrs=("operation", "axis", "coeff"))
def reduction(ctx, node):
    a, x, out = node.attrs, node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    axis = canonical_axis(node, a["axis"], len(shape), node.op)
    op = a["operation"]
    src = x
    if op == "ASUM":
        src = ctx.emit("Abs", [x])
    elif op == "SUMSQ":
        src = ctx.emit("Mul", [x, x])
    coeff = f32(a["coeff"])
    if op == "MEAN":
        coeff = f32(coeff / f32(int(np.prod(shape[axis:]))))
    axes = list(range(axis, len(shape)))
    if coeff == 1:
        reduce_sum(ctx, src, axes, False, out)
    else:
        y = reduce_sum(ctx, src, axes, False, ctx.fresh("sum"))
        ctx.emit("Mul", [y, ctx.scalar(coeff, "coeff")], out)
