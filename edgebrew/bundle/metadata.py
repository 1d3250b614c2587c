"""What a deployer needs besides the graph: names, checksums, preprocessing, labels, options."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Preprocessing:
    """How an image becomes the network's input tensor (never applied to arrays).

    Order: load -> resize to ``input_size`` (H, W) -> channel order -> subtract mean (per-channel
    values, or the mean image) -> multiply by ``scale`` -> NCHW.
    """

    mean: list[float] | None = None          # per channel, in the network's channel order
    mean_image: np.ndarray | None = None     # (C, H, W), e.g. from a mean.binaryproto
    scale: float = 1.0
    channel_order: str = "BGR"               # what the network expects: "BGR" (Caffe) or "RGB"
    input_size: tuple[int, int] | None = None
    grayscale: bool = False

    def __eq__(self, other):
        if not isinstance(other, Preprocessing):
            return NotImplemented
        same_img = (self.mean_image is None and other.mean_image is None) or (
            self.mean_image is not None and other.mean_image is not None
            and np.array_equal(self.mean_image, other.mean_image))
        return same_img and (self.mean, self.scale, self.channel_order, self.input_size,
                             self.grayscale) == (other.mean, other.scale, other.channel_order,
                                                 other.input_size, other.grayscale)


@dataclass
class Metadata:
    model_name: str = ""
    source_prototxt: str = ""
    source_caffemodel: str = ""
    source_sha1: str = ""
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    labels: list[str] = field(default_factory=list)
    converter_version: str = ""
    converter_options: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)     # later keys: accuracy reports, pass logs...
