"""Data for calibration, validation and comparison: network tensors from arrays or images.

A source is an array of network tensors (N x C x H x W, fed as given, like every array), a
``.npy`` file of one, or a folder of images (preprocessed with the bundle's preprocessing; sub-
folders are walked, files sorted, so the order is reproducible). ``count`` takes the first N.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bundle.metadata import Preprocessing
from ..errors import InputError
from ..preprocess import is_image_path, load_image


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_path(p))


def load_samples(source, pre: Preprocessing, input_shape, *, count: int | None = None,
                 what: str = "calibration") -> np.ndarray:
    """The samples of ``source`` as one float32 array (N, *input_shape[1:])."""
    per_sample = tuple(int(d) for d in input_shape[1:])
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            files = image_files(p)
            if not files:
                raise InputError(f"{p}: no images for {what} (looked for "
                                 f"{', '.join(sorted({'.jpg', '.png', '.bmp'}))} ...)")
            files = files[:count] if count else files
            arr = np.concatenate([load_image(f, pre, input_shape) for f in files])
        elif p.suffix.lower() == ".npy" and p.is_file():
            try:
                arr = np.load(p, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise InputError(f"{p}: cannot read {what} data: {e}") from None
        elif p.is_file() and is_image_path(p):
            arr = load_image(p, pre, input_shape)
        else:
            raise InputError(f"{p}: {what} data must be a folder of images, an image or a "
                             ".npy of network tensors")
        where = str(p)
    else:
        arr, where = np.asarray(source), f"{what} array"
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{where}: {what} data must be numeric, got {arr.dtype}")
    arr = np.asarray(arr, np.float32)
    if arr.shape == per_sample:
        arr = arr[None]
    if tuple(arr.shape[1:]) != per_sample:
        raise InputError(f"{where}: {what} samples have shape {tuple(arr.shape[1:])}; the "
                         f"network input takes {per_sample} per sample (N x "
                         f"{' x '.join(map(str, per_sample))})")
    if count:
        arr = arr[:count]
    if len(arr) == 0:
        raise InputError(f"{where}: no {what} samples")
    if not np.isfinite(arr).all():
        raise InputError(f"{where}: {what} data holds NaN or infinity")
    return np.ascontiguousarray(arr)


def batches(samples: np.ndarray, batch: int):
    """(batch array, number of real samples in it): the last batch is padded with zeros."""
    for i in range(0, len(samples), batch):
        chunk = samples[i:i + batch]
        real = len(chunk)
        if real < batch:
            pad = np.zeros((batch - real, *chunk.shape[1:]), np.float32)
            chunk = np.concatenate([chunk, pad])
        yield chunk, real
