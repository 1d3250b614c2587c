"""Activation ranges for int8 quantization, from observed calibration data.

int8 activations are quantized per tensor and asymmetrically: a float range [lo, hi] (always
widened to include 0, so that 0.0 is exactly representable) maps onto int8 [-128, 127] with
``scale = (hi - lo) / 255`` and ``zero_point = round(-128 - lo / scale)`` (``qparams_from_range``).
Calibration runs the fp32 network on calibration samples and shows every activation tensor to a
``Calibrator``; this module turns those observations into one range [lo, hi] per tensor.

Protocol::

    cal = Calibrator("entropy")
    for x in samples:                       # pass 1: min / max / abs max per tensor
        for name, value in run_fp32(x).items():
            cal.observe(name, value)
    if cal.needs_second_pass:               # histogram methods only
        cal.start_second_pass()             # fixes each tensor's histogram range
        for x in samples:                   # pass 2: the same samples again
            for name, value in run_fp32(x).items():
                cal.observe_histogram(name, value)
    ranges = cal.ranges()                   # {name: (lo, hi)}, lo <= 0 <= hi

Methods (``METHODS``):

- ``minmax``: [min, max] over every observed value. One pass.
- ``percentile`` (p, default 99.99): lo / hi are the (100 - p)-th and p-th percentiles of the
  values, read off a signed histogram over [min(min, 0), max(max, 0)] by linear interpolation
  inside a bin (so accurate to about a bin width). After the widening to 0, a one-sided tensor
  (min >= 0) gets lo = 0 (and max <= 0 gets hi = 0).
- ``entropy``: TensorRT's KL-divergence threshold search (Migacz, "8-bit Inference with
  TensorRT", GTC 2017). A histogram of |x| over [0, absmax] (num_bins bins, width w). A
  *one-sided* tensor (min >= 0, e.g. after ReLU; or max <= 0) gives the whole asymmetric grid,
  255 steps, to one side: num_quant_bins = 255. A *two-sided* tensor gives half of it to each
  side: num_quant_bins = 127. Every candidate i in [num_quant_bins, num_bins] is tried (no
  stride): the reference P = hist[:i] with the outliers sum(hist[i:]) added to its last bin;
  the candidate Q = hist[:i] merged into num_quant_bins groups of consecutive bins (group j is
  bins [j*i // n, (j+1)*i // n), n = num_quant_bins, so group sizes differ by at most one) and
  expanded back, each group's mass spread uniformly over the group's bins where P is non-zero
  (as MXNet / TVM do; P's non-zero set includes the last bin when it holds outliers). The
  chosen i minimises KL(P || Q) of the normalised distributions. Zeros of Q where P > 0 (only
  possible in the last bin, when its whole group is empty but outliers exist) are smoothed to
  eps = 1e-4 counts as MXNet's ``_smooth_distribution`` does; the matching tiny decrease of the
  other bins is neglected, and bins where P = 0 contribute nothing. The threshold is
  T = i * w (the upper edge of the kept bins; TensorRT's talk uses the centre of bin i), and the
  range is [0, T] (one-sided, or [-T, 0] when max <= 0) or [max(min, -T), min(max, T)].
  The search is exact and vectorised through prefix sums: O(num_bins * num_quant_bins) per
  tensor, a few ms for 2048 bins. Note the resolution limit of the method: the threshold is
  never below num_quant_bins / num_bins * absmax (about 6 % of absmax with 2048 bins for a
  two-sided tensor); raise num_bins when a few huge outliers dominate absmax.
- ``mse``: the clipping threshold T (same one-/two-sided treatment, candidates at every bin
  edge k * w, k = 1 .. num_bins) minimising the total squared quantization error estimated
  from the |x| histogram (values uniform inside their bin): the clipping error
  sum (|x| - T)^2 over |x| > T, plus the rounding error of the unclipped values with
  step = (hi(T) - lo(T)) / 255 for the range of T as above: values within step / 2 of 0 round
  to 0 (0 is on the grid) and cost x^2; the others cost step^2 / 12 (uniform rounding noise);
  exact zeros cost nothing. (Plain step^2 / 12 everywhere would badly overrate coarse grids'
  error.) Note that MSE counts the outliers' own error: a few far outliers among many values
  are clipped only part way, or not at all, when that is cheaper in total.

Histogram details: the histogram range of a tensor is fixed by ``start_second_pass`` from its
pass-1 min / max; pass-2 values outside it (which the same samples never give) count in the edge
bins. Counts are integers and binning is elementwise, so streaming batches gives exactly the
histogram of one batch. Non-finite values raise ``CalibrationError``; empty arrays are ignored.

``save_cache`` / ``load_cache`` keep ranges in a JSON file::

    {"format": "edgebrew-calibration-1", "method": "entropy", "model_sha1": "..." or null,
     "ranges": {"conv1": [lo, hi], ...}, "extra": {...} or null}
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import EdgebrewError

__all__ = ["METHODS", "CACHE_FORMAT", "CalibrationError", "RangeObserver", "Calibrator",
           "qparams_from_range", "save_cache", "load_cache"]

METHODS = ("minmax", "percentile", "entropy", "mse")
CACHE_FORMAT = "edgebrew-calibration-1"
QMIN, QMAX = -128, 127
NUM_STEPS = QMAX - QMIN          # 255 steps between lo and hi
_KL_EPS = 1e-4                   # smoothing of Q's zeros, in counts (MXNet's default)


class CalibrationError(EdgebrewError):
    """Bad calibration input or state, or a calibration cache file that cannot be used."""


# --------------------------------------------------------------------------- observation
class RangeObserver:
    """Streams batches of one tensor's values; two passes for histogram methods.

    Pass 1 (``observe``) tracks min, max and abs max. ``start_second_pass`` fixes the histogram
    range from them: [0, absmax] of |x| (``signed=False``, entropy / mse) or
    [min(min, 0), max(max, 0)] of x (``signed=True``, percentile). Pass 2
    (``observe_histogram``) accumulates ``num_bins`` integer counts and the number of exact
    zeros.
    """

    def __init__(self, num_bins: int = 2048, *, signed: bool = False, name: str = "tensor"):
        if int(num_bins) < 2:
            raise CalibrationError(f"num_bins must be >= 2, got {num_bins}")
        self.num_bins = int(num_bins)
        self.signed = bool(signed)
        self.name = name
        self.count = 0                  # pass-1 values
        self.min = math.inf
        self.max = -math.inf
        self.hist: np.ndarray | None = None     # int64 counts once the second pass started
        self.hist_lo = self.hist_hi = 0.0
        self.hist_count = 0             # pass-2 values
        self.zeros = 0                  # pass-2 values exactly 0

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max)) if self.count else 0.0

    @property
    def one_sided(self) -> bool:
        """All values >= 0 (e.g. after ReLU) or all <= 0: the whole grid serves one side."""
        return self.min >= 0.0 or self.max <= 0.0

    @property
    def second_pass(self) -> bool:
        return self.hist is not None

    @property
    def bin_width(self) -> float:
        return (self.hist_hi - self.hist_lo) / self.num_bins

    def _values(self, values) -> np.ndarray:
        v = np.asarray(values)
        if v.dtype.kind not in "fiub":
            raise CalibrationError(f"tensor {self.name!r}: cannot calibrate {v.dtype} values")
        return v.reshape(-1)

    def observe(self, values) -> None:
        if self.second_pass:
            raise CalibrationError(f"tensor {self.name!r}: observe() after start_second_pass()")
        v = self._values(values)
        if v.size == 0:
            return
        lo, hi = float(v.min()), float(v.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise CalibrationError(f"tensor {self.name!r}: non-finite values (NaN or inf)")
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        self.count += v.size

    def start_second_pass(self) -> None:
        if self.second_pass:
            return
        if self.signed:
            self.hist_lo, self.hist_hi = min(self.min, 0.0), max(self.max, 0.0)
        else:
            self.hist_lo, self.hist_hi = 0.0, self.absmax
        if not self.count:
            self.hist_lo = self.hist_hi = 0.0
        self.hist = np.zeros(self.num_bins, np.int64)

    def observe_histogram(self, values) -> None:
        if not self.second_pass:
            raise CalibrationError(
                f"tensor {self.name!r}: observe_histogram() before start_second_pass()")
        v = self._values(values)
        if v.size == 0:
            return
        v = v.astype(np.float64, copy=False)
        if not np.isfinite(v).all():
            raise CalibrationError(f"tensor {self.name!r}: non-finite values (NaN or inf)")
        self.hist_count += v.size
        self.zeros += int(np.count_nonzero(v == 0))
        width = self.hist_hi - self.hist_lo
        if width <= 0:                  # an all-zero tensor: nothing to histogram
            self.hist[0] += v.size
            return
        x = (v - self.hist_lo) if self.signed else np.abs(v)
        idx = np.floor(x * (self.num_bins / width))
        idx = np.clip(idx, 0, self.num_bins - 1).astype(np.intp)
        self.hist += np.bincount(idx, minlength=self.num_bins)


# --------------------------------------------------------------------------- range methods
def _widen(lo: float, hi: float) -> tuple[float, float]:
    return min(float(lo), 0.0), max(float(hi), 0.0)


def _range_from_threshold(obs: RangeObserver, t: float) -> tuple[float, float]:
    if obs.min >= 0.0:
        return 0.0, min(obs.max, t)
    if obs.max <= 0.0:
        return max(obs.min, -t), 0.0
    return max(obs.min, -t), min(obs.max, t)


def _percentile_range(obs: RangeObserver, p: float) -> tuple[float, float]:
    h = obs.hist.astype(np.float64)
    total = h.sum()
    if total <= 0 or obs.hist_hi <= obs.hist_lo:
        return _widen(obs.min, obs.max)
    cum = np.concatenate(([0.0], np.cumsum(h)))
    w = obs.bin_width

    def value_at(fraction: float) -> float:
        target = fraction * total
        k = int(np.searchsorted(cum, target, side="left")) - 1     # cum[k] < target <= cum[k+1]
        k = min(max(k, 0), obs.num_bins - 1)
        inside = (target - cum[k]) / h[k] if h[k] > 0 else 0.0
        return obs.hist_lo + (k + min(max(inside, 0.0), 1.0)) * w

    lo = max(value_at((100.0 - p) / 100.0), obs.min)
    hi = min(value_at(p / 100.0), obs.max)
    return _widen(lo, hi)


def kl_divergences(hist, num_quant_bins: int, eps: float = _KL_EPS) -> np.ndarray:
    """KL(P || Q) of the entropy method for every candidate i = num_quant_bins .. len(hist)
    (element i - num_quant_bins), computed in closed form from prefix sums (see the module
    docstring for P and Q). ``inf`` where hist[:i] is empty."""
    h = np.asarray(hist, np.float64)
    nb, nq = h.size, int(num_quant_bins)
    if nb < nq:
        return np.empty(0)
    total = h.sum()
    cands = np.arange(nq, nb + 1)
    if total <= 0:
        return np.zeros(cands.size)
    pos = h > 0
    H = np.concatenate(([0.0], np.cumsum(h)))
    NZ = np.concatenate(([0.0], np.cumsum(pos, dtype=np.float64)))
    hlogh = np.zeros(nb)
    hlogh[pos] = h[pos] * np.log(h[pos])
    L = np.concatenate(([0.0], np.cumsum(hlogh)))
    out = np.empty(cands.size)
    j = np.arange(nq + 1)
    chunk = max(1, (1 << 14) // (nq + 1))
    for s in range(0, cands.size, chunk):
        i = cands[s:s + chunk]
        bounds = (i[:, None] * j[None, :]) // nq                    # (C, nq + 1) group edges
        hb, nzb = H[bounds], NZ[bounds]
        m = hb[:, 1:] - hb[:, :-1]                                  # group masses of hist[:i]
        n = nzb[:, 1:] - nzb[:, :-1]                                # P's non-zero bins per group
        h_last = h[i - 1]
        outliers = total - H[i]
        p_last = h_last + outliers
        n[:, -1] += (h_last == 0) & (outliers > 0)                  # P's last bin is non-zero
        # log of Q on P's support (m * logq is 0 for empty groups: m = 0, logq finite)
        logq = np.log(np.maximum(m, 1.0) / np.maximum(n, 1.0))
        # sum P log Q over bins < i-1, then the last bin (smoothed where its Q is 0)
        plogq = np.einsum("ij,ij->i", m, logq) - h_last * logq[:, -1]
        logq_last = np.where(m[:, -1] > 0, logq[:, -1], math.log(eps))
        plogq += np.where(p_last > 0, p_last * logq_last, 0.0)
        plogp = L[i - 1] + np.where(p_last > 0, p_last * np.log(np.where(p_last > 0, p_last, 1)),
                                    0.0)
        sq = H[i]
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = (plogp - plogq) / total + np.log(sq / total)
        out[s:s + chunk] = np.where(sq > 0, kl, np.inf)
    return out


def _entropy_range(obs: RangeObserver) -> tuple[float, float]:
    if obs.absmax <= 0 or obs.hist.sum() == 0:
        return _widen(obs.min, obs.max)
    nq = NUM_STEPS if obs.one_sided else NUM_STEPS // 2
    kl = kl_divergences(obs.hist, nq)
    if kl.size == 0:
        return _widen(obs.min, obs.max)
    i = nq + int(np.argmin(kl))
    return _range_from_threshold(obs, i * obs.bin_width)


def mse_errors(obs: RangeObserver) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, expected total squared errors) of the mse method at every bin edge k * w,
    k = 1 .. num_bins, from an |x| histogram (see the module docstring). Values are taken as
    uniform inside their bin; exact zeros (counted apart) never cost anything."""
    h = obs.hist.astype(np.float64)
    nb, w = obs.num_bins, obs.bin_width
    hz = h.copy()
    hz[0] = max(hz[0] - obs.zeros, 0.0)             # non-zero values only, for rounding
    jj = np.arange(nb, dtype=np.float64)

    def prefix(a):          # prefix[k] = sum_{j < k} a[j], k = 0 .. nb
        return np.concatenate(([0.0], np.cumsum(a)))

    p0, p1, p2 = prefix(h), prefix(jj * h), prefix(jj * jj * h)
    k = np.arange(1, nb + 1)
    kf = k.astype(np.float64)
    # clipping: sum_{j >= k} h_j E[(x - T)^2], x uniform in [j w, (j+1) w), T = k w,
    # = w^2 sum_{j >= k} h_j ((j - k)^2 + (j - k) + 1/3), from suffix sums
    s0, s1, s2 = p0[-1] - p0[k], p1[-1] - p1[k], p2[-1] - p2[k]
    clip = w * w * (s2 - 2 * kf * s1 + kf * kf * s0 + s1 - kf * s0 + s0 / 3.0)
    clip = np.maximum(clip, 0.0)
    t = kf * w
    if obs.min >= 0.0 or obs.max <= 0.0:
        span = t
    else:
        span = np.minimum(obs.max, t) - np.maximum(obs.min, -t)
    step = span / NUM_STEPS
    # rounding: bins whose centre is within step / 2 of 0 round to 0 (0 is on the grid): error
    # E[x^2] = w^2 (j^2 + j + 1/3); the other unclipped bins: uniform noise step^2 / 12
    z0, z1, z2 = prefix(hz), prefix(jj * hz), prefix(jj * jj * hz)
    a = np.clip(np.ceil(step / (2 * w) - 0.5), 0, kf).astype(np.intp)
    to_zero = w * w * (z2[a] + z1[a] + z0[a] / 3.0)
    noise = np.maximum(z0[k] - z0[a], 0.0) * step * step / 12.0
    return t, clip + to_zero + noise


def _mse_range(obs: RangeObserver) -> tuple[float, float]:
    if obs.absmax <= 0 or obs.hist.sum() == 0:
        return _widen(obs.min, obs.max)
    t, err = mse_errors(obs)
    return _range_from_threshold(obs, float(t[int(np.argmin(err))]))


# --------------------------------------------------------------------------- calibrator
class Calibrator:
    """Per-tensor range observation for one calibration method (see the module docstring)."""

    def __init__(self, method: str = "minmax", *, percentile: float = 99.99,
                 num_bins: int = 2048):
        if method not in METHODS:
            raise CalibrationError(f"unknown calibration method {method!r}; "
                                   f"expected one of {', '.join(METHODS)}")
        percentile = float(percentile)
        if not 50.0 <= percentile <= 100.0:
            raise CalibrationError(f"percentile must be in [50, 100], got {percentile}")
        num_bins = int(num_bins)
        min_bins = NUM_STEPS + 1 if method == "entropy" else 2
        if num_bins < min_bins:
            raise CalibrationError(f"{method} calibration needs num_bins >= {min_bins}, "
                                   f"got {num_bins}")
        self.method = method
        self.percentile = percentile
        self.num_bins = num_bins
        self.observers: dict[str, RangeObserver] = {}
        self._second_pass = False

    @property
    def needs_second_pass(self) -> bool:
        return self.method != "minmax"

    def observe(self, name: str, values) -> None:
        """Pass 1: one batch of tensor ``name``'s values (any shape)."""
        if self._second_pass:
            raise CalibrationError(f"tensor {name!r}: observe() after start_second_pass()")
        obs = self.observers.get(name)
        if obs is None:
            obs = RangeObserver(self.num_bins, signed=self.method == "percentile", name=name)
            self.observers[name] = obs
        obs.observe(values)

    def start_second_pass(self) -> None:
        """Fix every tensor's histogram range from its pass-1 min / max (a no-op for minmax)."""
        if not self.needs_second_pass or self._second_pass:
            return
        for obs in self.observers.values():
            obs.start_second_pass()
        self._second_pass = True

    def observe_histogram(self, name: str, values) -> None:
        """Pass 2: accumulate tensor ``name``'s histogram (ignored for minmax)."""
        if not self.needs_second_pass:
            return
        if not self._second_pass:
            raise CalibrationError(f"tensor {name!r}: observe_histogram() before "
                                   "start_second_pass()")
        obs = self.observers.get(name)
        if obs is None:
            raise CalibrationError(f"tensor {name!r} was not observed in the first pass")
        obs.observe_histogram(values)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """{name: (lo, hi)} with lo <= 0 <= hi, in first-observation order."""
        if self.needs_second_pass and not self._second_pass and self.observers:
            raise CalibrationError(f"{self.method} calibration needs the second pass "
                                   "(start_second_pass() and observe_histogram())")
        out = {}
        for name, obs in self.observers.items():
            if not obs.count:
                continue
            if self.method == "minmax":
                r = _widen(obs.min, obs.max)
            elif not obs.hist_count:
                raise CalibrationError(f"tensor {name!r} got no values in the second pass")
            elif self.method == "percentile":
                r = _percentile_range(obs, self.percentile)
            elif self.method == "entropy":
                r = _entropy_range(obs)
            else:
                r = _mse_range(obs)
            lo, hi = _widen(*r)
            out[name] = (float(lo), float(hi))
        return out


# --------------------------------------------------------------------------- qparams
def qparams_from_range(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero_point) of the asymmetric int8 grid for [lo, hi] (widened to include 0).

    scale = float32((hi - lo) / 255), returned as the Python float of that float32;
    zero_point = round(-128 - lo / scale) (ties away from zero), clamped to [-128, 127], so
    0.0 quantizes to zero_point exactly and dequantizes to 0.0. A degenerate range (lo == hi
    == 0, or one so narrow that its float32 scale is not a normal number) gives scale 1.0 and
    zero_point -128 (the formula with lo = 0): every value near 0 maps to q = -128 = 0.0.
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise CalibrationError(f"range [{lo}, {hi}] is not finite")
    if lo > hi:
        raise CalibrationError(f"range [{lo}, {hi}] has lo > hi")
    lo, hi = _widen(lo, hi)
    scale = float(np.float32((hi - lo) / NUM_STEPS))
    if not (math.isfinite(scale) and scale >= float(np.finfo(np.float32).tiny)):
        if hi - lo > 0 and not math.isfinite(scale):
            raise CalibrationError(f"range [{lo}, {hi}] is too wide for a float32 scale")
        return 1.0, QMIN
    x = QMIN - lo / scale
    zp = int(math.copysign(math.floor(abs(x) + 0.5), x))
    return scale, min(max(zp, QMIN), QMAX)


# --------------------------------------------------------------------------- cache
def _check_ranges(ranges, where: str) -> dict[str, tuple[float, float]]:
    if not isinstance(ranges, dict):
        raise CalibrationError(f"{where}: 'ranges' must be an object of name: [lo, hi]")
    out = {}
    for name, r in ranges.items():
        if not isinstance(name, str):
            raise CalibrationError(f"{where}: tensor name {name!r} is not a string")
        if (not isinstance(r, (list, tuple)) or len(r) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float, np.floating,
                                                                  np.integer)) for v in r)):
            raise CalibrationError(f"{where}: range of {name!r} must be [lo, hi] numbers, "
                                   f"got {r!r}")
        lo, hi = float(r[0]), float(r[1])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise CalibrationError(f"{where}: range of {name!r} is not finite: [{lo}, {hi}]")
        if lo > hi:
            raise CalibrationError(f"{where}: range of {name!r} has lo > hi: [{lo}, {hi}]")
        out[name] = (lo, hi)
    return out


def save_cache(path, ranges, *, method: str, model_sha1: str | None = None,
               extra=None) -> None:
    """Write ``ranges`` ({name: (lo, hi)}) as a calibration cache, atomically (a temporary file
    in the same folder, then ``os.replace``)."""
    path = Path(path)
    if not isinstance(method, str):
        raise CalibrationError(f"{path}: method must be a string, got {method!r}")
    if model_sha1 is not None and not isinstance(model_sha1, str):
        raise CalibrationError(f"{path}: model_sha1 must be a string, got {model_sha1!r}")
    checked = _check_ranges(dict(ranges), str(path))
    doc = {"format": CACHE_FORMAT, "method": method, "model_sha1": model_sha1,
           "ranges": {k: [lo, hi] for k, (lo, hi) in checked.items()}, "extra": extra}
    try:
        text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise CalibrationError(f"{path}: cannot write calibration cache: {e}") from None
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_cache(path) -> dict:
    """Read and validate a calibration cache: {"format", "method", "model_sha1",
    "ranges": {name: (lo, hi)}, "extra"}. Raises ``CalibrationError`` naming the file and the
    problem when it cannot be read or is malformed."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{where}: cannot read calibration cache: {e}") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise CalibrationError(f"{where}: not a JSON calibration cache: {e}") from None
    if not isinstance(doc, dict):
        raise CalibrationError(f"{where}: a calibration cache must be a JSON object")
    for key in ("format", "method", "ranges"):
        if key not in doc:
            raise CalibrationError(f"{where}: missing key {key!r}")
    if doc["format"] != CACHE_FORMAT:
        raise CalibrationError(f"{where}: format {doc['format']!r} is not {CACHE_FORMAT!r}")
    if not isinstance(doc["method"], str):
        raise CalibrationError(f"{where}: 'method' must be a string")
    sha = doc.get("model_sha1")
    if sha is not None and not isinstance(sha, str):
        raise CalibrationError(f"{where}: 'model_sha1' must be a string or null")
    return {"format": CACHE_FORMAT, "method": doc["method"], "model_sha1": sha,
            "ranges": _check_ranges(doc["ranges"], where), "extra": doc.get("extra")}
