"""edgebrew.convert: Caffe prototxt + caffemodel -> Bundle (with preprocessing metadata).

By default the graph goes through the optimizer's pipeline (``edgebrew.optimizer``) and the
memory planner's in-place and zero-copy placement; ``optimize=False`` packages the imported graph
as it is, with a plan in which every activation has its own bytes.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from .bundle import Bundle, Metadata, Preprocessing
from .errors import EdgebrewError
from .importer import load_caffe
from .importer.parsing import read_binaryproto
from .importer.zoo_readme import sha1_of

# What ``convert(optimize=None)`` does. The optimized bundle carries fused activations and
# in-place / zero-copy memory placement, which the C runtime must support to run it.
DEFAULT_OPTIMIZE = True


def _labels(labels) -> list[str]:
    if labels is None:
        return []
    if isinstance(labels, (str, Path)):
        try:
            lines = Path(labels).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise EdgebrewError(f"{labels}: cannot read labels: {e.strerror}") from None
        return [l.strip() for l in lines if l.strip()]
    return [str(l) for l in labels]


def _mean(mean):
    """Per-channel values, or a mean image read from a .binaryproto / .npy file."""
    if mean is None:
        return None, None
    if isinstance(mean, (str, Path)):
        p = Path(mean)
        if p.suffix == ".npy":
            img = np.load(p).astype(np.float32)
        else:
            img = read_binaryproto(p)
        img = img.reshape(img.shape[-3:]) if img.ndim >= 3 else img
        return None, img
    values = [float(v) for v in np.asarray(mean, np.float64).ravel()]
    return values, None


def convert(prototxt, caffemodel, *, inputs=None, mean=None, scale: float | None = None,
            bgr: bool = True, labels: Sequence[str] | str | Path | None = None,
            input_size: tuple[int, int] | None = None, name: str | None = None,
            optimize: bool | None = None, passes: Sequence[str] | None = None,
            skip_passes: Sequence[str] = (), quantize: str | None = None,
            calibration=None, calib_count: int | None = None, calib_method: str = "minmax",
            calib_cache=None, keep_fp32: Sequence[str] = (),
            max_accuracy_drop: float | None = None, validation=None, report: bool = False,
            progress: bool = True) -> Bundle:
    """Import a Caffe model and package it as a Bundle.

    ``mean``: per-channel values (in the network's channel order) or a mean file path
    (.binaryproto or .npy); ``scale``: multiplier applied after the mean; ``bgr``: the network
    takes BGR (Caffe's default) rather than RGB; ``labels``: a list or a synset_words.txt-style
    file; ``input_size``: (H, W) images are resized to (default: the input's). These apply only
    to images: arrays are network tensors and are fed as given.

    ``optimize`` (default ``DEFAULT_OPTIMIZE``): run the optimizer, ``passes`` (names, in order;
    default: the whole pipeline) minus ``skip_passes``. The bundle's ``metadata.extra`` records
    the pass log (``passes``), the op counts by type before and after (``op_counts``) and the
    memory figures (``memory``).

    ``quantize``: ``"int8"`` or ``"fp16"`` (see edgebrew/quant). ``calibration`` (int8: required)
    and ``validation``: an array of network tensors (N x C x H x W, fed as given), a .npy of one,
    or a folder of images (preprocessed with this bundle's preprocessing); ``calib_count`` takes
    the first N. ``calib_method``: minmax, percentile, entropy or mse; ``calib_cache``: a JSON
    file of ranges to reuse (written when absent). ``keep_fp32``: layer names that stay float;
    ``max_accuracy_drop``: a fraction (0.01 = one point of top-1 agreement, or of 1 - cosine)
    the int8 model may lose against fp32 — the most sensitive layers stay float until it holds.
    The accuracy against fp32 (on ``validation``, else on the calibration data) is printed and
    stored in ``metadata.extra["accuracy"]`` ({output: cosine, max_abs_error, top1_agreement,
    top5_agreement}); ``metadata.extra["quantization"]`` records the rest (``report``: with the
    per-layer sensitivity table).
    """
    from . import optimizer as opt
    if optimize is None:
        optimize = DEFAULT_OPTIMIZE
    if quantize is None and (calibration is not None or validation is not None or keep_fp32
                             or max_accuracy_drop is not None or calib_cache is not None):
        raise EdgebrewError("calibration, validation, keep_fp32, max_accuracy_drop and "
                            "calib_cache only act with quantize='int8' (or 'fp16')")
    graph = load_caffe(prototxt, caffemodel, inputs=inputs)
    before = opt.op_counts(graph)
    if optimize:
        selected = opt.select_passes(passes, skip_passes)
        options = opt.planner_options(selected)
        graph, log = opt.optimize(graph, selected)
        plan = opt.plan_memory(graph, **options)
        log += opt.planner_records(plan, options)
    else:
        log, plan = [], opt.plan_memory(graph, inplace=False, zero_copy_concat=False)
    mean_values, mean_image = _mean(mean)
    shape = graph.inputs[0].shape
    channels = shape[1] if len(shape) >= 2 else 0
    if mean_values is not None and len(mean_values) not in (1, channels):
        raise EdgebrewError(f"mean has {len(mean_values)} values; the input "
                            f"'{graph.inputs[0].name}' has {channels} channels")
    if mean_values is not None and len(mean_values) == 1:
        mean_values = mean_values * channels
    if input_size is None and len(shape) == 4:
        input_size = (shape[2], shape[3])
    pre = Preprocessing(mean=mean_values, mean_image=mean_image,
                        scale=1.0 if scale is None else float(scale),
                        channel_order="BGR" if bgr else "RGB",
                        input_size=tuple(int(v) for v in input_size) if input_size else None,
                        grayscale=channels == 1)
    from . import __version__
    meta = Metadata(
        model_name=name or graph.name, source_prototxt=Path(prototxt).name,
        source_caffemodel=Path(caffemodel).name,
        source_sha1=graph.source.get("caffemodel_sha1") or sha1_of(caffemodel),
        preprocessing=pre, labels=_labels(labels), converter_version=__version__,
        converter_options={"inputs": {k: list(v) for k, v in (inputs or {}).items()},
                           "mean": mean_values if mean_image is None else str(mean),
                           "scale": pre.scale, "bgr": bgr,
                           "input_size": list(pre.input_size or ()),
                           "optimize": bool(optimize),
                           "passes": list(passes) if passes is not None else None,
                           "skip_passes": list(skip_passes or ())},
        extra={"passes": [r.to_json() for r in log],
               "op_counts": {"before": before, "after": opt.op_counts(graph)},
               "memory": {"arena_bytes": plan.arena_bytes, "naive_bytes": plan.naive_bytes,
                          "lower_bound_bytes": plan.lower_bound_bytes}})
    if quantize is not None:
        graph, plan, record = _quantize(graph, quantize, pre, calibration, calib_count,
                                        calib_method, calib_cache, keep_fp32,
                                        max_accuracy_drop, validation, report, progress,
                                        meta.source_sha1, optimize, passes, skip_passes)
        meta.extra.update(record)
        meta.extra["memory"] = {"arena_bytes": plan.arena_bytes,
                                "naive_bytes": plan.naive_bytes,
                                "lower_bound_bytes": plan.lower_bound_bytes}
        meta.converter_options.update(
            quantize=quantize, calib_method=calib_method if quantize == "int8" else None,
            calib_count=calib_count, keep_fp32=list(keep_fp32 or ()),
            max_accuracy_drop=max_accuracy_drop)
    return Bundle(graph, meta, plan)


def _quantize(graph, scheme, pre, calibration, calib_count, calib_method, calib_cache,
              keep_fp32, max_accuracy_drop, validation, report, progress, sha1, optimize,
              passes, skip_passes):
    from . import optimizer as opt
    from .quant.accuracy import format_report
    from .quant.pipeline import format_sensitivity, image_input_range, quantize_graph
    from .quant.samples import load_samples
    shape = graph.shapes[graph.inputs[0].name]
    calib = (None if calibration is None else
             load_samples(calibration, pre, shape, count=calib_count, what="calibration"))
    val = (None if validation is None else
           load_samples(validation, pre, shape, what="validation"))
    say = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None)
    qgraph, record = quantize_graph(graph, scheme, calibration=calib, validation=val,
                                    calib_method=calib_method, calib_cache=calib_cache,
                                    keep_fp32=keep_fp32, max_accuracy_drop=max_accuracy_drop,
                                    report=report, progress=progress, model_sha1=sha1,
                                    log=say, expected_input_range=image_input_range(pre))
    q = record["quantization"]
    say(format_report(record["accuracy"], title=f"{scheme} accuracy vs fp32 "
                      f"({q['accuracy_data']} data, {q['accuracy_samples']} samples)"))
    if report and q.get("sensitivity"):
        say(format_sensitivity(q["sensitivity"], q.get("layers")))
    for w in q["warnings"]:
        say(f"warning: {w}")
    for n in q.get("notes", []):
        say(f"note: {n}")
    if optimize:
        plan = opt.plan_memory(qgraph, **opt.planner_options(opt.select_passes(passes,
                                                                               skip_passes)))
    else:
        plan = opt.plan_memory(qgraph, inplace=False, zero_copy_concat=False)
    return qgraph, plan, record
