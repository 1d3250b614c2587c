"""Memory plan: where each activation lives in the one arena a session allocates.

Lifetimes run over the execution order (a tensor is live from the step that writes it to the
last step that reads it; graph inputs from the start, graph outputs to the end). Placement is
greedy by size: the largest tensors are placed first, each at the lowest 64-aligned offset where
it overlaps no already-placed tensor whose lifetime intersects its own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir import Graph

ALIGN = 64


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class MemoryPlan:
    offsets: dict[str, int]        # tensor name -> byte offset in the arena
    sizes: dict[str, int]          # tensor name -> bytes
    lifetimes: dict[str, tuple[int, int]]   # tensor name -> (first step, last step), inclusive
    arena_bytes: int

    @property
    def naive_bytes(self) -> int:
        """Every activation in its own slot: what a planner saves memory against."""
        return sum(_align(s) for s in self.sizes.values())

    @property
    def lower_bound_bytes(self) -> int:
        """The most bytes live at any one step: no placement can use less."""
        steps = max((end for _, end in self.lifetimes.values()), default=0) + 1
        live = [0] * steps
        for t, (a, b) in self.lifetimes.items():
            for s in range(a, b + 1):
                live[s] += _align(self.sizes[t])
        return max(live, default=0)


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


def plan_memory(graph: Graph, itemsize: int = 4) -> MemoryPlan:
    if not graph.shapes:
        graph.infer_shapes()
    life = lifetimes(graph)
    sizes = {t: math.prod(graph.shapes[t]) * itemsize for t in life}
    order = sorted(life, key=lambda t: (-sizes[t], life[t][0], t))
    placed: list[tuple[int, int, int, int]] = []   # (offset, end, first, last)
    offsets = {}
    for t in order:
        first, last = life[t]
        size = _align(max(sizes[t], 1))
        clashes = sorted((o, e) for o, e, f, l in placed if f <= last and first <= l)
        offset = 0
        for o, e in clashes:
            if offset + size <= o:
                break
            offset = max(offset, _align(e))
        offsets[t] = offset
        placed.append((offset, offset + size, first, last))
    arena = max((e for _, e, _, _ in placed), default=0)
    return MemoryPlan(offsets, sizes, life, _align(arena))
