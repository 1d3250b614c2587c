"""``edgebrew finetune``: a folder of class subfolders of images (preprocessed with the bundle's
preprocessing; the subfolder names become the labels) or an .npz; writes the tuned bundle."""
import json

import numpy as np
import pytest

import edgebrew
from edgebrew.cli import main
from helpers import c_runtime_available
from mnist_data import lenet_files, mnist_split

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")


@pytest.fixture(scope="module")
def lenet_path(tmp_path_factory):
    prototxt, caffemodel = lenet_files()
    p = tmp_path_factory.mktemp("cli") / "lenet.brew"
    edgebrew.convert(prototxt, caffemodel, scale=0.00390625).save(p)
    return p


def write_digits(folder, x, y, per_class=30):
    from PIL import Image
    for name, digit_set in (("even", (0, 2, 4, 6, 8)), ("odd", (1, 3, 5, 7, 9))):
        d = folder / name
        d.mkdir(parents=True)
        idx = np.flatnonzero(np.isin(y, digit_set))[:per_class]
        for i in idx:   # back to 0..255 pixels (the bundle scales by 1/256 again)
            Image.fromarray(np.round(x[i, 0] * 256).clip(0, 255).astype(np.uint8)).save(
                d / f"{i}.png")


def test_finetune_folder_of_images(lenet_path, tmp_path, capsys):
    x_train, y_train, x_test, y_test = mnist_split()
    write_digits(tmp_path / "train", x_train, y_train, 60)
    write_digits(tmp_path / "val", x_test, y_test, 30)
    out = tmp_path / "tuned.brew"
    rc = main(["finetune", str(lenet_path), "--data", str(tmp_path / "train"), "--val",
               str(tmp_path / "val"), "--num-output", "2", "--epochs", "4", "--batch-size", "16",
               "--lr", "0.01", "-o", str(out), "--state", str(tmp_path / "s.brewstate")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "epoch 4" in text and "val accuracy" in text
    t = edgebrew.Bundle.load(out)
    assert t.metadata.labels == ["even", "odd"]
    assert t.graph.shapes["prob"] == (1, 2)
    val_acc = float(text.strip().splitlines()[-1].rsplit(" ", 1)[1])
    assert val_acc >= 0.8
    assert (tmp_path / "s.brewstate").is_file()


def test_finetune_npz_and_errors(lenet_path, tmp_path, capsys):
    x_train, y_train, _, _ = mnist_split()
    np.savez(tmp_path / "d.npz", data=x_train[:200], labels=y_train[:200])
    out = tmp_path / "t.brew"
    assert main(["finetune", str(lenet_path), "--data", str(tmp_path / "d.npz"), "--epochs", "1",
                 "--batch-size", "50", "-o", str(out), "--json", "--no-shuffle"]) == 0
    hist = json.loads(capsys.readouterr().out)
    assert len(hist["iterations"]) == 4 and len(hist["epochs"]) == 1
    edgebrew.Session(out).close()
    np.savez(tmp_path / "bad.npz", data=x_train[:10])
    assert main(["finetune", str(lenet_path), "--data", str(tmp_path / "bad.npz"), "-o",
                 str(out)]) == 1
    assert "needs arrays 'data' and 'labels'" in capsys.readouterr().err
    assert main(["finetune", str(lenet_path), "--data", str(tmp_path / "d.npz"), "--layer",
                 "pool1", "-o", str(out)]) == 1
    assert "'pool1' cannot be fine-tuned: it is a Pooling" in capsys.readouterr().err
