"""The fixed-point arithmetic of the int8 scheme (edgebrew.quant.fixed_point) against exact
integer / rational arithmetic done one value at a time in Python."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edgebrew.quant import fixed_point as fp


def _round_half_away(fr: Fraction) -> int:
    return int(math.copysign(math.floor(abs(fr) + Fraction(1, 2)), fr))


def _mbqm_exact(x: int, m0: int, shift: int) -> int:
    """The two roundings of integer-only requantization, each done exactly on rationals."""
    left, right = max(shift, 0), max(-shift, 0)
    xs = max(min(x * (1 << left), 2**31 - 1), -2**31)
    if xs == m0 == -2**31:
        high = 2**31 - 1
    else:       # the high multiply rounds ties towards +infinity
        high = math.floor(Fraction(xs * m0, 1 << 31) + Fraction(1, 2))
    return _round_half_away(Fraction(high, 1 << right))


@given(st.floats(1e-9, 1e6, allow_nan=False))
def test_quantize_multiplier_represents_the_real_value(real):
    m0, shift = fp.quantize_multiplier(real)
    if m0 == 0:
        assert real < 2.0**-31
        return
    assert 2**30 <= m0 < 2**31
    approx = Fraction(m0) * Fraction(2) ** (shift - 31)
    assert abs(approx - Fraction(real)) <= Fraction(2) ** (shift - 32)


def test_quantize_multiplier_edges():
    assert fp.quantize_multiplier(0.0) == (0, 0)
    assert fp.quantize_multiplier(1.0) == (2**30, 1)
    assert fp.quantize_multiplier(0.5) == (2**30, 0)
    # a mantissa that rounds up to 2^31 is renormalised
    assert fp.quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)
    with pytest.raises(ValueError):
        fp.quantize_multiplier(2.0**31)
    with pytest.raises(ValueError):
        fp.quantize_multiplier(float("nan"))


@settings(max_examples=300)
@given(st.integers(-2**31, 2**31 - 1), st.floats(2.0**-20, 2.0**8))
def test_multiply_by_quantized_multiplier_matches_exact_roundings(x, real):
    m0, shift = fp.quantize_multiplier(real)
    got = int(fp.multiply_by_quantized_multiplier(np.array([x]), m0, shift)[0])
    assert got == _mbqm_exact(x, m0, shift)


def test_rounding_ties():
    # M = 0.5 = 2^30 * 2^-31, no shift: the high multiply alone, ties towards +infinity
    m0, shift = fp.quantize_multiplier(0.5)
    x = np.array([-5, -3, -1, 1, 3, 5])
    assert fp.multiply_by_quantized_multiplier(x, m0, shift).tolist() == [-2, -1, 0, 1, 2, 3]
    # M = 0.25: exact high multiply, then the rounding shift, ties away from zero
    m0, shift = fp.quantize_multiplier(0.25)
    x = np.array([-6, -2, 2, 6])
    assert fp.multiply_by_quantized_multiplier(x, m0, shift).tolist() == [-2, -1, 1, 2]
    assert fp.rounding_divide_by_pot(np.array([-6, -2, 2, 6]), 2).tolist() == [-2, -1, 1, 2]


def test_saturating_high_mul_overflow_case():
    assert int(fp.saturating_rounding_doubling_high_mul(-2**31, -2**31)) == 2**31 - 1


def test_quantize_dequantize_round_trip_and_saturation():
    x = np.array([-1e9, -1.0, -0.05, 0.0, 0.05, 0.124999, 0.125, 1e9, np.nan], np.float32)
    q = fp.quantize_tensor(x, 0.25, 3)
    assert q.tolist() == [-128, -1, 3, 3, 3, 3, 4, 127, 3]
    assert fp.dequantize_tensor(np.array([3], np.int8), 0.25, 3).tolist() == [0.0]


def test_activation_range():
    assert fp.activation_range({}, 0.1, 5) == (-128, 127)
    assert fp.activation_range({"activation": "ReLU", "negative_slope": 0.0}, 0.1, 5) == (5, 127)
    lo, hi = fp.activation_range({"activation": "Clip", "clip_min": 0.0, "clip_max": 6.0},
                                 0.05, -100)
    assert (lo, hi) == (-100, 20)
    with pytest.raises(ValueError):
        fp.activation_range({"activation": "Sigmoid"}, 0.1, 0)


def test_rescale_identity_on_equal_grids():
    q = np.arange(-128, 128)
    assert np.array_equal(fp.rescale(q, 0.037, -5, 0.037, -5), q)


@given(st.integers(-128, 127), st.floats(1e-3, 10), st.integers(-128, 127),
       st.floats(1e-3, 10), st.integers(-128, 127))
def test_rescale_is_close_to_the_real_value(q, s_in, zp_in, s_out, zp_out):
    s_in, s_out = float(np.float32(s_in)), float(np.float32(s_out))
    got = int(fp.rescale(np.array([q]), s_in, zp_in, s_out, zp_out)[0])
    exact = zp_out + (q - zp_in) * s_in / s_out
    assert got == min(max(got, -128), 127)
    if -128 <= exact <= 127:
        assert abs(got - exact) <= 0.5 + 2.0**-10
