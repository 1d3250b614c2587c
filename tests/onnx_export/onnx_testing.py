"""Helpers of the ONNX export tests: export, check, run in onnxruntime, compare."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export tests need the onnx package")
ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime")

from edgebrew import reference  # noqa: E402
from edgebrew.onnx_export import build_model  # noqa: E402
from helpers import rel_error  # noqa: E402


def check(model):
    """The structural checks every export must pass."""
    onnx.checker.check_model(model, full_check=True)
    inits = {t.name for t in model.graph.initializer}
    assert not inits & {i.name for i in model.graph.input}, "an initializer is a graph input"
    assert model.producer_name == "edgebrew"
    assert model.opset_import[0].version >= 13
    return model


def session(model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def run_onnx(model, feeds, names=None):
    s = session(model)
    names = names or [o.name for o in model.graph.output]
    return dict(zip(names, s.run(names, {k: np.asarray(v, np.float32) for k, v in feeds.items()})))


def export_and_compare(graph, feeds, tol=1e-4, exact_nan=False, **kw):
    """Export ``graph``, check it, run it in onnxruntime and compare with the reference."""
    model = check(build_model(graph, **kw))
    assert [o.name for o in model.graph.output] == graph.output_names
    ours = run_onnx(model, feeds)
    ref = reference.run(graph, feeds)
    for t in graph.output_names:
        assert_matches(ours[t], ref[t], tol, t, exact_nan)
    return model, ours, ref


def assert_matches(a, ref, tol=1e-4, what="", exact_nan=False):
    a, ref = np.asarray(a), np.asarray(ref)
    assert a.shape == ref.shape, (what, a.shape, ref.shape)
    nan_a, nan_r = np.isnan(a), np.isnan(ref)
    if exact_nan or nan_r.any():
        np.testing.assert_array_equal(nan_a, nan_r, err_msg=f"{what}: NaN positions differ")
        zeros = (ref == 0) & ~nan_r
        np.testing.assert_array_equal(np.signbit(a[zeros]), np.signbit(ref[zeros]),
                                      err_msg=f"{what}: signs of zeros differ")
        a, ref = np.where(nan_r, 0, a), np.where(nan_r, 0, ref)
    err = rel_error(a, ref)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol}"
