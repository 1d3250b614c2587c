"""Elementwise activations (Caffe's neuron layers): output shape = input shape.

Each follows the formula of Caffe's CPU ``Forward_cpu``:

* ReLU       ``max(x, 0) + negative_slope * min(x, 0)``
* PReLU      the same with a learned slope per channel (axis 1), or one shared slope
* ELU        ``max(x, 0) + alpha * (exp(min(x, 0)) - 1)``
* Sigmoid    ``0.5 * tanh(0.5 x) + 0.5``;  TanH ``tanh(x)``;  AbsVal ``|x|``
* BNLL       ``x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x))``
* Power      ``(shift + scale x) ^ power``; when ``power * scale == 0`` the input is ignored and the
  output is ``power == 0 ? 1 : shift ^ power``
* Exp        ``base ^ (shift + scale x)``, computed as ``outer * exp(inner x)`` with
  ``inner = ln(base) * scale`` and ``outer = base ^ shift`` (1 when shift is 0); base -1 means e
* Log        ``log_base(shift + scale x)``; base -1 means e
* Threshold  ``x > threshold ? 1 : 0``
* Clip       ``max(min, min(x, max))`` with C++ ``std::min`` / ``std::max`` (a NaN input gives min)
* Dropout    identity: Caffe's TEST-phase Dropout copies its input, unscaled.

Attribute values are rounded to the compute dtype first, as Caffe's ``Dtype`` params are.

Fused activations: the optimizer folds a ReLU, PReLU, Clip, Sigmoid or TanH into the op that
produces its input (Convolution, Deconvolution, InnerProduct, Eltwise). Those ops declare the
``FUSED_ACTIVATION_ATTRS`` below and finish their ``run`` with ``apply_fused_activation``, which
calls the very functions the standalone ops use (``relu``, ``prelu``, ``clip``, ``sigmoid``,
``tanh``), so a fused op computes exactly what the op pair computed:

* ``activation``      None (no activation), "ReLU", "PReLU", "Clip", "Sigmoid" or "TanH"
* ``negative_slope``  ReLU's slope (None means 0)
* ``clip_min``, ``clip_max``   Clip's bounds (both required with "Clip")
* PReLU's slopes travel as the op's last weight blob ``slope``, one per output channel (axis 1);
  a channel-shared PReLU is fused with its one slope repeated per channel.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import GraphError
from .base import Attr, OpDef, register


# ---------------------------------------------------------------------------- shared math
def relu(x, negative_slope, t):
    """Caffe's ReLU: ``max(x, 0) + negative_slope * min(x, 0)`` in dtype ``t``."""
    zero = t(0)
    return np.maximum(x, zero) + t(negative_slope) * np.minimum(x, zero)


def prelu(x, slope, channel_shared, t):
    """Caffe's PReLU: as ReLU with a slope per channel (axis 1), or one shared slope."""
    slope = np.asarray(slope).astype(x.dtype, copy=False)
    if channel_shared:
        slope = slope.reshape(())
    else:
        slope = slope.reshape((1, -1) + (1,) * (x.ndim - 2))
    zero = t(0)
    return np.maximum(x, zero) + slope * np.minimum(x, zero)


def clip(x, lo, hi, t):
    """Caffe's Clip, with C++ ``std::min`` / ``std::max`` (a NaN input gives ``lo``)."""
    lo, hi = t(lo), t(hi)
    y = np.where(hi < x, hi, x)          # std::min(x, max)
    return np.where(lo < y, y, lo)       # std::max(min, y)


def sigmoid(x, t):
    """Caffe's Sigmoid: ``0.5 * tanh(0.5 x) + 0.5``."""
    half = t(0.5)
    return half * np.tanh(half * x) + half


def tanh(x, t):
    return np.tanh(x)


# ------------------------------------------------------------------- fused activations
FUSED_ACTIVATIONS = ("ReLU", "PReLU", "Clip", "Sigmoid", "TanH")

FUSED_ACTIVATION_ATTRS = (
    Attr("activation", None, "fused activation applied to the output: None, ReLU, PReLU, Clip, "
                             "Sigmoid or TanH"),
    Attr("negative_slope", None, "fused ReLU's negative slope (None: 0)"),
    Attr("clip_min", None, "fused Clip's lower bound"),
    Attr("clip_max", None, "fused Clip's upper bound"),
)


def fused_activation(node):
    """The node's fused activation name, or None."""
    return node.attrs.get("activation")


def has_fused_prelu(node) -> bool:
    return node.attrs.get("activation") == "PReLU"


def check_fused_activation(op, node, out_shape):
    """Set-up checks of a fused activation (raised as the fused op's ShapeError)."""
    a = node.attrs
    act = a.get("activation")
    if act is None:
        return
    if act not in FUSED_ACTIVATIONS:
        raise op.shape_error(node, f"unknown fused activation {act!r} (one of "
                                   f"{', '.join(FUSED_ACTIVATIONS)}, or None)")
    if act == "Clip" and (a.get("clip_min") is None or a.get("clip_max") is None):
        raise op.shape_error(node, "a fused Clip needs clip_min and clip_max")
    if act == "PReLU" and not 2 <= len(out_shape) <= 4:
        raise op.shape_error(node, f"a fused PReLU needs a 2- to 4-axis output, got "
                                   f"{tuple(out_shape)}")


def apply_fused_activation(node, y, slope=None):
    """Apply the node's fused activation to its output ``y`` (the same math as the standalone
    op); ``slope`` is the PReLU slope blob (one value per channel of axis 1)."""
    act = node.attrs.get("activation")
    if act is None:
        return y
    t = y.dtype.type
    a = node.attrs
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        if act == "ReLU":
            out = relu(y, a.get("negative_slope") or 0.0, t)
        elif act == "PReLU":
            out = prelu(y, slope, False, t)
        elif act == "Clip":
            out = clip(y, a["clip_min"], a["clip_max"], t)
        elif act == "Sigmoid":
            out = sigmoid(y, t)
        elif act == "TanH":
            out = tanh(y, t)
        else:
            raise GraphError(f"layer '{node.name}' ({node.op_type}): unknown fused activation "
                             f"{act!r}")
    return np.asarray(out, dtype=y.dtype)


# ---------------------------------------------------------------------------- the ops
class _Elementwise(OpDef):
    elementwise = True

    def infer_shapes(self, node, input_shapes):
        self.check(node, input_shapes[0])
        return [tuple(input_shapes[0])]

    def check(self, node, in_shape):
        """Attribute / input checks Caffe makes at set-up; nothing by default."""

    def attr_error(self, node, message):
        return GraphError(f"layer '{node.name}' ({self.type}): {message}")

    def run(self, node, inputs, weights):
        x = inputs[0]
        t = x.dtype.type
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            y = np.asarray(self.apply(node, x, t, weights), dtype=x.dtype)
        return [y.copy() if y is x else y]      # never hand back the input array itself

    def apply(self, node, x, t, weights):
        raise NotImplementedError


@register
class ReLU(_Elementwise):
    type = "ReLU"
    attrs = (Attr("negative_slope", 0.0),)

    def apply(self, node, x, t, weights):
        return relu(x, node.attrs["negative_slope"], t)


@register
class PReLU(_Elementwise):
    type = "PReLU"
    attrs = (Attr("channel_shared", False),)
    weights = ("slope",)

    def check(self, node, in_shape):
        # Caffe reads the channel count with the legacy accessor (at most 4 axes).
        if not 2 <= len(in_shape) <= 4:
            raise self.shape_error(node, f"needs a 2- to 4-axis input, got {tuple(in_shape)}")

    def weight_shapes(self, node, input_shapes):
        # Caffe's shared slope is a 0-axis (scalar) blob; otherwise one slope per channel.
        return [()] if node.attrs["channel_shared"] else [(input_shapes[0][1],)]

    def apply(self, node, x, t, weights):
        return prelu(x, weights[0], node.attrs["channel_shared"], t)


@register
class ELU(_Elementwise):
    type = "ELU"
    attrs = (Attr("alpha", 1.0),)

    def apply(self, node, x, t, weights):
        zero = t(0)
        return np.maximum(x, zero) + t(node.attrs["alpha"]) * (np.exp(np.minimum(x, zero)) - t(1))


@register
class Sigmoid(_Elementwise):
    type = "Sigmoid"

    def apply(self, node, x, t, weights):
        return sigmoid(x, t)


@register
class TanH(_Elementwise):
    type = "TanH"

    def apply(self, node, x, t, weights):
        return tanh(x, t)


@register
class AbsVal(_Elementwise):
    type = "AbsVal"

    def apply(self, node, x, t, weights):
        return np.abs(x)


@register
class BNLL(_Elementwise):
    type = "BNLL"

    def apply(self, node, x, t, weights):
        # Both branches of Caffe's formula as one: max(x, 0) + log(1 + exp(-|x|)).
        one = t(1)
        return np.where(x > 0, x, t(0)) + np.log(one + np.exp(-np.abs(x)))


@register
class Power(_Elementwise):
    type = "Power"
    attrs = (Attr("power", 1.0), Attr("scale", 1.0), Attr("shift", 0.0))

    def apply(self, node, x, t, weights):
        a = node.attrs
        power, scale, shift = t(a["power"]), t(a["scale"]), t(a["shift"])
        if power * scale == 0:
            value = t(1) if power == 0 else np.power(shift, power)
            return np.full(x.shape, value, dtype=x.dtype)
        y = x
        if scale != 1:
            y = y * scale
        if shift != 0:
            y = y + shift
        if power != 1:
            y = np.power(y, power)
        return y


def _log_base(node, op, base):
    """Caffe's Exp/Log set-up checks: base -1 means e, otherwise base must be positive."""
    if base == -1:
        return 1.0
    if not base > 0:
        raise op.attr_error(node, f"base must be positive (or -1 for e), got {base}")
    return math.log(base)


@register
class Exp(_Elementwise):
    type = "Exp"
    attrs = (Attr("base", -1.0), Attr("scale", 1.0), Attr("shift", 0.0))

    def check(self, node, in_shape):
        _log_base(node, self, node.attrs["base"])

    def apply(self, node, x, t, weights):
        a = node.attrs
        base, scale, shift = t(a["base"]), t(a["scale"]), t(a["shift"])
        log_base = t(1) if base == -1 else np.log(base)
        inner = log_base * scale
        if shift == 0:
            outer = t(1)
        else:
            outer = np.exp(shift) if base == -1 else np.power(base, shift)
        y = np.exp(x if inner == 1 else inner * x)
        return y if outer == 1 else outer * y


@register
class Log(_Elementwise):
    type = "Log"
    attrs = (Attr("base", -1.0), Attr("scale", 1.0), Attr("shift", 0.0))

    def check(self, node, in_shape):
        if _log_base(node, self, node.attrs["base"]) == 0:
            raise self.attr_error(node, "base 1 has no logarithm")

    def apply(self, node, x, t, weights):
        a = node.attrs
        base, scale, shift = t(a["base"]), t(a["scale"]), t(a["shift"])
        base_scale = t(1) if base == -1 else t(1) / np.log(base)
        y = x
        if scale != 1:
            y = y * scale
        if shift != 0:
            y = y + shift
        y = np.log(y)
        return y if base_scale == 1 else base_scale * y


@register
class Threshold(_Elementwise):
    type = "Threshold"
    attrs = (Attr("threshold", 0.0),)

    def apply(self, node, x, t, weights):
        return (x > t(node.attrs["threshold"])).astype(x.dtype)


@register
class Clip(_Elementwise):
    type = "Clip"
    attrs = (Attr("min"), Attr("max"))

    def apply(self, node, x, t, weights):
        return clip(x, node.attrs["min"], node.attrs["max"], t)


@register
class Dropout(_Elementwise):
    type = "Dropout"

    def apply(self, node, x, t, weights):
        return x
