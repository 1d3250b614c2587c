"""The IR: a Graph of named tensors and nodes in topological order, weights as initializers.

Tensors carry Caffe's blob names. An in-place layer (top == bottom) makes a new version of a
blob; the last version keeps the blob's name (as Caffe's ``net.forward()`` names it) and earlier
versions are named ``blob@layer`` after the layer that wrote them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..errors import GraphError, ShapeError
from .ops import get_op
from .quant_params import QuantParams

Shape = tuple[int, ...]


@dataclass
class TensorInfo:
    """A graph input or output: name, shape (NCHW for images) and dtype."""

    name: str
    shape: Shape
    dtype: np.dtype = np.dtype(np.float32)

    def __repr__(self):
        return f"TensorInfo({self.name!r}, {self.shape}, {np.dtype(self.dtype).name})"


@dataclass
class Node:
    """One op: a Caffe layer (or, after optimization, several fused into one)."""

    name: str                      # the layer name the user wrote
    op_type: str                   # Caffe's layer type name, e.g. "Convolution"
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: list[str] = field(default_factory=list)  # initializer names, in Caffe blob order
    # Caffe's per-blob (lr_mult, decay_mult) from the prototxt's `param` specs (fine-tuning).
    param_mults: list[tuple[float, float]] = field(default_factory=list)
    # Names of the layers the optimizer folded into this op (a Convolution that absorbed a
    # BatchNorm, a Scale and a ReLU lists those three), so reports and errors name them.
    fused: list[str] = field(default_factory=list)

    @property
    def op(self):
        return get_op(self.op_type)

    def copy(self) -> "Node":
        """A copy whose lists and attribute dict can be changed without touching this node."""
        return Node(self.name, self.op_type, list(self.inputs), list(self.outputs),
                    dict(self.attrs), list(self.weights), list(self.param_mults),
                    list(self.fused))

    def __repr__(self):
        fused = f", fused={self.fused}" if self.fused else ""
        return (f"Node({self.name!r}, {self.op_type}, in={self.inputs}, out={self.outputs}, "
                f"weights={self.weights}{fused})")


class Graph:
    """A network: inputs, nodes in execution order, outputs, initializers and known shapes."""

    def __init__(self, name: str = "", inputs: Iterable[TensorInfo] = (),
                 nodes: Iterable[Node] = (), outputs: Iterable[str] = (),
                 initializers: dict[str, np.ndarray] | None = None):
        self.name = name
        self.inputs: list[TensorInfo] = list(inputs)
        self.nodes: list[Node] = list(nodes)
        self.output_names: list[str] = list(outputs)
        self.initializers: dict[str, np.ndarray] = dict(initializers or {})
        self.shapes: dict[str, Shape] = {}   # every tensor's shape, filled by infer_shapes
        self.notes: list[str] = []           # what the importer dropped or changed, for the user
        # Quantized graphs (edgebrew.quant): activations that are not float32 (int8), and the
        # quantization parameters of int8 activations and of int8/int32 initializers.
        self.dtypes: dict[str, np.dtype] = {}
        self.quant: dict[str, QuantParams] = {}

    def copy(self) -> "Graph":
        """A copy to rewrite: new node objects, lists and dicts; the weight arrays are shared
        (passes replace initializers, they never write into an array)."""
        g = Graph.__new__(Graph)
        g.__dict__.update(self.__dict__)       # keeps extra fields (e.g. the importer's source)
        g.inputs = [TensorInfo(t.name, tuple(t.shape), t.dtype) for t in self.inputs]
        g.nodes = [n.copy() for n in self.nodes]
        g.output_names = list(self.output_names)
        g.initializers = dict(self.initializers)
        g.shapes = dict(self.shapes)
        g.notes = list(self.notes)
        g.dtypes = dict(self.dtypes)
        g.quant = dict(self.quant)
        return g

    # -- queries ------------------------------------------------------------------------------
    @property
    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo(n, self.shapes.get(n, ()), np.dtype(np.float32))
                for n in self.output_names]

    def dtype_of(self, name: str) -> np.dtype:
        """The element type of a tensor: an initializer's own, else the activation's."""
        if name in self.initializers:
            return self.initializers[name].dtype
        return np.dtype(self.dtypes.get(name, np.float32))

    @property
    def is_quantized(self) -> bool:
        return bool(self.quant)

    @property
    def has_weights(self) -> bool:
        return all(w in self.initializers for n in self.nodes for w in n.weights)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producers(self) -> dict[str, Node]:
        return {t: n for n in self.nodes for t in n.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for t in n.inputs:
                out.setdefault(t, []).append(n)
        return out

    # -- checks -------------------------------------------------------------------------------
    def validate(self) -> None:
        """Structure: every input defined before use, each tensor produced once, known ops,
        attributes complete. Order is checked as given, so a cycle shows as a use before
        definition."""
        defined = {}
        for t in self.inputs:
            if t.name in defined:
                raise GraphError(f"graph input '{t.name}' declared twice")
            defined[t.name] = "<input>"
        for n in self.nodes:
            op = get_op_for(n)
            if not op.min_inputs <= len(n.inputs) <= op.max_inputs:
                raise GraphError(f"layer '{n.name}' ({n.op_type}) takes "
                                 f"{_count(op.min_inputs, op.max_inputs)} bottom(s), "
                                 f"got {len(n.inputs)}")
            if op.num_outputs is not None and len(n.outputs) != op.num_outputs:
                raise GraphError(f"layer '{n.name}' ({n.op_type}) has {op.num_outputs} top(s), "
                                 f"got {len(n.outputs)}")
            if not n.outputs:
                raise GraphError(f"layer '{n.name}' ({n.op_type}) has no top")
            for t in n.inputs:
                if t not in defined:
                    raise GraphError(f"layer '{n.name}' ({n.op_type}): bottom '{t}' is not "
                                     "produced by any earlier layer or input")
            for t in n.outputs:
                if t in defined:
                    raise GraphError(f"layer '{n.name}' ({n.op_type}): top '{t}' is already "
                                     f"produced by '{defined[t]}'")
                defined[t] = n.name
            n.attrs = op.normalize_attrs(n.name, n.attrs)
            if len(n.weights) != op.num_weights(n):
                raise GraphError(f"layer '{n.name}' ({n.op_type}) takes {op.num_weights(n)} "
                                 f"weight blob(s), has {len(n.weights)}")
        for t in self.output_names:
            if t not in defined:
                raise GraphError(f"graph output '{t}' is not produced by any layer")

    def infer_shapes(self) -> dict[str, Shape]:
        """Shapes of every tensor, and of every weight blob checked against what the op expects."""
        self.validate()
        shapes: dict[str, Shape] = {t.name: tuple(int(d) for d in t.shape) for t in self.inputs}
        for t in self.inputs:
            if any(d <= 0 for d in shapes[t.name]):
                raise ShapeError(f"input '{t.name}' has a non-positive dimension: "
                                 f"{shapes[t.name]}")
        for n in self.nodes:
            op = n.op
            in_shapes = [shapes[t] for t in n.inputs]
            out_shapes = op.infer_shapes(n, in_shapes)
            for t, s in zip(n.outputs, out_shapes):
                s = tuple(int(d) for d in s)
                if any(d <= 0 for d in s):
                    raise ShapeError(f"layer '{n.name}' ({n.op_type}): output '{t}' would have "
                                     f"shape {s} (inputs {in_shapes})")
                shapes[t] = s
            self.check_weights(n, in_shapes)
        self.shapes = shapes
        return shapes

    def check_weights(self, node: Node, in_shapes) -> None:
        expected = node.op.weight_shapes(node, in_shapes)
        for wname, want in zip(node.weights, expected):
            w = self.initializers.get(wname)
            if w is not None and tuple(w.shape) != tuple(want):
                raise ShapeError(f"layer '{node.name}' ({node.op_type}): weight blob "
                                 f"'{wname}' has shape {tuple(w.shape)}, the layer needs "
                                 f"{tuple(want)}")

    def weight_shapes(self, node: Node) -> list[Shape]:
        """Expected weight shapes of a node (works without weights: for parameter counts)."""
        return [tuple(s) for s in node.op.weight_shapes(node, [self.shapes[t] for t in node.inputs])]

    def __repr__(self):
        return (f"Graph({self.name!r}, inputs={self.inputs}, {len(self.nodes)} nodes, "
                f"outputs={self.output_names})")


def get_op_for(node: Node):
    try:
        return get_op(node.op_type)
    except GraphError:
        raise GraphError(f"layer '{node.name}': unknown op type '{node.op_type}'") from None


def _count(lo, hi):
    return str(lo) if lo == hi else f"{lo}..{hi}"
