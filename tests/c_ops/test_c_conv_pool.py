"""libedgebrew's Convolution, Deconvolution, InnerProduct, Pooling and LRN (kernels_c/src/ops/)
against the NumPy reference executor.

Each op runs as a one-op bundle through the C runtime and is compared with the reference
computing in float64 on the same float32 inputs and weights: relative error
max|c - ref| / max|ref| <= 1e-5 (NaN where the reference has NaN). Shapes and attributes are drawn
by hypothesis: odd sizes, groups, depthwise with channel multipliers, dilation, padding, strides
and shapes where Caffe's ceil rounding of pooling matters (windows clipped by the padding, and
windows wholly past the input), global pooling, transposed and multi-axis InnerProduct (GEMV and
GEMM paths), LRN across and within channels. 1 and 3 threads (and 8 on bigger shapes, where
the work is split into pixel tiles and blocks of output channels) give bit-identical outputs.
Bundles whose attributes, shapes or weights do not fit fail to load with EB_ERR_INVALID_BUNDLE
naming the op, and a randomized differential test checks that the C runtime loads a node
exactly when the IR accepts it.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import (c_runtime_available, expect_invalid_bundle, one_op_graph, rel_error, run_op,
                     run_op_c)

pytestmark = pytest.mark.skipif(not c_runtime_available(),
                                reason="the C runtime (edgebrew._libedgebrew) is not built")

TOL = 1e-5
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
F32 = np.float32


def f32(a):
    return np.asarray(a, dtype=F32)


def fval(x):
    """A float32-representable Python float (float32 and float64 attributes then agree)."""
    return float(np.float32(x))


def assert_close(got, ref, what):
    assert got.dtype == F32
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(got), nan, err_msg=f"{what}: NaN positions differ")
    if (~nan).any():
        err = rel_error(got[~nan], ref[~nan])
        assert err <= TOL, f"{what}: relative error {err:.3g}"


LINEAR = {"Convolution", "Deconvolution", "InnerProduct"}


def check(op, attrs, inputs, weights=(), threads=(1, 3), ref_dtype=np.float64):
    """C vs the float64 reference; every thread count in `threads` gives the same bits.

    For the linear ops (and AVE pooling), when the outputs cancel (a dot product of many terms
    that sums to nearly zero), max|ref| says nothing about what float32 accumulation can reach;
    there the bound is taken relative to the reference on |inputs| and |weights| (the sum of
    the terms' magnitudes), the classic forward-error bound of a float32 sum."""
    inputs = [f32(x) for x in inputs]
    weights = [f32(w) for w in weights]
    (ref,) = run_op(op, attrs, inputs, weights, dtype=ref_dtype)
    ref = ref.astype(np.float64)
    outs = [run_op_c(op, attrs, inputs, weights, threads=t)[0] for t in threads]
    what = f"{op} {attrs}"
    try:
        assert_close(outs[0], ref, what)
    except AssertionError:
        if not (op in LINEAR or (op == "Pooling" and attrs.get("method") == "AVE")):
            raise
        (mag,) = run_op(op, attrs, [np.abs(x) for x in inputs], [np.abs(w) for w in weights],
                        dtype=np.float64)
        ok = ~np.isnan(ref)
        np.testing.assert_array_equal(np.isnan(outs[0]), ~ok, err_msg=what)
        err = np.max(np.abs(outs[0][ok] - ref[ok])) / np.max(np.abs(mag[ok]))
        assert err <= TOL, f"{what}: error {err:.3g} relative to the sum of magnitudes"
    for t, o in zip(threads[1:], outs[1:]):
        assert o.tobytes() == outs[0].tobytes(), f"{op} {attrs}: {t} threads differ from {threads[0]}"
    return outs[0]


seeds = st.integers(0, 2**32 - 1)


def normal(seed, shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(F32)


# -- Convolution ---------------------------------------------------------------------------------
@st.composite
def conv_cases(draw, deconv=False):
    kind = draw(st.sampled_from(["plain", "grouped", "depthwise", "1x1"]))
    group = 1 if kind in ("plain", "1x1") else draw(st.integers(2, 6))
    cg = 1 if kind == "depthwise" else draw(st.integers(1, 6))
    mg = draw(st.integers(1, 3)) if kind == "depthwise" else draw(st.integers(1, 7))
    if kind == "1x1":
        kernel, stride, pad, dil = (1, 1), (1, 1), (0, 0), (1, 1)
    else:
        kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        pad = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    lo = [1 if deconv else max(1, dil[i] * (kernel[i] - 1) + 1 - 2 * pad[i]) for i in range(2)]
    h, w = draw(st.integers(lo[0], lo[0] + 12)), draw(st.integers(lo[1], lo[1] + 12))
    if deconv:   # the output must keep at least one pixel
        for i, size in enumerate((h, w)):
            if stride[i] * (size - 1) + dil[i] * (kernel[i] - 1) + 1 - 2 * pad[i] < 1:
                pad = tuple(0 if j == i else pad[j] for j in range(2))
    n = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    attrs = dict(num_output=mg * group, kernel=kernel, stride=stride, pad=pad, dilation=dil,
                 group=group, bias_term=bias)
    c = cg * group
    seed = draw(seeds)
    x = normal(seed, (n, c, h, w))
    wshape = (c, mg, *kernel) if deconv else (mg * group, cg, *kernel)
    weights = [normal(seed + 1, wshape)] + ([normal(seed + 2, (mg * group,))] if bias else [])
    return attrs, x, weights


@SETTINGS
@given(conv_cases())
def test_convolution(case):
    attrs, x, weights = case
    check("Convolution", attrs, [x], weights)


@SETTINGS
@given(conv_cases(deconv=True))
def test_deconvolution(case):
    attrs, x, weights = case
    check("Deconvolution", attrs, [x], weights)


# Bigger shapes: several pixel tiles per image, blocks of output channels when the tiles are
# too few for the threads, packed-weight panels with ragged edges, deep im2col.
CONV_BIG = [
    # (n, c, m, h, w, kernel, stride, pad, dilation, group)
    (1, 64, 80, 40, 37, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 256, 100, 9, 9, (3, 3), (2, 2), (1, 1), (1, 1), 1),
    (1, 512, 130, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (1, 96, 64, 30, 30, (1, 1), (1, 1), (0, 0), (1, 1), 2),
    (1, 3, 64, 57, 61, (7, 7), (2, 2), (3, 3), (1, 1), 1),
    (1, 64, 128, 33, 35, (3, 3), (1, 1), (2, 2), (2, 2), 64),
    (1, 32, 64, 20, 20, (5, 3), (2, 1), (2, 1), (1, 1), 32),
    (1, 1, 20, 28, 28, (5, 5), (1, 1), (0, 0), (1, 1), 1),
]


@pytest.mark.parametrize("case", CONV_BIG, ids=[f"conv{i}" for i in range(len(CONV_BIG))])
def test_convolution_big(case):
    n, c, m, h, w, kernel, stride, pad, dil, group = case
    attrs = dict(num_output=m, kernel=kernel, stride=stride, pad=pad, dilation=dil, group=group)
    x = normal(1, (n, c, h, w))
    weights = [normal(2, (m, c // group, *kernel), 0.1), normal(3, (m,))]
    check("Convolution", attrs, [x], weights, threads=(1, 3, 8))


DECONV_BIG = [
    # FCN-style upsampling: one group and one group per channel; a decoder layer; 1x1
    (1, 21, 21, 9, 11, (16, 16), (8, 8), (4, 4), (1, 1), 1),
    (1, 21, 21, 4, 3, (64, 64), (32, 32), (16, 16), (1, 1), 21),
    (2, 64, 40, 15, 17, (4, 4), (2, 2), (1, 1), (1, 1), 1),
    (1, 100, 300, 20, 20, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (1, 12, 18, 13, 9, (3, 3), (2, 2), (1, 0), (2, 1), 3),
]


@pytest.mark.parametrize("case", DECONV_BIG, ids=[f"deconv{i}" for i in range(len(DECONV_BIG))])
def test_deconvolution_big(case):
    n, c, m, h, w, kernel, stride, pad, dil, group = case
    attrs = dict(num_output=m, kernel=kernel, stride=stride, pad=pad, dilation=dil, group=group)
    x = normal(4, (n, c, h, w))
    weights = [normal(5, (c, m // group, *kernel), 0.1), normal(6, (m,))]
    check("Deconvolution", attrs, [x], weights, threads=(1, 3, 8))


# -- InnerProduct --------------------------------------------------------------------------------
@st.composite
def ip_cases(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    if draw(st.integers(0, 3)) == 0:     # the GEMM path: many rows, long rows
        shape = (draw(st.integers(4, 40)), draw(st.integers(1, 300)))
        ndim = 2
    axis = draw(st.integers(-ndim, ndim - 1))
    k = int(np.prod(shape[axis % ndim:]))
    n_out = draw(st.sampled_from([1, 3, 17, 200, 450]))
    transpose, bias = draw(st.booleans()), draw(st.booleans())
    seed = draw(seeds)
    x = normal(seed, shape)
    weights = [normal(seed + 1, (k, n_out) if transpose else (n_out, k))]
    if bias:
        weights.append(normal(seed + 2, (n_out,)))
    return dict(num_output=n_out, bias_term=bias, axis=axis, transpose=transpose), x, weights


@SETTINGS
@given(ip_cases())
def test_inner_product(case):
    attrs, x, weights = case
    check("InnerProduct", attrs, [x], weights)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("rows", [1, 2, 64])
def test_inner_product_big(rows, transpose):
    k, n_out = 2500, 1000     # several column blocks; long GEMV rows
    x = normal(7, (rows, 4, 25, 25))
    w = normal(8, (k, n_out) if transpose else (n_out, k), 0.05)
    attrs = dict(num_output=n_out, transpose=transpose)
    check("InnerProduct", attrs, [x], [w, normal(9, (n_out,))], threads=(1, 3, 8))


# -- Pooling -------------------------------------------------------------------------------------
@st.composite
def pool_cases(draw):
    method = draw(st.sampled_from(["MAX", "AVE"]))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 4)),
             draw(st.integers(1, 13)), draw(st.integers(1, 13)))
    seed = draw(seeds)
    x = normal(seed, shape)
    if draw(st.integers(0, 5)) == 0:       # NaN never wins a MAX window (Caffe's comparisons)
        x.reshape(-1)[draw(st.integers(0, x.size - 1))] = np.nan
    if draw(st.integers(0, 5)) == 0:
        return dict(method=method, global_pooling=True), x
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    padded = draw(st.booleans())
    pad = (draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1))) \
        if padded else (0, 0)
    # the kernel must fit the padded input (the IR refuses the rest)
    shape = shape[:2] + tuple(max(shape[2 + i], kernel[i] - 2 * pad[i]) for i in range(2))
    x = normal(seed, shape) if x.shape != shape else x
    attrs = dict(method=method, kernel=kernel, stride=stride, pad=pad,
                 round_mode=draw(st.sampled_from(["CEIL", "FLOOR"])))
    return attrs, x


@SETTINGS
@given(pool_cases())
def test_pooling(case):
    attrs, x = case
    check("Pooling", attrs, [x])


def test_pooling_windows_past_the_input():
    """No padding, stride > kernel, ceil rounding: the last window lies wholly past the input;
    Caffe gives -FLT_MAX (MAX) and 0 / pool_size, NaN or -0 (AVE), and so must we."""
    x = normal(10, (1, 2, 5, 5))
    for method in ("MAX", "AVE"):
        attrs = dict(method=method, kernel=(1, 1), stride=(3, 3))
        got = check("Pooling", attrs, [x])
        assert got.shape == (1, 2, 3, 3)
    attrs = dict(method="AVE", kernel=(2, 1), stride=(4, 3))      # pool_size 1 * 0 and 1 * -1
    check("Pooling", attrs, [normal(11, (1, 1, 5, 4))])


@pytest.mark.parametrize("case", [
    dict(method="MAX", kernel=(3, 3), stride=(2, 2)),                       # AlexNet, ceil
    dict(method="MAX", kernel=(3, 3), stride=(2, 2), pad=(1, 1)),           # ResNet stem
    dict(method="AVE", kernel=(3, 3), stride=(2, 2), pad=(1, 1)),
    dict(method="AVE", kernel=(7, 7), stride=(1, 1)),
    dict(method="AVE", global_pooling=True),
    dict(method="MAX", global_pooling=True),
])
def test_pooling_common_shapes(case):
    check("Pooling", case, [normal(12, (2, 64, 56, 55))], threads=(1, 3, 8))


# -- LRN -----------------------------------------------------------------------------------------
@st.composite
def lrn_cases(draw):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 12)),
             draw(st.integers(1, 17)), draw(st.integers(1, 17)))
    if draw(st.integers(0, 4)) == 0:
        shape = (1, draw(st.integers(1, 40)), 23, 31)                 # several pixel tiles
    attrs = dict(local_size=draw(st.sampled_from([1, 3, 5, 7, 11])),
                 alpha=fval(draw(st.sampled_from([1e-4, 2e-5, 0.3, 1.0, 0.0]))),
                 beta=fval(draw(st.sampled_from([0.75, 0.5, 1.3, 0.0]))),
                 k=fval(draw(st.sampled_from([1.0, 2.0, 0.7]))),
                 norm_region=draw(st.sampled_from(["ACROSS_CHANNELS", "WITHIN_CHANNEL"])))
    scale = draw(st.sampled_from([1.0, 30.0]))
    return attrs, normal(draw(seeds), shape, scale)


# ACROSS_CHANNELS is defined by Caffe's float32 running sum (add the entering square, subtract
# the leaving one), which the reference reproduces in the input's dtype: with large inputs its
# cancellation error is part of the semantics, so the oracle is the reference run in float32.
@SETTINGS
@given(lrn_cases())
def test_lrn(case):
    attrs, x = case
    check("LRN", attrs, [x], ref_dtype=np.float32)


def test_lrn_alexnet():
    attrs = dict(local_size=5, alpha=fval(1e-4), beta=0.75, norm_region="ACROSS_CHANNELS")
    check("LRN", attrs, [normal(13, (2, 96, 55, 55), 20.0)], threads=(1, 3, 8))
    attrs = dict(local_size=3, alpha=fval(5e-5), beta=0.75, norm_region="WITHIN_CHANNEL")
    check("LRN", attrs, [normal(14, (1, 32, 24, 24), 20.0)], threads=(1, 3, 8))


# -- malformed bundles fail to load, naming the op -------------------------------------------------
X = (2, 6, 9, 8)
CONV = dict(num_output=4, kernel=(3, 3), pad=(1, 1), group=2)
CONV_W = [np.ones((4, 3, 3, 3)), np.ones(4)]
DECONV = dict(num_output=4, kernel=(3, 3), stride=(2, 2), group=2)
DECONV_W = [np.ones((6, 2, 3, 3)), np.ones(4)]
IP = dict(num_output=5)
IP_W = [np.ones((5, 432)), np.ones(5)]
POOL = dict(method="MAX", kernel=(3, 3), stride=(2, 2), pad=(1, 1))
LRN = dict(local_size=5)
BAD_CASES = [
    ("Convolution", CONV, [X], CONV_W, dict(group=4), None, "group"),
    ("Convolution", CONV, [X], CONV_W, dict(group=0), None, "group"),
    ("Convolution", CONV, [X], CONV_W, dict(kernel=(0, 3)), None, "kernel"),
    ("Convolution", CONV, [X], CONV_W, dict(kernel=(3,)), None, "kernel"),
    ("Convolution", CONV, [X], CONV_W, dict(kernel=None), None, "required"),
    ("Convolution", CONV, [X], CONV_W, dict(stride=(0, 1)), None, "stride"),
    ("Convolution", CONV, [X], CONV_W, dict(dilation=(1, -1)), None, "dilation"),
    ("Convolution", CONV, [X], CONV_W, dict(pad=(-1, 1)), None, "pad"),
    ("Convolution", CONV, [X], CONV_W, dict(pad=(2, 1)), None, "output"),
    ("Convolution", CONV, [X], CONV_W, dict(kernel=(3, 2**40)), None, "kernel"),
    ("Convolution", CONV, [X], CONV_W, dict(pad=(0, 0), kernel=(12, 3)), None, "fit"),
    ("Convolution", CONV, [X], CONV_W, dict(num_output=6), None, None),
    ("Convolution", CONV, [X], CONV_W, dict(bias_term=False), None, "weight"),
    ("Convolution", CONV, [X], CONV_W, dict(bias_term=2), None, "0 or 1"),
    ("Convolution", CONV, [X], CONV_W, None, [np.ones((4, 6, 3, 3)), np.ones(4)], "weight"),
    ("Convolution", CONV, [X], CONV_W, None, [np.ones((4, 3, 3, 3)), np.ones(3)], "bias"),
    ("Convolution", CONV, [X], CONV_W, None, [np.ones((4, 3, 3, 3))], "weight"),
    ("Deconvolution", DECONV, [X], DECONV_W, dict(group=3), None, "group"),
    ("Deconvolution", DECONV, [X], DECONV_W, dict(stride=(1, 2)), None, "output"),
    ("Deconvolution", DECONV, [X], DECONV_W, dict(pad=(10, 0)), None, None),
    ("Deconvolution", DECONV, [X], DECONV_W, dict(kernel=(3, -3)), None, "kernel"),
    ("Deconvolution", DECONV, [X], DECONV_W, None, [np.ones((4, 2, 3, 3)), np.ones(4)], "weight"),
    ("InnerProduct", IP, [X], IP_W, dict(axis=4), None, "axis"),
    ("InnerProduct", IP, [X], IP_W, dict(axis=-5), None, "axis"),
    ("InnerProduct", IP, [X], IP_W, dict(axis=2), None, None),
    ("InnerProduct", IP, [X], IP_W, dict(transpose=True), None, "weight"),
    ("InnerProduct", IP, [X], IP_W, dict(num_output=0), None, "num_output"),
    ("InnerProduct", IP, [X], IP_W, dict(num_output=None), None, "required"),
    ("InnerProduct", IP, [X], IP_W, None, [np.ones((5, 431)), np.ones(5)], "weight"),
    ("Pooling", POOL, [X], (), dict(method="STOCHASTIC"), None, "method"),
    ("Pooling", POOL, [X], (), dict(round_mode="UP"), None, "round_mode"),
    ("Pooling", POOL, [X], (), dict(pad=(3, 1)), None, "smaller than the kernel"),
    ("Pooling", POOL, [X], (), dict(stride=(0, 2)), None, "stride"),
    ("Pooling", POOL, [X], (), dict(kernel=None), None, "required"),
    ("Pooling", POOL, [X], (), dict(kernel=(12, 3), pad=(0, 0)), None, "fit"),
    ("Pooling", POOL, [X], (), dict(global_pooling=True), None, "global"),
    ("Pooling", POOL, [X], (), dict(round_mode="FLOOR", pad=(0, 0)), None, "output"),
    ("LRN", LRN, [X], (), dict(local_size=4), None, "odd"),
    ("LRN", LRN, [X], (), dict(local_size=-1), None, "odd"),
    ("LRN", LRN, [X], (), dict(norm_region="EVERYWHERE"), None, "norm_region"),
    ("LRN", LRN, [X], (), dict(alpha="x"), None, "alpha"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CASES)])
def test_malformed_bundle_fails_in_prepare(case):
    op, attrs, shapes, weights, new_attrs, new_weights, match = case
    expect_invalid_bundle(op, attrs, shapes, weights, 1, new_attrs, new_weights, match)


# -- differential validation: C loads a node iff the IR accepts it with the declared shapes ------
def _ir_accepts(g, node, attrs):
    from edgebrew.errors import EdgebrewError
    from edgebrew.ir import Node
    probe = Node(node.name, node.op_type, node.inputs, node.outputs, dict(attrs), node.weights)
    in_shapes = [g.shapes[t] for t in node.inputs]
    try:
        probe.attrs = probe.op.normalize_attrs(probe.name, probe.attrs)
        if probe.op.num_weights(probe) != len(node.weights):
            return False
        outs = probe.op.infer_shapes(probe, in_shapes)
        wants = probe.op.weight_shapes(probe, in_shapes)
    except (EdgebrewError, ValueError, IndexError, TypeError, ZeroDivisionError):
        return False
    if [tuple(s) for s in outs] != [g.shapes[t] for t in node.outputs]:
        return False
    return all(tuple(g.initializers[w].shape) == tuple(s) for w, s in zip(node.weights, wants))


small = st.integers(-1, 4)
pairs = st.tuples(small, small)
ATTR_SPACE = {
    "Convolution": dict(kernel=pairs, stride=pairs, pad=pairs, dilation=pairs,
                        group=st.integers(0, 4), num_output=st.integers(0, 8)),
    "Deconvolution": dict(kernel=pairs, stride=pairs, pad=pairs, dilation=pairs,
                          group=st.integers(0, 4), num_output=st.integers(0, 8)),
    "InnerProduct": dict(axis=st.integers(-5, 4), transpose=st.booleans(),
                         num_output=st.integers(0, 6)),
    "Pooling": dict(kernel=pairs, stride=pairs, pad=pairs, global_pooling=st.booleans(),
                    method=st.sampled_from(["MAX", "AVE", "STOCHASTIC"]),
                    round_mode=st.sampled_from(["CEIL", "FLOOR"])),
    "LRN": dict(local_size=st.integers(-1, 8),
                norm_region=st.sampled_from(["ACROSS_CHANNELS", "WITHIN_CHANNEL", "X"])),
}
ATTR_BASE = {
    "Convolution": (dict(num_output=4, kernel=(3, 2), group=2), [(1, 4, 5, 6)],
                    [np.ones((4, 2, 3, 2)), np.ones(4)]),
    "Deconvolution": (dict(num_output=4, kernel=(3, 2), group=2), [(1, 4, 5, 6)],
                      [np.ones((4, 2, 3, 2)), np.ones(4)]),
    "InnerProduct": (dict(num_output=3, axis=1), [(2, 4, 3)], [np.ones((3, 12)), np.ones(3)]),
    "Pooling": (dict(method="MAX", kernel=(2, 3), stride=(2, 2)), [(1, 2, 5, 6)], ()),
    "LRN": (dict(local_size=3), [(1, 4, 5, 6)], ()),
}


@settings(max_examples=150, deadline=None)
@given(op=st.sampled_from(sorted(ATTR_SPACE)), data=st.data())
def test_c_validation_matches_the_ir(op, data):
    """Random (often invalid) attributes on a node whose shapes were declared for valid ones:
    the C runtime loads it exactly when the IR accepts it, and then computes what the
    reference computes."""
    from edgebrew.bundle import Bundle
    from edgebrew.errors import EdgebrewError
    from edgebrew.runtime import Session
    attrs, shapes, weights = ATTR_BASE[op]
    g = one_op_graph(op, attrs, shapes, [f32(w) for w in weights])
    node = g.nodes[0]
    new = {k: data.draw(s) for k, s in ATTR_SPACE[op].items() if data.draw(st.booleans())}
    attrs2 = dict(attrs, **new)
    accepted = _ir_accepts(g, node, attrs2)
    node.attrs = dict(attrs2)
    try:
        s = Session(Bundle(g))
    except EdgebrewError as e:
        assert not accepted, f"{op} {attrs2}: valid, yet the C runtime refused it: {e}"
        assert "EB_ERR_INVALID_BUNDLE" in str(e), str(e)
        return
    assert accepted, f"{op} {attrs2}: the IR rejects it, yet the C runtime loaded it"
    inputs = [normal(0, sh) for sh in shapes]
    with s:
        got = s.run({f"in{i}": x for i, x in enumerate(inputs)})
    (ref,) = run_op(op, attrs2, inputs, [f32(w) for w in weights], dtype=np.float64)
    assert_close(got["out0"], ref, f"{op} {attrs2}")
