"""export_onnx: sources, names, metadata, opsets, the optimizer's fused activations, errors that
name the layer with nothing left at the output path, and the export-onnx command."""
import json
import sys

import numpy as np
import pytest

import edgebrew
from conftest import REPO
from edgebrew.cli import main
from edgebrew.errors import EdgebrewError
from edgebrew.ir import Graph, Node, TensorInfo
from edgebrew.onnx_export import OnnxExportError, build_model, export_onnx
from edgebrew.onnx_export.registry import MAPPERS, Mapping
from onnx_testing import check, export_and_compare, onnx, run_onnx, session

EXAMPLE = REPO / "examples" / "lenet_mnist"
PROTOTXT, WEIGHTS = EXAMPLE / "lenet_deploy.prototxt", EXAMPLE / "lenet_mnist.caffemodel"


@pytest.fixture(scope="module")
def lenet():
    return edgebrew.load_caffe(PROTOTXT, WEIGHTS)


@pytest.fixture(scope="module")
def digits():
    return np.random.default_rng(0).uniform(0, 1, (1, 1, 28, 28)).astype(np.float32)


def props(model):
    return {p.key: p.value for p in model.metadata_props}


def test_every_source_gives_the_same_model(lenet, digits, tmp_path):
    bundle = edgebrew.convert(PROTOTXT, WEIGHTS, scale=0.00390625, labels=EXAMPLE / "labels.txt",
                              name="digits")
    brew = bundle.save(tmp_path / "lenet.brew")
    ref = edgebrew.reference.run(lenet, {"data": digits})["prob"]
    for i, source in enumerate([lenet, bundle, brew, str(brew), (PROTOTXT, WEIGHTS),
                                (str(PROTOTXT), str(WEIGHTS))]):
        path = export_onnx(source, tmp_path / f"m{i}.onnx")
        model = check(onnx.load(str(path)))
        out = run_onnx(model, {"data": digits})["prob"]
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["lenet.brew"] + [f"m{i}.onnx" for i in range(6)]      # no temporary file left


def test_metadata_travels(tmp_path):
    bundle = edgebrew.convert(PROTOTXT, WEIGHTS, scale=0.00390625, mean=[10.0],
                              labels=EXAMPLE / "labels.txt", name="digits")
    model = build_model(bundle)
    p = props(model)
    assert model.producer_name == "edgebrew" and model.producer_version == edgebrew.__version__
    assert model.graph.name == "digits" and p["model_name"] == "digits"
    pre = json.loads(p["preprocessing"])
    assert pre["scale"] == 0.00390625 and pre["mean"] == [10.0] and pre["grayscale"] is True
    assert pre["channel_order"] == "BGR" and pre["input_size"] == [28, 28]
    assert json.loads(p["labels"]) == [str(i) for i in range(10)]
    assert p["source_caffemodel"] == "lenet_mnist.caffemodel" and len(p["source_sha1"]) == 40
    opts = json.loads(p["edgebrew_export"])
    assert opts["opset"] == 17 and opts["precision"] == "fp32"
    # A bare Caffe pair gets Caffe's defaults.
    p = props(build_model((PROTOTXT, WEIGHTS)))
    assert json.loads(p["preprocessing"])["scale"] == 1.0 and json.loads(p["labels"]) == []


def test_names_are_caffe_names(lenet):
    model = check(build_model(lenet, optimized=False))
    assert [o.name for o in model.graph.output] == lenet.output_names == ["prob"]
    assert [i.name for i in model.graph.input] == ["data"]
    produced = {o for n in model.graph.node for o in n.output}
    assert {t for n in lenet.nodes for t in n.outputs} <= produced
    assert {n.name for n in lenet.nodes} <= {n.name for n in model.graph.node}
    assert {w for n in lenet.nodes for w in n.weights} <= \
        {t.name for t in model.graph.initializer}
    # shapes are inferred and stored
    infos = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
             for v in model.graph.value_info}
    assert infos["conv1"] == [1, 20, 24, 24] and infos["ip1"] == [1, 500]


@pytest.mark.parametrize("opset", [13, 15, 17, 18, 21])
def test_opsets(lenet, digits, opset):
    model = check(build_model(lenet, opset=opset))
    assert model.opset_import[0].version == opset
    ref = edgebrew.reference.run(lenet, {"data": digits})["prob"]
    np.testing.assert_allclose(run_onnx(model, {"data": digits})["prob"], ref, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("opset", [12, 99, "17"])
def test_bad_opset(lenet, opset):
    with pytest.raises(EdgebrewError, match="opset"):
        build_model(lenet, opset=opset)


def test_optimizer_use(lenet, monkeypatch):
    plain = build_model(lenet, optimized=False)
    assert json.loads(props(plain)["edgebrew_export"])["optimizer"] == "off"
    assert "Relu" in [n.op_type for n in plain.graph.node]
    fused = build_model(lenet)
    assert json.loads(props(fused)["edgebrew_export"])["optimizer"] == "applied"
    # without an optimizer in this build the export goes on unoptimized, and says so
    monkeypatch.delattr(edgebrew.optimizer, "optimize")
    model = build_model(lenet)
    assert json.loads(props(model)["edgebrew_export"])["optimizer"] == "unavailable"
    assert "Relu" in [n.op_type for n in model.graph.node]


ACTIVATIONS = [("ReLU", dict(negative_slope=0.0)), ("ReLU", dict(negative_slope=0.2)),
               ("PReLU", dict(channel_shared=False)), ("PReLU", dict(channel_shared=True)),
               ("Clip", dict(min=-0.3, max=0.6)), ("Sigmoid", {}), ("TanH", {})]


def _producer(kind, rng):
    """A producer node over input x (1, 4, 5, 6) and its weights."""
    if kind == "Convolution":
        attrs = dict(num_output=6, kernel=(3, 3), pad=(1, 1))
        return attrs, [rng.standard_normal((6, 4, 3, 3)), rng.standard_normal(6)], (1, 6, 5, 6)
    if kind == "Deconvolution":
        attrs = dict(num_output=6, kernel=(2, 2), stride=(2, 2), group=2)
        return attrs, [rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(6)], (1, 6, 10, 12)
    if kind == "InnerProduct":
        attrs = dict(num_output=7)
        return attrs, [rng.standard_normal((7, 120)), rng.standard_normal(7)], (1, 7)
    if kind == "InnerProduct@2":
        attrs = dict(num_output=7, axis=2)
        return attrs, [rng.standard_normal((7, 30)), rng.standard_normal(7)], (1, 4, 7)
    return dict(operation="SUM", coeff=(1.0, -0.5)), [], (1, 4, 5, 6)


@pytest.mark.parametrize("act, act_attrs", ACTIVATIONS, ids=lambda v: str(v))
@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution", "InnerProduct",
                                  "InnerProduct@2", "Eltwise"])
def test_fused_activations(kind, act, act_attrs):
    """The optimizer fuses the activation into its producer; the export of the optimized graph
    matches the reference of the unoptimized one."""
    rng = np.random.default_rng(1)
    attrs, weights, out_shape = _producer(kind, rng)
    op = kind.split("@")[0]
    inputs = ["x", "x2"] if op == "Eltwise" else ["x"]
    init = {f"p.w{i}": np.asarray(w, np.float32) for i, w in enumerate(weights)}
    nodes = [Node("p", op, inputs, ["y"], attrs, list(init))]
    act_w = []
    if act == "PReLU":
        c = out_shape[1]
        init["a.slope"] = rng.uniform(0.05, 0.3, () if act_attrs["channel_shared"]
                                      else (c,)).astype(np.float32)
        act_w = ["a.slope"]
    nodes.append(Node("a", act, ["y"], ["z"], act_attrs, act_w))
    g = Graph("fused", [TensorInfo(t, (1, 4, 5, 6)) for t in inputs], nodes, ["z"], init)
    g.infer_shapes()
    optimized, _ = edgebrew.optimizer.optimize(g)
    fused = [n for n in optimized.nodes if n.op_type == op]
    assert len(optimized.nodes) == 1 and fused[0].attrs.get("activation") == act, optimized.nodes
    feeds = {t: rng.standard_normal((1, 4, 5, 6)).astype(np.float32) for t in inputs}
    export_and_compare(g, feeds, tol=1e-5)


def test_unmapped_op_names_the_layer_and_leaves_nothing(lenet, tmp_path, monkeypatch):
    monkeypatch.delitem(MAPPERS, "ReLU")
    target = tmp_path / "out.onnx"
    with pytest.raises(EdgebrewError, match=r"layer 'relu1' \(ReLU\).*no ONNX mapping"):
        export_onnx(lenet, target, optimized=False)
    assert list(tmp_path.iterdir()) == []
    # an existing file is left as it was
    target.write_bytes(b"previous")
    with pytest.raises(EdgebrewError, match="relu1"):
        export_onnx(lenet, target, optimized=False)
    assert target.read_bytes() == b"previous" and len(list(tmp_path.iterdir())) == 1


def test_unknown_op_type_on_a_node(lenet, tmp_path, monkeypatch):
    g = lenet.copy()
    from edgebrew.ir.ops import OPS
    monkeypatch.setitem(OPS, "FancyReLU", OPS["ReLU"])
    g.node("relu1").op_type = "FancyReLU"
    with pytest.raises(OnnxExportError, match=r"layer 'relu1' \(FancyReLU\)"):
        export_onnx(g, tmp_path / "x.onnx", optimized=False)
    assert list(tmp_path.iterdir()) == []


def test_attribute_the_mapping_does_not_know(lenet, monkeypatch):
    m = MAPPERS["Pooling"]
    monkeypatch.setitem(MAPPERS, "Pooling", Mapping("Pooling", m.fn, frozenset({"method"})))
    with pytest.raises(OnnxExportError, match=r"layer 'pool1' \(Pooling\): attribute "):
        build_model(lenet)


def test_onnx_missing_is_a_clear_error(lenet, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(EdgebrewError, match=r"pip install 'edgebrew\[onnx\]'"):
        export_onnx(lenet, tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_bad_sources(lenet, tmp_path):
    with pytest.raises(EdgebrewError, match="no weights"):
        build_model(edgebrew.load_caffe(PROTOTXT))
    with pytest.raises(EdgebrewError, match=r"\(prototxt, caffemodel\)"):
        build_model(PROTOTXT)
    with pytest.raises(EdgebrewError, match="not an edgebrew bundle"):
        bad = tmp_path / "x.brew"
        bad.write_bytes(b"nonsense")
        build_model(bad)
    with pytest.raises(EdgebrewError, match="inputs="):
        build_model(lenet, inputs={"data": (1, 1, 28, 28)})


def test_input_override_and_dynamic_batch(digits):
    model = check(build_model((PROTOTXT, WEIGHTS), inputs={"data": (3, 1, 28, 28)}))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [3, 1, 28, 28]
    dyn = check(build_model((PROTOTXT, WEIGHTS), dynamic_batch=True))
    assert dyn.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert dyn.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"
    s = session(dyn)
    x = np.concatenate([digits] * 5)
    out = s.run(["prob"], {"data": x})[0]
    assert out.shape == (5, 10) and np.allclose(out, out[:1], atol=1e-6)


def test_dynamic_batch_refuses_batch_bound_layers():
    rng = np.random.default_rng(2)
    g = Graph("ip0", [TensorInfo("x", (2, 3))],
              [Node("ip", "InnerProduct", ["x"], ["y"], dict(num_output=4, axis=0), ["w", "b"])],
              ["y"], {"w": rng.standard_normal((4, 6)).astype(np.float32),
                      "b": np.zeros(4, np.float32)})
    g.infer_shapes()
    check(build_model(g))                       # one batch size: fine
    with pytest.raises(OnnxExportError, match="dynamic_batch"):
        build_model(g, dynamic_batch=True)


# ------------------------------------------------------------------------------ CLI
def test_cli_export_prototxt_and_bundle(tmp_path, capsys, digits):
    out = tmp_path / "lenet.onnx"
    assert main(["export-onnx", str(PROTOTXT), str(WEIGHTS), "-o", str(out), "--opset", "13",
                 "--no-optimize", "--dynamic-batch"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "data [Nx1x28x28]" in text and "prob [Nx10]" in text
    model = check(onnx.load(str(out)))
    assert model.opset_import[0].version == 13
    assert json.loads(props(model)["edgebrew_export"])["optimizer"] == "off"
    brew = tmp_path / "lenet.brew"
    edgebrew.convert(PROTOTXT, WEIGHTS, labels=EXAMPLE / "labels.txt").save(brew)
    out2 = tmp_path / "from_brew.onnx"
    assert main(["export-onnx", str(brew), "-o", str(out2)]) == 0
    model = check(onnx.load(str(out2)))
    assert json.loads(props(model)["labels"])[3] == "3"
    a = run_onnx(model, {"data": digits})["prob"]
    b = run_onnx(onnx.load(str(out)), {"data": digits})["prob"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_cli_errors(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert main(["export-onnx", str(PROTOTXT), "-o", str(out)]) == 1
    assert "needs its caffemodel" in capsys.readouterr().err
    assert main(["export-onnx", str(PROTOTXT), str(WEIGHTS), "-o", str(out),
                 "--opset", "9"]) == 1
    assert "opset 9" in capsys.readouterr().err
    assert not out.exists()


def test_every_ir_op_has_a_mapping():
    import edgebrew.onnx_export.ops  # noqa: F401  (registers the mappings)
    from edgebrew.ir.ops import OPS
    assert sorted(OPS) == sorted(MAPPERS)
    for op_type, mapping in MAPPERS.items():
        declared = {a.name for a in OPS[op_type].attrs}
        assert mapping.attrs <= declared | {"negative_slope", "clip_min", "clip_max",
                                            "activation"}, op_type
        assert declared <= mapping.attrs, (op_type, declared - mapping.attrs)
