"""SSD layers in ONNX: PriorBox as a constant, Normalize, and DetectionOutput's exact subgraph
(decode, top_k pre-cut, per-class NMS, keep_top_k, Caffe's row order and no-detection rows)
against the reference, fed the very same loc/conf/prior arrays."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from edgebrew import reference
from edgebrew.errors import EdgebrewError
from edgebrew.ir import Graph, Node, TensorInfo
from edgebrew.onnx_export import OnnxExportError, build_model
from helpers import one_op_graph
from onnx_testing import check, export_and_compare, run_onnx

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@settings(max_examples=40, **SETTINGS)
@given(st.data())
def test_prior_box_constant(data):
    mins = data.draw(st.lists(st.sampled_from([8.0, 21.5, 30.0, 60.0]), min_size=1, max_size=2))
    attrs = dict(min_size=tuple(mins),
                 max_size=tuple(m + data.draw(st.sampled_from([5.0, 40.0])) for m in mins)
                 if data.draw(st.booleans()) else (),
                 aspect_ratio=tuple(data.draw(st.lists(st.sampled_from([2.0, 3.0, 0.5, 1.0]),
                                                       max_size=3))),
                 flip=data.draw(st.booleans()), clip=data.draw(st.booleans()),
                 variance=data.draw(st.sampled_from([(0.1,), (0.1, 0.1, 0.2, 0.2)])),
                 step_h=data.draw(st.sampled_from([0.0, 8.0])),
                 step_w=data.draw(st.sampled_from([0.0, 8.0])),
                 offset=data.draw(st.sampled_from([0.5, 0.0])))
    fh, fw = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    try:
        g = one_op_graph("PriorBox", attrs, [(1, 4, fh, fw), (1, 3, 64, 48)])
    except EdgebrewError:
        assume(False)
    rng = np.random.default_rng(0)
    feeds = {"in0": rng.standard_normal((1, 4, fh, fw)).astype(np.float32),
             "in1": rng.standard_normal((1, 3, 64, 48)).astype(np.float32)}
    model, _, _ = export_and_compare(g, feeds, tol=0)
    assert any(n.op_type == "Constant" for n in model.graph.node)


def detection_graph(attrs, n, p_side, n_priors_attrs, seed, ties=False, scale=0.5):
    """PriorBox over a p_side x p_side map + DetectionOutput fed by graph inputs loc and conf."""
    nc = attrs["num_classes"]
    prior = Node("priors", "PriorBox", ["feat", "img"], ["priors"], dict(n_priors_attrs))
    g0 = Graph("pb", [TensorInfo("feat", (1, 1, p_side, p_side)),
                      TensorInfo("img", (1, 3, 60, 60))], [prior], ["priors"])
    g0.infer_shapes()
    prior_value = reference.run(g0, {"feat": np.zeros((1, 1, p_side, p_side), np.float32),
                                     "img": np.zeros((1, 3, 60, 60), np.float32)})["priors"]
    p = prior_value.shape[2] // 4
    nl = 1 if attrs.get("share_location", True) else nc
    g = Graph("det", [TensorInfo("loc", (n, p * nl * 4)), TensorInfo("conf", (n, p * nc)),
                      TensorInfo("feat", (1, 1, p_side, p_side)),
                      TensorInfo("img", (1, 3, 60, 60))],
              [prior, Node("det", "DetectionOutput", ["loc", "conf", "priors"], ["det"],
                           dict(attrs))], ["det"])
    g.infer_shapes()
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, p, nc)) * 2
    if ties:
        logits = np.round(logits)
    conf = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    if ties:
        conf = np.round(conf, 2)
    feeds = {"loc": (rng.standard_normal((n, p * nl * 4)) * scale).astype(np.float32),
             "conf": conf.reshape(n, -1).astype(np.float32),
             "feat": np.zeros((1, 1, p_side, p_side), np.float32),
             "img": np.zeros((1, 3, 60, 60), np.float32)}
    return g, feeds


PRIORS = dict(min_size=(12.0,), max_size=(30.0,), aspect_ratio=(2.0,), flip=True, clip=False,
              variance=(0.1, 0.1, 0.2, 0.2))


def assert_same_detections(ours, ref):
    """Same rows in the same order: ids, labels and scores exactly, boxes to float rounding."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    a, b = ours.reshape(-1, 7), ref.reshape(-1, 7)
    np.testing.assert_array_equal(a[:, :3], b[:, :3])
    np.testing.assert_allclose(a[:, 3:], b[:, 3:], rtol=1e-6, atol=1e-7)


@settings(max_examples=60, **SETTINGS)
@given(st.data())
def test_detection_output_exact(data):
    nc = data.draw(st.integers(1, 4))
    attrs = dict(num_classes=nc, share_location=data.draw(st.booleans()),
                 background_label_id=data.draw(st.sampled_from([0, -1, nc - 1])),
                 nms_threshold=data.draw(st.sampled_from([0.3, 0.45, 0.5, 0.7, 0.0])),
                 top_k=data.draw(st.sampled_from([-1, 0, 3, 10, 1000])),
                 eta=data.draw(st.sampled_from([1.0, 1.0, 0.9])),
                 code_type=data.draw(st.sampled_from(["CENTER_SIZE", "CORNER", "CORNER_SIZE"])),
                 variance_encoded_in_target=data.draw(st.booleans()),
                 keep_top_k=data.draw(st.sampled_from([-1, 1, 4, 7, 500])),
                 confidence_threshold=data.draw(st.sampled_from([None, 0.01, 0.2, 0.999])))
    if attrs["eta"] < 1:
        attrs["nms_threshold"] = min(attrs["nms_threshold"], 0.5)
    n = data.draw(st.integers(1, 3))
    g, feeds = detection_graph(attrs, n, data.draw(st.integers(1, 3)), PRIORS,
                               seed=data.draw(st.integers(0, 1000)),
                               ties=data.draw(st.booleans()),
                               scale=data.draw(st.sampled_from([0.1, 0.5, 3.0])))
    model = check(build_model(g))
    ours = run_onnx(model, feeds)["det"]
    assert_same_detections(ours, reference.run(g, feeds)["det"])


@pytest.mark.parametrize("batch", [1, 3])
def test_detection_output_dynamic_batch(batch):
    attrs = dict(num_classes=3, share_location=True, background_label_id=0, nms_threshold=0.45,
                 top_k=20, code_type="CENTER_SIZE", keep_top_k=10, confidence_threshold=0.1)
    g1, _ = detection_graph(attrs, 1, 3, PRIORS, seed=1)
    model = check(build_model(g1, dynamic_batch=True))
    g, feeds = detection_graph(attrs, batch, 3, PRIORS, seed=2)
    assert_same_detections(run_onnx(model, feeds)["det"], reference.run(g, feeds)["det"])


@pytest.mark.parametrize("keep_top_k, top_k", [(-1, -1), (5, 3)])
def test_no_detection_gives_one_row_per_image(keep_top_k, top_k):
    attrs = dict(num_classes=3, confidence_threshold=0.9999, code_type="CENTER_SIZE",
                 keep_top_k=keep_top_k, top_k=top_k)
    g, feeds = detection_graph(attrs, 2, 2, PRIORS, seed=3)
    ref = reference.run(g, feeds)["det"]
    assert ref.shape == (1, 1, 2, 7) and (ref[..., 1:] == -1).all()
    ours = run_onnx(check(build_model(g)), feeds)["det"]
    assert_same_detections(ours, ref)


def test_adaptive_nms_is_refused_naming_the_layer_and_the_alternative(tmp_path):
    attrs = dict(num_classes=3, eta=0.8, nms_threshold=0.7)
    g, feeds = detection_graph(attrs, 1, 2, PRIORS, seed=4)
    with pytest.raises(OnnxExportError, match=r"layer 'det' \(DetectionOutput\).*adaptive.*"
                                              r"detection_output='inputs'"):
        build_model(g)
    # The alternative: the net up to the layer's inputs.
    model = check(build_model(g, detection_output="inputs"))
    assert [o.name for o in model.graph.output] == ["loc", "conf", "priors"]
    out = run_onnx(model, feeds)
    ref = reference.run(g, feeds, fetch=["priors"])["priors"]
    np.testing.assert_array_equal(out["priors"], ref)


@pytest.mark.parametrize("shared, across", [(True, True), (False, False), (True, False)])
def test_normalize_like_ssd(shared, across):
    rng = np.random.default_rng(5)
    scale = np.full(() if shared else (8,), 20, np.float32)
    g = one_op_graph("Normalize", dict(channel_shared=shared, across_spatial=across),
                     [(2, 8, 5, 5)], [scale])
    export_and_compare(g, {"in0": rng.standard_normal((2, 8, 5, 5)).astype(np.float32)})
