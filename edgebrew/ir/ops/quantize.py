"""Quantize and Dequantize: the float32 <-> int8 borders of a quantized graph's int8 regions.

They have no attributes: the parameters are the int8 tensor's ``Graph.quant`` entry (the output
of Quantize, the input of Dequantize), exactly what the bundle stores and the C runtime reads.
The converter (edgebrew.quant) places them; the importer never produces them. Their arithmetic,
like every int8 kernel's, is in ``edgebrew.quant.int8_reference`` (it needs the graph's
quantization parameters, which an op's ``run`` does not see).
"""
from __future__ import annotations

from ...errors import GraphError
from .base import OpDef, register


class _Border(OpDef):
    # Not elementwise for the memory planner: input and output differ in element size.

    def infer_shapes(self, node, input_shapes):
        return [tuple(input_shapes[0])]

    def run(self, node, inputs, weights):
        raise GraphError(f"layer '{node.name}' ({self.type}) runs with the graph's quantization "
                         "parameters: use edgebrew.reference.run on the whole graph")


@register
class Quantize(_Border):
    type = "Quantize"


@register
class Dequantize(_Border):
    type = "Dequantize"
