"""The graph rewrites of quantization: int8 (``quantize_int8``) and fp16 weights (``to_fp16``).

int8: which nodes run int8 is decided in execution order:

- compute ops (Convolution, InnerProduct, Eltwise SUM/MAX) run int8 when their fused activation
  has an int8 form (none, ReLU, Clip), every tensor they touch has a calibration range, and they
  are not kept in fp32 (``keep_fp32``, by layer name — a fused layer's name counts for the op
  it was fused into);
- data-movement ops that keep the grid (Pooling, ReLU, Concat, Flatten, Reshape, Split, Slice,
  Dropout) run int8 when all their inputs are already int8, so int8 regions grow through them
  instead of bouncing through float.

Quantize nodes are placed where an int8 op reads a float tensor (one per tensor), Dequantize
nodes where a float op or a graph output reads an int8 tensor. Names: an int8 tensor that also
needs a float version is called ``<blob>:int8`` (the float one keeps the Caffe blob name, so
graph outputs keep theirs); the border nodes are ``<blob>:quantize`` / ``<blob>:dequantize``.

Weights: per output channel, symmetric: scale_c = max|W_c| / 127 (1.0 for an all-zero channel),
q = round(W / scale_c) in [-127, 127]. Biases: int32, round(b / (s_in * scale_c)).
"""
from __future__ import annotations

import numpy as np

from ..errors import EdgebrewError
from ..ir import Graph, Node
from ..ir.quant_params import QuantParams
from . import fixed_point as fp
from .calibration import qparams_from_range

COMPUTE_OPS = ("Convolution", "InnerProduct", "Eltwise")
FOLLOW_OPS = ("Pooling", "ReLU", "Concat", "Flatten", "Reshape", "Split", "Slice", "Dropout")
KEEP_GRID = ("Pooling", "ReLU", "Flatten", "Reshape", "Split", "Slice", "Dropout")
INT8 = np.dtype(np.int8)


class QuantizationError(EdgebrewError):
    """A quantization request that cannot be honoured (unknown layer, missing ranges ...)."""


def int8_blocker(graph: Graph, node: Node) -> str | None:
    """Why ``node`` has no int8 kernel (None when it has one)."""
    a = node.attrs
    if node.op_type not in COMPUTE_OPS + FOLLOW_OPS:
        return f"{node.op_type} has no int8 kernel"
    act = a.get("activation")
    if act not in (None, "", "none", "ReLU", "Clip"):
        return f"fused {act} has no int8 form"
    if act == "ReLU" and a.get("negative_slope"):
        return "fused leaky ReLU has no int8 form"
    if node.op_type == "ReLU" and a.get("negative_slope"):
        return "leaky ReLU has no int8 form"
    if node.op_type == "InnerProduct" and a.get("transpose"):
        return "transposed InnerProduct weights have no int8 kernel"
    if node.op_type == "Eltwise" and a.get("operation") not in ("SUM", "MAX"):
        return f"Eltwise {a.get('operation')} has no int8 kernel"
    if node.op_type in ("Convolution", "InnerProduct") and len(node.weights) > 2:
        return "a fused PReLU has no int8 form"
    if node.op_type == "Eltwise" and node.weights:
        return "a fused PReLU has no int8 form"
    return None


def quantizable_layers(graph: Graph) -> list[str]:
    """Names of the compute nodes that can run int8 (the sensitivity analysis' candidates)."""
    return [n.name for n in graph.nodes
            if n.op_type in COMPUTE_OPS and int8_blocker(graph, n) is None]


def resolve_layer_names(graph: Graph, names) -> set[str]:
    """Node names for user-given layer names (a layer fused into a node names that node)."""
    out = set()
    for name in names or ():
        hits = [n.name for n in graph.nodes if n.name == name or name in n.fused]
        if not hits:
            raise QuantizationError(f"--keep-fp32: no layer named '{name}' in the graph "
                                    f"(layers: {', '.join(n.name for n in graph.nodes[:8])}"
                                    f"{' ...' if len(graph.nodes) > 8 else ''})")
        out.update(hits)
    return out


def choose_int8_nodes(graph: Graph, ranges, keep_fp32=(), only=None) -> dict[str, str]:
    """{node name: "int8"} for nodes that will run int8, plus {node name: reason} for the
    candidates that stay float (for reports)."""
    keep = resolve_layer_names(graph, keep_fp32)
    int8_tensors: set[str] = set()
    decision: dict[str, str] = {}
    for node in graph.nodes:
        why = int8_blocker(graph, node)
        if why is None and node.name in keep:
            why = "kept in fp32 (--keep-fp32 or accuracy budget)"
        if why is None and only is not None and node.name not in only:
            why = "not selected"
        if why is None and node.op_type in FOLLOW_OPS:
            if not all(t in int8_tensors for t in node.inputs):
                why = "its input is float"
        if why is None:
            missing = [t for t in (*node.inputs, *node.outputs)
                       if t not in ranges and t not in int8_tensors]
            if node.op_type not in KEEP_GRID and missing:
                why = f"no calibration range for '{missing[0]}'"
        if why is None:
            decision[node.name] = "int8"
            int8_tensors.update(node.outputs)
        elif node.op_type in COMPUTE_OPS + FOLLOW_OPS:
            decision[node.name] = why
    return decision


BIAS_LIMIT = float(1 << 30)   # |int32 bias| stays below this, so that bias + the largest
                               # possible sum of products (127 * 255 * K) cannot overflow int32


def _weight_int8(w: np.ndarray, min_scale=None):
    w = np.asarray(w, np.float32)
    flat = w.reshape(w.shape[0], -1)
    absmax = np.abs(flat).max(axis=1)
    scale = np.where(absmax > 0, absmax / 127.0, 1.0)
    if min_scale is not None:     # a large bias over tiny weights (folded BatchNorm)
        scale = np.maximum(scale, min_scale)
    scale = scale.astype(np.float32)
    q = fp.round_half_away(flat / scale.astype(np.float64)[:, None])
    return np.clip(q, -127, 127).astype(np.int8).reshape(w.shape), scale


def quantize_int8(graph: Graph, ranges, *, keep_fp32=(), only=None) -> tuple[Graph, dict]:
    """The int8 graph of float ``graph`` given calibration ``ranges`` {tensor: (lo, hi)}.
    Returns (graph, decisions) where decisions maps candidate nodes to "int8" or the reason
    they stayed float."""
    if graph.is_quantized:
        raise QuantizationError(f"graph '{graph.name}' is already quantized")
    if not graph.shapes:
        graph.infer_shapes()
    decision = choose_int8_nodes(graph, ranges, keep_fp32, only)
    int8_nodes = {k for k, v in decision.items() if v == "int8"}
    g = graph.copy()
    consumers = graph.consumers()
    qparams: dict[str, QuantParams] = {}

    def range_params(t):
        lo, hi = ranges[t]
        return QuantParams.per_tensor(*qparams_from_range(lo, hi))

    # output grids, in execution order (grid-keeping ops inherit their input's)
    for node in graph.nodes:
        if node.name not in int8_nodes:
            continue
        for t in node.outputs:
            if node.op_type in KEEP_GRID:       # its input is int8 (choose_int8_nodes)
                qparams[t] = qparams[node.inputs[0]]
            else:
                qparams[t] = range_params(t)
    int8_out = {t for n in graph.nodes if n.name in int8_nodes for t in n.outputs}
    outputs = set(graph.output_names)

    def needs_float(t):
        return t in outputs or any(c.name not in int8_nodes for c in consumers.get(t, []))

    int8_name = {t: (f"{t}:int8" if needs_float(t) else t) for t in int8_out}
    new_nodes: list[Node] = []
    quantized_inputs: dict[str, str] = {}
    for node in graph.nodes:
        if node.name not in int8_nodes:
            new_nodes.append(node.copy())
            continue
        n = node.copy()
        for i, t in enumerate(node.inputs):
            if t in int8_name:
                n.inputs[i] = int8_name[t]
                continue
            if t not in quantized_inputs:       # a float tensor entering int8: Quantize once
                q = f"{t}:int8"
                qparams.setdefault(q, range_params(t))
                g.quant[q], g.dtypes[q] = qparams[q], INT8
                new_nodes.append(Node(f"{t}:quantize", "Quantize", [t], [q]))
                quantized_inputs[t] = q
            n.inputs[i] = quantized_inputs[t]
        if node.op_type in ("Convolution", "InnerProduct"):
            _quantize_weights(graph, g, n, g.quant[n.inputs[0]])
        for i, t in enumerate(node.outputs):
            name = int8_name[t]
            n.outputs[i] = name
            g.quant[name], g.dtypes[name] = qparams[t], INT8
        new_nodes.append(n)
        for t in node.outputs:
            if int8_name[t] != t:
                new_nodes.append(Node(f"{t}:dequantize", "Dequantize", [int8_name[t]], [t]))
    g.nodes = new_nodes
    used = {w for n in g.nodes for w in n.weights}
    g.initializers = {k: v for k, v in g.initializers.items() if k in used}
    g.shapes = {}
    g.infer_shapes()
    return g, decision


def _quantize_weights(src: Graph, g: Graph, n: Node, in_q: QuantParams) -> None:
    """Weights per channel; the bias on the s_in * s_w grid. A channel whose bias would not fit
    the int32 headroom (BIAS_LIMIT) gets a coarser weight scale instead."""
    w_name = n.weights[0]
    b = (np.asarray(src.initializers[n.weights[1]], np.float64).reshape(-1)
         if len(n.weights) > 1 else None)
    min_scale = None if b is None else np.abs(b) / (np.float64(in_q.s) * BIAS_LIMIT)
    q, scale = _weight_int8(src.initializers[w_name], min_scale)
    qw_name = f"{w_name}:int8"
    have = g.initializers.get(qw_name)
    if have is not None and not (np.array_equal(have, q)
                                 and np.array_equal(g.quant[qw_name].scale, scale)):
        qw_name = f"{n.name}:weight:int8"        # shared weights quantized differently here
    g.initializers[qw_name] = q
    g.quant[qw_name] = QuantParams(scale, np.zeros(len(scale), np.int64), axis=0)
    w_scale = scale
    n.weights[0] = qw_name
    if b is not None:
        bias_scale = np.float64(in_q.s) * w_scale.astype(np.float64)
        qb = np.clip(fp.round_half_away(b / bias_scale), fp.INT32_MIN, fp.INT32_MAX)
        b_name = f"{n.name}:bias:int32"
        g.initializers[b_name] = qb.astype(np.int32)
        n.weights[1] = b_name


def to_fp16(graph: Graph) -> tuple[Graph, list[str]]:
    """Weights stored as float16 (the runtime widens them at load). Blobs that float16 cannot
    hold (a magnitude above 65504) stay float32; returns (graph, names kept float32)."""
    g = graph.copy()
    kept = []
    limit = float(np.finfo(np.float16).max)
    for name, w in graph.initializers.items():
        if w.dtype != np.float32:
            continue
        if w.size and np.abs(w).max() > limit:
            kept.append(name)
            continue
        g.initializers[name] = w.astype(np.float16)
    return g, kept
