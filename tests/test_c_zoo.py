"""Every zoo net (random weights, batch 1) and the real open_nsfw: the C runtime against the
reference executor, relative error <= 1e-4, at 1 and 2 threads."""
import numpy as np
import pytest

import edgebrew
from caffe_files import random_weights, write_caffemodel
from conftest import shared_path
from edgebrew.bundle import Bundle
from helpers import c_runtime_available, rel_error
from test_zoo_opencv import NETS, SLOW

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")
PARAMS = [pytest.param(n, *v, id=n) for n, v in NETS.items()] + \
         [pytest.param(n, *v, id=n, marks=pytest.mark.slow) for n, v in SLOW.items()]


def compare(graph, feeds):
    want = edgebrew.reference.run(graph, feeds)
    bundle = Bundle(graph)
    for threads in (1, 2):
        got = edgebrew.Session(bundle, threads=threads).run(feeds)
        for k in want:
            assert got[k].shape == want[k].shape, k
            if graph.producers()[k].op_type == "DetectionOutput":
                np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)
            else:
                assert rel_error(got[k], want[k]) <= 1e-4, (k, threads)


@pytest.mark.parametrize("name, filename, shape", PARAMS)
def test_zoo_net_c_vs_reference(name, filename, shape, tmp_path):
    prototxt = shared_path("models", "zoo", name, filename)
    probe = edgebrew.load_caffe(prototxt, inputs={"data": shape} if shape else None)
    inputs = {t.name: shape or (1, *t.shape[1:]) for t in probe.inputs}
    graph = edgebrew.load_caffe(prototxt, inputs=inputs)
    weights = tmp_path / "random.caffemodel"
    write_caffemodel(weights, random_weights(graph, seed=3))
    graph = edgebrew.load_caffe(prototxt, weights, inputs=inputs)
    rng = np.random.default_rng(0)
    compare(graph, {k: rng.standard_normal(s).astype(np.float32) for k, s in inputs.items()})


def test_open_nsfw_real_weights_c_vs_reference():
    folder = shared_path("models", "open_nsfw")
    graph = edgebrew.load_caffe(folder / "deploy.prototxt", folder / "resnet_50_1by2_nsfw.caffemodel")
    x = np.random.default_rng(0).uniform(-120, 130, (1, 3, 224, 224)).astype(np.float32)
    compare(graph, {"data": x})
