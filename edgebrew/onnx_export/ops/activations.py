"""Elementwise activations. Each follows the IR op's formula (Caffe's Forward_cpu); attribute
values are rounded to float32 first, as Caffe's Dtype parameters are.

* ReLU -> Relu, or LeakyRelu (``max(x,0) + s*min(x,0)`` is ``x < 0 ? s*x : x`` exactly)
* PReLU -> PRelu with the slope reshaped to (C, 1, ...) so that it broadcasts on axis 1 (a
  shared slope is a scalar)
* ELU -> Elu; Sigmoid -> Sigmoid; TanH -> Tanh; AbsVal -> Abs; Dropout -> Identity
* BNLL -> ``Relu(x) + Log(1 + Exp(-Abs(x)))``, Caffe's two branches as one stable formula
* Power -> [Mul scale] [Add shift] [Pow power], in Caffe's order and skipping the identity
  steps as Caffe does; ``power * scale == 0`` -> ConstantOfShape (the input is ignored)
* Exp -> ``outer * Exp(inner * x)`` with Caffe's ``inner = ln(base) * scale`` and
  ``outer = base ^ shift`` computed in float32; Log -> ``base_scale * Log(shift + scale * x)``
* Threshold -> Cast(Greater(x, t)); Clip -> Clip, or Min then Max when min > max (Caffe's
  ``std::max(min, std::min(x, max))`` then yields min)
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from ..builders import channel_shape, clip
from ..registry import maps

f32 = np.float32


@maps("ReLU", attrs=("negative_slope",))
def relu(ctx, node):
    slope = f32(node.attrs["negative_slope"])
    if slope == 0:
        ctx.emit("Relu", node.inputs, node.outputs[0])
    else:
        ctx.emit("LeakyRelu", node.inputs, node.outputs[0], alpha=float(slope))


@maps("PReLU", attrs=("channel_shared",))
def prelu(ctx, node):
    x = node.inputs[0]
    slope = ctx.weight_array(node, 0)
    if node.attrs["channel_shared"]:
        slope = slope.reshape(())
    else:
        slope = channel_shape(slope, len(ctx.shape(x)))
    ctx.emit("PRelu", [x, ctx.weight(node, 0, slope)], node.outputs[0])


@maps("ELU", attrs=("alpha",))
def elu(ctx, node):
    ctx.emit("Elu", node.inputs, node.outputs[0], alpha=float(f32(node.attrs["alpha"])))


def _simple(onnx_op):
    def fn(ctx, node):
        ctx.emit(onnx_op, node.inputs, node.outputs[0])
    return fn


maps("Sigmoid")(_simple("Sigmoid"))
maps("TanH")(_simple("Tanh"))
maps("AbsVal")(_simple("Abs"))
maps("Dropout")(_simple("Identity"))


@maps("BNLL")
def bnll(ctx, node):
    x = node.inputs[0]
    e = ctx.emit("Exp", [ctx.emit("Neg", [ctx.emit("Abs", [x])])])
    log = ctx.emit("Log", [ctx.emit("Add", [ctx.scalar(1.0, "one"), e])])
    ctx.emit("Add", [ctx.emit("Relu", [x]), log], node.outputs[0])


@maps("Power", attrs=("power", "scale", "shift"))
def power(ctx, node):
    a, x, out = node.attrs, node.inputs[0], node.outputs[0]
    p, scale, shift = f32(a["power"]), f32(a["scale"]), f32(a["shift"])
    if p * scale == 0:
        value = f32(1) if p == 0 else np.power(shift, p)
        shape = ctx.emit("Shape", [x])
        ctx.emit("ConstantOfShape", [shape], out,
                 value=helper.make_tensor("value", TensorProto.FLOAT, [1], [float(value)]))
        return
    steps = []
    if scale != 1:
        steps.append(("Mul", ctx.scalar(scale, "scale")))
    if shift != 0:
        steps.append(("Add", ctx.scalar(shift, "shift")))
    if p != 1:
        steps.append(("Pow", ctx.scalar(p, "power")))
    if not steps:
        ctx.emit("Identity", [x], out)
        return
    y = x
    for i, (op, c) in enumerate(steps):
        y = ctx.emit(op, [y, c], out if i == len(steps) - 1 else None)


@maps("Exp", attrs=("base", "scale", "shift"))
def exp(ctx, node):
    a, x, out = node.attrs, node.inputs[0], node.outputs[0]
    base, scale, shift = f32(a["base"]), f32(a["scale"]), f32(a["shift"])
    log_base = f32(1) if base == -1 else np.log(base)
    inner = f32(log_base * scale)
    if shift == 0:
        outer = f32(1)
    else:
        outer = f32(np.exp(shift) if base == -1 else np.power(base, shift))
    y = x if inner == 1 else ctx.emit("Mul", [ctx.scalar(inner, "inner"), x])
    if outer == 1:
        ctx.emit("Exp", [y], out)
    else:
        ctx.emit("Mul", [ctx.scalar(outer, "outer"), ctx.emit("Exp", [y])], out)


@maps("Log", attrs=("base", "scale", "shift"))
def log(ctx, node):
    a, x, out = node.attrs, node.inputs[0], node.outputs[0]
    base, scale, shift = f32(a["base"]), f32(a["scale"]), f32(a["shift"])
    base_scale = f32(1) if base == -1 else f32(f32(1) / np.log(base))
    y = x
    if scale != 1:
        y = ctx.emit("Mul", [y, ctx.scalar(scale, "scale")])
    if shift != 0:
        y = ctx.emit("Add", [y, ctx.scalar(shift, "shift")])
    if base_scale == 1:
        ctx.emit("Log", [y], out)
    else:
        ctx.emit("Mul", [ctx.scalar(base_scale, "base_scale"), ctx.emit("Log", [y])], out)


@maps("Threshold", attrs=("threshold",))
def threshold(ctx, node):
    x = node.inputs[0]
    g = ctx.emit("Greater", [x, ctx.scalar(f32(node.attrs["threshold"]), "threshold")])
    ctx.emit("Cast", [g], node.outputs[0], to=TensorProto.FLOAT)


@maps("Clip", attrs=("min", "max"))
def clip_op(ctx, node):
    clip(ctx, node.inputs[0], node.attrs["min"], node.attrs["max"], node.outputs[0])
