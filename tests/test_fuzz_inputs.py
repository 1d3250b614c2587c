"""Malformed inputs: mutated prototxts and caffemodels raise only EdgebrewError, quickly."""
import random
import re
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import edgebrew
from edgebrew.errors import EdgebrewError
from edgebrew.report import graph_summary
from conftest import REPO, SHARED

EXAMPLE = REPO / "examples" / "lenet_mnist"
SEEDS = [REPO / "examples" / "lenet_mnist" / "lenet_deploy.prototxt"] + [
    SHARED / "models" / "zoo" / n / "deploy.prototxt"
    for n in ("cifar10_full", "bvlc_googlenet", "legacy_v0_caffenet_padding", "legacy_v1_lenet",
              "mobilenet_ssd", "squeezenet_v1_0", "resnet50_stem_test")]
SEEDS = [p for p in SEEDS if p.exists()]


@contextmanager
def deadline(seconds):
    """Turn a hang into a test failure instead of a stuck suite."""
    def fire(*_):
        raise TimeoutError(f"no answer within {seconds} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def mutate_text(text: str, rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:                                   # truncation
        return text[:rng.randrange(len(text))]
    if kind == 1:                                   # numbers out of range
        nums = list(re.finditer(r"-?\d+(\.\d+)?", text))
        if nums:
            m = rng.choice(nums)
            v = rng.choice(["0", "-1", "-7", "2147483647", "99999999999", "1e30", "nan", "3.5"])
            return text[:m.start()] + v + text[m.end():]
    if kind == 2:                                   # a line dropped
        lines = text.splitlines()
        del lines[rng.randrange(len(lines))]
        return "\n".join(lines)
    if kind == 3:                                   # a line duplicated
        lines = text.splitlines()
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
        return "\n".join(lines)
    if kind == 4:                                   # an identifier renamed (blob/layer/type)
        strs = list(re.finditer(r'"[^"]*"', text))
        if strs:
            m = rng.choice(strs)
            return text[:m.start()] + rng.choice(['"x"', '""', '"data"', '"ReLU"', '"Concat"',
                                                   '"Python"', '"Input"']) + text[m.end():]
    b = bytearray(text.encode())                    # random byte flips
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return b.decode("utf-8", errors="surrogateescape")


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(b[:rng.randrange(len(b))])
    if kind == 1:                                   # flips near the structure at the front
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(min(len(b), 2048))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == 2:                                   # flips anywhere
        for _ in range(rng.randint(1, 16)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == 3:                                   # random bytes spliced in
        i = rng.randrange(len(b))
        return bytes(b[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + b[i:])
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 4096)))


def _import_must_fail_cleanly(prototxt, caffemodel=None):
    try:
        g = edgebrew.load_caffe(prototxt, caffemodel)
        graph_summary(g)
    except EdgebrewError as e:
        assert str(e), "an error must say what is wrong"
    # Anything else (protobuf, NumPy, KeyError, RecursionError...) propagates and fails the test.


def test_mutated_prototxts(tmp_path):
    rng = random.Random(1234)
    texts = [p.read_text() for p in SEEDS]
    start = time.monotonic()
    for i in range(800):
        text = mutate_text(texts[i % len(texts)], rng)
        p = tmp_path / "m.prototxt"
        p.write_text(text, errors="surrogateescape")
        with deadline(10):
            _import_must_fail_cleanly(p)
    assert time.monotonic() - start < 120


def test_mutated_caffemodels(tmp_path):
    rng = random.Random(99)
    proto = EXAMPLE / "lenet_deploy.prototxt"
    data = (EXAMPLE / "lenet_mnist.caffemodel").read_bytes()
    start = time.monotonic()
    for i in range(300):
        p = tmp_path / "m.caffemodel"
        p.write_bytes(mutate_bytes(data, rng))
        with deadline(10):
            _import_must_fail_cleanly(proto, p)
    assert time.monotonic() - start < 120


def test_caffemodel_for_another_net(tmp_path):
    other = SHARED / "models" / "zoo" / "cifar10_quick" / "cifar10_quick.caffemodel"
    if not other.exists():
        pytest.skip(f"{other} absent")
    with pytest.raises(EdgebrewError, match="conv1|no weights"):
        edgebrew.load_caffe(EXAMPLE / "lenet_deploy.prototxt", other)
