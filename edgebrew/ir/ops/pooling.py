"""Pooling (Caffe's PoolingLayer, CPU semantics), 2-D, MAX and AVE.

Attributes: ``method`` ("MAX" / "AVE"), ``kernel``, ``stride``, ``pad`` as (h, w) pairs,
``global_pooling`` (the kernel becomes the input's H x W, pad 0, stride 1; ``kernel`` is then
ignored) and ``round_mode`` ("CEIL", Caffe's default, or "FLOOR").

What Caffe does, and this reference follows:

* output size ``ceil((H + 2p - k) / s) + 1`` (``floor`` with round_mode FLOOR); then, when either
  pad is nonzero, each dimension whose last window would start at or past ``H + p`` loses it;
* a MAX window starts at ``-FLT_MAX`` and takes values strictly greater, over the window clipped
  to the input (padding never wins; NaN never wins);
* an AVE window sums the input values inside it and divides by ``(hend - hstart) * (wend - wstart)``
  with ``hend = min(hstart + k, H + p)`` taken *before* the window is clipped to the input: the
  padding counts, the ceil-mode overhang past the padding does not;
* with no padding and stride > kernel, ceil rounding can make a last window that lies wholly past
  the input: Caffe then outputs ``-FLT_MAX`` (MAX) and ``0 / pool_size`` (AVE, where pool_size is
  zero or negative: NaN or -0). Reproduced as is.
"""
from __future__ import annotations

import numpy as np

from .base import Attr, OpDef, register

FLT_MAX = float(np.finfo(np.float32).max)


def pooled_size(size, k, s, p, round_mode):
    """Caffe's pooled length of one axis before the padding clip (integer ceil / floor)."""
    num = size + 2 * p - k
    q = -((-num) // s) if round_mode == "CEIL" else num // s
    return q + 1


def pooling_geometry(attrs, in_hw):
    """(kernel, stride, pad, out) pairs as Caffe's PoolingLayer::Reshape computes them."""
    if attrs["global_pooling"]:
        kernel, stride, pad = tuple(in_hw), (1, 1), (0, 0)
    else:
        kernel, stride, pad = (tuple(int(v) for v in attrs[n]) for n in ("kernel", "stride", "pad"))
    out = [pooled_size(in_hw[i], kernel[i], stride[i], pad[i], attrs["round_mode"])
           for i in range(2)]
    if pad[0] or pad[1]:       # Caffe applies the clip to both axes when either pad is set
        for i in range(2):
            if (out[i] - 1) * stride[i] >= in_hw[i] + pad[i]:
                out[i] -= 1
    return kernel, stride, pad, tuple(out)


@register
class Pooling(OpDef):
    type = "Pooling"
    attrs = (
        Attr("method", "MAX", "MAX or AVE"),
        Attr("kernel", None, "(kh, kw); unused with global_pooling"),
        Attr("stride", (1, 1)),
        Attr("pad", (0, 0)),
        Attr("global_pooling", False),
        Attr("round_mode", "CEIL", "CEIL or FLOOR"),
    )

    def _geometry(self, node, in_shape):
        a = node.attrs
        if len(in_shape) != 4:
            raise self.shape_error(node, f"needs a 4-d NCHW input, got {tuple(in_shape)}")
        if a["method"] not in ("MAX", "AVE"):
            raise self.shape_error(node, f"pooling method {a['method']!r} is not supported "
                                         "(MAX or AVE)")
        if a["round_mode"] not in ("CEIL", "FLOOR"):
            raise self.shape_error(node, f"round_mode {a['round_mode']!r} is not CEIL or FLOOR")
        if a["global_pooling"]:
            if tuple(a["pad"]) != (0, 0) or tuple(a["stride"]) != (1, 1):
                raise self.shape_error(node, "global pooling needs pad 0 and stride 1, got pad "
                                             f"{tuple(a['pad'])}, stride {tuple(a['stride'])}")
        elif a["kernel"] is None:
            raise self.shape_error(node, "kernel is required unless global_pooling is set")
        kernel, stride, pad, out = pooling_geometry(a, in_shape[2:])
        if min(kernel) <= 0 or min(stride) <= 0 or min(pad) < 0:
            raise self.shape_error(node, f"kernel {kernel} and stride {stride} must be positive "
                                         f"and pad {pad} non-negative")
        if (pad[0] or pad[1]) and (pad[0] >= kernel[0] or pad[1] >= kernel[1]):
            raise self.shape_error(node, f"pad {pad} must be smaller than the kernel {kernel}")
        if min(out) <= 0:
            raise self.shape_error(node, f"kernel {kernel} (pad {pad}) does not fit the "
                                         f"{in_shape[2]}x{in_shape[3]} input")
        return kernel, stride, pad, out

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        _, _, _, (oh, ow) = self._geometry(node, s)
        return [(s[0], s[1], oh, ow)]

    def run(self, node, inputs, weights):
        x = inputs[0]
        kernel, stride, pad, out = self._geometry(node, x.shape)
        if node.attrs["method"] == "MAX":
            return [max_pool(x, kernel, stride, pad, out)]
        return [ave_pool(x, kernel, stride, pad, out)]


def _padded(x, kernel, stride, pad, out, value):
    """x padded so that every window of the output grid lies inside the array."""
    n, c, h, w = x.shape
    ext = [(out[i] - 1) * stride[i] + kernel[i] for i in range(2)]   # padded extent needed
    after = [max(0, ext[i] - pad[i] - (h, w)[i]) for i in range(2)]
    return np.pad(x, ((0, 0), (0, 0), (pad[0], after[0]), (pad[1], after[1])),
                  constant_values=value)


def _windows(xp, kernel, stride, out):
    """Yield, per kernel offset in row-major order, the strided (N, C, OH, OW) view."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out
    for i in range(kh):
        for j in range(kw):
            yield xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]


def max_pool(x, kernel, stride, pad, out):
    xp = _padded(x, kernel, stride, pad, out, -np.inf)
    acc = np.full(x.shape[:2] + tuple(out), -FLT_MAX, dtype=x.dtype)
    for v in _windows(xp, kernel, stride, out):
        np.fmax(acc, v, out=acc)           # padding (-inf) and NaN never win, as in Caffe
    return acc


def ave_pool(x, kernel, stride, pad, out):
    n, c, h, w = x.shape
    xp = _padded(x, kernel, stride, pad, out, 0)
    acc = np.zeros(x.shape[:2] + tuple(out), dtype=x.dtype)
    for v in _windows(xp, kernel, stride, out):
        acc += v
    sizes = []
    for i, size in enumerate((h, w)):
        start = np.arange(out[i]) * stride[i] - pad[i]
        end = np.minimum(start + kernel[i], size + pad[i])
        sizes.append(end - start)
    pool_size = np.outer(sizes[0], sizes[1]).astype(x.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return acc / pool_size
