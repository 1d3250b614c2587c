"""int8 bundles export as QDQ ONNX that onnxruntime runs with its int8 kernels, close to
edgebrew's own int8 result (the integer reference)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgebrew import convert, export_onnx, reference  # noqa: E402
from edgebrew.quant.samples import load_samples  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quant"))
from test_quantizer import _branchy_graph  # noqa: E402

LENET = Path(__file__).resolve().parents[2] / "examples" / "lenet_mnist"


def _ort(path, optimized_path=None):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if optimized_path:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_lenet_int8_qdq_runs_as_int8_in_onnxruntime(tmp_path):
    fp32 = convert(LENET / "lenet_deploy.prototxt", LENET / "lenet_mnist.caffemodel",
                   scale=0.00390625)
    digits = load_samples(LENET / "digits", fp32.metadata.preprocessing, (1, 1, 28, 28))
    rng = np.random.default_rng(0)
    # calibration: the digits plus noisy copies of them
    calib = np.clip(np.concatenate([digits, digits + rng.normal(0, 0.05, digits.shape)]), 0, 1)
    b = convert(LENET / "lenet_deploy.prototxt", LENET / "lenet_mnist.caffemodel",
                scale=0.00390625, quantize="int8", calibration=calib.astype(np.float32),
                progress=False)
    path = export_onnx(b, tmp_path / "lenet_int8.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 6
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
                 and any(a.name == "axis" for a in n.attribute)]
    assert len(weight_dq) >= 4                             # per-channel weights and biases
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["edgebrew_export"])["precision"] == "int8 (QDQ)"
    opt = tmp_path / "opt.onnx"
    sess = _ort(path, opt)
    fused = [n.op_type for n in onnx.load(str(opt)).graph.node]
    assert "QLinearConv" in fused, fused                   # onnxruntime runs the convs in int8
    agree, worst = 0, 0.0
    for i in range(len(digits)):
        ours = reference.run(b.graph, digits[i:i + 1])["prob"]
        theirs = sess.run(None, {"data": digits[i:i + 1]})[0]
        agree += int(ours.argmax() == theirs.argmax())
        worst = max(worst, float(np.abs(ours - theirs).max()))
    # QuantizeLinear rounds ties to even, edgebrew away from zero: close, not bit-exact
    assert agree == len(digits)
    assert worst < 0.02, worst


def test_branchy_int8_graph_qdq_close_to_edgebrew(tmp_path):
    from edgebrew.quant.calibrate import collect_ranges
    from edgebrew.quant.quantizer import quantize_int8
    g = _branchy_graph()
    rng = np.random.default_rng(1)
    samples = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    q, _ = quantize_int8(g, collect_ranges(g, samples, "minmax", progress=False))
    path = export_onnx(q, tmp_path / "branchy.onnx")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = _ort(path)
    for i in range(4):
        ours = reference.run(q, samples[i:i + 1])
        theirs = dict(zip([o.name for o in sess.get_outputs()],
                          sess.run(None, {"data": samples[i:i + 1]})))
        for t in ("fc", "sig"):
            step = np.abs(ours[t]).max()
            assert np.abs(ours[t] - theirs[t]).max() <= 0.03 * step, t


@pytest.mark.parametrize("net", ["bvlc_googlenet", "squeezenet_v1_0", "mobilenet_v1",
                                 "resnet50", "ultraface_slim320", "cifar10_quick"])
def test_zoo_int8_qdq_agrees_with_edgebrew_int8(net, tmp_path):
    """Zoo nets (random weights) in int8: onnxruntime on the QDQ export vs edgebrew's C int8
    run, on samples outside the calibration set. The two int8 engines round differently
    (QuantizeLinear ties to even, float requantization), so they are not bit-exact; they must
    agree with each other at least as closely as int8 agrees with float32 (cosine), and to
    0.999 at least where the nets are shallow enough for that."""
    from conftest import shared_path
    from caffe_files import random_weights, write_caffemodel
    from edgebrew import Session, load_caffe
    from edgebrew.quant.accuracy import compare_output
    proto = shared_path("models", "zoo", net, "deploy.prototxt")
    g = load_caffe(proto)
    inputs = {t.name: (1, *t.shape[1:]) for t in g.inputs}
    weights = tmp_path / f"{net}.caffemodel"
    write_caffemodel(weights, random_weights(load_caffe(proto, inputs=inputs), seed=0))
    shape = inputs[g.inputs[0].name]
    x = np.random.default_rng(0).standard_normal((7, *shape[1:])).astype(np.float32)
    b = convert(proto, weights, inputs=inputs, quantize="int8", calibration=x[:4],
                progress=False)
    path = export_onnx(b, tmp_path / f"{net}.onnx")
    sess = _ort(path)
    names = [o.name for o in sess.get_outputs()]
    assert names == b.graph.output_names
    test = range(4, 7)                                         # not calibrated on
    with Session(b) as s8, Session(convert(proto, weights, inputs=inputs)) as s32:
        ours = [s8.run(x[i:i + 1]) for i in test]
        fp32 = [s32.run(x[i:i + 1]) for i in test]
    theirs = [dict(zip(names, sess.run(None, {g.inputs[0].name: x[i:i + 1]}))) for i in test]
    stack = lambda runs, t: np.concatenate([r[t] for r in runs])  # noqa: E731
    for t in names:
        both = compare_output(stack(ours, t), stack(theirs, t))["cosine"]
        ours_vs_fp32 = compare_output(stack(fp32, t), stack(ours, t))["cosine"]
        theirs_vs_fp32 = compare_output(stack(fp32, t), stack(theirs, t))["cosine"]
        print(f"{net} {t}: ORT-QDQ vs edgebrew int8 cosine {both:.6f} (vs fp32: edgebrew "
              f"{ours_vs_fp32:.6f}, ORT {theirs_vs_fp32:.6f})")
        assert both >= min(ours_vs_fp32, theirs_vs_fp32, 0.999), t
