"""Tensor plumbing ops, with BVLC Caffe's semantics: Concat, Slice, Split, Eltwise, Flatten,
Reshape, Crop, Permute (SSD fork), ArgMax, Reduction.

Axis attributes hold what the prototxt says (negative values count from the end, as Caffe's
``CanonicalAxisIndex``); the importer has already folded the legacy ``concat_dim`` / ``slice_dim``
into ``axis``. Enum-valued attributes are Caffe's enum names ("SUM", "PROD", ...).

Every ``run`` returns fresh arrays (never views of its inputs), computed in the inputs' dtype.

Caffe details these declarations follow (each checked against the layer's source):

- Slice: ``slice_point`` must be strictly increasing and positive; without it the axis is split
  into as many equal parts as the layer has tops (it must divide evenly).
- Eltwise: SUM accumulates ``0 + c0*x0 + c1*x1 + ...`` in bottom order; PROD multiplies in
  bottom order; MAX keeps the earlier value unless a later one is strictly greater (so a NaN
  only propagates the way Caffe's ``>`` comparisons let it). ``coeff`` is SUM-only.
- Flatten: ``end_axis`` may be ``axis - 1``, which inserts a unit axis (Caffe's ``count(a, a)``
  is 1).
- Reshape: ``0`` copies the input dimension at the same position (counted from ``axis``), one
  ``-1`` is inferred; ``axis``/``num_axes`` pick the span of input axes replaced.
- Crop: from ``axis`` on, the output takes bottom[1]'s sizes; one offset applies to every cropped
  axis, several must give one per cropped axis, none means offset 0.
- Permute: ``order`` lists leading output axes; the axes not named follow in their input order.
- ArgMax: ties are broken towards the *larger* index (Caffe sorts (value, index) pairs with
  ``std::greater``). Without ``axis`` the output is ``(N, 1 or 2, top_k)`` padded with unit
  axes to the input's rank (a 4-d input gives ``(N, 1|2, top_k, 1)``), holding indices, and
  values in channel 1 when ``out_max_val``. With ``axis`` it holds indices, or only values
  when ``out_max_val``.
- Reduction: reduces every axis from ``axis`` on (the output keeps the leading axes; ``axis 0``
  gives a 0-d tensor); MEAN is SUM scaled by ``coeff / count``.

Eltwise may carry a fused activation after optimization (see ``activations.py``; Eltwise SUM +
ReLU is ResNet's block end); a fused PReLU gives it one weight blob ``slope`` (one value per
channel of axis 1).
"""
from __future__ import annotations

import math

import numpy as np

from .activations import (FUSED_ACTIVATION_ATTRS, apply_fused_activation,
                          check_fused_activation, has_fused_prelu)
from .base import Attr, OpDef, canonical_axis, register

_ANY = 1 << 31  # no upper bound on the number of bottoms


def _count(shape, start=0, end=None):
    return math.prod(shape[start:end])


# ---------------------------------------------------------------------------------------------
@register
class Concat(OpDef):
    type = "Concat"
    attrs = (Attr("axis", 1, "concatenation axis (legacy concat_dim folded in)"),)
    max_inputs = _ANY

    def _axis(self, node, input_shapes):
        return canonical_axis(node, node.attrs["axis"], len(input_shapes[0]), self)

    def infer_shapes(self, node, input_shapes):
        first = tuple(input_shapes[0])
        axis = self._axis(node, input_shapes)
        total = 0
        for i, s in enumerate(input_shapes):
            if len(s) != len(first):
                raise self.shape_error(node, f"bottom {i} has {len(s)} axes, bottom 0 has "
                                             f"{len(first)}")
            for a in range(len(first)):
                if a != axis and s[a] != first[a]:
                    raise self.shape_error(node, f"bottom {i} shape {tuple(s)} differs from "
                                                 f"bottom 0 shape {first} outside axis {axis}")
            total += s[axis]
        out = list(first)
        out[axis] = total
        return [tuple(out)]

    def run(self, node, inputs, weights):
        axis = self._axis(node, [x.shape for x in inputs])
        return [np.concatenate(inputs, axis=axis)]


# ---------------------------------------------------------------------------------------------
@register
class Slice(OpDef):
    type = "Slice"
    attrs = (Attr("axis", 1, "slicing axis (legacy slice_dim folded in)"),
             Attr("slice_point", (), "cut positions; empty: equal parts, one per top"))
    num_outputs = None

    def _sizes(self, node, shape):
        axis = canonical_axis(node, node.attrs["axis"], len(shape), self)
        dim, n_tops = shape[axis], len(node.outputs)
        points = [int(p) for p in node.attrs["slice_point"]]
        if points:
            if len(points) != n_tops - 1:
                raise self.shape_error(node, f"{len(points)} slice_point(s) need "
                                             f"{len(points) + 1} tops, the layer has {n_tops}")
            sizes, prev = [], 0
            for p in points:
                if p <= prev:
                    raise self.shape_error(node, f"slice_point {points} must be strictly "
                                                 "increasing and positive")
                sizes.append(p - prev)
                prev = p
            if dim - prev <= 0:
                raise self.shape_error(node, f"slice_point {points} leaves no room on axis "
                                             f"{axis} of size {dim}")
            sizes.append(dim - prev)
        else:
            if dim % n_tops:
                raise self.shape_error(node, f"{n_tops} tops do not evenly divide axis {axis} "
                                             f"of size {dim}")
            sizes = [dim // n_tops] * n_tops
        return axis, sizes

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        axis, sizes = self._sizes(node, s)
        return [tuple(s[:axis]) + (n,) + tuple(s[axis + 1:]) for n in sizes]

    def run(self, node, inputs, weights):
        (x,) = inputs
        axis, sizes = self._sizes(node, x.shape)
        cuts = np.cumsum(sizes)[:-1]
        return [part.copy() for part in np.split(x, cuts, axis=axis)]


# ---------------------------------------------------------------------------------------------
@register
class Split(OpDef):
    type = "Split"
    num_outputs = None

    def infer_shapes(self, node, input_shapes):
        return [tuple(input_shapes[0])] * len(node.outputs)

    def run(self, node, inputs, weights):
        return [inputs[0].copy() for _ in node.outputs]


# ---------------------------------------------------------------------------------------------
ELTWISE_OPS = ("PROD", "SUM", "MAX")


@register
class Eltwise(OpDef):
    type = "Eltwise"
    attrs = (Attr("operation", "SUM", "PROD, SUM or MAX"),
             Attr("coeff", (), "SUM only: one coefficient per bottom (empty: all 1)"),
             ) + FUSED_ACTIVATION_ATTRS
    weights = ("slope",)
    min_inputs = 2
    max_inputs = _ANY
    elementwise = True

    def num_weights(self, node):
        return 1 if has_fused_prelu(node) else 0

    def weight_shapes(self, node, input_shapes):
        return [(input_shapes[0][1],)] if has_fused_prelu(node) else []

    def _check(self, node, n_inputs):
        op, coeff = node.attrs["operation"], node.attrs["coeff"]
        if op not in ELTWISE_OPS:
            raise self.shape_error(node, f"unknown operation {op!r}")
        if len(coeff) and op != "SUM":
            raise self.shape_error(node, "coeff is only allowed with operation SUM")
        if len(coeff) not in (0, n_inputs):
            raise self.shape_error(node, f"{len(coeff)} coeff(s) for {n_inputs} bottoms "
                                         "(give one per bottom, or none)")

    def infer_shapes(self, node, input_shapes):
        self._check(node, len(input_shapes))
        first = tuple(input_shapes[0])
        for i, s in enumerate(input_shapes[1:], 1):
            if tuple(s) != first:
                raise self.shape_error(node, f"bottom {i} has shape {tuple(s)}, bottom 0 has "
                                             f"{first}")
        check_fused_activation(self, node, first)
        return [first]

    def run(self, node, inputs, weights):
        (y,) = self._combine(node, inputs)
        return [apply_fused_activation(node, y, weights[0] if has_fused_prelu(node) else None)]

    def _combine(self, node, inputs):
        self._check(node, len(inputs))
        op, dtype = node.attrs["operation"], inputs[0].dtype
        if op == "SUM":
            coeff = node.attrs["coeff"] or (1.0,) * len(inputs)
            y = np.zeros_like(inputs[0])
            for c, x in zip(coeff, inputs):
                y = y + dtype.type(c) * x
            return [y]
        if op == "PROD":
            y = inputs[0] * inputs[1]
            for x in inputs[2:]:
                y = y * x
            return [y]
        y = np.where(inputs[0] > inputs[1], inputs[0], inputs[1])
        for x in inputs[2:]:
            y = np.where(x > y, x, y)
        return [y]


# ---------------------------------------------------------------------------------------------
@register
class Flatten(OpDef):
    type = "Flatten"
    attrs = (Attr("axis", 1), Attr("end_axis", -1))

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        n = len(s)
        start = canonical_axis(node, node.attrs["axis"], n, self)
        end = canonical_axis(node, node.attrs["end_axis"], n, self)
        if end + 1 < start:
            raise self.shape_error(node, f"end_axis {node.attrs['end_axis']} comes before "
                                         f"axis {node.attrs['axis']}")
        return [tuple(s[:start]) + (_count(s, start, end + 1),) + tuple(s[end + 1:])]

    def run(self, node, inputs, weights):
        (x,) = inputs
        (shape,) = self.infer_shapes(node, [x.shape])
        return [x.reshape(shape).copy()]


# ---------------------------------------------------------------------------------------------
@register
class Reshape(OpDef):
    type = "Reshape"
    attrs = (Attr("shape", (), "new dims: 0 copies, -1 is inferred"),
             Attr("axis", 0, "first input axis replaced (negative: from the end, -1 = after last)"),
             Attr("num_axes", -1, "how many input axes are replaced (-1: all from axis on)"))

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        s = tuple(s)
        n = len(s)
        dims = [int(d) for d in node.attrs["shape"]]
        axis, num_axes = int(node.attrs["axis"]), int(node.attrs["num_axes"])
        start = axis if axis >= 0 else n + axis + 1
        if not 0 <= start <= n:
            raise self.shape_error(node, f"axis {axis} out of range for a {n}-d input")
        if num_axes < -1:
            raise self.shape_error(node, f"num_axes {num_axes} must be >= 0, or -1 for all")
        end = n if num_axes == -1 else start + num_axes
        if end > n:
            raise self.shape_error(node, f"axis {axis} + num_axes {num_axes} is out of range "
                                         f"for a {n}-d input")
        if dims.count(-1) > 1:
            raise self.shape_error(node, f"shape {dims} has more than one -1")
        if any(d < -1 for d in dims):
            raise self.shape_error(node, f"shape {dims} has a negative dimension other than -1")
        out = list(s[:start]) + dims + list(s[end:])
        for i, d in enumerate(dims):
            if d == 0:
                if start + i >= n:
                    raise self.shape_error(node, f"shape {dims} has a 0 at position {i} but the "
                                                 f"input has no axis {start + i} to copy")
                out[start + i] = s[start + i]
        total = _count(s)
        if -1 in dims:
            i = dims.index(-1)
            known = math.prod(d for j, d in enumerate(out) if j != start + i)
            if known == 0 or total % known:
                raise self.shape_error(node, f"input count {total} (shape {s}) is not divisible "
                                             f"by the product {known} of the other dimensions "
                                             f"of {tuple(out)}")
            out[start + i] = total // known
        if math.prod(out) != total:
            raise self.shape_error(node, f"output shape {tuple(out)} has {math.prod(out)} "
                                         f"elements, the input {s} has {total}")
        return [tuple(out)]

    def run(self, node, inputs, weights):
        (x,) = inputs
        (shape,) = self.infer_shapes(node, [x.shape])
        return [x.reshape(shape).copy()]


# ---------------------------------------------------------------------------------------------
@register
class Crop(OpDef):
    type = "Crop"
    attrs = (Attr("axis", 2, "first cropped axis"),
             Attr("offset", (), "one offset for all cropped axes, or one per cropped axis"))
    min_inputs = 2
    max_inputs = 2

    def _plan(self, node, s0, s1):
        """(offsets, output shape) of a crop of shape s0 to the size of s1."""
        n = len(s0)
        if len(s1) != n:
            raise self.shape_error(node, f"bottom 0 has {n} axes, bottom 1 has {len(s1)}")
        start = canonical_axis(node, node.attrs["axis"], n, self)
        offs = [int(o) for o in node.attrs["offset"]]
        if len(offs) > 1 and start + len(offs) != n:
            raise self.shape_error(node, f"{len(offs)} offsets for {n - start} cropped axes "
                                         f"(axis {start} of a {n}-d input)")
        offsets, shape = [0] * n, list(s0)
        for i in range(start, n):
            off = offs[0] if len(offs) == 1 else (offs[i - start] if offs else 0)
            if s0[i] - off < s1[i]:
                raise self.shape_error(node, f"crop of axis {i} to size {s1[i]} at offset {off} "
                                             f"is out of bounds for size {s0[i]}")
            offsets[i], shape[i] = off, s1[i]
        return offsets, tuple(shape)

    def infer_shapes(self, node, input_shapes):
        return [self._plan(node, tuple(input_shapes[0]), tuple(input_shapes[1]))[1]]

    def run(self, node, inputs, weights):
        x, ref = inputs
        offsets, shape = self._plan(node, x.shape, ref.shape)
        return [x[tuple(slice(o, o + d) for o, d in zip(offsets, shape))].copy()]


# ---------------------------------------------------------------------------------------------
@register
class Permute(OpDef):
    """SSD fork's Permute layer."""

    type = "Permute"
    attrs = (Attr("order", (), "leading output axes; the others follow in input order"),)

    def full_order(self, node, ndim):
        order = []
        for o in node.attrs["order"]:
            o = int(o)
            if not 0 <= o < ndim:
                raise self.shape_error(node, f"order {list(node.attrs['order'])} names axis {o}, "
                                             f"the input has {ndim} axes")
            if o in order:
                raise self.shape_error(node, f"order {list(node.attrs['order'])} repeats axis {o}")
            order.append(o)
        return order + [i for i in range(ndim) if i not in order]

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        return [tuple(s[o] for o in self.full_order(node, len(s)))]

    def run(self, node, inputs, weights):
        (x,) = inputs
        return [x.transpose(self.full_order(node, x.ndim)).copy()]


# ---------------------------------------------------------------------------------------------
@register
class ArgMax(OpDef):
    type = "ArgMax"
    attrs = (Attr("out_max_val", False),
             Attr("top_k", 1),
             Attr("axis", None, "None: over each sample's flattened values"))

    def _check(self, node, s):
        k, axis = int(node.attrs["top_k"]), node.attrs["axis"]
        if k < 1:
            raise self.shape_error(node, f"top_k {k} must be at least 1")
        if axis is not None:
            a = canonical_axis(node, axis, len(s), self)
            if k > s[a]:
                raise self.shape_error(node, f"top_k {k} exceeds the size {s[a]} of axis {a}")
            return k, a
        if k > _count(s, 1):
            raise self.shape_error(node, f"top_k {k} exceeds the {_count(s, 1)} values per "
                                         "sample")
        return k, None

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        k, axis = self._check(node, s)
        if axis is not None:
            out = list(s)
            out[axis] = k
            return [tuple(out)]
        out = [1] * max(len(s), 3)
        out[0], out[2] = s[0], k
        if node.attrs["out_max_val"]:
            out[1] = 2
        return [tuple(out)]

    def run(self, node, inputs, weights):
        (x,) = inputs
        k, axis = self._check(node, x.shape)
        (out_shape,) = self.infer_shapes(node, [x.shape])
        rows = np.moveaxis(x, axis, -1) if axis is not None else x.reshape(x.shape[0], -1)
        dim = rows.shape[-1]
        idx = np.broadcast_to(np.arange(dim), rows.shape)
        # Descending by (value, index), like std::greater on (value, index) pairs.
        order = np.lexsort((-idx, -rows), axis=-1)[..., :k]
        vals = np.take_along_axis(rows, order, axis=-1)
        ind = order.astype(x.dtype)
        if axis is not None:
            res = vals if node.attrs["out_max_val"] else ind
            return [np.ascontiguousarray(np.moveaxis(res, -1, axis))]
        res = np.stack([ind, vals], axis=1) if node.attrs["out_max_val"] else ind[:, None, :]
        return [res.reshape(out_shape)]


# ---------------------------------------------------------------------------------------------
REDUCTION_OPS = ("SUM", "ASUM", "SUMSQ", "MEAN")


@register
class Reduction(OpDef):
    type = "Reduction"
    attrs = (Attr("operation", "SUM", "SUM, ASUM, SUMSQ or MEAN"),
             Attr("axis", 0, "first reduced axis; every axis from it on is reduced"),
             Attr("coeff", 1.0, "output scale"))

    def _axis(self, node, s):
        if node.attrs["operation"] not in REDUCTION_OPS:
            raise self.shape_error(node, f"unknown operation {node.attrs['operation']!r}")
        return canonical_axis(node, node.attrs["axis"], len(s), self)

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        return [tuple(s[:self._axis(node, s)])]

    def run(self, node, inputs, weights):
        (x,) = inputs
        axis = self._axis(node, x.shape)
        dtype, op = x.dtype.type, node.attrs["operation"]
        rows = x.reshape(_count(x.shape, 0, axis), -1)
        if op in ("SUM", "MEAN"):
            y = rows.sum(axis=1)
        elif op == "ASUM":
            y = np.abs(rows).sum(axis=1)
        else:
            y = (rows * rows).sum(axis=1)
        coeff = dtype(node.attrs["coeff"])
        if op == "MEAN":
            coeff = coeff / dtype(rows.shape[1])
        if coeff != 1:
            y = y * coeff
        return [y.astype(x.dtype, copy=False).reshape(x.shape[:axis])]
