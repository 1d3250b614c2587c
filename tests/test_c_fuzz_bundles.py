"""10,000 mutated bundles through the C runtime's fork-per-case fuzz driver: every case must end
with an error status and message (or a clean run), never a crash or a hang.

Bases: the kitchen-sink net (most op types, SSD head included: tests/data/kitchen_sink.prototxt)
unoptimized, optimized, at batch 2, quantized to int8 and with fp16 weights. Mutations aim at the flatbuffer (truncations, bit flips, 32/64-bit words replaced by
offsets and huge counts, spliced random bytes) rather than at the weights.
"""
import os
import random
import re
import shutil
import subprocess

import numpy as np
import pytest

import edgebrew
from caffe_files import random_weights, write_caffemodel
from conftest import REPO

C_DIR = REPO / "edgebrew" / "kernels_c"
CASES = 10_000
CHUNK = 1_000


@pytest.fixture(scope="module")
def release_driver(tmp_path_factory):
    cmake = shutil.which("cmake")
    if not cmake or not (shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("cmake and a C compiler are needed to build the fuzz driver")
    build = tmp_path_factory.mktemp("edgebrew_c_release")
    for cmd in ([cmake, "-S", str(C_DIR), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
                [cmake, "--build", str(build), "-j", "2", "--target", "edgebrew_test"]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return build / "edgebrew_test"


def base_bundles(tmp_path):
    proto = REPO / "tests" / "data" / "kitchen_sink.prototxt"
    weights = tmp_path / "ks.caffemodel"
    write_caffemodel(weights, random_weights(edgebrew.load_caffe(proto), seed=1))
    calib = np.random.default_rng(0).standard_normal((8, 3, 12, 12)).astype(np.float32)
    return [edgebrew.convert(proto, weights, optimize=False).to_bytes(),
            edgebrew.convert(proto, weights, optimize=True).to_bytes(),
            edgebrew.convert(proto, weights, inputs={"data": (2, 3, 12, 12)}).to_bytes(),
            # int8 (quantization parameters, int8/int32 buffers, Quantize/Dequantize) and fp16
            edgebrew.convert(proto, weights, quantize="int8", calibration=calib,
                             progress=False).to_bytes(),
            edgebrew.convert(proto, weights, quantize="fp16", progress=False).to_bytes()]


def _weight_segment(data):
    from edgebrew.bundle.edgebrew_fb import Model
    return Model.Model.GetRootAs(data, 0).WeightSegmentOffset()


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    head = max(8, _weight_segment(data)) if rng.random() < 0.9 else len(b)
    kind = rng.randrange(7)
    if kind == 0:
        return bytes(b[:rng.randrange(len(b))])
    if kind == 1:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(head)] ^= 1 << rng.randrange(8)
    elif kind == 2:  # a 32-bit word (offsets, lengths, counts) replaced
        i = rng.randrange(0, head - 4) & ~3
        v = rng.choice([0, 1, 4, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, len(b), len(b) - 4,
                        rng.randrange(1 << 32), rng.randrange(len(b))])
        b[i:i + 4] = v.to_bytes(4, "little")
    elif kind == 3:  # a 64-bit scalar (shapes, arena offsets/sizes, buffer offsets)
        i = rng.randrange(0, head - 8) & ~7
        v = rng.choice([0, 1 << 40, (1 << 63) - 1, (1 << 64) - 1, 1 << 62, rng.randrange(1 << 64)])
        b[i:i + 8] = v.to_bytes(8, "little")
    elif kind == 4:
        i = rng.randrange(head)
        n = rng.randint(1, 64)
        b[i:i + n] = bytes(rng.randrange(256) for _ in range(n))
    elif kind == 5:
        i, j = sorted(rng.randrange(len(b)) for _ in range(2))
        b[i:i] = b[i:j][:256]
    else:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 512)))
    return bytes(b)


def test_ten_thousand_mutated_bundles_never_crash(release_driver, tmp_path):
    bases = base_bundles(tmp_path)
    rng = random.Random(20261125)
    total_passed = ran = 0
    for chunk in range(CASES // CHUNK):
        cases = [mutate(bases[i % len(bases)], rng) for i in range(CHUNK)]
        blob = b"EBFZCAS1" + b"".join(len(c).to_bytes(4, "little") + c for c in cases)
        path = tmp_path / f"chunk{chunk}.bin"
        path.write_bytes(blob)
        r = subprocess.run([str(release_driver), "--fuzz", "-j", "2", "--timeout", "10",
                            str(path)], capture_output=True, timeout=600)
        r.stdout, r.stderr = (x.decode("utf-8", "replace") for x in (r.stdout, r.stderr))
        m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
        assert m, (r.stdout + r.stderr)[-3000:]
        passed, failed = int(m.group(1)), int(m.group(2))
        assert failed == 0 and r.returncode == 0, (r.stdout + r.stderr)[-6000:]
        total_passed += passed
        ran += r.stdout.count(": OK (loaded")
        os.unlink(path)
    assert total_passed == CASES
    # Mutations that keep the bundle valid load and run too (the kernels' prepare checks meet
    # mutated shapes and attributes); make sure that path was exercised.
    assert ran > CASES // 50, f"only {ran} mutated bundles loaded and ran"
