"""``edgebrew compare a.brew (b.brew | deploy.prototxt weights.caffemodel) --data DIR``."""
from __future__ import annotations

import json


def add_parser(sub):
    p = sub.add_parser("compare", help="compare two models' outputs on the same data",
                       description="Compare a model (the reference, first) with another: a "
                                   "bundle, or a Caffe prototxt + caffemodel. Reports cosine "
                                   "similarity, max absolute error and, for classifiers, "
                                   "top-1/top-5 agreement per output.")
    p.add_argument("reference", help="the reference model: a .brew bundle, or a prototxt "
                                     "(followed by its caffemodel)")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="[caffemodel] then the other model: a .brew, or prototxt caffemodel")
    p.add_argument("--data", required=True, metavar="DIR|FILE.npy",
                   help="a folder of images (preprocessed with the bundle's preprocessing) or "
                        "a .npy of network tensors")
    p.add_argument("--count", type=int, metavar="N", help="use the first N samples")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def _split_models(first, rest):
    from ..errors import InputError
    items = [first, *rest]
    models = []
    while items:
        head = items.pop(0)
        if head.endswith(".prototxt"):
            if not items or not items[0].endswith(".caffemodel"):
                raise InputError(f"{head}: a prototxt needs its caffemodel after it")
            models.append((head, items.pop(0)))
        else:
            models.append(head)
    if len(models) != 2:
        raise InputError(f"compare takes two models, got {len(models)}")
    return models


def run(args):
    from ..compare import compare_models
    from ..quant.accuracy import format_report
    a, b = _split_models(args.reference, args.models)
    metrics = compare_models(a, b, args.data, count=args.count, threads=args.threads)
    if args.json:
        print(json.dumps({"accuracy": metrics}, indent=1))
    else:
        print(format_report(metrics, title="compared with the reference"))
    return 0
