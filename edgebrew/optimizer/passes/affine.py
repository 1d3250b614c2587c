"""batchnorm_to_scale and merge_affine: per-channel affine ops become one Scale each.

The per-channel affine op of the IR is Caffe's own ``Scale`` with ``bias_term: true`` on axis 1
(``y = x * scale + bias``, blobs ``(C,)``, ``(C,)``): no new op, so every backend already runs it.

* batchnorm_to_scale: a BatchNorm that could not be folded into a producer (e.g. after a pooling
  or at the net's input) becomes that Scale — the same layer name, type "Scale", with
  ``scale = 1 / sqrt(f var + eps)`` and ``bias = -f mean * scale`` (f from the moving-average
  factor; 0 means 0).
* merge_affine: consecutive affine ops (BatchNorm, Scale, Bias with weight operands on axis 1),
  each read only by the next and no graph output, become one Scale: ``s = s2 s1``, ``t = s2 t1 +
  t2``. The merged op takes the name of the chain's last layer (whose output tensor it writes)
  and lists the others in ``fused`` — BatchNorm + Scale becomes the Scale layer with the
  BatchNorm in ``fused``.
"""
from __future__ import annotations

from ...ir import Graph
from ..manager import PassRecord, graph_pass
from ._util import affine_of, as_float32_like, scale_node, set_weights, sole_consumer


def _replace(graph: Graph, old_nodes, new_node) -> None:
    i = graph.nodes.index(old_nodes[-1])
    graph.nodes[i] = new_node
    for n in old_nodes[:-1]:
        graph.nodes.remove(n)


@graph_pass("batchnorm_to_scale", "turn each remaining BatchNorm into one per-channel affine op "
                                  "(Scale with bias)")
def batchnorm_to_scale(graph: Graph, record: PassRecord) -> Graph:
    for node in list(graph.nodes):
        if node.op_type != "BatchNorm":
            continue
        aff = affine_of(graph, node)
        if aff is None:
            continue
        vals = aff.values(graph)
        like = graph.initializers.get(node.weights[0])
        new = scale_node(node.name, node.inputs, node.outputs, node.fused)
        _replace(graph, [node], new)
        set_weights(graph, new, ["scale", "bias"],
                    None if vals is None else [as_float32_like(v, like) for v in vals])
        record.add("BatchNorm -> Scale", [node.name])
    return graph


@graph_pass("merge_affine", "merge consecutive per-channel affine ops (BatchNorm/Scale/Bias) "
                            "into one Scale")
def merge_affine(graph: Graph, record: PassRecord) -> Graph:
    changed = True
    while changed:
        changed = False
        consumers = graph.consumers()
        for first in list(graph.nodes):
            a1 = affine_of(graph, first)
            if a1 is None:
                continue
            second = sole_consumer(graph, first.outputs[0], consumers)
            a2 = affine_of(graph, second) if second is not None else None
            if a2 is None or a2.channels != a1.channels:
                continue
            v1, v2 = a1.values(graph), a2.values(graph)
            values = None
            if v1 is not None and v2 is not None:
                (s1, t1), (s2, t2) = v1, v2
                like = graph.initializers.get(second.weights[0])
                values = [as_float32_like(s2 * s1, like), as_float32_like(s2 * t1 + t2, like)]
            fused = list(first.fused) + [first.name] + list(second.fused)
            new = scale_node(second.name, first.inputs, second.outputs, fused)
            _replace(graph, [first, second], new)
            set_weights(graph, new, ["scale", "bias"], values)
            record.add(f"merged {first.op_type} + {second.op_type}", [first.name],
                       into=second.name)
            changed = True
            break
    return graph
