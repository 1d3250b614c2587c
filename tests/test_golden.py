"""The reference executor against outputs of real BVLC Caffe (../shared/golden)."""
import numpy as np
import pytest

import edgebrew
from conftest import SHARED, shared_path
from helpers import rel_error

GOLDEN = sorted(p.parent.name for p in (SHARED / "golden").glob("*/manifest.json"))


def _zoo_weights(name):
    folder = name.split("__")[0]
    return SHARED / "models" / "zoo" / folder / f"{folder}.caffemodel"


@pytest.mark.parametrize("name", GOLDEN or ["<no shared/golden>"])
def test_reference_matches_real_caffe_random_weights(name, golden_caffemodel):
    folder = shared_path("golden", name)
    graph = edgebrew.load_caffe(folder / "deploy.prototxt", golden_caffemodel(name))
    x = np.load(folder / "input.npy")
    want = np.load(folder / "outputs.npz")
    got = edgebrew.reference.run(graph, {graph.inputs[0].name: x})
    assert set(want.files) <= set(got), (sorted(want.files), sorted(got))
    for k in want.files:
        assert rel_error(got[k], want[k]) <= 1e-4, k


@pytest.mark.parametrize("name", [n for n in GOLDEN
                                  if (SHARED / "golden" / n / "outputs_shipped.npz").exists()]
                         or ["<no shared/golden>"])
def test_reference_matches_real_caffe_shipped_weights(name):
    folder = shared_path("golden", name)
    weights = _zoo_weights(name)
    if not weights.exists():
        pytest.skip(f"{weights} absent")
    graph = edgebrew.load_caffe(folder / "deploy.prototxt", weights)
    x = np.load(folder / "input.npy")
    want = np.load(folder / "outputs_shipped.npz")
    got = edgebrew.reference.run(graph, {graph.inputs[0].name: x})
    for k in want.files:
        assert rel_error(got[k], want[k]) <= 1e-4, k
