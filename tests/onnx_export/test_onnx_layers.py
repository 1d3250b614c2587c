"""Per layer, randomized attributes (hypothesis): the exported ONNX op(s) in onnxruntime against
the reference executor. Pooling borders, ceil rounding and degenerate windows, LRN in both regions,
Crop, Slice, Reshape/Flatten, Scale/Bias axes, Deconvolution groups/dilation and the rest."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from edgebrew.errors import EdgebrewError
from helpers import one_op_graph
from edgebrew import reference
from edgebrew.onnx_export import OnnxExportError, build_model
from onnx_testing import check, export_and_compare, run_onnx

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
FEW = settings(max_examples=25, **SETTINGS)
SOME = settings(max_examples=40, **SETTINGS)
MANY = settings(max_examples=120, **SETTINGS)


def graph_or_skip(op_type, attrs, shapes, weights=(), n_outputs=1):
    try:
        return one_op_graph(op_type, attrs, shapes, weights, n_outputs)
    except EdgebrewError:
        assume(False)


def feeds_for(g, rng, low=None, high=None):
    out = {}
    for t in g.inputs:
        if low is None:
            out[t.name] = rng.standard_normal(t.shape).astype(np.float32)
        else:
            out[t.name] = rng.uniform(low, high, t.shape).astype(np.float32)
    return out


def shape_st(min_rank=1, max_rank=4, lo=1, hi=5):
    return st.lists(st.integers(lo, hi), min_size=min_rank, max_size=max_rank).map(tuple)


# ------------------------------------------------------------------------------ pooling
@MANY
@given(st.data())
def test_pooling_borders_ceil_and_pads(data):
    method = data.draw(st.sampled_from(["MAX", "AVE"]))
    h, w = data.draw(st.integers(1, 11)), data.draw(st.integers(1, 11))
    kernel = (data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)))
    stride = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)))
    pad = (data.draw(st.integers(0, kernel[0] - 1)), data.draw(st.integers(0, kernel[1] - 1)))
    if data.draw(st.booleans()):
        pad = (0, 0)
    attrs = dict(method=method, kernel=kernel, stride=stride, pad=pad,
                 round_mode=data.draw(st.sampled_from(["CEIL", "CEIL", "FLOOR"])))
    g = graph_or_skip("Pooling", attrs, [(2, 3, h, w)])
    feeds = feeds_for(g, np.random.default_rng(h * 100 + w))
    export_and_compare(g, feeds, tol=1e-6, exact_nan=True)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("h, w, k, s, p", [
    (7, 7, 3, 2, 1),      # last window clipped by the padding: Caffe's divisor 6, not 9
    (6, 6, 3, 2, 1),
    (5, 5, 2, 3, 0),      # ceil: a last window wholly past the input (-FLT_MAX / NaN)
    (4, 9, 1, 3, 0),
    (13, 13, 3, 2, 0),    # AlexNet/CaffeNet pool: ceil overhang, no pad
    (14, 14, 3, 2, 0),
    (8, 8, 3, 1, 2),
])
def test_pooling_known_borders(method, h, w, k, s, p):
    g = one_op_graph("Pooling", dict(method=method, kernel=(k, k), stride=(s, s), pad=(p, p)),
                     [(1, 2, h, w)])
    feeds = feeds_for(g, np.random.default_rng(0))
    export_and_compare(g, feeds, tol=1e-6, exact_nan=True)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_global_pooling(method):
    g = one_op_graph("Pooling", dict(method=method, global_pooling=True), [(2, 3, 5, 7)])
    export_and_compare(g, feeds_for(g, np.random.default_rng(1)), tol=1e-6)


# ------------------------------------------------------------------------------ LRN
@SOME
@given(st.data())
def test_lrn_both_regions(data):
    attrs = dict(local_size=data.draw(st.sampled_from([1, 3, 5, 7, 9])),
                 alpha=data.draw(st.floats(1e-4, 2.0)), beta=data.draw(st.floats(0.1, 1.5)),
                 k=data.draw(st.floats(0.5, 3.0)),
                 norm_region=data.draw(st.sampled_from(["ACROSS_CHANNELS", "WITHIN_CHANNEL"])))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 12)),
             data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8)))
    g = graph_or_skip("LRN", attrs, [shape])
    export_and_compare(g, feeds_for(g, np.random.default_rng(2)))


# ------------------------------------------------------------------------------ plumbing
@SOME
@given(st.data())
def test_crop_offsets(data):
    s0 = data.draw(shape_st(2, 4, 1, 7))
    n = len(s0)
    axis = data.draw(st.integers(-n, n - 1))
    start = axis % n
    kind = data.draw(st.sampled_from(["none", "one", "each"]))
    s1, offsets = list(s0), []
    if kind == "one":
        off = data.draw(st.integers(0, min(s0[start:]) - 1))
        offsets = [off]
        for i in range(start, n):
            s1[i] = data.draw(st.integers(1, s0[i] - off))
    else:
        for i in range(start, n):
            off = data.draw(st.integers(0, s0[i] - 1)) if kind == "each" else 0
            offsets.append(off)
            s1[i] = data.draw(st.integers(1, s0[i] - off))
        if kind == "none":
            offsets = []
    for i in range(start):
        s1[i] = data.draw(st.sampled_from([s0[i], 1]))
    g = graph_or_skip("Crop", dict(axis=axis, offset=tuple(offsets)), [s0, tuple(s1)])
    export_and_compare(g, feeds_for(g, np.random.default_rng(3)), tol=0)


@SOME
@given(st.data())
def test_slice_points(data):
    s = data.draw(shape_st(1, 4, 1, 8))
    n = len(s)
    axis = data.draw(st.integers(-n, n - 1))
    dim = s[axis % n]
    if data.draw(st.booleans()) and dim > 1:
        points = sorted(data.draw(st.sets(st.integers(1, dim - 1), min_size=1, max_size=3)))
        tops = len(points) + 1
    else:
        points = []
        divisors = [d for d in range(1, dim + 1) if dim % d == 0]
        tops = data.draw(st.sampled_from(divisors))
    g = graph_or_skip("Slice", dict(axis=axis, slice_point=tuple(points)), [s], n_outputs=tops)
    export_and_compare(g, feeds_for(g, np.random.default_rng(4)), tol=0)


def _factor(total, parts, draw):
    dims = []
    for _ in range(parts - 1):
        divs = [d for d in range(1, total + 1) if total % d == 0]
        d = draw(st.sampled_from(divs))
        dims.append(d)
        total //= d
    return dims + [total]


@SOME
@given(st.data())
def test_reshape_zero_minus_one_axis_num_axes(data):
    s = data.draw(shape_st(1, 4, 1, 6))
    n = len(s)
    axis = data.draw(st.integers(-n - 1, n))
    start = axis if axis >= 0 else n + axis + 1
    num_axes = data.draw(st.integers(-1, n - start))
    end = n if num_axes == -1 else start + num_axes
    span = math.prod(s[start:end])
    dims = _factor(span, data.draw(st.integers(1, 3)), data.draw) if end > start or span != 1 \
        else data.draw(st.sampled_from([[], [1], [1, 1]]))
    for i, d in enumerate(dims):
        if start + i < n and d == s[start + i] and data.draw(st.booleans()):
            dims[i] = 0
    if dims and data.draw(st.booleans()):
        dims[data.draw(st.integers(0, len(dims) - 1))] = -1
    attrs = dict(shape=tuple(dims), axis=axis, num_axes=num_axes)
    g = graph_or_skip("Reshape", attrs, [s])
    export_and_compare(g, feeds_for(g, np.random.default_rng(5)), tol=0)
    # Batch-agnostic where Caffe's own spec is: the same file right at batch 1 and 3.
    try:
        g3 = one_op_graph("Reshape", attrs, [(3 * s[0],) + s[1:]])
        one_op_graph("Reshape", attrs, [(1,) + s[1:]])
    except EdgebrewError:
        with pytest.raises(OnnxExportError, match="dynamic_batch"):
            build_model(g, dynamic_batch=True)
        return
    model = check(build_model(g, dynamic_batch=True))
    for graph in (g, g3):
        feeds = feeds_for(graph, np.random.default_rng(5))
        ref = reference.run(graph, feeds)["out0"]
        np.testing.assert_array_equal(run_onnx(model, feeds)["out0"], ref)


@SOME
@given(st.data())
def test_flatten_axis_end_axis(data):
    s = data.draw(shape_st(1, 5, 1, 4))
    n = len(s)
    axis, end = data.draw(st.integers(-n, n - 1)), data.draw(st.integers(-n, n - 1))
    g = graph_or_skip("Flatten", dict(axis=axis, end_axis=end), [s])
    export_and_compare(g, feeds_for(g, np.random.default_rng(6)), tol=0)


@FEW
@given(st.data())
def test_permute_concat(data):
    s = data.draw(shape_st(1, 4, 1, 4))
    n = len(s)
    order = data.draw(st.permutations(range(n)))[:data.draw(st.integers(0, n))]
    g = graph_or_skip("Permute", dict(order=tuple(order)), [s])
    export_and_compare(g, feeds_for(g, np.random.default_rng(7)), tol=0)
    axis = data.draw(st.integers(-n, n - 1))
    shapes = []
    for _ in range(data.draw(st.integers(1, 3))):
        t = list(s)
        t[axis % n] = data.draw(st.integers(1, 3))
        shapes.append(tuple(t))
    g = graph_or_skip("Concat", dict(axis=axis), shapes)
    export_and_compare(g, feeds_for(g, np.random.default_rng(8)), tol=0)


# ------------------------------------------------------------------------------ Scale / Bias
@SOME
@given(st.data())
def test_scale_bias_axis_num_axes(data):
    s = data.draw(shape_st(1, 4, 1, 4))
    n = len(s)
    axis = data.draw(st.integers(-n, n - 1))
    start = axis % n
    two_inputs = data.draw(st.booleans())
    rng = np.random.default_rng(9)
    if two_inputs:
        k = data.draw(st.integers(0, n - start))
        operand = tuple(s[start:start + k])
        bias_term = data.draw(st.booleans())
        weights = [rng.uniform(-1, 1, operand).astype(np.float32)] if bias_term else []
        g = graph_or_skip("Scale", dict(axis=axis, bias_term=bias_term), [s, operand], weights)
    else:
        num_axes = data.draw(st.integers(-1, n - start))
        k = n - start if num_axes == -1 else num_axes
        operand = tuple(s[start:start + k])
        bias_term = data.draw(st.booleans())
        weights = [rng.uniform(0.5, 1.5, operand).astype(np.float32)]
        if bias_term:
            weights.append(rng.uniform(-1, 1, operand).astype(np.float32))
        g = graph_or_skip("Scale", dict(axis=axis, num_axes=num_axes, bias_term=bias_term),
                          [s], weights)
    export_and_compare(g, feeds_for(g, rng), tol=1e-6)
    # Bias alone, same span.
    if two_inputs:
        g = graph_or_skip("Bias", dict(axis=axis), [s, operand])
    else:
        g = graph_or_skip("Bias", dict(axis=axis, num_axes=num_axes), [s],
                          [rng.uniform(-1, 1, operand).astype(np.float32)])
    export_and_compare(g, feeds_for(g, rng), tol=1e-6)


# ------------------------------------------------------------------------------ conv family
@SOME
@given(st.data())
def test_deconvolution_groups_dilation(data):
    g_ = data.draw(st.integers(1, 3))
    ci, co = g_ * data.draw(st.integers(1, 3)), g_ * data.draw(st.integers(1, 3))
    k = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    s = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    d = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    p = (data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)))
    bias = data.draw(st.booleans())
    h, w = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    rng = np.random.default_rng(10)
    weights = [rng.standard_normal((ci, co // g_, *k)).astype(np.float32)]
    if bias:
        weights.append(rng.standard_normal(co).astype(np.float32))
    attrs = dict(num_output=co, kernel=k, stride=s, pad=p, dilation=d, group=g_, bias_term=bias)
    g = graph_or_skip("Deconvolution", attrs, [(2, ci, h, w)], weights)
    export_and_compare(g, feeds_for(g, rng))


@SOME
@given(st.data())
def test_convolution_geometry(data):
    g_ = data.draw(st.integers(1, 3))
    ci, co = g_ * data.draw(st.integers(1, 3)), g_ * data.draw(st.integers(1, 3))
    k = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    s = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    d = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    p = (data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)))
    bias = data.draw(st.booleans())
    h, w = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    rng = np.random.default_rng(11)
    weights = [rng.standard_normal((co, ci // g_, *k)).astype(np.float32)]
    if bias:
        weights.append(rng.standard_normal(co).astype(np.float32))
    attrs = dict(num_output=co, kernel=k, stride=s, pad=p, dilation=d, group=g_, bias_term=bias)
    g = graph_or_skip("Convolution", attrs, [(1, ci, h, w)], weights)
    export_and_compare(g, feeds_for(g, rng))


@SOME
@given(st.data())
def test_inner_product_axis_transpose(data):
    s = data.draw(shape_st(1, 4, 1, 4))
    n = len(s)
    axis = data.draw(st.integers(-n, n - 1))
    a = axis % n
    k = math.prod(s[a:])
    m = data.draw(st.integers(1, 5))
    transpose, bias = data.draw(st.booleans()), data.draw(st.booleans())
    rng = np.random.default_rng(12)
    weights = [rng.standard_normal((k, m) if transpose else (m, k)).astype(np.float32)]
    if bias:
        weights.append(rng.standard_normal(m).astype(np.float32))
    g = graph_or_skip("InnerProduct", dict(num_output=m, axis=axis, transpose=transpose,
                                           bias_term=bias), [s], weights)
    export_and_compare(g, feeds_for(g, rng))


# ------------------------------------------------------------------------------ the rest
@FEW
@given(st.data())
def test_softmax_axis(data):
    s = data.draw(shape_st(1, 4, 1, 5))
    axis = data.draw(st.integers(-len(s), len(s) - 1))
    g = graph_or_skip("Softmax", dict(axis=axis), [s])
    export_and_compare(g, feeds_for(g, np.random.default_rng(13)))


@SOME
@given(st.data())
def test_eltwise_coeffs(data):
    n = data.draw(st.integers(2, 4))
    op = data.draw(st.sampled_from(["SUM", "PROD", "MAX"]))
    coeff = ()
    if op == "SUM" and data.draw(st.booleans()):
        coeff = tuple(data.draw(st.sampled_from([1.0, -1.0, 0.5, -2.25, 0.0, 3.0]))
                      for _ in range(n))
    s = data.draw(shape_st(1, 4, 1, 4))
    g = graph_or_skip("Eltwise", dict(operation=op, coeff=coeff), [s] * n)
    export_and_compare(g, feeds_for(g, np.random.default_rng(14)), tol=1e-6)


@SOME
@given(st.data())
def test_prelu_slope_shapes(data):
    s = data.draw(shape_st(2, 4, 1, 5))
    shared = data.draw(st.booleans())
    rng = np.random.default_rng(15)
    slope = rng.uniform(0.05, 0.3, () if shared else (s[1],)).astype(np.float32)
    g = graph_or_skip("PReLU", dict(channel_shared=shared), [s], [slope])
    export_and_compare(g, feeds_for(g, rng), tol=1e-6)


@pytest.mark.parametrize("op, attrs, low, high", [
    ("ReLU", dict(negative_slope=0.0), None, None),
    ("ReLU", dict(negative_slope=0.1), None, None),
    ("ReLU", dict(negative_slope=-0.7), None, None),
    ("ELU", dict(alpha=0.5), None, None),
    ("Sigmoid", {}, None, None),
    ("TanH", {}, None, None),
    ("AbsVal", {}, None, None),
    ("BNLL", {}, -30.0, 30.0),
    ("Dropout", {}, None, None),
    ("Power", dict(power=2.0, scale=0.5, shift=1.0), None, None),
    ("Power", dict(power=0.5, scale=2.0, shift=3.0), 0.0, 2.0),
    ("Power", dict(power=1.0, scale=1.0, shift=0.0), None, None),
    ("Power", dict(power=0.0, scale=3.0, shift=2.0), None, None),     # constant 1
    ("Power", dict(power=3.0, scale=0.0, shift=2.0), None, None),     # constant 8
    ("Power", dict(power=-1.5, scale=1.0, shift=4.0), 0.0, 2.0),
    ("Exp", dict(base=-1.0, scale=1.0, shift=0.0), None, None),
    ("Exp", dict(base=2.0, scale=0.5, shift=1.5), None, None),
    ("Exp", dict(base=10.0, scale=-1.0, shift=0.0), None, None),
    ("Log", dict(base=-1.0, scale=1.0, shift=0.0), 0.1, 3.0),
    ("Log", dict(base=2.0, scale=3.0, shift=0.5), 0.1, 3.0),
    ("Threshold", dict(threshold=0.25), None, None),
    ("Clip", dict(min=-0.5, max=0.75), None, None),
    ("Clip", dict(min=0.5, max=-0.5), None, None),                     # min > max: min wins
])
def test_activations(op, attrs, low, high):
    g = one_op_graph(op, attrs, [(2, 3, 4, 5)])
    export_and_compare(g, feeds_for(g, np.random.default_rng(16), low, high))


@FEW
@given(st.data())
def test_batch_norm_factor(data):
    s = data.draw(shape_st(2, 4, 1, 5))
    c = s[1]
    rng = np.random.default_rng(17)
    factor = data.draw(st.sampled_from([0.0, 1.0, 0.5, 999.98]))
    weights = [rng.normal(0, 0.5, c).astype(np.float32),
               rng.uniform(0.5, 1.5, c).astype(np.float32), np.array([factor], np.float32)]
    g = graph_or_skip("BatchNorm", dict(eps=data.draw(st.sampled_from([1e-5, 1e-3, 0.1]))), [s],
                      weights)
    export_and_compare(g, feeds_for(g, rng))


@FEW
@given(st.data())
def test_normalize(data):
    s = data.draw(shape_st(2, 4, 1, 5))
    shared, across = data.draw(st.booleans()), data.draw(st.booleans())
    rng = np.random.default_rng(18)
    scale = rng.uniform(0.5, 20, () if shared else (s[1],)).astype(np.float32)
    g = graph_or_skip("Normalize", dict(channel_shared=shared, across_spatial=across), [s],
                      [scale])
    export_and_compare(g, feeds_for(g, rng))


@FEW
@given(st.data())
def test_mvn(data):
    s = data.draw(shape_st(1, 4, 1, 5))
    attrs = dict(normalize_variance=data.draw(st.booleans()),
                 across_channels=data.draw(st.booleans()))
    g = graph_or_skip("MVN", attrs, [s])
    x = feeds_for(g, np.random.default_rng(19))
    export_and_compare(g, {k: v + 3 for k, v in x.items()})


@SOME
@given(st.data())
def test_argmax_ties_towards_larger_index(data):
    s = data.draw(shape_st(2, 4, 1, 5))
    n = len(s)
    axis = data.draw(st.one_of(st.none(), st.integers(-n, n - 1)))
    per = s[axis % n] if axis is not None else math.prod(s[1:])
    top_k = data.draw(st.integers(1, per))
    g = graph_or_skip("ArgMax", dict(axis=axis, top_k=top_k,
                                     out_max_val=data.draw(st.booleans())), [s])
    rng = np.random.default_rng(20)
    x = {"in0": rng.integers(0, 3, s).astype(np.float32)}     # many ties
    export_and_compare(g, x, tol=0)


@FEW
@given(st.data())
def test_reduction(data):
    s = data.draw(shape_st(1, 4, 1, 5))
    axis = data.draw(st.integers(-len(s), len(s) - 1))
    attrs = dict(operation=data.draw(st.sampled_from(["SUM", "ASUM", "SUMSQ", "MEAN"])),
                 axis=axis, coeff=data.draw(st.sampled_from([1.0, -0.5, 2.0])))
    g = graph_or_skip("Reduction", attrs, [s])
    export_and_compare(g, feeds_for(g, np.random.default_rng(21)))


def test_split_is_copies():
    g = one_op_graph("Split", {}, [(2, 3)], n_outputs=3)
    export_and_compare(g, feeds_for(g, np.random.default_rng(22)), tol=0)
