"""The .brew bundle: a converted model (graph, weights, memory plan, metadata) in one file.

``Bundle(graph, metadata)`` plans memory and serializes; ``Bundle.load(path)`` reads one back
(weights are zero-copy views of the file's bytes).

Without an explicit ``plan``, a bundle gets a plan without aliases (every activation has its own
bytes: no in-place outputs, no zero-copy Concat), which every runtime runs; ``edgebrew.convert``
with ``optimize=True`` passes the planner's full plan.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import EdgebrewError
from ..ir import Graph
from ..optimizer.memory_planner import MemoryPlan, plan_from_offsets, plan_memory
from .format import FORMAT_VERSION, BundleFormatError, read_bytes, write_bytes  # noqa: F401
from .metadata import Metadata, Preprocessing  # noqa: F401


class Bundle:
    """A converted model, ready to save or to run with ``edgebrew.Session``."""

    def __init__(self, graph: Graph, metadata: Metadata | None = None,
                 plan: MemoryPlan | None = None):
        if not graph.shapes:
            graph.infer_shapes()
        if not graph.has_weights:
            raise EdgebrewError(f"graph '{graph.name}' has no weights: a bundle needs a caffemodel")
        self.graph = graph
        self.metadata = metadata or Metadata(model_name=graph.name)
        self.plan = plan or plan_memory(graph, inplace=False, zero_copy_concat=False)
        self._bytes: bytes | None = None

    def to_bytes(self) -> bytes:
        if self._bytes is None:
            self._bytes = write_bytes(self.graph, self.plan, self.metadata)
        return self._bytes

    def save(self, path) -> Path:
        """Write atomically: a temporary file in the same folder, fsync, then rename."""
        path = Path(path)
        data = self.to_bytes()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def from_bytes(cls, data, source="<bytes>") -> "Bundle":
        graph, offsets, arena, meta = read_bytes(data, source)
        try:
            plan = plan_from_offsets(graph, offsets, arena)
        except Exception as e:   # a graph the reader accepted but whose shapes do not add up
            raise BundleFormatError(f"{source}: corrupted bundle ({type(e).__name__}: {e})") \
                from None
        b = cls.__new__(cls)
        b.graph, b.metadata, b.plan = graph, meta, plan
        b._bytes = bytes(data)
        return b

    @classmethod
    def load(cls, path) -> "Bundle":
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise EdgebrewError(f"{path}: cannot read bundle: {e.strerror}") from None
        return cls.from_bytes(data, str(path))

    def __repr__(self):
        return (f"Bundle({self.metadata.model_name!r}, {len(self.graph.nodes)} ops, "
                f"arena {self.plan.arena_bytes} B)")
