"""The .brew bundle: round trip of every field, alignment of the weight segment, atomic save,
and clear errors for files that are not bundles."""
import dataclasses
import struct

import numpy as np
import pytest

import edgebrew
from conftest import REPO, shared_path
from edgebrew.bundle import Bundle
from edgebrew.bundle.edgebrew_fb import Model as FbModel
from edgebrew.errors import EdgebrewError

EXAMPLE = REPO / "examples" / "lenet_mnist"


def lenet_bundle(**kw):
    return edgebrew.convert(EXAMPLE / "lenet_deploy.prototxt", EXAMPLE / "lenet_mnist.caffemodel",
                            scale=0.00390625, labels=EXAMPLE / "labels.txt", **kw)


def _norm(v):
    return tuple(v) if isinstance(v, list) else v


def assert_same_graph(a, b):
    assert [t.name for t in a.inputs] == [t.name for t in b.inputs]
    assert [tuple(t.shape) for t in a.inputs] == [tuple(t.shape) for t in b.inputs]
    assert a.output_names == b.output_names
    assert len(a.nodes) == len(b.nodes)
    for x, y in zip(a.nodes, b.nodes):
        assert (x.name, x.op_type, x.inputs, x.outputs, x.weights) == \
               (y.name, y.op_type, y.inputs, y.outputs, y.weights)
        assert {k: _norm(v) for k, v in x.attrs.items()} == {k: _norm(v) for k, v in y.attrs.items()}
    assert a.initializers.keys() == b.initializers.keys()
    for k in a.initializers:
        assert a.initializers[k].dtype == b.initializers[k].dtype
        np.testing.assert_array_equal(a.initializers[k], b.initializers[k])
    for t in a.shapes:
        assert tuple(a.shapes[t]) == tuple(b.shapes[t]), t


def test_round_trip_every_field(tmp_path):
    bundle = lenet_bundle(name="digits", input_size=(28, 28))
    path = bundle.save(tmp_path / "lenet.brew")
    back = Bundle.load(path)
    assert_same_graph(bundle.graph, back.graph)
    assert dataclasses.asdict(back.metadata).keys() == dataclasses.asdict(bundle.metadata).keys()
    assert back.metadata == bundle.metadata
    m = back.metadata
    assert m.model_name == "digits" and m.labels == [str(i) for i in range(10)]
    assert m.preprocessing.scale == 0.00390625 and m.preprocessing.grayscale
    assert m.preprocessing.input_size == (28, 28) and m.source_caffemodel == "lenet_mnist.caffemodel"
    assert len(m.source_sha1) == 40 and m.converter_version == edgebrew.__version__
    assert back.plan.offsets == bundle.plan.offsets
    assert back.plan.arena_bytes == bundle.plan.arena_bytes
    assert path.read_bytes() == back.to_bytes() == bundle.to_bytes()


def test_round_trip_mean_file_and_values(tmp_path):
    folder = shared_path("models", "zoo", "cifar10_quick")
    b = edgebrew.convert(folder / "deploy.prototxt", folder / "cifar10_quick.caffemodel",
                         mean=folder / "mean.binaryproto", bgr=False)
    back = Bundle.from_bytes(b.to_bytes())
    assert back.metadata.preprocessing.mean_image.shape == (3, 32, 32)
    assert back.metadata == b.metadata and back.metadata.preprocessing.channel_order == "RGB"
    b2 = edgebrew.convert(folder / "deploy.prototxt", folder / "cifar10_quick.caffemodel",
                          mean=[104.5, 117, 123.25], scale=0.017)
    assert Bundle.from_bytes(b2.to_bytes()).metadata.preprocessing.mean == [104.5, 117.0, 123.25]


def test_weight_segment_is_aligned_and_zero_copy():
    bundle = lenet_bundle()
    data = bundle.to_bytes()
    assert data[4:8] == b"EBRW"
    m = FbModel.Model.GetRootAs(data, 0)
    seg = m.WeightSegmentOffset()
    assert seg % 64 == 0 and seg + m.WeightSegmentSize() == len(data)
    for i in range(m.BuffersLength()):
        buf = m.Buffers(i)
        assert (seg + buf.Offset()) % 64 == 0
    back = Bundle.from_bytes(data)
    w = back.graph.initializers["conv1.weight"]
    assert not w.flags.owndata  # a view of the file's bytes
    offsets = [back.plan.offsets[t] for t in back.plan.offsets]
    assert all(o % 64 == 0 for o in offsets)


def test_outputs_identical_after_round_trip():
    bundle = lenet_bundle()
    back = Bundle.from_bytes(bundle.to_bytes())
    x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    a = edgebrew.reference.run(bundle.graph, {"data": x})["prob"]
    b = edgebrew.reference.run(back.graph, {"data": x})["prob"]
    np.testing.assert_array_equal(a, b)


def test_save_is_atomic_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "m.brew"
    old = lenet_bundle().save(path).read_bytes()
    b = lenet_bundle(name="other")

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(OSError):
        b.save(path)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["m.brew"]   # no temporary left behind


def test_not_a_bundle(tmp_path):
    p = tmp_path / "x.brew"
    p.write_bytes(b"hello world, not a bundle")
    with pytest.raises(EdgebrewError, match="x.brew.*not an edgebrew bundle"):
        Bundle.load(p)
    data = bytearray(lenet_bundle().to_bytes())
    struct.pack_into("<I", data, 0, len(data) + 1000)   # root offset past the end
    with pytest.raises(EdgebrewError, match="corrupted|version|out of"):
        Bundle.from_bytes(bytes(data))
    with pytest.raises(EdgebrewError, match="not found|cannot read"):
        Bundle.load(tmp_path / "missing.brew")
