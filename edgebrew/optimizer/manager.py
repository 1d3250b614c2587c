"""The pass manager: named Graph -> Graph passes, the default pipeline, and ``optimize``.

A pass is a function ``fn(graph, record) -> graph`` registered with ``@graph_pass(name,
description)``. It may rewrite the graph it is given (the manager hands it a copy) and notes each
change in ``record`` (a ``PassRecord``): what kind of change, and the names of the layers
involved, so a report speaks the user's layer names. Calling a ``Pass`` object on a graph returns
the new graph and leaves its argument untouched.

After every pass the manager drops initializers nobody uses and re-runs shape inference, so a
pass that breaks the graph fails at once, under its own name.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..errors import EdgebrewError
from ..ir import Graph


@dataclass
class PassRecord:
    """What one pass changed: one entry per change, counted by kind."""

    name: str
    description: str = ""
    changes: list[dict] = field(default_factory=list)   # {"kind", "layers", "into"?, "note"?}
    notes: list[str] = field(default_factory=list)      # what it saw but could not change

    def add(self, kind: str, layers: Iterable[str], into: str | None = None, **extra) -> None:
        """One change: ``kind`` (e.g. "folded BatchNorm"), the layers it removed or absorbed
        and, for a fusion, the op ``into`` which they went."""
        entry = {"kind": kind, "layers": list(layers)}
        if into is not None:
            entry["into"] = into
        entry.update(extra)
        self.changes.append(entry)

    @property
    def changed(self) -> int:
        return len(self.changes)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(c["kind"] for c in self.changes))

    @property
    def layers(self) -> list[str]:
        return [l for c in self.changes for l in c["layers"]]

    def to_json(self) -> dict:
        """JSON-native (lists and dicts only): stored in bundle metadata and printed by
        ``inspect --json``."""
        return {"name": self.name, "description": self.description, "changed": self.changed,
                "counts": self.counts, "layers": self.layers,
                "changes": [dict(c) for c in self.changes], "notes": list(self.notes)}


@dataclass(frozen=True)
class Pass:
    name: str
    description: str
    fn: Callable[[Graph, PassRecord], Graph]

    def run(self, graph: Graph) -> tuple[Graph, PassRecord]:
        """Apply the pass to a copy of ``graph``: (new graph, what changed)."""
        if not graph.shapes:
            graph.infer_shapes()
        record = PassRecord(self.name, self.description)
        out = self.fn(graph.copy(), record)
        prune_initializers(out)
        out.shapes = {}
        try:
            out.infer_shapes()
        except EdgebrewError as e:   # a bug in the pass, not in the user's model
            raise EdgebrewError(f"optimizer pass '{self.name}' left an invalid graph: {e}") \
                from e
        return out, record

    def __call__(self, graph: Graph) -> Graph:
        return self.run(graph)[0]


PASSES: dict[str, Pass] = {}


def graph_pass(name: str, description: str):
    """Decorator registering ``fn(graph, record) -> graph`` as the pass ``name``."""
    def register(fn):
        if name in PASSES:
            raise RuntimeError(f"optimizer pass {name} declared twice")
        PASSES[name] = Pass(name, description, fn)
        return PASSES[name]
    return register


def prune_initializers(graph: Graph) -> None:
    used = {w for n in graph.nodes for w in n.weights}
    for k in [k for k in graph.initializers if k not in used]:
        del graph.initializers[k]


# The memory planner's two optimizations, selectable like passes (they change the plan, not the
# graph): in-place outputs of elementwise ops, and Concats whose inputs are written in place.
PLANNER_OPTIONS = {
    "inplace_reuse": "memory planner: an elementwise op writes its output over an input that "
                     "dies there",
    "concat_zero_copy": "memory planner: the producers of a Concat's inputs write straight into "
                        "their slice of its output, so the Concat copies nothing",
}


def default_pipeline() -> list[str]:
    from . import passes  # noqa: F401  (registers the passes)
    return list(passes.DEFAULT_PIPELINE)


def select_passes(passes: Iterable[str] | None = None,
                  skip_passes: Iterable[str] = ()) -> list[str]:
    """The names to run, in order: ``passes`` (default: the default pipeline) minus
    ``skip_passes``. Planner options (``PLANNER_OPTIONS``) are accepted and kept in the list;
    ``optimize`` ignores them and ``planner_options`` reads them."""
    from . import passes as _  # noqa: F401
    names = default_pipeline() + list(PLANNER_OPTIONS) if passes is None else list(passes)
    skip = list(skip_passes or ())
    known = set(PASSES) | set(PLANNER_OPTIONS)
    unknown = [n for n in names + skip if n not in known]
    if unknown:
        raise EdgebrewError(f"unknown optimizer pass(es) {unknown}; the passes are "
                            f"{', '.join(list(default_pipeline()) + list(PLANNER_OPTIONS))}")
    return [n for n in names if n not in skip]


def planner_options(selected: Iterable[str]) -> dict[str, bool]:
    """``plan_memory`` keyword arguments for a selection from ``select_passes``."""
    selected = set(selected)
    return {"inplace": "inplace_reuse" in selected,
            "zero_copy_concat": "concat_zero_copy" in selected}


def optimize(graph: Graph, passes: Iterable[str] | None = None,
             skip_passes: Iterable[str] = ()) -> tuple[Graph, list[PassRecord]]:
    """Run the default pipeline (or ``passes``, in that order) minus ``skip_passes`` on a copy
    of ``graph``: returns (optimized graph, one PassRecord per pass run). ``graph`` itself is
    left as it was. Works on a graph without weights too: the passes then rewrite the
    structure only (e.g. a folded BatchNorm gives its convolution a bias blob with no value)."""
    names = [n for n in select_passes(passes, skip_passes) if n not in PLANNER_OPTIONS]
    if not graph.shapes:
        graph.infer_shapes()
    log = []
    for name in names:
        graph, record = PASSES[name].run(graph)
        log.append(record)
    if not names:
        graph = graph.copy()
    return graph, log


def op_counts(graph: Graph) -> dict[str, int]:
    """Ops by type (Caffe type names), most frequent first."""
    return dict(Counter(n.op_type for n in graph.nodes).most_common())


def planner_records(plan, options: dict[str, bool]) -> list[PassRecord]:
    """The memory planner's optimizations as pass records, for the report and the bundle's
    pass log (only those ``options`` turned on)."""
    out = []
    if options.get("inplace"):
        r = PassRecord("inplace_reuse", PLANNER_OPTIONS["inplace_reuse"])
        for name in plan.inplace_ops:
            r.add("output written over its input", [name])
        out.append(r)
    if options.get("zero_copy_concat"):
        r = PassRecord("concat_zero_copy", PLANNER_OPTIONS["concat_zero_copy"])
        for name in plan.zero_copy_concats:
            r.add("Concat copies nothing", [name])
        for name, why in plan.concat_copies.items():
            r.notes.append(f"'{name}' copies: {why}")
        out.append(r)
    return out
