"""Quantize / Dequantize (the int8 borders of a quantized graph) in ONNX's QDQ form.

The exporter represents every int8 IR tensor t as QuantizeLinear -> ``t/int8`` ->
DequantizeLinear -> ``t`` (see ``exporter.export_qdq_node``). Quantize is therefore that pair
on its float input; Dequantize is an Identity, its input ``t`` being already the dequantized
float.
"""
from __future__ import annotations

import numpy as np

from ..registry import maps


def quantize_pair(ctx, float_in: str, t: str) -> str:
    """QuantizeLinear(float_in) -> ``t/int8`` -> DequantizeLinear -> ``t`` with t's grid."""
    q = ctx.graph.quant[t]
    scale = ctx.scalar(q.s, f"{t}_scale")
    zp = ctx.scalar(q.zp, f"{t}_zero_point", np.int8)
    return ctx.emit("DequantizeLinear",
                    [ctx.emit("QuantizeLinear", [float_in, scale, zp], f"{t}/int8"), scale, zp], t)


@maps("Quantize")
def quantize(ctx, node):
    quantize_pair(ctx, node.inputs[0], node.outputs[0])


@maps("Dequantize")
def dequantize(ctx, node):
    ctx.emit("Identity", [node.inputs[0]], node.outputs[0])
