"""The C runtime's core at the C level: the CMake build (with AddressSanitizer and
UndefinedBehaviorSanitizer) and its edgebrew_test program, and the kernel registry.

The sanitized build is made once per test session in a temporary directory. Everything here is
skipped, with the reason, when cmake or a C compiler with the sanitizer runtimes is missing.
"""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import REPO

C_DIR = REPO / "edgebrew" / "kernels_c"
EXAMPLE = REPO / "examples" / "lenet_mnist"
# Children of the fuzz driver that allocate more than the machine has must get NULL (and the
# library an EB_ERR_OUT_OF_MEMORY), not an ASan abort.
SAN_ENV = {"ASAN_OPTIONS": "allocator_may_return_null=1:detect_leaks=1:abort_on_error=0",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


def _compiler():
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
    return cc


@pytest.fixture(scope="session")
def sanitized_build(tmp_path_factory):
    """Path of edgebrew_test built with -DEDGEBREW_SANITIZE=ON."""
    cmake, cc = shutil.which("cmake"), _compiler()
    if not cmake:
        pytest.skip("cmake is not installed")
    if not cc:
        pytest.skip("no C compiler (gcc, cc or clang) found")
    probe_dir = tmp_path_factory.mktemp("san_probe")
    (probe_dir / "p.c").write_text("int main(void) { return 0; }\n")
    probe = subprocess.run([cc, "-fsanitize=address,undefined", str(probe_dir / "p.c"), "-o",
                            str(probe_dir / "p")], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{cc} cannot link ASan/UBSan programs (sanitizer runtimes missing): "
                    f"{probe.stderr.strip()[:300]}")
    build = tmp_path_factory.mktemp("edgebrew_c_asan")
    cfg = subprocess.run([cmake, "-S", str(C_DIR), "-B", str(build), "-DEDGEBREW_SANITIZE=ON",
                          f"-DCMAKE_C_COMPILER={cc}"], capture_output=True, text=True)
    assert cfg.returncode == 0, f"cmake configure failed:\n{cfg.stdout}\n{cfg.stderr}"
    jobs = str(max(2, os.cpu_count() or 2))
    res = subprocess.run([cmake, "--build", str(build), "-j", jobs], capture_output=True,
                         text=True)
    assert res.returncode == 0, f"cmake build failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    exe = build / "edgebrew_test"
    assert exe.exists()
    return exe


def _run(exe, *args, timeout=600):
    env = dict(os.environ, **SAN_ENV)
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _summary(out):
    m = re.search(r"^(\d+) passed, (\d+) failed$", out, re.M)
    assert m, f"no summary line in:\n{out[-3000:]}"
    return int(m.group(1)), int(m.group(2))


def test_builtin_checks_under_sanitizers(sanitized_build):
    """Hand-built valid and malformed bundles (empty, 3 bytes, wrong identifier, root offset
    past the end, vtable offsets out of range, huge vector lengths, strings without NUL, bad
    shapes / arena slots / buffers ...), attributes, thread pool, and in-process mutations."""
    res = _run(sanitized_build, "--self-test", "--iterations", "3000")
    out = res.stdout + res.stderr
    passed, failed = _summary(res.stdout)
    assert res.returncode == 0 and failed == 0, out[-6000:]
    assert passed > 300
    assert "ERROR: AddressSanitizer" not in out and "runtime error" not in out, out[-6000:]


def test_fork_fuzz_driver_on_builtin_bundle(sanitized_build):
    res = _run(sanitized_build, "--mutate", "builtin", "500", "-q", "-j", "2", "--leak-check", "5")
    passed, failed = _summary(res.stdout)
    assert res.returncode == 0 and failed == 0 and passed == 500, (res.stdout + res.stderr)[-6000:]


def test_fuzz_driver_reports_every_case_of_a_container(sanitized_build, tmp_path):
    """The case-container format ("EBFZCAS1", then u32 length + bytes per case) and a folder."""
    cases = [b"", b"abc", b"\x00" * 64, b"\x08\x00\x00\x00EBRW" + b"\xff" * 40]
    blob = b"EBFZCAS1" + b"".join(len(c).to_bytes(4, "little") + c for c in cases)
    (tmp_path / "cases.bin").write_bytes(blob)
    folder = tmp_path / "dir"
    folder.mkdir()
    for i, c in enumerate(cases):
        (folder / f"{i}.brew").write_bytes(c)
    res = _run(sanitized_build, "--fuzz", tmp_path / "cases.bin", folder)
    assert _summary(res.stdout) == (8, 0), res.stdout + res.stderr
    assert res.stdout.count("EB_ERR_INVALID_BUNDLE at load") == 8, res.stdout


def _lenet_bundle(tmp_path):
    edgebrew = pytest.importorskip("edgebrew")
    b = edgebrew.convert(EXAMPLE / "lenet_deploy.prototxt", EXAMPLE / "lenet_mnist.caffemodel",
                         scale=0.00390625, optimize=False)
    return b, b.save(tmp_path / "lenet.brew")


def test_real_bundle_runs_under_sanitizers_and_matches_reference(sanitized_build, tmp_path):
    edgebrew = pytest.importorskip("edgebrew")
    bundle, path = _lenet_bundle(tmp_path)
    x = np.random.default_rng(3).random((1, 1, 28, 28), dtype=np.float32)
    (tmp_path / "x.f32").write_bytes(x.tobytes())
    want = edgebrew.reference.run(bundle.graph, {"data": x})["prob"]
    for extra in ([], ["--memory", "--threads", "3"]):
        out_dir = tmp_path / ("dump" + "".join(extra))
        out_dir.mkdir()
        res = _run(sanitized_build, path, "--input", tmp_path / "x.f32", "--dump", out_dir,
                   "--runs", "2", *extra)
        assert res.returncode == 0, res.stdout + res.stderr
        got = np.fromfile(out_dir / "output_0.f32", np.float32).reshape(want.shape)
        assert np.abs(got - want).max() <= 1e-5 * max(1.0, np.abs(want).max())


def test_mutated_real_bundle_never_crashes(sanitized_build, tmp_path):
    _, path = _lenet_bundle(tmp_path)
    res = _run(sanitized_build, "--mutate", path, "300", "--seed", "7", "-q", "-j", "2")
    passed, failed = _summary(res.stdout)
    assert failed == 0 and passed == 300, (res.stdout + res.stderr)[-6000:]


def test_every_op_type_has_a_kernel():
    try:
        from edgebrew._libedgebrew import ffi, lib
    except ImportError as e:
        pytest.skip(f"the cffi extension edgebrew._libedgebrew is not built ({e})")
    buf = ffi.new("char[4096]")
    missing = lib.eb_missing_kernels(buf, len(buf))
    names = ffi.string(buf).decode()
    assert missing == 0, f"{missing} op type(s) have no C kernel in this build: {names}"


# What src/core/model.c reads, field by field, in vtable order: a change to bundle.fbs must be
# mirrored there (field ids, element sizes, defaults) and then here.
C_READER_SCHEMA = {
    "Attr": [("key", "string"), ("kind", "AttrKind"), ("i", "long"), ("f", "double"),
             ("ints", "[long]"), ("floats", "[double]"), ("s", "string")],
    "Quantization": [("scale", "[float]"), ("zero_point", "[long]"), ("axis", "int")],
    "Tensor": [("name", "string"), ("shape", "[long]"), ("dtype", "DType"), ("buffer", "int"),
               ("arena_offset", "long"), ("quant", "Quantization")],
    "Op": [("name", "string"), ("type", "OpType"), ("inputs", "[int]"), ("outputs", "[int]"),
           ("weights", "[int]"), ("attrs", "[Attr]"), ("fused", "[string]"),
           ("param_mults", "[float]")],
    "Buffer": [("offset", "ulong"), ("size", "ulong")],
    "Preprocessing": [("mean", "[double]"), ("mean_file", "int"), ("scale", "double"),
                      ("channel_order", "string"), ("input_size", "[int]"), ("grayscale", "bool")],
    "Metadata": [("model_name", "string"), ("source_prototxt", "string"),
                 ("source_caffemodel", "string"), ("source_sha1", "string"),
                 ("preprocessing", "Preprocessing"), ("labels", "[string]"),
                 ("converter_version", "string"), ("converter_options", "string"),
                 ("extra", "string")],
    "Model": [("format_version", "uint"), ("tensors", "[Tensor]"), ("ops", "[Op]"),
              ("inputs", "[int]"), ("outputs", "[int]"), ("buffers", "[Buffer]"),
              ("arena_size", "ulong"), ("weight_segment_offset", "ulong"),
              ("weight_segment_size", "ulong"), ("metadata", "Metadata")],
}


def _parse_fbs(text):
    text = re.sub(r"//[^\n]*", "", text)
    blocks = {}
    for kind, name, body in re.findall(r"\b(table|struct)\s+(\w+)\s*\{(.*?)\}", text, re.S):
        blocks[name] = [(f, t) for f, t in re.findall(r"(\w+)\s*:\s*([\w\[\]]+)", body)]
    enums = {}
    for name, base, body in re.findall(r"\benum\s+(\w+)\s*:\s*(\w+)\s*\{(.*?)\}", text, re.S):
        enums[name] = (base, {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(\d+)", body)})
    return blocks, enums


def test_c_reader_matches_bundle_schema():
    blocks, enums = _parse_fbs((REPO / "edgebrew" / "bundle" / "bundle.fbs").read_text())
    for name, fields in C_READER_SCHEMA.items():
        assert blocks.get(name) == fields, (
            f"bundle.fbs {name} is now {blocks.get(name)}; the C reader (src/core/model.c) "
            f"reads {fields}: update both it and C_READER_SCHEMA")
    assert enums["DType"] == ("byte", {"FLOAT32": 0, "FLOAT16": 1, "INT8": 2, "UINT8": 3,
                                       "INT32": 4}), enums["DType"]
    assert enums["AttrKind"] == ("byte", {"INT": 0, "FLOAT": 1, "INTS": 2, "FLOATS": 3,
                                          "STRING": 4}), enums["AttrKind"]
    base, ops = enums["OpType"]
    assert base == "short"
    op_h = (C_DIR / "src" / "op.h").read_text()
    c_ops = {k: int(v) for k, v in re.findall(r"EB_OP_(\w+)\s*=\s*(\d+)", op_h)}
    assert c_ops == ops, "op codes in src/op.h differ from enum OpType in bundle.fbs"
    assert f"EB_NUM_OP_TYPES = {len(ops)}" in op_h


# The fine-tuning bundle writer (src/train/bundle_writer.c) copies every field of every table
# by its vtable slot; a field added to bundle.fbs and not to the writer would be dropped from
# tuned bundles silently. Its field enums must list the schema's fields, in order.
_WRITER_ENUM_PREFIX = {"Attr": "A", "Quantization": "Q", "Tensor": "T", "Op": "O",
                       "Preprocessing": "P", "Metadata": "MD", "Model": "M"}


def test_finetune_bundle_writer_knows_every_schema_field():
    blocks, _ = _parse_fbs((REPO / "edgebrew" / "bundle" / "bundle.fbs").read_text())
    writer = (C_DIR / "src" / "train" / "bundle_writer.c").read_text()
    enums = {}
    for body in re.findall(r"\benum\s*\{(.*?)\}", writer, re.S):
        names = [n.strip() for n in body.split(",") if n.strip()]
        if names and names[-1].endswith("_NFIELDS"):
            enums[names[-1][:-len("_NFIELDS")]] = names[:-1]
    for table, prefix in _WRITER_ENUM_PREFIX.items():
        want = [f"{prefix}_{f.upper()}" for f, _ in blocks[table]]
        assert enums.get(prefix) == want, (
            f"bundle.fbs table {table} has fields {want}; src/train/bundle_writer.c copies "
            f"{enums.get(prefix)}: teach the writer the new field")
