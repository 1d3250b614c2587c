"""The C runtime's int8 kernels (edgebrew/kernels_c/src/ops/int8/) against the integer reference
(edgebrew/quant/int8_reference.py, run by edgebrew.reference.run), bit for bit.

Every case is a small graph: float32 inputs -> Quantize -> the int8 op -> Dequantize -> float32
outputs, built by hand (int8 activations in graph.dtypes with per-tensor QuantParams, int8
per-channel weights, int32 biases), run by the C runtime with 1 and 3 threads and compared with
np.array_equal. Also: malformed quantization and dtype mismatches are refused at load with a
message, and float16 weights give exactly the float32 result of the same weights widened.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebrew import reference
from edgebrew.errors import EdgebrewError
from edgebrew.ir import Graph, Node, TensorInfo
from edgebrew.ir.quant_params import QuantParams

from helpers import c_runtime_available

pytestmark = pytest.mark.skipif(not c_runtime_available(),
                                reason="the cffi extension edgebrew._libedgebrew is not built")

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
I8 = np.dtype(np.int8)


def _run_c(graph, feeds, threads):
    from edgebrew.bundle import Bundle
    from edgebrew.runtime import Session
    with Session(Bundle(graph).to_bytes(), threads=threads) as s:
        return s.run(feeds)


def int8_graph(op_type, attrs, in_shapes, in_q, out_q, weights=None, wq=None, n_outputs=1,
               ret_node=False):
    """x_i (float) -> Quantize -> xq_i -> op -> yq_j -> Dequantize -> y_j (float)."""
    weights = weights or {}
    n_in = len(in_shapes)
    nodes = [Node(f"quant{i}", "Quantize", [f"x{i}"], [f"xq{i}"], {}, []) for i in range(n_in)]
    op = Node("op", op_type, [f"xq{i}" for i in range(n_in)],
              [f"yq{j}" for j in range(n_outputs)], dict(attrs), list(weights))
    nodes.append(op)
    nodes += [Node(f"dequant{j}", "Dequantize", [f"yq{j}"], [f"y{j}"], {}, [])
              for j in range(n_outputs)]
    g = Graph("int8_test", [TensorInfo(f"x{i}", tuple(s)) for i, s in enumerate(in_shapes)],
              nodes, [f"y{j}" for j in range(n_outputs)], dict(weights))
    out_q = out_q if isinstance(out_q, list) else [out_q] * n_outputs
    for i in range(n_in):
        g.dtypes[f"xq{i}"] = I8
        g.quant[f"xq{i}"] = QuantParams.per_tensor(*in_q[i])
    for j in range(n_outputs):
        g.dtypes[f"yq{j}"] = I8
        g.quant[f"yq{j}"] = QuantParams.per_tensor(*out_q[j])
    for name, q in (wq or {}).items():
        g.quant[name] = q
    g.infer_shapes()
    return (g, op) if ret_node else g


def grid_input(rng, shape, scale, zp, spread=1.2):
    """Floats around the int8 grid of (scale, zp): grid points, ties (half steps) and values
    past both ends (saturation)."""
    q = rng.integers(int(-128 * spread), int(128 * spread), size=shape)
    frac = rng.choice(np.array([0.0, 0.5, -0.5, 0.25, 0.49]), size=shape)
    return ((q - zp + frac) * np.float32(scale)).astype(np.float32)


def check(graph, feeds, threads=(1, 3)):
    want = reference.run(graph, feeds)
    for t in threads:
        got = _run_c(graph, feeds, t)
        for name in graph.output_names:
            assert got[name].shape == want[name].shape, (name, got[name].shape, want[name].shape)
            assert np.array_equal(got[name], want[name]), (
                f"{name}, threads={t}: {np.count_nonzero(got[name] != want[name])} of "
                f"{want[name].size} differ; max |diff| "
                f"{np.max(np.abs(got[name] - want[name]))}")
    return want


# scales: arbitrary ones and powers of two (multipliers exactly 2^k: m0 = 2^30, ties in the
# rounding shift)
scales = st.one_of(st.floats(0.0009765625, 0.5, width=32),
                   st.sampled_from([2.0 ** -k for k in range(1, 10)]))
zps = st.integers(-128, 127)
acts = st.sampled_from([None, "ReLU", "Clip"])


def act_attrs(act, rng):
    if act == "ReLU":
        return {"activation": "ReLU", "negative_slope": 0.0}
    if act == "Clip":
        lo = float(rng.uniform(-2, 0.5))
        return {"activation": "Clip", "clip_min": lo, "clip_max": lo + float(rng.uniform(0, 3))}
    return {}


def conv_weights(rng, m, k_shape, s_in, s_out, ratio_pow2=False):
    w = rng.integers(-127, 128, size=(m, *k_shape)).astype(np.int8)
    if ratio_pow2:   # s_in * s_w / s_out a power of two: exact-tie requantization
        sw = (s_out / s_in * 2.0 ** -rng.integers(4, 12, size=m)).astype(np.float32)
    else:
        sw = rng.uniform(0.2, 2.0, size=m).astype(np.float32) * np.float32(s_out / s_in / 64)
    sw = np.maximum(sw, np.float32(1e-30))
    return w, QuantParams(sw, np.zeros(m, np.int64), axis=0)


# ---- Quantize / Dequantize ---------------------------------------------------------------------

@SETTINGS
@given(scale=scales, zp=zps, seed=st.integers(0, 2 ** 31 - 1))
def test_quantize_dequantize(scale, zp, seed):
    rng = np.random.default_rng(seed)
    x = grid_input(rng, (2, 3, 5, 7), scale, zp, spread=1.5)
    x.ravel()[:4] = [np.nan, np.inf, -np.inf, -0.0]
    g = int8_graph("ReLU", {}, [x.shape], [(scale, zp)], (scale, zp))
    g.nodes[1] = Node("op", "Dropout", ["xq0"], ["yq0"], {}, [])
    g.infer_shapes()
    check(g, {"x0": x})


# ---- Convolution -------------------------------------------------------------------------------

@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2 ** 31 - 1))
def test_convolution(data, seed):
    rng = np.random.default_rng(seed)
    group = data.draw(st.sampled_from([1, 2, "dw"]), label="group")
    cg = data.draw(st.integers(1, 4), label="cg")
    c = cg * 2 if group == 2 else (data.draw(st.integers(1, 5)) if group == "dw" else cg)
    g_ = c if group == "dw" else group
    m = g_ * data.draw(st.integers(1, 3), label="mg")
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2))
    ph, pw = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))
    dh, dw = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    h = data.draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 9))
    w = data.draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 9))
    n = data.draw(st.integers(1, 2))
    s_in, z_in, s_out, z_out = (data.draw(scales), data.draw(zps), data.draw(scales),
                                data.draw(zps))
    bias = data.draw(st.booleans())
    act = data.draw(acts)
    W, wq = conv_weights(rng, m, (c // g_, kh, kw), s_in, s_out,
                         ratio_pow2=data.draw(st.booleans()))
    weights = {"w": W}
    if bias:
        weights["b"] = rng.integers(-20000, 20000, size=m).astype(np.int32)
    attrs = dict(num_output=m, kernel=(kh, kw), stride=(sh, sw), pad=(ph, pw),
                 dilation=(dh, dw), group=g_, bias_term=bias, **act_attrs(act, rng))
    g = int8_graph("Convolution", attrs, [(n, c, h, w)], [(s_in, z_in)], (s_out, z_out),
                   weights, {"w": wq})
    check(g, {"x0": grid_input(rng, (n, c, h, w), s_in, z_in)})


def test_convolution_saturates_and_larger_gemm():
    rng = np.random.default_rng(3)
    c, m = 24, 70       # more than one 64-row GEMM block, several pixel tiles
    W, wq = conv_weights(rng, m, (c, 3, 3), 0.05, 0.01)
    g = int8_graph("Convolution", dict(num_output=m, kernel=(3, 3), stride=(1, 1), pad=(1, 1),
                                       dilation=(1, 1), group=1, bias_term=False),
                   [(1, c, 20, 23)], [(0.05, 10)], (0.01, -3), {"w": W}, {"w": wq})
    want = check(g, {"x0": grid_input(rng, (1, c, 20, 23), 0.05, 10)})
    q = np.round(want["y0"] / np.float32(0.01)) - 3
    assert (q == 127).any() and (q == -128).any()   # saturation on both ends was exercised


@pytest.mark.parametrize("c,m,k,stride,pad,group,n,h,w", [
    (33, 40, 1, 1, 0, 1, 2, 17, 19),    # 1x1 stride 1: packed straight from the input, odd k
    (64, 72, 1, 2, 0, 1, 1, 15, 16),    # 1x1 stride 2: im2col
    (150, 20, 3, 1, 1, 1, 2, 9, 11),    # deep k: several pixel tiles, a partial last one
    (48, 96, 3, 1, 1, 2, 1, 14, 14),    # groups, channel blocks, full micro-tiles
])
def test_convolution_packed_gemm_shapes(c, m, k, stride, pad, group, n, h, w):
    """Shapes that reach the packed GEMM's full micro-tiles and every remainder (rows, pixels,
    an odd depth), its pixel tiles and output-channel blocks, with 1, 2 and 3 threads."""
    rng = np.random.default_rng(c * m + k)
    W, wq = conv_weights(rng, m, (c // group, k, k), 0.04, 0.03)
    b = rng.integers(-20000, 20000, size=m).astype(np.int32)
    g = int8_graph("Convolution", dict(num_output=m, kernel=(k, k), stride=(stride, stride),
                                       pad=(pad, pad), dilation=(1, 1), group=group,
                                       bias_term=True, activation="ReLU"),
                   [(n, c, h, w)], [(0.04, -7)], (0.03, -20), {"w": W, "b": b}, {"w": wq})
    check(g, {"x0": grid_input(rng, (n, c, h, w), 0.04, -7)}, threads=(1, 2, 3))


@pytest.mark.parametrize("c,m,k,stride,pad,group,n,h,w,z_in", [
    (35, 13, 1, 1, 0, 1, 1, 9, 7, -128),   # direct 1x1, k % 4 == 3, partial rows and panel
    (7, 24, 3, 1, 2, 1, 2, 10, 13, 127),   # k % 4 == 3, wide padding at the top zero point
    (6, 18, 3, 2, 1, 3, 1, 16, 16, 100),   # groups, k % 4 == 2, stride 2
    (300, 136, 1, 1, 0, 1, 1, 8, 8, -50),  # many channels: three channel blocks, full panels
    (5, 9, 3, 1, 1, 1, 1, 33, 31, 0),      # k % 4 == 1, several 32-pixel panels + a tail
])
def test_convolution_u8_gemm_shapes(c, m, k, stride, pad, group, n, h, w, z_in):
    """The u8 x s8 GEMM (x + 128 against the weights, minus (128 + zp) sum w per channel; the
    path of CPUs with 8-bit dot products): depths that are not multiples of 4, zero-point
    padding, extreme zero points, groups, partial row blocks and pixel panels."""
    rng = np.random.default_rng(c * m + k + h)
    W, wq = conv_weights(rng, m, (c // group, k, k), 0.04, 0.03)
    b = rng.integers(-20000, 20000, size=m).astype(np.int32)
    g = int8_graph("Convolution", dict(num_output=m, kernel=(k, k), stride=(stride, stride),
                                       pad=(pad, pad), dilation=(1, 1), group=group,
                                       bias_term=True),
                   [(n, c, h, w)], [(0.04, z_in)], (0.03, -20), {"w": W, "b": b}, {"w": wq})
    check(g, {"x0": grid_input(rng, (n, c, h, w), 0.04, z_in)}, threads=(1, 2))


@pytest.mark.parametrize("z_in", [-128, 127])
def test_convolution_accumulator_at_the_bound(z_in):
    """sum |w| * 255 just under 2^31 (the largest the load accepts), inputs at the far end of
    the zero point: the int32 sums (and the u8 path's raw sums and corrections) reach +-2^31."""
    k = 66000   # 66000 * 127 * 255 = 2137410000 < 2^31
    W = np.stack([np.full(k, 127), np.full(k, -127),
                  np.where(np.arange(k) % 2 == 0, 127, -127)]).astype(np.int8)
    W = W.reshape(3, k, 1, 1)
    s_in, s_out = 1.0, 1.0
    wq = QuantParams(np.full(3, 2e-8, np.float32), np.zeros(3, np.int64), 0)
    g = int8_graph("Convolution", dict(num_output=3, kernel=(1, 1), stride=(1, 1), pad=(0, 0),
                                       dilation=(1, 1), group=1, bias_term=False),
                   [(1, k, 2, 3)], [(s_in, z_in)], (s_out, 0), {"w": W}, {"w": wq})
    far = -128 if z_in == 127 else 127
    q = np.full((1, k, 2, 3), far)
    q[0, :, 1, 2] = np.random.default_rng(5).integers(-128, 128, size=k)
    want = check(g, {"x0": ((q - z_in) * s_in).astype(np.float32)}, threads=(1, 2))
    # |acc| = 255 * 127 * k = 2137410000 on channels 0 and 1: 42.7 after the 2e-8 multiplier
    assert (np.abs(want["y0"][0, :2, 0, 0]) == 43).all()


@pytest.mark.parametrize("c,mult,k,stride,pad,dil,h,w,big_m", [
    (5, 1, (3, 3), (1, 1), (1, 1), (1, 1), 11, 37, False),  # 3x3 main loop: 2 blocks + a tail
    (4, 1, (3, 3), (2, 2), (1, 1), (1, 1), 23, 70, False),  # stride 2, vector staging + tail
    (3, 1, (3, 3), (2, 2), (0, 1), (1, 1), 9, 33, True),    # stride 2, odd width, M > 1
    (3, 2, (3, 3), (1, 1), (1, 1), (1, 1), 7, 7, False),    # channel multiplier 2, 7x7
    (2, 3, (3, 3), (1, 2), (2, 1), (2, 2), 12, 19, False),  # dilation, multiplier 3
    (3, 1, (5, 5), (1, 1), (2, 2), (1, 1), 6, 17, True),    # 5x5: the generic pair loop
    (2, 1, (2, 4), (1, 1), (0, 1), (1, 1), 5, 16, False),   # an even tap count, exact block
    (2, 1, (3, 3), (3, 3), (1, 1), (1, 1), 10, 26, False),  # stride 3: phase staging
    (2, 1, (9, 9), (1, 1), (4, 4), (1, 1), 9, 12, False),   # > 64 taps: tap by tap
    (6, 1, (3, 3), (1, 1), (1, 1), (1, 1), 1, 3, False),    # a single narrow row
])
def test_convolution_depthwise_shapes(c, mult, k, stride, pad, dil, h, w, big_m):
    """The depthwise fast path (kernel table dwconv_s8_*): its 16-pixel blocks and row tails,
    borders, strides (the phase staging), dilation, channel multipliers > 1 (num_output =
    mult * group), other kernel sizes, and multipliers above 1 (the saturating left shift of
    requant_s32), at 1, 2 and 3 threads."""
    rng = np.random.default_rng(c * 100 + k[0] * 10 + stride[0] + h)
    m, s_in, s_out = c * mult, 0.05, 0.02
    W = rng.integers(-127, 128, size=(m, 1, *k)).astype(np.int8)
    ratio = rng.uniform(1.5, 6.0, size=m) if big_m else rng.uniform(0.2, 2.0, size=m) / 64
    wq = QuantParams((ratio * s_out / s_in).astype(np.float32), np.zeros(m, np.int64), axis=0)
    b = rng.integers(-20000, 20000, size=m).astype(np.int32)
    g = int8_graph("Convolution", dict(num_output=m, kernel=k, stride=stride, pad=pad,
                                       dilation=dil, group=c, bias_term=True),
                   [(2, c, h, w)], [(s_in, 9)], (s_out, -4), {"w": W, "b": b}, {"w": wq})
    want = check(g, {"x0": grid_input(rng, (2, c, h, w), s_in, 9)}, threads=(1, 2, 3))
    if big_m:   # saturation was exercised
        q = np.round(want["y0"] / np.float32(s_out)) - 4
        assert (q == 127).any() and (q == -128).any()


def test_convolution_accumulator_overflow_is_refused():
    k = 7500   # 7500 * 9 * 127 * 255 > 2^31
    W = np.full((2, k, 3, 3), 127, np.int8)
    g = int8_graph("Convolution", dict(num_output=2, kernel=(3, 3), stride=(1, 1), pad=(0, 0),
                                       dilation=(1, 1), group=1, bias_term=False),
                   [(1, k, 3, 3)], [(0.1, 0)], (0.1, 0), {"w": W},
                   {"w": QuantParams(np.full(2, 0.01, np.float32), np.zeros(2, np.int64), 0)})
    with pytest.raises(EdgebrewError, match="overflow the int32 accumulator"):
        _run_c(g, {"x0": np.zeros((1, k, 3, 3), np.float32)}, 1)


# ---- InnerProduct ------------------------------------------------------------------------------

@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2 ** 31 - 1))
def test_inner_product(data, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=2, max_size=4)))
    axis = data.draw(st.integers(1, len(shape) - 1))
    nout = data.draw(st.integers(1, 40))
    k = int(np.prod(shape[axis:]))
    s_in, z_in, s_out, z_out = (data.draw(scales), data.draw(zps), data.draw(scales),
                                data.draw(zps))
    bias = data.draw(st.booleans())
    W, wq = conv_weights(rng, nout, (k,), s_in, s_out, ratio_pow2=data.draw(st.booleans()))
    weights = {"w": W}
    if bias:
        weights["b"] = rng.integers(-5000, 5000, size=nout).astype(np.int32)
    attrs = dict(num_output=nout, axis=axis, transpose=False, bias_term=bias,
                 **act_attrs(data.draw(acts), rng))
    g = int8_graph("InnerProduct", attrs, [shape], [(s_in, z_in)], (s_out, z_out), weights,
                   {"w": wq})
    check(g, {"x0": grid_input(rng, shape, s_in, z_in)})


# ---- Pooling -----------------------------------------------------------------------------------

@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2 ** 31 - 1))
def test_pooling(data, seed):
    rng = np.random.default_rng(seed)
    method = data.draw(st.sampled_from(["MAX", "AVE"]))
    glob = data.draw(st.booleans())
    h, w = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    attrs = {"method": method, "global_pooling": glob}
    if not glob:
        kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
        ph = data.draw(st.integers(0, kh - 1))
        pw = data.draw(st.integers(0, kw - 1))
        h, w = max(h, kh - 2 * ph), max(w, kw - 2 * pw)
        attrs.update(kernel=(kh, kw), stride=(data.draw(st.integers(1, 3)),
                                              data.draw(st.integers(1, 3))), pad=(ph, pw))
    s, z = data.draw(scales), data.draw(zps)
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), h, w)
    g = int8_graph("Pooling", attrs, [shape], [(s, z)], (s, z))
    check(g, {"x0": grid_input(rng, shape, s, z)})


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("attrs,h,w", [
    ({"global_pooling": True}, 7, 7),                                      # the global fast path
    ({"global_pooling": True}, 1, 45),
    ({"kernel": (3, 3), "stride": (2, 2), "pad": (0, 0)}, 14, 40),         # ceil mode: hangs off
    ({"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1)}, 13, 37),         # padded, hangs off
    ({"kernel": (2, 2), "stride": (2, 2), "pad": (0, 0)}, 9, 33),
    ({"kernel": (4, 3), "stride": (3, 1), "pad": (2, 1)}, 11, 20),         # pad-only windows
    ({"kernel": (3, 5), "stride": (1, 2), "pad": (0, 0), "global_pooling": False}, 5, 5),
])
def test_pooling_shapes(method, attrs, h, w):
    """Pooling's global path and row-by-row path: ceil-mode windows that hang off the input,
    padding, windows wholly in the padding, at 1, 2 and 3 threads."""
    rng = np.random.default_rng(h * w)
    s, z = 0.07, -11
    shape = (2, 3, h, w)
    g = int8_graph("Pooling", {"method": method, **attrs}, [shape], [(s, z)], (s, z))
    check(g, {"x0": grid_input(rng, shape, s, z)}, threads=(1, 2, 3))


# ---- Eltwise -----------------------------------------------------------------------------------

@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2 ** 31 - 1))
def test_eltwise(data, seed):
    rng = np.random.default_rng(seed)
    n_in = data.draw(st.integers(2, 3))
    op = data.draw(st.sampled_from(["SUM", "MAX"]))
    attrs = {"operation": op, **act_attrs(data.draw(acts), rng)}
    if op == "SUM" and data.draw(st.booleans()):
        attrs["coeff"] = [data.draw(st.sampled_from([1.0, -1.0, 0.5, -2.5, 0.0, 0.3]))
                          for _ in range(n_in)]
    shape = (1, data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6)), 5)
    qs = [(data.draw(scales), data.draw(zps)) for _ in range(n_in)]
    if data.draw(st.booleans()):
        qs[1] = qs[0]
    qo = (data.draw(scales), data.draw(zps))
    if op == "MAX":   # rescale multipliers s_i / s_out must stay below 2^30
        qo = (max(qo[0], max(s for s, _ in qs) / 1000), qo[1])
    g = int8_graph("Eltwise", attrs, [shape] * n_in, qs, qo)
    check(g, {f"x{i}": grid_input(rng, shape, *qs[i]) for i in range(n_in)})


# ---- Concat ------------------------------------------------------------------------------------

@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2 ** 31 - 1))
def test_concat_mixed_grids(data, seed):
    rng = np.random.default_rng(seed)
    n_in = data.draw(st.integers(1, 3))
    axis = data.draw(st.integers(0, 3))
    base = [data.draw(st.integers(1, 2)), 2, 3, 4]
    shapes = []
    for _ in range(n_in):
        s = list(base)
        s[axis] = data.draw(st.integers(1, 3))
        shapes.append(tuple(s))
    qo = (data.draw(scales), data.draw(zps))
    qs = [qo if data.draw(st.booleans()) else (data.draw(scales), data.draw(zps))
          for _ in range(n_in)]
    qs = [(max(s, qo[0] / 1000), z) for s, z in qs]
    g = int8_graph("Concat", {"axis": axis}, shapes, qs, qo)
    check(g, {f"x{i}": grid_input(rng, shapes[i], *qs[i]) for i in range(n_in)})


def test_concat_zero_copy_placement():
    """Batch-1 channel Concat whose inputs the planner lets their producers write in place."""
    from edgebrew.bundle import Bundle
    rng = np.random.default_rng(5)
    shapes = [(1, 64, 2, 2), (1, 64, 2, 2)]
    q = (0.03, 4)
    g = int8_graph("Concat", {"axis": 1}, shapes, [q, q], q)
    check(g, {f"x{i}": grid_input(rng, shapes[i], *q) for i in range(2)})
    Bundle(g).to_bytes()


# ---- ReLU and the pass-through ops --------------------------------------------------------------

@SETTINGS
@given(s=scales, z=zps, seed=st.integers(0, 2 ** 31 - 1))
def test_relu_and_pass_through(s, z, seed):
    rng = np.random.default_rng(seed)
    shape = (2, 6, 3, 4)
    x = grid_input(rng, shape, s, z)
    q = (s, z)
    for op, attrs, n_out in [("ReLU", {"negative_slope": 0.0}, 1), ("Dropout", {}, 1),
                             ("Flatten", {"axis": 1}, 1),
                             ("Reshape", {"shape": [0, -1, 4]}, 1),
                             ("Split", {}, 2),
                             ("Slice", {"axis": 1, "slice_point": [1, 4]}, 3)]:
        g = int8_graph(op, attrs, [shape], [q], q, n_outputs=n_out)
        check(g, {"x0": x})


def test_chain_of_int8_ops():
    """Conv -> ReLU -> Pool -> InnerProduct in int8 between one Quantize and one Dequantize."""
    rng = np.random.default_rng(11)
    qx, q1, q2 = (0.02, -3), (0.05, -20), (0.1, 7)
    W1, wq1 = conv_weights(rng, 8, (3, 3, 3), qx[0], q1[0])
    W2, wq2 = conv_weights(rng, 10, (8 * 4 * 4,), q1[0], q2[0])
    nodes = [Node("quant", "Quantize", ["x"], ["a"], {}, []),
             Node("conv", "Convolution", ["a"], ["b"],
                  dict(num_output=8, kernel=(3, 3), stride=(1, 1), pad=(1, 1), dilation=(1, 1),
                       group=1, bias_term=False), ["w1"]),
             Node("relu", "ReLU", ["b"], ["c"], {"negative_slope": 0.0}, []),
             Node("pool", "Pooling", ["c"], ["d"],
                  {"method": "MAX", "kernel": (2, 2), "stride": (2, 2)}, []),
             Node("fc", "InnerProduct", ["d"], ["e"],
                  dict(num_output=10, axis=1, transpose=False, bias_term=False), ["w2"]),
             Node("dequant", "Dequantize", ["e"], ["y"], {}, [])]
    g = Graph("chain", [TensorInfo("x", (1, 3, 8, 8))], nodes, ["y"], {"w1": W1, "w2": W2})
    for t, q in [("a", qx), ("b", q1), ("c", q1), ("d", q1), ("e", q2)]:
        g.dtypes[t] = I8
        g.quant[t] = QuantParams.per_tensor(*q)
    g.quant["w1"], g.quant["w2"] = wq1, wq2
    g.infer_shapes()
    check(g, {"x": grid_input(rng, (1, 3, 8, 8), *qx)})


# ---- refused at load ---------------------------------------------------------------------------

def _load_error(graph):
    from edgebrew.bundle import Bundle
    from edgebrew.runtime import Session
    with pytest.raises(EdgebrewError) as info:
        Session(Bundle(graph).to_bytes())
    return str(info.value)


def _relu_graph(in_q=(0.1, 0), out_q=(0.1, 0)):
    return int8_graph("ReLU", {"negative_slope": 0.0}, [(1, 2, 3, 3)], [in_q], out_q)


@pytest.mark.parametrize("scale,zp,match", [
    (0.0, 0, "must be finite and > 0"), (float("nan"), 0, "must be finite and > 0"),
    (-0.5, 0, "must be finite and > 0"), (float("inf"), 0, "must be finite and > 0"),
    (0.1, 300, "outside the int8 range"), (0.1, -129, "outside the int8 range"),
])
def test_bad_activation_quant_is_refused(scale, zp, match):
    g = _relu_graph()
    g.quant["xq0"] = QuantParams(np.array([scale], np.float32), np.array([zp], np.int64))
    msg = _load_error(g)
    assert "EB_ERR_INVALID_BUNDLE" in msg and "'xq0'" in msg and match in msg, msg


def test_missing_and_per_channel_activation_quant_is_refused():
    g = _relu_graph()
    del g.quant["xq0"]
    assert "needs quantization parameters" in _load_error(g)
    g = _relu_graph()
    g.quant["xq0"] = QuantParams(np.full(2, 0.1, np.float32), np.zeros(2, np.int64), axis=1)
    assert "per-tensor quantization" in _load_error(g)


def _conv_graph():
    rng = np.random.default_rng(1)
    W, wq = conv_weights(rng, 4, (2, 3, 3), 0.1, 0.1)
    return int8_graph("Convolution", dict(num_output=4, kernel=(3, 3), stride=(1, 1),
                                          pad=(1, 1), dilation=(1, 1), group=1,
                                          bias_term=True),
                      [(1, 2, 5, 5)], [(0.1, 0)], (0.1, 0),
                      {"w": W, "b": np.zeros(4, np.int32)}, {"w": wq})


def test_bad_weight_quant_is_refused():
    g = _conv_graph()
    g.quant["w"] = QuantParams(np.full(3, 0.01, np.float32), np.zeros(3, np.int64), axis=0)
    assert "per-channel quantization on axis 0 has 3 values" in _load_error(g)
    g = _conv_graph()
    g.quant["w"] = QuantParams(np.full(4, 0.01, np.float32), np.array([0, 1, 0, 0]), axis=0)
    assert "zero_point[1] = 1" in _load_error(g)
    g = _conv_graph()
    g.quant["w"] = QuantParams(np.array([0.01, 0.0, 0.01, 0.01], np.float32), np.zeros(4, np.int64),
                               axis=0)
    assert "scale[1]" in _load_error(g)
    g = _conv_graph()
    g.initializers["w"] = g.initializers["w"].astype(np.float32)   # float weights, int8 conv
    msg = _load_error(g)
    assert "weight 'w' must be an INT8 constant" in msg, msg
    g = _conv_graph()
    g.initializers["b"] = g.initializers["b"].astype(np.int8)
    g.quant["b"] = QuantParams.per_tensor(0.01, 0)
    assert "bias 'b' must be an INT32 constant" in _load_error(g)


def test_multiplier_too_large_is_refused():
    g = _conv_graph()
    g.quant["yq0"] = QuantParams.per_tensor(1e-30, 0)   # s_in * s_w / s_out >= 2^30
    assert "too large" in _load_error(g)


def test_int8_into_float_only_op_is_refused():
    g = int8_graph("Softmax", {"axis": 1}, [(1, 4)], [(0.1, 0)], (0.1, 0))
    msg = _load_error(g)
    assert "EB_ERR_UNSUPPORTED" in msg and "'op' (Softmax)" in msg and "no int8 kernel" in msg


def test_float_tensor_into_int8_slot_is_refused():
    # Eltwise whose second input stays float32: the int8 kernel refuses it
    g = int8_graph("Eltwise", {"operation": "SUM"}, [(1, 4), (1, 4)], [(0.1, 0), (0.1, 0)],
                   (0.1, 0))
    g.nodes[1] = Node("quant1", "ReLU", ["x1"], ["xq1"], {}, [])
    del g.dtypes["xq1"], g.quant["xq1"]
    g.infer_shapes()
    msg = _load_error(g)
    assert "'op' (Eltwise)" in msg and "'xq1' is FLOAT32" in msg, msg
    # a float op whose output is float but one input is int8 (not the first): refused too
    g = int8_graph("Eltwise", {"operation": "SUM"}, [(1, 4), (1, 4)], [(0.1, 0), (0.1, 0)],
                   (0.1, 0))
    g.nodes[0] = Node("quant0", "ReLU", ["x0"], ["xq0"], {}, [])
    del g.dtypes["xq0"], g.quant["xq0"]
    g.nodes[3] = Node("dequant0", "ReLU", ["yq0"], ["y0"], {}, [])
    del g.dtypes["yq0"], g.quant["yq0"]
    g.infer_shapes()
    msg = _load_error(g)
    assert "'op' (Eltwise)" in msg and "input 1 'xq1' is INT8" in msg, msg


def test_int32_activation_is_refused():
    g = _relu_graph()
    g.dtypes["xq0"] = np.dtype(np.int32)
    msg = _load_error(g)
    assert "EB_ERR_UNSUPPORTED" in msg and "INT32 activation" in msg, msg


def test_leaky_relu_and_prod_have_no_int8_form():
    g = int8_graph("ReLU", {"negative_slope": 0.1}, [(1, 4)], [(0.1, 0)], (0.1, 0))
    assert "negative_slope" in _load_error(g)
    g = int8_graph("Eltwise", {"operation": "PROD"}, [(1, 4)] * 2, [(0.1, 0)] * 2, (0.1, 0))
    assert "Eltwise PROD has no int8 kernel" in _load_error(g)


# ---- float16 weights ---------------------------------------------------------------------------

def _fp16_values():
    bits = np.arange(0, 1 << 16, dtype=np.uint32).astype(np.uint16)
    return bits.view(np.float16)


def test_float16_weights_widen_exactly():
    rng = np.random.default_rng(2)
    vals = _fp16_values()
    finite = vals[np.isfinite(vals)]
    # every finite half (subnormals, +-0, extremes) as InnerProduct weights over an identity
    # input picks each weight out exactly: y = W @ e_j
    k = 64
    w16 = finite[: (finite.size // k) * k].reshape(-1, k)
    from edgebrew.bundle import Bundle
    from edgebrew.runtime import Session

    def ip_graph(w):
        node = Node("fc", "InnerProduct", ["x"], ["y"],
                    dict(num_output=w.shape[0], axis=1, transpose=False, bias_term=False), ["w"])
        g = Graph("fp16", [TensorInfo("x", (k, k))], [node], ["y"], {"w": w})
        g.infer_shapes()
        return g

    eye = np.eye(k, dtype=np.float32)
    with Session(Bundle(ip_graph(w16)).to_bytes()) as s16, \
            Session(Bundle(ip_graph(w16.astype(np.float32))).to_bytes()) as s32:
        y16, y32 = s16.run({"x": eye})["y"], s32.run({"x": eye})["y"]
    assert np.array_equal(y16.view(np.uint32), y32.view(np.uint32))
    assert np.array_equal(y16.T, w16.astype(np.float32))
    # a convolution with float16 weights and bias (inf/NaN-free) matches its widened twin
    w = rng.normal(size=(5, 3, 3, 3)).astype(np.float16)
    b = rng.normal(size=5).astype(np.float16)

    def conv_graph(w, b):
        node = Node("conv", "Convolution", ["x"], ["y"],
                    dict(num_output=5, kernel=(3, 3), stride=(1, 1), pad=(1, 1),
                         dilation=(1, 1), group=1, bias_term=True), ["w", "b"])
        g = Graph("fp16c", [TensorInfo("x", (1, 3, 7, 7))], [node], ["y"], {"w": w, "b": b})
        g.infer_shapes()
        return g

    x = rng.normal(size=(1, 3, 7, 7)).astype(np.float32)
    with Session(Bundle(conv_graph(w, b)).to_bytes()) as s16, \
            Session(Bundle(conv_graph(w.astype(np.float32), b.astype(np.float32))).to_bytes()) as s32:
        assert np.array_equal(s16.run({"x": x})["y"], s32.run({"x": x})["y"])


def test_float16_special_values_widen_exactly():
    """inf and NaN halves (as a Scale op's multipliers on ones) widen to the same float32."""
    from edgebrew.bundle import Bundle
    from edgebrew.runtime import Session
    vals = _fp16_values()
    special = vals[~np.isfinite(vals)][:200]
    node = Node("scale", "Scale", ["x"], ["y"], {"axis": 1, "num_axes": 1, "bias_term": False},
                ["s"])
    g = Graph("fp16s", [TensorInfo("x", (1, special.size))], [node], ["y"], {"s": special})
    g.infer_shapes()
    with Session(Bundle(g).to_bytes()) as s:
        y = s.run({"x": np.ones((1, special.size), np.float32)})["y"]
    want = special.astype(np.float32)
    assert np.array_equal(np.isnan(y[0]), np.isnan(want))
    fin = ~np.isnan(want)
    assert np.array_equal(y[0][fin], want[fin])
