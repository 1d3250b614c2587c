"""libedgebrew's elementwise and tensor ops (kernels_c/src/ops/) against the NumPy reference.

Each op runs as a one-op bundle through the C runtime and is compared with the reference executor
computing in float64 on the same float32 inputs and weights: relative error
max|c - ref| / max|ref| <= 1e-5, and exact equality for the ops that only move or select data.
Shapes and attributes are drawn by hypothesis (negative axes, odd sizes, coefficients,
broadcasting forms). Also checked: 1 and 3 threads give bit-identical outputs on tensors big
enough to be split; the ops the memory planner may run in place give the same bits when their
output is their first input's memory; and malformed attributes or weights fail to load with
EB_ERR_INVALID_BUNDLE, naming the op, instead of running.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import (c_runtime_available, expect_invalid_bundle, one_op_graph, rel_error, run_op,
                     run_op_c)

pytestmark = pytest.mark.skipif(not c_runtime_available(),
                                reason="the C runtime (edgebrew._libedgebrew) is not built")

TOL = 1e-5
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- helpers -----------------------------------------------------------------------------------
def f32(a):
    return np.asarray(a, dtype=np.float32)


def fval(x):
    """A float32-representable Python float (so float32 and float64 attributes agree)."""
    return float(np.float32(x))


def check(op, attrs, inputs, weights=(), n_outputs=1, exact=False, tol=TOL):
    """C (1 thread) vs the float64 reference; returns the C outputs."""
    inputs = [f32(x) for x in inputs]
    weights = [f32(w) for w in weights]
    ref = run_op(op, attrs, inputs, weights, n_outputs, dtype=np.float64)
    got = run_op_c(op, attrs, inputs, weights, n_outputs, threads=1)
    assert len(got) == len(ref)
    for i, (g, r) in enumerate(zip(got, ref)):
        assert g.dtype == np.float32
        assert g.shape == r.shape, (op, attrs, i, g.shape, r.shape)
        if exact:
            np.testing.assert_array_equal(g, r, err_msg=f"{op} {attrs} output {i}")
        else:
            err = rel_error(g, r)
            assert err <= tol, f"{op} {attrs} output {i}: relative error {err:.3g}"
    return got


def rng_of(seed):
    return np.random.default_rng(seed)


seeds = st.integers(0, 2**32 - 1)
shapes = st.lists(st.integers(1, 7), min_size=1, max_size=5).map(tuple)
shapes2 = st.lists(st.integers(1, 7), min_size=2, max_size=5).map(tuple)


def normal(rng, shape, scale=1.0):
    return f32(rng.standard_normal(shape) * scale)


# -- activations -------------------------------------------------------------------------------
@SETTINGS
@given(shape=shapes, seed=seeds, slope=st.sampled_from([0.0, 0.1, -0.5, 2.0, 1e-3]))
def test_relu(shape, seed, slope):
    check("ReLU", dict(negative_slope=fval(slope)), [normal(rng_of(seed), shape, 3)])


@SETTINGS
@given(shape=shapes2.filter(lambda s: len(s) <= 4), seed=seeds, shared=st.booleans())
def test_prelu(shape, seed, shared):
    rng = rng_of(seed)
    slope = normal(rng, () if shared else (shape[1],))
    check("PReLU", dict(channel_shared=shared), [normal(rng, shape, 3)], [slope])


@SETTINGS
@given(shape=shapes, seed=seeds, alpha=st.sampled_from([1.0, 0.5, 2.5, 0.0]))
def test_elu(shape, seed, alpha):
    check("ELU", dict(alpha=fval(alpha)), [normal(rng_of(seed), shape, 3)])


@SETTINGS
@given(op=st.sampled_from(["Sigmoid", "TanH", "AbsVal", "BNLL", "Dropout"]), shape=shapes,
       seed=seeds, scale=st.sampled_from([1.0, 5.0, 30.0]))
def test_parameterless(op, shape, seed, scale):
    x = normal(rng_of(seed), shape, scale)
    if op in ("Sigmoid", "BNLL"):
        x = np.maximum(x, f32(-20))   # below, the float64 reference itself cancels
    check(op, {}, [x], exact=op in ("AbsVal", "Dropout"))


@pytest.mark.parametrize("op,attrs", [("Sigmoid", {}), ("BNLL", {}), ("ELU", {}),
                                      ("ELU", dict(alpha=0.25)), ("TanH", {})])
def test_activation_tails_elementwise(op, attrs):
    """Each value to 1e-5 of itself, tails included, where a float32 evaluation of these
    formulas cancels (Sigmoid's 0.5 tanh(0.5 x) + 0.5 is off by 1e-3 at x = -10 in float32).
    Below x = -20, and for |x| < 1e-9 in ELU, the float64 reference itself cancels (its
    digits there depend on the libm), so the sweep stops there."""
    x = f32(np.concatenate([np.linspace(-20, 60, 321), -np.logspace(-9, 1.3, 60),
                            np.logspace(-9, 1.5, 60), [0.0]]))
    (ref,) = run_op(op, attrs, [x], dtype=np.float64)
    (got,) = run_op_c(op, attrs, [x])
    bad = np.abs(got - ref) > 1e-5 * np.abs(ref) + 1e-37
    assert not bad.any(), list(zip(x[bad], got[bad], ref[bad]))[:5]


@SETTINGS
@given(shape=shapes, seed=seeds, power=st.sampled_from([1.0, 2.0, 0.5, 3.0, -1.0, 0.0, 1.7]),
       scale=st.sampled_from([1.0, 0.5, 2.0, 0.0]), shift=st.sampled_from([0.0, 0.5, 1.0]))
def test_power(shape, seed, power, scale, shift):
    if scale == 0 and shift == 0:
        shift = 1.0   # 0 ^ negative power is inf in both; keep the comparison finite
    x = f32(rng_of(seed).uniform(0.5, 2.0, shape))
    check("Power", dict(power=power, scale=scale, shift=shift), [x])


@SETTINGS
@given(shape=shapes, seed=seeds, base=st.sampled_from([-1.0, 2.0, 0.5, 10.0, 2.718]),
       scale=st.sampled_from([1.0, 0.5, -1.5]), shift=st.sampled_from([0.0, 1.0, -0.5]))
def test_exp(shape, seed, base, scale, shift):
    x = f32(rng_of(seed).uniform(-3, 3, shape))
    check("Exp", dict(base=fval(base), scale=fval(scale), shift=fval(shift)), [x])


@SETTINGS
@given(shape=shapes, seed=seeds, base=st.sampled_from([-1.0, 2.0, 0.5, 10.0]),
       scale=st.sampled_from([1.0, 0.5, 3.0]), shift=st.sampled_from([0.0, 1.0, 0.25]))
def test_log(shape, seed, base, scale, shift):
    x = f32(rng_of(seed).uniform(0.05, 5, shape))
    check("Log", dict(base=base, scale=scale, shift=shift), [x])


@SETTINGS
@given(shape=shapes, seed=seeds, th=st.floats(-2, 2, width=32))
def test_threshold(shape, seed, th):
    rng = rng_of(seed)
    x = normal(rng, shape)
    x.ravel()[:: 3] = th     # values equal to the threshold give 0
    check("Threshold", dict(threshold=float(th)), [x], exact=True)


@SETTINGS
@given(shape=shapes, seed=seeds, lo=st.floats(-2, 1, width=32), width=st.floats(-1, 3, width=32))
def test_clip(shape, seed, lo, width):
    hi = fval(lo + width)      # min > max is allowed: the result is min
    check("Clip", dict(min=float(lo), max=hi), [normal(rng_of(seed), shape, 2)], exact=True)


# -- BatchNorm, Scale, Bias, MVN, Softmax ------------------------------------------------------
@SETTINGS
@given(shape=shapes2, seed=seeds, factor=st.sampled_from([1.0, 0.0, 0.5, 999.98]),
       eps=st.sampled_from([1e-5, 1e-3, 0.0]))
def test_batch_norm(shape, seed, factor, eps):
    rng = rng_of(seed)
    c = shape[1]
    mean = normal(rng, (c,), 2) * factor
    var = f32(rng.uniform(0.2, 3, c) * max(factor, 1.0))
    if factor == 0 and eps == 0:
        eps = 1e-5    # var 0 + eps 0: a division by zero in both
    check("BatchNorm", dict(eps=eps), [normal(rng, shape, 3)], [mean, var, [factor]])


def _axis_variant(draw, n, a):
    """axis a of an n-d shape, as written positively or negatively."""
    return draw(st.sampled_from([a, a - n]))


@st.composite
def scale_bias_cases(draw, is_scale):
    shape = draw(shapes)
    n = len(shape)
    a = draw(st.integers(0, n - 1))
    axis = _axis_variant(draw, n, a)
    two = draw(st.booleans())
    bias_term = draw(st.booleans()) if is_scale else False
    attrs = dict(axis=axis)
    if two:
        k = draw(st.integers(0, n - a))
        operand_shape = shape[a:a + k]
        num_axes = draw(st.sampled_from([1, -1, 0]))   # unused with two inputs
    else:
        num_axes = draw(st.sampled_from([-1] + list(range(0, n - a + 1))))
        operand_shape = shape[a:] if num_axes == -1 else shape[a:a + num_axes]
    attrs["num_axes"] = num_axes
    if is_scale:
        attrs["bias_term"] = bias_term
    return shape, attrs, two, operand_shape, bias_term, draw(seeds)


@SETTINGS
@given(case=scale_bias_cases(True))
def test_scale(case):
    shape, attrs, two, operand_shape, bias_term, seed = case
    rng = rng_of(seed)
    x = normal(rng, shape, 2)
    operand = normal(rng, operand_shape)
    inputs = [x, operand] if two else [x]
    weights = [] if two else [operand]
    if bias_term:
        weights.append(normal(rng, operand_shape))
    check("Scale", attrs, inputs, weights)


@SETTINGS
@given(case=scale_bias_cases(False))
def test_bias(case):
    shape, attrs, two, operand_shape, _, seed = case
    rng = rng_of(seed)
    x, operand = normal(rng, shape, 2), normal(rng, operand_shape)
    check("Bias", attrs, [x, operand] if two else [x], [] if two else [operand])


@SETTINGS
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple), seed=seeds,
       nv=st.booleans(), across=st.booleans(), eps=st.sampled_from([1e-9, 1e-3]),
       offset=st.sampled_from([0.0, 3.0]))
def test_mvn(shape, seed, nv, across, eps, offset):
    x = normal(rng_of(seed), shape, 2) + f32(offset)
    check("MVN", dict(normalize_variance=nv, across_channels=across, eps=eps), [x])


@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data(), scale=st.sampled_from([1.0, 10.0]))
def test_softmax(shape, seed, data, scale):
    n = len(shape)
    axis = data.draw(st.integers(-n, n - 1))
    check("Softmax", dict(axis=axis), [normal(rng_of(seed), shape, scale)])


def test_softmax_wide_inner():
    """More inner positions than one block of the blocked path, odd sizes."""
    x = normal(rng_of(3), (2, 5, 1031), 4)
    check("Softmax", dict(axis=1), [x])
    check("Softmax", dict(axis=-1), [x])


# -- Concat, Slice, Split ----------------------------------------------------------------------
@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data())
def test_concat(shape, seed, data):
    n = len(shape)
    a = data.draw(st.integers(0, n - 1))
    axis = data.draw(st.sampled_from([a, a - n]))
    sizes = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    rng = rng_of(seed)
    inputs = [normal(rng, shape[:a] + (s,) + shape[a + 1:]) for s in sizes]
    check("Concat", dict(axis=axis), inputs, exact=True)


@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data())
def test_slice(shape, seed, data):
    n = len(shape)
    a = data.draw(st.integers(0, n - 1))
    axis = data.draw(st.sampled_from([a, a - n]))
    x_shape = list(shape)
    if data.draw(st.booleans()):                       # explicit cut points
        x_shape[a] = data.draw(st.integers(1, 12))
        dim = x_shape[a]
        points = sorted(data.draw(st.sets(st.integers(1, dim - 1), max_size=4))) if dim > 1 \
            else []
        attrs, n_out = dict(axis=axis, slice_point=tuple(points)), len(points) + 1
    else:                                              # equal parts, one per output
        n_out = data.draw(st.integers(1, 4))
        x_shape[a] = n_out * data.draw(st.integers(1, 3))
        attrs = dict(axis=axis)
    x = normal(rng_of(seed), tuple(x_shape))
    check("Slice", attrs, [x], n_outputs=n_out, exact=True)


@SETTINGS
@given(shape=shapes, seed=seeds, n_out=st.integers(1, 4))
def test_split(shape, seed, n_out):
    check("Split", {}, [normal(rng_of(seed), shape)], n_outputs=n_out, exact=True)


# -- Eltwise -----------------------------------------------------------------------------------
@SETTINGS
@given(shape=shapes, seed=seeds, op=st.sampled_from(["SUM", "PROD", "MAX"]),
       n_in=st.integers(2, 4), data=st.data())
def test_eltwise(shape, seed, op, n_in, data):
    rng = rng_of(seed)
    if op == "MAX":   # few distinct values: many ties
        inputs = [f32(rng.integers(-3, 4, shape)) for _ in range(n_in)]
    else:
        inputs = [normal(rng, shape, 2) for _ in range(n_in)]
    attrs = dict(operation=op)
    if op == "SUM" and data.draw(st.booleans()):
        attrs["coeff"] = tuple(fval(c) for c in data.draw(
            st.lists(st.sampled_from([1.0, -1.0, 0.5, 2.0, 0.0, -0.3]), min_size=n_in,
                     max_size=n_in)))
    check("Eltwise", attrs, inputs, exact=op == "MAX")


# -- Flatten, Reshape --------------------------------------------------------------------------
@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data())
def test_flatten(shape, seed, data):
    n = len(shape)
    start = data.draw(st.integers(0, n - 1))
    end = data.draw(st.integers(max(start - 1, 0), n - 1))
    attrs = dict(axis=data.draw(st.sampled_from([start, start - n])),
                 end_axis=data.draw(st.sampled_from([end, end - n])))
    check("Flatten", attrs, [normal(rng_of(seed), shape)], exact=True)


def _factor(count, parts, rng):
    """`parts` positive ints whose product is count."""
    dims = [1] * parts
    c = count
    p = 2
    primes = []
    while p * p <= c:
        while c % p == 0:
            primes.append(p)
            c //= p
        p += 1
    if c > 1:
        primes.append(c)
    for q in primes:
        dims[int(rng.integers(parts))] *= q
    return dims


@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data())
def test_reshape(shape, seed, data):
    n = len(shape)
    rng = rng_of(seed)
    start = data.draw(st.integers(0, n))
    end = data.draw(st.integers(start, n))
    axis = data.draw(st.sampled_from([start, start - n - 1]))
    num_axes = -1 if end == n and data.draw(st.booleans()) else end - start
    span = math.prod(shape[start:end])
    room = 8 - (n - (end - start))   # the runtime's tensors have at most 8 axes
    parts = data.draw(st.integers(1 if span > 1 else 0, min(4, room)))
    dims = _factor(span, parts, rng) if parts else []
    for i in range(len(dims)):      # a 0 copies the input dim at the same position
        if start + i < n and shape[start + i] == dims[i] and rng.random() < 0.4:
            dims[i] = 0
    if dims and rng.random() < 0.5:  # one -1 is inferred
        dims[int(rng.integers(len(dims)))] = -1
    attrs = dict(shape=tuple(dims), axis=axis, num_axes=num_axes)
    check("Reshape", attrs, [normal(rng, shape)], exact=True)


# -- Crop, Permute -----------------------------------------------------------------------------
@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data())
def test_crop(shape, seed, data):
    n = len(shape)
    start = data.draw(st.integers(0, n - 1))
    axis = data.draw(st.sampled_from([start, start - n]))
    ref_shape = list(shape)
    for i in range(start, n):
        ref_shape[i] = data.draw(st.integers(1, shape[i]))
    form = data.draw(st.sampled_from(["none", "one", "each"]))
    if form == "none":
        offset = ()
    elif form == "one":
        room = min(shape[i] - ref_shape[i] for i in range(start, n))
        offset = (data.draw(st.integers(0, room)),)
    else:
        offset = tuple(data.draw(st.integers(0, shape[i] - ref_shape[i])) for i in range(start, n))
    rng = rng_of(seed)
    check("Crop", dict(axis=axis, offset=offset), [normal(rng, shape), normal(rng, ref_shape)],
          exact=True)


@SETTINGS
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=6).map(tuple), seed=seeds,
       data=st.data())
def test_permute(shape, seed, data):
    n = len(shape)
    perm = data.draw(st.permutations(range(n)))
    k = data.draw(st.integers(0, n))
    check("Permute", dict(order=tuple(perm[:k])), [normal(rng_of(seed), shape)], exact=True)


def test_permute_ssd_layout():
    """NCHW -> NHWC, the SSD heads' use."""
    x = normal(rng_of(5), (1, 24, 19, 19))
    (y,) = check("Permute", dict(order=(0, 2, 3, 1)), [x], exact=True)
    np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("order", [(2, 3, 0, 1), (3, 0, 2), (0, 3, 1, 2), (1, 3, 2, 0)])
def test_permute_tiles_with_remainders(order):
    """Gathers done in tiles along the input's last axis (35 = 2 tiles of 16 + 3)."""
    x = normal(rng_of(6), (3, 17, 5, 35))
    (y,) = check("Permute", dict(order=order), [x], exact=True)
    full = list(order) + [i for i in range(4) if i not in order]
    np.testing.assert_array_equal(y, x.transpose(full))


# -- ArgMax, Reduction -------------------------------------------------------------------------
@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data(), out_max_val=st.booleans(),
       ties=st.booleans())
def test_argmax(shape, seed, data, out_max_val, ties):
    n = len(shape)
    rng = rng_of(seed)
    x = f32(rng.integers(-2, 3, shape)) if ties else normal(rng, shape)
    attrs = dict(out_max_val=out_max_val)
    if data.draw(st.booleans()):
        a = data.draw(st.integers(0, n - 1))
        attrs["axis"] = data.draw(st.sampled_from([a, a - n]))
        attrs["top_k"] = data.draw(st.integers(1, shape[a]))
    else:
        attrs["top_k"] = data.draw(st.integers(1, math.prod(shape[1:])))
    check("ArgMax", attrs, [x], exact=True)


def test_argmax_ties_take_the_larger_index():
    x = f32([[[1, 3, 3, 2, 3]]])
    (y,) = run_op_c("ArgMax", dict(top_k=3, out_max_val=True), [x])
    np.testing.assert_array_equal(y.reshape(2, 3), [[4, 2, 1], [3, 3, 3]])


@pytest.mark.parametrize("attrs", [dict(top_k=1), dict(top_k=3, out_max_val=True),
                                   dict(axis=1, top_k=1), dict(axis=1, top_k=1, out_max_val=True),
                                   dict(axis=-1, top_k=1), dict(axis=1, top_k=2)])
def test_argmax_nan_ranks_last_and_ties(attrs):
    """NaN ranks below every number (the reference's sort puts it last); rows of only NaN
    pick the largest index; ties go to the larger index. 300 inner positions: two blocks of the
    strided top-1 path; rows of 1800: the lane path."""
    rng = rng_of(4)
    x = f32(rng.integers(-3, 4, (2, 6, 300)))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[0, :, 7] = np.nan                 # a column of NaN only
    x[1, 2, :] = np.nan                 # a row of NaN only
    check("ArgMax", attrs, [x], exact=True)


def test_argmax_large_top_k():
    x = f32(rng_of(9).integers(-50, 50, (3, 400)))
    check("ArgMax", dict(top_k=250, out_max_val=True), [x], exact=True)
    check("ArgMax", dict(top_k=400, axis=1), [x], exact=True)


@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data(),
       op=st.sampled_from(["SUM", "ASUM", "SUMSQ", "MEAN"]),
       coeff=st.sampled_from([1.0, 0.5, -2.0, 3.0]))
def test_reduction(shape, seed, data, op, coeff):
    n = len(shape)
    a = data.draw(st.integers(0, n - 1))
    axis = data.draw(st.sampled_from([a, a - n]))
    x = normal(rng_of(seed), shape) + f32(0.5)
    check("Reduction", dict(operation=op, axis=axis, coeff=coeff), [x])


# -- 1 vs 3 threads: bit-identical, on tensors big enough to be split --------------------------
BIG = (2, 16, 40, 48)


def _big_cases():
    rng = rng_of(11)
    x = normal(rng, BIG, 3)
    xp = f32(rng.uniform(0.5, 2, BIG))
    c = BIG[1]
    yield "ReLU", dict(negative_slope=0.1), [x], [], 1
    yield "PReLU", {}, [x], [normal(rng, (c,))], 1
    yield "ELU", {}, [x], [], 1
    for op in ("Sigmoid", "TanH", "AbsVal", "BNLL", "Dropout"):
        yield op, {}, [x], [], 1
    yield "Power", dict(power=1.7, scale=0.5, shift=0.25), [xp], [], 1
    yield "Exp", dict(base=2.0, scale=0.5, shift=1.0), [x], [], 1
    yield "Log", dict(base=10.0, scale=2.0, shift=0.5), [xp], [], 1
    yield "Threshold", dict(threshold=0.25), [x], [], 1
    yield "Clip", dict(min=-1.0, max=2.0), [x], [], 1
    yield "BatchNorm", {}, [x], [normal(rng, (c,)), f32(rng.uniform(.5, 2, c)), [0.7]], 1
    yield "Scale", dict(bias_term=True), [x], [normal(rng, (c,)), normal(rng, (c,))], 1
    yield "Scale", dict(axis=1, num_axes=-1), [x], [normal(rng, BIG[1:])], 1
    yield "Bias", dict(axis=-2, num_axes=2), [x], [normal(rng, BIG[2:])], 1
    yield "MVN", {}, [x], [], 1
    yield "MVN", dict(across_channels=True), [x], [], 1
    yield "Softmax", dict(axis=1), [x], [], 1
    yield "Softmax", dict(axis=-1), [x], [], 1
    yield "Concat", dict(axis=1), [x, normal(rng, (2, 5, 40, 48))], [], 1
    yield "Concat", dict(axis=3), [x, normal(rng, (2, 16, 40, 3))], [], 1
    yield "Slice", dict(axis=2, slice_point=(7, 30)), [x], [], 3
    yield "Split", {}, [x], [], 2
    yield "Eltwise", dict(operation="SUM", coeff=(0.5, -2.0, 1.0)), [x, x * 2, x + 1], [], 1
    yield "Eltwise", dict(operation="PROD"), [x, x + 1], [], 1
    yield "Eltwise", dict(operation="MAX"), [x, -x, x * 0.5], [], 1
    yield "Flatten", {}, [x], [], 1
    yield "Reshape", dict(shape=(0, -1, 48)), [x], [], 1
    yield "Crop", dict(axis=2, offset=(3, 5)), [x, normal(rng, (2, 16, 30, 40))], [], 1
    yield "Permute", dict(order=(0, 2, 3, 1)), [x], [], 1
    yield "Permute", dict(order=(3, 1)), [x], [], 1
    yield "ArgMax", dict(axis=1, top_k=3, out_max_val=True), [x], [], 1
    yield "ArgMax", dict(top_k=5), [x], [], 1
    yield "Reduction", dict(operation="SUMSQ", axis=1), [x], [], 1
    yield "Reduction", dict(operation="MEAN", axis=3), [x], [], 1


BIG_CASES = list(_big_cases())


@pytest.mark.parametrize("case", BIG_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(BIG_CASES)])
def test_threads_bit_identical(case):
    op, attrs, inputs, weights, n_out = case
    exact = op in ("Concat", "Slice", "Split", "Flatten", "Reshape", "Crop", "Permute", "ArgMax",
                   "Dropout", "AbsVal", "Threshold", "Clip")
    one = check(op, attrs, inputs, weights, n_out, exact=exact)
    three = run_op_c(op, attrs, inputs, weights, n_out, threads=3)
    for a, b in zip(one, three):
        assert a.tobytes() == b.tobytes(), f"{op} {attrs}: 1 and 3 threads differ"


# -- in place: the output in the first input's memory ------------------------------------------
def run_c_in_place(op, attrs, inputs, weights=(), threads=1, over=0):
    """Like run_op_c, with the memory plan putting out0 at input `over`'s offset."""
    from edgebrew.bundle import Bundle
    from edgebrew.optimizer.memory_planner import plan_memory
    from edgebrew.runtime import Session
    g = one_op_graph(op, attrs, [np.shape(x) for x in inputs], [f32(w) for w in weights])
    plan = plan_memory(g)
    plan.offsets["out0"] = plan.offsets[f"in{over}"]
    with Session(Bundle(g, plan=plan), threads=threads) as s:
        return s.run({f"in{i}": f32(x) for i, x in enumerate(inputs)})["out0"]


IN_PLACE_OPS = {"ReLU", "PReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp",
                "Log", "Threshold", "Clip", "Dropout", "BatchNorm", "Scale", "Bias", "Eltwise"}
IN_PLACE_CASES = [c for c in BIG_CASES if c[0] in IN_PLACE_OPS] + [
    ("Scale", dict(axis=0), [f32(np.arange(24).reshape(2, 3, 4)), f32([2.0, -1.0])], [], 1),
    ("Scale", dict(bias_term=True), [f32(np.arange(24).reshape(2, 3, 4)), f32([[1, 2, 3, 4]] * 3)],
     [f32(np.arange(12).reshape(3, 4))], 1),
    ("Bias", dict(axis=0), [f32(np.arange(6).reshape(2, 3)), f32(np.ones((2, 3)))], [], 1),
    ("ReLU", dict(negative_slope=0.5), [f32(np.arange(-7, 6))], [], 1),
]


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("case", IN_PLACE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(IN_PLACE_CASES)])
def test_in_place_same_bits(case, threads):
    op, attrs, inputs, weights, _ = case
    (separate,) = run_op_c(op, attrs, inputs, weights, threads=threads)
    in_place = run_c_in_place(op, attrs, inputs, weights, threads=threads)
    assert in_place.tobytes() == separate.tobytes(), f"{op} {attrs}: in place differs"


# -- malformed bundles fail to load, naming the op ---------------------------------------------
X = (2, 3, 4, 5)
BAD_CASES = [
    ("Slice", dict(axis=1, slice_point=(1, 2)), [X], (), 3, dict(slice_point=(2, 1)), None,
     "increasing"),
    ("Slice", dict(axis=1, slice_point=(1, 2)), [X], (), 3, dict(slice_point=(1, 3)), None,
     "no room"),
    ("Slice", dict(axis=1, slice_point=(1, 2)), [X], (), 3, dict(slice_point=(0, 2)), None, None),
    ("Slice", dict(axis=1, slice_point=(1, 2)), [X], (), 3, dict(slice_point=(1,)), None, None),
    ("Slice", dict(axis=1), [X], (), 3, dict(axis=2), None, "divide"),
    ("Slice", dict(axis=1), [X], (), 3, dict(axis=4), None, "out of range"),
    ("Permute", dict(order=(0, 2, 3, 1)), [X], (), 1, dict(order=(0, 2, 2, 1)), None, "repeats"),
    ("Permute", dict(order=(0, 2, 3, 1)), [X], (), 1, dict(order=(0, 4)), None, "axis 4"),
    ("Permute", dict(order=(0, 2, 3, 1)), [X], (), 1, dict(order=(0, -1)), None, None),
    ("Permute", dict(order=(0, 2, 3, 1)), [X], (), 1, dict(order=(0, 3, 2, 1)), None, "shape"),
    ("Crop", dict(axis=2, offset=(1, 2)), [X, (2, 3, 2, 2)], (), 1, dict(offset=(3, 0)), None,
     "out of bounds"),
    ("Crop", dict(axis=2, offset=(1, 2)), [X, (2, 3, 2, 2)], (), 1, dict(offset=(-1, 0)), None,
     "negative"),
    ("Crop", dict(axis=2, offset=(1, 2)), [X, (2, 3, 2, 2)], (), 1, dict(offset=(1, 2, 0)), None,
     "offsets"),
    ("Crop", dict(axis=2), [X, (2, 3, 2, 2)], (), 1, dict(axis=-5), None, "out of range"),
    ("Reshape", dict(shape=(0, -1)), [X], (), 1, dict(shape=(0, 7, -1)), None, "divisible"),
    ("Reshape", dict(shape=(0, -1)), [X], (), 1, dict(shape=(0, 61)), None, "elements"),
    ("Reshape", dict(shape=(0, -1)), [X], (), 1, dict(shape=(-1, -1)), None, "more than one"),
    ("Reshape", dict(shape=(0, -1)), [X], (), 1, dict(shape=(0, -2, 30)), None, "negative"),
    ("Reshape", dict(shape=(0, -1)), [X], (), 1, dict(shape=(0, 60), axis=5), None,
     "out of range"),
    ("Reshape", dict(shape=(0, -1)), [X], (), 1, dict(shape=(2**40, 2**40, -1)), None, None),
    ("Reshape", dict(shape=(0, -1)), [X], (), 1, dict(shape=(0, 2, 30)), None, "shape"),
    ("Flatten", dict(axis=1), [X], (), 1, dict(axis=2, end_axis=0), None, "before"),
    ("Flatten", dict(axis=1), [X], (), 1, dict(axis=2), None, "shape"),
    ("Concat", dict(axis=1), [X, (2, 4, 4, 5)], (), 1, dict(axis=2), None, "outside axis"),
    ("Softmax", dict(axis=1), [X], (), 1, dict(axis=4), None, "out of range"),
    ("Softmax", dict(axis=1), [X], (), 1, dict(axis=-5), None, "out of range"),
    ("Softmax", dict(axis=1), [X], (), 1, dict(axis=1.5), None, "int"),
    ("Eltwise", dict(operation="SUM"), [X, X], (), 1, dict(operation="MIN"), None, "operation"),
    ("Eltwise", dict(operation="SUM"), [X, X], (), 1, dict(coeff=(1.0, 2.0, 3.0)), None,
     "coeff"),
    ("Eltwise", dict(operation="MAX"), [X, X], (), 1, dict(coeff=(1.0, 2.0)), None, "SUM"),
    ("ArgMax", dict(top_k=2), [X], (), 1, dict(top_k=0), None, "top_k"),
    ("ArgMax", dict(top_k=2, axis=1), [X], (), 1, dict(top_k=4), None, "exceeds"),
    ("ArgMax", dict(top_k=2, axis=1), [X], (), 1, dict(axis=None), None, "shape"),
    ("Reduction", dict(axis=1), [X], (), 1, dict(operation="MAX"), None, "operation"),
    ("Reduction", dict(axis=1), [X], (), 1, dict(axis=2), None, "shape"),
    ("MVN", {}, [X], (), 1, dict(normalize_variance=2), None, "0 or 1"),
    ("Exp", {}, [X], (), 1, dict(base=-2.0), None, "base"),
    ("Log", {}, [X], (), 1, dict(base=1.0), None, "base 1"),
    ("Log", {}, [X], (), 1, dict(base=0.0), None, "base"),
    ("Clip", dict(min=0.0, max=1.0), [X], (), 1, dict(min=None), None, "required"),
    ("ReLU", {}, [X], (), 1, dict(negative_slope="x"), None, "float"),
    ("PReLU", {}, [X], [np.ones(3)], 1, None, [np.ones(4)], "weight 0"),
    ("PReLU", {}, [X], [np.ones(3)], 1, dict(channel_shared=True), None, "weight 0"),
    ("BatchNorm", {}, [X], [np.ones(3), np.ones(3), [1.0]], 1, None,
     [np.ones(3), np.ones(2), [1.0]], "weight 1"),
    ("BatchNorm", {}, [X], [np.ones(3), np.ones(3), [1.0]], 1, None,
     [np.ones(3), np.ones(3), [1.0, 1.0]], "weight 2"),
    ("Scale", dict(bias_term=True), [X], [np.ones(3), np.ones(3)], 1, dict(bias_term=False), None,
     "weight"),
    ("Scale", dict(axis=1, num_axes=2), [X], [np.ones((3, 4))], 1, dict(num_axes=1), None,
     "weight 0"),
    ("Scale", dict(axis=1, num_axes=2), [X], [np.ones((3, 4))], 1, dict(num_axes=4), None,
     "extends past"),
    ("Scale", dict(axis=1, num_axes=2), [X], [np.ones((3, 4))], 1, dict(num_axes=-2), None,
     "num_axes"),
    ("Scale", dict(axis=1), [X, (3, 4)], (), 1, dict(axis=2), None, "does not match"),
    ("Bias", dict(axis=1), [X, (3, 4)], (), 1, dict(axis=3), None, "extends past"),
    ("Bias", dict(axis=1), [X], [np.ones(3)], 1, dict(axis=-7), None, "out of range"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CASES)])
def test_malformed_bundle_fails_in_prepare(case):
    op, attrs, shapes_, weights, n_out, new_attrs, new_weights, match = case
    expect_invalid_bundle(op, attrs, shapes_, weights, n_out, new_attrs, new_weights, match)


# -- differential validation: C loads a node iff the IR accepts it with the declared shapes ----
def _ir_accepts(g, node, attrs):
    """Whether the IR accepts `attrs` on node with the shapes the bundle declares."""
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
    except (EdgebrewError, ValueError, IndexError, TypeError):
        return False
    if node.op_type == "Crop" and any(int(o) < 0 for o in probe.attrs["offset"]):
        return False   # Caffe's offsets are uint32: the C runtime refuses negative ones
    if [tuple(s) for s in outs] != [g.shapes[t] for t in node.outputs]:
        return False
    return all(tuple(g.initializers[w].shape) == tuple(s) for w, s in zip(node.weights, wants))


small_ints = st.integers(-6, 6)
ATTR_SPACE = {
    "Slice": dict(axis=small_ints, slice_point=st.lists(small_ints, max_size=4).map(tuple)),
    "Permute": dict(order=st.lists(small_ints, max_size=5).map(tuple)),
    "Crop": dict(axis=small_ints, offset=st.lists(small_ints, max_size=4).map(tuple)),
    "Reshape": dict(shape=st.lists(st.integers(-2, 12), max_size=5).map(tuple), axis=small_ints,
                    num_axes=small_ints),
    "Flatten": dict(axis=small_ints, end_axis=small_ints),
    "Concat": dict(axis=small_ints),
    "Softmax": dict(axis=small_ints),
    "ArgMax": dict(axis=st.one_of(st.none(), small_ints), top_k=small_ints,
                   out_max_val=st.booleans()),
    "Reduction": dict(axis=small_ints, operation=st.sampled_from(["SUM", "MEAN", "MAX"])),
    "Scale": dict(axis=small_ints, num_axes=small_ints, bias_term=st.booleans()),
    "Bias": dict(axis=small_ints, num_axes=small_ints),
}
# A valid starting node per op (input shapes, weights, outputs).
ATTR_BASE = {
    "Slice": (dict(axis=1, slice_point=(1, 3)), [(2, 4, 3, 2)], (), 3),
    "Permute": (dict(order=(0, 2)), [(2, 4, 3, 2)], (), 1),
    "Crop": (dict(axis=2, offset=(1,)), [(2, 4, 3, 2), (2, 4, 2, 1)], (), 1),
    "Reshape": (dict(shape=(0, -1)), [(2, 4, 3, 2)], (), 1),
    "Flatten": (dict(axis=1, end_axis=2), [(2, 4, 3, 2)], (), 1),
    "Concat": (dict(axis=1), [(2, 4, 3, 2), (2, 4, 3, 2)], (), 1),
    "Softmax": (dict(axis=1), [(2, 4, 3, 2)], (), 1),
    "ArgMax": (dict(axis=2, top_k=2), [(2, 4, 3, 2)], (), 1),
    "Reduction": (dict(axis=2), [(2, 4, 3, 2)], (), 1),
    "Scale": (dict(axis=1, num_axes=2, bias_term=True), [(2, 4, 3, 2)],
              [np.ones((4, 3)), np.ones((4, 3))], 1),
    "Bias": (dict(axis=1, num_axes=2), [(2, 4, 3, 2)], [np.ones((4, 3))], 1),
}


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(sorted(ATTR_SPACE)), data=st.data())
def test_c_validation_matches_the_ir(op, data):
    """Random (often invalid) attributes on a node whose shapes were declared for valid ones:
    the C runtime loads it exactly when the IR accepts it, and then computes what the
    reference computes."""
    from edgebrew.bundle import Bundle
    from edgebrew.errors import EdgebrewError
    from edgebrew.runtime import Session
    attrs, shapes_, weights, n_out = ATTR_BASE[op]
    g = one_op_graph(op, attrs, shapes_, [f32(w) for w in weights], n_out)
    node = g.nodes[0]
    new = {k: data.draw(s) for k, s in ATTR_SPACE[op].items() if data.draw(st.booleans())}
    attrs2 = dict(attrs, **new)
    attrs2 = {k: v for k, v in attrs2.items() if v is not None}
    accepted = _ir_accepts(g, node, attrs2)
    node.attrs = dict(attrs2)
    try:
        s = Session(Bundle(g))
    except EdgebrewError as e:
        assert not accepted, f"{op} {attrs2}: valid, yet the C runtime refused it: {e}"
        assert "EB_ERR_INVALID_BUNDLE" in str(e)
        return
    assert accepted, f"{op} {attrs2}: the IR rejects it, yet the C runtime loaded it"
    rng = rng_of(0)
    inputs = [normal(rng, sh) for sh in shapes_]
    with s:
        got = s.run({f"in{i}": x for i, x in enumerate(inputs)})
    ref = run_op(op, attrs2, inputs, [f32(w) for w in weights], n_out, dtype=np.float64)
    for i, r in enumerate(ref):
        assert rel_error(got[f"out{i}"], r) <= TOL


@pytest.mark.parametrize("case", BIG_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(BIG_CASES)])
def test_wrong_declared_output_shape_fails(case):
    """An output declared with a shape other than the one the op computes is refused."""
    from edgebrew.bundle import Bundle
    from edgebrew.errors import EdgebrewError
    from edgebrew.runtime import Session
    op, attrs, inputs, weights, n_out = case
    for variant in ("grow", "extra_axis"):
        g = one_op_graph(op, attrs, [np.shape(x) for x in inputs], [f32(w) for w in weights],
                         n_out)
        out = g.nodes[0].outputs[-1]
        shape = g.shapes[out]
        if variant == "grow":
            g.shapes[out] = shape[:-1] + (shape[-1] + 1,) if shape else (2,)
        else:
            g.shapes[out] = shape + (1,)
        with pytest.raises(EdgebrewError) as info:
            Session(Bundle(g))
        assert "EB_ERR_INVALID_BUNDLE" in str(info.value), str(info.value)
        assert f"({op})" in str(info.value) or "shape" in str(info.value), str(info.value)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("over", [1, 2])
@pytest.mark.parametrize("op", ["SUM", "PROD", "MAX"])
def test_eltwise_output_over_a_later_input(op, over, threads):
    """The planner may put Eltwise's output over any of its inputs."""
    rng = rng_of(12)
    inputs = [normal(rng, BIG) for _ in range(3)]
    attrs = dict(operation=op, coeff=(0.5, -1.0, 2.0)) if op == "SUM" else dict(operation=op)
    (separate,) = check("Eltwise", attrs, inputs, exact=op == "MAX")
    got = run_c_in_place("Eltwise", attrs, inputs, threads=threads, over=over)
    assert got.tobytes() == separate.tobytes()


@pytest.mark.parametrize("threads", [1, 3])
def test_concat_zero_copy_layout(threads):
    """Inputs placed inside the output (the planner's Concat zero copy): nothing to copy."""
    from edgebrew.bundle import Bundle
    from edgebrew.optimizer.memory_planner import plan_memory
    from edgebrew.runtime import Session
    rng = rng_of(13)
    a, b = normal(rng, (1, 16, 40, 40)), normal(rng, (1, 8, 40, 40))
    g = one_op_graph("Concat", dict(axis=1), [a.shape, b.shape])
    plan = plan_memory(g)
    plan.offsets["in0"] = plan.offsets["out0"]
    plan.offsets["in1"] = plan.offsets["out0"] + a.nbytes
    with Session(Bundle(g, plan=plan), threads=threads) as s:
        y = s.run({"in0": a, "in1": b})["out0"]
    np.testing.assert_array_equal(y, np.concatenate([a, b], axis=1))
