"""Fine-tuning an int8 layer: it trains in float32 (from its dequantized weights, on the
dequantized int8 features) and is re-quantized on save exactly as the converter quantizes
(edgebrew.quant.quantizer), keeping the calibration of its input and output.

Oracles: the converter's own quantization functions (bit-exact int8 weights, int32 biases and
float32 scales), the integer reference (edgebrew.reference on the saved graph, bit for bit with
the C runtime), the labels of real MNIST digits (the LeNet converted to int8), and the original
bundle (quantization entries, untouched trunk)."""
from types import SimpleNamespace

import numpy as np
import pytest

import edgebrew
from edgebrew import reference
from edgebrew.bundle import Bundle
from edgebrew.errors import EdgebrewError
from edgebrew.finetune import FinetuneJob
from edgebrew.ir import Node
from edgebrew.quant import quantizer
from edgebrew.quant.runner import GraphRunner
from ft_common import conv_bundle, ip_bundle
from helpers import c_runtime_available

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")


def converter_quantization(w, b, in_q):
    """What the converter writes for float32 weights (w, b) behind an input quantized by
    in_q: (int8 weights, their QuantParams, int32 bias or None), by quantizer's own code."""
    src = SimpleNamespace(initializers={"w": np.asarray(w, np.float32)})
    names = ["w"]
    if b is not None:
        src.initializers["b"] = np.asarray(b, np.float32)
        names.append("b")
    dst = SimpleNamespace(initializers={}, quant={})
    node = Node("layer", "InnerProduct", ["x"], ["y"], {}, names)
    quantizer._quantize_weights(src, dst, node, in_q)
    qb = dst.initializers[node.weights[1]] if b is not None else None
    return dst.initializers[node.weights[0]], dst.quant[node.weights[0]], qb


def layer(graph, name):
    return next(n for n in graph.nodes if n.name == name)


def assert_requantized_like_the_converter(saved_graph, name, weights, in_q):
    node = layer(saved_graph, name)
    w, b = weights
    qw, qp, qb = converter_quantization(w, b, in_q)
    got_w = saved_graph.initializers[node.weights[0]]
    got_q = saved_graph.quant[node.weights[0]]
    assert got_w.dtype == np.int8
    assert np.array_equal(got_w.reshape(qw.shape[0], -1), qw.reshape(qw.shape[0], -1))
    assert got_q.axis == 0 and got_q.scale.dtype == np.float32
    assert np.array_equal(got_q.scale, qp.scale)            # bit-equal float32 scales
    assert np.array_equal(got_q.zero_point, np.zeros(len(qp.scale), np.int64))
    if b is not None:
        got_b = saved_graph.initializers[node.weights[1]]
        assert got_b.dtype == np.int32 and np.array_equal(got_b, qb)


# ---- small synthetic int8 bundles (no data needed) ------------------------------------------
def int8_ip(n=5, k=12, batch=4):
    b = ip_bundle(k=k, n=n, batch=batch)
    g, decision = quantizer.quantize_int8(b.graph, {"data": (-1.0, 1.0), "fc": (-2.0, 2.5)})
    assert decision["fc"] == "int8"
    return Bundle(g)


def int8_conv():
    b = conv_bundle()
    g, decision = quantizer.quantize_int8(
        b.graph, {"data": (-1.0, 1.0), "r": (0.0, 1.0), "score": (-1.5, 1.5)})
    assert decision["score"] == "int8"
    return Bundle(g)


@pytest.mark.parametrize("make, name, in_name", [(int8_ip, "fc", "data:int8"),
                                                 (int8_conv, "score", "r:int8")])
def test_synthetic_int8_layer_trains_and_requantizes_like_the_converter(make, name, in_name):
    b = make()
    rng = np.random.default_rng(1)
    shape = b.graph.inputs[0].shape
    x = rng.uniform(-1, 1, (48,) + tuple(shape[1:])).astype(np.float32)
    job = FinetuneJob(b, num_output=3, base_lr=0.05, seed=2)
    assert job.layer == name and job.num_output == 3
    feats = job.features(x)
    # the features are the int8 input, dequantized: s_in * (q - zp_in)
    q_in = b.graph.quant[in_name]
    fetched = reference.run(b.graph, {"data": x[:shape[0]]}, fetch=[in_name])[in_name]
    np.testing.assert_array_equal(
        feats[:shape[0]].reshape(fetched.shape),
        (fetched.astype(np.int64) - q_in.zp).astype(np.float32) * np.float32(q_in.s))
    labels = rng.integers(0, 3, (48, job.spatial))
    for i in range(0, 48, shape[0]):
        job.step(feats[i:i + shape[0]], labels[i:i + shape[0]])
    tuned = job.bundle()
    g = tuned.graph
    assert_requantized_like_the_converter(g, name, job.weights, q_in)
    # calibration kept; the new num_output flows through Dequantize and Softmax
    out_name = layer(b.graph, name).outputs[0]
    assert g.quant[out_name] == b.graph.quant[out_name] and g.quant[in_name] == q_in
    assert g.shapes[out_name][1] == 3 and g.shapes[g.output_names[0]][1] == 3
    assert tuned.metadata.extra["finetune"]["precision"] == "int8"
    # the C runtime runs the saved bundle bit for bit as the integer reference, and evaluate()
    # scores the head exactly as the runtime does
    deq = name                            # the Dequantize output keeps the layer's blob name
    assert layer(g, f"{name}:dequantize").outputs == [deq]
    runner = GraphRunner(g, [deq], threads=1)
    c = runner.run(x[:shape[0]])[deq]
    r = reference.run(g, {"data": x[:shape[0]]}, fetch=[deq])[deq]
    assert np.array_equal(c, r)
    _, _, scores = job.evaluate(feats[:shape[0]], labels[:shape[0]], scores=True)
    assert np.array_equal(scores.reshape(c.shape), c)


def test_requantization_edge_cases_match_the_converter():
    """All-zero channels (scale 1.0), a bias too large for the weights' grid (the scale floor
    |b| / (s_in 2^30)), values on rounding ties, the largest weight of a channel."""
    b = int8_ip(n=5, k=12)
    job = FinetuneJob(b)
    s_in = b.graph.quant["data:int8"].s
    w = np.zeros((5, 12), np.float32)
    bias = np.zeros(5, np.float32)
    w[1] = np.linspace(-0.3, 0.5, 12)
    w[2, :] = 1e-6
    bias[2] = 3.0e6 * s_in                 # far beyond 2^30 steps of s_in * max|w| / 127
    bias[3] = 0.7                          # zero weights, non-zero bias
    w[4] = (np.arange(12) - 6 + 0.5) / 128     # scale 2^-7: every value a tie, away from 0
    w[4, 11] = 127 / 128
    bias[4] = -0.25
    job.set_weights(w, bias)
    tuned = job.bundle()
    g = tuned.graph
    assert_requantized_like_the_converter(g, "fc", (w, bias), b.graph.quant["data:int8"])
    scale = g.quant[layer(g, "fc").weights[0]].scale
    assert scale[0] == 1.0 and scale[2] > np.float32(1e-6 / 127) and scale[4] == 2.0 ** -7
    assert np.array_equal(g.initializers[layer(g, "fc").weights[0]][4, :2], [-6, -5])
    # the saved bundle loads and runs
    with edgebrew.Session(tuned) as s:
        s.run(np.zeros(g.inputs[0].shape, np.float32))


def test_diverged_weights_are_not_quantized():
    b = int8_ip()
    job = FinetuneJob(b, base_lr=1e30, momentum=0.0, weight_decay=0.0)
    job.step(np.full((4, 12), 1e10, np.float32), [0, 1, 2, 3])
    assert not np.all(np.isfinite(job.weights[0]))
    with pytest.raises(EdgebrewError, match="not finite.*diverged"):
        job.to_bytes()


# ---- the real LeNet on real MNIST digits -----------------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    from mnist_data import mnist_split
    return mnist_split()


@pytest.fixture(scope="module")
def lenet_int8(mnist):
    from mnist_data import LENET_SCALE, lenet_files
    x_train = mnist[0]
    prototxt, weights = lenet_files()
    return edgebrew.convert(prototxt, weights, scale=LENET_SCALE, quantize="int8",
                            calibration=x_train[:500], progress=False)


@pytest.fixture(scope="module")
def tuned(mnist, lenet_int8, tmp_path_factory):
    x_train, y_train, x_test, y_test = mnist
    path = tmp_path_factory.mktemp("int8") / "tuned_int8.brew"
    res = edgebrew.finetune(lenet_int8, x_train, y_train, layer="ip2", num_output=10,
                            base_lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=64,
                            epochs=5, val=(x_test, y_test), output=path)
    return res, path


def session_accuracy(path, x, y):
    with edgebrew.Session(path) as s:
        pred = [int(np.argmax(s.run(x[i:i + 1])["prob"])) for i in range(len(x))]
    return float(np.mean(np.asarray(pred) == y))


def test_int8_ip2_reinitialized_reaches_95_percent(mnist, tuned):
    _, _, x_test, y_test = mnist
    res, path = tuned
    epochs = res.history["epochs"]
    assert len(epochs) == 5 and res.history["iterations"][0]["loss"] > 1.0 > epochs[-1]["loss"]
    acc = session_accuracy(path, x_test, y_test)          # the saved bundle, loaded fresh
    print(f"\nint8 LeNet, ip2 re-initialized and fine-tuned: {acc:.4f} on the 1,000 test digits")
    assert acc >= 0.95
    # evaluate() runs the int8 head as the saved bundle does
    assert abs(acc - epochs[-1]["val_accuracy"]) < 1e-6


def test_saved_ip2_is_int8_and_the_calibration_is_kept(lenet_int8, tuned):
    res, path = tuned
    orig, back = lenet_int8.graph, Bundle.load(path).graph
    ip2, ip2_orig = layer(back, "ip2"), layer(orig, "ip2")
    assert back.initializers[ip2.weights[0]].dtype == np.int8
    assert back.initializers[ip2.weights[0]].shape == (10, 500)
    q = back.quant[ip2.weights[0]]
    assert q.per_channel and q.axis == 0 and len(q.scale) == 10 and not q.zero_point.any()
    assert back.initializers[ip2.weights[1]].dtype == np.int32
    for t in (ip2.inputs[0], ip2.outputs[0]):
        assert back.quant[t] == orig.quant[t], t
    # every other quantization entry and every trunk weight is untouched
    assert set(back.quant) == set(orig.quant)
    for t in orig.quant:
        if t != ip2_orig.weights[0]:
            assert back.quant[t] == orig.quant[t], t
    for name, value in orig.initializers.items():
        if name not in ip2_orig.weights:
            assert np.array_equal(back.initializers[name], value), name
    assert not np.array_equal(back.initializers[ip2.weights[0]],
                              orig.initializers[ip2_orig.weights[0]])   # it did change
    assert Bundle.load(path).metadata.extra["finetune"]["precision"] == "int8"


def test_requantized_ip2_equals_the_converters_quantization(lenet_int8, tuned):
    res, path = tuned
    back = Bundle.load(path).graph
    w, b = res.weights
    assert w.dtype == np.float32 and w.shape == (10, 500)
    assert_requantized_like_the_converter(back, "ip2", (w, b), lenet_int8.graph.quant["ip1"])


def test_c_runtime_is_bit_exact_with_the_integer_reference(mnist, tuned):
    _, _, x_test, _ = mnist
    _, path = tuned
    g = Bundle.load(path).graph
    fetch = ["ip2"]                       # the Dequantize output: the logits before Softmax
    assert layer(g, "ip2:dequantize").outputs == fetch
    runner = GraphRunner(g, fetch, threads=2)
    for i in range(40):
        c = runner.run(x_test[i:i + 1])["ip2"]
        r = reference.run(g, x_test[i:i + 1], fetch=fetch)["ip2"]
        assert np.array_equal(c, r), i


def test_evaluate_scores_are_the_saved_int8_head(mnist, tuned):
    _, _, x_test, y_test = mnist
    res, path = tuned
    job = res.job
    feats = job.features(x_test[:60])
    _, _, scores = job.evaluate(feats, y_test[:60], scores=True)
    runner = GraphRunner(Bundle.load(path).graph, ["ip2"], threads=2)
    c = np.concatenate([runner.run(x_test[i:i + 1])["ip2"] for i in range(60)])
    assert np.array_equal(scores, c)


def test_keep_mode_starts_from_the_dequantized_layer(mnist, lenet_int8):
    _, _, x_test, y_test = mnist
    g = lenet_int8.graph
    ip2 = layer(g, "ip2")
    qw, qb = g.initializers[ip2.weights[0]], g.initializers[ip2.weights[1]]
    scale, s_in = g.quant[ip2.weights[0]].scale, g.quant["ip1"].s
    job = FinetuneJob(lenet_int8, layer="ip2")
    w, b = job.weights
    np.testing.assert_array_equal(w, qw.astype(np.float32) * scale[:, None])
    np.testing.assert_array_equal(b, (qb * np.float64(s_in) * scale.astype(np.float64))
                                  .astype(np.float32))
    # saved untrained, the LeNet's ip2 comes back exactly as the converter wrote it
    back = job.bundle().graph
    assert np.array_equal(back.initializers[ip2.weights[0]], qw)
    assert np.array_equal(back.initializers[ip2.weights[1]], qb)
    assert np.array_equal(back.quant[ip2.weights[0]].scale, scale)
    # and evaluate() scores the original int8 model
    feats = job.features(x_test[:200])
    _, acc = job.evaluate(feats, y_test[:200])
    with edgebrew.Session(lenet_int8) as s:
        pred = [int(np.argmax(s.run(x_test[i:i + 1])["prob"])) for i in range(200)]
    assert acc == pytest.approx(np.mean(np.asarray(pred) == y_test[:200]), abs=1e-6)


def test_new_num_output_keeps_the_output_calibration(mnist, lenet_int8, tmp_path):
    x_train, y_train, x_test, y_test = mnist
    res = edgebrew.finetune(lenet_int8, x_train, y_train % 2, num_output=2, batch_size=64,
                            epochs=2, class_names=["even", "odd"], seed=3,
                            output=tmp_path / "eo.brew")
    g, orig = Bundle.load(tmp_path / "eo.brew").graph, lenet_int8.graph
    assert g.shapes["ip2:int8"] == (1, 2) and g.shapes["ip2"] == (1, 2)
    assert g.shapes["prob"] == (1, 2)
    assert g.quant["ip2:int8"] == orig.quant["ip2:int8"]      # the old head's calibrated range
    assert len(g.quant[layer(g, "ip2").weights[0]].scale) == 2
    assert session_accuracy(tmp_path / "eo.brew", x_test[:300], y_test[:300] % 2) >= 0.9
    runner = GraphRunner(g, ["ip2"], threads=1)
    for i in range(10):
        assert np.array_equal(runner.run(x_test[i:i + 1])["ip2"],
                              reference.run(g, x_test[i:i + 1], fetch=["ip2"])["ip2"])
