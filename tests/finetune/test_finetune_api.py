"""The fine-tuning API: layer choice, clear errors on bad input (never a crash), the rewritten
bundle (shapes, arena, labels, param_mults) in C and Python, training state save/resume."""
import numpy as np
import pytest

import edgebrew
from edgebrew.errors import EdgebrewError
from edgebrew.finetune import FinetuneJob
from ft_common import conv_bundle, ip_bundle
from helpers import c_runtime_available

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")


def lenet_like():
    from edgebrew.ir import Graph, Node, TensorInfo
    rng = np.random.default_rng(0)
    w = {"c.w": rng.standard_normal((2, 1, 3, 3)).astype(np.float32),
         "c.b": np.zeros(2, np.float32),
         "ip.w": (rng.standard_normal((4, 18)) * 0.1).astype(np.float32),
         "ip.b": np.zeros(4, np.float32)}
    nodes = [Node("conv", "Convolution", ["data"], ["conv"], {"num_output": 2, "kernel": (3, 3)},
                  ["c.w", "c.b"]),
             Node("pool", "Pooling", ["conv"], ["pool"], {"kernel": (2, 2), "stride": (2, 2)}),
             Node("ip", "InnerProduct", ["pool"], ["ip"], {"num_output": 4}, ["ip.w", "ip.b"],
                  [(1.0, 1.0), (2.0, 0.0)]),
             Node("prob", "Softmax", ["ip"], ["prob"], {})]
    g = Graph("small", [TensorInfo("data", (1, 1, 8, 8))], nodes, ["prob"], w)
    g.infer_shapes()
    from edgebrew.bundle import Bundle, Metadata
    return Bundle(g, Metadata(model_name="small", labels=["a", "b", "c", "d"],
                              extra={"note": 1}))


def test_default_layer_and_errors():
    b = lenet_like()
    job = FinetuneJob(b)
    assert job.layer == "ip" and job.feature_size == 18 and job.num_output == 4
    with pytest.raises(EdgebrewError, match="no layer named 'nope'"):
        FinetuneJob(b, layer="nope")
    with pytest.raises(EdgebrewError, match="'pool' cannot be fine-tuned: it is a Pooling"):
        FinetuneJob(b, layer="pool")
    with pytest.raises(EdgebrewError, match="'conv' cannot be fine-tuned: its kernel is not 1"):
        FinetuneJob(b, layer="conv")
    with pytest.raises(EdgebrewError, match="num_output must be >= 1"):
        FinetuneJob(b, num_output=0)
    with pytest.raises(EdgebrewError, match="iter_size"):
        FinetuneJob(b, iter_size=0)
    with pytest.raises(EdgebrewError, match="stepsize"):
        FinetuneJob(b, lr_policy="step")
    with pytest.raises(EdgebrewError, match="unknown lr_policy 'cosine'"):
        FinetuneJob(b, lr_policy="cosine")
    x = np.random.default_rng(0).random((6, 1, 8, 8), dtype=np.float32)
    f = job.features(x)
    with pytest.raises(EdgebrewError, match="label 7 of sample 2 is out of range.*4 outputs"):
        job.step(f, [0, 1, 7, 0, 1, 2])
    with pytest.raises(EdgebrewError, match="label -1 of sample 0"):
        job.step(f, [-1, 1, 2, 0, 1, 2])
    with pytest.raises(EdgebrewError, match="5 label values for 6 samples"):
        job.step(f, [0, 1, 2, 0, 1])
    with pytest.raises(EdgebrewError, match=r"data has shape \(6, 1, 8, 7\)"):
        job.features(np.zeros((6, 1, 8, 7), np.float32))
    with pytest.raises(EdgebrewError, match="features have shape"):
        job.step(np.zeros((6, 17), np.float32), [0] * 6)
    with pytest.raises(EdgebrewError, match="set_weights.*takes 72 weights"):
        job.set_weights(np.zeros((3, 18), np.float32), np.zeros(4, np.float32))
    with pytest.raises(EdgebrewError, match="3 labels for 6 samples"):
        edgebrew.finetune(b, x, [0, 1, 2])
    job2 = FinetuneJob(b, iter_size=4)
    with pytest.raises(EdgebrewError, match="iter_size = 4"):
        job2.step(f, [0] * 6)
    assert job.iter == 0                          # failed calls changed nothing


def test_new_num_output_rewrites_shapes_arena_and_labels(tmp_path):
    b = lenet_like()
    x = np.random.default_rng(0).random((20, 1, 8, 8), dtype=np.float32)
    y = np.arange(20) % 7
    res = edgebrew.finetune(b, x, y, num_output=7, epochs=2, batch_size=5)
    t = res.bundle
    ip = next(n for n in t.graph.nodes if n.name == "ip")
    assert ip.attrs["num_output"] == 7
    assert t.graph.initializers[ip.weights[0]].shape == (7, 18)
    assert t.graph.initializers[ip.weights[1]].shape == (7,)
    assert t.graph.shapes["ip"] == (1, 7) and t.graph.shapes["prob"] == (1, 7)
    assert t.plan.arena_bytes >= b.plan.arena_bytes
    assert t.metadata.labels == []                       # the old class names no longer apply
    assert t.metadata.extra["note"] == 1 and t.metadata.extra["finetune"]["num_output"] == 7
    assert ip.param_mults == [(1.0, 1.0), (2.0, 0.0)]
    with edgebrew.Session(t) as s:
        got = s.run(x[:1])["prob"]
    ref = edgebrew.reference.run(t.graph, {"data": x[:1]})["prob"]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
    # same num_output, labels kept; given class names replace them
    r2 = edgebrew.finetune(b, x, y % 4, epochs=1, batch_size=5)
    assert r2.bundle.metadata.labels == ["a", "b", "c", "d"]
    r3 = edgebrew.finetune(b, x, y % 4, epochs=1, batch_size=5, class_names="wxyz")
    assert r3.bundle.metadata.labels == ["w", "x", "y", "z"]
    # a tuned bundle tunes again
    r4 = edgebrew.finetune(t, x, y % 3, num_output=3, epochs=1, batch_size=5)
    assert r4.bundle.graph.shapes["prob"] == (1, 3)


def test_keep_weights_without_num_output():
    b = lenet_like()
    job = FinetuneJob(b)
    w, bias = job.weights
    np.testing.assert_array_equal(w, b.graph.initializers["ip.w"])
    job2 = FinetuneJob(b, reinit=True, seed=5, weight_filler={"type": "gaussian", "std": 0.01})
    w2, b2 = job2.weights
    assert not np.array_equal(w2, w) and abs(w2.std() - 0.01) < 0.005 and not b2.any()
    job3 = FinetuneJob(b, num_output=5, seed=5)
    w3, _ = job3.weights
    a = np.sqrt(3.0 / 18)                                   # xavier, fan_in = K
    assert w3.shape == (5, 18) and np.abs(w3).max() <= a and np.abs(w3).max() > 0.8 * a
    np.testing.assert_array_equal(FinetuneJob(b, num_output=5, seed=5).weights[0], w3)


def test_state_save_and_resume(tmp_path):
    b = ip_bundle(12, 5)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((80, 12)).astype(np.float32), rng.integers(0, 5, 80)
    kw = dict(base_lr=0.05, momentum=0.9, lr_policy="step", stepsize=7, gamma=0.5)
    a = FinetuneJob(b, **kw)
    for it in range(10):
        a.step(x[it * 8:(it + 1) * 8], y[it * 8:(it + 1) * 8])
    a.save_state(tmp_path / "s.brewstate")
    for it in range(10, 20):
        a.step(x[(it % 10) * 8:(it % 10 + 1) * 8], y[(it % 10) * 8:(it % 10 + 1) * 8])
    c = FinetuneJob(b, **kw)
    c.load_state(tmp_path / "s.brewstate")
    assert c.iter == 10
    for it in range(10, 20):
        c.step(x[(it % 10) * 8:(it % 10 + 1) * 8], y[(it % 10) * 8:(it % 10 + 1) * 8])
    for u, v in zip(a.weights, c.weights):
        np.testing.assert_array_equal(u, v)
    # wrong layer shape / corrupted file: clear errors
    with pytest.raises(EdgebrewError, match="state of a 5 x 12 layer"):
        FinetuneJob(b, num_output=3).load_state(tmp_path / "s.brewstate")
    raw = (tmp_path / "s.brewstate").read_bytes()
    (tmp_path / "bad.brewstate").write_bytes(raw[:-20])
    with pytest.raises(EdgebrewError, match="checksum|truncated"):
        c.load_state(tmp_path / "bad.brewstate")
    with pytest.raises(EdgebrewError, match="not a fine-tuning state"):
        c.load_state(_junk(tmp_path))


def _junk(tmp_path):
    p = tmp_path / "junk.brewstate"
    p.write_bytes(b"hello world, not a state file at all....")
    return p


def test_conv_layer_new_num_output_and_save(tmp_path):
    b = conv_bundle(c=4, n=3, h=2, w=3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 4, 2, 3)).astype(np.float32)
    y = rng.integers(0, 6, (10, 6))
    res = edgebrew.finetune(b, x, y, num_output=6, batch_size=5, epochs=2,
                            output=tmp_path / "t.brew")
    t = edgebrew.Bundle.load(tmp_path / "t.brew")
    assert t.graph.initializers["score.w"].shape == (6, 4, 1, 1)
    assert t.graph.shapes["prob"] == (1, 6, 2, 3)
    with edgebrew.Session(tmp_path / "t.brew") as s:
        got = s.run(x[:1])["prob"]
    np.testing.assert_allclose(got, edgebrew.reference.run(t.graph, {"data": x[:1]})["prob"],
                               rtol=1e-5, atol=1e-7)
    assert res.weights[0].shape == (6, 4)


def test_save_errors_are_clear(tmp_path):
    job = FinetuneJob(ip_bundle(4, 2))
    with pytest.raises(EdgebrewError, match="temporary file next to"):
        job.save(tmp_path / "no" / "such" / "dir" / "t.brew")
