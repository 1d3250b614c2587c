"""edgebrew.Session over the C runtime: API behaviour and clear errors on wrong inputs."""
import numpy as np
import pytest

import edgebrew
from conftest import REPO
from edgebrew.errors import EdgebrewError
from helpers import c_runtime_available, rel_error

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")
EXAMPLE = REPO / "examples" / "lenet_mnist"


@pytest.fixture(scope="module")
def lenet():
    # optimize=False: the C runtime does not run fused activations / in-place plans yet.
    return edgebrew.convert(EXAMPLE / "lenet_deploy.prototxt", EXAMPLE / "lenet_mnist.caffemodel",
                            scale=0.00390625, optimize=False)


def test_session_from_path_bytes_and_bundle(lenet, tmp_path):
    path = lenet.save(tmp_path / "lenet.brew")
    x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    want = edgebrew.reference.run(lenet.graph, {"data": x})["prob"]
    for source in (path, str(path), lenet.to_bytes(), lenet):
        with edgebrew.Session(source) as s:
            assert [(i.name, i.shape) for i in s.inputs] == [("data", (1, 1, 28, 28))]
            assert [(o.name, o.shape) for o in s.outputs] == [("prob", (1, 10))]
            got = s.run(x)["prob"]
            assert rel_error(got, want) <= 1e-5
            assert s.run({"data": x})["prob"].tobytes() == got.tobytes()


def test_threads_give_identical_results(lenet):
    x = np.random.default_rng(1).random((1, 1, 28, 28), dtype=np.float32)
    outs = [edgebrew.Session(lenet, threads=t).run(x)["prob"] for t in (1, 2, 3)]
    assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()


def test_wrong_inputs_are_clear_errors(lenet):
    s = edgebrew.Session(lenet)
    with pytest.raises(EdgebrewError, match=r"'data'.*\(1, 1, 28, 27\).*\(1, 1, 28, 28\)"):
        s.run(np.zeros((1, 1, 28, 27), np.float32))
    with pytest.raises(EdgebrewError, match="float64.*float32"):
        s.run(np.zeros((1, 1, 28, 28), np.float64))
    with pytest.raises(EdgebrewError, match="unknown input.*'image'"):
        s.run({"image": np.zeros((1, 1, 28, 28), np.float32)})
    with pytest.raises(EdgebrewError, match="'data'.*not given"):
        s.run({})
    s.close()
    with pytest.raises(EdgebrewError, match="closed"):
        s.run(np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(EdgebrewError, match="threads"):
        edgebrew.Session(lenet, threads=0)


def test_bad_bundles_are_clear_errors(tmp_path):
    with pytest.raises(EdgebrewError, match="not found"):
        edgebrew.Session(tmp_path / "nope.brew")
    (tmp_path / "junk.brew").write_bytes(b"\x00" * 100)
    with pytest.raises(EdgebrewError, match="INVALID_BUNDLE"):
        edgebrew.Session(tmp_path / "junk.brew")
    with pytest.raises(EdgebrewError):
        edgebrew.Session(b"EBRW")
