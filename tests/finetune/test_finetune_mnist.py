"""Real data: the LeNet trained on real MNIST, ip2 re-initialized and fine-tuned on the 4,000
training digits (base_lr 0.01, momentum 0.9, weight decay 5e-4, batch 64, 5 epochs) reaches
>= 95% on the other 1,000; a new task (even/odd, num_output 2) also learns. The tuned bundle
runs in the C runtime and reads back in Python."""
import time

import numpy as np
import pytest

import edgebrew
from helpers import c_runtime_available
from mnist_data import lenet_files, mnist_split

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")


@pytest.fixture(scope="module")
def mnist():
    return mnist_split()


@pytest.fixture(scope="module")
def lenet():
    prototxt, caffemodel = lenet_files()
    return edgebrew.convert(prototxt, caffemodel, scale=0.00390625,
                            labels=[str(d) for d in range(10)])


def session_accuracy(bundle, x, y):
    with edgebrew.Session(bundle) as s:
        pred = [int(np.argmax(s.run(x[i:i + 1])["prob"])) for i in range(len(x))]
    return float(np.mean(np.asarray(pred) == y))


def test_reinitialized_ip2_reaches_95_percent(mnist, lenet, tmp_path):
    x_train, y_train, x_test, y_test = mnist
    assert len(x_train) == 4000 and len(x_test) == 1000
    t0 = time.monotonic()
    res = edgebrew.finetune(lenet, x_train, y_train, layer="ip2", num_output=10, base_lr=0.01,
                            momentum=0.9, weight_decay=5e-4, batch_size=64, epochs=5,
                            val=(x_test, y_test), output=tmp_path / "tuned.brew")
    seconds = time.monotonic() - t0
    epochs = res.history["epochs"]
    assert len(epochs) == 5 and len(res.history["iterations"]) == 313
    assert epochs[-1]["val_accuracy"] >= 0.95, epochs
    assert res.history["iterations"][0]["loss"] > 1.0 > epochs[-1]["loss"]   # it re-initialized
    w, b = res.weights
    assert w.shape == (10, 500) and b.shape == (10,)
    # the saved bundle runs in C with the trained weights, and reads back in Python
    acc = session_accuracy(tmp_path / "tuned.brew", x_test, y_test)
    assert abs(acc - epochs[-1]["val_accuracy"]) < 1e-6
    back = edgebrew.Bundle.load(tmp_path / "tuned.brew")
    ip2 = next(n for n in back.graph.nodes if n.name == "ip2")
    np.testing.assert_array_equal(back.graph.initializers[ip2.weights[0]], w)
    np.testing.assert_array_equal(back.graph.initializers[ip2.weights[1]], b)
    assert back.metadata.labels == lenet.metadata.labels
    assert back.metadata.extra["finetune"]["layer"] == "ip2"
    assert back.metadata.extra["finetune"]["iterations"] == 313
    assert seconds < 30, seconds
    print(f"\nMNIST fine-tune: val accuracy {epochs[-1]['val_accuracy']:.4f} in {seconds:.2f}s")


def test_new_task_even_odd(mnist, lenet):
    x_train, y_train, x_test, y_test = mnist
    res = edgebrew.finetune(lenet, x_train, y_train % 2, num_output=2, batch_size=64, epochs=3,
                            class_names=["even", "odd"], seed=3)
    assert res.layer == "ip2"
    b = res.bundle
    assert b.metadata.labels == ["even", "odd"]
    assert b.graph.shapes["prob"] == (1, 2)
    ip2 = next(n for n in b.graph.nodes if n.name == "ip2")
    assert ip2.attrs["num_output"] == 2
    assert ip2.param_mults == [(1.0, 1.0), (2.0, 1.0)]
    assert session_accuracy(b, x_test, y_test % 2) >= 0.93
    # Python's reference executor agrees with the C runtime on the rewritten bundle
    ref = edgebrew.reference.run(b.graph, {"data": x_test[:1]})["prob"]
    with edgebrew.Session(b) as s:
        np.testing.assert_allclose(s.run(x_test[:1])["prob"], ref, rtol=1e-4, atol=1e-6)


def test_int8_trunk_fp32_head_and_int8_head(mnist):
    """An int8 trunk (calibration and quantization parameters kept in the rewritten bundle)
    feeds a float32 ip2 that learns as well; an int8 ip2 trains in float32 and is saved
    re-quantized (tests/finetune/test_finetune_int8.py checks it in depth)."""
    x_train, y_train, x_test, y_test = mnist
    prototxt, caffemodel = lenet_files()
    try:
        b = edgebrew.convert(prototxt, caffemodel, scale=0.00390625, quantize="int8",
                             calibration=x_train[:64], keep_fp32=["ip2"])
    except TypeError:
        pytest.skip("this edgebrew has no int8 quantization")
    res = edgebrew.finetune(b, x_train, y_train, num_output=10, batch_size=64, epochs=5,
                            val=(x_test, y_test))
    assert res.history["epochs"][-1]["val_accuracy"] >= 0.95
    t = res.bundle
    assert t.graph.quant and set(t.graph.quant) == set(b.graph.quant)
    assert session_accuracy(t, x_test[:200], y_test[:200]) >= 0.93
    all_int8 = edgebrew.convert(prototxt, caffemodel, scale=0.00390625, quantize="int8",
                                calibration=x_train[:64])
    res8 = edgebrew.finetune(all_int8, x_train[:64], y_train[:64], num_output=10)
    g8 = res8.bundle.graph
    ip2 = next(n for n in g8.nodes if n.name == "ip2")
    assert g8.initializers[ip2.weights[0]].dtype == np.int8
    assert g8.initializers[ip2.weights[1]].dtype == np.int32
    assert g8.quant[ip2.inputs[0]] == all_int8.graph.quant[ip2.inputs[0]]
    assert g8.quant[ip2.outputs[0]] == all_int8.graph.quant[ip2.outputs[0]]
