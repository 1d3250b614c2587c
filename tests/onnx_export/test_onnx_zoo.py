"""Every zoo net (random weights, batch 1) and open_nsfw (real weights) exported to ONNX (with the
optimizer, as by default), checked, and run in onnxruntime against the reference executor on the
unoptimized graph: relative error <= 1e-4. With dynamic_batch, batch 1 and 4 from one file.

Besides the graph outputs, the input of each final Softmax and of each DetectionOutput is compared
too (a softmax of random weights is often saturated, which would hide errors)."""
import numpy as np
import pytest

import edgebrew
from caffe_files import random_weights, write_caffemodel
from conftest import shared_path
from onnx_testing import assert_matches, check, onnx, run_onnx
from zoo_nets import MORE_LEGACY, SLOW_NETS, ZOO_NETS

NETS = {**ZOO_NETS, **MORE_LEGACY}
SLOW = SLOW_NETS
# Time (the non-slow run stays well under a minute on 2 cores): every net is exported and checked
# in the quick run; the batch-4 runs of the AlexNet-sized nets (60M weights each), ResNet-50 and
# GoogLeNet go with the slow ones (open_nsfw, SqueezeNet and MobileNet-SSD cover their layer kinds
# at batch 4 in the quick run).
SLOW_STATIC = set()
SLOW_DYNAMIC = {"bvlc_alexnet", "legacy_v0_caffenet_padding", "legacy_v1_caffenet",
                "bvlc_reference_caffenet", "resnet50", "bvlc_googlenet"}


def _params(slow_ones):
    return [pytest.param(n, *v, id=n, marks=[pytest.mark.slow] if n in slow_ones else [])
            for n, v in NETS.items()] + \
           [pytest.param(n, *v, id=n, marks=pytest.mark.slow) for n, v in SLOW.items()]


PARAMS = _params(SLOW_STATIC)
DYN_PARAMS = _params(SLOW_DYNAMIC)


@pytest.fixture(scope="module")
def zoo_model(tmp_path_factory):
    """(prototxt, random-weight caffemodel, input shapes at batch 1), written once per net."""
    cache = {}
    folder = tmp_path_factory.mktemp("onnx_zoo")

    def make(name, filename, shape):
        if name not in cache:
            prototxt = shared_path("models", "zoo", name, filename)
            probe = edgebrew.load_caffe(prototxt, inputs={"data": shape} if shape else None)
            inputs = {t.name: tuple(shape or (1, *t.shape[1:])) for t in probe.inputs}
            graph = edgebrew.load_caffe(prototxt, inputs=inputs)
            weights = folder / f"{name}.caffemodel"
            write_caffemodel(weights, random_weights(graph, seed=7))
            cache[name] = (prototxt, weights, inputs)
        return cache[name]
    return make


def watched_tensors(graph):
    """Graph outputs, plus what enters each final Softmax and each DetectionOutput."""
    producers = graph.producers()
    extra = []
    for t in graph.output_names:
        node = producers.get(t)
        if node is not None and node.op_type in ("Softmax", "DetectionOutput"):
            extra.extend(node.inputs)
    return list(dict.fromkeys(graph.output_names + extra))


def with_outputs(graph, names):
    g = graph.copy()
    g.output_names = list(names)
    return g


def feeds_for(inputs, batch, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal((batch, *s[1:])) * scale).astype(np.float32)
            for k, s in inputs.items()}


def compare(graph, model, feeds, watched):
    ours = run_onnx(model, feeds, watched)
    ref = edgebrew.reference.run(graph, feeds, fetch=watched)
    det = {n.outputs[0] for n in graph.nodes if n.op_type == "DetectionOutput"}
    for t in watched:
        if t in det:
            assert_same_detections(ours[t], ref[t])
        else:
            assert_matches(ours[t], ref[t], 1e-4, t)


def assert_same_detections(ours, ref):
    """The same rows in the same order; scores and boxes to float rounding (the scores come
    from onnxruntime's softmax, the reference's from NumPy's)."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    a, b = ours.reshape(-1, 7), ref.reshape(-1, 7)
    assert len(b) > 1, "random weights should give detections to compare"
    np.testing.assert_array_equal(a[:, :2], b[:, :2])
    np.testing.assert_allclose(a[:, 2:], b[:, 2:], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, filename, shape", PARAMS)
def test_zoo_net_onnx_vs_reference(name, filename, shape, zoo_model, tmp_path):
    prototxt, weights, inputs = zoo_model(name, filename, shape)
    graph = edgebrew.load_caffe(prototxt, weights, inputs=inputs)
    watched = watched_tensors(graph)
    path = edgebrew.export_onnx(with_outputs(graph, watched), tmp_path / f"{name}.onnx")
    model = check(onnx.load(str(path)))
    assert [o.name for o in model.graph.output] == watched
    compare(graph, model, feeds_for(inputs, 1), watched)


@pytest.mark.parametrize("name, filename, shape", DYN_PARAMS)
def test_zoo_net_dynamic_batch(name, filename, shape, zoo_model):
    prototxt, weights, inputs = zoo_model(name, filename, shape)
    graph = edgebrew.load_caffe(prototxt, weights, inputs=inputs)
    watched = watched_tensors(graph)
    model = check(edgebrew.onnx_export.build_model(with_outputs(graph, watched),
                                                   dynamic_batch=True))
    assert all(i.type.tensor_type.shape.dim[0].dim_param == "N" for i in model.graph.input)
    compare(graph, model, feeds_for(inputs, 1, seed=1), watched)
    graph4 = edgebrew.load_caffe(prototxt, weights,
                                 inputs={k: (4, *s[1:]) for k, s in inputs.items()})
    compare(graph4, model, feeds_for(inputs, 4, seed=2), watched)


def test_open_nsfw_real_weights():
    folder = shared_path("models", "open_nsfw")
    graph = edgebrew.load_caffe(folder / "deploy.prototxt",
                                folder / "resnet_50_1by2_nsfw.caffemodel")
    watched = watched_tensors(graph)
    model = check(edgebrew.onnx_export.build_model(with_outputs(graph, watched)))
    # Image-like input: preprocessed BGR pixels (mean subtracted) of a smooth random picture.
    rng = np.random.default_rng(3)
    small = rng.uniform(-120, 130, (1, 3, 14, 14)).astype(np.float32)
    x = np.repeat(np.repeat(small, 16, axis=2), 16, axis=3)
    compare(graph, model, {"data": x}, watched)
    ours = run_onnx(model, {"data": x}, ["prob"])["prob"]
    assert 0.0 < ours[0, 1] < 1.0 and abs(ours.sum() - 1) < 1e-5
