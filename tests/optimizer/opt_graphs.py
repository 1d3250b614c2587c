"""Small graphs for the optimizer tests, and the check every pass must pass: the optimized graph
computes what the original computes (float64 reference, every graph output and every tensor name
both graphs share)."""
from __future__ import annotations

import numpy as np

import edgebrew
from caffe_files import attach, random_weights
from edgebrew.ir import Graph, Node, TensorInfo
from helpers import rel_error


def node(name, op_type, inputs, outputs, weights=(), **attrs) -> Node:
    return Node(name, op_type, list(inputs), list(outputs), dict(attrs), list(weights))


def build(inputs: dict, nodes, outputs, weights: dict | None = None, seed=0) -> Graph:
    """A graph; weights missing from ``weights`` are random (BatchNorm statistics non-trivial)."""
    g = Graph("test", [TensorInfo(k, tuple(s)) for k, s in inputs.items()], nodes, outputs)
    g.infer_shapes()
    rand = random_weights(g, seed=seed)
    for n in g.nodes:
        for w, arr in zip(n.weights, rand[n.name]):
            g.initializers.setdefault(w, arr)
    for k, v in (weights or {}).items():
        g.initializers[k] = np.asarray(v, np.float32)
    g.infer_shapes()
    return g


def load_text(tmp_path, text: str, seed=0, name="net.prototxt") -> Graph:
    """A prototxt (importer semantics: in-place layers, blob@layer names) with random weights."""
    p = tmp_path / name
    p.write_text(text)
    g = edgebrew.load_caffe(p)
    attach(g, random_weights(g, seed=seed))
    g.infer_shapes()
    return g


def feeds_for(graph: Graph, seed=0):
    rng = np.random.default_rng(seed)
    return {t.name: rng.standard_normal(t.shape) for t in graph.inputs}


def shared_tensors(original: Graph, optimized: Graph) -> list[str]:
    """Activation names both graphs have (a fused op writes the name of the last layer it
    absorbed, so these must hold the same values)."""
    original.infer_shapes()
    inputs = {t.name for t in original.inputs}
    return [t for t in optimized.shapes if t in original.shapes and t not in inputs]


def max_error(original: Graph, optimized: Graph, feeds=None, common=True, reference=None):
    """Largest relative error (max|a - b| / max|ref|) over the graph outputs and, with
    ``common``, over every tensor name the two graphs share (or the names ``common`` lists).
    ``reference``: the original graph's float64 values, if already computed."""
    feeds = feeds if feeds is not None else feeds_for(original)
    assert [t.name for t in optimized.inputs] == [t.name for t in original.inputs]
    assert optimized.output_names == original.output_names
    if common is True:
        names = shared_tensors(original, optimized)
    else:
        names = list(common or [])
    a = reference if reference is not None else \
        edgebrew.reference.run(original, feeds, dtype=np.float64, fetch=names)
    b = edgebrew.reference.run(optimized, feeds, dtype=np.float64, fetch=names)
    errs = [rel_error(b[k], a[k]) for k in b]
    return max(errs, default=0.0)


def types(graph: Graph) -> list[str]:
    return [n.op_type for n in graph.nodes]
