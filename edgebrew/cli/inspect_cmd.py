"""``edgebrew inspect deploy.prototxt [weights.caffemodel]`` or ``edgebrew inspect model.brew``:
layers, shapes, parameters, MACs; what the optimizer does (per pass, op counts before/after) and
the memory plan; for a bundle, its metadata.

On a prototxt the report is that of the optimized graph ``edgebrew convert`` would build. Without a
caffemodel the passes rewrite the structure only (a folded BatchNorm still disappears and its
convolution gains a bias blob, whose value is simply unknown), so the report is the same as with
weights: no pass decides anything from weight values.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path


def add_parser(sub):
    from . import add_optimizer_args, parse_input_spec
    p = sub.add_parser("inspect", help="show a model's layers, shapes, parameters and MACs",
                       description="Show a model's layers, output shapes, parameter counts and "
                                   "multiply-accumulates (per image). Takes a prototxt (with or "
                                   "without weights) or a .brew bundle.")
    p.add_argument("model", help="deploy.prototxt (or a train_val prototxt), or model.brew")
    p.add_argument("caffemodel", nargs="?", help="weights (optional: shapes alone without it)")
    p.add_argument("--input", action="append", type=parse_input_spec, default=[],
                   metavar="NAME:N,C,H,W", help="supply or override an input shape (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_optimizer_args(p)
    p.set_defaults(run=run)


def is_bundle(path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == b"EBRW"
    except OSError:
        return False


def bundle_summary(bundle) -> dict:
    from ..optimizer import op_counts
    from ..report import graph_summary, optimization_summary
    summary = graph_summary(bundle.graph)
    plan = bundle.plan
    extra = bundle.metadata.extra or {}
    counts = extra.get("op_counts", {})
    before = counts.get("before") or op_counts(bundle.graph)
    summary.update(optimization_summary(before, bundle.graph, extra.get("passes", []), plan))
    meta = dataclasses.asdict(bundle.metadata)
    pre = meta["preprocessing"]
    pre["mean_image"] = None if pre["mean_image"] is None else list(bundle.metadata.preprocessing.mean_image.shape)
    pre["input_size"] = list(pre["input_size"]) if pre["input_size"] else None
    summary["metadata"] = meta
    summary["bundle_bytes"] = len(bundle.to_bytes())
    if "accuracy" in extra:                 # quantized bundles: accuracy vs fp32 per output
        summary["accuracy"] = extra["accuracy"]
    if "quantization" in extra:
        summary["quantization"] = extra["quantization"]
    return summary


def prototxt_summary(graph, optimize=True, passes=None, skip_passes=()) -> dict:
    """``graph_summary`` of the imported graph, plus the optimized graph's ``ops``, ``passes``,
    ``op_counts`` and ``memory`` (what ``convert`` with these options would build)."""
    from .. import optimizer as opt
    from ..report import graph_summary, optimization_summary
    summary = graph_summary(graph)
    if optimize:
        selected = opt.select_passes(passes, skip_passes)
        options = opt.planner_options(selected)
        optimized, log = opt.optimize(graph, selected)
        plan = opt.plan_memory(optimized, **options)
        log += opt.planner_records(plan, options)
    else:
        optimized, log = graph, []
        plan = opt.plan_memory(graph, inplace=False, zero_copy_concat=False)
    summary.update(optimization_summary(opt.op_counts(graph), optimized,
                                        [r.to_json() for r in log], plan))
    return summary


def run(args):
    from . import optimizer_selection
    from ..errors import EdgebrewError
    from ..report import format_optimization, format_summary
    optimize, passes, skip = optimizer_selection(args)
    if Path(args.model).suffix == ".brew" or is_bundle(args.model):
        from ..bundle import Bundle
        if args.caffemodel or args.input:
            raise EdgebrewError("a bundle carries its weights and input shapes: inspect takes "
                                "no caffemodel or --input with a .brew")
        if not optimize or passes or skip:
            raise EdgebrewError("a bundle was optimized when it was converted: -O, --passes and "
                                "--skip-pass apply to a prototxt (or to edgebrew convert)")
        summary = bundle_summary(Bundle.load(args.model))
    else:
        from ..importer import load_caffe
        graph = load_caffe(args.model, args.caffemodel, inputs=dict(args.input) or None)
        summary = prototxt_summary(graph, optimize, passes, skip)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(format_summary(summary))
    print()
    print(format_optimization(summary))
    if "metadata" in summary:
        meta = summary["metadata"]
        pre = meta["preprocessing"]
        print(f"preprocessing: mean {pre['mean'] or pre['mean_image'] or 'none'}, scale "
              f"{pre['scale']}, {pre['channel_order']}, resize to {pre['input_size']}")
        print(f"labels: {len(meta['labels'])}; source: {meta['source_prototxt']} + "
              f"{meta['source_caffemodel']} (sha1 {meta['source_sha1'][:12]}...); converter "
              f"{meta['converter_version']}")
    if "quantization" in summary:
        from ..quant.accuracy import format_report
        q = summary["quantization"]
        layers = q.get("layers", {})
        int8 = sum(1 for v in layers.values() if v == "int8")
        print(f"quantization: {q['scheme']}" + (f", {int8} of {len(layers)} candidate ops in "
                                                 f"int8 ({q.get('calib_method')} calibration, "
                                                 f"{q.get('calib_samples')} samples)"
                                                 if q["scheme"] == "int8" else ""))
        if summary.get("accuracy"):
            print(format_report(summary["accuracy"], title=f"accuracy vs fp32 "
                                f"({q.get('accuracy_data')} data)"))
        for w in q.get("warnings", []):
            print(f"warning: {w}")
    return 0
