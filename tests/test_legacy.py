"""Legacy V0/V1 nets give the same outputs as their modern form with the same weights."""
import numpy as np
import pytest

import edgebrew
from caffe_files import random_weights, write_caffemodel
from conftest import shared_path
from helpers import rel_error

ZOO = ("models", "zoo")


def _outputs(prototxt, weights, x):
    g = edgebrew.load_caffe(prototxt, weights, inputs={"data": x.shape})
    return g, edgebrew.reference.run(g, {"data": x})


@pytest.mark.parametrize("legacy, modern, weights", [
    ("legacy_v0_lenet", "lenet", "lenet/lenet.caffemodel"),
    ("legacy_v1_lenet", "lenet", "lenet/lenet.caffemodel"),
    ("legacy_v1_cifar10_quick", "cifar10_quick",
     "legacy_v1_cifar10_quick/legacy_v1_cifar10_quick.caffemodel"),   # itself a V1 caffemodel
    ("legacy_v1_cifar10_quick", "cifar10_quick", "cifar10_quick/cifar10_quick.caffemodel"),
])
def test_legacy_net_matches_modern_with_real_weights(legacy, modern, weights):
    w = shared_path(*ZOO, weights)
    old = shared_path(*ZOO, legacy, "deploy.prototxt")
    new = shared_path(*ZOO, modern, "deploy.prototxt")
    shape = edgebrew.load_caffe(new).inputs[0].shape
    x = np.random.default_rng(0).standard_normal((1, *shape[1:])).astype(np.float32)
    g_old, a = _outputs(old, w, x)
    g_new, b = _outputs(new, w, x)
    assert [n.op_type for n in g_old.nodes] == [n.op_type for n in g_new.nodes]
    assert a.keys() == b.keys()
    for k in a:
        assert rel_error(a[k], b[k]) == 0.0, k


@pytest.mark.parametrize("legacy", ["legacy_v1_caffenet", "legacy_v0_caffenet_padding"])
def test_legacy_caffenet_matches_modern(legacy, tmp_path):
    modern = shared_path(*ZOO, "bvlc_reference_caffenet", "deploy.prototxt")
    old = shared_path(*ZOO, legacy, "deploy.prototxt")
    g = edgebrew.load_caffe(modern, inputs={"data": (1, 3, 227, 227)})
    weights = tmp_path / "caffenet.caffemodel"
    write_caffemodel(weights, random_weights(g, seed=1))
    x = np.random.default_rng(1).standard_normal((1, 3, 227, 227)).astype(np.float32)
    g_old, a = _outputs(old, weights, x)
    g_new, b = _outputs(modern, weights, x)
    # The V0 net's separate padding layers are absorbed into the convolutions, as Caffe does.
    assert [(n.op_type, n.attrs) for n in g_old.nodes] == [(n.op_type, n.attrs) for n in g_new.nodes]
    assert not any(n.name.startswith("pad") for n in g_old.nodes)
    assert g_old.node("conv2").attrs["pad"] == (2, 2)
    for k in b:
        assert rel_error(a[k], b[k]) == 0.0, k
