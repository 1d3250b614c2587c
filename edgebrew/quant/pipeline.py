"""Quantizing a converted graph end to end: calibrate, choose what stays float (``keep_fp32``,
the accuracy budget), rewrite, and measure the result against float32.

``quantize_graph`` returns the new graph and a record for the bundle's metadata:
``accuracy`` ({output: metrics}, see ``accuracy``) and ``quantization`` (what was done, on which
data, per-layer decisions, the sensitivity table when computed, warnings).
"""
from __future__ import annotations

import sys

import numpy as np

from ..errors import InputError
from ..ir import Graph
from ..progress import Progress
from . import accuracy as acc
from .calibrate import collect_ranges
from .calibration import METHODS
from .quantizer import QuantizationError, quantizable_layers, quantize_int8, to_fp16
from .runner import GraphRunner

SCHEMES = ("int8", "fp16")
SENSITIVITY_SAMPLES = 64       # the per-layer analysis uses at most this many samples
NOTICEABLE_DROP = 0.01         # drops (1 - top-1 agreement, or 1 - cosine) worth a warning
POOR_DROP = 0.05


def _outputs(graph: Graph, samples, progress=None):
    return GraphRunner(graph).run_all(samples, progress)


def image_input_range(pre) -> tuple[float, float] | None:
    """The [lo, hi] pixels 0..255 map to under the bundle's preprocessing, when the user
    declared one (a mean or a scale): what real calibration samples should look like."""
    if pre is None or (not pre.mean and pre.mean_image is None and pre.scale == 1.0):
        return None
    if pre.mean_image is not None:
        m = np.asarray(pre.mean_image, np.float64)
        mean_lo, mean_hi = float(m.min()), float(m.max())
    else:
        mean_lo, mean_hi = (min(pre.mean), max(pre.mean)) if pre.mean else (0.0, 0.0)
    ends = [(0.0 - mean_hi) * pre.scale, (255.0 - mean_lo) * pre.scale]
    return min(ends), max(ends)


def _input_warnings(samples: np.ndarray, expected) -> list[str]:
    """Calibration samples unlike what images give after the bundle's preprocessing."""
    if expected is None:
        return []
    lo, hi = expected
    span = hi - lo
    got_lo, got_hi = float(samples.min()), float(samples.max())
    if got_lo < lo - 0.25 * span or got_hi > hi + 0.25 * span:
        return [f"the calibration inputs reach [{got_lo:.4g}, {got_hi:.4g}], outside the "
                f"[{lo:.4g}, {hi:.4g}] images give with this bundle's preprocessing: are they "
                "preprocessed the way the network's real inputs are?"]
    if got_hi - got_lo < 0.05 * span:
        return [f"the calibration inputs span only [{got_lo:.4g}, {got_hi:.4g}] of the "
                f"[{lo:.4g}, {hi:.4g}] images give with this bundle's preprocessing"]
    return []


def _degenerate_warnings(samples: np.ndarray, ranges) -> list[str]:
    warnings = []
    flat = samples.reshape(len(samples), -1)
    if len(samples) < 2 or np.all(flat.std(axis=0) == 0):
        warnings.append("the calibration samples are all the same: the int8 ranges describe "
                        "one input only")
    if float(np.abs(flat).max()) == 0.0:
        warnings.append("the calibration samples are all zero")
    dead = [t for t, (lo, hi) in ranges.items() if lo == hi == 0.0]
    if dead and len(dead) >= max(1, len(ranges) // 4):
        warnings.append(f"{len(dead)} of {len(ranges)} tensors never left 0 on the calibration "
                        "data (e.g. " + ", ".join(dead[:3]) + ")")
    return warnings


def sensitivity(graph: Graph, ranges, samples, reference, candidates, *, keep=(),
                progress=True) -> list[dict]:
    """Each candidate layer quantized alone: [{layer, drop, cosine}], most sensitive first."""
    rows = []
    with Progress(len(candidates), "sensitivity", enabled=progress) as bar:
        for name in candidates:
            g, _ = quantize_int8(graph, ranges, keep_fp32=keep, only={name})
            metrics = acc.compare(reference, _outputs(g, samples))
            rows.append({"layer": name, "drop": acc.drop_of(metrics),
                         "cosine": min(m["cosine"] for m in metrics.values())})
            bar.update(1)
    rows.sort(key=lambda r: (-r["drop"], r["cosine"]))
    return rows


def quantize_graph(graph: Graph, scheme: str, *, calibration=None, validation=None,
                   calib_method: str = "minmax", calib_cache=None, keep_fp32=(),
                   max_accuracy_drop: float | None = None, report: bool = False,
                   progress: bool = True, model_sha1: str | None = None, log=None,
                   expected_input_range=None):
    """(quantized graph, {"accuracy": ..., "quantization": ...}). ``calibration`` and
    ``validation`` are float32 sample arrays (N, *input_shape[1:]) or None;
    ``expected_input_range``: the [lo, hi] real (preprocessed image) inputs span, when known,
    to flag calibration data unlike them."""
    log = log if log is not None else (lambda msg: print(msg, file=sys.stderr))
    if scheme not in SCHEMES:
        raise InputError(f"quantize must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    if calib_method not in METHODS:
        raise InputError(f"calib_method must be one of {', '.join(METHODS)}, not "
                         f"{calib_method!r}")
    if max_accuracy_drop is not None and not 0.0 <= float(max_accuracy_drop) <= 1.0:
        raise InputError(f"max_accuracy_drop is a fraction in [0, 1] (0.01 = one point), got "
                         f"{max_accuracy_drop}")
    if len(graph.inputs) != 1:
        raise QuantizationError("quantization supports one-input networks (this one has "
                                f"{len(graph.inputs)})")
    record: dict = {"scheme": scheme, "warnings": []}
    if scheme == "fp16":
        qgraph, kept = to_fp16(graph)
        record["kept_float32"] = kept
        data = validation if validation is not None else calibration
        if data is None:      # no data given: a numerical check on synthetic inputs
            rng = np.random.default_rng(0)
            data = rng.standard_normal((8, *graph.shapes[graph.inputs[0].name][1:]),
                                       dtype=np.float32)
            record["accuracy_data"] = "synthetic N(0,1) inputs (no validation data given)"
        else:
            record["accuracy_data"] = "validation" if validation is not None else "calibration"
        metrics = acc.compare(_outputs(graph, data), _outputs(qgraph, data))
        record["accuracy_samples"] = int(len(data))
        return qgraph, {"accuracy": metrics, "quantization": record}

    if calibration is None:
        raise InputError("int8 quantization needs calibration data (--calib DIR|FILE.npy, or "
                         "calibration= an array or a folder of images)")
    ranges = collect_ranges(graph, calibration, calib_method, progress=progress,
                            cache=calib_cache, model_sha1=model_sha1)
    record.update(calib_method=calib_method, calib_samples=int(len(calibration)))
    record["warnings"] += _degenerate_warnings(calibration, ranges)
    record["warnings"] += _input_warnings(calibration, expected_input_range)
    eval_data = validation if validation is not None else calibration
    record["accuracy_data"] = "validation" if validation is not None else "calibration"
    if validation is None:
        record["notes"] = ["accuracy measured on the calibration data itself, which cannot show "
                           "calibration data unlike the real inputs: pass --validate (real "
                           "samples) for an independent figure"]
    record["accuracy_samples"] = int(len(eval_data))
    with Progress(len(eval_data), "fp32 reference", enabled=progress) as bar:
        reference = _outputs(graph, eval_data, bar)
    keep = list(keep_fp32 or ())
    rows = None
    if report or max_accuracy_drop is not None:
        sub = eval_data[:SENSITIVITY_SAMPLES]
        sub_ref = {t: v[:SENSITIVITY_SAMPLES] for t, v in reference.items()}
        candidates = [n for n in quantizable_layers(graph) if n not in keep]
        rows = sensitivity(graph, ranges, sub, sub_ref, candidates, keep=keep,
                           progress=progress)
        record["sensitivity"] = rows
    qgraph, decisions = quantize_int8(graph, ranges, keep_fp32=keep)
    metrics = acc.compare(reference, _outputs(qgraph, eval_data))
    if max_accuracy_drop is not None:
        record["max_accuracy_drop"] = float(max_accuracy_drop)
        queue = [r["layer"] for r in rows if r["layer"] not in keep]
        budget_kept = []
        while acc.drop_of(metrics) > max_accuracy_drop and queue:
            layer = queue.pop(0)
            keep.append(layer)
            budget_kept.append(layer)
            qgraph, decisions = quantize_int8(graph, ranges, keep_fp32=keep)
            metrics = acc.compare(reference, _outputs(qgraph, eval_data))
            log(f"  accuracy budget: kept '{layer}' in fp32 -> drop "
                f"{100 * acc.drop_of(metrics):.2f} points")
        record["kept_for_budget"] = budget_kept
        if acc.drop_of(metrics) > max_accuracy_drop:
            record["warnings"].append(
                f"the accuracy budget {max_accuracy_drop} is not met even with every "
                f"quantizable layer in fp32 (drop {acc.drop_of(metrics):.4f})")
    record["keep_fp32"] = keep
    record["layers"] = decisions
    record["drop"] = acc.drop_of(metrics)
    if record["drop"] > POOR_DROP:
        record["warnings"].append(
            f"int8 departs from fp32 by {100 * record['drop']:.1f} points on the "
            f"{record['accuracy_data']} data: accuracy is poor (check the calibration data, "
            "try --calib-method entropy/percentile, --keep-fp32 or --max-accuracy-drop)")
    elif record["drop"] > NOTICEABLE_DROP:
        record["warnings"].append(
            f"int8 departs from fp32 by {100 * record['drop']:.1f} points on the "
            f"{record['accuracy_data']} data (--max-accuracy-drop can win it back)")
    return qgraph, {"accuracy": metrics, "quantization": record}


def format_sensitivity(rows, decisions=None) -> str:
    lines = ["per-layer sensitivity (each layer alone in int8):",
             f"  {'layer':<32} {'drop':>8} {'cosine':>10}  in bundle"]
    for r in rows:
        state = (decisions or {}).get(r["layer"], "")
        lines.append(f"  {r['layer']:<32} {100 * r['drop']:7.2f}% {r['cosine']:10.6f}  "
                     f"{'int8' if state == 'int8' else 'fp32'}")
    return "\n".join(lines)
