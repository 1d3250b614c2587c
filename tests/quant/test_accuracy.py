"""Accuracy metrics (edgebrew.quant.accuracy) on outputs with known answers."""
import numpy as np
import pytest

from edgebrew.quant.accuracy import compare_output, drop_of, is_classifier


def test_identical_outputs():
    x = np.random.default_rng(0).random((7, 10)).astype(np.float32)
    m = compare_output(x, x)
    assert m == {"cosine": pytest.approx(1.0), "max_abs_error": 0.0, "samples": 7,
                 "top1_agreement": 1.0, "top5_agreement": 1.0}


def test_known_values():
    ref = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    oth = np.array([[0.7, 0.1, 0.2], [0.5, 0.3, 0.2]])   # first sample's top-1 swapped
    m = compare_output(ref, oth)
    assert m["top1_agreement"] == 0.5
    assert m["top5_agreement"] == 1.0                      # 3 classes: all within top-5
    assert m["max_abs_error"] == pytest.approx(0.6)
    c0 = (0.07 + 0.07 + 0.04) / (0.1**2 + 0.7**2 + 0.2**2)
    assert m["cosine"] == pytest.approx((c0 + 1.0) / 2)
    assert drop_of({"prob": m}) == pytest.approx(0.5)


def test_top5_agreement():
    ref = np.zeros((2, 10)); ref[0, 3] = 1; ref[1, 9] = 1
    oth = np.tile(np.arange(10.0), (2, 1))                # top-5 of oth: 9, 8, 7, 6, 5
    m = compare_output(ref, oth)
    assert m["top1_agreement"] == 0.5 and m["top5_agreement"] == 0.5


def test_regression_outputs_and_zero_vectors():
    ref = np.array([[[1.0, 0.0]], [[0.0, 0.0]]])           # (N, 1, 2): not a classifier
    oth = np.array([[[0.0, 1.0]], [[0.0, 0.0]]])
    m = compare_output(ref, oth)
    assert "top1_agreement" not in m
    assert m["cosine"] == pytest.approx(0.5)               # orthogonal, then both zero
    assert drop_of({"y": m}) == pytest.approx(0.5)
    assert is_classifier((4, 1000, 1, 1)) and not is_classifier((4, 1)) \
        and not is_classifier((4, 3, 2, 2))
