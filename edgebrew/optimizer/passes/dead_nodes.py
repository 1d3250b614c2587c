"""eliminate_dead_nodes: remove ops whose outputs nobody reads and that are no graph outputs."""
from __future__ import annotations

from ...ir import Graph, Node
from ..manager import PassRecord, graph_pass


def remove_dead(graph: Graph) -> list[Node]:
    """Remove (in place) every node none of whose outputs is read by a live node or is a graph
    output; returns the removed nodes in graph order."""
    live_tensors = set(graph.output_names)
    keep = []
    for node in reversed(graph.nodes):
        if any(t in live_tensors for t in node.outputs):
            keep.append(node)
            live_tensors.update(node.inputs)
    keep.reverse()
    kept = {id(n) for n in keep}
    dead = [n for n in graph.nodes if id(n) not in kept]
    graph.nodes = keep
    return dead


@graph_pass("eliminate_dead_nodes", "remove ops whose outputs nobody reads (and that are no "
                                    "graph outputs)")
def eliminate_dead_nodes(graph: Graph, record: PassRecord) -> Graph:
    for node in remove_dead(graph):
        record.add(f"removed dead {node.op_type}", [node.name])
    return graph
