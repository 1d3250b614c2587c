"""Pooling reference against direct loops from Caffe's PoolingLayer, and hand-worked cases."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edgebrew.errors import ShapeError, UnsupportedLayerError
from edgebrew.ir.ops import get_op
from helpers import one_op_graph, run_op

FLT_MAX = float(np.finfo(np.float32).max)


def caffe_out(size, k, s, p, round_mode, any_pad):
    q = (size + 2 * p - k) / s
    out = (math.ceil(q) if round_mode == "CEIL" else math.floor(q)) + 1
    if any_pad and (out - 1) * s >= size + p:
        out -= 1
    return out


def direct_pool(x, method, kernel, stride, pad, round_mode="CEIL", global_pooling=False):
    """Caffe's Forward_cpu, one output element at a time."""
    n, c, h, w = x.shape
    if global_pooling:
        kernel, stride, pad = (h, w), (1, 1), (0, 0)
    any_pad = pad[0] != 0 or pad[1] != 0
    oh = caffe_out(h, kernel[0], stride[0], pad[0], round_mode, any_pad)
    ow = caffe_out(w, kernel[1], stride[1], pad[1], round_mode, any_pad)
    y = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    hs, ws = i * stride[0] - pad[0], j * stride[1] - pad[1]
                    if method == "MAX":
                        he, we = min(hs + kernel[0], h), min(ws + kernel[1], w)
                        hs, ws = max(hs, 0), max(ws, 0)
                        best = -FLT_MAX
                        for r in range(hs, he):
                            for q in range(ws, we):
                                if x[b, ch, r, q] > best:
                                    best = x[b, ch, r, q]
                        y[b, ch, i, j] = best
                    else:
                        he, we = min(hs + kernel[0], h + pad[0]), min(ws + kernel[1], w + pad[1])
                        size = (he - hs) * (we - ws)
                        hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
                        acc = 0.0
                        for r in range(hs, he):
                            for q in range(ws, we):
                                acc += x[b, ch, r, q]
                        # a window wholly past the input has size 0 (C's 0/0: NaN) or < 0
                        y[b, ch, i, j] = acc / size if size else math.nan
    return y


def attrs(method, kernel=(1, 1), stride=(1, 1), pad=(0, 0), round_mode="CEIL",
          global_pooling=False):
    return dict(method=method, kernel=kernel, stride=stride, pad=pad, round_mode=round_mode,
                global_pooling=global_pooling)


# -- hand-worked cases -----------------------------------------------------------------------
ROW = np.array([1.0, 2.0, 3.0, 4.0, 5.0]).reshape(1, 1, 1, 5)


def test_ceil_rounding_adds_a_clipped_last_window():
    # W=5, k=2, s=2: ceil(3/2)+1 = 3 windows [0,1] [2,3] [4]; FLOOR gives 2.
    (y,) = run_op("Pooling", attrs("MAX", (1, 2), (1, 2)), [ROW])
    np.testing.assert_array_equal(y.ravel(), [2, 4, 5])
    (y,) = run_op("Pooling", attrs("AVE", (1, 2), (1, 2)), [ROW])
    np.testing.assert_array_equal(y.ravel(), [1.5, 3.5, 5.0])   # last window: 1 element, /1
    (y,) = run_op("Pooling", attrs("AVE", (1, 2), (1, 2), round_mode="FLOOR"), [ROW])
    np.testing.assert_array_equal(y.ravel(), [1.5, 3.5])


def test_ave_divisor_is_window_clipped_to_padded_input():
    # W=4, k=3, s=2, pad 1: windows start at -1, 1, 3; divisors 3, 3 and 2 (the last window
    # covers x[3] and one pad column; its overhang past the padding does not count).
    x = ROW[..., :4]
    (y,) = run_op("Pooling", attrs("AVE", (1, 3), (1, 2), (0, 1)), [x])
    np.testing.assert_allclose(y.ravel(), [(0 + 1 + 2) / 3, (2 + 3 + 4) / 3, 4 / 2], rtol=1e-15)
    (y,) = run_op("Pooling", attrs("MAX", (1, 3), (1, 2), (0, 1)), [x])
    np.testing.assert_array_equal(y.ravel(), [2, 4, 4])


def test_window_starting_in_the_padding_is_dropped():
    # W=5, k=2, s=2, pad 1: ceil(5/2)+1 = 4, but the 4th window would start at 6 - 1 = 5 >= W,
    # inside the padding, so Caffe drops it: 3 windows [-1,0] [1,2] [3,4].
    (y,) = run_op("Pooling", attrs("AVE", (1, 2), (1, 2), (0, 1)), [ROW])
    np.testing.assert_array_equal(y.ravel(), [0.5, 2.5, 4.5])
    (y,) = run_op("Pooling", attrs("MAX", (1, 2), (1, 2), (0, 1)), [ROW])
    np.testing.assert_array_equal(y.ravel(), [1, 3, 5])


def test_pad_on_one_axis_applies_the_clip_to_both():
    # Caffe checks the last-window clip on both axes once either pad is nonzero.
    x = np.arange(15.0).reshape(1, 1, 3, 5)
    a = attrs("MAX", (3, 1), (1, 3), (1, 0))
    g = one_op_graph("Pooling", a, [x.shape])
    assert g.shapes["out0"] == (1, 1, 3, 2)     # width: ceil(4/3)+1 = 3, clipped to 2
    g = one_op_graph("Pooling", attrs("MAX", (3, 1), (1, 3), (0, 0)), [x.shape])
    assert g.shapes["out0"] == (1, 1, 1, 3)     # no pad: no clip


def test_window_wholly_past_the_input_without_padding():
    # W=4, k=1, s=2, no pad: ceil(3/2)+1 = 3 windows at 0, 2, 4; the last is empty. Caffe leaves
    # MAX at -FLT_MAX and divides AVE's 0 by pool_size 0 (NaN); at W=5, s=3 the empty window
    # starts past W and pool_size is -1 (0 / -1 = -0).
    x = ROW[..., :4]
    (y,) = run_op("Pooling", attrs("MAX", (1, 1), (1, 2)), [x])
    np.testing.assert_array_equal(y.ravel(), [1, 3, -FLT_MAX])
    (y,) = run_op("Pooling", attrs("AVE", (1, 1), (1, 2)), [x])
    assert y.ravel()[:2].tolist() == [1, 3] and np.isnan(y.ravel()[2])
    (y,) = run_op("Pooling", attrs("AVE", (1, 1), (1, 3)), [ROW])
    assert y.ravel().tolist() == [1, 4, 0] and np.signbit(y.ravel()[2])
    (y,) = run_op("Pooling", attrs("MAX", (1, 1), (1, 3)), [ROW], dtype=np.float32)
    assert y.ravel().tolist() == [1, 4, -FLT_MAX]


def test_max_ignores_nan_like_caffe():
    x = np.array([np.nan, 1.0, -2.0, np.nan]).reshape(1, 1, 1, 4)
    (y,) = run_op("Pooling", attrs("MAX", (1, 2), (1, 2)), [x])
    np.testing.assert_array_equal(y.ravel(), [1.0, -2.0])


def test_global_pooling():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    (y,) = run_op("Pooling", attrs("MAX", None, global_pooling=True), [x])
    np.testing.assert_array_equal(y, x.max(axis=(2, 3), keepdims=True))
    (y,) = run_op("Pooling", attrs("AVE", None, global_pooling=True), [x])
    np.testing.assert_allclose(y, x.mean(axis=(2, 3), keepdims=True), rtol=1e-13)
    # the kernel attribute is ignored with global pooling
    (y,) = run_op("Pooling", attrs("AVE", (2, 2), global_pooling=True), [x])
    assert y.shape == (2, 3, 1, 1)


@pytest.mark.parametrize("bad, match", [
    (attrs("MAX", (3, 3), pad=(3, 0)), "smaller than the kernel"),
    (attrs("AVE", (3, 2), pad=(1, 2)), "smaller than the kernel"),
    (attrs("MAX", None, pad=(1, 1), global_pooling=True), "global pooling"),
    (attrs("MAX", None, stride=(2, 2), global_pooling=True), "global pooling"),
    (attrs("MAX", None), "kernel is required"),
    (attrs("STOCHASTIC", (2, 2)), "not supported"),
    (attrs("MAX", (9, 2)), "does not fit"),
])
def test_invalid_geometry_is_a_shape_error_naming_the_layer(bad, match):
    with pytest.raises(ShapeError, match=match) as e:
        one_op_graph("Pooling", bad, [(1, 2, 5, 5)])
    assert "'op'" in str(e.value)


def test_non_4d_input_is_a_shape_error():
    with pytest.raises(ShapeError, match="4-d"):
        one_op_graph("Pooling", attrs("MAX", (2, 2)), [(1, 2, 5)])


def test_float32_in_float32_out():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 7, 6)).astype(np.float32)
    for method in ("MAX", "AVE"):
        a = attrs(method, (3, 3), (2, 2), (1, 1))
        (y,) = get_op("Pooling").run(one_op_graph("Pooling", a, [x.shape]).nodes[0], [x], [])
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, direct_pool(x, method, (3, 3), (2, 2), (1, 1)), rtol=1e-6)


# -- randomized against the loops ---------------------------------------------------------
geometry = st.fixed_dictionaries(dict(
    method=st.sampled_from(["MAX", "AVE"]), round_mode=st.sampled_from(["CEIL", "FLOOR"]),
    kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
    ph=st.integers(0, 3), pw=st.integers(0, 3), h=st.integers(1, 8), w=st.integers(1, 8),
    seed=st.integers(0, 2**16)))


@settings(max_examples=80, deadline=None)
@given(geometry)
def test_pooling_matches_direct_loops(g):
    kernel, stride = (g["kh"], g["kw"]), (g["sh"], g["sw"])
    pad = (min(g["ph"], g["kh"] - 1), min(g["pw"], g["kw"] - 1))
    a = attrs(g["method"], kernel, stride, pad, g["round_mode"])
    x = np.random.default_rng(g["seed"]).standard_normal((2, 2, g["h"], g["w"]))
    try:
        want = direct_pool(x, g["method"], kernel, stride, pad, g["round_mode"])
    except ValueError:          # a negative output size
        want = None
    if want is None or min(want.shape) <= 0:
        with pytest.raises(ShapeError):
            one_op_graph("Pooling", a, [x.shape])
        return
    with np.errstate(invalid="ignore", divide="ignore"):
        (y,) = run_op("Pooling", a, [x])
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


# -- importer mapper --------------------------------------------------------------------------
def _layer(text):
    caffe_pb2 = pytest.importorskip("edgebrew.importer.proto.caffe_pb2")
    from google.protobuf import text_format
    return text_format.Parse(text, caffe_pb2.LayerParameter())


def _map(text):
    from edgebrew.importer.layers import MAPPERS
    layer = _layer(text)
    return MAPPERS[layer.type](layer)


def test_mapper_forms():
    assert _map('name: "p" type: "Pooling" top: "t" pooling_param { kernel_size: 3 stride: 2 }') \
        == dict(method="MAX", kernel=(3, 3), stride=(2, 2), pad=(0, 0), global_pooling=False,
                round_mode="CEIL")
    a = _map('name: "p" type: "Pooling" pooling_param { pool: AVE kernel_h: 2 kernel_w: 3 '
             'pad_h: 1 pad_w: 0 stride_h: 1 stride_w: 2 round_mode: FLOOR }')
    assert (a["method"], a["kernel"], a["pad"], a["stride"], a["round_mode"]) == \
        ("AVE", (2, 3), (1, 0), (1, 2), "FLOOR")
    a = _map('name: "p" type: "Pooling" pooling_param { pool: AVE global_pooling: true }')
    assert a["global_pooling"] and a["kernel"] is None


@pytest.mark.parametrize("param, match", [
    ("pool: STOCHASTIC kernel_size: 2", "STOCHASTIC pooling is not supported"),
    ("kernel_size: 2 kernel_h: 2 kernel_w: 2", "kernel"),
    ("kernel_h: 2", "kernel"),
    ("", "kernel"),
    ("global_pooling: true kernel_size: 2", "global_pooling"),
    ("kernel_size: 3 pad: 1 pad_h: 1 pad_w: 1", "pad"),
    ("kernel_size: 3 stride_h: 2", "stride"),
])
def test_mapper_rejects(param, match):
    with pytest.raises(UnsupportedLayerError, match=match) as e:
        _map(f'name: "pool1" type: "Pooling" pooling_param {{ {param} }}')
    assert "'pool1'" in str(e.value)


def test_mapper_rejects_mask_top():
    with pytest.raises(UnsupportedLayerError, match="mask"):
        _map('name: "p" type: "Pooling" top: "a" top: "mask" pooling_param { kernel_size: 2 }')
