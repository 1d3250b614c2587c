"""``edgebrew inspect deploy.prototxt [weights.caffemodel]``: layers, shapes, params, MACs."""
from __future__ import annotations

import json


def add_parser(sub):
    from . import parse_input_spec
    p = sub.add_parser("inspect", help="show a model's layers, shapes, parameters and MACs",
                       description="Show a model's layers, output shapes, parameter counts and "
                                   "multiply-accumulates (per image).")
    p.add_argument("prototxt", help="deploy.prototxt (or a train_val prototxt)")
    p.add_argument("caffemodel", nargs="?", help="weights (optional: shapes alone without it)")
    p.add_argument("--input", action="append", type=parse_input_spec, default=[],
                   metavar="NAME:N,C,H,W", help="supply or override an input shape (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args):
    from ..importer import load_caffe
    from ..report import format_summary, graph_summary
    graph = load_caffe(args.prototxt, args.caffemodel, inputs=dict(args.input) or None)
    summary = graph_summary(graph)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0
