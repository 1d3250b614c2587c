"""BatchNorm, Scale, Bias, LRN, MVN.

* BatchNorm -> BatchNormalization with Caffe's statistics already divided by the moving-average
  factor (``f = factor == 0 ? 0 : 1 / factor``, in float32 as Caffe), scale 1, bias 0, epsilon eps.
* Scale -> Mul [+ Add], Bias -> Add: the operand reshaped to span the input's axes
  ``[axis, axis + operand.ndim)`` (trailing unit axes); a second-input operand is Unsqueezed,
  which keeps it batch-agnostic.
* LRN ACROSS_CHANNELS -> LRN(size=n, alpha, beta, bias=k): ONNX sums the squares over channels
  ``[c - (n-1)/2, c + (n-1)/2]`` and divides by ``(k + alpha/n * sum)^beta``: Caffe's window and
  formula for odd n.
* LRN WITHIN_CHANNEL -> Caffe's own composition: ``x * (1 + alpha * AvgPool(x*x))^-beta``, the
  pooling n x n, stride 1, pad (n-1)/2, divisor always n*n (count_include_pad=1).
* MVN -> ReduceSum-based mean (Caffe multiplies by 1/count, so do we) and variance.
"""
from __future__ import annotations

import numpy as np

from ...ir.ops.base import canonical_axis
from ..builders import broadcast_shape, reduce_sum, unsqueeze
from ..registry import maps

f32 = np.float32


@maps("BatchNorm", attrs=("eps",))
def batch_norm(ctx, node):
    mean, var, factor = (ctx.weight_array(node, i) for i in range(3))
    f0 = factor.reshape(-1)[0]
    f = f32(0) if f0 == 0 else f32(1) / f0
    c = mean.shape[0]
    ctx.emit("BatchNormalization",
             [node.inputs[0], ctx.const(np.ones(c, f32), "bn_scale"),
              ctx.const(np.zeros(c, f32), "bn_bias"),
              ctx.weight(node, 0, (f * mean).astype(f32)),
              ctx.weight(node, 1, (f * var).astype(f32))],
             node.outputs[0], epsilon=float(f32(node.attrs["eps"])))


def _span_start(ctx, node, rank, axis, n_axes):
    return 0 if n_axes == 0 else canonical_axis(node, axis, rank, node.op)


def _operand(ctx, node, rank, axis, weight_index=None, tensor=None):
    """The operand (a weight blob or a second input) shaped to broadcast against the input."""
    if tensor is not None:
        oshape = ctx.shape(tensor)
        start = _span_start(ctx, node, rank, axis, len(oshape))
        if start in ctx.dynamic_axes(node.inputs[0]) and 0 not in ctx.dynamic_axes(tensor):
            raise ctx.error("the operand spans the batch axis but does not scale with it")
        trailing = rank - start - len(oshape)
        return unsqueeze(ctx, tensor, range(len(oshape), len(oshape) + trailing),
                         ctx.fresh("operand")) if trailing else tensor
    w = ctx.weight_array(node, weight_index)
    start = _span_start(ctx, node, rank, axis, w.ndim)
    if w.ndim and start in ctx.dynamic_axes(node.inputs[0]):
        raise ctx.error(f"the weight blob {w.shape} spans the batch axis (axis {start}): the "
                        "layer only fits one batch size")
    return ctx.weight(node, weight_index, w.reshape(broadcast_shape(w.shape, start, rank)))


@maps("Scale", attrs=("axis", "num_axes", "bias_term"))
def scale(ctx, node):
    a, x, out = node.attrs, node.inputs[0], node.outputs[0]
    rank = len(ctx.shape(x))
    if len(node.inputs) > 1:
        s = _operand(ctx, node, rank, a["axis"], tensor=node.inputs[1])
        bias_index = 0
    else:
        s = _operand(ctx, node, rank, a["axis"], weight_index=0)
        bias_index = 1
    if not a["bias_term"]:
        ctx.emit("Mul", [x, s], out)
        return
    y = ctx.emit("Mul", [x, s], ctx.fresh("scaled"))
    ctx.emit("Add", [y, _operand(ctx, node, rank, a["axis"], weight_index=bias_index)], out)


@maps("Bias", attrs=("axis", "num_axes"))
def bias(ctx, node):
    a, x = node.attrs, node.inputs[0]
    rank = len(ctx.shape(x))
    if len(node.inputs) > 1:
        b = _operand(ctx, node, rank, a["axis"], tensor=node.inputs[1])
    else:
        b = _operand(ctx, node, rank, a["axis"], weight_index=0)
    ctx.emit("Add", [x, b], node.outputs[0])


@maps("LRN", attrs=("local_size", "alpha", "beta", "k", "norm_region"))
def lrn(ctx, node):
    a, x, out = node.attrs, node.inputs[0], node.outputs[0]
    n, alpha, beta = int(a["local_size"]), f32(a["alpha"]), f32(a["beta"])
    if a["norm_region"] == "ACROSS_CHANNELS":
        ctx.emit("LRN", [x], out, size=n, alpha=float(alpha), beta=float(beta),
                 bias=float(f32(a["k"])))
        return
    if alpha * -beta == 0:          # Caffe's Power layer then ignores its input: factor 1
        ctx.emit("Identity", [x], out)
        return
    p = (n - 1) // 2
    sq = ctx.emit("Mul", [x, x], ctx.fresh("square"))
    pooled = ctx.emit("AveragePool", [sq], ctx.fresh("pooled"), kernel_shape=[n, n],
                      strides=[1, 1], pads=[p, p, p, p], count_include_pad=1)
    s = ctx.emit("Add", [ctx.emit("Mul", [pooled, ctx.scalar(alpha, "alpha")]),
                         ctx.scalar(1.0, "one")], ctx.fresh("scale"))
    factor = ctx.emit("Pow", [s, ctx.scalar(-beta, "neg_beta")], ctx.fresh("factor"))
    ctx.emit("Mul", [x, factor], out)


@maps("MVN", attrs=("normalize_variance", "across_channels", "eps"))
def mvn(ctx, node):
    a, x, out = node.attrs, node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    x4 = x
    if len(shape) < 4:                  # Caffe's top is (N, C, H, W) with unit axes added
        x4 = unsqueeze(ctx, x, range(len(shape), 4), ctx.fresh("x4"))
    s4 = tuple(shape) + (1,) * (4 - len(shape))
    axes = [1, 2, 3] if a["across_channels"] else [2, 3]
    inv_dim = f32(1) / f32(int(np.prod([s4[i] for i in axes])))
    mean = ctx.emit("Mul", [reduce_sum(ctx, x4, axes, True), ctx.scalar(inv_dim, "inv_dim")],
                    ctx.fresh("mean"))
    if not a["normalize_variance"]:
        ctx.emit("Sub", [x4, mean], out)
        return
    centred = ctx.emit("Sub", [x4, mean], ctx.fresh("centred"))
    var = ctx.emit("Mul", [reduce_sum(ctx, ctx.emit("Mul", [centred, centred]), axes, True),
                           ctx.scalar(inv_dim, "inv_dim")], ctx.fresh("variance"))
    std = ctx.emit("Add", [ctx.emit("Sqrt", [var]), ctx.scalar(f32(a["eps"]), "eps")],
                   ctx.fresh("std"))
    ctx.emit("Div", [centred, std], out)
