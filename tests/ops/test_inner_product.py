"""InnerProduct reference against direct loops from Caffe's definition and hand-worked numbers."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edgebrew.errors import ShapeError, UnsupportedLayerError
from edgebrew.ir.ops import get_op
from edgebrew.ir import Node
from helpers import one_op_graph, run_op


def node(attrs, n_inputs=1):
    op = get_op("InnerProduct")
    return Node("op", "InnerProduct", [f"in{i}" for i in range(n_inputs)], ["out0"],
                op.normalize_attrs("op", attrs))


def direct_ip(x, w, b, axis, transpose):
    axis %= x.ndim
    m, k = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
    n = w.shape[1] if transpose else w.shape[0]
    flat = x.reshape(m, k)
    y = np.zeros((m, n))
    for i in range(m):
        for o in range(n):
            acc = 0.0
            for j in range(k):
                acc += flat[i, j] * (w[j, o] if transpose else w[o, j])
            y[i, o] = acc + (b[o] if b is not None else 0.0)
    return y.reshape(x.shape[:axis] + (n,))


def test_hand_worked():
    x = np.array([[1.0, 2.0, 3.0]])
    w = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
    (y,) = run_op("InnerProduct", dict(num_output=2), [x], [w, np.array([10.0, 20.0])])
    np.testing.assert_array_equal(y, [[8.0, 24.0]])
    (y,) = run_op("InnerProduct", dict(num_output=2, transpose=True, bias_term=False), [x],
                  [w.T.copy()])
    np.testing.assert_array_equal(y, [[-2.0, 4.0]])


def test_axis_2_keeps_leading_axes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    w = rng.standard_normal((7, 20))
    b = rng.standard_normal(7)
    (y,) = run_op("InnerProduct", dict(num_output=7, axis=2), [x], [w, b])
    assert y.shape == (2, 3, 7)
    np.testing.assert_allclose(y, direct_ip(x, w, b, 2, False), rtol=1e-12)
    (y2,) = run_op("InnerProduct", dict(num_output=7, axis=-2), [x], [w, b])
    np.testing.assert_array_equal(y, y2)


def test_weight_shapes_and_mismatch():
    op = get_op("InnerProduct")
    s = [(2, 3, 4, 5)]
    assert op.weight_shapes(node(dict(num_output=7, axis=2, transpose=True)), s) == [(20, 7), (7,)]
    assert op.weight_shapes(node(dict(num_output=7, bias_term=False)), s) == [(7, 60)]
    assert op.num_weights(node(dict(num_output=7, bias_term=False))) == 1
    with pytest.raises(ShapeError, match="weight blob"):
        one_op_graph("InnerProduct", dict(num_output=7, transpose=True), [(2, 3, 4, 5)],
                     [np.zeros((7, 60)), np.zeros(7)])
    with pytest.raises(ShapeError, match="axis 4 out of range"):
        one_op_graph("InnerProduct", dict(num_output=7, axis=4), [(2, 3, 4, 5)],
                     [np.zeros((7, 1)), np.zeros(7)])


def test_macs_count_one_image():
    op = get_op("InnerProduct")
    assert op.macs(node(dict(num_output=10)), [(8, 3, 4, 5)], [(8, 10)]) == 60 * 10
    assert op.macs(node(dict(num_output=7, axis=2)), [(8, 3, 4, 5)], [(8, 3, 7)]) == 3 * 20 * 7


def test_float32_in_float32_out():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6)).astype(np.float32)
    w = rng.standard_normal((3, 6)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    node = one_op_graph("InnerProduct", dict(num_output=3), [x.shape], [w, b]).nodes[0]
    (y,) = get_op("InnerProduct").run(node, [x], [w, b])
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, direct_ip(x, w, b, 1, False), rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data())
def test_matches_direct_loops(shape, data):
    ndim = len(shape)
    axis = data.draw(st.integers(-ndim, ndim - 1))
    n = data.draw(st.integers(1, 5))
    transpose, bias = data.draw(st.booleans()), data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    k = math.prod(shape[axis % ndim:])
    x = rng.standard_normal(shape)
    w = rng.standard_normal((k, n) if transpose else (n, k))
    b = rng.standard_normal(n) if bias else None
    a = dict(num_output=n, axis=axis, transpose=transpose, bias_term=bias)
    (y,) = run_op("InnerProduct", a, [x], [w] + ([b] if bias else []))
    np.testing.assert_allclose(y, direct_ip(x, w, b, axis, transpose), rtol=1e-12, atol=1e-12)


# -- importer mapper --------------------------------------------------------------------------
def _map(text):
    caffe_pb2 = pytest.importorskip("edgebrew.importer.proto.caffe_pb2")
    from google.protobuf import text_format
    from edgebrew.importer.layers import MAPPERS
    layer = text_format.Parse(text, caffe_pb2.LayerParameter())
    return MAPPERS[layer.type](layer)


def test_mapper():
    assert _map('name: "fc" type: "InnerProduct" inner_product_param { num_output: 10 }') == \
        dict(num_output=10, bias_term=True, axis=1, transpose=False)
    assert _map('name: "fc" type: "InnerProduct" inner_product_param { num_output: 3 '
                'bias_term: false axis: -1 transpose: true }') == \
        dict(num_output=3, bias_term=False, axis=-1, transpose=True)
    with pytest.raises(UnsupportedLayerError, match="'fc'.*num_output"):
        _map('name: "fc" type: "InnerProduct" inner_product_param { }')
