"""Concat, Slice, Split, Eltwise, Flatten, Reshape, Crop, Permute, ArgMax, Reduction against
hand-computed expectations and direct loops written from Caffe's layer sources."""
import itertools
import math

import numpy as np
import pytest

from edgebrew.errors import ShapeError, UnsupportedLayerError
from helpers import one_op_graph, run_op

DTYPES = [np.float32, np.float64]


def arange(*shape):
    return np.arange(math.prod(shape), dtype=np.float64).reshape(shape)


# -- Concat ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_concat_channels_by_hand(dtype):
    a = np.array([[[1., 2.], [3., 4.]]])          # (1, 2, 2)
    b = np.array([[[5., 6.]]])                    # (1, 1, 2)
    (y,) = run_op("Concat", {}, [a, b], dtype=dtype)
    assert y.dtype == dtype and y.shape == (1, 3, 2)
    np.testing.assert_array_equal(y, [[[1, 2], [3, 4], [5, 6]]])


def test_concat_negative_axis_and_three_inputs():
    a, b, c = np.ones((2, 1, 2)), 2 * np.ones((2, 1, 3)), 3 * np.ones((2, 1, 1))
    (y,) = run_op("Concat", dict(axis=-1), [a, b, c])
    np.testing.assert_array_equal(y[0, 0], [1, 1, 2, 2, 2, 3])
    assert y.shape == (2, 1, 6)


def test_concat_mismatch_outside_axis():
    with pytest.raises(ShapeError, match="outside axis 1"):
        one_op_graph("Concat", dict(axis=1), [(1, 2, 3), (1, 2, 4)])


# -- Slice / Split -----------------------------------------------------------------------------
def test_slice_points_by_hand():
    x = arange(1, 4, 2)                           # channels [0,1], [2,3], [4,5], [6,7]
    outs = run_op("Slice", dict(axis=1, slice_point=(1, 3)), [x], n_outputs=3)
    assert [o.shape for o in outs] == [(1, 1, 2), (1, 2, 2), (1, 1, 2)]
    np.testing.assert_array_equal(outs[0], [[[0, 1]]])
    np.testing.assert_array_equal(outs[1], [[[2, 3], [4, 5]]])
    np.testing.assert_array_equal(outs[2], [[[6, 7]]])


def test_slice_equal_parts_on_axis_0():
    x = arange(4, 3)
    a, b = run_op("Slice", dict(axis=0), [x], n_outputs=2)
    np.testing.assert_array_equal(a, x[:2])
    np.testing.assert_array_equal(b, x[2:])


@pytest.mark.parametrize("attrs,outs,msg", [
    (dict(slice_point=(2, 2)), 3, "strictly increasing"),
    (dict(slice_point=(0,)), 2, "strictly increasing"),
    (dict(slice_point=(1,)), 3, "need 2 tops"),
    (dict(slice_point=(4,)), 2, "leaves no room"),
    ({}, 3, "evenly divide"),
])
def test_slice_errors(attrs, outs, msg):
    with pytest.raises(ShapeError, match=msg):
        one_op_graph("Slice", attrs, [(1, 4, 2)], n_outputs=outs)


def test_split_copies():
    x = arange(2, 3)
    outs = run_op("Split", {}, [x], n_outputs=3)
    for o in outs:
        np.testing.assert_array_equal(o, x)
    outs[0][0, 0] = 99.0
    assert outs[1][0, 0] == 0.0


# -- Eltwise -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_eltwise_sum_coeff_by_hand(dtype):
    a, b, c = np.array([[1., 2.]]), np.array([[10., 20.]]), np.array([[4., 8.]])
    (y,) = run_op("Eltwise", dict(operation="SUM", coeff=(1.0, -1.0, 0.5)), [a, b, c],
                  dtype=dtype)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, [[1 - 10 + 2, 2 - 20 + 4]])


def test_eltwise_sum_default_prod_max_by_hand():
    a, b, c = np.array([1., -2., 3.]), np.array([4., 5., -6.]), np.array([2., 2., 0.5])
    (s,) = run_op("Eltwise", {}, [a, b, c])
    np.testing.assert_array_equal(s, [7, 5, -2.5])
    (p,) = run_op("Eltwise", dict(operation="PROD"), [a, b, c])
    np.testing.assert_array_equal(p, [8, -20, -9])
    (m,) = run_op("Eltwise", dict(operation="MAX"), [a, b, c])
    np.testing.assert_array_equal(m, [4, 5, 3])


def test_eltwise_max_nan_follows_caffes_comparisons():
    # Caffe: y = (a > b) ? a : b, then y = (x > y) ? x : y for later bottoms.
    a = np.array([1., np.nan, 3.])
    b = np.array([2., 5., np.nan])
    c = np.array([0., 0., 4.])
    (y,) = run_op("Eltwise", dict(operation="MAX"), [a, b, c])
    np.testing.assert_array_equal(y, [2., 5., np.nan])


@pytest.mark.parametrize("attrs,msg", [
    (dict(operation="PROD", coeff=(1.0, 1.0)), "only allowed with operation SUM"),
    (dict(operation="SUM", coeff=(1.0, 1.0, 1.0)), "3 coeff"),
    (dict(operation="MIN"), "unknown operation"),
])
def test_eltwise_errors(attrs, msg):
    with pytest.raises(ShapeError, match=msg):
        one_op_graph("Eltwise", attrs, [(1, 2), (1, 2)])


def test_eltwise_shape_mismatch():
    with pytest.raises(ShapeError, match="bottom 1"):
        one_op_graph("Eltwise", {}, [(1, 2), (1, 3)])


# -- Flatten -----------------------------------------------------------------------------------
@pytest.mark.parametrize("attrs,shape", [
    ({}, (2, 60)),
    (dict(axis=1, end_axis=2), (2, 12, 5)),
    (dict(axis=-2, end_axis=-1), (2, 3, 20)),
    (dict(axis=0), (120,)),
    (dict(axis=2, end_axis=1), (2, 3, 1, 4, 5)),   # Caffe's count(2, 2) == 1 inserts an axis
])
def test_flatten_shapes(attrs, shape):
    x = arange(2, 3, 4, 5)
    (y,) = run_op("Flatten", attrs, [x])
    assert y.shape == shape
    np.testing.assert_array_equal(y.reshape(-1), x.reshape(-1))


def test_flatten_end_before_axis():
    with pytest.raises(ShapeError, match="comes before"):
        one_op_graph("Flatten", dict(axis=3, end_axis=1), [(2, 3, 4, 5)])


# -- Reshape -----------------------------------------------------------------------------------
@pytest.mark.parametrize("attrs,shape", [
    (dict(shape=(0, -1)), (2, 60)),
    (dict(shape=(0, 0, -1)), (2, 3, 20)),
    (dict(shape=(0, 2, -1, 0)), (2, 2, 6, 5)),     # 0s copy input axes 0 and 3
    (dict(shape=(-1,), axis=1, num_axes=2), (2, 12, 5)),
    (dict(shape=(0, -1), axis=1), (2, 3, 20)),     # 0 copies input axis 1 (axis + 0)
    (dict(shape=(1,), axis=0, num_axes=0), (1, 2, 3, 4, 5)),
    (dict(shape=(1,), axis=-1, num_axes=0), (2, 3, 4, 5, 1)),   # axis -1: after the last
    (dict(shape=(2, -1), axis=-3, num_axes=2), (2, 3, 2, 10)),  # -3 -> start axis 2
    (dict(shape=(2, 3, 4, 5)), (2, 3, 4, 5)),
])
def test_reshape_rules(attrs, shape):
    x = arange(2, 3, 4, 5)
    (y,) = run_op("Reshape", attrs, [x])
    assert y.shape == shape
    np.testing.assert_array_equal(y.reshape(-1), x.reshape(-1))


@pytest.mark.parametrize("attrs,msg", [
    (dict(shape=(-1, -1)), "more than one -1"),
    (dict(shape=(0, 0, 0, 0, 0)), "no axis 4 to copy"),
    (dict(shape=(7, -1)), "not divisible"),
    (dict(shape=(5, 5)), "has 25 elements"),
    (dict(shape=(-2, 60)), "negative dimension"),
    (dict(shape=(-1,), axis=5), "out of range"),
    (dict(shape=(-1,), axis=3, num_axes=2), "out of range"),
    (dict(shape=(-1,), num_axes=-2), "num_axes"),
])
def test_reshape_errors(attrs, msg):
    with pytest.raises(ShapeError, match=msg):
        one_op_graph("Reshape", attrs, [(2, 3, 4, 5)])


# -- Crop --------------------------------------------------------------------------------------
def direct_crop(x, ref_shape, offsets):
    out = np.empty(ref_shape)
    for idx in itertools.product(*(range(d) for d in ref_shape)):
        out[idx] = x[tuple(i + o for i, o in zip(idx, offsets))]
    return out


@pytest.mark.parametrize("attrs,ref_shape,out_shape,offsets", [
    (dict(offset=(1, 2)), (1, 1, 2, 3), (1, 2, 2, 3), (0, 0, 1, 2)),
    (dict(offset=(1,)), (1, 1, 2, 3), (1, 2, 2, 3), (0, 0, 1, 1)),
    ({}, (1, 1, 2, 3), (1, 2, 2, 3), (0, 0, 0, 0)),
    (dict(axis=1, offset=(1, 0, 2)), (1, 1, 3, 2), (1, 1, 3, 2), (0, 1, 0, 2)),
    (dict(axis=-1, offset=(3,)), (9, 9, 9, 2), (1, 2, 5, 2), (0, 0, 0, 3)),
])
def test_crop_offsets(attrs, ref_shape, out_shape, offsets):
    x = arange(1, 2, 5, 6)
    ref = np.zeros(ref_shape)
    (y,) = run_op("Crop", attrs, [x, ref])
    assert y.shape == out_shape
    np.testing.assert_array_equal(y, direct_crop(x, out_shape, offsets))


def test_crop_by_hand():
    x = arange(1, 1, 4, 4)                        # rows [0..3], [4..7], [8..11], [12..15]
    (y,) = run_op("Crop", dict(offset=(1, 2)), [x, np.zeros((1, 1, 2, 2))])
    np.testing.assert_array_equal(y[0, 0], [[6, 7], [10, 11]])


@pytest.mark.parametrize("attrs,msg", [
    (dict(offset=(2, 4)), "out of bounds"),
    (dict(offset=(1, 1, 1)), "3 offsets for 2 cropped axes"),
])
def test_crop_errors(attrs, msg):
    with pytest.raises(ShapeError, match=msg):
        one_op_graph("Crop", attrs, [(1, 2, 5, 6), (1, 1, 2, 3)])


# -- Permute -----------------------------------------------------------------------------------
@pytest.mark.parametrize("order,full", [
    ((0, 2, 3, 1), (0, 2, 3, 1)),
    ((2,), (2, 0, 1, 3)),
    ((1, 0), (1, 0, 2, 3)),
    ((), (0, 1, 2, 3)),
])
def test_permute_direct_loops(order, full):
    x = arange(2, 3, 4, 5)
    (y,) = run_op("Permute", dict(order=order), [x])
    assert y.shape == tuple(x.shape[o] for o in full)
    for idx in itertools.product(*(range(d) for d in y.shape)):
        src = [0] * 4
        for out_axis, in_axis in enumerate(full):
            src[in_axis] = idx[out_axis]
        assert y[idx] == x[tuple(src)]


@pytest.mark.parametrize("order,msg", [((0, 0), "repeats"), ((4,), "names axis 4")])
def test_permute_errors(order, msg):
    with pytest.raises(ShapeError, match=msg):
        one_op_graph("Permute", dict(order=order), [(1, 2, 3, 4)])


# -- ArgMax ------------------------------------------------------------------------------------
def direct_topk(values, k):
    """Caffe: partial_sort of (value, index) pairs with std::greater -> ties: larger index."""
    pairs = sorted(((v, j) for j, v in enumerate(values)), reverse=True)
    return pairs[:k]


def test_argmax_ties_pick_larger_index():
    x = np.array([[1., 3., 3.], [5., 0., 5.]])
    (y,) = run_op("ArgMax", {}, [x])
    assert y.shape == (2, 1, 1)
    np.testing.assert_array_equal(y.reshape(-1), [2, 2])


def test_argmax_out_max_val_flattened_4d():
    x = np.array([0.1, 0.7, 0.7, 0.2]).reshape(1, 2, 2, 1)
    (y,) = run_op("ArgMax", dict(out_max_val=True, top_k=2), [x])
    assert y.shape == (1, 2, 2, 1)                 # rank kept at 4 with a trailing 1
    np.testing.assert_array_equal(y[0, 0, :, 0], [2, 1])
    np.testing.assert_array_equal(y[0, 1, :, 0], [0.7, 0.7])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_max_val", [False, True])
@pytest.mark.parametrize("axis", [1, 2, -2])
def test_argmax_axis_direct_loops(dtype, out_max_val, axis):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(2, 5, 4)).astype(np.float64)   # many ties
    k = 3
    (y,) = run_op("ArgMax", dict(out_max_val=out_max_val, top_k=k, axis=axis), [x], dtype=dtype)
    a = axis % 3
    want_shape = list(x.shape)
    want_shape[a] = k
    assert y.shape == tuple(want_shape) and y.dtype == dtype
    xm, ym = np.moveaxis(x, a, -1), np.moveaxis(y, a, -1)
    for idx in itertools.product(*(range(d) for d in xm.shape[:-1])):
        top = direct_topk(xm[idx], k)
        want = [v if out_max_val else j for v, j in top]
        np.testing.assert_array_equal(ym[idx], want)


def test_argmax_flattened_direct_loops():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, size=(3, 2, 3)).astype(np.float64)
    (y,) = run_op("ArgMax", dict(out_max_val=True, top_k=4), [x])
    assert y.shape == (3, 2, 4)
    for n in range(3):
        top = direct_topk(x[n].reshape(-1), 4)
        np.testing.assert_array_equal(y[n, 0], [j for _, j in top])
        np.testing.assert_array_equal(y[n, 1], [v for v, _ in top])


def test_argmax_2d_input_gives_3d_output():
    assert one_op_graph("ArgMax", dict(top_k=2), [(4, 10)]).shapes["out0"] == (4, 1, 2)


@pytest.mark.parametrize("attrs,msg", [
    (dict(top_k=7), "exceeds the 6 values"),
    (dict(top_k=3, axis=1), "exceeds the size 2"),
    (dict(top_k=0), "at least 1"),
])
def test_argmax_errors(attrs, msg):
    with pytest.raises(ShapeError, match=msg):
        one_op_graph("ArgMax", attrs, [(1, 2, 3)])


# -- Reduction ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_reduction_by_hand(dtype):
    x = np.array([[1., -2., 3.], [-4., 5., -6.]])
    (s,) = run_op("Reduction", {}, [x], dtype=dtype)                 # axis 0: everything
    assert s.shape == () and s.dtype == dtype and s == -3.0
    (a,) = run_op("Reduction", dict(operation="ASUM", axis=1), [x], dtype=dtype)
    np.testing.assert_array_equal(a, [6, 15])
    (q,) = run_op("Reduction", dict(operation="SUMSQ", axis=-1), [x], dtype=dtype)
    np.testing.assert_array_equal(q, [14, 77])
    (m,) = run_op("Reduction", dict(operation="MEAN", axis=1, coeff=3.0), [x], dtype=dtype)
    np.testing.assert_allclose(m, [3.0 * 2 / 3, 3.0 * -5 / 3], rtol=1e-6)
    (c,) = run_op("Reduction", dict(operation="SUM", axis=1, coeff=-0.5), [x], dtype=dtype)
    np.testing.assert_array_equal(c, [-1.0, 2.5])


def test_reduction_reduces_all_trailing_axes():
    x = arange(2, 3, 4)
    (y,) = run_op("Reduction", dict(operation="MEAN", axis=1), [x])
    assert y.shape == (2,)
    np.testing.assert_allclose(y, [sum(range(12)) / 12, sum(range(12, 24)) / 12])


def test_reduction_bad_axis():
    with pytest.raises(ShapeError, match="axis 3 out of range"):
        one_op_graph("Reduction", dict(axis=3), [(2, 3, 4)])


# -- importer mappers --------------------------------------------------------------------------
def layer(text):
    caffe_pb2 = pytest.importorskip("edgebrew.importer.proto.caffe_pb2")
    from google.protobuf import text_format
    return text_format.Parse(text, caffe_pb2.LayerParameter())


def mapped(text):
    from edgebrew.importer.layers import MAPPERS
    lp = layer(text)
    return MAPPERS[lp.type](lp)


def test_mappers_defaults_and_legacy_fields():
    assert mapped('name: "c" type: "Concat"') == dict(axis=1)
    assert mapped('name: "c" type: "Concat" concat_param { concat_dim: 0 }') == dict(axis=0)
    assert mapped('name: "c" type: "Concat" concat_param { axis: -1 }') == dict(axis=-1)
    assert mapped('name: "s" type: "Slice" slice_param { slice_dim: 2 slice_point: 1 '
                  'slice_point: 3 }') == dict(axis=2, slice_point=(1, 3))
    assert mapped('name: "s" type: "Slice"') == dict(axis=1, slice_point=())
    assert mapped('name: "s" type: "Split"') == {}
    assert mapped('name: "f" type: "Flatten"') == dict(axis=1, end_axis=-1)
    assert mapped('name: "r" type: "Reshape" reshape_param { shape { dim: 0 dim: -1 } '
                  'axis: 1 num_axes: 2 }') == dict(shape=(0, -1), axis=1, num_axes=2)
    assert mapped('name: "c" type: "Crop" crop_param { offset: 4 }') == dict(axis=2,
                                                                              offset=(4,))
    assert mapped('name: "p" type: "Permute" permute_param { order: 0 order: 2 order: 3 '
                  'order: 1 }') == dict(order=(0, 2, 3, 1))
    assert mapped('name: "a" type: "ArgMax"') == dict(out_max_val=False, top_k=1, axis=None)
    assert mapped('name: "a" type: "ArgMax" argmax_param { out_max_val: true top_k: 3 '
                  'axis: -1 }') == dict(out_max_val=True, top_k=3, axis=-1)


def test_mappers_enums_become_names():
    assert mapped('name: "e" type: "Eltwise" bottom: "a" bottom: "b"') == \
        dict(operation="SUM", coeff=())
    assert mapped('name: "e" type: "Eltwise" bottom: "a" bottom: "b" eltwise_param { '
                  'operation: PROD }') == dict(operation="PROD", coeff=())
    assert mapped('name: "e" type: "Eltwise" bottom: "a" bottom: "b" eltwise_param { '
                  'operation: MAX stable_prod_grad: false }')["operation"] == "MAX"
    assert mapped('name: "e" type: "Eltwise" bottom: "a" bottom: "b" eltwise_param { '
                  'coeff: 1 coeff: -1 }') == dict(operation="SUM", coeff=(1.0, -1.0))
    assert mapped('name: "r" type: "Reduction"') == dict(operation="SUM", axis=0, coeff=1.0)
    assert mapped('name: "r" type: "Reduction" reduction_param { operation: SUMSQ axis: 1 '
                  'coeff: 0.5 }') == dict(operation="SUMSQ", axis=1, coeff=0.5)
    assert mapped('name: "r" type: "Reduction" reduction_param { operation: MEAN }'
                  )["operation"] == "MEAN"


@pytest.mark.parametrize("text,msg", [
    ('name: "c1" type: "Concat" concat_param { axis: 1 concat_dim: 1 }', "either axis"),
    ('name: "s1" type: "Slice" slice_param { axis: 1 slice_dim: 1 }', "either axis"),
    ('name: "e1" type: "Eltwise" bottom: "a" bottom: "b" eltwise_param { operation: MAX '
     'coeff: 1 coeff: 1 }', "only allowed with operation SUM"),
    ('name: "e1" type: "Eltwise" bottom: "a" bottom: "b" eltwise_param { coeff: 1 }',
     "1 coeff"),
])
def test_mapper_errors_name_the_layer(text, msg):
    with pytest.raises(UnsupportedLayerError, match=msg) as e:
        mapped(text)
    assert "layer '" in str(e.value)
