"""``edgebrew inspect deploy.prototxt [weights.caffemodel]`` or ``edgebrew inspect model.brew``:
layers, shapes, parameters, MACs (and, for a bundle, its memory plan and metadata)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path


def add_parser(sub):
    from . import parse_input_spec
    p = sub.add_parser("inspect", help="show a model's layers, shapes, parameters and MACs",
                       description="Show a model's layers, output shapes, parameter counts and "
                                   "multiply-accumulates (per image). Takes a prototxt (with or "
                                   "without weights) or a .brew bundle.")
    p.add_argument("model", help="deploy.prototxt (or a train_val prototxt), or model.brew")
    p.add_argument("caffemodel", nargs="?", help="weights (optional: shapes alone without it)")
    p.add_argument("--input", action="append", type=parse_input_spec, default=[],
                   metavar="NAME:N,C,H,W", help="supply or override an input shape (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def is_bundle(path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == b"EBRW"
    except OSError:
        return False


def bundle_summary(bundle) -> dict:
    from ..report import graph_summary
    summary = graph_summary(bundle.graph)
    plan = bundle.plan
    summary["memory"] = {"arena_bytes": plan.arena_bytes, "naive_bytes": plan.naive_bytes,
                         "lower_bound_bytes": plan.lower_bound_bytes}
    meta = dataclasses.asdict(bundle.metadata)
    pre = meta["preprocessing"]
    pre["mean_image"] = None if pre["mean_image"] is None else list(bundle.metadata.preprocessing.mean_image.shape)
    pre["input_size"] = list(pre["input_size"]) if pre["input_size"] else None
    summary["metadata"] = meta
    summary["bundle_bytes"] = len(bundle.to_bytes())
    return summary


def run(args):
    from ..report import format_summary, graph_summary
    if Path(args.model).suffix == ".brew" or is_bundle(args.model):
        from ..bundle import Bundle
        if args.caffemodel or args.input:
            from ..errors import EdgebrewError
            raise EdgebrewError("a bundle carries its weights and input shapes: inspect takes "
                                "no caffemodel or --input with a .brew")
        summary = bundle_summary(Bundle.load(args.model))
    else:
        from ..importer import load_caffe
        graph = load_caffe(args.model, args.caffemodel, inputs=dict(args.input) or None)
        summary = graph_summary(graph)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(format_summary(summary))
    if "memory" in summary:
        m, meta = summary["memory"], summary["metadata"]
        print(f"\nmemory plan: arena {m['arena_bytes']:,} B; every activation apart "
              f"{m['naive_bytes']:,} B; lower bound {m['lower_bound_bytes']:,} B")
        pre = meta["preprocessing"]
        print(f"preprocessing: mean {pre['mean'] or pre['mean_image'] or 'none'}, scale "
              f"{pre['scale']}, {pre['channel_order']}, resize to {pre['input_size']}")
        print(f"labels: {len(meta['labels'])}; source: {meta['source_prototxt']} + "
              f"{meta['source_caffemodel']} (sha1 {meta['source_sha1'][:12]}...); converter "
              f"{meta['converter_version']}")
    return 0
