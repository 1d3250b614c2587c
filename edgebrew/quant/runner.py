"""Running a graph over many samples with the C runtime: for calibration (every activation),
accuracy measurement and sensitivity analysis.

The graph is packaged as an in-memory bundle whose outputs are the tensors asked for (graph
outputs and any intermediate ones), so libedgebrew computes them at native speed; the memory
plan keeps each fetched tensor alive to the end of the run.
"""
from __future__ import annotations

import os

import numpy as np

from ..bundle import Bundle
from ..ir import Graph
from .samples import batches


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class GraphRunner:
    """``GraphRunner(graph, fetch).run(batch)`` -> {tensor: array} for one input batch."""

    def __init__(self, graph: Graph, fetch=None, *, threads: int | None = None,
                 backend: str | None = None):
        g = graph.copy()
        self.input_names = [t.name for t in g.inputs]
        wanted = list(dict.fromkeys(fetch if fetch is not None else g.output_names))
        self.fetch = wanted
        g.output_names = [t for t in wanted if t not in self.input_names]
        if not g.shapes:
            g.infer_shapes()
        self.batch = int(g.shapes[self.input_names[0]][0])
        self.backend = backend or os.environ.get("EDGEBREW_QUANT_BACKEND", "c")
        if self.backend == "c":
            from ..runtime.session import Session
            self.session = Session(Bundle(g), threads=threads or default_threads())
        elif self.backend == "reference":      # the NumPy reference (slow; for cross-checks)
            self.graph = g
        else:
            raise ValueError(f"backend must be 'c' or 'reference', not {self.backend!r}")

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self.backend == "reference":
            from .. import reference
            out = reference.run(self.graph, {self.input_names[0]: batch})
            out = {k: np.asarray(v, np.float32) for k, v in out.items()}
        else:
            out = self.session.run({self.input_names[0]: batch})
        for t in self.fetch:
            if t in self.input_names:
                out[t] = batch
        return out

    def stream(self, samples: np.ndarray, progress=None):
        """Yields ({tensor: array}, real sample count) per batch (the last one zero-padded)."""
        for chunk, real in batches(samples, self.batch):
            yield self.run(chunk), real
            if progress is not None:
                progress.update(real)

    def run_all(self, samples: np.ndarray, progress=None) -> dict[str, np.ndarray]:
        """Every fetched tensor for every sample, stacked along the batch axis."""
        parts: dict[str, list] = {t: [] for t in self.fetch}
        for out, real in self.stream(samples, progress):
            for t in self.fetch:
                parts[t].append(out[t][:real])
        return {t: np.concatenate(v) for t, v in parts.items()}
