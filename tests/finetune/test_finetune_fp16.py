"""Fine-tuning a layer of an fp16 bundle: it trains on the widened float32 weights and is saved
as float16 again (round to nearest even, bit for bit what NumPy's astype(float16) gives), so
an fp16 bundle stays fp16; a blob with a value beyond float16's range is saved float32, as
the converter's to_fp16 decides."""
import numpy as np
import pytest

import edgebrew
from edgebrew.bundle import Bundle
from edgebrew.finetune import FinetuneJob
from edgebrew.quant.quantizer import to_fp16
from ft_common import conv_bundle, ip_bundle
from helpers import c_runtime_available

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")


def fp16(bundle):
    g, kept = to_fp16(bundle.graph)
    assert not kept
    return Bundle(g)


def bits(a):
    return np.asarray(a, np.float16).view(np.uint16)


def test_weights_saved_as_float16_round_to_nearest_even():
    b = fp16(ip_bundle(k=12, n=5))
    job = FinetuneJob(b)
    tiny = np.float32(2.0 ** -24)                      # the smallest float16 subnormal
    special = np.array([1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 65504, 65503.99,
                        -65488, 2 ** -25, 3 * 2 ** -25, 2.5 * tiny, 1.5 * tiny, 6.1e-5,
                        -0.0, 1e-9, 2 ** -14 - 2 ** -25, 0.1, -1234.567], np.float64)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 12)).astype(np.float32) * np.float32(3)
    w.reshape(-1)[:len(special)] = special.astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    job.set_weights(w, bias)
    tuned = job.bundle()
    got = tuned.graph.initializers
    assert got["fc.w"].dtype == np.float16 and got["fc.b"].dtype == np.float16
    assert np.array_equal(bits(got["fc.w"]), bits(w.astype(np.float16)))
    assert np.array_equal(bits(got["fc.b"]), bits(bias.astype(np.float16)))
    assert tuned.metadata.extra["finetune"]["precision"] == "fp16"
    # evaluate() uses the weights as saved (rounded to float16)
    x = rng.standard_normal((3, 12)).astype(np.float32)
    _, _, scores = job.evaluate(x, [0, 1, 2], scores=True)
    w16, b16 = (got["fc.w"].astype(np.float64), got["fc.b"].astype(np.float64))
    np.testing.assert_allclose(scores, x.astype(np.float64) @ w16.T + b16, rtol=1e-6, atol=1e-6)
    with edgebrew.Session(tuned) as s:
        s.run(x[:1])


def test_a_blob_beyond_float16_is_saved_float32():
    b = fp16(ip_bundle(k=12, n=5))
    job = FinetuneJob(b)
    w, bias = job.weights
    bias = bias.copy()
    bias[2] = 70000.0
    job.set_weights(w, bias)
    got = job.bundle().graph.initializers
    assert got["fc.w"].dtype == np.float16 and got["fc.b"].dtype == np.float32
    assert np.array_equal(got["fc.b"], bias)
    assert np.array_equal(bits(got["fc.w"]), bits(w.astype(np.float16)))


def test_fp16_conv_1x1_with_a_new_num_output():
    b = fp16(conv_bundle())
    job = FinetuneJob(b, num_output=2, seed=1)
    x = np.random.default_rng(0).standard_normal((8, 4, 2, 3)).astype(np.float32)
    f = job.features(x)
    for i in range(8):
        job.step(f[i:i + 1], np.zeros((1, job.spatial)))
    t = job.bundle()
    w, bias = job.weights
    assert t.graph.initializers["score.w"].dtype == np.float16
    assert np.array_equal(bits(t.graph.initializers["score.w"]).reshape(2, 4),
                          bits(w.astype(np.float16)))
    assert t.graph.shapes["prob"] == (1, 2, 2, 3)
    with edgebrew.Session(t) as s:
        out = s.run(x[:1])["prob"]
    assert out.shape == (1, 2, 2, 3) and np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_fp16_lenet_fine_tuned_stays_fp16(tmp_path):
    from mnist_data import LENET_SCALE, lenet_files, mnist_split
    x_train, y_train, x_test, y_test = mnist_split()
    prototxt, weights = lenet_files()
    b = edgebrew.convert(prototxt, weights, scale=LENET_SCALE, quantize="fp16", progress=False)
    res = edgebrew.finetune(b, x_train, y_train, layer="ip2", num_output=10, base_lr=0.01,
                            momentum=0.9, weight_decay=5e-4, batch_size=64, epochs=5,
                            val=(x_test, y_test), output=tmp_path / "t16.brew")
    back = Bundle.load(tmp_path / "t16.brew").graph
    ip2 = next(n for n in back.nodes if n.name == "ip2")
    w, bias = res.weights
    assert np.array_equal(bits(back.initializers[ip2.weights[0]]), bits(w.astype(np.float16)))
    assert np.array_equal(bits(back.initializers[ip2.weights[1]]), bits(bias.astype(np.float16)))
    for name, value in b.graph.initializers.items():       # the trunk is untouched
        if name not in ip2.weights:
            assert back.initializers[name].dtype == np.float16
            assert np.array_equal(bits(back.initializers[name]), bits(value)), name
    with edgebrew.Session(tmp_path / "t16.brew") as s:
        pred = np.array([int(np.argmax(s.run(x_test[i:i + 1])["prob"])) for i in range(1000)])
    acc = float(np.mean(pred == y_test))
    print(f"\nfp16 LeNet, ip2 re-initialized and fine-tuned: {acc:.4f} on the 1,000 test digits")
    assert acc >= 0.95
    assert abs(acc - res.history["epochs"][-1]["val_accuracy"]) <= 0.002
