"""``edgebrew run model.brew INPUT``: top-5 classes for classifiers, else output summaries."""
from __future__ import annotations

import numpy as np


def add_parser(sub):
    p = sub.add_parser("run", help="run a bundle on an image or a .npy tensor",
                       description="Run a bundle in the C runtime. An image is preprocessed with "
                                   "the bundle's preprocessing; a .npy is fed as given.")
    p.add_argument("bundle", help="model.brew")
    p.add_argument("input", help="an image file or a .npy network tensor")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=5, help="classes to show for a classifier")
    p.set_defaults(run=run)


def is_classifier_output(arr: np.ndarray) -> bool:
    """One score vector per image: (1, K) or (1, K, 1, 1) with K > 1."""
    return arr.ndim >= 2 and arr.shape[0] == 1 and arr.shape[1] > 1 and \
        all(d == 1 for d in arr.shape[2:])


def run(args):
    from ..bundle import Bundle
    from ..preprocess import load_input
    from ..runtime import Session
    bundle = Bundle.load(args.bundle)
    session = Session(bundle, threads=args.threads)
    info = session.inputs[0]
    x = load_input(args.input, bundle.metadata.preprocessing, info.shape)
    outputs = session.run({info.name: x} if len(session.inputs) == 1 else x)
    labels = bundle.metadata.labels
    for name, arr in outputs.items():
        if is_classifier_output(arr):
            scores = arr.reshape(-1)
            order = np.argsort(-scores, kind="stable")[:args.top]
            print(f"{name}: top-{len(order)}")
            for k in order:
                label = labels[k] if k < len(labels) else f"class {k}"
                print(f"{scores[k]:.4f} - {label}")
        else:
            print(f"{name}: shape {'x'.join(map(str, arr.shape))}, min {arr.min():.6g}, "
                  f"max {arr.max():.6g}, mean {arr.mean():.6g}")
    session.close()
    return 0
