"""``edgebrew finetune model.brew --data DIR|data.npz -o tuned.brew``: train the last layer on the
device (C runtime) with Caffe's SGD solver semantics and write a new bundle atomically."""
from __future__ import annotations

import json
import sys


def _ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def _pair(text):
    v = [float(x) for x in text.split(",") if x.strip()]
    if len(v) not in (1, 2):
        raise ValueError(text)
    return tuple(v)


def add_parser(sub):
    p = sub.add_parser(
        "finetune", help="fine-tune the last layer on your data (in the C runtime)",
        description="Caffe's 'learn the last layer first': freeze every layer but one "
                    "(default: the last InnerProduct / 1x1 Convolution), optionally give it a "
                    "new number of outputs, train it with SGD (Caffe's solver semantics) and "
                    "save a new bundle. --data is a folder with one subfolder of images per "
                    "class (the subfolder names become the labels; images are preprocessed "
                    "with the bundle's preprocessing) or an .npz with arrays 'data' (network "
                    "tensors) and 'labels'.")
    p.add_argument("bundle", help="model.brew")
    p.add_argument("--data", required=True, metavar="DIR|NPZ")
    p.add_argument("--val", metavar="DIR|NPZ", help="validation data, evaluated every epoch")
    p.add_argument("-o", "--output", required=True, help="the tuned bundle (written atomically)")
    p.add_argument("--layer", help="the layer to train (default: the last InnerProduct or 1x1 "
                                   "Convolution)")
    p.add_argument("--num-output", type=int, help="re-initialize the layer with this many "
                                                  "outputs (default: keep its weights)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-iter", type=int)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--iter-size", type=int, default=1)
    p.add_argument("--lr", "--base-lr", dest="base_lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--regularization", choices=("L2", "L1"), default="L2")
    p.add_argument("--solver", choices=("SGD", "Nesterov", "Adam"), default="SGD")
    p.add_argument("--lr-policy", default="fixed",
                   choices=("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid"))
    p.add_argument("--gamma", type=float, default=0.1)
    p.add_argument("--stepsize", type=int)
    p.add_argument("--stepvalue", type=_ints, default=[], metavar="A,B,C")
    p.add_argument("--power", type=float, default=1.0)
    p.add_argument("--clip-gradients", type=float)
    p.add_argument("--lr-mult", type=_pair, metavar="W,B", help="override the prototxt's")
    p.add_argument("--decay-mult", type=_pair, metavar="W,B", help="override the prototxt's")
    p.add_argument("--no-shuffle", action="store_true", help="feed samples in the given order")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--state", metavar="FILE.brewstate", help="save the training state here")
    p.add_argument("--resume", metavar="FILE.brewstate", help="continue from a saved state")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the history as JSON")
    p.set_defaults(run=run)


def run(args):
    from ..bundle import Bundle
    from ..finetune import finetune, load_dataset
    from ..runtime.session import Model
    bundle = Bundle.load(args.bundle)
    shape = Model(bundle).inputs[0].shape
    x, y, classes = load_dataset(args.data, bundle, shape)
    val = None
    if args.val:
        vx, vy, vclasses = load_dataset(args.val, bundle, shape)
        if classes and vclasses and vclasses != classes:
            from ..errors import InputError
            raise InputError(f"--val classes {vclasses} differ from --data classes {classes}")
        val = (vx, vy)
    res = finetune(
        bundle, x, y, layer=args.layer, num_output=args.num_output, base_lr=args.base_lr,
        momentum=args.momentum, weight_decay=args.weight_decay, lr_policy=args.lr_policy,
        gamma=args.gamma, stepsize=args.stepsize, power=args.power, stepvalue=args.stepvalue,
        batch_size=args.batch_size, epochs=args.epochs, max_iter=args.max_iter,
        shuffle=not args.no_shuffle, seed=args.seed, lr_mult=args.lr_mult,
        decay_mult=args.decay_mult, iter_size=args.iter_size,
        clip_gradients=args.clip_gradients, regularization=args.regularization,
        solver=args.solver, class_names=classes, val=val, threads=args.threads,
        progress=not args.quiet, output=args.output, state=args.state, resume=args.resume)
    if args.json:
        print(json.dumps(res.history))
    else:
        for e in res.history["epochs"]:
            line = (f"epoch {e['epoch']}: loss {e['loss']:.4f}, train accuracy "
                    f"{e['accuracy']:.4f}")
            if "val_accuracy" in e:
                line += f", val accuracy {e['val_accuracy']:.4f}"
            print(line)
        print(f"layer '{res.layer}': {len(res.history['iterations'])} iterations in "
              f"{res.seconds:.1f}s -> {args.output}", file=sys.stderr)
    return 0
