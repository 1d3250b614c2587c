"""The quantization CLI: convert --quantize, the calibration cache, inspect --json's accuracy,
edgebrew compare; and clear errors on bad requests. Data: the shipped LeNet and its digits."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgebrew import Bundle
from edgebrew.cli import main

LENET = Path(__file__).resolve().parents[2] / "examples" / "lenet_mnist"
PROTOTXT, WEIGHTS = str(LENET / "lenet_deploy.prototxt"), str(LENET / "lenet_mnist.caffemodel")
DIGITS = str(LENET / "digits")


def _convert(tmp_path, name, *extra):
    out = tmp_path / name
    rc = main(["convert", PROTOTXT, WEIGHTS, "--scale", "0.00390625", "-o", str(out),
               "--quiet", *extra])
    assert rc == 0
    return out


def test_convert_int8_from_images_and_inspect_json(tmp_path, capsys):
    out = _convert(tmp_path, "int8.brew", "--quantize", "int8", "--calib", DIGITS,
                   "--calib-method", "percentile", "--report")
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    acc = summary["accuracy"]["prob"]
    assert acc["samples"] == 10 and 0.99 < acc["cosine"] <= 1.0
    assert set(acc) >= {"cosine", "max_abs_error", "top1_agreement", "top5_agreement"}
    q = summary["quantization"]
    assert q["scheme"] == "int8" and q["calib_method"] == "percentile"
    assert {r["layer"] for r in q["sensitivity"]} == {"conv1", "conv2", "ip1", "ip2"}
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "accuracy vs fp32" in text and "top-1 agree" in text


def test_calibration_cache_is_written_then_reused(tmp_path):
    cache = tmp_path / "ranges.json"
    a = _convert(tmp_path, "a.brew", "--quantize", "int8", "--calib", DIGITS,
                 "--calib-cache", str(cache))
    saved = json.loads(cache.read_text())
    assert saved["format"] == "edgebrew-calibration-1" and "conv1" in saved["ranges"]
    # other calibration data, same cache: the cached ranges win
    noise = tmp_path / "noise.npy"
    np.save(noise, np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32))
    b = _convert(tmp_path, "b.brew", "--quantize", "int8", "--calib", str(noise),
                 "--calib-cache", str(cache))
    ga, gb = Bundle.load(a).graph, Bundle.load(b).graph
    assert ga.quant.keys() == gb.quant.keys()
    assert all(ga.quant[k] == gb.quant[k] for k in ga.quant)
    cache.write_text("{not json")
    rc = main(["convert", PROTOTXT, WEIGHTS, "-o", str(tmp_path / "c.brew"), "--quiet",
               "--quantize", "int8", "--calib", DIGITS, "--calib-cache", str(cache)])
    assert rc == 1 and not (tmp_path / "c.brew").exists()


def test_fp16_and_compare(tmp_path, capsys):
    fp32 = _convert(tmp_path, "fp32.brew")
    fp16 = _convert(tmp_path, "fp16.brew", "--quantize", "fp16", "--validate", DIGITS)
    assert fp16.stat().st_size <= 0.52 * fp32.stat().st_size
    capsys.readouterr()
    assert main(["compare", str(fp32), str(fp16), "--data", DIGITS, "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["accuracy"]["prob"]
    assert m["samples"] == 10 and m["top1_agreement"] == 1.0 and m["max_abs_error"] < 1e-3
    # a Caffe pair as the reference: the same model in float32 agrees exactly with fp32.brew
    assert main(["compare", PROTOTXT, WEIGHTS, str(fp32), "--data", DIGITS, "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["accuracy"]["prob"]
    assert m["max_abs_error"] == 0.0 and m["cosine"] == pytest.approx(1.0)
    assert main(["compare", str(fp32), str(fp16), "--data", DIGITS]) == 0
    assert "top-1 agree 100.00%" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--quantize", "int8"], "needs calibration data"),
    (["--quantize", "int8", "--calib", "/nonexistent/dir"], "/nonexistent/dir"),
    (["--quantize", "int8", "--calib", DIGITS, "--keep-fp32", "nope"], "no layer named 'nope'"),
    (["--quantize", "int8", "--calib", DIGITS, "--max-accuracy-drop", "3"], "fraction"),
])
def test_bad_requests_are_clear_errors(tmp_path, capsys, args, message):
    out = tmp_path / "x.brew"
    rc = main(["convert", PROTOTXT, WEIGHTS, "-o", str(out), "--quiet", *args])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and not out.exists()


def test_calibration_array_of_wrong_shape(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 3, 28, 28), np.float32))
    rc = main(["convert", PROTOTXT, WEIGHTS, "-o", str(tmp_path / "x.brew"), "--quiet",
               "--quantize", "int8", "--calib", str(bad)])
    assert rc == 1 and "(3, 28, 28)" in capsys.readouterr().err
