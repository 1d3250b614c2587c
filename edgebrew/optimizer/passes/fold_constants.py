"""fold_constants: evaluate constant subgraphs at conversion time where the IR can hold them.

A tensor is constant when its value does not depend on what is fed: a PriorBox output (it reads
only its inputs' shapes, which are fixed), a Power with ``power * scale == 0`` (it ignores its
input), a Crop of a constant (its second input gives only a shape), and the output of any other
op whose inputs are all constant.

Representation. The IR has no constant activations: weights (initializers) reach an op only
through its weight blobs, and neither the bundle nor the C runtime has a "constant tensor" op
(adding one would change bundle.fbs and the runtime). So this pass folds exactly what the IR can
express: a constant read as the *operand* of a Scale or Bias (their second input) becomes that op's
weight blob (``num_axes`` = the operand's rank, so the op computes the same broadcast), and the
ops that computed it are removed when nothing else reads them. Constants read elsewhere — e.g.
SSD's PriorBox -> Concat -> DetectionOutput, whose priors are an input of DetectionOutput — stay
computed at run time; the pass notes each of them, and a runtime may compute them once per session.
"""
from __future__ import annotations

import numpy as np

from ...ir import Graph, Node
from ..manager import PassRecord, graph_pass
from ._util import as_float32_like, set_weights
from .dead_nodes import remove_dead

# Ops whose output depends on their inputs' values only through the listed input indices.
_SHAPE_ONLY = {"PriorBox": (), "Crop": (0,)}
# Ops never folded: output shape depends on the data.
_NEVER = ("DetectionOutput",)


def _value_inputs(node: Node) -> tuple[int, ...]:
    if node.op_type == "Power":
        a = node.attrs
        if float(a["power"]) * float(a["scale"]) == 0:
            return ()
    if node.op_type in _SHAPE_ONLY:
        return _SHAPE_ONLY[node.op_type]
    return tuple(range(len(node.inputs)))


def constant_tensors(graph: Graph) -> set[str]:
    """Tensors whose value is fixed at conversion time (see the module docstring)."""
    inputs = {t.name for t in graph.inputs}
    const: set[str] = set()
    for node in graph.nodes:
        if node.op_type in _NEVER:
            continue
        vals = [node.inputs[i] for i in _value_inputs(node)]
        if all(t in const for t in vals) and not any(t in inputs for t in vals):
            const.update(node.outputs)
    return const


class _Evaluator:
    """Computes constant tensors in float64 with the ops' reference ``run``."""

    def __init__(self, graph: Graph):
        self.graph, self.producers, self.memo = graph, graph.producers(), {}

    def value(self, tensor: str):
        if tensor in self.memo:
            return self.memo[tensor]
        g = self.graph
        node = self.producers[tensor]
        if not all(w in g.initializers for w in node.weights):
            return None                              # no weights: fold the structure only
        wanted = set(_value_inputs(node))
        inputs = []
        for i, t in enumerate(node.inputs):
            if i in wanted:
                v = self.value(t)
                if v is None:
                    return None
                inputs.append(v)
            else:                                    # only its shape is read
                inputs.append(np.zeros(g.shapes[t], np.float64))
        weights = [np.asarray(g.initializers[w], np.float64) for w in node.weights]
        for t, v in zip(node.outputs, node.op.run(node, inputs, weights)):
            self.memo[t] = np.asarray(v, np.float64)
        return self.memo[tensor]


@graph_pass("fold_constants", "evaluate constant subgraphs (e.g. a Scale/Bias operand computed "
                              "from shapes) into weight blobs")
def fold_constants(graph: Graph, record: PassRecord) -> Graph:
    const = constant_tensors(graph)
    if not const:
        return graph
    producers = graph.producers()
    evaluator = _Evaluator(graph)
    for node in graph.nodes:
        if node.op_type in ("Scale", "Bias") and len(node.inputs) == 2 \
                and node.inputs[1] in const and node.inputs[0] not in const:
            operand = node.inputs[1]
            value = evaluator.value(operand)
            shape = tuple(graph.shapes[operand])
            old = [graph.initializers.get(w) for w in node.weights]
            if node.op_type == "Scale":
                slots = ["scale"] + (["bias"] if node.attrs["bias_term"] else [])
                values = None if value is None or any(o is None for o in old) else \
                    [as_float32_like(value, None)] + old
            else:
                slots = ["bias"]
                values = None if value is None else [as_float32_like(value, None)]
            node.inputs = node.inputs[:1]
            node.attrs["num_axes"] = len(shape)
            set_weights(graph, node, slots, values)
            record.add(f"{node.op_type} operand folded", [producers[operand].name],
                       into=node.name)
    for dead in remove_dead(graph):
        record.add(f"removed constant {dead.op_type}", [dead.name])
    # What stays computed at run time (the frontier of the constant subgraph), for the report.
    consumers = graph.consumers()
    names = {t.name for t in graph.inputs}
    for t in sorted({t for n in graph.nodes for t in n.inputs if t in const and t not in names}):
        readers = [r for r in consumers.get(t, []) if not set(r.outputs) <= const]
        if readers:
            record.notes.append(
                f"'{t}' is constant (from '{producers[t].name}') but read by "
                f"{', '.join(repr(r.name) + ' (' + r.op_type + ')' for r in readers)} as an "
                "input, which the IR cannot give a constant: computed at run time")
    return graph
