"""BatchNorm, Scale, Bias, LRN and MVN against hand-worked numbers and loops from Caffe's layers."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edgebrew.errors import GraphError, ShapeError, UnsupportedLayerError
from edgebrew.ir import Node
from edgebrew.ir.ops import get_op
from helpers import one_op_graph, run_op


def node(op_type, attrs, n_inputs=1):
    op = get_op(op_type)
    return Node("op", op_type, [f"in{i}" for i in range(n_inputs)], ["out0"],
                op.normalize_attrs("op", attrs))


# -- BatchNorm --------------------------------------------------------------------------------
def test_batchnorm_divides_stats_by_the_factor():
    x = np.array([[[[1.0, 3.0]], [[2.0, 6.0]]]])                   # (1, 2, 1, 2)
    mean, var, factor = np.array([2.0, 4.0]), np.array([8.0, 18.0]), np.array([2.0])
    (y,) = run_op("BatchNorm", dict(eps=0.0), [x], [mean, var, factor])
    # mean / 2 = [1, 2], var / 2 = [4, 9]: (x - 1) / 2 and (x - 2) / 3
    np.testing.assert_allclose(y, [[[[0.0, 1.0]], [[0.0, 4 / 3]]]], rtol=1e-15)


def test_batchnorm_factor_zero_means_zero_stats():
    x = np.array([[4.0, -2.0]])                                     # 2-d (N, C)
    (y,) = run_op("BatchNorm", dict(eps=0.25), [x],
                  [np.array([100.0, 100.0]), np.array([100.0, 100.0]), np.array([0.0])])
    np.testing.assert_array_equal(y, [[8.0, -4.0]])                # x / sqrt(0 + 0.25)


def test_batchnorm_default_eps_and_shapes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 2, 2))
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    (y,) = run_op("BatchNorm", {}, [x], [mean * 0.5, var * 0.5, np.array([0.5])])
    want = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        c = idx[1]
        want[idx] = (x[idx] - mean[c]) / math.sqrt(var[c] + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-13)
    op = get_op("BatchNorm")
    assert op.weight_shapes(node("BatchNorm", {}), [(2, 3, 2, 2)]) == [(3,), (3,), (1,)]
    with pytest.raises(ShapeError, match="at least 2 axes"):
        one_op_graph("BatchNorm", {}, [(3,)], [np.zeros(3)] * 2 + [np.ones(1)])


# -- Scale / Bias -----------------------------------------------------------------------------
def direct_scale(x, s, axis, b=None):
    """y[i] = x[i] * s[i's indices on axes axis..axis+s.ndim) (+ b likewise)."""
    y = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        sub = idx[axis:axis + s.ndim]
        y[idx] = x[idx] * s[sub] + (b[sub] if b is not None else 0.0)
    return y


X = np.arange(1.0, 25.0).reshape(2, 3, 4)


@pytest.mark.parametrize("attrs, wshape, axis", [
    (dict(), (3,), 1),
    (dict(num_axes=0), (), 0),
    (dict(num_axes=-1), (3, 4), 1),
    (dict(axis=2), (4,), 2),
    (dict(axis=-1), (4,), 2),
    (dict(axis=0, num_axes=2), (2, 3), 0),
])
def test_scale_axis_and_num_axes(attrs, wshape, axis):
    rng = np.random.default_rng(1)
    s, b = rng.standard_normal(wshape), rng.standard_normal(wshape)
    (y,) = run_op("Scale", attrs, [X], [s])
    np.testing.assert_allclose(y, direct_scale(X, s, axis), rtol=1e-15)
    (y,) = run_op("Scale", dict(attrs, bias_term=True), [X], [s, b])
    np.testing.assert_allclose(y, direct_scale(X, s, axis, b), rtol=1e-15)
    (y,) = run_op("Bias", attrs, [X], [b])
    np.testing.assert_allclose(y, direct_scale(X, np.ones(wshape), axis, b), rtol=1e-15)
    op = get_op("Scale")
    assert op.weight_shapes(node("Scale", dict(attrs, bias_term=True)), [X.shape]) == \
        [wshape, wshape]


def test_scale_hand_worked():
    x = np.array([[[1.0, 2.0], [3.0, 4.0]]])                        # (1, 2, 2)
    (y,) = run_op("Scale", dict(bias_term=True), [x], [np.array([10.0, -1.0]),
                                                       np.array([0.5, 0.25])])
    np.testing.assert_array_equal(y, [[[10.5, 20.5], [-2.75, -3.75]]])
    (y,) = run_op("Scale", dict(num_axes=0), [x], [np.array(3.0)])
    np.testing.assert_array_equal(y, 3 * x)


def test_scale_from_second_bottom():
    rng = np.random.default_rng(2)
    s, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    # num_axes is unused with a second bottom: its shape says which axes it spans
    (y,) = run_op("Scale", dict(num_axes=1), [X, s])
    np.testing.assert_allclose(y, direct_scale(X, s, 1), rtol=1e-15)
    (y,) = run_op("Scale", dict(bias_term=True), [X, s], [b])
    np.testing.assert_allclose(y, direct_scale(X, s, 1, b), rtol=1e-15)
    n = node("Scale", dict(bias_term=True), n_inputs=2)
    op = get_op("Scale")
    assert op.num_weights(n) == 1 and op.weight_names(n) == ["bias"]
    assert op.weight_shapes(n, [X.shape, (3, 4)]) == [(3, 4)]
    assert op.num_weights(node("Scale", {}, n_inputs=2)) == 0
    (y,) = run_op("Scale", dict(axis=0), [X, rng.standard_normal((2, 3))])
    assert y.shape == X.shape
    (y,) = run_op("Scale", {}, [X, np.array(2.0)])                  # 0-axis second bottom
    np.testing.assert_array_equal(y, 2 * X)
    (y,) = run_op("Bias", {}, [X, b])
    np.testing.assert_allclose(y, X + b[None], rtol=1e-15)
    assert get_op("Bias").num_weights(node("Bias", {}, n_inputs=2)) == 0


def test_scale_shape_errors():
    with pytest.raises(ShapeError, match="'op'.*does not match"):
        one_op_graph("Scale", {}, [X.shape, (4,)])
    with pytest.raises(ShapeError, match="extends past"):
        one_op_graph("Scale", dict(axis=2, num_axes=2), [X.shape], [np.ones(4)])
    with pytest.raises(ShapeError, match="axis 3 out of range"):
        one_op_graph("Bias", dict(axis=3), [X.shape], [np.ones(4)])
    with pytest.raises(ShapeError, match="weight blob"):
        one_op_graph("Scale", {}, [X.shape], [np.ones(4)])


# -- LRN --------------------------------------------------------------------------------------
def direct_lrn(x, n, alpha, beta, k, region):
    N, C, H, W = x.shape
    pre = (n - 1) // 2
    y = np.empty_like(x)
    for b, c, h, w in np.ndindex(x.shape):
        if region == "ACROSS_CHANNELS":
            s = sum(x[b, cc, h, w] ** 2 for cc in range(c - pre, c + pre + 1) if 0 <= cc < C)
            scale = k + alpha / n * s
        else:   # Caffe: AVE pooling (kernel n, pad pre) of x^2, then (1 + alpha * avg)^-beta
            hs, ws = h - pre, w - pre
            size = (min(hs + n, H + pre) - hs) * (min(ws + n, W + pre) - ws)
            s = sum(x[b, c, hh, ww] ** 2 for hh in range(max(hs, 0), min(hs + n, H))
                    for ww in range(max(ws, 0), min(ws + n, W)))
            scale = 1 + alpha * (s / size)
        y[b, c, h, w] = x[b, c, h, w] * scale ** -beta
    return y


def test_lrn_across_channels_edges_hand_worked():
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    (y,) = run_op("LRN", dict(local_size=3, alpha=3.0, beta=1.0, k=1.0), [x])
    # scales: 1 + (0 + 1 + 4), 1 + (1 + 4 + 9), 1 + (4 + 9 + 0): the window is zero-padded
    np.testing.assert_allclose(y.ravel(), [1 / 6, 2 / 15, 3 / 14], rtol=1e-15)
    (y,) = run_op("LRN", dict(local_size=3, alpha=3.0, beta=1.0, k=2.0), [x])
    np.testing.assert_allclose(y.ravel(), [1 / 7, 2 / 16, 3 / 15], rtol=1e-15)


def test_lrn_within_channel_hand_worked_ignores_k():
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    for k in (1.0, 5.0):        # Caffe's WITHIN_CHANNEL power layer has shift 1: k is unused
        (y,) = run_op("LRN", dict(local_size=3, alpha=9.0, beta=1.0, k=k,
                                  norm_region="WITHIN_CHANNEL"), [x])
        # the padded 3x3 window always divides by 9: 1 + 9 * (5/9), 1 + 9 * (14/9), 1 + 9 * (13/9)
        np.testing.assert_allclose(y.ravel(), [1 / 6, 2 / 15, 3 / 14], rtol=1e-15)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["ACROSS_CHANNELS", "WITHIN_CHANNEL"]), st.sampled_from([1, 3, 5, 7]),
       st.integers(1, 6), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**16))
def test_lrn_matches_direct_loops(region, n, c, h, w, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, h, w))
    a = dict(local_size=n, alpha=float(rng.uniform(0.1, 2)), beta=float(rng.uniform(0.2, 1)),
             k=float(rng.uniform(0.5, 2)), norm_region=region)
    (y,) = run_op("LRN", a, [x])
    np.testing.assert_allclose(y, direct_lrn(x, n, a["alpha"], a["beta"], a["k"], region),
                               rtol=1e-12)


def test_lrn_errors():
    with pytest.raises(GraphError, match="odd"):
        one_op_graph("LRN", dict(local_size=4), [(1, 3, 2, 2)])
    with pytest.raises(ShapeError, match="4-d"):
        one_op_graph("LRN", {}, [(1, 3, 2)])


def test_lrn_float32():
    x = np.random.default_rng(3).standard_normal((1, 6, 3, 3)).astype(np.float32)
    for region in ("ACROSS_CHANNELS", "WITHIN_CHANNEL"):
        a = dict(local_size=5, alpha=1e-4, beta=0.75, norm_region=region)
        (y,) = get_op("LRN").run(node("LRN", a), [x], [])
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, direct_lrn(x.astype(np.float64), 5, 1e-4, 0.75, 1.0,
                                                 region), rtol=1e-6)


# -- MVN --------------------------------------------------------------------------------------
def direct_mvn(x, normalize_variance, across_channels, eps):
    x4 = x.reshape(x.shape + (1,) * (4 - x.ndim))
    y = np.empty_like(x4)
    groups = [(b,) for b in range(x4.shape[0])] if across_channels else \
        [(b, c) for b in range(x4.shape[0]) for c in range(x4.shape[1])]
    for g in groups:
        v = x4[g].ravel()
        mean = sum(v) / len(v)
        out = v - mean
        if normalize_variance:
            std = math.sqrt(sum((vi - mean) ** 2 for vi in v) / len(v))
            out = out / (std + eps)
        y[g] = out.reshape(x4[g].shape)
    return y


def test_mvn_hand_worked_eps_added_to_std():
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    (y,) = run_op("MVN", dict(eps=0.5), [x])
    std = math.sqrt(1.25)
    np.testing.assert_allclose(y.ravel(), np.array([-1.5, -0.5, 0.5, 1.5]) / (std + 0.5),
                               rtol=1e-15)
    (y,) = run_op("MVN", dict(normalize_variance=False), [x])
    np.testing.assert_array_equal(y.ravel(), [-1.5, -0.5, 0.5, 1.5])


def test_mvn_across_channels_and_legacy_shape():
    x = np.array([[[[1.0, 3.0]], [[5.0, 7.0]]]])                     # (1, 2, 1, 2)
    (y,) = run_op("MVN", dict(across_channels=True, normalize_variance=False), [x])
    np.testing.assert_array_equal(y.ravel(), [-3, -1, 1, 3])
    (y,) = run_op("MVN", dict(normalize_variance=False), [x])
    np.testing.assert_array_equal(y.ravel(), [-1, 1, -1, 1])
    # Caffe reshapes MVN's top to its legacy (N, C, H, W): a 2-d input gives a 4-d output
    (y,) = run_op("MVN", dict(across_channels=True), [np.array([[1.0, 3.0]])])
    assert y.shape == (1, 2, 1, 1)
    np.testing.assert_allclose(y.ravel(), [-1 / (1 + 1e-9), 1 / (1 + 1e-9)], rtol=1e-15)
    with pytest.raises(ShapeError, match="at most 4 axes"):
        one_op_graph("MVN", {}, [(1, 2, 2, 2, 2)])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.booleans(), st.booleans(),
       st.integers(0, 2**16))
def test_mvn_matches_direct_loops(shape, norm_var, across, seed):
    x = np.random.default_rng(seed).standard_normal(shape) * 3 + 1
    a = dict(normalize_variance=norm_var, across_channels=across, eps=1e-3)
    (y,) = run_op("MVN", a, [x])
    np.testing.assert_allclose(y, direct_mvn(x, norm_var, across, 1e-3), rtol=1e-10,
                               atol=1e-12)


# -- importer mappers -------------------------------------------------------------------------
def _map(text):
    caffe_pb2 = pytest.importorskip("edgebrew.importer.proto.caffe_pb2")
    from google.protobuf import text_format
    from edgebrew.importer.layers import MAPPERS
    layer = text_format.Parse(text, caffe_pb2.LayerParameter())
    return MAPPERS[layer.type](layer)


def test_mappers():
    a = _map('name: "bn" type: "BatchNorm"')
    assert a == dict(eps=pytest.approx(1e-5, rel=1e-6))
    assert _map('name: "bn" type: "BatchNorm" batch_norm_param { use_global_stats: true '
                'eps: 0.001 }') == dict(eps=pytest.approx(1e-3, rel=1e-6))
    assert _map('name: "s" type: "Scale" scale_param { bias_term: true }') == \
        dict(axis=1, num_axes=1, bias_term=True)
    assert _map('name: "s" type: "Scale" scale_param { axis: 0 num_axes: -1 }') == \
        dict(axis=0, num_axes=-1, bias_term=False)
    assert _map('name: "b" type: "Bias"') == dict(axis=1, num_axes=1)
    assert _map('name: "n" type: "LRN" lrn_param { local_size: 3 alpha: 2 beta: 0.5 k: 2 '
                'norm_region: WITHIN_CHANNEL }') == \
        dict(local_size=3, alpha=2.0, beta=0.5, k=2.0, norm_region="WITHIN_CHANNEL")
    assert _map('name: "n" type: "LRN"') == \
        dict(local_size=5, alpha=1.0, beta=0.75, k=1.0, norm_region="ACROSS_CHANNELS")
    assert _map('name: "m" type: "MVN" mvn_param { across_channels: true }') == \
        dict(normalize_variance=True, across_channels=True, eps=pytest.approx(1e-9, rel=1e-6))


def test_mappers_reject():
    with pytest.raises(UnsupportedLayerError, match="'bn'.*use_global_stats"):
        _map('name: "bn" type: "BatchNorm" batch_norm_param { use_global_stats: false }')
    with pytest.raises(UnsupportedLayerError, match="'n'.*odd"):
        _map('name: "n" type: "LRN" lrn_param { local_size: 4 }')
    with pytest.raises(UnsupportedLayerError, match="'s'.*num_axes"):
        _map('name: "s" type: "Scale" scale_param { num_axes: -2 }')
