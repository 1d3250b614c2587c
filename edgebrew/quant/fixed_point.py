"""The integer arithmetic of edgebrew's int8 scheme, in NumPy: the specification the C kernels
(edgebrew/kernels_c/src/ops/int8/, src/kernels/int8*) implement bit for bit.

Scheme (see also edgebrew/ir/quant_params.py):

- real = scale * (q - zero_point). int8 activations: per tensor, asymmetric, q in [-128, 127].
  int8 weights: per output channel, symmetric (zero point 0), q in [-127, 127]. Biases: int32,
  scale = input scale * weight scale of the channel, zero point 0.
- A product-sum is accumulated exactly in int32: acc = bias + sum (x - x_zp) * w.
- Requantization multiplies acc by the real number M = s_in * s_w / s_out, represented as a
  Q31 fixed-point multiplier m0 in [2^30, 2^31) and a power-of-two exponent `shift`
  (M = m0 * 2^(shift - 31)), computed once when a model loads (``quantize_multiplier``).
  ``multiply_by_quantized_multiplier`` is the integer-only product: a saturating, rounding,
  doubling high multiply (ties towards +infinity) followed by a rounding right shift (ties away
  from zero), the fixed-point arithmetic of integer-only inference (Jacob et al., CVPR 2018).
- The result is offset by the output zero point and clamped to the activation's range; a fused
  ReLU or Clip only narrows that range (``activation_range``).

Every function takes and returns int64 NumPy arrays (values stay in int32 range unless said).
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
QMIN, QMAX = -128, 127


def round_half_away(x):
    """Round to nearest, ties away from zero (C's round()), elementwise, in float64."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(m0, shift) with real ~= m0 * 2^(shift - 31), m0 in [2^30, 2^31) (or (0, 0) for 0).

    Computed in double precision from the float32 scales (widened exactly), so Python and C
    agree: frexp gives real = q * 2^shift with q in [0.5, 1); m0 = round(q * 2^31), and a
    rounding up to 2^31 is renormalised. Multipliers below 2^-31 underflow to (0, 0). The C
    runtime rejects real >= 2^30 (shift > 30) as a malformed model; so does this function.
    """
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"requantization multiplier {real} is not a finite value >= 0")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    m0 = int(round_half_away(q * (1 << 31)))
    if m0 == 1 << 31:
        m0 //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise ValueError(f"requantization multiplier {real} is too large (>= 2^30)")
    return m0, shift


def saturating_rounding_doubling_high_mul(a, b):
    """The high 32 bits of 2 * a * b, rounded: (a * b + nudge) / 2^31 with C's truncating
    division and nudge = 2^30 (a * b >= 0) or 1 - 2^30 (a * b < 0), which rounds a * b / 2^31
    to nearest with ties towards +infinity; the one overflow case (INT32_MIN * INT32_MIN)
    saturates to INT32_MAX."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    # C's integer division truncates towards zero
    res = np.where(num >= 0, num >> 31, -((-num) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, res)


def rounding_divide_by_pot(x, exponent):
    """x / 2^exponent rounded to nearest, ties away from zero (0 <= exponent <= 31)."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def saturate_int32(x):
    return np.clip(np.asarray(x, np.int64), INT32_MIN, INT32_MAX)


def multiply_by_quantized_multiplier(x, m0, shift):
    """round(x * M) for M = m0 * 2^(shift - 31): left-shift (saturating to int32) when shift > 0,
    high-multiply by m0, then rounding right shift when shift < 0. Broadcasts (m0 and shift may
    be per-channel arrays)."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = saturate_int32(np.asarray(x, np.int64) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, m0), right)


def quantize_real(value: float, scale: float, zero_point: int) -> int:
    """One real value (a clip bound) on an int8 grid: zero_point + round(value / scale),
    unclamped, computed in double as the C prepare() does."""
    return int(zero_point + round_half_away(float(value) / float(scale)))


def activation_range(node_attrs: dict, scale: float, zero_point: int) -> tuple[int, int]:
    """[lo, hi] an int8 output is clamped to: the full int8 range narrowed by a fused ReLU
    (negative_slope 0: lo = zero point) or Clip (its bounds quantized). Other fused
    activations have no int8 form; the converter keeps such ops in float32."""
    act = node_attrs.get("activation")
    lo, hi = QMIN, QMAX
    if act == "ReLU":
        if node_attrs.get("negative_slope", 0.0):
            raise ValueError("leaky ReLU has no int8 form")
        lo = max(lo, zero_point)
    elif act == "Clip":
        lo = max(lo, quantize_real(node_attrs["clip_min"], scale, zero_point))
        hi = min(hi, quantize_real(node_attrs["clip_max"], scale, zero_point))
    elif act not in (None, "", "none"):
        raise ValueError(f"fused {act} has no int8 form")
    if lo > hi:
        lo = hi = min(max(lo, QMIN), QMAX)
    return lo, hi


def quantize_tensor(x, scale: float, zero_point: int):
    """float32 -> int8: clamp(round_half_away(x / scale) + zero_point) with the division done in
    double (the Quantize op). NaN maps to the zero point."""
    v = np.asarray(x, np.float64) / float(scale)
    q = round_half_away(np.nan_to_num(v, nan=0.0, posinf=1e9, neginf=-1e9)) + zero_point
    return np.clip(q, QMIN, QMAX).astype(np.int8)


def dequantize_tensor(q, scale: float, zero_point: int):
    """int8 -> float32: float32(q - zero_point) * float32(scale), in float32 (the Dequantize op)."""
    return (np.asarray(q, np.int64) - zero_point).astype(np.float32) * np.float32(scale)


RESCALE_SHIFT = 20      # inputs are widened by 2^20 before a rescale, so its one high multiply
                        # keeps full precision for the small differences (q - zero point)


def rescale_multiplier(in_scale: float, out_scale: float) -> tuple[int, int]:
    """(m0, shift) of (s_in / s_out) * 2^-20, in double from the float32 scales."""
    real = float(np.float32(in_scale)) / float(np.float32(out_scale))
    return quantize_multiplier(math.ldexp(real, -RESCALE_SHIFT))


def rescale(q, in_scale: float, in_zp: int, out_scale: float, out_zp: int):
    """An int8 tensor moved onto another int8 grid (Concat inputs, Eltwise MAX inputs):
    clamp(out_zp + MBQM((q - in_zp) * 2^20, (s_in / s_out) * 2^-20)), within half a step (plus
    2^-10) of the exact value; the identity when the grids are equal."""
    m0, shift = rescale_multiplier(in_scale, out_scale)
    x = (np.asarray(q, np.int64) - in_zp) << RESCALE_SHIFT
    v = multiply_by_quantized_multiplier(x, m0, shift) + out_zp
    return np.clip(v, QMIN, QMAX)


def product_multipliers(in_scale: float, weight_scales, out_scale: float):
    """Per-channel (m0, shift) arrays for Convolution / InnerProduct:
    M_c = (s_in * s_w[c]) / s_out, evaluated in double in exactly that order."""
    ms = [quantize_multiplier(float(np.float32(in_scale)) * float(np.float32(sw))
                              / float(np.float32(out_scale)))
          for sw in np.asarray(weight_scales, np.float32)]
    return (np.array([m for m, _ in ms], np.int64), np.array([s for _, s in ms], np.int64))
