"""The mapping table: IR op type -> function that emits that op's ONNX nodes.

A mapper has the signature ``mapper(ctx, node)``: it reads ``node.inputs`` (ONNX tensors of the
same names), emits nodes through ``ctx`` and writes every name in ``node.outputs``. Mappers live
in ``edgebrew/onnx_export/ops/``, one module per family, mirroring ``edgebrew/ir/ops``.

Each registration also lists the node attributes the mapper understands. An attribute outside
that list whose value differs from its declared default stops the export with an error naming the
layer, so an attribute added to an op later (by the optimizer, say) can never be silently
dropped from an export.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Mapping:
    op_type: str
    fn: Callable
    attrs: frozenset          # attributes the mapper reads (others must keep their defaults)


MAPPERS: dict[str, Mapping] = {}

# Attributes the optimizer may attach to Convolution, Deconvolution, InnerProduct and Eltwise
# (a fused activation after the op); see builders.apply_fused_activation.
FUSED_ACTIVATION_ATTRS = ("activation", "negative_slope", "clip_min", "clip_max")


def maps(*op_types: str, attrs=()):
    """Decorator: register ``fn`` as the ONNX mapping of ``op_types``."""
    def deco(fn):
        for t in op_types:
            if t in MAPPERS:
                raise RuntimeError(f"ONNX mapping of {t} declared twice")
            MAPPERS[t] = Mapping(t, fn, frozenset(attrs))
        return fn
    return deco
