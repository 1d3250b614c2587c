"""Graph-editing helpers shared by the passes: tensor renaming, weight naming, per-channel
affine ops (BatchNorm, Scale, Bias) as (scale, shift) pairs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir import Graph, Node
from ...ir.ops import canonical_axis

# Ops that the affine folds can write into (their output channels are on axis 1).
LINEAR_OPS = ("Convolution", "Deconvolution", "InnerProduct")
AFFINE_OPS = ("BatchNorm", "Scale", "Bias")


def is_graph_output(graph: Graph, tensor: str) -> bool:
    return tensor in graph.output_names


def is_graph_input(graph: Graph, tensor: str) -> bool:
    return any(t.name == tensor for t in graph.inputs)


def sole_consumer(graph: Graph, tensor: str, consumers=None) -> Node | None:
    """The one node that reads ``tensor`` (once), when nothing else does and it is no graph
    output; else None. This is the condition for fusing the tensor's producer and reader."""
    if is_graph_output(graph, tensor):
        return None
    readers = (consumers or graph.consumers()).get(tensor, [])
    if len(readers) != 1 or readers[0].inputs.count(tensor) != 1:
        return None
    return readers[0]


def replace_uses(graph: Graph, old: str, new: str) -> None:
    """Every node that reads ``old`` reads ``new`` instead."""
    for n in graph.nodes:
        if old in n.inputs:
            n.inputs = [new if t == old else t for t in n.inputs]


def rename_tensor(graph: Graph, old: str, new: str) -> None:
    """The tensor ``old`` is called ``new`` everywhere (writer, readers, graph outputs)."""
    for n in graph.nodes:
        n.inputs = [new if t == old else t for t in n.inputs]
        n.outputs = [new if t == old else t for t in n.outputs]
    graph.output_names = [new if t == old else t for t in graph.output_names]
    if old in graph.shapes:
        graph.shapes[new] = graph.shapes.pop(old)


def absorb(target: Node, victim: Node, victim_first: bool = False) -> None:
    """``target`` absorbed ``victim``: keep the victim's name (and what it had absorbed) in
    ``target.fused``, in execution order."""
    names = list(victim.fused) + [victim.name]
    target.fused = names + list(target.fused) if victim_first else list(target.fused) + names


def has_weights(graph: Graph, names) -> bool:
    return all(w in graph.initializers for w in names)


def weight_name(graph: Graph, node: Node, slot: str) -> str:
    """A name for a new value of ``node``'s blob ``slot``: ``<layer>.<slot>`` unless another
    node uses that name (a shared blob must keep its value for the other node)."""
    users = {w: n for n in graph.nodes if n is not node for w in n.weights}
    base = f"{node.name}.{slot}"
    name, k = base, 1
    while name in users:      # a stale initializer (no reader left) may be overwritten
        k += 1
        name = f"{base}#{k}"
    return name


def set_weights(graph: Graph, node: Node, slots: list[str], values) -> None:
    """Give ``node`` the blobs ``slots`` (its full, ordered list) with ``values`` (arrays, or
    None when the graph has no weights: the names are set, the values stay absent)."""
    names = [weight_name(graph, node, s) for s in slots]
    # Two slots may not get one name (e.g. a blob shared inside one node): make them distinct.
    seen = set()
    for i, n in enumerate(names):
        k = 1
        while names[i] in seen:
            k += 1
            names[i] = f"{n}#{k}"
        seen.add(names[i])
    node.weights = names
    if values is not None:
        for name, v in zip(names, values):
            graph.initializers[name] = v


def out_channels(graph: Graph, node: Node) -> int:
    """Channels (axis 1) of the node's first output."""
    return int(graph.shapes[node.outputs[0]][1])


# -------------------------------------------------------------------- per-channel affine ops
@dataclass
class Affine:
    """``y = scale * x + shift`` per channel (axis 1) of ``channels`` channels; ``uniform``
    when one value applies to every channel (a 0-axis Scale/Bias operand)."""

    node: Node
    channels: int
    uniform: bool

    def values(self, graph: Graph):
        """(scale, shift) as float64 arrays of shape (channels,), or None without weights."""
        n = self.node
        if not has_weights(graph, n.weights):
            return None
        w = [np.asarray(graph.initializers[k], np.float64) for k in n.weights]
        c = self.channels
        if n.op_type == "BatchNorm":
            mean, var, factor = w
            f0 = factor.reshape(-1)[0]
            f = 0.0 if f0 == 0 else 1.0 / f0
            with np.errstate(divide="ignore"):
                scale = 1.0 / np.sqrt(f * var + float(n.attrs["eps"]))
            return scale.reshape(c), (-f * mean * scale).reshape(c)
        if n.op_type == "Scale":
            scale = np.broadcast_to(w[0].reshape(-1), (c,)).copy()
            shift = (np.broadcast_to(w[1].reshape(-1), (c,)).copy() if n.attrs["bias_term"]
                     else np.zeros(c))
            return scale, shift
        return np.ones(c), np.broadcast_to(w[0].reshape(-1), (c,)).copy()   # Bias


def affine_of(graph: Graph, node: Node) -> Affine | None:
    """The node as a per-channel affine op on axis 1, or None (other ops; a Scale or Bias whose
    operand is a second input or spans other axes)."""
    if node.op_type not in AFFINE_OPS or len(node.inputs) != 1 or len(node.outputs) != 1:
        return None
    shape = graph.shapes.get(node.inputs[0])
    if shape is None or len(shape) < 2:
        return None
    c = int(shape[1])
    if node.op_type == "BatchNorm":
        return Affine(node, c, False)
    operand = tuple(graph.weight_shapes(node)[0])
    if operand == ():
        return Affine(node, c, True)
    axis = canonical_axis(node, node.attrs["axis"], len(shape), node.op)
    if axis == 1 and operand == (c,):
        return Affine(node, c, False)
    return None


def scale_node(name: str, inputs, outputs, fused) -> Node:
    """A per-channel affine op as Caffe's Scale with a bias: ``y = x * scale + bias``."""
    return Node(name, "Scale", list(inputs), list(outputs),
                {"axis": 1, "num_axes": 1, "bias_term": True}, [], [], list(fused))


def as_float32_like(value: np.ndarray, like: np.ndarray | None) -> np.ndarray:
    """A folded blob in the dtype of the blob it replaces (float32 from a caffemodel)."""
    dtype = like.dtype if like is not None and like.dtype.kind == "f" else np.float32
    return np.ascontiguousarray(value, dtype=dtype)
