"""Whole zoo nets (random weights, batch 1): the reference executor against OpenCV DNN."""
import numpy as np
import pytest
from google.protobuf import text_format

import edgebrew
from caffe_files import random_weights, write_caffemodel
from conftest import shared_path
from helpers import rel_error
from opencv_oracle import producer_layer, run_opencv
from zoo_nets import SLOW_NETS, ZOO_NETS
from edgebrew.importer.proto import caffe_pb2

# name -> (prototxt file, input override or None, marks)
NETS = ZOO_NETS
SLOW = SLOW_NETS
PARAMS = [pytest.param(n, *v, id=n) for n, v in NETS.items()] + \
         [pytest.param(n, *v, id=n, marks=pytest.mark.slow) for n, v in SLOW.items()]


def opencv_prototxt(graph, src, dst):
    """OpenCV cannot read a train/val net's Python data layer: write the deploy form that
    edgebrew imported (the same layers, an explicit input), keeping everything else as is."""
    net = caffe_pb2.NetParameter()
    text_format.Parse(src.read_text(), net)
    kept = {n.name for n in graph.nodes}
    layers = [l for l in net.layer if l.name in kept]
    del net.layer[:]
    net.layer.extend(layers)
    for t in graph.inputs:
        net.input.append(t.name)
        net.input_shape.add().dim.extend(t.shape)
    dst.write_text(text_format.MessageToString(net))
    return dst


@pytest.mark.parametrize("name, filename, shape", PARAMS)
def test_zoo_net_reference_vs_opencv(name, filename, shape, tmp_path):
    prototxt = shared_path("models", "zoo", name, filename)
    probe = edgebrew.load_caffe(prototxt, inputs={"data": shape} if shape else None)
    inputs = {t.name: shape or (1, *t.shape[1:]) for t in probe.inputs}
    graph = edgebrew.load_caffe(prototxt, inputs=inputs)
    weights = tmp_path / "random.caffemodel"
    write_caffemodel(weights, random_weights(graph, seed=7))
    graph = edgebrew.load_caffe(prototxt, weights, inputs=inputs)
    rng = np.random.default_rng(0)
    feeds = {k: rng.standard_normal(s).astype(np.float32) for k, s in inputs.items()}
    cv_proto = opencv_prototxt(graph, prototxt, tmp_path / "cv.prototxt") \
        if name == "fcn32s_voc" else prototxt

    detection = [n for n in graph.nodes if n.op_type == "DetectionOutput"]
    if detection:
        # Compare what enters DetectionOutput, then the detections as sets sorted by score.
        checked = list(dict.fromkeys(detection[0].inputs))
        ours = edgebrew.reference.run(graph, feeds, fetch=checked)
        theirs = run_opencv(cv_proto, weights, feeds, [producer_layer(graph, t) for t in checked])
        for t, b in zip(checked, theirs):
            assert rel_error(ours[t].ravel(), b.ravel()) <= 1e-4, t
        det = detection[0].outputs[0]
        (cv_det,) = run_opencv(cv_proto, weights, feeds, [producer_layer(graph, det)])
        assert_same_detections(ours[det], cv_det)
        return

    ours = edgebrew.reference.run(graph, feeds)
    layers = [producer_layer(graph, t) for t in graph.output_names]
    theirs = run_opencv(cv_proto, weights, feeds, layers)
    for t, b in zip(graph.output_names, theirs):
        assert ours[t].shape == b.shape, t
        assert rel_error(ours[t], b) <= 1e-4, t


def assert_same_detections(ours, theirs):
    # OpenCV pads its output with all-zero rows up to keep_top_k; Caffe's has only real rows.
    a = ours.reshape(-1, 7)
    b = theirs.reshape(-1, 7)
    b = b[np.any(b != 0, axis=1)]
    assert len(a) > 1, "random weights should give detections to compare"
    a = a[np.lexsort((a[:, 1], -a[:, 2]))]
    b = b[np.lexsort((b[:, 1], -b[:, 2]))]
    assert a.shape == b.shape
    np.testing.assert_array_equal(a[:, :2], b[:, :2])
    np.testing.assert_allclose(a[:, 2:], b[:, 2:], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("photo", ["astronaut", "chelsea", "coffee"])
def test_open_nsfw_real_weights_on_real_photos(photo, tmp_path):
    """The real production model on real photos (scikit-image's), preprocessed as upstream
    does (BGR, mean 104/117/123), against OpenCV DNN."""
    skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the photos")
    from PIL import Image
    folder = shared_path("models", "open_nsfw")
    prototxt, weights = folder / "deploy.prototxt", folder / "resnet_50_1by2_nsfw.caffemodel"
    rgb = np.asarray(Image.fromarray(getattr(skdata, photo)()).convert("RGB")
                     .resize((224, 224), Image.BILINEAR), np.float32)
    x = (rgb[:, :, ::-1] - np.array([104, 117, 123], np.float32)).transpose(2, 0, 1)[None].copy()
    graph = edgebrew.load_caffe(prototxt, weights)
    ours = edgebrew.reference.run(graph, {"data": x})["prob"]
    (theirs,) = run_opencv(prototxt, weights, {"data": x}, ["prob"])
    assert abs(float(ours.sum()) - 1) < 1e-5
    assert rel_error(ours, theirs) <= 1e-4
