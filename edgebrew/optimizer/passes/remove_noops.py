"""remove_noops: drop ops that do nothing at inference.

* Dropout (Caffe's TEST phase copies its input), Split (copies), Power(power 1, scale 1,
  shift 0);
* Reshape / Flatten whose output shape equals the input's;
* Reshape / Flatten read only by InnerProducts whose flattening gives the same (M, K) either way
  (e.g. Flatten(axis 1) -> InnerProduct(axis 1)): the InnerProduct reads the unflattened tensor.

Names: when the removed op is its input's only reader, the input takes the op's output name (the
producer then writes the blob's later name, e.g. an in-place Dropout's blob keeps its final name);
otherwise the op's readers read its input. A graph output's name always survives; when both the
input and the output are named by the user (graph input or output), the op stays.
"""
from __future__ import annotations

from ...ir import Graph, Node
from ...ir.ops import canonical_axis
from ..manager import PassRecord, graph_pass
from ._util import is_graph_input, is_graph_output, rename_tensor, replace_uses


def _is_identity(graph: Graph, node: Node) -> bool:
    t = node.op_type
    if t in ("Dropout", "Split"):
        return True
    if t == "Power":
        a = node.attrs
        return float(a["power"]) == 1 and float(a["scale"]) == 1 and float(a["shift"]) == 0
    if t in ("Reshape", "Flatten"):
        return tuple(graph.shapes[node.inputs[0]]) == tuple(graph.shapes[node.outputs[0]])
    return False


def _inner_product_view(graph: Graph, node: Node, consumers) -> list[tuple[Node, int]] | None:
    """For a Reshape/Flatten read only by InnerProducts that flatten the same way from the
    unreshaped input: [(InnerProduct, its axis on the input)], else None."""
    if node.op_type not in ("Reshape", "Flatten") or is_graph_output(graph, node.outputs[0]):
        return None
    x, y = graph.shapes[node.inputs[0]], graph.shapes[node.outputs[0]]
    readers = consumers.get(node.outputs[0], [])
    if not readers:
        return None
    out = []
    for r in readers:
        if r.op_type != "InnerProduct":
            return None
        a = canonical_axis(r, r.attrs["axis"], len(y), r.op)
        # Same M = prod(shape[:a]) and output shape shape[:a] + (N,) on x as on y.
        if not 0 < a < len(x) or tuple(x[:a]) != tuple(y[:a]):
            return None
        out.append((r, a))
    return out


def _remove(graph: Graph, node: Node, record: PassRecord, kind: str) -> bool:
    """Remove an op whose outputs all equal its first input. False if names forbid it."""
    x = node.inputs[0]
    outs = list(node.outputs)
    kept = [y for y in outs if is_graph_output(graph, y)]
    if len(kept) > 1:
        return False
    renameable = not is_graph_input(graph, x) and not is_graph_output(graph, x)
    if kept and not renameable:
        return False
    sole = [n is node for n in graph.consumers().get(x, [])] == [True]
    if kept or (renameable and sole and len(outs) == 1):
        # The producer writes the removed op's output name: the user's (graph output) or the
        # blob's later name (an in-place Dropout's output is the blob's final version).
        rename_tensor(graph, x, (kept or outs)[0])
        x = (kept or outs)[0]
    graph.nodes.remove(node)
    for y in outs:
        if y != x:
            replace_uses(graph, y, x)
    record.add(kind, [node.name])
    return True


@graph_pass("remove_noops", "remove inference no-ops: Dropout, Split, identity Reshape/Flatten, "
                            "Power(1, 1, 0)")
def remove_noops(graph: Graph, record: PassRecord) -> Graph:
    for node in list(graph.nodes):
        if _is_identity(graph, node):
            kind = f"removed {node.op_type}"
            if not _remove(graph, node, record, kind):
                record.notes.append(f"'{node.name}' ({node.op_type}) kept: its input and output "
                                    "are both named by the user (graph input/output)")
            continue
        view = _inner_product_view(graph, node, graph.consumers())
        if view is not None:
            for ip, axis in view:
                ip.attrs["axis"] = axis
            graph.nodes.remove(node)
            replace_uses(graph, node.outputs[0], node.inputs[0])
            record.add(f"removed {node.op_type}", [node.name],
                       note="InnerProduct flattens the same way")
    return graph
