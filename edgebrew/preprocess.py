"""Images -> network tensors with a bundle's preprocessing (never applied to arrays or .npy).

Caffe's classic pipeline: pixels 0..255, resized to the input size, in the network's channel
order (BGR for most Caffe models), minus the mean, times the scale, as NCHW float32.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .bundle.metadata import Preprocessing
from .errors import EdgebrewError, InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm"}


def is_image_path(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def load_image(path, pre: Preprocessing, input_shape) -> np.ndarray:
    """One image file as a (1, C, H, W) float32 tensor for an input of ``input_shape``."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise EdgebrewError("reading images needs Pillow: pip install pillow") from None
    c = input_shape[1] if len(input_shape) == 4 else 3
    h, w = pre.input_size or (input_shape[2], input_shape[3])
    try:
        with Image.open(path) as img:
            img = img.convert("L" if c == 1 else "RGB")
            img = img.resize((int(w), int(h)), Image.BILINEAR)
            x = np.asarray(img, dtype=np.float32)
    except FileNotFoundError:
        raise EdgebrewError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError) as e:
        raise EdgebrewError(f"{path}: cannot read image: {e}") from None
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)          # CHW, RGB
    if c == 3 and pre.channel_order.upper() == "BGR":
        x = x[::-1]
    if c not in (1, 3) or x.shape[0] != c:
        raise InputError(f"{path}: the model takes {c} channels; images give 1 or 3")
    if pre.mean_image is not None:
        m = np.asarray(pre.mean_image, np.float32).reshape(-1, *pre.mean_image.shape[-2:])
        x = x - (m if m.shape[1:] == x.shape[1:] else m.mean(axis=(1, 2), keepdims=True))
    elif pre.mean:
        x = x - np.asarray(pre.mean, np.float32).reshape(-1, 1, 1)
    x = x * np.float32(pre.scale)
    return np.ascontiguousarray(x[None], dtype=np.float32)


def load_input(path, pre: Preprocessing, input_shape) -> np.ndarray:
    """An image file (preprocessed) or a .npy tensor (used as given)."""
    p = Path(path)
    if p.suffix.lower() == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise EdgebrewError(f"{p}: cannot read .npy: {e}") from None
    if is_image_path(p):
        return load_image(p, pre, input_shape)
    raise InputError(f"{p}: expected an image ({', '.join(sorted(IMAGE_SUFFIXES))}) or a .npy")
