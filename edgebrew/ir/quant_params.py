"""Quantization parameters of one tensor (int8 activations, int8 weights, int32 biases).

real = scale * (q - zero_point). ``axis == -1``: one (scale, zero_point) for the whole tensor;
otherwise one pair per index of ``axis`` (int8 weights: per output channel, axis 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class QuantParams:
    scale: np.ndarray          # float32, one value (per tensor) or one per channel
    zero_point: np.ndarray     # int64, same length as scale
    axis: int = -1

    def __post_init__(self):
        object.__setattr__(self, "scale", np.atleast_1d(np.asarray(self.scale, np.float32)))
        object.__setattr__(self, "zero_point",
                           np.atleast_1d(np.asarray(self.zero_point, np.int64)))
        if self.scale.shape != self.zero_point.shape or self.scale.ndim != 1:
            raise ValueError("scale and zero_point must be 1-d and of one length")

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int) -> "QuantParams":
        return cls(np.array([scale], np.float32), np.array([zero_point], np.int64), -1)

    @property
    def per_channel(self) -> bool:
        return self.axis >= 0

    @property
    def s(self) -> float:
        """The per-tensor scale (as the float32 the bundle stores, widened exactly)."""
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        return int(self.zero_point[0])

    def __eq__(self, other):
        return (isinstance(other, QuantParams) and self.axis == other.axis
                and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))

    def __hash__(self):
        return hash((self.axis, self.scale.tobytes(), self.zero_point.tobytes()))

    def __repr__(self):
        if self.per_channel:
            return f"QuantParams({len(self.scale)} channels, axis={self.axis})"
        return f"QuantParams(scale={self.s:.6g}, zero_point={self.zp})"
