"""The optimizer in ``edgebrew.convert``, ``edgebrew convert`` (-O0, --passes, --skip-pass,
--report) and ``edgebrew inspect`` (text and --json, on a prototxt with or without weights and on
a bundle)."""
import importlib
import json

import edgebrew
from conftest import REPO, shared_path
from edgebrew.bundle import Bundle
from edgebrew.cli import main
from edgebrew.optimizer import DEFAULT_PIPELINE, check_plan

EXAMPLE = REPO / "examples" / "lenet_mnist"
PROTO, WEIGHTS = EXAMPLE / "lenet_deploy.prototxt", EXAMPLE / "lenet_mnist.caffemodel"
PLANNER = ["inplace_reuse", "concat_zero_copy"]


def inspect_json(capsys, *args):
    assert main(["inspect", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_inspect_json_adds_ops_passes_memory(capsys):
    s = inspect_json(capsys, PROTO, WEIGHTS)
    assert [l["name"] for l in s["layers"]] == ["conv1", "pool1", "conv2", "pool2", "ip1",
                                               "relu1", "ip2", "prob"]       # unchanged
    assert {"layers", "totals", "inputs", "outputs", "has_weights", "notes"} <= set(s)
    ip1 = next(o for o in s["ops"] if o["name"] == "ip1")
    assert ip1 == {"name": "ip1", "type": "InnerProduct", "fused": ["relu1"], "zero_copy": False}
    assert [o["name"] for o in s["ops"]] == ["conv1", "pool1", "conv2", "pool2", "ip1", "ip2",
                                            "prob"]
    assert [p["name"] for p in s["passes"]] == list(DEFAULT_PIPELINE) + PLANNER
    fuse = next(p for p in s["passes"] if p["name"] == "fuse_activations")
    assert fuse["changed"] == 1 and fuse["layers"] == ["relu1"]
    assert set(s["memory"]) == {"arena_bytes", "naive_bytes", "lower_bound_bytes"}
    m = s["memory"]
    assert m["lower_bound_bytes"] <= m["arena_bytes"] <= m["naive_bytes"]
    assert s["op_counts"] == {"before": {"Convolution": 2, "Pooling": 2, "InnerProduct": 2,
                                         "ReLU": 1, "Softmax": 1},
                              "after": {"Convolution": 2, "Pooling": 2, "InnerProduct": 2,
                                        "Softmax": 1}}


def test_inspect_bare_prototxt_shows_the_optimized_graph(capsys):
    proto = shared_path("models", "zoo", "bvlc_googlenet", "deploy.prototxt")
    s = inspect_json(capsys, proto, "--input", "data:1,3,224,224")
    concats = [o for o in s["ops"] if o["type"] == "Concat"]
    assert len(concats) == 9 and all(o["zero_copy"] for o in concats)
    assert not any(o["type"] in ("ReLU", "Dropout") for o in s["ops"])
    assert s["memory"]["arena_bytes"] <= 1.1 * s["memory"]["lower_bound_bytes"]
    s = inspect_json(capsys, shared_path("models", "zoo", "resnet50", "deploy.prototxt"))
    assert s["has_weights"] is False
    assert {o["type"] for o in s["ops"]} == {"Convolution", "Eltwise", "Pooling",
                                            "InnerProduct", "Softmax"}
    conv1 = s["ops"][0]
    assert conv1 == {"name": "conv1", "type": "Convolution",
                     "fused": ["bn_conv1", "scale_conv1", "conv1_relu"], "zero_copy": False}


def test_inspect_selection_options(capsys):
    s = inspect_json(capsys, PROTO, "-O0")
    assert s["passes"] == [] and [o["name"] for o in s["ops"]] == [l["name"] for l in s["layers"]]
    s = inspect_json(capsys, PROTO, "--skip-pass", "fuse_activations")
    assert "relu1" in [o["name"] for o in s["ops"]]
    s = inspect_json(capsys, PROTO, "--passes", "remove_noops,fuse_activations")
    assert [p["name"] for p in s["passes"]] == ["remove_noops", "fuse_activations"]
    assert main(["inspect", str(PROTO), "--passes", "fold_everything"]) == 1
    err = capsys.readouterr().err
    assert "unknown optimizer pass" in err and "fold_everything" in err


def test_inspect_text_report(capsys):
    assert main(["inspect", str(shared_path("models", "zoo", "resnet50", "deploy.prototxt"))]) == 0
    out = capsys.readouterr().out
    assert "fold_batchnorm" in out and "folded BatchNorm x53" in out
    assert "op counts by type (before -> after)" in out
    assert "BatchNorm       53 ->    0" in out
    assert "Convolution + bn_conv1, scale_conv1, conv1_relu" in out
    assert "memory plan: arena" in out and "lower bound" in out


def test_convert_records_the_passes(tmp_path, monkeypatch):
    b = edgebrew.convert(PROTO, WEIGHTS)
    assert b.metadata.converter_options["optimize"] is True
    assert [p["name"] for p in b.metadata.extra["passes"]] == list(DEFAULT_PIPELINE) + PLANNER
    assert b.metadata.extra["op_counts"]["after"]["InnerProduct"] == 2
    assert "ReLU" not in b.metadata.extra["op_counts"]["after"]
    check_plan(b.graph, b.plan)
    back = Bundle.from_bytes(b.to_bytes())
    assert back.metadata.extra == b.metadata.extra
    assert back.graph.node("ip1").fused == ["relu1"]
    plain = edgebrew.convert(PROTO, WEIGHTS, optimize=False)
    assert len(plain.graph.nodes) == 8 and not plain.plan.aliases
    assert plain.metadata.extra["passes"] == []
    some = edgebrew.convert(PROTO, WEIGHTS, passes=["remove_noops"], skip_passes=["remove_noops"])
    assert some.metadata.extra["passes"] == [] and len(some.graph.nodes) == 8
    convert_module = importlib.import_module("edgebrew.convert")   # the module, not the function
    monkeypatch.setattr(convert_module, "DEFAULT_OPTIMIZE", False)
    assert len(edgebrew.convert(PROTO, WEIGHTS).graph.nodes) == 8


def test_convert_cli(tmp_path, capsys):
    out = tmp_path / "m.brew"
    assert main(["convert", str(PROTO), str(WEIGHTS), "-o", str(out), "--report"]) == 0
    text = capsys.readouterr().out
    assert "8 layers -> 7 ops" in text and "fuse_activations" in text and "memory plan" in text
    s = inspect_json(capsys, out)
    assert [p["name"] for p in s["passes"]] == list(DEFAULT_PIPELINE) + PLANNER
    assert s["op_counts"]["before"]["ReLU"] == 1 and "metadata" in s
    ip1 = next(o for o in s["ops"] if o["name"] == "ip1")
    assert ip1["fused"] == ["relu1"]
    assert main(["convert", str(PROTO), str(WEIGHTS), "-o", str(out), "-O0"]) == 0
    capsys.readouterr()
    s = inspect_json(capsys, out)
    assert s["passes"] == [] and len(s["ops"]) == 8
    assert Bundle.load(out).metadata.converter_options["optimize"] is False
    assert main(["convert", str(PROTO), str(WEIGHTS), "-o", str(out),
                 "--skip-pass", "fuse_activations", "--skip-pass", "inplace_reuse"]) == 0
    capsys.readouterr()
    s = inspect_json(capsys, out)
    names = [p["name"] for p in s["passes"]]
    assert "fuse_activations" not in names and "inplace_reuse" not in names
    assert main(["inspect", str(out), "-O0"]) == 1
    assert "apply to a prototxt" in capsys.readouterr().err
    assert main(["convert", str(PROTO), str(WEIGHTS), "-o", str(out), "-O0",
                 "--passes", "remove_noops"]) == 1


def test_zero_copy_shows_in_a_bundle(capsys, tmp_path):
    proto = shared_path("models", "zoo", "squeezenet_v1_0", "deploy.prototxt")
    from caffe_files import random_weights, write_caffemodel
    g = edgebrew.load_caffe(proto, inputs={"data": (1, 3, 227, 227)})
    weights = tmp_path / "w.caffemodel"
    write_caffemodel(weights, random_weights(g))
    b = edgebrew.convert(proto, weights, inputs={"data": (1, 3, 227, 227)})
    path = b.save(tmp_path / "sq.brew")
    s = inspect_json(capsys, path)
    concats = [o for o in s["ops"] if o["type"] == "Concat"]
    assert len(concats) == 8 and all(o["zero_copy"] for o in concats)
    zc = next(p for p in s["passes"] if p["name"] == "concat_zero_copy")
    assert zc["changed"] == 8
    assert s["memory"]["arena_bytes"] == b.plan.arena_bytes
    assert s["memory"]["lower_bound_bytes"] == b.plan.lower_bound_bytes
