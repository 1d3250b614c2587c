"""Activation-range calibration (edgebrew.quant.calibration): every method against an
expectation computed independently (analytic values, brute-force loops, or quantizing the
samples for real)."""
import json
import math
import time

import numpy as np
import pytest

from edgebrew.errors import EdgebrewError
from edgebrew.quant.calibration import (CACHE_FORMAT, METHODS, CalibrationError, Calibrator,
                                        kl_divergences, load_cache, qparams_from_range,
                                        save_cache)


def calibrate(method, data, *, batches=1, **kw):
    """{name: (lo, hi)} for {name: array}, each array fed in ``batches`` pieces per pass."""
    cal = Calibrator(method, **kw)
    for name, x in data.items():
        for b in np.array_split(np.asarray(x), batches):
            cal.observe(name, b)
    assert cal.needs_second_pass == (method != "minmax")
    if cal.needs_second_pass:
        cal.start_second_pass()
        for name, x in data.items():
            for b in np.array_split(np.asarray(x), batches):
                cal.observe_histogram(name, b)
    return cal.ranges()


def fake_quant(x, lo, hi):
    """x through the asymmetric int8 grid of [lo, hi] (quantize, clamp, dequantize)."""
    scale, zp = qparams_from_range(lo, hi)
    q = np.clip(np.round(np.asarray(x, np.float64) / scale) + zp, -128, 127)
    return (q - zp) * scale


def quant_mse(x, lo, hi):
    return float(np.mean((fake_quant(x, lo, hi) - x) ** 2))


# --------------------------------------------------------------------------- minmax
def test_minmax_exact_and_streaming():
    a = np.array([[0.5, -2.0], [3.0, 1.0]], np.float32)
    b = np.array([7.25, -0.5], np.float32)
    c = np.arange(12, dtype=np.float32).reshape(3, 4) / 4 - 1   # -1 .. 1.75
    cal = Calibrator("minmax")
    assert not cal.needs_second_pass
    for x in (a, b, c):
        cal.observe("t", x)
    cal.observe("relu", np.array([0.25, 4.0]))       # widened to include 0
    cal.observe("neg", np.array([-3.0, -1.0]))
    cal.observe("empty", np.zeros((0, 3)))           # ignored
    r = cal.ranges()
    assert r == {"t": (-2.0, 7.25), "relu": (0.0, 4.0), "neg": (-3.0, 0.0)}
    assert calibrate("minmax", {"t": np.concatenate([a.ravel(), b, c.ravel()])}) == {"t": r["t"]}


@pytest.mark.parametrize("method", METHODS)
def test_all_zero_tensor(method):
    assert calibrate(method, {"z": np.zeros(100)}) == {"z": (0.0, 0.0)}


@pytest.mark.parametrize("method", METHODS)
def test_streaming_equals_one_shot(method):
    rng = np.random.default_rng(3)
    data = {"a": rng.standard_normal(30_000) * 2 + 0.5,
            "b": np.maximum(rng.laplace(0, 1, 30_000), 0)}
    assert calibrate(method, data, batches=7) == calibrate(method, data)


# --------------------------------------------------------------------------- percentile
def test_percentile_uniform_matches_analytic():
    rng = np.random.default_rng(1)
    x = rng.uniform(-3.0, 5.0, 1_000_000)
    bin_width = 8.0 / 2048
    lo, hi = calibrate("percentile", {"u": x}, batches=5, percentile=99.0)["u"]
    assert lo == pytest.approx(-3.0 + 0.01 * 8.0, abs=bin_width)
    assert hi == pytest.approx(-3.0 + 0.99 * 8.0, abs=bin_width)
    # one-sided: lo is 0, hi the percentile
    lo, hi = calibrate("percentile", {"u": x + 3.0}, percentile=99.0)["u"]
    assert lo == 0.0 and hi == pytest.approx(0.99 * 8.0, abs=bin_width)


# --------------------------------------------------------------------------- heavy tails
@pytest.fixture(scope="module")
def heavy():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.standard_normal(100_000), [1000.0, -1000.0, 999.0, -998.0]])


def test_heavy_tailed_minmax_spans_outliers(heavy):
    assert calibrate("minmax", {"x": heavy})["x"] == (-1000.0, 1000.0)


def test_heavy_tailed_entropy_clips_outliers(heavy):
    # The KL search never goes below num_quant_bins bins (127 / 2048 * absmax = 62 here), so a
    # finer histogram is needed to resolve a N(0, 1) bulk next to outliers at 1000.
    lo, hi = calibrate("entropy", {"x": heavy}, num_bins=65536)["x"]
    assert 2.0 < hi < 10.0 and lo == -hi
    lo, hi = calibrate("entropy", {"x": np.maximum(heavy, 0)}, num_bins=65536)["x"]
    assert lo == 0.0 and 2.0 < hi < 10.0
    lo, hi = calibrate("entropy", {"x": heavy})["x"]     # default bins: clipped at the floor
    assert hi == pytest.approx(127 / 2048 * 1000.0)


def test_heavy_tailed_mse_weighs_the_outliers(heavy):
    # MSE counts the outliers' own clipping error: clipping 4 values at ~1000 down to the bulk
    # costs ~4e6, far more than the rounding error it saves (~1e5 values with |x| < 4 all
    # round to 0 on a +-1000 grid: ~1e5 * E[x^2]), so mse keeps (nearly) the whole range, and
    # quantizing the samples for real confirms that this beats the clipping methods.
    lo, hi = calibrate("mse", {"x": heavy})["x"]
    err = quant_mse(heavy, lo, hi)
    assert hi > 900.0 and lo < -900.0
    assert err <= 1.001 * quant_mse(heavy, -1000.0, 1000.0)
    for method in ("entropy", "percentile"):
        assert err < quant_mse(heavy, *calibrate(method, {"x": heavy})["x"])


def test_mse_clips_moderate_outliers():
    # 1e6 values of N(0, 1) and outliers at ~+-20: clipping them is worth it. For T above the
    # bulk the error is ~2 (20 - T)^2 + N (2T / 255)^2 / 12, minimal at T ~ 5.6.
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.standard_normal(1_000_000), [20.0, -20.0, 19.5, -19.0]])
    lo, hi = calibrate("mse", {"x": x})["x"]
    assert 2.0 < hi < 10.0 and lo == -hi
    assert quant_mse(x, lo, hi) < 0.5 * quant_mse(x, x.min(), x.max())
    lo, hi = calibrate("mse", {"x": np.maximum(x, 0)})["x"]
    assert lo == 0.0 and hi < x.max()


def _brute_force_best(x, n=300):
    """The lowest real quantization MSE over thresholds T in (0, absmax], the range of T being
    [max(min, -T), min(max, T)] widened to 0."""
    a = float(np.abs(x).max())
    return min(quant_mse(x, max(x.min(), -t), min(x.max(), t))
               for t in np.linspace(a / n, a, n))


@pytest.mark.parametrize("kind", ["heavy", "heavy_relu", "laplace", "uniform", "gauss_shifted",
                                  "moderate"])
def test_mse_near_brute_force_optimum(kind, heavy):
    rng = np.random.default_rng(7)
    x = {"heavy": heavy,
         "heavy_relu": np.maximum(heavy, 0),
         "laplace": rng.laplace(0, 1, 100_000),
         "uniform": rng.uniform(-1, 3, 100_000),
         "gauss_shifted": rng.standard_normal(100_000) + 1.5,
         "moderate": np.concatenate([rng.standard_normal(100_000), [10.0, -9.0]])}[kind]
    err = quant_mse(x, *calibrate("mse", {"x": x})["x"])
    assert err <= 1.03 * _brute_force_best(x)


# --------------------------------------------------------------------------- entropy
@pytest.mark.parametrize("a, b", [(-2.0, 3.0), (0.0, 3.0), (-4.0, 0.0)])
def test_entropy_uniform_keeps_full_range(a, b):
    rng = np.random.default_rng(2)
    x = rng.uniform(a, b, 200_000)
    lo, hi = calibrate("entropy", {"u": x})["u"]
    assert lo == pytest.approx(min(a, 0.0), rel=0.03, abs=1e-12)
    assert hi == pytest.approx(max(b, 0.0), rel=0.03, abs=1e-12)


def naive_kl(hist, nq, eps=1e-4):
    """The TensorRT / MXNet loop, one candidate at a time."""
    hist = np.asarray(hist, np.float64)
    out = []
    for i in range(nq, hist.size + 1):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        q = np.zeros(i)
        edges = [j * i // nq for j in range(nq + 1)]
        for s, e in zip(edges[:-1], edges[1:]):
            nonzero = p[s:e] > 0
            if nonzero.any():
                q[s:e][nonzero] = hist[s:e].sum() / nonzero.sum()
        q[(p > 0) & (q == 0)] = eps
        if hist[:i].sum() == 0:
            out.append(math.inf)
            continue
        p, q = p / p.sum(), q / hist[:i].sum()
        m = p > 0
        out.append(float(np.sum(p[m] * np.log(p[m] / q[m]))))
    return np.array(out)


@pytest.mark.parametrize("seed", range(4))
def test_kl_divergences_match_naive_loop(seed):
    rng = np.random.default_rng(seed)
    hist = rng.poisson(rng.uniform(0, 30, 300)) * (rng.random(300) < 0.6)
    hist[250:290] = 0                    # empty last groups with outliers beyond
    hist[-1] = 5
    for nq in (7, 31, 127):
        np.testing.assert_allclose(kl_divergences(hist, nq), naive_kl(hist, nq),
                                   rtol=1e-9, atol=1e-9)


def test_entropy_is_fast_for_a_hundred_tensors():
    rng = np.random.default_rng(4)
    cal = Calibrator("entropy")
    data = {f"t{i}": (rng.standard_normal(5000) if i % 2 else
                      np.maximum(rng.standard_normal(5000), 0)) for i in range(100)}
    for k, v in data.items():
        cal.observe(k, v)
    cal.start_second_pass()
    for k, v in data.items():
        cal.observe_histogram(k, v)
    t0 = time.perf_counter()
    r = cal.ranges()
    assert time.perf_counter() - t0 < 5.0          # ~0.2 s; a per-candidate loop takes minutes
    assert all(lo == 0.0 for k, (lo, _) in r.items() if int(k[1:]) % 2 == 0)


# --------------------------------------------------------------------------- mse
def test_mse_laplace_beats_minmax():
    rng = np.random.default_rng(5)
    x = rng.laplace(0.0, 1.0, 200_000)
    lo, hi = calibrate("mse", {"x": x})["x"]
    assert hi < x.max() and lo > x.min()
    assert quant_mse(x, lo, hi) < 0.8 * quant_mse(x, x.min(), x.max())


# --------------------------------------------------------------------------- qparams
@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (0.0, 6.0), (-3.7, 0.0), (-0.3, 12.9),
                                    (2.0, 5.0), (-1e-3, 2e-3), (-50.0, 0.02)])
def test_qparams_zero_exact_and_ends_mapped(lo, hi):
    scale, zp = qparams_from_range(lo, hi)
    assert isinstance(scale, float) and isinstance(zp, int)
    assert float(np.float32(scale)) == scale and scale > 0
    assert -128 <= zp <= 127
    assert fake_quant(np.array([0.0]), lo, hi)[0] == 0.0
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    assert scale == pytest.approx((hi - lo) / 255, rel=1e-6)
    assert abs(lo / scale + zp - (-128)) <= 1.0
    assert abs(hi / scale + zp - 127) <= 1.0


def test_qparams_degenerate_and_bad():
    scale, zp = qparams_from_range(0.0, 0.0)
    assert (scale, zp) == (1.0, -128)
    assert fake_quant(np.array([0.0]), 0.0, 0.0)[0] == 0.0
    for lo, hi in ((1.0, -1.0), (math.nan, 1.0), (0.0, math.inf)):
        with pytest.raises(CalibrationError):
            qparams_from_range(lo, hi)


# --------------------------------------------------------------------------- misuse
def test_calibrator_misuse_raises():
    with pytest.raises(CalibrationError, match="unknown calibration method"):
        Calibrator("kl")
    with pytest.raises(CalibrationError):
        Calibrator("entropy", num_bins=100)
    with pytest.raises(CalibrationError):
        Calibrator("percentile", percentile=30)
    cal = Calibrator("entropy")
    with pytest.raises(CalibrationError, match="non-finite"):
        cal.observe("a", np.array([1.0, np.nan]))
    cal.observe("a", np.array([1.0, -2.0]))
    with pytest.raises(CalibrationError, match="second pass"):
        cal.ranges()
    with pytest.raises(CalibrationError):
        cal.observe_histogram("a", np.array([1.0]))
    cal.start_second_pass()
    with pytest.raises(CalibrationError):
        cal.observe("a", np.array([1.0]))
    with pytest.raises(CalibrationError, match="'b'"):
        cal.observe_histogram("b", np.array([1.0]))
    with pytest.raises(CalibrationError, match="no values in the second pass"):
        cal.ranges()
    assert issubclass(CalibrationError, EdgebrewError)


# --------------------------------------------------------------------------- cache
def test_cache_round_trip(tmp_path):
    ranges = {"conv1": (-1.5, 2.25), "relu1": (0.0, 6.000000000000001), "fc/out": (-1e-7, 0.0)}
    path = tmp_path / "calib.json"
    save_cache(path, ranges, method="entropy", model_sha1="ab" * 20, extra={"samples": 32})
    doc = load_cache(path)
    assert doc["format"] == CACHE_FORMAT and doc["method"] == "entropy"
    assert doc["model_sha1"] == "ab" * 20 and doc["extra"] == {"samples": 32}
    assert doc["ranges"] == ranges
    assert json.loads(path.read_text())["ranges"]["conv1"] == [-1.5, 2.25]
    save_cache(path, {"x": (0.0, 1.0)}, method="minmax")           # atomic overwrite
    doc = load_cache(path)
    assert doc["ranges"] == {"x": (0.0, 1.0)} and doc["model_sha1"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.json"]   # no temp files left


def _good():
    return {"format": CACHE_FORMAT, "method": "minmax", "model_sha1": None,
            "ranges": {"a": [-1.0, 1.0]}}


@pytest.mark.parametrize("text", [
    "{not json",
    "[1, 2]",
    json.dumps({k: v for k, v in _good().items() if k != "ranges"}),
    json.dumps({k: v for k, v in _good().items() if k != "format"}),
    json.dumps({**_good(), "format": "edgebrew-calibration-999"}),
    json.dumps({**_good(), "method": 3}),
    json.dumps({**_good(), "ranges": {"a": [2.0, 1.0]}}),
    json.dumps({**_good(), "ranges": {"a": [1.0]}}),
    json.dumps({**_good(), "ranges": {"a": ["0", 1.0]}}),
    json.dumps({**_good(), "ranges": {"a": [True, 1.0]}}),
    json.dumps({**_good(), "ranges": [[-1.0, 1.0]]}),
    '{"format": "edgebrew-calibration-1", "method": "minmax", "ranges": {"a": [NaN, 1.0]}}',
    '{"format": "edgebrew-calibration-1", "method": "minmax", "ranges": {"a": [0, 1e999]}}',
])
def test_malformed_cache_raises_naming_path(tmp_path, text):
    path = tmp_path / "bad_calib.json"
    path.write_text(text)
    with pytest.raises(CalibrationError, match="bad_calib.json"):
        load_cache(path)


def test_missing_cache_and_bad_save(tmp_path):
    with pytest.raises(CalibrationError, match="nope.json"):
        load_cache(tmp_path / "nope.json")
    with pytest.raises(CalibrationError, match="out.json"):
        save_cache(tmp_path / "out.json", {"a": (1.0, 0.0)}, method="minmax")
    with pytest.raises(CalibrationError, match="out.json"):
        save_cache(tmp_path / "out.json", {"a": (0.0, math.nan)}, method="minmax")
    assert list(tmp_path.iterdir()) == []
