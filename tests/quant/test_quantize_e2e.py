"""int8 / fp16 end to end on real trained models and real data: the LeNet trained on real MNIST
digits and open_nsfw on real photos. Oracles: the labels, the float32 bundle run by the same
runtime, and the integer reference (bit-exact)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path
from edgebrew import Session, convert, reference
from edgebrew.quant.accuracy import compare_output
from edgebrew.quant.runner import GraphRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mnist_data  # noqa: E402


@pytest.fixture(scope="module")
def mnist():
    return mnist_data.mnist_split()


@pytest.fixture(scope="module")
def lenet_int8(mnist):
    x_train, _, x_test, _ = mnist
    prototxt, weights = mnist_data.lenet_files()
    fp32 = convert(prototxt, weights, scale=mnist_data.LENET_SCALE)
    int8 = convert(prototxt, weights, scale=mnist_data.LENET_SCALE, quantize="int8",
                   calibration=x_train[:500], validation=x_test, progress=False)
    return fp32, int8


def _run(bundle, x):
    with Session(bundle) as s:
        return np.concatenate([s.run(x[i:i + 1])["prob"] for i in range(len(x))])


def test_lenet_int8_accuracy_within_half_a_point(mnist, lenet_int8):
    _, _, x_test, y_test = mnist
    fp32, int8 = lenet_int8
    p32, p8 = _run(fp32, x_test), _run(int8, x_test)
    acc32 = float((p32.argmax(1) == y_test).mean())
    acc8 = float((p8.argmax(1) == y_test).mean())
    print(f"LeNet held-out accuracy: fp32 {acc32:.3f}, int8 {acc8:.3f}")
    assert acc32 >= 0.95
    assert abs(acc8 - acc32) <= 0.005
    # the stored report is what an independent measurement gives
    stored = int8.metadata.extra["accuracy"]["prob"]
    mine = compare_output(p32, p8)
    assert stored["samples"] == len(x_test)
    assert stored["top1_agreement"] == mine["top1_agreement"]
    assert stored["top5_agreement"] == mine["top5_agreement"]
    assert stored["max_abs_error"] == pytest.approx(mine["max_abs_error"], rel=1e-6)
    assert stored["cosine"] == pytest.approx(mine["cosine"], abs=1e-9)
    q = int8.metadata.extra["quantization"]
    assert q["accuracy_data"] == "validation" and not q["warnings"]


def test_lenet_int8_c_runtime_is_bit_exact_with_the_integer_reference(mnist, lenet_int8):
    _, _, x_test, _ = mnist
    _, int8 = lenet_int8
    g = int8.graph
    fetch = ["ip2"]                          # the dequantized logits: every int8 op upstream
    runner = GraphRunner(g, fetch, threads=2)
    for i in range(0, 40):
        c = runner.run(x_test[i:i + 1])["ip2"]
        r = reference.run(g, x_test[i:i + 1], fetch=fetch)["ip2"]
        assert np.array_equal(c, r), i


def test_bundle_sizes(lenet_int8, tmp_path):
    fp32, int8 = lenet_int8
    prototxt, weights = mnist_data.lenet_files()
    fp16 = convert(prototxt, weights, quantize="fp16", progress=False)
    n32, n8, n16 = (len(b.to_bytes()) for b in (fp32, int8, fp16))
    print(f"LeNet bundle sizes: fp32 {n32}, int8 {n8} ({n8 / n32:.3f}x), "
          f"fp16 {n16} ({n16 / n32:.3f}x)")
    assert n8 <= 0.3 * n32 and n16 <= 0.52 * n32
    assert fp16.metadata.extra["quantization"]["accuracy_data"].startswith("synthetic")


def test_garbage_calibration_converts_and_says_so(mnist):
    _, _, x_test, _ = mnist
    prototxt, weights = mnist_data.lenet_files()
    garbage = np.zeros((32, 1, 28, 28), np.float32)
    b = convert(prototxt, weights, quantize="int8", calibration=garbage,
                validation=x_test[:300], progress=False)
    q = b.metadata.extra["quantization"]
    acc = b.metadata.extra["accuracy"]["prob"]
    assert acc["top1_agreement"] < 0.9          # about 50% on these 300 digits
    text = " ".join(q["warnings"])
    assert "all zero" in text and "accuracy is poor" in text
    # without a validation set the report is on the calibration data, and still warns
    b2 = convert(prototxt, weights, quantize="int8", calibration=garbage, progress=False)
    q2 = b2.metadata.extra["quantization"]
    assert q2["accuracy_data"] == "calibration" and "--validate" in q2["notes"][0]
    assert any("all zero" in w for w in q2["warnings"])
    # pixels 0..255 fed to a net whose declared preprocessing scales them to [0, 1): int8 looks
    # perfect on that data itself, so the report says the data is unlike real inputs ...
    rng = np.random.default_rng(0)
    unscaled = (rng.random((32, 1, 28, 28)) * 255).astype(np.float32)
    b3 = convert(prototxt, weights, scale=mnist_data.LENET_SCALE, quantize="int8",
                 calibration=unscaled, progress=False)
    assert b3.metadata.extra["accuracy"]["prob"]["top1_agreement"] == 1.0
    assert any("outside the [0, 0.9961]" in w for w in
               b3.metadata.extra["quantization"]["warnings"])
    # ... and real validation data shows how poor it is
    b4 = convert(prototxt, weights, scale=mnist_data.LENET_SCALE, quantize="int8",
                 calibration=unscaled, validation=x_test[:300], progress=False)
    assert b4.metadata.extra["accuracy"]["prob"]["top1_agreement"] < 0.5
    assert any("accuracy is poor" in w for w in b4.metadata.extra["quantization"]["warnings"])


def test_keep_fp32_and_max_accuracy_drop(mnist):
    x_train, _, x_test, _ = mnist
    prototxt, weights = mnist_data.lenet_files()
    kept = convert(prototxt, weights, quantize="int8", calibration=x_train[:64],
                   validation=x_test, report=True, progress=False, keep_fp32=["conv1"])
    q = kept.metadata.extra["quantization"]
    assert q["layers"]["conv1"].startswith("kept")
    assert {r["layer"] for r in q["sensitivity"]} == {"conv2", "ip1", "ip2"}
    # all int8 with a small calibration set loses some top-1 agreement ...
    loose = convert(prototxt, weights, quantize="int8", calibration=x_train[:64],
                    validation=x_test, progress=False)
    assert loose.metadata.extra["quantization"]["drop"] > 0
    # ... which a zero budget wins back by keeping the most sensitive layers in fp32
    strict = convert(prototxt, weights, quantize="int8", calibration=x_train[:64],
                     validation=x_test, max_accuracy_drop=0.0, progress=False)
    qs = strict.metadata.extra["quantization"]
    assert strict.metadata.extra["accuracy"]["prob"]["top1_agreement"] == 1.0
    assert qs["drop"] == 0.0 and qs["kept_for_budget"]
    assert qs["kept_for_budget"] == [r["layer"] for r in qs["sensitivity"]][
        :len(qs["kept_for_budget"])]
    for layer in qs["kept_for_budget"]:
        assert qs["layers"][layer].startswith("kept")


def _photo_tensor(img, crop=None, flip=False):
    from PIL import Image
    im = Image.fromarray(img).convert("RGB")
    if crop:
        w, h = im.size
        im = im.crop((int(w * crop), int(h * crop), int(w * (1 - crop)), int(h * (1 - crop))))
    if flip:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    rgb = np.asarray(im.resize((224, 224), Image.BILINEAR), np.float32)
    return (rgb[:, :, ::-1] - np.array([104, 117, 123], np.float32)).transpose(2, 0, 1).copy()


def test_open_nsfw_int8_on_real_photos():
    skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the photos")
    folder = shared_path("models", "open_nsfw")
    prototxt, weights = folder / "deploy.prototxt", folder / "resnet_50_1by2_nsfw.caffemodel"
    calib = np.stack([_photo_tensor(getattr(skdata, n)(), c, f)
                      for n in ("cat", "colorwheel", "hubble_deep_field", "immunohistochemistry",
                                "retina", "rocket")
                      for c in (None, 0.15) for f in (False, True)])
    val = np.stack([_photo_tensor(getattr(skdata, n)()) for n in ("astronaut", "chelsea",
                                                                   "coffee")])
    fp32 = convert(prototxt, weights)
    int8 = convert(prototxt, weights, quantize="int8", calibration=calib, validation=val,
                   progress=False)
    p32, p8 = _run(fp32, val), _run(int8, val)
    print("open_nsfw probabilities fp32 / int8:", p32.round(4).tolist(), p8.round(4).tolist())
    assert np.abs(p8 - p32).max() <= 0.03
    assert len(int8.to_bytes()) <= 0.3 * len(fp32.to_bytes())
    stored = int8.metadata.extra["accuracy"]["prob"]
    assert stored["max_abs_error"] == pytest.approx(float(np.abs(p8 - p32).max()), rel=1e-5)
    # and the report survives the trip through a file, as inspect --json shows it
    back = json.loads(json.dumps(int8.metadata.extra))
    assert set(back["accuracy"]["prob"]) >= {"cosine", "max_abs_error", "top1_agreement",
                                            "top5_agreement"}
