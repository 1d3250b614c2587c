"""fuse_activations: fold ReLU (any negative_slope), PReLU, Clip (ReLU6), Sigmoid and TanH into
the Convolution, Deconvolution, InnerProduct or Eltwise that produces their input.

The producer gets the attributes ``activation`` (the activation's type name), ``negative_slope``
(ReLU), ``clip_min`` / ``clip_max`` (Clip) and, for PReLU, a last weight blob ``slope`` with one
value per output channel (a channel-shared slope is repeated). Its reference ``run`` applies the
activation with the standalone op's own code (``edgebrew/ir/ops/activations.py``). Eltwise SUM +
ReLU — the end of every ResNet block — is one op afterwards.

Never fused: when the producer's output is read by another op or is a graph output, or when the
producer already has an activation. The producer keeps its name and type, lists the activation in
``fused`` and writes the activation's output tensor (so an in-place ReLU's blob keeps its name).
"""
from __future__ import annotations

import numpy as np

from ...ir import Graph, Node
from ..manager import PassRecord, graph_pass
from ._util import absorb, has_weights, sole_consumer, weight_name

ACTIVATIONS = ("ReLU", "PReLU", "Clip", "Sigmoid", "TanH")
PRODUCERS = ("Convolution", "Deconvolution", "InnerProduct", "Eltwise")


def fusable_producer(graph: Graph, act: Node, producers, consumers) -> Node | None:
    if act.op_type not in ACTIVATIONS or len(act.inputs) != 1:
        return None
    x = act.inputs[0]
    p = producers.get(x)
    if p is None or p.op_type not in PRODUCERS or len(p.outputs) != 1:
        return None
    if p.attrs.get("activation") is not None or sole_consumer(graph, x, consumers) is not act:
        return None
    if act.op_type == "PReLU" and not 2 <= len(graph.shapes[x]) <= 4:
        return None
    return p


def fuse_into(graph: Graph, p: Node, act: Node) -> None:
    a = act.attrs
    p.attrs["activation"] = act.op_type
    if act.op_type == "ReLU":
        p.attrs["negative_slope"] = float(a["negative_slope"])
    elif act.op_type == "Clip":
        p.attrs["clip_min"], p.attrs["clip_max"] = float(a["min"]), float(a["max"])
    elif act.op_type == "PReLU":
        channels = int(graph.shapes[act.inputs[0]][1])
        name = weight_name(graph, p, "slope")
        if has_weights(graph, act.weights):
            slope = np.asarray(graph.initializers[act.weights[0]])
            graph.initializers[name] = np.ascontiguousarray(
                np.broadcast_to(slope.reshape(-1), (channels,)),
                dtype=slope.dtype if slope.dtype.kind == "f" else np.float32)
        if act.param_mults and len(p.param_mults) == len(p.weights):
            p.param_mults.append(tuple(act.param_mults[0]))
        p.weights = list(p.weights) + [name]      # the op's last blob: "slope"
    p.outputs = list(act.outputs)
    absorb(p, act)
    graph.nodes.remove(act)


@graph_pass("fuse_activations", "fuse ReLU, PReLU, Clip, Sigmoid and TanH into the preceding "
                                "Convolution, Deconvolution, InnerProduct or Eltwise")
def fuse_activations(graph: Graph, record: PassRecord) -> Graph:
    producers, consumers = graph.producers(), graph.consumers()
    for act in list(graph.nodes):
        p = fusable_producer(graph, act, producers, consumers)
        if p is None:
            continue
        fuse_into(graph, p, act)
        producers = graph.producers()
        record.add(f"fused {act.op_type} into {p.op_type}", [act.name], into=p.name)
    return graph
