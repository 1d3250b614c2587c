"""Fine-tuning the last layer on the device: Caffe's "learn the last layer first", run by the C
runtime (libedgebrew's ``eb_finetune_*``), so the same job runs in an Android app.

``FinetuneJob`` is the thin wrapper over the C job (features through the frozen trunk, one
solver step, evaluation, weights, saving); ``finetune()`` drives it over a data set with
Caffe's data order (batches taken from a continuous stream of the samples, wrapping around at
the end; each epoch reshuffled when ``shuffle``) and returns a ``FinetuneResult``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import EdgebrewError, InputError

LR_POLICIES = {"fixed": 0, "step": 1, "exp": 2, "inv": 3, "multistep": 4, "poly": 5,
               "sigmoid": 6}
SOLVERS = {"sgd": 0, "nesterov": 1, "adam": 2}
LOSSES = {"softmax": 0, "softmaxwithloss": 0, "euclidean": 1, "euclideanloss": 1}
NORMALIZATIONS = {"full": 0, "valid": 1, "batch_size": 2, "none": 3}
FILLERS = {"xavier": 0, "gaussian": 1, "constant": 2, "msra": 3, "uniform": 4}
VARIANCE_NORMS = {"fan_in": 0, "fan_out": 1, "average": 2}


def _choice(table, value, what):
    key = str(value).lower()
    if key not in table:
        raise InputError(f"unknown {what} '{value}'; expected one of {sorted(set(table))}")
    return table[key]


def _filler(c_filler, spec, what):
    """'xavier' | 'gaussian' | 'constant' | ... or a dict like Caffe's FillerParameter:
    {'type': 'gaussian', 'std': 0.01, 'mean': 0, 'value': 0, 'min': 0, 'max': 1,
    'variance_norm': 'FAN_IN'}."""
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict) or "type" not in spec:
        raise InputError(f"{what}_filler must be a filler name or a dict with a 'type'")
    unknown = set(spec) - {"type", "value", "mean", "std", "min", "max", "variance_norm"}
    if unknown:
        raise InputError(f"{what}_filler: unknown key(s) {sorted(unknown)}")
    c_filler.type = _choice(FILLERS, spec["type"], f"{what} filler")
    c_filler.value = float(spec.get("value", 0.0))
    c_filler.mean = float(spec.get("mean", 0.0))
    c_filler.std = float(spec.get("std", 1.0))
    c_filler.min = float(spec.get("min", 0.0))
    c_filler.max = float(spec.get("max", 1.0))
    c_filler.variance_norm = _choice(VARIANCE_NORMS, spec.get("variance_norm", "fan_in"),
                                     "variance_norm")


def _pair(value, what):
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return (float(value), float(value))
    v = tuple(float(x) for x in value)
    if len(v) == 1:
        return (v[0], v[0])
    if len(v) != 2:
        raise InputError(f"{what} takes (weight, bias), got {value!r}")
    return v


class FinetuneJob:
    """A fine-tuning job on one layer of a bundle, in the C runtime.

    ``model``: a Bundle, bundle bytes, a .brew path or an ``edgebrew.runtime.Model``. The
    solver options are Caffe's SolverParameter fields (``lr_policy``, ``gamma``, ``stepsize``,
    ``stepvalue``, ``power``, ``max_iter``, ``clip_gradients``, ``iter_size``,
    ``regularization`` 'L2'/'L1', ``solver`` 'SGD'/'Nesterov'/'Adam'); ``lr_mult``/``decay_mult``
    ``(weight, bias)`` override the prototxt's (kept in the bundle).

    The layer trains in float32 whatever the bundle stores: an fp16 layer is saved as float16;
    an int8 layer starts from its dequantized weights, ``features`` are its dequantized int8
    input, it is re-quantized on save as the converter quantizes (its input/output calibration
    kept), and ``evaluate`` scores the re-quantized head in integer arithmetic. ``weights``
    are always the float32 training weights."""

    def __init__(self, model, *, layer: str | None = None, num_output: int | None = None,
                 reinit: bool = False, weight_filler="xavier", bias_filler="constant",
                 seed: int = 0, class_names: Sequence[str] | None = None, solver: str = "SGD",
                 base_lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
                 regularization: str = "L2", lr_policy: str = "fixed", gamma: float = 0.1,
                 stepsize: int | None = None, power: float = 1.0,
                 stepvalue: Sequence[int] = (), max_iter: int | None = None,
                 clip_gradients: float | None = None, iter_size: int = 1,
                 lr_mult=None, decay_mult=None, momentum2: float = 0.999, delta: float = 1e-8,
                 loss: str = "softmax", normalization: str = "VALID",
                 ignore_label: int | None = None, threads: int = 1):
        from .runtime.session import Model, _check, _lib
        ffi, lib = self._ffi, self._lib = _lib()
        self._check = _check
        self.model = model if isinstance(model, Model) else Model(model)
        o = ffi.new("eb_finetune_options *")
        lib.eb_finetune_default_options(o)
        keep = []
        if layer:
            keep.append(ffi.new("char[]", str(layer).encode()))
            o.layer = keep[-1]
        if num_output is not None:
            if int(num_output) < 1:
                raise InputError(f"num_output must be >= 1, got {num_output}")
            o.num_output = int(num_output)
        o.reinit = int(bool(reinit))
        _filler(o.weight_filler, weight_filler, "weight")
        _filler(o.bias_filler, bias_filler, "bias")
        o.seed = int(seed) & ((1 << 64) - 1)
        if class_names is not None:
            names = [ffi.new("char[]", str(s).encode()) for s in class_names]
            keep.extend(names)
            arr = ffi.new("char *[]", names) if names else ffi.NULL
            keep.append(arr)
            o.labels = arr
            o.n_labels = len(names)
        o.solver = _choice(SOLVERS, solver, "solver")
        o.base_lr, o.momentum, o.weight_decay = float(base_lr), float(momentum), float(weight_decay)
        o.momentum2, o.delta = float(momentum2), float(delta)
        reg = str(regularization).upper()
        if reg not in ("L1", "L2"):
            raise InputError(f"regularization must be 'L2' or 'L1', got '{regularization}'")
        o.l1 = int(reg == "L1")
        o.lr_policy = _choice(LR_POLICIES, lr_policy, "lr_policy")
        o.gamma, o.power = float(gamma), float(power)
        if stepsize is not None:
            o.stepsize = int(stepsize)
        elif lr_policy in ("step", "sigmoid"):
            raise InputError(f"lr_policy '{lr_policy}' needs stepsize")
        if max_iter is not None:
            o.max_iter = int(max_iter)
        sv = [int(s) for s in stepvalue]
        if len(sv) > 32:
            raise InputError("at most 32 stepvalues")
        for i, s in enumerate(sv):
            o.stepvalue[i] = s
        o.n_stepvalue = len(sv)
        o.clip_gradients = -1.0 if clip_gradients is None else float(clip_gradients)
        o.iter_size = int(iter_size)
        lm, dm = _pair(lr_mult, "lr_mult"), _pair(decay_mult, "decay_mult")
        o.mults_given = (1 if lm is not None else 0) | (2 if dm is not None else 0)
        if lm is not None:
            o.lr_mult = list(lm)
        if dm is not None:
            o.decay_mult = list(dm)
        o.loss = _choice(LOSSES, loss, "loss")
        o.normalization = _choice(NORMALIZATIONS, normalization, "normalization")
        if ignore_label is not None:
            o.has_ignore_label, o.ignore_label = 1, int(ignore_label)
        o.threads = int(threads)
        out = ffi.new("eb_finetune **")
        _check(lib.eb_finetune_create(self.model._ptr, o, out), "finetune: ")
        self._ptr = ffi.gc(out[0], lib.eb_finetune_free)
        self._opts, self._keep = o, keep
        self.loss_type = "euclidean" if o.loss == 1 else "softmax"

    # -- properties
    @property
    def layer(self) -> str:
        return self._ffi.string(self._lib.eb_finetune_layer(self._ptr)).decode()

    @property
    def feature_size(self) -> int:
        return int(self._lib.eb_finetune_feature_size(self._ptr))

    @property
    def num_output(self) -> int:
        return int(self._lib.eb_finetune_num_output(self._ptr))

    @property
    def spatial(self) -> int:
        return int(self._lib.eb_finetune_spatial(self._ptr))

    @property
    def iter(self) -> int:
        return int(self._lib.eb_finetune_iter(self._ptr))

    @property
    def learning_rate(self) -> float:
        return float(self._lib.eb_finetune_learning_rate(self._ptr))

    @property
    def iter_size(self) -> int:
        return int(self._opts.iter_size)

    # -- data
    def _f32(self, a, what):
        a = np.ascontiguousarray(a, dtype=np.float32)
        return a

    def features(self, inputs: np.ndarray, batch: int = 256) -> np.ndarray:
        """Network tensors (n samples, each the model input's shape without the batch
        dimension) -> the frozen trunk's features, (n, feature_size) float32."""
        info = self.model.inputs[0] if len(self.model.inputs) == 1 else None
        if info is None:
            raise InputError("features: the model has several inputs; pass features to step()")
        x = np.asarray(inputs)
        sample = tuple(info.shape[1:])
        if x.ndim == len(sample) and tuple(x.shape) == sample:
            x = x[None]
        if tuple(x.shape[1:]) != sample:
            raise InputError(f"data has shape {tuple(x.shape)}; expected (n,) + {sample} (the "
                             f"input '{info.name}' {info.shape} without its batch dimension)")
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        x = np.ascontiguousarray(x)
        n = x.shape[0]
        out = np.empty((n, self.feature_size), np.float32)
        ffi = self._ffi
        for s in range(0, n, batch):
            xs, os_ = x[s:s + batch], out[s:s + batch]
            self._check(self._lib.eb_finetune_features(
                self._ptr, ffi.from_buffer("float[]", xs), xs.shape[0],
                ffi.from_buffer("float[]", os_)), "finetune features: ")
        return out

    def _labels(self, labels, n):
        y = np.asarray(labels)
        per = self.spatial if self.loss_type == "softmax" else self.num_output * self.spatial
        if y.size != n * per:
            raise InputError(f"{y.size} label values for {n} samples; expected {n * per} "
                             f"({per} per sample)")
        return np.ascontiguousarray(y.reshape(-1), dtype=np.float32)

    def _feats(self, features):
        f = np.ascontiguousarray(features, dtype=np.float32)
        k = self.feature_size
        if f.ndim < 1 or f.size % k or (f.ndim >= 2 and f.shape[0] * k != f.size):
            raise InputError(f"features have shape {f.shape}; expected (n, {k})")
        return f.reshape(-1, k)

    def step(self, features, labels) -> float:
        """One solver iteration on these samples (split into iter_size passes); returns the
        loss before the update."""
        f = self._feats(features)
        y = self._labels(labels, f.shape[0])
        loss = self._ffi.new("float *")
        self._check(self._lib.eb_finetune_step(self._ptr, self._ffi.from_buffer("float[]", f),
                                               self._ffi.from_buffer("float[]", y), f.shape[0],
                                               loss), "finetune step: ")
        return float(loss[0])

    def step_inputs(self, inputs, labels) -> float:
        return self.step(self.features(inputs), labels)

    def evaluate(self, features, labels=None, scores: bool = False):
        """(loss, accuracy) over these samples (accuracy: top-1, SoftmaxWithLoss only); with
        ``scores=True`` also the layer's outputs (n, num_output[, S])."""
        f = self._feats(features)
        n = f.shape[0]
        ffi = self._ffi
        y = self._labels(labels, n) if labels is not None else None
        loss, acc = ffi.new("float *"), ffi.new("float *")
        out = np.empty((n, self.num_output * self.spatial), np.float32) if scores else None
        self._check(self._lib.eb_finetune_evaluate(
            self._ptr, ffi.from_buffer("float[]", f),
            ffi.from_buffer("float[]", y) if y is not None else ffi.NULL, n, loss, acc,
            ffi.from_buffer("float[]", out) if out is not None else ffi.NULL),
            "finetune evaluate: ")
        res = (float(loss[0]), float(acc[0])) if y is not None else (None, None)
        if scores:
            s = out.reshape(n, self.num_output, self.spatial)
            return res + ((s[:, :, 0] if self.spatial == 1 else s),)
        return res

    @property
    def weights(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(W, b) in Caffe's layout: W num_output x K, b num_output (None without bias)."""
        n, k = self.num_output, self.feature_size // self.spatial
        w = np.empty((n, k), np.float32)
        b = np.empty(n, np.float32)
        ffi = self._ffi
        st = self._lib.eb_finetune_get_weights(self._ptr, ffi.from_buffer("float[]", w), w.size,
                                               ffi.from_buffer("float[]", b), b.size)
        if st != 0:   # no bias
            self._check(self._lib.eb_finetune_get_weights(
                self._ptr, ffi.from_buffer("float[]", w), w.size, ffi.NULL, 0), "weights: ")
            return w, None
        return w, b

    def set_weights(self, w, b=None) -> None:
        ffi = self._ffi
        w = np.ascontiguousarray(w, dtype=np.float32)
        bb = np.ascontiguousarray(b, dtype=np.float32) if b is not None else None
        self._check(self._lib.eb_finetune_set_weights(
            self._ptr, ffi.from_buffer("float[]", w), w.size,
            ffi.from_buffer("float[]", bb) if bb is not None else ffi.NULL,
            bb.size if bb is not None else 0), "set_weights: ")

    # -- saving
    def to_bytes(self) -> bytes:
        ffi, lib = self._ffi, self._lib
        data, size = ffi.new("void **"), ffi.new("size_t *")
        self._check(lib.eb_finetune_serialize(self._ptr, data, size), "finetune save: ")
        try:
            return bytes(ffi.buffer(data[0], size[0]))
        finally:
            lib.eb_free(data[0])

    def bundle(self):
        from .bundle import Bundle
        return Bundle.from_bytes(self.to_bytes(), "<fine-tuned>")

    def save(self, path) -> Path:
        """Write the tuned bundle atomically (C: temporary file, fsync, rename)."""
        self._check(self._lib.eb_finetune_save(self._ptr, os.fsencode(str(path))), f"{path}: ")
        return Path(path)

    def save_state(self, path) -> Path:
        self._check(self._lib.eb_finetune_save_state(self._ptr, os.fsencode(str(path))),
                    f"{path}: ")
        return Path(path)

    def load_state(self, path) -> None:
        self._check(self._lib.eb_finetune_load_state(self._ptr, os.fsencode(str(path))),
                    f"{path}: ")


def write_atomic(path, data: bytes) -> Path:
    """Bytes to a file atomically with the C runtime's writer (temporary file, fsync, rename)."""
    from .runtime.session import _check, _lib
    ffi, lib = _lib()
    _check(lib.eb_write_file_atomic(os.fsencode(str(path)), data, len(data)), f"{path}: ")
    return Path(path)


@dataclass
class FinetuneResult:
    """What ``finetune`` returns: the tuned ``bundle``, the ``history`` ({'iterations': [...],
    'epochs': [...]}), the trained layer's ``weights`` (W num_output x K, b num_output) and its
    name (``layer``)."""

    bundle: Any
    history: dict
    weights: tuple
    layer: str
    seconds: float = 0.0
    job: Any = field(default=None, repr=False)

    def save(self, path) -> Path:
        return write_atomic(path, self.bundle.to_bytes())


def load_dataset(path, bundle, input_shape):
    """An .npz with arrays 'data' and 'labels', or a folder of class subfolders of images
    (preprocessed with the bundle's preprocessing; labels are the sorted subfolder names).
    Returns (data, labels, class_names or None)."""
    from .preprocess import is_image_path, load_image
    p = Path(path)
    if p.is_file() and p.suffix == ".npz":
        try:
            z = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise EdgebrewError(f"{p}: cannot read .npz: {e}") from None
        missing = [k for k in ("data", "labels") if k not in z.files]
        if missing:
            raise InputError(f"{p}: the .npz needs arrays 'data' and 'labels' (missing "
                             f"{missing}; it has {z.files})")
        names = [str(s) for s in z["classes"]] if "classes" in z.files else None
        return z["data"].astype(np.float32), z["labels"], names
    if p.is_dir():
        classes = sorted(d.name for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise InputError(f"{p}: expected one subfolder of images per class")
        xs, ys = [], []
        for k, c in enumerate(classes):
            files = sorted(f for f in (p / c).iterdir() if f.is_file() and is_image_path(f))
            if not files:
                raise InputError(f"{p / c}: no images in this class folder")
            for f in files:
                xs.append(load_image(f, bundle.metadata.preprocessing, input_shape)[0])
                ys.append(k)
        return np.stack(xs).astype(np.float32), np.asarray(ys, np.int64), classes
    raise InputError(f"{p}: expected a folder of class subfolders or an .npz with 'data' and "
                     f"'labels'")


def finetune(bundle_or_path, data, labels=None, *, layer: str | None = None,
             num_output: int | None = None, base_lr: float = 0.01, momentum: float = 0.9,
             weight_decay: float = 5e-4, lr_policy: str = "fixed", gamma: float = 0.1,
             stepsize: int | None = None, power: float = 1.0, stepvalue: Sequence[int] = (),
             batch_size: int = 32, epochs: int = 1, max_iter: int | None = None,
             shuffle: bool = True, seed: int = 0, lr_mult=None, decay_mult=None,
             iter_size: int = 1, clip_gradients: float | None = None,
             regularization: str = "L2", solver: str = "SGD", momentum2: float = 0.999,
             delta: float = 1e-8, loss: str = "softmax", normalization: str = "VALID",
             ignore_label: int | None = None, weight_filler="xavier",
             bias_filler="constant", reinit: bool = False, weights=None,
             class_names: Sequence[str] | None = None, val=None, threads: int = 1,
             progress: bool = False, output=None, state=None, resume=None) -> FinetuneResult:
    """Fine-tune one layer (default: the last InnerProduct / 1x1 Convolution) of a bundle.

    ``data``: network tensors (n, *input shape without batch), fed as given; or a path (a
    folder of class subfolders of images, or an .npz with 'data' and 'labels'). ``labels``:
    n class indices (n x num_output targets for ``loss='euclidean'``). ``num_output``: a new
    number of outputs (the layer is re-initialized with ``weight_filler``/``bias_filler``,
    seeded by ``seed``); ``weights=(W, b)``: start from these instead. Iterations take
    ``batch_size * iter_size`` samples from a continuous stream of the data (Caffe's data
    layer: batches wrap around the end); ``shuffle=False`` keeps the given order, else each
    epoch is a new permutation (``seed``). ``max_iter`` (default: ``epochs`` worth) bounds the
    iterations. ``val=(x, y)``: evaluated after each epoch. ``output``: save the tuned bundle
    there (atomically); ``state``: save the training state (.brewstate) there; ``resume``: a
    .brewstate to continue from.
    """
    from .bundle import Bundle
    from .progress import Progress
    t0 = time.monotonic()
    if isinstance(bundle_or_path, (str, os.PathLike)):
        bundle = Bundle.load(bundle_or_path)
    elif isinstance(bundle_or_path, (bytes, bytearray, memoryview)):
        bundle = Bundle.from_bytes(bytes(bundle_or_path))
    elif isinstance(bundle_or_path, Bundle):
        bundle = bundle_or_path
    else:
        raise InputError(f"finetune takes a Bundle, bundle bytes or a .brew path, not "
                         f"{type(bundle_or_path).__name__}")
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if int(epochs) < 1 and max_iter is None:
        raise InputError(f"epochs must be >= 1, got {epochs}")
    if isinstance(data, (str, os.PathLike)):
        from .runtime.session import Model
        shape = Model(bundle).inputs[0].shape
        data, file_labels, names = load_dataset(data, bundle, shape)
        if labels is None:
            labels = file_labels
        if class_names is None and names is not None:
            class_names = names
    if labels is None:
        raise InputError("labels are required (one per sample)")
    x = np.asarray(data)
    y = np.asarray(labels)
    n = x.shape[0] if x.ndim else 0
    if n == 0:
        raise InputError("no training samples")
    if y.shape[0] != n:
        raise InputError(f"{y.shape[0]} labels for {n} samples")
    if loss.lower().startswith("softmax") and y.dtype.kind == "f" and \
            not np.all(np.floor(y) == y):
        raise InputError("labels must be integer class indices")

    per_iter = int(batch_size) * int(iter_size)
    total = int(max_iter) if max_iter is not None else math.ceil(int(epochs) * n / per_iter)
    if total < 1:
        raise InputError(f"max_iter must be >= 1, got {max_iter}")
    job = FinetuneJob(
        bundle, layer=layer, num_output=num_output, reinit=reinit, weight_filler=weight_filler,
        bias_filler=bias_filler, seed=seed, class_names=class_names, solver=solver,
        base_lr=base_lr, momentum=momentum, weight_decay=weight_decay,
        regularization=regularization, lr_policy=lr_policy, gamma=gamma, stepsize=stepsize,
        power=power, stepvalue=stepvalue,
        max_iter=max_iter if max_iter is not None else total, clip_gradients=clip_gradients,
        iter_size=iter_size, lr_mult=lr_mult, decay_mult=decay_mult, momentum2=momentum2,
        delta=delta, loss=loss, normalization=normalization, ignore_label=ignore_label,
        threads=threads)
    if weights is not None:
        w, b = weights if isinstance(weights, (tuple, list)) else (weights, None)
        job.set_weights(w, b)
    if resume is not None:
        job.load_state(resume)

    feats = job.features(x)
    yl = y.astype(np.float32).reshape(n, -1)
    job._labels(yl, n)                            # the count per sample, checked once
    val_f = val_y = None
    if val is not None:
        vx, vy = val
        val_f, val_y = job.features(np.asarray(vx)), np.asarray(vy).astype(np.float32)

    # Caffe's data order: a stream of the samples, one permutation per pass when shuffling.
    rng = np.random.default_rng(seed)
    orders: list[np.ndarray] = []

    def order(p):
        while len(orders) <= p:
            orders.append(rng.permutation(n) if shuffle else np.arange(n))
        return orders[p]

    def take(start, count):
        idx = np.empty(count, np.int64)
        for j in range(count):
            pos = start + j
            idx[j] = order(pos // n)[pos % n]
        return idx

    history = {"iterations": [], "epochs": []}
    epoch_loss, epoch_iters, epoch = 0.0, 0, 0
    start_iter = job.iter
    bar = Progress(total, "finetune", enabled=progress)
    try:
        for it in range(total):
            idx = take(it * per_iter, per_iter)
            fb, lb = feats[idx], yl[idx]
            lr = job.learning_rate
            _, acc = job.evaluate(fb, lb) if job.loss_type == "softmax" else (None, None)
            loss_v = job.step(fb, lb)
            history["iterations"].append({"iter": start_iter + it, "loss": loss_v, "lr": lr,
                                          "accuracy": acc})
            epoch_loss += loss_v
            epoch_iters += 1
            seen = (it + 1) * per_iter
            if seen >= (epoch + 1) * n or it == total - 1:
                rec = {"epoch": epoch + 1, "iter": start_iter + it + 1,
                       "loss": epoch_loss / max(epoch_iters, 1)}
                tl, ta = job.evaluate(feats, yl)
                rec["train_loss"], rec["accuracy"] = tl, ta
                if val_f is not None:
                    vl, va = job.evaluate(val_f, val_y)
                    rec["val_loss"], rec["val_accuracy"] = vl, va
                history["epochs"].append(rec)
                post = f"epoch {epoch + 1} loss {rec['loss']:.4f} acc {ta:.3f}"
                if val_f is not None:
                    post += f" val_acc {rec['val_accuracy']:.3f}"
                bar.update(1, post)
                epoch, epoch_loss, epoch_iters = epoch + 1, 0.0, 0
                while seen >= (epoch + 1) * n:     # batches larger than the data set
                    epoch += 1
            else:
                bar.update(1)
    finally:
        bar.close()
    if output is not None:
        job.save(output)
    if state is not None:
        job.save_state(state)
    tuned = job.bundle()
    return FinetuneResult(tuned, history, job.weights, job.layer, time.monotonic() - t0, job)
