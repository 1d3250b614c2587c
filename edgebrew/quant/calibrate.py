"""Calibration: run the float32 graph over the calibration samples and turn what every
activation held into an int8 range (``calibration.Calibrator``), with a progress bar; the ranges
can be cached in a JSON file and reused (``--calib-cache``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..ir import Graph
from ..progress import Progress
from .calibration import Calibrator, load_cache, save_cache
from .runner import GraphRunner


def activation_names(graph: Graph) -> list[str]:
    """Every float activation: graph inputs and every node output."""
    names = [t.name for t in graph.inputs]
    for n in graph.nodes:
        names += [t for t in n.outputs if t not in names]
    return names


def collect_ranges(graph: Graph, samples: np.ndarray, method: str = "minmax", *,
                   progress: bool = True, cache=None, model_sha1: str | None = None,
                   **calibrator_options) -> dict[str, tuple[float, float]]:
    """{tensor: (lo, hi)} for every activation of ``graph``. With ``cache`` (a path): reuse its
    ranges when the file exists (and covers the graph), else compute and save them there."""
    names = activation_names(graph)
    if cache is not None and Path(cache).is_file():
        loaded = load_cache(cache)
        ranges = loaded["ranges"]
        missing = [t for t in names if t not in ranges]
        if not missing:
            return {t: tuple(ranges[t]) for t in names}
        # a cache of another model (or an older graph) is recomputed, not half-used
    cal = Calibrator(method, **calibrator_options)
    runner = GraphRunner(graph, names)
    passes = 2 if cal.needs_second_pass else 1
    with Progress(len(samples) * passes, f"calibrating ({method})", enabled=progress) as bar:
        for out, real in runner.stream(samples, bar):
            for t in names:
                cal.observe(t, out[t][:real])
        if cal.needs_second_pass:
            cal.start_second_pass()
            for out, real in runner.stream(samples, bar):
                for t in names:
                    cal.observe_histogram(t, out[t][:real])
    ranges = cal.ranges()
    if cache is not None:
        save_cache(cache, ranges, method=method, model_sha1=model_sha1,
                   extra={"samples": int(len(samples))})
    return ranges
