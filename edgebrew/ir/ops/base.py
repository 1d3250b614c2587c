"""How an op is declared: its attributes, weights, shape inference and NumPy reference.

An op is declared once, as a subclass of ``OpDef`` registered with ``@register``. Every backend
(the C runtime, int8, CUDA, ONNX export) implements that declaration and is tested against its
``run``, which follows Caffe's semantics exactly. Op types are Caffe's layer type names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from ...errors import GraphError, ShapeError

Shape = tuple[int, ...]

REQUIRED = object()  # default of an attribute the importer must always set


@dataclass(frozen=True)
class Attr:
    """One attribute of an op: its name and default (``REQUIRED`` if it has none)."""

    name: str
    default: Any = REQUIRED
    doc: str = ""


class OpDef:
    """Base class of every op declaration; subclasses are stateless singletons."""

    type: ClassVar[str]
    attrs: ClassVar[tuple[Attr, ...]] = ()
    # Names of the weight blobs in Caffe's blob order; a node may carry a prefix of them
    # (``optional_weights`` trailing ones may be absent, e.g. the bias when bias_term is false).
    weights: ClassVar[tuple[str, ...]] = ()
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int] = 1
    # Number of outputs; None means "as many as the node lists" (Split, Slice).
    num_outputs: ClassVar[int | None] = 1
    # Elementwise ops whose output may overwrite their first input (memory planner, C runtime).
    elementwise: ClassVar[bool] = False

    # -- declaration helpers -------------------------------------------------------------
    def normalize_attrs(self, node_name: str, attrs: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and reject unknown or missing attributes."""
        known = {a.name: a for a in self.attrs}
        unknown = set(attrs) - set(known)
        if unknown:
            raise GraphError(f"layer '{node_name}' ({self.type}): unknown attribute(s) "
                             f"{sorted(unknown)}")
        out = {}
        for a in self.attrs:
            if a.name in attrs:
                out[a.name] = attrs[a.name]
            elif a.default is REQUIRED:
                raise GraphError(f"layer '{node_name}' ({self.type}): attribute '{a.name}' "
                                 "is required")
            else:
                out[a.name] = a.default
        return out

    def num_weights(self, node) -> int:
        """How many weight blobs a node of this op carries (given its attributes)."""
        return len(self.weights)

    def weight_names(self, node) -> list[str]:
        """Names of the node's weight slots (suffixes of its initializer names)."""
        return list(self.weights[:self.num_weights(node)])

    # -- what every op implements ----------------------------------------------------------
    def infer_shapes(self, node, input_shapes: Sequence[Shape]) -> list[Shape]:
        """Output shapes from the input shapes and attributes; raise ShapeError on misfit."""
        raise NotImplementedError

    def weight_shapes(self, node, input_shapes: Sequence[Shape]) -> list[Shape]:
        """The shape Caffe gives each of the node's weight blobs (to validate a caffemodel)."""
        return []

    def run(self, node, inputs: Sequence[np.ndarray],
            weights: Sequence[np.ndarray]) -> list[np.ndarray]:
        """NumPy reference: compute outputs in the inputs' dtype, exactly as Caffe does."""
        raise NotImplementedError

    def macs(self, node, input_shapes: Sequence[Shape], output_shapes: Sequence[Shape]) -> int:
        """Multiply-accumulates for one image (batch 1); nonzero for Conv/Deconv/InnerProduct."""
        return 0

    # -- shared error helper ---------------------------------------------------------------
    def shape_error(self, node, message: str) -> ShapeError:
        return ShapeError(f"layer '{node.name}' ({self.type}): {message}")


OPS: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    """Class decorator: make an op declaration known by its Caffe type name."""
    if cls.type in OPS:
        raise RuntimeError(f"op {cls.type} declared twice")
    OPS[cls.type] = cls()
    return cls


def get_op(op_type: str) -> OpDef:
    try:
        return OPS[op_type]
    except KeyError:
        raise GraphError(f"unknown op type '{op_type}'") from None


def canonical_axis(node, axis: int, ndim: int, op: OpDef) -> int:
    """Caffe's CanonicalAxisIndex: a negative axis counts from the end; out of range is an error."""
    if not -ndim <= axis < ndim:
        raise op.shape_error(node, f"axis {axis} out of range for a {ndim}-d input")
    return axis % ndim
