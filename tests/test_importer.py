"""Importer behaviour on small hand-written nets: inputs, phases, in-place naming, splits, shared
params, train_val handling, zoo readme checksums, legacy blob dims and error messages."""
import hashlib
import textwrap

import numpy as np
import pytest

import edgebrew
from caffe_files import write_caffemodel
from edgebrew.errors import (EdgebrewError, GraphError, ModelFormatError, PrototxtSyntaxError,
                             ShapeError, UnsupportedLayerError, WeightsError)
from edgebrew.importer.proto import caffe_pb2


def write(tmp_path, text, name="deploy.prototxt"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


CONV_RELU = """
name: "tiny"
input: "data"
input_shape { dim: 2 dim: 3 dim: 5 dim: 5 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip_a" type: "InnerProduct" bottom: "conv" top: "a" inner_product_param { num_output: 3 } }
layer { name: "ip_b" type: "InnerProduct" bottom: "conv" top: "b" inner_product_param { num_output: 2 } }
"""


def tiny_weights(rng):
    return {"conv": [rng.standard_normal((4, 3, 3, 3)).astype("f"), rng.standard_normal(4).astype("f")],
            "ip_a": [rng.standard_normal((3, 36)).astype("f"), rng.standard_normal(3).astype("f")],
            "ip_b": [rng.standard_normal((2, 36)).astype("f"), rng.standard_normal(2).astype("f")]}


def test_in_place_keeps_blob_name_and_implicit_split(tmp_path):
    rng = np.random.default_rng(0)
    w = tiny_weights(rng)
    write_caffemodel(tmp_path / "w.caffemodel", w)
    g = edgebrew.load_caffe(write(tmp_path, CONV_RELU), tmp_path / "w.caffemodel")
    assert [t.name for t in g.inputs] == ["data"] and g.inputs[0].shape == (2, 3, 5, 5)
    assert g.output_names == ["a", "b"]
    conv, relu = g.node("conv"), g.node("relu")
    assert conv.outputs == ["conv@conv"] and relu.inputs == ["conv@conv"]
    assert relu.outputs == ["conv"]  # the last value of the in-place blob keeps its name
    assert g.node("ip_a").inputs == ["conv"] and g.node("ip_b").inputs == ["conv"]
    x = rng.standard_normal((2, 3, 5, 5)).astype("f")
    out = edgebrew.reference.run(g, {"data": x}, dtype=np.float64, fetch=["conv"])
    # oracle: direct NumPy of the same net
    cols = np.stack([x[:, :, i:i + 3, j:j + 3].reshape(2, -1) for i in range(3) for j in range(3)], -1)
    conv_ref = np.einsum("ok,nkp->nop", w["conv"][0].reshape(4, -1).astype(np.float64), cols)
    conv_ref = np.maximum(conv_ref + w["conv"][1][None, :, None], 0).reshape(2, 4, 3, 3)
    np.testing.assert_allclose(out["conv"], conv_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["a"], conv_ref.reshape(2, -1) @ w["ip_a"][0].T.astype(np.float64)
                               + w["ip_a"][1], rtol=1e-6, atol=1e-6)


def test_input_forms_and_override(tmp_path):
    body = 'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n'
    forms = [
        'input: "x" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4\n',
        'input: "x" input_shape { dim: 1 dim: 2 dim: 3 dim: 4 }\n',
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 4 } } }\n',
    ]
    for i, head in enumerate(forms):
        p = write(tmp_path, head + body, f"n{i}.prototxt")
        assert edgebrew.load_caffe(p).inputs[0].shape == (1, 2, 3, 4)
        g = edgebrew.load_caffe(p, inputs={"x": (5, 2, 7, 7)})
        assert g.inputs[0].shape == (5, 2, 7, 7) and g.outputs[0].shape == (5, 2, 7, 7)
    with pytest.raises(ShapeError, match="'nope'"):
        edgebrew.load_caffe(p, inputs={"nope": (1, 2, 3, 4)})


def test_phase_stage_and_level_rules(tmp_path):
    text = """
    state { level: 2 stage: "deploy" }
    input: "x" input_shape { dim: 1 dim: 1 dim: 2 dim: 2 }
    layer { name: "train_only" type: "ReLU" bottom: "x" top: "t" include { phase: TRAIN } }
    layer { name: "test_only" type: "ReLU" bottom: "x" top: "a" include { phase: TEST } }
    layer { name: "staged" type: "ReLU" bottom: "x" top: "b" include { stage: "deploy" } }
    layer { name: "not_staged" type: "ReLU" bottom: "x" top: "c" include { not_stage: "deploy" } }
    layer { name: "lvl_ok" type: "ReLU" bottom: "x" top: "d" include { min_level: 1 max_level: 2 } }
    layer { name: "lvl_low" type: "ReLU" bottom: "x" top: "e" include { min_level: 3 } }
    layer { name: "excluded" type: "ReLU" bottom: "x" top: "f" exclude { phase: TEST } }
    layer { name: "exclude_train" type: "ReLU" bottom: "x" top: "g" exclude { phase: TRAIN } }
    """
    g = edgebrew.load_caffe(write(tmp_path, text))
    assert [n.name for n in g.nodes] == ["test_only", "staged", "lvl_ok", "exclude_train"]


def test_train_val_drops_data_and_loss_layers_with_notes(tmp_path):
    text = """
    layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
            data_param { source: "x" batch_size: 4 } }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
    layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
    """
    p = write(tmp_path, text)
    with pytest.raises(ShapeError, match=r"data layer 'data' \(Data\).*--input data:N,C,H,W"):
        edgebrew.load_caffe(p)
    g = edgebrew.load_caffe(p, inputs={"data": (1, 2, 3, 3)})
    assert [n.name for n in g.nodes] == ["ip"] and g.output_names == ["ip"]
    notes = " ".join(g.notes)
    assert "'data' (Data)" in notes and "'acc' (Accuracy)" in notes and "'loss'" in notes


def test_python_layers(tmp_path):
    data = write(tmp_path, """
    layer { name: "data" type: "Python" top: "data" top: "label" python_param { module: "m" layer: "L" } }
    layer { name: "r" type: "ReLU" bottom: "data" top: "r" }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "r" bottom: "label" top: "loss" }
    """)
    g = edgebrew.load_caffe(data, inputs={"data": (1, 3, 4, 4)})
    assert g.output_names == ["r"]
    mid = write(tmp_path, """
    input: "x" input_shape { dim: 1 dim: 1 dim: 2 dim: 2 }
    layer { name: "custom" type: "Python" bottom: "x" top: "y" python_param { module: "m" layer: "L" } }
    """, "mid.prototxt")
    with pytest.raises(UnsupportedLayerError, match="'custom' \\(Python\\)"):
        edgebrew.load_caffe(mid)


def test_loss_in_deploy_net_and_unknown_type_are_errors(tmp_path):
    loss = write(tmp_path, """
    input: "x" input_shape { dim: 1 dim: 3 }
    input: "y" input_shape { dim: 1 dim: 3 }
    layer { name: "l" type: "EuclideanLoss" bottom: "x" bottom: "y" top: "loss" }
    """)
    with pytest.raises(UnsupportedLayerError, match="'l' \\(EuclideanLoss\\)"):
        edgebrew.load_caffe(loss)
    unknown = write(tmp_path, """
    input: "x" input_shape { dim: 1 dim: 3 }
    layer { name: "weird" type: "FancyNewLayer" bottom: "x" top: "y" }
    """, "u.prototxt")
    with pytest.raises(UnsupportedLayerError, match="'weird'.*'FancyNewLayer'"):
        edgebrew.load_caffe(unknown)


def test_syntax_error_names_file_and_line(tmp_path):
    p = write(tmp_path, 'name: "x"\ninput: "data"\nlayer { name: "a" type: "ReLU"\n  bottom: "data" top: }\n')
    with pytest.raises(PrototxtSyntaxError) as e:
        edgebrew.load_caffe(p)
    assert str(p) in str(e.value) and e.value.line == 4
    p2 = write(tmp_path, 'input: "x"\nlayer { name: "a" no_such_field: 3 }\n', "f.prototxt")
    with pytest.raises(PrototxtSyntaxError, match="f.prototxt:2.*no_such_field"):
        edgebrew.load_caffe(p2)


def test_dangling_bottom_and_duplicate_top(tmp_path):
    p = write(tmp_path, """
    input: "x" input_shape { dim: 1 dim: 3 }
    layer { name: "r" type: "ReLU" bottom: "nothing" top: "y" }
    """)
    with pytest.raises(GraphError, match="'r'.*'nothing'"):
        edgebrew.load_caffe(p)
    p = write(tmp_path, """
    input: "x" input_shape { dim: 1 dim: 3 }
    layer { name: "r1" type: "ReLU" bottom: "x" top: "y" }
    layer { name: "r2" type: "Sigmoid" bottom: "x" top: "y" }
    """, "dup.prototxt")
    with pytest.raises(GraphError, match="'r2'.*'y' is already produced"):
        edgebrew.load_caffe(p)


def test_weight_errors(tmp_path):
    rng = np.random.default_rng(0)
    proto = write(tmp_path, CONV_RELU)
    w = tiny_weights(rng)
    bad = dict(w, conv=[w["conv"][0][:, :2], w["conv"][1]])
    write_caffemodel(tmp_path / "bad.caffemodel", bad)
    with pytest.raises(WeightsError, match=r"'conv'.*\(4, 2, 3, 3\).*\(4, 3, 3, 3\)"):
        edgebrew.load_caffe(proto, tmp_path / "bad.caffemodel")
    missing = {k: v for k, v in w.items() if k != "ip_b"}
    write_caffemodel(tmp_path / "missing.caffemodel", missing)
    with pytest.raises(WeightsError, match="'ip_b'"):
        edgebrew.load_caffe(proto, tmp_path / "missing.caffemodel")
    write_caffemodel(tmp_path / "good.caffemodel", w)
    data = (tmp_path / "good.caffemodel").read_bytes()
    (tmp_path / "trunc.caffemodel").write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgebrewError, match="trunc.caffemodel"):
        edgebrew.load_caffe(proto, tmp_path / "trunc.caffemodel")
    (tmp_path / "junk.caffemodel").write_bytes(b"\xff" * 100)
    with pytest.raises(ModelFormatError, match="junk.caffemodel"):
        edgebrew.load_caffe(proto, tmp_path / "junk.caffemodel")


def test_legacy_4d_blob_dims_are_accepted(tmp_path):
    proto = write(tmp_path, """
    input: "x" input_shape { dim: 1 dim: 6 }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }
    """)
    rng = np.random.default_rng(0)
    wt, b = rng.standard_normal((2, 6)).astype("f"), rng.standard_normal(2).astype("f")
    net = caffe_pb2.NetParameter()
    layer = net.layers.add(name="ip", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    for arr, dims in ((wt, (1, 1, 2, 6)), (b, (1, 1, 1, 2))):
        blob = layer.blobs.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3])
        blob.data.extend(arr.ravel().tolist())
    (tmp_path / "v1.caffemodel").write_bytes(net.SerializeToString())
    g = edgebrew.load_caffe(proto, tmp_path / "v1.caffemodel")
    x = rng.standard_normal((1, 6)).astype("f")
    y = edgebrew.reference.run(g, {"x": x}, dtype=np.float64)["y"]
    np.testing.assert_allclose(y, x.astype(np.float64) @ wt.T + b, rtol=1e-6)


def test_shared_params_use_one_blob(tmp_path):
    proto = write(tmp_path, """
    input: "x" input_shape { dim: 1 dim: 4 }
    layer { name: "a" type: "InnerProduct" bottom: "x" top: "ya" param { name: "W" } param { name: "B" }
            inner_product_param { num_output: 4 } }
    layer { name: "b" type: "InnerProduct" bottom: "ya" top: "yb" param { name: "W" } param { name: "B" }
            inner_product_param { num_output: 4 } }
    """)
    rng = np.random.default_rng(0)
    wt, b = rng.standard_normal((4, 4)).astype("f"), rng.standard_normal(4).astype("f")
    write_caffemodel(tmp_path / "w.caffemodel", {"a": [wt, b]})   # the sharer carries none
    g = edgebrew.load_caffe(proto, tmp_path / "w.caffemodel")
    assert g.node("a").weights == g.node("b").weights
    x = rng.standard_normal((1, 4))
    y = edgebrew.reference.run(g, {"x": x}, dtype=np.float64)["yb"]
    np.testing.assert_allclose(y, (x @ wt.T + b) @ wt.T + b, rtol=1e-5)


def test_zoo_readme_sha1(tmp_path):
    rng = np.random.default_rng(0)
    proto = write(tmp_path, CONV_RELU)
    weights = tmp_path / "tiny.caffemodel"
    write_caffemodel(weights, tiny_weights(rng))
    sha1 = hashlib.sha1(weights.read_bytes()).hexdigest()
    readme = tmp_path / "readme.md"
    readme.write_text(f"---\nname: Tiny Net\ncaffemodel: tiny.caffemodel\nsha1: {sha1}\n---\nText.\n")
    g = edgebrew.load_caffe(proto, weights)
    assert g.name == "Tiny Net" and g.source["caffemodel_sha1"] == sha1
    readme.write_text(f"---\nname: Tiny Net\ncaffemodel: tiny.caffemodel\nsha1: {'0' * 40}\n---\n")
    with pytest.raises(WeightsError, match="sha1"):
        edgebrew.load_caffe(proto, weights)
    edgebrew.load_caffe(proto)   # no weights: nothing to check


def test_prototxt_alone_has_shapes_but_no_weights(tmp_path):
    g = edgebrew.load_caffe(write(tmp_path, CONV_RELU))
    assert not g.has_weights and g.shapes["a"] == (2, 3)
    with pytest.raises(WeightsError, match="no weights"):
        edgebrew.reference.run(g, {"data": np.zeros((2, 3, 5, 5), "f")})


def test_wrong_feed_is_a_clear_error(tmp_path):
    g = edgebrew.load_caffe(write(tmp_path, 'input: "x" input_shape { dim: 1 dim: 3 }\n'
                                  'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n'))
    with pytest.raises(EdgebrewError, match=r"'x'.*\(1, 4\).*\(1, 3\)"):
        edgebrew.reference.run(g, {"x": np.zeros((1, 4), "f")})
    with pytest.raises(EdgebrewError, match="'z'"):
        edgebrew.reference.run(g, {"z": np.zeros((1, 3), "f")})
