"""Convolution -> Conv, Deconvolution -> ConvTranspose (plus an optimizer-fused activation).

Both are exact maps: ONNX Conv's floor output size and symmetric pads are Caffe's; ConvTranspose
with symmetric pads and no output_padding gives Caffe's ``s*(H-1) + d*(k-1) + 1 - 2p``, and its
weight layout (C_in, C_out/group, kh, kw) is Caffe's Deconvolution blob layout.
"""
from __future__ import annotations

from ..builders import FUSED_ACTIVATION_ATTRS, apply_fused_activation, main_output
from ..registry import maps

_GEOMETRY = ("num_output", "kernel", "stride", "pad", "dilation", "group", "bias_term")


def _conv(ctx, node, onnx_op):
    a = node.attrs
    inputs = [node.inputs[0], ctx.weight(node, 0)]
    if a["bias_term"]:
        inputs.append(ctx.weight(node, 1))
    (ph, pw) = (int(v) for v in a["pad"])
    y = ctx.emit(onnx_op, inputs, main_output(ctx, node),
                 kernel_shape=[int(v) for v in a["kernel"]],
                 strides=[int(v) for v in a["stride"]],
                 pads=[ph, pw, ph, pw],
                 dilations=[int(v) for v in a["dilation"]],
                 group=int(a["group"]))
    apply_fused_activation(ctx, node, y, 4)


@maps("Convolution", attrs=_GEOMETRY + FUSED_ACTIVATION_ATTRS)
def convolution(ctx, node):
    _conv(ctx, node, "Conv")


@maps("Deconvolution", attrs=_GEOMETRY + FUSED_ACTIVATION_ATTRS)
def deconvolution(ctx, node):
    _conv(ctx, node, "ConvTranspose")
