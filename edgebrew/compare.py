"""Compare two models output by output on the same data: ``edgebrew compare a.brew b.brew``.

Either side is a bundle (path, bytes or Bundle) or a ``(prototxt, caffemodel)`` pair (converted
in memory, float32). The first model is the reference. Folder data is preprocessed with the
first bundle's preprocessing (a Caffe pair has none: arrays then, or images with the other
side's). The metrics are ``edgebrew.quant.accuracy``'s: cosine, max_abs_error and, for
classifier outputs, top-1 / top-5 agreement.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .bundle import Bundle
from .bundle.metadata import Preprocessing
from .errors import InputError
from .quant.accuracy import compare
from .quant.samples import load_samples


def _as_bundle(model) -> Bundle:
    if isinstance(model, Bundle):
        return model
    if isinstance(model, tuple) and len(model) == 2:
        from .convert import convert
        return convert(*model)
    if isinstance(model, (bytes, bytearray, memoryview)):
        return Bundle.from_bytes(bytes(model))
    p = Path(model)
    if not p.is_file():
        raise InputError(f"{p}: model not found")
    return Bundle.load(p)


def _outputs(bundle: Bundle, samples: np.ndarray, threads: int):
    from .runtime.session import Session
    session = Session(bundle, threads=threads)
    name = session.inputs[0].name
    batch = session.inputs[0].shape[0]
    if batch != 1 and len(samples) % batch:
        raise InputError(f"the model takes batches of {batch}; give a multiple of {batch} "
                         f"samples (got {len(samples)})")
    parts: dict[str, list] = {}
    for i in range(0, len(samples), batch):
        for k, v in session.run({name: samples[i:i + batch]}).items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def compare_models(reference, other, data, *, count: int | None = None,
                   threads: int = 1) -> dict:
    """{output: metrics} of ``other`` against ``reference`` over ``data``."""
    a, b = _as_bundle(reference), _as_bundle(other)
    ins_a, ins_b = a.graph.inputs, b.graph.inputs
    if len(ins_a) != 1 or len(ins_b) != 1:
        raise InputError("compare takes one-input models")
    shape_a = a.graph.shapes[ins_a[0].name]
    shape_b = b.graph.shapes[ins_b[0].name]
    if tuple(shape_a[1:]) != tuple(shape_b[1:]):
        raise InputError(f"the models take different inputs: {tuple(shape_a)} vs "
                         f"{tuple(shape_b)}")
    pre = next((m.metadata.preprocessing for m in (a, b)
                if m.metadata.preprocessing.input_size or m.metadata.preprocessing.mean
                or m.metadata.preprocessing.scale != 1.0), Preprocessing())
    samples = load_samples(data, pre, shape_a, count=count, what="comparison")
    out_a, out_b = _outputs(a, samples, threads), _outputs(b, samples, threads)
    common = [t for t in out_a if t in out_b]
    if not common:
        raise InputError(f"the models share no output name ({sorted(out_a)} vs "
                         f"{sorted(out_b)})")
    return compare({t: out_a[t] for t in common}, {t: out_b[t] for t in common})
