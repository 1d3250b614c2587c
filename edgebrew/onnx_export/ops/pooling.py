"""Pooling -> MaxPool / AveragePool with explicit geometry (never ceil_mode), exactly Caffe's.

Caffe's output size (ceil, then the clip of a last window starting in the padding) is computed
once, and ONNX gets pads that produce exactly those windows under floor rounding: the end pad is
whatever the last window needs, ``e = (out - 1) * s + k - H - p`` (a too-long floor output is
sliced). So ceil_mode, whose ONNX/ORT rules differ between versions, is never used.

MAX: ONNX MaxPool skips padding like Caffe's clipped window. AVE divisors, Caffe's rule being
"the window clipped to the padded input ``[-p, H + p)``":

* no window passes ``H + p`` (``e <= p``, the usual case): AveragePool(count_include_pad=1),
  whose divisor is the whole kernel, as Caffe's;
* a ceil-mode window overhangs the padding, pad 0: AveragePool(count_include_pad=0) with end
  pad ``e``; the divisor counts the in-input part only, as Caffe's;
* overhang with pad > 0: an explicit zero Pad by ``p`` first (Caffe counts that padding), then
  AveragePool(count_include_pad=0) with end pad ``e - p``: the divisor is the window clipped to
  ``[-p, H + p)`` and the zeros add nothing to the sum.

With no padding, stride > kernel and ceil rounding, Caffe's last windows can lie wholly past the
input: it outputs ``-FLT_MAX`` (MAX) and ``0 / pool_size`` (AVE: NaN, -0 or 0). The pooling then
covers the windows that touch the input, and a Pad (MAX: -FLT_MAX; AVE: 0 then a Mul by a constant
of 1, -1 or NaN per window) appends those values.
"""
from __future__ import annotations

import numpy as np

from ...ir.ops.pooling import pooling_geometry
from ..builders import slice_
from ..registry import maps

FLT_MAX = float(np.finfo(np.float32).max)


def _ceil_div(a, b):
    return -((-a) // b)


@maps("Pooling", attrs=("method", "kernel", "stride", "pad", "global_pooling", "round_mode"))
def pooling(ctx, node):
    a, x, out = node.attrs, node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    size = shape[2:]
    kernel, stride, pad, outs = pooling_geometry(a, size)
    is_max = a["method"] == "MAX"
    if a["global_pooling"]:
        ctx.emit("GlobalMaxPool" if is_max else "GlobalAveragePool", [x], out)
        return
    # Windows that touch the input (all of them when any pad is set: Caffe's clip sees to it).
    valid = [min(outs[i], _ceil_div(size[i] + pad[i], stride[i])) for i in range(2)]
    ext = [(valid[i] - 1) * stride[i] + kernel[i] - size[i] - pad[i] for i in range(2)]
    tail = any(valid[i] != outs[i] for i in range(2))
    pool_out = ctx.fresh("pooled") if tail else out
    common = dict(kernel_shape=list(kernel), strides=list(stride))

    if is_max:
        pads = [pad[0], pad[1], max(ext[0], 0), max(ext[1], 0)]
        onnx_size = [(size[i] + pads[i] + pads[i + 2] - kernel[i]) // stride[i] + 1
                     for i in range(2)]
        y = _maybe_sliced(ctx, "MaxPool", [x], pool_out, onnx_size, valid, pads=pads, **common)
        if tail:
            ctx.emit("Pad", [y, _tail_pads(ctx, outs, valid), ctx.scalar(-FLT_MAX, "neg_flt_max")],
                     out, mode="constant")
        return

    src = x
    if all(ext[i] <= pad[i] for i in range(2)):
        pads = [pad[0], pad[1], max(ext[0], 0), max(ext[1], 0)]
        include = 1
    elif pad == (0, 0):
        pads = [0, 0, max(ext[0], 0), max(ext[1], 0)]
        include = 0
    else:
        src = ctx.emit("Pad", [x, ctx.ints([0, 0, pad[0], pad[1], 0, 0, pad[0], pad[1]], "pads"),
                               ctx.scalar(0.0, "zero")], ctx.fresh("padded"), mode="constant")
        size = (size[0] + 2 * pad[0], size[1] + 2 * pad[1])
        ext = [ext[i] - pad[i] for i in range(2)]
        pads = [0, 0, max(ext[0], 0), max(ext[1], 0)]
        include = 0
    onnx_size = [(size[i] + pads[i] + pads[i + 2] - kernel[i]) // stride[i] + 1 for i in range(2)]
    y = _maybe_sliced(ctx, "AveragePool", [src], pool_out, onnx_size, valid, pads=pads,
                      count_include_pad=include, **common)
    if tail:
        padded = ctx.emit("Pad", [y, _tail_pads(ctx, outs, valid), ctx.scalar(0.0, "zero")],
                          ctx.fresh("tail_padded"), mode="constant")
        ctx.emit("Mul", [padded, ctx.const(_tail_factors(shape[2:], kernel, stride, outs, valid),
                                           "tail_factor")], out)


def _maybe_sliced(ctx, op, inputs, out, onnx_size, valid, **attrs):
    if list(onnx_size) == list(valid):
        return ctx.emit(op, inputs, out, **attrs)
    y = ctx.emit(op, inputs, ctx.fresh(op.lower()), **attrs)
    return slice_(ctx, y, [0, 0], valid, [2, 3], out=out)


def _tail_pads(ctx, outs, valid):
    return ctx.ints([0, 0, 0, 0, 0, 0, outs[0] - valid[0], outs[1] - valid[1]], "tail_pads")


def _tail_factors(size, kernel, stride, outs, valid):
    """(1, 1, OH, OW): 1 for windows touching the input; for the others (pad is 0 there) the
    sign of Caffe's pool_size, NaN where it is 0, so that ``0 * factor == 0 / pool_size``."""
    sizes = []
    for i in range(2):
        start = np.arange(outs[i]) * stride[i]
        sizes.append(np.minimum(start + kernel[i], size[i]) - start)
    pool_size = np.outer(sizes[0], sizes[1]).astype(np.float64)
    with np.errstate(invalid="ignore"):
        f = np.where(pool_size == 0, np.nan, np.sign(pool_size))
    f[:valid[0], :valid[1]] = 1.0
    return f.astype(np.float32)[None, None]
