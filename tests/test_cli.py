"""``edgebrew inspect``: the table, the JSON object, MAC counts, and errors without tracebacks."""
import json
import subprocess
import sys

import pytest

from conftest import REPO, shared_path
from edgebrew.cli import main

EXAMPLE = REPO / "examples" / "lenet_mnist"


def inspect_json(capsys, *args):
    assert main(["inspect", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_inspect_example_json(capsys):
    s = inspect_json(capsys, EXAMPLE / "lenet_deploy.prototxt", EXAMPLE / "lenet_mnist.caffemodel")
    assert [l["name"] for l in s["layers"]] == ["conv1", "pool1", "conv2", "pool2", "ip1", "relu1",
                                               "ip2", "prob"]
    conv1 = s["layers"][0]
    assert conv1 == {"name": "conv1", "type": "Convolution", "output_shape": [1, 20, 24, 24],
                     "params": 20 * 25 + 20, "macs": 20 * 24 * 24 * 25}
    assert s["totals"]["params"] == 520 + 25050 + 400500 + 5010
    assert s["totals"]["macs"] == 288000 + 1600000 + 400000 + 5000


def test_inspect_table(capsys):
    assert main(["inspect", str(EXAMPLE / "lenet_deploy.prototxt")]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "Convolution" in out and "1x20x24x24" in out
    assert "2.293 M MACs" in out


@pytest.mark.parametrize("folder, prototxt, gmacs", [
    ("zoo/bvlc_reference_caffenet", "deploy.prototxt", 0.724),
    ("zoo/bvlc_googlenet", "deploy.prototxt", 1.583),
    ("zoo/resnet50", "deploy.prototxt", 3.858),
    ("open_nsfw", "deploy.prototxt", 1.069),
])
def test_macs_of_known_nets(capsys, folder, prototxt, gmacs):
    s = inspect_json(capsys, shared_path("models", folder, prototxt))
    assert abs(s["totals"]["macs"] / 1e9 - gmacs) <= 0.01 * gmacs


def test_inspect_input_override(capsys):
    s = inspect_json(capsys, EXAMPLE / "lenet_deploy.prototxt", "--input", "data:4,1,32,32")
    assert s["inputs"] == [{"name": "data", "shape": [4, 1, 32, 32]}]
    assert s["layers"][0]["output_shape"] == [4, 20, 28, 28]


def test_errors_print_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer { name: "a" type: "ReLU" bottom: "x" top: }\n')
    r = subprocess.run([sys.executable, "-m", "edgebrew", "inspect", str(bad)],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and f"{bad}:1" in r.stderr
    r = subprocess.run([sys.executable, "-m", "edgebrew", "inspect", str(tmp_path / "nope")],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr
