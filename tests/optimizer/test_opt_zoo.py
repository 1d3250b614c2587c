"""The optimizer on real architectures: every pass alone on the light zoo nets, the whole
pipeline and the memory planner on every zoo net (random weights with non-trivial BatchNorm
statistics, batch 1), and open_nsfw with its real weights.

Outputs — and every tensor the optimized graph still names — must match the unoptimized graph:
relative error max|a - b| / max|ref| <= 1e-5 with the float64 reference executor."""
import numpy as np
import pytest

import edgebrew
from caffe_files import attach, random_weights
from conftest import shared_path
from edgebrew.optimizer import DEFAULT_PIPELINE, check_plan, optimize, plan_memory
from opt_graphs import feeds_for, max_error, shared_tensors
from zoo_nets import SLOW_NETS, ZOO_NETS

TOL = 1e-5
LIGHT = ZOO_NETS
HEAVY = SLOW_NETS
# Each light net: every pass alone, then the whole pipeline (one parametrization, so that the
# net's reference values are computed once); heavy nets: the pipeline only.
CASES = [pytest.param(n, p, id=f"{n}-{p}") for n in LIGHT for p in (*DEFAULT_PIPELINE, "ALL")] \
    + [pytest.param(n, "ALL", id=f"{n}-ALL", marks=pytest.mark.slow) for n in HEAVY]

_cache = {}


def zoo(name):
    """(graph with random weights, feeds, float64 values of every tensor) — one net cached."""
    if name not in _cache:
        _cache.clear()
        filename, shape = {**LIGHT, **HEAVY}[name]
        prototxt = shared_path("models", "zoo", name, filename)
        probe = edgebrew.load_caffe(prototxt, inputs={"data": shape} if shape else None)
        inputs = {t.name: shape or (1, *t.shape[1:]) for t in probe.inputs}
        g = edgebrew.load_caffe(prototxt, inputs=inputs)
        attach(g, random_weights(g, seed=3))
        g.infer_shapes()
        feeds = feeds_for(g)
        every = [t for t in g.shapes if t not in feeds] if name in LIGHT else \
            [t for n in g.nodes if set(n.outputs) & set(g.output_names) for t in n.inputs]
        ref = edgebrew.reference.run(g, feeds, dtype=np.float64, fetch=every)
        _cache[name] = (g, feeds, ref, every)
    return _cache[name]


def check_equal(name, optimized):
    g, feeds, ref, every = zoo(name)
    common = shared_tensors(g, optimized) if name in LIGHT else \
        [t for t in every if t in shared_tensors(g, optimized)]
    assert max_error(g, optimized, feeds, common=common, reference=ref) <= TOL


@pytest.mark.parametrize("name, pass_name", CASES)
def test_zoo_net(name, pass_name):
    g = zoo(name)[0]
    if pass_name != "ALL":                    # one pass alone
        out, log = optimize(g, passes=[pass_name])
        if log[0].changed == 0:               # nothing to compare: the very same graph
            key = lambda n: (n.name, n.op_type, n.inputs, n.outputs, n.attrs, n.weights)  # noqa
            assert [key(n) for n in out.nodes] == [key(n) for n in g.nodes]
            return
        check_equal(name, out)
        check_plan(out, plan_memory(out))
        return
    out, log = optimize(g)
    assert [r.name for r in log] == list(DEFAULT_PIPELINE)
    assert len(out.nodes) < len(g.nodes)
    check_equal(name, out)
    plan = plan_memory(out)
    check_plan(out, plan)
    assert plan.arena_bytes <= 1.1 * plan.lower_bound_bytes, (plan.arena_bytes,
                                                              plan.lower_bound_bytes)
    assert plan.lower_bound_bytes <= plan.arena_bytes <= plan.naive_bytes
    plain = plan_memory(g, inplace=False, zero_copy_concat=False)
    check_plan(g, plain)
    assert plain.arena_bytes <= 1.1 * plain.lower_bound_bytes
    if name in ("bvlc_googlenet", "squeezenet_v1_0"):
        concats = [n.name for n in out.nodes if n.op_type == "Concat"]
        assert len(concats) >= 8 and plan.zero_copy_concats == concats
    if name == "resnet50":
        assert {n.op_type for n in out.nodes} == {"Convolution", "Eltwise", "Pooling",
                                                 "InnerProduct", "Softmax"}


def test_open_nsfw_real_weights():
    folder = shared_path("models", "open_nsfw")
    g = edgebrew.load_caffe(folder / "deploy.prototxt", folder / "resnet_50_1by2_nsfw.caffemodel")
    out, log = optimize(g)
    x = np.random.default_rng(0).uniform(-120, 130, (1, 3, 224, 224))
    assert max_error(g, out, {"data": x}) <= TOL
    # No standalone BatchNorm, Scale or ReLU after a Convolution; every Eltwise + ReLU fused.
    producers = out.producers()
    for n in out.nodes:
        if n.op_type in ("BatchNorm", "Scale", "ReLU"):
            assert producers[n.inputs[0]].op_type != "Convolution", n.name
    relu_after_eltwise = [n.name for n in g.nodes if n.op_type == "ReLU"
                          and g.producers()[n.inputs[0]].op_type == "Eltwise"]
    eltwise = [n for n in out.nodes if n.op_type == "Eltwise"]
    assert len(eltwise) == 16 and len(relu_after_eltwise) == 16
    assert sorted(f for n in eltwise for f in n.fused) == sorted(relu_after_eltwise)
    assert all(n.attrs["activation"] == "ReLU" for n in eltwise)
    counts = {r.name: r.changed for r in log}
    assert counts["fold_batchnorm"] == 106 and counts["fuse_activations"] == 49
    assert len(g.nodes) == 228 and len(out.nodes) == 73
    plan = plan_memory(out)
    check_plan(out, plan)
    assert plan.arena_bytes <= 1.1 * plan.lower_bound_bytes
