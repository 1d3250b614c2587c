"""What ``edgebrew inspect`` reports about a graph: per-layer output shape, parameters, MACs.

MACs count the multiply-accumulates of Convolution, Deconvolution and InnerProduct for one image
(batch 1), whatever batch the net declares.
"""
from __future__ import annotations

import math

from .ir import Graph


def _batch1(shape):
    return (1, *shape[1:]) if shape else shape


def graph_summary(graph: Graph) -> dict:
    """The JSON object of ``edgebrew inspect --json``: ``layers`` and ``totals`` (and context)."""
    if not graph.shapes:
        graph.infer_shapes()
    layers, seen_weights, total_params, total_macs = [], set(), 0, 0
    for node in graph.nodes:
        wshapes = graph.weight_shapes(node)
        params = sum(math.prod(s) for s in wshapes)
        new_params = sum(math.prod(s) for w, s in zip(node.weights, wshapes)
                         if w not in seen_weights)     # a shared blob counts once in the total
        seen_weights.update(node.weights)
        in_shapes = [_batch1(graph.shapes[t]) for t in node.inputs]
        out_shapes = [_batch1(graph.shapes[t]) for t in node.outputs]
        macs = int(node.op.macs(node, in_shapes, out_shapes))
        total_params += new_params
        total_macs += macs
        entry = {"name": node.name, "type": node.op_type,
                 "output_shape": list(graph.shapes[node.outputs[0]]),
                 "params": params, "macs": macs}
        if len(node.outputs) > 1:
            entry["output_shapes"] = [list(graph.shapes[t]) for t in node.outputs]
        layers.append(entry)
    return {
        "name": graph.name,
        "inputs": [{"name": t.name, "shape": list(t.shape)} for t in graph.inputs],
        "outputs": [{"name": t.name, "shape": list(t.shape)} for t in graph.outputs],
        "layers": layers,
        "totals": {"params": total_params, "macs": total_macs},
        "has_weights": graph.has_weights,
        "notes": list(graph.notes),
    }


def human(n: float) -> str:
    for unit, k in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= k:
            return f"{n / k:.3f} {unit}"
    return str(int(n))


def format_summary(summary: dict) -> str:
    """A table a person reads: one row per layer, then totals."""
    rows = [(l["name"], l["type"], "x".join(map(str, l["output_shape"])),
             human(l["params"]) if l["params"] else "-", human(l["macs"]) if l["macs"] else "-")
            for l in summary["layers"]]
    head = ("layer", "type", "output shape", "params", "MACs")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
    line = lambda r: "  ".join(c.ljust(w) if i < 3 else c.rjust(w)   # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    out = [f"model: {summary['name']}"]
    out += [f"input:  {t['name']} {'x'.join(map(str, t['shape']))}" for t in summary["inputs"]]
    out += [f"output: {t['name']} {'x'.join(map(str, t['shape']))}" for t in summary["outputs"]]
    out += ["", line(head), line(tuple("-" * w for w in widths))]
    out += [line(r) for r in rows]
    t = summary["totals"]
    out += ["", f"total: {len(rows)} layers, {human(t['params'])} parameters "
                f"({t['params']:,}), {human(t['macs'])} MACs per image ({t['macs']:,})"]
    if not summary["has_weights"]:
        out.append("(no caffemodel given: parameter counts are from the prototxt's shapes)")
    out += [f"note: {n}" for n in summary["notes"]]
    return "\n".join(out)
