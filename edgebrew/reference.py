"""The NumPy reference executor: runs a Graph op by op with each op's reference implementation.

It is the oracle every other backend is tested against, so it favours clarity over speed and
follows Caffe's semantics, not any backend's.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from .errors import EdgebrewError, InputError, WeightsError
from .ir.graph import Graph
from .quant import int8_reference


def run(graph: Graph, feeds: Mapping[str, np.ndarray], dtype=np.float32, *,
        fetch: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``feeds`` ({input name: NCHW array, used as given}).

    Returns every graph output (and any extra tensor named in ``fetch``) by tensor name.
    ``dtype=np.float64`` computes in double precision.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"reference.run computes in float32 or float64, not {dtype}")
    if not graph.shapes:
        graph.infer_shapes()
    missing = [w for n in graph.nodes for w in n.weights if w not in graph.initializers]
    if missing:
        raise WeightsError(f"graph '{graph.name}' has no weights for {missing[:3]}"
                           f"{' ...' if len(missing) > 3 else ''}: load it with a caffemodel")
    values = _check_feeds(graph, feeds, dtype)
    wanted = list(dict.fromkeys([*graph.output_names, *fetch]))
    last_use = _last_uses(graph, wanted)
    cast = {}
    int8_nodes = _int8_nodes(graph)
    for step, node in enumerate(graph.nodes):
        inputs = [values[t] for t in node.inputs]
        weights = []
        for w in node.weights:
            if w not in cast:   # fp16 weights widen; int8/int32 ones stay for the int8 kernels
                arr = graph.initializers[w]
                cast[w] = arr if arr.dtype.kind == "i" else np.asarray(arr, dtype=dtype)
            weights.append(cast[w])
        try:
            if node.name in int8_nodes:
                outputs = int8_reference.run_node(graph, node, inputs, weights)
            else:
                outputs = node.op.run(node, inputs, weights)
        except EdgebrewError:
            raise
        except (ValueError, IndexError, FloatingPointError) as e:
            raise EdgebrewError(f"layer '{node.name}' ({node.op_type}) failed in the reference "
                                f"executor: {e}") from e
        for t, v in zip(node.outputs, outputs):
            values[t] = np.asarray(v, dtype=graph.dtypes.get(t, dtype))
        for t in node.inputs:  # free what no later step reads, to bound memory on big nets
            if last_use.get(t) == step:
                values.pop(t, None)
    missing = [t for t in wanted if t not in values]
    if missing:
        raise InputError(f"unknown tensor(s) to fetch: {missing}")
    return {t: values[t] for t in wanted}


def _int8_nodes(graph) -> set[str]:
    """Nodes the integer reference runs: Quantize/Dequantize and every node touching int8."""
    if not graph.dtypes:
        return set()
    return {n.name for n in graph.nodes
            if n.op_type in ("Quantize", "Dequantize")
            or any(t in graph.dtypes for t in (*n.inputs, *n.outputs))}


def _check_feeds(graph, feeds, dtype):
    if isinstance(feeds, np.ndarray):
        if len(graph.inputs) != 1:
            raise InputError(f"graph has {len(graph.inputs)} inputs; pass a dict by name")
        feeds = {graph.inputs[0].name: feeds}
    names = {t.name for t in graph.inputs}
    unknown = set(feeds) - names
    if unknown:
        raise InputError(f"unknown input(s) {sorted(unknown)}; the graph's inputs are "
                         f"{sorted(names)}")
    values = {}
    for t in graph.inputs:
        if t.name not in feeds:
            raise InputError(f"input '{t.name}' (shape {t.shape}) was not fed")
        a = np.asarray(feeds[t.name])
        if tuple(a.shape) != tuple(graph.shapes[t.name]):
            raise InputError(f"input '{t.name}' has shape {tuple(a.shape)}, the graph expects "
                             f"{tuple(graph.shapes[t.name])}")
        values[t.name] = a.astype(dtype, copy=False)
    return values


def _last_uses(graph, keep):
    last = {}
    for step, node in enumerate(graph.nodes):
        for t in node.inputs:
            last[t] = step
    for t in keep:
        last.pop(t, None)
    return last
