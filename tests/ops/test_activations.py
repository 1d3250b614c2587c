"""Elementwise activations against Caffe's per-element formulas (scalar Python math)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edgebrew.errors import GraphError, ShapeError, UnsupportedLayerError
from edgebrew.ir import Node
from edgebrew.ir.ops import get_op
from helpers import one_op_graph, run_op

E = math.e


def ew(op_type, attrs, values, weights=(), dtype=np.float64):
    x = np.asarray(values, dtype=np.float64).reshape(1, -1)
    (y,) = run_op(op_type, attrs, [x], list(weights), dtype=dtype)
    return y.ravel()


# Scalar definitions written from each Caffe layer's Forward_cpu.
def relu(v, slope=0.0):
    return max(v, 0.0) + slope * min(v, 0.0)


def elu(v, alpha=1.0):
    return max(v, 0.0) + alpha * (math.exp(min(v, 0.0)) - 1)


def bnll(v):
    return v + math.log(1 + math.exp(-v)) if v > 0 else math.log(1 + math.exp(v))


def sigmoid(v):
    # Caffe's CPU form (not 1 / (1 + exp(-x))): for x < about -37 it rounds to exactly 0.
    return 0.5 * math.tanh(0.5 * v) + 0.5


SCALAR = {
    "ReLU": (dict(negative_slope=0.1), lambda v: relu(v, 0.1)),
    "ELU": (dict(alpha=0.7), lambda v: elu(v, 0.7)),
    "Sigmoid": ({}, sigmoid),
    "TanH": ({}, math.tanh),
    "AbsVal": ({}, abs),
    "BNLL": ({}, bnll),
    "Power": (dict(power=3.0, scale=0.5, shift=-0.25), lambda v: (-0.25 + 0.5 * v) ** 3),
    "Exp": (dict(base=2.0, scale=0.5, shift=1.0), lambda v: 2.0 ** (1 + 0.5 * v)),
    "Threshold": (dict(threshold=0.3), lambda v: 1.0 if v > 0.3 else 0.0),
    "Clip": (dict(min=-0.5, max=1.25), lambda v: max(-0.5, min(v, 1.25))),
    "Dropout": ({}, lambda v: v),
}


@pytest.mark.parametrize("op_type", sorted(SCALAR))
def test_formula_elementwise(op_type):
    attrs, f = SCALAR[op_type]
    xs = np.random.default_rng(0).uniform(-4, 4, 200)
    xs[:4] = [0.0, 0.3, -0.5, 1.25]
    want = [f(float(v)) for v in xs]
    np.testing.assert_allclose(ew(op_type, attrs, xs), want, rtol=1e-13, atol=1e-15)
    assert get_op(op_type).elementwise


@pytest.mark.parametrize("op_type", sorted(SCALAR) + ["Log", "PReLU"])
def test_float32_in_float32_out(op_type):
    attrs, f = SCALAR.get(op_type, ({}, None))
    x = np.random.default_rng(1).uniform(0.1, 3, (2, 3, 4)).astype(np.float32)
    w = [np.full(3, 0.25, np.float32)] if op_type == "PReLU" else []
    node = one_op_graph(op_type, attrs, [x.shape], w).nodes[0]
    (y,) = get_op(op_type).run(node, [x], w)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert not np.shares_memory(y, x)          # identity ops (Dropout, Power 1) copy
    if f is not None:
        want = np.array([f(float(v)) for v in x.ravel()]).reshape(x.shape)
        np.testing.assert_allclose(y, want, rtol=2e-6, atol=1e-7)


def test_hand_worked_values():
    np.testing.assert_array_equal(ew("ReLU", {}, [-2, -0.5, 0, 3]), [0, 0, 0, 3])
    np.testing.assert_allclose(ew("ReLU", dict(negative_slope=0.1), [-2, -0.5, 0, 3]),
                               [-0.2, -0.05, 0, 3], rtol=1e-15)
    np.testing.assert_allclose(ew("ELU", dict(alpha=2.0), [-1, 2]), [2 * (1 / E - 1), 2],
                               rtol=1e-15)
    np.testing.assert_array_equal(ew("Power", dict(power=2.0, scale=3.0, shift=1.0), [2, -1]),
                                  [49, 4])
    np.testing.assert_allclose(ew("Exp", dict(base=2.0, scale=3.0, shift=1.0), [1, 0]),
                               [16, 2], rtol=1e-15)
    np.testing.assert_allclose(ew("Exp", {}, [0, 1, -1]), [1, E, 1 / E], rtol=1e-15)
    np.testing.assert_allclose(ew("Exp", dict(scale=2.0, shift=1.0), [1]), [E ** 3], rtol=1e-15)
    np.testing.assert_allclose(ew("Log", dict(base=10.0, scale=2.0, shift=1.0), [4.5, 49.5]),
                               [1, 2], rtol=1e-15)
    np.testing.assert_allclose(ew("Log", {}, [1, E, E * E]), [0, 1, 2], rtol=1e-15, atol=1e-16)
    np.testing.assert_array_equal(ew("Threshold", dict(threshold=0.5), [0.5, 0.6, -1]), [0, 1, 0])
    np.testing.assert_array_equal(ew("Threshold", {}, [0, 1e-30, -1]), [0, 1, 0])
    np.testing.assert_array_equal(ew("AbsVal", {}, [-3, 0, 2]), [3, 0, 2])
    np.testing.assert_array_equal(ew("Sigmoid", {}, [0]), [0.5])
    np.testing.assert_array_equal(ew("Dropout", {}, [1, -2, 3]), [1, -2, 3])   # TEST: unscaled


def test_stable_at_extremes_without_overflow():
    big = [1000.0, -1000.0, 80.0, -80.0]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_array_equal(ew("Sigmoid", {}, big), [1, 0, 1, 0])
        np.testing.assert_allclose(ew("BNLL", {}, big), [1000, 0, bnll(80), bnll(-80)],
                                   rtol=1e-15)
        np.testing.assert_allclose(ew("BNLL", {}, big, dtype=np.float32),
                                   [1000, 0, 80, bnll(-80)], rtol=1e-6)


def test_identity_power_returns_a_copy():
    x = np.arange(3.0).reshape(1, 3)
    (y,) = get_op("Power").run(one_op_graph("Power", {}, [x.shape]).nodes[0], [x], [])
    np.testing.assert_array_equal(y, x)
    assert not np.shares_memory(y, x)


def test_power_ignores_input_when_power_times_scale_is_zero():
    # Caffe: if power * scale == 0, every output is (power == 0 ? 1 : shift ^ power).
    vals = [np.nan, np.inf, -3.0]
    np.testing.assert_array_equal(ew("Power", dict(power=2.0, scale=0.0, shift=3.0), vals),
                                  [9, 9, 9])
    np.testing.assert_array_equal(ew("Power", dict(power=0.0, scale=5.0, shift=-1.0), vals),
                                  [1, 1, 1])
    assert np.isnan(ew("Power", dict(power=0.5), [-4.0])[0])


def test_clip_nan_gives_min_like_std_max_min():
    np.testing.assert_array_equal(ew("Clip", dict(min=-1.0, max=2.0), [-3, 0, 5, np.nan]),
                                  [-1, 0, 2, -1])


def test_exp_log_reject_bad_base():
    with pytest.raises(GraphError, match="'op'.*base"):
        one_op_graph("Exp", dict(base=-2.0), [(1, 3)])
    with pytest.raises(GraphError, match="'op'.*base"):
        one_op_graph("Log", dict(base=0.0), [(1, 3)])
    with pytest.raises(GraphError, match="base 1"):
        one_op_graph("Log", dict(base=1.0), [(1, 3)])
    np.testing.assert_array_equal(ew("Exp", dict(base=1.0, scale=3.0), [5.0]), [1.0])


# -- PReLU ------------------------------------------------------------------------------------
def direct_prelu(x, slope, shared):
    y = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        a = float(slope.reshape(-1)[0]) if shared else float(slope[idx[1]])
        v = float(x[idx])
        y[idx] = max(v, 0.0) + a * min(v, 0.0)
    return y


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=2, max_size=4), st.booleans(),
       st.integers(0, 2**16))
def test_prelu_matches_direct(shape, shared, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    slope = rng.uniform(-1, 1, () if shared else shape[1])
    (y,) = run_op("PReLU", dict(channel_shared=shared), [x], [slope])
    np.testing.assert_allclose(y, direct_prelu(x, slope, shared), rtol=1e-15)


def test_prelu_hand_worked_and_blob_shapes():
    x = np.array([[-1.0, -2.0, 3.0], [4.0, -5.0, -6.0]])        # 2-d: channels on axis 1
    (y,) = run_op("PReLU", {}, [x], [np.array([0.5, 0.25, 2.0])])
    np.testing.assert_array_equal(y, [[-0.5, -0.5, 3.0], [4.0, -1.25, -12.0]])
    (y,) = run_op("PReLU", dict(channel_shared=True), [x], [np.array(0.5)])
    np.testing.assert_array_equal(y, [[-0.5, -1.0, 3.0], [4.0, -2.5, -3.0]])
    op = get_op("PReLU")
    node = Node("op", "PReLU", ["in0"], ["out0"], op.normalize_attrs("op", {}))
    assert op.weight_shapes(node, [(1, 3, 4, 4)]) == [(3,)]
    node.attrs["channel_shared"] = True     # Caffe's shared slope is a 0-axis blob
    assert op.weight_shapes(node, [(1, 3, 4, 4)]) == [()]
    with pytest.raises(ShapeError, match="weight blob"):
        one_op_graph("PReLU", {}, [(1, 3, 2, 2)], [np.zeros(4)])
    with pytest.raises(ShapeError, match="2- to 4-axis"):
        one_op_graph("PReLU", {}, [(3,)], [np.zeros(3)])


# -- importer mappers -------------------------------------------------------------------------
def _map(text):
    caffe_pb2 = pytest.importorskip("edgebrew.importer.proto.caffe_pb2")
    from google.protobuf import text_format
    from edgebrew.importer.layers import MAPPERS
    layer = text_format.Parse(text, caffe_pb2.LayerParameter())
    return MAPPERS[layer.type](layer)


def test_mappers():
    assert _map('name: "r" type: "ReLU"') == dict(negative_slope=0.0)
    assert _map('name: "r" type: "ReLU" relu_param { negative_slope: 0.5 }') == \
        dict(negative_slope=0.5)
    assert _map('name: "p" type: "PReLU" prelu_param { channel_shared: true }') == \
        dict(channel_shared=True)
    assert _map('name: "e" type: "ELU"') == dict(alpha=1.0)
    for t in ("Sigmoid", "TanH", "AbsVal", "BNLL", "Dropout"):
        assert _map(f'name: "x" type: "{t}"') == {}
    assert _map('name: "p" type: "Power" power_param { power: 2 shift: 1 }') == \
        dict(power=2.0, scale=1.0, shift=1.0)
    assert _map('name: "e" type: "Exp"') == dict(base=-1.0, scale=1.0, shift=0.0)
    assert _map('name: "l" type: "Log" log_param { base: 10 scale: 2 }') == \
        dict(base=10.0, scale=2.0, shift=0.0)
    assert _map('name: "t" type: "Threshold" threshold_param { threshold: 0.5 }') == \
        dict(threshold=0.5)
    assert _map('name: "c" type: "Clip" clip_param { min: -1 max: 6 }') == dict(min=-1.0, max=6.0)
    # every mapped attribute set is complete for its op
    for text in ('name: "r" type: "ReLU"', 'name: "c" type: "Clip" clip_param { min: 0 max: 1 }'):
        layer_attrs = _map(text)
        get_op(text.split('"')[3]).normalize_attrs("x", layer_attrs)


def test_mappers_reject_bad_base():
    with pytest.raises(UnsupportedLayerError, match="'ex'.*base"):
        _map('name: "ex" type: "Exp" exp_param { base: 0 }')
    with pytest.raises(UnsupportedLayerError, match="'lg'.*base 1"):
        _map('name: "lg" type: "Log" log_param { base: 1 }')
