"""Convolution / Deconvolution reference against direct loops written from Caffe's definition."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import run_op


def direct_conv(x, w, b, stride, pad, dil, group):
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh = (h + 2 * pad[0] - (dil[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (wd + 2 * pad[1] - (dil[1] * (kw - 1) + 1)) // stride[1] + 1
    y = np.zeros((n, m, oh, ow))
    mg = m // group
    for b_ in range(n):
        for o in range(m):
            g = o // mg
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0
                    for ci in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                r = i * stride[0] - pad[0] + p * dil[0]
                                s = j * stride[1] - pad[1] + q * dil[1]
                                if 0 <= r < h and 0 <= s < wd:
                                    acc += x[b_, g * cg + ci, r, s] * w[o, ci, p, q]
                    y[b_, o, i, j] = acc + (b[o] if b is not None else 0)
    return y


def direct_deconv(x, w, b, m, stride, pad, dil, group):
    """Scatter form: every input pixel adds its kernel-weighted value to the output."""
    n, c, h, wd = x.shape
    _, mg, kh, kw = w.shape
    oh = stride[0] * (h - 1) + dil[0] * (kh - 1) + 1 - 2 * pad[0]
    ow = stride[1] * (wd - 1) + dil[1] * (kw - 1) + 1 - 2 * pad[1]
    y = np.zeros((n, m, oh, ow))
    cgrp = c // group
    for b_ in range(n):
        for ci in range(c):
            g = ci // cgrp
            for i in range(h):
                for j in range(wd):
                    for o in range(mg):
                        for p in range(kh):
                            for q in range(kw):
                                r = i * stride[0] - pad[0] + p * dil[0]
                                s = j * stride[1] - pad[1] + q * dil[1]
                                if 0 <= r < oh and 0 <= s < ow:
                                    y[b_, g * mg + o, r, s] += x[b_, ci, i, j] * w[ci, o, p, q]
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


geometry = st.fixed_dictionaries(dict(
    group=st.sampled_from([1, 2, 3]), cg=st.integers(1, 3), mg=st.integers(1, 3),
    kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
    ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 2), dw=st.integers(1, 2),
    h=st.integers(4, 9), w=st.integers(4, 9), bias=st.booleans(), seed=st.integers(0, 2**16)))


@settings(max_examples=40, deadline=None)
@given(geometry)
def test_convolution_matches_direct_loops(g):
    rng = np.random.default_rng(g["seed"])
    c, m = g["group"] * g["cg"], g["group"] * g["mg"]
    x = rng.standard_normal((2, c, g["h"], g["w"]))
    w = rng.standard_normal((m, g["cg"], g["kh"], g["kw"]))
    b = rng.standard_normal(m) if g["bias"] else None
    attrs = dict(num_output=m, kernel=(g["kh"], g["kw"]), stride=(g["sh"], g["sw"]),
                 pad=(g["ph"], g["pw"]), dilation=(g["dh"], g["dw"]), group=g["group"],
                 bias_term=g["bias"])
    eff_h, eff_w = g["dh"] * (g["kh"] - 1) + 1, g["dw"] * (g["kw"] - 1) + 1
    if g["h"] + 2 * g["ph"] < eff_h or g["w"] + 2 * g["pw"] < eff_w:
        return
    (y,) = run_op("Convolution", attrs, [x], [w] + ([b] if g["bias"] else []))
    want = direct_conv(x, w, b, attrs["stride"], attrs["pad"], attrs["dilation"], g["group"])
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(geometry)
def test_deconvolution_matches_scatter_loops(g):
    rng = np.random.default_rng(g["seed"])
    c, m = g["group"] * g["cg"], g["group"] * g["mg"]
    x = rng.standard_normal((1, c, g["h"] - 2, g["w"] - 2))
    w = rng.standard_normal((c, g["mg"], g["kh"], g["kw"]))
    b = rng.standard_normal(m) if g["bias"] else None
    attrs = dict(num_output=m, kernel=(g["kh"], g["kw"]), stride=(g["sh"], g["sw"]),
                 pad=(g["ph"], g["pw"]), dilation=(g["dh"], g["dw"]), group=g["group"],
                 bias_term=g["bias"])
    oh = g["sh"] * (x.shape[2] - 1) + g["dh"] * (g["kh"] - 1) + 1 - 2 * g["ph"]
    ow = g["sw"] * (x.shape[3] - 1) + g["dw"] * (g["kw"] - 1) + 1 - 2 * g["pw"]
    if oh <= 0 or ow <= 0:
        return
    (y,) = run_op("Deconvolution", attrs, [x], [w] + ([b] if g["bias"] else []))
    want = direct_deconv(x, w, b, m, attrs["stride"], attrs["pad"], attrs["dilation"], g["group"])
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)


def test_conv_group_must_divide_channels():
    from edgebrew.errors import ShapeError
    with pytest.raises(ShapeError, match="group"):
        run_op("Convolution", dict(num_output=4, kernel=(1, 1), group=3), [np.zeros((1, 4, 3, 3))],
               [np.zeros((4, 1, 1, 1)), np.zeros(4)])
