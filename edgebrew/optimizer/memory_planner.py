"""Memory plan: where each activation lives in the one arena a session allocates.

Lifetimes run over the execution order: step 0 is before the first op, op ``i`` runs at step
``i + 1``; a tensor is live from the step that writes it to the last step that reads it (graph
inputs from step 0, graph outputs to the step after the last op). Two tensors live at the same
step never share bytes, except through two deliberate aliases:

* in-place reuse: an elementwise op (``OpDef.elementwise``: activations, BatchNorm, Scale, Bias,
  Eltwise, Dropout) or a pure view (Reshape, Flatten, Split's first output) writes its output
  over an input of the same size that dies at that op (Eltwise: any of its inputs; others: the
  first). Graph inputs are never overwritten.
* concat zero-copy: a Concat whose output is one contiguous block per input (everything before
  the axis has size 1: axis 1 with batch 1, or axis 0) and whose inputs all die at the Concat
  (none is a graph input or output) has each input placed at the output's offset plus the input's
  slice offset, so the producers write straight into the output and the Concat copies nothing.
  Every slice offset must be a multiple of 64, so that every tensor stays 64-byte aligned.

An aliased tensor is placed relative to the tensor it aliases (``MemoryPlan.aliases``: tensor ->
(that tensor, byte offset in it)); the chains end at a root, and each root is placed with all its
aliases at once. Placement is greedy first-fit with each tensor a rectangle (bytes x steps): the
groups are placed in several orders (by size, by size x lifetime, by first step, by lifetime) at
the lowest 64-aligned offset where none of their rectangles meets a placed one, and the smallest
arena wins.

Reported figures: ``naive_bytes`` — every activation in its own slot; ``lower_bound_bytes`` —
the most bytes live at any one step, counting aliased tensors once (what they occupy together),
so no placement with these aliases can use less. ``check_plan`` verifies a plan against the
graph.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgebrewError
from ..ir import Graph
from ..ir.ops import canonical_axis

ALIGN = 64
VIEW_OPS = ("Reshape", "Flatten", "Split")   # output bytes == input bytes


class PlanError(EdgebrewError):
    """A memory plan that would corrupt activations (two live tensors overlap)."""


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class MemoryPlan:
    offsets: dict[str, int]        # tensor name -> byte offset in the arena
    sizes: dict[str, int]          # tensor name -> bytes
    lifetimes: dict[str, tuple[int, int]]   # tensor name -> (first step, last step), inclusive
    arena_bytes: int
    # tensor -> (tensor whose memory it shares, byte offset inside it): in-place outputs and
    # zero-copy Concat inputs. Empty: every tensor has its own bytes.
    aliases: dict[str, tuple[str, int]] = field(default_factory=dict)
    zero_copy_concats: list[str] = field(default_factory=list)   # Concat node names
    inplace_ops: list[str] = field(default_factory=list)   # ops writing over an input
    concat_copies: dict[str, str] = field(default_factory=dict)   # Concat that copies: why

    @property
    def naive_bytes(self) -> int:
        """Every activation in its own slot: what a planner saves memory against."""
        return sum(_align(s) for s in self.sizes.values())

    @property
    def lower_bound_bytes(self) -> int:
        """The most bytes live at any one step, aliased tensors counted once: no placement
        (with these aliases) can use less."""
        return lower_bound(self.sizes, self.lifetimes, self.aliases)


# ------------------------------------------------------------------------------ lifetimes
def lifetimes(graph: Graph) -> dict[str, tuple[int, int]]:
    """(first, last) step of every activation; step 0 is before the first node."""
    n = len(graph.nodes)
    life: dict[str, list[int]] = {t.name: [0, 0] for t in graph.inputs}
    for step, node in enumerate(graph.nodes, start=1):
        for t in node.inputs:
            life[t][1] = max(life[t][1], step)
        for t in node.outputs:
            life.setdefault(t, [step, step])
    for t in graph.output_names:
        life[t][1] = n + 1
    return {t: (a, b) for t, (a, b) in life.items()}


def _itemsize(graph: Graph, t: str, itemsize: int) -> int:
    """Bytes per element: a quantized graph's int8 activations have their own; the rest use
    the plan's float size."""
    dt = graph.dtypes.get(t)
    return np.dtype(dt).itemsize if dt is not None else itemsize


def _sizes(graph: Graph, names, itemsize: int) -> dict[str, int]:
    return {t: math.prod(graph.shapes[t]) * _itemsize(graph, t, itemsize) for t in names}


def _same_encoding(graph: Graph, a: str, b: str) -> bool:
    """Both tensors hold the same kind of numbers (dtype and quantization parameters), so one
    may take the other's bytes as they are."""
    return (graph.dtypes.get(a) == graph.dtypes.get(b)
            and graph.quant.get(a) == graph.quant.get(b))


# ------------------------------------------------------------------------------ aliasing rules
def inplace_capable(node) -> bool:
    return node.op.elementwise or node.op_type in VIEW_OPS


def _inplace_candidates(node) -> list[int]:
    """Input indices whose memory the op's first output may take."""
    if node.op_type == "Eltwise":
        return list(range(len(node.inputs)))
    return [0]


def concat_slices(graph: Graph, node, itemsize: int = 4) -> list[int] | None:
    """Byte offset of each input inside a Concat's output, when each input is one contiguous
    block of it (the axes before the concat axis all have size 1); else None."""
    if node.op_type != "Concat":
        return None
    out = graph.shapes[node.outputs[0]]
    axis = canonical_axis(node, node.attrs["axis"], len(out), node.op)
    if math.prod(out[:axis]) != 1:
        return None
    offs, pos = [], 0
    for t in node.inputs:
        offs.append(pos)
        pos += math.prod(graph.shapes[t]) * _itemsize(graph, t, itemsize)
    return offs


def zero_copy_blocker(graph: Graph, node, step: int, life, itemsize: int = 4) -> str | None:
    """Why a Concat (run at ``step``) cannot have its inputs written straight into its output,
    or None when it can."""
    slices = concat_slices(graph, node, itemsize)
    if slices is None:
        out = graph.shapes[node.outputs[0]]
        axis = canonical_axis(node, node.attrs["axis"], len(out), node.op)
        batch = f": zero-copy needs batch 1, this is batch {out[0]}" if axis == 1 else ""
        return (f"its inputs are not contiguous blocks of the output (the axes before axis "
                f"{axis} have sizes {tuple(out[:axis])}, not all 1{batch})")
    if len(set(node.inputs)) != len(node.inputs):
        return "an input appears twice"
    graph_inputs = {t.name for t in graph.inputs}
    for u, off in zip(node.inputs, slices):
        if not _same_encoding(graph, u, node.outputs[0]):
            return f"input '{u}' is requantized into the output (other int8 scale or dtype)"
        if u in graph_inputs:
            return f"input '{u}' is a graph input"
        if life[u][1] != step:
            return f"input '{u}' is read after the Concat (or is a graph output)"
        if off % ALIGN:
            return f"input '{u}' would start {off} B into the output, not a multiple of {ALIGN}"
    return None


def zero_copy_eligible(graph: Graph, node, step: int, life, itemsize: int = 4) -> bool:
    """A Concat (run at ``step``) whose inputs can all be written straight into its output."""
    return node.op_type == "Concat" and zero_copy_blocker(graph, node, step, life,
                                                          itemsize) is None


def choose_aliases(graph: Graph, life, sizes, inplace: bool = True,
                   zero_copy_concat: bool = True, itemsize: int = 4):
    """(aliases, zero-copy Concat names, in-place op names, {Concat that copies: why}) under the
    rules above."""
    aliases: dict[str, tuple[str, int]] = {}
    zero_copy, inplace_ops, copies = [], [], {}
    graph_inputs = {t.name for t in graph.inputs}
    for step, node in enumerate(graph.nodes, start=1):
        if zero_copy_concat and node.op_type == "Concat":
            why = zero_copy_blocker(graph, node, step, life, itemsize)
            if why is None:
                out = node.outputs[0]
                for u, off in zip(node.inputs, concat_slices(graph, node, itemsize)):
                    aliases[u] = (out, off)
                zero_copy.append(node.name)
                continue
            copies[node.name] = why
        if not inplace or not inplace_capable(node):
            continue
        out = node.outputs[0]
        for i in _inplace_candidates(node):
            x = node.inputs[i]
            if (x not in graph_inputs and life[x][1] == step and node.inputs.count(x) == 1
                    and sizes[x] == sizes[out] and x not in aliases
                    and graph.dtypes.get(x) == graph.dtypes.get(out)):
                aliases[x] = (out, 0)
                inplace_ops.append(node.name)
                break
    return aliases, zero_copy, inplace_ops, copies


def resolve(aliases) -> dict[str, tuple[str, int]]:
    """tensor -> (root tensor, byte offset in the root), following alias chains."""
    out = {}

    def root(t):
        if t in out:
            return out[t]
        if t not in aliases:
            return t, 0
        parent, off = aliases[t]
        r, o = root(parent)
        out[t] = (r, o + off)
        return out[t]
    for t in aliases:
        root(t)
    return out


def lower_bound(sizes, life, aliases) -> int:
    """Max over steps of the live bytes, each group of aliased tensors counted by the union of
    its live members' byte ranges."""
    roots = resolve(aliases)
    per_step: dict[int, dict[str, list[tuple[int, int]]]] = {}
    for t, (a, b) in life.items():
        r, off = roots.get(t, (t, 0))
        span = (off, off + _align(max(sizes[t], 1)))
        for s in range(a, b + 1):
            per_step.setdefault(s, {}).setdefault(r, []).append(span)
    best = 0
    for groups in per_step.values():
        total = 0
        for spans in groups.values():
            spans.sort()
            end = -1
            for lo, hi in spans:
                if lo >= end:
                    total += hi - lo
                else:
                    total += max(0, hi - end)
                end = max(end, hi)
        best = max(best, total)
    return best


# ------------------------------------------------------------------------------ placement
def _first_fit(rects, placed):
    """Lowest aligned offset for a group of rectangles (rel_lo, rel_hi, t0, t1) meeting none of
    ``placed`` (lo, hi, t0, t1)."""
    pairs = [(rlo, rhi, plo, phi) for rlo, rhi, a0, a1 in rects
             for plo, phi, b0, b1 in placed if a0 <= b1 and b0 <= a1]
    cands = sorted({0} | {phi - rlo for rlo, _, _, phi in pairs if phi - rlo > 0})
    for o in cands:
        if all(o + rhi <= plo or phi <= o + rlo for rlo, rhi, plo, phi in pairs):
            return o
    raise AssertionError("unreachable: the highest candidate always fits")


_ORDERS = {
    "size": lambda g: (-g["extent"], g["first"]),
    "area": lambda g: (-g["extent"] * (g["last"] - g["first"] + 1), g["first"]),
    "first": lambda g: (g["first"], -g["extent"]),
    "duration": lambda g: (-(g["last"] - g["first"]), -g["extent"]),
}


def _place(groups, order):
    placed, at = [], {}
    for g in sorted(groups, key=lambda g: (_ORDERS[order](g), g["root"])):
        o = _first_fit(g["rects"], placed)
        at[g["root"]] = o
        placed += [(o + lo, o + hi, a, b) for lo, hi, a, b in g["rects"]]
    return at, max((hi for _, hi, _, _ in placed), default=0)


def plan_memory(graph: Graph, itemsize: int = 4, *, inplace: bool = True,
                zero_copy_concat: bool = True) -> MemoryPlan:
    """Place every activation of ``graph`` in one arena (see the module docstring).
    ``inplace=False, zero_copy_concat=False`` gives every tensor its own bytes."""
    if not graph.shapes:
        graph.infer_shapes()
    life = lifetimes(graph)
    sizes = _sizes(graph, life, itemsize)
    aliases, zero_copy, inplace_ops, copies = choose_aliases(graph, life, sizes, inplace,
                                                             zero_copy_concat, itemsize)
    roots = resolve(aliases)
    groups: dict[str, dict] = {}
    for t in life:
        r, off = roots.get(t, (t, 0))
        g = groups.setdefault(r, {"root": r, "rects": [], "extent": 0,
                                  "first": life[t][0], "last": life[t][1]})
        hi = off + _align(max(sizes[t], 1))
        g["rects"].append((off, hi, *life[t]))
        g["extent"] = max(g["extent"], hi)
        g["first"], g["last"] = min(g["first"], life[t][0]), max(g["last"], life[t][1])
    best = None
    for order in _ORDERS:
        at, arena = _place(groups.values(), order)
        if best is None or arena < best[1]:
            best = (at, arena)
    at, arena = best
    offsets = {}
    for t in life:
        r, off = roots.get(t, (t, 0))
        offsets[t] = at[r] + off
    return MemoryPlan(offsets, sizes, life, _align(arena), aliases, zero_copy, inplace_ops,
                      copies)


def plan_from_offsets(graph: Graph, offsets: dict[str, int], arena_bytes: int,
                      itemsize: int = 4) -> MemoryPlan:
    """The MemoryPlan of given offsets (e.g. read from a bundle), with the in-place and
    zero-copy aliases those offsets make recognised from the graph."""
    life = lifetimes(graph)
    sizes = _sizes(graph, life, itemsize)
    aliases, zero_copy, inplace_ops = {}, [], []
    for step, node in enumerate(graph.nodes, start=1):
        slices = concat_slices(graph, node, itemsize)
        if slices is not None and zero_copy_eligible(graph, node, step, life, itemsize):
            out = node.outputs[0]
            if all(offsets.get(u) == offsets.get(out, -1) + off
                   for u, off in zip(node.inputs, slices)):
                for u, off in zip(node.inputs, slices):
                    aliases[u] = (out, off)
                zero_copy.append(node.name)
                continue
        if inplace_capable(node):
            out = node.outputs[0]
            for i in _inplace_candidates(node):
                x = node.inputs[i]
                if offsets.get(x) == offsets.get(out) and _legit_inplace(graph, node, step, x,
                                                                          out, life, sizes):
                    aliases[x] = (out, 0)
                    inplace_ops.append(node.name)
                    break
    return MemoryPlan(dict(offsets), sizes, life, arena_bytes, aliases, zero_copy, inplace_ops)


# ------------------------------------------------------------------------------ checking
def _legit_inplace(graph, node, step, x, out, life, sizes) -> bool:
    return (inplace_capable(node) and x in node.inputs and out == node.outputs[0]
            and node.inputs.index(x) in _inplace_candidates(node)
            and node.inputs.count(x) == 1
            and x not in {t.name for t in graph.inputs}
            and life[x][1] == step and sizes[x] == sizes[out])


def check_plan(graph: Graph, plan: MemoryPlan, itemsize: int = 4) -> None:
    """Raise PlanError unless ``plan`` is safe for ``graph``: every activation placed, aligned,
    inside the arena, with its size; and no two tensors live at one step share a byte, except
    an in-place op's output over an input that dies there, or a zero-copy Concat's input at its
    slice of the output. Lifetimes and aliases are recomputed from the graph, not trusted."""
    if not graph.shapes:
        graph.infer_shapes()
    life = lifetimes(graph)
    sizes = _sizes(graph, life, itemsize)
    for t in life:
        if t not in plan.offsets:
            raise PlanError(f"tensor '{t}' has no place in the memory plan")
        o = plan.offsets[t]
        if o < 0 or o % ALIGN:
            raise PlanError(f"tensor '{t}' at offset {o}: not {ALIGN}-byte aligned")
        if o + sizes[t] > plan.arena_bytes:
            raise PlanError(f"tensor '{t}' ({sizes[t]} B at {o}) ends past the "
                            f"{plan.arena_bytes}-byte arena")
    step_of = {}
    for step, node in enumerate(graph.nodes, start=1):
        for t in node.outputs:
            step_of[t] = (step, node)

    def legit(u, v):
        """u and v (v written by the op at its first step) may share bytes."""
        step, node = step_of.get(v, (None, None))
        if node is None or u not in node.inputs:
            return False
        if _legit_inplace(graph, node, step, u, v, life, sizes) \
                and plan.offsets[u] == plan.offsets[v]:
            return True
        if node.op_type == "Concat" and zero_copy_eligible(graph, node, step, life, itemsize):
            slices = concat_slices(graph, node, itemsize)
            return plan.offsets[u] == plan.offsets[v] + slices[node.inputs.index(u)]
        return False

    order = sorted(life, key=lambda t: plan.offsets[t])
    for i, u in enumerate(order):
        u_lo, u_hi = plan.offsets[u], plan.offsets[u] + sizes[u]
        for v in order[i + 1:]:
            v_lo = plan.offsets[v]
            if v_lo >= u_hi:
                break
            if sizes[u] == 0 or sizes[v] == 0:
                continue
            (a0, a1), (b0, b1) = life[u], life[v]
            if a0 > b1 or b0 > a1:
                continue
            if legit(u, v) or legit(v, u):
                continue
            raise PlanError(f"tensors '{u}' (bytes {u_lo}..{u_hi}, steps {a0}..{a1}) and "
                            f"'{v}' (bytes {v_lo}..{v_lo + sizes[v]}, steps {b0}..{b1}) are "
                            "live at the same time and overlap")
