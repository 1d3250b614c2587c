"""Softmax against direct loops and hand-worked numbers."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edgebrew.errors import ShapeError
from edgebrew.ir import Node
from edgebrew.ir.ops import get_op
from helpers import one_op_graph, run_op


def direct_softmax(x, axis):
    axis %= x.ndim
    y = np.empty_like(x)
    for idx in np.ndindex(x.shape[:axis] + (1,) + x.shape[axis + 1:]):
        line = [idx[:axis] + (i,) + idx[axis + 1:] for i in range(x.shape[axis])]
        m = max(x[i] for i in line)
        total = sum(math.exp(x[i] - m) for i in line)
        for i in line:
            y[i] = math.exp(x[i] - m) / total
    return y


def test_hand_worked():
    x = np.log(np.array([[1.0, 2.0, 3.0]]))
    (y,) = run_op("Softmax", {}, [x])
    np.testing.assert_allclose(y, [[1 / 6, 2 / 6, 3 / 6]], rtol=1e-15)


def test_axis_and_stability():
    x = np.array([[[1000.0, 1001.0], [-1000.0, 1000.0]]])           # (1, 2, 2)
    with np.errstate(over="raise", invalid="raise"):
        (y1,) = run_op("Softmax", {}, [x])                          # over axis 1
        (y2,) = run_op("Softmax", dict(axis=-1), [x])
    e = 1 / (1 + math.e)
    np.testing.assert_allclose(y1, [[[1, 1 - e], [0, e]]], rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(y2, [[[e, 1 - e], [0, 1]]], rtol=1e-15, atol=1e-300)
    (y0,) = run_op("Softmax", dict(axis=0), [x])
    np.testing.assert_array_equal(y0, np.ones_like(x))


def test_float32_and_errors():
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    op = get_op("Softmax")
    (y,) = op.run(Node("op", "Softmax", ["in0"], ["out0"], op.normalize_attrs("op", {})), [x], [])
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, direct_softmax(x.astype(np.float64), 1), rtol=1e-6)
    with pytest.raises(ShapeError, match="'op'.*axis 3"):
        one_op_graph("Softmax", dict(axis=3), [(2, 5, 3)])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data())
def test_matches_direct_loops(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).standard_normal(shape) * 5
    (y,) = run_op("Softmax", dict(axis=axis), [x])
    np.testing.assert_allclose(y, direct_softmax(x, axis), rtol=1e-12, atol=1e-300)


def test_mapper():
    caffe_pb2 = pytest.importorskip("edgebrew.importer.proto.caffe_pb2")
    from google.protobuf import text_format
    from edgebrew.importer.layers import MAPPERS
    layer = text_format.Parse('name: "prob" type: "Softmax" softmax_param { axis: 2 }',
                              caffe_pb2.LayerParameter())
    assert MAPPERS["Softmax"](layer) == dict(axis=2)
    layer = text_format.Parse('name: "prob" type: "Softmax"', caffe_pb2.LayerParameter())
    assert MAPPERS["Softmax"](layer) == dict(axis=1)
