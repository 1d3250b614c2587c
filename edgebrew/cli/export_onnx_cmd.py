"""``edgebrew export-onnx (model.brew | deploy.prototxt weights.caffemodel) -o model.onnx``."""
from __future__ import annotations


def add_parser(sub):
    from . import parse_input_spec
    p = sub.add_parser("export-onnx", help="export a model to ONNX (fp32)",
                       description="Export a .brew bundle, or a Caffe prototxt with its "
                                   "caffemodel, to an ONNX file that onnxruntime runs with "
                                   "Caffe's exact semantics. The output names are the Caffe top "
                                   "names; preprocessing and labels travel as metadata.")
    p.add_argument("model", help="model.brew, or deploy.prototxt (then give the caffemodel)")
    p.add_argument("caffemodel", nargs="?", help="weights, with a prototxt")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write (.onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 13 or later (default 17)")
    p.add_argument("--no-optimize", action="store_true",
                   help="export the graph as imported, without edgebrew's optimizer passes")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="make the batch axis symbolic (one file for any batch size)")
    p.add_argument("--detection-inputs", action="store_true",
                   help="export the net up to each DetectionOutput's inputs (loc, conf, priors) "
                        "instead of the detection step")
    p.add_argument("--input", action="append", type=parse_input_spec, default=[],
                   metavar="NAME:N,C,H,W", help="supply or override an input shape (prototxt "
                                                "only; repeatable)")
    p.set_defaults(run=run)


def run(args):
    from pathlib import Path

    from ..errors import EdgebrewError
    from ..onnx_export import export_onnx
    from ..onnx_export.exporter import describe
    from .inspect_cmd import is_bundle

    if args.caffemodel is None:
        if not is_bundle(args.model):
            raise EdgebrewError(f"{args.model}: not a .brew bundle; a prototxt needs its "
                                "caffemodel: edgebrew export-onnx deploy.prototxt "
                                "weights.caffemodel -o model.onnx")
        if args.input:
            raise EdgebrewError("--input applies to a prototxt, not to a bundle")
        source, inputs = args.model, None
    else:
        source, inputs = (args.model, args.caffemodel), dict(args.input) or None
    path = export_onnx(source, args.output, opset=args.opset, optimized=not args.no_optimize,
                       dynamic_batch=args.dynamic_batch, inputs=inputs,
                       detection_output="inputs" if args.detection_inputs else "exact")
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    print(f"wrote {path} ({Path(path).stat().st_size:,} bytes): {describe(model)}")
    print(f"inputs: {', '.join(_desc(v) for v in model.graph.input)}")
    print(f"outputs: {', '.join(_desc(v) for v in model.graph.output)}")
    return 0


def _desc(vi):
    dims = [d.dim_param or str(d.dim_value) if (d.dim_param or d.HasField("dim_value")) else "?"
            for d in vi.type.tensor_type.shape.dim]
    return f"{vi.name} [{'x'.join(dims)}]"
