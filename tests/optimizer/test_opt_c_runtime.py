"""Optimized bundles in the C runtime: folded BatchNorm/Scale, fused activations, affine merges,
removed no-ops, with the planner's in-place and zero-copy placement — relative error <= 1e-4
against the unoptimized graph's reference, at 1 and 2 threads."""
import numpy as np
import pytest

import edgebrew
from caffe_files import attach, random_weights
from conftest import shared_path
from edgebrew.bundle import Bundle
from edgebrew.optimizer import check_plan, optimize, plan_memory
from helpers import c_runtime_available, rel_error

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")
NETS = ["lenet", "cifar10_full", "bvlc_googlenet", "squeezenet_v1_0", "mobilenet_v1",
        "resnet50", "resnet50_stem_test", "mtcnn_det1", "mtcnn_det2", "ultraface_slim320",
        "mobilenet_ssd", "bvlc_reference_caffenet"]


def compare(graph, feeds):
    want = edgebrew.reference.run(graph, feeds)
    out, _ = optimize(graph)
    plan = plan_memory(out)
    check_plan(out, plan)
    bundle = Bundle(out, plan=plan)
    for threads in (1, 2):
        got = edgebrew.Session(bundle, threads=threads).run(feeds)
        for k in want:
            if out.producers()[k].op_type == "DetectionOutput":
                np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)
            else:
                assert rel_error(got[k], want[k]) <= 1e-4, (k, threads)
    return out, plan


@pytest.mark.parametrize("name", NETS)
def test_optimized_zoo_net_in_c(name):
    g = edgebrew.load_caffe(shared_path("models", "zoo", name, "deploy.prototxt"))
    g = edgebrew.load_caffe(shared_path("models", "zoo", name, "deploy.prototxt"),
                            inputs={t.name: (1, *t.shape[1:]) for t in g.inputs})
    attach(g, random_weights(g, seed=5))
    rng = np.random.default_rng(0)
    out, plan = compare(g, {t.name: rng.standard_normal(t.shape).astype(np.float32)
                            for t in g.inputs})
    if name in ("bvlc_googlenet", "squeezenet_v1_0"):
        assert plan.zero_copy_concats


def test_open_nsfw_optimized_in_c():
    folder = shared_path("models", "open_nsfw")
    g = edgebrew.load_caffe(folder / "deploy.prototxt", folder / "resnet_50_1by2_nsfw.caffemodel")
    x = np.random.default_rng(0).uniform(-120, 130, (1, 3, 224, 224)).astype(np.float32)
    out, plan = compare(g, {"data": x})
    assert not any(n.op_type in ("BatchNorm", "Scale", "ReLU") for n in out.nodes)
    assert all(n.attrs.get("activation") == "ReLU" for n in out.nodes if n.op_type == "Eltwise")
