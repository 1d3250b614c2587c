"""The NumPy integer reference of every int8 kernel: the oracle the C int8 kernels must match
bit for bit. Written for clarity; the arithmetic is ``fixed_point``'s.

``run_node(graph, node, inputs, weights)`` runs one node of a quantized graph whose inputs or
outputs are int8 (and Quantize / Dequantize); ``edgebrew.reference.run`` calls it for those.
Quantization parameters come from ``graph.quant`` (see edgebrew/ir/quant_params.py).

Per op (x: int8 input, q params (s, zp); W: int8 per-channel weights, zero point 0; b: int32):

- Quantize / Dequantize: ``fixed_point.quantize_tensor`` / ``dequantize_tensor``.
- Convolution (any stride, pad, dilation, group): acc[c] = b[c] + sum (x - x_zp) * W[c]
  (padding contributes 0, i.e. pads with the real value 0); out = clamp(out_zp +
  MBQM(acc, M_c), activation_range) with M_c = s_x * s_w[c] / s_out. Fused activation: none,
  ReLU (slope 0) or Clip only.
- InnerProduct: the same with K = the flattened input from ``axis``; ``transpose`` false only.
- Pooling: output parameters equal the input's. MAX: the largest q in the window's part inside
  the input (-128 for a window wholly in the padding, as Caffe's -FLT_MAX). AVE: out = zp +
  div_round(sum over the window's in-input part of (x - zp), pool_size) with Caffe's pool_size
  (the window clipped to input + pad) and div_round rounding half away from zero.
- Eltwise SUM (coefficients c_i, default 1): with T = 2 * max_i(|c_i| s_i) (double),
  M_i = |c_i| s_i / T and M_out = T / (2^20 s_out):
  raw = saturate_int32(sum_i sign(c_i) * MBQM((x_i - zp_i) * 2^20, M_i)),
  out = clamp(out_zp + MBQM(raw, M_out), activation_range). (Inputs with c_i == 0 are skipped.)
  Eltwise MAX: out = clamp(max_i rescale(x_i -> out grid), activation_range). PROD: no int8 form.
- Concat: each input rescaled onto the output's grid (a copy when the grids are equal).
- ReLU (negative_slope 0): output parameters equal the input's; out = max(x, zp).
- Flatten, Reshape, Split, Slice, Dropout: the bytes as they are; output parameters equal the
  input's.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import GraphError
from ..ir.ops.base import canonical_axis
from ..ir.ops.convolution import conv_out_size
from ..ir.ops.pooling import pooling_geometry
from . import fixed_point as fp

# Ops with an int8 kernel (besides Quantize / Dequantize).
INT8_OPS = ("Convolution", "InnerProduct", "Pooling", "Eltwise", "Concat", "ReLU",
            "Flatten", "Reshape", "Split", "Slice", "Dropout")
PASS_THROUGH = ("Flatten", "Reshape", "Split", "Slice", "Dropout")


def run_node(graph, node, inputs, weights):
    fn = _KERNELS.get(node.op_type)
    if fn is None:
        raise GraphError(f"layer '{node.name}' ({node.op_type}) has no int8 kernel")
    return fn(graph, node, inputs, weights)


def _q(graph, name):
    q = graph.quant.get(name)
    if q is None:
        raise GraphError(f"int8 tensor '{name}' has no quantization parameters")
    return q


def _quantize(graph, node, inputs, weights):
    q = _q(graph, node.outputs[0])
    return [fp.quantize_tensor(inputs[0], q.s, q.zp)]


def _dequantize(graph, node, inputs, weights):
    q = _q(graph, node.inputs[0])
    return [fp.dequantize_tensor(inputs[0], q.s, q.zp)]


def _requantize(graph, node, acc, channel_axis):
    """acc (int64, exact) -> int8 on the output grid, per-channel multipliers along
    ``channel_axis``."""
    qi, qo = _q(graph, node.inputs[0]), _q(graph, node.outputs[0])
    qw = _q(graph, node.weights[0])
    m0, shift = fp.product_multipliers(qi.s, qw.scale, qo.s)
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    acc = fp.saturate_int32(acc)
    v = fp.multiply_by_quantized_multiplier(acc, m0.reshape(shape), shift.reshape(shape)) + qo.zp
    lo, hi = fp.activation_range(node.attrs, qo.s, qo.zp)
    return np.clip(v, lo, hi).astype(np.int8)


def _exact_matmul(a, b):
    """Integer matmul, exact: |products summed| stays far below 2^53, so float64 BLAS is exact."""
    return np.rint(np.matmul(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)


def _convolution(graph, node, inputs, weights):
    a = node.attrs
    x = inputs[0].astype(np.int64) - _q(graph, node.inputs[0]).zp
    w = weights[0].astype(np.int64)
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw), group = a["stride"], a["pad"], a["dilation"], a["group"]
    oh, ow = conv_out_size(h, kh, sh, ph, dh), conv_out_size(wd, kw, sw, pw, dw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((n, c, kh, kw, oh, ow), np.int64)
    for i in range(kh):
        for j in range(kw):
            r, q = i * dh, j * dw
            cols[:, :, i, j] = xp[:, :, r:r + sh * (oh - 1) + 1:sh, q:q + sw * (ow - 1) + 1:sw]
    cols = cols.reshape(n, group, cg * kh * kw, oh * ow)
    acc = _exact_matmul(w.reshape(1, group, m // group, cg * kh * kw), cols).reshape(n, m, oh, ow)
    if len(weights) > 1:
        acc = acc + weights[1].astype(np.int64).reshape(1, m, 1, 1)
    return [_requantize(graph, node, acc, 1)]


def _inner_product(graph, node, inputs, weights):
    a = node.attrs
    if a["transpose"]:
        raise GraphError(f"layer '{node.name}': int8 InnerProduct needs transpose false")
    x = inputs[0]
    axis = canonical_axis(node, a["axis"], x.ndim, node.op)
    rows, k = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
    xd = x.reshape(rows, k).astype(np.int64) - _q(graph, node.inputs[0]).zp
    acc = _exact_matmul(xd, weights[0].astype(np.int64).T)
    if len(weights) > 1:
        acc = acc + weights[1].astype(np.int64).reshape(1, -1)
    y = _requantize(graph, node, acc, 1)
    return [y.reshape(tuple(x.shape[:axis]) + (a["num_output"],))]


def _same_grid(graph, node):
    qi, qo = _q(graph, node.inputs[0]), _q(graph, node.outputs[0])
    if qi != qo:
        raise GraphError(f"layer '{node.name}' ({node.op_type}): int8 output must keep the "
                         "input's quantization parameters")
    return qi


def div_round(a, n):
    """a / n rounded half away from zero, for integer arrays a and positive n (C: integer ops)."""
    a = np.asarray(a, np.int64)
    n = np.asarray(n, np.int64)
    half = n // 2
    return np.where(a >= 0, (a + half) // n, -((-a + half) // n))


def _pooling(graph, node, inputs, weights):
    q = _same_grid(graph, node)
    x = inputs[0].astype(np.int64)
    n, c, h, w = x.shape
    kernel, stride, pad, out = pooling_geometry(node.attrs, (h, w))
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel, stride, pad, out
    y = np.empty((n, c, oh, ow), np.int64)
    for i in range(oh):
        hs = i * sh - ph
        he = min(hs + kh, h + ph)
        h0, h1 = max(hs, 0), min(hs + kh, h)
        for j in range(ow):
            ws = j * sw - pw
            we = min(ws + kw, w + pw)
            w0, w1 = max(ws, 0), min(ws + kw, w)
            win = x[:, :, h0:h1, w0:w1]
            if node.attrs["method"] == "MAX":
                y[:, :, i, j] = win.max(axis=(2, 3)) if win.size else fp.QMIN
            else:
                total = (win - q.zp).sum(axis=(2, 3)) if win.size else 0
                y[:, :, i, j] = q.zp + div_round(total, (he - hs) * (we - ws))
    return [np.clip(y, fp.QMIN, fp.QMAX).astype(np.int8)]


def _eltwise(graph, node, inputs, weights):
    a = node.attrs
    qo = _q(graph, node.outputs[0])
    qs = [_q(graph, t) for t in node.inputs]
    lo, hi = fp.activation_range(a, qo.s, qo.zp)
    if a["operation"] == "MAX":
        vals = [fp.rescale(x, q.s, q.zp, qo.s, qo.zp) for x, q in zip(inputs, qs)]
        return [np.clip(np.maximum.reduce(vals), lo, hi).astype(np.int8)]
    if a["operation"] != "SUM":
        raise GraphError(f"layer '{node.name}': Eltwise {a['operation']} has no int8 kernel")
    coeffs = list(a.get("coeff") or []) or [1.0] * len(inputs)
    weighted = [abs(float(cf)) * float(q.scale[0]) for cf, q in zip(coeffs, qs)]
    twice_max = 2.0 * max(weighted)
    raw = np.zeros(inputs[0].shape, np.int64)
    for x, q, cf, wt in zip(inputs, qs, coeffs, weighted):
        if cf == 0:
            continue
        m0, shift = fp.quantize_multiplier(wt / twice_max)
        term = fp.multiply_by_quantized_multiplier((x.astype(np.int64) - q.zp) << 20, m0, shift)
        raw += term if cf > 0 else -term
    raw = fp.saturate_int32(raw)
    m0, shift = fp.quantize_multiplier(twice_max / (1048576.0 * float(qo.scale[0]))
                                       if twice_max else 0.0)
    v = fp.multiply_by_quantized_multiplier(raw, m0, shift) + qo.zp
    return [np.clip(v, lo, hi).astype(np.int8)]


def _concat(graph, node, inputs, weights):
    qo = _q(graph, node.outputs[0])
    parts = [fp.rescale(x, q.s, q.zp, qo.s, qo.zp).astype(np.int8)
             for x, q in zip(inputs, (_q(graph, t) for t in node.inputs))]
    axis = canonical_axis(node, node.attrs["axis"], inputs[0].ndim, node.op)
    return [np.concatenate(parts, axis=axis)]


def _relu(graph, node, inputs, weights):
    q = _same_grid(graph, node)
    if node.attrs.get("negative_slope", 0.0):
        raise GraphError(f"layer '{node.name}': leaky ReLU has no int8 kernel")
    return [np.maximum(inputs[0], np.int8(q.zp))]


def _pass_through(graph, node, inputs, weights):
    for t in node.outputs:
        if _q(graph, t) != _q(graph, node.inputs[0]):
            raise GraphError(f"layer '{node.name}' ({node.op_type}): int8 outputs must keep "
                             "the input's quantization parameters")
    # the float reference does the data movement; int8 values travel exactly through float64
    outs = node.op.run(node, [inputs[0].astype(np.float64)], weights)
    return [o.astype(np.int8) for o in outs]


_KERNELS = {
    "Quantize": _quantize, "Dequantize": _dequantize, "Convolution": _convolution,
    "InnerProduct": _inner_product, "Pooling": _pooling, "Eltwise": _eltwise,
    "Concat": _concat, "ReLU": _relu,
    **{t: _pass_through for t in PASS_THROUGH},
}
