"""Fused activations on Convolution, Deconvolution, InnerProduct and Eltwise: the declarations
(attributes, the PReLU slope blob), the reference run (bit-identical to the op pair), errors, and
a bundle round trip."""
import numpy as np
import pytest

from edgebrew import reference
from edgebrew.bundle import Bundle
from edgebrew.errors import EdgebrewError
from edgebrew.ir import Graph, TensorInfo
from opt_graphs import build, node

ACTS = [("ReLU", {}), ("ReLU", {"negative_slope": 0.1}), ("PReLU", {}),
        ("PReLU", {"channel_shared": True}), ("Clip", {"min": -0.5, "max": 0.7}),
        ("Sigmoid", {}), ("TanH", {})]

PRODUCERS = {
    "Convolution": ({"x": (1, 3, 6, 6)}, dict(num_output=4, kernel=(3, 3), pad=(1, 1))),
    "Convolution_nobias": ({"x": (1, 3, 6, 6)}, dict(num_output=4, kernel=(3, 3),
                                                      bias_term=False)),
    "Deconvolution": ({"x": (1, 4, 3, 3)}, dict(num_output=6, kernel=(4, 4), stride=(2, 2),
                                                group=2)),
    "InnerProduct": ({"x": (2, 3, 2, 2)}, dict(num_output=5)),
    "Eltwise": ({"x": (1, 4, 3, 3), "y": (1, 4, 3, 3)}, dict(operation="SUM", coeff=(1.0, -2.0))),
}


def _pair_and_fused(producer, act, act_attrs):
    inputs, attrs = PRODUCERS[producer]
    op_type = producer.split("_")[0]
    n_w = {"Convolution": 1 + attrs.get("bias_term", True), "Deconvolution": 2,
           "InnerProduct": 2, "Eltwise": 0}[op_type]
    wnames = [f"p.w{i}" for i in range(n_w)]
    p = node("p", op_type, list(inputs), ["t"], wnames, **attrs)
    a_w = ["a.slope"] if act == "PReLU" else []
    a = node("a", act, ["t"], ["out"], a_w, **act_attrs)
    pair = build(inputs, [p, a], ["out"], seed=1)

    fused_attrs = dict(attrs, activation=act)
    if act == "ReLU":
        fused_attrs["negative_slope"] = act_attrs.get("negative_slope", 0.0)
    if act == "Clip":
        fused_attrs.update(clip_min=act_attrs["min"], clip_max=act_attrs["max"])
    weights = {w: pair.initializers[w] for w in wnames}
    if act == "PReLU":
        c = pair.shapes["t"][1]
        weights["p.slope"] = np.broadcast_to(pair.initializers["a.slope"].reshape(-1), (c,))
    f = node("p", op_type, list(inputs), ["out"], wnames + (["p.slope"] if act == "PReLU" else []),
             **fused_attrs)
    fused = Graph("f", [TensorInfo(k, s) for k, s in inputs.items()], [f], ["out"],
                  {k: np.ascontiguousarray(v, np.float32) for k, v in weights.items()})
    fused.infer_shapes()
    return pair, fused


@pytest.mark.parametrize("producer", list(PRODUCERS))
@pytest.mark.parametrize("act, act_attrs", ACTS, ids=lambda v: str(v))
def test_fused_activation_equals_the_op_pair(producer, act, act_attrs):
    pair, fused = _pair_and_fused(producer, act, act_attrs)
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        feeds = {t.name: rng.standard_normal(t.shape).astype(dtype) for t in pair.inputs}
        a = reference.run(pair, feeds, dtype=dtype)["out"]
        b = reference.run(fused, feeds, dtype=dtype)["out"]
        np.testing.assert_array_equal(a, b)      # the same math, not merely close


def test_prelu_slope_is_a_trailing_blob():
    _, fused = _pair_and_fused("Convolution_nobias", "PReLU", {})
    n = fused.nodes[0]
    assert n.op.weight_names(n) == ["weight", "slope"]
    assert fused.weight_shapes(n) == [(4, 3, 3, 3), (4,)]
    _, fused = _pair_and_fused("Eltwise", "PReLU", {})
    n = fused.nodes[0]
    assert n.op.num_weights(n) == 1 and fused.weight_shapes(n) == [(4,)]
    _, fused = _pair_and_fused("InnerProduct", "PReLU", {})
    n = fused.nodes[0]
    assert n.op.weight_names(n) == ["weight", "bias", "slope"]
    assert fused.weight_shapes(n)[-1] == (5,)


def test_defaults_leave_the_ops_unchanged():
    g = build({"x": (1, 2, 4, 4)}, [node("c", "Convolution", ["x"], ["y"], ["c.w", "c.b"],
                                         num_output=3, kernel=(1, 1))], ["y"])
    a = g.nodes[0].attrs
    assert a["activation"] is None and a["negative_slope"] is None
    assert a["clip_min"] is None and a["clip_max"] is None
    assert g.nodes[0].fused == []


@pytest.mark.parametrize("attrs, message", [
    ({"activation": "Swish"}, "unknown fused activation"),
    ({"activation": "Clip", "clip_min": 0.0}, "clip_min and clip_max"),
])
def test_bad_fused_activation_is_a_clear_error(attrs, message):
    with pytest.raises(EdgebrewError, match=message):
        build({"x": (1, 2, 4, 4)}, [node("c", "Convolution", ["x"], ["y"], ["c.w", "c.b"],
                                         num_output=3, kernel=(1, 1), **attrs)], ["y"])


def test_fused_ops_round_trip_through_a_bundle():
    _, fused = _pair_and_fused("Convolution", "Clip", {"min": -0.5, "max": 0.7})
    fused.nodes[0].fused = ["bn", "a"]
    back = Bundle.from_bytes(Bundle(fused).to_bytes())
    n = back.graph.nodes[0]
    assert n.fused == ["bn", "a"]
    assert (n.attrs["activation"], n.attrs["clip_min"], n.attrs["clip_max"]) == ("Clip", -0.5, 0.7)
    assert n.attrs["negative_slope"] is None
    _, fused = _pair_and_fused("Eltwise", "PReLU", {})
    back = Bundle.from_bytes(Bundle(fused).to_bytes())
    x = {t.name: np.random.default_rng(2).standard_normal(t.shape).astype(np.float32)
         for t in fused.inputs}
    np.testing.assert_array_equal(reference.run(back.graph, x)["out"],
                                  reference.run(fused, x)["out"])
