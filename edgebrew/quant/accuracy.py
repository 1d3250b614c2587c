"""How much a quantized (or any other) model departs from its float32 reference.

Per output tensor, over the samples (the reference is the float32 model):

- ``cosine``: the mean over samples of the cosine similarity of the two outputs (each sample's
  output flattened); 1.0 is identical. Two all-zero outputs count as 1.0, one as 0.0.
- ``max_abs_error``: the largest |a - b| over every sample and element.
- ``top1_agreement`` / ``top5_agreement`` (classifier outputs only: one score vector per sample,
  shape N x C or N x C x 1 x 1 with C >= 2): the fraction of samples whose reference top-1
  class is the model's top-1 class / is among the model's top-5 classes.

The *drop* an accuracy budget (``max_accuracy_drop``) is measured in is, per output,
1 - top1_agreement for classifiers and 1 - cosine otherwise; a model's drop is its worst
output's.
"""
from __future__ import annotations

import numpy as np


def is_classifier(shape) -> bool:
    """One score vector per sample: (N, C) or (N, C, 1, 1) with C >= 2."""
    shape = tuple(shape)
    return len(shape) >= 2 and shape[1] >= 2 and all(d == 1 for d in shape[2:])


def compare_output(reference: np.ndarray, other: np.ndarray) -> dict:
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)
    oth = np.asarray(other, np.float64).reshape(len(other), -1)
    dot = (ref * oth).sum(axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(oth, axis=1)
    both_zero = (np.abs(ref).max(axis=1) == 0) & (np.abs(oth).max(axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dot / np.where(norms > 0, norms, 1), 0.0)
    cos = np.where(both_zero, 1.0, cos)
    out = {"cosine": float(np.clip(cos.mean(), -1.0, 1.0)),
           "max_abs_error": float(np.abs(ref - oth).max()) if ref.size else 0.0,
           "samples": int(len(ref))}
    if is_classifier(np.shape(reference)):
        top_ref = ref.argmax(axis=1)
        k = min(5, ref.shape[1])
        top_k = np.argsort(-oth, axis=1, kind="stable")[:, :k]
        out["top1_agreement"] = float((oth.argmax(axis=1) == top_ref).mean())
        out["top5_agreement"] = float((top_k == top_ref[:, None]).any(axis=1).mean())
    return out


def compare(reference: dict, other: dict) -> dict:
    """{output: metrics} for every output both hold."""
    return {t: compare_output(reference[t], other[t]) for t in reference if t in other}


def drop_of(metrics: dict) -> float:
    """The worst output's drop (see the module docstring)."""
    worst = 0.0
    for m in metrics.values():
        d = 1.0 - m["top1_agreement"] if "top1_agreement" in m else 1.0 - m["cosine"]
        worst = max(worst, d)
    return worst


def format_report(metrics: dict, *, title: str = "accuracy vs fp32") -> str:
    lines = [f"{title}:"]
    for t, m in metrics.items():
        parts = [f"cosine {m['cosine']:.6f}", f"max |err| {m['max_abs_error']:.4g}"]
        if "top1_agreement" in m:
            parts += [f"top-1 agree {100 * m['top1_agreement']:.2f}%",
                      f"top-5 agree {100 * m['top5_agreement']:.2f}%"]
        lines.append(f"  {t}: " + ", ".join(parts) + f"  ({m['samples']} samples)")
    return "\n".join(lines)
