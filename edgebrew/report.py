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


# ----------------------------------------------------------------------------- optimizer report
def optimization_summary(ops_before: dict[str, int], graph: Graph, passes: list[dict],
                         plan) -> dict:
    """The keys ``inspect --json`` adds for the optimized graph: ``ops`` (each op's name, Caffe
    type, the layers it absorbed, and whether it is a Concat that copies nothing), ``passes`` (the
    pass log, as ``PassRecord.to_json``), ``op_counts`` (by type, before and after) and
    ``memory`` (arena, naive sum and lower bound, in bytes)."""
    from .optimizer import op_counts
    zero_copy = set(plan.zero_copy_concats)
    return {
        "ops": [{"name": n.name, "type": n.op_type, "fused": list(n.fused),
                 "zero_copy": n.name in zero_copy} for n in graph.nodes],
        "passes": list(passes),
        "op_counts": {"before": dict(ops_before), "after": op_counts(graph)},
        "memory": {"arena_bytes": plan.arena_bytes, "naive_bytes": plan.naive_bytes,
                   "lower_bound_bytes": plan.lower_bound_bytes},
    }


def mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _change_text(c: dict) -> str:
    layers = ", ".join(c["layers"])
    return f"{layers} -> {c['into']}" if "into" in c else layers


def format_optimization(summary: dict, max_examples: int = 4) -> str:
    """The optimizer report a person reads: what each pass changed, op counts before and after,
    the fused ops, and the memory plan against its bounds."""
    out = []
    before, after = summary["op_counts"]["before"], summary["op_counts"]["after"]
    n_before, n_after = sum(before.values()), sum(after.values())
    passes = summary["passes"]
    if not passes:
        out.append(f"optimizer: off (-O0): {n_after} ops as imported")
    else:
        out.append(f"optimizer: {len(passes)} passes, {n_before} ops -> {n_after} ops "
                   "(an optimized op keeps its layer name and type; layers folded into it are "
                   "listed after '+')")
        width = max(len(p["name"]) for p in passes)
        for p in passes:
            if not p["changed"]:
                out.append(f"  {p['name'].ljust(width)}  no change  ({p['description']})")
            else:
                kinds = ", ".join(f"{k} x{v}" for k, v in p["counts"].items())
                out.append(f"  {p['name'].ljust(width)}  {p['changed']} change(s): {kinds}")
                ex = [_change_text(c) for c in p["changes"][:max_examples]]
                more = p["changed"] - len(ex)
                out.append(f"  {' ' * width}    e.g. {'; '.join(ex)}"
                           + (f"; ... (+{more} more)" if more > 0 else ""))
            for note in p.get("notes", []):
                out.append(f"  {' ' * width}    note: {note}")
    types = sorted(set(before) | set(after), key=lambda t: (-before.get(t, 0), t))
    out += ["", "op counts by type (before -> after):"]
    width = max([len(t) for t in types] + [5])
    for t in types:
        b, a = before.get(t, 0), after.get(t, 0)
        out.append(f"  {t.ljust(width)}  {b:4d} -> {a:4d}" + ("" if a != b else "   (unchanged)"))
    out.append(f"  {'total'.ljust(width)}  {n_before:4d} -> {n_after:4d}")
    fused = [o for o in summary["ops"] if o["fused"] or o["zero_copy"]]
    if fused:
        out += ["", "optimized ops that absorbed layers or copy nothing:"]
        width = max(len(o["name"]) for o in fused)
        for o in fused:
            extra = f" + {', '.join(o['fused'])}" if o["fused"] else ""
            zc = "  (zero-copy: its inputs are written in place)" if o["zero_copy"] else ""
            out.append(f"  {o['name'].ljust(width)}  {o['type']}{extra}{zc}")
    m = summary["memory"]
    arena, naive, bound = m["arena_bytes"], m["naive_bytes"], m["lower_bound_bytes"]
    ratio = f"{arena / bound:.2f}x" if bound else "-"
    out += ["", f"memory plan: arena {mib(arena)} ({arena:,} B), {ratio} the lower bound "
                f"{mib(bound)} ({bound:,} B: the most bytes live at any one step);",
            f"  every activation in its own slot would take {mib(naive)} ({naive:,} B)"]
    return "\n".join(out)
