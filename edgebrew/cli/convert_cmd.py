"""``edgebrew convert deploy.prototxt weights.caffemodel -o model.brew``."""
from __future__ import annotations

import argparse

from ..quant.calibration import METHODS


def _floats(text):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def _size(text):
    try:
        h, w = (int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W, got '{text}'") from None
    return h, w


def add_parser(sub):
    from . import add_optimizer_args, parse_input_spec
    p = sub.add_parser("convert", help="convert a Caffe model into a .brew bundle",
                       description="Import a Caffe model and write a .brew bundle. Preprocessing "
                                   "options apply when images are fed; arrays are used as given.")
    p.add_argument("prototxt")
    p.add_argument("caffemodel")
    p.add_argument("-o", "--output", required=True, help="bundle to write (.brew)")
    mean = p.add_mutually_exclusive_group()
    mean.add_argument("--mean", type=_floats, help="per-channel mean, e.g. 104,117,123")
    mean.add_argument("--mean-file", help="mean image: mean.binaryproto or .npy")
    p.add_argument("--scale", type=float, help="multiplier after mean subtraction (e.g. 0.00390625)")
    p.add_argument("--rgb", action="store_true", help="the network takes RGB (default: BGR)")
    p.add_argument("--labels", help="class names, one per line (e.g. synset_words.txt)")
    p.add_argument("--input-size", type=_size, metavar="H,W", help="image resize (default: input's)")
    p.add_argument("--input", action="append", type=parse_input_spec, default=[],
                   metavar="NAME:N,C,H,W", help="supply or override an input shape")
    p.add_argument("--name", help="model name stored in the bundle")
    add_optimizer_args(p)
    p.add_argument("--report", action="store_true",
                   help="print what each optimizer pass changed, op counts before/after and "
                        "the memory plan (with --quantize int8: also the per-layer "
                        "sensitivity table)")
    q = p.add_argument_group("quantization")
    q.add_argument("--quantize", choices=("int8", "fp16"),
                   help="int8: int8 weights and activations (needs --calib); fp16: weights "
                        "stored as float16")
    q.add_argument("--calib", metavar="DIR|FILE.npy",
                   help="calibration data: a folder of images (preprocessed as above) or a .npy "
                        "of network tensors (N x C x H x W)")
    q.add_argument("--calib-count", type=int, metavar="N", help="use the first N samples")
    q.add_argument("--calib-method", choices=METHODS, default="minmax",
                   help="how activation ranges are chosen (default minmax)")
    q.add_argument("--calib-cache", metavar="FILE.json",
                   help="reuse the ranges in this file; computed and written there when absent")
    q.add_argument("--keep-fp32", type=_layer_names, default=[], metavar="L1,L2",
                   help="layers that stay float32")
    q.add_argument("--max-accuracy-drop", type=float, metavar="X",
                   help="fraction of top-1 agreement (classifiers) or of 1 - cosine the int8 "
                        "model may lose vs fp32; the most sensitive layers stay fp32 until it "
                        "holds (0.01 = one point)")
    q.add_argument("--validate", metavar="DIR|FILE.npy",
                   help="data the accuracy vs fp32 is measured on (default: the calibration "
                        "data)")
    q.add_argument("--quiet", action="store_true", help="no progress bars or accuracy report")
    p.set_defaults(run=run)


def _layer_names(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated layer names")
    return names


def run(args):
    from pathlib import Path

    from . import optimizer_selection
    from ..convert import convert
    optimize, passes, skip = optimizer_selection(args)
    bundle = convert(args.prototxt, args.caffemodel, inputs=dict(args.input) or None,
                     mean=args.mean if args.mean is not None else args.mean_file,
                     scale=args.scale, bgr=not args.rgb, labels=args.labels,
                     input_size=args.input_size, name=args.name,
                     optimize=optimize, passes=passes, skip_passes=skip,
                     quantize=args.quantize, calibration=args.calib,
                     calib_count=args.calib_count, calib_method=args.calib_method,
                     calib_cache=args.calib_cache, keep_fp32=args.keep_fp32,
                     max_accuracy_drop=args.max_accuracy_drop, validation=args.validate,
                     report=args.report, progress=not args.quiet)
    out = bundle.save(args.output)
    g = bundle.graph
    before = sum(bundle.metadata.extra.get("op_counts", {}).get("before", {}).values())
    ops = f"{before} layers -> {len(g.nodes)} ops" if optimize else f"{len(g.nodes)} ops"
    print(f"wrote {out} ({Path(out).stat().st_size:,} bytes): {ops}, "
          f"arena {bundle.plan.arena_bytes:,} bytes")
    for n in g.notes:
        print(f"note: {n}")
    if args.quantize is None and (args.calib or args.validate or args.keep_fp32
                                  or args.max_accuracy_drop is not None):
        print("note: --calib/--validate/--keep-fp32/--max-accuracy-drop only act with "
              "--quantize")
    if args.report:
        from .inspect_cmd import bundle_summary
        from ..report import format_optimization
        print()
        print(format_optimization(bundle_summary(bundle)))
    return 0
