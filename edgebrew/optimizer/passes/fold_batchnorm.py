"""fold_batchnorm: fold BatchNorm, Scale and Bias into the Convolution, Deconvolution or
InnerProduct that produces their input.

A per-channel affine op ``y = s * x + t`` (BatchNorm with its moving-average factor — a factor
of 0 means statistics 0, as in Caffe —, a Scale or Bias whose operand is a weight blob on axis 1,
or a 0-axis one) after ``x = W * in + b`` becomes ``W' = s * W`` (per output channel), ``b' = s * b
+ t``; a producer without a bias gains one. Chains fold one op at a time (conv -> BatchNorm ->
Scale: both), whether or not they were written in place.

Never folded: when the producer's output is read by any other op or is a graph output (its value
would change), when the producer already carries a fused activation, or (InnerProduct) when
axis 1 of the output is not the num_output axis. The folded op keeps its name and type and lists
the absorbed layers in ``fused``; it takes over the absorbed op's output tensor (so the blob's
final name, the one a user fetches, survives).

Folded blobs are computed in float64 from the stored ones and stored in their dtype (float32).
"""
from __future__ import annotations

import numpy as np

from ...ir import Graph, Node
from ..manager import PassRecord, graph_pass
from ._util import (LINEAR_OPS, absorb, affine_of, as_float32_like, has_weights,
                    set_weights, sole_consumer)


def foldable_producer(graph: Graph, node: Node, producers, consumers) -> Node | None:
    """The Conv/Deconv/InnerProduct that affine ``node`` can fold into, or None."""
    aff = affine_of(graph, node)
    if aff is None:
        return None
    x = node.inputs[0]
    p = producers.get(x)
    if p is None or p.op_type not in LINEAR_OPS or len(p.outputs) != 1:
        return None
    if p.attrs.get("activation") is not None:
        return None
    if sole_consumer(graph, x, consumers) is not node:
        return None
    out = graph.shapes[x]
    if p.op_type == "InnerProduct" and len(out) != 2 and not aff.uniform:
        return None           # axis 1 of the output is not the num_output axis
    if int(out[1]) != aff.channels:
        return None
    return p


def _fold_values(graph: Graph, p: Node, scale: np.ndarray, shift: np.ndarray):
    """(new weight, new bias) of producer ``p`` after ``y = scale * p(x) + shift``."""
    a = p.attrs
    w = np.asarray(graph.initializers[p.weights[0]], np.float64)
    n_out = a["num_output"]
    b = np.asarray(graph.initializers[p.weights[1]], np.float64) if a["bias_term"] \
        else np.zeros(n_out)
    if p.op_type == "Convolution":            # (M, C/g, kh, kw)
        w2 = w * scale.reshape(-1, 1, 1, 1)
    elif p.op_type == "Deconvolution":        # (C, M/g, kh, kw), group-major output channels
        g = a["group"]
        c, mg = w.shape[0], w.shape[1]
        w2 = (w.reshape(g, c // g, mg, *w.shape[2:])
              * scale.reshape(g, 1, mg, 1, 1)).reshape(w.shape)
    elif a["transpose"]:                      # InnerProduct (K, N)
        w2 = w * scale.reshape(1, -1)
    else:                                     # InnerProduct (N, K)
        w2 = w * scale.reshape(-1, 1)
    return w2, b * scale + shift


def fold_into(graph: Graph, p: Node, node: Node) -> None:
    """Fold affine ``node`` into its producer ``p`` (checked by ``foldable_producer``)."""
    aff = affine_of(graph, node)
    values = None
    if has_weights(graph, p.weights) and has_weights(graph, node.weights):
        scale, shift = aff.values(graph)
        n_out = p.attrs["num_output"]
        if aff.uniform:
            scale, shift = np.full(n_out, scale[0]), np.full(n_out, shift[0])
        w2, b2 = _fold_values(graph, p, scale, shift)
        old_w = graph.initializers[p.weights[0]]
        old_b = graph.initializers[p.weights[1]] if p.attrs["bias_term"] else old_w
        values = [as_float32_like(w2, old_w), as_float32_like(b2, old_b)]
    p.attrs["bias_term"] = True
    set_weights(graph, p, ["weight", "bias"], values)
    if len(p.param_mults) == 1:          # Caffe's default for a blob without a param spec
        p.param_mults.append((1.0, 1.0))
    p.outputs = list(node.outputs)
    absorb(p, node)
    graph.nodes.remove(node)


@graph_pass("fold_batchnorm", "fold BatchNorm, Scale and Bias into the preceding Convolution, "
                              "Deconvolution or InnerProduct")
def fold_batchnorm(graph: Graph, record: PassRecord) -> Graph:
    changed = True
    while changed:                      # chains: conv -> BatchNorm -> Scale fold one by one
        changed = False
        producers, consumers = graph.producers(), graph.consumers()
        for node in list(graph.nodes):
            p = foldable_producer(graph, node, producers, consumers)
            if p is None:
                continue
            fold_into(graph, p, node)
            record.add(f"folded {node.op_type}", [node.name], into=p.name)
            changed = True
            break
    return graph
