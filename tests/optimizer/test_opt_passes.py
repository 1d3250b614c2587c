"""Each pass on small graphs built for its edge cases: the pass changes what it should, leaves
what it must not touch, keeps graph-output names, and the outputs stay the same."""
import numpy as np
import pytest

import edgebrew
from edgebrew.errors import EdgebrewError
from edgebrew.optimizer import PASSES, optimize
from opt_graphs import build, load_text, max_error, node, types

TOL = 1e-5


def run_pass(name, g):
    out, record = PASSES[name].run(g)
    assert max_error(g, out) <= TOL
    return out, record


CONV_BN_SCALE_RELU = """
name: "t"
input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 bias_term: false } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: %s } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
"""


# ------------------------------------------------------------------------------ fold_batchnorm
@pytest.mark.parametrize("scale_bias", ["true", "false"])
def test_fold_in_place_chain_into_conv_without_bias(tmp_path, scale_bias):
    g = load_text(tmp_path, CONV_BN_SCALE_RELU % scale_bias)
    assert g.nodes[0].outputs == ["conv1@conv1"] and g.nodes[0].attrs["bias_term"] is False
    out, rec = run_pass("fold_batchnorm", g)
    assert types(out) == ["Convolution", "ReLU", "Pooling"]
    conv = out.nodes[0]
    assert conv.name == "conv1" and conv.fused == ["bn1", "scale1"]
    assert conv.attrs["bias_term"] is True and len(conv.weights) == 2    # it gained a bias
    assert conv.outputs == ["conv1@scale1"]                              # the Scale's output
    assert rec.counts == {"folded BatchNorm": 1, "folded Scale": 1}
    assert rec.layers == ["bn1", "scale1"]
    full, _ = optimize(g)
    assert types(full) == ["Convolution", "Pooling"]
    assert full.nodes[0].fused == ["bn1", "scale1", "relu1"]
    assert full.nodes[0].outputs == ["conv1"]       # the blob's final name survives
    assert max_error(g, full) <= TOL


def bn_graph(factor, producer="Convolution", **pattrs):
    attrs = dict(num_output=4, kernel=(3, 3)) if producer == "Convolution" else pattrs
    attrs.update(pattrs)
    x = (1, 3, 6, 6) if producer != "InnerProduct" else (2, 3, 2, 2)
    nw = 1 + attrs.get("bias_term", True)
    p = node("p", producer, ["x"], ["t"], [f"p.w{i}" for i in range(nw)], **attrs)
    bn = node("bn", "BatchNorm", ["t"], ["y"], ["bn.mean", "bn.var", "bn.factor"], eps=1e-3)
    g = build({"x": x}, [p, bn], ["y"])
    g.initializers["bn.factor"] = np.float32([factor])
    return g


@pytest.mark.parametrize("factor", [0.0, 1.0, 2.5])
def test_fold_batchnorm_moving_average_factor(factor):
    g = bn_graph(factor)
    out, _ = run_pass("fold_batchnorm", g)
    assert types(out) == ["Convolution"] and out.nodes[0].fused == ["bn"]
    if factor == 0:   # statistics count as 0: y = x / sqrt(eps)
        b = out.initializers[out.nodes[0].weights[1]]
        np.testing.assert_allclose(b, g.initializers["p.w1"] / np.sqrt(1e-3), rtol=1e-6)


@pytest.mark.parametrize("producer, attrs", [
    ("Deconvolution", dict(num_output=6, kernel=(4, 4), stride=(2, 2), group=3)),
    ("Deconvolution", dict(num_output=4, kernel=(3, 3), bias_term=False)),
    ("InnerProduct", dict(num_output=5)),
    ("InnerProduct", dict(num_output=5, transpose=True, bias_term=False)),
    ("Convolution", dict(num_output=6, kernel=(3, 3), group=3)),
])
def test_fold_into_each_producer(producer, attrs):
    g = bn_graph(1.7, producer, **attrs)
    out, _ = run_pass("fold_batchnorm", g)
    assert types(out) == [producer]


def test_fold_scale_and_bias_ops():
    x = {"x": (1, 3, 5, 5)}
    conv = node("c", "Convolution", ["x"], ["t"], ["c.w", "c.b"], num_output=4, kernel=(1, 1))
    sc = node("s", "Scale", ["t"], ["u"], ["s.scale"], bias_term=False)
    sc0 = node("s0", "Scale", ["u"], ["v"], ["s0.scale", "s0.bias"], num_axes=0, bias_term=True)
    bi = node("b", "Bias", ["v"], ["y"], ["b.bias"])
    g = build(x, [conv, sc, sc0, bi], ["y"])
    out, rec = run_pass("fold_batchnorm", g)
    assert types(out) == ["Convolution"] and out.nodes[0].fused == ["s", "s0", "b"]
    assert out.nodes[0].outputs == ["y"]


def test_no_fold_when_the_conv_output_has_another_reader():
    g = bn_graph(1.0)
    g.nodes.append(node("other", "ReLU", ["t"], ["z"]))
    g.output_names.append("z")
    g.infer_shapes()
    out, rec = run_pass("fold_batchnorm", g)
    assert types(out) == ["Convolution", "BatchNorm", "ReLU"] and rec.changed == 0


def test_no_fold_when_the_conv_output_is_a_graph_output():
    g = bn_graph(1.0)
    g.output_names.append("t")
    out, rec = run_pass("fold_batchnorm", g)
    assert rec.changed == 0 and out.output_names == ["y", "t"]
    out, _ = optimize(g)
    assert "BatchNorm" not in types(out)           # still an affine op: a Scale now
    assert max_error(g, out) <= TOL


def test_shared_weights_keep_their_value_for_the_other_layer(tmp_path):
    text = """
    input: "data" input_shape { dim: 1 dim: 2 dim: 5 dim: 5 }
    layer { name: "a" type: "Convolution" bottom: "data" top: "a" param { name: "w" }
            convolution_param { num_output: 2 kernel_size: 1 bias_term: false } }
    layer { name: "bn" type: "BatchNorm" bottom: "a" top: "a" }
    layer { name: "b" type: "Convolution" bottom: "data" top: "b" param { name: "w" }
            convolution_param { num_output: 2 kernel_size: 1 bias_term: false } }
    """
    g = load_text(tmp_path, text)
    assert g.nodes[0].weights == g.nodes[2].weights
    out, _ = run_pass("fold_batchnorm", g)
    a, b = out.nodes
    assert a.weights[0] != b.weights[0]
    np.testing.assert_array_equal(out.initializers[b.weights[0]], g.initializers["a.weight"])


def test_fold_without_weights_is_structural():
    g = bn_graph(1.0)
    bare = g.copy()
    bare.initializers = {}
    out, _ = PASSES["fold_batchnorm"].run(bare)
    assert types(out) == ["Convolution"] and out.nodes[0].attrs["bias_term"]
    assert not out.initializers and len(out.nodes[0].weights) == 2


# ------------------------------------------------------------------------------ affine ops
def test_lone_batchnorm_becomes_a_scale():
    pool = node("pool", "Pooling", ["x"], ["p"], method="MAX", kernel=(2, 2), stride=(2, 2))
    bn = node("bn", "BatchNorm", ["p"], ["y"], ["bn.m", "bn.v", "bn.f"])
    g = build({"x": (1, 3, 4, 4)}, [pool, bn], ["y"])
    out, rec = run_pass("batchnorm_to_scale", g)
    s = out.nodes[1]
    assert (s.name, s.op_type, s.attrs["bias_term"], s.attrs["axis"]) == ("bn", "Scale", True, 1)
    assert rec.layers == ["bn"]
    g.initializers["bn.f"] = np.float32([0])
    out, _ = run_pass("batchnorm_to_scale", g)


def test_merge_affine_chain():
    x = {"x": (2, 3, 4)}
    bn = node("bn", "BatchNorm", ["x"], ["a"], ["bn.m", "bn.v", "bn.f"])
    sc = node("sc", "Scale", ["a"], ["b"], ["sc.s", "sc.b"], bias_term=True)
    bi = node("bi", "Bias", ["b"], ["c"], ["bi.b"])
    s0 = node("s0", "Scale", ["c"], ["y"], ["s0.s"], num_axes=0)
    g = build(x, [bn, sc, bi, s0], ["y"])
    out, rec = run_pass("merge_affine", g)
    (s,) = out.nodes
    assert (s.name, s.op_type, s.fused) == ("s0", "Scale", ["bn", "sc", "bi"])
    assert s.inputs == ["x"] and s.outputs == ["y"] and rec.changed == 3


def test_merge_affine_stops_at_a_second_reader_and_at_other_axes():
    x = {"x": (1, 3, 4, 4)}
    sc = node("sc", "Scale", ["x"], ["a"], ["sc.s"])
    bi = node("bi", "Bias", ["a"], ["y"], ["bi.b"])
    relu = node("r", "ReLU", ["a"], ["z"])
    g = build(x, [sc, bi, relu], ["y", "z"])
    out, rec = run_pass("merge_affine", g)
    assert rec.changed == 0
    sp = node("sp", "Scale", ["x"], ["a"], ["sp.s"], axis=2, num_axes=2)   # spatial operand
    g = build(x, [sp, node("bi", "Bias", ["a"], ["y"], ["bi.b"])], ["y"])
    out, rec = run_pass("merge_affine", g)
    assert rec.changed == 0


# ------------------------------------------------------------------------------ activations
def conv_act(act, act_weights=(), **act_attrs):
    conv = node("c", "Convolution", ["x"], ["t"], ["c.w", "c.b"], num_output=4, kernel=(3, 3))
    a = node("a", act, ["t"], ["y"], act_weights, **act_attrs)
    return build({"x": (1, 3, 6, 6)}, [conv, a], ["y"])


@pytest.mark.parametrize("act, weights, attrs, expect", [
    ("ReLU", (), {"negative_slope": 0.2}, {"negative_slope": 0.2}),
    ("PReLU", ["a.slope"], {}, {}),
    ("PReLU", ["a.slope"], {"channel_shared": True}, {}),
    ("Clip", (), {"min": 0.0, "max": 6.0}, {"clip_min": 0.0, "clip_max": 6.0}),
    ("Sigmoid", (), {}, {}),
    ("TanH", (), {}, {}),
])
def test_fuse_activation_into_conv(act, weights, attrs, expect):
    g = conv_act(act, weights, **attrs)
    out, rec = run_pass("fuse_activations", g)
    (c,) = out.nodes
    assert c.op_type == "Convolution" and c.attrs["activation"] == act and c.fused == ["a"]
    for k, v in expect.items():
        assert c.attrs[k] == v
    assert c.outputs == ["y"]
    if act == "PReLU":
        assert out.initializers[c.weights[-1]].shape == (4,)


def test_fuse_activation_keeps_the_graph_output_name(tmp_path):
    text = """
    input: "data" input_shape { dim: 1 dim: 3 dim: 6 dim: 6 }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 7 } }
    layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" }
    """
    g = load_text(tmp_path, text)
    assert g.output_names == ["fc"]
    out, _ = run_pass("fuse_activations", g)
    assert out.output_names == ["fc"] and out.nodes[0].outputs == ["fc"]


def test_no_fusion_when_the_producer_output_is_read_twice_or_fetched():
    g = conv_act("ReLU")
    g.nodes.append(node("p", "Pooling", ["t"], ["z"], method="MAX", kernel=(2, 2)))
    g.output_names.append("z")
    g.infer_shapes()
    out, rec = run_pass("fuse_activations", g)
    assert rec.changed == 0
    g = conv_act("ReLU")
    g.output_names.append("t")
    out, rec = run_pass("fuse_activations", g)
    assert rec.changed == 0


def test_eltwise_sum_relu_and_fused_producers(tmp_path):
    text = """
    input: "data" input_shape { dim: 1 dim: 4 dim: 5 dim: 5 }
    layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
            convolution_param { num_output: 4 kernel_size: 1 } }
    layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
    layer { name: "sum" type: "Eltwise" bottom: "c1" bottom: "data" top: "sum" }
    layer { name: "r2" type: "ReLU" bottom: "sum" top: "sum" }
    layer { name: "ip" type: "InnerProduct" bottom: "sum" top: "ip" inner_product_param { num_output: 3 } }
    layer { name: "clip" type: "Clip" bottom: "ip" top: "ip" clip_param { min: -0.1 max: 0.1 } }
    """
    g = load_text(tmp_path, text)
    out, rec = run_pass("fuse_activations", g)
    assert types(out) == ["Convolution", "Eltwise", "InnerProduct"]
    assert [n.attrs["activation"] for n in out.nodes] == ["ReLU", "ReLU", "Clip"]
    assert rec.counts == {"fused ReLU into Convolution": 1, "fused ReLU into Eltwise": 1,
                          "fused Clip into InnerProduct": 1}


def test_no_second_activation_and_no_fold_after_an_activation():
    g = conv_act("ReLU")
    g.nodes.append(node("s", "Sigmoid", ["y"], ["z"]))
    g.output_names = ["z"]
    g.infer_shapes()
    out, _ = run_pass("fuse_activations", g)
    assert types(out) == ["Convolution", "Sigmoid"]
    g = conv_act("ReLU")
    g.nodes.append(node("bn", "BatchNorm", ["y"], ["z"], ["m", "v", "f"]))
    g.output_names = ["z"]
    g = build({"x": (1, 3, 6, 6)}, g.nodes, ["z"])
    fused, _ = PASSES["fuse_activations"].run(g)
    out, rec = run_pass("fold_batchnorm", fused)      # a ReLU sits between: no fold
    assert rec.changed == 0


# ------------------------------------------------------------------------------ no-ops
def test_remove_noops(tmp_path):
    text = """
    input: "data" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }
    layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 8 } }
    layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc" }
    layer { name: "split" type: "Split" bottom: "fc" top: "s1" top: "s2" }
    layer { name: "pow" type: "Power" bottom: "s1" top: "p" }
    layer { name: "same" type: "Reshape" bottom: "p" top: "r" reshape_param { shape { dim: 0 dim: -1 } } }
    layer { name: "flat" type: "Flatten" bottom: "s2" top: "f" }
    layer { name: "pow2" type: "Power" bottom: "r" top: "q" power_param { scale: 2 } }
    layer { name: "sum" type: "Eltwise" bottom: "q" bottom: "f" top: "out" }
    """
    g = load_text(tmp_path, text)
    out, rec = run_pass("remove_noops", g)
    assert types(out) == ["InnerProduct", "Power", "Eltwise"]
    assert sorted(rec.layers) == ["drop", "flat", "pow", "same", "split"]
    assert out.nodes[0].outputs == ["fc"]


def test_remove_noops_keeps_graph_output_names(tmp_path):
    text = """
    input: "data" input_shape { dim: 1 dim: 4 }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 3 } }
    layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc" }
    """
    g = load_text(tmp_path, text)
    out, rec = run_pass("remove_noops", g)
    assert types(out) == ["InnerProduct"] and out.output_names == ["fc"]
    assert out.nodes[0].outputs == ["fc"]
    # input -> Dropout -> output: both names are the user's, the Dropout stays.
    g = build({"x": (1, 3)}, [node("d", "Dropout", ["x"], ["y"])], ["y"])
    out, rec = run_pass("remove_noops", g)
    assert types(out) == ["Dropout"] and rec.changed == 0 and rec.notes


def test_flatten_before_inner_product_is_removed():
    fl = node("fl", "Flatten", ["x"], ["f"])
    ip = node("ip", "InnerProduct", ["f"], ["y"], ["ip.w", "ip.b"], num_output=4, axis=-1)
    g = build({"x": (2, 3, 2, 2)}, [fl, ip], ["y"])
    out, rec = run_pass("remove_noops", g)
    assert types(out) == ["InnerProduct"] and out.nodes[0].attrs["axis"] == 1
    # ... but not when the InnerProduct would flatten differently.
    rs = node("rs", "Reshape", ["x"], ["r"], shape=(0, 0, -1))
    ip = node("ip", "InnerProduct", ["r"], ["y"], ["ip.w", "ip.b"], num_output=4, axis=2)
    g = build({"x": (2, 3, 2, 2)}, [rs, ip], ["y"])
    out, rec = run_pass("remove_noops", g)
    assert types(out) == ["InnerProduct"] and out.nodes[0].attrs["axis"] == 2
    rs = node("rs", "Reshape", ["x"], ["r"], shape=(0, -1, 2))
    ip = node("ip", "InnerProduct", ["r"], ["y"], ["ip.w", "ip.b"], num_output=4, axis=2)
    g = build({"x": (2, 3, 2, 2)}, [rs, ip], ["y"])
    out, rec = run_pass("remove_noops", g)
    assert rec.changed == 0


# ------------------------------------------------------------------------------ constants
def test_constant_operand_becomes_a_weight():
    x = {"x": (1, 2, 3, 3)}
    const = node("const", "Power", ["x"], ["c"], power=1.0, scale=0.0, shift=1.5)
    c2 = node("sq", "Power", ["c"], ["c2"], power=2.0)
    sc = node("sc", "Scale", ["x", "c2"], ["y"], ["sc.b"], axis=0, bias_term=True)
    g = build(x, [const, c2, sc], ["y"])
    out, rec = run_pass("fold_constants", g)
    assert types(out) == ["Scale"]
    s = out.nodes[0]
    assert s.inputs == ["x"] and len(s.weights) == 2 and s.attrs["num_axes"] == 4
    np.testing.assert_array_equal(out.initializers[s.weights[0]], np.full((1, 2, 3, 3), 2.25))
    assert sorted(rec.layers) == ["const", "sq", "sq"]


def test_priorbox_feeding_a_bias_is_folded_and_inputs_are_never_constant():
    pb = node("pb", "PriorBox", ["feat", "img"], ["prior"], min_size=(10.0,), max_size=(20.0,),
              aspect_ratio=(2.0,), flip=True, clip=True, variance=(0.1, 0.1, 0.2, 0.2))
    shapes = {"feat": (1, 4, 2, 2), "img": (1, 3, 16, 16)}
    probe = build(shapes, [pb], ["prior"])
    p = probe.shapes["prior"]
    bias = node("bias", "Bias", ["x", "prior"], ["y"], axis=0)
    g = build({**shapes, "x": p}, [pb, bias], ["y"])
    out, rec = run_pass("fold_constants", g)
    assert types(out) == ["Bias"] and out.nodes[0].inputs == ["x"]
    assert [t.name for t in out.inputs] == ["feat", "img", "x"]     # graph inputs stay
    g2 = build({"x": (1, 2, 3), "s": (1, 2, 3)},
               [node("sc", "Scale", ["x", "s"], ["y"], axis=0)], ["y"])
    out, rec = run_pass("fold_constants", g2)
    assert rec.changed == 0


def test_unfoldable_constants_are_noted(tmp_path):
    from conftest import shared_path
    g = edgebrew.load_caffe(shared_path("models", "zoo", "mobilenet_ssd", "deploy.prototxt"))
    out, rec = PASSES["fold_constants"].run(g)
    assert rec.changed == 0 and any("mbox_priorbox" in n for n in rec.notes)


# ------------------------------------------------------------------------------ dead nodes
def test_eliminate_dead_nodes():
    relu = node("r", "ReLU", ["x"], ["a"])
    dead = node("dead", "Sigmoid", ["a"], ["d"])
    dead2 = node("dead2", "TanH", ["d"], ["d2"])
    sl = node("sl", "Slice", ["a"], ["s1", "s2"], axis=1)
    out_ = node("o", "ReLU", ["s1"], ["y"])
    g = build({"x": (1, 4, 2)}, [relu, dead, dead2, sl, out_], ["y"])
    out, rec = run_pass("eliminate_dead_nodes", g)
    assert types(out) == ["ReLU", "Slice", "ReLU"] and rec.layers == ["dead", "dead2"]


# ------------------------------------------------------------------------------ pass manager
def test_optimize_selection_and_the_input_graph_is_untouched(tmp_path):
    g = load_text(tmp_path, CONV_BN_SCALE_RELU % "true")
    before = [(n.name, n.op_type, list(n.inputs), list(n.outputs), dict(n.attrs),
               list(n.weights)) for n in g.nodes]
    inits = dict(g.initializers)
    out, log = optimize(g, passes=["fuse_activations", "fold_batchnorm"])
    assert [r.name for r in log] == ["fuse_activations", "fold_batchnorm"]
    assert log[0].changed == 0 and log[1].changed == 2     # the ReLU follows the Scale
    out, log = optimize(g, skip_passes=["fuse_activations"])
    assert "fuse_activations" not in [r.name for r in log] and "ReLU" in types(out)
    assert [(n.name, n.op_type, n.inputs, n.outputs, n.attrs, n.weights)
            for n in g.nodes] == before
    assert g.initializers.keys() == inits.keys()
    assert all(g.initializers[k] is inits[k] for k in inits)
    with pytest.raises(EdgebrewError, match="unknown optimizer pass.*nope"):
        optimize(g, passes=["nope"])
    rec = log[0].to_json()
    assert set(rec) >= {"name", "description", "changed", "counts", "layers", "changes"}


def test_passes_are_callable_graph_to_graph(tmp_path):
    g = load_text(tmp_path, CONV_BN_SCALE_RELU % "true")
    p = PASSES["fold_batchnorm"]
    assert p.name == "fold_batchnorm" and p.description
    out = p(g)
    assert types(out) == ["Convolution", "ReLU", "Pooling"] and len(g.nodes) == 5


def test_optimize_without_weights_gives_the_same_structure(tmp_path):
    g = load_text(tmp_path, CONV_BN_SCALE_RELU % "true")
    bare = edgebrew.load_caffe(tmp_path / "net.prototxt")
    a, _ = optimize(g)
    b, _ = optimize(bare)
    assert [(n.name, n.op_type, n.inputs, n.outputs, n.attrs, n.weights, n.fused)
            for n in a.nodes] == \
           [(n.name, n.op_type, n.inputs, n.outputs, n.attrs, n.weights, n.fused)
            for n in b.nodes]
    assert not b.initializers
